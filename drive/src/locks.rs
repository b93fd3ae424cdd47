//! WebDAV locks (RFC 4918 §6, §7, §9.10, §9.11), kept in the catalog so every gateway
//! honours them and they survive a restart — and enforced here, in the drive, for every
//! protocol: an S3 PUT onto a file a Windows client has locked is refused just like a
//! WebDAV PUT that does not submit the lock token.
//!
//! A lock is rooted at one path (a file or a folder); a `Depth: infinity` lock on a folder
//! also covers everything below it. A write checks the locks that protect what it changes:
//! the resource's content ([`LockScope::Content`]), or also its parent's membership and
//! everything below it ([`LockScope::Membership`]: creating, deleting, moving). A lock
//! stops a write unless the request submitted its token (WebDAV `If`), and a token works
//! only for the account that took the lock.

use std::time::Duration;

use portico_metadata::{LockRow, Tx};

use crate::error::{Error, Result};
use crate::model::{Ctx, Timestamp};
use crate::names::{Kind, NodePath};
use crate::write::{Parents, PutOptions};
use crate::{Action, Drive, Grant};

/// The longest a lock is granted for, whatever the client asks (`Infinite` included): a
/// client that crashed holding a lock blocks others at most this long. Clients refresh
/// their locks well within it (Windows and Office ask for an hour, Finder for minutes).
pub const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(3600);

/// An active lock, as `DAV:lockdiscovery` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// `opaquelocktoken:<uuid>`.
    pub token: String,
    /// Where the lock is rooted.
    pub root: NodePath,
    pub root_is_folder: bool,
    pub depth_infinity: bool,
    pub exclusive: bool,
    /// The `DAV:owner` element the client gave, as XML.
    pub owner_xml: Option<String>,
    /// Seconds left before it expires.
    pub remaining: Duration,
    principal_id: Option<i64>,
}

impl LockInfo {
    fn from_row(row: &LockRow, now: Timestamp) -> Self {
        let left = (row.timeout_at - now.nanos()).max(0);
        Self {
            token: row.token.clone(),
            root: NodePath::from_key(&row.key),
            root_is_folder: row.key.ends_with('/') || row.key.is_empty(),
            depth_infinity: row.depth_infinity,
            exclusive: row.exclusive,
            owner_xml: row.owner_xml.clone(),
            remaining: Duration::from_nanos(u64::try_from(left).unwrap_or(0)),
            principal_id: row.principal_id,
        }
    }

    /// Whether the lock applies to `path`: rooted there, or an infinite lock on a folder
    /// above it.
    pub fn covers(&self, path: &NodePath) -> bool {
        self.root == *path
            || (self.depth_infinity && self.root_is_folder && is_below(path, &self.root))
    }

    /// Whether `ctx` holds this lock: it submitted the token and is the account that took it.
    pub fn held_by(&self, ctx: &Ctx) -> bool {
        self.principal_id == Some(ctx.principal.account_id.0)
            && ctx.lock_tokens.contains(&self.token)
    }
}

fn is_below(path: &NodePath, folder: &NodePath) -> bool {
    path.depth() > folder.depth() && path.starts_with(folder)
}

/// What a LOCK asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub exclusive: bool,
    pub depth_infinity: bool,
    pub owner_xml: Option<String>,
    /// `None`: the client asked for `Infinite` or nothing.
    pub timeout: Option<Duration>,
}

/// What a write changes, for the lock check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockScope {
    /// The resource's content or properties.
    Content,
    /// Whether the resource exists: its parent's membership, and everything below it.
    Membership,
}

fn granted(timeout: Option<Duration>) -> Duration {
    timeout.map_or(MAX_LOCK_TIMEOUT, |t| {
        t.clamp(Duration::from_secs(1), MAX_LOCK_TIMEOUT)
    })
}

/// The keys a lock covering `path` may be rooted at: the root, every folder above, and
/// the path itself as a file and as a folder.
pub(crate) fn candidate_keys(path: &NodePath) -> Vec<String> {
    let mut keys: Vec<String> = (0..path.depth())
        .map(|depth| NodePath::from_key(&path.segments()[..depth].join("/")).folder_key())
        .collect();
    if !path.is_root() {
        keys.push(path.file_key());
    }
    keys.push(path.folder_key());
    keys.dedup();
    keys
}

