//! The WebDAV front-end (RFC 4918 classes 1 and 2) over the drive core.
//!
//! Each method is parse → one `portico-drive` call → build the reply; every status for a
//! drive error comes from [`error::to_status`]. PROPFIND answers stream page by page from
//! one catalog query per page.
//!
//! Why not `dav-server`: its `DavFileSystem` model walks subtrees itself (a DELETE or COPY
//! of a folder becomes one call per file, so a folder could not go to the trash as one
//! entry nor a copy share its blobs in one transaction), it answers PROPFIND
//! `Depth: infinity` with 501 except for litmus, and it looks dead properties up one entry
//! at a time. The protocol surface Portico needs is small enough to own.
//!
//! This crate never writes SQL or touches blob files.

pub mod error;
mod ifheader;
mod locking;
mod paths;
mod props;

use std::io;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use portico_drive::{
    ByteRange, ChecksumAlgorithm, Ctx, DeadProp, Drive, Entry, EtagCondition, ExpectedChecksum,
    Kind, MkdirOptions, NodePath, Parents, Preconditions, PropChange, Protocol, PutOptions,
    ReadRequest, RequestId, Timestamp, Transfer,
};

pub use error::to_status;
use props::{PatchOp, PropName, PropRequest, RenderContext};

/// Response bodies: bytes in memory, a blob being read, or a multistatus being written.
pub type DavBody = UnsyncBoxBody<Bytes, io::Error>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = portico_drive::Error> = std::result::Result<T, E>;

/// Largest XML request body we parse (PROPFIND): far above any real client's.
const MAX_XML_BODY: usize = 1 << 20;
/// Children fetched per catalog query while streaming a Depth 1 PROPFIND.
const PROPFIND_PAGE: i64 = 1000;
const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK";

