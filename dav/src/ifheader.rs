//! The WebDAV `If` header (RFC 4918 §10.4): lists of conditions — lock tokens and ETags,
//! each maybe negated — optionally tagged with the resource they are about.
//!
//! Parsing is here; evaluation needs each resource's ETag and locks, which the handler
//! fetches from the drive and hands to [`IfHeader::evaluate`].

/// One condition of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A state token (`<opaquelocktoken:…>`, or `<DAV:no-lock>`, which no resource has).
    Token { not: bool, token: String },
    /// An entity tag, compared strongly, kept with its quotes (`"abc"`).
    Etag { not: bool, etag: String },
}

/// A parenthesised list: true when every condition is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// The resource tag (an absolute URI or path, as sent); `None`: the request URI.
    pub resource: Option<String>,
    pub conditions: Vec<Condition>,
}

/// A parsed `If` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfHeader {
    pub lists: Vec<List>,
}

/// What the header's conditions are checked against, for one resource.
#[derive(Debug, Clone, Default)]
pub struct ResourceState {
    /// The quoted ETag, when the resource exists.
    pub etag: Option<String>,
    /// Tokens of the locks covering it.
    pub lock_tokens: Vec<String>,
}

impl IfHeader {
    /// Parses the header; `Err` names what is malformed (answered 400).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser { rest: text };
        let mut lists = Vec::new();
        let mut tag: Option<String> = None;
        loop {
            parser.skip_space();
            match parser.peek() {
                None => break,
                Some('<') => {
                    tag = Some(parser.coded_url()?);
                }
                Some('(') => {
                    let conditions = parser.list()?;
                    lists.push(List {
                        resource: tag.clone(),
                        conditions,
                    });
                }
                Some(other) => return Err(format!("unexpected {other:?} in the If header")),
            }
        }
        if lists.is_empty() {
            return Err("the If header has no condition list".into());
        }
        Ok(Self { lists })
    }

    /// Every lock token the header names outside a `Not`: the tokens the request submits.
    pub fn submitted_tokens(&self) -> Vec<String> {
        let mut tokens = Vec::new();
        for list in &self.lists {
            for condition in &list.conditions {
                if let Condition::Token { not: false, token } = condition
                    && !tokens.contains(token)
                {
                    tokens.push(token.clone());
                }
            }
        }
        tokens
    }

    /// The resources the lists are about (`None` for the request URI), each once.
    pub fn resources(&self) -> Vec<Option<String>> {
        let mut out: Vec<Option<String>> = Vec::new();
        for list in &self.lists {
            if !out.contains(&list.resource) {
                out.push(list.resource.clone());
            }
        }
        out
    }

    /// True when any list holds, each against its resource's state (RFC 4918 §10.4.2).
    pub fn evaluate(&self, state: impl Fn(&Option<String>) -> ResourceState) -> bool {
        self.lists.iter().any(|list| {
            let resource = state(&list.resource);
            list.conditions.iter().all(|condition| match condition {
                Condition::Token { not, token } => {
                    resource.lock_tokens.iter().any(|t| t == token) != *not
                }
                Condition::Etag { not, etag } => {
                    let matches = resource
                        .etag
                        .as_deref()
                        .is_some_and(|current| strong(current) == strong(etag));
                    matches != *not
                }
            })
        })
    }
}

