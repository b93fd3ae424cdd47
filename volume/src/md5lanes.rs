//! MD5 of many uploads at once, several streams per core.
//!
//! MD5 is serial within one stream: every 64-byte block needs the state the previous one
//! left, so one stream runs at what one core's dependency chain allows (~630–700 MB/s here).
//! Independent streams are not: the same step of sixteen streams is one instruction on
//! sixteen lanes of a vector. Concurrent uploads — 16 at once in our benchmark, rclone's
//! four transfers, the ten parts aws-cli sends of one large file — queue their chunks
//! here; a few worker threads (one per core) take up to [`MAX_STREAMS`] ready streams at a
//! time and advance them together with `md5-many`'s multi-buffer compressor, which picks
//! AVX-512, AVX2 or SSE at run time (its feature detection and vector code are the
//! `unsafe` this workspace does not write itself). A stream alone goes through its
//! single-stream compressor. A pass over sixteen lanes costs what a pass over two does, so
//! a worker that finds fewer streams ready than are open waits up to [`GATHER`] for more
//! (never for a stream whose upload is blocked on its full queue, or that has finished).
//!
//! Each stream's chunks are hashed in order, by one worker at a time; a chunk's bytes that
//! do not fill a block wait in the stream's state for the next chunk. An upload's queue is
//! bounded (its permits), so a slow hasher slows the upload instead of holding its body.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use bytes::Bytes;
use md5_many::{Md5Many, Md5State};
use tokio::sync::{Semaphore, oneshot};

use crate::writer::QUEUE_DEPTH;

/// Streams one worker advances together. Fewer ready streams are padded to this many
/// with copies of the last one (results discarded): `md5-many` runs full groups of
/// sixteen lanes fastest, and ran groups of five to seven streams of unequal chunks
/// unpadded at 0.15–0.2 GB/s. Per core here (`lanes_speed` below), MB/s: 1 stream 633,
/// 2 padded 924, 4 1,808, 8 3,443, 12 4,948, 16 6,286 — against 560 and ~2,000 (8 SSE2
/// lanes) for the compressors used before.
const MAX_STREAMS: usize = 16;

/// How long a worker waits for more streams to queue a chunk when fewer than
/// [`MAX_STREAMS`] are ready and others are open (see [`Pool::lanes_filled`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// MD5 of one stream, computed by the shared workers. Dropped before [`Md5Stream::finish`]
/// (an aborted upload), it is forgotten with whatever it had queued.
pub(crate) struct Md5Stream {
    id: u64,
    permits: Arc<Semaphore>,
    lanes: &'static Lanes,
    finished: bool,
}

impl Md5Stream {
    pub(crate) fn new() -> Self {
        let lanes = Lanes::get();
        let permits = Arc::new(Semaphore::new(QUEUE_DEPTH));
        let mut pool = lanes.lock();
        let id = pool.next_id;
        pool.next_id += 1;
        pool.streams.insert(id, Stream::new(permits.clone()));
        Self {
            id,
            permits,
            lanes,
            finished: false,
        }
    }

    /// Queues `chunk`, after the chunks before it; waits while the stream has
    /// [`QUEUE_DEPTH`] chunks queued, as the writer's disk queue.
    pub(crate) async fn update(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        // The semaphore is never closed.
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
        let mut pool = self.lanes.lock();
        let Some(stream) = pool.streams.get_mut(&self.id) else {
            return;
        };
        if stream.failed {
            // `finish` reports it; the chunk is not needed.
            stream.permits.add_permits(1);
            return;
        }
        stream.queue.push_back(chunk);
        let queued = stream.queue.len();
        if !stream.busy && queued == 1 {
            pool.ready.push_back(self.id);
            drop(pool);
            self.lanes.work.notify_all();
        } else if queued >= QUEUE_DEPTH {
            // A worker gathering streams stops waiting for this one's upload.
            drop(pool);
            self.lanes.work.notify_all();
        }
    }

    /// The digest of everything queued, once the workers have hashed it.
    pub(crate) async fn finish(mut self) -> std::io::Result<[u8; 16]> {
        self.finished = true;
        let (sender, receiver) = oneshot::channel();
        {
            let mut pool = self.lanes.lock();
            let Some(stream) = pool.streams.get_mut(&self.id) else {
                unreachable!("a stream is only removed when finished or dropped");
            };
            if stream.failed {
                pool.streams.remove(&self.id);
                return Err(worker_failed());
            }
            if stream.busy || !stream.queue.is_empty() {
                stream.done = Some(sender);
                self.lanes.work.notify_all();
            } else {
                let stream = pool.streams.remove(&self.id).expect("present");
                return Ok(stream.digest());
            }
        }
        // The worker that hashes the last chunk sends the digest, or drops the sender if
        // it failed.
        receiver.await.map_err(|_| worker_failed())
    }
}

