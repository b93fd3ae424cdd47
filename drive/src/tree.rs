//! The tree: move, copy, delete (to the trash), and buckets (top-level folders).

use std::collections::HashMap;

use portico_metadata::{NewNode, NewVersion, NodeRow, Tx};

use crate::error::{Error, Missing, Result};
use crate::locks::LockScope;
use crate::model::Ctx;
use crate::names::{Kind, NodePath};
use crate::write::{Parents, new_version_id};
use crate::{Action, Drive, Grant};

/// Move or copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Move,
    /// `recursive: false` copies a folder without its contents (WebDAV `Depth: 0`).
    Copy {
        recursive: bool,
    },
}

impl Drive {
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
        let action = if transfer == Transfer::Move {
            Action::Delete
        } else {
            Action::Read
        };
        let grant = self.authorize(ctx, from, action).await?;
        let dest_grant = self.authorize(ctx, to, Action::Write).await?;
        if from.is_root() || to.is_root() {
            return Err(Error::Forbidden);
        }
        if from == to {
            return Err(Error::Forbidden);
        }
        let mut tx = self.inner.catalog.begin().await?;
        if transfer == Transfer::Move {
            self.check_locks(&mut tx, grant, ctx, from, LockScope::Membership)
                .await?;
        }
        self.check_locks(&mut tx, dest_grant, ctx, to, LockScope::Membership)
            .await?;
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
                tx.delete_locks_at(dest_grant.account_id, &node.key).await?;
            }
        }
        let kind = Kind::from_catalog(source.kind);
        let new_key = to.key(kind);
        let name = to.name().unwrap_or_default().to_owned();
        match transfer {
            Transfer::Move => {
                tx.move_subtree(&source, parent.as_ref().map(|p| p.id), &name, &new_key)
                    .await?;
                // Locks belong to the source's URLs, which are gone (RFC 4918 §9.9.4).
                tx.delete_locks_at(grant.account_id, &source.key).await?;
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
                        // The node's time, which X-OC-Mtime or Win32LastModifiedTime may have set.
                        mtime: row.mtime,
                        created_by: Some(ctx.principal.account_id.0),
                        parts_count: version.parts_count,
                    })
                    .await?;
                if version.parts_count.is_some() {
                    tx.copy_segments(version.id, copied.id).await?;
                }
                tx.set_current_version(copy.id, &copied).await?;
            }
        }
        Ok(())
    }

    /// Deletes what a tree shows at `path` (WebDAV DELETE): the subtree goes to the trash
    /// as one entry.
    pub async fn delete(&self, ctx: &Ctx, path: &NodePath) -> Result<()> {
        self.on_writer(ctx, path, |drive, ctx, path| async move {
            drive.delete_here(&ctx, &path).await
        })
        .await
    }

    async fn delete_here(&self, ctx: &Ctx, path: &NodePath) -> Result<()> {
        let grant = self.authorize(ctx, path, Action::Delete).await?;
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
        self.check_locks(&mut tx, grant, ctx, path, LockScope::Membership)
            .await?;
        tx.trash_subtree(&node, Some(ctx.principal.account_id.0))
            .await?;
        tx.delete_locks_at(grant.account_id, &node.key).await?;
        self.settle_emptied_parent(&mut tx, node.parent_id, false)
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "delete", &node.key))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an S3 object: `kind` Folder is a folder's marker (`key/`). The object goes to
    /// the trash — in S3 terms, it gets a delete marker, whose version id is returned (`None`
    /// when there was nothing to delete; S3 answers 204 either way). Folders that existed
    /// only because of this object disappear with it.
    pub async fn delete_object(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
    ) -> Result<Option<String>> {
        self.on_writer(ctx, path, |drive, ctx, path| async move {
            drive.delete_object_here(&ctx, &path, kind).await
        })
        .await
    }

    async fn delete_object_here(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
    ) -> Result<Option<String>> {
        let grant = self.authorize(ctx, path, Action::Delete).await?;
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
        let Some(node) = tx
            .node_by_key_locked(grant.account_id, &path.key(kind))
            .await?
        else {
            return Ok(None);
        };
        self.check_locks(&mut tx, grant, ctx, path, LockScope::Membership)
            .await?;
        let mut marker = None;
        if node.is_folder() {
            if node.implicit {
                // Not an object: S3 deletes of absent keys succeed without effect.
                return Ok(None);
            }
            if tx.has_children(node.id).await? {
                // The marker goes; the folder stays for what is inside, as S3 sees it.
                tx.clear_current_version(node.id).await?;
                tx.set_implicit(node.id, true).await?;
            } else if !tx.delete_empty_node(node.id).await? {
                tx.trash_subtree(&node, Some(ctx.principal.account_id.0))
                    .await?;
                marker = Some(crate::versions::delete_marker_id(node.id));
            }
        } else {
            tx.trash_subtree(&node, Some(ctx.principal.account_id.0))
                .await?;
            marker = Some(crate::versions::delete_marker_id(node.id));
        }
        self.settle_emptied_parent(&mut tx, node.parent_id, true)
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "delete", &node.key))
            .await?;
        tx.commit().await?;
        Ok(marker)
    }

    /// After something left a folder: an implicit folder that is now empty disappears when
    /// S3 emptied it (and so on upwards, never the bucket), and becomes an ordinary folder
    /// when a tree client did — that client saw it and may expect it to stay.
    pub(crate) async fn settle_emptied_parent(
        &self,
        tx: &mut Tx,
        parent_id: Option<i64>,
        by_s3: bool,
    ) -> Result<()> {
        let mut cursor = parent_id;
        while let Some(id) = cursor {
            // Locked, then read: a concurrent delete of the folder's other last child has
            // committed by the time we look at what is left.
            let Some(folder) = tx.node_by_id_locked(id).await? else {
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
}
