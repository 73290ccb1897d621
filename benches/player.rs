//! Player benchmark on loopback (127.0.0.1, mDNS off): time to first audio for tracks held
//! only by a remote node, and stutters in 10 concurrent real-time plays.
//!
//! Run by hand: `cargo bench --bench player` (env `BUSKER_BENCH_TTFA_PLAYS`, default 24).
//! Targets (issue 4): median time to first audio ≤ 50 ms on loopback; 0 stutters.
//! The slow-link figures (50 ms RTT, 20 Mbit/s) come from `benches/ttfa_slowlink.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use busker::catalog::Licence;
use busker::catalog::publish::PublishOptions;
use busker::player::{NullSink, PlayOptions, Player, QueueItem, State};
use busker::{Home, Local, Node};

async fn node(root: &Path, name: &str, artist: bool) -> Node {
    let (local, _) = Local::init(&Home::at(root.join(name)), artist.then_some(name)).expect("init");
    Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await.expect("spawn")
}

/// A fan that has synced the artist's catalog.
async fn fan_of(root: &Path, name: &str, artist: &Node, releases: usize) -> Node {
    let fan = node(root, name, false).await;
    fan.dial(&artist.wait_listening(Duration::from_secs(30)).await.expect("addr")).await.expect("dial");
    let key = artist.local().identity.artist_key().expect("artist key");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fan.local().store.catalog(&key).expect("store").is_none_or(|c| c.catalog().releases.len() < releases) {
        assert!(Instant::now() < deadline, "catalog never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fan
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn wait_idle(fan: &Node) {
    // The previous play's track keeps downloading after the play stops: let it finish so the
    // next measurement has the link to itself.
    for _ in 0..500 {
        if fan.status().await.expect("status").downloads == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn ttfa(root: &Path, artist: &Node, items: &[QueueItem]) {
    let fan = fan_of(root, "ttfa-fan", artist, 1).await;
    let mut samples = Vec::new();
    for item in items {
        wait_idle(&fan).await;
        let opts = PlayOptions { limit_ms: Some(300), ..PlayOptions::default() };
        let player = fan.play(vec![item.clone()], Box::new(NullSink::new()), opts).expect("play");
        let status = tokio::task::spawn_blocking(move || player.wait()).await.expect("join").expect("played");
        samples.push(status.ttfa_ms.expect("first audio"));
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "time to first audio, {} plays of tracks held only by a remote node, loopback:\n  \
         median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms  (target: median ≤ 50 ms)",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        samples[0],
        samples[samples.len() - 1]
    );
    fan.shutdown().await;
}

async fn concurrent(root: &Path, artist: &Node, items: &[QueueItem]) {
    let mut fans = Vec::new();
    for i in 0..items.len() {
        fans.push(fan_of(root, &format!("fan{i}"), artist, 1).await);
    }
    let started = Instant::now();
    let players: Vec<Player> = fans
        .iter()
        .zip(items)
        .map(|(fan, item)| {
            fan.play(vec![item.clone()], Box::new(NullSink::new()), PlayOptions::default()).expect("play")
        })
        .collect();
    let mut stutters = 0;
    let mut played = 0;
    for p in players {
        let status = tokio::task::spawn_blocking(move || p.wait()).await.expect("join").expect("played");
        assert_eq!(status.state, State::Stopped);
        stutters += status.stutters;
        played += status.tracks.iter().map(|t| t.played_ms).sum::<u64>();
    }
    println!(
        "{} concurrent real-time plays from one seeder on loopback ({:.1} s of audio in {:.1} s):\n  \
         {stutters} stutters  (target 0)",
        items.len(),
        played as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );
    for f in fans {
        f.shutdown().await;
    }
}

async fn run(plays: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let artist = node(root, "Bench Artist", true).await;
    // One single per track, so no play can warm up the next (no prefetch across releases).
    let opts = |title: String| PublishOptions {
        title: Some(title),
        date: None,
        licence: Licence::known("CC-BY-4.0").expect("licence"),
        splits: None,
        skip_bad: false,
        copy: false,
    };
    let total = plays + 10;
    for i in 0..total {
        let album = root.join(format!("single{i}"));
        std::fs::create_dir_all(&album).expect("dir");
        let secs = if i < plays { 6.0 } else { 12.0 };
        std::fs::write(album.join("track.wav"), busker::synth::song_wav(100 + i as u64, secs)).expect("wav");
        artist.publish(&album, opts(format!("Single {i}"))).await.expect("publish");
    }
    let key = artist.local().identity.artist_key().expect("key");
    let catalog = artist.local().store.catalog(&key).expect("store").expect("catalog");
    let ids: Vec<String> = catalog.catalog().releases.iter().map(|r| r.id().to_string()).collect();
    let items: Vec<QueueItem> = ids.iter().flat_map(|id| artist.resolve(id).expect("resolve")).collect();
    assert_eq!(items.len(), total);
    ttfa(root, &artist, &items[..plays]).await;
    concurrent(root, &artist, &items[plays..]).await;
    artist.shutdown().await;
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let plays = std::env::var("BUSKER_BENCH_TTFA_PLAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run(plays.max(20)));
}