/// The WebDAV service mounted at `prefix` (e.g. `/dav`).
#[derive(Clone)]
pub struct DavService {
    drive: Drive,
    prefix: String,
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<DavBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn text(status: StatusCode, message: &str) -> Response<DavBody> {
    let mut response = full(status, format!("{message}\n"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty(status: StatusCode) -> Response<DavBody> {
    full(status, Bytes::new())
}

fn streaming<S>(status: StatusCode, stream: S) -> Response<DavBody>
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let body = StreamBody::new(stream.map_ok(http_body::Frame::data)).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn set(response: &mut Response<DavBody>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn preconditions(headers: &HeaderMap) -> Preconditions {
    let date = |name| {
        header_str(headers, name)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(Timestamp::from_system_time)
    };
    Preconditions {
        if_match: header_str(headers, header::IF_MATCH).map(EtagCondition::parse),
        if_none_match: header_str(headers, header::IF_NONE_MATCH).map(EtagCondition::parse),
        if_modified_since: date(header::IF_MODIFIED_SINCE),
        if_unmodified_since: date(header::IF_UNMODIFIED_SINCE),
    }
}

/// The MD5 (`Content-MD5`, or `MD5:` in `OC-Checksum`) and the base64 SHA-1 (`SHA1:` in
/// `OC-Checksum`) a PUT announces. Other ownCloud algorithms (ADLER32) are ignored.
fn announced_digests(
    headers: &HeaderMap,
) -> std::result::Result<(Option<[u8; 16]>, Option<String>), String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut md5 = None;
    if let Some(value) = header_str(headers, "content-md5") {
        let bytes = b64
            .decode(value.trim())
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or("Content-MD5 is not a base64 MD5")?;
        md5 = Some(bytes);
    }
    let mut sha1 = None;
    for item in header_str(headers, "oc-checksum")
        .unwrap_or_default()
        .split_whitespace()
    {
        let Some((algorithm, hex)) = item.split_once(':') else {
            continue;
        };
        let bad = || format!("OC-Checksum {algorithm} is not hexadecimal");
        if algorithm.eq_ignore_ascii_case("md5") {
            let bytes = decode_hex(hex).ok_or_else(bad)?;
            md5 = Some(<[u8; 16]>::try_from(bytes).map_err(|_| bad())?);
        } else if algorithm.eq_ignore_ascii_case("sha1") {
            let bytes = decode_hex(hex).filter(|b| b.len() == 20).ok_or_else(bad)?;
            sha1 = Some(b64.encode(bytes));
        }
    }
    Ok((md5, sha1))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `X-OC-Mtime` (ownCloud/Nextcloud, sent by rclone): seconds since the epoch, maybe
/// with a fraction.
fn oc_mtime(headers: &HeaderMap) -> Option<Timestamp> {
    let seconds: f64 = header_str(headers, "x-oc-mtime")?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Timestamp::from_nanos((seconds * 1e9) as i64))
}

impl DavService {
    pub fn new(drive: Drive, prefix: impl Into<String>) -> Self {
        Self {
            drive,
            prefix: prefix.into(),
        }
    }

    /// Handles one WebDAV request. Never fails: every error becomes a status with a body.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<DavBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        if request.method() == Method::OPTIONS {
            // Answered without credentials: Windows and macOS probe before they log in.
            return self.options();
        }
        let client = request
            .extensions()
            .get::<portico_drive::ClientAddr>()
            .map(|addr| addr.0);
        let principal = match self.authenticate(request.headers(), client).await {
            Ok(principal) => principal,
            Err(response) => return response,
        };
        let mut ctx = Ctx::new(principal, Protocol::WebDav, request_id);
        let path = match paths::node_path(request.uri().path(), &self.prefix) {
            Ok(path) => path,
            Err(paths::PathError::Invalid(why)) => return text(StatusCode::BAD_REQUEST, &why),
            Err(paths::PathError::NotUtf8) => {
                return text(StatusCode::BAD_REQUEST, "the path is not valid UTF-8");
            }
            Err(paths::PathError::OutsidePrefix)
                if request.method().as_str() == "PROPFIND"
                    && self.prefix.starts_with(request.uri().path()) =>
            {
                // GNOME's gvfs walks up from the mount point: the folders above it are
                // answered as plain collections.
                return self
                    .propfind_above(&ctx, request.uri().path(), request.headers())
                    .await;
            }
            Err(paths::PathError::OutsidePrefix) => {
                return text(StatusCode::NOT_FOUND, "not a WebDAV path");
            }
        };
        if let Err(response) = self.check_if(&mut ctx, &path, request.headers()).await {
            return response;
        }
        let method = request.method().clone();
        let outcome = match method.as_str() {
            "GET" => self.get(&ctx, &path, request.headers(), true).await,
            "HEAD" => self.get(&ctx, &path, request.headers(), false).await,
            "PUT" => self.put(&ctx, &path, request).await,
            "DELETE" => self.delete(&ctx, &path).await,
            "MKCOL" => self.mkcol(&ctx, &path, request).await,
            "COPY" => self.copy_move(&ctx, &path, request.headers(), false).await,
            "MOVE" => self.copy_move(&ctx, &path, request.headers(), true).await,
            "PROPFIND" => self.propfind(&ctx, &path, request).await,
            "PROPPATCH" => self.proppatch(&ctx, &path, request).await,
            "LOCK" => self.lock(&ctx, &path, request).await,
            "UNLOCK" => self.unlock(&ctx, &path, request.headers()).await,
            _ => {
                let mut response = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("{method} is not supported here"),
                );
                set(&mut response, header::ALLOW, ALLOW);
                Ok(response)
            }
        };
        outcome.unwrap_or_else(|err| {
            let (status, reason) = to_status(&err, &ctx.request_id);
            let mut response = text(status, &reason);
            if status == StatusCode::UNAUTHORIZED {
                challenge(&mut response);
            }
            response
        })
    }

    fn options(&self) -> Response<DavBody> {
        let mut response = empty(StatusCode::OK);
        set(
            &mut response,
            header::HeaderName::from_static("dav"),
            "1, 2",
        );
        set(
            &mut response,
            header::HeaderName::from_static("ms-author-via"),
            "DAV",
        );
        set(&mut response, header::ALLOW, ALLOW);
        response
    }

    /// HTTP Basic with the account's password or an app password, or a Bearer app
    /// password. Verified logins are cached and failures throttled by the drive.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        client: Option<std::net::IpAddr>,
    ) -> std::result::Result<portico_drive::Principal, Response<DavBody>> {
        let unauthorized = |message: &str| {
            let mut response = text(StatusCode::UNAUTHORIZED, message);
            challenge(&mut response);
            response
        };
        let Some(value) = header_str(headers, header::AUTHORIZATION) else {
            return Err(unauthorized("authentication required"));
        };
        let outcome = if let Some(token) = parse_bearer(value) {
            self.drive.authenticate_bearer(token, client).await
        } else if let Some((name, password)) = parse_basic(value) {
            self.drive
                .authenticate_basic(&name, &password, client)
                .await
        } else {
            return Err(unauthorized(
                "use HTTP Basic (password or app password) or a Bearer app password",
            ));
        };
        match outcome {
            Ok(principal) => Ok(principal),
            Err(portico_drive::Error::Unauthenticated) => {
                Err(unauthorized("wrong user name or password"))
            }
            Err(err) => {
                let (status, reason) = to_status(&err, "");
                let mut response = text(status, &reason);
                if let portico_drive::Error::TooManyAttempts { retry_after } = err {
                    set(&mut response, header::RETRY_AFTER, &retry_after.to_string());
                }
                Err(response)
            }
        }
    }

