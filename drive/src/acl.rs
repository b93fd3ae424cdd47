//! Access grants on buckets and objects — S3 ACLs — expressed in Portico's one sharing
//! model: a grant is a share (source `acl`) on the bucket's or object's node, readable by
//! anyone, by any signed-in account, or by one account. There is no second permission
//! system: `Drive::authorize` reads these shares like any other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portico_metadata::ShareRow;

use crate::error::{Error, Missing, Result};
use crate::model::{AccountId, Ctx, Principal};
use crate::names::{Kind, NodePath};
use crate::{Action, Drive};

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Anyone, without credentials (S3 group AllUsers).
    Public,
    /// Any signed-in account (S3 group AuthenticatedUsers).
    Authenticated,
    /// One account (S3 CanonicalUser: its owner id).
    Account(AccountId),
}

/// What a grant allows below its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub audience: Audience,
    pub permission: Permission,
}

/// An account as a grant names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grantee {
    pub account_id: AccountId,
    pub owner_id: String,
    pub name: String,
}

/// How long an account's bucket, once found, is taken to still be there by
/// [`Drive::bucket_tree`].
const OWN_BUCKET_FRESH: Duration = Duration::from_secs(2);

/// Buckets accounts were found to have, for [`Drive::bucket_tree`], which every S3 request
/// asks (it was one of the three catalog trips of a small PUT). Only "it has one" is kept.
/// An answer gone stale — the bucket deleted or renamed by another process or over WebDAV
/// in the last [`OWN_BUCKET_FRESH`] — sends the request to the account's own tree, where
/// the bucket is then missing: reads find nothing and writes, which look for the bucket
/// again under the catalog's write lock, are `NoSuchBucket`.
#[derive(Default)]
pub(crate) struct OwnBuckets {
    found: Mutex<HashMap<(i64, String), Instant>>,
}

impl OwnBuckets {
    fn has(&self, account_id: i64, bucket: &str) -> bool {
        let found = self.found.lock().expect("bucket cache lock");
        found
            .get(&(account_id, bucket.to_owned()))
            .is_some_and(|at| at.elapsed() < OWN_BUCKET_FRESH)
    }

    fn found(&self, account_id: i64, bucket: &str) {
        let mut found = self.found.lock().expect("bucket cache lock");
        if found.len() > 100_000 {
            found.clear();
        }
        found.insert((account_id, bucket.to_owned()), Instant::now());
    }

    pub(crate) fn forget(&self, account_id: i64, bucket: &str) {
        let mut found = self.found.lock().expect("bucket cache lock");
        found.remove(&(account_id, bucket.to_owned()));
    }
}

impl Drive {
    /// Which account's tree an S3 request for `bucket` addresses: the principal's own when
    /// it has a bucket of that name, else the account that claimed the name (access then
    /// depends on shares), else the principal's own (where the bucket does not exist).
    pub async fn bucket_tree(
        &self,
        principal: &Principal,
        bucket: &str,
    ) -> Result<Option<AccountId>> {
        if !principal.is_anonymous() {
            let account_id = principal.account_id.0;
            if self.inner.own_buckets.has(account_id, bucket) {
                return Ok(None);
            }
            let own = NodePath::from_segments([bucket]).ok();
            if let Some(own) = own
                && self
                    .inner
                    .catalog
                    .node_by_key(account_id, &own.folder_key())
                    .await?
                    .is_some()
            {
                self.inner.own_buckets.found(account_id, bucket);
                return Ok(None);
            }
        }
        match self.inner.catalog.bucket_claim(bucket).await? {
            Some(owner) if owner != principal.account_id.0 => Ok(Some(AccountId(owner))),
            _ => Ok(None),
        }
    }

    /// The account with an S3 canonical owner id (for grants naming one).
    pub async fn grantee(&self, owner_id: &str) -> Result<Grantee> {
        let row = self
            .inner
            .catalog
            .account_by_owner_id(owner_id)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        Ok(Grantee {
            account_id: AccountId(row.id),
            owner_id: row.owner_id,
            name: row.name,
        })
    }

    /// The account behind a grant, for listing it.
    pub async fn grantee_by_id(&self, account_id: AccountId) -> Result<Grantee> {
        let row = self
            .inner
            .catalog
            .account_by_id(account_id.0)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        Ok(Grantee {
            account_id,
            owner_id: row.owner_id,
            name: row.name,
        })
    }

    /// The grants on a bucket (`kind` Folder, depth 1) or object. Only the owner may read
    /// them, as in S3 without READ_ACP grants.
    pub async fn acl(&self, ctx: &Ctx, path: &NodePath, kind: Kind) -> Result<Vec<Grant>> {
        let grant = self.authorize(ctx, path, Action::Read).await?;
        if grant.account_id != ctx.principal.account_id.0 {
            return Err(Error::Forbidden);
        }
        let node = self.stat(ctx, path, kind).await?;
        let shares = self.inner.catalog.shares_of(node.node_id).await?;
        Ok(shares
            .iter()
            .filter(|s| s.source == "acl")
            .filter_map(grant_of)
            .collect())
    }

    /// Replaces the grants on a bucket or object. Only the owner may.
    pub async fn set_acl(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        kind: Kind,
        grants: &[Grant],
    ) -> Result<()> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        if grant.account_id != ctx.principal.account_id.0 {
            return Err(Error::Forbidden);
        }
        if grants
            .iter()
            .any(|g| g.audience == Audience::Public && g.permission == Permission::Write)
        {
            return Err(Error::InvalidInput {
                field: "acl",
                reason: "Portico does not let anonymous clients write (public-read-write)".into(),
            });
        }
        let mut tx = self.inner.catalog.begin().await?;
        let node = tx
            .node_by_key_locked(grant.account_id, &path.key(kind))
            .await?
            .ok_or(Error::NotFound(Missing::Node))?;
        tx.delete_acl_shares(node.id).await?;
        for g in grants {
            let (audience, grantee_id) = match &g.audience {
                Audience::Public => ("public", None),
                Audience::Authenticated => ("authenticated", None),
                Audience::Account(id) if id.0 == grant.account_id => continue,
                Audience::Account(id) => ("user", Some(id.0)),
            };
            tx.insert_share(&ShareRow {
                id: 0,
                account_id: grant.account_id,
                node_id: node.id,
                audience: audience.into(),
                grantee_id,
                permission: match g.permission {
                    Permission::Read => "read".into(),
                    Permission::Write => "write".into(),
                },
                source: "acl".into(),
                expires_at: None,
            })
            .await?;
        }
        tx.insert_audit(&self.audit(ctx, grant, "acl", &node.key))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn grant_of(share: &ShareRow) -> Option<Grant> {
    let audience = match share.audience.as_str() {
        "public" => Audience::Public,
        "authenticated" => Audience::Authenticated,
        "user" => Audience::Account(AccountId(share.grantee_id?)),
        _ => return None,
    };
    let permission = if share.permission == "write" {
        Permission::Write
    } else {
        Permission::Read
    };
    Some(Grant {
        audience,
        permission,
    })
}
