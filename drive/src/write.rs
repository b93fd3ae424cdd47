//! Writing: files and folder markers from a stream, folders, and the one place a new
//! version is committed (used by put, multipart completion and copies alike).
//!
//! Every write follows one order: bytes to the volume (durable, invisible), then one
//! catalog transaction (usage, parents, node, blob, version, audit). If the transaction
//! fails the blob is removed; if the process dies in between, `fsck` finds the orphan.

use std::io;

use bytes::Bytes;
use portico_metadata::{
    NewAudit, NewBlob, NewNode, NewVersion, NewVersionRows, NodeRow, PutProbeQuery, Tx,
    VersionNode, VersionRow,
};
use portico_volume::{BlobLocator, LimitReason, WriteOptions, WrittenBlob};

use crate::checksum::{ChecksumAlgorithm, ExpectedChecksum};
use crate::conditions::Preconditions;
use crate::error::{Error, Missing, Result};
use crate::locks::{LockScope, candidate_keys};
use crate::model::{Ctx, Entry, ObjectAttributes, Timestamp, VersionInfo};
use crate::names::{Kind, NodePath};
use crate::read::ReadRequest;
use crate::{Action, Drive, Grant};

/// What to do when the folders above a new file or folder are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parents {
    /// S3: create them as implicit folders (they vanish again with their last object).
    /// The bucket itself must exist.
    CreateImplicit,
    /// WebDAV: the parent must exist (409 Conflict otherwise).
    MustExist,
    /// API and CLI `mkdir -p`: create them as ordinary folders.
    CreateExplicit,
}

/// How to write one file (or S3 folder marker).
#[derive(Debug)]
pub struct PutOptions {
    /// `Kind::Folder` writes a folder's marker object (S3 key ending in `/`).
    pub kind: Kind,
    /// The announced length, checked against quota before any byte is read.
    pub expected_size: Option<u64>,
    pub content_type: Option<String>,
    pub attributes: ObjectAttributes,
    /// A client-chosen modification time (e.g. `X-OC-Mtime`); now when `None`.
    pub modified: Option<Timestamp>,
    pub parents: Parents,
    pub preconditions: Preconditions,
    /// The MD5 the client announced (`Content-MD5`): a mismatch refuses the write.
    pub expected_md5: Option<[u8; 16]>,
    /// The checksum to compute and, when the client sent one, verify. Without one the
    /// drive computes CRC64NVME, as S3 does for every new object.
    pub checksum: Option<ExpectedChecksum>,
}

impl PutOptions {
    pub fn new(kind: Kind, parents: Parents) -> Self {
        Self {
            kind,
            expected_size: None,
            content_type: None,
            attributes: ObjectAttributes::default(),
            modified: None,
            parents,
            preconditions: Preconditions::default(),
            expected_md5: None,
            checksum: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MkdirOptions {
    /// Create missing parents (as ordinary folders).
    pub parents: bool,
    /// An existing folder is not an error.
    pub exist_ok: bool,
}

/// Runs a catalog transaction again when a concurrent writer made it fail on a unique
/// name (two clients creating the same file or folder at once): the retry sees the other's
/// row and proceeds as an overwrite. Bounded, with a short growing pause.
pub(crate) async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    for round in 1..=4u64 {
        match attempt().await {
            Err(Error::Contention) => {
                tokio::time::sleep(std::time::Duration::from_millis(2 * round * round)).await
            }
            other => return other,
        }
    }
    attempt().await
}

impl Drive {
    /// Runs `write` — everything between a write transaction's `begin` and its `commit` —
    /// where the catalog's writes go fastest ([`Catalog::write`]: SQLite's writer thread),
    /// with its own handles to the drive, the caller and the path. It runs to its end even
    /// if the request is dropped meanwhile, as a write already sent to a database does.
    ///
    /// [`Catalog::write`]: portico_metadata::Catalog::write
    pub(crate) async fn on_writer<T, F, Fut>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        write: F,
    ) -> Result<T>
    where
        F: FnOnce(Drive, Ctx, NodePath) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let write = write(self.clone(), ctx.clone(), path.clone());
        self.inner.catalog.write(write).await
    }
}

pub(crate) fn new_version_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The content of a version about to be committed.
pub(crate) struct NewContent {
    pub blob_id: Option<i64>,
    pub size: i64,
    pub etag: String,
    pub blake3: Option<String>,
    pub parts_count: Option<i64>,
}

