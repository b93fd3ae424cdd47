//! The `portico` gateway: configuration, start-up, the HTTP front door and its routing.
//! It wires `portico-s3api` and `portico-dav` onto one `portico-drive`; it holds no SQL,
//! no file I/O and no protocol XML of its own.

// The request futures nest deep enough (hyper → s3s/dav → drive → catalog) that computing
// their layout passes the default limit of 128.
#![recursion_limit = "256"]

pub mod config;
pub mod maintenance;
pub mod server;
pub mod setup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use server::{App, route};

/// A running gateway (for tests and embedding): its address and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Serves a drive on an already bound listener (over TLS when `tls` is set).
pub fn start(
    drive: portico_drive::Drive,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    grace: Duration,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Arc::new(App::new(drive, None, "us-east-1".into()).map_err(std::io::Error::other)?);
    let task = tokio::spawn(server::serve(
        app,
        listener,
        tls,
        async move {
            let _ = stopped.await;
        },
        grace,
    ));
    Ok(Running {
        addr,
        stop: Some(stop),
        task,
    })
}
