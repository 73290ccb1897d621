//! A hostile peer, built from raw libp2p with busker's own wire codec: it serves corrupted
//! chunks, and gossips forged and stale announcements. Honest nodes must ban it, finish from
//! honest peers, and never forward what they rejected.

use std::collections::HashSet;
use std::time::Duration;

use busker::catalog::ids::{ArtistKey, ContentId};
use busker::net::Announcement;
use busker::net::behaviour::CATALOG_TOPIC;
use busker::net::protocol::{Codec, PROTOCOL, Request, Response};
use busker::node::Via;
use busker::{Event, Node};
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, gossipsub, noise, request_response, tcp, yamux};
use tokio::sync::mpsc;

use crate::common::{album, options};
use crate::nodes::{addr, event, gossip_mesh, noise_album, spawn, within};

#[derive(NetworkBehaviour)]
struct Evil {
    gossipsub: gossipsub::Behaviour,
    exchange: request_response::Behaviour<Codec>,
}

/// What the hostile peer does.
pub(crate) enum Order {
    Gossip(Vec<u8>),
}

/// Starts the hostile peer. It answers manifests and catalogs honestly from `honest` (so it
/// looks like a provider) and every chunk request with flipped bytes.
/// `share_list`: answer catalog-list requests honestly (so peers sync catalogs from it).
pub(crate) async fn evil_peer(honest: Node, share_list: bool) -> (String, mpsc::Sender<Order>, mpsc::Receiver<()>) {
    evil_peer_sparing(honest, share_list, HashSet::new()).await
}

