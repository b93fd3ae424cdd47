//! Files and folders: stat, read, write, mkdir, move, copy, delete.
//!
//! Every write follows one order: bytes to the volume (durable, invisible), then one
//! catalog transaction (usage, parents, node, blob, version, audit). If the transaction
//! fails the blob is removed; if the process dies in between, `fsck` finds the orphan.

use std::collections::HashMap;
use std::io;

use bytes::Bytes;
use portico_metadata::{NewBlob, NewNode, NewVersion, NodeRow, Tx};
use portico_volume::{BlobLocator, BlobStream, LimitReason, WriteLimit};

use crate::conditions::{ByteRange, Preconditions};
use crate::error::{Error, Missing, Result};
use crate::model::{Ctx, Entry, ObjectAttributes, Timestamp, VersionInfo};
use crate::names::{Kind, NodePath};
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
#[derive(Debug, Clone)]
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

/// Move or copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Move,
    /// `recursive: false` copies a folder without its contents (WebDAV `Depth: 0`).
    Copy {
        recursive: bool,
    },
}

/// An open read: what is being read, and the bytes.
pub struct Download {
    pub entry: Entry,
    pub version: VersionInfo,
    /// The byte range sent, when the request asked for one.
    pub range: Option<std::ops::Range<u64>>,
    pub body: BlobStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("entry", &self.entry)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

fn new_version_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl Drive {
    fn root_entry(&self) -> Entry {
        Entry {
            path: NodePath::root(),
            kind: Kind::Folder,
            size: 0,
            etag: None,
            content_type: None,
            modified: Timestamp::from_nanos(0),
            created: Timestamp::from_nanos(0),
            implicit: false,
            has_content: false,
            node_id: 0,
            version_row: None,
        }
    }

    /// The node of `kind` at `path`.
    pub async fn stat(&self, ctx: &Ctx, path: &NodePath, kind: Kind) -> Result<Entry> {
        let grant = self.authorize(&ctx.principal, path, Action::Read)?;
        if path.is_root() {
            return if kind == Kind::Folder {
                Ok(self.root_entry())
            } else {
                Err(Error::NotFound(Missing::Node))
            };
        }
        let row = self
            .inner
            .catalog
            .node_by_key(grant.account_id, &path.key(kind))
            .await?;
        match row {
            Some(row) => Ok(Entry::from_row(&row)),
            None => Err(self.missing(grant, path).await?),
        }
    }

    /// Which thing is missing when a lookup fails: the top-level folder (an S3 bucket) or
    /// just the node. Costs a query only on the miss path.
    async fn missing(&self, grant: Grant, path: &NodePath) -> Result<Error> {
        if path.depth() >= 2 {
            let top = NodePath::from_segments([path.bucket().unwrap_or_default()])?;
            let bucket = self
                .inner
                .catalog
                .node_by_key(grant.account_id, &top.folder_key())
                .await?;
            if bucket.is_none() {
                return Ok(Error::NotFound(Missing::Bucket));
            }
        }
        Ok(Error::NotFound(Missing::Node))
    }

    /// What a tree view shows at `path`: the folder when a folder and a file share the
    /// name (S3 can make both), else the file.
    pub async fn resolve(&self, ctx: &Ctx, path: &NodePath) -> Result<Entry> {
        let grant = self.authorize(&ctx.principal, path, Action::Read)?;
        if path.is_root() {
            return Ok(self.root_entry());
        }
        let rows = self
            .inner
            .catalog
            .nodes_at_name(grant.account_id, &path.file_key())
            .await?;
        let chosen = rows
            .iter()
            .find(|row| row.is_folder())
            .or_else(|| rows.first());
        chosen
            .map(Entry::from_row)
            .ok_or(Error::NotFound(Missing::Node))
    }

    /// The version of `entry` to read: a named one (S3 `versionId`) or the current one.
    async fn version_of(&self, entry: &Entry, version_id: Option<&str>) -> Result<VersionInfo> {
        if let Some(version_id) = version_id {
            let row = self.inner.catalog.version_by_public_id(version_id).await?;
            return match row {
                Some(row) if row.node_id == entry.node_id => {
                    let current = Some(row.id) == entry.version_row;
                    Ok(VersionInfo::from_row(&row, current))
                }
                _ => Err(Error::NotFound(Missing::Version)),
            };
        }
        match entry.version_row {
            Some(version_row) => {
                let row = self
                    .inner
                    .catalog
                    .version(version_row)
                    .await?
                    .ok_or(Error::NotFound(Missing::Version))?;
                Ok(VersionInfo::from_row(&row, true))
            }
            // A folder without a marker object reads as empty content.
            None => Ok(VersionInfo {
                version_id: String::new(),
                size: 0,
                etag: entry
                    .etag
                    .clone()
                    .unwrap_or_else(|| crate::EMPTY_ETAG.to_owned()),
                content_type: entry.content_type.clone(),
                attributes: ObjectAttributes::default(),
                modified: entry.modified,
                created: entry.created,
                is_current: true,
                locator: None,
            }),
        }
    }

    /// Metadata of a node's current (or a named) version, after evaluating conditions.
    pub async fn head(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        version_id: Option<&str>,
        preconditions: &Preconditions,
    ) -> Result<(Entry, VersionInfo)> {
        let entry = self.stat(ctx, path, kind).await?;
        if entry.implicit
            && !entry.has_content
            && kind == Kind::Folder
            && version_id.is_none()
            && !path.is_root()
        {
            // An implicit folder is not an object of its own.
            return Err(Error::NotFound(Missing::Node));
        }
        let version = self.version_of(&entry, version_id).await?;
        preconditions.evaluate(Some((&version.etag, version.modified)), true)?;
        Ok((entry, version))
    }

    /// Opens a node's content (or a range of it) for reading.
    pub async fn open(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        version_id: Option<&str>,
        range: Option<ByteRange>,
        preconditions: &Preconditions,
    ) -> Result<Download> {
        let (entry, version) = self
            .head(ctx, path, kind, version_id, preconditions)
            .await?;
        let resolved = range.map(|range| range.resolve(version.size)).transpose()?;
        let bytes = resolved.clone().unwrap_or(0..version.size);
        let body = match (&version.locator, bytes.is_empty()) {
            (_, true) | (None, _) => BlobStream::from_bytes(Bytes::new()),
            (Some(locator), false) => {
                let locator = BlobLocator::parse(locator)
                    .ok_or_else(|| Error::internal("corrupt blob locator"))?;
                self.inner
                    .volume
                    .read(&locator, bytes)
                    .await
                    .map_err(|err| Error::Internal(Box::new(err)))?
            }
        };
        Ok(Download {
            entry,
            version,
            range: resolved,
            body,
        })
    }

    /// Every version of a file, newest first (the one history all protocols share).
    pub async fn versions(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
    ) -> Result<Vec<VersionInfo>> {
        let entry = self.stat(ctx, path, kind).await?;
        let rows = self.inner.catalog.versions_of(entry.node_id).await?;
        Ok(rows
            .iter()
            .map(|row| VersionInfo::from_row(row, Some(row.id) == entry.version_row))
            .collect())
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
        let grant = self.authorize(&ctx.principal, path, Action::Write)?;
        if path.is_root() || (options.kind == Kind::Folder && path.depth() < 2) {
            return Err(Error::Forbidden);
        }
        let key = path.key(options.kind);
        let catalog = &self.inner.catalog;

        // Cheap early refusals; each is checked again inside the transaction.
        if options.parents == Parents::CreateImplicit && path.depth() >= 2 {
            let bucket = NodePath::from_segments([path.bucket().unwrap_or_default()])?;
            if catalog
                .node_by_key(grant.account_id, &bucket.folder_key())
                .await?
                .is_none()
            {
                return Err(Error::NotFound(Missing::Bucket));
            }
        }
        if options.parents == Parents::MustExist {
            self.check_dav_put_target(grant, path).await?;
        }
        if !options.preconditions.is_empty() {
            let current = catalog.node_by_key(grant.account_id, &key).await?;
            options
                .preconditions
                .evaluate(current.as_ref().and_then(current_state), false)?;
        }
        let usage = self.usage(ctx).await?;
        let available = usage.available();
        if let (Some(expected), Some(available)) = (options.expected_size, available)
            && expected > available
        {
            return Err(Error::QuotaExceeded);
        }
        let max = self.inner.config.max_object_size;
        let limit = match available {
            Some(available) if available < max => (available, LimitReason::Quota),
            _ => (max, LimitReason::MaxObjectSize),
        };
        let written = self
            .inner
            .volume
            .write(
                body,
                WriteLimit {
                    expected: options.expected_size,
                    max: Some(limit),
                },
            )
            .await?;

        let committed = self
            .commit_put(ctx, grant, path, &key, &written, &options)
            .await;
        if committed.is_err()
            && let Some(locator) = &written.locator
            && let Err(err) = self.inner.volume.remove(locator).await
        {
            tracing::warn!(%locator, error = %err, "could not remove the blob of a failed upload; fsck will");
        }
        committed
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

    async fn commit_put(
        &self,
        ctx: &Ctx,
        grant: Grant,
        path: &NodePath,
        key: &str,
        written: &portico_volume::WrittenBlob,
        options: &PutOptions,
    ) -> Result<Entry> {
        let size = i64::try_from(written.size).map_err(|_| Error::TooLarge {
            limit: i64::MAX as u64,
        })?;
        let mut tx = self.inner.catalog.begin().await?;
        if !tx.charge_usage(grant.account_id, size).await? {
            return Err(Error::QuotaExceeded);
        }
        let parent = self
            .ensure_parents(&mut tx, grant, path, options.parents)
            .await?;
        let existing = tx.node_by_key(grant.account_id, key).await?;
        options
            .preconditions
            .evaluate(existing.as_ref().and_then(current_state), false)?;
        if options.parents == Parents::MustExist
            && tx
                .node_by_key(grant.account_id, &path.folder_key())
                .await?
                .is_some()
        {
            return Err(Error::Conflict("a folder exists at this path"));
        }
        let modified = options.modified.unwrap_or_else(Timestamp::now).nanos();
        let node = match existing {
            Some(node) => {
                if node.implicit {
                    // Writing a folder's marker makes the folder explicit.
                    tx.set_implicit(node.id, false).await?;
                }
                node
            }
            None => {
                let name = path.name().unwrap_or_default().to_owned();
                tx.insert_node(&NewNode {
                    account_id: grant.account_id,
                    parent_id: parent.as_ref().map(|p| p.id),
                    kind: options.kind.to_catalog(),
                    name,
                    key: key.to_owned(),
                    implicit: false,
                    mtime: modified,
                })
                .await?
            }
        };
        let md5 = hex::encode(written.md5);
        let blake3 = hex::encode(written.blake3);
        let blob_id = match &written.locator {
            Some(locator) => Some(
                tx.insert_blob(&NewBlob {
                    locator: locator.to_string(),
                    size,
                    md5: md5.clone(),
                    blake3: blake3.clone(),
                })
                .await?,
            ),
            None => None,
        };
        let version = tx
            .insert_version(&NewVersion {
                node_id: node.id,
                version_id: new_version_id(),
                blob_id,
                size,
                etag: md5,
                blake3: Some(blake3),
                content_type: options.content_type.clone(),
                attributes: options.attributes.to_json(),
                mtime: modified,
                created_by: Some(ctx.principal.account_id.0),
            })
            .await?;
        let node = tx.set_current_version(node.id, &version).await?;
        tx.insert_audit(&self.audit(ctx, grant, "put", key)).await?;
        tx.commit().await?;
        Ok(Entry::from_row(&node))
    }

    /// Finds (or, per `mode`, creates) the folders above `path`; returns the immediate
    /// parent, `None` at the root.
    async fn ensure_parents(
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
        if let Some(row) = tx
            .node_by_key(grant.account_id, &parent.folder_key())
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
                .node_by_key(grant.account_id, &ancestor.folder_key())
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
        let grant = self.authorize(&ctx.principal, path, Action::Write)?;
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

    /// Sets a node's modification time (`X-OC-Mtime`, `Win32LastModifiedTime`).
    pub async fn set_modified(&self, ctx: &Ctx, entry: &Entry, modified: Timestamp) -> Result<()> {
        let grant = self.authorize(&ctx.principal, &entry.path, Action::Write)?;
        let mut tx = self.inner.catalog.begin().await?;
        tx.set_mtime(entry.node_id, modified.nanos()).await?;
        tx.insert_audit(&self.audit(ctx, grant, "touch", &entry.key()))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves or copies what a tree shows at `from` to `to` (WebDAV MOVE/COPY). Returns
    /// whether the destination was created (false: an existing one was replaced).
    pub async fn transfer(
        &self,
        ctx: &Ctx,
        from: &NodePath,
        to: &NodePath,
        transfer: Transfer,
        overwrite: bool,
    ) -> Result<bool> {
        let grant = self.authorize(
            &ctx.principal,
            from,
            if transfer == Transfer::Move {
                Action::Delete
            } else {
                Action::Read
            },
        )?;
        let dest_grant = self.authorize(&ctx.principal, to, Action::Write)?;
        if from.is_root() || to.is_root() {
            return Err(Error::Forbidden);
        }
        if from == to {
            return Err(Error::Forbidden);
        }
        let mut tx = self.inner.catalog.begin().await?;
        let sources = tx.nodes_at_name(grant.account_id, &from.file_key()).await?;
        let source = sources
            .iter()
            .find(|row| row.is_folder())
            .or_else(|| sources.first())
            .cloned();
        let source = source.ok_or(Error::NotFound(Missing::Node))?;
        if source.is_folder() && to.starts_with(from) {
            return Err(Error::Conflict("cannot move or copy a folder into itself"));
        }
        if from.starts_with(to) {
            // Replacing an ancestor would delete the source with it.
            return Err(Error::Conflict("the destination contains the source"));
        }
        let parent = self
            .ensure_parents(&mut tx, dest_grant, to, Parents::MustExist)
            .await?;
        let existing = tx
            .nodes_at_name(dest_grant.account_id, &to.file_key())
            .await?;
        let created = existing.is_empty();
        if !created {
            if !overwrite {
                return Err(Error::PreconditionFailed);
            }
            for node in &existing {
                tx.trash_subtree(node, Some(ctx.principal.account_id.0))
                    .await?;
            }
        }
        let kind = Kind::from_catalog(source.kind);
        let new_key = to.key(kind);
        let name = to.name().unwrap_or_default().to_owned();
        match transfer {
            Transfer::Move => {
                tx.move_subtree(&source, parent.as_ref().map(|p| p.id), &name, &new_key)
                    .await?;
                self.settle_emptied_parent(&mut tx, source.parent_id, false)
                    .await?;
                tx.insert_audit(&self.audit(ctx, grant, "move", &source.key))
                    .await?;
            }
            Transfer::Copy { recursive } => {
                let rows = if recursive {
                    tx.subtree(&source).await?
                } else {
                    vec![source.clone()]
                };
                self.copy_rows(
                    &mut tx,
                    ctx,
                    dest_grant,
                    &source,
                    &rows,
                    &new_key,
                    &name,
                    parent.as_ref(),
                )
                .await?;
                tx.insert_audit(&self.audit(ctx, dest_grant, "copy", &new_key))
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Inserts copies of `rows` (a subtree in key order) under `new_key`. Copies share the
    /// source's blobs (a reference, not a byte copy) and count against the quota.
    #[allow(clippy::too_many_arguments)]
    async fn copy_rows(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        grant: Grant,
        source: &NodeRow,
        rows: &[NodeRow],
        new_key: &str,
        new_name: &str,
        parent: Option<&NodeRow>,
    ) -> Result<()> {
        let bytes: i64 = rows
            .iter()
            .filter(|row| row.version_row.is_some())
            .map(|row| row.size)
            .sum();
        if !tx.charge_usage(grant.account_id, bytes).await? {
            return Err(Error::QuotaExceeded);
        }
        let mut new_ids: HashMap<i64, i64> = HashMap::new();
        let old_prefix_len = source.key.len();
        for row in rows {
            let is_root = row.id == source.id;
            let key = if is_root {
                new_key.to_owned()
            } else {
                format!("{new_key}{}", &row.key[old_prefix_len..])
            };
            let parent_id = if is_root {
                parent.map(|p| p.id)
            } else {
                row.parent_id.and_then(|p| new_ids.get(&p).copied())
            };
            let copy = tx
                .insert_node(&NewNode {
                    account_id: grant.account_id,
                    parent_id,
                    kind: row.kind,
                    name: if is_root {
                        new_name.to_owned()
                    } else {
                        row.name.clone()
                    },
                    key,
                    // A copy is made on purpose: its folders are ordinary folders.
                    implicit: false,
                    mtime: row.mtime,
                })
                .await?;
            new_ids.insert(row.id, copy.id);
            tx.copy_dead_props(row.id, copy.id).await?;
            if let Some(version_row) = row.version_row {
                let version = tx
                    .version(version_row)
                    .await?
                    .ok_or_else(|| Error::internal("current version row missing"))?;
                if let Some(blob_id) = version.blob_id {
                    tx.add_blob_refs(blob_id, 1).await?;
                }
                let copied = tx
                    .insert_version(&NewVersion {
                        node_id: copy.id,
                        version_id: new_version_id(),
                        blob_id: version.blob_id,
                        size: version.size,
                        etag: version.etag.clone(),
                        blake3: version.blake3.clone(),
                        content_type: version.content_type.clone(),
                        attributes: version.attributes.clone(),
                        mtime: version.mtime,
                        created_by: Some(ctx.principal.account_id.0),
                    })
                    .await?;
                tx.set_current_version(copy.id, &copied).await?;
            }
        }
        Ok(())
    }

    /// Deletes what a tree shows at `path` (WebDAV DELETE): the subtree goes to the trash
    /// as one entry.
    pub async fn delete(&self, ctx: &Ctx, path: &NodePath) -> Result<()> {
        let grant = self.authorize(&ctx.principal, path, Action::Delete)?;
        if path.is_root() {
            return Err(Error::Forbidden);
        }
        let mut tx = self.inner.catalog.begin().await?;
        let rows = tx.nodes_at_name(grant.account_id, &path.file_key()).await?;
        let node = rows
            .iter()
            .find(|row| row.is_folder())
            .or_else(|| rows.first())
            .cloned();
        let node = node.ok_or(Error::NotFound(Missing::Node))?;
        tx.trash_subtree(&node, Some(ctx.principal.account_id.0))
            .await?;
        self.settle_emptied_parent(&mut tx, node.parent_id, false)
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "delete", &node.key))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an S3 object: `kind` Folder is a folder's marker (`key/`). Returns whether
    /// there was anything to delete (S3 answers 204 either way). Folders that existed only
    /// because of this object disappear with it.
    pub async fn delete_object(&self, ctx: &Ctx, path: &NodePath, kind: Kind) -> Result<bool> {
        let grant = self.authorize(&ctx.principal, path, Action::Delete)?;
        if path.depth() < 2 {
            return Err(Error::invalid_name("an object key is required"));
        }
        let mut tx = self.inner.catalog.begin().await?;
        let bucket_key = NodePath::from_segments([path.bucket().unwrap_or_default()])?.folder_key();
        if tx
            .node_by_key(grant.account_id, &bucket_key)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(Missing::Bucket));
        }
        let Some(node) = tx.node_by_key(grant.account_id, &path.key(kind)).await? else {
            return Ok(false);
        };
        if node.is_folder() {
            if node.implicit {
                // Not an object: S3 deletes of absent keys succeed without effect.
                return Ok(false);
            }
            if tx.has_children(node.id).await? {
                // The marker goes; the folder stays for what is inside, as S3 sees it.
                tx.clear_current_version(node.id).await?;
                tx.set_implicit(node.id, true).await?;
            } else if !tx.delete_empty_node(node.id).await? {
                tx.trash_subtree(&node, Some(ctx.principal.account_id.0))
                    .await?;
            }
        } else {
            tx.trash_subtree(&node, Some(ctx.principal.account_id.0))
                .await?;
        }
        self.settle_emptied_parent(&mut tx, node.parent_id, true)
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "delete", &node.key))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// After something left a folder: an implicit folder that is now empty disappears when
    /// S3 emptied it (and so on upwards, never the bucket), and becomes an ordinary folder
    /// when a tree client did — that client saw it and may expect it to stay.
    async fn settle_emptied_parent(
        &self,
        tx: &mut Tx,
        parent_id: Option<i64>,
        by_s3: bool,
    ) -> Result<()> {
        let mut cursor = parent_id;
        while let Some(id) = cursor {
            let Some(folder) = tx.node_by_id(id).await? else {
                break;
            };
            if !folder.implicit || folder.trashed_at.is_some() || folder.parent_id.is_none() {
                break;
            }
            if tx.has_children(folder.id).await? {
                break;
            }
            if !by_s3 {
                tx.set_implicit(folder.id, false).await?;
                break;
            }
            if !tx.delete_empty_node(folder.id).await? {
                tx.trash_subtree(&folder, None).await?;
            }
            cursor = folder.parent_id;
        }
        Ok(())
    }

    // ---- buckets ---------------------------------------------------------------------

    /// The account's buckets: top-level folders whose names are valid bucket names.
    pub async fn list_buckets(&self, ctx: &Ctx) -> Result<Vec<Entry>> {
        let entries = self
            .list_folder(ctx, &NodePath::root(), None, i64::MAX)
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.is_folder() && e.path.name().is_some_and(crate::is_valid_bucket_name))
            .collect())
    }

    pub async fn bucket(&self, ctx: &Ctx, name: &str) -> Result<Entry> {
        let path = NodePath::from_segments([name]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        self.stat(ctx, &path, Kind::Folder)
            .await
            .map_err(|err| match err {
                Error::NotFound(_) => Error::NotFound(Missing::Bucket),
                other => other,
            })
    }

    pub async fn create_bucket(&self, ctx: &Ctx, name: &str) -> Result<Entry> {
        crate::validate_bucket_name(name)?;
        let path = NodePath::from_segments([name])?;
        self.mkdir(ctx, &path, MkdirOptions::default()).await
    }

    /// Deletes an empty bucket (nothing live inside).
    pub async fn delete_bucket(&self, ctx: &Ctx, name: &str) -> Result<()> {
        let path = NodePath::from_segments([name]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        let grant = self.authorize(&ctx.principal, &path, Action::Delete)?;
        let mut tx = self.inner.catalog.begin().await?;
        let bucket = tx
            .node_by_key(grant.account_id, &path.folder_key())
            .await?
            .ok_or(Error::NotFound(Missing::Bucket))?;
        if tx.has_children(bucket.id).await? {
            return Err(Error::NotEmpty);
        }
        if !tx.delete_empty_node(bucket.id).await? {
            tx.trash_subtree(&bucket, Some(ctx.principal.account_id.0))
                .await?;
        }
        tx.insert_audit(&self.audit(ctx, grant, "delete_bucket", &bucket.key))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The state conditional requests compare against: the current ETag and mtime.
fn current_state(row: &NodeRow) -> Option<(&str, Timestamp)> {
    if row.version_row.is_none() && row.is_folder() {
        return None;
    }
    row.etag
        .as_deref()
        .map(|etag| (etag, Timestamp::from_nanos(row.mtime)))
}
