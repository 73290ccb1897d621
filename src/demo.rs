//! `busker demo`: the guided tour a newcomer runs first.
//!
//! Three real nodes on 127.0.0.1 (an artist and two fans) do the whole journey: the artist
//! publishes a short album of real audio (project-made FLAC, MP3, Ogg Vorbis, AAC and ALAC
//! fixtures plus a freshly synthesised WAV); the signed announcement reaches the fans by
//! gossip; a fan searches; both fans fetch at once, each from the artist and the other fan,
//! and export byte-identical files; every store verifies; re-publishing adds nothing; and
//! tampering is caught; the fans' plays and tips settle key to key with the artist's node,
//! and the artist reads an anonymous usage report. Every claim it prints is checked, so the
//! demo doubles as an end-to-end test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::catalog::ids::Pseudonym;
use crate::catalog::model::Split;
use crate::catalog::publish::PublishOptions;
use crate::catalog::{ArtistKey, ContentId, Licence, SignedCatalog, Splits};
use crate::config::Home;
use crate::ledger::Money;
use crate::local::Local;
use crate::node::{Event, Node, Via};
use crate::player::{Decoder, MemorySink, PlayOptions, WavSink};
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

/// Runs the tour in `root` (which should be empty), narrating through `say`: an artist node
/// and two fan nodes on 127.0.0.1, mDNS off, so no packet leaves the machine.
pub async fn run(root: &Path, say: &mut dyn FnMut(&str)) -> Result<DemoReport> {
    say("Step 1/11  Start three nodes on 127.0.0.1: an artist and two fans, each with its own keys and store.");
    let artist = start(root, "artist", Some(DEMO_ARTIST)).await?;
    let ada = start(root, "fan-ada", None).await?;
    let bo = start(root, "fan-bo", None).await?;
    let artist_key = artist.local().identity.artist_key().ok_or(crate::identity::IdentityError::NoArtistKey)?;
    say(&format!("          artist  {}  (artist key {}…)", artist.peer_id(), &artist_key.to_string()[..16]));
    say(&format!("          ada     {}", ada.peer_id()));
    say(&format!("          bo      {}", bo.peer_id()));

    say("Step 2/11  Connect: ada dials the artist; bo dials the artist and ada. Wait for the gossip mesh.");
    let artist_addr = artist.wait_listening(STEP_TIMEOUT).await?;
    let ada_addr = ada.wait_listening(STEP_TIMEOUT).await?;
    within("ada dialling the artist", ada.dial(&artist_addr)).await??;
    within("bo dialling the artist", bo.dial(&artist_addr)).await??;
    within("bo dialling ada", bo.dial(&ada_addr)).await??;
    for (name, node) in [("ada", &ada), ("bo", &bo)] {
        let n = within("the gossip mesh", gossip_mesh(node)).await??;
        say(&format!("          {name}: {n} gossip peer(s)"));
    }

    say(
        "Step 3/11  The artist publishes an album of real audio: project-made FLAC, MP3, Ogg, AAC, ALAC and a synthesised WAV.",
    );
    let album = root.join("album");
    let files = write_album(&album)?;
    let (mut ada_events, mut bo_events) = (ada.subscribe(), bo.subscribe());
    let opts = PublishOptions {
        title: Some("Localhost Sessions".into()),
        date: Some("2026-11-21".into()),
        licence: Licence::known("CC-BY-NC-4.0").ok_or(crate::catalog::CatalogError::BadField("licence".into()))?,
        splits: Some(Splits {
            recipients: vec![Split { key: artist_key, bps: 7_000 }, Split { key: bandmate(), bps: 3_000 }],
            referral_bps: 500,
        }),
        skip_bad: false,
        copy: false,
    };
    let started = Instant::now();
    let report = artist.publish(&album, opts.clone()).await?;
    say(&format!(
        "          release {}  ({} tracks, catalog v{}, {} chunks served in place from the files, {:.0} ms)",
        report.release_id.short(),
        report.release.tracks.len(),
        report.seq,
        report.new_chunks,
        started.elapsed().as_secs_f64() * 1e3
    ));
    for t in &report.release.tracks {
        say(&format!(
            "          {:>2}. {:<14} {:>5.1} s  {:<9} {} Hz  {}",
            t.position,
            t.title,
            t.duration_ms as f64 / 1e3,
            t.codec,
            t.sample_rate,
            t.id.short()
        ));
    }
    check(report.release.tracks.len() == files.len(), "every file became a track")?;

    say("Step 4/11  Discovery: the signed announcement reaches both fans by gossip; each verifies it and the catalog.");
    for (name, rx) in [("ada", &mut ada_events), ("bo", &mut bo_events)] {
        let via = within("the announcement", catalog_update(rx, report.seq)).await??;
        say(&format!("          {name} stored catalog v{} of {DEMO_ARTIST} (via {via:?})", report.seq));
    }
    let hits = ada.search("tidewater")?;
    say(&format!(
        "          ada searches \"tidewater\": {}",
        hits.first().map(ToString::to_string).unwrap_or_default()
    ));
    check(hits.len() == 1, "search finds the track")?;

    play_while_streaming(root, &ada, &report.release, &album, &bo_towards(&artist, &bo)?, say).await?;

    say("Step 6/11  ada and bo fetch the release at the same time: every chunk verified, from every peer that has it.");
    let rid = report.release_id.to_string();
    let fetch = |node: &Node, out: PathBuf| {
        let (node, rid) = (node.clone(), rid.clone());
        tokio::spawn(async move { node.get(&rid, &out).await })
    };
    let (ada_get, bo_get) = (fetch(&ada, root.join("ada-out")), fetch(&bo, root.join("bo-out")));
    let joined = |r: std::result::Result<Result<_>, tokio::task::JoinError>| r.map_err(|_| Error::NodeStopped)?;
    let (ada_report, ada_files) = joined(within("ada's fetch", ada_get).await?)?;
    let (bo_report, bo_files) = joined(within("bo's fetch", bo_get).await?)?;
    let name = |p: &str| {
        if p == artist.peer_id() {
            "the artist"
        } else if p == ada.peer_id() {
            "ada"
        } else {
            "bo"
        }
    };
    for (who, r) in [("ada", &ada_report), ("bo", &bo_report)] {
        let from: Vec<String> = r.per_peer.iter().map(|(p, n)| format!("{n} from {}", name(p))).collect();
        say(&format!("          {who:<4} {} chunks: {}", r.fetched_chunks, from.join(", ")));
    }
    say(
        "          (a node that just sent a chunk to one fan lets that fan pass it on: the artist uploads about one copy)",
    );

    say("Step 7/11  Export: both fans' files are byte-identical to the artist's originals.");
    let identical = same_files(&album, &ada_files)?;
    check(same_files(&album, &bo_files)? == files.len() && identical == files.len(), "fans' files are byte-identical")?;
    say(&format!("          ada {identical} files, bo {} files: all byte-identical", bo_files.len()));

    say("Step 8/11  Verify every store, and publish the same files again: identical content is stored once.");
    for (name, node) in [("artist", &artist), ("ada", &ada), ("bo", &bo)] {
        let v = node.local().verify(&|_| {})?;
        say(&format!(
            "          {name:<6} {} chunks re-hashed: {}",
            v.chunks_checked,
            if v.is_ok() { "all intact" } else { "PROBLEMS" }
        ));
        check(v.is_ok(), "stores verify")?;
    }
    let again = artist.publish(&album, opts).await?;
    say(&format!(
        "          re-publish: {} new chunks, already published: {}",
        again.new_chunks, again.already_published
    ));
    check(again.new_chunks == 0 && again.already_published, "re-publishing adds no data")?;

    say("Step 9/11  Tamper: flip one byte of the signed catalog, then one byte of a chunk in bo's store.");
    let signed = own_catalog(&artist)?;
    let mut forged = signed.bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    match SignedCatalog::verify(&forged) {
        Err(e) => say(&format!("          forged catalog rejected: {e}")),
        Ok(_) => check(false, "a forged catalog is rejected")?,
    }
    let victim = report.release.tracks[0].id;
    let store = &bo.local().store;
    let chunk = store.manifest(&victim)?.and_then(|m| m.chunks.first().copied());
    let chunk = chunk.ok_or(crate::catalog::StoreError::NotFound(victim.to_string()))?;
    corrupt_chunk(store, &chunk)?;
    let v = bo.local().verify(&|_| {})?;
    let names: Vec<String> = v.corrupt.iter().map(ContentId::short).collect();
    say(&format!("          bo's verify reports corrupt chunk(s): {}", names.join(", ")));
    check(v.corrupt == vec![chunk], "verify names the damaged chunk")?;
    // Playing the damaged track repairs it: the bad chunk is never decoded, it is dropped and
    // fetched again from a peer, and the store verifies clean afterwards.
    let items = bo.resolve(&victim.to_string())?;
    let player = bo.play(items, Box::new(MemorySink::new()), PlayOptions::default())?;
    let played = tokio::task::spawn_blocking(move || player.wait()).await.map_err(|_| Error::NodeStopped)??;
    check(played.tracks.iter().all(|t| t.error.is_none()), "the damaged track plays")?;
    let v = bo.local().verify(&|_| {})?;
    check(v.is_ok(), "bo's store verifies after the repair")?;
    say("          bo plays that track: the damaged chunk is fetched again from a peer; verify is clean again");

    listen_tip_and_settle(&artist, &ada, &bo, &report.release, say).await?;

    for node in [&artist, &ada, &bo] {
        node.shutdown().await;
    }
    say("Done. Every step above was checked, not just printed.");
    Ok(DemoReport {
        release_id: report.release_id,
        tracks: report.release.tracks.len(),
        identical,
        root: root.to_path_buf(),
    })
}

