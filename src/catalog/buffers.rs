//! Chunk-sized buffers, reused.
//!
//! Every chunk a node receives needs a buffer of up to [`CHUNK`] bytes, which then lives on as
//! [`Bytes`] in the recent-chunk cache and the request that asked for it. This module keeps a
//! few buffers whose last holder let go, and hands them out again, so a long download does not
//! churn the allocator with 256 KiB blocks (which glibc may hand back to the kernel and fault
//! in again) nor zero each one first. It owns nothing else; a buffer that does not come back
//! is simply freed. Measured effect in the 1 → 4 loopback bench: small (page faults during the
//! transfer 85,600 → 83,300). Most faults there come from the recent-chunk cache filling with
//! fresh memory once per node (up to [`super::recent::RECENT_BYTES`]), which no reuse can
//! avoid. A fan fetching only from seeders keeps nothing there, so its buffers do come back
//! here (1 → 1: about 6% less CPU).

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::chunk::CHUNK;

/// Most idle buffers kept: 16 of 256 KiB, 4 MiB. A transfer frees about as fast as it
/// allocates, so a few suffice; an idle node holds no more than this.
const KEEP: usize = 16;
/// Payloads smaller than this are allocated as usual: the allocator serves them from memory
/// it already has.
const SMALLEST: usize = 64 * 1024;

/// Idle buffers: one list for the process, like the allocator it stands in front of.
static POOL: Pool = Pool::new();

struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // Pushing and popping leave the list consistent, so a panic elsewhere cannot poison it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&'static self, len: usize) -> Buffer {
        let cap = CHUNK as usize;
        if !(SMALLEST..=cap).contains(&len) {
            return Buffer { bytes: vec![0; len], home: self };
        }
        let idle = self.idle().pop();
        // A new buffer comes zeroed from the allocator (calloc), which skips the work for memory
        // fresh from the kernel: zero already, where filling it again cost a pass over each
        // page (3% of CPU in the 1 -> 4 bench). A reused one is zero-filled only where it grows
        // past its previous length.
        let mut bytes = idle.unwrap_or_else(|| vec![0; cap]);
        bytes.resize(len, 0);
        Buffer { bytes, home: self }
    }
}

/// A buffer of a given length, to be filled before it is read (its contents are arbitrary).
/// Chunk-sized requests reuse an idle buffer when there is one.
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    home: &'static Pool,
}

impl Buffer {
    /// A buffer of exactly `len` bytes.
    pub(crate) fn new(len: usize) -> Self {
        POOL.take(len)
    }

    /// The bytes, to fill.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The filled buffer as [`Bytes`]; it comes back here when the last clone is dropped.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.bytes.capacity() != CHUNK as usize {
            return;
        }
        let mut idle = self.home.idle();
        if idle.len() < KEEP {
            idle.push(std::mem::take(&mut self.bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_chunk_buffer_is_handed_out_again_with_the_asked_length() {
        static TEST: Pool = Pool::new();
        let first = TEST.take(CHUNK as usize);
        let at = first.bytes.as_ptr();
        let bytes = first.freeze();
        let clone = bytes.clone();
        drop(bytes);
        // Still held by the clone: a new buffer must not be that one.
        let other = TEST.take(CHUNK as usize);
        assert_ne!(other.bytes.as_ptr(), at);
        drop(clone);
        let reused = TEST.take(100_000);
        assert_eq!(reused.bytes.as_ptr(), at, "the released buffer was not reused");
        assert_eq!(reused.as_ref().len(), 100_000);
        drop((other, reused));
        assert_eq!(TEST.idle().len(), 2);
        // Small and oversized payloads do not go through the pool, nor come back to it.
        assert_eq!(TEST.take(10).bytes.capacity(), 10);
        assert_eq!(TEST.take(CHUNK as usize + 1).as_ref().len(), CHUNK as usize + 1);
        assert_eq!(TEST.idle().len(), 2);
        // No more than KEEP idle buffers are kept.
        let many: Vec<Buffer> = (0..KEEP + 3).map(|_| TEST.take(CHUNK as usize)).collect();
        drop(many);
        assert_eq!(TEST.idle().len(), KEEP);
    }
}
