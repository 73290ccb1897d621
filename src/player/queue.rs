//! What to play: turning `TRACK|RELEASE|"search words"` into a queue of tracks, and shuffling.

use serde::{Deserialize, Serialize};

use super::PlayError;
use crate::catalog::search::{HitKind, search};
use crate::catalog::store::Item;
use crate::catalog::{ArtistKey, ContentId, Pseudonym, SignedCatalog, Store};

/// One track in a play queue, with what the player shows and the ledger records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The track's content id.
    pub id: ContentId,
    /// Title.
    pub title: String,
    /// The artist's key (for the ledger).
    pub artist: ArtistKey,
    /// The artist's name.
    pub artist_name: String,
    /// The release's title.
    pub release: String,
    /// Playing time from the catalog, in milliseconds.
    pub duration_ms: u64,
    /// The original file's extension, a hint for the decoder.
    pub ext: Option<String>,
    /// The pseudonym of the fan who passed the track on, if it came through a share.
    pub via: Option<Pseudonym>,
}

fn items_of(signed: &SignedCatalog, wanted: impl Fn(&ContentId, &ContentId) -> bool) -> Vec<QueueItem> {
    let catalog = signed.catalog();
    let mut out = Vec::new();
    for r in &catalog.releases {
        let rid = r.id();
        for t in &r.tracks {
            if wanted(&rid, &t.id) {
                out.push(QueueItem {
                    id: t.id,
                    title: t.title.clone(),
                    artist: signed.artist(),
                    artist_name: catalog.profile.name.clone(),
                    release: r.title.clone(),
                    duration_ms: t.duration_ms,
                    ext: t.file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()),
                    via: None,
                });
            }
        }
    }
    out
}

/// Resolves what the user asked for, among the catalogs the node knows: a track or release id
/// (or a unique prefix of at least 4 hex digits), else search words. A release plays all its
/// tracks in order; search words play the best match (a release, or a track), or every
/// release of an artist whose name matches.
pub fn resolve(store: &Store, query: &str) -> Result<Vec<QueueItem>, PlayError> {
    let catalogs = store.catalogs().map_err(|e| PlayError::Source(e.to_string()))?;
    let looks_like_id = query.len() >= 4 && query.len() <= 64 && query.bytes().all(|b| b.is_ascii_hexdigit());
    if looks_like_id {
        match store.resolve(query) {
            Ok(Item::Release(artist, release)) => {
                let rid = release.id();
                let items: Vec<QueueItem> = catalogs
                    .iter()
                    .filter(|c| c.artist() == artist)
                    .flat_map(|c| items_of(c, |r, _| *r == rid))
                    .collect();
                return non_empty(items, query);
            }
            Ok(Item::Content(id, _)) => {
                let mut items: Vec<QueueItem> = catalogs.iter().flat_map(|c| items_of(c, |_, t| *t == id)).collect();
                items.truncate(1);
                return non_empty(items, query);
            }
            Err(crate::catalog::StoreError::Ambiguous(_)) => return Err(PlayError::Ambiguous(query.to_string())),
            Err(_) => {}
        }
    }
    let hits = search(&catalogs, query);
    let Some(best) = hits.first() else { return Err(PlayError::NothingFound(query.to_string())) };
    let by_artist = catalogs.iter().filter(|c| c.artist() == best.artist);
    let items: Vec<QueueItem> = match (best.kind, best.id) {
        (HitKind::Track, Some(id)) => by_artist.flat_map(|c| items_of(c, |_, t| *t == id)).take(1).collect(),
        (HitKind::Release, Some(rid)) => by_artist.flat_map(|c| items_of(c, |r, _| *r == rid)).collect(),
        _ => by_artist.flat_map(|c| items_of(c, |_, _| true)).collect(),
    };
    non_empty(items, query)
}

fn non_empty(items: Vec<QueueItem>, query: &str) -> Result<Vec<QueueItem>, PlayError> {
    if items.is_empty() { Err(PlayError::NothingFound(query.to_string())) } else { Ok(items) }
}

/// Shuffles in place (Fisher–Yates) with a seeded generator: the same seed gives the same
/// order, which keeps tests and bug reports reproducible.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = crate::synth::Rng::new(seed);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// Parses a position like `90`, `1:30`, `1:02:03` or `1:30.5` into milliseconds.
pub fn parse_position(text: &str) -> Result<u64, PlayError> {
    let bad = || PlayError::BadPosition(text.chars().take(40).collect());
    let t = text.trim();
    if t.is_empty() || t.len() > 16 {
        return Err(bad());
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let parts: Vec<&str> = whole.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let v: u64 = p.parse().map_err(|_| bad())?;
        if i > 0 && v >= 60 {
            return Err(bad());
        }
        secs = secs.checked_mul(60).and_then(|s| s.checked_add(v)).ok_or_else(bad)?;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 3 {
        return Err(bad());
    }
    let ms: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().map_err(|_| bad())? };
    secs.checked_mul(1000).and_then(|s| s.checked_add(ms)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_nonsense_is_refused() {
        assert_eq!(parse_position("90").unwrap(), 90_000);
        assert_eq!(parse_position("1:30").unwrap(), 90_000);
        assert_eq!(parse_position("1:02:03").unwrap(), 3_723_000);
        assert_eq!(parse_position("0:01.5").unwrap(), 1_500);
        for bad in ["", "1:60", "a:10", "1::2", "-5", "1.2345", "1:2:3:4", "99999999999999999"] {
            assert!(parse_position(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..20).collect();
        shuffle(&mut a, 7);
        let mut b: Vec<u32> = (0..20).collect();
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..20).collect::<Vec<_>>());
    }
}
