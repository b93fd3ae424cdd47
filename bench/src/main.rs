//! `portico-bench`: one workload against one S3 or WebDAV endpoint, one JSON line out.
//!
//! ```text
//! portico-bench --s3 http://127.0.0.1:9000 --bucket bench --access-key K --secret-key S \
//!     --workload put --prefix small --size 4096 --count 2000 --concurrency 16 --server-pid 1234
//! portico-bench --dav http://127.0.0.1:8080/dav/ --user admin --password P --workload list ...
//! ```
//!
//! Workloads: `prepare` (bucket / folders), `put`, `get` (every byte checked by BLAKE3),
//! `multipart` (S3), `list` (ListObjectsV2 pages or PROPFIND Depth 1 of `prefix/`),
//! `tree` (MKCOL and PUT down a deep path), `mixed` (70 % GET, 20 % PUT, 10 % stat).
//! With `--server-pid`, the line carries the server's CPU seconds and peak RSS during the
//! workload. It runs on one thread, so it takes at most one core from the server.

mod content;
mod procstat;
mod sigv4;
mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use base64::Engine as _;
use clap::Parser;
use futures::StreamExt;

use content::seed_of;
use target::{Protocol, Target};

#[derive(Parser)]
#[command(
    name = "portico-bench",
    about = "One benchmark workload against one endpoint"
)]
struct Args {
    /// S3 endpoint (path style), e.g. http://127.0.0.1:9000
    #[arg(long, conflicts_with = "dav")]
    s3: Option<String>,
    /// WebDAV collection URL, e.g. http://127.0.0.1:8080/dav/
    #[arg(long)]
    dav: Option<String>,
    #[arg(long, default_value = "bench")]
    bucket: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "")]
    access_key: String,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long)]
    user: Option<String>,
    #[arg(long, env = "BENCH_DAV_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[arg(long)]
    workload: String,
    /// Folder (WebDAV) or key prefix (S3) the workload works in.
    #[arg(long, default_value = "bench")]
    prefix: String,
    #[arg(long, default_value_t = 4096)]
    size: u64,
    #[arg(long, default_value_t = 100)]
    count: u64,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 8 << 20)]
    part_size: u64,
    /// `mixed`: how many objects an earlier `put` with the same prefix and size made.
    #[arg(long)]
    existing: Option<u64>,
    /// Folder depth of `tree`.
    #[arg(long, default_value_t = 10)]
    depth: u64,
    /// Server processes to measure (children included); repeatable.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// `materialize`: the directory to write the objects into as files (for a static
    /// server such as nginx to serve the same bytes).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Free text copied into the output (target name, round, …).
    #[arg(long, default_value = "")]
    label: String,
}

/// What one workload run measured.
#[derive(Default)]
struct Outcome {
    ops: u64,
    bytes: u64,
    /// Entries listed (list workloads).
    entries: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Outcome {
    fn record(&mut self, result: Result<(u64, u64)>, took: Duration) {
        self.ops += 1;
        self.latencies.push(took);
        match result {
            Ok((bytes, entries)) => {
                self.bytes += bytes;
                self.entries += entries;
            }
            Err(err) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{err:#}"));
                }
            }
        }
    }
}

fn key(prefix: &str, index: u64) -> String {
    format!("{prefix}/o{index:07}")
}

