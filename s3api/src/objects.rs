//! Object operations: put, get, head, copy, delete.

use std::collections::HashSet;
use std::io;

use futures::TryStreamExt;
use portico_drive::{
    Ctx, Drive, Entry, Kind, NodePath, ObjectAttributes, Parents, PutOptions, ReadRequest,
    VersionInfo,
};
use s3s::dto::*;
use s3s::{S3Request, S3Result};

use crate::checksums::{self, sent, set_checksums};
use crate::{
    byte_range, content_md5, fail, fail_invalid, http_date, object_path, preconditions, s3_etag,
    s3_time, to_s3_error,
};

/// S3 user metadata and content headers onto the drive's attributes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attributes(
    metadata: Option<Metadata>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<s3s::dto::Timestamp>,
    tagging: Option<String>,
) -> ObjectAttributes {
    ObjectAttributes {
        user_metadata: metadata.unwrap_or_default().into_iter().collect(),
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires: expires.map(|t| httpdate::fmt_http_date(time::OffsetDateTime::from(t).into())),
        checksum: None,
        tags: tagging.map(|t| parse_tagging(&t)).unwrap_or_default(),
    }
}

/// `x-amz-tagging`: URL-encoded `key=value&…`.
pub(crate) fn parse_tagging(text: &str) -> std::collections::BTreeMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

pub(crate) async fn put_object(
    drive: &Drive,
    ctx: &Ctx,
    req: S3Request<PutObjectInput>,
) -> S3Result<PutObjectOutput> {
    let mut input = req.input;
    let acl = input.acl.take();
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    if let Some(acl) = &acl {
        // Refused before any byte is written.
        crate::acl::canned(ctx, acl.as_str())?;
    }
    let expected = checksums::expected(
        ctx,
        sent!(input),
        input.checksum_algorithm.as_ref(),
        &req.headers,
        req.trailing_headers.clone(),
    )?;
    let mut options = PutOptions::new(kind, Parents::CreateImplicit);
    options.expected_size = input.content_length.and_then(|n| u64::try_from(n).ok());
    options.content_type = input.content_type;
    options.expected_md5 = content_md5(ctx, input.content_md5.as_deref())?;
    options.preconditions = preconditions(input.if_match, input.if_none_match, None, None);
    options.checksum = expected;
    options.attributes = attributes(
        input.metadata,
        input.content_encoding,
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
        input.tagging,
    );
    let (entry, version) = match input.body {
        Some(body) => {
            drive
                .put_version(ctx, &path, body.map_err(io::Error::other), options)
                .await
        }
        None => {
            drive
                .put_version(ctx, &path, futures::stream::empty(), options)
                .await
        }
    }
    .map_err(fail(ctx))?;
    let canned = acl.as_ref().map(|a| a.as_str());
    crate::acl::apply_canned(drive, ctx, &path, kind, canned).await?;
    let mut output = PutObjectOutput {
        e_tag: entry.etag.as_deref().map(s3_etag),
        version_id: Some(version.version_id.clone()),
        ..Default::default()
    };
    if let Some(checksum) = version.checksum() {
        set_checksums!(output, [checksum]);
        output.checksum_type = Some(checksums::type_dto(checksum.kind));
    }
    Ok(output)
}

/// What GET and HEAD share: the headers describing one version.
struct Described {
    e_tag: Option<ETag>,
    last_modified: Option<s3s::dto::Timestamp>,
    content_type: Option<String>,
    metadata: Option<Metadata>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<s3s::dto::Timestamp>,
    version_id: Option<String>,
    tag_count: Option<i32>,
}

fn describe(entry: &Entry, version: &VersionInfo) -> Described {
    let attributes = version.attributes.clone();
    let modified = if version.is_current {
        entry.modified
    } else {
        version.modified
    };
    Described {
        e_tag: Some(s3_etag(&version.etag)),
        last_modified: Some(s3_time(modified)),
        content_type: Some(
            version
                .content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into()),
        ),
        metadata: (!attributes.user_metadata.is_empty())
            .then(|| attributes.user_metadata.into_iter().collect()),
        cache_control: attributes.cache_control,
        content_disposition: attributes.content_disposition,
        content_encoding: attributes.content_encoding,
        content_language: attributes.content_language,
        expires: attributes.expires.as_deref().and_then(http_date),
        version_id: (!version.version_id.is_empty()).then(|| version.version_id.clone()),
        tag_count: (!attributes.tags.is_empty()).then_some(attributes.tags.len() as i32),
    }
}

fn content_range(range: &Option<std::ops::Range<u64>>, size: u64) -> (u64, Option<String>) {
    match range {
        Some(range) => (
            range.end - range.start,
            Some(format!("bytes {}-{}/{size}", range.start, range.end - 1)),
        ),
        None => (size, None),
    }
}

