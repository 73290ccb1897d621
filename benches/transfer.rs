//! Release transfer over loopback: busker 1 seeder → 1 fan and 1 → 4 fans, and the same files
//! moved by BitTorrent (libtorrent-rasterbar and aria2c, via `benches/bittorrent/bt_bench.py`).
//! libtorrent runs twice: tuned (its `high_performance_seed` preset plus larger queues, the
//! row the targets compare with) and, as `lt-default`, with its default settings.
//!
//! Run by hand with `bash benches/transfer.sh` (installs the BitTorrent side). Everything
//! stays on 127.0.0.1 with mDNS off. Env: `BUSKER_BENCH_MB` (release size, default 200),
//! `BUSKER_BENCH_SKIP_BT=1` to run busker only, `BUSKER_BENCH_FANS=1` (or `4`) to run one case,
//! `BUSKER_BENCH_TIMELINE=1` to print every 200 ms the seeder's chunks served and each fan's
//! chunks stored / served (stalls and long tails show up there).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use busker::catalog::Licence;
use busker::catalog::publish::PublishOptions;
use busker::{Home, Local, Node};

const FILES: u64 = 8;

fn options() -> PublishOptions {
    PublishOptions {
        title: Some("Transfer Bench".into()),
        date: None,
        licence: Licence::known("CC-BY-4.0").unwrap(),
        splits: None,
        skip_bad: false,
        copy: false,
    }
}

async fn node(root: &Path, name: &str, artist: bool) -> Node {
    let (mut local, _) = Local::init(&Home::at(root.join(name)), artist.then_some(name)).unwrap();
    if let Some(w) = std::env::var("BUSKER_BENCH_WINDOW").ok().and_then(|v| v.parse().ok()) {
        local.config.download.window = w;
    }
    let quic = std::env::var("BUSKER_BENCH_QUIC").is_ok_and(|v| v == "1");
    let listen = if quic { "/ip4/127.0.0.1/udp/0/quic-v1" } else { "/ip4/127.0.0.1/tcp/0" };
    Node::builder(local).listen(listen).mdns(false).spawn().await.unwrap()
}

/// CPU seconds (user + system) this process has used: less noisy than wall time when another
/// build shares the cores.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

async fn addr(n: &Node) -> String {
    n.wait_listening(Duration::from_secs(30)).await.unwrap()
}

async fn wait_catalog(n: &Node, seq: u64) {
    let mut rx = n.subscribe();
    let deadline = Instant::now() + Duration::from_secs(30);
    while n.local().store.catalogs().unwrap().iter().all(|c| c.seq() < seq) {
        assert!(Instant::now() < deadline, "catalog never arrived");
        let _ = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
    }
}

