//! Conditional requests and byte ranges (RFC 9110 §13 and §14), shared by every
//! protocol: S3 and WebDAV answer `If-Match` or `Range` the same way because the rule is
//! written once, here.

use crate::error::{Error, Result};
use crate::model::Timestamp;

/// An entity-tag condition: `*` or a list of tags (without quotes or `W/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    Any,
    List(Vec<String>),
}

impl EtagCondition {
    /// Parses a header value such as `"abc", W/"def"` or `*`.
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        if value == "*" {
            return EtagCondition::Any;
        }
        let tags = value
            .split(',')
            .map(|tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.trim_matches('"').to_owned()
            })
            .filter(|tag| !tag.is_empty())
            .collect();
        EtagCondition::List(tags)
    }

    fn matches(&self, etag: Option<&str>) -> bool {
        match (self, etag) {
            (_, None) => false,
            (EtagCondition::Any, Some(_)) => true,
            (EtagCondition::List(tags), Some(etag)) => tags.iter().any(|tag| tag == etag),
        }
    }
}

/// The conditional headers of a request.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub if_match: Option<EtagCondition>,
    pub if_none_match: Option<EtagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

impl Preconditions {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluates the conditions in RFC 9110 §13.2.2 order against the current state
    /// (`None` when nothing exists). `read` is true for GET/HEAD, where a failed
    /// `If-None-Match`/`If-Modified-Since` means 304 rather than 412. Dates compare at
    /// whole seconds, the resolution of HTTP dates.
    pub fn evaluate(&self, current: Option<(&str, Timestamp)>, read: bool) -> Result<()> {
        let etag = current.map(|(etag, _)| etag);
        if let Some(condition) = &self.if_match {
            if !condition.matches(etag) {
                return Err(Error::PreconditionFailed);
            }
        } else if let (Some(since), Some((_, modified))) = (self.if_unmodified_since, current)
            && modified.whole_seconds() > since.whole_seconds()
        {
            return Err(Error::PreconditionFailed);
        }
        if let Some(condition) = &self.if_none_match {
            if condition.matches(etag) {
                return Err(if read {
                    Error::NotModified
                } else {
                    Error::PreconditionFailed
                });
            }
        } else if read
            && let (Some(since), Some((_, modified))) = (self.if_modified_since, current)
            && modified.whole_seconds() <= since.whole_seconds()
        {
            return Err(Error::NotModified);
        }
        Ok(())
    }
}

impl Preconditions {
    /// The `x-amz-copy-source-if-*` conditions of a copy: the same order as a read, but a
    /// failing condition of any kind refuses the copy (412), as S3 documents.
    pub fn evaluate_copy_source(&self, etag: &str, modified: Timestamp) -> Result<()> {
        match self.evaluate(Some((etag, modified)), true) {
            Err(Error::NotModified) => Err(Error::PreconditionFailed),
            other => other,
        }
    }
}

/// A requested byte range, before it is resolved against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-` or `bytes=first-last` (inclusive).
    From { first: u64, last: Option<u64> },
    /// `bytes=-length`: the last `length` bytes.
    Suffix { length: u64 },
}