    async fn get(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        headers: &HeaderMap,
        with_body: bool,
    ) -> Result<Response<DavBody>> {
        let entry = self.drive.resolve(ctx, path).await?;
        if entry.is_folder() {
            return self.folder_page(ctx, &entry, with_body).await;
        }
        let pre = preconditions(headers);
        let range = header_str(headers, header::RANGE).and_then(ByteRange::parse);
        // A Range with If-Range that no longer matches gets the whole content (RFC 9110 §13.1.5).
        let range = match header_str(headers, header::IF_RANGE) {
            Some(if_range) if Some(if_range.trim().trim_matches('"')) != entry.etag.as_deref() => {
                None
            }
            _ => range,
        };
        let (status, length, content_range, body) = if with_body {
            let download = match self
                .drive
                .open(
                    ctx,
                    path,
                    Kind::File,
                    &ReadRequest {
                        range,
                        preconditions: pre,
                        ..Default::default()
                    },
                )
                .await
            {
                Err(portico_drive::Error::InvalidRange { size }) => {
                    let mut response = text(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "the requested range is not satisfiable",
                    );
                    set(
                        &mut response,
                        header::CONTENT_RANGE,
                        &format!("bytes */{size}"),
                    );
                    return Ok(response);
                }
                other => other?,
            };
            let size = download.version.size;
            match download.range.clone() {
                Some(r) => (
                    StatusCode::PARTIAL_CONTENT,
                    r.end - r.start,
                    Some(format!("bytes {}-{}/{size}", r.start, r.end - 1)),
                    Some(download.body),
                ),
                None => (StatusCode::OK, size, None, Some(download.body)),
            }
        } else {
            let request = ReadRequest {
                preconditions: pre,
                ..Default::default()
            };
            let (_, version) = self.drive.head(ctx, path, Kind::File, &request).await?;
            (StatusCode::OK, version.size, None, None)
        };
        let mut response = match body {
            Some(body) => streaming(status, body),
            None => empty(status),
        };
        set(&mut response, header::CONTENT_LENGTH, &length.to_string());
        if let Some(content_range) = content_range {
            set(&mut response, header::CONTENT_RANGE, &content_range);
        }
        self.describe(&mut response, &entry);
        Ok(response)
    }

    fn describe(&self, response: &mut Response<DavBody>, entry: &Entry) {
        set(response, header::ACCEPT_RANGES, "bytes");
        set(response, header::CONTENT_TYPE, &props::content_type(entry));
        set(
            response,
            header::LAST_MODIFIED,
            &props::http_date(entry.modified),
        );
        if let Some(etag) = &entry.etag {
            set(response, header::ETAG, &quoted(etag));
        }
    }

    /// GET on a collection: a plain HTML index, for people who open the URL in a browser.
    async fn folder_page(
        &self,
        ctx: &Ctx,
        entry: &Entry,
        with_body: bool,
    ) -> Result<Response<DavBody>> {
        let children = self
            .drive
            .list_folder(ctx, &entry.path, None, PROPFIND_PAGE)
            .await?;
        let mut html =
            String::from("<!DOCTYPE html><meta charset=\"utf-8\"><title>Index</title><ul>\n");
        for child in &children {
            let href = paths::href(&self.prefix, &child.path, child.is_folder());
            let name = child.path.name().unwrap_or_default();
            let slash = if child.is_folder() { "/" } else { "" };
            html.push_str(&format!(
                "<li><a href=\"{}\">{}{slash}</a></li>\n",
                props::escape(&href),
                props::escape(name)
            ));
        }
        html.push_str("</ul>\n");
        let length = html.len();
        let mut response = if with_body {
            full(StatusCode::OK, html)
        } else {
            empty(StatusCode::OK)
        };
        set(
            &mut response,
            header::CONTENT_TYPE,
            "text/html; charset=utf-8",
        );
        set(&mut response, header::CONTENT_LENGTH, &length.to_string());
        Ok(response)
    }

