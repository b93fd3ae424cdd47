//! The read path: a blocking thread reads the requested range in large chunks and hands
//! them to the response body through a small queue, so a slow client applies
//! back-pressure and memory stays bounded per download.

use std::fs::File;
use std::io;
use std::num::NonZeroU64;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{BlobLocator, Error, Result};

const READ_CHUNK: usize = 256 * 1024;
const QUEUE_DEPTH: usize = 4;
/// How far ahead of the reader the kernel is asked to be fetching. Its own readahead keeps
/// one window of a few hundred KiB in flight; asking for the next several MiB keeps the
/// disk's queue deep, which is what a cold read of a large file is bound by.
const READ_AHEAD: u64 = 8 << 20;

/// A stream of one blob's bytes in a range. `Send + Sync`, as s3s bodies require.
pub struct BlobStream {
    receiver: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl BlobStream {
    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// A stream over bytes already in memory (empty files have no blob).
    pub fn from_bytes(bytes: Bytes) -> Self {
        let (sender, receiver) = mpsc::channel(1);
        let remaining = bytes.len() as u64;
        if !bytes.is_empty() {
            sender.try_send(Ok(bytes)).expect("fresh channel has room");
        }
        Self {
            receiver,
            remaining,
        }
    }
}

impl futures::Stream for BlobStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.receiver.poll_recv(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        }
        if let Poll::Ready(None) = &polled
            && self.remaining > 0
        {
            let missing = self.remaining;
            self.remaining = 0;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob ended {missing} bytes early"),
            ))));
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (0, Some(remaining))
    }
}

pub(crate) async fn open(segments: Vec<(PathBuf, BlobLocator, Range<u64>)>) -> Result<BlobStream> {
    let length: u64 = segments
        .iter()
        .map(|(_, _, range)| range.end.saturating_sub(range.start))
        .sum();
    let opened = tokio::task::spawn_blocking(move || {
        let mut files = Vec::with_capacity(segments.len());
        for (path, locator, range) in segments {
            match File::open(path) {
                Ok(file) => files.push((file, range.start, range.end.saturating_sub(range.start))),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::Missing(locator));
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(files)
    })
    .await
    .map_err(|join| Error::Io(io::Error::other(join.to_string())))??;
    let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
    if length > 0 {
        tokio::task::spawn_blocking(move || {
            for (file, offset, length) in opened {
                if !pump(file, offset, length, &sender) {
                    return;
                }
            }
        });
    }
    Ok(BlobStream {
        receiver,
        remaining: length,
    })
}

/// Reads until `length` bytes from `offset` are sent (true),
/// or the file ends or the receiver goes away (false: stop).
fn pump(
    file: File,
    offset: u64,
    mut length: u64,
    sender: &mpsc::Sender<io::Result<Bytes>>,
) -> bool {
    use rustix::fs::{Advice, fadvise};
    let end = offset.saturating_add(length);
    // Hints only: a filesystem that ignores them reads the same bytes, just slower.
    let _ = fadvise(&file, offset, NonZeroU64::new(length), Advice::Sequential);
    let mut advised = offset;
    while length > 0 {
        let position = end - length;
        if advised < end && advised < position + READ_AHEAD {
            let until = (position + 2 * READ_AHEAD).min(end);
            let _ = fadvise(
                &file,
                advised,
                NonZeroU64::new(until - advised),
                Advice::WillNeed,
            );
            advised = until;
        }
        let want = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(READ_CHUNK);
        // Read into the buffer's spare capacity: zeroing it first cost 8 % of a large
        // GET's CPU (`perf`, warm cache), a pass over every byte only to overwrite it.
        let mut buffer = Vec::with_capacity(want);
        while buffer.len() < want {
            let at = position + buffer.len() as u64;
            match rustix::io::pread(&file, rustix::buffer::spare_capacity(&mut buffer), at) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => {
                    let _ = sender.blocking_send(Err(err.into()));
                    return false;
                }
            }
        }
        // `with_capacity` allocates exactly `want` for bytes, so this is only a guard.
        buffer.truncate(want);
        let filled = buffer.len();
        if filled == 0 {
            // Short file: the stream reports the shortfall when the channel closes.
            return false;
        }
        length -= filled as u64;
        if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
            return false;
        }
    }
    true
}
