//! Multipart uploads: parts stream to the volume as they arrive; completing an upload is
//! one catalog transaction that makes the parts' blobs the segments of a new version —
//! no byte is copied. Abandoned uploads are aborted by the maintenance job.

use std::collections::{BTreeMap, HashSet};
use std::io;

use bytes::Bytes;
use md5::Digest as _;
use portico_metadata::{KeyRange, NewBlob, PartRow, SegmentRow, UploadRow, prefix_successor};
use serde::{Deserialize, Serialize};

use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumType, ExpectedChecksum};
use crate::conditions::Preconditions;
use crate::error::{Error, Missing, Result};
use crate::model::{Ctx, Entry, ObjectAttributes, Timestamp, VersionInfo};
use crate::names::{Kind, NodePath};
use crate::read::ReadRequest;
use crate::write::{NewContent, Parents, VersionMeta, with_retries};
use crate::{Action, Drive, Grant};

/// Smallest part S3 accepts, except for the last one.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Highest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// What a new upload will become.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub kind: Kind,
    pub content_type: Option<String>,
    pub attributes: ObjectAttributes,
    /// The checksum algorithm the client will send per part, and how the object's
    /// checksum is to be formed from them.
    pub checksum: Option<(ChecksumAlgorithm, Option<ChecksumType>)>,
    /// The S3 canned ACL the object is to get once complete; kept with the upload and
    /// handed back by [`Drive::complete_upload`] for the S3 layer to apply.
    pub acl: Option<String>,
}

/// A completed upload: the object's entry and new version.
#[derive(Debug, Clone)]
pub struct CompletedUpload {
    pub entry: Entry,
    pub version: VersionInfo,
    /// The canned ACL given when the upload was created.
    pub acl: Option<String>,
}

/// Kept with the upload until it completes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadMeta {
    folder: bool,
    content_type: Option<String>,
    attributes: ObjectAttributes,
    algorithm: ChecksumAlgorithm,
    /// Whether the client chose the algorithm (its part checksums must then be present).
    client_algorithm: bool,
    checksum_type: ChecksumType,
    #[serde(default)]
    acl: Option<String>,
}

/// An open multipart upload.
#[derive(Debug, Clone)]
pub struct MultipartUpload {
    pub upload_id: String,
    pub path: NodePath,
    pub kind: Kind,
    pub initiated: Timestamp,
    pub initiator_id: Option<i64>,
    /// Set when the client chose a checksum algorithm.
    pub checksum: Option<(ChecksumAlgorithm, ChecksumType)>,
}

/// A part as stored.
#[derive(Debug, Clone)]
pub struct UploadedPart {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    /// The upload's own checksum of the part, and the client's when it used another.
    pub checksums: Vec<Checksum>,
    pub modified: Timestamp,
}

/// Alias used by listings.
pub type PartInfo = UploadedPart;

/// A part named in CompleteMultipartUpload.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// The part's checksum as the client remembers it, if it sends one.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// One page of an S3 ListMultipartUploads.
#[derive(Debug, Clone, Default)]
pub struct UploadPage {
    pub uploads: Vec<MultipartUpload>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page starts: (S3 key, upload id).
    pub next: Option<(String, String)>,
}

fn no_such_upload() -> Error {
    Error::NotFound(Missing::Upload)
}

fn upload_meta(row: &UploadRow) -> Result<UploadMeta> {
    serde_json::from_str(&row.attributes)
        .map_err(|err| Error::internal(format!("corrupt upload attributes: {err}")))
}

fn public_upload(row: &UploadRow, meta: &UploadMeta) -> MultipartUpload {
    MultipartUpload {
        upload_id: row.upload_id.clone(),
        path: NodePath::from_key(&row.key),
        kind: if meta.folder {
            Kind::Folder
        } else {
            Kind::File
        },
        initiated: Timestamp::from_nanos(row.created_at),
        initiator_id: row.initiated_by,
        checksum: meta
            .client_algorithm
            .then_some((meta.algorithm, meta.checksum_type)),
    }
}

