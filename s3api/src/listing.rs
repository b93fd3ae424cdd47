//! ListObjects (v1) and ListObjectsV2: S3's parameters onto one drive listing call.

use base64::Engine as _;
use portico_drive::{Ctx, Drive, ListPage, ListRequest};
use s3s::S3Result;
use s3s::dto::*;

use crate::{fail, owner, s3_etag, s3_time};

/// Most keys one page returns, as AWS.
const MAX_KEYS: usize = 1000;

fn max_keys(ctx: &Ctx, requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(crate::to_s3_error(
            portico_drive::Error::InvalidInput {
                field: "max-keys",
                reason: "must not be negative".into(),
            },
            &ctx.request_id,
        )),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

/// `encoding-type=url`: keys and prefixes are percent-encoded except unreserved characters
/// and '/', which both `unquote` and `unquote_plus` (botocore) decode back exactly.
fn encode(text: &str, url: bool) -> String {
    if !url {
        return text.to_owned();
    }
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

fn wants_url(encoding_type: &Option<EncodingType>) -> bool {
    encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str().eq_ignore_ascii_case(EncodingType::URL))
}

fn contents(ctx: &Ctx, page: &ListPage, url: bool, with_owner: bool) -> Vec<Object> {
    page.objects
        .iter()
        .map(|(key, entry)| Object {
            key: Some(encode(key, url)),
            size: Some(i64::try_from(entry.size).unwrap_or(i64::MAX)),
            e_tag: entry.etag.as_deref().map(s3_etag),
            last_modified: Some(s3_time(entry.modified)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: with_owner.then(|| owner(ctx)),
            ..Default::default()
        })
        .collect()
}

fn common_prefixes(page: &ListPage, url: bool) -> Vec<CommonPrefix> {
    page.common_prefixes
        .iter()
        .map(|prefix| CommonPrefix {
            prefix: Some(encode(prefix, url)),
        })
        .collect()
}

pub(crate) async fn list_objects_v2(
    drive: &Drive,
    ctx: &Ctx,
    input: ListObjectsV2Input,
) -> S3Result<ListObjectsV2Output> {
    let max = max_keys(ctx, input.max_keys)?;
    let after = match &input.continuation_token {
        Some(token) => Some(decode_token(ctx, token)?),
        None => input.start_after.clone(),
    };
    let request = ListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after,
        max_keys: max,
    };
    let page = drive
        .list_objects(ctx, &input.bucket, &request)
        .await
        .map_err(fail(ctx))?;
    let url = wants_url(&input.encoding_type);
    let contents = contents(ctx, &page, url, input.fetch_owner.unwrap_or(false));
    let prefixes = common_prefixes(&page, url);
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode(&request.prefix, url)),
        delimiter: input.delimiter.map(|d| encode(&d, url)),
        max_keys: Some(max as i32),
        key_count: Some((contents.len() + prefixes.len()) as i32),
        is_truncated: Some(page.is_truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: page.next_after.as_deref().map(encode_token),
        start_after: input.start_after.map(|s| encode(&s, url)),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        request_charged: None,
    })
}

pub(crate) async fn list_objects_v1(
    drive: &Drive,
    ctx: &Ctx,
    input: ListObjectsInput,
) -> S3Result<ListObjectsOutput> {
    let max = max_keys(ctx, input.max_keys)?;
    let request = ListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: input.marker.clone(),
        max_keys: max,
    };
    let page = drive
        .list_objects(ctx, &input.bucket, &request)
        .await
        .map_err(fail(ctx))?;
    let url = wants_url(&input.encoding_type);
    let contents = contents(ctx, &page, url, true);
    let prefixes = common_prefixes(&page, url);
    // v1 only returns NextMarker when a delimiter is used; clients use the last key otherwise.
    let next_marker = match (&input.delimiter, &page.next_after) {
        (Some(_), Some(next)) => Some(encode(next, url)),
        _ => None,
    };
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encode(&request.prefix, url)),
        delimiter: input.delimiter.map(|d| encode(&d, url)),
        marker: Some(input.marker.map(|m| encode(&m, url)).unwrap_or_default()),
        next_marker,
        max_keys: Some(max as i32),
        is_truncated: Some(page.is_truncated),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        request_charged: None,
    })
}

/// Continuation tokens are the last key of the page, base64url: opaque to clients,
/// stateless for us.
fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_token(ctx: &Ctx, token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            crate::to_s3_error(
                portico_drive::Error::InvalidInput {
                    field: "continuation-token",
                    reason: "the token is not one we issued".into(),
                },
                &ctx.request_id,
            )
        })
}

pub(crate) async fn list_object_versions(
    drive: &Drive,
    ctx: &Ctx,
    input: ListObjectVersionsInput,
) -> S3Result<ListObjectVersionsOutput> {
    let max = max_keys(ctx, input.max_keys)?;
    let after = input
        .key_marker
        .clone()
        .map(|key| (key, input.version_id_marker.clone()));
    let page = drive
        .list_object_versions(
            ctx,
            &input.bucket,
            input.prefix.as_deref().unwrap_or(""),
            input.delimiter.as_deref(),
            after,
            max,
        )
        .await
        .map_err(fail(ctx))?;
    let url = wants_url(&input.encoding_type);
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for entry in &page.entries {
        if entry.delete_marker {
            markers.push(DeleteMarkerEntry {
                key: Some(encode(&entry.key, url)),
                version_id: Some(entry.version_id.clone()),
                is_latest: Some(entry.is_latest),
                last_modified: Some(s3_time(entry.modified)),
                owner: Some(owner(ctx)),
            });
        } else {
            versions.push(ObjectVersion {
                key: Some(encode(&entry.key, url)),
                version_id: Some(entry.version_id.clone()),
                is_latest: Some(entry.is_latest),
                last_modified: Some(s3_time(entry.modified)),
                size: Some(i64::try_from(entry.size).unwrap_or(i64::MAX)),
                e_tag: entry.etag.as_deref().map(s3_etag),
                owner: Some(owner(ctx)),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                checksum_algorithm: entry
                    .checksum
                    .as_ref()
                    .map(|c| vec![crate::checksums::algorithm_dto(c.algorithm)]),
                checksum_type: entry
                    .checksum
                    .as_ref()
                    .map(|c| crate::checksums::type_dto(c.kind)),
                ..Default::default()
            });
        }
    }
    let (next_key, next_version) = match page.next {
        Some((key, version)) => (
            Some(encode(&key, url)),
            Some(version).filter(|v| !v.is_empty()),
        ),
        None => (None, None),
    };
    Ok(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: input.prefix.map(|p| encode(&p, url)),
        delimiter: input.delimiter.map(|d| encode(&d, url)),
        key_marker: input.key_marker,
        version_id_marker: input.version_id_marker,
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        max_keys: Some(max as i32),
        is_truncated: Some(page.is_truncated),
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(
            page.common_prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(encode(p, url)),
                })
                .collect(),
        ),
        encoding_type: input.encoding_type,
        request_charged: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        for (key, expected) in [
            ("a/b c+d%e", "a/b%20c%2Bd%25e"),
            ("caf\u{e9}", "caf%C3%A9"),
            ("safe-_.~", "safe-_.~"),
        ] {
            assert_eq!(encode(key, true), expected);
            assert_eq!(encode(key, false), key);
        }
    }

    #[test]
    fn tokens_round_trip_any_key() {
        for key in ["a", "dir/sub/", "\u{10ffff}/x y"] {
            let ctx_free = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encode_token(key))
                .unwrap();
            assert_eq!(String::from_utf8(ctx_free).unwrap(), key);
        }
    }
}
