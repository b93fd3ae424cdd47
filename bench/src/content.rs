//! Object contents: deterministic, different per object, produced without per-byte work
//! (slices of one shared random block), and checkable by hash when read back.

use bytes::Bytes;

const BLOCK: usize = 1 << 20;

/// A 1 MiB pseudo-random block every object is cut from.
#[derive(Clone)]
pub struct Pattern {
    block: Bytes,
}

impl Pattern {
    pub fn new() -> Self {
        let mut block = vec![0u8; BLOCK];
        blake3::Hasher::new()
            .update(b"portico-bench pattern")
            .finalize_xof()
            .fill(&mut block);
        Self {
            block: Bytes::from(block),
        }
    }

    /// The chunks of object `seed` of `size` bytes: the seed's 8 bytes, then the block
    /// starting at an offset the seed picks, wrapping around.
    pub fn chunks(&self, seed: u64, size: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let header = Bytes::copy_from_slice(&seed.to_le_bytes());
        let header_len = header.len().min(size as usize);
        let first = header.slice(..header_len);
        let block = self.block.clone();
        let mut offset = (seed as usize).wrapping_mul(7919) % BLOCK;
        let mut left = size - header_len as u64;
        std::iter::once(first)
            .chain(std::iter::from_fn(move || {
                if left == 0 {
                    return None;
                }
                let take = ((BLOCK - offset) as u64).min(left) as usize;
                let chunk = block.slice(offset..offset + take);
                offset = (offset + take) % BLOCK;
                left -= take as u64;
                Some(chunk)
            }))
            .filter(|chunk| !chunk.is_empty())
    }

    /// The BLAKE3 of object `seed`, computed the way a reader will.
    pub fn hash(&self, seed: u64, size: u64) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        for chunk in self.chunks(seed, size) {
            hasher.update(&chunk);
        }
        hasher.finalize()
    }
}

/// A seed for an object name: different names, different bytes.
pub fn seed_of(name: &str) -> u64 {
    let hash = blake3::hash(name.as_bytes());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_add_up_and_differ_by_seed() {
        let pattern = Pattern::new();
        for size in [0u64, 3, 8, 9, 4096, (1 << 20) + 17, 3 << 20] {
            let total: usize = pattern.chunks(5, size).map(|c| c.len()).sum();
            assert_eq!(total as u64, size);
        }
        assert_ne!(pattern.hash(1, 4096), pattern.hash(2, 4096));
        assert_eq!(pattern.hash(1, 4096), pattern.hash(1, 4096));
    }
}