pub(crate) async fn get_object(
    drive: &Drive,
    ctx: &Ctx,
    input: GetObjectInput,
) -> S3Result<GetObjectOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let request = ReadRequest {
        version_id: input.version_id,
        range: byte_range(input.range),
        part_number: input.part_number.map(|n| u32::try_from(n).unwrap_or(0)),
        preconditions: preconditions(
            input.if_match,
            input.if_none_match,
            input.if_modified_since,
            input.if_unmodified_since,
        ),
    };
    let download = drive
        .open(ctx, &path, kind, &request)
        .await
        .map_err(fail(ctx))?;
    let size = download.version.size;
    let (content_length, content_range) = content_range(&download.range, size);
    let checksum = checksums::for_read(
        input.checksum_mode.as_ref(),
        download.range.is_none(),
        download.version.checksum(),
    );
    let described = describe(&download.entry, &download.version);
    let mut output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(download.body)),
        content_length: Some(i64::try_from(content_length).unwrap_or(i64::MAX)),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: described.e_tag,
        last_modified: described.last_modified,
        content_type: described.content_type,
        metadata: described.metadata,
        cache_control: described.cache_control,
        content_disposition: described.content_disposition,
        content_encoding: described.content_encoding,
        content_language: described.content_language,
        expires: described.expires,
        version_id: described.version_id,
        tag_count: described.tag_count,
        parts_count: request
            .part_number
            .and(download.version.parts_count.map(|n| n as i32)),
        ..Default::default()
    };
    if let Some(checksum) = checksum {
        set_checksums!(output, [checksum]);
        output.checksum_type = Some(checksums::type_dto(checksum.kind));
    }
    Ok(output)
}

pub(crate) async fn head_object(
    drive: &Drive,
    ctx: &Ctx,
    input: HeadObjectInput,
) -> S3Result<HeadObjectOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let request = ReadRequest {
        version_id: input.version_id,
        range: byte_range(input.range),
        part_number: input.part_number.map(|n| u32::try_from(n).unwrap_or(0)),
        preconditions: preconditions(
            input.if_match,
            input.if_none_match,
            input.if_modified_since,
            input.if_unmodified_since,
        ),
    };
    let (entry, version) = drive
        .head(ctx, &path, kind, &request)
        .await
        .map_err(fail(ctx))?;
    let selected = drive
        .selected_range(&version, &request)
        .await
        .map_err(fail(ctx))?;
    let (content_length, content_range) = content_range(&selected, version.size);
    let checksum = checksums::for_read(
        input.checksum_mode.as_ref(),
        selected.is_none(),
        version.checksum(),
    );
    let described = describe(&entry, &version);
    let mut output = HeadObjectOutput {
        content_length: Some(i64::try_from(content_length).unwrap_or(i64::MAX)),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: described.e_tag,
        last_modified: described.last_modified,
        content_type: described.content_type,
        metadata: described.metadata,
        cache_control: described.cache_control,
        content_disposition: described.content_disposition,
        content_encoding: described.content_encoding,
        content_language: described.content_language,
        expires: described.expires,
        version_id: described.version_id,
        parts_count: request
            .part_number
            .and(version.parts_count.map(|n| n as i32)),
        ..Default::default()
    };
    if let Some(checksum) = checksum {
        set_checksums!(output, [checksum]);
        output.checksum_type = Some(checksums::type_dto(checksum.kind));
    }
    Ok(output)
}

