//! Object checksums (S3's flexible checksums): CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256,
//! computed in the same pass that writes the bytes, verified against what the client sent
//! (header or trailer), stored with the version and returned on request.
//!
//! Multipart objects combine their parts' checksums: `COMPOSITE` is the checksum of the
//! concatenated part checksums with a `-N` suffix; `FULL_OBJECT` (CRCs only) is the CRC of
//! the whole object, combined mathematically from the parts' CRCs and lengths.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    #[serde(rename = "FULL_OBJECT")]
    FullObject,
    #[serde(rename = "COMPOSITE")]
    Composite,
}

impl ChecksumType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "FULL_OBJECT" => Some(ChecksumType::FullObject),
            "COMPOSITE" => Some(ChecksumType::Composite),
            _ => None,
        }
    }
}

/// A stored checksum: what `x-amz-checksum-<algorithm>` answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// Base64 of the digest; composite ones end in `-N`.
    pub value: String,
    #[serde(rename = "type")]
    pub kind: ChecksumType,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The name S3 uses (`CRC32`, `CRC64NVME`, ...), also the header suffix in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            ChecksumAlgorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            ChecksumAlgorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            ChecksumAlgorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
        }
    }

    /// Whether a multipart object can carry a FULL_OBJECT checksum of this kind.
    pub fn combinable(self) -> bool {
        self.crc().is_some()
    }

    /// A hasher the volume feeds while writing.
    pub(crate) fn hasher(self) -> Box<dyn portico_volume::Hasher> {
        match self.crc() {
            Some(crc) => Box::new(CrcHasher {
                digest: crc_fast::Digest::new(crc),
                width: self.digest_len(),
            }),
            None if self == ChecksumAlgorithm::Sha1 => Box::new(ShaHasher(sha1::Sha1::default())),
            None => Box::new(ShaHasher(sha2::Sha256::default())),
        }
    }

    /// Checks that `value` is base64 of a digest of the right length.
    pub fn decode(self, value: &str) -> Result<Vec<u8>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| invalid(self))?;
        if bytes.len() != self.digest_len() {
            return Err(invalid(self));
        }
        Ok(bytes)
    }

    pub fn encode(digest: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(digest)
    }

    /// The COMPOSITE checksum of parts: the checksum of their concatenated digests, `-N`.
    pub fn composite(self, part_digests: &[Vec<u8>]) -> String {
        let mut hasher = self.hasher();
        for digest in part_digests {
            hasher.update(digest);
        }
        format!("{}-{}", Self::encode(&hasher.finish()), part_digests.len())
    }

    /// The FULL_OBJECT CRC of an object from its parts' CRCs and sizes; `None` for SHAs.
    pub fn combine(self, parts: &[(Vec<u8>, u64)]) -> Option<String> {
        let crc = self.crc()?;
        let width = self.digest_len();
        let mut combined: Option<u64> = None;
        for (digest, length) in parts {
            let value = digest
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            combined = Some(match combined {
                None => value,
                Some(previous) => crc_fast::checksum_combine(crc, previous, value, *length),
            });
        }
        let value = combined.unwrap_or_else(|| crc_fast::checksum(crc, b""));
        Some(Self::encode(&value.to_be_bytes()[8 - width..]))
    }
}

fn invalid(algorithm: ChecksumAlgorithm) -> Error {
    Error::InvalidInput {
        field: "checksum",
        reason: format!(
            "the {} checksum is not a valid base64 digest",
            algorithm.as_str()
        ),
    }
}

struct CrcHasher {
    digest: crc_fast::Digest,
    width: usize,
}

impl portico_volume::Hasher for CrcHasher {
    fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        self.digest.finalize().to_be_bytes()[8 - self.width..].to_vec()
    }
}

struct ShaHasher<D>(D);

impl<D: sha2::Digest + Send> portico_volume::Hasher for ShaHasher<D> {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        sha2::Digest::finalize(self.0).to_vec()
    }
}

/// What the client says the checksum must be: known before the body (a header), or only
/// after it (an aws-chunked trailer, read once the body has been consumed).
pub enum ExpectedChecksum {
    /// Compute this algorithm; the client sent no value (store what we computed).
    Compute(ChecksumAlgorithm),
    Value(ChecksumAlgorithm, String),
    Trailer(
        ChecksumAlgorithm,
        Box<dyn FnOnce() -> Option<String> + Send>,
    ),
}