/// bo's pseudonym towards the artist.
fn bo_towards(artist: &Node, bo: &Node) -> Result<Pseudonym> {
    let key = artist.local().identity.artist_key().ok_or(crate::identity::IdentityError::NoArtistKey)?;
    Ok(Pseudonym(bo.local().identity.pseudonym_for(&key).verifying_key().to_bytes()))
}

/// Step 5: ada plays the release while it streams, into a WAV file.
async fn play_while_streaming(
    root: &Path,
    ada: &Node,
    release: &crate::catalog::Release,
    album: &Path,
    via_bo: &Pseudonym,
    say: &mut dyn FnMut(&str),
) -> Result<()> {
    say("Step 5/11  ada presses play on the release before holding a byte of it: the player streams each track in");
    say("          playing order from the artist, verifies every chunk, and decodes as the bytes arrive.");
    let mut items = ada.resolve(&release.id().to_string())?;
    check(items.iter().all(|i| !ada.local().store.is_complete(&i.id).unwrap_or(true)), "ada holds none of it yet")?;
    // bo passed the second track on to ada: that play credits bo's pseudonym.
    if let Some(second) = items.get_mut(1) {
        second.via = Some(*via_bo);
    }
    let wav = root.join("ada-release.wav");
    let sink = WavSink::create(&wav).map_err(crate::player::PlayError::from)?;
    let player = ada.play(items, Box::new(sink), PlayOptions::default())?;
    let status = tokio::task::spawn_blocking(move || player.wait()).await.map_err(|_| Error::NodeStopped)??;
    say(&format!(
        "          first audio after {:.0} ms; {} tracks played back to back (gapless) into {}",
        status.ttfa_ms.unwrap_or(f64::NAN),
        status.tracks.len(),
        wav.display()
    ));
    for t in &status.tracks {
        let counted = if t.counted { "  (a play that counts, in ada's ledger)" } else { "" };
        say(&format!("          {:<16} {:>4.1} s{counted}", t.title, t.played_ms as f64 / 1000.0));
    }
    check(status.tracks.iter().all(|t| t.error.is_none() && t.counted), "every track played to the end")?;
    // The WAV holds exactly the originals' audio: decode them here and compare lengths.
    let mut samples = 0u64;
    for t in &release.tracks {
        let path = album.join(&t.file_name);
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let ext = path.extension().map(|e| e.to_string_lossy().to_string());
        let mut d = Decoder::open(Box::new(file), ext.as_deref())?;
        while let Some((_, s)) = d.next_samples()? {
            samples += s.len() as u64;
        }
    }
    let len = std::fs::metadata(&wav).map_err(io(&wav))?.len();
    check(len == 44 + samples * 2, "the WAV holds every sample of every original")?;
    Ok(())
}

