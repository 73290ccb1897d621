//! The signed catalog envelope: canonical bytes, an ed25519 signature over exactly those bytes.
//!
//! Wire layout (all integers little-endian):
//!
//! ```text
//! "BSKC" | version u8 (=1) | artist key [32] | signature [64] | body len u32 | body
//! ```
//!
//! The body is the [postcard] encoding of [`Catalog`]: structs, `Vec`s and integers only, no
//! maps, so the encoding of a given value is unique. The signature covers
//! `b"busker/catalog/v1\0" ‖ body`; verification checks it over the received bytes and never
//! re-encodes. A node keeps the envelope verbatim, so it can forward it unchanged.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::CatalogError;
use super::ids::{ArtistKey, ContentId};
use super::model::Catalog;

/// The only envelope format version this build understands.
pub const FORMAT_VERSION: u8 = 1;
/// Largest accepted envelope, header included. Also fits one request-response message.
pub const MAX_CATALOG_BYTES: usize = 1024 * 1024;
const MAGIC: &[u8; 4] = b"BSKC";
const HEADER: usize = 4 + 1 + 32 + 64 + 4;
const DOMAIN: &[u8] = b"busker/catalog/v1\0";

/// A catalog whose signature, key, format and rules have been checked.
#[derive(Clone, Debug)]
pub struct SignedCatalog {
    bytes: Vec<u8>,
    catalog: Catalog,
}

impl SignedCatalog {
    /// Encodes and signs `catalog` with the artist key.
    pub fn sign(catalog: Catalog, key: &SigningKey) -> Result<Self, CatalogError> {
        if catalog.artist.0 != key.verifying_key().to_bytes() {
            return Err(CatalogError::WrongKey {
                expected: catalog.artist,
                got: ArtistKey(key.verifying_key().to_bytes()),
            });
        }
        catalog.validate()?;
        let body = postcard::to_stdvec(&catalog).map_err(|e| CatalogError::Malformed(e.to_string()))?;
        if HEADER + body.len() > MAX_CATALOG_BYTES {
            return Err(CatalogError::TooLarge { size: HEADER + body.len(), max: MAX_CATALOG_BYTES });
        }
        let sig = key.sign(&signed_message(&body));
        let mut bytes = Vec::with_capacity(HEADER + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&catalog.artist.0);
        bytes.extend_from_slice(&sig.to_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        Ok(Self { bytes, catalog })
    }

    /// Parses and fully verifies an envelope from an untrusted source.
    pub fn verify(bytes: &[u8]) -> Result<Self, CatalogError> {
        if bytes.len() > MAX_CATALOG_BYTES {
            return Err(CatalogError::TooLarge { size: bytes.len(), max: MAX_CATALOG_BYTES });
        }
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(CatalogError::Malformed("not a busker catalog (bad magic or too short)".into()));
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(CatalogError::UnknownVersion(bytes[4]));
        }
        let key_bytes: [u8; 32] = bytes[5..37].try_into().map_err(|_| CatalogError::Malformed("key".into()))?;
        let sig_bytes: [u8; 64] = bytes[37..101].try_into().map_err(|_| CatalogError::Malformed("signature".into()))?;
        let len = u32::from_le_bytes([bytes[101], bytes[102], bytes[103], bytes[104]]) as usize;
        let body = &bytes[HEADER..];
        if body.len() != len {
            return Err(CatalogError::Malformed(format!("body is {} bytes, header says {len}", body.len())));
        }
        let artist = ArtistKey(key_bytes);
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| CatalogError::BadSignature(artist))?;
        key.verify_strict(&signed_message(body), &Signature::from_bytes(&sig_bytes))
            .map_err(|_| CatalogError::BadSignature(artist))?;
        let (catalog, rest): (Catalog, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| CatalogError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CatalogError::Malformed(format!("{} trailing bytes after the body", rest.len())));
        }
        if catalog.artist != artist {
            return Err(CatalogError::WrongKey { expected: artist, got: catalog.artist });
        }
        catalog.validate()?;
        Ok(Self { bytes: bytes.to_vec(), catalog })
    }

    /// Verifies like [`SignedCatalog::verify`], and also that it is `expected`'s catalog.
    pub fn verify_for(bytes: &[u8], expected: &ArtistKey) -> Result<Self, CatalogError> {
        let signed = Self::verify(bytes)?;
        if signed.artist() != *expected {
            return Err(CatalogError::WrongKey { expected: *expected, got: signed.artist() });
        }
        Ok(signed)
    }

    /// Rejects this version unless it is newer than `stored` (the sequence number we hold).
    pub fn check_newer_than(&self, stored: Option<u64>) -> Result<(), CatalogError> {
        match stored {
            Some(have) if self.catalog.seq <= have => Err(CatalogError::Stale { have, got: self.catalog.seq }),
            _ => Ok(()),
        }
    }

    /// The verified catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The artist key that signed it.
    pub fn artist(&self) -> ArtistKey {
        self.catalog.artist
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.catalog.seq
    }

    /// The exact envelope bytes, as signed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The BLAKE3 hash of the envelope, as announced on gossip.
    pub fn hash(&self) -> ContentId {
        ContentId::of(&self.bytes)
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + body.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(body);
    m
}
