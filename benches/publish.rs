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

fn options(copy: bool) -> PublishOptions {
    PublishOptions {
        title: Some("Bench".into()),
        date: None,
        licence: Licence::known("CC-BY-4.0").unwrap(),
        splits: None,
        skip_bad: false,
        copy,
    }
}

fn fresh_node(root: &Path, n: usize) -> Local {
    let home = Home::at(root.join(format!("node-{n}")));
    Local::init(&home, Some("Bench Artist")).unwrap().0
}

fn publish_once(album: &Path, root: &Path, n: usize, copy: bool) -> Duration {
    let node = fresh_node(root, n);
    let t = Instant::now();
    let r = node.publish(album, &options(copy), &|_| {}).unwrap();
    let d = t.elapsed();
    let ms = |us: u64| us as f64 / 1e3;
    let tm = &r.timings;
    println!(
        "  {}: {:.1} ms = check+hash {:.1} ms (cpu: probe {:.1}, read+hash {:.1}), store {:.1} ms, sign+commit {:.1} ms",
        if copy { "copy    " } else { "in place" },
        ms(d.as_micros() as u64),
        ms(tm.check_us),
        ms(tm.probe_cpu_us),
        ms(tm.hash_cpu_us),
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

    // Head-to-head on the same files, interleaved so all three see the same machine state:
    // 7 rounds of b3sum, publish in place (the default) and publish --copy; medians.
    for copy in [false, true] {
        n += 1;
        publish_once(&album, tmp.path(), n, copy); // warm-up
    }
    let (mut b3, mut in_place, mut copied) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        b3.extend(b3sum_once(&files));
        n += 1;
        in_place.push(publish_once(&album, tmp.path(), n, false));
        n += 1;
        copied.push(publish_once(&album, tmp.path(), n, true));
    }
    let row = |name: &str, d: Duration| {
        println!("{name:<24}: {:>8.1} ms  {:>7.1} MB/s", d.as_secs_f64() * 1e3, mb / d.as_secs_f64());
    };
    println!("\n=== publish vs b3sum: {} files, {:.1} MB (medians of 7) ===", files.len(), mb);
    let (p, pc) = (median(in_place), median(copied));
    row("busker publish", p);
    row("busker publish --copy", pc);
    if b3.is_empty() {
        println!("b3sum                   : not installed (run benches/publish.sh to install it)");
    } else {
        let b = median(b3);
        row("b3sum", b);
        let ratio = |d: Duration| d.as_secs_f64() / b.as_secs_f64();
        println!("ratio                   : publish takes {:.2}x b3sum's wall time (target <= 2.00)", ratio(p));
        println!("ratio with --copy       : {:.2}x\n", ratio(pc));
    }

    let mut g = c.benchmark_group("publish");
    g.sample_size(10).throughput(criterion::Throughput::Bytes(bytes));
    g.bench_function("publish_album", |b| {
        b.iter_batched(
            || {
                n += 1;
                (fresh_node(tmp.path(), n), n)
            },
            |(node, _)| node.publish(&album, &options(false), &|_| {}).unwrap(),
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
