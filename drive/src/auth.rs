//! Accounts and credentials: passwords (argon2id, with a cache of verified logins so the
//! deliberately slow hash does not run per request), S3 access keys (secrets sealed under
//! the server key), and the account administration behind `portico user` / `portico key`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use portico_metadata::{AccessKeyRow, AccountRow, CredentialsToken, NewAccount};
use tokio::sync::Semaphore;

use crate::error::{Error, Missing, Result};
use crate::model::{AccountId, Principal, Timestamp, Usage};
use crate::{Ctx, Drive};

/// How long the principal found while verifying a signature serves the same request's
/// handler (which runs right after), on a catalog that issues no credentials token
/// (PostgreSQL), where the signature check itself always reads the catalog.
const PRINCIPAL_FRESH: Duration = Duration::from_secs(2);
/// Concurrent argon2 verifications: each takes ~19 MiB and tens of milliseconds, so a
/// flood of wrong passwords must queue instead of exhausting memory.
const MAX_CONCURRENT_HASHES: usize = 4;

/// The 32-byte key that seals access-key secrets in the catalog. Its `Debug` is redacted.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key[..]);
        Self(key)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim()).map_err(|_| Error::InvalidInput {
            field: "server key",
            reason: "must be 64 hex digits".into(),
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| Error::InvalidInput {
            field: "server key",
            reason: "must be 64 hex digits (32 bytes)".into(),
        })?;
        Ok(Self(key))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// nonce (24 bytes) || ciphertext.
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::fill(&mut nonce[..]);
        let ciphertext = self
            .cipher()
            .encrypt(&XNonce::from(nonce), plaintext)
            .expect("sealing cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 24 {
            return Err(Error::internal("sealed secret is truncated"));
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().expect("split at 24");
        self.cipher()
            .decrypt(&XNonce::from(nonce), ciphertext)
            .map_err(|_| {
                Error::internal(
                    "an access key secret does not open with this server key (wrong server key?)",
                )
            })
    }
}

/// Account data shown to administrators.
#[derive(Debug, Clone)]
pub struct AccountInfo {
    pub id: AccountId,
    pub name: String,
    pub email: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub usage: Usage,
    pub owner_id: String,
    pub created: Timestamp,
}

impl AccountInfo {
    fn from_row(row: &AccountRow) -> Self {
        Self {
            id: AccountId(row.id),
            name: row.name.clone(),
            email: row.email.clone(),
            is_admin: row.is_admin,
            disabled: row.disabled,
            usage: usage_of(row),
            owner_id: row.owner_id.clone(),
            created: Timestamp::from_nanos(row.created_at),
        }
    }
}

pub(crate) fn usage_of(row: &AccountRow) -> Usage {
    Usage {
        used_bytes: u64::try_from(row.used_bytes).unwrap_or(0),
        quota_bytes: row.quota_bytes.and_then(|q| u64::try_from(q).ok()),
    }
}

pub(crate) fn principal_of(row: &AccountRow) -> Principal {
    Principal {
        account_id: AccountId(row.id),
        name: row.name.clone(),
        is_admin: row.is_admin,
        owner_id: row.owner_id.clone(),
    }
}

/// A new account's settings.
#[derive(Debug, Clone, Default)]
pub struct NewAccountRequest {
    pub name: String,
    pub email: Option<String>,
    /// `None`: generate one and return it.
    pub password: Option<String>,
    pub is_admin: bool,
    pub quota_bytes: Option<u64>,
}

/// An access key as listed (never with its secret).
#[derive(Debug, Clone)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub account: String,
    pub description: Option<String>,
    pub created: Timestamp,
    pub revoked: bool,
}

/// A newly created access key: the only time its secret is shown.
#[derive(Clone)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccessKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

struct CachedLogin {
    mac: [u8; 32],
    epoch: i64,
    principal: Principal,
    /// The catalog's credentials token before the read that verified it: while the
    /// catalog still gives this token, nothing about the account changed.
    token: Option<CredentialsToken>,
}

struct CachedKey {
    principal: Principal,
    secret: String,
    checked: Instant,
    /// As [`CachedLogin::token`].
    token: Option<CredentialsToken>,
}

