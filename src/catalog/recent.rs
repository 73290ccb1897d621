//! Chunks received and verified a moment ago, kept in memory for a few seconds.
//!
//! Fans fetching one release together ask each other for the chunks they have just received:
//! that is how a swarm spreads a release without the seeder sending every copy. Such a chunk
//! is served from here instead of being read back from disk and hashed again. Only bytes
//! that matched their BLAKE3 chaining value go in, and an entry is keyed by that value, so a
//! hit needs no second check. A chunk goes in only when a connected peer may ask for it (the
//! fetching side decides: not when every peer holds the whole content already). Local reads
//! (players, `verify`) do not use it: they must find damage on disk, so that it is repaired.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ids::ContentId;

/// Most bytes kept (160 chunks of 256 KiB). Fans trading a release ask for a chunk soon after
/// it arrives, so the tail of a larger cache is rarely read; filling it costs fresh memory,
/// which is slow to touch on a VM. 1 -> 4 bench, interleaved: 40 MiB beat 64 MiB in 6 of 8
/// rounds (time -6%), and 32 MiB beat it in 5 of 6.
pub const RECENT_BYTES: usize = 40 << 20;
/// How long a chunk stays after it was verified.
pub const RECENT_FOR: Duration = Duration::from_secs(5);

/// Recently verified chunks, oldest dropped first.
#[derive(Default)]
pub(crate) struct Recent {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    chunks: HashMap<ContentId, (Instant, Bytes)>,
    order: VecDeque<(ContentId, Instant)>,
    bytes: usize,
}

impl Recent {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent, so a panic elsewhere cannot poison them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `bytes`, already verified to be chunk `id`.
    pub(crate) fn insert(&self, id: ContentId, bytes: Bytes) {
        if bytes.len() > RECENT_BYTES {
            return;
        }
        let mut inner = self.lock();
        if inner.chunks.contains_key(&id) {
            return;
        }
        let now = Instant::now();
        inner.bytes += bytes.len();
        inner.chunks.insert(id, (now, bytes));
        inner.order.push_back((id, now));
        inner.expire(now);
    }

    /// Chunk `id`, if it was verified in the last [`RECENT_FOR`].
    pub(crate) fn get(&self, id: &ContentId) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.expire(Instant::now());
        inner.chunks.get(id).map(|(_, b)| b.clone())
    }

    /// Forgets chunk `id` (it left the store).
    pub(crate) fn remove(&self, id: &ContentId) {
        let mut inner = self.lock();
        if let Some((_, b)) = inner.chunks.remove(id) {
            inner.bytes -= b.len();
        }
    }

    /// Drops what is older than [`RECENT_FOR`], so an idle node holds nothing.
    pub(crate) fn expire(&self) {
        self.lock().expire(Instant::now());
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent").field("bytes", &self.bytes()).finish()
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front().copied() {
            if now.duration_since(at) <= RECENT_FOR && self.bytes <= RECENT_BYTES {
                break;
            }
            self.order.pop_front();
            // A chunk removed and inserted again is queued twice: only the newer entry owns it.
            if self.chunks.get(&id).is_some_and(|(t, _)| *t == at)
                && let Some((_, b)) = self.chunks.remove(&id)
            {
                self.bytes -= b.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ContentId {
        ContentId([n; 32])
    }

    #[test]
    fn keeps_at_most_its_cap_and_drops_the_oldest_first() {
        let recent = Recent::default();
        let chunk = 1 << 20;
        let n = RECENT_BYTES / chunk;
        for i in 0..=n {
            recent.insert(id(i as u8), vec![i as u8; chunk].into());
        }
        assert_eq!(recent.bytes(), RECENT_BYTES);
        assert!(recent.get(&id(0)).is_none(), "the oldest chunk went first");
        assert_eq!(recent.get(&id(n as u8)).map(|b| b[0]), Some(n as u8));
        recent.remove(&id(1));
        recent.insert(id(1), vec![9; 10].into());
        assert_eq!(recent.get(&id(1)).map(|b| b.len()), Some(10));
        assert_eq!(recent.bytes(), RECENT_BYTES - chunk + 10);
    }
}
