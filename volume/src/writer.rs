//! The write path: stream → temp file (hashing) → fsync → rename → fsync dir.
//!
//! The async side pulls the request body and enforces limits; a blocking thread owns the
//! file, so disk latency never stalls the runtime. Large bodies spread the work: MD5 —
//! inherently serial, and the slowest of the digests — is computed by the shared MD5
//! workers (`md5lanes.rs`, several uploads side by side in vector lanes) beside the
//! thread that computes the other digests and writes. Large bodies bypass the page cache
//! (`O_DIRECT`, whole aligned blocks): a buffered write copies every byte into the cache
//! and the fsync then waits for the kernel's writeback, which on our disks runs at a third
//! of what direct writes reach (427 MB/s against 1.2–1.4 GB/s with `dd`), so the final
//! fsync has only the tail and the file's metadata left. Where the filesystem refuses
//! direct I/O (tmpfs, some FUSE filesystems) the file is written through the cache and a
//! third thread pushes written data to disk while the upload goes on. The temp file
//! is created lazily on the first byte: an empty body writes nothing and yields no blob at
//! all (Windows and Finder create every file empty first, then write it).
//!
//! A body no larger than the caller's `inline_up_to` never touches the volume: it comes
//! back in memory and the catalog stores it in the same transaction as the version that
//! uses it. A file costs an inode, two fsyncs (file and directory) and a second commit
//! point; an inline body costs a few kilobytes of the catalog's log, whose flush concurrent
//! commits share.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use md5_many::Md5State;
use tokio::sync::mpsc;

use crate::md5lanes::Md5Stream;
use crate::{BlobLocator, Error, LimitReason, Result, Volume};

/// Size of the write buffer in front of the temp file: large enough that small network
/// chunks become few large `write` calls.
const WRITE_BUFFER: usize = 1 << 20;
/// Chunks queued between the network and the disk thread (and the MD5 workers). A chunk
/// is what one socket read returned, up to hyper's ~400 KiB buffer, so this bounds what
/// one upload holds while the disk is slower than the network: 16 concurrent uploads
/// with 16-deep queues peaked at 245 MB resident, with 4 at about 120 MB, at the same
/// throughput.
pub(crate) const QUEUE_DEPTH: usize = 4;
/// Bodies announced below this size hash MD5 on the disk thread, and are written through
/// the page cache: a second thread would cost more than it saves, and most of such a file
/// would be the tail a direct write cannot take.
pub(crate) const LARGE_FROM: u64 = 1 << 20;
/// One direct write: a whole number of blocks, from a buffer aligned to [`DIRECT_ALIGN`].
/// `dd oflag=direct` here: 1.2 GB/s with 1 MiB writes, 1.4 GB/s with 8 MiB; uploads
/// measured no faster with 2 MiB, and 16 uploads hold 16 of these.
pub(crate) const DIRECT_BLOCK: usize = 1 << 20;
/// Alignment of a direct write's buffer, offset and length: the largest logical block size
/// of the disks we run on.
const DIRECT_ALIGN: usize = 4096;
/// Written bytes between two background flushes of a large file.
const FLUSH_EVERY: u64 = 64 << 20;

/// A digest computed while the bytes stream to disk, beside MD5 and BLAKE3 (the caller
/// brings its own: CRC32, CRC64NVME, SHA-256, ...). The volume only feeds it.
pub trait Hasher: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// Limits and extra digests for one write.
#[derive(Default)]
pub struct WriteOptions {
    /// The length the client announced; a body that ends short is `Incomplete`, one that
    /// runs longer is `TooLarge`.
    pub expected: Option<u64>,
    /// The most bytes this write may take, and why.
    pub max: Option<(u64, LimitReason)>,
    /// Extra digests to compute in the same pass.
    pub hashers: Vec<Box<dyn Hasher>>,
    /// A body of at most this many bytes is not written to the volume at all but handed
    /// back in [`WrittenBlob::inline`], for the caller to store in its own (durable)
    /// record. 0: always a file.
    pub inline_up_to: u64,
}

impl std::fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("expected", &self.expected)
            .field("max", &self.max)
            .field("hashers", &self.hashers.len())
            .field("inline_up_to", &self.inline_up_to)
            .finish()
    }
}

