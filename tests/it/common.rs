//! Shared helpers: temporary nodes, fixtures, and the `busker` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use busker::catalog::Licence;
use busker::catalog::publish::PublishOptions;
use busker::{Home, Local};
use tempfile::TempDir;

/// The committed fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh artist node in a temporary directory.
pub fn artist_node() -> (TempDir, Local) {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = Local::init(&Home::at(dir.path().join("home")), Some("Test Artist")).unwrap();
    (dir, node)
}

pub fn options() -> PublishOptions {
    PublishOptions {
        title: None,
        date: None,
        licence: Licence::known("CC-BY-4.0").unwrap(),
        splits: None,
        skip_bad: false,
        copy: false,
    }
}

/// Copies the named fixtures into a new folder under `root`.
pub fn album(root: &Path, name: &str, files: &[&str]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// A WAV of white noise: valid PCM audio, fast to make in bulk.
pub fn noise_wav(seed: u64, seconds: f32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let samples: Vec<i16> = (0..(seconds * 44_100.0) as usize * 2)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 48) as i16 / 4
        })
        .collect();
    busker::synth::wav(&samples, 44_100, 2)
}

/// Runs the busker binary against a data dir.
pub fn busker(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_busker")).arg("--data-dir").arg(home).args(args).output().unwrap()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

/// Lists every file under `dir` with its size and content hash (to prove "unchanged").
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, [u8; 32])> {
    let mut out: Vec<(PathBuf, [u8; 32])> = files_under(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("/db/"))
        .map(|p| {
            let hash = *blake3::hash(&std::fs::read(&p).unwrap()).as_bytes();
            (p, hash)
        })
        .collect();
    out.sort();
    out
}
