//! The read path: a blocking thread reads the requested range in large chunks and hands
//! them to the response body through a small queue, so a slow client applies
//! back-pressure and memory stays bounded per download.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::{BlobLocator, Error, Result};

const READ_CHUNK: usize = 256 * 1024;
const QUEUE_DEPTH: usize = 4;

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

pub(crate) async fn open(
    path: PathBuf,
    locator: &BlobLocator,
    range: Range<u64>,
) -> Result<BlobStream> {
    let file = match tokio::task::spawn_blocking(move || open_at(path, range.start)).await {
        Ok(Ok(file)) => file,
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Missing(locator.clone()));
        }
        Ok(Err(err)) => return Err(err.into()),
        Err(join) => return Err(io::Error::other(join.to_string()).into()),
    };
    let length = range.end.saturating_sub(range.start);
    let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
    if length > 0 {
        tokio::task::spawn_blocking(move || pump(file, length, sender));
    }
    Ok(BlobStream {
        receiver,
        remaining: length,
    })
}

fn open_at(path: PathBuf, offset: u64) -> io::Result<File> {
    let mut file = File::open(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    Ok(file)
}

/// Reads until `length` bytes are sent, the file ends, or the receiver goes away.
fn pump(mut file: File, mut length: u64, sender: mpsc::Sender<io::Result<Bytes>>) {
    while length > 0 {
        let want = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(READ_CHUNK);
        let mut buffer = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let _ = sender.blocking_send(Err(err));
                    return;
                }
            }
        }
        if filled == 0 {
            // Short file: the stream reports the shortfall when the channel closes.
            return;
        }
        buffer.truncate(filled);
        length -= filled as u64;
        if sender.blocking_send(Ok(buffer.freeze())).is_err() {
            return;
        }
    }
}
