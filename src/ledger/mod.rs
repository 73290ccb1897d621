//! The play and tip ledger: an append-only, hash-chained log of entries, each signed by the
//! node's key.
//!
//! This module owns the ledger's rules, as plain data and pure functions (sans-IO): entry
//! encoding, chaining, signing, and verification that names the first bad entry. Durable
//! storage, settlement between nodes and reports are built on top of it (issue 5).
//!
//! Privacy by construction: a play records the hour it happened in (an hour bucket), never an
//! exact time, and nothing about the listener but the signing key.

pub mod entry;

pub use entry::{Body, Entry, LedgerError, Money, verify_chain};
