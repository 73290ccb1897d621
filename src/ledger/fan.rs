//! The fan's side of the ledger: plays, tips, the budget, and settlements awaiting receipts.
//!
//! A settlement, once prepared, sits in an outbox (the ledger's state tree) until the artist's
//! receipt arrives, so retries send the same document and survive restarts. Preparing appends
//! a `TipState` entry and accepting a receipt appends a `Receipt` entry, each atomically with
//! the outbox change.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::entry::{Body, Entry, HOUR, LedgerError, Money, valid_unit};
use super::log::{Ledger, StateOp, decode_stored};
use super::settle::{DayPlays, MAX_PLAY_ROWS, Receipt, Settlement, Terms, TipTotal};
use super::split::split_tip;
use crate::catalog::Store;
use crate::catalog::ids::{ArtistKey, ContentId, Pseudonym};
use crate::identity::Identity;

const OUT: &[u8] = b"out/";
const DONE: &[u8] = b"done/";

/// A settlement sent and not yet countersigned.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    doc: Settlement,
    /// Ledger entries before this position are covered for this artist.
    upto: u64,
}

/// The last settlement an artist countersigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// The settlement.
    pub doc: Settlement,
    /// The artist's receipt for it.
    pub receipt: Receipt,
    /// Ledger entries before this position are covered for this artist.
    pub upto: u64,
}

/// Settlements ready to send, and artists that cannot be settled yet.
#[derive(Debug, Default)]
pub struct Prepared {
    /// One document per artist (new, or the one still awaiting a receipt).
    pub ready: Vec<Settlement>,
    /// Artists skipped, with the reason.
    pub skipped: Vec<(ArtistKey, String)>,
}

fn key(prefix: &[u8], artist: &ArtistKey) -> Vec<u8> {
    [prefix, &artist.0].concat()
}

/// What one artist is owed since the last settlement.
#[derive(Default)]
struct Acc {
    rows: BTreeMap<(u32, ContentId), (u32, u64)>,
    passes: BTreeMap<Pseudonym, u64>,
    tips: BTreeMap<String, u64>,
    /// Set when the play report is full: entries from here go into the next settlement.
    stop: Option<u64>,
}

impl Acc {
    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.tips.is_empty()
    }

    fn add(&mut self, e: &Entry) -> Result<(), LedgerError> {
        match &e.body {
            Body::Play { track, ms, hour, via, .. } => {
                let day = u32::try_from(hour / (24 * HOUR)).unwrap_or(u32::MAX);
                if self.rows.len() >= MAX_PLAY_ROWS && !self.rows.contains_key(&(day, *track)) {
                    self.stop = Some(e.seq);
                    return Ok(());
                }
                let row = self.rows.entry((day, *track)).or_default();
                row.0 = row.0.saturating_add(1);
                row.1 = row.1.saturating_add(*ms);
                if let Some(sharer) = via {
                    *self.passes.entry(*sharer).or_default() += 1;
                }
            }
            Body::Tip { amount, .. } => {
                let t = self.tips.entry(amount.unit.clone()).or_default();
                *t = t
                    .checked_add(amount.minor)
                    .ok_or_else(|| LedgerError::Invalid(e.seq, format!("{} tip total overflows", amount.unit)))?;
            }
            Body::TipState { .. } | Body::Receipt { .. } => {}
        }
        Ok(())
    }
}

impl Ledger {
    /// Records a play of `track` by `artist` at unix time `at` (kept only to the hour).
    /// `via` is the sharer's pseudonym if the track came through a share link.
    pub fn record_play(
        &self,
        track: ContentId,
        artist: ArtistKey,
        ms: u64,
        at: u64,
        via: Option<Pseudonym>,
    ) -> Result<Entry, LedgerError> {
        self.append(Body::play(track, artist, ms, at, via))
    }

    /// Promises a tip; it is settled with the artist at the next `settle`.
    pub fn tip(&self, artist: ArtistKey, amount: Money) -> Result<Entry, LedgerError> {
        if amount.minor == 0 {
            return Err(LedgerError::Refused("a tip must be at least 1 minor unit".into()));
        }
        if !valid_unit(&amount.unit) {
            return Err(LedgerError::Refused(format!("unit code {:?}: use letters and digits, e.g. USD", amount.unit)));
        }
        self.append(Body::Tip { artist, amount, budget: None })
    }

    /// The last countersigned settlement with `artist`.
    pub fn settled(&self, artist: &ArtistKey) -> Result<Option<Settled>, LedgerError> {
        self.state_get(&key(DONE, artist))?.map(|b| decode_stored(&b, "settled state")).transpose()
    }

    /// Every artist's last countersigned settlement.
    pub fn all_settled(&self) -> Result<Vec<Settled>, LedgerError> {
        self.state.scan_prefix(DONE).map(|item| decode_stored(&item?.1, "settled state")).collect()
    }

    /// Settlements awaiting a receipt.
    pub fn pending(&self) -> Result<Vec<Settlement>, LedgerError> {
        self.state
            .scan_prefix(OUT)
            .map(|item| Ok(decode_stored::<Pending>(&item?.1, "pending settlement")?.doc))
            .collect()
    }