impl std::fmt::Debug for ExpectedChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedChecksum::Compute(a) => write!(f, "Compute({a:?})"),
            ExpectedChecksum::Value(a, v) => write!(f, "Value({a:?}, {v})"),
            ExpectedChecksum::Trailer(a, _) => write!(f, "Trailer({a:?})"),
        }
    }
}

impl ExpectedChecksum {
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self {
            ExpectedChecksum::Compute(a)
            | ExpectedChecksum::Value(a, _)
            | ExpectedChecksum::Trailer(a, _) => *a,
        }
    }

    /// Compares the computed digest with the client's value; returns the checksum to store.
    pub(crate) fn settle(self, computed: &[u8]) -> Result<Checksum> {
        let algorithm = self.algorithm();
        let expected = match self {
            ExpectedChecksum::Compute(_) => None,
            ExpectedChecksum::Value(_, value) => Some(value),
            ExpectedChecksum::Trailer(_, read) => {
                Some(read().ok_or_else(|| Error::InvalidInput {
                    field: "checksum",
                    reason: format!(
                        "the announced x-amz-checksum-{} trailer is missing",
                        algorithm.as_str().to_lowercase()
                    ),
                })?)
            }
        };
        if let Some(expected) = expected
            && algorithm.decode(&expected)? != computed
        {
            return Err(Error::BadChecksum(algorithm));
        }
        Ok(Checksum {
            algorithm,
            value: ChecksumAlgorithm::encode(computed),
            kind: ChecksumType::FullObject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut hasher = algorithm.hasher();
        hasher.update(data);
        hasher.finish()
    }

    #[test]
    fn digests_match_published_check_values() {
        // The standard check input "123456789".
        for (algorithm, expected_hex) in [
            (ChecksumAlgorithm::Crc32, "cbf43926"),
            (ChecksumAlgorithm::Crc32c, "e3069283"),
            (ChecksumAlgorithm::Crc64Nvme, "ae8b14860a799888"),
            (
                ChecksumAlgorithm::Sha1,
                "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
            ),
        ] {
            assert_eq!(
                hex::encode(digest(algorithm, b"123456789")),
                expected_hex,
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn full_object_crcs_combine_from_parts() {
        let data = b"the quick brown fox jumps over the lazy dog, twice over";
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let parts: Vec<(Vec<u8>, u64)> = data
                .chunks(17)
                .map(|chunk| (digest(algorithm, chunk), chunk.len() as u64))
                .collect();
            let whole = ChecksumAlgorithm::encode(&digest(algorithm, data));
            assert_eq!(algorithm.combine(&parts).unwrap(), whole, "{algorithm:?}");
        }
        assert!(ChecksumAlgorithm::Sha256.combine(&[]).is_none());
    }

    #[test]
    fn composite_checksums_hash_the_part_digests() {
        let parts = vec![
            digest(ChecksumAlgorithm::Sha256, b"a"),
            digest(ChecksumAlgorithm::Sha256, b"b"),
        ];
        let joined: Vec<u8> = parts.concat();
        let expected = format!(
            "{}-2",
            ChecksumAlgorithm::encode(&digest(ChecksumAlgorithm::Sha256, &joined))
        );
        assert_eq!(ChecksumAlgorithm::Sha256.composite(&parts), expected);
    }

    #[test]
    fn expected_values_are_verified() {
        let computed = digest(ChecksumAlgorithm::Crc32, b"hello");
        let good = ChecksumAlgorithm::encode(&computed);
        let ok = ExpectedChecksum::Value(ChecksumAlgorithm::Crc32, good.clone())
            .settle(&computed)
            .unwrap();
        assert_eq!(ok.value, good);
        let bad =
            ExpectedChecksum::Value(ChecksumAlgorithm::Crc32, "AAAAAA==".into()).settle(&computed);
        assert!(matches!(
            bad,
            Err(Error::BadChecksum(ChecksumAlgorithm::Crc32))
        ));
        let malformed = ExpectedChecksum::Value(ChecksumAlgorithm::Crc32, "not base64!".into())
            .settle(&computed);
        assert!(matches!(malformed, Err(Error::InvalidInput { .. })));
        let trailer =
            ExpectedChecksum::Trailer(ChecksumAlgorithm::Crc32, Box::new(move || Some(good)))
                .settle(&computed);
        assert!(trailer.is_ok());
        let missing = ExpectedChecksum::Trailer(ChecksumAlgorithm::Crc32, Box::new(|| None))
            .settle(&computed);
        assert!(matches!(missing, Err(Error::InvalidInput { .. })));
    }
}