/// The demo's second split recipient.
fn bandmate() -> ArtistKey {
    let key = ed25519_dalek::SigningKey::from_bytes(blake3::hash(b"busker demo bandmate").as_bytes());
    ArtistKey(key.verifying_key().to_bytes())
}

async fn listen_tip_and_settle(
    artist: &Node,
    ada: &Node,
    bo: &Node,
    release: &crate::catalog::Release,
    say: &mut dyn FnMut(&str),
) -> Result<()> {
    say("Step 10/11 Plays and tips go into each fan's signed ledger, then settle key to key with the artist's node.");
    let key = artist.local().identity.artist_key().ok_or(crate::identity::IdentityError::NoArtistKey)?;
    let bo_towards_artist = bo_towards(artist, bo)?;
    // bo plays the second track from its own store: a cache hit, no network.
    let first = bo.resolve(&release.tracks[1].id.to_string())?;
    let player = bo.play(first, Box::new(MemorySink::new()), PlayOptions::default())?;
    let played = tokio::task::spawn_blocking(move || player.wait()).await.map_err(|_| Error::NodeStopped)??;
    check(played.tracks.iter().all(|t| t.counted), "bo's play counts")?;
    let (_, tip) = ada.local().tip(DEMO_ARTIST, Money { minor: 300, unit: "USD".into() })?;
    bo.local().tip(DEMO_ARTIST, Money { minor: 150, unit: "USD".into() })?;
    say(&format!(
        "          ada: the {} plays of step 5 and a tip of 300 USD (entry {}); bo: 2 plays from its own store and 150 USD",
        release.tracks.len(),
        tip.seq
    ));
    for (name, fan) in [("ada", ada), ("bo", bo)] {
        let r = within("settlement", fan.settle()).await??;
        check(r.settled.len() == 1 && r.pending.is_empty(), "the artist's node countersigned the settlement")?;
        let s = fan.local().ledger.settled(&key)?.ok_or(crate::ledger::LedgerError::Refused("no receipt".into()))?;
        say(&format!(
            "          {name:<4} settlement {} countersigned as pseudonym {}… (master key stays home)",
            s.receipt.n,
            &s.doc.terms.fan.to_string()[..12]
        ));
        check(s.doc.terms.fan.0 != fan.local().identity.fan_public(), "the artist sees a pseudonym")?;
        check(fan.local().ledger.verify()? >= 4, "the fan's ledger verifies")?;
    }

    say("Step 11/11 The artist's anonymous report: why tracks were played, never who played them.");
    let r = artist.local().ledger.report(Some(own_catalog(artist)?.catalog()))?;
    for row in &r.plays {
        say(&format!(
            "          {}  {:<14} {} play(s), {} listener(s)",
            row.date,
            row.title.clone().unwrap_or_default(),
            row.plays,
            row.listeners
        ));
    }
    let usd = r.tips.iter().find(|u| u.unit == "USD");
    let total = usd.map_or(0, |u| u.total);
    let owed: Vec<String> = usd
        .map(|u| u.recipients.iter().map(|(k, v)| format!("{v} to {}…", &k.to_string()[..8])).collect())
        .unwrap_or_default();
    let referral: u64 = usd.map_or(0, |u| u.referral.iter().map(|(_, v)| v).sum());
    say(&format!(
        "          {} listeners, {} pass credited to bo; tips {total} USD: {}, {referral} referral to bo",
        r.listeners,
        r.passes.len(),
        owed.join(", ")
    ));
    check(r.listeners == 2 && r.receipts == 2 && total == 450, "the report adds up")?;
    // ada's plays of every track, bo's play of the repaired track, and bo's cache-hit play.
    let expected = release.tracks.len() as u64 + 2;
    check(r.plays.iter().map(|p| p.plays).sum::<u64>() == expected, "every play is counted once")?;
    check(r.passes == vec![(bo_towards_artist, 1)], "the pass is credited to bo's pseudonym")?;
    Ok(())
}

