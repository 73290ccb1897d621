//! Publishing real audio, exporting it byte-identical, verifying, and refusing bad files.

use std::collections::HashMap;

use busker::catalog::publish::{PublishError, PublishOptions};

use crate::common::{album, artist_node, busker, fixtures, noise_wav, options, snapshot};

const ALL: &[&str] =
    &["01-sunrise.flac", "02-tidewater.mp3", "03-lanterns.ogg", "04-harbour.m4a", "05-ember.m4a", "vbr-noxing.mp3"];

#[derive(serde::Deserialize)]
struct Fixture {
    file: String,
    title: Option<String>,
    track: Option<u32>,
    duration_secs: f64,
    sample_rate: u32,
    channels: u16,
    codec: String,
}

#[derive(serde::Deserialize)]
struct Fixtures {
    fixtures: Vec<Fixture>,
}

fn expected() -> HashMap<String, Fixture> {
    let text = std::fs::read_to_string(fixtures().join("fixtures.json")).unwrap();
    let f: Fixtures = serde_json::from_str(&text).unwrap();
    f.fixtures.into_iter().map(|f| (f.file.clone(), f)).collect()
}

#[test]
fn publish_then_export_is_byte_identical_for_every_format() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", ALL);
    std::fs::write(src.join("07-synth.wav"), busker::synth::song_wav(3, 3.0)).unwrap();
    let report = node.publish(&src, &options(), &|_| {}).unwrap();
    assert_eq!(report.release.tracks.len(), ALL.len() + 1);
    let out = dir.path().join("out");
    let files = node.export(&report.release_id.to_string()[..10], &out).unwrap();
    assert_eq!(files.len(), ALL.len() + 1);
    for f in &files {
        let name = f.file_name().unwrap();
        assert_eq!(std::fs::read(f).unwrap(), std::fs::read(src.join(name)).unwrap(), "{name:?} differs");
    }
    // A single track exports by its own id too.
    let wav = report.release.tracks.iter().find(|t| t.codec.starts_with("pcm")).unwrap();
    let one = node.export(&wav.id.to_string(), &dir.path().join("one")).unwrap();
    assert_eq!(std::fs::read(&one[0]).unwrap(), std::fs::read(src.join("07-synth.wav")).unwrap());
}

#[test]
fn tags_and_stream_give_titles_positions_and_exact_durations() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", ALL);
    let report = node.publish(&src, &options(), &|_| {}).unwrap();
    let want = expected();
    assert_eq!(report.release.title, "Localhost Sessions", "album tag becomes the release title");
    for t in &report.release.tracks {
        let f = &want[&t.file_name];
        let got = t.duration_ms as f64 / 1000.0;
        assert!((got - f.duration_secs).abs() < 0.1, "{}: duration {got} s, expected {} s", f.file, f.duration_secs);
        assert_eq!(t.sample_rate, f.sample_rate, "{}", f.file);
        assert_eq!(t.channels, f.channels, "{}", f.file);
        assert_eq!(t.codec, f.codec, "{}", f.file);
        if let Some(title) = &f.title {
            assert_eq!(&t.title, title);
        }
        if let Some(n) = f.track {
            assert_eq!(t.position, n, "{} position from its track-number tag", f.file);
        }
        assert!(t.bit_rate > 8_000, "{}: bit rate {}", f.file, t.bit_rate);
    }
}

#[test]
fn publishing_the_same_files_again_adds_no_data() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac", "02-tidewater.mp3"]);
    let first = node.publish(&src, &options(), &|_| {}).unwrap();
    assert!(first.new_chunks > 0);
    let before = snapshot(node.home.root());
    let again = node.publish(&src, &options(), &|_| {}).unwrap();
    assert!(again.already_published);
    assert_eq!((again.new_chunks, again.new_bytes, again.seq), (0, 0, first.seq));
    assert_eq!(snapshot(node.home.root()), before);
    // The same audio under another title: a new release, but not one new chunk.
    let mut o = options();
    o.title = Some("Deluxe".into());
    let deluxe = node.publish(&src, &o, &|_| {}).unwrap();
    assert_ne!(deluxe.release_id, first.release_id);
    assert_eq!((deluxe.new_chunks, deluxe.seq), (0, first.seq + 1));
}

