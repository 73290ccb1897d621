//! The libp2p behaviour: one field per protocol, and the swarm builder.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{StreamProtocol, Swarm};
use libp2p::{connection_limits, gossipsub, identify, kad, mdns, noise, ping, request_response, tcp, tls, yamux};

use super::NetError;
use super::protocol::{Codec, PROTOCOL};
use super::settle::{PROTOCOL as SETTLE_PROTOCOL, SettleCodec};

/// Kademlia protocol name: our own DHT, not the public IPFS one.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/busker/kad/1.0.0");
/// Gossip topic for catalog announcements.
pub const CATALOG_TOPIC: &str = "busker/catalogs/1";

/// Settings the swarm needs.
#[derive(Clone, Debug)]
pub struct SwarmSettings {
    /// Run mDNS discovery on the local network.
    pub mdns: bool,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Close a connection idle for this long.
    pub idle_timeout: Duration,
}

/// Every protocol the node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Caps connections so a flood of peers cannot exhaust the node.
    pub limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and protocols, which feeds the DHT routing table.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures round-trip time.
    pub ping: ping::Behaviour,
    /// DHT: catalog announcement records, and providers of catalogs and tracks.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Catalog announcements, validated before they are forwarded.
    pub gossipsub: gossipsub::Behaviour,
    /// Local-network discovery; off in tests.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Catalogs, manifests and chunks.
    pub exchange: request_response::Behaviour<Codec>,
    /// Settlements and receipts between fans' and artists' nodes.
    pub settle: request_response::Behaviour<SettleCodec>,
    /// Long-lived streams for chunk and availability requests (see `lane.rs`).
    pub lanes: libp2p_stream::Behaviour,
}

fn boxed(e: impl std::fmt::Display) -> NetError {
    NetError::Swarm(e.to_string())
}

/// Largest yamux data frame this node sends. yamux's default is 16 KiB, and every frame is its
/// own sealed TLS record write and socket write: 32 writes per 256 KiB chunk (with the headers).
/// 64 KiB frames cut that fourfold and measured 7-10% less CPU in the 1 -> 4 transfer
/// bench; a frame still holds the connection for only 64 KiB, so small messages on other
/// streams (gossip, availability polls, a player's next chunk) wait behind little. The
/// vendored libp2p-yamux exposes the setting (see `vendor/libp2p-yamux/BUSKER-PATCH.md`).
const YAMUX_SPLIT_SEND: usize = 64 * 1024;

fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_split_send_size(YAMUX_SPLIT_SEND);
    config
}

/// Builds the swarm: TCP with TLS (preferred) or noise, yamux, and QUIC, all behaviours configured.
pub(crate) fn build_swarm(keypair: Keypair, s: &SwarmSettings) -> Result<Swarm<Behaviour>, NetError> {
    let settings = s.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), (tls::Config::new, noise::Config::new), || {
            super::coalesce::JoinedYamux(yamux_config())
        })
        .map_err(boxed)?
        .with_quic()
        .with_behaviour(move |key| {
            let peer = key.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(4096)
                .heartbeat_interval(Duration::from_millis(500))
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(&blake3::hash(&m.data).as_bytes()[..20])
                })
                .build()?;
            let gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
            kad_config.set_query_timeout(Duration::from_secs(30));
            let store_config = kad::store::MemoryStoreConfig {
                max_records: 8192,
                max_value_bytes: 1024,
                max_providers_per_key: 64,
                max_provided_keys: 100_000,
            };
            let mut kad =
                kad::Behaviour::with_config(peer, kad::store::MemoryStore::with_config(peer, store_config), kad_config);
            kad.set_mode(Some(kad::Mode::Server));
            let mdns =
                if settings.mdns { Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?) } else { None };
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(settings.max_connections))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(64));
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(identify::Config::new("/busker/1.0.0".into(), key.public())),
                ping: ping::Behaviour::default(),
                kad,
                gossipsub,
                mdns: Toggle::from(mdns),
                exchange: request_response::Behaviour::with_codec(
                    Codec::default(),
                    [(PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(512),
                ),
                settle: request_response::Behaviour::with_codec(
                    SettleCodec,
                    [(SETTLE_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30))
                        .with_max_concurrent_streams(64),
                ),
                lanes: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(boxed)?
        // Lazy multistream-select: a substream that offers one protocol (every request-response
        // request) sends its data with the protocol proposal instead of waiting a round trip
        // for the acknowledgement. Over a 50 ms link that halves the time to first audio.
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(s.idle_timeout)
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    /// The vendored libp2p-tls (see `vendor/libp2p-tls/BUSKER-PATCH.md`) is the one linked:
    /// on a CPU with AES instructions TLS prefers AES-128-GCM, elsewhere ChaCha20-Poly1305, and
    /// AES-GCM is ring's.
    #[test]
    fn tls_prefers_the_cipher_this_cpu_runs_fastest() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let config = libp2p::tls::make_client_config(&key, None).unwrap();
        let first = format!("{:?}", config.crypto_provider().cipher_suites[0].suite());
        #[cfg(target_arch = "x86_64")]
        let aes = std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq");
        #[cfg(target_arch = "aarch64")]
        let aes = std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull");
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let aes = false;
        let want = if aes { "TLS13_AES_128_GCM_SHA256" } else { "TLS13_CHACHA20_POLY1305_SHA256" };
        assert_eq!(first, want);
        // AES-GCM is ring's (VAES+AVX2 where the CPU has it); key exchange stays aws-lc's,
        // post-quantum hybrid first.
        let provider = config.crypto_provider();
        use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
        for ring in [TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384] {
            let ours =
                provider.cipher_suites.iter().find(|s| s.suite() == ring.suite()).and_then(|s| s.tls13()).unwrap();
            assert!(std::ptr::eq(ours, ring.tls13().unwrap()), "{:?} is not ring's", ring.suite());
        }
        assert_eq!(format!("{:?}", provider.kx_groups[0].name()), "X25519MLKEM768");
    }

    /// The vendored libp2p-yamux (see `vendor/libp2p-yamux/BUSKER-PATCH.md`) passes the frame
    /// size through to yamux.
    #[test]
    fn yamux_sends_frames_of_up_to_64_kib() {
        let config = format!("{:?}", super::yamux_config());
        assert!(config.contains("split_send_size: 65536"), "{config}");
    }

    /// The vendored libp2p-kad (see `vendor/libp2p-kad/BUSKER-PATCH.md`) walks the routing
    /// table without moving its buffer; the answer to a closest-peers request must still be the
    /// 20 entries nearest the target, nearest first, never the asker.
    #[test]
    fn kad_answers_with_the_closest_peers_in_order() {
        use libp2p::kad::{self, KBucketKey};
        let me = libp2p::PeerId::random();
        let mut kad = kad::Behaviour::new(me, kad::store::MemoryStore::new(me));
        let addr: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        for _ in 0..300 {
            kad.add_address(&libp2p::PeerId::random(), addr.clone());
        }
        let mut table: Vec<libp2p::PeerId> =
            kad.kbuckets().flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>()).collect();
        assert!(table.len() > 40, "only {} peers in the table", table.len());
        for _ in 0..20 {
            let target = KBucketKey::from(libp2p::PeerId::random());
            let asker = table[table.len() / 2];
            table.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
            let want: Vec<_> = table.iter().filter(|p| **p != asker).take(20).copied().collect();
            let got: Vec<_> = kad.find_closest_local_peers(&target, &asker).map(|p| p.node_id).collect();
            assert_eq!(got, want);
        }
    }
}
