//! One endpoint under test, S3 or WebDAV, behind the same operations: put, get (checked),
//! stat, list, make a folder, multipart put. Plain HTTP/1.1 on a pooled keep-alive client
//! with TCP_NODELAY, so the client adds as little as it can to what is measured.

use std::convert::Infallible;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::content::Pattern;
use crate::sigv4::{self, Credentials};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub enum Protocol {
    S3 {
        bucket: String,
        credentials: Credentials,
    },
    Dav {
        /// `Basic …`, when the server wants credentials.
        authorization: Option<String>,
    },
}

pub struct Target {
    client: Client<HttpConnector, Body>,
    /// `http://host:port`
    origin: String,
    host: String,
    /// For WebDAV: the collection URL path everything goes under (`/dav/`).
    base_path: String,
    pub protocol: Protocol,
    pub pattern: Pattern,
}

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

impl Target {
    pub fn new(url: &str, protocol: Protocol) -> Result<Self> {
        let uri: http::Uri = url.parse().context("endpoint URL")?;
        if uri.scheme_str() != Some("http") {
            bail!("the load client speaks plain HTTP on loopback: {url}");
        }
        let authority = uri.authority().context("endpoint host")?.to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        let base_path = {
            let path = uri.path();
            if path.ends_with('/') {
                path.to_owned()
            } else {
                format!("{path}/")
            }
        };
        Ok(Self {
            client,
            origin: format!("http://{authority}"),
            host: authority,
            base_path,
            protocol,
            pattern: Pattern::new(),
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self.protocol, Protocol::S3 { .. })
    }

    /// A request for `key` (relative: `prefix/name`; empty for the bucket or base folder).
    fn request(
        &self,
        method: Method,
        key: &str,
        query: &[(String, String)],
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Request<Body>> {
        let (path, extra) = match &self.protocol {
            Protocol::S3 {
                bucket,
                credentials,
            } => {
                let path = if key.is_empty() {
                    format!("/{bucket}")
                } else {
                    format!("/{bucket}/{}", sigv4::uri_encode(key, true))
                };
                let signed = sigv4::sign(
                    credentials,
                    method.as_str(),
                    &self.host,
                    &path,
                    query,
                    time::OffsetDateTime::now_utc(),
                );
                (path, signed)
            }
            Protocol::Dav { authorization } => {
                let path = format!("{}{}", self.base_path, sigv4::uri_encode(key, true));
                let extra = authorization
                    .iter()
                    .map(|a| ("authorization", a.clone()))
                    .collect();
                (path, extra)
            }
        };
        let query_text = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    sigv4::uri_encode(k, false),
                    sigv4::uri_encode(v, false)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let uri = if query_text.is_empty() {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}?{query_text}", self.origin)
        };
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in extra.iter().chain(headers) {
            builder = builder.header(*name, value);
        }
        Ok(builder.body(body)?)
    }

    async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<(StatusCode, http::HeaderMap, hyper::body::Incoming)> {
        let response = self.client.request(request).await?;
        let (parts, body) = response.into_parts();
        Ok((parts.status, parts.headers, body))
    }

    /// Sends and reads the whole (small) answer; `Err` unless the status is one of `ok`.
    async fn exchange(
        &self,
        request: Request<Body>,
        ok: &[u16],
    ) -> Result<(http::HeaderMap, Bytes)> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let (status, headers, body) = self.send(request).await?;
        let bytes = body.collect().await?.to_bytes();
        if !ok.contains(&status.as_u16()) {
            bail!(
                "{method} {uri}: {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
        }
        Ok((headers, bytes))
    }

    /// Creates the bucket (S3) or base folder (WebDAV) and the folder `prefix`.
    pub async fn prepare(&self, prefix: &str) -> Result<()> {
        if self.is_s3() {
            let request = self.request(Method::PUT, "", &[], &[], empty())?;
            // 409: it exists already (BucketAlreadyOwnedByYou).
            self.exchange(request, &[200, 409]).await?;
        } else {
            let mut path = String::new();
            for segment in prefix.split('/').filter(|s| !s.is_empty()) {
                path.push_str(segment);
                path.push('/');
                self.mkcol(&path).await?;
            }
        }
        Ok(())
    }

    /// MKCOL; an existing folder is fine.
    pub async fn mkcol(&self, path: &str) -> Result<()> {
        let request = self.request(Method::from_bytes(b"MKCOL")?, path, &[], &[], empty())?;
        self.exchange(request, &[201, 405]).await?;
        Ok(())
    }

    /// PUTs object `seed` of `size` bytes at `key`, streamed.
    pub async fn put(&self, key: &str, seed: u64, size: u64) -> Result<()> {
        let chunks = self.pattern.chunks(seed, size);
        let stream = futures::stream::iter(chunks).map(|b| Ok(http_body::Frame::data(b)));
        let body = StreamBody::new(stream).boxed_unsync();
        let request = self.request(
            Method::PUT,
            key,
            &[],
            &[("content-length", size.to_string())],
            body,
        )?;
        self.exchange(request, &[200, 201, 204]).await?;
        Ok(())
    }

    /// GETs `key` and checks its bytes against `expected`; returns the length read.
    pub async fn get(&self, key: &str, expected: &blake3::Hash) -> Result<u64> {
        let request = self.request(Method::GET, key, &[], &[], empty())?;
        let (status, _, mut body) = self.send(request).await?;
        if status != StatusCode::OK {
            bail!("GET {key}: {status}");
        }
        let mut hasher = blake3::Hasher::new();
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                length += data.len() as u64;
                hasher.update(&data);
            }
        }
        if hasher.finalize() != *expected {
            bail!("GET {key}: the bytes read back differ from what was written");
        }
        Ok(length)
    }

    /// HEAD (S3) or PROPFIND Depth 0 (WebDAV): what a client asks before it acts.
    pub async fn stat(&self, key: &str) -> Result<()> {
        let request = if self.is_s3() {
            self.request(Method::HEAD, key, &[], &[], empty())?
        } else {
            self.request(
                Method::from_bytes(b"PROPFIND")?,
                key,
                &[],
                &[("depth", "0".into())],
                full(PROPFIND_BODY),
            )?
        };
        self.exchange(request, &[200, 207]).await?;
        Ok(())
    }

    /// Lists everything directly in folder `prefix` (ListObjectsV2 with `/` as delimiter,
    /// page after page; or one PROPFIND Depth 1), returning the number of entries.
    pub async fn list(&self, prefix: &str) -> Result<usize> {
        let folder = format!("{}/", prefix.trim_end_matches('/'));
        if self.is_s3() {
            let mut count = 0;
            let mut token: Option<String> = None;
            loop {
                let mut query = vec![
                    ("list-type".to_owned(), "2".to_owned()),
                    ("prefix".to_owned(), folder.clone()),
                    ("delimiter".to_owned(), "/".to_owned()),
                    ("max-keys".to_owned(), "1000".to_owned()),
                ];
                if let Some(token) = &token {
                    query.push(("continuation-token".to_owned(), token.clone()));
                }
                let request = self.request(Method::GET, "", &query, &[], empty())?;
                let (_, body) = self.exchange(request, &[200]).await?;
                let text = std::str::from_utf8(&body)?;
                count += text.matches("<Key>").count() + text.matches("<Prefix>").count() - 1;
                token = between(text, "<NextContinuationToken>", "</NextContinuationToken>")
                    .map(str::to_owned);
                if token.is_none() {
                    return Ok(count);
                }
            }
        } else {
            let request = self.request(
                Method::from_bytes(b"PROPFIND")?,
                &folder,
                &[],
                &[("depth", "1".into())],
                full(PROPFIND_BODY),
            )?;
            let (_, body) = self.exchange(request, &[207]).await?;
            let text = std::str::from_utf8(&body)?;
            // Each response has one href; the first is the folder itself.
            let hrefs = text.matches("href>").count() / 2;
            Ok(hrefs.saturating_sub(1))
        }
    }

    /// A multipart upload (S3 only): `size` bytes in `part_size` parts, `parallel` at once.
    pub async fn multipart_put(
        &self,
        key: &str,
        seed: u64,
        size: u64,
        part_size: u64,
        parallel: usize,
    ) -> Result<()> {
        if !self.is_s3() {
            bail!("multipart upload is an S3 operation");
        }
        let create = self.request(
            Method::POST,
            key,
            &[("uploads".to_owned(), String::new())],
            &[],
            empty(),
        )?;
        let (_, body) = self.exchange(create, &[200]).await?;
        let text = std::str::from_utf8(&body)?;
        let upload_id = between(text, "<UploadId>", "</UploadId>")
            .ok_or_else(|| anyhow!("no UploadId in {text}"))?
            .to_owned();
        let parts = size.div_ceil(part_size);
        let etags: Vec<Result<(u64, String)>> = futures::stream::iter(0..parts)
            .map(|index| {
                let upload_id = upload_id.clone();
                async move {
                    let length = part_size.min(size - index * part_size);
                    // Each part is its own object's bytes: the whole need not be one stream.
                    let chunks = self.pattern.chunks(seed.wrapping_add(index), length);
                    let stream =
                        futures::stream::iter(chunks).map(|b| Ok(http_body::Frame::data(b)));
                    let request = self.request(
                        Method::PUT,
                        key,
                        &[
                            ("partNumber".to_owned(), (index + 1).to_string()),
                            ("uploadId".to_owned(), upload_id),
                        ],
                        &[("content-length", length.to_string())],
                        StreamBody::new(stream).boxed_unsync(),
                    )?;
                    let (headers, _) = self.exchange(request, &[200]).await?;
                    let etag = headers
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| anyhow!("part {} has no ETag", index + 1))?
                        .to_owned();
                    Ok((index + 1, etag))
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        let mut done = etags.into_iter().collect::<Result<Vec<_>>>()?;
        done.sort();
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in done {
            xml.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let complete = self.request(
            Method::POST,
            key,
            &[("uploadId".to_owned(), upload_id)],
            &[],
            full(xml),
        )?;
        let (_, body) = self.exchange(complete, &[200]).await?;
        if std::str::from_utf8(&body)?.contains("<Error>") {
            bail!(
                "CompleteMultipartUpload failed: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// The hash a multipart object written by [`Self::multipart_put`] reads back as.
    pub fn multipart_hash(&self, seed: u64, size: u64, part_size: u64) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        for index in 0..size.div_ceil(part_size) {
            let length = part_size.min(size - index * part_size);
            for chunk in self.pattern.chunks(seed.wrapping_add(index), length) {
                hasher.update(&chunk);
            }
        }
        hasher.finalize()
    }
}

/// What rclone and Finder ask for when listing.
const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>"#;

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}
