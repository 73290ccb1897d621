//! Ledger entries, their canonical encoding, chaining and verification.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::catalog::ids::{ArtistKey, ContentId, Pseudonym};

const DOMAIN: &[u8] = b"busker/ledger/v1\0";
/// Seconds in an hour: play times are kept at this granularity.
pub const HOUR: u64 = 3600;
/// Longest currency or unit code, in bytes.
pub const MAX_UNIT: usize = 12;

/// An amount of money in integer minor units (cents, satoshis): never a float.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units.
    pub minor: u64,
    /// Currency or unit code, e.g. `USD`, `EUR`, `SAT`.
    pub unit: String,
}

/// What an entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A track was played (long enough to count: 30 s or half the track).
    Play {
        /// The track.
        track: ContentId,
        /// Its artist.
        artist: ArtistKey,
        /// Milliseconds played.
        ms: u64,
        /// Start of the hour the play happened in (unix seconds, a multiple of 3600).
        hour: u64,
        /// The pseudonym (towards this artist) of the fan who passed the track on, if any.
        via: Option<Pseudonym>,
    },
    /// A tip was promised to an artist.
    Tip {
        /// The artist.
        artist: ArtistKey,
        /// How much.
        amount: Money,
        /// Set when the tip is a budget allocation: the start of the budget period.
        budget: Option<u64>,
    },
    /// Settlement `n` with an artist was prepared: the cumulative tip state and the play
    /// report since the last receipt, whose hash this is.
    TipState {
        /// The artist.
        artist: ArtistKey,
        /// Settlement number, from 1, per artist.
        n: u64,
        /// BLAKE3 of the signed settlement.
        #[serde(with = "crate::catalog::ids::hex32")]
        hash: [u8; 32],
    },
    /// The artist countersigned settlement `n`.
    Receipt {
        /// The artist.
        artist: ArtistKey,
        /// Settlement number.
        n: u64,
        /// BLAKE3 of the signed settlement.
        #[serde(with = "crate::catalog::ids::hex32")]
        hash: [u8; 32],
        /// The artist's signature over the receipt.
        #[serde(with = "crate::catalog::ids::hex_bytes")]
        sig: Vec<u8>,
    },
}

impl Body {
    /// The artist this entry concerns.
    pub fn artist(&self) -> &ArtistKey {
        match self {
            Body::Play { artist, .. }
            | Body::Tip { artist, .. }
            | Body::TipState { artist, .. }
            | Body::Receipt { artist, .. } => artist,
        }
    }
}

/// One signed, chained entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first).
    #[serde(with = "crate::catalog::ids::hex32")]
    pub prev: [u8; 32],
    /// What happened.
    pub body: Body,
    /// Signature by the node key over domain, seq, prev and body.
    #[serde(with = "crate::catalog::ids::hex_bytes")]
    pub sig: Vec<u8>,
}

/// Why a ledger entry or chain was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LedgerError {
    /// The entry at this position has the wrong sequence number (reordered or missing entries).
    #[error("ledger entry {0}: out of sequence (reordered or missing entries)")]
    Sequence(u64),
    /// The entry at this position does not chain to the one before (tampered or reordered).
    #[error("ledger entry {0}: does not chain to the previous entry")]
    Chain(u64),
    /// The entry's signature does not verify.
    #[error("ledger entry {0}: bad signature")]
    Signature(u64),
    /// The entry breaks a rule (e.g. a play time that is not an hour bucket).
    #[error("ledger entry {0}: {1}")]
    Invalid(u64, String),
    /// The bytes are not an entry.
    #[error("ledger entry {0}: malformed ({1})")]
    Malformed(u64, String),
    /// Entries are missing at the end: the log's head records more than are stored.
    #[error("ledger entry {have}: missing; the head records {head} entries (truncated)")]
    Truncated {
        /// Entries found.
        have: u64,
        /// Entries the head records.
        head: u64,
    },
    /// The database failed.
    #[error("ledger database: {0}")]
    Db(String),
    /// A settlement or receipt was rejected.
    #[error(transparent)]
    Settle(#[from] super::settle::SettleError),
    /// A request that cannot be carried out (bad amount, unknown artist, …).
    #[error("{0}")]
    Refused(String),
}