/// Like [`evil_peer`], but chunks in `spare` are served honestly (a peer that goes bad
/// mid-way through a track).
pub(crate) async fn evil_peer_sparing(
    honest: Node,
    share_list: bool,
    spare: HashSet<ContentId>,
) -> (String, mpsc::Sender<Order>, mpsc::Receiver<()>) {
    let mut swarm: Swarm<Evil> = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|key| {
            let cfg =
                gossipsub::ConfigBuilder::default().heartbeat_interval(Duration::from_millis(500)).build().unwrap();
            Evil {
                gossipsub: gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), cfg).unwrap(),
                exchange: request_response::Behaviour::with_codec(
                    Codec::default(),
                    [(PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            }
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = gossipsub::IdentTopic::new(CATALOG_TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>().unwrap()).unwrap();
    let me = *swarm.local_peer_id();
    let (orders_tx, mut orders) = mpsc::channel::<Order>(16);
    let (subscribed_tx, subscribed) = mpsc::channel::<()>(16);
    let (addr_tx, mut addr_rx) = mpsc::channel::<String>(1);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(Order::Gossip(data)) = orders.recv() => {
                    swarm.behaviour_mut().gossipsub.publish(topic.clone(), data).unwrap();
                }
                ev = swarm.select_next_some() => match ev {
                    SwarmEvent::NewListenAddr { address, .. } => { let _ = addr_tx.try_send(format!("{address}/p2p/{me}")); }
                    SwarmEvent::Behaviour(EvilEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) => { let _ = subscribed_tx.try_send(()); }
                    SwarmEvent::Behaviour(EvilEvent::Exchange(request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. }, ..
                    })) => {
                        let store = &honest.local().store;
                        let response = match request {
                            Request::Catalog(a) => store.catalog_bytes(&a).unwrap().map_or(Response::NotFound, |b| Response::Bytes(b.into())),
                            Request::ListCatalogs if share_list => Response::Catalogs(store.catalog_list().unwrap()),
                            Request::ListCatalogs => Response::Catalogs(Vec::new()),
                            Request::Manifest(id) => store.manifest_bytes(&id).unwrap().map_or(Response::NotFound, |b| Response::Bytes(b.into())),
                            Request::Have(ids) => Response::Each(ids.iter().map(|id| store.availability(id).unwrap()
                                .map_or(Response::NotFound, |b| Response::Bytes(busker::net::protocol::pack_bits(&b).into()))).collect()),
                            Request::Chunks(ids) => Response::Each(ids.iter().map(|id| match store.read_chunk(id) {
                                Ok(b) if spare.contains(id) => Response::Bytes(b.into()),
                                Ok(mut b) => { b[0] ^= 0xff; Response::Bytes(b.into()) }
                                Err(_) => Response::NotFound,
                            }).collect()),
                        };
                        let _ = swarm.behaviour_mut().exchange.send_response(channel, response);
                    }
                    _ => {}
                },
            }
        }
    });
    let addr = within("evil listen address", addr_rx.recv()).await.unwrap();
    (addr, orders_tx, subscribed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_corrupt_chunks_is_banned_and_the_download_completes() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Honest Artist", true).await;
    let src = noise_album(&dir.path().join("album"), 3, 8.0);
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let (evil_addr, _orders, _) = evil_peer(artist.clone(), true).await;
    let evil_id = evil_addr.rsplit('/').next().unwrap().to_string();

    let fan = spawn(dir.path(), "fan", false).await;
    // The fan first knows only the liar (which syncs the catalog honestly), so the liar is
    // certainly asked for chunks; the honest artist joins once the liar is banned.
    let mut events = fan.subscribe();
    within("dial evil", fan.dial(&evil_addr)).await.unwrap();
    event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    let mut getter = {
        let (fan, id, out) = (fan.clone(), report.release_id.to_string(), dir.path().join("out"));
        tokio::spawn(async move { fan.get(&id, &out).await })
    };
    let banned = tokio::select! {
        e = event(&mut events, "ban", |e| matches!(e, Event::PeerBanned { .. })) => e,
        r = &mut getter => panic!("the fetch ended before any ban: {:?}", r.map(|r| r.map(|x| x.0))),
    };
    assert!(
        matches!(&banned, Event::PeerBanned { peer, reason } if *peer == evil_id && reason.contains("BLAKE3")),
        "{banned:?}"
    );
    within("dial artist", fan.dial(&addr(&artist).await)).await.unwrap();
    let (r, files) = within("get", getter).await.unwrap().unwrap();
    for f in &files {
        assert_eq!(std::fs::read(f).unwrap(), std::fs::read(src.join(f.file_name().unwrap())).unwrap());
    }
    assert!(r.per_peer.iter().all(|(p, _)| *p != evil_id), "no chunk from the liar was kept: {:?}", r.per_peer);
    assert!(fan.local().verify(&|_| {}).unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_announcements_are_dropped_and_not_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    // The artist publishes twice; we keep its version-2 announcement to replay later.
    let artist = spawn(dir.path(), "Announcer", true).await;
    within("publish", artist.publish(&album(dir.path(), "a1", &["01-sunrise.flac"]), options())).await.unwrap();
    let key = artist.local().identity.artist().unwrap();
    let v2 = artist.local().own_catalog().unwrap().unwrap();
    let stale = Announcement::sign(&v2, key);
    within("publish", artist.publish(&album(dir.path(), "a2", &["03-lanterns.ogg"]), options())).await.unwrap();
    let v3 = artist.local().own_catalog().unwrap().unwrap();
    let fresh = Announcement::sign(&v3, key);
    let artist_key: ArtistKey = v3.artist();

    // fan_a already holds version 2; fan_b holds nothing and hears only through fan_a.
    let fan_a = spawn(dir.path(), "fan_a", false).await;
    fan_a.local().store.put_catalog(busker::catalog::SignedCatalog::verify(v2.bytes()).unwrap()).unwrap();
    let fan_b = spawn(dir.path(), "fan_b", false).await;
    let (evil_addr, orders, mut subscribed) = evil_peer(artist.clone(), false).await;
    let mut ea = fan_a.subscribe();
    let mut eb = fan_b.subscribe();
    within("dial", fan_a.dial(&evil_addr)).await.unwrap();
    within("dial", fan_b.dial(&addr(&fan_a).await)).await.unwrap();
    within("evil sees a subscriber", subscribed.recv()).await.unwrap();
    gossip_mesh(&fan_a, 2).await;
    gossip_mesh(&fan_b, 1).await;
    // fan_b has learned version 2 from fan_a by sync; fan_a will learn nothing newer by sync.
    event(&mut eb, "sync from fan_a", |e| matches!(e, Event::CatalogUpdated { seq: 2, via: Via::Sync, .. })).await;

    // 1. A forged announcement: the artist's fresh one with a flipped signature byte.
    let mut forged = fresh.encode();
    forged[100] ^= 1;
    orders.send(Order::Gossip(forged)).await.unwrap();
    let e = event(&mut ea, "rejection", |e| matches!(e, Event::AnnouncementRejected { .. })).await;
    assert!(matches!(&e, Event::AnnouncementRejected { reason, .. } if reason.contains("signature")), "{e:?}");
    // 2. A stale one: version 2, which both fans already hold.
    orders.send(Order::Gossip(stale.encode())).await.unwrap();
    event(&mut ea, "stale ignored", |e| matches!(e, Event::AnnouncementIgnored { seq: 2, .. })).await;
    // 3. The genuine version 3: accepted by fan_a and forwarded to fan_b.
    orders.send(Order::Gossip(fresh.encode())).await.unwrap();
    let first = event(&mut eb, "first announcement at fan_b", |e| {
        matches!(
            e,
            Event::CatalogUpdated { .. } | Event::AnnouncementRejected { .. } | Event::AnnouncementIgnored { .. }
        )
    })
    .await;
    // Gossip from one source keeps its order, so had fan_a forwarded 1 or 2, fan_b would have
    // seen it before 3.
    assert_eq!(first, Event::CatalogUpdated { artist: artist_key, seq: 3, via: Via::Gossip });
}
