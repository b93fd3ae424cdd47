//! PROPFIND: parsing the request body and writing `multistatus` responses.
//!
//! Responses are written entry by entry into a buffer that the handler streams out page by
//! page, so a folder of any size never sits in memory as one document.

use std::fmt::Write as _;

use portico_drive::{Entry, Timestamp, Usage};

pub const DAV_NS: &str = "DAV:";

/// A property name: namespace URI and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropName {
    pub namespace: String,
    pub name: String,
}

impl PropName {
    fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }
}

/// What a PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropRequest {
    AllProp,
    PropName,
    Props(Vec<PropName>),
}

/// Parses a PROPFIND body (RFC 4918 §9.1); an empty body means `allprop`.
pub fn parse_propfind(body: &[u8]) -> Result<PropRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PropRequest::AllProp);
    }
    let root = xmltree::Element::parse(body)
        .map_err(|err| format!("the PROPFIND body is not well-formed XML: {err}"))?;
    if !is_dav(&root, "propfind") {
        return Err("the PROPFIND body must be a DAV:propfind element".into());
    }
    for child in root
        .children
        .iter()
        .filter_map(xmltree::XMLNode::as_element)
    {
        if is_dav(child, "allprop") {
            return Ok(PropRequest::AllProp);
        }
        if is_dav(child, "propname") {
            return Ok(PropRequest::PropName);
        }
        if is_dav(child, "prop") {
            let names = child
                .children
                .iter()
                .filter_map(xmltree::XMLNode::as_element)
                .map(|prop| PropName {
                    namespace: prop.namespace.clone().unwrap_or_default(),
                    name: prop.name.clone(),
                })
                .collect();
            return Ok(PropRequest::Props(names));
        }
    }
    Err("DAV:propfind must contain allprop, propname or prop".into())
}

