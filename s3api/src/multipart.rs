//! Multipart upload operations.

use std::io;

use futures::TryStreamExt;
use portico_drive::{
    ChecksumAlgorithm, ChecksumType, CompletedPart, Ctx, Drive, NewUpload, ReadRequest,
    UploadedPart,
};
use s3s::dto::*;
use s3s::{S3Request, S3Result};

use crate::checksums::{self, sent, set_checksums};
use crate::objects::{attributes, copy_source};
use crate::{
    byte_range, content_md5, fail, fail_invalid, object_path, owner, preconditions, s3_etag,
    s3_time,
};

fn upload_id_or_bad(ctx: &Ctx, text: &str) -> S3Result<String> {
    // Upload ids are ours: 32 hex digits. Anything else cannot name an upload.
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_owned())
    } else {
        Err(crate::to_s3_error(
            portico_drive::Error::NotFound(portico_drive::Missing::Upload),
            &ctx.request_id,
        ))
    }
}

pub(crate) async fn create(
    drive: &Drive,
    ctx: &Ctx,
    mut input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let acl = input.acl.take();
    if let Some(acl) = &acl {
        // Refused now rather than after the parts are uploaded.
        crate::acl::canned(ctx, acl.as_str())?;
    }
    let algorithm = match &input.checksum_algorithm {
        Some(name) => Some(ChecksumAlgorithm::parse(name.as_str()).ok_or_else(|| {
            fail_invalid(
                ctx,
                "x-amz-checksum-algorithm",
                "unknown checksum algorithm",
            )
        })?),
        None => None,
    };
    let kind_of_checksum = match &input.checksum_type {
        Some(name) => Some(ChecksumType::parse(name.as_str()).ok_or_else(|| {
            fail_invalid(ctx, "x-amz-checksum-type", "use FULL_OBJECT or COMPOSITE")
        })?),
        None => None,
    };
    if algorithm.is_none() && kind_of_checksum.is_some() {
        return Err(fail_invalid(
            ctx,
            "x-amz-checksum-type",
            "needs x-amz-checksum-algorithm",
        ));
    }
    let upload = NewUpload {
        kind,
        content_type: input.content_type,
        attributes: attributes(
            input.metadata,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires,
            input.tagging,
        ),
        checksum: algorithm.map(|a| (a, kind_of_checksum)),
        acl: acl.map(|a| a.as_str().to_owned()),
    };
    let created = drive
        .create_upload(ctx, &path, upload)
        .await
        .map_err(fail(ctx))?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(created.upload_id),
        checksum_algorithm: created.checksum.map(|(a, _)| checksums::algorithm_dto(a)),
        checksum_type: created.checksum.map(|(_, t)| checksums::type_dto(t)),
        ..Default::default()
    })
}

fn part_number(ctx: &Ctx, number: i32) -> S3Result<u32> {
    u32::try_from(number)
        .map_err(|_| fail_invalid(ctx, "partNumber", "must be between 1 and 10000"))
}

pub(crate) async fn upload_part(
    drive: &Drive,
    ctx: &Ctx,
    req: S3Request<UploadPartInput>,
) -> S3Result<UploadPartOutput> {
    let mut input = req.input;
    let (path, _) = object_path(ctx, &input.bucket, &input.key)?;
    let upload_id = upload_id_or_bad(ctx, &input.upload_id)?;
    let number = part_number(ctx, input.part_number)?;
    let expected = checksums::expected(
        ctx,
        sent!(input),
        input.checksum_algorithm.as_ref(),
        &req.headers,
        req.trailing_headers.clone(),
    )?;
    let size = input.content_length.and_then(|n| u64::try_from(n).ok());
    let md5 = content_md5(ctx, input.content_md5.as_deref())?;
    let part = match input.body {
        Some(body) => {
            drive
                .upload_part(
                    ctx,
                    &path,
                    &upload_id,
                    number,
                    body.map_err(io::Error::other),
                    size,
                    md5,
                    expected,
                )
                .await
        }
        None => {
            drive
                .upload_part(
                    ctx,
                    &path,
                    &upload_id,
                    number,
                    futures::stream::empty(),
                    size,
                    md5,
                    expected,
                )
                .await
        }
    }
    .map_err(fail(ctx))?;
    let mut output = UploadPartOutput {
        e_tag: Some(s3_etag(&part.etag)),
        ..Default::default()
    };
    set_checksums!(output, &part.checksums);
    Ok(output)
}

pub(crate) async fn upload_part_copy(
    drive: &Drive,
    ctx: &Ctx,
    input: UploadPartCopyInput,
) -> S3Result<UploadPartCopyOutput> {
    let (path, _) = object_path(ctx, &input.bucket, &input.key)?;
    let upload_id = upload_id_or_bad(ctx, &input.upload_id)?;
    let number = part_number(ctx, input.part_number)?;
    let (source, source_kind, version_id) = copy_source(ctx, &input.copy_source)?;
    let range =
        match input.copy_source_range.as_deref() {
            Some(text) => Some(Range::parse(text).map_err(|_| {
                fail_invalid(ctx, "x-amz-copy-source-range", "use bytes=first-last")
            })?),
            None => None,
        };
    let read = ReadRequest {
        version_id,
        range: byte_range(range),
        part_number: None,
        preconditions: preconditions(
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        ),
    };
    let part = drive
        .upload_part_copy(ctx, &path, &upload_id, number, &source, source_kind, &read)
        .await
        .map_err(|err| match err {
            // A failed copy-source condition is a failed precondition, never "not modified".
            portico_drive::Error::NotModified => {
                crate::to_s3_error(portico_drive::Error::PreconditionFailed, &ctx.request_id)
            }
            other => crate::to_s3_error(other, &ctx.request_id),
        })?;
    let mut result = CopyPartResult {
        e_tag: Some(s3_etag(&part.etag)),
        last_modified: Some(s3_time(part.modified)),
        ..Default::default()
    };
    set_checksums!(result, &part.checksums);
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(result),
        ..Default::default()
    })
}

