//! Budget mode: a fixed amount per period, split across artists in proportion to the fan's
//! own plays in that period (user-centric), and recorded as tips when the period ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::entry::{Body, HOUR, LedgerError, Money, valid_unit};
use super::log::Ledger;
use super::split::allocate_budget;
use crate::catalog::ids::ArtistKey;

const BUDGET: &[u8] = b"budget";
const NEXT: &[u8] = b"budget/next";
const DAY: u64 = 24 * HOUR;
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01, UTC).
pub fn date_of_day(day: u32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// (year, month, day) of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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

    /// Plays per artist with an hour bucket in `[start, end)`.
    fn plays(ledger: &Ledger, start: u64, end: u64) -> Result<Vec<(ArtistKey, u64)>, LedgerError> {
        let mut plays: BTreeMap<ArtistKey, u64> = BTreeMap::new();
        for item in ledger.entries(0) {
            if let Body::Play { artist, hour, .. } = item?.body {
                if (start..end).contains(&hour) {
                    *plays.entry(artist).or_default() += 1;
                }
            }
        }
        Ok(plays.into_iter().collect())
    }

    /// How the current period's budget would be split if it ended now.
    pub fn preview(ledger: &Ledger, now: u64) -> Result<Option<(Budget, Allocation)>, LedgerError> {
        let Some(b) = Self::get(ledger)? else { return Ok(None) };
        let start = b.per.start(now);
        let split = allocate_budget(b.amount.minor, &Self::plays(ledger, start, b.per.end(start))?);
        Ok(Some((b, split)))
    }

    /// Records the allocation of every finished period as tips (once each). Returns how many
    /// periods were closed.
    pub fn allocate_due(ledger: &Ledger, now: u64) -> Result<usize, LedgerError> {
        let Some(b) = Self::get(ledger)? else { return Ok(0) };
        let mut closed = 0;
        while closed < MAX_PERIODS {
            let Some(next) = ledger.state_get(NEXT)? else { break };
            let start = next.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
            let end = b.per.end(start);
            if end > now {
                break;
            }
            let tips: Vec<Body> = allocate_budget(b.amount.minor, &Self::plays(ledger, start, end)?)
                .into_iter()
                .map(|(artist, minor)| Body::Tip {
                    artist,
                    amount: Money { minor, unit: b.amount.unit.clone() },
                    budget: Some(start),
                })
                .collect();
            ledger.append_with(tips, vec![(NEXT.to_vec(), Some(end.to_be_bytes().to_vec()))])?;
            closed += 1;
        }
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(date_of_day(20_413), "2025-11-21");
        assert_eq!(date_of_day(0), "1970-01-01");
    }
}
