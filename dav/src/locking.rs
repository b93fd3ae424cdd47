//! Class 2: LOCK, UNLOCK and the `If` header. The drive keeps and enforces the locks;
//! this module speaks the protocol — lock requests and answers, refreshes, and the
//! tokens and ETags a request conditions itself on.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use portico_drive::{Ctx, LockInfo, LockRequest, NodePath};

use crate::ifheader::{IfHeader, ResourceState};
use crate::props::{self, DAV_NS};
use crate::{
    BoxError, DavBody, DavService, Result, full, header_str, paths, quoted, read_small, set, text,
};

/// `Timeout: Second-3600` or `Infinite` (RFC 4918 §10.7): the first one we understand;
/// `None` for infinite or none. The drive caps what it grants.
fn parse_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = header_str(headers, "timeout")?;
    value.split(',').map(str::trim).find_map(|item| {
        let seconds = item
            .strip_prefix("Second-")
            .or_else(|| item.strip_prefix("second-"))?;
        seconds.parse().ok().map(Duration::from_secs)
    })
}

/// What a LOCK body asks for: exclusive or shared, and the owner element.
fn parse_lockinfo(body: &[u8]) -> std::result::Result<(bool, Option<String>), String> {
    let root = xmltree::Element::parse(body)
        .map_err(|err| format!("the LOCK body is not well-formed XML: {err}"))?;
    let is =
        |e: &xmltree::Element, name: &str| e.namespace.as_deref() == Some(DAV_NS) && e.name == name;
    if !is(&root, "lockinfo") {
        return Err("the LOCK body must be a DAV:lockinfo element".into());
    }
    let children: Vec<&xmltree::Element> = root
        .children
        .iter()
        .filter_map(xmltree::XMLNode::as_element)
        .collect();
    let scope = children
        .iter()
        .find(|e| is(e, "lockscope"))
        .and_then(|e| e.children.iter().find_map(xmltree::XMLNode::as_element))
        .ok_or("DAV:lockinfo needs a DAV:lockscope")?;
    let exclusive = match scope.name.as_str() {
        "exclusive" => true,
        "shared" => false,
        other => return Err(format!("unknown lock scope {other:?}")),
    };
    let kind = children
        .iter()
        .find(|e| is(e, "locktype"))
        .and_then(|e| e.children.iter().find_map(xmltree::XMLNode::as_element))
        .ok_or("DAV:lockinfo needs a DAV:locktype")?;
    if kind.name != "write" {
        return Err("only write locks exist".into());
    }
    let owner = match children.iter().find(|e| is(e, "owner")) {
        Some(owner) => Some(props::element_xml(owner)?),
        None => None,
    };
    Ok((exclusive, owner))
}

fn lock_response(
    status: StatusCode,
    lock: &LockInfo,
    prefix: &str,
    new: bool,
) -> Response<DavBody> {
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>",
    );
    props::active_lock(&mut body, lock, prefix);
    body.push_str("</D:lockdiscovery></D:prop>\n");
    let mut response = full(status, body);
    set(
        &mut response,
        header::CONTENT_TYPE,
        "application/xml; charset=utf-8",
    );
    if new {
        set(
            &mut response,
            header::HeaderName::from_static("lock-token"),
            &format!("<{}>", lock.token),
        );
    }
    response
}

impl DavService {
    /// Evaluates the `If` header, if any, and records the lock tokens it submits in `ctx`.
    /// A malformed header is a 400, one whose conditions fail a 412 (RFC 4918 §10.4).
    pub(crate) async fn check_if(
        &self,
        ctx: &mut Ctx,
        path: &NodePath,
        headers: &HeaderMap,
    ) -> std::result::Result<(), Response<DavBody>> {
        let Some(value) = header_str(headers, "if") else {
            return Ok(());
        };
        let parsed = IfHeader::parse(value).map_err(|why| text(StatusCode::BAD_REQUEST, &why))?;
        ctx.lock_tokens = parsed.submitted_tokens();
        let mut states: Vec<(Option<String>, ResourceState)> = Vec::new();
        for resource in parsed.resources() {
            let target = match &resource {
                None => Some(path.clone()),
                Some(url) => paths::node_path(paths::destination_path(url), &self.prefix).ok(),
            };
            let state = match target {
                Some(target) => self.resource_state(ctx, &target).await.map_err(|err| {
                    let (status, reason) = crate::to_status(&err, &ctx.request_id);
                    text(status, &reason)
                })?,
                None => ResourceState::default(),
            };
            states.push((resource, state));
        }
        let holds = parsed.evaluate(|resource| {
            states
                .iter()
                .find(|(r, _)| r == resource)
                .map(|(_, state)| state.clone())
                .unwrap_or_default()
        });
        if holds {
            Ok(())
        } else {
            Err(text(
                StatusCode::PRECONDITION_FAILED,
                "the conditions of the If header do not hold",
            ))
        }
    }