    /// Drops the settlement awaiting a receipt from `artist`, so the next `prepare` rebuilds it
    /// (e.g. after the artist changed their splits).
    pub fn discard_pending(&self, artist: &ArtistKey) -> Result<(), LedgerError> {
        self.set_state(vec![(key(OUT, artist), None)])
    }

    /// Allocates finished budget periods, then prepares one settlement per artist that has
    /// new plays or tips (or returns the one still awaiting a receipt).
    pub fn prepare(&self, store: &Store, identity: &Identity, now: u64) -> Result<Prepared, LedgerError> {
        Budget::allocate_due(self, now)?;
        let mut out = Prepared::default();
        let mut pending: HashMap<ArtistKey, Settlement> = HashMap::new();
        for doc in self.pending()? {
            pending.insert(doc.terms.artist, doc);
        }
        let done: HashMap<ArtistKey, Settled> =
            self.all_settled()?.into_iter().map(|s| (s.doc.terms.artist, s)).collect();
        let end = self.len();
        let mut accs: BTreeMap<ArtistKey, Acc> = BTreeMap::new();
        for item in self.entries(0) {
            let e = item?;
            if e.seq >= end {
                break;
            }
            let artist = *e.body.artist();
            if pending.contains_key(&artist) || done.get(&artist).is_some_and(|d| e.seq < d.upto) {
                continue;
            }
            let acc = accs.entry(artist).or_default();
            if acc.stop.is_none() {
                acc.add(&e)?;
            }
        }
        out.ready.extend(pending.into_values());
        for (artist, acc) in accs {
            if acc.is_empty() {
                continue;
            }
            let Some(catalog) = store.catalog(&artist).map_err(|e| LedgerError::Db(e.to_string()))? else {
                out.skipped.push((artist, format!("no catalog known for artist {artist}: its splits are needed")));
                continue;
            };
            let upto = acc.stop.unwrap_or(end);
            let doc = self.build(&artist, acc, done.get(&artist), &catalog, identity)?;
            let op =
                (key(OUT, &artist), Some(postcard::to_stdvec(&Pending { doc: doc.clone(), upto }).unwrap_or_default()));
            self.append_with(vec![Body::TipState { artist, n: doc.terms.n, hash: doc.hash() }], vec![op])?;
            out.ready.push(doc);
        }
        Ok(out)
    }

    fn build(
        &self,
        artist: &ArtistKey,
        acc: Acc,
        prev: Option<&Settled>,
        catalog: &crate::catalog::SignedCatalog,
        identity: &Identity,
    ) -> Result<Settlement, LedgerError> {
        let pseudonym = identity.pseudonym_for(artist);
        let fan = Pseudonym(pseudonym.verifying_key().to_bytes());
        let mut passes: BTreeMap<Pseudonym, u64> = BTreeMap::new();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        if let Some(p) = prev {
            passes.extend(p.doc.terms.passes.iter().copied());
            totals.extend(p.doc.terms.tips.iter().map(|t| (t.unit.clone(), t.total)));
        }
        for (sharer, n) in acc.passes {
            *passes.entry(sharer).or_default() += n;
        }
        for (unit, minor) in acc.tips {
            let t = totals.entry(unit.clone()).or_default();
            *t = t.checked_add(minor).ok_or_else(|| LedgerError::Refused(format!("{unit} tip total overflows")))?;
        }
        let passes: Vec<(Pseudonym, u64)> = passes.into_iter().collect();
        let splits = &catalog.catalog().tip_splits();
        let tips = totals
            .into_iter()
            .map(|(unit, total)| TipTotal { parts: split_tip(total, splits, &passes), unit, total })
            .collect();
        let plays =
            acc.rows.into_iter().map(|((day, track), (plays, ms))| DayPlays { day, track, plays, ms }).collect();
        let terms = Terms {
            artist: *artist,
            fan,
            n: prev.map_or(0, |p| p.doc.terms.n) + 1,
            catalog_seq: catalog.seq(),
            tips,
            passes,
            plays,
        };
        Ok(Settlement::sign(terms, &pseudonym)?)
    }

    /// Stores the artist's receipt for the pending settlement it answers. A receipt for a
    /// settlement already settled is accepted again without change (idempotent).
    pub fn accept_receipt(&self, receipt: &Receipt) -> Result<(), LedgerError> {
        let artist = receipt.artist;
        let Some(bytes) = self.state_get(&key(OUT, &artist))? else {
            return match self.settled(&artist)? {
                Some(s) if s.receipt.n == receipt.n && s.receipt.settlement == receipt.settlement => Ok(()),
                _ => Err(LedgerError::Refused(format!("no settlement with artist {artist} awaits this receipt"))),
            };
        };
        let Pending { doc, upto } = decode_stored(&bytes, "pending settlement")?;
        receipt.verify(&doc)?;
        let settled = Settled { doc, receipt: receipt.clone(), upto };
        let ops: Vec<StateOp> = vec![
            (key(OUT, &artist), None),
            (key(DONE, &artist), Some(postcard::to_stdvec(&settled).unwrap_or_default())),
        ];
        let body = Body::Receipt { artist, n: receipt.n, hash: receipt.settlement, sig: receipt.sig.clone() };
        self.append_with(vec![body], ops)?;
        Ok(())
    }
}
