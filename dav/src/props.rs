//! PROPFIND: parsing the request body and writing `multistatus` responses.
//!
//! Responses are written entry by entry into a buffer that the handler streams out page by
//! page, so a folder of any size never sits in memory as one document.

use std::fmt::Write as _;

use portico_drive::{Checksum, ChecksumAlgorithm, DeadProp, Entry, LockInfo, Timestamp};

pub const DAV_NS: &str = "DAV:";
/// ownCloud's namespace: `oc:checksums`, which rclone reads for hashes.
pub const OC_NS: &str = "http://owncloud.org/ns";
/// Windows' namespace for the `Win32*` properties Explorer sets.
pub const MS_NS: &str = "urn:schemas-microsoft-com:";

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

    fn of(element: &xmltree::Element) -> Self {
        Self {
            namespace: element.namespace.clone().unwrap_or_default(),
            name: element.name.clone(),
        }
    }

    /// Live properties: computed from the node, never stored; PROPPATCH cannot set them.
    pub fn is_protected(&self) -> bool {
        (self.namespace == DAV_NS
            && (LIVE.contains(&self.name.as_str()) || QUOTA.contains(&self.name.as_str())))
            || self.is(OC_NS, "checksums")
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
                .map(PropName::of)
                .collect();
            return Ok(PropRequest::Props(names));
        }
    }
    Err("DAV:propfind must contain allprop, propname or prop".into())
}

/// One instruction of a PROPPATCH body, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOp {
    /// The property and its whole element as standalone XML.
    Set(PropName, String),
    Remove(PropName),
}

/// Parses a PROPPATCH body (RFC 4918 §9.2).
pub fn parse_proppatch(body: &[u8]) -> Result<Vec<PatchOp>, String> {
    let root = xmltree::Element::parse(body)
        .map_err(|err| format!("the PROPPATCH body is not well-formed XML: {err}"))?;
    if !is_dav(&root, "propertyupdate") {
        return Err("the PROPPATCH body must be a DAV:propertyupdate element".into());
    }
    let mut ops = Vec::new();
    for instruction in root
        .children
        .iter()
        .filter_map(xmltree::XMLNode::as_element)
    {
        let set = is_dav(instruction, "set");
        if !set && !is_dav(instruction, "remove") {
            continue;
        }
        for prop in instruction
            .children
            .iter()
            .filter_map(xmltree::XMLNode::as_element)
            .filter(|e| is_dav(e, "prop"))
        {
            for element in prop
                .children
                .iter()
                .filter_map(xmltree::XMLNode::as_element)
            {
                let name = PropName::of(element);
                ops.push(if set {
                    PatchOp::Set(name, element_xml(element)?)
                } else {
                    PatchOp::Remove(name)
                });
            }
        }
    }
    if ops.is_empty() {
        return Err("the PROPPATCH body names no property".into());
    }
    Ok(ops)
}

/// An element as standalone XML: no declaration, its namespaces declared on itself.
pub fn element_xml(element: &xmltree::Element) -> Result<String, String> {
    // Each element arrives with every namespace in scope of the request body; keep the
    // ones this element and its children use, so stored values stay small.
    let mut used = std::collections::BTreeMap::new();
    collect_prefixes(element, &mut used);
    let mut element = element.clone();
    prune_namespaces(&mut element, &used);
    let mut out = Vec::new();
    let config = xmltree::EmitterConfig::new()
        .write_document_declaration(false)
        .perform_indent(false)
        .normalize_empty_elements(true);
    element
        .write_with_config(&mut out, config)
        .map_err(|err| format!("the property value cannot be stored: {err}"))?;
    String::from_utf8(out).map_err(|_| "the property value is not UTF-8".into())
}

/// The `prefix → namespace` mappings the elements of a tree are written with.
fn collect_prefixes(
    element: &xmltree::Element,
    used: &mut std::collections::BTreeMap<String, String>,
) {
    if let Some(namespace) = &element.namespace {
        used.insert(
            element.prefix.clone().unwrap_or_default(),
            namespace.clone(),
        );
    } else if element.prefix.is_none() {
        // An element in no namespace needs `xmlns=""` if a default is in scope.
        used.entry(String::new()).or_default();
    }
    for child in element
        .children
        .iter()
        .filter_map(xmltree::XMLNode::as_element)
    {
        collect_prefixes(child, used);
    }
}

