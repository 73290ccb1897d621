//! Release transfer over loopback: busker 1 seeder → 1 fan and 1 → 4 fans, and the same files
//! moved by BitTorrent (libtorrent-rasterbar and aria2c, via `benches/bittorrent/bt_bench.py`).
//! libtorrent runs twice: tuned (its `high_performance_seed` preset plus larger queues, the
//! row the targets compare with) and, as `lt-default`, with its default settings.
//!
//! Run by hand with `bash benches/transfer.sh` (installs the BitTorrent side). Everything
//! stays on 127.0.0.1 with mDNS off. Env: `BUSKER_BENCH_MB` (release size, default 200),
//! `BUSKER_BENCH_SKIP_BT=1` to run busker only, `BUSKER_BENCH_FANS=1` (or `4`) to run one case,
//! `BUSKER_BENCH_TIMELINE=1` to print every 200 ms the seeder's chunks served and each fan's
//! chunks stored / served (stalls and long tails show up there), `BUSKER_BENCH_ROUNDS=N` to
//! run every client N times, interleaved, and print medians and busker ÷ libtorrent per round
//! (tuned, and the faster of tuned and default). With more than one round, an unrecorded
//! busker run of each case warms the machine up first, and even rounds run the clients in the
//! reverse order. Every busker transfer runs in a fresh process (this binary again), as the
//! BitTorrent clients do.
//!
//! CPU is reported as the seconds all cores spent busy during the transfer (`/proc/stat`), for
//! busker and the BitTorrent clients alike; busker's own process CPU is printed beside it.

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
    proc_stat_secs("/proc/self/stat", |stat| stat.rsplit(')').next().unwrap_or(""), &[11, 12])
}

/// CPU seconds all cores have spent busy (user, nice, system, irq, softirq), whoever ran:
/// includes the kernel's network work wherever it was accounted. `bt_bench.py` reports the
/// same figure for the BitTorrent clients, which run as several processes.
fn busy_secs() -> f64 {
    proc_stat_secs("/proc/stat", |stat| stat.lines().next().unwrap_or("").trim_start_matches("cpu"), &[0, 1, 2, 5, 6])
}

/// Sums the clock-tick fields `at` of the space-separated part `pick` selects from `path`.
fn proc_stat_secs(path: &str, pick: impl Fn(&str) -> &str, at: &[usize]) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = pick(&stat).split_whitespace().collect();
    at.iter().map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN)).sum::<f64>() / 100.0
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
async fn busker_run(dir: &Path, root: &Path, fans: usize) -> (Vec<f64>, f64, f64, f64) {
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
    let (cpu0, busy0) = (cpu_secs(), busy_secs());
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
    let (cpu, busy) = (cpu_secs() - cpu0, busy_secs() - busy0);
    let uploaded = artist.status().await.unwrap().served_bytes - before;
    for n in nodes.iter().chain([&artist]) {
        n.shutdown().await;
    }
    (times, uploaded as f64 / report.total_bytes as f64, cpu, busy)
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
    if let (Ok(fans), Ok(dir)) = (std::env::var("BUSKER_BENCH_CHILD_FANS"), std::env::var("BUSKER_BENCH_CHILD_DIR")) {
        return child(Path::new(&dir), fans.parse().unwrap());
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
    let only: Option<usize> = std::env::var("BUSKER_BENCH_FANS").ok().and_then(|v| v.parse().ok());
    let cases: Vec<usize> = only.map_or(vec![1, 4], |n| vec![n]);
    let rounds: usize = std::env::var("BUSKER_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let clients: &[&str] =
        if std::env::var("BUSKER_BENCH_SKIP_BT").is_ok() { &[] } else { &["libtorrent", "lt-default", "aria2c"] };
    let mut runs = Vec::new();
    if rounds > 1 {
        // The first 1 -> 4 transfer after start-up ran slow for whichever client went first
        // (busker in every round 1 of session 12's runs): an unrecorded run warms this VM up.
        for &fans in &cases {
            settle();
            let secs = busker_process(&dir, fans).map_or(f64::NAN, |r| all_done(&r.0));
            println!("warm-up     1 -> {fans}: {secs:.2} s, not counted");
        }
    }
    let all: Vec<&'static str> = ["busker"].into_iter().chain(clients.iter().copied()).collect();
    // Each round runs every client back to back, case by case, so that the comparison a round
    // makes is between runs close in time (this VM's speed drifts by ±20% over minutes). Odd
    // rounds run the clients in one order and even rounds in the reverse order, so that no
    // client always runs first or always follows the same other client: a 1 -> 4 run that
    // followed aria2c's was the slow one in session 12's runs.
    for round in 1..=rounds {
        if rounds > 1 {
            println!("--- round {round} of {rounds}");
        }
        let order: Vec<&'static str> = if round % 2 == 1 { all.clone() } else { all.iter().rev().copied().collect() };
        for &fans in &cases {
            for &client in &order {
                settle();
                if let Some(run) = run_client(&dir, client, fans, round, size_mb) {
                    runs.push(run);
                }
            }
        }
    }
    summary(&runs, &cases, rounds, size_mb);
}

/// Runs one busker transfer in a fresh process, as the BitTorrent clients run (this binary
/// again, in child mode): no run inherits the previous runs' heap, threads or timers. Returns
/// the fans' times, the seeder's upload ratio, and the CPU seconds (process, all cores).
fn busker_process(dir: &Path, fans: usize) -> Option<(Vec<f64>, f64, f64, f64)> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .env("BUSKER_BENCH_CHILD_FANS", fans.to_string())
        .env("BUSKER_BENCH_CHILD_DIR", dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = None;
    for line in text.lines() {
        match serde_json::from_str(line) {
            Ok(r) => result = Some(r),
            Err(_) => println!("{line}"), // the timeline and the chunk sources
        }
    }
    if result.is_none() {
        eprintln!("busker x{fans} failed: {}", out.status);
    }
    result
}

/// When the last fan was done, from the fans' times.
fn all_done(times: &[f64]) -> f64 {
    times.iter().copied().fold(0.0, f64::max)
}

/// Child mode: one busker transfer, its figures printed as a JSON line last.
fn child(dir: &Path, fans: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let root = tempfile::tempdir().unwrap();
    let result = rt.block_on(busker_run(dir, root.path(), fans));
    println!("{}", serde_json::to_string(&result).unwrap());
}

/// Runs `client` once, prints its line and returns it (`None` if a BitTorrent client failed).
fn run_client(dir: &Path, client: &'static str, fans: usize, round: usize, size_mb: f64) -> Option<Run> {
    if client == "busker" {
        let (times, upload, cpu, busy) = busker_process(dir, fans)?;
        let each: Vec<String> = times.iter().map(|t| format!("{:.0}", size_mb / t)).collect();
        let secs = all_done(&times);
        println!(
            "busker      1 -> {fans}: all done in {secs:.2} s; MB/s per fan [{}]; seeder uploaded {upload:.2}x the release; {cpu:.2} CPU s ({busy:.2} on all cores)",
            each.join(", ")
        );
        return Some(Run { client, fans, round, secs, upload, cpu: busy });
    }
    let v = bt_run(dir, client, fans)?;
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let run = Run {
        client,
        fans,
        round,
        secs: num("seconds_all_done"),
        upload: num("seeder_upload_ratio"),
        cpu: num("system_cpu_s"),
    };
    println!(
        "{client:<11} 1 -> {fans}: all done in {:.2} s; MB/s per fan {}; seeder uploaded {:.2}x the release; {:.2} CPU s on all cores",
        run.secs, v["mb_per_s_each"], run.upload, run.cpu
    );
    Some(run)
}

/// Writes dirty pages out and pauses, so that no run pays for writing back the previous
/// run's files (or the release just written: without this the first run of a bench was
/// often twice as slow).
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(1));
}

