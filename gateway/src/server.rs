//! The HTTP front door: one listener, a pure routing function, a request id and a log line
//! for every request, and graceful shutdown.
//!
//! Four hops per request: this module (id, span, routing) → the protocol adapter (s3s
//! operation or WebDAV method) → one `portico-drive` operation → catalog and volume.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use portico_dav::DavService;
use portico_drive::{Drive, RequestId};
use tokio::net::TcpListener;
use tracing::Instrument;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body, whichever protocol produced it.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Where a request goes, decided from its path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Dav,
    /// Prefixes reserved for the REST API, share links, web UI and metrics.
    Reserved,
    S3,
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Dav => "webdav",
            Route::Reserved => "reserved",
            Route::S3 => "s3",
        }
    }
}

/// The WebDAV mount point.
pub const DAV_PREFIX: &str = "/dav";

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The routing table. Reserved names can never be buckets (see `drive::RESERVED_BUCKET_NAMES`),
/// so nothing S3 can create is shadowed here.
pub fn route(path: &str) -> Route {
    match path {
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        _ if under(path, DAV_PREFIX) => Route::Dav,
        _ if [
            "/api", "/s", "/ui", "/metrics", "/hls", "/static", "/webdav",
        ]
        .iter()
        .any(|p| under(path, p)) =>
        {
            Route::Reserved
        }
        _ => Route::S3,
    }
}

/// Whether a request carries an S3 signature (header or presigned query).
fn is_s3_signed<B>(request: &Request<B>) -> bool {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let query = request.uri().query().unwrap_or("");
    header.starts_with("AWS4-HMAC-SHA256 ")
        || header.starts_with("AWS ")
        || query.contains("X-Amz-Signature=")
        || query.contains("Signature=")
}

/// Accepts a client's request id when it is short and plain; otherwise makes a UUIDv7.
fn request_id(request: &Request<Incoming>) -> String {
    let incoming = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok());
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                }) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The gateway's request handler: shared by every connection.
pub struct App {
    drive: Drive,
    s3: portico_s3api::S3Front,
    dav: DavService,
    /// Base domain of virtual-host style S3 requests (`bucket.<domain>`), if configured.
    s3_domain: Option<String>,
}

impl App {
    /// `s3_domain`: the base of virtual-host style buckets; `s3_region`: the region buckets
    /// report.
    pub fn new(drive: Drive, s3_domain: Option<String>, s3_region: String) -> Result<Self, String> {
        let s3 = portico_s3api::S3Front::new(drive.clone(), s3_domain.clone(), s3_region)?;
        let dav = DavService::new(drive.clone(), DAV_PREFIX);
        Ok(Self {
            drive,
            s3,
            dav,
            s3_domain,
        })
    }

    /// Whether the request addresses a bucket by host name: then its whole path is a key.
    fn is_virtual_host<B>(&self, request: &Request<B>) -> bool {
        self.s3_domain
            .as_deref()
            .is_some_and(|domain| portico_s3api::virtual_host_bucket(request, domain).is_some())
    }