#[test]
fn verify_names_a_flipped_chunk() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac", "03-lanterns.ogg"]);
    let report = node.publish(&src, &PublishOptions { copy: true, ..options() }, &|_| {}).unwrap();
    let home = node.home.clone();
    let manifest = node.store.manifest(&report.release.tracks[0].id).unwrap().unwrap();
    let victim = manifest.chunks[1];
    busker::demo::corrupt_chunk(&node.store, &victim).unwrap();
    drop(node);
    let bad = busker(home.root(), &["verify"]);
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(stdout.contains(&format!("CORRUPT chunk {victim}")), "{stdout}");
    assert_eq!(stdout.matches("CORRUPT").count(), 1, "{stdout}");
    // Export refuses to write the damaged track.
    let out = busker(
        home.root(),
        &["export", &report.release.tracks[0].id.to_string(), dir.path().join("x").to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("chunk {victim} is corrupt")));
}

#[test]
fn bad_files_are_named_and_leave_the_store_unchanged() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac", "02-tidewater.mp3", "03-lanterns.ogg"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("notes.mp3", b"these are my liner notes, not audio".to_vec()),
        ("cut.flac", cut(&src.join("01-sunrise.flac"), 0.6)),
        ("cut.mp3", cut(&src.join("02-tidewater.mp3"), 0.5)),
        ("cut.ogg", cut(&src.join("03-lanterns.ogg"), 0.7)),
        ("cut.wav", noise_wav(1, 2.0)[..100_000].to_vec()),
        ("empty.wav", Vec::new()),
    ];
    let before_catalog = node.own_catalog().unwrap().unwrap().seq();
    for (name, bytes) in &cases {
        let bad_dir = dir.path().join(format!("bad-{name}"));
        std::fs::create_dir_all(&bad_dir).unwrap();
        std::fs::copy(src.join("01-sunrise.flac"), bad_dir.join("01-sunrise.flac")).unwrap();
        std::fs::write(bad_dir.join(name), bytes).unwrap();
        let before = snapshot(node.home.root());
        let err = node.publish(&bad_dir, &options(), &|_| {}).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, busker::Error::Publish(PublishError::BadFiles(ref v)) if v.len() == 1), "{name}: {msg}");
        assert!(msg.contains(name) && !msg.contains('\n'), "{name}: error must be one line naming the file: {msg}");
        assert_eq!(snapshot(node.home.root()), before, "{name}: store changed");
        assert_eq!(node.own_catalog().unwrap().unwrap().seq(), before_catalog);
    }
    // With --skip-bad the good file is published and the bad one listed.
    let mut o = options();
    o.skip_bad = true;
    let r = node.publish(&dir.path().join("bad-notes.mp3"), &o, &|_| {}).unwrap();
    assert_eq!(r.release.tracks.len(), 1);
    assert_eq!(r.skipped.len(), 1);
}

#[test]
fn cli_publish_exits_non_zero_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    assert!(busker(&home, &["init", "--artist", "CLI Artist"]).status.success());
    let src = album(dir.path(), "album", &["03-lanterns.ogg"]);
    std::fs::write(src.join("broken.flac"), b"fLaC but not really").unwrap();
    let out = busker(&home, &["publish", src.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.flac") && err.lines().count() == 1, "{err}");
    let ok = busker(&home, &["publish", src.to_str().unwrap(), "--skip-bad", "--license", "cc-by-nc-4.0"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let cat = busker(&home, &["catalog", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&cat.stdout).unwrap();
    assert_eq!(v["releases"][0]["licence"]["id"], "CC-BY-NC-4.0");
    assert_eq!(v["releases"][0]["licence"]["uses"]["commercial"], false);
    assert_eq!(v["releases"][0]["tracks"][0]["title"], "Lanterns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let report = busker::demo::run(dir.path(), &mut |l| lines.push(l.to_string())).await.unwrap();
    assert_eq!(report.tracks, 6);
    assert_eq!(report.identical, 6);
    assert!(lines.iter().any(|l| l.contains("forged catalog rejected")));
}

fn cut(path: &std::path::Path, keep: f64) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    b[..(b.len() as f64 * keep) as usize].to_vec()
}

#[test]
fn publishing_again_repairs_a_lost_or_damaged_chunk() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac"]);
    let copy = PublishOptions { copy: true, ..options() };
    let report = node.publish(&src, &copy, &|_| {}).unwrap();
    let chunks = node.store.manifest(&report.release.tracks[0].id).unwrap().unwrap().chunks;
    let hex = chunks[1].to_string();
    let file = node.home.store_dir().join("chunks").join(&hex[..2]).join(&hex);
    std::fs::write(&file, b"").unwrap(); // what a power cut can leave behind
    let v = node.verify(&|_| {}).unwrap();
    assert_eq!(v.corrupt, vec![chunks[1]]);
    let again = node.publish(&src, &copy, &|_| {}).unwrap();
    assert!(again.already_published);
    assert_eq!(again.new_chunks, 1, "exactly the damaged chunk is rewritten");
    assert!(node.verify(&|_| {}).unwrap().is_ok());
}
