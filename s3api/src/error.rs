//! The one mapping from `drive::Error` to S3 errors. Internal errors are logged with their
//! source chain and request id first, then answered generically.

use portico_drive::{Error, Missing};
use s3s::{S3Error, S3ErrorCode};

/// Maps a drive error to the S3 error a client expects, with the request id in the XML.
pub fn to_s3_error(err: Error, request_id: &str) -> S3Error {
    if err.is_internal() {
        tracing::error!(request_id, error = %err, source = ?std::error::Error::source(&err), "internal error in an S3 request");
    }
    let (code, message): (S3ErrorCode, String) = match &err {
        Error::NotFound(Missing::Bucket) => (
            S3ErrorCode::NoSuchBucket,
            "The specified bucket does not exist.".into(),
        ),
        Error::NotFound(Missing::Version) => (
            S3ErrorCode::NoSuchVersion,
            "The specified version does not exist.".into(),
        ),
        Error::NotFound(Missing::Upload) => (
            S3ErrorCode::NoSuchUpload,
            "The specified multipart upload does not exist.".into(),
        ),
        Error::NotFound(Missing::AccessKey) => (
            S3ErrorCode::InvalidAccessKeyId,
            "The access key ID you provided does not exist in our records.".into(),
        ),
        Error::NotFound(_) => (
            S3ErrorCode::NoSuchKey,
            "The specified key does not exist.".into(),
        ),
        Error::AlreadyExists => (
            S3ErrorCode::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
                .into(),
        ),
        Error::PreconditionFailed => (
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold.".into(),
        ),
        Error::NotModified => (S3ErrorCode::NotModified, "Not Modified".into()),
        Error::Conflict(why) => (
            S3ErrorCode::OperationAborted,
            format!("A conflicting operation is in progress: {why}."),
        ),
        Error::NameTaken => (
            S3ErrorCode::BucketAlreadyExists,
            "The requested bucket name is not available. Please select a different name and try again.".into(),
        ),
        Error::InvalidTag(why) => (S3ErrorCode::InvalidTag, format!("The tag set is invalid: {why}.")),
        Error::Contention => (
            S3ErrorCode::OperationAborted,
            "A conflicting conditional operation is currently in progress against this resource. Please try again.".into(),
        ),
        Error::NotEmpty => (
            S3ErrorCode::BucketNotEmpty,
            "The bucket you tried to delete is not empty.".into(),
        ),
        Error::InvalidName(why) => (S3ErrorCode::InvalidArgument, format!("Invalid key: {why}.")),
        Error::KeyTooLong { max } => (
            S3ErrorCode::KeyTooLongError,
            format!("Your key is too long (the limit is {max} bytes)."),
        ),
        Error::InvalidInput { field, reason } => (
            S3ErrorCode::InvalidArgument,
            format!("Invalid {field}: {reason}."),
        ),
        Error::InvalidRange { size } => (
            S3ErrorCode::InvalidRange,
            format!("The requested range is not satisfiable for an object of {size} bytes."),
        ),
        Error::Unauthenticated | Error::Forbidden => {
            (S3ErrorCode::AccessDenied, "Access Denied".into())
        }
        Error::Locked => (
            S3ErrorCode::AccessDenied,
            "The object is locked by a WebDAV client.".into(),
        ),
        Error::QuotaExceeded => (
            S3ErrorCode::Custom("QuotaExceeded".into()),
            "The account's storage quota does not allow this upload.".into(),
        ),
        Error::StorageFull => (
            S3ErrorCode::Custom("InsufficientStorage".into()),
            "The server's disk is full; nothing was written.".into(),
        ),
        Error::BadDigest => (
            S3ErrorCode::BadDigest,
            "The Content-MD5 you specified did not match what we received.".into(),
        ),
        Error::BadChecksum(algorithm) => (
            S3ErrorCode::BadDigest,
            format!("The {} you specified did not match the calculated checksum.", algorithm.as_str()),
        ),
        Error::InvalidPart(number) => (
            S3ErrorCode::InvalidPart,
            format!("One or more of the specified parts could not be found or its ETag did not match (part {number})."),
        ),
        Error::InvalidPartOrder => (
            S3ErrorCode::InvalidPartOrder,
            "The list of parts was not in ascending order.".into(),
        ),
        Error::DeleteMarker => (
            S3ErrorCode::MethodNotAllowed,
            "The specified method is not allowed against this resource (the version is a delete marker).".into(),
        ),
        Error::EntityTooSmall => (
            S3ErrorCode::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size (5 MiB for every part but the last).".into(),
        ),
        Error::InvalidPartNumber { parts } => (
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            format!("The requested partnumber is not satisfiable (the object has {parts} part(s))."),
        ),
        Error::TooLarge { limit } => (
            S3ErrorCode::EntityTooLarge,
            format!("Your proposed upload exceeds the maximum allowed size ({limit} bytes)."),
        ),
        Error::IncompleteBody { expected, received } => (
            S3ErrorCode::IncompleteBody,
            format!(
                "You did not provide the number of bytes specified by the Content-Length HTTP header ({received} of {expected})."
            ),
        ),
        Error::BodyFailed(source) => body_failure(source),
        Error::TooManyAttempts { retry_after } => (
            S3ErrorCode::SlowDown,
            format!("Too many failed logins; try again in {retry_after} s."),
        ),
        Error::Unavailable(_) => (
            S3ErrorCode::ServiceUnavailable,
            "Please reduce your request rate.".into(),
        ),
        Error::Internal(_) => (
            S3ErrorCode::InternalError,
            "We encountered an internal error. Please try again.".into(),
        ),
    };
    let status = match (&err, code.status_code()) {
        (Error::QuotaExceeded, _) => Some(http::StatusCode::FORBIDDEN),
        (Error::StorageFull, _) => Some(http::StatusCode::INSUFFICIENT_STORAGE),
        (Error::InvalidPartNumber { .. }, _) => Some(http::StatusCode::RANGE_NOT_SATISFIABLE),
        // Codes s3s knows no status for (custom ones, XAmzContentSHA256Mismatch) are the
        // client's fault.
        (_, None) => Some(http::StatusCode::BAD_REQUEST),
        _ => None,
    };
    let mut s3_error = S3Error::with_message(code, message);
    if let Some(status) = status {
        s3_error.set_status_code(status);
    }
    if matches!(err, Error::DeleteMarker) {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amz-delete-marker",
            http::HeaderValue::from_static("true"),
        );
        s3_error.set_headers(headers);
    }
    s3_error.set_request_id(request_id);
    s3_error
}

