//! Budget mode: a fixed amount per period, split across artists in proportion to the fan's
//! own plays in that period (user-centric), and recorded as tips when the period ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::entry::{Body, LedgerError, Money, valid_unit};
use super::log::Ledger;
use super::split::allocate_budget;
use crate::catalog::ids::ArtistKey;
use crate::time::{civil_from_days, days_from_civil};

const BUDGET: &[u8] = b"budget";
const NEXT: &[u8] = b"budget/next";
const DAY: u64 = crate::time::DAY;
/// Most finished periods allocated in one go (a node off for years catches up in steps).
const MAX_PERIODS: usize = 400;

/// How long a budget period lasts (UTC calendar periods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// A day.
    Day,
    /// A week, Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
}

impl std::str::FromStr for Period {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            _ => Err(LedgerError::Refused(format!("period {s:?}: use day, week or month"))),
        }
    }
}

impl Period {
    /// Start (unix seconds) of the period containing `t`.
    pub fn start(self, t: u64) -> u64 {
        let day = t / DAY;
        match self {
            Period::Day => day * DAY,
            // 1970-01-01 was a Thursday: Monday-based weeks start 3 days before multiples of 7.
            Period::Week => ((day + 3) / 7 * 7).saturating_sub(3) * DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days(day as i64);
                days_from_civil(y, m, 1).max(0) as u64 * DAY
            }
        }
    }

    /// End (exclusive) of the period starting at `start`.
    pub fn end(self, start: u64) -> u64 {
        match self {
            Period::Day => start + DAY,
            Period::Week => start + 7 * DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days((start / DAY) as i64);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1).max(0) as u64 * DAY
            }
        }
    }
}

/// Amounts per artist.
pub type Allocation = Vec<(ArtistKey, u64)>;

/// A recurring budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Amount per period.
    pub amount: Money,
    /// Period length.
    pub per: Period,
}

impl Budget {
    /// Sets (or replaces) the budget, starting with the period containing `now`.
    pub fn set(ledger: &Ledger, budget: &Budget, now: u64) -> Result<(), LedgerError> {
        if budget.amount.minor == 0 || !valid_unit(&budget.amount.unit) {
            return Err(LedgerError::Refused(format!(
                "budget {} {:?}: give a positive whole number of minor units and a unit code like USD",
                budget.amount.minor, budget.amount.unit
            )));
        }
        let start = budget.per.start(now);
        ledger.set_state(vec![
            (BUDGET.to_vec(), Some(postcard::to_stdvec(budget).unwrap_or_default())),
            (NEXT.to_vec(), Some(start.to_be_bytes().to_vec())),
        ])
    }

