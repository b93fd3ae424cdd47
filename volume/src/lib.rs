//! Blob storage on the local disk.
//!
//! The volume owns the bytes of every file version. A write streams into a temp file while
//! hashing it (MD5 for the S3 ETag, BLAKE3 as the strong hash), fsyncs it, renames it into
//! place and fsyncs the directory: only then does the caller commit the catalog row that
//! makes the blob visible. A crash at any point leaves at worst a temp file or an
//! unreferenced blob, both found by `scan` (used by `portico fsck`).
//!
//! This crate never touches SQL or HTTP: it knows blob locators, not keys or accounts.

mod md5lanes;
mod reader;
mod writer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use reader::BlobStream;
pub use writer::{Hasher, WriteOptions, WrittenBlob};

/// Errors of the volume. Body errors carry the client's stream failure through.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob {0} is missing from the volume")]
    Missing(BlobLocator),
    #[error("the body is larger than the allowed {limit} bytes")]
    TooLarge { limit: u64, reason: LimitReason },
    #[error("the body ended after {received} of {expected} bytes")]
    Incomplete { expected: u64, received: u64 },
    #[error("the request body failed: {0}")]
    Body(#[source] io::Error),
    #[error("volume I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// Why a write limit was set, so callers can answer with the right protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    MaxObjectSize,
    Quota,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The name of one blob on the volume: 32 lowercase hex digits of a random 128-bit id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobLocator(String);

impl BlobLocator {
    /// A fresh, random locator.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Parses a stored locator; `None` when it is not 32 lowercase hex digits (so a corrupt
    /// catalog row can never make the volume open a path outside its root).
    pub fn parse(text: &str) -> Option<Self> {
        let valid =
            text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `blobs/ab/cd/abcd…`: two levels of 256 directories keep each directory small.
    fn relative_path(&self) -> PathBuf {
        let mut path = PathBuf::from("blobs");
        path.push(&self.0[0..2]);
        path.push(&self.0[2..4]);
        path.push(&self.0);
        path
    }
}

impl fmt::Display for BlobLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobLocator({})", self.0)
    }
}

/// A blob file found on disk by [`Volume::scan`].
#[derive(Debug, Clone)]
pub struct FoundBlob {
    pub locator: BlobLocator,
    pub size: u64,
    pub modified: SystemTime,
}

/// A leftover temp file found by [`Volume::scan`]: an upload that never finished.
#[derive(Debug, Clone)]
pub struct FoundTemp {
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

/// The local blob volume rooted at one directory.
#[derive(Clone)]
pub struct Volume {
    root: PathBuf,
}

impl fmt::Debug for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volume").field("root", &self.root).finish()
    }
}

impl Volume {
    /// Opens (creating when needed) the volume at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes the volume's file system has free for writing (what `df` calls available).
    pub fn available_bytes(&self) -> Result<u64> {
        let stats = rustix::fs::statvfs(&self.root).map_err(io::Error::from)?;
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    fn blob_path(&self, locator: &BlobLocator) -> PathBuf {
        self.root.join(locator.relative_path())
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Streams `body` into a new blob. See [`writer`] for the durability protocol.
    pub async fn write<S>(&self, body: S, options: WriteOptions) -> Result<WrittenBlob>
    where
        S: futures::Stream<Item = io::Result<bytes::Bytes>> + Send + Unpin,
    {
        writer::write(self, body, options).await
    }

    /// Streams `range` of a blob. The range must lie within the blob.
    pub async fn read(
        &self,
        locator: &BlobLocator,
        range: std::ops::Range<u64>,
    ) -> Result<BlobStream> {
        self.read_segments(vec![(locator.clone(), range)]).await
    }

    /// Streams several blob ranges one after the other as one body (a multipart object's
    /// parts). Every file is opened before the first byte is sent, so a missing blob is an
    /// error up front, not a truncated response.
    pub async fn read_segments(
        &self,
        segments: Vec<(BlobLocator, std::ops::Range<u64>)>,
    ) -> Result<BlobStream> {
        let paths = segments
            .into_iter()
            .map(|(locator, range)| (self.blob_path(&locator), locator, range))
            .collect();
        reader::open(paths).await
    }

    /// Whether the blob file exists (used by fsck).
    pub async fn exists(&self, locator: &BlobLocator) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.blob_path(locator)).await?)
    }

    /// Removes a blob whose catalog row is already gone. A missing file is not an error:
    /// removal is idempotent so a retried purge job cannot fail on it.
    pub async fn remove(&self, locator: &BlobLocator) -> Result<()> {
        match tokio::fs::remove_file(self.blob_path(locator)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Removes a leftover temp file reported by [`Volume::scan`].
    pub async fn remove_temp(&self, temp: &FoundTemp) -> Result<()> {
        if temp.path.parent() != Some(self.temp_dir().as_path()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a temp file of this volume",
            )
            .into());
        }
        match tokio::fs::remove_file(&temp.path).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Lists every blob file and leftover temp file. Blocking walk run off the runtime.
    pub async fn scan(&self) -> Result<(Vec<FoundBlob>, Vec<FoundTemp>)> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || scan_blocking(&root))
            .await
            .map_err(|err| io::Error::other(err.to_string()))?
    }
}

fn scan_blocking(root: &Path) -> Result<(Vec<FoundBlob>, Vec<FoundTemp>)> {
    let mut blobs = Vec::new();
    for first in read_dir_sorted(&root.join("blobs"))? {
        for second in read_dir_sorted(&first)? {
            for file in read_dir_sorted(&second)? {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let meta = std::fs::metadata(&file)?;
                match BlobLocator::parse(name) {
                    Some(locator) if file == root.join(locator.relative_path()) => {
                        blobs.push(FoundBlob {
                            locator,
                            size: meta.len(),
                            modified: meta.modified()?,
                        })
                    }
                    _ => tracing::warn!(path = %file.display(), "unexpected file in the blob tree"),
                }
            }
        }
    }
    let mut temps = Vec::new();
    for file in read_dir_sorted(&root.join("tmp"))? {
        let meta = std::fs::metadata(&file)?;
        temps.push(FoundTemp {
            path: file,
            size: meta.len(),
            modified: meta.modified()?,
        });
    }
    Ok((blobs, temps))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(iter) => {
            for entry in iter {
                entries.push(entry?.path());
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
    }
    entries.sort();
    Ok(entries)
}

/// How old a temp file or unreferenced blob must be before fsck may remove it: younger
/// ones may belong to an upload that is between its rename and its catalog commit.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60 * 60);

#[cfg(test)]
mod tests;