fn part_checksums(row: &PartRow) -> Vec<Checksum> {
    serde_json::from_str(&row.checksums).unwrap_or_default()
}

fn part_checksum(row: &PartRow, algorithm: ChecksumAlgorithm) -> Option<Checksum> {
    part_checksums(row)
        .into_iter()
        .find(|c| c.algorithm == algorithm)
}

fn public_part(row: &PartRow) -> UploadedPart {
    UploadedPart {
        part_number: u32::try_from(row.part_number).unwrap_or(0),
        etag: row.etag.clone(),
        size: u64::try_from(row.size).unwrap_or(0),
        checksums: part_checksums(row),
        modified: Timestamp::from_nanos(row.created_at),
    }
}

fn check_part_number(part_number: u32) -> Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&part_number) {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "partNumber",
            reason: format!("must be between 1 and {MAX_PART_NUMBER}"),
        })
    }
}

impl Drive {
    /// The upload `upload_id` for the object at `path`, checked to belong to this account
    /// and key.
    async fn upload_at(
        &self,
        grant: Grant,
        path: &NodePath,
        upload_id: &str,
    ) -> Result<(UploadRow, UploadMeta)> {
        let row = self
            .inner
            .catalog
            .upload(upload_id)
            .await?
            .ok_or_else(no_such_upload)?;
        let meta = upload_meta(&row)?;
        let kind = if meta.folder {
            Kind::Folder
        } else {
            Kind::File
        };
        if row.account_id != grant.account_id || row.key != path.key(kind) {
            return Err(no_such_upload());
        }
        Ok((row, meta))
    }

