//! Tells every process on a SQLite catalog that credentials changed, so that they may keep
//! checked credentials in memory instead of reading the catalog on every request.
//!
//! Reading an access key (or an account's password row) per request was one of a small S3
//! PUT's three catalog trips. A process may instead keep what it read — but a key revoked,
//! an account disabled or a password changed must stop working at once, also when the
//! change comes from another process on the same catalog (the `portico` CLI while the
//! server runs). Every transaction that changes a credential appends one byte, after its
//! commit, to a file beside the database (`<database>.credentials`); a cached credential is
//! trusted only while that file's identity and length are what they were before the
//! catalog read that filled it. Checking costs one `stat`; a change made at any time
//! before the check is seen by it (the append follows the commit, and the token is taken
//! before the read).
//!
//! PostgreSQL catalogs have no such signal (gateways on several machines share no file):
//! there [`Token`]s are never issued and every request reads the catalog.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The state of the signal file when a credential was read; equal tokens mean no
/// credential changed in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    inode: u64,
    len: u64,
}

pub(crate) struct CredentialSignal {
    /// `None` for an in-memory database: no other process can share it, and no token is
    /// issued.
    path: Option<PathBuf>,
}

impl CredentialSignal {
    pub(crate) fn new(database: &std::path::Path) -> Self {
        if database.as_os_str() == ":memory:" {
            return Self { path: None };
        }
        let mut path = database.as_os_str().to_owned();
        path.push(".credentials");
        Self {
            path: Some(PathBuf::from(path)),
        }
    }

    /// Creates the file if it is missing, so that it belongs to the server's user rather
    /// than to whoever first changes a credential (a CLI run as root, say): every process
    /// on the catalog must be able to append to it.
    pub(crate) fn create(&self) -> std::io::Result<()> {
        self.open().map(drop)
    }

    /// The file, opened to append (created if missing); `None` for an in-memory database.
    fn open(&self) -> std::io::Result<Option<std::fs::File>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Some)
    }

    /// The file's state now. `None` when it cannot be read (nothing may then be trusted
    /// from memory). A missing file is a token too: no credential changed yet.
    pub(crate) fn token(&self) -> Option<Token> {
        match std::fs::metadata(self.path.as_ref()?) {
            Ok(meta) => Some(Token {
                inode: meta.ino(),
                len: meta.len(),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Some(Token { inode: 0, len: 0 })
            }
            Err(_) => None,
        }
    }

    /// Announces a committed credential change. One byte per change: appends are atomic,
    /// and the length never repeats while the file exists.
    pub(crate) fn changed(&self) -> std::io::Result<()> {
        match self.open()? {
            Some(mut file) => file.write_all(b"."),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_gives_a_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let signal = CredentialSignal::new(&dir.path().join("catalog.db"));
        let mut seen = vec![signal.token().unwrap()];
        for _ in 0..3 {
            assert_eq!(
                signal.token(),
                seen.last().copied(),
                "stable until a change"
            );
            signal.changed().unwrap();
            let now = signal.token().unwrap();
            assert!(!seen.contains(&now), "{now:?} was issued before");
            seen.push(now);
        }
        // Another process's handle on the same catalog sees the same tokens.
        let other = CredentialSignal::new(&dir.path().join("catalog.db"));
        assert_eq!(other.token(), seen.last().copied());
    }
}
