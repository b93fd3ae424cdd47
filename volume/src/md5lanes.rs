//! MD5 of many uploads at once, several streams per core.
//!
//! MD5 is serial within one stream: every 64-byte block needs the state the previous one
//! left, so one stream runs at what one core's dependency chain allows (~580 MB/s here,
//! 70 % of a large PUT's CPU). Independent streams are not: the same step of eight streams
//! is the same instruction on eight lanes of a vector. Concurrent uploads — 16 at once in
//! our benchmark, rclone's four transfers, the ten parts aws-cli sends of one large file —
//! queue their chunks here; a few worker threads (one per core) take up to eight ready
//! streams at a time and run their blocks side by side through [`compress_lanes`], on
//! `wide`'s four-lane vectors, which are SSE2 instructions (the baseline of every x86-64
//! CPU: no unsafe code, no feature detection; plain loops over lanes were left scalar by
//! the compiler, 1.0 GB/s against 2.0). A stream alone goes through the scalar assembly
//! compressor instead, as fast as before.
//!
//! Each stream's chunks are hashed in order, by one worker at a time; a chunk's bytes that
//! do not fill a block wait in the stream's carry for the next chunk. An upload's queue is
//! bounded (its permits), so a slow hasher slows the upload instead of holding its body.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot};
use wide::u32x4;

use crate::writer::QUEUE_DEPTH;

const INITIAL: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Per-step additive constants (`floor(abs(sin(i + 1)) * 2^32)`).
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// One step on every vector: `a = b + rotl(a + f(b, c, d) + k + m, s)`.
macro_rules! step {
    ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr, $s:expr) => {
        for v in 0..V {
            let x = $a[v] + $f($b[v], $c[v], $d[v]) + u32x4::splat(K[$i]) + $m[v];
            $a[v] = $b[v] + ((x << $s) | (x >> (32 - $s)));
        }
    };
}

/// Four steps of one round: message words `w0..w3`, shifts `s0..s3`, steps from `i`.
macro_rules! four {
    ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident, $i:expr,
     [$w0:expr, $w1:expr, $w2:expr, $w3:expr], [$s0:expr, $s1:expr, $s2:expr, $s3:expr]) => {
        step!($f, $a, $b, $c, $d, $m[$w0], $i, $s0);
        step!($f, $d, $a, $b, $c, $m[$w1], $i + 1, $s1);
        step!($f, $c, $d, $a, $b, $m[$w2], $i + 2, $s2);
        step!($f, $b, $c, $d, $a, $m[$w3], $i + 3, $s3);
    };
}

#[inline(always)]
fn f(b: u32x4, c: u32x4, d: u32x4) -> u32x4 {
    d ^ (b & (c ^ d))
}
#[inline(always)]
fn g(b: u32x4, c: u32x4, d: u32x4) -> u32x4 {
    c ^ (d & (b ^ c))
}
#[inline(always)]
fn h(b: u32x4, c: u32x4, d: u32x4) -> u32x4 {
    b ^ c ^ d
}
#[inline(always)]
fn i(b: u32x4, c: u32x4, d: u32x4) -> u32x4 {
    c ^ (b | !d)
}

// Message words are read as little-endian vectors straight from the input.
const _: () = assert!(cfg!(target_endian = "little"));