fn prune_namespaces(
    element: &mut xmltree::Element,
    used: &std::collections::BTreeMap<String, String>,
) {
    if let Some(namespaces) = &mut element.namespaces {
        namespaces
            .0
            .retain(|prefix, uri| used.get(prefix).is_some_and(|u| u == uri));
    }
    for child in element.children.iter_mut() {
        if let xmltree::XMLNode::Element(child) = child {
            prune_namespaces(child, used);
        }
    }
}

/// The text of a property element (`Win32LastModifiedTime`'s date).
pub fn element_text(xml: &str) -> Option<String> {
    let element = xmltree::Element::parse(xml.as_bytes()).ok()?;
    element.get_text().map(|t| t.trim().to_owned())
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

/// Declares `Z:` for Windows' properties once, so the Win32 properties Explorer stores on
/// every file need no declaration of their own in listings.
pub const MULTISTATUS_OPEN: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\" xmlns:Z=\"urn:schemas-microsoft-com:\">\n";

/// A stored property without a declaration the multistatus root already makes.
fn compact(xml: &str) -> std::borrow::Cow<'_, str> {
    const WINDOWS: &str = " xmlns:Z=\"urn:schemas-microsoft-com:\"";
    if xml.starts_with("<Z:") && xml.contains(WINDOWS) {
        // Only the outer element's declaration: the first one in the text.
        std::borrow::Cow::Owned(xml.replacen(WINDOWS, "", 1))
    } else {
        std::borrow::Cow::Borrowed(xml)
    }
}
pub const MULTISTATUS_CLOSE: &str = "</D:multistatus>\n";

/// RFC 1123 date, as `getlastmodified` and `Last-Modified` need.
pub fn http_date(time: Timestamp) -> String {
    HttpDate(time).to_string()
}

/// An RFC 1123 date written straight into a response (no string of its own).
struct HttpDate(Timestamp);

impl std::fmt::Display for HttpDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        httpdate::HttpDate::from(self.0.to_system_time()).fmt(f)
    }
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

/// The live properties we know, in the order allprop lists them (`supportedlock` is
/// named or listed by propname only: the same ~300 bytes on every entry would cost
/// Explorer, which reads folders with allprop and gives up at 1 MB, a quarter of them).
const LIVE: &[&str] = &[
    "resourcetype",
    "displayname",
    "creationdate",
    "getlastmodified",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "lockdiscovery",
    "supportedlock",
];
/// RFC 4331 quota properties: on collections, and only when asked for by name.
const QUOTA: &[&str] = &["quota-available-bytes", "quota-used-bytes"];

/// Context shared by every response of one PROPFIND.
pub struct RenderContext {
    /// Bytes used and available to the account (RFC 4331), when asked for.
    pub quota: Option<(u64, u64)>,
    /// Locks covering the listed folder or below it: `lockdiscovery` for every entry.
    pub locks: Vec<LockInfo>,
    /// The WebDAV mount prefix, for lock roots.
    pub prefix: String,
}

const SUPPORTED_LOCK: &str = "<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry></D:supportedlock>";

/// One `DAV:activelock` (PROPFIND `lockdiscovery`, and the LOCK response).
pub fn active_lock(out: &mut String, lock: &LockInfo, prefix: &str) {
    let scope = if lock.exclusive {
        "exclusive"
    } else {
        "shared"
    };
    let depth = if lock.depth_infinity { "infinity" } else { "0" };
    let _ = write!(
        out,
        "<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{scope}/></D:lockscope><D:depth>{depth}</D:depth>"
    );
    if let Some(owner) = &lock.owner_xml {
        out.push_str(owner);
    }
    let root = crate::paths::href(prefix, &lock.root, lock.root_is_folder);
    let _ = write!(
        out,
        "<D:timeout>Second-{}</D:timeout><D:locktoken><D:href>{}</D:href></D:locktoken><D:lockroot><D:href>{}</D:href></D:lockroot></D:activelock>",
        lock.remaining.as_secs_f64().ceil().max(1.0) as u64,
        escape(&lock.token),
        escape(&root)
    );
}

/// `DAV:lockdiscovery` with the locks covering `entry`.
pub fn lock_discovery(out: &mut String, entry: &Entry, locks: &[LockInfo], prefix: &str) {
    let mut covering = locks.iter().filter(|l| l.covers(&entry.path)).peekable();
    if covering.peek().is_none() {
        out.push_str("<D:lockdiscovery/>");
        return;
    }
    out.push_str("<D:lockdiscovery>");
    for lock in covering {
        active_lock(out, lock, prefix);
    }
    out.push_str("</D:lockdiscovery>");
}

