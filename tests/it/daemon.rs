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
