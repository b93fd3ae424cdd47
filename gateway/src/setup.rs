//! Start-up: the data directory, the server key, the drive, and the first start's
//! administrator account.

use std::io::Write as _;
use std::path::Path;

use portico_drive::{
    ConnectOptions, Drive, DriveConfig, NewAccessKey, NewAccountRequest, ServerKey,
};

use crate::config::Settings;

/// Errors of start-up, each saying what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("server key file {path}: {message}")]
    ServerKey {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot open the catalog at {url}: {source}")]
    Catalog {
        url: String,
        source: portico_drive::Error,
    },
}

/// Reads the server key from the settings or its file, creating the file (mode 0600) on
/// first start.
pub fn server_key(settings: &Settings) -> Result<ServerKey, SetupError> {
    if !settings.auth.server_key.is_empty() {
        return ServerKey::from_hex(&settings.auth.server_key).map_err(|err| {
            SetupError::ServerKey {
                path: "PORTICO_SERVER_KEY".into(),
                message: err.to_string(),
            }
        });
    }
    let path = settings.server_key_file();
    let fail = |message: String| SetupError::ServerKey {
        path: path.clone(),
        message,
    };
    let read = || match std::fs::read_to_string(&path) {
        Ok(text) => Some(ServerKey::from_hex(&text).map_err(|err| fail(err.to_string()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => Some(Err(fail(err.to_string()))),
    };
    if let Some(key) = read() {
        return key;
    }
    let key = ServerKey::generate();
    match write_secret_file(&path, &format!("{}\n", key.to_hex())) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new server key");
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read().unwrap_or_else(|| Err(fail(err.to_string())))
        }
        Err(err) => Err(fail(err.to_string())),
    }
}

/// Creates a file only its owner can read, durably, failing if it exists (two starting
/// processes must not both write a different key).
fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Opens the drive described by `settings`, creating the data directory when needed.
pub async fn open_drive(settings: &Settings) -> Result<Drive, SetupError> {
    let data_dir = &settings.storage.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| SetupError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let key = server_key(settings)?;
    let url = settings.database_url();
    let connect = ConnectOptions {
        max_connections: settings.storage.db_max_connections,
        ..ConnectOptions::default()
    };
    let config = DriveConfig {
        max_object_size: settings.storage.max_object_size,
        inline_max_bytes: settings.storage.inline_max_bytes,
    };
    Drive::connect(&url, &connect, &settings.volume_dir(), key, config)
        .await
        .map_err(|source| SetupError::Catalog {
            url: portico_drive::redact_database_url(&url),
            source,
        })
}

/// The credentials made on first start: shown once, never stored in clear.
pub struct FirstStart {
    pub user: String,
    pub password: String,
    pub key: NewAccessKey,
}

/// On a catalog with no accounts, creates the `admin` account and an access key for it.
pub async fn first_start(drive: &Drive) -> Result<Option<FirstStart>, portico_drive::Error> {
    if drive.account_count().await? > 0 {
        return Ok(None);
    }
    let request = NewAccountRequest {
        name: "admin".into(),
        is_admin: true,
        ..Default::default()
    };
    let (account, password) = match drive.create_account(request).await {
        Ok(created) => created,
        // Another process won the race to create it; it prints the credentials.
        Err(portico_drive::Error::AlreadyExists) => return Ok(None),
        Err(err) => return Err(err),
    };
    let key = drive
        .create_access_key(&account.name, Some("created on first start".into()))
        .await?;
    Ok(Some(FirstStart {
        user: account.name,
        password: password.unwrap_or_default(),
        key,
    }))
}

/// The first-start message: credentials and recipes to paste, with the real URL.
pub fn first_start_message(first: &FirstStart, url: &str, region: &str) -> String {
    let FirstStart {
        user,
        password,
        key,
    } = first;
    let (id, secret) = (&key.access_key_id, &key.secret_access_key);
    format!(
        "
First start: an administrator account was created. These credentials are shown only once.

  user:               {user}
  password:           {password}
  access key id:      {id}
  secret access key:  {secret}

aws-cli:
  export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}
  aws --endpoint-url {url} s3 mb s3://photos
  aws --endpoint-url {url} s3 cp a.jpg s3://photos/2024/a.jpg

rclone:
  rclone config create portico s3 provider=Other env_auth=false access_key_id={id} secret_access_key={secret} endpoint={url} region={region}
  rclone lsd portico:

WebDAV (mount {url}/dav/ as a network drive, or):
  curl -u {user}:{password} {url}/dav/photos/2024/a.jpg
"
    )
}
