//! The domain core: every operation a user can do on a drive — put, get, list, mkdir,
//! move, copy, delete to trash, restore, purge, versions, quota, accounts and keys — and
//! the one access check (`Drive::authorize`) that every protocol goes through.
//!
//! Both protocol crates are thin translators onto this API, so a rule written here holds
//! for S3, WebDAV and the REST API alike: one history of versions, one quota, one trash,
//! one namespace (S3 buckets are the top-level folders of the account's tree).
//!
//! This crate never sees HTTP types or protocol XML, and never writes SQL or touches files
//! itself: rows go through `portico-metadata`, bytes through `portico-volume`.

mod acl;
mod auth;
mod buckets;
mod checksum;
mod conditions;
mod error;
mod fsck;
mod listing;
mod locks;
mod logins;
mod model;
mod multipart;
mod names;
mod props;
mod read;
mod trash;
mod tree;
mod versions;
mod write;

use std::sync::Arc;

use portico_metadata::{Catalog, NewAudit};

use portico_volume::Volume;

pub use acl::{Audience, Grant as AclGrant, Grantee, Permission};
pub use auth::{
    AccessKeyInfo, AccountInfo, NewAccessKey, NewAccountRequest, ServerKey, generate_password,
    validate_account_name,
};
pub use buckets::{BucketSettings, CorsRule, validate_tags};
pub use checksum::{Checksum, ChecksumAlgorithm, ChecksumType, ExpectedChecksum};
pub use conditions::{ByteRange, EtagCondition, Preconditions};
pub use error::{Error, InvalidName, Missing, Result};
pub use fsck::FsckReport;
pub use listing::{ListPage, ListRequest};
pub use locks::{LockInfo, LockRequest, MAX_LOCK_TIMEOUT};
pub use logins::{
    AppPasswordInfo, FAILURE_WINDOW, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS,
    NewAppPassword,
};
pub use model::{
    AccountId, ClientAddr, Ctx, EMPTY_ETAG, Entry, ObjectAttributes, Principal, Protocol,
    RequestId, Timestamp, TrashEntry, Usage, VersionInfo,
};
pub use multipart::{
    CompletedPart, CompletedUpload, MultipartUpload, NewUpload, PartInfo, UploadPage, UploadedPart,
};
pub use names::{
    Kind, MAX_KEY_BYTES, NodePath, RESERVED_BUCKET_NAMES, is_valid_bucket_name,
    validate_bucket_name,
};
pub use portico_metadata::{BackendKind, ConnectOptions, redact_url as redact_database_url};
pub use portico_volume::BlobStream;
pub use props::{DeadProp, MAX_DEAD_PROP_XML, PropChange};
pub use read::{Download, ReadRequest};
pub use tree::Transfer;
pub use versions::{DeletedVersion, NULL_VERSION, VersionEntry, VersionPage};
pub use write::{MkdirOptions, Parents, PutOptions};

/// Limits and behaviour the drive enforces.
#[derive(Debug, Clone)]
pub struct DriveConfig {
    /// Largest single object or file, in bytes (S3's own limit by default: 5 TiB).
    pub max_object_size: u64,
    /// Files and objects up to this size keep their bytes in the catalog row of their blob
    /// instead of a file on the volume (0: never). Saves an inode and two fsyncs per small
    /// write; multipart parts are always files.
    pub inline_max_bytes: u64,
}

/// The default for [`DriveConfig::inline_max_bytes`].
pub const DEFAULT_INLINE_MAX_BYTES: u64 = 32 << 10;

impl Default for DriveConfig {
    fn default() -> Self {
        Self {
            max_object_size: 5 << 40,
            inline_max_bytes: DEFAULT_INLINE_MAX_BYTES,
        }
    }
}

/// The drive: catalog + volume + credentials. Cheap to clone.
#[derive(Clone)]
pub struct Drive {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    volume: Volume,
    server_key: ServerKey,
    credentials: auth::Credentials,
    own_buckets: acl::OwnBuckets,
    throttle: logins::Throttle,
    config: DriveConfig,
}

