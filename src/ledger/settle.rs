//! Settlement documents and the rules an artist's node checks them by (sans-IO).
//!
//! A fan settles with each artist through a [`Settlement`]: number `n` in a per-(pseudonym,
//! artist) sequence, signed by the fan's pseudonym towards that artist. It carries the
//! **cumulative** tip state (per unit: total and its split into parts) and the **play report**
//! since settlement `n - 1` (plays per track per day, and cumulative passes credited to
//! sharers). The artist answers with a countersigned [`Receipt`]. Because tip states are
//! cumulative and numbered, a retry is idempotent: the same document gets the same receipt,
//! and an artist only ever needs the newest state.
//!
//! What the artist learns is by construction only: a pseudonym, day numbers (never a finer
//! time), counts and amounts.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::entry::valid_unit;
use super::split::{Parts, split_tip};
use crate::catalog::ids::{ArtistKey, ContentId, Pseudonym};
use crate::catalog::model::Splits;

const SETTLEMENT_DOMAIN: &[u8] = b"busker/settlement/v1\0";
const RECEIPT_DOMAIN: &[u8] = b"busker/receipt/v1\0";
/// Largest encoded settlement.
pub const MAX_SETTLEMENT_BYTES: usize = 4 << 20;
/// Most currencies or units in one tip state.
pub const MAX_UNITS: usize = 16;
/// Most sharers credited in one tip state.
pub const MAX_SHARERS: usize = 1024;
/// Most (day, track) rows in one play report.
pub const MAX_PLAY_ROWS: usize = 65_536;
/// Milliseconds in a day: no row may claim more listening than its plays could hold.
const DAY_MS: u64 = 86_400_000;

/// The cumulative tips in one unit, and their split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipTotal {
    /// Currency or unit code.
    pub unit: String,
    /// Everything this fan has tipped this artist in this unit, in minor units.
    pub total: u64,
    /// `total` divided by the artist's splits and the referral share.
    pub parts: Parts,
}

/// Plays of one track on one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPlays {
    /// Days since 1970-01-01 (UTC).
    pub day: u32,
    /// The track.
    pub track: ContentId,
    /// Plays counted.
    pub plays: u32,
    /// Milliseconds listened.
    pub ms: u64,
}

/// The signed content of a settlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The artist.
    pub artist: ArtistKey,
    /// The fan's pseudonym towards this artist.
    pub fan: Pseudonym,
    /// Settlement number, from 1.
    pub n: u64,
    /// The catalog version whose splits the fan applied (for information).
    pub catalog_seq: u64,
    /// Cumulative tips, one entry per unit, sorted by unit.
    pub tips: Vec<TipTotal>,
    /// Cumulative plays credited to each sharer (passes), sorted by sharer.
    pub passes: Vec<(Pseudonym, u64)>,
    /// Plays since settlement `n - 1`, sorted by (day, track).
    pub plays: Vec<DayPlays>,
}

/// A settlement signed by the fan's pseudonym.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// What is settled.
    pub terms: Terms,
    /// Signature by `terms.fan`.
    #[serde(with = "crate::catalog::ids::hex_bytes")]
    pub sig: Vec<u8>,
}

/// The artist's countersignature on a settlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The artist.
    pub artist: ArtistKey,
    /// The fan's pseudonym.
    pub fan: Pseudonym,
    /// Settlement number.
    pub n: u64,
    /// BLAKE3 of the encoded settlement.
    #[serde(with = "crate::catalog::ids::hex32")]
    pub settlement: [u8; 32],
    /// Signature by the artist key.
    #[serde(with = "crate::catalog::ids::hex_bytes")]
    pub sig: Vec<u8>,
}