/// An ETag without a weak prefix, for comparison.
fn strong(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/")
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(format!("expected {c:?} in the If header")),
        }
    }

    /// `<…>`: a resource tag or a state token.
    fn coded_url(&mut self) -> Result<String, String> {
        self.expect('<')?;
        let end = self
            .rest
            .find('>')
            .ok_or("an unterminated <…> in the If header")?;
        let url = self.rest[..end].trim().to_owned();
        self.rest = &self.rest[end + 1..];
        Ok(url)
    }

    /// `( [Not] <token> | [Not] ["etag"] … )`
    fn list(&mut self) -> Result<Vec<Condition>, String> {
        self.expect('(')?;
        let mut conditions = Vec::new();
        loop {
            self.skip_space();
            let not = if self.rest.len() >= 3 && self.rest[..3].eq_ignore_ascii_case("not") {
                self.rest = &self.rest[3..];
                self.skip_space();
                true
            } else {
                false
            };
            match self.peek() {
                Some('<') => {
                    let token = self.coded_url()?;
                    conditions.push(Condition::Token { not, token });
                }
                Some('[') => {
                    self.rest = &self.rest[1..];
                    let end = self
                        .rest
                        .find(']')
                        .ok_or("an unterminated [etag] in the If header")?;
                    let etag = self.rest[..end].trim().to_owned();
                    self.rest = &self.rest[end + 1..];
                    conditions.push(Condition::Etag { not, etag });
                }
                Some(')') if !not => {
                    self.rest = &self.rest[1..];
                    if conditions.is_empty() {
                        return Err("an empty condition list in the If header".into());
                    }
                    return Ok(conditions);
                }
                _ => return Err("a malformed condition in the If header".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_tagged_lists_parse() {
        let header =
            IfHeader::parse("(<opaquelocktoken:a-b> [\"e1\"]) (Not <DAV:no-lock> [W/\"e2\"])")
                .unwrap();
        assert_eq!(
            header.lists,
            vec![
                List {
                    resource: None,
                    conditions: vec![
                        Condition::Token {
                            not: false,
                            token: "opaquelocktoken:a-b".into()
                        },
                        Condition::Etag {
                            not: false,
                            etag: "\"e1\"".into()
                        },
                    ]
                },
                List {
                    resource: None,
                    conditions: vec![
                        Condition::Token {
                            not: true,
                            token: "DAV:no-lock".into()
                        },
                        Condition::Etag {
                            not: false,
                            etag: "W/\"e2\"".into()
                        },
                    ]
                },
            ]
        );
        let tagged = IfHeader::parse(
            "<http://h/dav/a> (<opaquelocktoken:1>) <http://h/dav/b> (<opaquelocktoken:2>)",
        )
        .unwrap();
        assert_eq!(tagged.lists[0].resource.as_deref(), Some("http://h/dav/a"));
        assert_eq!(tagged.lists[1].resource.as_deref(), Some("http://h/dav/b"));
        assert_eq!(
            tagged.submitted_tokens(),
            vec!["opaquelocktoken:1", "opaquelocktoken:2"]
        );
        for bad in ["", "(", "()", "(<a>", "x (<a>)", "(Not)", "([\"e\")"] {
            assert!(IfHeader::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn evaluation_follows_rfc_4918() {
        let state = |tokens: &[&str]| ResourceState {
            etag: Some("\"e1\"".into()),
            lock_tokens: tokens.iter().map(|t| t.to_string()).collect(),
        };
        let eval = |header: &str, tokens: &[&str]| {
            IfHeader::parse(header).unwrap().evaluate(|_| state(tokens))
        };
        assert!(eval("(<opaquelocktoken:t>)", &["opaquelocktoken:t"]));
        assert!(!eval("(<opaquelocktoken:t>)", &[]));
        assert!(eval("([\"e1\"])", &[]));
        assert!(eval("([W/\"e1\"])", &[]));
        assert!(!eval("([\"e2\"])", &[]));
        assert!(!eval("(<DAV:no-lock>)", &[]));
        assert!(eval("(Not <DAV:no-lock>)", &[]));
        // A corrupt token in one list, a true list beside it: the header holds.
        assert!(eval(
            "(<opaquelocktoken:tx>) (Not <DAV:no-lock>)",
            &["opaquelocktoken:t"]
        ));
        assert!(!eval(
            "(<opaquelocktoken:t> [\"bad\"]) (Not <DAV:no-lock> [\"bad\"])",
            &["opaquelocktoken:t"]
        ));
    }
}
