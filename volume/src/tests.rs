use std::io;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use md5::Digest;

use super::*;
use crate::writer::{DIRECT_BLOCK, DirectFile, LARGE_FROM};

fn body(chunks: &[&[u8]]) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + Unpin + use<> {
    let owned: Vec<io::Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(owned)
}

async fn read_all(volume: &Volume, locator: &BlobLocator, range: std::ops::Range<u64>) -> Vec<u8> {
    let stream = volume.read(locator, range).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

async fn file_count(volume: &Volume) -> (usize, usize) {
    let (blobs, temps) = volume.scan().await.unwrap();
    (blobs.len(), temps.len())
}

#[tokio::test]
async fn write_hashes_and_reads_back_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let written = volume
        .write(body(&[b"hello ", b"world"]), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(written.size, 11);
    assert_eq!(
        hex::encode(written.md5),
        hex::encode(md5::Md5::digest(b"hello world"))
    );
    assert_eq!(written.blake3, *blake3::hash(b"hello world").as_bytes());
    let locator = written.locator.unwrap();
    assert_eq!(read_all(&volume, &locator, 0..11).await, b"hello world");
    assert_eq!(read_all(&volume, &locator, 6..9).await, b"wor");
    assert_eq!(file_count(&volume).await, (1, 0));
}

#[tokio::test]
async fn large_body_streams_in_many_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let chunk = vec![7u8; 100_000];
    let chunks: Vec<io::Result<Bytes>> = (0..30).map(|_| Ok(Bytes::from(chunk.clone()))).collect();
    let written = volume
        .write(stream::iter(chunks), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(written.size, 3_000_000);
    let locator = written.locator.unwrap();
    let tail = read_all(&volume, &locator, 2_999_000..3_000_000).await;
    assert_eq!(tail, vec![7u8; 1000]);
}

/// Bytes whose every position differs from its neighbours', so a block written at the
/// wrong offset or twice shows.
fn numbered_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect()
}

async fn write_and_read_back_whole(dir: &std::path::Path, len: usize, chunk: usize) {
    let volume = Volume::open(dir).unwrap();
    let data = numbered_bytes(len);
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let written = volume
        .write(stream::iter(chunks), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(written.size, len as u64);
    assert_eq!(written.md5, <[u8; 16]>::from(md5::Md5::digest(&data)));
    assert_eq!(written.blake3, *blake3::hash(&data).as_bytes());
    let locator = written.locator.unwrap();
    let back = read_all(&volume, &locator, 0..len as u64).await;
    assert!(
        back == data,
        "{len} bytes in chunks of {chunk} came back different"
    );
    assert_eq!(
        file_count(&volume).await.1,
        0,
        "a temp file was left behind"
    );
}

#[tokio::test]
async fn ranges_across_many_read_chunks_come_back_from_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let data = numbered_bytes(3_000_017);
    let written = volume
        .write(
            stream::iter([Ok(Bytes::from(data.clone()))]),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let locator = written.locator.unwrap();
    for range in [
        0..3_000_017,
        1..262_145,
        262_143..262_145,
        300_001..2_900_123,
        2_999_999..3_000_017,
    ] {
        let back = read_all(&volume, &locator, range.start as u64..range.end as u64).await;
        assert!(
            back == data[range.clone()],
            "range {range:?} came back different"
        );
    }
}

#[tokio::test]
async fn large_bodies_come_back_byte_for_byte_whatever_their_tail() {
    // Direct I/O writes whole aligned blocks and the tail through the page cache; a
    // filesystem that refuses it (tmpfs) takes the whole file through the cache.
    let disk = tempfile::tempdir().unwrap();
    let memory = std::path::Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").unwrap());
    for dir in std::iter::once(&disk).chain(memory.as_ref()) {
        for (len, chunk) in [
            (DIRECT_BLOCK * 2, 65_536),
            (DIRECT_BLOCK * 2 + 1, 400_000),
            (DIRECT_BLOCK * 5 + 12_345, 16_411),
            (LARGE_FROM as usize - 1, 100_000),
        ] {
            write_and_read_back_whole(dir.path(), len, chunk).await;
        }
    }
}

#[test]
fn a_refused_direct_write_goes_through_the_page_cache_instead() {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    // A direct write at an unaligned offset is refused (EINVAL), as some filesystems
    // refuse every direct write after accepting the flag at open.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)
        .unwrap();
    file.seek(SeekFrom::Start(1)).unwrap();
    let data = numbered_bytes(DIRECT_BLOCK * 2 + 7);
    let mut direct = DirectFile::new(file);
    direct.write(&data[..1000]).unwrap();
    direct.write(&data[1000..]).unwrap();
    assert!(!direct.direct, "the refused write left direct I/O");
    direct.finish().unwrap().sync_all().unwrap();
    let mut back = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back.len(), data.len() + 1);
    assert!(back[0] == 0 && back[1..] == data[..]);
}