/// A blob that is durably on disk, or a small body held in memory for the caller to
/// store (or, for an empty body, no blob at all).
#[derive(Debug, Clone)]
pub struct WrittenBlob {
    /// The file on the volume; `None` for an empty or an inline body.
    pub locator: Option<BlobLocator>,
    /// The whole body, when it was not larger than [`WriteOptions::inline_up_to`] (and not
    /// empty): nothing was written to the volume.
    pub inline: Option<Bytes>,
    pub size: u64,
    pub md5: [u8; 16],
    pub blake3: [u8; 32],
    /// The extra digests, in the order their hashers were given.
    pub digests: Vec<Vec<u8>>,
}

enum Message {
    Chunk(Bytes),
    Finish,
}

pub(crate) async fn write<S>(
    volume: &Volume,
    mut body: S,
    limit: WriteOptions,
) -> Result<WrittenBlob>
where
    S: futures::Stream<Item = io::Result<Bytes>> + Send + Unpin,
{
    if let (Some(expected), Some((max, reason))) = (limit.expected, limit.max)
        && expected > max
    {
        return Err(Error::TooLarge { limit: max, reason });
    }
    if limit.inline_up_to > 0 && limit.expected.is_none_or(|size| size <= limit.inline_up_to) {
        let mut received: Vec<Bytes> = Vec::new();
        let mut size: u64 = 0;
        while size <= limit.inline_up_to {
            let Some(chunk) = body.next().await else {
                return small_body(received, size, limit);
            };
            let chunk = chunk.map_err(Error::Body)?;
            size += chunk.len() as u64;
            check_limits(limit.expected, limit.max, size)?;
            if !chunk.is_empty() {
                received.push(chunk);
            }
        }
        // Larger than announced or than the inline limit: the file path takes the bytes
        // already read, then the rest.
        let body = futures::stream::iter(received.into_iter().map(Ok)).chain(body);
        return write_file(volume, body, limit).await;
    }
    write_file(volume, body, limit).await
}

/// The limits every received byte count is checked against.
fn check_limits(
    expected: Option<u64>,
    max: Option<(u64, LimitReason)>,
    received: u64,
) -> Result<()> {
    if let Some(expected) = expected
        && received > expected
    {
        return Err(Error::TooLarge {
            limit: expected,
            reason: LimitReason::MaxObjectSize,
        });
    }
    if let Some((max, reason)) = max
        && received > max
    {
        return Err(Error::TooLarge { limit: max, reason });
    }
    Ok(())
}

/// A whole body small enough to stay in memory: digested here, no file.
fn small_body(chunks: Vec<Bytes>, size: u64, limit: WriteOptions) -> Result<WrittenBlob> {
    if let Some(expected) = limit.expected
        && size < expected
    {
        return Err(Error::Incomplete {
            expected,
            received: size,
        });
    }
    let body = match chunks.len() {
        0 | 1 => chunks.into_iter().next().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    };
    let mut extra = limit.hashers;
    for hasher in &mut extra {
        hasher.update(&body);
    }
    Ok(WrittenBlob {
        locator: None,
        size,
        md5: md5_many::md5(&body),
        blake3: *blake3::hash(&body).as_bytes(),
        digests: extra.into_iter().map(|hasher| hasher.finish()).collect(),
        inline: (size > 0).then_some(body),
    })
}

async fn write_file<S>(volume: &Volume, mut body: S, mut limit: WriteOptions) -> Result<WrittenBlob>
where
    S: futures::Stream<Item = io::Result<Bytes>> + Send + Unpin,
{
    let (sender, receiver) = mpsc::channel::<Message>(QUEUE_DEPTH);
    let locator = BlobLocator::generate();
    let temp_path = volume.temp_dir().join(format!("{locator}.part"));
    let final_path = volume.blob_path(&locator);
    let hashers = std::mem::take(&mut limit.hashers);
    let large = limit.expected.is_none_or(|size| size >= LARGE_FROM);
    let md5_lanes = large.then(Md5Stream::new);
    let disk = tokio::task::spawn_blocking(move || {
        disk_thread(receiver, hashers, large, &temp_path, &final_path)
    });

    let mut received: u64 = 0;
    let mut disk_stopped = false;
    let outcome: Result<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Error::Body)?;
            if chunk.is_empty() {
                continue;
            }
            received += chunk.len() as u64;
            if let Some(md5) = &md5_lanes {
                // A clone of `Bytes` shares the buffer: no copy.
                md5.update(chunk.clone()).await;
            }
            check_limits(limit.expected, limit.max, received)?;
            if sender.send(Message::Chunk(chunk)).await.is_err() {
                // The disk thread stopped early: its own error is reported below.
                disk_stopped = true;
                break;
            }
        }
        if let Some(expected) = limit.expected
            && received < expected
            && !disk_stopped
        {
            return Err(Error::Incomplete { expected, received });
        }
        Ok(())
    }
    .await;

    if outcome.is_ok() {
        // A send failure means the disk thread already failed; its result says why.
        let _ = sender.send(Message::Finish).await;
    }
    drop(sender);
    let disk_result = disk
        .await
        .map_err(|err| io::Error::other(err.to_string()))?;
    let mut digests = match (outcome, disk_result) {
        // The disk failed first (full, gone): that is the cause, not the body it stopped.
        (_, Err(err)) if disk_stopped => return Err(err),
        (Err(err), _) => return Err(err),
        (Ok(()), disk_result) => disk_result?,
    };
    let md5 = match md5_lanes {
        Some(md5) => Some(md5.finish().await?),
        None => None,
    };
    if let Some(md5) = md5 {
        digests.md5 = md5;
    }
    Ok(WrittenBlob {
        locator: (digests.size > 0).then_some(locator),
        inline: None,
        size: digests.size,
        md5: digests.md5,
        blake3: digests.blake3,
        digests: digests.extra,
    })
}

