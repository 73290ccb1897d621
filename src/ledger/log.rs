//! The durable ledger: entries in a sled tree, keyed by sequence number, with a head record
//! (entry count and last hash) written in the same atomic batch, so truncation is caught.
//!
//! **Durability.** An append returns only after the database has been flushed to disk, so an
//! acknowledged entry survives `kill -9` and power loss. Flushes are shared (group commit):
//! appenders that arrive while a flush runs are covered by the next one, so many concurrent
//! appenders pay for one `fsync` between them, and [`Ledger::append_many`] pays one for a
//! whole batch.

use std::sync::{Mutex, MutexGuard};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::entry::{Body, ChainVerifier, Entry, LedgerError};

/// Key of the head record in the log tree (sorts after every 8-byte entry key).
const HEAD: &[u8] = b"\xff\xff\xff\xff\xff\xff\xff\xff/head";

/// Where the log ends.
#[derive(Clone, Copy, Debug, Default)]
struct Tail {
    next: u64,
    prev: [u8; 32],
}

impl Tail {
    fn encode(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..8].copy_from_slice(&self.next.to_be_bytes());
        b[8..].copy_from_slice(&self.prev);
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let next = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let prev = b.get(8..40)?.try_into().ok()?;
        (b.len() == 40).then_some(Self { next, prev })
    }
}

/// Decodes a record this module stored; `what` names it in the error.
pub(super) fn decode_stored<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, LedgerError> {
    postcard::from_bytes(bytes).map_err(|e| LedgerError::Malformed(0, format!("{what}: {e}")))
}

/// A state-tree change made atomically with an append: `(key, Some(value))` inserts,
/// `(key, None)` removes.
pub(super) type StateOp = (Vec<u8>, Option<Vec<u8>>);

