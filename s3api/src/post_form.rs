//! Browser (POST object) uploads may name the object `uploads/${filename}`: S3 puts the
//! name of the uploaded file in its place. s3s keeps the form's `key` as written, so the
//! front rewrites it before s3s parses the form. Only the form's head (the fields, then the
//! file part's headers) is held; the file itself streams through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use s3s::StdError;
use s3s::stream::{ByteStream, RemainingLength};

/// The most of a form's head that is held while looking for the file part; AWS itself
/// limits the fields to 20 KB.
const HEAD_LIMIT: usize = 1 << 20;

const PLACEHOLDER: &[u8] = b"${filename}";

/// The form's boundary, when `content_type` is `multipart/form-data`.
pub fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// `body` with `${filename}` in its `key` field replaced by the uploaded file's name.
/// A form this does not understand passes on unchanged, for s3s to judge.
pub async fn substitute_filename(mut body: s3s::Body, boundary: &str) -> s3s::Body {
    let mut head = BytesMut::new();
    let mut failed = None;
    loop {
        if let Some(end) = file_head_end(&head, boundary) {
            if let Some(rewritten) = rewrite_head(&head[..end], boundary) {
                let mut replaced = BytesMut::from(&rewritten[..]);
                replaced.extend_from_slice(&head[end..]);
                head = replaced;
            }
            break;
        }
        if head.len() > HEAD_LIMIT {
            break;
        }
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(err)) => {
                failed = Some(err);
                break;
            }
            None => break,
        }
    }
    let rest = if failed.is_some() { None } else { Some(body) };
    s3s::Body::from(Box::pin(Prefixed {
        head: Some(head.freeze()),
        failed,
        rest,
    }) as s3s::stream::DynByteStream)
}

/// Where the headers of the part carrying a `filename` end, once `buf` holds them.
fn file_head_end(buf: &[u8], boundary: &str) -> Option<usize> {
    let delimiter = format!("--{boundary}");
    let mut at = 0;
    while let Some(found) = find(&buf[at..], delimiter.as_bytes()) {
        let headers_start = at + found + delimiter.len();
        let headers_end = headers_start + find(&buf[headers_start..], b"\r\n\r\n")? + 4;
        let headers = &buf[headers_start..headers_end];
        if disposition_param(headers, "filename").is_some() {
            return Some(headers_end);
        }
        at = headers_end;
    }
    None
}

/// The head with the `key` field's `${filename}` replaced; `None` when there is nothing to
/// replace.
fn rewrite_head(head: &[u8], boundary: &str) -> Option<Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut at = find(head, delimiter.as_bytes())? + delimiter.len();
    loop {
        let headers_end = at + find(&head[at..], b"\r\n\r\n")? + 4;
        let headers = &head[at..headers_end];
        match find(&head[headers_end..], format!("\r\n{delimiter}").as_bytes()) {
            Some(len) => {
                parts.push((headers, headers_end, headers_end + len));
                at = headers_end + len + 2 + delimiter.len();
            }
            None => {
                // The file part: its headers end the head.
                let filename = disposition_param(headers, "filename")?;
                let filename = filename.rsplit(['/', '\\']).next().unwrap_or_default();
                let (_, start, end) = parts.iter().find(|(headers, ..)| {
                    disposition_param(headers, "name")
                        .is_some_and(|n| n.eq_ignore_ascii_case("key"))
                })?;
                let value = &head[*start..*end];
                let placeholder = find(value, PLACEHOLDER)?;
                let mut out = Vec::with_capacity(head.len() + filename.len());
                out.extend_from_slice(&head[..start + placeholder]);
                out.extend_from_slice(filename.as_bytes());
                out.extend_from_slice(&head[start + placeholder + PLACEHOLDER.len()..]);
                return Some(out);
            }
        }
    }
}

/// A parameter of the part's `Content-Disposition` header (`name`, `filename`).
fn disposition_param(headers: &[u8], param: &str) -> Option<String> {
    let text = std::str::from_utf8(headers).ok()?;
    let line = text.split("\r\n").find(|line| {
        line.split_once(':')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    let (_, value) = line.split_once(':')?;
    value.split(';').skip(1).find_map(|item| {
        let (name, value) = item.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(param)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The held head, then the rest of the body as it arrives.
struct Prefixed {
    head: Option<Bytes>,
    failed: Option<StdError>,
    rest: Option<s3s::Body>,
}

impl Stream for Prefixed {
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take().filter(|h| !h.is_empty()) {
            return Poll::Ready(Some(Ok(head)));
        }
        if let Some(err) = this.failed.take() {
            return Poll::Ready(Some(Err(err)));
        }
        match &mut this.rest {
            Some(rest) => rest.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl ByteStream for Prefixed {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::unknown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(key: &str, filename: &str) -> Vec<u8> {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\nabc\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: text/plain\r\n\r\nfile bytes\r\n--XyZ--\r\n"
        )
        .into_bytes()
    }

    async fn run(body: Vec<u8>, chunk: usize) -> String {
        let chunks: Vec<Result<Bytes, StdError>> = body
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let source = futures::stream::iter(chunks);
        let body =
            s3s::Body::from(Box::pin(Source(Box::pin(source))) as s3s::stream::DynByteStream);
        let mut out = Vec::new();
        let mut rewritten = substitute_filename(body, "XyZ").await;
        while let Some(chunk) = rewritten.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    struct Source(Pin<Box<dyn Stream<Item = Result<Bytes, StdError>> + Send + Sync>>);
    impl Stream for Source {
        type Item = Result<Bytes, StdError>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_next_unpin(cx)
        }
    }
    impl ByteStream for Source {}

    #[tokio::test]
    async fn the_file_name_replaces_the_placeholder_whatever_the_chunking() {
        for chunk in [1, 7, 64, 100_000] {
            let out = run(
                form("uploads/${filename}", "C:\\Users\\me\\photo.jpg"),
                chunk,
            )
            .await;
            assert_eq!(
                out,
                String::from_utf8(form("uploads/photo.jpg", "C:\\Users\\me\\photo.jpg")).unwrap()
            );
        }
    }

    #[tokio::test]
    async fn forms_without_the_placeholder_pass_unchanged() {
        let body = form("uploads/fixed.txt", "a.txt");
        assert_eq!(run(body.clone(), 5).await.into_bytes(), body);
        let truncated = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk".to_vec();
        assert_eq!(run(truncated.clone(), 3).await.into_bytes(), truncated);
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/xml"), None);
    }
}
