//! The CLI against real daemons: publish, search, get, peers, status and stop go through the
//! control API; a wrong token and a missing daemon give clear errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{album, busker};

/// Kills the daemon if the test fails before stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(home: &Path, extra: &[&str]) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_busker"))
        .arg("--data-dir")
        .arg(home)
        .args(["daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--api", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    Daemon(child)
}

/// Runs a CLI command until it succeeds (bounded), returning its stdout.
fn until_ok(home: &Path, args: &[&str], pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let out = busker(home, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && pred(&stdout) {
            return stdout;
        }
        let log = std::fs::read_to_string(home.with_extension("log")).unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{args:?} never succeeded: {}\ndaemon log:\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stderr_of(home: &Path, args: &[&str]) -> String {
    let out = busker(home, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn the_cli_drives_two_daemons_through_the_control_api() {
    let dir = tempfile::tempdir().unwrap();
    let (a, f) = (dir.path().join("artist"), dir.path().join("fan"));
    assert!(busker(&a, &["init", "--artist", "CLI Duo"]).status.success());
    assert!(busker(&f, &["init"]).status.success());
    assert!(stderr_of(&f, &["get", "abcd"]).contains("no daemon is running"));

    let _artist = daemon(&a, &[]);
    let status = until_ok(&a, &["status"], |_| true);
    let listen = status.lines().find_map(|l| l.strip_prefix("listening")).unwrap().trim().to_string();
    let src = album(dir.path(), "album", &["01-sunrise.flac", "02-tidewater.mp3"]);
    let published = until_ok(&a, &["publish", src.to_str().unwrap()], |_| true);
    let release = published.lines().find_map(|l| l.strip_prefix("release ")).unwrap().to_string();
    // Store commands go through the daemon too (it holds the database).
    assert!(until_ok(&a, &["catalog"], |_| true).contains("Sunrise"));
    assert!(until_ok(&a, &["verify"], |_| true).contains("store OK"));

    let _fan = daemon(&f, &["--bootstrap", &listen]);
    until_ok(&f, &["status"], |_| true);
    let hits = until_ok(&f, &["search", "tidewater"], |s| s.contains("Tidewater"));
    assert!(hits.contains("CLI Duo"), "{hits}");
    let out = dir.path().join("out");
    let got = until_ok(&f, &["get", &release, "-o", out.to_str().unwrap()], |_| true);
    let files: Vec<PathBuf> = got.lines().map(PathBuf::from).collect();
    assert_eq!(files.len(), 2);
    for file in &files {
        assert_eq!(std::fs::read(file).unwrap(), std::fs::read(src.join(file.file_name().unwrap())).unwrap());
    }
    assert!(until_ok(&f, &["peers"], |_| true).contains(&listen[listen.rfind('/').unwrap() + 1..]));
    // Machine-readable forms, for scripts.
    let artist_id: serde_json::Value = serde_json::from_str(&until_ok(&a, &["id", "--json"], |_| true)).unwrap();
    let peers: serde_json::Value = serde_json::from_str(&until_ok(&f, &["peers", "--json"], |_| true)).unwrap();
    assert!(peers.as_array().unwrap().iter().any(|p| p["peer"] == artist_id["peer_id"]), "{peers}");
    let status: serde_json::Value = serde_json::from_str(&until_ok(&f, &["status", "--json"], |_| true)).unwrap();
    assert!(status["chunks"].as_u64().unwrap() > 0, "{status}");

    // A token that does not match the running daemon's is refused with a clear error.
    let token = f.join("api.token");
    let good = std::fs::read_to_string(&token).unwrap();
    std::fs::write(&token, "0".repeat(64)).unwrap();
    assert!(stderr_of(&f, &["status"]).contains("rejected our API token"));
    std::fs::write(&token, good).unwrap();

    for home in [&a, &f] {
        until_ok(home, &["stop"], |_| true);
        let start = Instant::now();
        while !stderr_of(home, &["status"]).contains("no daemon is running") {
            assert!(start.elapsed() < Duration::from_secs(30), "daemon did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // With the daemons gone, the CLI opens the stores directly again.
    assert!(until_ok(&f, &["verify"], |_| true).contains("store OK"));
}

fn player_json(home: &Path) -> serde_json::Value {
    serde_json::from_str(&until_ok(home, &["player", "status", "--json"], |_| true)).unwrap()
}

/// Polls the daemon's player until `pred` holds (bounded).
fn player_until(home: &Path, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = player_json(home);
        if pred(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "player never got to {what}: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_plays_and_the_cli_controls_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, f) = (dir.path().join("artist"), dir.path().join("fan"));
    assert!(busker(&a, &["init", "--artist", "Live Band"]).status.success());
    assert!(busker(&f, &["init"]).status.success());
    assert!(stderr_of(&f, &["player", "pause"]).contains("no daemon is running"));
    let src = album(dir.path(), "album", &["02-tidewater.mp3"]);
    std::fs::write(src.join("01-long.wav"), busker::synth::song_wav(21, 30.0)).unwrap();
    assert!(busker(&a, &["publish", src.to_str().unwrap(), "--title", "Live"]).status.success());
    let _artist = daemon(&a, &[]);
    let status = until_ok(&a, &["status"], |_| true);
    let listen = status.lines().find_map(|l| l.strip_prefix("listening")).unwrap().trim().to_string();
    let _fan = daemon(&f, &["--bootstrap", &listen]);
    until_ok(&f, &["search", "live"], |s| s.contains("Live"));

    // Raw PCM through the daemon: every sample of the track, as s16le.
    let pcm = busker(&f, &["play", "tidewater", "--out", "-"]);
    assert!(pcm.status.success(), "{}", String::from_utf8_lossy(&pcm.stderr));
    let mp3 = src.join("02-tidewater.mp3");
    let mut d = busker::player::Decoder::open(Box::new(std::fs::File::open(&mp3).unwrap()), Some("mp3")).unwrap();
    let mut samples = 0;
    while let Some((_, s)) = d.next_samples().unwrap() {
        samples += s.len();
    }
    assert_eq!(pcm.stdout.len(), samples * 2);

    // A real-time play on the daemon, controlled from the CLI.
    let started = busker(&f, &["play", "long", "--out", "null", "--detach"]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let s = player_until(&f, "playing", |s| s["state"] == "playing");
    assert_eq!(s["now"]["item"]["title"], "01-long");
    assert!(s["ttfa_ms"].as_f64().unwrap() > 0.0);
    until_ok(&f, &["player", "pause"], |_| true);
    let paused = player_until(&f, "paused", |s| s["state"] == "paused")["now"]["position_ms"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let still = player_json(&f)["now"]["position_ms"].as_u64().unwrap();
    assert!(still <= paused + 250, "paused, yet the position moved from {paused} to {still}");
    until_ok(&f, &["player", "seek", "0:20"], |_| true);
    player_until(&f, "the seek", |s| s["now"]["position_ms"].as_u64().is_some_and(|p| p >= 19_500));
    let shown = until_ok(&f, &["player", "queue", "tidewater"], |_| true);
    assert!(shown.lines().any(|l| l.contains("1. Tidewater")), "{shown}");
    until_ok(&f, &["player", "next"], |_| true);
    player_until(&f, "the next track", |s| s["now"]["item"]["title"] == "Tidewater");
    until_ok(&f, &["player", "stop"], |_| true);
    let end = player_until(&f, "stopped", |s| s["state"] == "stopped");
    let tracks = end["tracks"].as_array().unwrap();
    assert_eq!(tracks[0]["title"], "01-long");
    // Seeking ahead is not listening: well under 15 s was heard, so the play does not count.
    assert!(tracks[0]["played_ms"].as_u64().unwrap() < 15_000, "{}", tracks[0]);
    assert_eq!(tracks[0]["counted"], false, "{}", tracks[0]);
    assert_eq!(end["stutters"], 0);
    assert!(stderr_of(&f, &["play", "no such words anywhere", "--out", "null"]).contains("nothing to play matches"));
    assert!(stderr_of(&f, &["play", "long", "--out", "song.mp3"]).contains("--out"));
    assert!(stderr_of(&f, &["play", "long", "--out", "null", "--start", "1:75"]).contains("bad position"));
}