struct Digests {
    size: u64,
    md5: [u8; 16],
    blake3: [u8; 32],
    extra: Vec<Vec<u8>>,
}

/// Owns the temp file. Without a `Finish` message (body failed, limit hit, client gone)
/// the temp file is removed and nothing becomes visible.
fn disk_thread(
    mut receiver: mpsc::Receiver<Message>,
    mut extra: Vec<Box<dyn Hasher>>,
    large: bool,
    temp_path: &Path,
    final_path: &Path,
) -> Result<Digests> {
    let mut md5 = (!large).then(Md5State::new);
    let mut blake3 = blake3::Hasher::new();
    let mut size: u64 = 0;
    let mut file: Option<Sink> = None;
    let mut flusher: Option<Flusher> = None;
    let mut finished = false;

    let result = (|| -> io::Result<()> {
        while let Some(message) = receiver.blocking_recv() {
            match message {
                Message::Chunk(chunk) => {
                    if let Some(md5) = &mut md5 {
                        md5.update(&chunk);
                    }
                    blake3.update(&chunk);
                    for hasher in &mut extra {
                        hasher.update(&chunk);
                    }
                    size += chunk.len() as u64;
                    let sink = match &mut file {
                        Some(sink) => sink,
                        None => file.insert(Sink::create(temp_path, large)?),
                    };
                    sink.write(&chunk)?;
                    if !sink.is_direct()
                        && size / FLUSH_EVERY != (size - chunk.len() as u64) / FLUSH_EVERY
                    {
                        let flusher = match &mut flusher {
                            Some(flusher) => flusher,
                            None => flusher.insert(Flusher::start(sink.file())?),
                        };
                        flusher.poke();
                    }
                }
                Message::Finish => {
                    finished = true;
                    break;
                }
            }
        }
        Ok(())
    })();

    // Wait for a background flush in progress before the final one.
    drop(flusher);
    let committed = match (result, finished, file) {
        (Ok(()), true, Some(sink)) => sink
            .finish()
            .and_then(|file| publish(file, temp_path, final_path)),
        (Ok(()), true, None) => Ok(()),
        (Ok(()), false, _) => Err(io::Error::new(io::ErrorKind::Interrupted, "upload aborted")),
        (Err(err), _, _) => Err(err),
    };
    if let Err(err) = committed {
        let _ = std::fs::remove_file(temp_path);
        return Err(err.into());
    }
    Ok(Digests {
        size,
        md5: md5.map(|md5| md5.finalize()).unwrap_or_default(),
        blake3: *blake3.finalize().as_bytes(),
        extra: extra.into_iter().map(|hasher| hasher.finish()).collect(),
    })
}

/// Flushes a file's written data to disk on its own thread while more is written, so the
/// fsync at the end has only the tail left. A poke while a flush runs is dropped.
struct Flusher {
    poke: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(file: &File) -> io::Result<Self> {
        let file = file.try_clone()?;
        let (poke, pokes) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("blob-flush".into())
            .spawn(move || {
                while pokes.recv().is_ok() {
                    // Only an early start of the final fsync: its failure is that fsync's.
                    let _ = file.sync_data();
                }
            })?;
        Ok(Self {
            poke: Some(poke),
            thread: Some(thread),
        })
    }

