//! The one mapping from `drive::Error` to a WebDAV/HTTP status with a body that says why.

use http::StatusCode;
use portico_drive::Error;

/// Status and human-readable reason for a drive error. Internal errors are logged with
/// their source and the request id first.
pub fn to_status(err: &Error, request_id: &str) -> (StatusCode, String) {
    if err.is_internal() {
        tracing::error!(request_id, error = %err, source = ?std::error::Error::source(err), "internal error in a WebDAV request");
    }
    let status = match err {
        Error::NotFound(_) | Error::DeleteMarker => StatusCode::NOT_FOUND,
        // Only MKCOL creates without replacing; RFC 4918 §9.3.1 answers 405 there.
        Error::AlreadyExists => StatusCode::METHOD_NOT_ALLOWED,
        Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        Error::NotModified => StatusCode::NOT_MODIFIED,
        Error::Conflict(_) | Error::NotEmpty | Error::Contention | Error::NameTaken => {
            StatusCode::CONFLICT
        }
        Error::InvalidName(_)
        | Error::KeyTooLong { .. }
        | Error::InvalidInput { .. }
        | Error::InvalidTag(_) => StatusCode::BAD_REQUEST,
        Error::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        Error::Unauthenticated => StatusCode::UNAUTHORIZED,
        Error::Forbidden => StatusCode::FORBIDDEN,
        Error::Locked => StatusCode::LOCKED,
        Error::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::QuotaExceeded | Error::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::IncompleteBody { .. }
        | Error::BodyFailed(_)
        | Error::BadDigest
        | Error::BadChecksum(_)
        | Error::InvalidPart(_)
        | Error::InvalidPartOrder
        | Error::EntityTooSmall => StatusCode::BAD_REQUEST,
        Error::InvalidPartNumber { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let reason = match err {
        Error::Internal(_) => format!("internal error (request id {request_id})"),
        Error::Unavailable(_) => {
            format!("service unavailable, try again (request id {request_id})")
        }
        other => other.to_string(),
    };
    (status, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_drive::Missing;

    #[test]
    fn every_drive_error_has_its_status() {
        for (err, status) in [
            (Error::NotFound(Missing::Node), 404),
            (Error::TooManyAttempts { retry_after: 5 }, 429),
            (Error::AlreadyExists, 405),
            (Error::PreconditionFailed, 412),
            (Error::NotModified, 304),
            (Error::Conflict("parent"), 409),
            (Error::NotEmpty, 409),
            (Error::KeyTooLong { max: 1024 }, 400),
            (
                Error::InvalidInput {
                    field: "x",
                    reason: "y".into(),
                },
                400,
            ),
            (Error::InvalidRange { size: 1 }, 416),
            (Error::Unauthenticated, 401),
            (Error::Forbidden, 403),
            (Error::Locked, 423),
            (Error::QuotaExceeded, 507),
            (Error::StorageFull, 507),
            (Error::TooLarge { limit: 1 }, 413),
            (
                Error::IncompleteBody {
                    expected: 2,
                    received: 1,
                },
                400,
            ),
            (Error::BadDigest, 400),
            (Error::Unavailable("x".into()), 503),
            (Error::Internal("x".into()), 500),
        ] {
            assert_eq!(to_status(&err, "r").0.as_u16(), status, "{err:?}");
        }
        let invalid = portico_drive::NodePath::parse("a/../b").unwrap_err();
        assert_eq!(to_status(&invalid, "r").0, StatusCode::BAD_REQUEST);
        let (_, reason) = to_status(&Error::Internal("secret detail".into()), "r-9");
        assert!(
            !reason.contains("secret") && reason.contains("r-9"),
            "internal details stay in the log"
        );
    }
}
