//! The drive's nouns, as both protocols see them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_metadata::{NodeRow, VersionRow};
use serde::{Deserialize, Serialize};

use crate::names::{Kind, NodePath};

/// An account's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

/// Nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(portico_metadata::now_nanos())
    }

    pub fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    pub fn whole_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_nanos(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_nanos(self.0.unsigned_abs())
        }
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_nanos()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}

/// Which front door a request came through (for audit rows and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    S3,
    WebDav,
    Api,
    Cli,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::S3 => "s3",
            Protocol::WebDav => "webdav",
            Protocol::Api => "api",
            Protocol::Cli => "cli",
        }
    }
}

/// An authenticated account acting on the drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: AccountId,
    pub name: String,
    pub is_admin: bool,
    /// The stable S3 canonical owner id.
    pub owner_id: String,
}

impl Principal {
    /// Someone who sent no credentials: may only read what is shared publicly.
    pub fn anonymous() -> Self {
        Self {
            account_id: AccountId(0),
            name: String::new(),
            is_admin: false,
            owner_id: String::new(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.account_id.0 == 0
    }
}

/// The id of one HTTP request, put into request extensions by the gateway and read by
/// the protocol crates for logs, audit rows and error bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The address a request came from (a request extension set by the gateway): failed
/// logins are throttled per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Who asks, through which protocol, under which request id: every drive operation gets
/// one, so authorization and audit rows cannot be skipped.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Principal,
    pub protocol: Protocol,
    pub request_id: String,
    /// The account whose tree the request addresses, when not the principal's own (an S3
    /// bucket of another account); access then needs a share (see `Drive::authorize`).
    pub tree: Option<AccountId>,
    /// WebDAV lock tokens the request submitted (its `If` header): a lock the principal
    /// took stops none of its writes when its token is here.
    pub lock_tokens: Vec<String>,
}

impl Ctx {
    pub fn new(principal: Principal, protocol: Protocol, request_id: impl Into<String>) -> Self {
        Self {
            principal,
            protocol,
            request_id: request_id.into(),
            tree: None,
            lock_tokens: Vec::new(),
        }
    }
}

/// Per-version attributes beyond size and type: S3 user metadata and the standard
/// content headers, stored as JSON in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttributes {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The object's checksum (S3 flexible checksums), verified when it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<crate::Checksum>,
    /// Object tags (S3 tagging).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl ObjectAttributes {
    pub(crate) fn from_json(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// What a listing or a stat shows of one node.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: NodePath,
    pub kind: Kind,
    /// Size of the current content (0 for folders without a marker object).
    pub size: u64,
    /// The ETag: hex MD5 of single-part content, `md5-of-md5s-N` for multipart.
    pub etag: Option<String>,
    pub content_type: Option<String>,
    /// The one modification time every protocol shows.
    pub modified: Timestamp,
    pub created: Timestamp,
    /// Folders S3 created implicitly; they are not S3 objects themselves.
    pub implicit: bool,
    /// Whether a version (file content or folder marker) exists.
    pub has_content: bool,
    pub(crate) node_id: i64,
    pub(crate) version_row: Option<i64>,
}

/// The ETag of empty content.
pub const EMPTY_ETAG: &str = "d41d8cd98f00b204e9800998ecf8427e";

impl Entry {
    pub(crate) fn from_row(row: &NodeRow) -> Self {
        Self::with_strings(row, row.etag.clone(), row.content_type.clone())
    }

    /// [`Entry::from_row`] keeping the row's strings (listings: one entry per row).
    pub(crate) fn from_owned_row(mut row: NodeRow) -> Self {
        let etag = row.etag.take();
        let content_type = row.content_type.take();
        Self::with_strings(&row, etag, content_type)
    }

    fn with_strings(row: &NodeRow, etag: Option<String>, content_type: Option<String>) -> Self {
        let kind = Kind::from_catalog(row.kind);
        let etag = etag.or_else(|| (kind == Kind::Folder).then(|| EMPTY_ETAG.to_owned()));
        Self {
            path: NodePath::from_key(&row.key),
            kind,
            size: u64::try_from(row.size).unwrap_or(0),
            etag,
            content_type,
            modified: Timestamp::from_nanos(row.mtime),
            created: Timestamp::from_nanos(row.created_at),
            implicit: row.implicit,
            has_content: row.version_row.is_some(),
            node_id: row.id,
            version_row: row.version_row,
        }
    }

    pub fn is_folder(&self) -> bool {
        self.kind == Kind::Folder
    }

    /// The node's catalog key (`a/b` or `a/b/`).
    pub fn key(&self) -> String {
        self.path.key(self.kind)
    }
}

/// One version of an object, as S3 and the version history show it.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version_id: String,
    pub size: u64,
    pub etag: String,
    pub content_type: Option<String>,
    pub attributes: ObjectAttributes,
    pub modified: Timestamp,
    pub created: Timestamp,
    pub is_current: bool,
    /// How many parts a multipart object has (`None`: a single-part object).
    pub parts_count: Option<u32>,
    pub(crate) locator: Option<String>,
    /// The blob whose bytes these are, and whether they sit in its catalog row.
    pub(crate) blob: Option<(i64, bool)>,
    pub(crate) row: Option<i64>,
}

impl VersionInfo {
    pub(crate) fn from_row(row: &VersionRow, current: bool) -> Self {
        Self {
            version_id: row.version_id.clone(),
            size: u64::try_from(row.size).unwrap_or(0),
            etag: row.etag.clone(),
            content_type: row.content_type.clone(),
            attributes: ObjectAttributes::from_json(&row.attributes),
            modified: Timestamp::from_nanos(row.mtime),
            created: Timestamp::from_nanos(row.created_at),
            is_current: current,
            parts_count: row.parts_count.and_then(|n| u32::try_from(n).ok()),
            locator: row.locator.clone(),
            blob: row.blob_id.map(|id| (id, row.inline)),
            row: Some(row.id),
        }
    }

    /// The stored checksum, if any.
    pub fn checksum(&self) -> Option<&crate::Checksum> {
        self.attributes.checksum.as_ref()
    }
}

/// Storage used by an account and its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub quota_bytes: Option<u64>,
}

impl Usage {
    pub fn available(&self) -> Option<u64> {
        self.quota_bytes
            .map(|quota| quota.saturating_sub(self.used_bytes))
    }
}

/// One trashed subtree.
#[derive(Debug, Clone)]
pub struct TrashEntry {
    pub id: i64,
    pub path: NodePath,
    pub kind: Kind,
    pub size: u64,
    pub trashed_at: Timestamp,
}