/// What one entry's responses need beyond the entry: its dead properties and its stored
/// checksum, each fetched for a whole page at once and only when asked for.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub dead: Vec<DeadProp>,
    pub checksum: Option<Checksum>,
}

/// `oc:checksums`: the SHA-1 when one was verified at upload (`OC-Checksum`), and the MD5,
/// which is the ETag of single-part content (a multipart object's ETag is not an MD5).
fn oc_checksums(out: &mut String, entry: &Entry, extras: &Extras) -> bool {
    use base64::Engine as _;
    let mut values = Vec::new();
    if let Some(checksum) = &extras.checksum
        && checksum.algorithm == ChecksumAlgorithm::Sha1
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&checksum.value)
    {
        values.push(format!("SHA1:{}", to_hex(&bytes)));
    }
    if let Some(etag) = entry.etag.as_deref().filter(|e| !e.contains('-')) {
        values.push(format!("MD5:{}", escape(etag)));
    }
    if entry.is_folder() || values.is_empty() {
        return false;
    }
    let _ = write!(
        out,
        "<oc:checksums xmlns:oc=\"{OC_NS}\"><oc:checksum>{}</oc:checksum></oc:checksums>",
        values.join(" ")
    );
    true
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a PROPFIND asks for `oc:checksums` (never part of allprop).
pub fn wants_checksums(request: &PropRequest) -> bool {
    matches!(request, PropRequest::Props(names) if names.iter().any(|p| p.is(OC_NS, "checksums")))
}

/// Writes the value of one live property of `entry` into `out`; false if the entry does not
/// have it.
fn live_value(
    out: &mut String,
    entry: &Entry,
    (namespace, name): (&str, &str),
    context: &RenderContext,
    extras: &Extras,
) -> bool {
    let folder = entry.is_folder();
    if namespace == OC_NS {
        // rclone's owncloud vendor reads hashes here.
        return name == "checksums" && oc_checksums(out, entry, extras);
    }
    if namespace == MS_NS && name == "Win32LastModifiedTime" {
        // Set by Explorer as the mtime; read back from it, so it never disagrees.
        let _ = write!(
            out,
            "<Z:Win32LastModifiedTime xmlns:Z=\"{MS_NS}\">{}</Z:Win32LastModifiedTime>",
            HttpDate(entry.modified)
        );
        return true;
    }
    if namespace != DAV_NS {
        return false;
    }
    match name {
        "lockdiscovery" => lock_discovery(out, entry, &context.locks, &context.prefix),
        "supportedlock" => out.push_str(SUPPORTED_LOCK),
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
                HttpDate(entry.modified)
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
        "quota-used-bytes" if folder => match context.quota {
            Some((used, _)) => {
                let _ = write!(out, "<D:quota-used-bytes>{used}</D:quota-used-bytes>");
            }
            None => return false,
        },
        "quota-available-bytes" if folder => match context.quota {
            Some((_, available)) => {
                let _ = write!(
                    out,
                    "<D:quota-available-bytes>{available}</D:quota-available-bytes>"
                );
            }
            None => return false,
        },
        _ => return false,
    }
    true
}

/// The type a GET of this entry answers with: the stored one, else a guess from the name.
pub fn content_type(entry: &Entry) -> std::borrow::Cow<'_, str> {
    match &entry.content_type {
        Some(stored) => std::borrow::Cow::Borrowed(stored),
        None => mime_guess::from_path(entry.path.name().unwrap_or_default())
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
            .into(),
    }
}