fn is_dav(element: &xmltree::Element, name: &str) -> bool {
    element.namespace.as_deref() == Some(DAV_NS) && element.name == name
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['<', '>', '&', '"', '\'']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

pub const MULTISTATUS_OPEN: &str =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n";
pub const MULTISTATUS_CLOSE: &str = "</D:multistatus>\n";

/// RFC 1123 date, as `getlastmodified` and `Last-Modified` need.
pub fn http_date(time: Timestamp) -> String {
    httpdate::fmt_http_date(time.to_system_time())
}

/// RFC 3339 without fractions, the `creationdate` format clients parse.
fn rfc3339(time: Timestamp) -> String {
    let seconds = time.whole_seconds();
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The live properties we know, in the order allprop lists them.
const LIVE: &[&str] = &[
    "resourcetype",
    "displayname",
    "creationdate",
    "getlastmodified",
    "getcontentlength",
    "getcontenttype",
    "getetag",
];
/// RFC 4331 quota properties: on collections, and only when asked for by name.
const QUOTA: &[&str] = &["quota-available-bytes", "quota-used-bytes"];

/// Context shared by every response of one PROPFIND.
pub struct RenderContext {
    pub usage: Option<Usage>,
}

/// Writes the value of one live property of `entry` into `out`; false if the entry does not
/// have it.
fn live_value(out: &mut String, entry: &Entry, name: &str, context: &RenderContext) -> bool {
    let folder = entry.is_folder();
    match name {
        "resourcetype" if folder => {
            out.push_str("<D:resourcetype><D:collection/></D:resourcetype>")
        }
        "resourcetype" => out.push_str("<D:resourcetype/>"),
        "displayname" => {
            let _ = write!(
                out,
                "<D:displayname>{}</D:displayname>",
                escape(entry.path.name().unwrap_or(""))
            );
        }
        "creationdate" => {
            let _ = write!(
                out,
                "<D:creationdate>{}</D:creationdate>",
                rfc3339(entry.created)
            );
        }
        "getlastmodified" => {
            let _ = write!(
                out,
                "<D:getlastmodified>{}</D:getlastmodified>",
                http_date(entry.modified)
            );
        }
        "getcontentlength" if !folder => {
            let _ = write!(
                out,
                "<D:getcontentlength>{}</D:getcontentlength>",
                entry.size
            );
        }
        "getcontenttype" if !folder => {
            let _ = write!(
                out,
                "<D:getcontenttype>{}</D:getcontenttype>",
                escape(&content_type(entry))
            );
        }
        "getetag" if !folder => match &entry.etag {
            Some(etag) => {
                let _ = write!(out, "<D:getetag>\"{}\"</D:getetag>", escape(etag));
            }
            None => return false,
        },
        "quota-used-bytes" if folder => match &context.usage {
            Some(usage) => {
                let _ = write!(
                    out,
                    "<D:quota-used-bytes>{}</D:quota-used-bytes>",
                    usage.used_bytes
                );
            }
            None => return false,
        },
        "quota-available-bytes" if folder => {
            match context.usage.as_ref().and_then(Usage::available) {
                Some(available) => {
                    let _ = write!(
                        out,
                        "<D:quota-available-bytes>{available}</D:quota-available-bytes>"
                    );
                }
                None => return false,
            }
        }
        _ => return false,
    }
    true
}

/// The type a GET of this entry answers with: the stored one, else a guess from the name.
pub fn content_type(entry: &Entry) -> String {
    entry.content_type.clone().unwrap_or_else(|| {
        mime_guess::from_path(entry.path.name().unwrap_or_default())
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    })
}

/// Appends one `<D:response>` for `entry` at `href`.
pub fn render_response(
    out: &mut String,
    href: &str,
    entry: &Entry,
    request: &PropRequest,
    context: &RenderContext,
) {
    out.push_str("<D:response><D:href>");
    out.push_str(&escape(href));
    out.push_str("</D:href>");
    match request {
        PropRequest::AllProp => {
            out.push_str("<D:propstat><D:prop>");
            for name in LIVE {
                live_value(out, entry, name, context);
            }
            out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        }
        PropRequest::PropName => {
            out.push_str("<D:propstat><D:prop>");
            for name in LIVE.iter().chain(QUOTA) {
                let mut scratch = String::new();
                if live_value(&mut scratch, entry, name, context) {
                    let _ = write!(out, "<D:{name}/>");
                }
            }
            out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        }
        PropRequest::Props(names) => {
            let mut found = String::new();
            let mut missing = String::new();
            for prop in names {
                let known = prop.namespace == DAV_NS
                    && (LIVE.contains(&prop.name.as_str()) || QUOTA.contains(&prop.name.as_str()));
                if !(known && live_value(&mut found, entry, &prop.name, context)) {
                    empty_element(&mut missing, prop);
                }
            }
            if !found.is_empty() {
                let _ = write!(
                    out,
                    "<D:propstat><D:prop>{found}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
                );
            }
            if !missing.is_empty() {
                let _ = write!(
                    out,
                    "<D:propstat><D:prop>{missing}</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
                );
            }
        }
    }
    out.push_str("</D:response>\n");
}

fn empty_element(out: &mut String, prop: &PropName) {
    if prop.is(DAV_NS, &prop.name) {
        let _ = write!(out, "<D:{}/>", prop.name);
    } else if prop.namespace.is_empty() {
        let _ = write!(out, "<{} xmlns=\"\"/>", prop.name);
    } else {
        let _ = write!(
            out,
            "<X:{} xmlns:X=\"{}\"/>",
            prop.name,
            escape(&prop.namespace)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_bodies_parse() {
        assert_eq!(parse_propfind(b"").unwrap(), PropRequest::AllProp);
        assert_eq!(
            parse_propfind(
                b"<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><allprop/></propfind>"
            )
            .unwrap(),
            PropRequest::AllProp
        );
        assert_eq!(
            parse_propfind(b"<D:propfind xmlns:D=\"DAV:\"><D:propname/></D:propfind>").unwrap(),
            PropRequest::PropName
        );
        let props = parse_propfind(b"<D:propfind xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\"><D:prop><D:getetag/><Z:color/></D:prop></D:propfind>").unwrap();
        assert_eq!(
            props,
            PropRequest::Props(vec![
                PropName {
                    namespace: "DAV:".into(),
                    name: "getetag".into()
                },
                PropName {
                    namespace: "urn:z".into(),
                    name: "color".into()
                },
            ])
        );
        assert!(parse_propfind(b"<propfind").is_err());
        assert!(parse_propfind(b"<foo xmlns=\"DAV:\"/>").is_err());
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn creationdate_has_no_fractions() {
        assert_eq!(
            rfc3339(Timestamp::from_nanos(1_700_000_000_123_456_789)),
            "2023-11-14T22:13:20Z"
        );
    }
}
