//! Request paths and hrefs: percent-decoding of request URIs and `Destination` headers,
//! and one consistent percent-encoding for every href we send.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use portico_drive::NodePath;

/// Everything but unreserved characters is encoded in hrefs (RFC 3986 §2.3), so names with
/// `% # & + ; =`, spaces or non-ASCII read back byte-exact in every client.
const HREF_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a request path could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not under the WebDAV prefix (e.g. a Destination on another mount).
    OutsidePrefix,
    /// Percent-decodes to bytes that are not UTF-8.
    NotUtf8,
    Invalid(String),
}

/// Maps a raw URI path (`/dav/a%20b/c`) under `prefix` (`/dav`) to a node path.
pub fn node_path(raw: &str, prefix: &str) -> Result<NodePath, PathError> {
    let rest = raw.strip_prefix(prefix).ok_or(PathError::OutsidePrefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(PathError::OutsidePrefix);
    }
    // Decode segment by segment: an encoded slash (%2F) stays inside its name and is then
    // refused, instead of silently becoming a separator.
    let trimmed = rest.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(NodePath::root());
    }
    let mut segments = Vec::new();
    for raw_segment in trimmed.split('/') {
        let decoded = percent_decode_str(raw_segment)
            .decode_utf8()
            .map_err(|_| PathError::NotUtf8)?;
        segments.push(decoded.into_owned());
    }
    NodePath::from_segments(segments).map_err(|err| PathError::Invalid(err.to_string()))
}

/// The path part of a `Destination` header: an absolute URI (`http://host/dav/x`) or an
/// absolute path. The host is not compared: behind proxies it rarely matches.
pub fn destination_path(header: &str) -> &str {
    let path = match header.find("://") {
        Some(scheme_end) => {
            let after = &header[scheme_end + 3..];
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        None => header,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// The href of a node: the prefix, each segment encoded, and a trailing slash for
/// collections.
pub fn href(prefix: &str, path: &NodePath, collection: bool) -> String {
    let mut out = String::with_capacity(prefix.len() + 16 * path.depth());
    out.push_str(prefix);
    for segment in path.segments() {
        out.push('/');
        out.extend(utf8_percent_encode(segment, HREF_ENCODE));
    }
    if collection || path.is_root() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_decode_and_validate() {
        let ok = |raw: &str, expected: &str| {
            assert_eq!(
                node_path(raw, "/dav").unwrap().file_key(),
                expected,
                "{raw}"
            )
        };
        ok("/dav", "");
        ok("/dav/", "");
        ok("/dav/a%20b/c", "a b/c");
        ok("/dav/caf%C3%A9/", "caf\u{e9}");
        ok("/dav/x+y%23z%25", "x+y#z%");
        assert_eq!(node_path("/davx/a", "/dav"), Err(PathError::OutsidePrefix));
        assert_eq!(node_path("/other/a", "/dav"), Err(PathError::OutsidePrefix));
        assert_eq!(node_path("/dav/%ff", "/dav"), Err(PathError::NotUtf8));
        assert!(matches!(
            node_path("/dav/a/../b", "/dav"),
            Err(PathError::Invalid(_))
        ));
        assert!(matches!(
            node_path("/dav/a%2Fb", "/dav"),
            Err(PathError::Invalid(_))
        ));
    }

    #[test]
    fn destinations_accept_absolute_uris_and_paths() {
        assert_eq!(destination_path("http://h:8080/dav/a%20b"), "/dav/a%20b");
        assert_eq!(destination_path("https://h/dav/x?y=1"), "/dav/x");
        assert_eq!(destination_path("/dav/z"), "/dav/z");
    }

    #[test]
    fn hrefs_round_trip_through_node_path() {
        for key in ["a b/c", "caf\u{e9}/na\u{308}ive", "x+y#z%&;=", "\u{1f600}"] {
            let path = NodePath::parse(key).unwrap();
            let href = href("/dav", &path, false);
            assert_eq!(node_path(&href, "/dav").unwrap(), path, "{href}");
        }
        assert_eq!(href("/dav", &NodePath::root(), true), "/dav/");
        assert_eq!(
            href("/dav", &NodePath::parse("a").unwrap(), true),
            "/dav/a/"
        );
    }
}
