//! WebDAV dead properties: whatever properties clients set with PROPPATCH, in any
//! namespace, kept per node in the catalog — so they follow the node through MOVE, are
//! copied by COPY, go to the trash and come back with it.

use crate::Checksum;
use crate::error::{Error, Result};
use crate::locks::LockScope;
use crate::model::{Ctx, Entry, ObjectAttributes, Timestamp};
use crate::{Action, Drive};

/// Longest property value kept, in bytes of XML: Windows and Office send a few hundred.
pub const MAX_DEAD_PROP_XML: usize = 64 << 10;

/// A dead property: its name, and the whole property element as XML, with the namespace
/// declarations it needs to stand alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    pub namespace: String,
    pub name: String,
    pub xml: String,
}

/// One instruction of a PROPPATCH, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropChange {
    Set(DeadProp),
    Remove { namespace: String, name: String },
}

impl Drive {
    /// The dead properties of `entries` (entries the caller was given by the drive, so
    /// already authorized), in the same order: one catalog query for a page of a listing.
    pub async fn dead_props(&self, entries: &[&Entry]) -> Result<Vec<Vec<DeadProp>>> {
        let ids: Vec<i64> = entries.iter().map(|e| e.node_id).collect();
        let rows = self.inner.catalog.dead_props(&ids).await?;
        Ok(entries
            .iter()
            .map(|entry| {
                rows.iter()
                    .filter(|row| row.node_id == entry.node_id)
                    .map(|row| DeadProp {
                        namespace: row.namespace.clone(),
                        name: row.name.clone(),
                        xml: row.value_xml.clone(),
                    })
                    .collect()
            })
            .collect())
    }

    /// The checksums stored with the current versions of `entries` (given by the drive,
    /// so already authorized), in order: one query for a page of a listing.
    pub async fn stored_checksums(&self, entries: &[&Entry]) -> Result<Vec<Option<Checksum>>> {
        let rows: Vec<i64> = entries.iter().filter_map(|e| e.version_row).collect();
        let found = self.inner.catalog.version_attributes(&rows).await?;
        Ok(entries
            .iter()
            .map(|entry| {
                let row = entry.version_row?;
                let (_, json) = found.iter().find(|(id, _)| *id == row)?;
                ObjectAttributes::from_json(json).checksum
            })
            .collect())
    }

    /// Applies a PROPPATCH: every change, and the new modification time if one was set
    /// (`Win32LastModifiedTime`), in one transaction — all or nothing (RFC 4918 §9.2).
    pub async fn change_props(
        &self,
        ctx: &Ctx,
        entry: &Entry,
        changes: &[PropChange],
        modified: Option<Timestamp>,
    ) -> Result<()> {
        let grant = self.authorize(ctx, &entry.path, Action::Write).await?;
        let mut tx = self.inner.catalog.begin().await?;
        self.check_locks(&mut tx, grant, ctx, &entry.path, LockScope::Content)
            .await?;
        for change in changes {
            match change {
                PropChange::Set(prop) => {
                    if prop.xml.len() > MAX_DEAD_PROP_XML {
                        return Err(Error::TooLarge {
                            limit: MAX_DEAD_PROP_XML as u64,
                        });
                    }
                    tx.set_dead_prop(entry.node_id, &prop.namespace, &prop.name, &prop.xml)
                        .await?;
                }
                PropChange::Remove { namespace, name } => {
                    tx.remove_dead_prop(entry.node_id, namespace, name).await?;
                }
            }
        }
        if let Some(modified) = modified {
            tx.set_mtime(entry.node_id, modified.nanos()).await?;
        }
        tx.insert_audit(&self.audit(ctx, grant, "proppatch", &entry.key()))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
