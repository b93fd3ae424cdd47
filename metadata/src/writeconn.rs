//! SQLite's one write connection, handed from writer to writer in arrival order, and the
//! group commit of the transactions that run on it.
//!
//! Not a pool of one: sqlx's pool tests every connection returned to it with a ping — a
//! trip to the connection's thread, from a spawned task — before the next writer may have
//! it, and SQLite's writers queue for this one connection, so that trip was added to every
//! write transaction. A fair async mutex hands it straight to the next writer. A connection
//! that a failed rollback left in doubt is dropped (closing it rolls back) and the next
//! writer opens a fresh one.
//!
//! Group commit: a small write's COMMIT writes every page it touched to the log — about 16
//! pages (64 KiB, 33 `pwrite`s) for a 4 KiB PUT: node, blob, version, their indexes, usage,
//! audit — while every other writer waits. When writers are queued behind it, a
//! transaction run on the catalog's writer thread (`writer.rs`) may instead end with its
//! work still in the connection's open SQLite transaction — the group — and the next writer
//! continues inside it under a SAVEPOINT, so pages shared by consecutive writes (the same
//! index leaves, the same usage row) are written once per group. Each member then queues
//! for the connection again: the first member to get it back with the group still open
//! commits it, the others find it ended. Nobody returns before the group's COMMIT (and the
//! WAL flush after it, `walsync.rs`); a failed COMMIT fails every member. A member that
//! rolls back undoes only its own savepoint. Only writer-thread transactions leave a group
//! open: their tasks are never cancelled, so a member always comes back to end it; any
//! other transaction that joins a group ends it with COMMIT.
//!
//! The slot holds a second connection to the same file, for new versions' transactions
//! (`direct.rs`): whoever holds the slot may write on either, never both at once. A group
//! is open on one of them; a transaction that begins on the other first commits it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{Error, Result, direct};

/// Most transactions one group holds before one of them commits it.
const GROUP_MAX: usize = 64;

/// How long the direct connection waits for a lock another process holds (as sqlx's
/// connections are set to, `Catalog::connect`).
const BUSY: Duration = Duration::from_secs(30);

/// What the mutex guards: the connection and the state of its open group.
#[derive(Default)]
pub(crate) struct Slot {
    conn: Option<SqliteConnection>,
    /// The direct connection (`direct.rs`), opened when first needed.
    direct: Option<rusqlite::Connection>,
    /// The group the open transaction holds: its number and how many finished transactions
    /// in it wait for its COMMIT.
    pub(crate) open: Option<(u64, usize)>,
    /// The open group is on the direct connection.
    pub(crate) open_direct: bool,
    /// The last group number handed out.
    pub(crate) last: u64,
    /// Groups end in order: every group up to this one has ended.
    pub(crate) ended: u64,
    /// Recently ended groups whose COMMIT failed.
    failed: Vec<u64>,
}

impl Slot {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a held write connection is open")
    }

    /// Ends the open group (`number`) without its work: its members learn of the failure.
    pub(crate) fn fail_group(&mut self, number: u64) {
        self.open = None;
        self.ended = self.ended.max(number);
        if self.failed.len() >= 64 {
            self.failed.remove(0);
        }
        self.failed.push(number);
    }

    /// The open group committed.
    pub(crate) fn group_committed(&mut self, number: u64) {
        if let Some((_, members)) = self.open {
            tracing::trace!(group = number, members, "catalog write group committed");
        }
        self.open = None;
        self.ended = self.ended.max(number);
    }

    /// Drops the connections, one of them left in doubt; closing it rolls back what it
    /// held. The next holder opens new ones.
    pub(crate) fn discard_connection(&mut self) {
        self.conn = None;
        self.direct = None;
    }
}

struct Shared {
    slot: Arc<Mutex<Slot>>,
    /// Writers waiting for their turn.
    waiting: AtomicUsize,
    options: SqliteConnectOptions,
    /// The catalog's file, for the direct connection.
    path: PathBuf,
    /// How long a writer waits for its turn before giving up (as a pool's acquire would).
    wait: Duration,
    /// The catalog's writer thread's runtime (`writer.rs`).
    writer: tokio::runtime::Id,
}

pub(crate) struct WriteConnection {
    shared: Arc<Shared>,
}

/// The connection, held: by one transaction at a time.
pub(crate) struct Held {
    guard: OwnedMutexGuard<Slot>,
    shared: Arc<Shared>,
}