    pub async fn handle(&self, mut request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let id = request_id(&request);
        request.extensions_mut().insert(RequestId(id.clone()));
        request
            .extensions_mut()
            .insert(portico_drive::ClientAddr(peer.ip()));
        let is_head = request.method() == http::Method::HEAD;
        let route = match route(request.uri().path()) {
            _ if self.is_virtual_host(&request) => Route::S3,
            // An S3 client naming a reserved bucket gets S3's own answer (InvalidBucketName,
            // NoSuchBucket) rather than a bare 404: signed requests are S3 requests.
            Route::Reserved if is_s3_signed(&request) => Route::S3,
            // WebDAV clients probe the server root with OPTIONS (no Origin: not a CORS
            // preflight) before they ask for credentials.
            Route::S3
                if request.method() == http::Method::OPTIONS
                    && request.uri().path() == "/"
                    && !request.headers().contains_key(header::ORIGIN) =>
            {
                Route::Dav
            }
            // GNOME's gvfs asks about the folders above the mount point; S3 has no PROPFIND.
            Route::S3 if request.method().as_str() == "PROPFIND" => Route::Dav,
            other => other,
        };
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!("request", request_id = %id, protocol = route.as_str(), method = %method, path = %path);
        let mut response = async {
            let response = self.dispatch(route, request).await;
            // The path is logged, never the query: presigned URLs carry signatures there.
            tracing::info!(
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                %peer,
                "request handled"
            );
            response
        }
        .instrument(span)
        .await;
        if is_head {
            // A HEAD answer never has a body, errors included: HTTP/1 strips it, but over
            // HTTP/2 a DATA frame on a HEAD stream is a protocol error for the client.
            let (parts, _) = response.into_parts();
            response = Response::from_parts(
                parts,
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", value.clone());
            response.headers_mut().insert("x-amz-request-id", value);
        }
        response
    }

    async fn dispatch(&self, route: Route, request: Request<Incoming>) -> Response<Body> {
        match route {
            Route::Health => plain(StatusCode::OK, "ok"),
            Route::Ready => match self.drive.ready().await {
                Ok(()) => plain(StatusCode::OK, "ready"),
                Err(err) => {
                    tracing::warn!(error = %err, "readiness check failed");
                    plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the catalog is not answering",
                    )
                }
            },
            Route::Reserved => plain(
                StatusCode::NOT_FOUND,
                "this part of Portico is not available yet",
            ),
            Route::Dav => self
                .dav
                .handle(request)
                .await
                .map(|body| body.map_err(BoxError::from).boxed_unsync()),
            Route::S3 => {
                let response = self
                    .s3
                    .handle(request.map(portico_s3api::S3Body::from))
                    .await;
                response.map(|body| body.map_err(BoxError::from).boxed_unsync())
            }
        }
    }
}

/// Loads a PEM certificate chain and private key into a TLS acceptor (HTTP/2 and
/// HTTP/1.1 by ALPN, rustls with ring).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|err| format!("tls_cert {}: {err}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_cert {}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| format!("tls_key {}: {err}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| format!("the TLS certificate and key do not fit: {err}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` resolves;
/// then stops accepting, lets in-flight requests finish for up to `grace`, and drops the
/// rest (an interrupted upload leaves nothing behind).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(hyper_util::server::conn::auto::Builder::new(
        TokioExecutor::new(),
    ));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small requests stall ~40 ms on delayed ACKs without this.
                let _ = stream.set_nodelay(true);
                let watcher = graceful.watcher();
                let (app, builder, tls) = (app.clone(), builder.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(&builder, watcher, TokioIo::new(stream), app, peer).await,
                        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => serve_connection(&builder, watcher, TokioIo::new(stream), app, peer).await,
                            Ok(Err(err)) => tracing::debug!(error = %err, %peer, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        },
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "grace period over: aborting the remaining requests"),
    }
    Ok(())
}

async fn serve_connection<I>(
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: Arc<App>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(request, peer).await) }
    });
    let connection = builder.serve_connection_with_upgrades(io, service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %err, %peer, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_decided_by_the_path() {
        for (path, expected) in [
            ("/healthz", Route::Health),
            ("/readyz", Route::Ready),
            ("/dav", Route::Dav),
            ("/dav/", Route::Dav),
            ("/dav/photos/a.jpg", Route::Dav),
            ("/davx", Route::S3),
            ("/dave/file", Route::S3),
            ("/api", Route::Reserved),
            ("/api/v1/files", Route::Reserved),
            ("/s/token", Route::Reserved),
            ("/ui/", Route::Reserved),
            ("/metrics", Route::Reserved),
            ("/", Route::S3),
            ("/photos", Route::S3),
            ("/photos/2024/a.jpg", Route::S3),
            ("/apis/x", Route::S3),
        ] {
            assert_eq!(route(path), expected, "{path}");
        }
    }

    #[test]
    fn every_reserved_route_is_a_reserved_bucket_name() {
        for name in [
            "dav", "api", "s", "ui", "metrics", "hls", "static", "webdav", "healthz", "readyz",
        ] {
            assert_ne!(route(&format!("/{name}")), Route::S3, "{name}");
            assert!(
                portico_drive::RESERVED_BUCKET_NAMES.contains(&name),
                "{name} must not be creatable as a bucket"
            );
        }
    }
}
