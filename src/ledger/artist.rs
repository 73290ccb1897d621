//! The artist's side: accepting settlements, countersigning them, and the usage report.
//!
//! What is stored per fan is exactly the accepted settlements: a pseudonym, day numbers,
//! counts and amounts. No address, peer id, exact time or master key ever reaches this side,
//! so none can be stored.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::entry::LedgerError;
use super::log::{Ledger, decode_stored};
use super::settle::{Receipt, Settlement, Verdict};
use crate::catalog::SignedCatalog;
use crate::catalog::ids::{ArtistKey, ContentId, Pseudonym};

/// The newest accepted settlement from one pseudonym, with the receipt given for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Accepted {
    doc: Settlement,
    receipt: Receipt,
}

/// Plays of one track on one day, across fans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The track.
    pub track: ContentId,
    /// Its title, if the catalog still lists it.
    pub title: Option<String>,
    /// Plays.
    pub plays: u64,
    /// Milliseconds listened.
    pub ms: u64,
    /// Distinct listener pseudonyms.
    pub listeners: u64,
}

/// Tips in one unit, as the countersigned states add up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitReport {
    /// Currency or unit code.
    pub unit: String,
    /// Tipped in all (minor units).
    pub total: u64,
    /// Owed to each split recipient.
    pub recipients: Vec<(ArtistKey, u64)>,
    /// Owed to each sharer (referral share).
    pub referral: Vec<(Pseudonym, u64)>,
}

/// The artist's anonymous usage report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Plays per track per day.
    pub plays: Vec<ReportRow>,
    /// Distinct listener pseudonyms in all.
    pub listeners: u64,
    /// Successful passes (plays that came through a share) per sharer pseudonym.
    pub passes: Vec<(Pseudonym, u64)>,
    /// Tips per unit.
    pub tips: Vec<UnitReport>,
    /// Countersigned settlements backing these figures.
    pub receipts: u64,
}

/// Per unit: total, owed per recipient, owed per sharer.
type UnitSums = (u64, BTreeMap<ArtistKey, u64>, BTreeMap<Pseudonym, u64>);

fn history_key(fan: &Pseudonym, n: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&fan.0);
    k[32..].copy_from_slice(&n.to_be_bytes());
    k
}

impl Ledger {
    /// Checks a fan's settlement against this artist's current catalog and the fan's last
    /// accepted state, stores it durably, and returns the countersigned receipt. A retry of
    /// the accepted settlement gets the same receipt and changes nothing.
    pub fn accept_settlement(
        &self,
        doc: &Settlement,
        catalog: &SignedCatalog,
        key: &SigningKey,
        today: u32,
    ) -> Result<Receipt, LedgerError> {
        let artist = ArtistKey(key.verifying_key().to_bytes());
        if catalog.artist() != artist {
            return Err(LedgerError::Refused("the catalog given is not this artist's".into()));
        }
        let _one_at_a_time = self.accepting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fan = doc.terms.fan;
        let prev: Option<Accepted> =
            self.incoming.get(fan.0)?.map(|b| decode_stored(&b, "stored settlement")).transpose()?;
        if doc.check(&artist, prev.as_ref().map(|p| &p.doc), &catalog.catalog().tip_splits(), today)?
            == Verdict::Duplicate
            && let Some(p) = prev
        {
            return Ok(p.receipt);
        }
        let receipt = Receipt::sign(doc, key);
        let accepted = postcard::to_stdvec(&Accepted { doc: doc.clone(), receipt: receipt.clone() })
            .map_err(|e| LedgerError::Db(e.to_string()))?;
        let encoded = doc.encode();
        (&self.incoming, &self.history).transaction(|(incoming, history)| {
            incoming.insert(&fan.0, accepted.as_slice())?;
            history.insert(&history_key(&fan, doc.terms.n)[..], encoded.as_slice())?;
            Ok::<_, ConflictableTransactionError<LedgerError>>(())
        })?;
        self.flush()?;
        Ok(receipt)
    }

    /// The pseudonyms that have settled with this artist.
    pub fn fans(&self) -> Result<Vec<Pseudonym>, LedgerError> {
        self.incoming
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                k.as_ref().try_into().map(Pseudonym).map_err(|_| LedgerError::Malformed(0, "settlement key".into()))
            })
            .collect()
    }

    /// The usage report from every accepted settlement. `catalog` names the tracks.
    pub fn report(&self, catalog: Option<&crate::catalog::Catalog>) -> Result<Report, LedgerError> {
        let titles: BTreeMap<ContentId, String> = catalog
            .map(|c| c.releases.iter().flat_map(|r| r.tracks.iter().map(|t| (t.id, t.title.clone()))).collect())
            .unwrap_or_default();
        let mut rows: BTreeMap<(u32, ContentId), (u64, u64, BTreeSet<Pseudonym>)> = BTreeMap::new();
        let mut receipts = 0;
        for item in self.history.iter() {
            let doc: Settlement = Settlement::decode(&item?.1)?;
            receipts += 1;
            for p in &doc.terms.plays {
                let row = rows.entry((p.day, p.track)).or_default();
                row.0 += u64::from(p.plays);
                row.1 = row.1.saturating_add(p.ms);
                row.2.insert(doc.terms.fan);
            }
        }
        let mut listeners = BTreeSet::new();
        let mut passes: BTreeMap<Pseudonym, u64> = BTreeMap::new();
        let mut units: BTreeMap<String, UnitSums> = BTreeMap::new();
        for item in self.incoming.iter() {
            let Accepted { doc, .. } = decode_stored(&item?.1, "stored settlement")?;
            listeners.insert(doc.terms.fan);
            for (sharer, n) in &doc.terms.passes {
                *passes.entry(*sharer).or_default() += n;
            }
            for tip in &doc.terms.tips {
                let u = units.entry(tip.unit.clone()).or_default();
                u.0 = u.0.saturating_add(tip.total);
                for (k, v) in &tip.parts.recipients {
                    *u.1.entry(*k).or_default() += v;
                }
                for (k, v) in &tip.parts.referral {
                    *u.2.entry(*k).or_default() += v;
                }
            }
        }
        Ok(Report {
            plays: rows
                .into_iter()
                .map(|((day, track), (plays, ms, fans))| ReportRow {
                    date: crate::time::date_of_day(day),
                    track,
                    title: titles.get(&track).cloned(),
                    plays,
                    ms,
                    listeners: fans.len() as u64,
                })
                .collect(),
            listeners: listeners.len() as u64,
            passes: passes.into_iter().collect(),
            tips: units
                .into_iter()
                .map(|(unit, (total, r, s))| UnitReport {
                    unit,
                    total,
                    recipients: r.into_iter().collect(),
                    referral: s.into_iter().collect(),
                })
                .collect(),
            receipts,
        })
    }
}
