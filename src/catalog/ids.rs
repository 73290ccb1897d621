//! Identifiers: BLAKE3 content ids and ed25519 artist keys, both shown as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A BLAKE3 hash naming a chunk, a manifest (track or cover) or a release.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    /// The BLAKE3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The first 12 hex digits, for compact display.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(12);
        s
    }
}

impl From<blake3::Hash> for ContentId {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

/// An artist's ed25519 public key: the address of their catalog.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtistKey(pub [u8; 32]);

/// A fan's public key towards one artist: derived per artist from the fan's master key, so
/// two artists cannot link one fan (see [`Identity::pseudonym_for`](crate::identity::Identity::pseudonym_for)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub [u8; 32]);

/// Why a hex identifier could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected 64 hex digits, got {0:?}")]
pub struct ParseIdError(pub String);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Parses 64 lowercase or uppercase hex digits into 32 bytes.
pub fn parse_hex32(s: &str) -> Result<[u8; 32], ParseIdError> {
    let err = || ParseIdError(s.chars().take(80).collect());
    if s.len() != 64 || !s.is_ascii() {
        return Err(err());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| err())?;
    }
    Ok(out)
}

macro_rules! hex_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($t))?;
                write_hex(f, &self.0[..6])?;
                write!(f, "…)")
            }
        }
        // Hex in human-readable formats (JSON, TOML), 32 raw bytes in postcard.
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map(Self)
                }
            }
        }
        impl FromStr for $t {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s.trim()).map(Self)
            }
        }
    };
}
/// Serde for `[u8; 32]` fields that are hashes: hex in JSON, raw bytes in postcard (the
/// same encoding as a plain array). Use with `#[serde(with = "crate::catalog::ids::hex32")]`.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialises.
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(&super::ContentId(*v)) } else { v.serialize(s) }
    }

    /// Deserialises.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            super::parse_hex32(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

/// Serde for signatures (`Vec<u8>`): hex in JSON, length-prefixed bytes in postcard.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialises.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(&v.iter().map(|b| format!("{b:02x}")).collect::<String>())
        } else {
            v.to_vec().serialize(s)
        }
    }

    /// Deserialises (at most 1 KiB in JSON).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            if s.len() > 2048 || s.len() % 2 != 0 || !s.is_ascii() {
                return Err(serde::de::Error::custom("expected an even number of hex digits (≤ 2048)"));
            }
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(serde::de::Error::custom))
                .collect()
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}

hex_id!(ContentId);
hex_id!(ArtistKey);
hex_id!(Pseudonym);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let id = ContentId::of(b"hello");
        assert_eq!(id.to_string().parse::<ContentId>().unwrap(), id);
        assert!("xyz".parse::<ContentId>().is_err());
        assert!("é".repeat(32).parse::<ContentId>().is_err());
        assert!("0".repeat(63).parse::<ArtistKey>().is_err());
    }
}