impl WriteConnection {
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        wait: Duration,
        writer: tokio::runtime::Id,
    ) -> Result<Self> {
        let conn = options.connect().await?;
        let path = options.get_filename().to_path_buf();
        let slot = Slot {
            conn: Some(conn),
            direct: Some(direct::open(&path, BUSY)?),
            ..Slot::default()
        };
        Ok(Self {
            shared: Arc::new(Shared {
                slot: Arc::new(Mutex::new(slot)),
                waiting: AtomicUsize::new(0),
                options,
                path,
                wait,
                writer,
            }),
        })
    }

    /// Waits for the connection (in arrival order) and holds it until the guard drops.
    pub(crate) async fn acquire(&self) -> Result<Held> {
        acquire(&self.shared).await
    }

    /// Writers waiting for their turn now.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// How many SQLite transactions have begun (each group is one), once the writers queued
    /// now are through.
    #[cfg(test)]
    pub(crate) async fn transactions_begun(&self) -> u64 {
        self.shared.slot.lock().await.last
    }

    /// Closes the connection (SQLite checkpoints the log when its last connection closes).
    pub(crate) async fn close(&self) {
        let mut slot = self.shared.slot.lock().await;
        slot.direct = None;
        let conn = slot.conn.take();
        drop(slot);
        if let Some(conn) = conn {
            let _ = conn.close().await;
        }
    }
}

async fn acquire(shared: &Arc<Shared>) -> Result<Held> {
    struct Waiting<'a>(&'a AtomicUsize);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    shared.waiting.fetch_add(1, Ordering::SeqCst);
    let waiting = Waiting(&shared.waiting);
    let mut guard = tokio::time::timeout(shared.wait, shared.slot.clone().lock_owned())
        .await
        .map_err(|_| Error::Unavailable(sqlx::Error::PoolTimedOut))?;
    drop(waiting);
    if guard.conn.is_none() {
        guard.conn = Some(shared.options.connect().await?);
    }
    Ok(Held {
        guard,
        shared: shared.clone(),
    })
}

impl Held {
    pub(crate) fn slot(&mut self) -> &mut Slot {
        &mut self.guard
    }

    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.guard.conn()
    }

    /// The direct connection (`direct.rs`), opened if a failure dropped it.
    pub(crate) fn direct(&mut self) -> Result<&rusqlite::Connection> {
        if self.guard.direct.is_none() {
            self.guard.direct = Some(direct::open(&self.shared.path, BUSY)?);
        }
        Ok(self.guard.direct.as_ref().expect("opened above"))
    }

    /// Runs `sql` on the direct connection or on sqlx's.
    pub(crate) async fn execute(&mut self, on_direct: bool, sql: &'static str) -> Result<()> {
        if on_direct {
            direct::execute(self.direct()?, sql)
        } else {
            sqlx::raw_sql(sql).execute(self.conn()).await?;
            Ok(())
        }
    }

    /// Whether the caller runs on the writer thread (`writer.rs`).
    pub(crate) fn on_writer(&self) -> bool {
        tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.id() == self.shared.writer)
    }

    /// Whether a transaction ending now may leave its group open for the next writer:
    /// someone is waiting, the group has room, and the transaction runs on the writer
    /// thread (so it is never cancelled before it has seen its group end).
    pub(crate) fn may_leave_open(&self) -> bool {
        self.shared.waiting.load(Ordering::SeqCst) > 0
            && self
                .guard
                .open
                .is_none_or(|(_, members)| members + 1 < GROUP_MAX)
            && self.on_writer()
    }

    /// Commits the open group, if any, on the connection it is on. Failed, the group is
    /// rolled back and its members learn of it.
    pub(crate) async fn commit_group(&mut self) -> Result<()> {
        let Some((number, _)) = self.guard.open else {
            return Ok(());
        };
        let on_direct = self.guard.open_direct;
        match self.execute(on_direct, "COMMIT").await {
            Ok(()) => {
                self.guard.group_committed(number);
                Ok(())
            }
            Err(err) => {
                self.guard.fail_group(number);
                if self.execute(on_direct, "ROLLBACK").await.is_err() {
                    self.guard.discard_connection();
                }
                Err(err)
            }
        }
    }

    /// Lets go of the connection and waits for group `number` to end: queues for the
    /// connection again, and commits the group if it is still open by then.
    pub(crate) async fn await_group(self, number: u64) -> Result<()> {
        let shared = self.shared.clone();
        drop(self);
        let mut held = acquire(&shared).await?;
        let slot = held.slot();
        if slot.ended >= number {
            return if slot.failed.contains(&number) {
                Err(group_failed())
            } else {
                Ok(())
            };
        }
        debug_assert_eq!(slot.open.map(|(open, _)| open), Some(number));
        held.commit_group().await
    }
}

fn group_failed() -> Error {
    Error::Internal(sqlx::Error::Protocol(
        "the catalog could not commit a group of writes this one was part of".into(),
    ))
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    /// A group's savepoint journal stays in memory (`.cargo/config.toml`): with SQLite's
    /// default of 64 KiB, most groups of small writes created a temporary file.
    #[tokio::test]
    async fn savepoint_journals_stay_in_memory_up_to_4_mib() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert!(
            options.iter().any(|o| o == "STMTJRNL_SPILL=4194304"),
            "SQLite was built without LIBSQLITE3_FLAGS from .cargo/config.toml: {options:?}"
        );
    }
}