/// The node's ledger, plus the settlement state kept beside it.
pub struct Ledger {
    db: sled::Db,
    log: sled::Tree,
    /// Fan-side settlement state and budget (see `fan.rs`).
    pub(super) state: sled::Tree,
    /// Artist-side: latest accepted settlement per pseudonym (see `artist.rs`).
    pub(super) incoming: sled::Tree,
    /// Artist-side: every accepted settlement, by (pseudonym, n).
    pub(super) history: sled::Tree,
    key: SigningKey,
    tail: Mutex<Tail>,
    /// Entries known to be on disk.
    durable: Mutex<u64>,
    /// Serialises artist-side acceptance.
    pub(super) accepting: Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("len", &self.len()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the tail half-updated (it is replaced whole).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ledger {
    /// Opens the ledger in `db`, signing new entries with `key` (the node key).
    pub fn open(db: &sled::Db, key: SigningKey) -> Result<Self, LedgerError> {
        let log = db.open_tree("ledger")?;
        let tail = match log.get(HEAD)? {
            Some(b) => Tail::decode(&b).ok_or_else(|| LedgerError::Malformed(0, "ledger head record".into()))?,
            None => Tail::default(),
        };
        Ok(Self {
            db: db.clone(),
            state: db.open_tree("ledger_state")?,
            incoming: db.open_tree("settle_in")?,
            history: db.open_tree("settle_history")?,
            log,
            key,
            durable: Mutex::new(tail.next),
            tail: Mutex::new(tail),
            accepting: Mutex::new(()),
        })
    }

    /// Entries in the log.
    pub fn len(&self) -> u64 {
        lock(&self.tail).next
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key entries are signed with.
    pub fn signer(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Appends one entry; returns once it is on disk.
    pub fn append(&self, body: Body) -> Result<Entry, LedgerError> {
        let mut v = self.append_many(vec![body])?;
        v.pop().ok_or_else(|| LedgerError::Db("append wrote nothing".into()))
    }

    /// Appends entries in order with one flush; returns once all are on disk.
    pub fn append_many(&self, bodies: Vec<Body>) -> Result<Vec<Entry>, LedgerError> {
        self.append_with(bodies, Vec::new())
    }

    /// Appends entries and applies `ops` to the state tree, all or nothing; durable on return.
    pub(super) fn append_with(&self, bodies: Vec<Body>, ops: Vec<StateOp>) -> Result<Vec<Entry>, LedgerError> {
        let (entries, last) = {
            let mut tail = lock(&self.tail);
            let mut t = *tail;
            let mut entries = Vec::with_capacity(bodies.len());
            for body in bodies {
                let e = Entry::sign(t.next, t.prev, body, &self.key)?;
                t = Tail { next: t.next + 1, prev: e.hash() };
                entries.push(e);
            }
            let encoded: Vec<(u64, Vec<u8>)> = entries.iter().map(|e| (e.seq, e.encode())).collect();
            if ops.is_empty() {
                let mut batch = sled::Batch::default();
                for (seq, bytes) in &encoded {
                    batch.insert(&seq.to_be_bytes(), bytes.as_slice());
                }
                batch.insert(HEAD, &t.encode()[..]);
                self.log.apply_batch(batch)?;
            } else {
                (&self.log, &self.state).transaction(|(log, state)| {
                    for (seq, bytes) in &encoded {
                        log.insert(&seq.to_be_bytes(), bytes.as_slice())?;
                    }
                    log.insert(HEAD, &t.encode()[..])?;
                    for (k, v) in &ops {
                        match v {
                            Some(v) => state.insert(k.as_slice(), v.as_slice())?,
                            None => state.remove(k.as_slice())?,
                        };
                    }
                    Ok::<_, ConflictableTransactionError<LedgerError>>(())
                })?;
            }
            *tail = t;
            (entries, t.next)
        };
        self.sync(last)?;
        Ok(entries)
    }

    /// Applies `ops` to the state tree atomically and durably, without a log entry.
    pub(super) fn set_state(&self, ops: Vec<StateOp>) -> Result<(), LedgerError> {
        let mut batch = sled::Batch::default();
        for (k, v) in ops {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.state.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Group commit: returns once entries `..upto` are on disk, sharing flushes between
    /// concurrent callers.
    fn sync(&self, upto: u64) -> Result<(), LedgerError> {
        let mut durable = lock(&self.durable);
        if *durable >= upto {
            return Ok(());
        }
        // Everything appended before this flush starts is covered by it.
        let covered = self.len();
        self.db.flush()?;
        *durable = covered.max(*durable);
        Ok(())
    }

    /// Entries from `from` on, in order, decoded (bytes are checked only by [`Ledger::verify`]).
    pub fn entries(&self, from: u64) -> impl Iterator<Item = Result<Entry, LedgerError>> + '_ {
        self.log.range(from.to_be_bytes()..=u64::MAX.to_be_bytes()).map(|item| {
            let (k, v) = item?;
            let at = k.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
            Entry::decode(&v, at)
        })
    }

    /// Re-checks every entry's sequence, chaining, rules and signature, and the head record.
    /// Returns the number of entries, or names the first bad one.
    pub fn verify(&self) -> Result<u64, LedgerError> {
        let head = match self.log.get(HEAD)? {
            Some(b) => Tail::decode(&b).ok_or_else(|| LedgerError::Malformed(0, "ledger head record".into()))?,
            None => Tail::default(),
        };
        let mut v = ChainVerifier::new(self.signer());
        for item in self.log.iter() {
            let (k, bytes) = item?;
            if k.as_ref() == HEAD {
                continue;
            }
            let at = v.position().0;
            if k.len() != 8 {
                v.check_signatures()?;
                return Err(LedgerError::Malformed(at, "unexpected key in the ledger".into()));
            }
            match Entry::decode(&bytes, at) {
                Ok(e) => v.push(&e)?,
                Err(e) => {
                    v.check_signatures()?;
                    return Err(e);
                }
            }
        }
        v.check_signatures()?;
        let (count, last) = v.position();
        if count < head.next {
            return Err(LedgerError::Truncated { have: count, head: head.next });
        }
        if count > head.next || last != head.prev {
            return Err(LedgerError::Chain(count.saturating_sub(1)));
        }
        Ok(count)
    }

    /// The state tree value at `key`.
    pub(super) fn state_get(&self, key: &[u8]) -> Result<Option<sled::IVec>, LedgerError> {
        Ok(self.state.get(key)?)
    }

    /// Flushes everything (artist-side acceptance uses this before answering).
    pub(super) fn flush(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ids::{ArtistKey, ContentId};

    fn ledger(dir: &std::path::Path) -> Ledger {
        let db = sled::open(dir).unwrap();
        Ledger::open(&db, SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    fn play(i: u64) -> Body {
        Body::play(ContentId([i as u8; 32]), ArtistKey([1; 32]), 40_000, 1_763_700_000 + i, None)
    }

    #[test]
    fn appends_survive_reopen_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        {
            let l = ledger(dir.path());
            l.append(play(0)).unwrap();
            l.append_many((1..50).map(play).collect()).unwrap();
            assert_eq!(l.verify().unwrap(), 50);
        }
        let l = ledger(dir.path());
        assert_eq!(l.len(), 50);
        let e = l.append(play(50)).unwrap();
        assert_eq!(e.seq, 50);
        assert_eq!(l.verify().unwrap(), 51);
        assert_eq!(l.entries(49).count(), 2);
    }

    #[test]
    fn tampering_reordering_and_truncation_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(dir.path());
        l.append_many((0..50).map(play).collect()).unwrap();
        let key = |i: u64| i.to_be_bytes();
        let original = |i: u64| l.log.get(key(i)).unwrap().unwrap();

        // A flipped byte in entry 10's body: its signature fails (and 11 no longer chains).
        let good10 = original(10);
        let mut e = Entry::decode(&good10, 10).unwrap();
        if let Body::Play { ms, .. } = &mut e.body {
            *ms += 1;
        }
        l.log.insert(key(10), e.encode()).unwrap();
        assert_eq!(l.verify(), Err(LedgerError::Signature(10)));
        l.log.insert(key(10), good10.clone()).unwrap();

        // Garbage bytes: malformed.
        l.log.insert(key(12), &b"junk"[..]).unwrap();
        assert!(matches!(l.verify(), Err(LedgerError::Malformed(12, _))));
        l.log.insert(key(12), original(13)).unwrap();
        assert_eq!(l.verify(), Err(LedgerError::Sequence(12)), "entry 13 stored at 12");
        let dir2 = tempfile::tempdir().unwrap();
        let l2 = ledger(dir2.path());
        l2.append_many((0..50).map(play).collect()).unwrap();

        // Reordered: two entries swapped.
        let (a, b) = (l2.log.get(key(5)).unwrap().unwrap(), l2.log.get(key(6)).unwrap().unwrap());
        l2.log.insert(key(5), b.clone()).unwrap();
        l2.log.insert(key(6), a.clone()).unwrap();
        assert_eq!(l2.verify(), Err(LedgerError::Sequence(5)));
        l2.log.insert(key(5), a).unwrap();
        l2.log.insert(key(6), b).unwrap();
        assert_eq!(l2.verify(), Ok(50));

        // Truncated at the end, and in the middle.
        for i in 47..50 {
            l2.log.remove(key(i)).unwrap();
        }
        assert_eq!(l2.verify(), Err(LedgerError::Truncated { have: 47, head: 50 }));
        l2.log.remove(key(20)).unwrap();
        assert_eq!(l2.verify(), Err(LedgerError::Sequence(20)));
    }
}
