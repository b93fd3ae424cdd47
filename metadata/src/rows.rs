//! Row types, and the column lists that select them (one list per row type, so a query
//! and its row type cannot drift apart).

/// Selects from `accounts` (not aliased): usage is the row's count plus its shards'.
macro_rules! account_columns {
    () => {
        "id, name, email, password_hash, is_admin, disabled, quota_bytes,
         CAST(used_bytes + COALESCE((SELECT SUM(s.used) FROM usage_shards s WHERE s.account_id = accounts.id), 0) AS BIGINT) AS used_bytes,
         owner_id, created_at, credential_epoch"
    };
}

macro_rules! access_key_columns {
    () => {
        "access_key_id, account_id, secret_sealed, description, created_at, last_used_at, revoked_at"
    };
}

macro_rules! node_columns {
    () => {
        "id, account_id, parent_id, kind, name, key, implicit, version_row, size, etag, content_type, mtime, created_at, trashed_at, trash_root_id"
    };
}

/// Selects from `versions v LEFT JOIN blobs b`.
macro_rules! version_columns {
    () => {
        "v.id, v.node_id, v.version_id, v.blob_id, b.locator, (b.data IS NOT NULL) AS inline, v.size, v.etag, v.blake3, v.content_type, v.attributes, v.parts_count, v.is_delete_marker, v.mtime, v.created_at, v.created_by"
    };
}

/// The INSERT heads of the rows a write adds, shared by the single-statement methods and
/// the batched new version (`tx/put.rs`), so the two cannot name different columns.
macro_rules! insert_node {
    () => {
        "INSERT INTO nodes (account_id, parent_id, kind, name, key, implicit, mtime, created_at)"
    };
}
macro_rules! insert_blob {
    () => {
        "INSERT INTO blobs (locator, size, md5, blake3, refcount, created_at, data)"
    };
}
macro_rules! insert_version {
    () => {
        "INSERT INTO versions (node_id, version_id, blob_id, size, etag, blake3, content_type, attributes, mtime, created_at, created_by, parts_count)"
    };
}
/// Binds a [`NewNode`]'s values in `insert_node!()`'s column order, with its `mtime` and
/// `created_at` given (a node made with its current version takes the version's mtime).
macro_rules! bind_new_node {
    ($query:expr, $node:expr, $mtime:expr, $created_at:expr) => {
        $query
            .bind($node.account_id)
            .bind($node.parent_id)
            .bind($node.kind)
            .bind(&$node.name)
            .bind(&$node.key)
            .bind($node.implicit)
            .bind($mtime)
            .bind($created_at)
    };
}
/// Binds a [`NewVersion`]'s values in `insert_version!()`'s column order.
macro_rules! bind_new_version {
    ($query:expr, $version:expr, $created_at:expr) => {
        $query
            .bind($version.node_id)
            .bind(&$version.version_id)
            .bind($version.blob_id)
            .bind($version.size)
            .bind(&$version.etag)
            .bind(&$version.blake3)
            .bind(&$version.content_type)
            .bind(&$version.attributes)
            .bind($version.mtime)
            .bind($created_at)
            .bind($version.created_by)
            .bind($version.parts_count)
    };
}
macro_rules! insert_audit {
    () => {
        "INSERT INTO audit_log (at, account_id, actor_id, protocol, action, key, detail, request_id)"
    };
}

/// What `INSERT INTO versions … RETURNING` returns: a whole [`VersionRow`], its blob's
/// locator included.
macro_rules! version_returning {
    () => {
        "id, node_id, version_id, blob_id,
         (SELECT b.locator FROM blobs b WHERE b.id = versions.blob_id) AS locator,
         EXISTS (SELECT 1 FROM blobs b WHERE b.id = versions.blob_id AND b.data IS NOT NULL) AS inline,
         size, etag, blake3, content_type, attributes, parts_count, is_delete_marker, mtime, created_at, created_by"
    };
}

macro_rules! upload_columns {
    () => {
        "upload_id, account_id, key, attributes, initiated_by, created_at"
    };
}

/// Selects from `multipart_parts p LEFT JOIN blobs b`.
macro_rules! part_columns {
    () => {
        "p.part_number, p.blob_id, b.locator, p.size, p.etag, p.checksums, p.created_at"
    };
}

/// Selects from `version_parts p LEFT JOIN blobs b`.
macro_rules! segment_columns {
    () => {
        "p.part_index, p.blob_id, b.locator, p.size, p.etag"
    };
}

/// An account: one person or service, with one drive tree.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
    pub owner_id: String,
    pub created_at: i64,
    pub credential_epoch: i64,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub is_admin: bool,
    pub quota_bytes: Option<i64>,
    pub owner_id: String,
}

/// An S3 access key; the secret is sealed under the server key.
#[derive(Clone, sqlx::FromRow)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub account_id: i64,
    pub secret_sealed: Vec<u8>,
    pub description: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for AccessKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRow")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("secret_sealed", &"<sealed>")
            .finish_non_exhaustive()
    }
}

/// A live access key's sealed secret and who a request signed with it acts as: only the
/// account columns that takes (no password hash, no usage sum on every request).
#[derive(Clone, sqlx::FromRow)]
pub struct KeyWithAccount {
    pub secret_sealed: Vec<u8>,
    pub account_id: i64,
    pub account_name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub owner_id: String,
}

impl std::fmt::Debug for KeyWithAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWithAccount")
            .field("account", &self.account_name)
            .finish_non_exhaustive()
    }
}

