//! `metadata::Error`: driver errors classified into what callers can act on.

/// Catalog errors. Callers match on the kind; the driver error stays as the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A unique constraint refused the write (name taken, key exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The pool or database is not answering (timeout, closed, busy).
    #[error("catalog unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A configuration problem, such as an unsupported URL.
    #[error("{0}")]
    Invalid(String),
    /// A migration on disk differs from the one that was applied.
    #[error(
        "migration {version} ({name}) was changed after it was applied; migrations are append-only"
    )]
    MigrationChanged { version: i64, name: String },
    #[error("catalog error: {0}")]
    Internal(#[source] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Error::Unavailable(err),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(err),
            _ => Error::Internal(err),
        }
    }
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6), PostgreSQL serialization failure and deadlock:
/// transient, worth a retry by the client.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "40001" | "40P01" | "57P03"))
}