/// The locks among `locks` that stop a write of `scope` to `path` by `ctx`.
fn blocking(locks: &[LockInfo], path: &NodePath, scope: LockScope, ctx: &Ctx) -> Result<()> {
    let parent = path.parent();
    let relevant: Vec<&LockInfo> = locks
        .iter()
        .filter(|lock| {
            lock.covers(path)
                || (scope == LockScope::Membership
                    && (parent.as_ref() == Some(&lock.root) || is_below(&lock.root, path)))
        })
        .collect();
    // An exclusive lock must be held; of shared locks on one resource, holding any one
    // is enough (RFC 4918 §6.1).
    let mut shared_held = false;
    let mut shared_missing = false;
    for lock in &relevant {
        let held = lock.held_by(ctx);
        if lock.exclusive && !held {
            return Err(Error::Locked);
        }
        if !lock.exclusive {
            shared_held |= held;
            shared_missing |= !held;
        }
    }
    if shared_missing && !shared_held {
        return Err(Error::Locked);
    }
    Ok(())
}

/// Whether a new lock on `path` would conflict with `locks`: any overlapping lock when
/// the new one is exclusive, an overlapping exclusive one otherwise. Overlapping: covering
/// `path`, or — for an infinite lock — rooted below it.
fn conflict(locks: &[LockInfo], path: &NodePath, exclusive: bool, infinity: bool) -> Result<()> {
    let clash = locks.iter().any(|other| {
        let overlaps = other.covers(path) || (infinity && is_below(&other.root, path));
        overlaps && (other.exclusive || exclusive)
    });
    if clash { Err(Error::Locked) } else { Ok(()) }
}

impl Drive {
    /// Refuses a write of `scope` to `path` that a lock stops, inside the write's
    /// transaction.
    pub(crate) async fn check_locks(
        &self,
        tx: &mut Tx,
        grant: Grant,
        ctx: &Ctx,
        path: &NodePath,
        scope: LockScope,
    ) -> Result<()> {
        let now = Timestamp::now();
        let below = (scope == LockScope::Membership).then(|| path.folder_key());
        let rows = tx
            .locks_near(
                grant.account_id,
                &candidate_keys(path),
                below.as_deref(),
                now.nanos(),
            )
            .await?;
        Self::check_lock_rows(&rows, now, ctx, path, scope)
    }

    /// The same check on lock rows read already (the lock query of
    /// `Tx::probe_put`, for `candidate_keys(path)` and below `path`'s folder key).
    pub(crate) fn check_lock_rows(
        rows: &[portico_metadata::LockRow],
        now: Timestamp,
        ctx: &Ctx,
        path: &NodePath,
        scope: LockScope,
    ) -> Result<()> {
        let locks: Vec<LockInfo> = rows.iter().map(|r| LockInfo::from_row(r, now)).collect();
        blocking(&locks, path, scope, ctx)
    }

    /// The same check outside a transaction: an early refusal before bytes are accepted.
    pub(crate) async fn check_locks_now(
        &self,
        grant: Grant,
        ctx: &Ctx,
        path: &NodePath,
        scope: LockScope,
    ) -> Result<()> {
        let locks = self.locks_around(grant, path, scope).await?;
        blocking(&locks, path, scope, ctx)
    }

    async fn locks_around(
        &self,
        grant: Grant,
        path: &NodePath,
        scope: LockScope,
    ) -> Result<Vec<LockInfo>> {
        let now = Timestamp::now();
        let below = (scope == LockScope::Membership).then(|| path.folder_key());
        let rows = self
            .inner
            .catalog
            .locks_near(
                grant.account_id,
                &candidate_keys(path),
                below.as_deref(),
                now.nanos(),
            )
            .await?;
        Ok(rows.iter().map(|r| LockInfo::from_row(r, now)).collect())
    }

    /// The live locks that cover `path` (its `DAV:lockdiscovery`).
    pub async fn locks_on(&self, ctx: &Ctx, path: &NodePath) -> Result<Vec<LockInfo>> {
        let grant = self.authorize(ctx, path, Action::Read).await?;
        let mut locks = self.locks_around(grant, path, LockScope::Content).await?;
        locks.retain(|lock| lock.covers(path));
        Ok(locks)
    }

    /// The live locks covering `folder` or rooted anywhere below it: enough to answer
    /// `lockdiscovery` for a whole Depth 1 listing with one query.
    pub async fn locks_within(&self, ctx: &Ctx, folder: &NodePath) -> Result<Vec<LockInfo>> {
        let grant = self.authorize(ctx, folder, Action::Read).await?;
        self.locks_around(grant, folder, LockScope::Membership)
            .await
    }