/// `nodes.kind` values.
pub const KIND_FILE: i64 = 0;
pub const KIND_FOLDER: i64 = 1;

/// A folder or file. The current version's size, ETag, type and mtime are copied here so
/// listings need no join.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub id: i64,
    pub account_id: i64,
    pub parent_id: Option<i64>,
    pub kind: i64,
    pub name: String,
    pub key: String,
    pub implicit: bool,
    pub version_row: Option<i64>,
    pub size: i64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub mtime: i64,
    pub created_at: i64,
    pub trashed_at: Option<i64>,
    pub trash_root_id: Option<i64>,
}

impl NodeRow {
    pub fn is_folder(&self) -> bool {
        self.kind == KIND_FOLDER
    }
}

/// A node to insert.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub account_id: i64,
    pub parent_id: Option<i64>,
    pub kind: i64,
    pub name: String,
    pub key: String,
    pub implicit: bool,
    pub mtime: i64,
}

/// One version of a file (or folder marker), joined with its blob's locator.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub id: i64,
    pub node_id: i64,
    pub version_id: String,
    pub blob_id: Option<i64>,
    pub locator: Option<String>,
    /// The blob's bytes are in its catalog row, not in the file `locator` names.
    pub inline: bool,
    pub size: i64,
    pub etag: String,
    pub blake3: Option<String>,
    pub content_type: Option<String>,
    pub attributes: String,
    pub parts_count: Option<i64>,
    pub is_delete_marker: bool,
    pub mtime: i64,
    pub created_at: i64,
    pub created_by: Option<i64>,
}

/// A version to insert. `blob_id` is `None` for empty content.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub node_id: i64,
    pub version_id: String,
    pub blob_id: Option<i64>,
    pub size: i64,
    pub etag: String,
    pub blake3: Option<String>,
    pub content_type: Option<String>,
    pub attributes: String,
    pub mtime: i64,
    pub created_by: Option<i64>,
    /// Set for multipart objects, whose bytes are in `version_parts`.
    pub parts_count: Option<i64>,
}

/// A blob's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BlobRow {
    pub id: i64,
    pub locator: String,
    /// The bytes are in the row (no file on the volume).
    pub inline: bool,
    pub size: i64,
    pub md5: String,
    pub blake3: String,
    pub refcount: i64,
}

#[derive(Debug, Clone)]
pub struct NewBlob {
    pub locator: String,
    pub size: i64,
    pub md5: String,
    pub blake3: String,
    /// The bytes themselves, for a body small enough to live in the catalog.
    pub data: Option<Vec<u8>>,
}

/// One audit entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub account_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub protocol: String,
    pub action: String,
    pub key: Option<String>,
    pub detail: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    pub account_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub protocol: String,
    pub action: String,
    pub key: Option<String>,
    pub detail: Option<String>,
    pub request_id: Option<String>,
}

/// An open multipart upload.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub upload_id: String,
    pub account_id: i64,
    pub key: String,
    pub attributes: String,
    pub initiated_by: Option<i64>,
    pub created_at: i64,
}

/// One uploaded part of a multipart upload, with its blob's locator.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartRow {
    pub part_number: i64,
    pub blob_id: Option<i64>,
    pub locator: Option<String>,
    pub size: i64,
    pub etag: String,
    pub checksums: String,
    pub created_at: i64,
}

/// One segment of a multipart object's content.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SegmentRow {
    pub part_index: i64,
    pub blob_id: Option<i64>,
    pub locator: Option<String>,
    pub size: i64,
    pub etag: String,
}

/// A share: access to a node (and everything below it) for someone other than its owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareRow {
    pub id: i64,
    pub account_id: i64,
    pub node_id: i64,
    /// `link`, `user` (see `grantee_id`), `authenticated` or `public`.
    pub audience: String,
    pub grantee_id: Option<i64>,
    /// `read`, `write` or `upload`.
    pub permission: String,
    /// `api` or `acl` (made by an S3 ACL).
    pub source: String,
    pub expires_at: Option<i64>,
}

/// An app password: a random token an account can use instead of its password (a mounted
/// drive, a sync client), each revocable alone. Only its digest is kept.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppPasswordRow {
    pub id: i64,
    pub account_id: i64,
    pub label: String,
    pub password_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

macro_rules! lock_columns {
    () => {
        "token, account_id, key, depth_infinity, exclusive, owner_xml, principal_id, timeout_at, created_at"
    };
}

/// A WebDAV lock on `key` of an account's tree (and, with `depth_infinity`, on everything
/// below a folder key). Expired rows (`timeout_at` passed) are ignored and swept.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LockRow {
    pub token: String,
    pub account_id: i64,
    pub key: String,
    pub depth_infinity: bool,
    pub exclusive: bool,
    /// The `DAV:owner` element the client sent, as XML.
    pub owner_xml: Option<String>,
    /// The account that took the lock: only it can use the token.
    pub principal_id: Option<i64>,
    pub timeout_at: i64,
    pub created_at: i64,
}

/// A WebDAV dead property. `value_xml` is the whole property element as the client sent it,
/// serialized with the namespace declarations it needs, so it can be written back as is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadPropRow {
    pub node_id: i64,
    pub namespace: String,
    pub name: String,
    pub value_xml: String,
}

/// What purging a trashed subtree released.
#[derive(Debug, Clone, Default)]
pub struct Purged {
    pub nodes: u64,
    pub versions: u64,
    pub bytes: i64,
}