impl ByteRange {
    /// Parses a single-range `Range` header. Multiple ranges and other units are `None`:
    /// RFC 9110 lets a server ignore such a header and send the whole content.
    pub fn parse(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            return Some(ByteRange::Suffix {
                length: last.parse().ok()?,
            });
        }
        let first: u64 = first.parse().ok()?;
        let last = match last {
            "" => None,
            text => Some(text.parse().ok()?),
        };
        if let Some(last) = last
            && last < first
        {
            return None;
        }
        Some(ByteRange::From { first, last })
    }

    /// The half-open byte range this selects in an object of `size` bytes, or
    /// `InvalidRange` when it selects nothing.
    pub fn resolve(self, size: u64) -> Result<std::ops::Range<u64>> {
        match self {
            ByteRange::From { first, .. } if first >= size => Err(Error::InvalidRange { size }),
            ByteRange::From { first, last } => {
                let end = last.map_or(size, |last| last.saturating_add(1).min(size));
                Ok(first..end)
            }
            ByteRange::Suffix { length: 0 } => Err(Error::InvalidRange { size }),
            ByteRange::Suffix { length } => Ok(size.saturating_sub(length)..size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_nanos(seconds * 1_000_000_000 + 123)
    }

    fn check(pre: Preconditions, current: Option<(&str, Timestamp)>, read: bool, expected: &str) {
        let got = match pre.evaluate(current, read) {
            Ok(()) => "ok",
            Err(Error::PreconditionFailed) => "412",
            Err(Error::NotModified) => "304",
            Err(other) => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, expected, "{pre:?} on {current:?} read={read}");
    }

    #[test]
    fn conditions_follow_rfc_9110_order() {
        let current = Some(("abc", at(100)));
        let tag = |t: &str| Some(EtagCondition::parse(t));
        check(
            Preconditions {
                if_match: tag("\"abc\""),
                ..Default::default()
            },
            current,
            true,
            "ok",
        );
        check(
            Preconditions {
                if_match: tag("\"x\", \"abc\""),
                ..Default::default()
            },
            current,
            true,
            "ok",
        );
        check(
            Preconditions {
                if_match: tag("\"x\""),
                ..Default::default()
            },
            current,
            true,
            "412",
        );
        check(
            Preconditions {
                if_match: tag("*"),
                ..Default::default()
            },
            None,
            false,
            "412",
        );
        check(
            Preconditions {
                if_none_match: tag("*"),
                ..Default::default()
            },
            None,
            false,
            "ok",
        );
        check(
            Preconditions {
                if_none_match: tag("*"),
                ..Default::default()
            },
            current,
            false,
            "412",
        );
        check(
            Preconditions {
                if_none_match: tag("W/\"abc\""),
                ..Default::default()
            },
            current,
            true,
            "304",
        );
        check(
            Preconditions {
                if_modified_since: Some(at(100)),
                ..Default::default()
            },
            current,
            true,
            "304",
        );
        check(
            Preconditions {
                if_modified_since: Some(at(99)),
                ..Default::default()
            },
            current,
            true,
            "ok",
        );
        check(
            Preconditions {
                if_unmodified_since: Some(at(99)),
                ..Default::default()
            },
            current,
            true,
            "412",
        );
        // S3 and RFC: If-Match true wins over a failing If-Unmodified-Since…
        check(
            Preconditions {
                if_match: tag("\"abc\""),
                if_unmodified_since: Some(at(99)),
                ..Default::default()
            },
            current,
            true,
            "ok",
        );
        // …and If-None-Match decides alone when present, whatever If-Modified-Since says.
        check(
            Preconditions {
                if_none_match: tag("\"x\""),
                if_modified_since: Some(at(200)),
                ..Default::default()
            },
            current,
            true,
            "ok",
        );
    }

    #[test]
    fn ranges_parse_and_resolve() {
        for (header, size, expected) in [
            ("bytes=0-4", 10, Some(Ok(0..5))),
            ("bytes=5-", 10, Some(Ok(5..10))),
            ("bytes=8-100", 10, Some(Ok(8..10))),
            ("bytes=-3", 10, Some(Ok(7..10))),
            ("bytes=-30", 10, Some(Ok(0..10))),
            ("bytes=10-", 10, Some(Err(()))),
            ("bytes=0-0", 0, Some(Err(()))),
            ("bytes=-0", 10, Some(Err(()))),
            ("bytes=5-4", 10, None),
            ("bytes=0-1,3-4", 10, None),
            ("items=0-1", 10, None),
        ] {
            let parsed = ByteRange::parse(header);
            let resolved = parsed.map(|range| range.resolve(size).map_err(|_| ()));
            assert_eq!(resolved, expected, "{header}");
        }
    }
}