impl Drop for Md5Stream {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut pool = self.lanes.lock();
        match pool.streams.get_mut(&self.id) {
            // The worker holding it removes it when it hands it back.
            Some(stream) if stream.busy => stream.abandoned = true,
            // A stale id left in `ready` is skipped by the workers.
            _ => {
                pool.streams.remove(&self.id);
            }
        }
    }
}

fn worker_failed() -> std::io::Error {
    std::io::Error::other("computing the body's MD5 failed")
}

struct Stream {
    /// What is hashed so far, and the bytes that did not fill a block yet.
    state: Md5State,
    queue: VecDeque<Bytes>,
    /// A worker holds the stream (its state is being advanced). A stream is in the pool's
    /// `ready` queue exactly when it is not busy and has chunks queued.
    busy: bool,
    /// Dropped by its upload while busy: removed when the worker hands it back.
    abandoned: bool,
    /// A worker panicked while hashing it (a defect): `finish` fails instead of waiting
    /// forever, and nothing more is hashed.
    failed: bool,
    /// Finish was asked for: the digest goes here once the queue is hashed.
    done: Option<oneshot::Sender<[u8; 16]>>,
    permits: Arc<Semaphore>,
}

impl Stream {
    fn new(permits: Arc<Semaphore>) -> Self {
        Self {
            state: Md5State::new(),
            queue: VecDeque::new(),
            busy: false,
            abandoned: false,
            failed: false,
            done: None,
            permits,
        }
    }

    fn digest(self) -> [u8; 16] {
        self.state.finalize()
    }
}

#[derive(Default)]
struct Pool {
    streams: HashMap<u64, Stream>,
    ready: VecDeque<u64>,
    next_id: u64,
}

impl Pool {
    /// The ready streams are to be hashed now rather than joined by more: they fill the
    /// lanes, every stream a worker does not hold is among them, or one of them cannot
    /// wait — its upload is blocked on a full queue, or has finished sending.
    fn lanes_filled(&self) -> bool {
        let mut ready = 0;
        for id in &self.ready {
            if let Some(stream) = self.streams.get(id) {
                if stream.queue.len() >= QUEUE_DEPTH || stream.done.is_some() {
                    return true;
                }
                ready += 1;
            }
        }
        ready >= MAX_STREAMS || ready >= self.streams.values().filter(|s| !s.busy).count()
    }
}

struct Lanes {
    pool: Mutex<Pool>,
    work: Condvar,
    /// The compressor this CPU runs best, detected once.
    engine: Md5Many,
}

/// One chunk of one stream, out of the pool while a worker hashes it.
struct Job {
    id: u64,
    state: Md5State,
    chunk: Bytes,
}

