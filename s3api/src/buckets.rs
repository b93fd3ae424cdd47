//! Bucket operations: buckets are the account's top-level folders.

use std::collections::BTreeMap;

use portico_drive::{CorsRule, Ctx, Drive};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::{fail, owner, s3_time, to_s3_error};

pub(crate) async fn list_buckets(
    drive: &Drive,
    ctx: &Ctx,
    input: ListBucketsInput,
) -> S3Result<ListBucketsOutput> {
    let prefix = input.prefix.clone().unwrap_or_default();
    let buckets = drive.list_buckets(ctx).await.map_err(fail(ctx))?;
    let buckets = buckets
        .into_iter()
        .filter_map(|entry| {
            let name = entry.path.name()?.to_owned();
            name.starts_with(&prefix).then(|| Bucket {
                name: Some(name),
                creation_date: Some(s3_time(entry.created)),
                bucket_region: None,
            })
        })
        .collect();
    Ok(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(ctx)),
        prefix: input.prefix,
        continuation_token: None,
    })
}

pub(crate) async fn create_bucket(
    drive: &Drive,
    ctx: &Ctx,
    input: CreateBucketInput,
) -> S3Result<CreateBucketOutput> {
    let bucket = input.bucket;
    match drive.create_bucket(ctx, &bucket).await {
        Ok(entry) => {
            let canned = input.acl.as_ref().map(|a| a.as_str());
            crate::acl::apply_canned(drive, ctx, &entry.path, portico_drive::Kind::Folder, canned)
                .await?;
            Ok(CreateBucketOutput {
                location: Some(format!("/{bucket}")),
            })
        }
        Err(portico_drive::Error::InvalidName(why)) => {
            let mut err = S3Error::with_message(
                S3ErrorCode::InvalidBucketName,
                format!("The specified bucket is not valid: {why}."),
            );
            err.set_request_id(&ctx.request_id);
            Err(err)
        }
        Err(err) => Err(to_s3_error(err, &ctx.request_id)),
    }
}

fn no_such(ctx: &Ctx, code: S3ErrorCode, message: &str) -> S3Error {
    let mut err = S3Error::with_message(code, message.to_owned());
    err.set_request_id(&ctx.request_id);
    err
}

pub(crate) async fn put_bucket_cors(
    drive: &Drive,
    ctx: &Ctx,
    input: PutBucketCorsInput,
) -> S3Result<PutBucketCorsOutput> {
    let rules: Vec<CorsRule> = input
        .cors_configuration
        .cors_rules
        .into_iter()
        .map(|rule| CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: rule.allowed_headers.unwrap_or_default(),
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    if rules.is_empty() || rules.len() > 100 {
        return Err(crate::fail_invalid(
            ctx,
            "CORSConfiguration",
            "give between 1 and 100 rules",
        ));
    }
    for rule in &rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(crate::fail_invalid(
                ctx,
                "CORSRule",
                "every rule needs an AllowedOrigin and an AllowedMethod",
            ));
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !matches!(m.as_str(), "GET" | "PUT" | "POST" | "DELETE" | "HEAD"))
        {
            return Err(crate::fail_invalid(
                ctx,
                "AllowedMethod",
                &format!("{method} is not GET, PUT, POST, DELETE or HEAD"),
            ));
        }
    }
    drive
        .update_bucket_settings(ctx, &input.bucket, |settings| {
            settings.cors = rules;
            Ok(())
        })
        .await
        .map_err(fail(ctx))?;
    Ok(PutBucketCorsOutput::default())
}

pub(crate) async fn get_bucket_cors(
    drive: &Drive,
    ctx: &Ctx,
    input: GetBucketCorsInput,
) -> S3Result<GetBucketCorsOutput> {
    let settings = drive
        .bucket_settings(ctx, &input.bucket)
        .await
        .map_err(fail(ctx))?;
    if settings.cors.is_empty() {
        return Err(no_such(
            ctx,
            S3ErrorCode::NoSuchCORSConfiguration,
            "The CORS configuration does not exist.",
        ));
    }
    let rules = settings
        .cors
        .into_iter()
        .map(|rule| CORSRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: (!rule.allowed_headers.is_empty()).then_some(rule.allowed_headers),
            expose_headers: (!rule.expose_headers.is_empty()).then_some(rule.expose_headers),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    Ok(GetBucketCorsOutput {
        cors_rules: Some(rules),
    })
}

pub(crate) async fn delete_bucket_cors(
    drive: &Drive,
    ctx: &Ctx,
    input: DeleteBucketCorsInput,
) -> S3Result<DeleteBucketCorsOutput> {
    drive
        .update_bucket_settings(ctx, &input.bucket, |settings| {
            settings.cors.clear();
            Ok(())
        })
        .await
        .map_err(fail(ctx))?;
    Ok(DeleteBucketCorsOutput::default())
}

/// S3 tag sets onto a map; duplicate keys are refused.
pub(crate) fn tag_map(ctx: &Ctx, tags: Vec<Tag>) -> S3Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for tag in tags {
        let key = tag.key.unwrap_or_default();
        if map
            .insert(key.clone(), tag.value.unwrap_or_default())
            .is_some()
        {
            return Err(to_s3_error(
                portico_drive::Error::InvalidTag(format!("the key {key:?} appears twice")),
                &ctx.request_id,
            ));
        }
    }
    Ok(map)
}

pub(crate) fn tag_set(tags: BTreeMap<String, String>) -> Vec<Tag> {
    tags.into_iter()
        .map(|(key, value)| Tag {
            key: Some(key),
            value: Some(value),
        })
        .collect()
}

pub(crate) async fn put_bucket_tagging(
    drive: &Drive,
    ctx: &Ctx,
    input: PutBucketTaggingInput,
) -> S3Result<PutBucketTaggingOutput> {
    let tags = tag_map(ctx, input.tagging.tag_set)?;
    portico_drive::validate_tags(&tags, 50).map_err(fail(ctx))?;
    drive
        .update_bucket_settings(ctx, &input.bucket, |settings| {
            settings.tags = tags;
            Ok(())
        })
        .await
        .map_err(fail(ctx))?;
    Ok(PutBucketTaggingOutput::default())
}

pub(crate) async fn get_bucket_tagging(
    drive: &Drive,
    ctx: &Ctx,
    input: GetBucketTaggingInput,
) -> S3Result<GetBucketTaggingOutput> {
    let settings = drive
        .bucket_settings(ctx, &input.bucket)
        .await
        .map_err(fail(ctx))?;
    if settings.tags.is_empty() {
        return Err(no_such(
            ctx,
            S3ErrorCode::NoSuchTagSet,
            "The TagSet does not exist.",
        ));
    }
    Ok(GetBucketTaggingOutput {
        tag_set: tag_set(settings.tags),
    })
}

pub(crate) async fn delete_bucket_tagging(
    drive: &Drive,
    ctx: &Ctx,
    input: DeleteBucketTaggingInput,
) -> S3Result<DeleteBucketTaggingOutput> {
    drive
        .update_bucket_settings(ctx, &input.bucket, |settings| {
            settings.tags.clear();
            Ok(())
        })
        .await
        .map_err(fail(ctx))?;
    Ok(DeleteBucketTaggingOutput::default())
}