impl From<sled::Error> for LedgerError {
    fn from(e: sled::Error) -> Self {
        Self::Db(e.to_string())
    }
}

impl From<sled::transaction::TransactionError<LedgerError>> for LedgerError {
    fn from(e: sled::transaction::TransactionError<LedgerError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

/// Whether `unit` is a currency or unit code: 1..=12 uppercase ASCII letters or digits.
pub fn valid_unit(unit: &str) -> bool {
    (1..=MAX_UNIT).contains(&unit.len()) && unit.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn message(seq: u64, prev: &[u8; 32], body: &Body) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(prev);
    m.extend_from_slice(&postcard::to_stdvec(body).unwrap_or_default());
    m
}

impl Body {
    /// A play at unix time `at`, recorded only to the hour.
    pub fn play(track: ContentId, artist: ArtistKey, ms: u64, at: u64, via: Option<Pseudonym>) -> Self {
        Body::Play { track, artist, ms, hour: at - at % HOUR, via }
    }

    fn check(&self, seq: u64) -> Result<(), LedgerError> {
        match self {
            Body::Play { hour, .. } if hour % HOUR != 0 => {
                Err(LedgerError::Invalid(seq, "play time is finer than an hour".into()))
            }
            Body::Tip { amount, .. } if !valid_unit(&amount.unit) => Err(LedgerError::Invalid(
                seq,
                format!("unit code {:?} is not 1..={MAX_UNIT} uppercase letters or digits", amount.unit),
            )),
            Body::Tip { budget: Some(p), .. } if p % HOUR != 0 => {
                Err(LedgerError::Invalid(seq, "budget period start is finer than an hour".into()))
            }
            _ => Ok(()),
        }
    }
}

impl Entry {
    /// Signs `body` as entry `seq` following the entry whose hash is `prev`.
    pub fn sign(seq: u64, prev: [u8; 32], body: Body, key: &SigningKey) -> Result<Self, LedgerError> {
        body.check(seq)?;
        let sig = key.sign(&message(seq, &prev, &body)).to_bytes().to_vec();
        Ok(Self { seq, prev, body, sig })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes untrusted bytes (position `at` is used in errors).
    pub fn decode(bytes: &[u8], at: u64) -> Result<Self, LedgerError> {
        postcard::from_bytes(bytes).map_err(|e| LedgerError::Malformed(at, e.to_string()))
    }

    /// This entry's hash, which the next entry's `prev` must equal.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    fn signature(&self) -> Result<Signature, LedgerError> {
        let bytes: [u8; 64] = self.sig.as_slice().try_into().map_err(|_| LedgerError::Signature(self.seq))?;
        Ok(Signature::from_bytes(&bytes))
    }
}

/// Entries per signature batch: large enough for batch verification to pay, small enough to
/// spread over every core.
const BATCH: usize = 256;

/// Checks a chain entry by entry (sequence, chaining, rules) as it streams past, and verifies
/// signatures in parallel batches. Memory stays bounded by [`ChainVerifier::PENDING`].
pub struct ChainVerifier {
    key: VerifyingKey,
    next: u64,
    prev: [u8; 32],
    pending: Vec<(u64, Vec<u8>, Signature)>,
}

impl ChainVerifier {
    /// Signatures held before they are checked.
    pub const PENDING: usize = 16 * BATCH;

    /// A verifier for a chain signed by `key`, starting at entry 0.
    pub fn new(key: VerifyingKey) -> Self {
        Self { key, next: 0, prev: [0; 32], pending: Vec::with_capacity(Self::PENDING) }
    }

    /// Entries checked so far, and the hash of the last one.
    pub fn position(&self) -> (u64, [u8; 32]) {
        (self.next, self.prev)
    }

    /// Checks the next entry. On a structural fault, signatures still pending are checked
    /// first, so the error names the first bad entry.
    pub fn push(&mut self, e: &Entry) -> Result<(), LedgerError> {
        let sig = match self.structure(e) {
            Ok(sig) => sig,
            Err(fault) => {
                self.check_signatures()?;
                return Err(fault);
            }
        };
        self.pending.push((self.next, message(e.seq, &e.prev, &e.body), sig));
        self.prev = e.hash();
        self.next += 1;
        if self.pending.len() >= Self::PENDING { self.check_signatures() } else { Ok(()) }
    }

    fn structure(&self, e: &Entry) -> Result<Signature, LedgerError> {
        let at = self.next;
        if e.seq != at {
            return Err(LedgerError::Sequence(at));
        }
        if e.prev != self.prev {
            return Err(LedgerError::Chain(at));
        }
        e.body.check(at)?;
        e.signature()
    }

    /// Verifies every signature pushed so far; names the first bad entry.
    pub fn check_signatures(&mut self) -> Result<(), LedgerError> {
        use rayon::prelude::*;
        let key = self.key;
        let bad = self
            .pending
            .par_chunks(BATCH)
            .filter_map(|batch| {
                let msgs: Vec<&[u8]> = batch.iter().map(|(_, m, _)| m.as_slice()).collect();
                let sigs: Vec<Signature> = batch.iter().map(|(_, _, s)| *s).collect();
                if ed25519_dalek::verify_batch(&msgs, &sigs, &vec![key; batch.len()]).is_ok() {
                    return None;
                }
                batch.iter().find(|(_, m, s)| key.verify_strict(m, s).is_err()).map(|(at, _, _)| *at)
            })
            .min();
        self.pending.clear();
        bad.map_or(Ok(()), |at| Err(LedgerError::Signature(at)))
    }
}

/// Verifies a whole chain signed by `key`: sequence, chaining, rules, then every signature in
/// batches. Names the first bad entry.
pub fn verify_chain(entries: &[Entry], key: &VerifyingKey) -> Result<(), LedgerError> {
    let mut v = ChainVerifier::new(*key);
    for e in entries {
        v.push(e)?;
    }
    v.check_signatures()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64, key: &SigningKey) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map_or([0; 32], Entry::hash);
            let body = if i % 3 == 2 {
                Body::Tip { artist: ArtistKey([7; 32]), amount: Money { minor: 250, unit: "USD".into() }, budget: None }
            } else {
                Body::play(ContentId([i as u8; 32]), ArtistKey([7; 32]), 31_000, 1_763_700_000 + i * 60, None)
            };
            out.push(Entry::sign(i, prev, body, key).unwrap());
        }
        out
    }

    #[test]
    fn a_good_chain_verifies_and_plays_keep_only_the_hour() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let c = chain(10, &key);
        verify_chain(&c, &key.verifying_key()).unwrap();
        assert!(c.iter().all(|e| !matches!(e.body, Body::Play { hour, .. } if hour % HOUR != 0)));
        assert_eq!(Entry::decode(&c[3].encode(), 3).unwrap(), c[3]);
    }

    #[test]
    fn tampering_reordering_truncation_and_forgery_name_the_first_bad_entry() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let vk = key.verifying_key();
        let c = chain(10, &key);
        let mut tampered = c.clone();
        if let Body::Play { ms, .. } = &mut tampered[4].body {
            *ms = 999_999;
        }
        assert_eq!(verify_chain(&tampered, &vk), Err(LedgerError::Signature(4)), "4 is bad, and 5 no longer chains");
        let mut resigned = tampered.clone();
        resigned.truncate(5);
        assert_eq!(verify_chain(&resigned, &vk), Err(LedgerError::Signature(4)));
        let mut reordered = c.clone();
        reordered.swap(2, 3);
        assert_eq!(verify_chain(&reordered, &vk), Err(LedgerError::Sequence(2)));
        let mut cut = c.clone();
        cut.remove(0);
        assert_eq!(verify_chain(&cut, &vk), Err(LedgerError::Sequence(0)));
        let other = SigningKey::from_bytes(&[6; 32]);
        assert_eq!(verify_chain(&chain(3, &other), &vk), Err(LedgerError::Signature(0)));
        assert!(Entry::decode(&[0xff; 3], 1).is_err());
    }

    #[test]
    fn rules_are_enforced_when_signing() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let exact =
            Body::Play { track: ContentId([1; 32]), artist: ArtistKey([2; 32]), ms: 1, hour: 1_763_700_123, via: None };
        assert!(matches!(Entry::sign(0, [0; 32], exact, &key), Err(LedgerError::Invalid(0, _))));
        let float_like =
            Body::Tip { artist: ArtistKey([2; 32]), amount: Money { minor: 1, unit: String::new() }, budget: None };
        assert!(Entry::sign(0, [0; 32], float_like, &key).is_err());
    }
}
