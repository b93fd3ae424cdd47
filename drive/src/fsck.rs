//! `portico fsck`: compares the catalog with the volume. It reports blobs the catalog
//! needs but the disk lacks (data loss: never "repaired" by deleting rows), files the
//! catalog does not know (orphans of interrupted uploads) and stale temp files; `repair`
//! removes only what is safe: orphans and temp files older than the grace period, and
//! blobs nothing references.

use std::collections::HashSet;
use std::time::SystemTime;

use portico_volume::{BlobLocator, ORPHAN_GRACE};

use crate::Drive;
use crate::error::{Error, Result};

/// What fsck found (and, with repair, did).
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    pub blobs_in_catalog: usize,
    /// Of those, the ones whose bytes are in the catalog row (no file expected).
    pub inline_blobs: usize,
    pub blob_files: usize,
    /// Blob rows whose file is missing, with the keys that point at them.
    pub missing: Vec<(String, Vec<String>)>,
    /// Files on the volume no row refers to.
    pub orphans: Vec<String>,
    /// Orphans younger than the grace period (maybe an upload in flight): left alone.
    pub young_orphans: usize,
    pub temp_files: usize,
    pub refcounts_fixed: u64,
    pub orphans_removed: usize,
    pub temps_removed: usize,
    pub garbage_collected: u64,
}

impl FsckReport {
    /// No data is missing from the volume.
    pub fn is_healthy(&self) -> bool {
        self.missing.is_empty()
    }
}

impl Drive {
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let catalog = &self.inner.catalog;
        let volume = &self.inner.volume;
        let internal = |err: portico_volume::Error| Error::Internal(Box::new(err));
        let rows = catalog.all_blobs().await?;
        let (files, temps) = volume.scan().await.map_err(internal)?;
        let mut report = FsckReport {
            blobs_in_catalog: rows.len(),
            inline_blobs: rows.iter().filter(|row| row.inline).count(),
            blob_files: files.len(),
            temp_files: temps.len(),
            ..FsckReport::default()
        };
        let on_disk: HashSet<&str> = files.iter().map(|f| f.locator.as_str()).collect();
        let known: HashSet<&str> = rows.iter().map(|r| r.locator.as_str()).collect();
        for row in &rows {
            if !row.inline && !on_disk.contains(row.locator.as_str()) && row.refcount > 0 {
                let keys = catalog
                    .keys_using_blob(row.id)
                    .await?
                    .into_iter()
                    .map(|(_, key)| key)
                    .collect();
                report.missing.push((row.locator.clone(), keys));
            }
        }
        let now = SystemTime::now();
        let old = |modified: SystemTime| {
            now.duration_since(modified)
                .is_ok_and(|age| age > ORPHAN_GRACE)
        };
        for file in &files {
            if known.contains(file.locator.as_str()) {
                continue;
            }
            if old(file.modified) {
                report.orphans.push(file.locator.to_string());
            } else {
                report.young_orphans += 1;
            }
        }
        if repair {
            report.refcounts_fixed = catalog.recount_blob_references().await?;
            for locator in &report.orphans {
                if let Some(locator) = BlobLocator::parse(locator) {
                    volume.remove(&locator).await.map_err(internal)?;
                    report.orphans_removed += 1;
                }
            }
            for temp in temps.iter().filter(|t| old(t.modified)) {
                volume.remove_temp(temp).await.map_err(internal)?;
                report.temps_removed += 1;
            }
            report.garbage_collected = self.collect_garbage().await?;
        }
        Ok(report)
    }
}