#[tokio::test]
async fn empty_body_writes_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let written = volume
        .write(
            body(&[]),
            WriteOptions {
                expected: Some(0),
                max: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(written.locator.is_none());
    assert_eq!(hex::encode(written.md5), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(file_count(&volume).await, (0, 0));
}

#[tokio::test]
async fn failed_or_short_bodies_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();

    let short = volume
        .write(
            body(&[b"abc"]),
            WriteOptions {
                expected: Some(10),
                max: None,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(
            short,
            Err(Error::Incomplete {
                expected: 10,
                received: 3
            })
        ),
        "{short:?}"
    );

    let long = volume
        .write(
            body(&[b"abcdef"]),
            WriteOptions {
                expected: Some(3),
                max: None,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(long, Err(Error::TooLarge { .. })), "{long:?}");

    let over_quota = volume
        .write(
            body(&[b"abc", b"def"]),
            WriteOptions {
                expected: None,
                max: Some((4, LimitReason::Quota)),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(
        over_quota,
        Err(Error::TooLarge {
            limit: 4,
            reason: LimitReason::Quota
        })
    ));

    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(io::Error::other("client went away")),
    ]);
    let failed = volume.write(broken, WriteOptions::default()).await;
    assert!(matches!(failed, Err(Error::Body(_))), "{failed:?}");

    assert_eq!(file_count(&volume).await, (0, 0));
}

#[tokio::test]
async fn announced_size_over_limit_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let never_polled = stream::iter(vec![Err::<Bytes, _>(io::Error::other("must not be read"))]);
    let refused = volume
        .write(
            never_polled,
            WriteOptions {
                expected: Some(100),
                max: Some((10, LimitReason::Quota)),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(
        refused,
        Err(Error::TooLarge {
            limit: 10,
            reason: LimitReason::Quota
        })
    ));
}

#[tokio::test]
async fn missing_blob_and_removal_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let written = volume
        .write(body(&[b"x"]), WriteOptions::default())
        .await
        .unwrap();
    let locator = written.locator.unwrap();
    assert!(volume.exists(&locator).await.unwrap());
    volume.remove(&locator).await.unwrap();
    volume.remove(&locator).await.unwrap();
    assert!(!volume.exists(&locator).await.unwrap());
    assert!(matches!(
        volume.read(&locator, 0..1).await,
        Err(Error::Missing(_))
    ));
}

#[tokio::test]
async fn truncated_blob_fails_the_stream_instead_of_ending_early() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let written = volume
        .write(body(&[b"0123456789"]), WriteOptions::default())
        .await
        .unwrap();
    let locator = written.locator.unwrap();
    let path = dir.path().join(locator.relative_path());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4)
        .unwrap();
    let mut stream = volume.read(&locator, 0..10).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"0123");
    assert!(stream.next().await.unwrap().is_err());
}

#[test]
fn locators_only_parse_from_hex() {
    for (text, ok) in [
        ("0123456789abcdef0123456789abcdef", true),
        ("0123456789ABCDEF0123456789abcdef", false),
        ("../../../../etc/passwd", false),
        ("", false),
    ] {
        assert_eq!(BlobLocator::parse(text).is_some(), ok, "{text}");
    }
}

#[tokio::test]
async fn segments_read_back_as_one_body() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let a = volume
        .write(body(&[b"0123456789"]), WriteOptions::default())
        .await
        .unwrap()
        .locator
        .unwrap();
    let b = volume
        .write(body(&[b"abcdefghij"]), WriteOptions::default())
        .await
        .unwrap()
        .locator
        .unwrap();
    let stream = volume
        .read_segments(vec![(a.clone(), 5..10), (b.clone(), 0..3)])
        .await
        .unwrap();
    assert_eq!(stream.remaining(), 8);
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"56789abc");
    volume.remove(&b).await.unwrap();
    assert!(matches!(
        volume.read_segments(vec![(a, 0..1), (b, 0..1)]).await,
        Err(Error::Missing(_))
    ));
}

