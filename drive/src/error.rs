//! `drive::Error`: small, protocol-neutral. Each protocol maps it exactly once
//! (`s3api::error`, `dav::error`, the gateway's REST mapping).

use std::fmt;

/// What was not found, so S3 can answer NoSuchBucket vs NoSuchKey vs NoSuchVersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Bucket,
    Node,
    Version,
    Parent,
    Account,
    AccessKey,
    TrashEntry,
    Upload,
    AppPassword,
}

/// Why a name or key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    pub reason: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found ({0:?})")]
    NotFound(Missing),
    #[error("already exists")]
    AlreadyExists,
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("the folder is not empty")]
    NotEmpty,
    #[error("invalid name: {0}")]
    InvalidName(InvalidName),
    #[error("the key is longer than {max} bytes")]
    KeyTooLong { max: usize },
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("the requested range cannot be satisfied for a {size}-byte object")]
    InvalidRange { size: u64 },
    #[error("authentication failed")]
    Unauthenticated,
    #[error("access denied")]
    Forbidden,
    #[error("the name is taken by another account")]
    NameTaken,
    #[error("invalid tags: {0}")]
    InvalidTag(String),
    #[error("a concurrent request changed this name; try again")]
    Contention,
    #[error("the resource is locked")]
    Locked,
    #[error("too many failed logins; try again in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("the account's quota would be exceeded")]
    QuotaExceeded,
    #[error("the server's disk is full")]
    StorageFull,
    #[error("the content does not match the digest the client sent")]
    BadDigest,
    #[error("the content does not match the {} checksum the client sent", .0.as_str())]
    BadChecksum(crate::ChecksumAlgorithm),
    #[error("part {0} was not uploaded or its ETag does not match")]
    InvalidPart(u32),
    #[error("the parts are not in ascending order")]
    InvalidPartOrder,
    #[error("a part other than the last is smaller than 5 MiB")]
    EntityTooSmall,
    #[error("that version is a delete marker")]
    DeleteMarker,
    #[error("the object has {parts} part(s); that part number does not exist")]
    InvalidPartNumber { parts: u32 },
    #[error("the content is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("the body ended after {received} of {expected} bytes")]
    IncompleteBody { expected: u64, received: u64 },
    #[error("the request body could not be read: {0}")]
    BodyFailed(#[source] std::io::Error),
    #[error("service unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid_name(reason: &'static str) -> Self {
        Error::InvalidName(InvalidName { reason })
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into().into())
    }

    /// Whether this is a server-side failure (to be logged with its source chain).
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal(_) | Error::Unavailable(_))
    }
}

impl From<portico_metadata::Error> for Error {
    fn from(err: portico_metadata::Error) -> Self {
        match err {
            // A unique violation that the drive did not foresee: a concurrent request took
            // the name between our check and our insert.
            portico_metadata::Error::Conflict(_) => Error::Contention,
            portico_metadata::Error::Unavailable(source) => Error::Unavailable(Box::new(source)),
            other => Error::Internal(Box::new(other)),
        }
    }
}

impl From<portico_volume::Error> for Error {
    fn from(err: portico_volume::Error) -> Self {
        use portico_volume::{Error as V, LimitReason};
        match err {
            V::TooLarge {
                reason: LimitReason::Quota,
                ..
            } => Error::QuotaExceeded,
            V::TooLarge {
                limit,
                reason: LimitReason::MaxObjectSize,
            } => Error::TooLarge { limit },
            V::Incomplete { expected, received } => Error::IncompleteBody { expected, received },
            V::Body(source) => Error::BodyFailed(source),
            V::Io(source)
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                tracing::error!(error = %source, "the volume's disk is full: uploads fail until space is freed");
                Error::StorageFull
            }
            other => Error::Internal(Box::new(other)),
        }
    }
}
