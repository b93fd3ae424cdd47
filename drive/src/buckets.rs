//! Buckets — the top-level folders of an account's tree — and what S3 keeps per bucket
//! (CORS rules, tags) or per object version (tags).
//!
//! Bucket names created through S3 are claimed globally, as in AWS, so that requests
//! carrying no account (CORS preflights, anonymous reads of public buckets) can find the
//! bucket. Authenticated requests always resolve names in their own tree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Missing, Result};
use crate::locks::LockScope;
use crate::model::{AccountId, Ctx, Entry};
use crate::names::{Kind, NodePath};
use crate::read::ReadRequest;
use crate::write::{MkdirOptions, with_retries};
use crate::{Action, Drive};

/// One CORS rule of a bucket, as S3 defines it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// `*` matches anything, one `*` elsewhere matches any run of characters (S3's rule).
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value[..prefix.len()].eq_ignore_ascii_case(prefix)
                && value[value.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
    }
}

impl CorsRule {
    /// Whether this rule admits a request from `origin` with `method` and (for a preflight)
    /// the `headers` it announces.
    pub fn admits(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| wildcard_match(o, origin))
            && self
                .allowed_methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
            && headers
                .iter()
                .all(|h| self.allowed_headers.iter().any(|a| wildcard_match(a, h)))
    }
}

/// What S3 stores per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<CorsRule>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl BucketSettings {
    /// The first rule admitting the request, as S3 evaluates them.
    pub fn cors_rule(&self, origin: &str, method: &str, headers: &[String]) -> Option<&CorsRule> {
        self.cors
            .iter()
            .find(|rule| rule.admits(origin, method, headers))
    }
}

/// S3's tag limits.
pub fn validate_tags(tags: &BTreeMap<String, String>, max: usize) -> Result<()> {
    let invalid = |reason: &str| Err(Error::InvalidTag(reason.to_owned()));
    if tags.len() > max {
        return invalid(&format!("at most {max} tags are allowed"));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return invalid("tag keys are 1 to 128 characters long");
        }
        if value.chars().count() > 256 {
            return invalid("tag values are at most 256 characters long");
        }
        if key.starts_with("aws:") {
            return invalid("the aws: prefix is reserved");
        }
    }
    Ok(())
}

