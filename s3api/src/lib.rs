//! The S3 front-end: s3s's `S3` and `S3Auth` traits implemented over the drive core.
//!
//! Each operation is parse → one `portico-drive` call → build the reply. Buckets are the
//! account's top-level folders and keys the paths below them; every rule about names,
//! folders, versions and quota lives in the drive, every S3 error comes from
//! [`error::to_s3_error`].
//!
//! This crate never writes SQL or touches blob files.

mod acl;
mod buckets;
mod checksums;
pub mod error;
mod front;
mod listing;
mod multipart;
mod objects;
mod post_form;

use portico_drive::{
    ByteRange, Ctx, Drive, EtagCondition, Kind, NodePath, Preconditions, Principal, Protocol,
    RequestId, Timestamp,
};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

pub use error::to_s3_error;
pub use front::{S3Front, virtual_host_bucket};
/// The body type S3 requests and responses use.
pub use s3s::Body as S3Body;

/// The S3 service over one drive.
#[derive(Clone)]
pub struct PorticoS3 {
    drive: Drive,
    /// The region GetBucketLocation reports.
    region: String,
}

impl PorticoS3 {
    pub fn new(drive: Drive, region: String) -> Self {
        Self { drive, region }
    }

    /// The request's context: who (from the verified access key, or anonymous), which
    /// account's tree the bucket is in, and the request id.
    async fn ctx<T>(&self, req: &S3Request<T>, bucket: Option<&str>) -> S3Result<Ctx> {
        let request_id = request_id(&req.extensions);
        let principal = match (&req.credentials, bucket) {
            (Some(credentials), _) => self
                .drive
                .s3_principal(&credentials.access_key)
                .await
                .map_err(|err| to_s3_error(err, &request_id))?,
            // Without credentials only a bucket another account made public can be read.
            (None, Some(_)) => Principal::anonymous(),
            (None, None) => {
                let mut err = S3Error::with_message(
                    S3ErrorCode::AccessDenied,
                    "Anonymous access is not allowed.",
                );
                err.set_request_id(request_id);
                return Err(err);
            }
        };
        let mut ctx = Ctx::new(principal, Protocol::S3, request_id);
        if let Some(bucket) = bucket {
            ctx.tree = self
                .drive
                .bucket_tree(&ctx.principal, bucket)
                .await
                .map_err(fail(&ctx))?;
        }
        Ok(ctx)
    }
}

fn request_id(extensions: &http::Extensions) -> String {
    extensions
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

/// Maps drive errors with the context's request id.
fn fail(ctx: &Ctx) -> impl Fn(portico_drive::Error) -> S3Error + '_ {
    move |err| to_s3_error(err, &ctx.request_id)
}

/// Verifies SigV4/SigV2 signatures against the access keys in the catalog.
pub struct PorticoAuth {
    drive: Drive,
}

impl PorticoAuth {
    pub fn new(drive: Drive) -> Self {
        Self { drive }
    }
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for PorticoAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.drive.s3_secret(access_key).await {
            Ok(secret) => Ok(s3s::auth::SecretKey::from(secret)),
            Err(portico_drive::Error::NotFound(_)) => Err(s3_error!(InvalidAccessKeyId)),
            Err(err) => Err(to_s3_error(err, "")),
        }
    }
}

fn object_path(ctx: &Ctx, bucket: &str, key: &str) -> S3Result<(NodePath, Kind)> {
    let (path, is_folder) = NodePath::from_s3(bucket, key).map_err(fail(ctx))?;
    Ok((path, if is_folder { Kind::Folder } else { Kind::File }))
}

fn etag_condition(condition: Option<ETagCondition>) -> Option<EtagCondition> {
    condition.map(|condition| match condition {
        ETagCondition::Any => EtagCondition::Any,
        ETagCondition::ETag(etag) => EtagCondition::List(vec![etag.into_value()]),
    })
}

fn timestamp(value: Option<s3s::dto::Timestamp>) -> Option<Timestamp> {
    value.map(|value| Timestamp::from_system_time(time::OffsetDateTime::from(value).into()))
}

fn s3_time(value: Timestamp) -> s3s::dto::Timestamp {
    s3s::dto::Timestamp::from(value.to_system_time())
}

fn byte_range(range: Option<Range>) -> Option<ByteRange> {
    range.map(|range| match range {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix { length },
    })
}