/// Appends one `<D:response>` for `entry` at `href`, with its dead properties.
pub fn render_response(
    out: &mut String,
    href: &str,
    entry: &Entry,
    request: &PropRequest,
    context: &RenderContext,
    extras: &Extras,
) {
    let dead = &extras.dead;
    out.push_str("<D:response><D:href>");
    out.push_str(&escape(href));
    out.push_str("</D:href>");
    match request {
        PropRequest::AllProp => {
            out.push_str("<D:propstat><D:prop>");
            for name in LIVE.iter().filter(|name| **name != "supportedlock") {
                live_value(out, entry, (DAV_NS, name), context, extras);
            }
            for prop in dead {
                out.push_str(&compact(&prop.xml));
            }
            out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        }
        PropRequest::PropName => {
            out.push_str("<D:propstat><D:prop>");
            let mut scratch = String::new();
            for name in LIVE.iter().chain(QUOTA) {
                scratch.clear();
                if live_value(&mut scratch, entry, (DAV_NS, name), context, extras) {
                    let _ = write!(out, "<D:{name}/>");
                }
            }
            for prop in dead {
                empty_element(
                    out,
                    &PropName {
                        namespace: prop.namespace.clone(),
                        name: prop.name.clone(),
                    },
                );
            }
            out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        }
        PropRequest::Props(names) => {
            // The found values go straight into `out`; the opening is taken back if none
            // was found. Missing names are rare: their string allocates only then.
            const OPEN: &str = "<D:propstat><D:prop>";
            out.push_str(OPEN);
            let values_from = out.len();
            let mut missing = String::new();
            for prop in names {
                if live_value(out, entry, (&prop.namespace, &prop.name), context, extras) {
                    continue;
                }
                match dead
                    .iter()
                    .find(|d| d.namespace == prop.namespace && d.name == prop.name)
                {
                    Some(value) => out.push_str(&compact(&value.xml)),
                    None => empty_element(&mut missing, prop),
                }
            }
            if out.len() == values_from {
                out.truncate(values_from - OPEN.len());
            } else {
                out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
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

/// Whether a PROPFIND needs the entries' dead properties.
pub fn wants_dead(request: &PropRequest) -> bool {
    match request {
        PropRequest::AllProp | PropRequest::PropName => true,
        PropRequest::Props(names) => names.iter().any(|p| !p.is_protected()),
    }
}

/// Whether a PROPFIND asks for quota (never part of allprop, RFC 4331 §3).
pub fn wants_quota(request: &PropRequest) -> bool {
    match request {
        PropRequest::Props(names) => names
            .iter()
            .any(|p| p.namespace == DAV_NS && QUOTA.contains(&p.name.as_str())),
        PropRequest::PropName => true,
        PropRequest::AllProp => false,
    }
}

/// Whether a PROPFIND shows locks.
pub fn wants_locks(request: &PropRequest) -> bool {
    match request {
        PropRequest::Props(names) => names.iter().any(|p| p.is(DAV_NS, "lockdiscovery")),
        _ => true,
    }
}

/// A 207 answer to a PROPPATCH: each property with its status.
pub fn proppatch_response(href: &str, results: &[(PropName, u16)]) -> String {
    let mut out = String::from(MULTISTATUS_OPEN);
    let _ = write!(out, "<D:response><D:href>{}</D:href>", escape(href));
    let mut statuses: Vec<u16> = results.iter().map(|(_, s)| *s).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        out.push_str("<D:propstat><D:prop>");
        for (prop, _) in results.iter().filter(|(_, s)| *s == status) {
            empty_element(&mut out, prop);
        }
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let _ = write!(
            out,
            "</D:prop><D:status>HTTP/1.1 {status} {reason}</D:status></D:propstat>"
        );
    }
    out.push_str("</D:response>\n");
    out.push_str(MULTISTATUS_CLOSE);
    out
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
    fn stored_values_declare_only_the_namespaces_they_use() {
        let ops = parse_proppatch(
            b"<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\" xmlns:Q=\"urn:q\"><D:set><D:prop><Z:color>red<Q:shade xmlns:R=\"urn:r\">dark</Q:shade></Z:color><plain xmlns=\"\">x</plain></D:prop></D:set><D:remove><D:prop><Z:gone/></D:prop></D:remove></D:propertyupdate>",
        )
        .unwrap();
        let PatchOp::Set(name, xml) = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(name.namespace, "urn:z");
        assert!(
            xml.contains("xmlns:Z=\"urn:z\"") && xml.contains("xmlns:Q=\"urn:q\""),
            "{xml}"
        );
        assert!(!xml.contains("DAV:") && !xml.contains("urn:r"), "{xml}");
        // The stored value parses alone, with its child in its own namespace.
        let back = xmltree::Element::parse(xml.as_bytes()).unwrap();
        let shade = back.get_child("shade").unwrap();
        assert_eq!(shade.namespace.as_deref(), Some("urn:q"));
        let PatchOp::Set(plain, _) = &ops[1] else {
            panic!("{ops:?}")
        };
        assert_eq!(plain.namespace, "");
        assert_eq!(
            ops[2],
            PatchOp::Remove(PropName {
                namespace: "urn:z".into(),
                name: "gone".into()
            })
        );
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
