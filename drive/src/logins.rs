//! Logging in by HTTP (WebDAV and, later, the REST API): a password or an app password in
//! Basic auth, an app password as a Bearer token — and throttling of failed attempts per
//! client address and per account.
//!
//! App passwords are random tokens (`pap_…`, 238 bits), stored as a BLAKE3 digest: they
//! are found by one indexed lookup, need no slow hash, and each is revoked alone.
//!
//! Throttling: more than [`MAX_FAILURES_PER_ACCOUNT`] failed logins to one account, or
//! [`MAX_FAILURES_PER_ADDRESS`] from one address, within [`FAILURE_WINDOW`] and further
//! attempts are refused until the window ends. A throttled account still accepts a
//! password this process verified before: a guesser cannot lock a mounted drive out.
//! Counters live in each gateway process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Drive;
use crate::auth::{CachedAppPassword, principal_of, random_text, unchanged};
use crate::error::{Error, Missing, Result};
use crate::model::{Principal, Timestamp};

/// Failed logins an account takes per window before new passwords are refused.
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
/// Failed logins one client address may make per window (a proxy counts as one client).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 50;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);

const APP_PASSWORD_PREFIX: &str = "pap_";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// An app password as listed (never its value).
#[derive(Debug, Clone)]
pub struct AppPasswordInfo {
    pub id: i64,
    pub label: String,
    pub created: Timestamp,
}

/// A new app password: shown once.
pub struct NewAppPassword {
    pub id: i64,
    pub password: String,
}

impl std::fmt::Debug for NewAppPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAppPassword")
            .field("id", &self.id)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn digest(token: &str) -> String {
    format!("blake3:{}", blake3::hash(token.as_bytes()).to_hex())
}