impl Drive {
    /// The account's buckets: top-level folders whose names are valid bucket names.
    pub async fn list_buckets(&self, ctx: &Ctx) -> Result<Vec<Entry>> {
        let entries = self
            .list_folder(ctx, &NodePath::root(), None, i64::MAX)
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.is_folder() && e.path.name().is_some_and(crate::is_valid_bucket_name))
            .collect())
    }

    pub async fn bucket(&self, ctx: &Ctx, name: &str) -> Result<Entry> {
        let path = NodePath::from_segments([name]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        self.stat(ctx, &path, Kind::Folder)
            .await
            .map_err(|err| match err {
                Error::NotFound(_) => Error::NotFound(Missing::Bucket),
                other => other,
            })
    }

    /// S3 CreateBucket: claims the name (refused if another account holds it) and makes the
    /// top-level folder (an existing one of this account is `AlreadyExists`).
    pub async fn create_bucket(&self, ctx: &Ctx, name: &str) -> Result<Entry> {
        crate::validate_bucket_name(name)?;
        let path = NodePath::from_segments([name])?;
        let grant = self.authorize(ctx, &path, Action::Write).await?;
        with_retries(|| async {
            let mut tx = self.inner.catalog.begin().await?;
            if !tx.claim_bucket(name, grant.account_id).await? {
                return Err(Error::NameTaken);
            }
            tx.commit().await?;
            Ok(())
        })
        .await?;
        self.mkdir(ctx, &path, MkdirOptions::default()).await
    }

    /// Deletes an empty bucket (nothing live inside) and releases its name.
    pub async fn delete_bucket(&self, ctx: &Ctx, name: &str) -> Result<()> {
        let path = NodePath::from_segments([name]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        let grant = self.authorize(ctx, &path, Action::Delete).await?;
        let mut tx = self.inner.catalog.begin().await?;
        let bucket = tx
            .node_by_key_locked(grant.account_id, &path.folder_key())
            .await?
            .ok_or(Error::NotFound(Missing::Bucket))?;
        if tx.has_children(bucket.id).await? {
            return Err(Error::NotEmpty);
        }
        if !tx.delete_empty_node(bucket.id).await? {
            tx.trash_subtree(&bucket, Some(ctx.principal.account_id.0))
                .await?;
        }
        tx.release_bucket(name, grant.account_id).await?;
        tx.insert_audit(&self.audit(ctx, grant, "delete_bucket", &bucket.key))
            .await?;
        tx.commit().await?;
        self.inner.own_buckets.forget(grant.account_id, name);
        Ok(())
    }

    pub async fn bucket_settings(&self, ctx: &Ctx, name: &str) -> Result<BucketSettings> {
        let bucket = self.bucket(ctx, name).await?;
        self.settings_of(bucket.node_id).await
    }

    async fn settings_of(&self, node_id: i64) -> Result<BucketSettings> {
        let text = self.inner.catalog.bucket_settings(node_id).await?;
        serde_json::from_str(&text)
            .map_err(|err| Error::internal(format!("corrupt bucket settings: {err}")))
    }

    /// Changes a bucket's settings in one transaction.
    pub async fn update_bucket_settings(
        &self,
        ctx: &Ctx,
        name: &str,
        change: impl FnOnce(&mut BucketSettings) -> Result<()>,
    ) -> Result<BucketSettings> {
        let path = NodePath::from_segments([name]).map_err(|_| Error::NotFound(Missing::Bucket))?;
        let grant = self.authorize(ctx, &path, Action::Write).await?;
        let mut tx = self.inner.catalog.begin().await?;
        let bucket = tx
            .node_by_key_locked(grant.account_id, &path.folder_key())
            .await?
            .ok_or(Error::NotFound(Missing::Bucket))?;
        let mut settings = self.settings_of(bucket.id).await?;
        change(&mut settings)?;
        let text =
            serde_json::to_string(&settings).map_err(|err| Error::internal(err.to_string()))?;
        tx.set_bucket_settings(bucket.id, &text).await?;
        tx.insert_audit(&self.audit(ctx, grant, "bucket_settings", &bucket.key))
            .await?;
        tx.commit().await?;
        Ok(settings)
    }

    /// The settings of a bucket found by its claimed name, for requests that carry no
    /// account (CORS preflight). `None` when no account claimed the name.
    pub async fn claimed_bucket_settings(
        &self,
        name: &str,
    ) -> Result<Option<(AccountId, BucketSettings)>> {
        let Some(account_id) = self.inner.catalog.bucket_claim(name).await? else {
            return Ok(None);
        };
        let Ok(path) = NodePath::from_segments([name]) else {
            return Ok(None);
        };
        let Some(bucket) = self
            .inner
            .catalog
            .node_by_key(account_id, &path.folder_key())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            AccountId(account_id),
            self.settings_of(bucket.id).await?,
        )))
    }

    /// An object version's tags (S3 GetObjectTagging) and that version's id.
    pub async fn object_tags(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        version_id: Option<String>,
    ) -> Result<(String, BTreeMap<String, String>)> {
        let request = ReadRequest {
            version_id,
            ..ReadRequest::default()
        };
        let (_, version) = self.head(ctx, path, kind, &request).await?;
        Ok((version.version_id.clone(), version.attributes.tags))
    }

    /// Replaces (or, with `None`, removes) an object version's tags. Tags change in place,
    /// without a new version, as in S3.
    pub async fn set_object_tags(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        version_id: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> Result<String> {
        if let Some(tags) = &tags {
            validate_tags(tags, 10)?;
        }
        let grant = self.authorize(ctx, path, Action::Write).await?;
        let request = ReadRequest {
            version_id,
            ..ReadRequest::default()
        };
        let (entry, version) = self.head(ctx, path, kind, &request).await?;
        let row = version.row.ok_or(Error::NotFound(Missing::Version))?;
        let mut attributes = version.attributes.clone();
        attributes.tags = tags.unwrap_or_default();
        let mut tx = self.inner.catalog.begin().await?;
        self.check_locks(&mut tx, grant, ctx, path, LockScope::Content)
            .await?;
        tx.set_version_attributes(row, &attributes.to_json())
            .await?;
        tx.insert_audit(&self.audit(ctx, grant, "tags", &entry.key()))
            .await?;
        tx.commit().await?;
        Ok(version.version_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..CorsRule::default()
        }
    }

    #[test]
    fn cors_rules_match_origins_methods_and_headers() {
        let settings = BucketSettings {
            cors: vec![
                rule(
                    &["https://app.example.com"],
                    &["GET", "PUT"],
                    &["content-type", "x-amz-*"],
                ),
                rule(&["https://*.example.org"], &["GET"], &[]),
                rule(&["*"], &["HEAD"], &["*"]),
            ],
            ..BucketSettings::default()
        };
        let headers = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (origin, method, requested, expected) in [
            (
                "https://app.example.com",
                "PUT",
                headers(&["Content-Type", "x-amz-date"]),
                Some(0),
            ),
            ("https://app.example.com", "DELETE", headers(&[]), None),
            (
                "https://app.example.com",
                "PUT",
                headers(&["authorization"]),
                None,
            ),
            ("https://cdn.example.org", "GET", headers(&[]), Some(1)),
            ("https://example.org", "GET", headers(&[]), None),
            ("http://anything", "HEAD", headers(&["whatever"]), Some(2)),
        ] {
            let found = settings
                .cors_rule(origin, method, &requested)
                .map(|r| settings.cors.iter().position(|x| x == r).unwrap());
            assert_eq!(found, expected, "{origin} {method} {requested:?}");
        }
    }

    #[test]
    fn tags_follow_s3_limits() {
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_tags(&tags(&[("project", "x"), ("owner", "")]), 10).is_ok());
        assert!(validate_tags(&tags(&[("", "x")]), 10).is_err());
        assert!(validate_tags(&tags(&[("aws:created", "x")]), 10).is_err());
        let long = "v".repeat(257);
        assert!(validate_tags(&tags(&[("k", long.as_str())]), 10).is_err());
        let many: Vec<(String, String)> =
            (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_tags(&many.into_iter().collect(), 10).is_err());
    }
}
