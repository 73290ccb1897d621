//! Several real nodes on 127.0.0.1: discovery, search, multi-peer fetch, resume.

use busker::Event;
use busker::node::Via;

use crate::common::{album, options};
use crate::nodes::{addr, event, gossip_mesh, noise_album, spawn, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_discovers_a_new_release_by_gossip_and_finds_it_by_search() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "The Gossips", true).await;
    let fan = spawn(dir.path(), "fan", false).await;
    let mut events = fan.subscribe();
    within("dial", fan.dial(&addr(&artist).await)).await.unwrap();
    // The artist's empty first catalog arrives by sync on connect...
    event(&mut events, "catalog sync", |e| matches!(e, Event::CatalogUpdated { seq: 1, via: Via::Sync, .. })).await;
    gossip_mesh(&fan, 1).await;
    // ...and the release published afterwards arrives by gossip.
    let src = album(dir.path(), "album", &["02-tidewater.mp3", "03-lanterns.ogg"]);
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let e = event(&mut events, "gossip", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    assert!(matches!(e, Event::CatalogUpdated { via: Via::Gossip, .. }), "{e:?}");
    let hits = fan.search("tidewater").unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].id, Some(report.release.tracks.iter().find(|t| t.title == "Tidewater").unwrap().id));
    assert!(fan.search("localhost sessions").unwrap().iter().any(|h| h.id == Some(report.release_id)));
    assert!(fan.search("no such words").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_late_still_finds_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Early Bird", true).await;
    let src = album(dir.path(), "album", &["01-sunrise.flac"]);
    within("publish", artist.publish(&src, options())).await.unwrap();
    // Joins afterwards, through a bootstrap address in its builder.
    let home = busker::Home::at(dir.path().join("late"));
    let (local, _) = busker::Local::init(&home, None).unwrap();
    let late = busker::Node::builder(local)
        .listen("/ip4/127.0.0.1/tcp/0")
        .mdns(false)
        .bootstrap(addr(&artist).await)
        .spawn()
        .await
        .unwrap();
    let mut events = late.subscribe();
    event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    assert_eq!(late.search("sunrise").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fans_fetch_a_release_byte_identical_the_second_from_artist_and_fan() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Seeder", true).await;
    let src = noise_album(&dir.path().join("album"), 6, 12.0);
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let rid = report.release_id.to_string();

    // fan1 knows the artist; fan2 knows the artist and fan1. They fetch at the same time.
    let fan1 = spawn(dir.path(), "fan1", false).await;
    let fan2 = spawn(dir.path(), "fan2", false).await;
    let (mut e1, mut e2) = (fan1.subscribe(), fan2.subscribe());
    within("dial", fan1.dial(&addr(&artist).await)).await.unwrap();
    within("dial", fan2.dial(&addr(&artist).await)).await.unwrap();
    within("dial", fan2.dial(&addr(&fan1).await)).await.unwrap();
    event(&mut e1, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    event(&mut e2, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    let get = |fan: &busker::Node, out: &str| {
        let (fan, rid, out) = (fan.clone(), rid.clone(), dir.path().join(out));
        tokio::spawn(async move { fan.get(&rid, &out).await })
    };
    // fan1 starts first; fan2 joins in as soon as fan1 holds some chunks.
    let g1 = get(&fan1, "out1");
    event(&mut e1, "fan1 progress", |e| matches!(e, Event::FetchProgress { .. })).await;
    let g2 = get(&fan2, "out2");
    let (r1, files1) = within("fan1 get", g1).await.unwrap().unwrap();
    let (r2, files2) = within("fan2 get", g2).await.unwrap().unwrap();
    for f in files1.iter().chain(&files2) {
        assert_eq!(std::fs::read(f).unwrap(), std::fs::read(src.join(f.file_name().unwrap())).unwrap());
    }
    assert_eq!(r1.total_chunks, r2.total_chunks);
    let from = |p: &str| r2.per_peer.iter().find(|(q, _)| q == p).map_or(0, |(_, n)| *n);
    assert!(from(artist.peer_id()) > 0 && from(fan1.peer_id()) > 0, "fan2 fetched from {:?}", r2.per_peer);
    assert_eq!(from(artist.peer_id()) + from(fan1.peer_id()), r2.fetched_chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_after_restart_and_fetches_only_what_was_missing() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Resumer", true).await;
    let src = noise_album(&dir.path().join("album"), 4, 30.0);
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let artist_addr = addr(&artist).await;

    let fan = spawn(dir.path(), "fan", false).await;
    let mut events = fan.subscribe();
    within("dial", fan.dial(&artist_addr)).await.unwrap();
    event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    let rid = report.release_id.to_string();
    let getter = {
        let fan = fan.clone();
        tokio::spawn(async move { fan.fetch(&rid).await })
    };
    event(&mut events, "progress", |e| matches!(e, Event::FetchProgress { have, .. } if *have >= 16)).await;
    fan.shutdown().await;
    assert!(getter.await.unwrap().is_err(), "the interrupted fetch reports an error");
    drop(fan);

    // Count what survived, once the stopped node has released the store.
    let home = busker::Home::at(dir.path().join("fan"));
    let local = crate::nodes::open_when_free(&home).await;
    let (mut have, mut total) = (0, 0);
    let mut incomplete = std::collections::HashSet::new();
    for t in &report.release.tracks {
        let m = artist.local().store.manifest(&t.id).unwrap().unwrap();
        let held = m.chunks.iter().filter(|c| local.store.has_intact_chunk(c).unwrap()).count();
        total += m.chunks.len();
        have += held;
        if held < m.chunks.len() {
            incomplete.insert(t.id);
        }
    }
    assert!(have > 0 && have < total, "interrupted at {have}/{total}");
    drop(local);

    let fan = spawn(dir.path(), "fan", false).await;
    let mut events = fan.subscribe();
    within("dial", fan.dial(&artist_addr)).await.unwrap();
    let mut fetched = 0;
    let mut done = std::collections::HashSet::new();
    while done.len() < incomplete.len() {
        if let Event::FetchComplete { id, fetched: n, .. } =
            event(&mut events, "resume", |e| matches!(e, Event::FetchComplete { .. })).await
        {
            // A track whose chunks were all stored before its fetch was recorded as finished
            // is resumed too, and completes without fetching anything.
            assert!(incomplete.contains(&id) || n == 0, "only unfinished tracks are fetched again");
            fetched += n;
            if incomplete.contains(&id) {
                done.insert(id);
            }
        }
    }
    assert_eq!(fetched, total - have, "refetched only the missing chunks");
    let files = fan.local().export(&report.release_id.to_string(), &dir.path().join("out")).unwrap();
    for f in &files {
        assert_eq!(std::fs::read(f).unwrap(), std::fs::read(src.join(f.file_name().unwrap())).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_that_start_together_trade_with_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Together", true).await;
    let src = noise_album(&dir.path().join("album"), 4, 12.0);
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let rid = report.release_id.to_string();
    // Three fans, each connected to the artist and to the others, press "get" at once: none
    // has a manifest yet, so each first hears "not found" from the others. They must still
    // use each other as sources once they hold chunks.
    let mut fans = Vec::new();
    for i in 0..3 {
        let fan = spawn(dir.path(), &format!("fan{i}"), false).await;
        let mut events = fan.subscribe();
        within("dial", fan.dial(&addr(&artist).await)).await.unwrap();
        for other in &fans {
            within("dial", fan.dial(&addr(other).await)).await.unwrap();
        }
        event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
        fans.push(fan);
    }
    let gets: Vec<_> = fans
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (f, rid, out) = (f.clone(), rid.clone(), dir.path().join(format!("out{i}")));
            tokio::spawn(async move { f.get(&rid, &out).await })
        })
        .collect();
    for (i, g) in gets.into_iter().enumerate() {
        let (r, files) = within("get", g).await.unwrap().unwrap();
        for f in &files {
            assert_eq!(std::fs::read(f).unwrap(), std::fs::read(src.join(f.file_name().unwrap())).unwrap());
        }
        let from_fans: usize = r.per_peer.iter().filter(|(p, _)| p != artist.peer_id()).map(|(_, n)| n).sum();
        assert!(from_fans > 0, "fan{i} fetched only from the artist: {:?}", r.per_peer);
    }
}