    async fn resource_state(&self, ctx: &Ctx, path: &NodePath) -> Result<ResourceState> {
        let etag = match self.drive.resolve(ctx, path).await {
            Ok(entry) => entry.etag.as_deref().map(quoted),
            Err(portico_drive::Error::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        let lock_tokens = self
            .drive
            .locks_on(ctx, path)
            .await?
            .into_iter()
            .map(|lock| lock.token)
            .collect();
        Ok(ResourceState { etag, lock_tokens })
    }

    /// LOCK: a new lock (with a `lockinfo` body), or a refresh (no body, the token in `If`).
    pub(crate) async fn lock<B>(
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
        let timeout = parse_timeout(&headers);
        // davfs2 locks a file it is about to create with `If-None-Match: *`.
        let conditions = crate::preconditions(&headers);
        if !conditions.is_empty() {
            let current = match self.drive.resolve(ctx, path).await {
                Ok(entry) => Some(entry),
                Err(portico_drive::Error::NotFound(_)) => None,
                Err(err) => return Err(err),
            };
            conditions.evaluate(
                current
                    .as_ref()
                    .and_then(|e| e.etag.as_deref().map(|etag| (etag, e.modified))),
                false,
            )?;
        }
        let body = match read_small(request.into_body()).await {
            Ok(body) => body,
            Err(response) => return Ok(response),
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            if ctx.lock_tokens.is_empty() {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "a LOCK without a body refreshes a lock: name it in an If header",
                ));
            }
            let mut last = portico_drive::Error::PreconditionFailed;
            for token in &ctx.lock_tokens {
                match self.drive.refresh_lock(ctx, path, token, timeout).await {
                    Ok(lock) => {
                        return Ok(lock_response(StatusCode::OK, &lock, &self.prefix, false));
                    }
                    Err(err) => last = err,
                }
            }
            return Err(last);
        }
        let depth_infinity =
            match header_str(&headers, "depth").map(|d| d.trim().to_ascii_lowercase()) {
                None => true,
                Some(d) if d == "infinity" => true,
                Some(d) if d == "0" => false,
                Some(_) => {
                    return Ok(text(
                        StatusCode::BAD_REQUEST,
                        "LOCK takes Depth: 0 or infinity",
                    ));
                }
            };
        let (exclusive, owner_xml) = match parse_lockinfo(&body) {
            Ok(info) => info,
            Err(why) => return Ok(text(StatusCode::BAD_REQUEST, &why)),
        };
        let (lock, created) = self
            .drive
            .lock(
                ctx,
                path,
                LockRequest {
                    exclusive,
                    depth_infinity,
                    owner_xml,
                    timeout,
                },
            )
            .await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(lock_response(status, &lock, &self.prefix, true))
    }

    /// UNLOCK with the `Lock-Token` header.
    pub(crate) async fn unlock(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        headers: &HeaderMap,
    ) -> Result<Response<DavBody>> {
        let Some(token) = header_str(headers, "lock-token")
            .map(|t| {
                t.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim()
                    .to_owned()
            })
            .filter(|t| !t.is_empty())
        else {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "UNLOCK needs a Lock-Token header",
            ));
        };
        self.drive.unlock(ctx, path, &token).await?;
        Ok(crate::empty(StatusCode::NO_CONTENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse() {
        let with = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("timeout", http::HeaderValue::from_static(v));
            parse_timeout(&headers)
        };
        assert_eq!(with("Second-3600"), Some(Duration::from_secs(3600)));
        assert_eq!(
            with("Infinite, Second-4100000000"),
            Some(Duration::from_secs(4_100_000_000))
        );
        assert_eq!(with("Infinite"), None);
    }

    #[test]
    fn lockinfo_parses_scope_and_owner() {
        let (exclusive, owner) = parse_lockinfo(
            b"<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:me@example.com</D:href></D:owner></D:lockinfo>",
        )
        .unwrap();
        assert!(!exclusive);
        let owner = owner.unwrap();
        assert!(owner.contains("mailto:me@example.com"), "{owner}");
        assert!(
            owner.contains("DAV:"),
            "the owner element stands alone: {owner}"
        );
        assert!(
            parse_lockinfo(
                b"<D:lockinfo xmlns:D=\"DAV:\"><D:locktype><D:write/></D:locktype></D:lockinfo>"
            )
            .is_err()
        );
    }
}
