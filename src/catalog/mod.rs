//! Artist catalogs and the content they point at.
//!
//! This module owns:
//! * the catalog model ([`model`]) and its validation rules;
//! * the signed envelope ([`signed`]): canonical bytes, ed25519 signature, verification;
//! * content addressing ([`chunk`]): chunk plan, BLAKE3 names, manifests;
//! * the local store ([`store`]): sled metadata plus chunk files, atomic imports, `verify`;
//! * publishing ([`publish`]): turning a folder of audio files into a signed release.
//!
//! Everything that arrives from outside, a peer's catalog, a manifest, a chunk, a file on
//! disk, is checked here before it is used or stored.

pub(crate) mod blobs;
pub(crate) mod buffers;
pub mod chunk;
pub mod ids;
pub mod model;
pub mod publish;
pub(crate) mod recent;
pub mod search;
pub mod signed;
pub mod sources;
pub mod store;
mod store_net;
mod verify;

pub use chunk::Manifest;
pub use ids::{ArtistKey, ContentId, Pseudonym};
pub use model::{Catalog, Licence, Release, Splits, Track, Uses};
pub use signed::SignedCatalog;
pub use store::{Store, StoreError};
pub use verify::VerifyReport;

/// Why a catalog was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogError {
    /// The signature does not verify under the key in the envelope.
    #[error("catalog signature does not verify for artist {0}")]
    BadSignature(ArtistKey),
    /// The catalog belongs to, or was signed by, a different key than required.
    #[error("catalog is for artist {got}, expected {expected}")]
    WrongKey {
        /// The key required.
        expected: ArtistKey,
        /// The key found.
        got: ArtistKey,
    },
    /// The envelope's format version is not one this build understands.
    #[error("unknown catalog format version {0}")]
    UnknownVersion(u8),
    /// The sequence number is not above the one already stored (a replay or an old version).
    #[error("catalog sequence {got} is not newer than stored sequence {have}")]
    Stale {
        /// The stored sequence number.
        have: u64,
        /// The offered sequence number.
        got: u64,
    },
    /// Tip splits are invalid.
    #[error("invalid tip splits: {0}")]
    BadSplits(String),
    /// A field breaks a rule or bound.
    #[error("invalid catalog: {0}")]
    BadField(String),
    /// The envelope is larger than allowed.
    #[error("catalog is {size} bytes, larger than the {max}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a well-formed catalog.
    #[error("malformed catalog: {0}")]
    Malformed(String),
}
