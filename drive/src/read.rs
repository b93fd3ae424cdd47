//! Reading: stat, resolve, versions, and the bytes of a version (a range, a part, or all,
//! across a multipart object's blobs).

use std::ops::Range;

use bytes::Bytes;
use portico_volume::{BlobLocator, BlobStream};

use crate::conditions::{ByteRange, Preconditions};
use crate::error::{Error, Missing, Result};
use crate::model::{Ctx, Entry, Timestamp, VersionInfo};
use crate::names::{Kind, NodePath};
use crate::{Action, Drive, Grant};

/// What to read: which version, which bytes, under which conditions.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    pub version_id: Option<String>,
    pub range: Option<ByteRange>,
    /// One part of a multipart object (S3 `partNumber`).
    pub part_number: Option<u32>,
    pub preconditions: Preconditions,
}

/// An open read: what is being read, and the bytes.
pub struct Download {
    pub entry: Entry,
    pub version: VersionInfo,
    /// The byte range sent, when the request asked for part of the content.
    pub range: Option<Range<u64>>,
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

impl Drive {
    pub(crate) fn root_entry(&self) -> Entry {
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
        let grant = self.authorize(ctx, path, Action::Read).await?;
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
        let grant = self.authorize(ctx, path, Action::Read).await?;
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

    /// The current version of `entry`.
    async fn current_version(&self, entry: &Entry) -> Result<VersionInfo> {
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
            None => Ok(crate::versions::null_version(entry)),
        }
    }

    /// Metadata of a node's current (or a named) version, after evaluating conditions.
    pub async fn head(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        request: &ReadRequest,
    ) -> Result<(Entry, VersionInfo)> {
        let (entry, version) = match request.version_id.as_deref() {
            Some(version_id) => {
                let grant = self.authorize(ctx, path, Action::Read).await?;
                self.named_version(grant, path, kind, version_id).await?
            }
            None => {
                let entry = self.stat(ctx, path, kind).await?;
                if entry.implicit && !entry.has_content && kind == Kind::Folder && !path.is_root() {
                    // An implicit folder is not an object of its own.
                    return Err(Error::NotFound(Missing::Node));
                }
                let version = self.current_version(&entry).await?;
                (entry, version)
            }
        };
        let modified = if version.is_current {
            entry.modified
        } else {
            version.modified
        };
        request
            .preconditions
            .evaluate(Some((&version.etag, modified)), true)?;
        Ok((entry, version))
    }

    /// The byte range a request selects: a `Range`, a part number of a multipart object
    /// (S3 `partNumber`), or everything. `Ok(None)` means the whole content.
    pub async fn selected_range(
        &self,
        version: &VersionInfo,
        request: &ReadRequest,
    ) -> Result<Option<Range<u64>>> {
        if let Some(part) = request.part_number {
            let invalid = || Error::InvalidPartNumber {
                parts: version.parts_count.unwrap_or(1),
            };
            if part == 0 {
                return Err(invalid());
            }
            let Some(row) = version.row.filter(|_| version.parts_count.is_some()) else {
                // A single-part object is its own part 1.
                return if part == 1 {
                    Ok(Some(0..version.size))
                } else {
                    Err(invalid())
                };
            };
            let segments = self.inner.catalog.segments(row).await?;
            let index = usize::try_from(part - 1).map_err(|_| invalid())?;
            if index >= segments.len() {
                return Err(invalid());
            }
            let start: u64 = segments[..index].iter().map(|s| s.size as u64).sum();
            return Ok(Some(start..start + segments[index].size as u64));
        }
        request
            .range
            .map(|range| range.resolve(version.size))
            .transpose()
    }

    /// The sizes of a multipart object's parts, in order; `None` for an object written
    /// whole (S3 GetObjectAttributes lists parts only for multipart objects).
    pub async fn part_sizes(&self, version: &VersionInfo) -> Result<Option<Vec<u64>>> {
        let Some(row) = version.row.filter(|_| version.parts_count.is_some()) else {
            return Ok(None);
        };
        let segments = self.inner.catalog.segments(row).await?;
        Ok(Some(
            segments
                .iter()
                .map(|s| u64::try_from(s.size).unwrap_or(0))
                .collect(),
        ))
    }

    /// Opens a node's content (or a range, or one part of it) for reading.
    pub async fn open(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        request: &ReadRequest,
    ) -> Result<Download> {
        let (entry, version) = self.head(ctx, path, kind, request).await?;
        let selected = self.selected_range(&version, request).await?;
        let bytes = selected.clone().unwrap_or(0..version.size);
        let body = self.read_version(&version, bytes).await?;
        Ok(Download {
            entry,
            version,
            range: selected,
            body,
        })
    }

    /// Streams `bytes` of a version, across its parts when it has several.
    pub(crate) async fn read_version(
        &self,
        version: &VersionInfo,
        bytes: Range<u64>,
    ) -> Result<BlobStream> {
        let internal = |err: portico_volume::Error| Error::Internal(Box::new(err));
        let locator = |text: &str| {
            BlobLocator::parse(text).ok_or_else(|| Error::internal("corrupt blob locator"))
        };
        if bytes.is_empty() {
            return Ok(BlobStream::from_bytes(Bytes::new()));
        }
        if let (Some(_), Some(row)) = (version.parts_count, version.row) {
            let mut segments = Vec::new();
            let mut offset = 0u64;
            for segment in self.inner.catalog.segments(row).await? {
                let (start, end) = (offset, offset + segment.size as u64);
                offset = end;
                if end <= bytes.start || start >= bytes.end {
                    continue;
                }
                let text = segment
                    .locator
                    .as_deref()
                    .ok_or_else(|| Error::internal("a part lost its blob"))?;
                let within = bytes.start.max(start) - start..bytes.end.min(end) - start;
                segments.push((locator(text)?, within));
            }
            return self
                .inner
                .volume
                .read_segments(segments)
                .await
                .map_err(internal);
        }
        if let Some((blob_id, true)) = version.blob {
            let data = self
                .inner
                .catalog
                .blob_data(blob_id)
                .await?
                .ok_or_else(|| Error::internal("an inline blob lost its bytes"))?;
            let range = usize::try_from(bytes.start).unwrap_or(usize::MAX)
                ..usize::try_from(bytes.end).unwrap_or(usize::MAX);
            if range.end > data.len() {
                return Err(Error::internal(
                    "an inline blob is shorter than its version",
                ));
            }
            // The row's buffer becomes the body as it is: no second copy.
            return Ok(BlobStream::from_bytes(Bytes::from(data).slice(range)));
        }
        match &version.locator {
            Some(text) => self
                .inner
                .volume
                .read(&locator(text)?, bytes)
                .await
                .map_err(internal),
            None => Ok(BlobStream::from_bytes(Bytes::new())),
        }
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
}