/// Why a settlement or receipt was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettleError {
    /// Not a settlement (or receipt) encoding.
    #[error("settlement: malformed ({0})")]
    Malformed(String),
    /// Over a size or count limit.
    #[error("settlement: too large ({0})")]
    TooLarge(String),
    /// The signature does not verify.
    #[error("settlement {0}: bad signature")]
    Signature(u64),
    /// Addressed to another artist.
    #[error("settlement {0}: addressed to another artist")]
    WrongArtist(u64),
    /// A number at or below the last accepted one, with different content.
    #[error("settlement {n}: replayed or older than the last accepted ({last})")]
    Replay {
        /// Received.
        n: u64,
        /// Last accepted.
        last: u64,
    },
    /// A number beyond the next expected one.
    #[error("settlement {n}: expected number {expected}")]
    Gap {
        /// Received.
        n: u64,
        /// Expected.
        expected: u64,
    },
    /// A cumulative total went down.
    #[error("settlement {0}: {1} is lower than in the last accepted state")]
    Decrease(u64, String),
    /// The parts do not follow the artist's current splits, or do not add up.
    #[error("settlement {0}: {1}")]
    Splits(u64, String),
    /// Some other rule is broken.
    #[error("settlement {0}: {1}")]
    Invalid(u64, String),
    /// A receipt does not match its settlement or its signature is bad.
    #[error("receipt for settlement {0}: {1}")]
    Receipt(u64, String),
}

/// What an artist's node should do with a valid settlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new state: store it and countersign.
    New,
    /// The state already accepted (a retry): answer with the stored receipt.
    Duplicate,
}

fn verifying(key: &[u8; 32], n: u64, err: impl Fn(u64) -> SettleError) -> Result<VerifyingKey, SettleError> {
    VerifyingKey::from_bytes(key).map_err(|_| err(n))
}

