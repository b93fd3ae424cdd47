//! SQLite's read connections: a plain stack of open connections behind a semaphore.
//!
//! Not sqlx's pool: it tests every connection returned to it with a ping — a spawned task
//! and a trip to the connection's thread — before anyone may have it again, so every read
//! query cost two trips. A read connection has nothing to test: it is a local file opened
//! read-only, it never holds a transaction, and a query dropped half-way leaves it ready
//! for the next (its thread stops stepping the statement and resets it). A connection goes
//! back on the stack when its lease ends, whatever the query did.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{Error, Result};

pub(crate) struct ReadPool {
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
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
        Ok(Self {
            idle: std::sync::Mutex::new(vec![first]),
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

    /// Refuses new leases and closes the idle connections (shutdown).
    pub(crate) async fn close(&self) {
        self.permits.close();
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