    async fn put<B>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        request: Request<B>,
    ) -> Result<Response<DavBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let headers = request.headers().clone();
        if headers.contains_key(header::CONTENT_RANGE) {
            // RFC 9110 §14.5: a partial PUT must not be taken as a whole one.
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "partial PUT with Content-Range is not supported",
            ));
        }
        let existed = self.drive.stat(ctx, path, Kind::File).await.is_ok();
        let mut options = PutOptions::new(Kind::File, Parents::MustExist);
        // Finder streams chunked bodies and announces the size in X-Expected-Entity-Length.
        options.expected_size = header_str(&headers, header::CONTENT_LENGTH)
            .or_else(|| header_str(&headers, "x-expected-entity-length"))
            .and_then(|v| v.trim().parse().ok());
        options.content_type = header_str(&headers, header::CONTENT_TYPE).map(str::to_owned);
        options.preconditions = preconditions(&headers);
        options.modified = oc_mtime(&headers);
        // Digests the client sent are verified before the file exists: ownCloud's
        // `OC-Checksum` (rclone sends SHA1) and `Content-MD5`.
        match announced_digests(&headers) {
            Ok((md5, sha1)) => {
                options.expected_md5 = md5;
                options.checksum =
                    sha1.map(|value| ExpectedChecksum::Value(ChecksumAlgorithm::Sha1, value));
            }
            Err(why) => return Ok(text(StatusCode::BAD_REQUEST, &why)),
        }
        let body = request
            .into_body()
            .into_data_stream()
            .map_err(|err| io::Error::other(err.into()));
        let entry = self.drive.put(ctx, path, Box::pin(body), options).await?;
        let mut response = empty(if existed {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        });
        if let Some(etag) = &entry.etag {
            set(&mut response, header::ETAG, &quoted(etag));
        }
        if oc_mtime(&headers).is_some() {
            set(
                &mut response,
                header::HeaderName::from_static("x-oc-mtime"),
                "accepted",
            );
        }
        Ok(response)
    }

    async fn delete(&self, ctx: &Ctx, path: &NodePath) -> Result<Response<DavBody>> {
        self.drive.delete(ctx, path).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    async fn mkcol<B>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        request: Request<B>,
    ) -> Result<Response<DavBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let body = match read_small(request.into_body()).await {
            Ok(body) => body,
            Err(response) => return Ok(response),
        };
        if !body.is_empty() {
            return Ok(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "MKCOL with a body is not supported",
            ));
        }
        self.drive.mkdir(ctx, path, MkdirOptions::default()).await?;
        Ok(empty(StatusCode::CREATED))
    }

    async fn copy_move(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        headers: &HeaderMap,
        is_move: bool,
    ) -> Result<Response<DavBody>> {
        let Some(destination) = header_str(headers, "destination") else {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "a Destination header is required",
            ));
        };
        let target = match paths::node_path(paths::destination_path(destination), &self.prefix) {
            Ok(target) => target,
            Err(paths::PathError::OutsidePrefix) => {
                return Ok(text(
                    StatusCode::BAD_GATEWAY,
                    "the destination is not on this WebDAV server",
                ));
            }
            Err(paths::PathError::NotUtf8) => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "the destination is not valid UTF-8",
                ));
            }
            Err(paths::PathError::Invalid(why)) => return Ok(text(StatusCode::BAD_REQUEST, &why)),
        };
        let overwrite = match header_str(headers, "overwrite").map(str::trim) {
            None | Some("T" | "t") => true,
            Some("F" | "f") => false,
            Some(_) => return Ok(text(StatusCode::BAD_REQUEST, "Overwrite must be T or F")),
        };
        let depth = header_str(headers, "depth").map(|d| d.trim().to_ascii_lowercase());
        let transfer = match (is_move, depth.as_deref()) {
            (true, None | Some("infinity")) => Transfer::Move,
            (true, Some(_)) => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "MOVE requires Depth: infinity",
                ));
            }
            (false, None | Some("infinity")) => Transfer::Copy { recursive: true },
            (false, Some("0")) => Transfer::Copy { recursive: false },
            (false, Some(_)) => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "COPY takes Depth: 0 or infinity",
                ));
            }
        };
        let created = self
            .drive
            .transfer(ctx, path, &target, transfer, overwrite)
            .await?;
        let mut response = empty(if created {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        });
        // ownCloud clients (rclone) send the modification time the copy should have.
        if let Some(modified) = oc_mtime(headers) {
            let entry = self.drive.resolve(ctx, &target).await?;
            self.drive.set_modified(ctx, &entry, modified).await?;
            set(
                &mut response,
                header::HeaderName::from_static("x-oc-mtime"),
                "accepted",
            );
        }
        Ok(response)
    }

    async fn propfind<B>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        request: Request<B>,
    ) -> Result<Response<DavBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let depth = header_str(request.headers(), "depth").map(|d| d.trim().to_ascii_lowercase());
        let depth_one = match depth.as_deref() {
            Some("0") => false,
            Some("1") => true,
            // RFC 4918 §9.1: a server may refuse infinite depth; it says so in this form.
            None | Some("infinity") => {
                let mut response = full(
                    StatusCode::FORBIDDEN,
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
                );
                set(
                    &mut response,
                    header::CONTENT_TYPE,
                    "application/xml; charset=utf-8",
                );
                return Ok(response);
            }
            Some(_) => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "Depth must be 0, 1 or infinity",
                ));
            }
        };
        let body = match read_small(request.into_body()).await {
            Ok(body) => body,
            Err(response) => return Ok(response),
        };
        let prop_request = match props::parse_propfind(&body) {
            Ok(request) => request,
            Err(why) => return Ok(text(StatusCode::BAD_REQUEST, &why)),
        };
        let entry = self.drive.resolve(ctx, path).await?;
        let listing = depth_one && entry.is_folder();
        let context = self
            .render_context(ctx, &entry, &prop_request, listing)
            .await?;
        let extras = extras_of(&self.drive, &[&entry], &prop_request)
            .await?
            .pop()
            .unwrap_or_default();
        let mut first = String::from(props::MULTISTATUS_OPEN);
        props::render_response(
            &mut first,
            &paths::href(&self.prefix, &entry.path, entry.is_folder()),
            &entry,
            &prop_request,
            &context,
            &extras,
        );

        let status = StatusCode::MULTI_STATUS;
        let mut response = if !listing {
            first.push_str(props::MULTISTATUS_CLOSE);
            full(status, first)
        } else {
            let pages = ChildPages {
                drive: self.drive.clone(),
                ctx: ctx.clone(),
                prefix: self.prefix.clone(),
                folder: entry.path.clone(),
                request: prop_request,
                context,
                after: None,
                done: false,
            };
            let head = futures::stream::once(async move { Ok(Bytes::from(first)) });
            streaming(status, head.chain(pages.into_stream()))
        };
        set(
            &mut response,
            header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        );
        Ok(response)
    }

    /// What every response of one PROPFIND shares: quota and locks, each fetched once and
    /// only when asked for.
    async fn render_context(
        &self,
        ctx: &Ctx,
        entry: &Entry,
        request: &PropRequest,
        listing: bool,
    ) -> Result<RenderContext> {
        let quota = if props::wants_quota(request) && entry.is_folder() {
            Some(self.drive.space(ctx).await?)
        } else {
            None
        };
        let locks = if !props::wants_locks(request) {
            Vec::new()
        } else if listing {
            self.drive.locks_within(ctx, &entry.path).await?
        } else {
            self.drive.locks_on(ctx, &entry.path).await?
        };
        Ok(RenderContext {
            quota,
            locks,
            prefix: self.prefix.clone(),
        })
    }

    /// PROPFIND on a folder above the mount point (`/` for `/dav`): a collection whose only
    /// member is the mount, so clients that walk up the path find where they are.
    async fn propfind_above(&self, ctx: &Ctx, raw: &str, headers: &HeaderMap) -> Response<DavBody> {
        let root = match self.drive.resolve(ctx, &NodePath::root()).await {
            Ok(root) => root,
            Err(err) => {
                let (status, reason) = to_status(&err, &ctx.request_id);
                return text(status, &reason);
            }
        };
        let request = PropRequest::Props(
            [
                "resourcetype",
                "displayname",
                "getlastmodified",
                "creationdate",
            ]
            .iter()
            .map(|name| PropName {
                namespace: props::DAV_NS.into(),
                name: (*name).into(),
            })
            .collect(),
        );
        let context = RenderContext {
            quota: None,
            locks: Vec::new(),
            prefix: self.prefix.clone(),
        };
        let mut out = String::from(props::MULTISTATUS_OPEN);
        let here = if raw.ends_with('/') {
            raw.to_owned()
        } else {
            format!("{raw}/")
        };
        let none = props::Extras::default();
        props::render_response(&mut out, &here, &root, &request, &context, &none);
        let depth_one = header_str(headers, "depth").is_some_and(|d| d.trim() == "1");
        if depth_one {
            // The next segment of the prefix below `raw`.
            let rest = self.prefix[raw.trim_end_matches('/').len()..].trim_start_matches('/');
            let child = format!("{here}{}/", rest.split('/').next().unwrap_or_default());
            props::render_response(&mut out, &child, &root, &request, &context, &none);
        }
        out.push_str(props::MULTISTATUS_CLOSE);
        let mut response = full(StatusCode::MULTI_STATUS, out);
        set(
            &mut response,
            header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        );
        response
    }

    /// PROPPATCH: dead properties set and removed in order, all or none (RFC 4918 §9.2).
    /// Live properties are protected (403, the rest 424). Windows' `Win32LastModifiedTime`
    /// sets the modification time every protocol shows.
    async fn proppatch<B>(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        request: Request<B>,
    ) -> Result<Response<DavBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let body = match read_small(request.into_body()).await {
            Ok(body) => body,
            Err(response) => return Ok(response),
        };
        let ops = match props::parse_proppatch(&body) {
            Ok(ops) => ops,
            Err(why) => return Ok(text(StatusCode::BAD_REQUEST, &why)),
        };
        let entry = self.drive.resolve(ctx, path).await?;
        if entry.path.is_root() {
            return Err(portico_drive::Error::Forbidden);
        }
        let mut results: Vec<(PropName, u16)> = Vec::new();
        let mut changes = Vec::new();
        let mut modified = None;
        for op in ops {
            match op {
                PatchOp::Set(name, _) | PatchOp::Remove(name) if name.is_protected() => {
                    results.push((name, 403));
                }
                PatchOp::Set(name, xml)
                    if name.namespace == props::MS_NS && name.name == "Win32LastModifiedTime" =>
                {
                    match props::element_text(&xml).and_then(|t| httpdate::parse_http_date(&t).ok())
                    {
                        Some(time) => {
                            modified = Some(Timestamp::from_system_time(time));
                            results.push((name, 200));
                        }
                        None => results.push((name, 409)),
                    }
                }
                PatchOp::Remove(name)
                    if name.namespace == props::MS_NS && name.name == "Win32LastModifiedTime" =>
                {
                    results.push((name, 200));
                }
                PatchOp::Set(name, xml) => {
                    changes.push(PropChange::Set(DeadProp {
                        namespace: name.namespace.clone(),
                        name: name.name.clone(),
                        xml,
                    }));
                    results.push((name, 200));
                }
                PatchOp::Remove(name) => {
                    changes.push(PropChange::Remove {
                        namespace: name.namespace.clone(),
                        name: name.name.clone(),
                    });
                    results.push((name, 200));
                }
            }
        }
        if results.iter().any(|(_, status)| *status != 200) {
            for result in results.iter_mut().filter(|(_, status)| *status == 200) {
                result.1 = 424;
            }
        } else {
            self.drive
                .change_props(ctx, &entry, &changes, modified)
                .await?;
        }
        let href = paths::href(&self.prefix, &entry.path, entry.is_folder());
        let mut response = full(
            StatusCode::MULTI_STATUS,
            props::proppatch_response(&href, &results),
        );
        set(
            &mut response,
            header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        );
        Ok(response)
    }
}