/// Failure counts per key, in fixed windows.
#[derive(Default)]
pub(crate) struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    /// Seconds until `key` may try again, if it is over `limit`.
    fn blocked(&self, key: &str, limit: u32) -> Option<u64> {
        let failures = self.failures.lock().expect("throttle lock");
        let (count, since) = failures.get(key)?;
        let elapsed = since.elapsed();
        (*count >= limit && elapsed < FAILURE_WINDOW)
            .then(|| (FAILURE_WINDOW - elapsed).as_secs().max(1))
    }

    fn fail(&self, key: &str) {
        let mut failures = self.failures.lock().expect("throttle lock");
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures
            .entry(key.to_owned())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

fn address_key(addr: Option<IpAddr>) -> Option<String> {
    addr.map(|a| format!("addr:{a}"))
}

impl Drive {
    /// Basic auth: `name` with its password or one of its app passwords. Throttled per
    /// client address and per account; a refusal for throttling is
    /// [`Error::TooManyAttempts`], never a hint whether the password was right.
    pub async fn authenticate_basic(
        &self,
        name: &str,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal> {
        let throttle = &self.inner.throttle;
        if let Some(key) = address_key(client)
            && let Some(wait) = throttle.blocked(&key, MAX_FAILURES_PER_ADDRESS)
        {
            return Err(Error::TooManyAttempts { retry_after: wait });
        }
        let account_key = format!("account:{name}");
        let account_blocked = throttle.blocked(&account_key, MAX_FAILURES_PER_ACCOUNT);
        let outcome = if secret.starts_with(APP_PASSWORD_PREFIX) {
            if let Some(wait) = account_blocked {
                return Err(Error::TooManyAttempts { retry_after: wait });
            }
            self.app_password_principal(secret)
                .await
                .and_then(|principal| {
                    if principal.name == name {
                        Ok(principal)
                    } else {
                        Err(Error::Unauthenticated)
                    }
                })
        } else if let Some(wait) = account_blocked {
            // Only a password this process already verified gets through now.
            match self.cached_login(name, secret).await? {
                Some(principal) => Ok(principal),
                None => return Err(Error::TooManyAttempts { retry_after: wait }),
            }
        } else {
            self.authenticate_password(name, secret).await
        };
        if matches!(outcome, Err(Error::Unauthenticated)) {
            throttle.fail(&account_key);
            if let Some(key) = address_key(client) {
                throttle.fail(&key);
            }
        }
        outcome
    }

    /// `Authorization: Bearer <app password>`. Throttled per client address.
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal> {
        let throttle = &self.inner.throttle;
        if let Some(key) = address_key(client)
            && let Some(wait) = throttle.blocked(&key, MAX_FAILURES_PER_ADDRESS)
        {
            return Err(Error::TooManyAttempts { retry_after: wait });
        }
        let outcome = if token.starts_with(APP_PASSWORD_PREFIX) {
            self.app_password_principal(token).await
        } else {
            Err(Error::Unauthenticated)
        };
        if matches!(outcome, Err(Error::Unauthenticated))
            && let Some(key) = address_key(client)
        {
            throttle.fail(&key);
        }
        outcome
    }

    /// The account an app password belongs to: kept in memory while the catalog's
    /// credentials token is unchanged, else read (revocation and disabling apply at once).
    async fn app_password_principal(&self, token: &str) -> Result<Principal> {
        let catalog = &self.inner.catalog;
        let digest = digest(token);
        let now = catalog.credentials_token();
        {
            let cached = self
                .inner
                .credentials
                .app_passwords
                .lock()
                .expect("app password cache lock");
            if let Some(c) = cached.get(&digest)
                && unchanged(Some(c.token), now)
            {
                return Ok(c.principal.clone());
            }
        }
        let Some(row) = catalog.app_password_by_hash(&digest).await? else {
            return Err(Error::Unauthenticated);
        };
        match catalog.account_by_id(row.account_id).await? {
            Some(account) if !account.disabled => {
                let principal = principal_of(&account);
                if let Some(now) = now {
                    let mut cached = self
                        .inner
                        .credentials
                        .app_passwords
                        .lock()
                        .expect("app password cache lock");
                    if cached.len() > 100_000 {
                        cached.clear();
                    }
                    cached.insert(
                        digest,
                        CachedAppPassword {
                            principal: principal.clone(),
                            token: now,
                        },
                    );
                }
                Ok(principal)
            }
            _ => Err(Error::Unauthenticated),
        }
    }

    /// Creates an app password for `account`; its value is returned once.
    pub async fn create_app_password(&self, account: &str, label: &str) -> Result<NewAppPassword> {
        let row = self
            .inner
            .catalog
            .account_by_name(account)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        let password = format!("{APP_PASSWORD_PREFIX}{}", random_text(40, ALNUM));
        let mut tx = self.inner.catalog.begin().await?;
        let id = tx
            .insert_app_password(row.id, label, &digest(&password), Timestamp::now().nanos())
            .await?;
        tx.insert_audit(&crate::auth::admin_audit(
            row.id,
            "app_password.create",
            Some(format!("{id} {label}")),
        ))
        .await?;
        tx.commit().await?;
        Ok(NewAppPassword { id, password })
    }

    pub async fn list_app_passwords(&self, account: &str) -> Result<Vec<AppPasswordInfo>> {
        let row = self
            .inner
            .catalog
            .account_by_name(account)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        Ok(self
            .inner
            .catalog
            .app_passwords_of(row.id)
            .await?
            .into_iter()
            .map(|p| AppPasswordInfo {
                id: p.id,
                label: p.label,
                created: Timestamp::from_nanos(p.created_at),
            })
            .collect())
    }

    /// Revokes one app password; it stops working at once, on every gateway.
    pub async fn revoke_app_password(&self, account: &str, id: i64) -> Result<()> {
        let row = self
            .inner
            .catalog
            .account_by_name(account)
            .await?
            .ok_or(Error::NotFound(Missing::Account))?;
        let mut tx = self.inner.catalog.begin().await?;
        if !tx.delete_app_password(row.id, id).await? {
            return Err(Error::NotFound(Missing::AppPassword));
        }
        tx.insert_audit(&crate::auth::admin_audit(
            row.id,
            "app_password.revoke",
            Some(id.to_string()),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_counts_in_windows() {
        let throttle = Throttle::default();
        for _ in 0..3 {
            assert_eq!(throttle.blocked("k", 3), None);
            throttle.fail("k");
        }
        let wait = throttle.blocked("k", 3).unwrap();
        assert!(wait > 0 && wait <= FAILURE_WINDOW.as_secs());
        assert_eq!(throttle.blocked("other", 3), None);
    }

    #[test]
    fn app_passwords_are_long_and_digested() {
        let token = format!("{APP_PASSWORD_PREFIX}{}", random_text(40, ALNUM));
        assert_eq!(token.len(), 44);
        assert!(digest(&token).starts_with("blake3:"));
        assert_ne!(digest(&token), digest("pap_other"));
        let shown = format!(
            "{:?}",
            NewAppPassword {
                id: 1,
                password: token.clone()
            }
        );
        assert!(!shown.contains(&token));
    }
}
