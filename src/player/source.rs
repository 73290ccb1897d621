//! [`ChunkSource`]: a track's bytes as a seekable symphonia `MediaSource`, read chunk by chunk
//! from the store. A read of a chunk that is not stored yet moves the feed's playhead there
//! (so the fetcher asks for it first) and blocks until the chunk is verified and stored.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};

use symphonia::core::io::MediaSource;

use super::feed::{Feed, FeedError};
use crate::Local;
use crate::catalog::StoreError;
use crate::catalog::chunk::{Manifest, chunk_index, chunk_ranges};
use crate::catalog::ids::ContentId;

/// How long a read waits between nudges of the fetcher when nothing arrives.
const NUDGE_EVERY: Duration = Duration::from_millis(500);

/// Most damaged chunks one source repairs from peers before it gives up on the track.
const MAX_REPAIRS: u32 = 8;

/// Streams a track from peers again from chunk `idx`, through `feed` if there is one or a new
/// feed otherwise; returns the feed its chunks arrive on, or `None` if that cannot be done.
pub type Repair = Arc<dyn Fn(Option<Arc<Feed>>, usize) -> Option<Arc<Feed>> + Send + Sync>;

/// Reads one track's bytes from the store, waiting on a [`Feed`] for chunks still in flight.
pub struct ChunkSource {
    local: Arc<Local>,
    id: ContentId,
    manifest: Manifest,
    starts: Vec<u64>,
    pos: u64,
    current: Option<(usize, Vec<u8>)>,
    feed: Option<Arc<Feed>>,
    stall: Duration,
    repair: Option<Repair>,
    repairs: u32,
}

impl std::fmt::Debug for ChunkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSource").field("id", &self.id).field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl ChunkSource {
    /// A source for track `id` described by `manifest`. Without a feed every chunk must be
    /// stored already; with one, reads wait for missing chunks for up to `stall` without
    /// progress before failing.
    pub fn new(local: Arc<Local>, id: ContentId, manifest: Manifest, feed: Option<Arc<Feed>>, stall: Duration) -> Self {
        let starts = chunk_ranges(manifest.size).map(|r| r.start).collect();
        Self { local, id, manifest, starts, pos: 0, current: None, feed, stall, repair: None, repairs: 0 }
    }

    /// Repairs damage instead of failing: a chunk whose stored bytes no longer match its hash
    /// is dropped from the store and fetched again from peers through `repair`.
    pub fn with_repair(mut self, repair: Repair) -> Self {
        self.repair = Some(repair);
        self
    }

    /// Reads the first chunk now, so a track that cannot be read at all fails with the reason
    /// (a damaged chunk, a fetch that gave up) rather than as "not audio" from the decoder.
    pub fn prime(mut self) -> Result<Self, std::io::Error> {
        if self.manifest.size > 0 {
            self.load(0)?;
        }
        Ok(self)
    }

    /// The track's size in bytes.
    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    fn load(&mut self, idx: usize) -> std::io::Result<()> {
        let chunk = *self.manifest.chunks.get(idx).ok_or_else(|| other(format!("chunk {idx} is past the end")))?;
        let local = self.local.clone();
        let store = &local.store;
        if let Some(feed) = &self.feed {
            feed.want(idx);
        }
        let mut last_progress = Instant::now();
        loop {
            let seen = match &self.feed {
                Some(f) => Some(f.version().map_err(|e| self.feed_error(idx, e))?),
                None => None,
            };
            if store.has_intact_chunk(&chunk).map_err(|e| other(e.to_string()))? {
                // Verified against its name on every read: a chunk damaged on disk is never
                // played; it is fetched again if this source can repair, an error otherwise.
                match store.read_chunk(&chunk) {
                    Ok(bytes) => {
                        let _ = store.touch(&chunk);
                        self.current = Some((idx, bytes));
                        return Ok(());
                    }
                    Err(e @ StoreError::CorruptChunk(_)) if self.start_repair(idx) => {
                        tracing::warn!("track {}: {e}; fetching chunk {idx} again from peers", self.id.short());
                        continue;
                    }
                    Err(e) => return Err(other(format!("track {}: {e}", self.id.short()))),
                }
            }
            let (Some(feed), Some(seen)) = (&self.feed, seen) else {
                return Err(other(format!("track {}: chunk {idx} is not stored", self.id.short())));
            };
            match feed.wait(seen, NUDGE_EVERY) {
                Ok(_) => {}
                Err(FeedError::TimedOut(_)) => {
                    if last_progress.elapsed() >= self.stall {
                        let waited = last_progress.elapsed();
                        return Err(self.feed_error(idx, FeedError::TimedOut(waited)));
                    }
                    feed.renudge();
                    continue;
                }
                Err(e) => return Err(self.feed_error(idx, e)),
            }
            last_progress = Instant::now();
        }
    }

    /// Drops damaged chunk `idx` from the store and streams the track again from its place.
    /// False if this source cannot repair (no node, or too many repairs already).
    fn start_repair(&mut self, idx: usize) -> bool {
        let Some(repair) = &self.repair else { return false };
        let Some(chunk) = self.manifest.chunks.get(idx) else { return false };
        if self.repairs >= MAX_REPAIRS || !self.local.store.forget_damaged_chunk(chunk).unwrap_or(false) {
            return false;
        }
        self.repairs += 1;
        self.feed = repair(self.feed.take(), idx);
        self.feed.is_some()
    }

    fn feed_error(&self, idx: usize, e: FeedError) -> std::io::Error {
        other(format!("track {}: chunk {idx} of {} did not arrive: {e}", self.id.short(), self.manifest.chunks.len()))
    }
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl Read for ChunkSource {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.manifest.size || out.is_empty() {
            return Ok(0);
        }
        let idx = chunk_index(self.pos);
        if self.current.as_ref().is_none_or(|(i, _)| *i != idx) {
            self.load(idx)?;
        }
        let Some((_, bytes)) = &self.current else { return Ok(0) };
        let start = self.starts.get(idx).copied().unwrap_or(0);
        let from = (self.pos - start) as usize;
        let avail = bytes.get(from..).unwrap_or(&[]);
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkSource {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let size = self.manifest.size as i128;
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => size + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        if target < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"));
        }
        self.pos = u64::try_from(target).unwrap_or(u64::MAX);
        Ok(self.pos)
    }
}

impl MediaSource for ChunkSource {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.manifest.size)
    }
}
