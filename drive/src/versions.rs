//! The one version history, as S3 versioning shows it.
//!
//! Every write from any protocol adds a version to its node; a delete moves the node to
//! the trash, which S3 sees as a delete marker (its version id names the trashed node).
//! So ListObjectVersions is the key's live node's versions, then each trashed instance of
//! the key as a delete marker followed by its versions; deleting a delete marker restores
//! the object, and deleting a version removes just that version for good.

use std::collections::HashMap;

use portico_metadata::{KeyRange, NodeRow, VersionRow, prefix_successor};

use crate::checksum::Checksum;
use crate::error::{Error, Missing, Result};
use crate::locks::LockScope;
use crate::model::{Ctx, EMPTY_ETAG, Entry, ObjectAttributes, Timestamp, VersionInfo};
use crate::names::{Kind, NodePath};
use crate::{Action, Drive, Grant};

/// Version ids of delete markers: the trashed node they stand for.
const DELETE_MARKER_PREFIX: &str = "dm-";
/// The version id S3 gives objects without one: here, folders made without a marker
/// object (MKCOL), which list as zero-byte `dir/` objects.
pub const NULL_VERSION: &str = "null";

pub(crate) fn delete_marker_id(node_id: i64) -> String {
    format!("{DELETE_MARKER_PREFIX}{node_id}")
}

fn delete_marker_node(version_id: &str) -> Option<i64> {
    version_id.strip_prefix(DELETE_MARKER_PREFIX)?.parse().ok()
}

/// One entry of a version listing.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    /// The S3 key (folder markers end in `/`).
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: Option<String>,
    pub modified: Timestamp,
    pub checksum: Option<Checksum>,
}

/// One page of S3 ListObjectVersions.
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub entries: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page starts: (key marker, version id marker).
    pub next: Option<(String, String)>,
}

/// What deleting one version did.
#[derive(Debug, Clone)]
pub struct DeletedVersion {
    pub version_id: String,
    /// The version was a delete marker (so the object came back).
    pub delete_marker: bool,
}

/// Nodes fetched per catalog query while listing versions.
const BATCH: i64 = 500;

impl Drive {
    /// A named version of the object at `path`, even when the object was deleted since
    /// (its history lives on in the trash). A delete marker's id is `Error::DeleteMarker`.
    pub(crate) async fn named_version(
        &self,
        grant: Grant,
        path: &NodePath,
        kind: Kind,
        version_id: &str,
    ) -> Result<(Entry, VersionInfo)> {
        let catalog = &self.inner.catalog;
        let key = path.key(kind);
        if let Some(node_id) = delete_marker_node(version_id) {
            return match catalog.node_by_id(node_id).await? {
                Some(node)
                    if node.account_id == grant.account_id
                        && node.key == key
                        && node.trashed_at.is_some() =>
                {
                    Err(Error::DeleteMarker)
                }
                _ => Err(Error::NotFound(Missing::Version)),
            };
        }
        if version_id == NULL_VERSION {
            let node = catalog.node_by_key(grant.account_id, &key).await?;
            return match node {
                Some(node) if node.version_row.is_none() && node.is_folder() && !node.implicit => {
                    let entry = Entry::from_row(&node);
                    let version = null_version(&entry);
                    Ok((entry, version))
                }
                _ => Err(Error::NotFound(Missing::Version)),
            };
        }
        let row = catalog
            .version_by_public_id(version_id)
            .await?
            .ok_or(Error::NotFound(Missing::Version))?;
        let node = catalog
            .node_by_id(row.node_id)
            .await?
            .ok_or(Error::NotFound(Missing::Version))?;
        if node.account_id != grant.account_id || node.key != key {
            return Err(Error::NotFound(Missing::Version));
        }
        let current = node.trashed_at.is_none() && node.version_row == Some(row.id);
        Ok((Entry::from_row(&node), VersionInfo::from_row(&row, current)))
    }

