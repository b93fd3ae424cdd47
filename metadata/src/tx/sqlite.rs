//! A SQLite write transaction run by hand rather than through sqlx's `Transaction`, so that
//! its first and last statements can travel with its statement batches (see `put.rs`)
//! instead of each making a trip of its own to the connection's thread while every other
//! writer waits, and so that it can share one SQLite transaction with the writers queued
//! behind it (group commit, `writeconn.rs`): it begins with `BEGIN IMMEDIATE`, or with a
//! `SAVEPOINT` inside a group left open, and ends with `COMMIT`, or — joining or leaving a
//! group — with `RELEASE` or nothing, then waits for the group's COMMIT.
//!
//! A new version's transaction (`Catalog::begin_put`) run on the writer thread runs on the
//! direct connection instead (`direct.rs`): its statements run there and then, with no
//! batching needed, and the same begin, end and group rules apply.

use sqlx::SqliteConnection;

use crate::writeconn::Held;
use crate::{Error, Result};

const SAVEPOINT: &str = "SAVEPOINT portico_tx";
const RELEASE: &str = "RELEASE portico_tx";
const ROLLBACK_TO: &str = "ROLLBACK TO portico_tx; RELEASE portico_tx";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent yet: no lock taken.
    NotBegun,
    /// Begun (or its first statement on its way in a batch), in group `group`; `first`
    /// when it began the SQLite transaction itself, else it is inside a savepoint;
    /// `direct` on the direct connection.
    Open {
        group: u64,
        first: bool,
        direct: bool,
    },
    /// Its work is in group `group`, left open for the next writer; done once that group
    /// has committed.
    Left { group: u64 },
    /// Committed or rolled back.
    Done,
}

/// How an open transaction ends, decided just before its last statement goes out.
#[derive(Debug, Clone, Copy)]
pub(super) struct End {
    /// The statement that ends it, if any (`COMMIT`, or `RELEASE` of its savepoint).
    pub(super) sql: Option<&'static str>,
    /// It leaves its group open: the next writer continues it.
    leave: bool,
}

pub(super) struct SqliteTx {
    /// The write connection, held until dropped (a rollback on drop takes it to finish
    /// the work).
    held: Option<Held>,
    state: State,
    /// It may run on the direct connection (`Catalog::begin_put`).
    may_direct: bool,
}

impl SqliteTx {
    pub(super) fn new(held: Held, may_direct: bool) -> Self {
        Self {
            held: Some(held),
            state: State::NotBegun,
            may_direct,
        }
    }

    fn held(&mut self) -> &mut Held {
        self.held
            .as_mut()
            .expect("the connection is let go only at the end")
    }

    fn connection(&mut self) -> &mut SqliteConnection {
        self.held().conn()
    }

