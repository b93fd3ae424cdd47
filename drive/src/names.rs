//! Names, paths and keys: the one place that decides what a valid name is, for every
//! protocol.
//!
//! An account's tree is addressed by a [`NodePath`] (segments from the root). The catalog
//! stores each node under a full key: `a/b/c` for a file, `a/b/c/` for a folder, so that
//! UTF-8 byte order of keys is S3's listing order and a folder's marker object `a/b/c/`
//! is its own row. S3 buckets are the top-level folders; an S3 key is the rest of the path.

use crate::error::{Error, Result};

/// Longest S3 key (bytes), as AWS: longer keys are refused with `KeyTooLongError`.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest single name (bytes): what every common filesystem allows.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Top-level names the router owns: they can never be buckets.
pub const RESERVED_BUCKET_NAMES: &[&str] = &[
    "api",
    "dav",
    "healthz",
    "hls",
    "metrics",
    "readyz",
    "s",
    "static",
    "ui",
    "webdav",
    "favicon.ico",
];

/// A validated path in an account's tree: zero segments is the root.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodePath {
    segments: Vec<String>,
}

impl std::fmt::Debug for NodePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodePath({:?})", self.segments.join("/"))
    }
}

impl std::fmt::Display for NodePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}", self.segments.join("/"))
    }
}

/// Checks one name: not empty, not `.` or `..`, no `/` or NUL, at most 255 bytes.
pub fn validate_segment(segment: &str) -> Result<()> {
    if segment.is_empty() {
        return Err(Error::invalid_name(
            "empty path segment (as in a//b or a leading /)",
        ));
    }
    if segment == "." || segment == ".." {
        return Err(Error::invalid_name("'.' and '..' are not allowed as names"));
    }
    if segment.contains('\0') {
        return Err(Error::invalid_name("NUL is not allowed in names"));
    }
    if segment.contains('/') {
        return Err(Error::invalid_name("'/' is not allowed inside a name"));
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(Error::invalid_name("a name is longer than 255 bytes"));
    }
    Ok(())
}

impl NodePath {
    pub fn root() -> Self {
        Self::default()
    }

    /// Builds a path from names, validating each and the total length.
    pub fn from_segments<I, S>(segments: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        for segment in &segments {
            validate_segment(segment)?;
        }
        let path = Self { segments };
        if path.folder_key().len() > MAX_KEY_BYTES + 1 || path.file_key().len() > MAX_KEY_BYTES {
            return Err(Error::KeyTooLong { max: MAX_KEY_BYTES });
        }
        Ok(path)
    }

    /// Parses an already percent-decoded slash-separated path (`/a/b/`, `a/b`). Leading and
    /// trailing slashes are ignored; empty segments inside (`a//b`) are refused.
    pub fn parse(path: &str) -> Result<Self> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        Self::from_segments(trimmed.split('/'))
    }

    /// The path of an S3 object: the bucket is the first segment, the key the rest. A key
    /// ending in `/` names the folder itself (its marker object), returned as `true`.
    pub fn from_s3(bucket: &str, key: &str) -> Result<(Self, bool)> {
        if key.is_empty() {
            return Err(Error::invalid_name("the object key is empty"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::KeyTooLong { max: MAX_KEY_BYTES });
        }
        let (body, is_folder) = match key.strip_suffix('/') {
            Some(body) => (body, true),
            None => (key, false),
        };
        let mut segments = Vec::with_capacity(8);
        segments.push(bucket.to_owned());
        segments.extend(body.split('/').map(str::to_owned));
        Ok((Self::from_segments(segments)?, is_folder))
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// The last name, or `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    pub fn parent(&self) -> Option<NodePath> {
        if self.segments.is_empty() {
            return None;
        }
        Some(Self {
            segments: self.segments[..self.segments.len() - 1].to_vec(),
        })
    }

    pub fn join(&self, name: &str) -> Result<NodePath> {
        let mut segments = self.segments.clone();
        segments.push(name.to_owned());
        Self::from_segments(segments)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &NodePath) -> bool {
        self.segments.starts_with(&other.segments)
    }

    /// The bucket (first segment), if any.
    pub fn bucket(&self) -> Option<&str> {
        self.segments.first().map(String::as_str)
    }

    /// The S3 key below the bucket, without a trailing slash (`None` for the root or a
    /// bucket itself).
    pub fn s3_key(&self) -> Option<String> {
        (self.segments.len() > 1).then(|| self.segments[1..].join("/"))
    }

    /// Catalog key of a file at this path: `a/b/c`.
    pub fn file_key(&self) -> String {
        self.segments.join("/")
    }

    /// Catalog key of a folder at this path: `a/b/c/`; the root is the empty string.
    pub fn folder_key(&self) -> String {
        if self.segments.is_empty() {
            return String::new();
        }
        let mut key = self.segments.join("/");
        key.push('/');
        key
    }

    /// The catalog key for `kind` at this path.
    pub fn key(&self, kind: Kind) -> String {
        match kind {
            Kind::File => self.file_key(),
            Kind::Folder => self.folder_key(),
        }
    }

    /// Rebuilds a path from a catalog key (trusted: it was validated when written).
    pub(crate) fn from_key(key: &str) -> Self {
        let body = key.strip_suffix('/').unwrap_or(key);
        if body.is_empty() {
            return Self::root();
        }
        Self {
            segments: body.split('/').map(str::to_owned).collect(),
        }
    }
}