/// The rows a plain write commits along with its version (see `Drive::write_version`).
#[derive(Default, Clone, Copy)]
pub(crate) struct WriteTail<'a> {
    /// The blob the version's bytes were just written to.
    pub blob: Option<&'a NewBlob>,
    /// Bytes charged to the account; past its quota the write is refused.
    pub charge: Option<i64>,
    pub audit: Option<&'a NewAudit>,
    /// Nothing follows before the commit: the catalog may commit with these rows.
    pub last: bool,
}

/// Everything but the bytes of a version about to be committed.
pub(crate) struct VersionMeta {
    pub content_type: Option<String>,
    pub attributes: ObjectAttributes,
    pub modified: Option<Timestamp>,
    pub parents: Parents,
}

impl Drive {
    /// Limits for a write: the object size limit, or the quota left if that is smaller.
    /// The tree owner's quota applies, whoever writes (a grantee writing into a shared
    /// bucket spends the owner's space).
    pub(crate) async fn write_limit(
        &self,
        grant: Grant,
        expected: Option<u64>,
    ) -> Result<(u64, LimitReason)> {
        let owner = self
            .inner
            .catalog
            .account_by_id(grant.account_id)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        let usage = crate::auth::usage_of(&owner);
        let available = usage.available();
        if let (Some(expected), Some(available)) = (expected, available)
            && expected > available
        {
            return Err(Error::QuotaExceeded);
        }
        let max = self.inner.config.max_object_size;
        Ok(match available {
            Some(available) if available < max => (available, LimitReason::Quota),
            _ => (max, LimitReason::MaxObjectSize),
        })
    }

    /// Streams a body to the volume, computing MD5, BLAKE3 and each of `algorithms`
    /// (their digests come back in that order). With `inline`, a body no larger than
    /// the configured inline size comes back in memory instead, for the commit to store.
    pub(crate) async fn write_blob<S>(
        &self,
        body: S,
        expected: Option<u64>,
        limit: (u64, LimitReason),
        algorithms: &[ChecksumAlgorithm],
        inline: bool,
    ) -> Result<WrittenBlob>
    where
        S: futures::Stream<Item = io::Result<Bytes>> + Send + Unpin,
    {
        let hashers = algorithms
            .iter()
            .map(|algorithm| algorithm.hasher())
            .collect();
        let options = WriteOptions {
            expected,
            max: Some(limit),
            hashers,
            inline_up_to: if inline {
                self.inner.config.inline_max_bytes
            } else {
                0
            },
        };
        Ok(self.inner.volume.write(body, options).await?)
    }

    /// Removes a blob whose commit failed (or that was never needed).
    pub(crate) async fn discard_blob(&self, written: &WrittenBlob) {
        if let Some(locator) = &written.locator
            && let Err(err) = self.inner.volume.remove(locator).await
        {
            tracing::warn!(%locator, error = %err, "could not remove the blob of a failed upload; fsck will");
        }
    }

