//! Publish throughput against `b3sum` on the same files.
//!
//! Run with `bash benches/publish.sh` (installs b3sum and flac if missing), or
//! `cargo bench --bench publish`. The album is synthesised music: WAV tracks, plus FLAC
//! encodings of some of them when the `flac` encoder is installed. Publishing includes
//! checking every file decodes, counting its duration, chunking, hashing, writing chunk files,
//! flushing them to disk, and the signed catalog commit.
//!
//! Env: `BUSKER_BENCH_TRACKS` (default 12) and `BUSKER_BENCH_SECONDS` per track (default 90).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use busker::catalog::Licence;
use busker::catalog::publish::PublishOptions;
use busker::{Home, Local};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn make_album(dir: &Path) -> (Vec<PathBuf>, u64) {
    std::fs::create_dir_all(dir).unwrap();
    let tracks = env_or("BUSKER_BENCH_TRACKS", 12);
    let secs = env_or("BUSKER_BENCH_SECONDS", 90) as f32;
    let has_flac = Command::new("flac").arg("--version").output().is_ok();
    let mut files = Vec::new();
    for i in 0..tracks {
        let wav = dir.join(format!("{:02}.wav", i + 1));
        std::fs::write(&wav, busker::synth::song_wav(i as u64 + 1, secs)).unwrap();
        if has_flac && i % 3 == 2 {
            let flac = wav.with_extension("flac");
            let ok =
                Command::new("flac").args(["-s", "-f", "-5", "-o"]).arg(&flac).arg(&wav).status().unwrap().success();
            if ok {
                std::fs::remove_file(&wav).unwrap();
                files.push(flac);
                continue;
            }
        }
        files.push(wav);
    }
    let bytes = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    (files, bytes)
}

fn options() -> PublishOptions {
    PublishOptions {
        title: Some("Bench".into()),
        date: None,
        licence: Licence::known("CC-BY-4.0").unwrap(),
        splits: None,
        skip_bad: false,
    }
}

fn fresh_node(root: &Path, n: usize) -> Local {
    let home = Home::at(root.join(format!("node-{n}")));
    Local::init(&home, Some("Bench Artist")).unwrap().0
}

fn publish_once(album: &Path, root: &Path, n: usize) -> Duration {
    let node = fresh_node(root, n);
    let t = Instant::now();
    let r = node.publish(album, &options(), &|_| {}).unwrap();
    let d = t.elapsed();
    let ms = |us: u64| us as f64 / 1e3;
    let tm = &r.timings;
    println!(
        "  phases: check {:.1} ms, read+hash {:.1} ms, write {:.1} ms, sign+commit {:.1} ms",
        ms(tm.check_us),
        ms(tm.hash_us),
        ms(tm.write_us),
        ms(tm.commit_us)
    );
    drop(node);
    std::fs::remove_dir_all(root.join(format!("node-{n}"))).unwrap();
    d
}

fn b3sum_once(files: &[PathBuf]) -> Option<Duration> {
    let t = Instant::now();
    let out = Command::new("b3sum").args(files).output().ok()?;
    out.status.success().then(|| t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let album = tmp.path().join("album");
    let (files, bytes) = make_album(&album);
    let mb = bytes as f64 / 1e6;
    let mut n = 0;

    // Head-to-head, same files, same page cache state, 7 runs each, medians.
    let _ = publish_once(&album, tmp.path(), {
        n += 1;
        n
    }); // warm-up
    let publish: Vec<Duration> = (0..7)
        .map(|_| {
            n += 1;
            publish_once(&album, tmp.path(), n)
        })
        .collect();
    let b3: Vec<Duration> = (0..7).filter_map(|_| b3sum_once(&files)).collect();
    let p = median(publish);
    println!("\n=== publish vs b3sum: {} files, {:.1} MB ===", files.len(), mb);
    println!("busker publish : {:>8.1} ms  {:>7.1} MB/s", p.as_secs_f64() * 1e3, mb / p.as_secs_f64());
    if b3.is_empty() {
        println!("b3sum          : not installed (run benches/publish.sh to install it)");
    } else {
        let b = median(b3);
        println!("b3sum          : {:>8.1} ms  {:>7.1} MB/s", b.as_secs_f64() * 1e3, mb / b.as_secs_f64());
        println!(
            "ratio          : publish takes {:.2}x b3sum's wall time (target <= 2.00)\n",
            p.as_secs_f64() / b.as_secs_f64()
        );
    }

    let mut g = c.benchmark_group("publish");
    g.sample_size(10).throughput(criterion::Throughput::Bytes(bytes));
    g.bench_function("publish_album", |b| {
        b.iter_batched(
            || {
                n += 1;
                (fresh_node(tmp.path(), n), n)
            },
            |(node, _)| node.publish(&album, &options(), &|_| {}).unwrap(),
            BatchSize::PerIteration,
        )
    });
    if b3sum_once(&files).is_some() {
        g.bench_function("b3sum_same_files", |b| b.iter(|| b3sum_once(&files)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