    /// Takes a lock (WebDAV LOCK). An unmapped path first becomes an empty file, as RFC
    /// 4918 §7.3 asks; the flag says whether that happened. A conflicting lock — any lock
    /// when an exclusive one is asked for, an exclusive one otherwise, on the path, above
    /// it, or below it for a `Depth: infinity` request — is refused with `Locked`.
    pub async fn lock(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        request: LockRequest,
    ) -> Result<(LockInfo, bool)> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        if ctx.principal.is_anonymous() {
            return Err(Error::Forbidden);
        }
        // Conflicts are refused before an unmapped URL becomes a file, and checked again
        // in the transaction that takes the lock.
        let around = self
            .locks_around(grant, path, LockScope::Membership)
            .await?;
        conflict(&around, path, request.exclusive, request.depth_infinity)?;
        let (key, created) = match self.resolve(ctx, path).await {
            Ok(entry) => (entry.key(), false),
            Err(Error::NotFound(_)) => {
                let options = PutOptions::new(Kind::File, Parents::MustExist);
                let entry = self
                    .put(ctx, path, futures::stream::empty(), options)
                    .await?;
                (entry.key(), true)
            }
            Err(err) => return Err(err),
        };
        let now = Timestamp::now();
        let timeout = granted(request.timeout);
        let row = LockRow {
            token: format!("opaquelocktoken:{}", uuid::Uuid::new_v4()),
            account_id: grant.account_id,
            key: key.clone(),
            depth_infinity: request.depth_infinity && key.ends_with('/'),
            exclusive: request.exclusive,
            owner_xml: request.owner_xml,
            principal_id: Some(ctx.principal.account_id.0),
            timeout_at: now.nanos() + i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
            created_at: now.nanos(),
        };
        let mut tx = self.inner.catalog.begin().await?;
        tx.serialize_locks(grant.account_id).await?;
        let below = row.depth_infinity.then(|| path.folder_key());
        let existing = tx
            .locks_near(
                grant.account_id,
                &candidate_keys(path),
                below.as_deref(),
                now.nanos(),
            )
            .await?;
        let existing: Vec<LockInfo> = existing
            .iter()
            .map(|r| LockInfo::from_row(r, now))
            .collect();
        conflict(&existing, path, row.exclusive, row.depth_infinity)?;
        tx.insert_lock(&row).await?;
        tx.insert_audit(&self.audit(ctx, grant, "lock", &key))
            .await?;
        tx.commit().await?;
        Ok((LockInfo::from_row(&row, now), created))
    }

    /// Extends a lock the caller holds on `path` (LOCK with an `If` header and no body).
    /// A token that is unknown, expired, someone else's or not covering `path` gets
    /// `PreconditionFailed` (RFC 4918 §9.10.2).
    pub async fn refresh_lock(
        &self,
        ctx: &Ctx,
        path: &NodePath,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<LockInfo> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        let now = Timestamp::now();
        let row = self
            .inner
            .catalog
            .lock_by_token(token)
            .await?
            .filter(|row| row.account_id == grant.account_id && row.timeout_at > now.nanos())
            .ok_or(Error::PreconditionFailed)?;
        let info = LockInfo::from_row(&row, now);
        if !info.covers(path) || info.principal_id != Some(ctx.principal.account_id.0) {
            return Err(Error::PreconditionFailed);
        }
        let timeout = granted(timeout);
        let timeout_at = now.nanos() + i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
        let mut tx = self.inner.catalog.begin().await?;
        if !tx.refresh_lock(token, timeout_at).await? {
            return Err(Error::PreconditionFailed);
        }
        tx.commit().await?;
        Ok(LockInfo {
            remaining: timeout,
            ..info
        })
    }

    /// Releases a lock (UNLOCK). The token must name a live lock covering `path`
    /// (`Conflict` otherwise, RFC 4918 §9.11.1), taken by the caller (`Forbidden`).
    pub async fn unlock(&self, ctx: &Ctx, path: &NodePath, token: &str) -> Result<()> {
        let grant = self.authorize(ctx, path, Action::Write).await?;
        let now = Timestamp::now();
        let row = self
            .inner
            .catalog
            .lock_by_token(token)
            .await?
            .filter(|row| row.account_id == grant.account_id && row.timeout_at > now.nanos())
            .ok_or(Error::Conflict("no such lock on this resource"))?;
        let info = LockInfo::from_row(&row, now);
        if !info.covers(path) {
            return Err(Error::Conflict("no such lock on this resource"));
        }
        if info.principal_id != Some(ctx.principal.account_id.0) {
            return Err(Error::Forbidden);
        }
        let mut tx = self.inner.catalog.begin().await?;
        tx.delete_lock(token).await?;
        tx.insert_audit(&self.audit(ctx, grant, "unlock", &row.key))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes expired locks (the maintenance job); they are ignored before that anyway.
    pub async fn sweep_locks(&self) -> Result<u64> {
        let mut tx = self.inner.catalog.begin().await?;
        let swept = tx.delete_expired_locks(Timestamp::now().nanos()).await?;
        tx.commit().await?;
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Principal, Protocol};

    fn lock(key: &str, infinity: bool, exclusive: bool, token: &str, owner: i64) -> LockInfo {
        LockInfo::from_row(
            &LockRow {
                token: token.into(),
                account_id: 1,
                key: key.into(),
                depth_infinity: infinity,
                exclusive,
                owner_xml: None,
                principal_id: Some(owner),
                timeout_at: i64::MAX,
                created_at: 0,
            },
            Timestamp::from_nanos(0),
        )
    }

    fn ctx(account: i64, tokens: &[&str]) -> Ctx {
        let mut ctx = Ctx::new(
            Principal {
                account_id: AccountId(account),
                name: "x".into(),
                is_admin: false,
                owner_id: String::new(),
            },
            Protocol::WebDav,
            "r",
        );
        ctx.lock_tokens = tokens.iter().map(|t| t.to_string()).collect();
        ctx
    }

    fn p(key: &str) -> NodePath {
        NodePath::parse(key).unwrap()
    }

    #[test]
    fn coverage_follows_depth() {
        let folder = lock("a/", true, true, "t", 1);
        assert!(folder.covers(&p("a")));
        assert!(folder.covers(&p("a/b/c")));
        assert!(!folder.covers(&p("ab")));
        let shallow = lock("a/", false, true, "t", 1);
        assert!(shallow.covers(&p("a")));
        assert!(!shallow.covers(&p("a/b")));
        let file = lock("a/f", false, true, "t", 1);
        assert!(file.covers(&p("a/f")));
        assert!(!file.covers(&p("a/f/g")));
    }

    #[test]
    fn writes_need_the_token_of_every_lock_in_their_way() {
        let locks = [lock("a/f", false, true, "t1", 1)];
        let f = p("a/f");
        assert!(matches!(
            blocking(&locks, &f, LockScope::Content, &ctx(1, &[])),
            Err(Error::Locked)
        ));
        assert!(blocking(&locks, &f, LockScope::Content, &ctx(1, &["t1"])).is_ok());
        assert!(
            matches!(
                blocking(&locks, &f, LockScope::Content, &ctx(2, &["t1"])),
                Err(Error::Locked)
            ),
            "a token is useless to another account"
        );
        assert!(blocking(&locks, &p("a/g"), LockScope::Membership, &ctx(1, &[])).is_ok());

        // A depth-0 lock on a folder guards its membership, not its members' content.
        let folder = [lock("a/", false, true, "t2", 1)];
        assert!(blocking(&folder, &f, LockScope::Content, &ctx(1, &[])).is_ok());
        assert!(matches!(
            blocking(&folder, &f, LockScope::Membership, &ctx(1, &[])),
            Err(Error::Locked)
        ));
        // Removing a folder needs the tokens of locks inside it.
        let inside = [lock("a/b/c", false, true, "t3", 1)];
        assert!(matches!(
            blocking(&inside, &p("a"), LockScope::Membership, &ctx(1, &[])),
            Err(Error::Locked)
        ));
        assert!(blocking(&inside, &p("a"), LockScope::Membership, &ctx(1, &["t3"])).is_ok());
    }

    #[test]
    fn one_shared_lock_is_enough() {
        let locks = [
            lock("a/f", false, false, "s1", 1),
            lock("a/f", false, false, "s2", 2),
        ];
        assert!(blocking(&locks, &p("a/f"), LockScope::Content, &ctx(2, &["s2"])).is_ok());
        assert!(matches!(
            blocking(&locks, &p("a/f"), LockScope::Content, &ctx(3, &[])),
            Err(Error::Locked)
        ));
    }

    #[test]
    fn timeouts_are_capped() {
        assert_eq!(granted(None), MAX_LOCK_TIMEOUT);
        assert_eq!(
            granted(Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
        assert_eq!(
            granted(Some(Duration::from_secs(1 << 40))),
            MAX_LOCK_TIMEOUT
        );
    }
}
