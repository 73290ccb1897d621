//! Lanes (`/busker/lane/1.0.0`) spoken by hand from a bare libp2p swarm: pipelined chunk and
//! availability requests are answered in order with bytes that verify, and a lane that
//! carries anything else, or a malformed request, is closed while the node goes on serving.

use std::time::Duration;

use busker::catalog::chunk::{chunk_cv, chunk_ranges};
use busker::catalog::ids::ContentId;
use busker::net::protocol::pack_bits;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, noise, tcp, yamux};

use crate::common::options;
use crate::nodes::{addr, noise_album, spawn, within};

const LANE: StreamProtocol = StreamProtocol::new("/busker/lane/1.0.0");

/// A swarm that speaks nothing but raw streams, connected to `target`.
async fn bare_peer(target: &str) -> (libp2p_stream::Control, PeerId) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let ma: Multiaddr = target.parse().unwrap();
    let Some(Protocol::P2p(peer)) = ma.iter().last() else { panic!("{target} names no peer") };
    swarm.dial(ma).unwrap();
    let control = swarm.behaviour().new_control();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (control, peer)
}

fn chunks_request(ids: &[ContentId]) -> Vec<u8> {
    let mut b = vec![4, ids.len() as u8];
    ids.iter().for_each(|id| b.extend_from_slice(&id.0));
    b
}

/// Reads a list answer: status 5 and a count, then a status and payload per entry.
async fn read_each(s: &mut Stream) -> std::io::Result<Vec<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    assert_eq!(head[0], 5, "a list answer");
    let mut out = Vec::new();
    for _ in 0..u32::from_le_bytes(head[1..].try_into().unwrap()) {
        s.read_exact(&mut head).await?;
        let mut payload = vec![0u8; u32::from_le_bytes(head[1..].try_into().unwrap()) as usize];
        s.read_exact(&mut payload).await?;
        out.push((head[0], payload));
    }
    Ok(out)
}

/// Sends `bytes` on `lane`, flushed.
async fn send(lane: &mut Stream, bytes: &[u8]) {
    lane.write_all(bytes).await.unwrap();
    lane.flush().await.unwrap();
}

/// True once the node has closed `lane`: a read ends or fails.
async fn closed(lane: &mut Stream) -> bool {
    let mut b = [0u8; 1];
    matches!(within("the lane to close", lane.read(&mut b)).await, Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_answer_pipelined_requests_in_order_and_close_on_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Lane Artist", true).await;
    let src = noise_album(&dir.path().join("album"), 2, 8.0);
    within("publish", artist.publish(&src, options())).await.unwrap();
    let store = &artist.local().store;
    let (track, m) = store
        .pinned()
        .unwrap()
        .into_iter()
        .filter_map(|id| store.manifest(&id).unwrap().map(|m| (id, m)))
        .find(|(_, m)| m.chunks.len() >= 3)
        .expect("a track of several chunks");
    let ranges: Vec<_> = chunk_ranges(m.size).collect();
    let verifies = |i: usize, (status, bytes): &(u8, Vec<u8>)| {
        *status == 0 && chunk_cv(ranges[i].start, bytes) == Some(m.chunks[i])
    };

    let (mut control, peer) = bare_peer(&addr(&artist).await).await;
    let mut lane = within("a lane", control.open_stream(peer, LANE)).await.unwrap();
    // Three requests before any answer is read: chunks 0 and 1, availability, chunk 2.
    send(&mut lane, &chunks_request(&m.chunks[..2])).await;
    send(&mut lane, &[&[5u8, 1][..], &track.0].concat()).await;
    send(&mut lane, &chunks_request(&m.chunks[2..3])).await;
    let first = within("the first answer", read_each(&mut lane)).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().enumerate().all(|(i, e)| verifies(i, e)), "chunks 0 and 1 verify");
    let have = within("the availability answer", read_each(&mut lane)).await.unwrap();
    assert_eq!(have, vec![(0, pack_bits(&vec![true; m.chunks.len()]))], "the artist holds every chunk");
    let third = within("the third answer", read_each(&mut lane)).await.unwrap();
    assert!(third.len() == 1 && verifies(2, &third[0]), "chunk 2 verifies");

    // A catalog request has no place on a lane: the lane is closed.
    send(&mut lane, &[[1u8].as_slice(), &[0u8; 32]].concat()).await;
    assert!(closed(&mut lane).await, "a catalog request closes the lane");
    // So is a chunk request that names no chunk, and an unknown request.
    for bad in [vec![4u8, 0], vec![9u8]] {
        let mut lane = within("a lane", control.open_stream(peer, LANE)).await.unwrap();
        send(&mut lane, &bad).await;
        assert!(closed(&mut lane).await, "{bad:?} closes the lane");
    }
    // The node goes on answering on a fresh lane.
    let mut lane = within("a lane", control.open_stream(peer, LANE)).await.unwrap();
    send(&mut lane, &chunks_request(&m.chunks[..1])).await;
    let again = within("an answer on a fresh lane", read_each(&mut lane)).await.unwrap();
    assert!(again.len() == 1 && verifies(0, &again[0]));
}