/// An app password's account (by the password's digest), as of `token`.
pub(crate) struct CachedAppPassword {
    pub(crate) principal: Principal,
    pub(crate) token: CredentialsToken,
}

/// Whether what was read under `then` still holds: the catalog issues tokens and gives
/// the same one `now`.
pub(crate) fn unchanged(then: Option<CredentialsToken>, now: Option<CredentialsToken>) -> bool {
    then.is_some() && then == now
}

/// Credential caches. Passwords are never kept: only a keyed hash of them, under a key that
/// lives in this process alone.
pub(crate) struct Credentials {
    mac_key: [u8; 32],
    logins: Mutex<HashMap<String, CachedLogin>>,
    keys: Mutex<HashMap<String, CachedKey>>,
    pub(crate) app_passwords: Mutex<HashMap<String, CachedAppPassword>>,
    hashing: Semaphore,
    dummy_hash: std::sync::OnceLock<String>,
}

impl Credentials {
    pub(crate) fn new() -> Self {
        let mut mac_key = [0u8; 32];
        rand::fill(&mut mac_key[..]);
        Self {
            mac_key,
            logins: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            app_passwords: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(MAX_CONCURRENT_HASHES),
            dummy_hash: std::sync::OnceLock::new(),
        }
    }

    fn mac(&self, name: &str, password: &str) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.mac_key);
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(password.as_bytes());
        *hasher.finalize().as_bytes()
    }
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes).
pub(crate) fn hash_password(password: &str) -> Result<String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| Error::internal(format!("password hashing failed: {err}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A random string from an unambiguous alphabet.
pub(crate) fn random_text(length: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; length];
    rand::fill(&mut bytes[..]);
    // 256 is not a multiple of the alphabet size; the bias is < 2^-3 per char for 62
    // symbols and irrelevant at these lengths (≥ 140 bits of entropy).
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub fn generate_password() -> String {
    random_text(24, ALNUM)
}

/// Account names: what Basic auth, URLs and shells carry without quoting.
pub fn validate_account_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "account name",
            reason:
                "use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
                    .into(),
        })
    }
}

fn validate_password(password: &str) -> Result<()> {
    if password.len() < 8 {
        return Err(Error::InvalidInput {
            field: "password",
            reason: "must be at least 8 characters".into(),
        });
    }
    if password.len() > 1024 {
        return Err(Error::InvalidInput {
            field: "password",
            reason: "must be at most 1024 bytes".into(),
        });
    }
    Ok(())
}

