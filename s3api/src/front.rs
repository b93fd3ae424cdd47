//! The S3 front door: s3s's service (routing, signatures, XML) over [`PorticoS3`], plus
//! what s3s leaves to us — CORS (preflights answered from the bucket's rules, response
//! headers on the real requests), virtual-host buckets, and a request id in every error.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use portico_drive::{CorsRule, Drive};
use s3s::{S3Error, S3ErrorCode};

use crate::{PorticoAuth, PorticoS3, request_id};

/// Lets unsigned requests through to the handlers (instead of s3s's blanket refusal),
/// so public-read buckets can be read; authorization happens in the drive.
struct AnonymousAllowed;

#[async_trait::async_trait]
impl s3s::access::S3Access for AnonymousAllowed {
    async fn check(&self, _cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        Ok(())
    }
}

/// Largest browser POST upload: s3s holds a POST's file in memory to check its policy,
/// so it is capped well below PUT's limits (large browser uploads use multipart).
pub const POST_OBJECT_MAX_SIZE: u64 = 128 << 20;

#[derive(Clone)]
pub struct S3Front {
    service: s3s::service::S3Service,
    drive: Drive,
    domain: Option<String>,
}

impl S3Front {
    /// `domain`: the base domain of virtual-host style requests (`bucket.s3.example.com`
    /// with `s3.example.com`); path style always works.
    pub fn new(drive: Drive, domain: Option<String>) -> Result<Self, String> {
        let mut builder = s3s::service::S3ServiceBuilder::new(PorticoS3::new(drive.clone()));
        builder.set_auth(PorticoAuth::new(drive.clone()));
        // Signatures are still verified when present; requests without one reach the
        // handlers as anonymous, where `Drive::authorize` admits only public shares.
        builder.set_access(AnonymousAllowed);
        let mut config = s3s::config::S3Config::default();
        config.post_object_max_file_size = POST_OBJECT_MAX_SIZE;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            config,
        ))));
        if let Some(domain) = &domain {
            let host = s3s::host::SingleDomain::new(domain)
                .map_err(|err| format!("s3_domain {domain:?}: {err}"))?;
            builder.set_host(host);
        }
        Ok(Self {
            service: builder.build(),
            drive,
            domain,
        })
    }

    /// The bucket a request names: the virtual host's first label, else the first path
    /// segment.
    fn bucket_of(&self, request: &http::Request<s3s::Body>) -> Option<String> {
        if let Some(domain) = &self.domain
            && let Some(host) = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        {
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            if let Some(bucket) = host
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
            {
                return Some(bucket.to_owned());
            }
        }
        let segment = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()?;
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .ok()?;
        (!decoded.is_empty()).then(|| decoded.into_owned())
    }

    /// Handles one S3 request. The request id must be in the request's extensions.
    pub async fn handle(&self, request: http::Request<s3s::Body>) -> http::Response<s3s::Body> {
        let request_id = request_id(request.extensions());
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bucket = self.bucket_of(&request);
        if request.method() == Method::OPTIONS {
            return self
                .preflight(request.headers(), origin, bucket, &request_id)
                .await;
        }
        let method = request.method().clone();
        let response = match self.service.call(request).await {
            Ok(response) => response,
            Err(err) => {
                tracing::error!(request_id, error = ?err, "the S3 service failed");
                let mut error = S3Error::with_message(
                    S3ErrorCode::InternalError,
                    "We encountered an internal error.",
                );
                error.set_request_id(&request_id);
                return error
                    .to_http_response()
                    .unwrap_or_else(|_| http::Response::new(s3s::Body::empty()));
            }
        };
        let mut response = with_request_id(response, &request_id);
        if let (Some(origin), Some(bucket)) = (origin, bucket)
            && let Some(rule) = self.cors_rule(&bucket, &origin, method.as_str(), &[]).await
        {
            cors_headers(response.headers_mut(), &rule, &origin, None);
        }
        response
    }

    async fn cors_rule(
        &self,
        bucket: &str,
        origin: &str,
        method: &str,
        headers: &[String],
    ) -> Option<CorsRule> {
        match self.drive.claimed_bucket_settings(bucket).await {
            Ok(Some((_, settings))) => settings.cors_rule(origin, method, headers).cloned(),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, bucket, "could not read the bucket's CORS rules");
                None
            }
        }
    }

    /// A CORS preflight: answered from the bucket's rules, without credentials (browsers
    /// send none), as S3 does.
    async fn preflight(
        &self,
        headers: &HeaderMap,
        origin: Option<String>,
        bucket: Option<String>,
        request_id: &str,
    ) -> http::Response<s3s::Body> {
        let method = headers
            .get("access-control-request-method")
            .and_then(|v| v.to_str().ok());
        let (Some(origin), Some(method)) = (origin, method) else {
            return cors_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
                request_id,
            );
        };
        let requested: Vec<String> = headers
            .get("access-control-request-headers")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let rule = match &bucket {
            Some(bucket) => self.cors_rule(bucket, &origin, method, &requested).await,
            None => None,
        };
        let Some(rule) = rule else {
            return cors_error(
                StatusCode::FORBIDDEN,
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed. The origin, method or headers are not allowed by the bucket's CORS rules.",
                request_id,
            );
        };
        let mut response = http::Response::new(s3s::Body::empty());
        cors_headers(
            response.headers_mut(),
            &rule,
            &origin,
            Some((method, &requested)),
        );
        set(response.headers_mut(), "x-amz-request-id", request_id);
        response
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The CORS response headers for a matched rule (preflight: with the allowed method and
/// headers echoed).
fn cors_headers(
    headers: &mut HeaderMap,
    rule: &CorsRule,
    origin: &str,
    preflight: Option<(&str, &[String])>,
) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    set(
        headers,
        "access-control-allow-origin",
        if any_origin { "*" } else { origin },
    );
    if !any_origin {
        set(headers, "access-control-allow-credentials", "true");
    }
    set(
        headers,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            headers,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some((_, requested)) = preflight {
        if !requested.is_empty() {
            set(
                headers,
                "access-control-allow-headers",
                &requested.join(", "),
            );
        }
        if let Some(age) = rule.max_age_seconds {
            set(headers, "access-control-max-age", &age.to_string());
        }
    }
    set(
        headers,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

fn cors_error(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(body));
    *response.status_mut() = status;
    set(response.headers_mut(), "content-type", "application/xml");
    response
}

/// Errors raised inside s3s (signature checks, routing) carry no request id; add it, so
/// every S3 error body names the request as AWS's do.
fn with_request_id(
    response: http::Response<s3s::Body>,
    request_id: &str,
) -> http::Response<s3s::Body> {
    if response.status().as_u16() < 400 || request_id.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Some(bytes) = body.bytes() else {
        return http::Response::from_parts(parts, body);
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return http::Response::from_parts(parts, body);
    };
    if text.contains("<RequestId>") || !text.contains("</Error>") {
        return http::Response::from_parts(parts, body);
    }
    let patched = text.replacen(
        "</Error>",
        &format!("<RequestId>{request_id}</RequestId></Error>"),
        1,
    );
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(patched.len()),
    );
    http::Response::from_parts(parts, s3s::Body::from(patched))
}