    /// The current budget, if one is set.
    pub fn get(ledger: &Ledger) -> Result<Option<Budget>, LedgerError> {
        match ledger.state_get(BUDGET)? {
            Some(b) => {
                postcard::from_bytes(&b).map(Some).map_err(|e| LedgerError::Malformed(0, format!("budget: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Plays per artist in each of `periods` (consecutive `[start, end)` ranges), in one
    /// pass over the ledger.
    fn plays(ledger: &Ledger, periods: &[(u64, u64)]) -> Result<Vec<Vec<(ArtistKey, u64)>>, LedgerError> {
        let mut plays: Vec<BTreeMap<ArtistKey, u64>> = vec![BTreeMap::new(); periods.len()];
        for item in ledger.entries(0) {
            if let Body::Play { artist, hour, .. } = item?.body {
                // Periods are sorted and contiguous: the last one starting at or before `hour`.
                let i = periods.partition_point(|(start, _)| *start <= hour);
                if let Some(k) = i.checked_sub(1).filter(|&k| hour < periods[k].1) {
                    *plays[k].entry(artist).or_default() += 1;
                }
            }
        }
        Ok(plays.into_iter().map(|m| m.into_iter().collect()).collect())
    }

    /// How the current period's budget would be split if it ended now.
    pub fn preview(ledger: &Ledger, now: u64) -> Result<Option<(Budget, Allocation)>, LedgerError> {
        let Some(b) = Self::get(ledger)? else { return Ok(None) };
        let start = b.per.start(now);
        let plays = Self::plays(ledger, &[(start, b.per.end(start))])?;
        let split = allocate_budget(b.amount.minor, plays.first().map_or(&[][..], Vec::as_slice));
        Ok(Some((b, split)))
    }

    /// Records the allocation of every finished period as tips (once each), all in one
    /// atomic append. Returns how many periods were closed.
    pub fn allocate_due(ledger: &Ledger, now: u64) -> Result<usize, LedgerError> {
        let Some(b) = Self::get(ledger)? else { return Ok(0) };
        let Some(next) = ledger.state_get(NEXT)? else { return Ok(0) };
        let mut start = next.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
        let mut due = Vec::new();
        while due.len() < MAX_PERIODS && b.per.end(start) <= now {
            due.push((start, b.per.end(start)));
            start = b.per.end(start);
        }
        let Some(&(_, last_end)) = due.last() else { return Ok(0) };
        let mut tips = Vec::new();
        for (&(start, _), plays) in due.iter().zip(Self::plays(ledger, &due)?) {
            tips.extend(allocate_budget(b.amount.minor, &plays).into_iter().map(|(artist, minor)| Body::Tip {
                artist,
                amount: Money { minor, unit: b.amount.unit.clone() },
                budget: Some(start),
            }));
        }
        ledger.append_with(tips, vec![(NEXT.to_vec(), Some(last_end.to_be_bytes().to_vec()))])?;
        Ok(due.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_periods_are_allocated_by_plays_once() {
        use crate::catalog::ids::ContentId;
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let ledger = Ledger::open(&db, ed25519_dalek::SigningKey::from_bytes(&[4; 32])).unwrap();
        let day0 = 1_763_683_200;
        let (a, b) = (ArtistKey([1; 32]), ArtistKey([2; 32]));
        let usd = Money { minor: 1_000, unit: "USD".into() };
        Budget::set(&ledger, &Budget { amount: usd, per: Period::Day }, day0 + 60).unwrap();
        for (artist, at) in [(a, day0 + 10), (a, day0 + 7_200), (b, day0 + 9_000), (b, day0 + DAY + 5)] {
            ledger.record_play(ContentId([9; 32]), artist, 40_000, at, None).unwrap();
        }
        assert_eq!(Budget::allocate_due(&ledger, day0 + DAY - 1).unwrap(), 0, "day 0 is not over");
        assert_eq!(Budget::allocate_due(&ledger, day0 + 2 * DAY + 1).unwrap(), 2);
        let tips: Vec<(ArtistKey, u64, Option<u64>)> = ledger
            .entries(0)
            .filter_map(|e| match e.unwrap().body {
                Body::Tip { artist, amount, budget } => Some((artist, amount.minor, budget)),
                _ => None,
            })
            .collect();
        assert_eq!(tips, vec![(a, 667, Some(day0)), (b, 333, Some(day0)), (b, 1_000, Some(day0 + DAY))]);
        assert_eq!(Budget::allocate_due(&ledger, day0 + 2 * DAY + 1).unwrap(), 0, "allocated once");
    }

    #[test]
    fn periods_follow_the_calendar() {
        // 2025-11-21 12:00 UTC, a Friday.
        let t = 1_763_726_400;
        assert_eq!(Period::Day.start(t), 1_763_683_200);
        assert_eq!(Period::Week.start(t), 1_763_337_600, "Monday 2025-11-17");
        assert_eq!(Period::Month.start(t), 1_761_955_200, "2025-11-01");
        assert_eq!(Period::Month.end(1_761_955_200), 1_764_547_200, "2025-12-01");
        assert_eq!(Period::Month.end(Period::Month.start(1_767_225_600 - 1)), 1_767_225_600, "2026-01-01");
        assert_eq!(Period::Month.end(1_769_904_000), 1_772_323_200, "February 2026 has 28 days");
    }
}
