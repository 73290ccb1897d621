//! `busker demo`: the guided tour a newcomer runs first.
//!
//! It builds a temporary artist node, makes a short album of real audio (project-made
//! fixtures in FLAC, MP3, Ogg Vorbis, AAC and ALAC, plus a freshly synthesised WAV), publishes
//! it, shows the signed catalog, proves that re-publishing adds nothing, verifies and exports
//! byte-identical copies, and shows that tampering is caught. Every claim it prints is checked;
//! a failed check is an error, so the demo doubles as an end-to-end test.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::catalog::publish::PublishOptions;
use crate::catalog::{ContentId, Licence, SignedCatalog};
use crate::config::Home;
use crate::local::Local;
use crate::{Error, Result};

/// The demo album's artist.
pub const DEMO_ARTIST: &str = "The Loopback Trio";

const FIXTURES: &[(&str, &[u8])] = &[
    ("01-sunrise.flac", include_bytes!("../tests/fixtures/01-sunrise.flac")),
    ("02-tidewater.mp3", include_bytes!("../tests/fixtures/02-tidewater.mp3")),
    ("03-lanterns.ogg", include_bytes!("../tests/fixtures/03-lanterns.ogg")),
    ("04-harbour.m4a", include_bytes!("../tests/fixtures/04-harbour.m4a")),
    ("05-ember.m4a", include_bytes!("../tests/fixtures/05-ember.m4a")),
];

/// What the demo established.
#[derive(Debug)]
pub struct DemoReport {
    /// The published release.
    pub release_id: ContentId,
    /// Tracks published.
    pub tracks: usize,
    /// Files exported and found byte-identical.
    pub identical: usize,
    /// Where the demo's data lives (deleted unless kept).
    pub root: PathBuf,
}

/// A failed demo check.
fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Io {
            path: PathBuf::from("demo"),
            source: std::io::Error::other(format!("demo check failed: {what}")),
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Writes the demo album into `dir`: five fixtures and one synthesised WAV track.
pub fn write_album(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    for (name, bytes) in FIXTURES {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(io(&p))?;
        files.push(p);
    }
    let p = dir.join("06-synthesised.wav");
    std::fs::write(&p, crate::synth::song_wav(6, 4.0)).map_err(io(&p))?;
    files.push(p);
    Ok(files)
}

/// Runs the tour in `root` (which should be empty), narrating through `say`.
pub fn run(root: &Path, say: &mut dyn FnMut(&str)) -> Result<DemoReport> {
    let home = Home::at(root.join("artist-node"));
    say("Step 1/7  Create an artist node: a data directory with ed25519 keys (files mode 0600).");
    let (node, init) = Local::init(&home, Some(DEMO_ARTIST))?;
    let artist = node.identity.artist_key().ok_or(crate::identity::IdentityError::NoArtistKey)?;
    say(&format!("          data dir   {}", init.home.display()));
    say(&format!("          artist key {artist}"));
    say(&format!("          peer id    {}", crate::net::peer_id(&node.identity)));

    say("Step 2/7  Make an album of real audio: project-made FLAC, MP3, Ogg, AAC, ALAC and a synthesised WAV.");
    let album = root.join("album");
    let files = write_album(&album)?;
    for f in &files {
        let size = std::fs::metadata(f).map_err(io(f))?.len();
        say(&format!("          {:<22} {:>8} bytes", f.file_name().unwrap_or_default().to_string_lossy(), size));
    }

    say("Step 3/7  Publish: check every file decodes, cut it into BLAKE3-named chunks, sign a new catalog.");
    let opts = PublishOptions {
        title: Some("Localhost Sessions".into()),
        date: Some("2026-11-21".into()),
        licence: Licence::known("CC-BY-NC-4.0").ok_or(crate::catalog::CatalogError::BadField("licence".into()))?,
        splits: None,
        skip_bad: false,
    };
    let started = Instant::now();
    let report = node.publish(&album, &opts, &|_| {})?;
    let took = started.elapsed();
    say(&format!(
        "          release {}  ({} tracks, catalog version {}, {} chunks, {:.0} ms)",
        report.release_id,
        report.release.tracks.len(),
        report.seq,
        report.new_chunks,
        took.as_secs_f64() * 1e3
    ));
    for t in &report.release.tracks {
        say(&format!(
            "          {:>2}. {:<14} {:>5.1} s  {:<6} {} Hz  {}",
            t.position,
            t.title,
            t.duration_ms as f64 / 1e3,
            t.codec,
            t.sample_rate,
            t.id.short()
        ));
    }
    check(report.release.tracks.len() == files.len(), "every file became a track")?;

    say("Step 4/7  Publish the same files again: identical content is stored once.");
    let again = node.publish(&album, &opts, &|_| {})?;
    say(&format!("          new chunks written: {}; already published: {}", again.new_chunks, again.already_published));
    check(again.new_chunks == 0 && again.already_published, "re-publishing adds no data")?;

    say("Step 5/7  Verify: re-hash every stored chunk and re-check the catalog signature.");
    let v = node.verify(&|_| {})?;
    say(&format!(
        "          {} chunks, {} bytes re-hashed: {}",
        v.chunks_checked,
        v.bytes_checked,
        if v.is_ok() { "all intact" } else { "PROBLEMS" }
    ));
    check(v.is_ok(), "fresh store verifies")?;

    say("Step 6/7  Export: write the original files back out of the chunk store.");
    let out = root.join("exported");
    let exported = node.export(&report.release_id.to_string(), &out)?;
    let mut identical = 0;
    for e in &exported {
        let Some(name) = e.file_name() else { continue };
        let original = std::fs::read(album.join(name)).map_err(io(e))?;
        let copy = std::fs::read(e).map_err(io(e))?;
        check(original == copy, "exported file is byte-identical")?;
        identical += 1;
    }
    say(&format!("          {identical} files written to {}, each byte-identical to its original", out.display()));

    say("Step 7/7  Tamper: flip one byte of the signed catalog, then one byte of a stored chunk.");
    let signed = node.own_catalog()?.ok_or(crate::catalog::StoreError::NotFound("own catalog".into()))?;
    let mut forged = signed.bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    match SignedCatalog::verify(&forged) {
        Err(e) => say(&format!("          forged catalog rejected: {e}")),
        Ok(_) => check(false, "a forged catalog is rejected")?,
    }
    let victim = report.release.tracks[0].id;
    let chunk = node
        .store
        .manifest(&victim)?
        .and_then(|m| m.chunks.first().copied())
        .ok_or(crate::catalog::StoreError::NotFound(victim.to_string()))?;
    corrupt_chunk_file(&home, &chunk)?;
    let v = node.verify(&|_| {})?;
    say(&format!(
        "          verify now reports corrupt chunk(s): {}",
        v.corrupt.iter().map(ContentId::short).collect::<Vec<_>>().join(", ")
    ));
    check(v.corrupt == vec![chunk], "verify names the damaged chunk")?;

    say("Done. Everything above was checked, not just printed.");
    Ok(DemoReport {
        release_id: report.release_id,
        tracks: report.release.tracks.len(),
        identical,
        root: root.to_path_buf(),
    })
}

/// Flips one byte in the middle of a stored chunk file (for the demo and tests).
pub fn corrupt_chunk_file(home: &Home, chunk: &ContentId) -> Result<()> {
    let hex = chunk.to_string();
    let path = home.store_dir().join("chunks").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).map_err(io(&path))?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).map_err(io(&path))
}