    /// Writes a file (or folder marker) from a stream: any size, never held in memory
    /// whole. Quota is checked before reading when the size is announced, enforced while
    /// streaming when not, and settled atomically at commit.
    pub async fn put<S>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        body: S,
        options: PutOptions,
    ) -> Result<Entry>
    where
        S: futures::Stream<Item = io::Result<Bytes>> + Send + Unpin,
    {
        Ok(self.put_version(ctx, path, body, options).await?.0)
    }

    /// [`Drive::put`], also returning the version it made current.
    pub async fn put_version<S>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        body: S,
        mut options: PutOptions,
    ) -> Result<(Entry, VersionInfo)>
    where
        S: futures::Stream<Item = io::Result<Bytes>> + Send + Unpin,
    {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        if path.is_root() || (options.kind == Kind::Folder && path.depth() < 2) {
            return Err(Error::Forbidden);
        }
        let catalog = &self.inner.catalog;
        // Early refusals spare streaming a body that could not be kept. Each is checked
        // again inside the transaction, so a body announced small enough to be held in
        // memory skips them: reading it costs less than the queries.
        let small = options
            .expected_size
            .is_some_and(|size| size <= self.inner.config.inline_max_bytes);
        let limit = if small {
            (
                self.inner.config.max_object_size,
                LimitReason::MaxObjectSize,
            )
        } else {
            if options.parents == Parents::CreateImplicit {
                self.require_bucket(grant, path).await?;
            }
            if options.parents == Parents::MustExist {
                self.check_dav_put_target(grant, path).await?;
            }
            if !options.preconditions.is_empty() {
                let current = catalog
                    .node_by_key(grant.account_id, &path.key(options.kind))
                    .await?;
                options
                    .preconditions
                    .evaluate(current.as_ref().and_then(current_state), false)?;
            }
            self.check_put_locks(grant, ctx, path, options.kind).await?;
            self.write_limit(grant, options.expected_size).await?
        };
        let checksum = options
            .checksum
            .take()
            .unwrap_or(ExpectedChecksum::Compute(ChecksumAlgorithm::Crc64Nvme));
        let written = self
            .write_blob(
                body,
                options.expected_size,
                limit,
                &[checksum.algorithm()],
                true,
            )
            .await?;
        let committed = self
            .commit_written(ctx, grant, path, &written, options, checksum)
            .await;
        if committed.is_err() {
            self.discard_blob(&written).await;
        }
        committed
    }

    async fn commit_written(
        &self,
        ctx: &Ctx,
        grant: Grant,
        path: &NodePath,
        written: &WrittenBlob,
        options: PutOptions,
        checksum: ExpectedChecksum,
    ) -> Result<(Entry, VersionInfo)> {
        if let Some(expected) = options.expected_md5
            && expected != written.md5
        {
            return Err(Error::BadDigest);
        }
        let mut attributes = options.attributes.clone();
        attributes.checksum = Some(
            checksum.settle(
                written
                    .digests
                    .first()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            )?,
        );
        let size = i64::try_from(written.size).map_err(|_| Error::TooLarge {
            limit: i64::MAX as u64,
        })?;
        let md5 = hex::encode(written.md5);
        let blake3 = hex::encode(written.blake3);
        let blob = match (&written.locator, &written.inline) {
            (Some(locator), _) => Some(NewBlob {
                locator: locator.to_string(),
                size,
                md5: md5.clone(),
                blake3: blake3.clone(),
                data: None,
            }),
            // The row's locator names no file; it only keeps locators unique.
            (None, Some(bytes)) => Some(NewBlob {
                locator: BlobLocator::generate().to_string(),
                size,
                md5: md5.clone(),
                blake3: blake3.clone(),
                data: Some(bytes.to_vec()),
            }),
            (None, None) => None,
        };
        let audit = self.audit(ctx, grant, "put", &path.key(options.kind));
        self.on_writer(ctx, path, |drive, ctx, path| async move {
            with_retries(|| async {
                let mut tx = drive.inner.catalog.begin_put().await?;
                let content = NewContent {
                    blob_id: None,
                    size,
                    etag: md5.clone(),
                    blake3: Some(blake3.clone()),
                    parts_count: None,
                };
                let meta = VersionMeta {
                    content_type: options.content_type.clone(),
                    attributes: attributes.clone(),
                    modified: options.modified,
                    parents: options.parents,
                };
                let (node, version) = drive
                    .write_version(
                        &mut tx,
                        &ctx,
                        grant,
                        &path,
                        options.kind,
                        content,
                        meta,
                        &options.preconditions,
                        WriteTail {
                            blob: blob.as_ref(),
                            charge: Some(size),
                            audit: Some(&audit),
                            last: true,
                        },
                    )
                    .await?;
                tx.commit().await?;
                Ok((
                    Entry::from_row(&node),
                    VersionInfo::from_row(&version, true),
                ))
            })
            .await
        })
        .await
    }

    /// Makes `content` the new current version of the node of `kind` at `path`, creating
    /// the node (and, per `meta.parents`, its folders) when needed. The caller owns the
    /// transaction and holds the blob references `content` names; `tail` adds the rows a
    /// plain write commits with it (its new blob, usage charge and audit entry), written
    /// in the same batch as the version.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_version(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        grant: Grant,
        path: &NodePath,
        kind: Kind,
        content: NewContent,
        meta: VersionMeta,
        preconditions: &Preconditions,
        tail: WriteTail<'_>,
    ) -> Result<(NodeRow, VersionRow)> {
        let key = path.key(kind);
        let parent_key = path
            .parent()
            .filter(|parent| !parent.is_root())
            .map(|parent| parent.folder_key());
        let folder_key = path.folder_key();
        let lock_keys = candidate_keys(path);
        let now = Timestamp::now();
        // Everything the write depends on, read in one go: the parent folder, the node, a
        // folder of the same name (WebDAV refuses a file there), and the locks around.
        let probe = tx
            .probe_put(&PutProbeQuery {
                account_id: grant.account_id,
                parent_key: parent_key.as_deref(),
                key: &key,
                other_key: (meta.parents == Parents::MustExist).then_some(folder_key.as_str()),
                lock_keys: &lock_keys,
                below: Some(&folder_key),
                now: now.nanos(),
            })
            .await?;
        let parent = match (&parent_key, probe.parent) {
            (Some(_), Some(row)) => Some(row),
            // A missing folder: created here (S3, mkdir -p) or refused (WebDAV).
            (Some(_), None) => self.ensure_parents(tx, grant, path, meta.parents).await?,
            (None, _) => None,
        };
        let existing = probe.existing;
        let scope = if existing.is_some() {
            LockScope::Content
        } else {
            LockScope::Membership
        };
        Self::check_lock_rows(&probe.locks, now, ctx, path, scope)?;
        preconditions.evaluate(existing.as_ref().and_then(current_state), false)?;
        if probe.other.is_some() {
            return Err(Error::Conflict("a folder exists at this path"));
        }
        let modified = meta.modified.unwrap_or(now).nanos();
        let new_node = NewNode {
            account_id: grant.account_id,
            parent_id: parent.as_ref().map(|p| p.id),
            kind: kind.to_catalog(),
            name: path.name().unwrap_or_default().to_owned(),
            key,
            implicit: false,
            mtime: modified,
        };
        let node = match &existing {
            // Writing a folder's marker makes an implicit folder explicit.
            Some(node) => VersionNode::Existing {
                id: node.id,
                make_explicit: node.implicit,
            },
            None => VersionNode::New(&new_node),
        };
        let version = NewVersion {
            node_id: existing.as_ref().map_or(0, |node| node.id),
            version_id: new_version_id(),
            blob_id: content.blob_id,
            size: content.size,
            etag: content.etag,
            blake3: content.blake3,
            content_type: meta.content_type,
            attributes: meta.attributes.to_json(),
            mtime: modified,
            created_by: Some(ctx.principal.account_id.0),
            parts_count: content.parts_count,
        };
        tx.insert_current_version(&NewVersionRows {
            account_id: grant.account_id,
            node,
            blob: tail.blob,
            version: &version,
            charge: tail.charge,
            audit: tail.audit,
            commit: tail.last,
            unlimited: probe.unlimited,
        })
        .await?
        .ok_or(Error::QuotaExceeded)
    }

    /// S3 CopyObject: a new version at `target` with the content of a source version —
    /// sharing its blob or parts, never copying bytes — and either the source's metadata or
    /// `replace`'s. The source is read under `source_request`'s version and conditions.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        ctx: &Ctx,
        source: &NodePath,
        source_kind: Kind,
        source_request: &ReadRequest,
        target: &NodePath,
        target_kind: Kind,
        replace: Option<(Option<String>, ObjectAttributes)>,
        preconditions: &Preconditions,
    ) -> Result<(Entry, VersionInfo, VersionInfo)> {
        with_retries(|| {
            self.copy_object_once(
                ctx,
                source,
                source_kind,
                source_request,
                target,
                target_kind,
                replace.clone(),
                preconditions,
            )
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_object_once(
        &self,
        ctx: &Ctx,
        source: &NodePath,
        source_kind: Kind,
        source_request: &ReadRequest,
        target: &NodePath,
        target_kind: Kind,
        replace: Option<(Option<String>, ObjectAttributes)>,
        preconditions: &Preconditions,
    ) -> Result<(Entry, VersionInfo, VersionInfo)> {
        let grant = self.authorize(ctx, target, Action::Write).await?;
        let plain = ReadRequest {
            version_id: source_request.version_id.clone(),
            ..ReadRequest::default()
        };
        let (source_entry, source_version) = self.head(ctx, source, source_kind, &plain).await?;
        let modified = if source_version.is_current {
            source_entry.modified
        } else {
            source_version.modified
        };
        source_request
            .preconditions
            .evaluate_copy_source(&source_version.etag, modified)?;
        if source == target
            && source_kind == target_kind
            && replace.is_none()
            && source_request.version_id.is_none()
        {
            return Err(Error::InvalidInput {
                field: "x-amz-copy-source",
                reason: "copying an object onto itself must change its metadata (use the REPLACE directive)".into(),
            });
        }
        if target.depth() < 2 {
            return Err(Error::invalid_name("an object key is required"));
        }
        self.require_bucket(grant, target).await?;
        let source_row = source_version
            .row
            .ok_or_else(|| Error::NotFound(Missing::Node))?;
        let (content_type, mut attributes) = match replace {
            Some((content_type, attributes)) => (content_type, attributes),
            None => (
                source_version.content_type.clone(),
                source_version.attributes.clone(),
            ),
        };
        // The bytes are the same, so is their checksum.
        attributes.checksum = source_version.attributes.checksum.clone();

        let mut tx = self.inner.catalog.begin().await?;
        let row = tx
            .version(source_row)
            .await?
            .ok_or(Error::NotFound(Missing::Version))?;
        if !tx.charge_usage(grant.account_id, row.size).await? {
            return Err(Error::QuotaExceeded);
        }
        if let Some(blob) = row.blob_id {
            tx.add_blob_refs(blob, 1).await?;
        }
        let content = NewContent {
            blob_id: row.blob_id,
            size: row.size,
            etag: row.etag.clone(),
            blake3: row.blake3.clone(),
            parts_count: row.parts_count,
        };
        let meta = VersionMeta {
            content_type,
            attributes,
            modified: None,
            parents: Parents::CreateImplicit,
        };
        let (node, version) = self
            .write_version(
                &mut tx,
                ctx,
                grant,
                target,
                target_kind,
                content,
                meta,
                preconditions,
                WriteTail::default(),
            )
            .await?;
        if row.parts_count.is_some() {
            tx.copy_segments(row.id, version.id).await?;
        }
        tx.insert_audit(&self.audit(ctx, grant, "copy", &node.key))
            .await?;
        tx.commit().await?;
        Ok((
            Entry::from_row(&node),
            VersionInfo::from_row(&version, true),
            source_version,
        ))
    }

    /// S3 writes need their bucket (the top-level folder) to exist.
    pub(crate) async fn require_bucket(&self, grant: Grant, path: &NodePath) -> Result<()> {
        let bucket = NodePath::from_segments([path.bucket().unwrap_or_default()])?;
        match self
            .inner
            .catalog
            .node_by_key(grant.account_id, &bucket.folder_key())
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(Missing::Bucket)),
        }
    }

    /// WebDAV PUT: the parent folder must exist and the name must not be a folder.
    async fn check_dav_put_target(&self, grant: Grant, path: &NodePath) -> Result<()> {
        let catalog = &self.inner.catalog;
        if let Some(parent) = path.parent()
            && !parent.is_root()
            && catalog
                .node_by_key(grant.account_id, &parent.folder_key())
                .await?
                .is_none()
        {
            return Err(Error::Conflict("the parent folder does not exist"));
        }
        if catalog
            .node_by_key(grant.account_id, &path.folder_key())
            .await?
            .is_some()
        {
            return Err(Error::Conflict("a folder exists at this path"));
        }
        Ok(())
    }

    /// Finds (or, per `mode`, creates) the folders above `path`; returns the immediate
    /// parent, `None` at the root.
    pub(crate) async fn ensure_parents(
        &self,
        tx: &mut Tx,
        grant: Grant,
        path: &NodePath,
        mode: Parents,
    ) -> Result<Option<NodeRow>> {
        let Some(parent) = path.parent() else {
            return Ok(None);
        };
        if parent.is_root() {
            return Ok(None);
        }
        // Held against deletion until commit: a concurrent S3 delete emptying this folder
        // must not remove it under the child being added.
        if let Some(row) = tx
            .folder_kept(grant.account_id, &parent.folder_key())
            .await?
        {
            return Ok(Some(row));
        }
        // Walk up to the nearest existing ancestor, then create downwards.
        let mut missing = vec![parent.clone()];
        let mut found: Option<NodeRow> = None;
        let mut cursor = parent.parent();
        while let Some(ancestor) = cursor {
            if ancestor.is_root() {
                break;
            }
            if let Some(row) = tx
                .folder_kept(grant.account_id, &ancestor.folder_key())
                .await?
            {
                found = Some(row);
                break;
            }
            missing.push(ancestor.clone());
            cursor = ancestor.parent();
        }
        match mode {
            Parents::MustExist => return Err(Error::Conflict("the parent folder does not exist")),
            Parents::CreateImplicit if found.is_none() => {
                return Err(Error::NotFound(Missing::Bucket));
            }
            _ => {}
        }
        let implicit = mode == Parents::CreateImplicit;
        let mut parent_row = found;
        for folder in missing.iter().rev() {
            let row = tx
                .insert_node(&NewNode {
                    account_id: grant.account_id,
                    parent_id: parent_row.as_ref().map(|p| p.id),
                    kind: Kind::Folder.to_catalog(),
                    name: folder.name().unwrap_or_default().to_owned(),
                    key: folder.folder_key(),
                    implicit,
                    mtime: Timestamp::now().nanos(),
                })
                .await?;
            parent_row = Some(row);
        }
        Ok(parent_row)
    }

    /// Creates a folder (WebDAV MKCOL, API, CLI).
    pub async fn mkdir(&self, ctx: &Ctx, path: &NodePath, options: MkdirOptions) -> Result<Entry> {
        self.on_writer(ctx, path, |drive, ctx, path| async move {
            with_retries(|| drive.mkdir_once(&ctx, &path, options)).await
        })
        .await
    }

    async fn mkdir_once(&self, ctx: &Ctx, path: &NodePath, options: MkdirOptions) -> Result<Entry> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        if path.is_root() {
            return if options.exist_ok {
                Ok(self.root_entry())
            } else {
                Err(Error::AlreadyExists)
            };
        }
        let mut tx = self.inner.catalog.begin().await?;
        let existing = tx.nodes_at_name(grant.account_id, &path.file_key()).await?;
        if let Some(folder) = existing.iter().find(|row| row.is_folder()) {
            if folder.implicit {
                // The folder was there for S3 only; now someone made it on purpose.
                tx.set_implicit(folder.id, false).await?;
                tx.insert_audit(&self.audit(ctx, grant, "mkdir", &folder.key))
                    .await?;
                tx.commit().await?;
                let mut entry = Entry::from_row(folder);
                entry.implicit = false;
                return Ok(entry);
            }
            return if options.exist_ok {
                Ok(Entry::from_row(folder))
            } else {
                Err(Error::AlreadyExists)
            };
        }
        if !existing.is_empty() {
            // A file has this name: a tree cannot show both.
            return Err(Error::AlreadyExists);
        }
        let mode = if options.parents {
            Parents::CreateExplicit
        } else {
            Parents::MustExist
        };
        self.check_locks(&mut tx, grant, ctx, path, LockScope::Membership)
            .await?;
        let parent = self.ensure_parents(&mut tx, grant, path, mode).await?;
        let row = tx
            .insert_node(&NewNode {
                account_id: grant.account_id,
                parent_id: parent.as_ref().map(|p| p.id),
                kind: Kind::Folder.to_catalog(),
                name: path.name().unwrap_or_default().to_owned(),
                key: path.folder_key(),
                implicit: false,
                mtime: Timestamp::now().nanos(),
            })
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "mkdir", &row.key))
            .await?;
        tx.commit().await?;
        Ok(Entry::from_row(&row))
    }

    /// Refuses, before any byte is read, a write that a lock would stop at the commit.
    async fn check_put_locks(
        &self,
        grant: Grant,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
    ) -> Result<()> {
        let exists = self
            .inner
            .catalog
            .node_by_key(grant.account_id, &path.key(kind))
            .await?
            .is_some();
        let scope = if exists {
            LockScope::Content
        } else {
            LockScope::Membership
        };
        self.check_locks_now(grant, ctx, path, scope).await
    }

    /// Sets a node's modification time (`X-OC-Mtime`, `Win32LastModifiedTime`).
    pub async fn set_modified(&self, ctx: &Ctx, entry: &Entry, modified: Timestamp) -> Result<()> {
        let grant = self.authorize(ctx, &entry.path, Action::Write).await?;
        let mut tx = self.inner.catalog.begin().await?;
        self.check_locks(&mut tx, grant, ctx, &entry.path, LockScope::Content)
            .await?;
        tx.set_mtime(entry.node_id, modified.nanos()).await?;
        tx.insert_audit(&self.audit(ctx, grant, "touch", &entry.key()))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The state conditional requests compare against: the current ETag and mtime.
pub(crate) fn current_state(row: &NodeRow) -> Option<(&str, Timestamp)> {
    if row.version_row.is_none() && row.is_folder() {
        return None;
    }
    row.etag
        .as_deref()
        .map(|etag| (etag, Timestamp::from_nanos(row.mtime)))
}
