//! Networking: the only module that touches libp2p types.
//!
//! It owns the swarm ([`behaviour`]), the event loop that drives it (`event_loop`, with
//! catalog sync in `catalogs`, downloads in `fetch`, availability polls in `have`, and
//! requests and their answers in `requests`), the lanes that carry chunk and availability
//! requests on long-lived streams (`lane`), the wire protocol ([`protocol`]), signed
//! announcements ([`announce`]) and the sans-IO download scheduler ([`schedule`]).
//! What leaves this module is domain data: [`crate::node::Event`], [`PeerInfo`], [`Status`].

pub mod announce;
pub mod behaviour;
mod catalogs;
mod coalesce;
pub(crate) mod event_loop;
mod fetch;
mod have;
mod lane;
pub mod protocol;
mod requests;
pub mod schedule;
pub mod settle;
mod stream;
mod window;

pub use announce::Announcement;

use crate::catalog::ids::ContentId;
use crate::identity::Identity;

/// Errors from the network side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The swarm could not be built.
    #[error("network setup failed: {0}")]
    Swarm(String),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A multiaddr did not parse.
    #[error("bad multiaddr {0}")]
    BadAddress(String),
    /// A dial failed.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No peer could provide the rest of some content.
    #[error("fetching {id}: stalled at {have}/{total} chunks, no peer has the rest")]
    Stalled {
        /// The content.
        id: ContentId,
        /// Chunks stored.
        have: usize,
        /// Chunks in all.
        total: usize,
    },
    /// A settlement could not be started.
    #[error("settlement: {0}")]
    Settle(String),
    /// No node holding the artist's key could be reached; the settlement is kept and retried.
    #[error("artist {artist}'s node is not reachable ({reason}); the settlement will be retried")]
    ArtistUnreachable {
        /// The artist.
        artist: crate::catalog::ids::ArtistKey,
        /// The last failure.
        reason: String,
    },
    /// The artist's node rejected the settlement.
    #[error("artist {artist}'s node rejected the settlement: {reason}")]
    SettleRejected {
        /// The artist.
        artist: crate::catalog::ids::ArtistKey,
        /// Why.
        reason: String,
        /// The settlement should be rebuilt (the artist's splits changed).
        rebuild: bool,
    },
    /// The local store failed during a network operation.
    #[error(transparent)]
    Store(#[from] crate::catalog::StoreError),
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// PeerId.
    pub peer: String,
    /// Remote address of one connection.
    pub addr: String,
}

/// A node's state at a glance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// PeerId.
    pub peer_id: String,
    /// Listen addresses.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Peers in our gossip mesh for catalog announcements.
    pub gossip_peers: usize,
    /// Catalogs stored.
    pub catalogs: usize,
    /// Chunks stored and their bytes.
    pub chunks: usize,
    /// Bytes of chunks stored.
    pub bytes: u64,
    /// Downloads in progress.
    pub downloads: usize,
    /// Chunks served to peers since the node started.
    pub served_chunks: u64,
    /// Bytes of chunks served to peers since the node started.
    pub served_bytes: u64,
}

/// The outcome of a fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchReport {
    /// Content ids fetched.
    pub items: usize,
    /// Chunks fetched from peers (the rest were already stored).
    pub fetched_chunks: usize,
    /// Chunks in all.
    pub total_chunks: usize,
    /// Bytes fetched from peers.
    pub fetched_bytes: u64,
    /// Chunks fetched from each peer (PeerId, chunks), most first.
    pub per_peer: Vec<(String, usize)>,
}

/// The libp2p PeerId of this node, derived from its node key.
pub fn peer_id(identity: &Identity) -> String {
    keypair(identity).map(|k| k.public().to_peer_id().to_string()).unwrap_or_else(|e| format!("invalid node key: {e}"))
}

pub(crate) fn keypair(identity: &Identity) -> Result<libp2p::identity::Keypair, NetError> {
    let mut secret = identity.node_secret();
    libp2p::identity::Keypair::ed25519_from_bytes(&mut secret).map_err(|e| NetError::Swarm(e.to_string()))
}
