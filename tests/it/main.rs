//! Integration tests: one binary (see Cargo.toml `autotests = false`), real sled stores in
//! temporary directories, real audio decoded by symphonia.

mod catalog_rules;
mod common;
mod crash;
mod daemon;
mod hostile;
mod in_place;
mod lanes;
mod ledger;
mod net;
mod nodes;
mod player;
mod publish;
mod store;
