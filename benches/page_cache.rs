//! What a buffered write into the page cache costs by the size of each `pwrite`: the test
//! behind `WRITE_PIECE` in `src/catalog/blobs.rs` (see docs/architecture.md, Network).
//!
//! Writes `BUSKER_BENCH_MB` (default 800) into four new files, 256 KiB chunks in a scattered
//! order as a download fills them, each chunk in pieces of one size, and prints the system
//! CPU seconds that took, per piece size, for `BUSKER_BENCH_ROUNDS` (default 3) interleaved
//! rounds. `BUSKER_BENCH_BEFORE` is a shell command run before every measurement, such as a
//! libtorrent transfer (`python3 benches/bittorrent/bt_bench.py --dir DIR --fans 4 --client
//! libtorrent`); without it each measurement follows the previous one's files being deleted
//! (so 256 KiB writes follow 8 KiB ones, which on Linux 6.18 in a VM already makes them slow).
//! Session 13, after a libtorrent 1 -> 4 run each time, medians of 3: 256 KiB 1.15 s, 64 KiB
//! 0.34, 32 KiB 0.19, 16 KiB 0.21, 8 KiB 0.26. Run by hand: `cargo bench --bench page_cache`. Linux only (reads `/proc/self/stat`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CHUNK: usize = 256 * 1024;
const PIECES: [usize; 5] = [256 * 1024, 64 * 1024, 32 * 1024, 16 * 1024, 8 * 1024];

/// System CPU seconds this process has used so far.
fn system_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN) / 100.0
}

/// Writes `mb` MB into four new files under `dir` in `piece`-byte writes; returns system CPU s.
fn write_files(dir: &Path, mb: usize, piece: usize) -> f64 {
    let chunks = mb * 1_000_000 / 4 / CHUNK;
    let bytes = vec![7u8; CHUNK];
    let t0 = system_secs();
    for f in 0..4 {
        let file = File::create(dir.join(format!("f{f}"))).unwrap();
        file.set_len((chunks * CHUNK) as u64).unwrap();
        for k in 0..chunks {
            let at = (k * 7919 % chunks * CHUNK) as u64;
            for (i, p) in bytes.chunks(piece).enumerate() {
                file.write_all_at(p, at + (i * piece) as u64).unwrap();
            }
        }
    }
    system_secs() - t0
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (mb, rounds) = (env("BUSKER_BENCH_MB", 800), env("BUSKER_BENCH_ROUNDS", 3));
    let before = std::env::var("BUSKER_BENCH_BEFORE").ok();
    let dir = tempfile::tempdir().unwrap();
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); PIECES.len()];
    println!("\n=== {mb} MB written into the page cache, system CPU s by write size ===");
    for round in 1..=rounds {
        for (i, &piece) in PIECES.iter().enumerate() {
            for f in 0..4 {
                let _ = std::fs::remove_file(dir.path().join(format!("f{f}")));
            }
            if let Some(cmd) = &before {
                let _ = Command::new("sh").args(["-c", cmd]).output();
            }
            let _ = Command::new("sync").status();
            std::thread::sleep(Duration::from_secs(1));
            let secs = write_files(dir.path(), mb, piece);
            println!("round {round}: {:>3} KiB writes: {secs:.2} s", piece / 1024);
            results[i].push(secs);
        }
    }
    println!("--- median over {rounds} rounds");
    for (i, piece) in PIECES.iter().enumerate() {
        let mut v = results[i].clone();
        v.sort_by(f64::total_cmp);
        let each: Vec<String> = results[i].iter().map(|s| format!("{s:.2}")).collect();
        println!("{:>3} KiB writes: {:.2} s (rounds: {})", piece / 1024, v[v.len() / 2], each.join(", "));
    }
}
