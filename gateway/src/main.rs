//! `portico`: the command line. Run `portico serve` for the server; the other commands
//! administer the same catalog and work while a server runs.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use portico_drive::NewAccountRequest;
use portico_gateway::config::Settings;
use portico_gateway::setup;

#[derive(Parser)]
#[command(
    name = "portico",
    version,
    about = "A storage gateway: one drive over WebDAV and S3"
)]
struct Cli {
    /// TOML configuration file (see config/portico.example.toml).
    #[arg(long, global = true, env = "PORTICO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: SQLite catalog, blob volume, server key [env: PORTICO_DATA_DIR].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Catalog URL: sqlite://PATH or postgres://… [env: PORTICO_DATABASE_URL].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (WebDAV at /dav/, S3 everywhere else).
    Serve {
        /// Address to listen on [env: PORTICO_LISTEN].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// PEM certificate chain: serve HTTPS [env: PORTICO_TLS_CERT].
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert [env: PORTICO_TLS_KEY].
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage S3 access keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check that the catalog and the blob volume agree.
    Fsck {
        /// Remove what is safe to remove: old orphaned blobs and temp files, unreferenced blobs.
        #[arg(long)]
        repair: bool,
    },
    /// Print the effective configuration, secrets redacted.
    Config,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; prints a generated password unless --password-stdin.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        admin: bool,
        /// Storage quota in bytes (current + old versions + trash).
        #[arg(long, value_name = "BYTES")]
        quota: Option<u64>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Set a new password (generated and printed unless --password-stdin).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: its passwords and keys stop working.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
    /// Set or clear (no value) an account's quota in bytes.
    Quota { name: String, bytes: Option<u64> },
    /// Create an app password: a token to use instead of the password (WebDAV Basic
    /// auth, or Bearer), revocable alone. Shown only now.
    AppPassword {
        name: String,
        /// What it is for ("laptop drive", "phone").
        #[arg(long, default_value = "app password")]
        label: String,
    },
    /// List an account's app passwords.
    AppPasswords { name: String },
    /// Revoke one app password (by the id `app-passwords` shows).
    RevokeAppPassword { name: String, id: i64 },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an access key for an account; the secret is shown only now.
    Create {
        user: String,
        #[arg(long)]
        description: Option<String>,
        /// Print {"access_key_id":…,"secret_access_key":…}.
        #[arg(long)]
        json: bool,
    },
    /// List access keys (of one account, or all).
    List { user: Option<String> },
    /// Revoke an access key.
    Revoke { access_key_id: String },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Tasks woken from other threads (SQLite connection threads, blocking I/O) wait in
        // the shared queue; the self-tuned default looks there about every 200 µs under
        // load, and one of them may hold the catalog's write lock. See ARCHITECTURE.md.
        .global_queue_interval(4)
        .on_thread_start(yield_to_the_catalog)
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How much lower than the process the request threads run (nice steps).
const REQUEST_THREADS_NICER_BY: i32 = 5;

/// Runs on every thread of the request runtime as it starts: lowers its priority below the
/// threads that carry the catalog's writes (SQLite's write connection thread and the
/// catalog's writer thread, started from the main thread before any request runs, keep the
/// process's priority; threads started later by request threads inherit theirs). SQLite
/// takes one write at a time, so each write's wait for a core is added to every write
/// queued behind it; with the request threads busy on both cores, that wait set the
/// small-PUT rate (+24 % measured together with the writer thread, bench/RESULTS.md).
/// Request threads lose nothing they need: they wait on the catalog anyway. Best effort: a
/// failure leaves the priority as it was.
fn yield_to_the_catalog() {
    if let Ok(nice) = rustix::process::getpriority_process(None) {
        let _ =
            rustix::process::setpriority_process(None, (nice + REQUEST_THREADS_NICER_BY).min(19));
    }
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    if let Some(dir) = &cli.data_dir {
        flags.push(("data_dir", dir.display().to_string()));
    }
    if let Some(url) = &cli.database_url {
        flags.push(("database_url", url.clone()));
    }
    if let Command::Serve {
        listen,
        tls_cert,
        tls_key,
    } = &cli.command
    {
        if let Some(listen) = listen {
            flags.push(("listen", listen.clone()));
        }
        if let Some(cert) = tls_cert {
            flags.push(("tls_cert", cert.display().to_string()));
        }
        if let Some(key) = tls_key {
            flags.push(("tls_key", key.display().to_string()));
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    Ok(Settings::load(cli.config.as_deref(), &env, &flags)?)
}

fn init_logging(settings: &Settings, serving: bool) {
    let mut default = if serving {
        settings.server.log_level.clone()
    } else {
        "warn".into()
    };
    // s3s logs every refused request (a 404 HEAD, an expired URL) at ERROR; our own request
    // log already carries the status, and internal errors are logged by the S3 handlers.
    if matches!(default.as_str(), "error" | "warn" | "info") {
        default.push_str(",s3s::ops=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.server.log_format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    let password = text.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let settings = load_settings(&cli)?;
    init_logging(&settings, matches!(cli.command, Command::Serve { .. }));
    if let Command::Config = cli.command {
        print!("{}", settings.redacted_toml());
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let drive = setup::open_drive(&settings).await?;
    let code = match cli.command {
        Command::Serve { .. } => serve(&settings, drive.clone()).await?,
        Command::User { command } => user(&drive, command).await?,
        Command::Key { command } => key(&drive, command).await?,
        Command::Fsck { repair } => fsck(&drive, repair).await?,
        Command::Config => unreachable!("handled above"),
    };
    drive.close().await;
    Ok(code)
}

async fn serve(
    settings: &Settings,
    drive: portico_drive::Drive,
) -> anyhow::Result<std::process::ExitCode> {
    let first = setup::first_start(&drive).await?;
    let addr = settings.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let tls = match settings.tls_files() {
        Some((cert, key)) => {
            Some(portico_gateway::server::tls_acceptor(&cert, &key).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = if settings.server.public_url.is_empty() {
        format!("{scheme}://{bound}")
    } else {
        settings.server.public_url.trim_end_matches('/').to_owned()
    };
    tracing::info!(%url, backend = ?drive.backend(), "Portico is listening");
    println!("Portico is listening on {url} (WebDAV: {url}/dav/, S3: {url})");
    if let Some(first) = &first {
        println!(
            "{}",
            setup::first_start_message(first, &url, &settings.auth.s3_region)
        );
    }
    let drive_for_maintenance = drive.clone();
    let domain = Some(settings.server.s3_domain.clone()).filter(|d| !d.is_empty());
    let app = std::sync::Arc::new(
        portico_gateway::App::new(drive, domain, settings.auth.s3_region.clone())
            .map_err(anyhow::Error::msg)?,
    );
    let schedule = portico_gateway::maintenance::Schedule {
        every: Duration::from_secs(settings.storage.maintenance_interval_secs),
        multipart_expiry: Duration::from_secs(settings.storage.multipart_expiry_hours * 3600),
    };
    let maintenance = tokio::spawn(portico_gateway::maintenance::run(
        drive_for_maintenance,
        schedule,
    ));
    let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
    portico_gateway::server::serve(app, listener, tls, shutdown_signal(), grace).await?;
    maintenance.abort();
    Ok(std::process::ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn user(
    drive: &portico_drive::Drive,
    command: UserCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        UserCommand::Add {
            name,
            email,
            admin,
            quota,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let request = NewAccountRequest {
                name: name.clone(),
                email,
                password,
                is_admin: admin,
                quota_bytes: quota,
            };
            let (account, generated) =
                drive
                    .create_account(request)
                    .await
                    .map_err(|err| match err {
                        portico_drive::Error::AlreadyExists => {
                            anyhow::anyhow!("an account named {name:?} already exists")
                        }
                        other => other.into(),
                    })?;
            println!("created account {}", account.name);
            if let Some(password) = generated {
                println!("password: {password}");
            }
        }
        UserCommand::List => {
            println!(
                "{:<24} {:<6} {:<9} {:>12} {:>12}  S3 OWNER ID",
                "NAME", "ADMIN", "STATUS", "USED", "QUOTA"
            );
            for account in drive.list_accounts().await? {
                let quota = account
                    .usage
                    .quota_bytes
                    .map_or_else(|| "-".into(), format_bytes);
                println!(
                    "{:<24} {:<6} {:<9} {:>12} {:>12}  {}",
                    account.name,
                    if account.is_admin { "yes" } else { "no" },
                    if account.disabled {
                        "disabled"
                    } else {
                        "active"
                    },
                    format_bytes(account.usage.used_bytes),
                    quota,
                    account.owner_id
                );
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            if let Some(generated) = drive
                .set_password(&name, password)
                .await
                .map_err(not_found("account", &name))?
            {
                println!("password: {generated}");
            } else {
                println!("password changed for {name}");
            }
        }
        UserCommand::Disable { name } => {
            drive
                .set_disabled(&name, true)
                .await
                .map_err(not_found("account", &name))?;
            println!("disabled {name}");
        }
        UserCommand::Enable { name } => {
            drive
                .set_disabled(&name, false)
                .await
                .map_err(not_found("account", &name))?;
            println!("enabled {name}");
        }
        UserCommand::Quota { name, bytes } => {
            drive
                .set_quota(&name, bytes)
                .await
                .map_err(not_found("account", &name))?;
            match bytes {
                Some(bytes) => println!("quota of {name}: {}", format_bytes(bytes)),
                None => println!("quota of {name}: unlimited"),
            }
        }
        UserCommand::AppPassword { name, label } => {
            let created = drive
                .create_app_password(&name, &label)
                .await
                .map_err(not_found("account", &name))?;
            println!(
                "app password {} for {name} ({label}); shown only now:",
                created.id
            );
            println!("password: {}", created.password);
        }
        UserCommand::AppPasswords { name } => {
            println!("{:>6}  {:<20}  LABEL", "ID", "CREATED");
            for password in drive
                .list_app_passwords(&name)
                .await
                .map_err(not_found("account", &name))?
            {
                println!(
                    "{:>6}  {:<20}  {}",
                    password.id,
                    time::OffsetDateTime::from_unix_timestamp(password.created.whole_seconds())
                        .ok()
                        .and_then(|t| t
                            .format(&time::format_description::well_known::Rfc3339)
                            .ok())
                        .unwrap_or_default(),
                    password.label
                );
            }
        }
        UserCommand::RevokeAppPassword { name, id } => {
            drive
                .revoke_app_password(&name, id)
                .await
                .map_err(not_found("app password", &id.to_string()))?;
            println!("app password {id} of {name} revoked");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn not_found<'a>(
    what: &'a str,
    name: &'a str,
) -> impl Fn(portico_drive::Error) -> anyhow::Error + 'a {
    move |err| match err {
        portico_drive::Error::NotFound(_) => anyhow::anyhow!("no {what} named {name:?}"),
        other => other.into(),
    }
}

async fn key(
    drive: &portico_drive::Drive,
    command: KeyCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        KeyCommand::Create {
            user,
            description,
            json,
        } => {
            let key = drive
                .create_access_key(&user, description)
                .await
                .map_err(not_found("account", &user))?;
            if json {
                let value = serde_json::json!({
                    "access_key_id": key.access_key_id,
                    "secret_access_key": key.secret_access_key,
                });
                println!("{value}");
            } else {
                println!("access key id:     {}", key.access_key_id);
                println!("secret access key: {}", key.secret_access_key);
            }
        }
        KeyCommand::List { user } => {
            let keys = drive
                .list_access_keys(user.as_deref())
                .await
                .map_err(|err| match (&user, err) {
                    (Some(user), portico_drive::Error::NotFound(_)) => {
                        anyhow::anyhow!("no account named {user:?}")
                    }
                    (_, other) => other.into(),
                })?;
            println!(
                "{:<22} {:<24} {:<8} DESCRIPTION",
                "ACCESS KEY ID", "ACCOUNT", "STATUS"
            );
            for key in keys {
                println!(
                    "{:<22} {:<24} {:<8} {}",
                    key.access_key_id,
                    key.account,
                    if key.revoked { "revoked" } else { "active" },
                    key.description.unwrap_or_default()
                );
            }
        }
        KeyCommand::Revoke { access_key_id } => {
            drive
                .revoke_access_key(&access_key_id)
                .await
                .map_err(not_found("access key", &access_key_id))?;
            println!("revoked {access_key_id}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn fsck(
    drive: &portico_drive::Drive,
    repair: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let report = drive.fsck(repair).await?;
    println!(
        "blobs in catalog:   {} ({} inline)",
        report.blobs_in_catalog, report.inline_blobs
    );
    println!("blob files on disk: {}", report.blob_files);
    println!("missing blobs:      {}", report.missing.len());
    for (locator, keys) in &report.missing {
        println!("  {locator} (used by: {})", keys.join(", "));
    }
    println!(
        "orphaned files:     {} (+{} younger than an hour, left alone)",
        report.orphans.len(),
        report.young_orphans
    );
    println!("temp files:         {}", report.temp_files);
    if repair {
        println!(
            "repaired:           {} orphans and {} temp files removed, {} unreferenced blobs collected, {} reference counts fixed",
            report.orphans_removed,
            report.temps_removed,
            report.garbage_collected,
            report.refcounts_fixed
        );
    }
    Ok(if report.is_healthy() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    })
}
