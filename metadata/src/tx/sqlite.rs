//! A SQLite write transaction run by hand rather than through sqlx's `Transaction`, so that
//! its `BEGIN IMMEDIATE` and `COMMIT` can travel with the first and last statement batch
//! (see `put.rs`) instead of each making a trip of its own to the connection's thread
//! while the write lock is held.

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection};

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent yet: no lock taken.
    NotBegun,
    /// `BEGIN IMMEDIATE` sent (or on its way in a batch): ends in COMMIT or ROLLBACK.
    Open,
    /// Committed or rolled back.
    Done,
}

pub(super) struct SqliteTx {
    /// `Some` until dropped (a rollback on drop takes it to finish the work).
    conn: Option<PoolConnection<Sqlite>>,
    state: State,
}

impl SqliteTx {
    pub(super) fn new(conn: PoolConnection<Sqlite>) -> Self {
        Self {
            conn: Some(conn),
            state: State::NotBegun,
        }
    }

    fn connection(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("the connection is taken only on drop")
    }

    /// The connection, inside the transaction (begun here if nothing was sent yet).
    pub(super) async fn conn(&mut self) -> Result<&mut SqliteConnection> {
        if self.state == State::NotBegun {
            // Open before sending: if the BEGIN's answer is lost, a rollback still follows.
            self.state = State::Open;
            sqlx::query("BEGIN IMMEDIATE")
                .execute(self.connection())
                .await?;
        }
        Ok(self.connection())
    }

    /// For a batch about to run: whether it must start with `BEGIN IMMEDIATE` itself, and
    /// the connection to run it on.
    pub(super) fn batch_conn(&mut self) -> (bool, &mut SqliteConnection) {
        let begin = self.state == State::NotBegun;
        self.state = State::Open;
        (begin, self.connection())
    }

    /// A batch ending in `COMMIT` succeeded.
    pub(super) fn committed_by_batch(&mut self) {
        self.state = State::Done;
    }

    /// Commits; whether anything had been begun (and so may need flushing).
    pub(super) async fn commit(&mut self) -> Result<bool> {
        match self.state {
            State::NotBegun => {
                self.state = State::Done;
                Ok(false)
            }
            State::Open => {
                sqlx::query("COMMIT").execute(self.connection()).await?;
                self.state = State::Done;
                Ok(true)
            }
            State::Done => Ok(true),
        }
    }

    pub(super) async fn rollback(&mut self) -> Result<()> {
        if self.state == State::Open {
            sqlx::query("ROLLBACK").execute(self.connection()).await?;
        }
        self.state = State::Done;
        Ok(())
    }
}

impl Drop for SqliteTx {
    /// An open transaction dropped (an error, or the request went away) is rolled back
    /// before its connection serves anyone else: the connection goes back to the pool only
    /// once the ROLLBACK has run. Without a runtime to run it on, the connection is closed
    /// instead, which rolls back too.
    fn drop(&mut self) {
        if self.state != State::Open {
            return;
        }
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                        tracing::warn!(%err, "rollback of an abandoned transaction failed; closing its connection");
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}
