//! `kill -9` during publish: the store always verifies, and an acknowledged publish survives.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use busker::{Home, Local};

use crate::common::{busker, noise_wav};

fn spawn_publish(home: &std::path::Path, src: &std::path::Path, copy: bool) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_busker"))
        .arg("--data-dir")
        .arg(home)
        .arg("publish")
        .arg(src)
        .args(copy.then_some("--copy"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_during_publish_leaves_a_store_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    assert!(busker(&home, &["init", "--artist", "Crash Test"]).status.success());
    let base = dir.path().join("album");
    std::fs::create_dir_all(&base).unwrap();
    for i in 0..16 {
        std::fs::write(base.join(format!("{i:02}.wav")), noise_wav(i + 1, 8.0)).unwrap();
    }
    // Time one complete publish of each kind (served in place, and copied into the store),
    // then kill later runs at points spread across that time, so the test hits every phase
    // whatever the machine's speed.
    let mut full = [Duration::ZERO; 2];
    for copy in [false, true] {
        let started = std::time::Instant::now();
        assert!(spawn_publish(&home, &base, copy).wait().unwrap().success());
        full[usize::from(copy)] = started.elapsed();
    }
    let mut killed_mid_way = 0;
    for round in 0..10u32 {
        // Each round publishes a different album in a folder of its own (published files are
        // served in place, so earlier folders must stay as they were): 12 files shared with
        // the first album (hard links), 4 new ones, so every run has new chunks to record.
        let src = dir.path().join(format!("album{round}"));
        std::fs::create_dir_all(&src).unwrap();
        for i in 0..16u64 {
            let name = format!("{i:02}.wav");
            if i < 4 {
                std::fs::write(src.join(name), noise_wav(100 + u64::from(round) * 4 + i, 8.0)).unwrap();
            } else {
                std::fs::hard_link(base.join(&name), src.join(&name)).unwrap();
            }
        }
        let copy = round % 2 == 1;
        let mut child = spawn_publish(&home, &src, copy);
        let delay_ms = (full[usize::from(copy)] * (round + 1) / 11).as_millis() as u64;
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or(()); // SIGKILL
        child.wait().unwrap();
        killed_mid_way += usize::from(!finished);
        let node = Local::open(&Home::at(&home)).unwrap();
        let report = node.verify(&|_| {}).unwrap();
        assert!(report.is_ok(), "round {round} (killed after {delay_ms} ms): {report:?}");
        // The catalog is whole: every release in it exports.
        let catalog = node.own_catalog().unwrap().unwrap();
        for r in &catalog.catalog().releases {
            node.export(&r.id().to_string(), &dir.path().join(format!("x{round}"))).unwrap();
        }
    }
    assert!(killed_mid_way >= 3, "only {killed_mid_way} runs were killed mid-publish; make the album larger");
}

#[test]
fn an_acknowledged_publish_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    assert!(busker(&home, &["init", "--artist", "Ack Test"]).status.success());
    let src = dir.path().join("album");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.wav"), noise_wav(7, 3.0)).unwrap();
    let mut child = spawn_publish(&home, &src, false);
    let mut release = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(id) = line.unwrap().strip_prefix("release ") {
            release = Some(id.to_string());
            child.kill().unwrap_or(()); // the instant it acknowledged
            break;
        }
    }
    child.wait().unwrap();
    let id = release.expect("publish printed its release id");
    let node = Local::open(&Home::at(&home)).unwrap();
    let catalog = node.own_catalog().unwrap().unwrap();
    assert!(catalog.catalog().releases.iter().any(|r| r.id().to_string() == id));
    assert!(node.verify(&|_| {}).unwrap().is_ok());
}
