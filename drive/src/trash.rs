//! The trash: deleted subtrees, each one entry, restorable to where they were until purged.

use portico_metadata::{NodeRow, Tx};
use portico_volume::BlobLocator;

use crate::error::{Error, Missing, Result};
use crate::model::{Ctx, Timestamp, TrashEntry};
use crate::names::{Kind, NodePath};
use crate::{Action, Drive, Grant};

impl Drive {
    pub async fn list_trash(&self, ctx: &Ctx) -> Result<Vec<TrashEntry>> {
        let grant = self.authorize(ctx, &NodePath::root(), Action::Read).await?;
        let rows = self.inner.catalog.list_trash(grant.account_id).await?;
        Ok(rows.iter().map(trash_entry).collect())
    }

    /// Brings a trashed subtree back to its old path, recreating missing parent folders.
    /// Fails with `AlreadyExists` when something now lives there.
    pub async fn restore(&self, ctx: &Ctx, trash_id: i64) -> Result<TrashEntry> {
        let grant = self
            .authorize(ctx, &NodePath::root(), Action::Write)
            .await?;
        let mut tx = self.inner.catalog.begin().await?;
        let root = tx
            .trash_root(grant.account_id, trash_id)
            .await?
            .ok_or(Error::NotFound(Missing::TrashEntry))?;
        if tx.node_by_key(grant.account_id, &root.key).await?.is_some() {
            return Err(Error::AlreadyExists);
        }
        let path = NodePath::from_key(&root.key);
        let parent = self.restore_parents(&mut tx, grant, &path).await?;
        tx.restore_subtree(grant.account_id, root.id, parent)
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "restore", &root.key))
            .await?;
        tx.commit().await?;
        Ok(trash_entry(&root))
    }

    async fn restore_parents(
        &self,
        tx: &mut Tx,
        grant: Grant,
        path: &NodePath,
    ) -> Result<Option<i64>> {
        let Some(parent) = path.parent() else {
            return Ok(None);
        };
        if parent.is_root() {
            return Ok(None);
        }
        let mut missing = Vec::new();
        let mut cursor = Some(parent);
        let mut found = None;
        while let Some(folder) = cursor {
            if folder.is_root() {
                break;
            }
            if let Some(row) = tx
                .node_by_key(grant.account_id, &folder.folder_key())
                .await?
            {
                found = Some(row.id);
                break;
            }
            cursor = folder.parent();
            missing.push(folder);
        }
        let mut parent_id = found;
        for folder in missing.iter().rev() {
            let row = tx
                .insert_node(&portico_metadata::NewNode {
                    account_id: grant.account_id,
                    parent_id,
                    kind: Kind::Folder.to_catalog(),
                    name: folder.name().unwrap_or_default().to_owned(),
                    key: folder.folder_key(),
                    implicit: false,
                    mtime: Timestamp::now().nanos(),
                })
                .await?;
            parent_id = Some(row.id);
        }
        Ok(parent_id)
    }

    /// Deletes a trashed subtree for good, releasing its storage.
    pub async fn purge(&self, ctx: &Ctx, trash_id: i64) -> Result<u64> {
        let grant = self
            .authorize(ctx, &NodePath::root(), Action::Delete)
            .await?;
        let mut tx = self.inner.catalog.begin().await?;
        let root = tx
            .trash_root(grant.account_id, trash_id)
            .await?
            .ok_or(Error::NotFound(Missing::TrashEntry))?;
        let purged = tx.purge_subtree(grant.account_id, root.id).await?;
        tx.insert_audit(&self.audit(ctx, grant, "purge", &root.key))
            .await?;
        tx.commit().await?;
        self.collect_garbage().await?;
        Ok(u64::try_from(purged.bytes).unwrap_or(0))
    }

    /// Removes blobs nothing refers to any more: the file first, then the row, so a crash
    /// in between leaves a row that the next run finishes, never a row without a file.
    pub async fn collect_garbage(&self) -> Result<u64> {
        let mut removed = 0;
        loop {
            let blobs = self.inner.catalog.unreferenced_blobs(500).await?;
            if blobs.is_empty() {
                return Ok(removed);
            }
            for blob in blobs.iter() {
                if !blob.inline {
                    let locator = BlobLocator::parse(&blob.locator)
                        .ok_or_else(|| Error::internal("corrupt blob locator"))?;
                    self.inner
                        .volume
                        .remove(&locator)
                        .await
                        .map_err(|err| Error::Internal(Box::new(err)))?;
                }
                if self.inner.catalog.forget_blob(blob.id).await? {
                    removed += 1;
                }
            }
        }
    }
}

fn trash_entry(row: &NodeRow) -> TrashEntry {
    TrashEntry {
        id: row.id,
        path: NodePath::from_key(&row.key),
        kind: Kind::from_catalog(row.kind),
        size: u64::try_from(row.size).unwrap_or(0),
        trashed_at: Timestamp::from_nanos(row.trashed_at.unwrap_or_default()),
    }
}
