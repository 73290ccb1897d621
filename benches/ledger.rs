//! Ledger benchmark: signed durable appends, batch verification, and settlement of 100,000
//! plays between two real nodes on 127.0.0.1 (mDNS off).
//!
//! Run by hand: `cargo bench --bench ledger` (env `BUSKER_BENCH_PLAYS`, default 100000).
//! Targets (issue 5): appends ≥ 20,000/s, verification ≥ 50,000/s, settlement ≤ 1 s.

use std::time::{Duration, Instant};

use busker::catalog::publish::PublishOptions;
use busker::catalog::{ContentId, Licence};
use busker::ledger::bench::{self, Mode};
use busker::ledger::{Body, HOUR_SECS};
use busker::{Home, Local, Node};

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn appends_and_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = bench::scratch(dir.path()).expect("scratch ledger");
    let n = 20_000;
    println!("signed, durable (flushed before acknowledged) play appends, {n} per mode:");
    for mode in [Mode::Single, Mode::Concurrent, Mode::Batched] {
        let took = bench::appends(&ledger, n, mode, &|_| {}).expect("appends");
        let how = match mode {
            Mode::Single => "one at a time, one flush each".to_string(),
            Mode::Concurrent => format!("{} writers, shared flushes", bench::WRITERS),
            Mode::Batched => format!("batches of {}, one flush each", bench::BATCH),
        };
        println!("  {:<36} {:>9.0} appends/s  (target ≥ 20000)", how, rate(n, took));
    }
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..3 {
        let (c, took) = bench::verify(&ledger).expect("verify");
        count = c;
        best = best.min(took);
    }
    println!(
        "verify {count} entries (chain, rules, batch signatures on every core): {:.0}/s  (target ≥ 50000)",
        rate(count, best)
    );
}

async fn settlement(plays: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let (artist_local, _) = Local::init(&Home::at(root.join("artist")), Some("Bench Artist")).expect("init artist");
    let artist = Node::builder(artist_local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await.expect("artist");
    let album = root.join("album");
    std::fs::create_dir_all(&album).expect("album dir");
    for i in 0..12u32 {
        let samples: Vec<i16> = (0..4410).map(|s| ((s * (i + 1)) % 2000) as i16).collect();
        std::fs::write(album.join(format!("{i:02}.wav")), busker::synth::wav(&samples, 44_100, 1)).expect("wav");
    }
    let opts = PublishOptions {
        title: Some("Bench".into()),
        date: None,
        licence: Licence::known("CC-BY-4.0").expect("licence"),
        splits: None,
        skip_bad: false,
        copy: false,
    };
    artist.publish(&album, opts).await.expect("publish");
    let key = artist.local().identity.artist_key().expect("artist key");
    let (fan_local, _) = Local::init(&Home::at(root.join("fan")), None).expect("init fan");
    let fan = Node::builder(fan_local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await.expect("fan");
    fan.dial(&artist.wait_listening(Duration::from_secs(30)).await.expect("addr")).await.expect("dial");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fan.local().store.catalog(&key).expect("store").is_none_or(|c| c.catalog().releases.is_empty()) {
        assert!(Instant::now() < deadline, "catalog never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tracks: Vec<ContentId> = fan.local().store.catalog(&key).expect("store").expect("catalog").catalog().releases
        [0]
    .tracks
    .iter()
    .map(|t| t.id)
    .collect();
    // 100,000 plays over 30 days of 12 tracks, recorded in batches (not timed).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let start = now - 30 * 24 * HOUR_SECS;
    let mut i = 0;
    while i < plays {
        let k = (plays - i).min(4096);
        let bodies = (i..i + k)
            .map(|j| {
                Body::play(tracks[(j % 12) as usize], key, 60_000, start + (j * 7919) % (30 * 24 * HOUR_SECS), None)
            })
            .collect();
        fan.local().ledger.append_many(bodies).expect("append");
        i += k;
    }
    fan.local().ledger.tip(key, busker::ledger::Money { minor: 500, unit: "USD".into() }).expect("tip");
    let started = Instant::now();
    let report = fan.settle().await.expect("settle");
    let took = started.elapsed();
    assert_eq!(report.settled.len(), 1, "{report:?}");
    assert_eq!(report.settled[0].plays, plays);
    let received = artist.local().ledger.report(None).expect("report");
    assert_eq!(received.plays.iter().map(|r| r.plays).sum::<u64>(), plays);
    println!(
        "settle {plays} plays ({} day×track rows) fan → artist on loopback: {:.0} ms  (target ≤ 1000 ms)",
        received.plays.len(),
        took.as_secs_f64() * 1000.0
    );
    println!("  (aggregate from the ledger, sign, send, verify + store + countersign, store receipt)");
    fan.shutdown().await;
    artist.shutdown().await;
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // cargo test --benches / criterion-style listing: nothing to do.
    }
    appends_and_verify();
    let plays = std::env::var("BUSKER_BENCH_PLAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(settlement(plays));
}