impl Lanes {
    fn get() -> &'static Lanes {
        static LANES: OnceLock<&'static Lanes> = OnceLock::new();
        LANES.get_or_init(|| {
            let lanes: &'static Lanes = Box::leak(Box::new(Lanes {
                pool: Mutex::new(Pool::default()),
                work: Condvar::new(),
                engine: Md5Many::new(),
            }));
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            for _ in 0..workers {
                std::thread::Builder::new()
                    .name("md5-lanes".into())
                    .spawn(move || lanes.run())
                    .expect("cannot start an MD5 thread");
            }
            lanes
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        // No code panics while holding the lock; a poisoned pool is still consistent.
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run(&self) {
        let mut pool = self.lock();
        loop {
            if pool.ready.is_empty() {
                pool = self.work.wait(pool).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            if !pool.lanes_filled() {
                // Other uploads are likely to queue a chunk within moments: one pass over
                // sixteen lanes costs what a pass over two does.
                let deadline = std::time::Instant::now() + GATHER;
                while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                    pool = self
                        .work
                        .wait_timeout(pool, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    if pool.ready.is_empty() || pool.lanes_filled() {
                        break;
                    }
                }
                if pool.ready.is_empty() {
                    // Another worker took them.
                    continue;
                }
            }
            let mut jobs = Vec::with_capacity(MAX_STREAMS);
            while jobs.len() < MAX_STREAMS {
                let Some(id) = pool.ready.pop_front() else {
                    break;
                };
                let Some(stream) = pool.streams.get_mut(&id) else {
                    continue;
                };
                let Some(chunk) = stream.queue.pop_front() else {
                    continue;
                };
                stream.busy = true;
                jobs.push(Job {
                    id,
                    state: stream.state,
                    chunk,
                });
            }
            if jobs.is_empty() {
                continue;
            }
            if !pool.ready.is_empty() {
                self.work.notify_one();
            }
            drop(pool);
            let hashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                hash(self.engine, &mut jobs)
            }))
            .is_ok();
            if !hashed {
                tracing::error!("an MD5 worker panicked; the uploads it held fail");
            }
            pool = self.lock();
            for job in jobs {
                let Some(stream) = pool.streams.get_mut(&job.id) else {
                    continue;
                };
                stream.state = job.state;
                stream.busy = false;
                stream.permits.add_permits(1);
                if !hashed {
                    stream.failed = true;
                    stream.queue.clear();
                    // Dropping the sender fails a waiting `finish`.
                    stream.done = None;
                }
                if stream.abandoned {
                    pool.streams.remove(&job.id);
                } else if !stream.queue.is_empty() {
                    pool.ready.push_back(job.id);
                } else if stream.done.is_some() {
                    let mut stream = pool.streams.remove(&job.id).expect("present");
                    let done = stream.done.take().expect("checked");
                    // The upload may have gone meanwhile; nobody is then waiting.
                    let _ = done.send(stream.digest());
                }
            }
        }
    }
}