    fn poke(&self) {
        if let Some(poke) = &self.poke {
            let _ = poke.try_send(());
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.poke.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a blob's bytes go: a temp file written through the page cache, or around it.
enum Sink {
    Buffered(BufWriter<File>),
    Direct(DirectFile),
}

impl Sink {
    /// A large body's file is opened for direct I/O when the filesystem allows it.
    fn create(path: &Path, large: bool) -> io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if large {
            let direct = options
                .clone()
                .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
                .open(path);
            match direct {
                Ok(file) => return Ok(Self::Direct(DirectFile::new(file))),
                // tmpfs and others refuse the flag: the page cache it is.
                Err(err) if refused(&err) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Self::Buffered(BufWriter::with_capacity(
            WRITE_BUFFER,
            options.open(path)?,
        )))
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Buffered(writer) => writer.write_all(data),
            Self::Direct(direct) => direct.write(data),
        }
    }

    fn is_direct(&self) -> bool {
        matches!(self, Self::Direct(direct) if direct.direct)
    }

    fn file(&self) -> &File {
        match self {
            Self::Buffered(writer) => writer.get_ref(),
            Self::Direct(direct) => &direct.file,
        }
    }

    /// Everything written to the file (not yet synced).
    fn finish(self) -> io::Result<File> {
        match self {
            Self::Buffered(writer) => writer.into_inner().map_err(|err| err.into_error()),
            Self::Direct(direct) => direct.finish(),
        }
    }
}

/// A file opened with `O_DIRECT`, written in whole aligned blocks from an aligned buffer;
/// the tail that does not fill a block goes through the page cache (the flag cleared), as
/// does everything after a short or refused direct write.
pub(crate) struct DirectFile {
    file: File,
    /// `DIRECT_BLOCK` bytes from `start` are the aligned block being filled.
    buffer: Vec<u8>,
    start: usize,
    filled: usize,
    pub(crate) direct: bool,
}

impl DirectFile {
    pub(crate) fn new(file: File) -> Self {
        let buffer = vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN];
        let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
        Self {
            file,
            buffer,
            start,
            filled: 0,
            direct: true,
        }
    }

    pub(crate) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let taken = (DIRECT_BLOCK - self.filled).min(data.len());
            let at = self.start + self.filled;
            self.buffer[at..at + taken].copy_from_slice(&data[..taken]);
            self.filled += taken;
            data = &data[taken..];
            if self.filled == DIRECT_BLOCK {
                self.write_block()?;
            }
        }
        Ok(())
    }

    fn write_block(&mut self) -> io::Result<()> {
        let block = self.start..self.start + self.filled;
        let mut written = 0;
        if self.direct {
            written = loop {
                match (&self.file).write(&self.buffer[block.clone()]) {
                    Ok(count) => break count,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    // Accepted at open, refused at write (some FUSE and network filesystems).
                    Err(err) if refused(&err) => break 0,
                    Err(err) => return Err(err),
                }
            };
        }
        if written < self.filled {
            // A short direct write leaves the offset unaligned: the rest of the file goes
            // through the page cache.
            if self.direct {
                self.leave_direct()?;
            }
            (&self.file).write_all(&self.buffer[block][written..])?;
        }
        self.filled = 0;
        Ok(())
    }

    fn leave_direct(&mut self) -> io::Result<()> {
        let flags = rustix::fs::fcntl_getfl(&self.file)?;
        rustix::fs::fcntl_setfl(&self.file, flags - rustix::fs::OFlags::DIRECT)?;
        self.direct = false;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<File> {
        if self.filled > 0 {
            if self.direct {
                self.leave_direct()?;
            }
            self.write_block()?;
        }
        Ok(self.file)
    }
}

/// `EINVAL`: how a filesystem says no to direct I/O, at open or at a write.
fn refused(err: &io::Error) -> bool {
    err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// fsync the data, rename into place, fsync the directory: after this returns, a crash
/// cannot lose the blob, and before it the blob is invisible.
fn publish(file: File, temp_path: &Path, final_path: &Path) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    let dir = final_path.parent().expect("blob paths have a parent");
    match std::fs::rename(temp_path, final_path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            create_dirs_durably(dir)?;
            std::fs::rename(temp_path, final_path)?;
        }
        Err(err) => return Err(err),
    }
    sync_dir(dir)
}

/// Creates the shard directories and fsyncs each new directory's parent, so the new
/// entries survive a crash together with the blob inside them.
fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cursor = Some(dir);
    while let Some(path) = cursor {
        if path.exists() {
            break;
        }
        missing.push(path.to_path_buf());
        cursor = path.parent();
    }
    for path in missing.iter().rev() {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