/// Runs `blocks` 64-byte blocks of each of `4 * V` inputs through as many MD5 states:
/// lane `l % 4` of vector `l / 4` of every state word belongs to `inputs[l]`, which holds
/// at least `blocks * 64` bytes.
pub(crate) fn compress_lanes<const V: usize>(
    state: &mut [[u32x4; V]; 4],
    inputs: &[&[u8]],
    blocks: usize,
) {
    assert_eq!(inputs.len(), 4 * V);
    let [mut a, mut b, mut c, mut d] = *state;
    for block in 0..blocks {
        // m[w][v]: word w of the four inputs of vector v; a 4 × 4 transpose per 16 bytes.
        let mut m = [[u32x4::ZERO; V]; 16];
        for v in 0..V {
            for quarter in 0..4 {
                let at = block * 64 + quarter * 16;
                let rows: [u32x4; 4] = std::array::from_fn(|lane| {
                    bytemuck::pod_read_unaligned(&inputs[4 * v + lane][at..at + 16])
                });
                let columns = u32x4::transpose(rows);
                for (w, column) in columns.into_iter().enumerate() {
                    m[quarter * 4 + w][v] = column;
                }
            }
        }
        let (a0, b0, c0, d0) = (a, b, c, d);
        four!(f, a, b, c, d, m, 0, [0, 1, 2, 3], [7, 12, 17, 22]);
        four!(f, a, b, c, d, m, 4, [4, 5, 6, 7], [7, 12, 17, 22]);
        four!(f, a, b, c, d, m, 8, [8, 9, 10, 11], [7, 12, 17, 22]);
        four!(f, a, b, c, d, m, 12, [12, 13, 14, 15], [7, 12, 17, 22]);
        four!(g, a, b, c, d, m, 16, [1, 6, 11, 0], [5, 9, 14, 20]);
        four!(g, a, b, c, d, m, 20, [5, 10, 15, 4], [5, 9, 14, 20]);
        four!(g, a, b, c, d, m, 24, [9, 14, 3, 8], [5, 9, 14, 20]);
        four!(g, a, b, c, d, m, 28, [13, 2, 7, 12], [5, 9, 14, 20]);
        four!(h, a, b, c, d, m, 32, [5, 8, 11, 14], [4, 11, 16, 23]);
        four!(h, a, b, c, d, m, 36, [1, 4, 7, 10], [4, 11, 16, 23]);
        four!(h, a, b, c, d, m, 40, [13, 0, 3, 6], [4, 11, 16, 23]);
        four!(h, a, b, c, d, m, 44, [9, 12, 15, 2], [4, 11, 16, 23]);
        four!(i, a, b, c, d, m, 48, [0, 7, 14, 5], [6, 10, 15, 21]);
        four!(i, a, b, c, d, m, 52, [12, 3, 10, 1], [6, 10, 15, 21]);
        four!(i, a, b, c, d, m, 56, [8, 15, 6, 13], [6, 10, 15, 21]);
        four!(i, a, b, c, d, m, 60, [4, 11, 2, 9], [6, 10, 15, 21]);
        for v in 0..V {
            a[v] += a0[v];
            b[v] += b0[v];
            c[v] += c0[v];
            d[v] += d0[v];
        }
    }
    *state = [a, b, c, d];
}

/// Whole blocks of one stream through the scalar (assembly) compressor.
fn compress_one(state: &mut [u32; 4], data: &[u8]) {
    let (blocks, rest) = data.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    md5_asm::compress(state, blocks);
}

