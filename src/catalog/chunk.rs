//! Content addressing: how a file is cut into chunks, and the manifest that names them.
//!
//! # Chunk size
//!
//! A file is cut at fixed offsets: a small **lead chunk of 32 KiB**, then **256 KiB chunks**.
//!
//! * The lead chunk serves a fast first sound. 32 KiB holds the container header plus the first
//!   fraction of a second of audio for every codec we import (about 2 s of 128 kbit/s MP3, 0.3 s
//!   of CD-quality FLAC), and crosses a 20 Mbit/s link in about 13 ms, so a player can start
//!   decoding after one small verified request instead of waiting for a quarter megabyte.
//! * 256 KiB chunks serve bulk transfer: a 200 MB release is about 800 requests, so per-request
//!   overhead stays well under 1 % on loopback, while one chunk is still small enough to
//!   re-fetch cheaply from another peer when one sends bad bytes, and to keep many in flight
//!   from several peers without large buffers. Every chunk is verified against its BLAKE3 name
//!   before it is stored or played, so a lying peer costs at most one chunk.
//! * Fixed offsets (rather than content-defined boundaries) let a player map a byte offset to
//!   a chunk index with no lookup, which is what seeking needs. Identical files, and identical
//!   chunks at the same offsets, are still stored once.
//!
//! A [`Manifest`] lists the chunk hashes and the BLAKE3 hash of the whole file; the track's
//! content id is the BLAKE3 hash of the manifest's encoding.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ids::ContentId;

/// Size of the first chunk of every file.
pub const LEAD_CHUNK: u64 = 32 * 1024;
/// Size of every later chunk (the last may be shorter).
pub const CHUNK: u64 = 256 * 1024;
/// Largest file a manifest may describe (8 GiB).
pub const MAX_FILE_BYTES: u64 = 8 << 30;
const MANIFEST_VERSION: u8 = 1;

/// A file's content description: size, whole-file hash and chunk hashes in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Encoding version (1).
    pub version: u8,
    /// File size in bytes.
    pub size: u64,
    /// BLAKE3 hash of the whole file.
    pub hash: ContentId,
    /// Chunk hashes, in file order, following [`chunk_ranges`].
    pub chunks: Vec<ContentId>,
}

/// Why manifest bytes were rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The bytes do not hash to the id they were requested under.
    #[error("manifest bytes hash to {got}, expected {expected}")]
    HashMismatch {
        /// The id asked for.
        expected: ContentId,
        /// What the bytes hash to.
        got: ContentId,
    },
    /// Not a decodable manifest, or inconsistent with the chunk plan.
    #[error("malformed manifest {0}: {1}")]
    Malformed(ContentId, String),
}

/// Byte ranges of the chunks of a file of `size` bytes.
pub fn chunk_ranges(size: u64) -> impl Iterator<Item = Range<u64>> {
    let lead = (size > 0).then(|| 0..size.min(LEAD_CHUNK));
    let rest = (LEAD_CHUNK..size).step_by(CHUNK as usize).map(move |start| start..(start + CHUNK).min(size));
    lead.into_iter().chain(rest)
}

/// Number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64) -> usize {
    if size <= LEAD_CHUNK { usize::from(size > 0) } else { 1 + (size - LEAD_CHUNK).div_ceil(CHUNK) as usize }
}

/// Index of the chunk that holds byte `offset`.
pub fn chunk_index(offset: u64) -> usize {
    if offset < LEAD_CHUNK { 0 } else { 1 + ((offset - LEAD_CHUNK) / CHUNK) as usize }
}

impl Manifest {
    /// Hashes `data` (both cores: the whole-file hash and the chunk hashes run side by side).
    pub fn build(data: &[u8]) -> Self {
        let ranges: Vec<Range<u64>> = chunk_ranges(data.len() as u64).collect();
        let (hash, chunks) = rayon::join(
            || ContentId::from(blake3::Hasher::new().update_rayon(data).finalize()),
            || ranges.par_iter().map(|r| ContentId::of(&data[r.start as usize..r.end as usize])).collect(),
        );
        Self { version: MANIFEST_VERSION, size: data.len() as u64, hash, chunks }
    }

    /// The canonical encoding, whose hash is the content id.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// The content id.
    pub fn id(&self) -> ContentId {
        ContentId::of(&self.encode())
    }

    /// Decodes manifest bytes that must hash to `expected`, and checks them against the plan.
    pub fn decode(bytes: &[u8], expected: &ContentId) -> Result<Self, ManifestError> {
        let got = ContentId::of(bytes);
        if got != *expected {
            return Err(ManifestError::HashMismatch { expected: *expected, got });
        }
        let bad = |why: String| ManifestError::Malformed(*expected, why);
        // A manifest for the largest file is 32 bytes a chunk; refuse anything far beyond that.
        if bytes.len() > 64 + 33 * chunk_count(MAX_FILE_BYTES) {
            return Err(bad(format!("{} bytes is too large", bytes.len())));
        }
        let (m, rest): (Manifest, _) = postcard::take_from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() || m.version != MANIFEST_VERSION {
            return Err(bad(format!("version {} or trailing bytes", m.version)));
        }
        if m.size > MAX_FILE_BYTES || m.chunks.len() != chunk_count(m.size) {
            return Err(bad(format!("{} chunks for {} bytes", m.chunks.len(), m.size)));
        }
        Ok(m)
    }

    /// Chunk hashes paired with their byte ranges.
    pub fn chunk_plan(&self) -> impl Iterator<Item = (ContentId, Range<u64>)> + '_ {
        self.chunks.iter().copied().zip(chunk_ranges(self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_file_exactly() {
        for size in [0, 1, LEAD_CHUNK - 1, LEAD_CHUNK, LEAD_CHUNK + 1, LEAD_CHUNK + CHUNK, 5 * CHUNK + 17] {
            let r: Vec<_> = chunk_ranges(size).collect();
            assert_eq!(r.len(), chunk_count(size), "size {size}");
            let mut at = 0;
            for (i, c) in r.iter().enumerate() {
                assert_eq!(c.start, at);
                assert!(c.end > c.start);
                assert_eq!(chunk_index(c.start), i);
                assert_eq!(chunk_index(c.end - 1), i);
                at = c.end;
            }
            assert_eq!(at, size);
        }
    }

    #[test]
    fn manifest_round_trip_and_tamper() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let m = Manifest::build(&data);
        assert_eq!(m.hash, ContentId::of(&data));
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes, &m.id()).unwrap(), m);
        let mut bad = bytes.clone();
        bad[5] ^= 1;
        assert!(matches!(Manifest::decode(&bad, &m.id()), Err(ManifestError::HashMismatch { .. })));
        let mut short = m.clone();
        short.chunks.pop();
        assert!(Manifest::decode(&short.encode(), &short.id()).is_err());
    }
}
