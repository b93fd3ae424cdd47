//! The harness: a fresh gateway per backend with two accounts, and clients for both.

use std::time::Duration;

use aws_sdk_s3::Client;
use portico_drive::{Drive, NewAccountRequest};
use portico_gateway::config::Settings;
use portico_metadata::BackendKind;

pub struct Account {
    pub name: String,
    pub password: String,
    pub s3: Client,
    pub access_key_id: String,
    pub secret: String,
}

pub struct Gateway {
    pub kind: BackendKind,
    pub url: String,
    pub drive: Drive,
    pub alice: Account,
    pub bob: Account,
    pub http: reqwest::Client,
    running: Option<portico_gateway::Running>,
    _data: tempfile::TempDir,
    _guard: Option<portico_metadata::testing::TempDirGuard>,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn s3_client(url: &str, access_key_id: &str, secret: &str) -> Client {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let credentials =
        aws_credential_types::Credentials::new(access_key_id, secret, None, None, "test");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(config)
}

async fn account(drive: &Drive, url: &str, name: &str) -> Account {
    let password = format!("{name}-secret-password");
    drive
        .create_account(NewAccountRequest {
            name: name.into(),
            password: Some(password.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let key = drive.create_access_key(name, None).await.unwrap();
    Account {
        name: name.into(),
        password,
        s3: s3_client(url, &key.access_key_id, &key.secret_access_key),
        access_key_id: key.access_key_id,
        secret: key.secret_access_key,
    }
}

impl Gateway {
    pub async fn start(kind: BackendKind) -> Self {
        install_crypto();
        let (database_url, guard) = portico_metadata::testing::fresh_database_url(kind).await;
        let data = tempfile::tempdir().unwrap();
        let env = |_: &str| None;
        let flags = [
            ("data_dir", data.path().display().to_string()),
            ("database_url", database_url),
        ];
        let settings = Settings::load(None, &env, &flags).unwrap();
        let drive = portico_gateway::setup::open_drive(&settings).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running =
            portico_gateway::start(drive.clone(), listener, None, Duration::from_secs(5)).unwrap();
        let url = format!("http://{}", running.addr);
        let alice = account(&drive, &url, "alice").await;
        let bob = account(&drive, &url, "bob").await;
        let http = reqwest::Client::builder().build().unwrap();
        Self {
            kind,
            url,
            drive,
            alice,
            bob,
            http,
            running: Some(running),
            _data: data,
            _guard: guard,
        }
    }

    /// One gateway per backend the run covers.
    pub async fn each() -> Vec<Self> {
        let mut out = Vec::new();
        for kind in portico_metadata::testing::backends() {
            let gateway = Self::start(kind).await;
            eprintln!("gateway on {:?} at {}", gateway.kind, gateway.url);
            out.push(gateway);
        }
        out
    }

    /// A WebDAV request as `account`.
    pub fn dav(&self, method: &str, path: &str, account: &Account) -> reqwest::RequestBuilder {
        self.http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.url),
            )
            .basic_auth(&account.name, Some(&account.password))
    }

    /// Takes the running server out, to stop it by hand.
    pub fn take_running(&mut self) -> portico_gateway::Running {
        self.running.take().expect("the gateway is running")
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
        self.drive.close().await;
    }
}

/// Extracts the text of every `<D:name>` element (namespace prefix as we write it).
pub fn xml_values(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<D:{name}>");
    let close = format!("</D:{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).unwrap();
        out.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    out
}