/// Dead properties and stored checksums of `entries`, one query each, only when the
/// PROPFIND asks for them.
async fn extras_of(
    drive: &Drive,
    entries: &[&Entry],
    request: &PropRequest,
) -> Result<Vec<props::Extras>> {
    let mut extras = vec![props::Extras::default(); entries.len()];
    if props::wants_dead(request) {
        for (slot, dead) in extras.iter_mut().zip(drive.dead_props(entries).await?) {
            slot.dead = dead;
        }
    }
    if props::wants_checksums(request) {
        for (slot, checksum) in extras
            .iter_mut()
            .zip(drive.stored_checksums(entries).await?)
        {
            slot.checksum = checksum;
        }
    }
    Ok(extras)
}

/// The pages of a Depth 1 PROPFIND after the folder itself: one catalog query and one
/// chunk of XML per page, then the closing tag.
struct ChildPages {
    drive: Drive,
    ctx: Ctx,
    prefix: String,
    folder: NodePath,
    request: PropRequest,
    context: RenderContext,
    after: Option<String>,
    done: bool,
}

impl ChildPages {
    fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        futures::stream::unfold(self, |mut pages| async move {
            if pages.done {
                return None;
            }
            let children = match pages
                .drive
                .list_folder(
                    &pages.ctx,
                    &pages.folder,
                    pages.after.as_deref(),
                    PROPFIND_PAGE,
                )
                .await
            {
                Ok(children) => children,
                Err(err) => {
                    // Headers are gone already: end the stream with an error so the client
                    // sees a broken response rather than a silently short listing.
                    let (_, reason) = to_status(&err, &pages.ctx.request_id);
                    pages.done = true;
                    return Some((Err(io::Error::other(reason)), pages));
                }
            };
            let last_page = (children.len() as i64) < PROPFIND_PAGE;
            pages.after = children.last().map(Entry::key);
            let refs: Vec<&Entry> = children.iter().collect();
            let extras = match extras_of(&pages.drive, &refs, &pages.request).await {
                Ok(extras) => extras,
                Err(err) => {
                    let (_, reason) = to_status(&err, &pages.ctx.request_id);
                    pages.done = true;
                    return Some((Err(io::Error::other(reason)), pages));
                }
            };
            let mut out = String::with_capacity(children.len() * 400 + 32);
            let folders: std::collections::HashSet<&str> = children
                .iter()
                .filter(|c| c.is_folder())
                .filter_map(|c| c.path.name())
                .collect();
            for (index, child) in children.iter().enumerate() {
                // A tree shows the folder when S3 made a file and a folder of one name.
                if !child.is_folder() && child.path.name().is_some_and(|n| folders.contains(n)) {
                    continue;
                }
                let href = paths::href(&pages.prefix, &child.path, child.is_folder());
                let none = props::Extras::default();
                props::render_response(
                    &mut out,
                    &href,
                    child,
                    &pages.request,
                    &pages.context,
                    extras.get(index).unwrap_or(&none),
                );
            }
            if last_page {
                out.push_str(props::MULTISTATUS_CLOSE);
                pages.done = true;
            }
            Some((Ok(Bytes::from(out)), pages))
        })
    }
}

fn challenge(response: &mut Response<DavBody>) {
    set(
        response,
        header::WWW_AUTHENTICATE,
        "Basic realm=\"Portico\", charset=\"UTF-8\"",
    );
}

/// The token of `Bearer <token>`.
fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Parses `Basic base64(name:password)`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// Reads an XML request body up to [`MAX_XML_BODY`].
async fn read_small<B>(body: B) -> std::result::Result<Bytes, Response<DavBody>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match http_body_util::Limited::new(body, MAX_XML_BODY)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            ))
        }
        Err(_) => Err(text(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        assert_eq!(
            parse_basic("Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM="),
            Some(("alice".into(), "pw:with:colons".into()))
        );
        assert_eq!(
            parse_basic("basic YWxpY2U6"),
            Some(("alice".into(), String::new()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn oc_mtime_accepts_fractions() {
        let mut headers = HeaderMap::new();
        headers.insert("x-oc-mtime", HeaderValue::from_static("1700000000.5"));
        assert_eq!(
            oc_mtime(&headers),
            Some(Timestamp::from_nanos(1_700_000_000_500_000_000))
        );
        headers.insert("x-oc-mtime", HeaderValue::from_static("soon"));
        assert_eq!(oc_mtime(&headers), None);
    }
}
