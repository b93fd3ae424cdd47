//! Bucket operations: buckets are the account's top-level folders.

use portico_drive::{Ctx, Drive};
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
        Ok(_) => Ok(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }),
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
