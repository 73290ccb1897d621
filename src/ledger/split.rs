//! Exact integer arithmetic for money: largest-remainder apportionment, tip splits with a
//! referral share, and user-centric budget allocation. No floats anywhere: every function
//! returns parts that sum exactly to the total.

use serde::{Deserialize, Serialize};

use crate::catalog::ids::{ArtistKey, Pseudonym};
use crate::catalog::model::{Splits, WHOLE_BPS};

/// Splits `total` in proportion to `weights` with largest-remainder (Hamilton) rounding. The
/// parts sum to `total` exactly; each is within 1 of its exact quota; ties go to the earlier
/// weight. Returns `None` when every weight is zero (there is nobody to give it to).
pub fn apportion(total: u64, weights: &[u64]) -> Option<Vec<u64>> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return None;
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (i, &w) in weights.iter().enumerate() {
        let exact = u128::from(total) * u128::from(w);
        let floor = exact / sum;
        given += floor;
        // floor ≤ total, so it fits in u64.
        parts.push(u64::try_from(floor).unwrap_or(u64::MAX));
        remainders.push((exact % sum, i));
    }
    let left = u128::from(total) - given; // < weights.len()
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(usize::try_from(left).unwrap_or(usize::MAX)) {
        parts[i] += 1;
    }
    Some(parts)
}

/// A tip total divided among the catalog's split recipients and the sharers who passed the
/// artist's tracks on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parts {
    /// Each split recipient's part, in catalog order.
    pub recipients: Vec<(ArtistKey, u64)>,
    /// Each sharer's part of the referral share, in the order given.
    pub referral: Vec<(Pseudonym, u64)>,
}

impl Parts {
    /// The sum of every part.
    pub fn sum(&self) -> u128 {
        let r = self.recipients.iter().map(|(_, v)| u128::from(*v));
        r.chain(self.referral.iter().map(|(_, v)| u128::from(*v))).sum()
    }
}

/// Divides `total` by the catalog's `splits`. When sharers are credited (`passes`: how many
/// plays each sharer passed on), the referral share comes off the top and is divided among
/// them by passes; otherwise the recipients get everything. Exact: parts sum to `total`.
pub fn split_tip(total: u64, splits: &Splits, passes: &[(Pseudonym, u64)]) -> Parts {
    let credited = passes.iter().any(|(_, n)| *n > 0);
    let whole = u64::from(WHOLE_BPS);
    let referral_bps = if credited { u64::from(splits.referral_bps).min(whole) } else { 0 };
    let pools = apportion(total, &[whole - referral_bps, referral_bps]).unwrap_or_else(|| vec![total, 0]);
    let weights: Vec<u64> = splits.recipients.iter().map(|r| u64::from(r.bps)).collect();
    let recipients = match apportion(pools[0], &weights) {
        Some(p) => splits.recipients.iter().map(|r| r.key).zip(p).collect(),
        None => Vec::new(),
    };
    let pass_weights: Vec<u64> = passes.iter().map(|(_, n)| *n).collect();
    let referral = match apportion(pools[1], &pass_weights) {
        Some(p) => passes.iter().map(|(k, _)| *k).zip(p).collect(),
        None => Vec::new(),
    };
    Parts { recipients, referral }
}

/// User-centric budget allocation: the period's `budget` divided among artists in proportion
/// to this fan's own plays of each. Artists with no plays get nothing; with no plays at all,
/// nothing is allocated (an empty result).
pub fn allocate_budget(budget: u64, plays: &[(ArtistKey, u64)]) -> Vec<(ArtistKey, u64)> {
    let weights: Vec<u64> = plays.iter().map(|(_, n)| *n).collect();
    match apportion(budget, &weights) {
        Some(parts) => plays.iter().map(|(a, _)| *a).zip(parts).filter(|(_, v)| *v > 0).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::Split;
    use crate::synth::Rng;

    #[test]
    fn apportion_is_exact_and_fair() {
        assert_eq!(apportion(10, &[1, 1, 1]), Some(vec![4, 3, 3]));
        assert_eq!(apportion(0, &[5, 5]), Some(vec![0, 0]));
        assert_eq!(apportion(7, &[0, 0]), None);
        assert_eq!(
            apportion(u64::MAX, &[u64::MAX, 1]).map(|p| p.iter().map(|&x| u128::from(x)).sum::<u128>()),
            Some(u128::from(u64::MAX))
        );
    }

    #[test]
    fn three_way_split_with_referral_sums_exactly_over_10_000_random_budgets() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..10_000 {
            // Three recipients with random basis points summing to 10000.
            let a = rng.below(10_001);
            let b = rng.below(10_001 - a);
            let bps = [a, b, 10_000 - a - b];
            let splits = Splits {
                recipients: (0..3u8)
                    .map(|i| Split { key: ArtistKey([i + 1; 32]), bps: bps[usize::from(i)] as u16 })
                    .collect(),
                referral_bps: rng.below(5_001) as u16,
            };
            let budget = match case % 4 {
                0 => rng.below(100),
                1 => rng.below(1_000_000),
                2 => rng.next() >> rng.below(64),
                _ => u64::MAX - rng.below(1000),
            };
            // Up to 5 artists with random play counts, then up to 3 sharers per artist.
            let artists: Vec<(ArtistKey, u64)> =
                (0..1 + rng.below(5)).map(|i| (ArtistKey([100 + i as u8; 32]), rng.below(50))).collect();
            let allocated = allocate_budget(budget, &artists);
            let plays: u64 = artists.iter().map(|(_, n)| n).sum();
            let mut total: u128 = 0;
            for (_, amount) in &allocated {
                let passes: Vec<(Pseudonym, u64)> =
                    (0..rng.below(4)).map(|i| (Pseudonym([200 + i as u8; 32]), rng.below(20))).collect();
                let parts = split_tip(*amount, &splits, &passes);
                assert_eq!(parts.sum(), u128::from(*amount), "case {case}: parts of {amount} under {splits:?}");
                for ((_, got), w) in parts.recipients.iter().zip(bps) {
                    // Each recipient is within 1 of its exact share of the recipients' pool.
                    let pool: u128 = parts.recipients.iter().map(|(_, v)| u128::from(*v)).sum();
                    let exact = pool * u128::from(w);
                    let got = u128::from(*got) * 10_000;
                    assert!(got.abs_diff(exact) < 10_000, "case {case}: recipient part off by ≥ 1");
                }
                total += u128::from(*amount);
            }
            let expect = if plays == 0 { 0 } else { u128::from(budget) };
            assert_eq!(total, expect, "case {case}: budget {budget} over {artists:?}");
        }
    }

    #[test]
    fn referral_share_only_when_a_sharer_is_credited() {
        let splits = Splits { recipients: vec![Split { key: ArtistKey([1; 32]), bps: 10_000 }], referral_bps: 1_000 };
        let alone = split_tip(1_000, &splits, &[]);
        assert_eq!(alone.recipients, vec![(ArtistKey([1; 32]), 1_000)]);
        assert!(alone.referral.is_empty());
        let shared = split_tip(1_000, &splits, &[(Pseudonym([9; 32]), 3), (Pseudonym([8; 32]), 1)]);
        assert_eq!(shared.recipients, vec![(ArtistKey([1; 32]), 900)]);
        assert_eq!(shared.referral, vec![(Pseudonym([9; 32]), 75), (Pseudonym([8; 32]), 25)]);
    }
}
