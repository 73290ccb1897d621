//! The catalog model: what an artist publishes, as plain data with its validation rules.
//!
//! Everything here is sans-IO. [`Catalog::validate`] enforces the bounds every catalog must
//! meet, whether it was built locally or arrived from a hostile peer.

use serde::{Deserialize, Serialize};

use super::CatalogError;
use super::ids::{ArtistKey, ContentId};

/// Basis points that make a whole (100.00 %).
pub const WHOLE_BPS: u32 = 10_000;
/// Most releases one catalog may hold.
pub const MAX_RELEASES: usize = 1_000;
/// Most tracks one release may hold.
pub const MAX_TRACKS: usize = 500;
/// Most split recipients per release.
pub const MAX_SPLITS: usize = 16;
/// Most tour dates and most profile links.
pub const MAX_LIST: usize = 256;
/// Longest short text (names, titles, identifiers), in bytes.
pub const MAX_SHORT: usize = 256;
/// Longest long text (bio), in bytes.
pub const MAX_LONG: usize = 8_192;
/// Largest referral share, in basis points (half of a tip at most).
pub const MAX_REFERRAL_BPS: u16 = 5_000;

/// One version of an artist's catalog. Signed as a whole by the artist key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The artist's public key; must equal the key that signed the catalog.
    pub artist: ArtistKey,
    /// Version number; every new version must be strictly greater than the last.
    pub seq: u64,
    /// Who the artist is.
    pub profile: Profile,
    /// Published releases, oldest first.
    pub releases: Vec<Release>,
    /// Announced concerts.
    pub tour: Vec<TourDate>,
}

/// The artist's public profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Display name.
    pub name: String,
    /// Free-text biography.
    pub bio: String,
    /// Web links (homepage, shop, …).
    pub links: Vec<String>,
    /// Where tips are paid: a payment URL or a Lightning address. Money moves outside busker.
    pub payment: Option<String>,
}

/// A release: an album, EP or single.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Title.
    pub title: String,
    /// Release date, `YYYY-MM-DD`.
    pub date: String,
    /// Cover art, stored as content like any track.
    pub cover: Option<Content>,
    /// Terms for every track that does not carry its own.
    pub licence: Licence,
    /// Who receives tips for this release.
    pub splits: Splits,
    /// Tracks in playing order.
    pub tracks: Vec<Track>,
}

/// A piece of stored content (cover art) with its media type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Manifest id.
    pub id: ContentId,
    /// Size in bytes.
    pub size: u64,
    /// Media type, e.g. `image/jpeg`.
    pub mime: String,
}

/// One audio track.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// Title.
    pub title: String,
    /// 1-based position in the release.
    pub position: u32,
    /// Playing time in milliseconds.
    pub duration_ms: u64,
    /// Codec short name (`flac`, `mp3`, `vorbis`, `pcm`, `aac`, `alac`).
    pub codec: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Average bit rate in bits per second (file size over duration).
    pub bit_rate: u32,
    /// Manifest id: the track's content id.
    pub id: ContentId,
    /// File size in bytes.
    pub size: u64,
    /// Original file name (no directories), used by `export`.
    pub file_name: String,
    /// Terms for this track when they differ from the release's.
    pub licence: Option<Licence>,
}

/// Licence terms: an SPDX or Creative Commons identifier plus machine-readable uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    /// Identifier, e.g. `CC-BY-4.0` or `LicenseRef-all-rights-reserved`.
    pub id: String,
    /// What a listener may do.
    pub uses: Uses,
}

/// Machine-readable allowed uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uses {
    /// Play it.
    pub stream: bool,
    /// Keep a copy.
    pub download: bool,
    /// Embed a player on other sites.
    pub embed: bool,
    /// Make derivative works.
    pub remix: bool,
    /// Use it commercially.
    pub commercial: bool,
}

/// Tip splits: recipients whose basis points sum to exactly 10 000, plus a referral share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splits {
    /// Recipients and their shares.
    pub recipients: Vec<Split>,
    /// Share of a tip credited to the fan who passed the track on, taken off the top.
    pub referral_bps: u16,
}