struct Xor(u8);

impl Hasher for Xor {
    fn update(&mut self, data: &[u8]) {
        self.0 = data.iter().fold(self.0, |acc, b| acc ^ b);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        vec![self.0]
    }
}

#[tokio::test]
async fn an_extra_digest_is_computed_in_the_same_pass() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let options = WriteOptions {
        hashers: vec![Box::new(Xor(0)), Box::new(Xor(1))],
        ..Default::default()
    };
    let written = volume.write(body(&[&[1, 2], &[4]]), options).await.unwrap();
    assert_eq!(written.digests, vec![vec![7], vec![6]]);
}

#[tokio::test]
async fn small_bodies_come_back_inline_and_larger_ones_become_files() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    let inline = |expected| WriteOptions {
        expected,
        inline_up_to: 8,
        hashers: vec![Box::new(Xor(0))],
        ..Default::default()
    };

    for expected in [None, Some(8)] {
        let written = volume
            .write(body(&[b"abc", b"", b"defgh"]), inline(expected))
            .await
            .unwrap();
        assert!(written.locator.is_none());
        assert_eq!(written.inline.as_deref(), Some(&b"abcdefgh"[..]));
        assert_eq!(written.size, 8);
        assert_eq!(written.md5, <[u8; 16]>::from(md5::Md5::digest(b"abcdefgh")));
        assert_eq!(written.blake3, *blake3::hash(b"abcdefgh").as_bytes());
        assert_eq!(
            written.digests,
            vec![vec![b"abcdefgh".iter().fold(0, |a, b| a ^ b)]]
        );
    }
    assert_eq!(file_count(&volume).await, (0, 0));

    // One byte over, size unannounced: what was buffered goes to the file first.
    let written = volume
        .write(body(&[b"abc", b"defgh", b"i"]), inline(None))
        .await
        .unwrap();
    assert!(written.inline.is_none());
    assert_eq!(
        written.md5,
        <[u8; 16]>::from(md5::Md5::digest(b"abcdefghi"))
    );
    let locator = written.locator.unwrap();
    assert_eq!(read_all(&volume, &locator, 0..9).await, b"abcdefghi");
    assert_eq!(file_count(&volume).await, (1, 0));

    // The limits hold while buffering too.
    let short = volume.write(body(&[b"abc"]), inline(Some(5))).await;
    assert!(
        matches!(
            short,
            Err(Error::Incomplete {
                expected: 5,
                received: 3
            })
        ),
        "{short:?}"
    );
    let long = volume.write(body(&[b"abc", b"def"]), inline(Some(4))).await;
    assert!(
        matches!(long, Err(Error::TooLarge { limit: 4, .. })),
        "{long:?}"
    );
    let quota = WriteOptions {
        max: Some((2, LimitReason::Quota)),
        ..inline(None)
    };
    let over = volume.write(body(&[b"abc"]), quota).await;
    assert!(
        matches!(
            over,
            Err(Error::TooLarge {
                limit: 2,
                reason: LimitReason::Quota
            })
        ),
        "{over:?}"
    );
    let empty = volume.write(body(&[]), inline(None)).await.unwrap();
    assert!(empty.inline.is_none() && empty.locator.is_none());
    assert_eq!(file_count(&volume).await, (1, 0));
}

/// A disk that fails mid-upload (full, or its temp folder gone) is what the writer reports,
/// not the body it stopped reading: a full disk must not answer "your body was short".
#[tokio::test]
async fn a_disk_failure_is_reported_as_itself_not_as_a_short_body() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Volume::open(dir.path()).unwrap();
    std::fs::remove_dir_all(volume.temp_dir()).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let chunks: Vec<&[u8]> = (0..64).map(|_| chunk.as_slice()).collect();
    let written = volume
        .write(
            body(&chunks),
            WriteOptions {
                expected: Some(64 * chunk.len() as u64),
                max: None,
                ..Default::default()
            },
        )
        .await;
    match written {
        Err(Error::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}"),
        other => panic!("expected the disk's error, got {other:?}"),
    }
}