/// File or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Folder,
}

impl Kind {
    pub(crate) fn from_catalog(kind: i64) -> Self {
        if kind == portico_metadata::KIND_FOLDER {
            Kind::Folder
        } else {
            Kind::File
        }
    }

    pub(crate) fn to_catalog(self) -> i64 {
        match self {
            Kind::File => portico_metadata::KIND_FILE,
            Kind::Folder => portico_metadata::KIND_FOLDER,
        }
    }
}

/// S3 bucket naming rules (the general-purpose bucket rules AWS documents), plus the names
/// the router reserves.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        return Err(Error::invalid_name(
            "bucket names are 3 to 63 characters long",
        ));
    }
    if !bytes
        .iter()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
    {
        return Err(Error::invalid_name(
            "bucket names use only lowercase letters, digits, '.' and '-'",
        ));
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(Error::invalid_name(
            "bucket names begin and end with a letter or digit",
        ));
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err(Error::invalid_name(
            "bucket names have no adjacent '.' or '.-'",
        ));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(Error::invalid_name("bucket names are not IP addresses"));
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return Err(Error::invalid_name(
            "bucket names may not use AWS-reserved prefixes or suffixes",
        ));
    }
    if RESERVED_BUCKET_NAMES.contains(&name) {
        return Err(Error::invalid_name(
            "this name is reserved by the server's router",
        ));
    }
    Ok(())
}

pub fn is_valid_bucket_name(name: &str) -> bool {
    validate_bucket_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_s3(bucket: &str, key: &str, expected: std::result::Result<(&str, bool), &str>) {
        let got = NodePath::from_s3(bucket, key);
        match (got, expected) {
            (Ok((path, folder)), Ok((file_key, is_folder))) => {
                assert_eq!(
                    (path.file_key().as_str(), folder),
                    (file_key, is_folder),
                    "{key:?}"
                )
            }
            (Err(err), Err(kind)) => assert!(format!("{err:?}").contains(kind), "{key:?}: {err:?}"),
            (got, expected) => panic!("{key:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn s3_keys_map_to_paths_or_clear_errors() {
        let long_segment = "x".repeat(256);
        let long_key = "a/".repeat(513);
        for (key, expected) in [
            ("a.jpg", Ok(("b/a.jpg", false))),
            ("2024/a.jpg", Ok(("b/2024/a.jpg", false))),
            ("dir/", Ok(("b/dir", true))),
            ("a b/+%#&;=.txt", Ok(("b/a b/+%#&;=.txt", false))),
            (
                "caf\u{e9}/na\u{308}ive",
                Ok(("b/caf\u{e9}/na\u{308}ive", false)),
            ),
            ("a//b", Err("InvalidName")),
            ("/a", Err("InvalidName")),
            ("a/../b", Err("InvalidName")),
            ("./a", Err("InvalidName")),
            ("a\0b", Err("InvalidName")),
            ("", Err("InvalidName")),
            ("/", Err("InvalidName")),
            (long_segment.as_str(), Err("InvalidName")),
            (long_key.as_str(), Err("KeyTooLong")),
        ] {
            check_s3("b", key, expected);
        }
    }

    #[test]
    fn keys_round_trip_through_paths() {
        for text in ["a", "a/b", "a/b c/\u{e9}", "x/+%#&"] {
            let path = NodePath::parse(text).unwrap();
            assert_eq!(path.file_key(), text);
            assert_eq!(path.folder_key(), format!("{text}/"));
            assert_eq!(NodePath::from_key(&path.file_key()), path);
            assert_eq!(NodePath::from_key(&path.folder_key()), path);
        }
        assert_eq!(NodePath::parse("/").unwrap(), NodePath::root());
        assert_eq!(NodePath::root().folder_key(), "");
        assert!(NodePath::parse("a//b").is_err());
    }

    #[test]
    fn bucket_names_follow_s3_rules_and_reserved_names() {
        for (name, ok) in [
            ("photos", true),
            ("my-bucket.2024", true),
            ("ab", false),
            ("Photos", false),
            ("-photos", false),
            ("a..b", false),
            ("192.168.1.1", false),
            ("xn--abc", false),
            ("dav", false),
            ("api", false),
            ("metrics", false),
            ("under_score", false),
        ] {
            assert_eq!(is_valid_bucket_name(name), ok, "{name}");
        }
    }
}