fn preconditions(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<s3s::dto::Timestamp>,
    if_unmodified_since: Option<s3s::dto::Timestamp>,
) -> Preconditions {
    Preconditions {
        if_match: etag_condition(if_match),
        if_none_match: etag_condition(if_none_match),
        if_modified_since: timestamp(if_modified_since),
        if_unmodified_since: timestamp(if_unmodified_since),
    }
}

fn s3_etag(etag: &str) -> ETag {
    ETag::Strong(etag.to_owned())
}

fn http_date(value: &str) -> Option<s3s::dto::Timestamp> {
    httpdate::parse_http_date(value)
        .ok()
        .map(s3s::dto::Timestamp::from)
}

/// Content-MD5 is base64 of the 16-byte digest.
fn content_md5(ctx: &Ctx, value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine as _;
    let Some(value) = value else { return Ok(None) };
    let invalid = || {
        let mut err = S3Error::with_message(
            S3ErrorCode::InvalidDigest,
            "The Content-MD5 you specified was invalid.",
        );
        err.set_request_id(&ctx.request_id);
        err
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| invalid())?;
    bytes.try_into().map(Some).map_err(|_| invalid())
}

/// An `InvalidArgument` naming the field and why.
fn fail_invalid(ctx: &Ctx, field: &'static str, reason: &str) -> S3Error {
    to_s3_error(
        portico_drive::Error::InvalidInput {
            field,
            reason: reason.to_owned(),
        },
        &ctx.request_id,
    )
}

fn owner(ctx: &Ctx) -> Owner {
    Owner {
        display_name: Some(ctx.principal.name.clone()),
        id: Some(ctx.principal.owner_id.clone()),
    }
}

/// Delegates every operation Portico offers to its module; the rest keep s3s's
/// `NotImplemented` answer.
#[async_trait::async_trait]
impl S3 for PorticoS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let ctx = self.ctx(&req, None).await?;
        buckets::list_buckets(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        // A new bucket is always made in the caller's own tree.
        let ctx = self.ctx(&req, None).await?;
        buckets::create_bucket(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        self.drive
            .bucket(&ctx, &req.input.bucket)
            .await
            .map_err(fail(&ctx))?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        self.drive
            .bucket(&ctx, &req.input.bucket)
            .await
            .map_err(fail(&ctx))?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let region = Some(self.region.as_str()).filter(|r| !r.is_empty() && *r != "us-east-1");
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: region.map(|r| BucketLocationConstraint::from(r.to_owned())),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        self.drive
            .delete_bucket(&ctx, &req.input.bucket)
            .await
            .map_err(fail(&ctx))?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::put_object(&self.drive, &ctx, req)
            .await
            .map(S3Response::new)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::get_object(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::head_object(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::get_object_attributes(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::copy_object(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::delete_object(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::delete_objects(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        listing::list_objects_v1(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        listing::list_objects_v2(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        listing::list_object_versions(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        self.drive
            .bucket(&ctx, &req.input.bucket)
            .await
            .map_err(fail(&ctx))?;
        // Portico keeps every version of every object, from every protocol.
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            mfa_delete: None,
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        self.drive
            .bucket(&ctx, &req.input.bucket)
            .await
            .map_err(fail(&ctx))?;
        let status = req
            .input
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str().to_owned());
        if status
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case(BucketVersioningStatus::ENABLED))
        {
            return Err(fail_invalid(
                &ctx,
                "VersioningConfiguration",
                "Portico keeps every version of every object; versioning cannot be suspended",
            ));
        }
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        buckets::put_bucket_cors(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        buckets::get_bucket_cors(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        buckets::delete_bucket_cors(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        buckets::put_bucket_tagging(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        buckets::get_bucket_tagging(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        buckets::delete_bucket_tagging(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::get_object_tagging(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::put_object_tagging(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        objects::delete_object_tagging(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        acl::get_bucket_acl(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        acl::put_bucket_acl(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        acl::get_object_acl(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        acl::put_object_acl(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        acl::get_ownership(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::create(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::upload_part(&self.drive, &ctx, req)
            .await
            .map(S3Response::new)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::upload_part_copy(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::complete(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::abort(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::list_parts(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let ctx = self.ctx(&req, Some(&req.input.bucket)).await?;
        multipart::list_uploads(&self.drive, &ctx, req.input)
            .await
            .map(S3Response::new)
    }
}
