//! Configuration: parsed once, typed, passed by value.
//!
//! Precedence: defaults < TOML file (`--config`) < environment (`PORTICO_<KEY>`, one name per
//! key, e.g. `PORTICO_DATA_DIR`) < command-line flags. Unknown keys are refused with their
//! name. Secrets are redacted from `Debug` and from `portico config`.
//! `config/portico.example.toml` documents every key; a test keeps it in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The effective settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address the one HTTP listener binds (WebDAV, S3, health).
    pub listen: String,
    /// Base URL clients use, printed in recipes; empty means `http://<listen>`.
    pub public_url: String,
    /// `pretty` or `json`.
    pub log_format: String,
    /// A tracing filter, e.g. `info` or `portico=debug,info`.
    pub log_level: String,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Base domain for virtual-host style S3 (`bucket.<s3_domain>`); empty: path style only
    /// (which always works).
    pub s3_domain: String,
    /// PEM certificate chain for HTTPS; with `tls_key`, the listener speaks TLS only.
    pub tls_cert: PathBuf,
    /// PEM private key for HTTPS.
    pub tls_key: PathBuf,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Holds the SQLite catalog, the blob volume and the server key unless set apart.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; empty means SQLite in `data_dir/catalog.db`.
    pub database_url: String,
    /// Blob volume directory; empty means `data_dir/volume`.
    pub volume_dir: PathBuf,
    /// Largest single object or file, in bytes.
    pub max_object_size: u64,
    /// Files up to this size are stored in the catalog, not as files on the volume (0: never).
    pub inline_max_bytes: u64,
    /// Catalog connection pool size.
    pub db_max_connections: u32,
    /// Hours after which an unfinished multipart upload is aborted and its parts freed.
    pub multipart_expiry_hours: u64,
    /// Seconds between maintenance rounds (upload expiry, blob garbage collection).
    pub maintenance_interval_secs: u64,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// 64 hex digits sealing S3 secrets in the catalog. Every gateway on one catalog needs
    /// the same key. Empty: read `server_key_file`.
    pub server_key: String,
    /// File holding the server key; empty means `data_dir/server.key`, created on first
    /// start.
    pub server_key_file: PathBuf,
    /// The S3 region reported to clients.
    pub s3_region: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            log_format: "pretty".into(),
            log_level: "info".into(),
            shutdown_grace_secs: 30,
            s3_domain: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            volume_dir: PathBuf::new(),
            max_object_size: portico_drive::DriveConfig::default().max_object_size,
            inline_max_bytes: portico_drive::DEFAULT_INLINE_MAX_BYTES,
            db_max_connections: 16,
            multipart_expiry_hours: 7 * 24,
            maintenance_interval_secs: 3600,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            server_key: String::new(),
            server_key_file: PathBuf::new(),
            s3_region: "us-east-1".into(),
        }
    }
}

const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted_toml())
    }
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &portico_drive::redact_database_url(&self.database_url),
            )
            .field("volume_dir", &self.volume_dir)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "server_key",
                &if self.server_key.is_empty() {
                    ""
                } else {
                    REDACTED
                },
            )
            .field("server_key_file", &self.server_key_file)
            .field("s3_region", &self.s3_region)
            .finish()
    }
}

/// A configuration problem, naming the key and the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Every key, as `(section, key)`: the environment overlay and the example-file test use
/// this list, derived from the defaults so it cannot miss one.
pub fn keys() -> Vec<(String, String)> {
    let table = toml::Table::try_from(Settings::default()).expect("settings serialize");
    let mut keys = Vec::new();
    for (section, value) in table {
        if let toml::Value::Table(inner) = value {
            for key in inner.keys() {
                keys.push((section.clone(), key.clone()));
            }
        }
    }
    keys
}

/// The environment variable for a key: `PORTICO_` and the key in upper case (keys are
/// unique across sections).
pub fn env_name(key: &str) -> String {
    format!("PORTICO_{}", key.to_ascii_uppercase())
}

