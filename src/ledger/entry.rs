//! Ledger entries, their canonical encoding, chaining and verification.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::catalog::ids::{ArtistKey, ContentId};

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
    /// A track was played.
    Play {
        /// The track.
        track: ContentId,
        /// Its artist.
        artist: ArtistKey,
        /// Milliseconds played.
        ms: u64,
        /// Start of the hour the play happened in (unix seconds, a multiple of 3600).
        hour: u64,
        /// The share link it came through, if any.
        via: Option<ContentId>,
    },
    /// A tip was promised to an artist.
    Tip {
        /// The artist.
        artist: ArtistKey,
        /// How much.
        amount: Money,
    },
}

/// One signed, chained entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first).
    pub prev: [u8; 32],
    /// What happened.
    pub body: Body,
    /// Signature by the node key over domain, seq, prev and body.
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
    pub fn play(track: ContentId, artist: ArtistKey, ms: u64, at: u64, via: Option<ContentId>) -> Self {
        Body::Play { track, artist, ms, hour: at - at % HOUR, via }
    }

    fn check(&self, seq: u64) -> Result<(), LedgerError> {
        match self {
            Body::Play { hour, .. } if hour % HOUR != 0 => {
                Err(LedgerError::Invalid(seq, "play time is finer than an hour".into()))
            }
            Body::Tip { amount, .. } if amount.unit.is_empty() || amount.unit.len() > MAX_UNIT => {
                Err(LedgerError::Invalid(seq, format!("unit code {:?} is not 1..={MAX_UNIT} bytes", amount.unit)))
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

/// Verifies a whole chain signed by `key`: sequence, chaining, rules, then every signature in
/// one batch. Names the first bad entry.
pub fn verify_chain(entries: &[Entry], key: &VerifyingKey) -> Result<(), LedgerError> {
    let mut prev = [0u8; 32];
    let mut messages = Vec::with_capacity(entries.len());
    let mut signatures = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let at = i as u64;
        if e.seq != at {
            return Err(LedgerError::Sequence(at));
        }
        if e.prev != prev {
            return Err(LedgerError::Chain(at));
        }
        e.body.check(at)?;
        messages.push(message(e.seq, &e.prev, &e.body));
        signatures.push(e.signature()?);
        prev = e.hash();
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let keys = vec![*key; entries.len()];
    if ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok() {
        return Ok(());
    }
    // The batch failed: find the first bad signature.
    for (e, (m, s)) in entries.iter().zip(messages.iter().zip(&signatures)) {
        if key.verify_strict(m, s).is_err() {
            return Err(LedgerError::Signature(e.seq));
        }
    }
    Err(LedgerError::Signature(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64, key: &SigningKey) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map_or([0; 32], Entry::hash);
            let body = if i % 3 == 2 {
                Body::Tip { artist: ArtistKey([7; 32]), amount: Money { minor: 250, unit: "USD".into() } }
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
        assert_eq!(verify_chain(&tampered, &vk), Err(LedgerError::Chain(5)), "entry 5 no longer chains to 4");
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
        let float_like = Body::Tip { artist: ArtistKey([2; 32]), amount: Money { minor: 1, unit: String::new() } };
        assert!(Entry::sign(0, [0; 32], float_like, &key).is_err());
    }
}