/// Advances every job (at most [`MAX_STREAMS`]) over its chunk.
fn hash(engine: Md5Many, jobs: &mut [Job]) {
    match jobs {
        [] => {}
        [job] => job.state.update(&job.chunk),
        _ => {
            let last = jobs.len() - 1;
            let mut states: [Md5State; MAX_STREAMS] =
                std::array::from_fn(|lane| jobs[lane.min(last)].state);
            let inputs: [&[u8]; MAX_STREAMS] =
                std::array::from_fn(|lane| &jobs[lane.min(last)].chunk[..]);
            engine.update_many(&mut states, &inputs);
            for (job, state) in jobs.iter_mut().zip(states) {
                job.state = state;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use md5::{Digest, Md5};

    use super::*;

    /// Bytes that differ between streams and along each one (xorshift).
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Streams fed to `hash` together in rounds, one chunk each per round, as a worker
    /// takes them: every stream count from 1 to [`MAX_STREAMS`], chunk sizes that split
    /// blocks anywhere, streams that run out while others go on (fewer lanes each round).
    #[test]
    fn jobs_side_by_side_give_every_stream_its_own_digest() {
        let engine = Md5Many::new();
        for streams in 1..=MAX_STREAMS {
            let lengths: Vec<usize> = (0..streams)
                .map(|s| {
                    [
                        0,
                        1,
                        55,
                        56,
                        63,
                        64,
                        65,
                        119,
                        120,
                        4096 * 3 + 17,
                        128,
                        127,
                        9_000,
                    ][s % 13]
                        + 300 * s
                })
                .collect();
            let data: Vec<Vec<u8>> = lengths
                .iter()
                .enumerate()
                .map(|(s, &len)| bytes(s as u64 + 100, len))
                .collect();
            let mut states = vec![Md5State::new(); streams];
            let mut offsets = vec![0usize; streams];
            let mut round = 0usize;
            while offsets.iter().zip(&lengths).any(|(at, len)| at < len) {
                let mut jobs = Vec::new();
                for s in 0..streams {
                    if offsets[s] >= lengths[s] {
                        continue;
                    }
                    // 1, 7, 64, 200, 1000, 3 bytes..., varying by stream and round.
                    let size = [1, 7, 64, 200, 1000, 3, 129, 4096][(s + round) % 8];
                    let end = (offsets[s] + size).min(lengths[s]);
                    let chunk = Bytes::copy_from_slice(&data[s][offsets[s]..end]);
                    offsets[s] = end;
                    jobs.push(Job {
                        id: s as u64,
                        state: states[s],
                        chunk,
                    });
                }
                hash(engine, &mut jobs);
                for job in jobs {
                    states[job.id as usize] = job.state;
                }
                round += 1;
            }
            for (s, state) in states.into_iter().enumerate() {
                let expected: [u8; 16] = Md5::digest(&data[s]).into();
                assert_eq!(state.finalize(), expected, "stream {s} of {streams}");
            }
        }
    }

    /// Through the shared workers, sixteen uploads at once with odd chunk sizes, while
    /// others are dropped half-way: each finished one gets the digest of its own bytes, and
    /// no dropped one stays in the pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_streams_get_their_digests_and_dropped_ones_are_forgotten() {
        let mut tasks = Vec::new();
        for s in 0..16u64 {
            tasks.push(tokio::spawn(async move {
                let data = bytes(s + 1000, (1 << 20) + 4099 * s as usize);
                let stream = Md5Stream::new();
                let id = stream.id;
                let mut at = 0;
                let mut size = 1 + s as usize * 977;
                while at < data.len() {
                    let end = (at + size).min(data.len());
                    stream.update(Bytes::copy_from_slice(&data[at..end])).await;
                    at = end;
                    size = size * 7 % 70_001 + 1;
                    if s % 5 == 4 && at > data.len() / 2 {
                        drop(stream);
                        return Err(id);
                    }
                }
                let expected: [u8; 16] = Md5::digest(&data).into();
                assert_eq!(stream.finish().await.unwrap(), expected, "stream {s}");
                Ok(id)
            }));
        }
        let mut dropped = Vec::new();
        for task in tasks {
            if let Err(id) = task.await.unwrap() {
                dropped.push(id);
            }
        }
        assert_eq!(dropped.len(), 3);
        // A stream dropped while a worker held it goes when the worker hands it back.
        for _ in 0..1000 {
            let gone = {
                let pool = Lanes::get().lock();
                dropped.iter().all(|id| !pool.streams.contains_key(id))
            };
            if gone {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("dropped streams stayed in the pool");
    }

    /// One upload sends while three others stay open and send nothing: the workers wait
    /// for the idle ones a bounded time only, so the busy one's chunks — five times its
    /// queue's depth, each `update` waiting for room — are all hashed; then the idle ones
    /// send a chunk each and finish too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_goes_on_while_other_open_streams_send_nothing() {
        let idle: Vec<Md5Stream> = (0..3).map(|_| Md5Stream::new()).collect();
        let busy = Md5Stream::new();
        let data = bytes(7, QUEUE_DEPTH * 5 * 10_000);
        for chunk in data.chunks(10_000) {
            busy.update(Bytes::copy_from_slice(chunk)).await;
        }
        let expected: [u8; 16] = Md5::digest(&data).into();
        assert_eq!(busy.finish().await.unwrap(), expected);
        for (s, stream) in idle.into_iter().enumerate() {
            let data = bytes(s as u64 + 50, 70_000);
            stream.update(Bytes::copy_from_slice(&data)).await;
            let expected: [u8; 16] = Md5::digest(&data).into();
            assert_eq!(stream.finish().await.unwrap(), expected, "idle stream {s}");
        }
    }

    #[tokio::test]
    async fn an_empty_stream_has_the_digest_of_nothing() {
        let expected: [u8; 16] = Md5::digest(b"").into();
        assert_eq!(Md5Stream::new().finish().await.unwrap(), expected);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Not a check: prints what one worker hashes per second on this machine with 1 to
    /// [`MAX_STREAMS`] streams ready, 256 KiB chunks of slightly different lengths
    /// (`cargo test --release -p portico-volume lanes_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn lanes_speed() {
        let engine = Md5Many::new();
        let data = Bytes::from(vec![7u8; 64 << 20]);
        let chunk = 256 << 10;
        let mut line = format!("MB/s on one core ({} native lanes):", engine.lanes());
        for streams in [1, 2, 4, 8, 12, 16] {
            let mut states = vec![Md5State::new(); streams];
            let mut hashed = 0;
            let mut busy = std::time::Duration::ZERO;
            for round in 0..16 {
                let mut jobs: Vec<Job> = (0..streams)
                    .map(|s| {
                        let at = (round * streams + s) % 200 * chunk / 2;
                        let len = chunk - 65 * s;
                        hashed += len;
                        Job {
                            id: s as u64,
                            state: states[s],
                            chunk: data.slice(at..at + len),
                        }
                    })
                    .collect();
                let start = std::time::Instant::now();
                hash(engine, &mut jobs);
                busy += start.elapsed();
                for job in jobs {
                    states[job.id as usize] = job.state;
                }
            }
            let rate = hashed as f64 / busy.as_secs_f64() / 1e6;
            line.push_str(&format!(" {streams} streams {rate:.0},"));
        }
        println!("{line}");
    }
}
