//! `portico-transcoder`: the media sidecar. It connects to the same catalog and volume as
//! the gateway and waits for media jobs (probe, thumbnails, HLS renditions), which it runs
//! with ffmpeg outside the gateway's process.
//!
//! Today it starts, connects, checks that ffmpeg is there, and keeps watching the catalog;
//! the media job handlers arrive with the media issue. It never serves HTTP.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use portico_drive::{ConnectOptions, Drive, DriveConfig, ServerKey};

#[derive(Parser)]
#[command(
    name = "portico-transcoder",
    version,
    about = "Portico's media sidecar"
)]
struct Cli {
    /// Data directory shared with the gateway.
    #[arg(long, env = "PORTICO_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Catalog URL; default SQLite in the data directory.
    #[arg(long, env = "PORTICO_DATABASE_URL")]
    database_url: Option<String>,
    /// Blob volume; default data_dir/volume.
    #[arg(long, env = "PORTICO_VOLUME_DIR")]
    volume_dir: Option<PathBuf>,
    /// The ffmpeg binary to run.
    #[arg(long, env = "PORTICO_FFMPEG", default_value = "ffmpeg")]
    ffmpeg: String,
    /// Seconds between checks of the catalog.
    #[arg(long, default_value_t = 5)]
    poll_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let database_url = cli
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", cli.data_dir.join("catalog.db").display()));
    let volume_dir = cli
        .volume_dir
        .clone()
        .unwrap_or_else(|| cli.data_dir.join("volume"));
    let ffmpeg = std::process::Command::new(&cli.ffmpeg)
        .arg("-version")
        .output();
    match ffmpeg {
        Ok(output) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout);
            tracing::info!(
                version = version.lines().next().unwrap_or_default(),
                "found ffmpeg"
            );
        }
        _ => anyhow::bail!(
            "ffmpeg not found or not working ({}): install it or pass --ffmpeg",
            cli.ffmpeg
        ),
    }
    // The transcoder never opens sealed S3 secrets, so it needs no server key of its own.
    let drive = Drive::connect(
        &database_url,
        &ConnectOptions::default(),
        &volume_dir,
        ServerKey::generate(),
        DriveConfig::default(),
    )
    .await
    .with_context(|| {
        format!(
            "connecting to {}",
            portico_drive::redact_database_url(&database_url)
        )
    })?;
    tracing::info!(backend = ?drive.backend(), "connected; waiting for media jobs");

    let mut ticker = tokio::time::interval(Duration::from_secs(cli.poll_secs.max(1)));
    let mut healthy = true;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                match drive.ready().await {
                    Ok(()) if !healthy => { tracing::info!("catalog reachable again"); healthy = true; }
                    Ok(()) => {}
                    Err(err) => { tracing::warn!(error = %err, "catalog unreachable; retrying"); healthy = false; }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("stopping");
    drive.close().await;
    Ok(())
}