fn completed_part(ctx: &Ctx, mut part: s3s::dto::CompletedPart) -> S3Result<CompletedPart> {
    let number = part
        .part_number
        .ok_or_else(|| fail_invalid(ctx, "PartNumber", "every part needs a number"))?;
    let etag = part
        .e_tag
        .take()
        .ok_or_else(|| fail_invalid(ctx, "ETag", "every part needs its ETag"))?;
    Ok(CompletedPart {
        part_number: part_number(ctx, number)?,
        etag: etag.into_value(),
        checksum: sent!(part).single(ctx)?,
    })
}

pub(crate) async fn complete(
    drive: &Drive,
    ctx: &Ctx,
    mut input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let (path, kind) = object_path(ctx, &input.bucket, &input.key)?;
    let upload_id = upload_id_or_bad(ctx, &input.upload_id)?;
    let full = sent!(input).single(ctx)?;
    let parts = input
        .multipart_upload
        .take()
        .and_then(|upload| upload.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|part| completed_part(ctx, part))
        .collect::<S3Result<Vec<_>>>()?;
    let pre = preconditions(input.if_match, input.if_none_match, None, None);
    let completed = drive
        .complete_upload(ctx, &path, &upload_id, &parts, full, &pre)
        .await
        .map_err(fail(ctx))?;
    let (entry, version) = (completed.entry, completed.version);
    crate::acl::apply_canned(drive, ctx, &path, kind, completed.acl.as_deref()).await?;
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
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

pub(crate) async fn abort(
    drive: &Drive,
    ctx: &Ctx,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    let (path, _) = object_path(ctx, &input.bucket, &input.key)?;
    let upload_id = upload_id_or_bad(ctx, &input.upload_id)?;
    drive
        .abort_upload(ctx, &path, &upload_id)
        .await
        .map_err(fail(ctx))?;
    Ok(AbortMultipartUploadOutput::default())
}

fn s3_part(part: &UploadedPart) -> Part {
    let mut out = Part {
        part_number: Some(part.part_number as i32),
        e_tag: Some(s3_etag(&part.etag)),
        size: Some(part.size as i64),
        last_modified: Some(s3_time(part.modified)),
        ..Default::default()
    };
    set_checksums!(out, &part.checksums);
    out
}

fn initiator(ctx: &Ctx) -> Initiator {
    Initiator {
        id: Some(ctx.principal.owner_id.clone()),
        display_name: Some(ctx.principal.name.clone()),
    }
}

pub(crate) async fn list_parts(
    drive: &Drive,
    ctx: &Ctx,
    input: ListPartsInput,
) -> S3Result<ListPartsOutput> {
    let (path, _) = object_path(ctx, &input.bucket, &input.key)?;
    let upload_id = upload_id_or_bad(ctx, &input.upload_id)?;
    let max = input.max_parts.map_or(1000, |n| n.clamp(0, 1000) as usize);
    let after = match input.part_number_marker {
        Some(marker) => u32::try_from(marker)
            .map_err(|_| fail_invalid(ctx, "part-number-marker", "not a part number"))?,
        None => 0,
    };
    let (upload, parts, truncated) = drive
        .list_parts(ctx, &path, &upload_id, after, max)
        .await
        .map_err(fail(ctx))?;
    let next = parts.last().map(|p| p.part_number as i32);
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(parts.iter().map(s3_part).collect()),
        initiator: Some(initiator(ctx)),
        owner: Some(owner(ctx)),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm: upload.checksum.map(|(a, _)| checksums::algorithm_dto(a)),
        checksum_type: upload.checksum.map(|(_, t)| checksums::type_dto(t)),
        ..Default::default()
    })
}

pub(crate) async fn list_uploads(
    drive: &Drive,
    ctx: &Ctx,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    let max = input
        .max_uploads
        .map_or(1000, |n| n.clamp(0, 1000) as usize);
    let after = input
        .key_marker
        .clone()
        .map(|key| (key, input.upload_id_marker.clone()));
    let page = drive
        .list_uploads(
            ctx,
            &input.bucket,
            input.prefix.as_deref().unwrap_or(""),
            input.delimiter.as_deref(),
            after,
            max,
        )
        .await
        .map_err(fail(ctx))?;
    let uploads = page
        .uploads
        .iter()
        .map(|upload| MultipartUpload {
            key: upload.path.s3_key().map(|key| {
                if upload.kind == portico_drive::Kind::Folder {
                    format!("{key}/")
                } else {
                    key
                }
            }),
            upload_id: Some(upload.upload_id.clone()),
            initiated: Some(s3_time(upload.initiated)),
            initiator: Some(initiator(ctx)),
            owner: Some(owner(ctx)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: upload.checksum.map(|(a, _)| checksums::algorithm_dto(a)),
            checksum_type: upload.checksum.map(|(_, t)| checksums::type_dto(t)),
        })
        .collect();
    let (next_key, next_upload) = match page.next {
        Some((key, upload)) => (Some(key), Some(upload).filter(|u| !u.is_empty())),
        None => (None, None),
    };
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: next_key,
        next_upload_id_marker: next_upload,
        max_uploads: Some(max as i32),
        is_truncated: Some(page.is_truncated),
        uploads: Some(uploads),
        common_prefixes: Some(
            page.common_prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        encoding_type: input.encoding_type,
        request_charged: None,
    })
}
