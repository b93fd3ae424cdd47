//! Group commit for SQLite. With `synchronous=FULL` every commit waits for its own fsync
//! while holding SQLite's single write lock, so commits queue behind each other's disk
//! flushes (about 700 a second here). Instead the connection runs `synchronous=NORMAL` —
//! commits write the WAL without flushing it, the lock is held for microseconds — and a
//! commit is acknowledged only after an fsync of the WAL file that began after it: one
//! fsync makes every commit before it durable, so concurrent writers share flushes.
//!
//! Why this is as durable as FULL: fsync is per file, not per descriptor, so flushing the
//! `-wal` file from here persists every frame SQLite wrote to it, header included, and
//! recovery after a crash replays exactly the committed frames it finds. Checkpoints under
//! NORMAL flush the WAL before and the database after copying, so nothing a checkpoint
//! moves is lost either.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, watch};

use crate::{Error, Result};

pub(crate) struct WalSync {
    wal: PathBuf,
    /// Commits that asked for durability, numbered in the order their commits finished.
    tickets: AtomicU64,
    /// The highest ticket a finished fsync covers.
    synced: watch::Sender<u64>,
    /// Held by the one task running an fsync.
    leader: Mutex<()>,
}

impl WalSync {
    pub(crate) fn new(database: PathBuf) -> Self {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        Self {
            wal: PathBuf::from(wal),
            tickets: AtomicU64::new(0),
            synced: watch::Sender::new(0),
            leader: Mutex::new(()),
        }
    }

    /// Returns once every commit finished before this call is on disk.
    pub(crate) async fn sync(&self) -> Result<()> {
        let mine = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        loop {
            // Subscribe before looking, so a leader finishing in between still wakes us.
            let mut updates = self.synced.subscribe();
            if *updates.borrow_and_update() >= mine {
                return Ok(());
            }
            if let Ok(leader) = self.leader.try_lock() {
                if *self.synced.borrow() >= mine {
                    return Ok(());
                }
                // Every ticket taken so far belongs to a commit that has finished.
                let covered = self.tickets.load(Ordering::SeqCst);
                let wal = self.wal.clone();
                let flushed =
                    tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
                        Ok(file) => file.sync_data(),
                        // No log: the last connection to close checkpointed everything into
                        // the database file and flushed it before removing the log.
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(err) => Err(err),
                    })
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|result| result);
                // Step down before announcing: a waiter that sees the new value and is still
                // not covered must find the leadership free, or it would wait for a flush
                // nobody is going to run. A failed flush is announced too, so its waiters
                // try (and fail, or succeed) themselves instead of waiting on.
                drop(leader);
                match flushed {
                    Ok(()) => self
                        .synced
                        .send_modify(|synced| *synced = (*synced).max(covered)),
                    Err(err) => {
                        self.synced.send_modify(|_| {});
                        return Err(Error::Internal(sqlx::Error::Io(std::io::Error::new(
                            err.kind(),
                            format!("flushing the catalog's write-ahead log: {err}"),
                        ))));
                    }
                }
                continue;
            }
            // A flush is running; it may or may not cover us. Wait for it and look again.
            if updates.changed().await.is_err() {
                return Err(Error::Internal(sqlx::Error::WorkerCrashed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::WalSync;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_returns_and_flushes_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("catalog.db");
        // No log yet: nothing to flush.
        let wal = Arc::new(WalSync::new(database.clone()));
        wal.sync().await.unwrap();
        std::fs::write(dir.path().join("catalog.db-wal"), b"frames").unwrap();
        for _ in 0..20 {
            let waiters: Vec<_> = (0..32)
                .map(|_| {
                    let wal = wal.clone();
                    tokio::spawn(async move { wal.sync().await })
                })
                .collect();
            for waiter in waiters {
                waiter.await.unwrap().unwrap();
            }
        }
        let synced = *wal.synced.borrow();
        assert_eq!(
            synced,
            wal.tickets.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}
