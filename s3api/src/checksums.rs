//! S3 flexible checksums on the wire: which one a request carries (a header, or a trailer
//! of an aws-chunked body that s3s decoded), and the response fields that return one.

use http::HeaderMap;
use portico_drive::{Checksum, ChecksumAlgorithm, ChecksumType, Ctx, ExpectedChecksum};
use s3s::S3Result;

use crate::fail_invalid;

/// The `x-amz-checksum-*` values of a request, by algorithm.
pub(crate) struct Sent {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Sent {
    fn values(self) -> Vec<(ChecksumAlgorithm, String)> {
        [
            (ChecksumAlgorithm::Crc32, self.crc32),
            (ChecksumAlgorithm::Crc32c, self.crc32c),
            (ChecksumAlgorithm::Crc64Nvme, self.crc64nvme),
            (ChecksumAlgorithm::Sha1, self.sha1),
            (ChecksumAlgorithm::Sha256, self.sha256),
        ]
        .into_iter()
        .filter_map(|(algorithm, value)| value.map(|value| (algorithm, value)))
        .collect()
    }

    /// The one value sent, if any (more than one is an error).
    pub(crate) fn single(self, ctx: &Ctx) -> S3Result<Option<(ChecksumAlgorithm, String)>> {
        let mut values = self.values();
        if values.len() > 1 {
            return Err(fail_invalid(
                ctx,
                "checksum",
                "send only one x-amz-checksum-* value",
            ));
        }
        Ok(values.pop())
    }
}

macro_rules! sent {
    ($input:expr) => {
        $crate::checksums::Sent {
            crc32: $input.checksum_crc32.take(),
            crc32c: $input.checksum_crc32c.take(),
            crc64nvme: $input.checksum_crc64nvme.take(),
            sha1: $input.checksum_sha1.take(),
            sha256: $input.checksum_sha256.take(),
        }
    };
}
pub(crate) use sent;

/// What the body's checksum must be: a header value, a trailer announced by
/// `x-amz-trailer` (read after the body was consumed), or just an algorithm to compute.
pub(crate) fn expected(
    ctx: &Ctx,
    sent: Sent,
    algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
    headers: &HeaderMap,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<Option<ExpectedChecksum>> {
    if let Some((algorithm, value)) = sent.single(ctx)? {
        return Ok(Some(ExpectedChecksum::Value(algorithm, value)));
    }
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if let Some(name) = trailer.filter(|name| name.starts_with("x-amz-checksum-")) {
        let algorithm = ChecksumAlgorithm::parse(&name["x-amz-checksum-".len()..])
            .ok_or_else(|| fail_invalid(ctx, "x-amz-trailer", "unknown checksum algorithm"))?;
        let Some(trailers) = trailers else {
            return Err(fail_invalid(
                ctx,
                "x-amz-trailer",
                "a trailer was announced without an aws-chunked body",
            ));
        };
        let read = move || {
            trailers
                .read(|headers| {
                    headers
                        .get(&name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten()
        };
        return Ok(Some(ExpectedChecksum::Trailer(algorithm, Box::new(read))));
    }
    match algorithm {
        Some(name) => {
            let algorithm = ChecksumAlgorithm::parse(name.as_str()).ok_or_else(|| {
                fail_invalid(
                    ctx,
                    "x-amz-sdk-checksum-algorithm",
                    "unknown checksum algorithm",
                )
            })?;
            Ok(Some(ExpectedChecksum::Compute(algorithm)))
        }
        None => Ok(None),
    }
}

pub(crate) fn algorithm_dto(algorithm: ChecksumAlgorithm) -> s3s::dto::ChecksumAlgorithm {
    s3s::dto::ChecksumAlgorithm::from(algorithm.as_str().to_owned())
}

pub(crate) fn type_dto(kind: ChecksumType) -> s3s::dto::ChecksumType {
    s3s::dto::ChecksumType::from(kind.as_str().to_owned())
}

/// Sets the `checksum_<algorithm>` field of an output for each checksum given.
macro_rules! set_checksums {
    ($output:expr, $checksums:expr) => {
        for checksum in $checksums {
            let value = Some(checksum.value.clone());
            match checksum.algorithm {
                portico_drive::ChecksumAlgorithm::Crc32 => $output.checksum_crc32 = value,
                portico_drive::ChecksumAlgorithm::Crc32c => $output.checksum_crc32c = value,
                portico_drive::ChecksumAlgorithm::Crc64Nvme => $output.checksum_crc64nvme = value,
                portico_drive::ChecksumAlgorithm::Sha1 => $output.checksum_sha1 = value,
                portico_drive::ChecksumAlgorithm::Sha256 => $output.checksum_sha256 = value,
            }
        }
    };
}
pub(crate) use set_checksums;

/// The checksum to return with a whole-object read when the client asked for it
/// (`x-amz-checksum-mode: ENABLED`). Never for ranges: clients validate what they get
/// against it.
pub(crate) fn for_read<'a>(
    mode: Option<&s3s::dto::ChecksumMode>,
    whole: bool,
    checksum: Option<&'a Checksum>,
) -> Option<&'a Checksum> {
    let enabled = mode.is_some_and(|m| {
        m.as_str()
            .eq_ignore_ascii_case(s3s::dto::ChecksumMode::ENABLED)
    });
    checksum.filter(|_| enabled && whole)
}