/// GetObjectAttributes: what HeadObject says, plus a multipart object's part list, in one
/// answer with only the attributes asked for.
pub(crate) async fn get_object_attributes(
    drive: &Drive,
    ctx: &Ctx,
    input: GetObjectAttributesInput,
) -> S3Result<GetObjectAttributesOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let mut wanted = HashSet::new();
    // One header may carry several, comma-separated.
    for name in input
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
    {
        if ![
            "ETag",
            "Checksum",
            "ObjectParts",
            "StorageClass",
            "ObjectSize",
        ]
        .contains(&name)
        {
            return Err(fail_invalid(
                ctx,
                "x-amz-object-attributes",
                "use ETag, Checksum, ObjectParts, StorageClass or ObjectSize",
            ));
        }
        wanted.insert(name);
    }
    if wanted.is_empty() {
        return Err(fail_invalid(
            ctx,
            "x-amz-object-attributes",
            "name at least one attribute",
        ));
    }
    let request = ReadRequest {
        version_id: input.version_id,
        ..ReadRequest::default()
    };
    let (entry, version) = drive
        .head(ctx, &path, kind, &request)
        .await
        .map_err(fail(ctx))?;
    let described = describe(&entry, &version);
    let mut output = GetObjectAttributesOutput {
        last_modified: described.last_modified,
        version_id: described.version_id,
        ..Default::default()
    };
    if wanted.contains("ETag") {
        output.e_tag = described.e_tag;
    }
    if wanted.contains("ObjectSize") {
        output.object_size = Some(i64::try_from(version.size).unwrap_or(i64::MAX));
    }
    if wanted.contains("StorageClass") {
        output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    if wanted.contains("Checksum")
        && let Some(checksum) = version.checksum()
    {
        let mut out = s3s::dto::Checksum {
            checksum_type: Some(checksums::type_dto(checksum.kind)),
            ..Default::default()
        };
        set_checksums!(out, [checksum]);
        output.checksum = Some(out);
    }
    if wanted.contains("ObjectParts")
        && let Some(sizes) = drive.part_sizes(&version).await.map_err(fail(ctx))?
    {
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = usize::try_from(input.part_number_marker.unwrap_or(0))
            .map_err(|_| fail_invalid(ctx, "x-amz-part-number-marker", "not a part number"))?;
        let parts: Vec<ObjectPart> = sizes
            .iter()
            .enumerate()
            .skip(marker)
            .take(max)
            .map(|(index, size)| ObjectPart {
                part_number: Some(index as i32 + 1),
                size: Some(i64::try_from(*size).unwrap_or(i64::MAX)),
                ..Default::default()
            })
            .collect();
        let truncated = marker + parts.len() < sizes.len();
        output.object_parts = Some(GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            part_number_marker: Some(marker as i32),
            next_part_number_marker: parts.last().and_then(|p| p.part_number),
            total_parts_count: Some(sizes.len() as i32),
            parts: Some(parts),
        });
    }
    Ok(output)
}

/// The source of a copy: `(path, kind, version id)`; only `bucket/key` sources exist here.
pub(crate) fn copy_source(
    ctx: &Ctx,
    source: &CopySource,
) -> S3Result<(NodePath, Kind, Option<String>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            let (path, kind) = object_path(ctx, bucket, key)?;
            Ok((path, kind, version_id.as_deref().map(str::to_owned)))
        }
        _ => Err(fail_invalid(
            ctx,
            "x-amz-copy-source",
            "access point and outpost sources are not supported",
        )),
    }
}

pub(crate) async fn copy_object(
    drive: &Drive,
    ctx: &Ctx,
    input: CopyObjectInput,
) -> S3Result<CopyObjectOutput> {
    let (target, target_kind) = object_path(ctx, &input.bucket, &input.key)?;
    let (source, source_kind, source_version) = copy_source(ctx, &input.copy_source)?;
    let acl = input.acl.as_ref().map(|a| a.as_str().to_owned());
    if let Some(acl) = &acl {
        crate::acl::canned(ctx, acl)?;
    }
    let source_request = ReadRequest {
        version_id: source_version,
        preconditions: preconditions(
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        ),
        ..ReadRequest::default()
    };
    let directive = input
        .metadata_directive
        .as_ref()
        .map(|d| d.as_str().to_ascii_uppercase());
    let replace = match directive.as_deref() {
        None | Some("COPY") => None,
        Some("REPLACE") => Some((
            input.content_type,
            attributes(
                input.metadata,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires,
                None,
            ),
        )),
        Some(_) => {
            return Err(fail_invalid(
                ctx,
                "x-amz-metadata-directive",
                "use COPY or REPLACE",
            ));
        }
    };
    let tagging_replace = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str().eq_ignore_ascii_case("REPLACE"));
    let mut replace = replace;
    if tagging_replace {
        // Keep the metadata choice, take the tags from the request.
        let tags = input
            .tagging
            .as_deref()
            .map(parse_tagging)
            .unwrap_or_default();
        let (content_type, mut attrs) = match replace {
            Some(pair) => pair,
            None => {
                let (_, version) = drive
                    .head(
                        ctx,
                        &source,
                        source_kind,
                        &ReadRequest {
                            version_id: source_request.version_id.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(fail(ctx))?;
                (version.content_type.clone(), version.attributes.clone())
            }
        };
        attrs.tags = tags;
        replace = Some((content_type, attrs));
    }
    let (entry, version, source_version) = drive
        .copy_object(
            ctx,
            &source,
            source_kind,
            &source_request,
            &target,
            target_kind,
            replace,
            &Default::default(),
        )
        .await
        .map_err(fail(ctx))?;
    crate::acl::apply_canned(drive, ctx, &target, target_kind, acl.as_deref()).await?;
    let mut result = CopyObjectResult {
        e_tag: entry.etag.as_deref().map(s3_etag),
        last_modified: Some(s3_time(entry.modified)),
        ..Default::default()
    };
    if let Some(checksum) = version.checksum() {
        set_checksums!(result, [checksum]);
        result.checksum_type = Some(checksums::type_dto(checksum.kind));
    }
    Ok(CopyObjectOutput {
        copy_object_result: Some(result),
        copy_source_version_id: Some(source_version.version_id).filter(|v| !v.is_empty()),
        version_id: Some(version.version_id),
        ..Default::default()
    })
}

pub(crate) async fn delete_object(
    drive: &Drive,
    ctx: &Ctx,
    input: DeleteObjectInput,
) -> S3Result<DeleteObjectOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let (version_id, delete_marker) =
        delete_one(drive, ctx, &path, kind, input.version_id.as_deref()).await?;
    Ok(DeleteObjectOutput {
        version_id,
        delete_marker: delete_marker.then_some(true),
        ..Default::default()
    })
}