/// Busker: one seeder, `fans` fans all connected to the seeder and to each other.
async fn busker_run(dir: &Path, root: &Path, fans: usize) -> (Vec<f64>, f64, f64) {
    let artist = node(root, "artist", true).await;
    let report = artist.publish(dir, options()).await.unwrap();
    let rid = report.release_id.to_string();
    let mut nodes = Vec::new();
    for i in 0..fans {
        nodes.push(node(root, &format!("fan{i}"), false).await);
    }
    let a = addr(&artist).await;
    for (i, f) in nodes.iter().enumerate() {
        f.dial(&a).await.unwrap();
        for other in &nodes[..i] {
            f.dial(&addr(other).await).await.unwrap();
        }
    }
    for f in &nodes {
        wait_catalog(f, report.seq).await;
    }
    let before = artist.status().await.unwrap().served_bytes;
    perf_control("enable");
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let tasks: Vec<_> = nodes
        .iter()
        .map(|f| {
            let (f, rid) = (f.clone(), rid.clone());
            tokio::spawn(async move {
                let r = f.fetch(&rid).await.unwrap();
                (t0.elapsed().as_secs_f64(), r)
            })
        })
        .collect();
    if std::env::var("BUSKER_BENCH_TIMELINE").is_ok() {
        let (nodes, artist) = (nodes.clone(), artist.clone());
        tokio::spawn(async move {
            loop {
                let mut line = format!(
                    "{:6.2}s seeder served {:4} |",
                    t0.elapsed().as_secs_f64(),
                    artist.status().await.map_or(0, |s| s.served_chunks)
                );
                for f in &nodes {
                    let s = f.status().await.unwrap();
                    line += &format!(" {:4}/{:4}", s.chunks, s.served_chunks);
                }
                println!("{line}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let mut times = Vec::new();
    let seeder = artist.peer_id().to_string();
    let (mut from_seeder, mut from_fans) = (0, 0);
    for t in tasks {
        let (secs, r) = t.await.unwrap();
        times.push(secs);
        for (p, n) in &r.per_peer {
            if *p == seeder { from_seeder += n } else { from_fans += n }
        }
    }
    if fans > 1 {
        println!("  chunks received: {from_seeder} from the seeder, {from_fans} from other fans");
    }
    perf_control("disable");
    let cpu = cpu_secs() - cpu0;
    let uploaded = artist.status().await.unwrap().served_bytes - before;
    for n in nodes.iter().chain([&artist]) {
        n.shutdown().await;
    }
    (times, uploaded as f64 / report.total_bytes as f64, cpu)
}

/// Profiles only the transfer: with `BUSKER_BENCH_PERF_CTL=FIFO`, tells `perf record -D -1
/// --control fifo:FIFO` when to sample.
fn perf_control(cmd: &str) {
    if let Ok(fifo) = std::env::var("BUSKER_BENCH_PERF_CTL") {
        let _ = std::fs::write(fifo, format!("{cmd}\n"));
    }
}

/// Runs `bt_bench.py` for `client`: "libtorrent" (tuned), "lt-default" (libtorrent with its
/// default settings) or "aria2c".
fn bt_run(dir: &Path, client: &str, fans: usize) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/bittorrent/bt_bench.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--dir", dir.to_str()?, "--fans", &fans.to_string(), "--json"]);
    match client {
        "lt-default" => cmd.args(["--client", "libtorrent", "--lt-defaults"]),
        other => cmd.args(["--client", other]),
    };
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = text.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    if parsed.is_none() {
        eprintln!("{client} x{fans} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    parsed
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // cargo test --benches / criterion-style listing: nothing to do.
    }
    let mb: u64 = std::env::var("BUSKER_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("release");
    std::fs::create_dir_all(&dir).unwrap();
    let secs = (mb as f32 * 1e6 / FILES as f32) / (44_100.0 * 4.0);
    for i in 0..FILES {
        std::fs::write(dir.join(format!("{:02}-track.wav", i + 1)), busker::synth::song_wav(i + 1, secs)).unwrap();
    }
    let bytes: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let size_mb = bytes as f64 / 1e6;
    println!("\n=== release transfer over loopback: {FILES} files, {size_mb:.1} MB ===");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let only: Option<usize> = std::env::var("BUSKER_BENCH_FANS").ok().and_then(|v| v.parse().ok());
    let cases: Vec<usize> = only.map_or(vec![1, 4], |n| vec![n]);
    for &fans in &cases {
        let root = tempfile::tempdir().unwrap();
        let (times, ratio, cpu) = rt.block_on(busker_run(&dir, root.path(), fans));
        let each: Vec<String> = times.iter().map(|t| format!("{:.0}", size_mb / t)).collect();
        let slowest = times.iter().cloned().fold(0.0, f64::max);
        println!(
            "busker      1 -> {fans}: all done in {slowest:.2} s; MB/s per fan [{}]; seeder uploaded {ratio:.2}x the release; {cpu:.2} CPU s",
            each.join(", ")
        );
    }
    if std::env::var("BUSKER_BENCH_SKIP_BT").is_ok() {
        return;
    }
    for client in ["libtorrent", "lt-default", "aria2c"] {
        for &fans in &cases {
            if let Some(v) = bt_run(&dir, client, fans) {
                println!(
                    "{client:<11} 1 -> {fans}: all done in {:.2} s; MB/s per fan {}; seeder uploaded {}x the release",
                    v["seconds_all_done"].as_f64().unwrap_or(f64::NAN),
                    v["mb_per_s_each"],
                    v["seeder_upload_ratio"].as_f64().map_or("?".into(), |r| format!("{r:.2}"))
                );
            }
        }
    }
}