/// A body that failed while streaming: s3s reports signature and payload-hash failures of
/// aws-chunked and signed bodies this way (its error types are private, their names are
/// in the message chain).
fn body_failure(source: &std::io::Error) -> (S3ErrorCode, String) {
    let mut chain = String::new();
    let mut cursor: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(err) = cursor {
        chain.push_str(&err.to_string());
        chain.push('\n');
        cursor = err.source();
    }
    if chain.contains("SignatureMismatch") {
        (
            S3ErrorCode::SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided.".into(),
        )
    } else if chain.contains("Sha256Mismatch") {
        (
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        )
    } else {
        (
            S3ErrorCode::IncompleteBody,
            "The request body could not be read completely.".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: Error, code: &str, status: u16) {
        let mapped = to_s3_error(err, "req-1");
        assert_eq!(mapped.code().as_str(), code);
        let got = mapped.status_code().map(|s| s.as_u16());
        assert_eq!(got, Some(status), "{code}");
        assert_eq!(mapped.request_id(), Some("req-1"));
    }

    #[test]
    fn every_drive_error_has_its_s3_code() {
        let io = |text: &str| std::io::Error::other(text.to_owned());
        for (err, code, status) in [
            (Error::NotFound(Missing::Bucket), "NoSuchBucket", 404),
            (Error::NotFound(Missing::Node), "NoSuchKey", 404),
            (Error::NotFound(Missing::Version), "NoSuchVersion", 404),
            (
                Error::NotFound(Missing::AccessKey),
                "InvalidAccessKeyId",
                403,
            ),
            (Error::AlreadyExists, "BucketAlreadyOwnedByYou", 409),
            (Error::PreconditionFailed, "PreconditionFailed", 412),
            (Error::NotModified, "NotModified", 304),
            (Error::Conflict("x"), "OperationAborted", 409),
            (Error::NotEmpty, "BucketNotEmpty", 409),
            (Error::Contention, "OperationAborted", 409),
            (Error::NameTaken, "BucketAlreadyExists", 409),
            (Error::InvalidTag("x".into()), "InvalidTag", 400),
            (Error::KeyTooLong { max: 1024 }, "KeyTooLongError", 400),
            (Error::InvalidRange { size: 3 }, "InvalidRange", 416),
            (Error::Unauthenticated, "AccessDenied", 403),
            (Error::Forbidden, "AccessDenied", 403),
            (Error::Locked, "AccessDenied", 403),
            (Error::QuotaExceeded, "QuotaExceeded", 403),
            (Error::StorageFull, "InsufficientStorage", 507),
            (Error::BadDigest, "BadDigest", 400),
            (
                Error::BadChecksum(portico_drive::ChecksumAlgorithm::Crc32),
                "BadDigest",
                400,
            ),
            (Error::InvalidPart(2), "InvalidPart", 400),
            (Error::InvalidPartOrder, "InvalidPartOrder", 400),
            (Error::EntityTooSmall, "EntityTooSmall", 400),
            (Error::DeleteMarker, "MethodNotAllowed", 405),
            (
                Error::InvalidPartNumber { parts: 1 },
                "InvalidPartNumber",
                416,
            ),
            (Error::NotFound(Missing::Upload), "NoSuchUpload", 404),
            (Error::TooManyAttempts { retry_after: 5 }, "SlowDown", 503),
            (Error::TooLarge { limit: 1 }, "EntityTooLarge", 400),
            (
                Error::IncompleteBody {
                    expected: 2,
                    received: 1,
                },
                "IncompleteBody",
                400,
            ),
            (
                Error::BodyFailed(io("AwsChunkedStreamError: SignatureMismatch")),
                "SignatureDoesNotMatch",
                403,
            ),
            (
                Error::BodyFailed(io("UploadStreamError: Sha256Mismatch")),
                "XAmzContentSHA256Mismatch",
                400,
            ),
            (
                Error::BodyFailed(io("connection reset")),
                "IncompleteBody",
                400,
            ),
            (Error::Unavailable("pool".into()), "ServiceUnavailable", 503),
            (Error::Internal("boom".into()), "InternalError", 500),
        ] {
            check(err, code, status);
        }
        let invalid = portico_drive::NodePath::from_s3("bucket", "a//b").unwrap_err();
        check(invalid, "InvalidArgument", 400);
    }
}