    /// Begins the transaction, when nothing was sent yet, on the direct connection or on
    /// sqlx's: with `BEGIN IMMEDIATE`, or a savepoint inside the group the connection holds
    /// open (a group open on the other connection is committed first). On the direct
    /// connection the statement runs here; for sqlx's it is returned, to go with the first
    /// batch, and the transaction counts as open: even if the statement's answer is lost,
    /// a rollback follows.
    pub(super) async fn begin(&mut self, on_direct: bool) -> Result<Option<&'static str>> {
        if self.state != State::NotBegun {
            return Ok(None);
        }
        let held = self.held();
        if held.slot().open.is_some() && held.slot().open_direct != on_direct {
            held.commit_group().await?;
        }
        let slot = held.slot();
        let (group, first) = match slot.open {
            Some((group, _)) => (group, false),
            None => (slot.last + 1, true),
        };
        let sql = if first { "BEGIN IMMEDIATE" } else { SAVEPOINT };
        if on_direct {
            held.execute(true, sql).await?;
        }
        let slot = held.slot();
        if first {
            slot.last = group;
        }
        self.state = State::Open {
            group,
            first,
            direct: on_direct,
        };
        Ok((!on_direct).then_some(sql))
    }

    /// The connection, inside the transaction (begun here if nothing was sent yet).
    pub(super) async fn conn(&mut self) -> Result<&mut SqliteConnection> {
        if let State::Open { direct: true, .. } = self.state {
            return Err(Error::Internal(sqlx::Error::Protocol(
                "a statement of a new version's transaction (Catalog::begin_put) is not one the direct connection runs".into(),
            )));
        }
        if let Some(begin) = self.begin(false).await? {
            sqlx::query(begin).execute(self.connection()).await?;
        }
        Ok(self.connection())
    }

    /// The connection, for a batch whose statements are already inside the transaction.
    pub(super) fn batch_conn(&mut self) -> &mut SqliteConnection {
        self.connection()
    }

    /// Whether this transaction runs on the direct connection (`direct.rs`); begun there
    /// if nothing was sent yet and it may: a new version's transaction on the writer
    /// thread.
    pub(super) async fn runs_direct(&mut self) -> Result<bool> {
        match self.state {
            State::NotBegun
                if self.may_direct && self.held.as_ref().is_some_and(Held::on_writer) =>
            {
                self.begin(true).await?;
                Ok(true)
            }
            State::Open { direct, .. } => Ok(direct),
            _ => Ok(false),
        }
    }

    /// The direct connection, inside the transaction (`runs_direct` said so).
    pub(super) fn direct_conn(&mut self) -> Result<&rusqlite::Connection> {
        self.held().direct()
    }

    /// How an open transaction ends: leaving its group open when writers wait behind it
    /// (see `writeconn.rs`), else committing it.
    pub(super) fn end(&mut self) -> End {
        let State::Open { first, .. } = self.state else {
            return End {
                sql: None,
                leave: false,
            };
        };
        let leave = self.held().may_leave_open();
        let sql = match (leave, first) {
            (true, true) => None,
            (true, false) => Some(RELEASE),
            (false, _) => Some("COMMIT"),
        };
        End { sql, leave }
    }

    /// `end`'s statement (if any) ran: the transaction is done, or left in its group.
    pub(super) fn ended(&mut self, end: End) {
        let State::Open { group, direct, .. } = self.state else {
            return;
        };
        let slot = self.held().slot();
        if end.leave {
            let members = slot.open.map_or(0, |(_, members)| members);
            slot.open = Some((group, members + 1));
            slot.open_direct = direct;
            self.state = State::Left { group };
        } else {
            slot.group_committed(group);
            self.state = State::Done;
        }
    }

    /// Ends an open transaction: commits it, or leaves it in its group (`end`).
    pub(super) async fn end_open(&mut self) -> Result<()> {
        if let State::Open { direct, .. } = self.state {
            let end = self.end();
            if let Some(sql) = end.sql {
                self.held().execute(direct, sql).await?;
            }
            self.ended(end);
        }
        Ok(())
    }

    /// Commits; whether anything had been begun (and so may need flushing). A transaction
    /// that left its group open returns once the group has committed.
    pub(super) async fn commit(&mut self) -> Result<bool> {
        if self.state == State::NotBegun {
            self.state = State::Done;
            return Ok(false);
        }
        self.end_open().await?;
        if let State::Left { group } = self.state {
            self.state = State::Done;
            let held = self
                .held
                .take()
                .expect("the connection is let go only at the end");
            held.await_group(group).await?;
        }
        Ok(true)
    }

    pub(super) async fn rollback(&mut self) -> Result<()> {
        let state = std::mem::replace(&mut self.state, State::Done);
        if let Some(held) = self.held.as_mut() {
            roll_back(held, state).await?;
        }
        Ok(())
    }
}

/// Undoes an open transaction's work: all of the SQLite transaction if it began it, its
/// savepoint if it joined a group. If the savepoint cannot be rolled back (an error that
/// made SQLite abandon the whole transaction), the group is lost: it is rolled back whole
/// and its members learn of the failure.
async fn roll_back(held: &mut Held, state: State) -> Result<()> {
    let State::Open {
        group,
        first,
        direct,
    } = state
    else {
        return Ok(());
    };
    if first {
        return match held.execute(direct, "ROLLBACK").await {
            Ok(()) => Ok(()),
            Err(err) => {
                held.slot().discard_connection();
                Err(err)
            }
        };
    }
    match held.execute(direct, ROLLBACK_TO).await {
        Ok(()) => Ok(()),
        Err(err) => {
            held.slot().fail_group(group);
            if held.execute(direct, "ROLLBACK").await.is_err() {
                held.slot().discard_connection();
            }
            Err(err)
        }
    }
}

impl Drop for SqliteTx {
    /// An open transaction dropped (an error, or the request went away) is rolled back
    /// before its connection serves anyone else: the next writer gets it only once the
    /// rollback has run. Without a runtime to run it on, the connection is closed instead,
    /// which rolls back everything it held (its group too, whose members then fail).
    fn drop(&mut self) {
        let state = self.state;
        if let State::Left { group } = state
            && let Some(held) = self.held.take()
        {
            // Its work is in a group it left open (an error after its last batch): the
            // group still needs a member to come back and end it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(held.await_group(group));
            }
            return;
        }
        let State::Open { group, .. } = state else {
            return;
        };
        let Some(mut held) = self.held.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = roll_back(&mut held, state).await {
                        tracing::warn!(%err, "rollback of an abandoned transaction failed; its connection was closed");
                    }
                });
            }
            Err(_) => {
                let slot = held.slot();
                slot.fail_group(group);
                slot.discard_connection();
            }
        }
    }
}