/// One split recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Recipient's public key.
    pub key: ArtistKey,
    /// Share in basis points.
    pub bps: u16,
}

/// A concert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TourDate {
    /// Date, `YYYY-MM-DD`.
    pub date: String,
    /// City.
    pub city: String,
    /// Venue.
    pub venue: String,
    /// Tickets link.
    pub url: Option<String>,
}

impl Licence {
    /// Terms for a well-known identifier, or `None` if the uses must be given explicitly.
    pub fn known(id: &str) -> Option<Self> {
        let all = Uses { stream: true, download: true, embed: true, remix: true, commercial: true };
        let uses = match id.to_ascii_uppercase().as_str() {
            "CC0-1.0" | "CC-BY-4.0" | "CC-BY-SA-4.0" => all,
            "CC-BY-NC-4.0" | "CC-BY-NC-SA-4.0" => Uses { commercial: false, ..all },
            "CC-BY-ND-4.0" => Uses { remix: false, ..all },
            "CC-BY-NC-ND-4.0" => Uses { remix: false, commercial: false, ..all },
            "LICENSEREF-ALL-RIGHTS-RESERVED" => {
                Uses { stream: true, download: false, embed: true, remix: false, commercial: false }
            }
            _ => return None,
        };
        let canonical = KNOWN_LICENCES.iter().find(|k| k.eq_ignore_ascii_case(id)).copied()?;
        Some(Self { id: canonical.to_string(), uses })
    }
}

/// Identifiers [`Licence::known`] understands.
pub const KNOWN_LICENCES: &[&str] = &[
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0",
    "LicenseRef-all-rights-reserved",
];

impl Splits {
    /// Everything to one key, no referral share.
    pub fn sole(key: ArtistKey) -> Self {
        Self { recipients: vec![Split { key, bps: WHOLE_BPS as u16 }], referral_bps: 0 }
    }

    /// Checks count, duplicates, and that the shares sum to exactly 10 000.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let bad = |why: String| Err(CatalogError::BadSplits(why));
        if self.recipients.is_empty() || self.recipients.len() > MAX_SPLITS {
            return bad(format!("{} recipients (1..={MAX_SPLITS} allowed)", self.recipients.len()));
        }
        let sum: u32 = self.recipients.iter().map(|s| u32::from(s.bps)).sum();
        if sum != WHOLE_BPS {
            return bad(format!("shares sum to {sum} basis points, not {WHOLE_BPS}"));
        }
        if self.recipients.iter().any(|s| s.bps == 0) {
            return bad("a recipient has a zero share".into());
        }
        for (i, a) in self.recipients.iter().enumerate() {
            if self.recipients[..i].iter().any(|b| b.key == a.key) {
                return bad(format!("recipient {} is listed twice", a.key));
            }
        }
        if self.referral_bps > MAX_REFERRAL_BPS {
            return bad(format!("referral share {} exceeds {MAX_REFERRAL_BPS}", self.referral_bps));
        }
        Ok(())
    }
}

impl Release {
    /// The release id: the BLAKE3 hash of its canonical encoding.
    pub fn id(&self) -> ContentId {
        // Encoding plain owned data into a Vec cannot fail; an empty fallback keeps this total.
        ContentId::of(&postcard::to_stdvec(self).unwrap_or_default())
    }

    /// Total playing time in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.tracks.iter().map(|t| t.duration_ms).sum()
    }
}

fn short(what: &str, s: &str) -> Result<(), CatalogError> {
    if s.len() > MAX_SHORT || s.chars().any(char::is_control) {
        return Err(CatalogError::BadField(format!("{what} is over {MAX_SHORT} bytes or has control characters")));
    }
    Ok(())
}

/// Checks a `YYYY-MM-DD` date (Gregorian, years 1000–9999).
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) if (1000..=9999).contains(&y) && (1..=12).contains(&m) => {
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            d >= 1 && d <= days[m as usize - 1]
        }
        _ => false,
    }
}