/// One client's transfer in one round.
struct Run {
    client: &'static str,
    fans: usize,
    round: usize,
    /// Until the last fan was done.
    secs: f64,
    /// Seeder upload ÷ release size.
    upload: f64,
    /// CPU seconds on all cores during the transfer.
    cpu: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians over the rounds, and busker against libtorrent round by round: against the tuned
/// run, and against whichever of libtorrent's two settings was faster in that round (the
/// ratio of two runs a minute apart is steadier than the ratio of two medians).
fn summary(runs: &[Run], cases: &[usize], rounds: usize, size_mb: f64) {
    if rounds < 2 {
        return;
    }
    println!("\n=== medians over {rounds} rounds ===");
    for &fans in cases {
        for client in ["busker", "libtorrent", "lt-default", "aria2c"] {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.client == client && r.fans == fans).collect();
            if mine.is_empty() {
                continue;
            }
            let secs = median(mine.iter().map(|r| r.secs).collect());
            println!(
                "{client:<11} 1 -> {fans}: all done in {secs:.2} s ({:.0} MB/s per fan); seeder uploaded {:.2}x; {:.2} CPU s",
                size_mb / secs,
                median(mine.iter().map(|r| r.upload).collect()),
                median(mine.iter().map(|r| r.cpu).collect()),
            );
        }
        for (against, of) in
            [("tuned libtorrent's", &["libtorrent"][..]), ("the faster libtorrent's", &["libtorrent", "lt-default"])]
        {
            let paired: Vec<f64> = (1..=rounds)
                .filter_map(|round| {
                    let secs = |c: &str| {
                        runs.iter().find(|r| r.client == c && r.fans == fans && r.round == round).map(|r| r.secs)
                    };
                    let lt = of.iter().filter_map(|c| secs(c)).fold(f64::NAN, f64::min);
                    Some(secs("busker")? / lt).filter(|r| r.is_finite())
                })
                .collect();
            if !paired.is_empty() {
                let (lo, hi) = paired.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                println!(
                    "  1 -> {fans}: busker's time ÷ {against}, per round: median {:.2} ({lo:.2} to {hi:.2}; below 1 is busker faster)",
                    median(paired.clone())
                );
            }
        }
    }
}