fn signature(bytes: &[u8], n: u64, err: impl Fn(u64) -> SettleError) -> Result<Signature, SettleError> {
    let b: [u8; 64] = bytes.try_into().map_err(|_| err(n))?;
    Ok(Signature::from_bytes(&b))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

impl Settlement {
    /// Signs `terms` with the fan's pseudonym key, which must match `terms.fan`.
    pub fn sign(terms: Terms, key: &SigningKey) -> Result<Self, SettleError> {
        if key.verifying_key().to_bytes() != terms.fan.0 {
            return Err(SettleError::Signature(terms.n));
        }
        let mut m = SETTLEMENT_DOMAIN.to_vec();
        m.extend_from_slice(&encode(&terms));
        Ok(Self { sig: key.sign(&m).to_bytes().to_vec(), terms })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes untrusted bytes, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, SettleError> {
        if bytes.len() > MAX_SETTLEMENT_BYTES {
            return Err(SettleError::TooLarge(format!("{} bytes > {MAX_SETTLEMENT_BYTES}", bytes.len())));
        }
        postcard::from_bytes(bytes).map_err(|e| SettleError::Malformed(e.to_string()))
    }

    /// BLAKE3 of the encoding: what the receipt and the ledger name.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Checks the fan's signature.
    pub fn verify_signature(&self) -> Result<(), SettleError> {
        let n = self.terms.n;
        let key = verifying(&self.terms.fan.0, n, SettleError::Signature)?;
        let mut m = SETTLEMENT_DOMAIN.to_vec();
        m.extend_from_slice(&encode(&self.terms));
        key.verify_strict(&m, &signature(&self.sig, n, SettleError::Signature)?).map_err(|_| SettleError::Signature(n))
    }

    /// The tip total in `unit`, if any.
    pub fn total(&self, unit: &str) -> u64 {
        self.terms.tips.iter().find(|t| t.unit == unit).map_or(0, |t| t.total)
    }

    /// Checks bounds, order and arithmetic that need no history.
    fn check_shape(&self, splits: &Splits, today: u32) -> Result<(), SettleError> {
        let t = &self.terms;
        let n = t.n;
        let invalid = |m: String| SettleError::Invalid(n, m);
        if n == 0 {
            return Err(invalid("numbers start at 1".into()));
        }
        if t.tips.len() > MAX_UNITS || t.passes.len() > MAX_SHARERS || t.plays.len() > MAX_PLAY_ROWS {
            return Err(SettleError::TooLarge(format!(
                "{} units, {} sharers, {} play rows (limits {MAX_UNITS}, {MAX_SHARERS}, {MAX_PLAY_ROWS})",
                t.tips.len(),
                t.passes.len(),
                t.plays.len()
            )));
        }
        if !t.tips.windows(2).all(|w| w[0].unit < w[1].unit) || !t.passes.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(invalid("units and sharers must be sorted and unique".into()));
        }
        if !t.plays.windows(2).all(|w| (w[0].day, w[0].track) < (w[1].day, w[1].track)) {
            return Err(invalid("play rows must be sorted by (day, track) and unique".into()));
        }
        for row in &t.plays {
            if row.plays == 0 || row.ms > u64::from(row.plays) * DAY_MS || row.day > today.saturating_add(1) {
                return Err(invalid(format!("play row for day {} is out of range", row.day)));
            }
        }
        for tip in &t.tips {
            if !valid_unit(&tip.unit) {
                return Err(invalid(format!("unit code {:?} is not valid", tip.unit)));
            }
            let expect = split_tip(tip.total, splits, &t.passes);
            if tip.parts.sum() != u128::from(tip.total) {
                return Err(SettleError::Splits(n, format!("{} parts do not add up to {}", tip.unit, tip.total)));
            }
            if tip.parts != expect {
                return Err(SettleError::Splits(
                    n,
                    format!("{} parts do not follow the artist's current splits", tip.unit),
                ));
            }
        }
        Ok(())
    }

    /// The artist's check of a settlement against the last accepted one (`prev`) from the same
    /// pseudonym, the artist's current `splits`, and today's day number.
    pub fn check(
        &self,
        artist: &ArtistKey,
        prev: Option<&Settlement>,
        splits: &Splits,
        today: u32,
    ) -> Result<Verdict, SettleError> {
        let n = self.terms.n;
        if &self.terms.artist != artist {
            return Err(SettleError::WrongArtist(n));
        }
        self.verify_signature()?;
        let last = prev.map_or(0, |p| p.terms.n);
        if let Some(p) = prev {
            if p.terms.fan != self.terms.fan {
                return Err(SettleError::Invalid(n, "compared with another fan's state".into()));
            }
            if n == last && p.hash() == self.hash() {
                return Ok(Verdict::Duplicate);
            }
        }
        if n <= last {
            return Err(SettleError::Replay { n, last });
        }
        if n > last + 1 {
            return Err(SettleError::Gap { n, expected: last + 1 });
        }
        self.check_shape(splits, today)?;
        if let Some(p) = prev {
            for old in &p.terms.tips {
                if self.total(&old.unit) < old.total {
                    return Err(SettleError::Decrease(n, format!("the {} tip total", old.unit)));
                }
            }
            for (sharer, count) in &p.terms.passes {
                let now = self.terms.passes.iter().find(|(s, _)| s == sharer).map_or(0, |(_, c)| *c);
                if now < *count {
                    return Err(SettleError::Decrease(n, format!("passes credited to {sharer}")));
                }
            }
        }
        Ok(Verdict::New)
    }
}

impl Receipt {
    fn message(&self) -> Vec<u8> {
        let mut m = RECEIPT_DOMAIN.to_vec();
        m.extend_from_slice(&self.artist.0);
        m.extend_from_slice(&self.fan.0);
        m.extend_from_slice(&self.n.to_le_bytes());
        m.extend_from_slice(&self.settlement);
        m
    }

    /// The artist countersigns `s`.
    pub fn sign(s: &Settlement, key: &SigningKey) -> Self {
        let mut r = Self {
            artist: ArtistKey(key.verifying_key().to_bytes()),
            fan: s.terms.fan,
            n: s.terms.n,
            settlement: s.hash(),
            sig: Vec::new(),
        };
        r.sig = key.sign(&r.message()).to_bytes().to_vec();
        r
    }

    /// Checks that this receipt countersigns exactly `s`, by `s`'s artist.
    pub fn verify(&self, s: &Settlement) -> Result<(), SettleError> {
        let n = s.terms.n;
        if self.artist != s.terms.artist || self.fan != s.terms.fan || self.n != n || self.settlement != s.hash() {
            return Err(SettleError::Receipt(n, "does not match the settlement sent".into()));
        }
        let bad = |n| SettleError::Receipt(n, "bad artist signature".into());
        let key = verifying(&self.artist.0, n, bad)?;
        key.verify_strict(&self.message(), &signature(&self.sig, n, bad)?).map_err(|_| bad(n))
    }
}
