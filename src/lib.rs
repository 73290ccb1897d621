//! # busker
//!
//! A peer-to-peer music distribution node. Artists publish signed catalogs of releases whose
//! audio is stored as BLAKE3-named chunks; fans discover, stream, verify, keep and pass on
//! that music, and tip artists directly, key to key. No accounts, no platform in the middle.
//!
//! # Layout
//!
//! * [`catalog`]: the catalog model, its signed envelope, content addressing, the store and
//!   publishing. Everything a peer or a disk hands us is verified here.
//! * [`player`]: audio probing and decoding (symphonia).
//! * [`net`]: the libp2p side; the only module that touches libp2p types.
//! * [`ledger`]: signed, hash-chained play and tip entries and their verification (sans-IO).
//! * [`identity`]: artist, fan and node keys; per-artist fan pseudonyms.
//! * [`config`]: the data directory and `config.toml`.
//! * [`node`]: the embeddable network node: a cloneable handle over one event loop.
//! * [`api`]: the local control API (HTTP, axum) used by the CLI while a daemon runs.
//! * [`local`]: a node's local state opened without networking; the library behind the CLI.
//! * [`demo`]: the guided tour behind `busker demo`.
//! * [`synth`]: synthesised music for the demo, tests and benchmarks.
//!
//! # Example
//!
//! Publish a folder as a release and export it again:
//!
//! ```no_run
//! use busker::{catalog::publish::PublishOptions, catalog::Licence, config::Home, local::Local};
//!
//! # fn main() -> busker::Result<()> {
//! let home = Home::at("/tmp/my-artist-node");
//! let (node, _) = Local::init(&home, Some("The Loopback Trio"))?;
//! let opts = PublishOptions {
//!     title: None,
//!     date: None,
//!     licence: Licence::known("CC-BY-4.0").expect("known licence"),
//!     splits: None,
//!     skip_bad: false,
//!     copy: false,
//! };
//! let report = node.publish("./album".as_ref(), &opts, &|_| {})?;
//! println!("release {}", report.release_id);
//! node.export(&report.release_id.to_string(), "./copy".as_ref())?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api;
pub mod catalog;
pub mod config;
pub mod daemon;
pub mod demo;
mod error;
pub mod identity;
pub mod ledger;
pub mod local;
pub mod net;
pub mod node;
pub mod playback;
pub mod player;
pub mod synth;
pub mod time;

pub use config::{Config, Home};
pub use error::{Error, Result};
pub use local::Local;
pub use node::{Event, Node, NodeBuilder};
