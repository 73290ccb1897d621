//! Content addressing: how a file is cut into chunks, and the manifest that names them.
//!
//! # Chunk plan
//!
//! A file is cut at fixed offsets: **32 KiB, 32 KiB, 64 KiB, 128 KiB, then 256 KiB chunks**.
//!
//! * The small leading chunks serve a fast first sound. 32 KiB holds the container header plus
//!   the first fraction of a second of audio for every codec we import (about 2 s of
//!   128 kbit/s MP3, 0.3 s of CD-quality FLAC) and crosses a 20 Mbit/s link in about 13 ms; the
//!   ramp then doubles as playback gets ahead of the network.
//! * 256 KiB chunks serve bulk transfer: a 200 MB release is about 800 requests, so per-request
//!   overhead stays small, while one chunk is still cheap to re-fetch from another peer when
//!   one sends bad bytes.
//! * Fixed offsets let a player map a byte offset to a chunk with no lookup, which seeking needs.
//!
//! # Names: BLAKE3 chaining values
//!
//! Every chunk boundary is aligned to a power-of-two subtree of BLAKE3's hash tree, so each
//! chunk is named by its **chaining value**: the BLAKE3 hash of that subtree, computed with the
//! chunk's offset (as bao and iroh-blobs do). The whole-file BLAKE3 hash is then the merge of
//! the chunk chaining values up the tree: publishing hashes every byte **once** and still gets
//! both the chunk names and the standard whole-file hash (`b3sum` prints the same value).
//! A manifest whose chunk names do not merge to its file hash is rejected.
//!
//! A chunk's name depends on its offset: a received chunk is verified with the offset its
//! manifest gives. Identical files (and identical chunks at the same offset) are stored once.
//! The track's content id is the BLAKE3 hash of its manifest's encoding.

use std::io::Read;
use std::ops::Range;

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ids::ContentId;

/// Size of the first chunk of every file.
pub const LEAD_CHUNK: u64 = 32 * 1024;
/// Size of every chunk after the ramp (the last may be shorter).
pub const CHUNK: u64 = 256 * 1024;
/// Largest file a manifest may describe (8 GiB).
pub const MAX_FILE_BYTES: u64 = 8 << 30;
const MANIFEST_VERSION: u8 = 2;
/// Bytes read at a time when hashing a file: a multiple of [`CHUNK`], so blocks hold whole chunks.
const HASH_BLOCK: u64 = 32 * CHUNK;
/// Chunk starts below [`CHUNK`]: the ramp.
const RAMP: [u64; 4] = [0, 32 * 1024, 64 * 1024, 128 * 1024];

/// A file's content description: size, whole-file hash and chunk names in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Encoding version (2).
    pub version: u8,
    /// File size in bytes.
    pub size: u64,
    /// BLAKE3 hash of the whole file.
    pub hash: ContentId,
    /// Chunk chaining values, in file order, following [`chunk_ranges`].
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
    let ramp = RAMP.iter().copied().zip(RAMP.iter().copied().skip(1).chain([CHUNK]));
    let rest = (CHUNK..MAX_FILE_BYTES.max(size)).step_by(CHUNK as usize).map(|s| (s, s + CHUNK));
    ramp.chain(rest).take_while(move |(s, _)| *s < size).map(move |(s, e)| s..e.min(size))
}

/// Number of chunks of a file of `size` bytes.
pub fn chunk_count(size: u64) -> usize {
    if size == 0 {
        0
    } else if size <= CHUNK {
        RAMP.iter().filter(|&&s| s < size).count()
    } else {
        RAMP.len() + (size - CHUNK).div_ceil(CHUNK) as usize
    }
}

/// Index of the chunk that holds byte `offset`.
pub fn chunk_index(offset: u64) -> usize {
    if offset < CHUNK {
        RAMP.iter().filter(|&&s| s <= offset).count() - 1
    } else {
        RAMP.len() + ((offset - CHUNK) / CHUNK) as usize
    }
}

/// The chaining value of the chunk `data` starting at byte `offset` of its file, or `None`
/// if no valid chunk looks like that (empty, unaligned offset, or longer than the subtree at
/// that offset may be). Offsets and bytes may come from a disk or a peer: this never panics.
pub fn chunk_cv(offset: u64, data: &[u8]) -> Option<ContentId> {
    // Check alignment first: max_subtree_len itself asserts it.
    if data.is_empty() || !offset.is_multiple_of(1024) {
        return None;
    }
    if blake3::hazmat::max_subtree_len(offset).is_some_and(|max| data.len() as u64 > max) {
        return None;
    }
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(data);
    Some(ContentId(h.finalize_non_root()))
}

/// Merges chunk chaining values into the whole-file hash, following BLAKE3's tree shape.
/// `None` if the list does not fit the chunk plan for `size`.
fn merge_root(size: u64, cvs: &[ContentId]) -> Option<ContentId> {
    let starts: Vec<u64> = chunk_ranges(size).map(|r| r.start).collect();
    if starts.len() != cvs.len() || cvs.len() < 2 {
        return None;
    }
    // The CV of bytes [start, end): one chunk, or the merge of its two BLAKE3 children.
    fn cv(starts: &[u64], cvs: &[ContentId], start: u64, end: u64) -> Option<ChainingValue> {
        let i = starts.binary_search(&start).ok()?;
        if starts.get(i + 1).is_none_or(|&next| next >= end) {
            return Some(cvs[i].0);
        }
        let mid = start + blake3::hazmat::left_subtree_len(end - start);
        Some(merge_subtrees_non_root(&cv(starts, cvs, start, mid)?, &cv(starts, cvs, mid, end)?, Mode::Hash))
    }
    let mid = blake3::hazmat::left_subtree_len(size);
    let (l, r) = (cv(&starts, cvs, 0, mid)?, cv(&starts, cvs, mid, size)?);
    Some(ContentId::from(merge_subtrees_root(&l, &r, Mode::Hash)))
}

