//! Networking. This module is the only one that touches libp2p types; it turns the node's
//! keys into transport identities and (in later work) owns the swarm.

use crate::identity::Identity;

/// The libp2p PeerId of this node, derived from its node key.
pub fn peer_id(identity: &Identity) -> String {
    let mut secret = identity.node_secret();
    match libp2p::identity::Keypair::ed25519_from_bytes(&mut secret) {
        Ok(k) => k.public().to_peer_id().to_string(),
        // 32 bytes always form a valid ed25519 secret; keep this total anyway.
        Err(e) => format!("invalid node key: {e}"),
    }
}