    /// One page of S3 ListObjectVersions for a bucket.
    pub async fn list_object_versions(
        &self,
        ctx: &Ctx,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<(String, Option<String>)>,
        max: usize,
    ) -> Result<VersionPage> {
        let bucket_path =
            NodePath::from_segments([bucket]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        let grant = self.authorize(ctx, &bucket_path, Action::Read).await?;
        self.bucket(ctx, bucket).await?;
        let catalog = &self.inner.catalog;
        let bucket_key = bucket_path.folder_key();
        let full_prefix = format!("{bucket_key}{prefix}");
        let upper = prefix_successor(&full_prefix);
        let to_s3 = |key: &str| key[bucket_key.len()..].to_owned();
        let delimiter = delimiter.filter(|d| !d.is_empty());

        // Resume strictly after a key, or inside it after a version.
        let (mut from, mut after_key, mut skip_to) = match after {
            Some((key, Some(version))) if !version.is_empty() => {
                let full = format!("{bucket_key}{key}");
                (full.clone(), bucket_key.clone(), Some((full, version)))
            }
            Some((key, _)) => (full_prefix.clone(), format!("{bucket_key}{key}"), None),
            None => (full_prefix.clone(), bucket_key.clone(), None),
        };
        if from < full_prefix {
            from = full_prefix.clone();
        }
        let mut page = VersionPage::default();
        let mut count = 0usize;
        'scan: loop {
            let range = KeyRange {
                from: from.clone(),
                after: after_key.clone(),
                to: upper.clone(),
            };
            let mut nodes = catalog
                .nodes_with_history(grant.account_id, &range, BATCH)
                .await?;
            let exhausted = (nodes.len() as i64) < BATCH;
            if !exhausted {
                // The last key may continue in the next batch: leave it for then, unless the
                // whole batch is that one key.
                let last_key = nodes.last().map(|n| n.key.clone()).unwrap_or_default();
                let complete = nodes.iter().filter(|n| n.key != last_key).count();
                if complete > 0 {
                    nodes.truncate(complete);
                }
            }
            let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
            let mut versions: HashMap<i64, Vec<VersionRow>> = HashMap::new();
            for row in catalog.versions_of_nodes(&ids).await? {
                versions.entry(row.node_id).or_default().push(row);
            }
            let mut index = 0;
            while index < nodes.len() {
                let key = nodes[index].key.clone();
                let end = nodes[index..]
                    .iter()
                    .position(|n| n.key != key)
                    .map_or(nodes.len(), |p| index + p);
                let group = &nodes[index..end];
                index = end;
                after_key = key.clone();
                from = full_prefix.clone();

                let rest = &key[full_prefix.len()..];
                if let Some(delimiter) = delimiter
                    && let Some(at) = rest.find(delimiter)
                {
                    if count == max {
                        page.is_truncated = true;
                        break 'scan;
                    }
                    let common = format!("{full_prefix}{}", &rest[..at + delimiter.len()]);
                    page.common_prefixes.push(to_s3(&common));
                    page.next = Some((to_s3(&common), String::new()));
                    count += 1;
                    match prefix_successor(&common) {
                        Some(next) => {
                            from = next;
                            after_key = common;
                            continue 'scan;
                        }
                        None => break 'scan,
                    }
                }

                let mut entries = history(group, &versions, &to_s3(&key));
                if let Some((skip_key, marker)) = &skip_to
                    && *skip_key == key
                {
                    match entries.iter().position(|e| &e.version_id == marker) {
                        Some(position) => {
                            entries.drain(..=position);
                        }
                        None => entries.clear(),
                    }
                    skip_to = None;
                }
                for entry in entries {
                    if count == max {
                        page.is_truncated = true;
                        break 'scan;
                    }
                    page.next = Some((entry.key.clone(), entry.version_id.clone()));
                    page.entries.push(entry);
                    count += 1;
                }
            }
            if exhausted {
                break;
            }
        }
        if !page.is_truncated {
            page.next = None;
        }
        Ok(page)
    }

    /// Deletes one version for good (S3 DeleteObject with a version id). Deleting a delete
    /// marker brings the object back, as in S3.
    pub async fn delete_version(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        version_id: &str,
    ) -> Result<DeletedVersion> {
        let grant = self.authorize(ctx, path, Action::Delete).await?;
        let key = path.key(kind);
        if let Some(node_id) = delete_marker_node(version_id) {
            self.remove_delete_marker(ctx, grant, path, &key, node_id)
                .await?;
            return Ok(DeletedVersion {
                version_id: version_id.to_owned(),
                delete_marker: true,
            });
        }
        if version_id == NULL_VERSION {
            self.delete_object(ctx, path, kind).await?;
            return Ok(DeletedVersion {
                version_id: version_id.to_owned(),
                delete_marker: false,
            });
        }
        let row = self
            .inner
            .catalog
            .version_by_public_id(version_id)
            .await?
            .ok_or(Error::NotFound(Missing::Version))?;
        let mut tx = self.inner.catalog.begin().await?;
        self.check_locks(&mut tx, grant, ctx, path, LockScope::Membership)
            .await?;
        // Locked first: concurrent deletes of a key's versions (rclone purges in parallel)
        // each see the others' work before deciding what becomes current.
        let node = tx
            .node_by_id_locked(row.node_id)
            .await?
            .ok_or(Error::NotFound(Missing::Version))?;
        if node.account_id != grant.account_id || node.key != key {
            return Err(Error::NotFound(Missing::Version));
        }
        let Some(row) = tx.version(row.id).await? else {
            return Err(Error::NotFound(Missing::Version));
        };
        tx.delete_version(grant.account_id, &row).await?;
        if node.version_row == Some(row.id) {
            match tx.latest_version(node.id).await? {
                Some(previous) => {
                    tx.set_current_version(node.id, &previous).await?;
                }
                None if node.is_folder() => tx.clear_current_version(node.id).await?,
                None => {
                    tx.delete_node(node.id).await?;
                    if node.trashed_at.is_none() {
                        self.settle_emptied_parent(&mut tx, node.parent_id, true)
                            .await?;
                    }
                }
            }
        } else if node.trashed_at.is_some()
            && tx.latest_version(node.id).await?.is_none()
            && !node.is_folder()
        {
            // A deleted object whose last version is gone leaves no history behind.
            tx.delete_node(node.id).await?;
        }
        tx.insert_audit(&self.audit(ctx, grant, "delete_version", &key))
            .await?;
        tx.commit().await?;
        self.collect_garbage().await?;
        Ok(DeletedVersion {
            version_id: version_id.to_owned(),
            delete_marker: false,
        })
    }