/// Deletes the object (making a delete marker) or, with a version id, that version.
/// Returns the version id S3 reports and whether it is a delete marker.
async fn delete_one(
    drive: &Drive,
    ctx: &Ctx,
    path: &NodePath,
    kind: Kind,
    version_id: Option<&str>,
) -> S3Result<(Option<String>, bool)> {
    match version_id {
        Some(version_id) => match drive.delete_version(ctx, path, kind, version_id).await {
            Ok(deleted) => Ok((Some(deleted.version_id), deleted.delete_marker)),
            // Deleting is idempotent in S3: a version that is already gone is success
            // (clients purging a bucket delete versions and markers in parallel).
            Err(portico_drive::Error::NotFound(portico_drive::Missing::Version)) => {
                Ok((Some(version_id.to_owned()), false))
            }
            Err(err) => Err(to_s3_error(err, &ctx.request_id)),
        },
        None => {
            let marker = drive
                .delete_object(ctx, path, kind)
                .await
                .map_err(fail(ctx))?;
            let is_marker = marker.is_some();
            Ok((marker, is_marker))
        }
    }
}

pub(crate) async fn delete_objects(
    drive: &Drive,
    ctx: &Ctx,
    input: DeleteObjectsInput,
) -> S3Result<DeleteObjectsOutput> {
    drive.bucket(ctx, &input.bucket).await.map_err(fail(ctx))?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in input.delete.objects {
        let outcome = match NodePath::from_s3(&input.bucket, &object.key) {
            Ok((path, is_folder)) => {
                let kind = if is_folder { Kind::Folder } else { Kind::File };
                delete_one(drive, ctx, &path, kind, object.version_id.as_deref()).await
            }
            Err(err) => Err(to_s3_error(err, &ctx.request_id)),
        };
        match outcome {
            Ok(_) if quiet => {}
            Ok((version_id, marker)) => deleted.push(DeletedObject {
                key: Some(object.key),
                version_id: object.version_id.clone(),
                delete_marker: marker.then_some(true),
                delete_marker_version_id: if marker && object.version_id.is_none() {
                    version_id
                } else {
                    None
                },
            }),
            Err(mapped) => errors.push(s3s::dto::Error {
                code: Some(mapped.code().as_str().to_owned()),
                key: Some(object.key),
                message: mapped.message().map(str::to_owned),
                version_id: object.version_id,
            }),
        }
    }
    Ok(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        request_charged: None,
    })
}

pub(crate) async fn get_object_tagging(
    drive: &Drive,
    ctx: &Ctx,
    input: GetObjectTaggingInput,
) -> S3Result<GetObjectTaggingOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let (version_id, tags) = drive
        .object_tags(ctx, &path, kind, input.version_id)
        .await
        .map_err(fail(ctx))?;
    Ok(GetObjectTaggingOutput {
        tag_set: crate::buckets::tag_set(tags),
        version_id: Some(version_id),
    })
}

pub(crate) async fn put_object_tagging(
    drive: &Drive,
    ctx: &Ctx,
    input: PutObjectTaggingInput,
) -> S3Result<PutObjectTaggingOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let tags = crate::buckets::tag_map(ctx, input.tagging.tag_set)?;
    let version_id = drive
        .set_object_tags(ctx, &path, kind, input.version_id, Some(tags))
        .await
        .map_err(fail(ctx))?;
    Ok(PutObjectTaggingOutput {
        version_id: Some(version_id),
    })
}

pub(crate) async fn delete_object_tagging(
    drive: &Drive,
    ctx: &Ctx,
    input: DeleteObjectTaggingInput,
) -> S3Result<DeleteObjectTaggingOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let version_id = drive
        .set_object_tags(ctx, &path, kind, input.version_id, None)
        .await
        .map_err(fail(ctx))?;
    Ok(DeleteObjectTaggingOutput {
        version_id: Some(version_id),
    })
}
