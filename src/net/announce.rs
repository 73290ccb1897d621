//! Catalog announcements: the small signed message gossiped when an artist publishes, and the
//! value of the artist's DHT record.
//!
//! An announcement says "artist A's catalog version S has hash H", signed by A's key. It is
//! 136 bytes, far below gossipsub's 64 KiB cap; the catalog body itself is fetched from the
//! announcer or any provider and verified against the same key and hash.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::catalog::ids::{ArtistKey, ContentId};
use crate::catalog::signed::SignedCatalog;

/// Encoded size of an announcement.
pub const ANNOUNCEMENT_BYTES: usize = 32 + 8 + 32 + 64;
const DOMAIN: &[u8] = b"busker/announce/v1\0";

/// A verified (or freshly signed) announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The artist.
    pub artist: ArtistKey,
    /// The catalog version.
    pub seq: u64,
    /// BLAKE3 hash of the catalog envelope.
    pub hash: ContentId,
    signature: [u8; 64],
}

/// Why an announcement was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnounceError {
    /// Wrong size.
    #[error("announcement is {0} bytes, expected {ANNOUNCEMENT_BYTES}")]
    Size(usize),
    /// The signature does not verify under the artist key.
    #[error("announcement signature does not verify for artist {0}")]
    BadSignature(ArtistKey),
}

fn message(artist: &ArtistKey, seq: u64, hash: &ContentId) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 72);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&artist.0);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&hash.0);
    m
}

impl Announcement {
    /// Signs an announcement of `catalog` with the artist key.
    pub fn sign(catalog: &SignedCatalog, key: &SigningKey) -> Self {
        let (artist, seq, hash) = (catalog.artist(), catalog.seq(), catalog.hash());
        let signature = key.sign(&message(&artist, seq, &hash)).to_bytes();
        Self { artist, seq, hash, signature }
    }

    /// Encodes to the fixed 136-byte form.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(ANNOUNCEMENT_BYTES);
        b.extend_from_slice(&self.artist.0);
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.hash.0);
        b.extend_from_slice(&self.signature);
        b
    }

    /// Decodes and verifies untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AnnounceError> {
        if bytes.len() != ANNOUNCEMENT_BYTES {
            return Err(AnnounceError::Size(bytes.len()));
        }
        let take = |r: std::ops::Range<usize>| -> [u8; 32] { bytes[r].try_into().unwrap_or([0; 32]) };
        let artist = ArtistKey(take(0..32));
        let seq = u64::from_le_bytes(bytes[32..40].try_into().unwrap_or([0; 8]));
        let hash = ContentId(take(40..72));
        let signature: [u8; 64] = bytes[72..136].try_into().unwrap_or([0; 64]);
        let key = VerifyingKey::from_bytes(&artist.0).map_err(|_| AnnounceError::BadSignature(artist))?;
        key.verify_strict(&message(&artist, seq, &hash), &Signature::from_bytes(&signature))
            .map_err(|_| AnnounceError::BadSignature(artist))?;
        Ok(Self { artist, seq, hash, signature })
    }
}

/// The DHT key under which an artist's announcement is stored and its catalog provided.
pub fn catalog_key(artist: &ArtistKey) -> Vec<u8> {
    let mut k = b"/busker/catalog/".to_vec();
    k.extend_from_slice(&artist.0);
    k
}

/// The artist a DHT key names, if it is a catalog key.
pub fn artist_of_key(key: &[u8]) -> Option<ArtistKey> {
    let rest = key.strip_prefix(b"/busker/catalog/".as_slice())?;
    rest.try_into().ok().map(ArtistKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::Catalog;

    #[test]
    fn announcements_verify_and_forgeries_do_not() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let artist = ArtistKey(key.verifying_key().to_bytes());
        let signed = SignedCatalog::sign(Catalog::new(artist, "A"), &key).unwrap();
        let a = Announcement::sign(&signed, &key);
        assert_eq!(Announcement::decode(&a.encode()).unwrap(), a);
        for i in 0..ANNOUNCEMENT_BYTES {
            let mut b = a.encode();
            b[i] ^= 1;
            assert!(Announcement::decode(&b).is_err(), "byte {i}");
        }
        assert_eq!(Announcement::decode(&[0; 10]), Err(AnnounceError::Size(10)));
        assert_eq!(artist_of_key(&catalog_key(&artist)), Some(artist));
    }
}