impl Settings {
    /// Loads defaults < `file` < environment < `flags` (`(key, value)` pairs).
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::try_from(Settings::default()).expect("settings serialize");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let from_file: toml::Table =
                text.parse()
                    .map_err(|err: toml::de::Error| ConfigError::Parse {
                        path: path.into(),
                        message: err.to_string(),
                    })?;
            merge(&mut table, from_file);
            // Name unknown keys with the file they came from.
            toml::Value::Table(table.clone())
                .try_into::<Settings>()
                .map_err(|err| ConfigError::Parse {
                    path: path.into(),
                    message: err.to_string(),
                })?;
        }
        for (section, key) in keys() {
            let name = env_name(&key);
            if let Some(value) = env(&name) {
                set_key(&mut table, &section, &key, &value)
                    .map_err(|message| ConfigError::Env { name, message })?;
            }
        }
        for (key, value) in flags {
            let section = keys()
                .into_iter()
                .find(|(_, k)| k == key)
                .map(|(s, _)| s)
                .expect("flags name known keys");
            set_key(&mut table, &section, key, value).map_err(|message| ConfigError::Invalid {
                key: static_key(key),
                message,
            })?;
        }
        let settings: Settings =
            toml::Value::Table(table)
                .try_into()
                .map_err(|err: toml::de::Error| ConfigError::Parse {
                    path: PathBuf::from("<merged>"),
                    message: err.to_string(),
                })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.server.tls_cert.as_os_str().is_empty() != self.server.tls_key.as_os_str().is_empty()
        {
            return Err(ConfigError::Invalid {
                key: "tls_cert",
                message: "set both tls_cert and tls_key, or neither".into(),
            });
        }
        if !matches!(self.server.log_format.as_str(), "pretty" | "json") {
            return Err(ConfigError::Invalid {
                key: "log_format",
                message: "use \"pretty\" or \"json\"".into(),
            });
        }
        if !self.auth.server_key.is_empty() {
            portico_drive::ServerKey::from_hex(&self.auth.server_key).map_err(|err| {
                ConfigError::Invalid {
                    key: "server_key",
                    message: err.to_string(),
                }
            })?;
        }
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                key: "database_url",
                message: "use sqlite://PATH or postgres://…".into(),
            });
        }
        if self.storage.maintenance_interval_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "maintenance_interval_secs",
                message: "must be at least 1".into(),
            });
        }
        if self.storage.db_max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "db_max_connections",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The certificate and key files, when TLS is configured.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        let (cert, key) = (&self.server.tls_cert, &self.server.tls_key);
        (!cert.as_os_str().is_empty() && !key.as_os_str().is_empty())
            .then(|| (cert.clone(), key.clone()))
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .listen
            .parse()
            .map_err(|err| ConfigError::Invalid {
                key: "listen",
                message: format!(
                    "{:?} is not an address like 127.0.0.1:8080 ({err})",
                    self.server.listen
                ),
            })
    }

    /// The catalog URL, defaulting to SQLite inside the data directory.
    pub fn database_url(&self) -> String {
        if self.storage.database_url.is_empty() {
            format!(
                "sqlite://{}",
                self.storage.data_dir.join("catalog.db").display()
            )
        } else {
            self.storage.database_url.clone()
        }
    }

    pub fn volume_dir(&self) -> PathBuf {
        if self.storage.volume_dir.as_os_str().is_empty() {
            self.storage.data_dir.join("volume")
        } else {
            self.storage.volume_dir.clone()
        }
    }

    pub fn server_key_file(&self) -> PathBuf {
        if self.auth.server_key_file.as_os_str().is_empty() {
            self.storage.data_dir.join("server.key")
        } else {
            self.auth.server_key_file.clone()
        }
    }

    /// The settings as TOML with secrets replaced, for `portico config`.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        if !copy.auth.server_key.is_empty() {
            copy.auth.server_key = REDACTED.into();
        }
        copy.storage.database_url = portico_drive::redact_database_url(&copy.storage.database_url);
        toml::to_string_pretty(&copy).unwrap_or_default()
    }
}

