//! SQLite's read connections: a plain stack of open connections behind a semaphore.
//!
//! Not sqlx's pool: it tests every connection returned to it with a ping — a spawned task
//! and a trip to the connection's thread — before anyone may have it again, so every read
//! query cost two trips. A read connection has nothing to test: it is a local file opened
//! read-only, it never holds a transaction, and a query dropped half-way leaves it ready
//! for the next (its thread stops stepping the statement and resets it). A connection goes
//! back on the stack when its lease ends, whatever the query did.
//!
//! Beside them, a stack of `rusqlite` read connections (`direct.rs`) for the point lookups
//! every GET and HEAD makes — the node, its version, an inline blob's bytes: run in the
//! calling thread, they cost SQLite's few microseconds instead of two hand-offs to and from
//! a connection thread each (~60 µs of that thread's CPU per small GET, `bench/FINDINGS.md`).
//! A lookup holds a connection only while it runs, so the stack holds at most one per
//! thread that reads at once.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{Error, Result, direct};

/// How long a direct read waits on a locked database (as sqlx's connections,
/// `Catalog::connect`); under WAL a reader waits only while the log is being recovered.
const DIRECT_BUSY: Duration = Duration::from_secs(30);

pub(crate) struct ReadPool {
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    /// Idle direct read connections.
    direct: std::sync::Mutex<Vec<rusqlite::Connection>>,
    path: PathBuf,
    /// One permit per connection that may be open.
    permits: Semaphore,
    options: SqliteConnectOptions,
    acquire_timeout: Duration,
}

impl ReadPool {
    /// Opens one connection now, so a catalog that cannot be read fails at start.
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        max_connections: usize,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let first = options.connect().await?;
        let path = options.get_filename().to_path_buf();
        let first_direct = direct::open_read(&path, DIRECT_BUSY)?;
        Ok(Self {
            idle: std::sync::Mutex::new(vec![first]),
            direct: std::sync::Mutex::new(vec![first_direct]),
            path,
            permits: Semaphore::new(max_connections),
            options,
            acquire_timeout,
        })
    }

    /// A connection for one read: an idle one, or a new one while fewer than the maximum
    /// are open; waits (up to the acquire timeout) when all are in use.
    pub(crate) async fn acquire(&self) -> Result<ReadLease<'_>> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| Error::Unavailable(sqlx::Error::PoolTimedOut))?
            .map_err(|_| Error::Unavailable(sqlx::Error::PoolClosed))?;
        let idle = self.idle_connections().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await?,
        };
        Ok(ReadLease {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// Runs `read` on a direct read connection, here and now (`direct.rs`): for short
    /// lookups only, as it holds the calling thread until SQLite answers.
    pub(crate) fn direct<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        if self.permits.is_closed() {
            return Err(Error::Unavailable(sqlx::Error::PoolClosed));
        }
        let idle = self.direct_connections().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => direct::open_read(&self.path, DIRECT_BUSY)?,
        };
        let result = read(&conn);
        if !self.permits.is_closed() {
            self.direct_connections().push(conn);
        }
        result
    }

    fn direct_connections(&self) -> std::sync::MutexGuard<'_, Vec<rusqlite::Connection>> {
        self.direct
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses new leases and closes the idle connections (shutdown).
    pub(crate) async fn close(&self) {
        self.permits.close();
        self.direct_connections().clear();
        let idle = std::mem::take(&mut *self.idle_connections());
        for conn in idle {
            let _ = sqlx::Connection::close(conn).await;
        }
    }

    fn idle_connections(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // The stack stays consistent whatever panicked while it was held.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One read connection, back on the stack when dropped.
pub(crate) struct ReadLease<'a> {
    conn: Option<SqliteConnection>,
    pool: &'a ReadPool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for ReadLease<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl std::ops::DerefMut for ReadLease<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for ReadLease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.pool.permits.is_closed()
        {
            self.pool.idle_connections().push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    async fn pool(dir: &tempfile::TempDir, max: usize, timeout: Duration) -> ReadPool {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("c.db"))
            .create_if_missing(true);
        ReadPool::open(options, max, timeout).await.unwrap()
    }

    const MANY_ROWS: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i FROM n";

    #[tokio::test]
    async fn a_read_dropped_half_way_leaves_its_connection_ready_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, 1, Duration::from_secs(5)).await;
        {
            let mut lease = pool.acquire().await.unwrap();
            let mut rows = sqlx::query_scalar::<_, i64>(MANY_ROWS).fetch(&mut *lease);
            assert_eq!(rows.try_next().await.unwrap(), Some(1));
            // The stream and the lease end here, 99,999 rows early.
        }
        assert_eq!(
            pool.idle_connections().len(),
            1,
            "the connection went back on the stack"
        );
        let mut lease = pool.acquire().await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n)")
            .fetch_one(&mut *lease)
            .await
            .unwrap();
        assert_eq!(count, 10);
        let all: Vec<i64> = sqlx::query_scalar(MANY_ROWS)
            .fetch_all(&mut *lease)
            .await
            .unwrap();
        assert_eq!((all.len(), all.last().copied()), (100_000, Some(100_000)));
    }

    /// A direct read runs in the calling thread on a connection of its own stack, sees
    /// what was committed, and is refused once the pool is closed.
    #[tokio::test]
    async fn direct_reads_see_committed_rows_and_stop_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, 1, Duration::from_secs(5)).await;
        let write = direct::open(&dir.path().join("c.db"), Duration::from_secs(5)).unwrap();
        direct::execute(
            &write,
            "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)",
        )
        .unwrap();
        let read = |pool: &ReadPool| {
            pool.direct(|conn| {
                let (rows, _) =
                    direct::run(conn, "SELECT v FROM t", &[], |row| row.get::<_, i64>(0))?;
                Ok(rows)
            })
        };
        assert_eq!(read(&pool).unwrap(), vec![7i64]);
        direct::execute(&write, "INSERT INTO t VALUES (8)").unwrap();
        assert_eq!(read(&pool).unwrap(), vec![7i64, 8]);
        assert_eq!(pool.direct_connections().len(), 1, "one connection, reused");
        let refused = pool.direct(|conn| direct::execute(conn, "INSERT INTO t VALUES (9)"));
        assert!(refused.is_err(), "a read connection wrote");
        pool.close().await;
        assert!(matches!(
            read(&pool),
            Err(Error::Unavailable(sqlx::Error::PoolClosed))
        ));
    }

    #[tokio::test]
    async fn readers_beyond_the_maximum_wait_and_time_out_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, 2, Duration::from_millis(200)).await;
        let first = pool.acquire().await.unwrap();
        let second = pool.acquire().await.unwrap();
        assert!(matches!(
            pool.acquire().await,
            Err(Error::Unavailable(sqlx::Error::PoolTimedOut))
        ));
        drop(first);
        let mut third = pool.acquire().await.unwrap();
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *third)
            .await
            .unwrap();
        assert_eq!(one, 1);
        drop((second, third));
        pool.close().await;
        assert!(matches!(
            pool.acquire().await,
            Err(Error::Unavailable(sqlx::Error::PoolClosed))
        ));
    }
}