impl Drive {
    async fn hash_blocking(&self, password: String) -> Result<String> {
        let _permit = self
            .inner
            .credentials
            .hashing
            .acquire()
            .await
            .map_err(|_| Error::internal("shutting down"))?;
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|err| Error::internal(err.to_string()))?
    }

    async fn verify_blocking(&self, password: &str, hash: String) -> Result<bool> {
        let _permit = self
            .inner
            .credentials
            .hashing
            .acquire()
            .await
            .map_err(|_| Error::internal("shutting down"))?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|err| Error::internal(err.to_string()))
    }

    /// Checks a name and password (HTTP Basic). Unknown names, wrong passwords and
    /// disabled accounts fail identically — same error, and argon2 runs in each case — so
    /// the answer never tells whether an account exists.
    ///
    /// A password this process verified is taken from memory while the catalog's
    /// credentials token is unchanged (SQLite: no password change, disable or revoke since,
    /// from any process). Otherwise the account row is read (one indexed query), so such a
    /// change takes effect at once, on every gateway; argon2 is skipped when this process
    /// already verified the same password at the same credential epoch.
    pub async fn authenticate_password(&self, name: &str, password: &str) -> Result<Principal> {
        let credentials = &self.inner.credentials;
        let mac = credentials.mac(name, password);
        let token = self.inner.catalog.credentials_token();
        {
            let logins = credentials.logins.lock().expect("login cache lock");
            if let Some(c) = logins.get(name)
                && c.mac == mac
                && unchanged(c.token, token)
            {
                return Ok(c.principal.clone());
            }
        }
        let Some(row) = self.inner.catalog.account_by_name(name).await? else {
            let dummy = credentials
                .dummy_hash
                .get_or_init(|| hash_password("not a real password").unwrap_or_default());
            let _ = self.verify_blocking(password, dummy.clone()).await?;
            return Err(Error::Unauthenticated);
        };
        let verified_before = {
            let logins = credentials.logins.lock().expect("login cache lock");
            logins.get(name).is_some_and(|c| {
                c.mac == mac
                    && c.epoch == row.credential_epoch
                    && c.principal.account_id.0 == row.id
            })
        };
        let valid = verified_before
            || self
                .verify_blocking(password, row.password_hash.clone())
                .await?;
        if !valid || row.disabled {
            return Err(Error::Unauthenticated);
        }
        let principal = principal_of(&row);
        self.remember_login(name, mac, row.credential_epoch, principal.clone(), token);
        Ok(principal)
    }

    /// The account, if this process verified exactly this password for it at its current
    /// credential epoch (no argon2 run: used while an account is throttled).
    pub(crate) async fn cached_login(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<Principal>> {
        let credentials = &self.inner.credentials;
        let mac = credentials.mac(name, password);
        let Some(row) = self.inner.catalog.account_by_name(name).await? else {
            return Ok(None);
        };
        let known = credentials
            .logins
            .lock()
            .expect("login cache lock")
            .get(name)
            .is_some_and(|c| {
                c.mac == mac
                    && c.epoch == row.credential_epoch
                    && c.principal.account_id.0 == row.id
            });
        Ok((known && !row.disabled).then(|| principal_of(&row)))
    }

    fn remember_login(
        &self,
        name: &str,
        mac: [u8; 32],
        epoch: i64,
        principal: Principal,
        token: Option<CredentialsToken>,
    ) {
        let mut logins = self
            .inner
            .credentials
            .logins
            .lock()
            .expect("login cache lock");
        if logins.len() > 100_000 {
            logins.clear();
        }
        logins.insert(
            name.to_owned(),
            CachedLogin {
                mac,
                epoch,
                principal,
                token,
            },
        );
    }

    /// The secret of an S3 access key. Kept in memory while the catalog's credentials
    /// token is unchanged (SQLite: no revoke, disable or password change since, from any
    /// process); otherwise read from the catalog (one query), so that a revoked key or a
    /// disabled account stops working at once. Unknown, revoked and disabled-account keys
    /// are all `NotFound(AccessKey)`.
    pub async fn s3_secret(&self, access_key_id: &str) -> Result<String> {
        let token = self.inner.catalog.credentials_token();
        {
            let keys = self.inner.credentials.keys.lock().expect("key cache lock");
            if let Some(cached) = keys.get(access_key_id)
                && unchanged(cached.token, token)
            {
                return Ok(cached.secret.clone());
            }
        }
        let Some(found) = self
            .inner
            .catalog
            .access_key_with_account(access_key_id)
            .await?
        else {
            return Err(Error::NotFound(Missing::AccessKey));
        };
        if found.disabled {
            return Err(Error::NotFound(Missing::AccessKey));
        }
        let secret = String::from_utf8(self.inner.server_key.open(&found.secret_sealed)?)
            .map_err(|_| Error::internal("access key secret is not UTF-8"))?;
        let mut keys = self.inner.credentials.keys.lock().expect("key cache lock");
        if keys.len() > 100_000 {
            keys.clear();
        }
        keys.insert(
            access_key_id.to_owned(),
            CachedKey {
                principal: Principal {
                    account_id: AccountId(found.account_id),
                    name: found.account_name,
                    is_admin: found.is_admin,
                    owner_id: found.owner_id,
                },
                secret: secret.clone(),
                checked: Instant::now(),
                token,
            },
        );
        Ok(secret)
    }

    /// The principal an access key acts as, for a request whose signature was just
    /// verified with [`Drive::s3_secret`] (which filled this cache a moment ago).
    pub async fn s3_principal(&self, access_key_id: &str) -> Result<Principal> {
        let token = self.inner.catalog.credentials_token();
        {
            let keys = self.inner.credentials.keys.lock().expect("key cache lock");
            if let Some(cached) = keys.get(access_key_id)
                && (unchanged(cached.token, token) || cached.checked.elapsed() < PRINCIPAL_FRESH)
            {
                return Ok(cached.principal.clone());
            }
        }
        self.s3_secret(access_key_id).await?;
        let keys = self.inner.credentials.keys.lock().expect("key cache lock");
        keys.get(access_key_id)
            .map(|c| c.principal.clone())
            .ok_or(Error::NotFound(Missing::AccessKey))
    }

    // ---- administration --------------------------------------------------------------

    pub async fn account_count(&self) -> Result<i64> {
        Ok(self.inner.catalog.account_count().await?)
    }

    async fn account_named(&self, name: &str) -> Result<AccountRow> {
        self.inner
            .catalog
            .account_by_name(name)
            .await?
            .ok_or(Error::NotFound(Missing::Account))
    }

    pub async fn account(&self, name: &str) -> Result<AccountInfo> {
        Ok(AccountInfo::from_row(&self.account_named(name).await?))
    }

    /// Creates an account; returns the generated password when none was given.
    pub async fn create_account(
        &self,
        request: NewAccountRequest,
    ) -> Result<(AccountInfo, Option<String>)> {
        validate_account_name(&request.name)?;
        let generated = request.password.is_none().then(generate_password);
        let password = request
            .password
            .clone()
            .or_else(|| generated.clone())
            .unwrap_or_default();
        validate_password(&password)?;
        let password_hash = self.hash_blocking(password).await?;
        let quota_bytes = request
            .quota_bytes
            .map(|q| i64::try_from(q).unwrap_or(i64::MAX));
        let mut owner_id = [0u8; 32];
        rand::fill(&mut owner_id[..]);
        let mut tx = self.inner.catalog.begin().await?;
        let row = tx
            .insert_account(&NewAccount {
                name: request.name.clone(),
                email: request.email.clone(),
                password_hash,
                is_admin: request.is_admin,
                quota_bytes,
                owner_id: hex::encode(owner_id),
            })
            .await
            .map_err(|err| match err {
                portico_metadata::Error::Conflict(_) => Error::AlreadyExists,
                other => other.into(),
            })?;
        tx.insert_audit(&admin_audit(row.id, "account.create", None))
            .await?;
        tx.commit().await?;
        Ok((AccountInfo::from_row(&row), generated))
    }

    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        Ok(self
            .inner
            .catalog
            .list_accounts()
            .await?
            .iter()
            .map(AccountInfo::from_row)
            .collect())
    }

    /// Sets a password (generated when `None`, and returned).
    pub async fn set_password(
        &self,
        name: &str,
        password: Option<String>,
    ) -> Result<Option<String>> {
        let account = self.account_named(name).await?;
        let generated = password.is_none().then(generate_password);
        let password = password.or_else(|| generated.clone()).unwrap_or_default();
        validate_password(&password)?;
        let hash = self.hash_blocking(password).await?;
        let mut tx = self.inner.catalog.begin().await?;
        tx.set_password(account.id, &hash).await?;
        tx.insert_audit(&admin_audit(account.id, "account.password", None))
            .await?;
        tx.commit().await?;
        self.forget_cached(name);
        Ok(generated)
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let account = self.account_named(name).await?;
        let mut tx = self.inner.catalog.begin().await?;
        tx.set_disabled(account.id, disabled).await?;
        let action = if disabled {
            "account.disable"
        } else {
            "account.enable"
        };
        tx.insert_audit(&admin_audit(account.id, action, None))
            .await?;
        tx.commit().await?;
        self.forget_cached(name);
        Ok(())
    }

    pub async fn set_quota(&self, name: &str, quota_bytes: Option<u64>) -> Result<()> {
        let account = self.account_named(name).await?;
        let mut tx = self.inner.catalog.begin().await?;
        tx.set_quota(
            account.id,
            quota_bytes.map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
        )
        .await?;
        tx.insert_audit(&admin_audit(
            account.id,
            "account.quota",
            quota_bytes.map(|q| q.to_string()),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    fn forget_cached(&self, name: &str) {
        self.inner
            .credentials
            .logins
            .lock()
            .expect("login cache lock")
            .remove(name);
        self.inner
            .credentials
            .keys
            .lock()
            .expect("key cache lock")
            .retain(|_, key| key.principal.name != name);
    }

    /// Creates an S3 access key for an account. The secret is returned once and stored
    /// only sealed under the server key.
    pub async fn create_access_key(
        &self,
        account: &str,
        description: Option<String>,
    ) -> Result<NewAccessKey> {
        let account = self.account_named(account).await?;
        let access_key_id = format!("PK{}", random_text(18, UPPER_ALNUM));
        let secret_access_key = random_text(40, ALNUM);
        let mut tx = self.inner.catalog.begin().await?;
        tx.insert_access_key(&AccessKeyRow {
            access_key_id: access_key_id.clone(),
            account_id: account.id,
            secret_sealed: self.inner.server_key.seal(secret_access_key.as_bytes()),
            description,
            created_at: Timestamp::now().nanos(),
            last_used_at: None,
            revoked_at: None,
        })
        .await?;
        tx.insert_audit(&admin_audit(
            account.id,
            "key.create",
            Some(access_key_id.clone()),
        ))
        .await?;
        tx.commit().await?;
        Ok(NewAccessKey {
            access_key_id,
            secret_access_key,
        })
    }

    pub async fn list_access_keys(&self, account: Option<&str>) -> Result<Vec<AccessKeyInfo>> {
        let filter = match account {
            Some(name) => Some(self.account_named(name).await?.id),
            None => None,
        };
        let names: HashMap<i64, String> = self
            .inner
            .catalog
            .list_accounts()
            .await?
            .into_iter()
            .map(|a| (a.id, a.name))
            .collect();
        Ok(self
            .inner
            .catalog
            .list_access_keys(filter)
            .await?
            .into_iter()
            .map(|key| AccessKeyInfo {
                account: names.get(&key.account_id).cloned().unwrap_or_default(),
                access_key_id: key.access_key_id,
                description: key.description,
                created: Timestamp::from_nanos(key.created_at),
                revoked: key.revoked_at.is_some(),
            })
            .collect())
    }

    pub async fn revoke_access_key(&self, access_key_id: &str) -> Result<()> {
        let Some(key) = self.inner.catalog.access_key(access_key_id).await? else {
            return Err(Error::NotFound(Missing::AccessKey));
        };
        let mut tx = self.inner.catalog.begin().await?;
        tx.revoke_access_key(access_key_id).await?;
        tx.insert_audit(&admin_audit(
            key.account_id,
            "key.revoke",
            Some(access_key_id.to_owned()),
        ))
        .await?;
        tx.commit().await?;
        self.inner
            .credentials
            .keys
            .lock()
            .expect("key cache lock")
            .remove(access_key_id);
        Ok(())
    }

    /// The signed-in account's storage use and quota.
    pub async fn usage(&self, ctx: &Ctx) -> Result<Usage> {
        let row = self
            .inner
            .catalog
            .account_by_id(ctx.principal.account_id.0)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        Ok(usage_of(&row))
    }

    /// Bytes used by the caller's account and bytes it can still write: what its quota
    /// leaves, and never more than the volume has free (RFC 4331 quota properties, `df` on
    /// a mounted drive).
    pub async fn space(&self, ctx: &Ctx) -> Result<(u64, u64)> {
        let usage = self.usage(ctx).await?;
        let free = self
            .inner
            .volume
            .available_bytes()
            .map_err(|err| Error::Internal(Box::new(err)))?;
        let available = usage.available().map_or(free, |left| left.min(free));
        Ok((usage.used_bytes, available))
    }
}

pub(crate) fn admin_audit(
    account_id: i64,
    action: &str,
    detail: Option<String>,
) -> portico_metadata::NewAudit {
    portico_metadata::NewAudit {
        account_id: Some(account_id),
        actor_id: None,
        protocol: "cli".into(),
        action: action.into(),
        key: None,
        detail,
        request_id: None,
    }
}