    async fn remove_delete_marker(
        &self,
        ctx: &Ctx,
        grant: Grant,
        path: &NodePath,
        key: &str,
        node_id: i64,
    ) -> Result<()> {
        let mut tx = self.inner.catalog.begin().await?;
        self.check_locks(&mut tx, grant, ctx, path, LockScope::Membership)
            .await?;
        let node = tx
            .node_by_id_locked(node_id)
            .await?
            .ok_or(Error::NotFound(Missing::Version))?;
        if node.account_id != grant.account_id || node.key != key || node.trashed_at.is_none() {
            return Err(Error::NotFound(Missing::Version));
        }
        match tx.node_by_key(grant.account_id, key).await? {
            // The key lives again: the old marker just leaves the history, its versions stay.
            Some(live) if !node.is_folder() => tx.merge_history(node.id, live.id).await?,
            Some(_) => return Err(Error::Conflict("a folder of that name exists again")),
            None => {
                let parent = self
                    .ensure_parents(&mut tx, grant, path, crate::Parents::CreateImplicit)
                    .await?;
                if node.trash_root_id == Some(node.id) {
                    tx.restore_subtree(grant.account_id, node.id, parent.as_ref().map(|p| p.id))
                        .await?;
                } else {
                    tx.restore_node(node.id, parent.as_ref().map(|p| p.id))
                        .await?;
                }
            }
        }
        tx.insert_audit(&self.audit(ctx, grant, "undelete", key))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The "null" version of a folder made without a marker object: empty content.
pub(crate) fn null_version(entry: &Entry) -> VersionInfo {
    VersionInfo {
        version_id: NULL_VERSION.to_owned(),
        size: 0,
        etag: EMPTY_ETAG.to_owned(),
        content_type: None,
        attributes: ObjectAttributes::default(),
        modified: entry.modified,
        created: entry.created,
        is_current: true,
        parts_count: None,
        locator: None,
        blob: None,
        row: None,
    }
}

/// A key's history, newest first: the live node's versions, then for each trashed instance
/// its delete marker and its versions.
fn history(
    group: &[NodeRow],
    versions: &HashMap<i64, Vec<VersionRow>>,
    s3_key: &str,
) -> Vec<VersionEntry> {
    let mut entries = Vec::new();
    for node in group {
        let live = node.trashed_at.is_none();
        if let Some(trashed_at) = node.trashed_at {
            entries.push(VersionEntry {
                key: s3_key.to_owned(),
                version_id: delete_marker_id(node.id),
                is_latest: false,
                delete_marker: true,
                size: 0,
                etag: None,
                modified: Timestamp::from_nanos(trashed_at),
                checksum: None,
            });
        }
        let rows = versions
            .get(&node.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if rows.is_empty() && live && node.is_folder() && !node.implicit {
            entries.push(VersionEntry {
                key: s3_key.to_owned(),
                version_id: NULL_VERSION.to_owned(),
                is_latest: true,
                delete_marker: false,
                size: 0,
                etag: Some(EMPTY_ETAG.to_owned()),
                modified: Timestamp::from_nanos(node.mtime),
                checksum: None,
            });
        }
        for row in rows {
            let current = live && node.version_row == Some(row.id);
            entries.push(VersionEntry {
                key: s3_key.to_owned(),
                version_id: row.version_id.clone(),
                is_latest: current,
                delete_marker: false,
                size: u64::try_from(row.size).unwrap_or(0),
                etag: Some(row.etag.clone()),
                modified: Timestamp::from_nanos(if current { node.mtime } else { row.mtime }),
                checksum: ObjectAttributes::from_json(&row.attributes).checksum,
            });
        }
    }
    // With no live node, the newest delete marker is the latest "version".
    if let Some(first) = entries.first_mut()
        && first.delete_marker
    {
        first.is_latest = true;
    }
    entries
}