fn static_key(key: &str) -> &'static str {
    match key {
        "listen" => "listen",
        "data_dir" => "data_dir",
        "database_url" => "database_url",
        "tls_cert" => "tls_cert",
        "tls_key" => "tls_key",
        _ => "flag",
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_inner)), toml::Value::Table(overlay_inner)) => {
                merge(base_inner, overlay_inner)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets one key from text, typed like its default (numbers stay numbers).
fn set_key(table: &mut toml::Table, section: &str, key: &str, value: &str) -> Result<(), String> {
    let inner = table
        .get_mut(section)
        .and_then(toml::Value::as_table_mut)
        .expect("sections exist");
    let typed = match inner.get(key) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| format!("{value:?} is not a whole number"))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            value
                .trim()
                .parse()
                .map_err(|_| format!("{value:?} is not true or false"))?,
        ),
        _ => toml::Value::String(value.to_owned()),
    };
    inner.insert(key.to_owned(), typed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn keys_are_unique_across_sections() {
        let keys = keys();
        let mut names: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(
            before,
            names.len(),
            "one environment name per key needs unique keys"
        );
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portico.toml");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9000\"\nlog_level = \"debug\"\n[storage]\ndata_dir = \"/srv/file\"\n").unwrap();
        let env = |name: &str| match name {
            "PORTICO_DATA_DIR" => Some("/srv/env".to_owned()),
            "PORTICO_DB_MAX_CONNECTIONS" => Some("7".to_owned()),
            _ => None,
        };
        let settings =
            Settings::load(Some(&file), &env, &[("listen", "127.0.0.1:9999".into())]).unwrap();
        assert_eq!(settings.server.listen, "127.0.0.1:9999", "flag beats file");
        assert_eq!(settings.server.log_level, "debug", "file beats default");
        assert_eq!(
            settings.storage.data_dir,
            PathBuf::from("/srv/env"),
            "env beats file"
        );
        assert_eq!(
            settings.storage.db_max_connections, 7,
            "env values are typed"
        );
        assert_eq!(settings.database_url(), "sqlite:///srv/env/catalog.db");
    }

    #[test]
    fn bad_settings_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[server]\nlisen = \"x\"\n").unwrap();
        let err = Settings::load(Some(&file), &no_env, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = Settings::load(
            None,
            &|n: &str| (n == "PORTICO_DB_MAX_CONNECTIONS").then(|| "many".into()),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PORTICO_DB_MAX_CONNECTIONS"), "{err}");
        let err = Settings::load(None, &no_env, &[("listen", "nowhere".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = Settings::load(None, &no_env, &[("database_url", "mysql://x".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_url"), "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let env = |name: &str| match name {
            "PORTICO_SERVER_KEY" => Some("ab".repeat(32)),
            "PORTICO_DATABASE_URL" => Some("postgres://portico:hunter2@db/portico".into()),
            _ => None,
        };
        let settings = Settings::load(None, &env, &[]).unwrap();
        let shown = format!(
            "{}\n{settings:?}\n{:?}\n{:?}",
            settings.redacted_toml(),
            settings.storage,
            settings.auth
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains(&"ab".repeat(32)),
            "{shown}"
        );
    }

    /// The example file documents every key, with its environment name and default.
    #[test]
    fn example_config_documents_every_key() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/portico.example.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = Settings::load(Some(Path::new(path)), &no_env, &[]).unwrap();
        assert_eq!(
            parsed,
            Settings::default(),
            "the example shows the defaults"
        );
        for (_, key) in keys() {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "{key} is missing from the example"
            );
            assert!(
                text.contains(&env_name(&key)),
                "{} is missing from the example",
                env_name(&key)
            );
        }
    }
}