/// Runs `count` operations `concurrency` at a time, timing each.
async fn run_ops<F, Fut>(count: u64, concurrency: usize, op: F) -> Outcome
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(u64, u64)>>,
{
    let results: Vec<(Result<(u64, u64)>, Duration)> = futures::stream::iter(0..count)
        .map(|index| {
            let started = Instant::now();
            let fut = op(index);
            async move { (fut.await, started.elapsed()) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut outcome = Outcome::default();
    for (result, took) in results {
        outcome.record(result, took);
    }
    outcome
}

/// A small, fast, deterministic generator for the mixed workload's choices.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn workload(args: &Args, target: Arc<Target>) -> Result<Outcome> {
    let prefix = args.prefix.trim_matches('/').to_owned();
    let size = args.size;
    Ok(match args.workload.as_str() {
        "prepare" => {
            let started = Instant::now();
            let result = target.prepare(&prefix).await.map(|()| (0, 0));
            let mut outcome = Outcome::default();
            outcome.record(result, started.elapsed());
            outcome
        }
        "materialize" => {
            let Some(dir) = &args.dir else {
                bail!("materialize needs --dir");
            };
            let mut outcome = Outcome::default();
            for i in 0..args.count {
                let name = key(&prefix, i);
                let path = dir.join(&name);
                let started = Instant::now();
                let result = (|| -> Result<(u64, u64)> {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
                    for chunk in target.pattern.chunks(seed_of(&name), size) {
                        std::io::Write::write_all(&mut file, &chunk)?;
                    }
                    std::io::Write::flush(&mut file)?;
                    Ok((size, 0))
                })();
                outcome.record(result, started.elapsed());
            }
            outcome
        }
        "put" => {
            run_ops(args.count, args.concurrency, |i| {
                let target = target.clone();
                let key = key(&prefix, i);
                async move {
                    target.put(&key, seed_of(&key), size).await?;
                    Ok((size, 0))
                }
            })
            .await
        }
        "get" => {
            // Expected hashes first, outside the timing.
            let hashes: Vec<blake3::Hash> = (0..args.count)
                .map(|i| target.pattern.hash(seed_of(&key(&prefix, i)), size))
                .collect();
            let hashes = Arc::new(hashes);
            run_ops(args.count, args.concurrency, |i| {
                let target = target.clone();
                let hashes = hashes.clone();
                let key = key(&prefix, i);
                async move {
                    let read = target.get(&key, &hashes[i as usize]).await?;
                    Ok((read, 0))
                }
            })
            .await
        }
        "multipart" => {
            let key = format!("{prefix}/multipart");
            let seed = seed_of(&key);
            let started = Instant::now();
            let result = target
                .multipart_put(&key, seed, size, args.part_size, args.concurrency)
                .await;
            let took = started.elapsed();
            let mut outcome = Outcome::default();
            let checked = match result {
                Ok(()) => {
                    let expected = target.multipart_hash(seed, size, args.part_size);
                    target.get(&key, &expected).await.map(|_| (size, 0))
                }
                Err(err) => Err(err),
            };
            outcome.record(checked, took);
            outcome
        }
        "list" => {
            run_ops(args.count, 1, |_| {
                let target = target.clone();
                let prefix = prefix.clone();
                async move {
                    let entries = target.list(&prefix).await? as u64;
                    Ok((0, entries))
                }
            })
            .await
        }
        "tree" => {
            // `count` trees, each `depth` folders deep with one small file per level.
            let depth = args.depth;
            run_ops(args.count * depth * 2, args.concurrency, |op| {
                let target = target.clone();
                let prefix = prefix.clone();
                async move {
                    let tree = op / (depth * 2);
                    let level = (op % (depth * 2)) / 2;
                    let folder: String = (0..=level).map(|d| format!("/d{d}")).collect();
                    let folder = format!("{prefix}/t{tree}{folder}");
                    if op % 2 == 0 {
                        if !target.is_s3() {
                            if level == 0 {
                                target.mkcol(&format!("{prefix}/t{tree}/")).await?;
                            }
                            target.mkcol(&format!("{folder}/")).await?;
                        }
                        Ok((0, 0))
                    } else {
                        let file = format!("{folder}/file.bin");
                        target.put(&file, seed_of(&file), size).await?;
                        Ok((size, 0))
                    }
                }
            })
            .await
        }
        "mixed" => {
            // Over objects an earlier `put` with the same prefix and size made.
            let existing = args.existing.unwrap_or(args.count);
            let hashes: Arc<Vec<blake3::Hash>> = Arc::new(
                (0..existing)
                    .map(|i| target.pattern.hash(seed_of(&key(&prefix, i)), size))
                    .collect(),
            );
            let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
            let plan: Vec<(u64, u64)> = (0..args.count)
                .map(|_| (rng.next() % 100, rng.next() % existing.max(1)))
                .collect();
            let plan = Arc::new(plan);
            run_ops(args.count, args.concurrency, |op| {
                let target = target.clone();
                let hashes = hashes.clone();
                let plan = plan.clone();
                let prefix = prefix.clone();
                async move {
                    let (dice, pick) = plan[op as usize];
                    if dice < 70 {
                        let read = target
                            .get(&key(&prefix, pick), &hashes[pick as usize])
                            .await?;
                        Ok((read, 0))
                    } else if dice < 90 {
                        let name = format!("{prefix}/m{op:07}");
                        target.put(&name, seed_of(&name), size).await?;
                        Ok((size, 0))
                    } else {
                        target.stat(&key(&prefix, pick)).await?;
                        Ok((0, 0))
                    }
                }
            })
            .await
        }
        other => bail!("unknown workload {other:?}"),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let args = Args::parse();
    let target = match (&args.s3, &args.dav) {
        (Some(url), None) => Target::new(
            url,
            Protocol::S3 {
                bucket: args.bucket.clone(),
                credentials: sigv4::Credentials {
                    access_key: args.access_key.clone(),
                    secret_key: args.secret_key.clone(),
                    region: args.region.clone(),
                },
            },
        )?,
        (None, Some(url)) => {
            let authorization = args.user.as_ref().map(|user| {
                let pair = format!("{user}:{}", args.password.clone().unwrap_or_default());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            });
            Target::new(url, Protocol::Dav { authorization })?
        }
        _ => bail!("give --s3 URL or --dav URL"),
    };
    let target = Arc::new(target);
    let server = procstat::Server::new(args.server_pids.clone());
    // One thread: the client never takes more than one of the machine's cores.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpu_before = server.cpu_seconds();
    server.reset_peak();
    let started = Instant::now();
    let outcome = runtime.block_on(workload(&args, target.clone()))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    let peak = server.peak_rss();
    let mut latencies = outcome.latencies.clone();
    latencies.sort();
    let line = serde_json::json!({
        "workload": args.workload,
        "protocol": if target.is_s3() { "s3" } else { "webdav" },
        "label": args.label,
        "size": args.size,
        "count": args.count,
        "concurrency": args.concurrency,
        "ops": outcome.ops,
        "errors": outcome.errors,
        "seconds": seconds,
        "ops_per_s": outcome.ops as f64 / seconds,
        "mib_per_s": outcome.bytes as f64 / seconds / (1 << 20) as f64,
        "entries": outcome.entries,
        "us_per_entry": if outcome.entries > 0 { seconds * 1e6 / outcome.entries as f64 } else { 0.0 },
        "p50_ms": percentile(&latencies, 0.5),
        "p99_ms": percentile(&latencies, 0.99),
        "server_cpu_s": if server.is_empty() { serde_json::Value::Null } else { cpu.into() },
        "server_peak_rss_mb": if server.is_empty() { serde_json::Value::Null } else { (peak as f64 / (1 << 20) as f64).into() },
        "first_error": outcome.first_error,
    });
    println!("{line}");
    Ok(())
}
