//! Measurements of the ledger on this machine, in a scratch database (never the node's own
//! ledger): durable signed appends, one at a time, in batches and from concurrent writers,
//! and chain verification. Used by `busker ledger bench` and `benches/ledger.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use super::entry::{Body, LedgerError};
use super::log::Ledger;
use crate::catalog::ids::{ArtistKey, ContentId};

/// The scratch ledger's signing key (scratch data only; not an identity).
pub const SCRATCH_KEY: [u8; 32] = [0x5c; 32];
/// Entries per batch in batched mode.
pub const BATCH: usize = 256;
/// Writers in concurrent mode.
pub const WRITERS: usize = 8;

/// Opens (or creates) a scratch ledger in `dir`.
pub fn scratch(dir: &Path) -> Result<Ledger, LedgerError> {
    let db = sled::Config::new().path(dir).open()?;
    Ledger::open(&db, SigningKey::from_bytes(&SCRATCH_KEY))
}

/// A play of one of 12 tracks by one of 4 artists, spread over 30 days.
pub fn sample_play(i: u64) -> Body {
    let track = ContentId(*blake3::hash(&(i % 12).to_le_bytes()).as_bytes());
    let artist = ArtistKey([(i % 4) as u8 + 1; 32]);
    Body::play(track, artist, 30_000 + i % 200_000, 1_761_955_200 + (i * 7919) % (30 * 86_400), None)
}

/// How appends are issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One append at a time, each flushed before the next.
    Single,
    /// [`BATCH`] entries per append, one flush each.
    Batched,
    /// [`WRITERS`] threads appending one at a time; flushes are shared (group commit).
    Concurrent,
}

/// Appends `n` sample plays in `mode`, calling `on_ack` with each acknowledged (durable)
/// entry count. Returns the time taken.
pub fn appends(ledger: &Ledger, n: u64, mode: Mode, on_ack: &(dyn Fn(u64) + Sync)) -> Result<Duration, LedgerError> {
    let started = Instant::now();
    match mode {
        Mode::Single => {
            for i in 0..n {
                let e = ledger.append(sample_play(i))?;
                on_ack(e.seq + 1);
            }
        }
        Mode::Batched => {
            let mut i = 0;
            while i < n {
                let k = (n - i).min(BATCH as u64);
                let entries = ledger.append_many((i..i + k).map(sample_play).collect())?;
                on_ack(entries.last().map_or(0, |e| e.seq + 1));
                i += k;
            }
        }
        Mode::Concurrent => {
            let per = n.div_ceil(WRITERS as u64);
            std::thread::scope(|s| -> Result<(), LedgerError> {
                let handles: Vec<_> = (0..WRITERS as u64)
                    .map(|w| {
                        s.spawn(move || -> Result<(), LedgerError> {
                            for i in w * per..((w + 1) * per).min(n) {
                                let e = ledger.append(sample_play(i))?;
                                on_ack(e.seq + 1);
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| LedgerError::Db("writer thread panicked".into()))??;
                }
                Ok(())
            })?;
        }
    }
    Ok(started.elapsed())
}

/// Verifies the whole ledger; returns (entries, time).
pub fn verify(ledger: &Ledger) -> Result<(u64, Duration), LedgerError> {
    let started = Instant::now();
    let n = ledger.verify()?;
    Ok((n, started.elapsed()))
}