impl Manifest {
    /// Hashes `data` once: chunk chaining values in parallel, merged into the file hash.
    pub fn build(data: &[u8]) -> Self {
        let ranges: Vec<Range<u64>> = chunk_ranges(data.len() as u64).collect();
        let chunks: Vec<ContentId> =
            ranges.par_iter().filter_map(|r| chunk_cv(r.start, &data[r.start as usize..r.end as usize])).collect();
        let hash = merge_root(data.len() as u64, &chunks).unwrap_or_else(|| ContentId::of(data));
        Self { version: MANIFEST_VERSION, size: data.len() as u64, hash, chunks }
    }

    /// Hashes a file of `size` bytes read from `r`, a block at a time so memory stays bounded
    /// whatever the file's size; the chunks of each block are hashed in parallel.
    pub fn read_from(r: &mut impl Read, size: u64) -> std::io::Result<Self> {
        let short = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file is shorter than its size");
        if size <= HASH_BLOCK {
            let mut buf = Vec::with_capacity(size as usize);
            r.take(size).read_to_end(&mut buf)?;
            return if buf.len() as u64 == size { Ok(Self::build(&buf)) } else { Err(short()) };
        }
        let ranges: Vec<Range<u64>> = chunk_ranges(size).collect();
        let mut chunks = Vec::with_capacity(ranges.len());
        let mut buf = vec![0u8; HASH_BLOCK as usize];
        let (mut start, mut next) = (0u64, 0usize);
        while start < size {
            let end = (start + HASH_BLOCK).min(size);
            let block = &mut buf[..(end - start) as usize];
            r.read_exact(block)?;
            // Blocks are whole multiples of CHUNK, so no chunk straddles two blocks.
            let upto = ranges[next..].iter().position(|c| c.start >= end).map_or(ranges.len(), |k| next + k);
            let block = &*block;
            let cvs: Vec<ContentId> = ranges[next..upto]
                .par_iter()
                .filter_map(|c| chunk_cv(c.start, &block[(c.start - start) as usize..(c.end - start) as usize]))
                .collect();
            chunks.extend(cvs);
            (start, next) = (end, upto);
        }
        let hash = merge_root(size, &chunks).ok_or_else(short)?;
        Ok(Self { version: MANIFEST_VERSION, size, hash, chunks })
    }

    /// The canonical encoding, whose hash is the content id.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// The content id.
    pub fn id(&self) -> ContentId {
        ContentId::of(&self.encode())
    }

    /// Decodes manifest bytes that must hash to `expected`, and checks them against the plan:
    /// the chunk count must fit the size, and the chunk names must merge to the file hash.
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
        if m.chunks.len() > 1 && merge_root(m.size, &m.chunks) != Some(m.hash) {
            return Err(bad("chunk names do not merge to the file hash".into()));
        }
        Ok(m)
    }

    /// Chunk names paired with their byte ranges.
    pub fn chunk_plan(&self) -> impl Iterator<Item = (ContentId, Range<u64>)> + '_ {
        self.chunks.iter().copied().zip(chunk_ranges(self.size))
    }

    /// True if `data` is chunk `index` of this file.
    pub fn chunk_matches(&self, index: usize, data: &[u8]) -> bool {
        let Some(range) = chunk_ranges(self.size).nth(index) else { return false };
        data.len() as u64 == range.end - range.start && self.chunks.get(index).copied() == chunk_cv(range.start, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_file_exactly() {
        for size in [
            0,
            1,
            LEAD_CHUNK - 1,
            LEAD_CHUNK,
            LEAD_CHUNK + 1,
            100_000,
            CHUNK,
            CHUNK + 1,
            LEAD_CHUNK + CHUNK,
            5 * CHUNK + 17,
        ] {
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
        for n in [1usize, 1024, 1025, 40_000, 65_536, 200_000, 262_144, 262_145, 700_000, 3 << 20] {
            let data: Vec<u8> = (0..n as u32).map(|i| (i * 7 % 251) as u8).collect();
            let m = Manifest::build(&data);
            assert_eq!(m.hash, ContentId::of(&data), "file hash is standard BLAKE3 for {n} bytes");
            for (i, (_, r)) in m.chunk_plan().enumerate() {
                assert!(m.chunk_matches(i, &data[r.start as usize..r.end as usize]));
            }
            assert_eq!(Manifest::decode(&m.encode(), &m.id()).unwrap(), m);
        }
        for n in [5u64 << 20, HASH_BLOCK, HASH_BLOCK + 1, 3 * HASH_BLOCK + CHUNK + 5] {
            let data: Vec<u8> = (0..n).map(|i| (i * 13 % 253) as u8).collect();
            let streamed = Manifest::read_from(&mut data.as_slice(), n).unwrap();
            assert_eq!(streamed, Manifest::build(&data), "{n} bytes hashed a block at a time");
            assert!(Manifest::read_from(&mut &data[..data.len() - 1], n).is_err(), "a short file is an error");
        }
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let m = Manifest::build(&data);
        assert!(!m.chunk_matches(1, &data[..32 * 1024]), "a chunk at the wrong offset does not verify");
        assert_eq!(chunk_cv(0, &[]), None);
        assert_eq!(chunk_cv(100, &data[..10]), None, "unaligned offset");
        assert_eq!(chunk_cv(32 * 1024, &data[..40 * 1024]), None, "longer than its subtree");
        let mut swapped = m.clone();
        swapped.chunks.swap(1, 2);
        assert!(Manifest::decode(&swapped.encode(), &swapped.id()).is_err(), "chunk names must merge to the hash");
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
