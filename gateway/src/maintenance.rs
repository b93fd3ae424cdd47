//! Background upkeep while the server runs: abandoned multipart uploads are aborted after
//! their expiry, blobs nothing references any more are removed, expired WebDAV locks are
//! swept. Every step is
//! idempotent, so several gateways on one catalog may run it at once.

use std::time::Duration;

use portico_drive::Drive;

/// What the maintenance job does and how often.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub every: Duration,
    pub multipart_expiry: Duration,
}

/// Runs one round: returns (uploads aborted, blobs collected).
pub async fn run_once(drive: &Drive, schedule: Schedule) -> portico_drive::Result<(u64, u64)> {
    // Expired WebDAV locks are ignored already; this only keeps the table small.
    drive.sweep_locks().await?;
    let expired = drive.expire_uploads(schedule.multipart_expiry).await?;
    let collected = drive.collect_garbage().await?;
    Ok((expired, collected))
}

/// Runs rounds forever (the task is dropped at shutdown); the first after one period.
pub async fn run(drive: Drive, schedule: Schedule) {
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + schedule.every, schedule.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match run_once(&drive, schedule).await {
            Ok((0, 0)) => tracing::debug!("maintenance: nothing to do"),
            Ok((expired, collected)) => tracing::info!(
                expired,
                collected,
                "maintenance: expired uploads aborted, blobs collected"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "maintenance round failed; retrying next round")
            }
        }
    }
}