fn own_catalog(node: &Node) -> Result<SignedCatalog> {
    node.local().own_catalog()?.ok_or(crate::catalog::StoreError::NotFound("own catalog".into()).into())
}

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, f).await.map_err(|_| Error::Io {
        path: PathBuf::from("demo"),
        source: std::io::Error::other(format!("timed out waiting for {what}")),
    })
}

async fn start(root: &Path, name: &str, artist: Option<&str>) -> Result<Node> {
    let (local, _) = Local::init(&Home::at(root.join(name)), artist)?;
    Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await
}

async fn gossip_mesh(node: &Node) -> Result<usize> {
    loop {
        let n = node.status().await?.gossip_peers;
        if n > 0 {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn catalog_update(rx: &mut tokio::sync::broadcast::Receiver<Event>, seq: u64) -> Result<Via> {
    loop {
        match rx.recv().await {
            Ok(Event::CatalogUpdated { seq: s, via, .. }) if s == seq => return Ok(via),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return Err(Error::NodeStopped),
        }
    }
}

fn same_files(originals: &Path, exported: &[PathBuf]) -> Result<usize> {
    let mut n = 0;
    for e in exported {
        let Some(name) = e.file_name() else { continue };
        let original = std::fs::read(originals.join(name)).map_err(io(e))?;
        check(original == std::fs::read(e).map_err(io(e))?, "exported file is byte-identical")?;
        n += 1;
    }
    Ok(n)
}

/// Flips one byte in the middle of a stored chunk, on disk (for the demo and tests).
pub fn corrupt_chunk(store: &crate::catalog::Store, chunk: &ContentId) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let (path, range) = store.chunk_file(chunk)?.ok_or(crate::catalog::StoreError::MissingChunk(*chunk))?;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io(&path))?;
    let mid = range.start + (range.end - range.start) / 2;
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, mid).map_err(io(&path))?;
    f.write_all_at(&[byte[0] ^ 0x40], mid).map_err(io(&path))
}
