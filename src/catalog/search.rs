//! Search over the catalogs a node holds: artists, releases and tracks, by words.

use std::fmt;

use super::ids::{ArtistKey, ContentId};
use super::signed::SignedCatalog;

/// Most hits returned.
pub const MAX_HITS: usize = 200;

/// What a hit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    /// An artist.
    Artist,
    /// A release.
    Release,
    /// A track.
    Track,
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// Artist, release or track.
    pub kind: HitKind,
    /// The artist.
    pub artist: ArtistKey,
    /// Artist name.
    pub artist_name: String,
    /// Release title (releases and tracks).
    pub release: Option<String>,
    /// Track title (tracks).
    pub track: Option<String>,
    /// Release id (releases) or track id (tracks).
    pub id: Option<ContentId>,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id.map(|i| i.short()).unwrap_or_else(|| self.artist.to_string()[..12].to_string());
        match self.kind {
            HitKind::Artist => write!(f, "artist   {id}  {}", self.artist_name),
            HitKind::Release => {
                write!(f, "release  {id}  {} — {}", self.release.as_deref().unwrap_or(""), self.artist_name)
            }
            HitKind::Track => write!(
                f,
                "track    {id}  {} — {} ({})",
                self.track.as_deref().unwrap_or(""),
                self.artist_name,
                self.release.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Lowercases and strips common Latin diacritics, so "etudes" finds "Études".
fn fold(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'ď' | 'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
            'ğ' => 'g',
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => 'i',
            'ł' | 'ľ' => 'l',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
            'ř' => 'r',
            'ś' | 'š' | 'ş' => 's',
            'ť' | 'ţ' => 't',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            other => other,
        })
        .collect()
}

fn matches(words: &[String], text: &str) -> bool {
    let t = fold(text);
    words.iter().all(|w| t.contains(w.as_str()))
}

/// Finds every artist, release and track whose text contains all words of `query`
/// (case-insensitive). A release or track also matches on its artist's name.
pub fn search(catalogs: &[SignedCatalog], query: &str) -> Vec<Hit> {
    let words: Vec<String> = query.split_whitespace().take(16).map(fold).collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for signed in catalogs {
        let c = signed.catalog();
        let name = &c.profile.name;
        let hit = |kind, release: Option<&str>, track: Option<&str>, id| Hit {
            kind,
            artist: c.artist,
            artist_name: name.clone(),
            release: release.map(str::to_string),
            track: track.map(str::to_string),
            id,
        };
        if matches(&words, name) {
            hits.push(hit(HitKind::Artist, None, None, None));
        }
        for r in &c.releases {
            if matches(&words, &format!("{name} {}", r.title)) {
                hits.push(hit(HitKind::Release, Some(&r.title), None, Some(r.id())));
            }
            for t in &r.tracks {
                if matches(&words, &format!("{name} {} {}", r.title, t.title)) {
                    hits.push(hit(HitKind::Track, Some(&r.title), Some(&t.title), Some(t.id)));
                }
            }
        }
    }
    hits.truncate(MAX_HITS);
    hits
}

#[cfg(test)]
mod tests {
    #[test]
    fn folding() {
        assert!(super::matches(&["etudes".into(), "loop".into()], "Études for Loopback"));
        assert!(super::matches(&["bjork".into()], "Björk"));
        assert!(!super::matches(&["xyz".into()], "Björk"));
    }
}