impl std::fmt::Debug for Drive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drive")
            .field("catalog", &self.inner.catalog)
            .field("volume", &self.inner.volume)
            .finish()
    }
}

/// What an action wants to do, for [`Drive::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Delete,
}

/// Permission to act on one account's tree, returned by [`Drive::authorize`]. Only the
/// drive can make one, so no operation can reach the catalog without the check.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    account_id: i64,
}

impl Drive {
    /// Opens the catalog at `database_url` (migrating it) and the volume at `volume_dir`.
    pub async fn connect(
        database_url: &str,
        connect: &ConnectOptions,
        volume_dir: &std::path::Path,
        server_key: ServerKey,
        config: DriveConfig,
    ) -> Result<Self> {
        let catalog = Catalog::connect(database_url, connect)
            .await
            .map_err(|err| match err {
                portico_metadata::Error::Invalid(message) => Error::InvalidInput {
                    field: "database URL",
                    reason: message,
                },
                other => other.into(),
            })?;
        let volume = Volume::open(volume_dir).map_err(|err| Error::Internal(Box::new(err)))?;
        Ok(Self::from_parts(catalog, volume, server_key, config))
    }

    pub fn from_parts(
        catalog: Catalog,
        volume: Volume,
        server_key: ServerKey,
        config: DriveConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                volume,
                server_key,
                credentials: auth::Credentials::new(),
                own_buckets: acl::OwnBuckets::default(),
                throttle: logins::Throttle::default(),
                config,
            }),
        }
    }

    pub fn backend(&self) -> BackendKind {
        self.inner.catalog.kind()
    }

    /// Readiness: the catalog answers.
    pub async fn ready(&self) -> Result<()> {
        Ok(self.inner.catalog.ping().await?)
    }

    /// Closes the catalog's connections (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.inner.catalog.close().await;
    }

    /// The one access check. Every operation calls it before touching anything, whatever
    /// protocol it came from. A principal acting on its own tree may do anything; acting on
    /// another account's tree (`ctx.tree`, e.g. a bucket another account made public or
    /// shared by ACL) it needs a live share on the path or one of its folders whose
    /// audience includes it and whose permission covers the action.
    pub async fn authorize(&self, ctx: &Ctx, path: &NodePath, action: Action) -> Result<Grant> {
        let principal = &ctx.principal;
        let owner = ctx.tree.unwrap_or(principal.account_id);
        if owner == principal.account_id && !principal.is_anonymous() {
            return Ok(Grant {
                account_id: owner.0,
            });
        }
        // The path's folders and the path itself (as a file): a share on any covers it.
        let mut keys: Vec<String> = (1..=path.depth())
            .map(|depth| NodePath::from_key(&path.segments()[..depth].join("/")).folder_key())
            .collect();
        if !path.is_root() {
            keys.push(path.file_key());
        }
        let shares = self
            .inner
            .catalog
            .shares_covering(owner.0, &keys, Timestamp::now().nanos())
            .await?;
        let admits = shares.iter().any(|share| {
            let audience = match share.audience.as_str() {
                "public" => true,
                "authenticated" => !principal.is_anonymous(),
                "user" => {
                    !principal.is_anonymous() && share.grantee_id == Some(principal.account_id.0)
                }
                _ => false,
            };
            let permitted = match action {
                Action::Read => matches!(share.permission.as_str(), "read" | "write"),
                Action::Write | Action::Delete => share.permission == "write",
            };
            audience && permitted
        });
        if admits {
            Ok(Grant {
                account_id: owner.0,
            })
        } else {
            Err(Error::Forbidden)
        }
    }

    pub(crate) fn audit(&self, ctx: &Ctx, grant: Grant, action: &str, key: &str) -> NewAudit {
        NewAudit {
            account_id: Some(grant.account_id),
            actor_id: Some(ctx.principal.account_id.0),
            protocol: ctx.protocol.as_str().into(),
            action: action.into(),
            key: Some(key.to_owned()),
            detail: None,
            request_id: Some(ctx.request_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