    /// Starts a multipart upload (S3 CreateMultipartUpload).
    pub async fn create_upload(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        upload: NewUpload,
    ) -> Result<MultipartUpload> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        if path.depth() < 2 {
            return Err(Error::invalid_name("an object key is required"));
        }
        self.require_bucket(grant, path).await?;
        let (algorithm, client_algorithm, checksum_type) = match upload.checksum {
            Some((algorithm, requested)) => {
                let kind = requested.unwrap_or(if algorithm == ChecksumAlgorithm::Crc64Nvme {
                    ChecksumType::FullObject
                } else {
                    ChecksumType::Composite
                });
                if kind == ChecksumType::FullObject && !algorithm.combinable() {
                    return Err(Error::InvalidInput {
                        field: "x-amz-checksum-type",
                        reason: format!("FULL_OBJECT is not available for {}", algorithm.as_str()),
                    });
                }
                if kind == ChecksumType::Composite && algorithm == ChecksumAlgorithm::Crc64Nvme {
                    return Err(Error::InvalidInput {
                        field: "x-amz-checksum-type",
                        reason: "CRC64NVME supports only FULL_OBJECT".into(),
                    });
                }
                (algorithm, true, kind)
            }
            None => (
                ChecksumAlgorithm::Crc64Nvme,
                false,
                ChecksumType::FullObject,
            ),
        };
        let meta = UploadMeta {
            folder: upload.kind == Kind::Folder,
            content_type: upload.content_type,
            attributes: upload.attributes,
            algorithm,
            client_algorithm,
            checksum_type,
            acl: upload.acl,
        };
        let row = UploadRow {
            upload_id: uuid::Uuid::now_v7().simple().to_string(),
            account_id: grant.account_id,
            key: path.key(upload.kind),
            attributes: serde_json::to_string(&meta)
                .map_err(|err| Error::internal(err.to_string()))?,
            initiated_by: Some(ctx.principal.account_id.0),
            created_at: Timestamp::now().nanos(),
        };
        let mut tx = self.inner.catalog.begin().await?;
        tx.insert_upload(&row).await?;
        tx.insert_audit(&self.audit(ctx, grant, "multipart.create", &row.key))
            .await?;
        tx.commit().await?;
        Ok(public_upload(&row, &meta))
    }

    /// Stores one part (S3 UploadPart). Re-sending a part number replaces the earlier part.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part<S>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        upload_id: &str,
        part_number: u32,
        body: S,
        expected_size: Option<u64>,
        expected_md5: Option<[u8; 16]>,
        checksum: Option<ExpectedChecksum>,
    ) -> Result<UploadedPart>
    where
        S: futures::Stream<Item = io::Result<Bytes>> + Send + Unpin,
    {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        check_part_number(part_number)?;
        let (_, meta) = self.upload_at(grant, path, upload_id).await?;
        let mut algorithms = vec![meta.algorithm];
        if let Some(given) = &checksum
            && given.algorithm() != meta.algorithm
        {
            if meta.client_algorithm {
                return Err(Error::InvalidInput {
                    field: "checksum",
                    reason: format!(
                        "this upload uses {}, not {}",
                        meta.algorithm.as_str(),
                        given.algorithm().as_str()
                    ),
                });
            }
            // No algorithm was declared: keep the upload's own for the object checksum and
            // verify the client's beside it, in the same pass.
            algorithms.push(given.algorithm());
        }
        let limit = self.write_limit(grant, expected_size).await?;
        let written = self
            .write_blob(body, expected_size, limit, &algorithms, false)
            .await?;
        let stored = self
            .commit_part(
                ctx,
                grant,
                path,
                upload_id,
                part_number,
                &written,
                expected_md5,
                meta.algorithm,
                checksum,
            )
            .await;
        if stored.is_err() {
            self.discard_blob(&written).await;
        }
        let (part, replaced) = stored?;
        if replaced {
            self.collect_garbage().await?;
        }
        Ok(part)
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_part(
        &self,
        ctx: &Ctx,
        grant: Grant,
        path: &NodePath,
        upload_id: &str,
        part_number: u32,
        written: &portico_volume::WrittenBlob,
        expected_md5: Option<[u8; 16]>,
        algorithm: ChecksumAlgorithm,
        client: Option<ExpectedChecksum>,
    ) -> Result<(UploadedPart, bool)> {
        if let Some(expected) = expected_md5
            && expected != written.md5
        {
            return Err(Error::BadDigest);
        }
        let digest = |index: usize| {
            written
                .digests
                .get(index)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let mut checksums = vec![Checksum {
            algorithm,
            value: ChecksumAlgorithm::encode(digest(0)),
            kind: ChecksumType::FullObject,
        }];
        if let Some(client) = client {
            let index = if client.algorithm() == algorithm {
                0
            } else {
                1
            };
            let settled = client.settle(digest(index))?;
            if index == 1 {
                checksums.push(settled);
            }
        }
        let size = i64::try_from(written.size).map_err(|_| Error::TooLarge {
            limit: i64::MAX as u64,
        })?;
        let md5 = hex::encode(written.md5);
        let mut tx = self.inner.catalog.begin().await?;
        let row = tx
            .upload_for_update(upload_id)
            .await?
            .ok_or_else(no_such_upload)?;
        if row.account_id != grant.account_id {
            return Err(no_such_upload());
        }
        if !tx.charge_usage(grant.account_id, size).await? {
            return Err(Error::QuotaExceeded);
        }
        let blob_id = match &written.locator {
            Some(locator) => Some(
                tx.insert_blob(&NewBlob {
                    locator: locator.to_string(),
                    size,
                    md5: md5.clone(),
                    blake3: hex::encode(written.blake3),
                    data: None,
                })
                .await?,
            ),
            None => None,
        };
        let part = PartRow {
            part_number: i64::from(part_number),
            blob_id,
            locator: None,
            size,
            etag: md5,
            checksums: serde_json::to_string(&checksums)
                .map_err(|err| Error::internal(err.to_string()))?,
            created_at: Timestamp::now().nanos(),
        };
        let previous = tx.put_part(upload_id, &part).await?;
        if let Some(previous) = &previous {
            if let Some(blob) = previous.blob_id {
                tx.add_blob_refs(blob, -1).await?;
            }
            tx.charge_usage(grant.account_id, -previous.size).await?;
        }
        tx.insert_audit(&self.audit(ctx, grant, "multipart.part", &path.file_key()))
            .await?;
        tx.commit().await?;
        Ok((public_part(&part), previous.is_some()))
    }

    /// UploadPartCopy: a part made of (a range of) another object. A whole single-blob
    /// source is shared, not copied.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        upload_id: &str,
        part_number: u32,
        source: &NodePath,
        source_kind: Kind,
        read: &ReadRequest,
    ) -> Result<UploadedPart> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        check_part_number(part_number)?;
        let (_, meta) = self.upload_at(grant, path, upload_id).await?;
        let download = self.open(ctx, source, source_kind, read).await?;
        let expected = download
            .range
            .as_ref()
            .map_or(download.version.size, |r| r.end - r.start);
        let limit = self.write_limit(grant, Some(expected)).await?;
        let written = self
            .write_blob(
                download.body,
                Some(expected),
                limit,
                &[meta.algorithm],
                false,
            )
            .await?;
        let stored = self
            .commit_part(
                ctx,
                grant,
                path,
                upload_id,
                part_number,
                &written,
                None,
                meta.algorithm,
                None,
            )
            .await;
        if stored.is_err() {
            self.discard_blob(&written).await;
        }
        let (part, replaced) = stored?;
        if replaced {
            self.collect_garbage().await?;
        }
        Ok(part)
    }

    /// One page of an upload's parts (S3 ListParts).
    pub async fn list_parts(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(MultipartUpload, Vec<UploadedPart>, bool)> {
        let grant = self.authorize(ctx, path, Action::Read).await?;
        let (row, meta) = self.upload_at(grant, path, upload_id).await?;
        let mut parts = self
            .inner
            .catalog
            .list_parts(upload_id, i64::from(after), max as i64 + 1)
            .await?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((
            public_upload(&row, &meta),
            parts.iter().map(public_part).collect(),
            truncated,
        ))
    }

    /// Finishes an upload (S3 CompleteMultipartUpload): checks the listed parts, makes them
    /// the new version's segments in one transaction, releases the parts not listed.
    pub async fn complete_upload(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        upload_id: &str,
        listed: &[CompletedPart],
        full_checksum: Option<(ChecksumAlgorithm, String)>,
        preconditions: &Preconditions,
    ) -> Result<CompletedUpload> {
        with_retries(|| {
            self.complete_once(
                ctx,
                path,
                upload_id,
                listed,
                full_checksum.clone(),
                preconditions,
            )
        })
        .await
    }

    async fn complete_once(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        upload_id: &str,
        listed: &[CompletedPart],
        full_checksum: Option<(ChecksumAlgorithm, String)>,
        preconditions: &Preconditions,
    ) -> Result<CompletedUpload> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        let (_, meta) = self.upload_at(grant, path, upload_id).await?;
        if listed.is_empty() {
            return Err(Error::InvalidInput {
                field: "CompleteMultipartUpload",
                reason: "the request must name at least one part".into(),
            });
        }
        let mut tx = self.inner.catalog.begin().await?;
        tx.upload_for_update(upload_id)
            .await?
            .ok_or_else(no_such_upload)?;
        let stored: BTreeMap<i64, PartRow> = tx
            .parts(upload_id)
            .await?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let mut chosen: Vec<&PartRow> = Vec::with_capacity(listed.len());
        let mut previous = 0u32;
        for part in listed {
            if part.part_number <= previous {
                return Err(Error::InvalidPartOrder);
            }
            previous = part.part_number;
            let row = stored
                .get(&i64::from(part.part_number))
                .ok_or(Error::InvalidPart(part.part_number))?;
            if row.etag != part.etag.trim().trim_matches('"') {
                return Err(Error::InvalidPart(part.part_number));
            }
            if let Some((algorithm, sent)) = &part.checksum
                && part_checksum(row, *algorithm).is_none_or(|c| c.value != sent.trim())
            {
                return Err(Error::InvalidPart(part.part_number));
            }
            chosen.push(row);
        }
        for row in &chosen[..chosen.len() - 1] {
            if (row.size as u64) < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall);
            }
        }
        if chosen
            .iter()
            .any(|row| part_checksum(row, meta.algorithm).is_none())
        {
            return Err(Error::InvalidInput {
                field: "checksum",
                reason: "a part has no checksum".into(),
            });
        }

        // The ETag: MD5 of the parts' binary MD5s, with the part count (S3's convention).
        let mut md5 = md5::Md5::new();
        for row in &chosen {
            md5.update(hex::decode(&row.etag).map_err(|_| Error::internal("corrupt part ETag"))?);
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
        let size: i64 = chosen.iter().map(|row| row.size).sum();
        let digests: Vec<(Vec<u8>, u64)> = chosen
            .iter()
            .map(|row| {
                let value = part_checksum(row, meta.algorithm)
                    .map(|c| c.value)
                    .unwrap_or_default();
                Ok((meta.algorithm.decode(&value)?, row.size as u64))
            })
            .collect::<Result<_>>()?;
        let value = match meta.checksum_type {
            ChecksumType::FullObject => meta
                .algorithm
                .combine(&digests)
                .ok_or_else(|| Error::internal("not combinable"))?,
            ChecksumType::Composite => meta
                .algorithm
                .composite(&digests.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>()),
        };
        if let Some((algorithm, sent)) = full_checksum
            && (algorithm != meta.algorithm || sent.trim() != value)
        {
            return Err(Error::BadChecksum(algorithm));
        }
        let mut attributes = meta.attributes.clone();
        attributes.checksum = Some(Checksum {
            algorithm: meta.algorithm,
            value,
            kind: meta.checksum_type,
        });

        // Parts not listed are released; listed ones hand their blob reference to the version.
        let chosen_numbers: HashSet<i64> = chosen.iter().map(|row| row.part_number).collect();
        let mut released = false;
        for row in stored
            .values()
            .filter(|row| !chosen_numbers.contains(&row.part_number))
        {
            if let Some(blob) = row.blob_id {
                tx.add_blob_refs(blob, -1).await?;
                released = true;
            }
            tx.charge_usage(grant.account_id, -row.size).await?;
        }
        let kind = if meta.folder {
            Kind::Folder
        } else {
            Kind::File
        };
        let content = NewContent {
            blob_id: None,
            size,
            etag,
            blake3: None,
            parts_count: Some(chosen.len() as i64),
        };
        let version_meta = VersionMeta {
            content_type: meta.content_type.clone(),
            attributes,
            modified: None,
            parents: Parents::CreateImplicit,
        };
        let (node, version) = self
            .write_version(
                &mut tx,
                ctx,
                grant,
                path,
                kind,
                content,
                version_meta,
                preconditions,
                crate::write::WriteTail::default(),
            )
            .await?;
        for (index, row) in chosen.iter().enumerate() {
            let segment = SegmentRow {
                part_index: index as i64,
                blob_id: row.blob_id,
                locator: None,
                size: row.size,
                etag: row.etag.clone(),
            };
            tx.insert_segment(version.id, &segment).await?;
        }
        tx.delete_upload(upload_id).await?;
        tx.insert_audit(&self.audit(ctx, grant, "multipart.complete", &node.key))
            .await?;
        tx.commit().await?;
        if released {
            self.collect_garbage().await?;
        }
        Ok(CompletedUpload {
            entry: Entry::from_row(&node),
            version: VersionInfo::from_row(&version, true),
            acl: meta.acl,
        })
    }

    /// Abandons an upload and releases its parts (S3 AbortMultipartUpload).
    pub async fn abort_upload(&self, ctx: &Ctx, path: &NodePath, upload_id: &str) -> Result<()> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        self.upload_at(grant, path, upload_id).await?;
        self.release_upload(
            upload_id,
            Some(self.audit(ctx, grant, "multipart.abort", &path.file_key())),
        )
        .await
    }

    async fn release_upload(
        &self,
        upload_id: &str,
        audit: Option<portico_metadata::NewAudit>,
    ) -> Result<()> {
        let mut tx = self.inner.catalog.begin().await?;
        let Some(row) = tx.upload_for_update(upload_id).await? else {
            return Ok(());
        };
        for part in tx.parts(upload_id).await? {
            if let Some(blob) = part.blob_id {
                tx.add_blob_refs(blob, -1).await?;
            }
            tx.charge_usage(row.account_id, -part.size).await?;
        }
        tx.delete_upload(upload_id).await?;
        if let Some(audit) = audit {
            tx.insert_audit(&audit).await?;
        }
        tx.commit().await?;
        self.collect_garbage().await?;
        Ok(())
    }

    /// Aborts uploads started more than `max_age` ago; returns how many (maintenance).
    pub async fn expire_uploads(&self, max_age: std::time::Duration) -> Result<u64> {
        let cutoff =
            Timestamp::now().nanos() - i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
        let mut expired = 0;
        loop {
            let stale = self.inner.catalog.stale_uploads(cutoff, 100).await?;
            if stale.is_empty() {
                return Ok(expired);
            }
            for upload in stale {
                let audit = portico_metadata::NewAudit {
                    account_id: Some(upload.account_id),
                    actor_id: None,
                    protocol: "maintenance".into(),
                    action: "multipart.expire".into(),
                    key: Some(upload.key.clone()),
                    detail: None,
                    request_id: None,
                };
                self.release_upload(&upload.upload_id, Some(audit)).await?;
                expired += 1;
            }
        }
    }

    /// One page of a bucket's open uploads (S3 ListMultipartUploads): ordered by key, then
    /// by start; with a delimiter, keys below it roll up into common prefixes.
    pub async fn list_uploads(
        &self,
        ctx: &Ctx,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<(String, Option<String>)>,
        max: usize,
    ) -> Result<UploadPage> {
        let bucket_path =
            NodePath::from_segments([bucket]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        let grant = self.authorize(ctx, &bucket_path, Action::Read).await?;
        self.bucket(ctx, bucket).await?;
        let bucket_key = bucket_path.folder_key();
        let full_prefix = format!("{bucket_key}{prefix}");
        let to_s3 = |key: &str| key[bucket_key.len()..].to_owned();
        let (mut after_key, mut after_upload) = match after {
            Some((key, upload)) => (format!("{bucket_key}{key}"), upload),
            None => (bucket_key.clone(), None),
        };
        let mut from = full_prefix.clone();
        let upper = prefix_successor(&full_prefix);
        let mut page = UploadPage::default();
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut count = 0usize;
        'scan: loop {
            let range = KeyRange {
                from: from.clone(),
                after: after_key.clone(),
                to: upper.clone(),
            };
            let rows = self
                .inner
                .catalog
                .list_uploads(grant.account_id, &range, after_upload.as_deref(), 1000)
                .await?;
            let exhausted = rows.len() < 1000;
            for row in &rows {
                if count == max {
                    page.is_truncated = true;
                    break 'scan;
                }
                let rest = &row.key[full_prefix.len()..];
                if let Some(delimiter) = delimiter
                    && let Some(at) = rest.find(delimiter)
                {
                    let common = format!("{full_prefix}{}", &rest[..at + delimiter.len()]);
                    page.common_prefixes.push(to_s3(&common));
                    page.next = Some((to_s3(&common), String::new()));
                    count += 1;
                    match prefix_successor(&common) {
                        Some(next) => {
                            from = next;
                            after_key = common;
                            after_upload = None;
                            continue 'scan;
                        }
                        None => break 'scan,
                    }
                }
                let meta = upload_meta(row)?;
                page.uploads.push(public_upload(row, &meta));
                page.next = Some((to_s3(&row.key), row.upload_id.clone()));
                after_key = row.key.clone();
                after_upload = Some(row.upload_id.clone());
                count += 1;
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
}