/// Streams hashed side by side by one worker: two SSE2 vectors of four lanes each, the
/// widest that ran faster here (~2.0 GB/s per core against 1.45 GB/s for four lanes and
/// 0.56 GB/s for the scalar compressor; twelve and sixteen lanes ran slower than eight).
const MAX_LANES: usize = 8;

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
        if !stream.busy && stream.queue.len() == 1 {
            pool.ready.push_back(self.id);
            drop(pool);
            self.lanes.work.notify_one();
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

/// Bytes of a stream that did not fill a block yet.
#[derive(Clone, Copy)]
struct Carry {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Carry {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

struct Stream {
    state: [u32; 4],
    /// Bytes taken in: hashed into `state`, and in `carry`.
    length: u64,
    carry: Carry,
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
            state: INITIAL,
            length: 0,
            carry: Carry::default(),
            queue: VecDeque::new(),
            busy: false,
            abandoned: false,
            failed: false,
            done: None,
            permits,
        }
    }

    /// The digest: the carry, MD5's padding and the length in bits.
    fn digest(mut self) -> [u8; 16] {
        let mut tail = [0u8; 128];
        let carried = self.carry.len;
        tail[..carried].copy_from_slice(&self.carry.bytes[..carried]);
        tail[carried] = 0x80;
        let end = if carried < 56 { 64 } else { 128 };
        tail[end - 8..end].copy_from_slice(&(self.length.wrapping_mul(8)).to_le_bytes());
        compress_one(&mut self.state, &tail[..end]);
        let mut digest = [0u8; 16];
        for (bytes, word) in digest.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        digest
    }
}

#[derive(Default)]
struct Pool {
    streams: HashMap<u64, Stream>,
    ready: VecDeque<u64>,
    next_id: u64,
}

struct Lanes {
    pool: Mutex<Pool>,
    work: Condvar,
}

/// One chunk of one stream, out of the pool while a worker hashes it.
struct Job {
    id: u64,
    state: [u32; 4],
    carry: Carry,
    chunk: Bytes,
    /// Where the whole blocks of `chunk` left to hash start, and end.
    at: usize,
    end: usize,
}

impl Lanes {
    fn get() -> &'static Lanes {
        static LANES: OnceLock<&'static Lanes> = OnceLock::new();
        LANES.get_or_init(|| {
            let lanes: &'static Lanes = Box::leak(Box::new(Lanes {
                pool: Mutex::new(Pool::default()),
                work: Condvar::new(),
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
            let mut jobs = Vec::with_capacity(MAX_LANES);
            while jobs.len() < MAX_LANES {
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
                stream.length += chunk.len() as u64;
                jobs.push(Job {
                    id,
                    state: stream.state,
                    carry: stream.carry,
                    chunk,
                    at: 0,
                    end: 0,
                });
            }
            if jobs.is_empty() {
                pool = self.work.wait(pool).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            if !pool.ready.is_empty() {
                self.work.notify_one();
            }
            drop(pool);
            let hashed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hash(&mut jobs))).is_ok();
            if !hashed {
                tracing::error!("an MD5 worker panicked; the uploads it held fail");
            }
            pool = self.lock();
            for job in jobs {
                let Some(stream) = pool.streams.get_mut(&job.id) else {
                    continue;
                };
                stream.state = job.state;
                stream.carry = job.carry;
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

/// Advances every job over its chunk: the carry completed first, the whole blocks side by
/// side, what is left over into the carry.
fn hash(jobs: &mut [Job]) {
    for job in jobs.iter_mut() {
        let chunk = &job.chunk[..];
        let mut at = 0;
        if job.carry.len > 0 {
            let take = (64 - job.carry.len).min(chunk.len());
            job.carry.bytes[job.carry.len..job.carry.len + take].copy_from_slice(&chunk[..take]);
            job.carry.len += take;
            at = take;
            if job.carry.len == 64 {
                compress_one(&mut job.state, &job.carry.bytes);
                job.carry.len = 0;
            }
        }
        let whole = (chunk.len() - at) / 64 * 64;
        job.at = at;
        job.end = at + whole;
        let rest = &chunk[at + whole..];
        job.carry.bytes[job.carry.len..job.carry.len + rest.len()].copy_from_slice(rest);
        job.carry.len += rest.len();
    }
    loop {
        let mut active: Vec<usize> = (0..jobs.len())
            .filter(|&j| jobs[j].at < jobs[j].end)
            .collect();
        match active.len() {
            0 => return,
            1 => {
                let job = &mut jobs[active[0]];
                compress_one(&mut job.state, &job.chunk[job.at..job.end]);
                job.at = job.end;
            }
            2..=4 => side_by_side::<1>(jobs, &active),
            _ => {
                active.truncate(MAX_LANES);
                side_by_side::<2>(jobs, &active);
            }
        }
    }
}

/// The jobs `active` (at most `4 * V`, each with blocks left) side by side for as many
/// blocks as the shortest has; lanes without a job repeat the last one's input.
fn side_by_side<const V: usize>(jobs: &mut [Job], active: &[usize]) {
    let blocks = active
        .iter()
        .map(|&j| (jobs[j].end - jobs[j].at) / 64)
        .min()
        .unwrap_or(0);
    let lane_job = |lane: usize| active[lane.min(active.len() - 1)];
    let inputs: Vec<&[u8]> = (0..4 * V)
        .map(|lane| {
            let job = &jobs[lane_job(lane)];
            &job.chunk[job.at..job.end]
        })
        .collect();
    let mut state: [[u32x4; V]; 4] = std::array::from_fn(|word| {
        std::array::from_fn(|v| {
            u32x4::new(std::array::from_fn(|lane| {
                jobs[lane_job(4 * v + lane)].state[word]
            }))
        })
    });
    compress_lanes::<V>(&mut state, &inputs, blocks);
    drop(inputs);
    for (lane, &j) in active.iter().enumerate() {
        for (word, vectors) in state.iter().enumerate() {
            jobs[j].state[word] = vectors[lane / 4].to_array()[lane % 4];
        }
        jobs[j].at += blocks * 64;
    }
}

#[cfg(test)]
mod tests {
    use md5_asm_impl::{Digest, Md5};

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

    #[test]
    fn lanes_compute_what_the_scalar_compressor_computes() {
        let inputs: Vec<Vec<u8>> = (0..8).map(|l| bytes(l, 64 * 5)).collect();
        let expected: Vec<[u32; 4]> = inputs
            .iter()
            .enumerate()
            .map(|(l, input)| {
                let mut state = [l as u32, 1, 2, 3];
                compress_one(&mut state, input);
                state
            })
            .collect();
        let start =
            |lanes: usize| -> Vec<[u32; 4]> { (0..lanes).map(|l| [l as u32, 1, 2, 3]).collect() };
        for v in [1, 2] {
            let states = start(4 * v);
            let refs: Vec<&[u8]> = inputs[..4 * v].iter().map(Vec::as_slice).collect();
            let got: Vec<[u32; 4]> = if v == 1 {
                let mut lanes: [[u32x4; 1]; 4] =
                    std::array::from_fn(|w| [u32x4::new(std::array::from_fn(|l| states[l][w]))]);
                compress_lanes::<1>(&mut lanes, &refs, 5);
                (0..4)
                    .map(|l| std::array::from_fn(|w| lanes[w][0].to_array()[l]))
                    .collect()
            } else {
                let mut lanes: [[u32x4; 2]; 4] = std::array::from_fn(|w| {
                    std::array::from_fn(|v| {
                        u32x4::new(std::array::from_fn(|l| states[4 * v + l][w]))
                    })
                });
                compress_lanes::<2>(&mut lanes, &refs, 5);
                (0..8)
                    .map(|l| std::array::from_fn(|w| lanes[w][l / 4].to_array()[l % 4]))
                    .collect()
            };
            assert_eq!(got, expected[..4 * v], "{} lanes", 4 * v);
        }
    }

    /// Streams fed to `hash` together in rounds, one chunk each per round, as a worker
    /// takes them: every lane count from 1 to 10, chunk sizes that split blocks anywhere.
    #[test]
    fn jobs_side_by_side_give_every_stream_its_own_digest() {
        for streams in 1..=10usize {
            let lengths: Vec<usize> = (0..streams)
                .map(|s| [0, 1, 55, 56, 63, 64, 65, 119, 120, 4096 * 3 + 17][s] + 300 * s)
                .collect();
            let data: Vec<Vec<u8>> = lengths
                .iter()
                .enumerate()
                .map(|(s, &len)| bytes(s as u64 + 100, len))
                .collect();
            let mut states: Vec<Stream> = (0..streams)
                .map(|_| Stream::new(Arc::new(Semaphore::new(1))))
                .collect();
            let mut offsets = vec![0usize; streams];
            let mut round = 0usize;
            while offsets.iter().zip(&lengths).any(|(at, len)| at < len) {
                let mut jobs = Vec::new();
                for s in 0..streams {
                    if offsets[s] >= lengths[s] {
                        continue;
                    }
                    // 1, 7, 64, 200, 1000, 3 bytes..., varying by stream and round.
                    let size = [1, 7, 64, 200, 1000, 3, 129][(s + round) % 7];
                    let end = (offsets[s] + size).min(lengths[s]);
                    let chunk = Bytes::copy_from_slice(&data[s][offsets[s]..end]);
                    offsets[s] = end;
                    states[s].length += chunk.len() as u64;
                    jobs.push(Job {
                        id: s as u64,
                        state: states[s].state,
                        carry: states[s].carry,
                        chunk,
                        at: 0,
                        end: 0,
                    });
                }
                hash(&mut jobs);
                for job in jobs {
                    let stream = &mut states[job.id as usize];
                    stream.state = job.state;
                    stream.carry = job.carry;
                }
                round += 1;
            }
            for (s, stream) in states.into_iter().enumerate() {
                let expected: [u8; 16] = Md5::digest(&data[s]).into();
                assert_eq!(stream.digest(), expected, "stream {s} of {streams}");
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

    #[tokio::test]
    async fn an_empty_stream_has_the_digest_of_nothing() {
        let expected: [u8; 16] = Md5::digest(b"").into();
        assert_eq!(Md5Stream::new().finish().await.unwrap(), expected);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    fn rate<const V: usize>(data: &[u8]) -> f64 {
        let mut state = [[u32x4::ZERO; V]; 4];
        let inputs = vec![data; 4 * V];
        let start = std::time::Instant::now();
        compress_lanes::<V>(&mut state, &inputs, data.len() / 64);
        std::hint::black_box(state);
        (data.len() * 4 * V) as f64 / start.elapsed().as_secs_f64() / 1e6
    }

    /// Not a check: prints what each width computes per second on this machine
    /// (`cargo test --release -p portico-volume lanes_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn lanes_speed() {
        let data = vec![7u8; 32 << 20];
        let mut state = INITIAL;
        let start = std::time::Instant::now();
        compress_one(&mut state, &data);
        let scalar = data.len() as f64 / start.elapsed().as_secs_f64() / 1e6;
        println!(
            "MB/s on one core: scalar {scalar:.0}, 4 lanes {:.0}, 8 lanes {:.0}, 12 lanes {:.0}",
            rate::<1>(&data),
            rate::<2>(&data),
            rate::<3>(&data),
        );
    }
}