impl Catalog {
    /// How a tip to this artist is split: by the newest release's splits, or all to the
    /// artist before the first release. Fan and artist nodes both use this rule.
    pub fn tip_splits(&self) -> Splits {
        self.releases.last().map_or_else(|| Splits::sole(self.artist), |r| r.splits.clone())
    }

    /// An empty catalog (no releases) for a new artist.
    pub fn new(artist: ArtistKey, name: &str) -> Self {
        let profile = Profile { name: name.to_string(), ..Profile::default() };
        Self { artist, seq: 1, profile, releases: Vec::new(), tour: Vec::new() }
    }

    /// Enforces every bound and rule a catalog must meet.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let p = &self.profile;
        short("artist name", &p.name)?;
        if p.name.trim().is_empty() {
            return Err(CatalogError::BadField("artist name is empty".into()));
        }
        if p.bio.len() > MAX_LONG {
            return Err(CatalogError::BadField(format!("bio is over {MAX_LONG} bytes")));
        }
        if p.links.len() > MAX_LIST || self.tour.len() > MAX_LIST {
            return Err(CatalogError::BadField(format!("more than {MAX_LIST} links or tour dates")));
        }
        for l in p.links.iter().chain(p.payment.iter()) {
            short("link", l)?;
        }
        for t in &self.tour {
            for (what, v) in [("tour city", &t.city), ("tour venue", &t.venue), ("tour date", &t.date)] {
                short(what, v)?;
            }
            if !valid_date(&t.date) {
                return Err(CatalogError::BadField(format!("tour date {:?} is not YYYY-MM-DD", t.date)));
            }
        }
        if self.releases.len() > MAX_RELEASES {
            return Err(CatalogError::BadField(format!("more than {MAX_RELEASES} releases")));
        }
        self.releases.iter().try_for_each(validate_release)
    }

    /// Finds a release by id.
    pub fn release(&self, id: &ContentId) -> Option<&Release> {
        self.releases.iter().find(|r| r.id() == *id)
    }
}

fn validate_release(r: &Release) -> Result<(), CatalogError> {
    short("release title", &r.title)?;
    if !valid_date(&r.date) {
        return Err(CatalogError::BadField(format!("release date {:?} is not YYYY-MM-DD", r.date)));
    }
    if r.tracks.is_empty() || r.tracks.len() > MAX_TRACKS {
        return Err(CatalogError::BadField(format!(
            "release {:?} has {} tracks (1..={MAX_TRACKS})",
            r.title,
            r.tracks.len()
        )));
    }
    r.splits.validate()?;
    for l in std::iter::once(&r.licence).chain(r.tracks.iter().filter_map(|t| t.licence.as_ref())) {
        short("licence id", &l.id)?;
    }
    if let Some(c) = &r.cover {
        short("cover type", &c.mime)?;
    }
    for t in &r.tracks {
        short("track title", &t.title)?;
        short("file name", &t.file_name)?;
        short("codec", &t.codec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(valid_date("2024-02-29"));
        assert!(!valid_date("2023-02-29"));
        assert!(!valid_date("2023-13-01"));
        assert!(!valid_date("23-1-1"));
        assert!(!valid_date("２０２３-01-01"));
    }

    #[test]
    fn splits_must_sum_exactly() {
        let k = |b| ArtistKey([b; 32]);
        let s = |v: &[(u8, u16)]| Splits {
            recipients: v.iter().map(|&(b, bps)| Split { key: k(b), bps }).collect(),
            referral_bps: 0,
        };
        assert!(s(&[(1, 6000), (2, 4000)]).validate().is_ok());
        assert!(s(&[(1, 6000), (2, 3999)]).validate().is_err());
        assert!(s(&[(1, 5000), (1, 5000)]).validate().is_err());
        assert!(s(&[]).validate().is_err());
    }

    #[test]
    fn known_licences() {
        assert!(!Licence::known("cc-by-nc-4.0").unwrap().uses.commercial);
        assert_eq!(Licence::known("cc-by-4.0").unwrap().id, "CC-BY-4.0");
        assert!(Licence::known("GPL-3.0").is_none());
    }
}
