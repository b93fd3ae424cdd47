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

/// Virtual-host style buckets: `bucket.<domain>[:port]` names the bucket; any other host
/// (the bare domain, `localhost:9000`, an IP address) is path style.
struct VirtualHosts {
    domain: String,
}

impl s3s::host::S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let name = host_name(host);
        let bucket = virtual_bucket(name, &self.domain);
        let virtual_host = s3s::host::VirtualHost::new(name);
        Ok(match bucket {
            Some(bucket) => virtual_host.with_bucket(bucket),
            None => virtual_host,
        })
    }
}

/// The bucket a request names by its host (`bucket.<domain>`), if any: the Host header, or
/// the authority of an HTTP/2 request.
pub fn virtual_host_bucket<'a, B>(request: &'a http::Request<B>, domain: &str) -> Option<&'a str> {
    let host = match request.headers().get(header::HOST) {
        Some(host) => host.to_str().ok()?,
        None => request.uri().authority()?.as_str(),
    };
    virtual_bucket(host_name(host), domain)
}

/// The host name of a Host header, without its port (`[::1]:9000` keeps its brackets).
fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    }
}

/// The bucket a virtual host names under `domain`, compared without case.
fn virtual_bucket<'a>(name: &'a str, domain: &str) -> Option<&'a str> {
    let split = name.len().checked_sub(domain.len() + 1)?;
    let (bucket, rest) = (name.get(..split)?, name.get(split..)?);
    (rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(domain) && !bucket.is_empty())
        .then_some(bucket)
}

#[derive(Clone)]
pub struct S3Front {
    service: s3s::service::S3Service,
    drive: Drive,
    domain: Option<String>,
}

impl S3Front {
    /// `domain`: the base domain of virtual-host style requests (`bucket.s3.example.com`
    /// with `s3.example.com`); path style always works. `region`: what GetBucketLocation
    /// reports.
    pub fn new(drive: Drive, domain: Option<String>, region: String) -> Result<Self, String> {
        let mut builder =
            s3s::service::S3ServiceBuilder::new(PorticoS3::new(drive.clone(), region));
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
            // Validated by s3s's own parser; ours differs in ignoring the port and in
            // keeping other host names (localhost:9000) path style.
            s3s::host::SingleDomain::new(domain)
                .map_err(|err| format!("s3_domain {domain:?}: {err}"))?;
            builder.set_host(VirtualHosts {
                domain: domain.to_ascii_lowercase(),
            });
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
            && let Some(bucket) = virtual_host_bucket(request, domain)
        {
            return Some(bucket.to_owned());
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
        let request = if method == Method::POST
            && let Some(boundary) = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::post_form::boundary)
        {
            let (mut parts, body) = request.into_parts();
            let body = crate::post_form::substitute_filename(body, &boundary).await;
            // The form's length changes with the key.
            parts.headers.remove(header::CONTENT_LENGTH);
            http::Request::from_parts(parts, body)
        } else {
            request
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts_name_buckets_only_under_the_domain() {
        let domain = "s3.example.com";
        let bucket = |host: &str| {
            let request = http::Request::builder()
                .header(header::HOST, host)
                .body(())
                .unwrap();
            virtual_host_bucket(&request, domain).map(str::to_owned)
        };
        assert_eq!(bucket("photos.s3.example.com").as_deref(), Some("photos"));
        assert_eq!(
            bucket("photos.S3.Example.com:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(
            bucket("my.dotted.bucket.s3.example.com").as_deref(),
            Some("my.dotted.bucket")
        );
        assert_eq!(bucket("s3.example.com:9000"), None);
        assert_eq!(bucket(".s3.example.com"), None);
        assert_eq!(bucket("evils3.example.com"), None);
        assert_eq!(bucket("localhost:9000"), None);
        assert_eq!(bucket("[::1]:9000"), None);
        assert_eq!(bucket("127.0.0.1"), None);
        let http2 = http::Request::builder()
            .uri("https://logs.s3.example.com:8443/a/b")
            .body(())
            .unwrap();
        assert_eq!(virtual_host_bucket(&http2, domain), Some("logs"));
    }

    #[test]
    fn ports_come_off_host_names() {
        assert_eq!(host_name("example.com:9000"), "example.com");
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("[::1]:9000"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
    }
}
