//! The play and tip ledger, settlement with artists, and the artist's usage report.
//!
//! This module owns:
//! * the **log** (`log.rs`): an append-only, hash-chained sequence of entries, each signed by
//!   the node key, in sled, durable before an append returns;
//! * the **rules** (`entry.rs`, `settle.rs`, `split.rs`), as plain data and pure functions
//!   (sans-IO): entry encoding and verification, settlement documents and receipts, exact
//!   money arithmetic;
//! * the **fan side** (`fan.rs`, `budget.rs`): plays, tips, the budget, the settlement outbox;
//! * the **artist side** (`artist.rs`): accepting settlements and the usage report.
//!
//! Moving money is outside the node: a countersigned settlement is the proof a payment rail
//! pays against. Privacy by construction: a play records the hour it happened in, a
//! settlement only day numbers, and an artist only ever sees the fan's per-artist pseudonym.

mod artist;
pub mod bench;
pub mod budget;
pub mod entry;
mod fan;
mod log;
pub mod settle;
pub mod split;

pub use artist::{Report, ReportRow, UnitReport};
pub use budget::{Budget, Period};
pub use entry::{Body, ChainVerifier, Entry, HOUR as HOUR_SECS, LedgerError, Money, verify_chain};
pub use fan::{Prepared, Settled};
pub use log::Ledger;
pub use settle::{Receipt, SettleError, Settlement};
