//! Playback from the swarm: PCM streamed from another node equals the local decode of the
//! original file, seeks land where asked, a peer that goes bad mid-track never produces
//! garbage audio, and broken files give clear errors. Real nodes on 127.0.0.1, real audio.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use busker::ledger::Body;
use busker::playback::FileTracks;
use busker::player::{Decoder, MemorySink, PlayError, PlayOptions, Player, QueueItem, Spec, Status};
use busker::{Event, Node};

use crate::common::{album, options};
use crate::hostile::evil_peer_sparing;
use crate::nodes::{addr, event, spawn, within};

/// Decodes a file on disk with the same decoder the player uses.
fn decode_file(path: &Path) -> (Spec, Vec<f32>) {
    let ext = path.extension().map(|e| e.to_string_lossy().to_string());
    let mut d = Decoder::open(Box::new(std::fs::File::open(path).unwrap()), ext.as_deref()).unwrap();
    let mut out = Vec::new();
    let mut spec = d.spec();
    while let Some((s, samples)) = d.next_samples().unwrap() {
        spec = s;
        out.extend_from_slice(samples);
    }
    (spec, out)
}

/// Plays `items` on `node` into memory; returns the final status (or the error) and the PCM.
async fn play(node: &Node, items: Vec<QueueItem>, opts: PlayOptions) -> (Result<Status, PlayError>, Vec<f32>) {
    let sink = MemorySink::new();
    let samples = sink.samples.clone();
    let player = node.play(items, Box::new(sink), opts).unwrap();
    let status = within("playback", tokio::task::spawn_blocking(move || player.wait())).await.unwrap();
    let pcm = samples.lock().unwrap().clone();
    (status, pcm)
}

fn plays_in_ledger(node: &Node) -> usize {
    node.local().ledger.entries(0).filter(|e| matches!(e.as_ref().unwrap().body, Body::Play { .. })).count()
}

/// An artist with a release of FLAC, MP3, Ogg Vorbis and WAV, and a fan that knows it.
async fn artist_and_fan(dir: &Path) -> (Node, Node, std::path::PathBuf, Vec<QueueItem>) {
    let artist = spawn(dir, "Streamer", true).await;
    let src = album(dir, "album", &["01-sunrise.flac", "02-tidewater.mp3", "03-lanterns.ogg"]);
    std::fs::write(src.join("04-song.wav"), busker::synth::song_wav(11, 6.0)).unwrap();
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let fan = spawn(dir, "fan", false).await;
    let mut events = fan.subscribe();
    within("dial", fan.dial(&addr(&artist).await)).await.unwrap();
    event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    let items = fan.resolve(&report.release_id.to_string()).unwrap();
    assert_eq!(items.len(), 4);
    (artist, fan, src, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_pcm_equals_the_local_decode_for_flac_mp3_vorbis_and_wav() {
    let dir = tempfile::tempdir().unwrap();
    let (artist, fan, src, items) = artist_and_fan(dir.path()).await;
    let files = ["01-sunrise.flac", "02-tidewater.mp3", "03-lanterns.ogg", "04-song.wav"];
    for (item, file) in items.iter().zip(files) {
        assert!(fan.local().store.manifest(&item.id).unwrap().is_none(), "{file} is not on the fan yet");
        let (status, pcm) = play(&fan, vec![item.clone()], PlayOptions::default()).await;
        let status = status.unwrap();
        let t = &status.tracks[0];
        assert!(t.error.is_none() && t.ttfa_ms.is_some(), "{file}: {t:?}");
        let (_, local) = decode_file(&src.join(file));
        assert!(local.len() > 44_100, "{file} decodes to real audio");
        assert_eq!(pcm.len(), local.len(), "{file}: sample count");
        assert!(pcm == local, "{file}: streamed PCM differs from the local decode");
        assert!(t.counted, "{file} played to the end counts");
    }
    assert_eq!(plays_in_ledger(&fan), 4, "each play that counted is in the fan's ledger");

    // Everything is cached now: with the artist gone, the release plays from the store alone.
    artist.shutdown().await;
    let (status, pcm) = play(&fan, items.clone(), PlayOptions::default()).await;
    assert!(status.unwrap().tracks.iter().all(|t| t.error.is_none()));
    let gapless: Vec<f32> = files.iter().flat_map(|f| decode_file(&src.join(f)).1).collect::<Vec<_>>();
    // The WAV is 44.1 kHz stereo like the rest, so the release plays into one output.
    assert_eq!(pcm.len(), gapless.len());
    assert!(pcm == gapless, "the release plays back to back, sample for sample");
}

/// Where `got` (a stretch of PCM after a seek) starts within `full`, in frames.
fn locate(full: &[f32], got: &[f32], channels: usize) -> Option<usize> {
    // Skip the first packet after the seek (a lossy decoder's state settles), then match.
    let probe = &got[4096 * channels..4096 * channels + 512 * channels];
    (0..full.len() / channels - 512)
        .find(|&f| full[f * channels..f * channels + probe.len()] == *probe)
        .map(|f| f - 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_lands_within_50_ms_of_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let (_artist, fan, src, items) = artist_and_fan(dir.path()).await;
    for (item, file, target_ms) in [(&items[3], "04-song.wav", 3_210u64), (&items[0], "01-sunrise.flac", 2_500)] {
        let opts = PlayOptions { start_ms: target_ms, limit_ms: Some(500), ..PlayOptions::default() };
        let (status, pcm) = play(&fan, vec![item.clone()], opts).await;
        assert!(status.unwrap().tracks[0].error.is_none());
        let (spec, local) = decode_file(&src.join(file));
        let ch = usize::from(spec.channels);
        let at = locate(&local, &pcm, ch).unwrap_or_else(|| panic!("{file}: seeked audio not found in the track"));
        let landed_ms = at as f64 * 1000.0 / f64::from(spec.rate);
        eprintln!("{file}: asked {target_ms} ms, landed at {landed_ms:.1} ms");
        assert!((landed_ms - target_ms as f64).abs() <= 50.0, "{file}: landed at {landed_ms} ms, asked {target_ms}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_goes_bad_mid_track_never_yields_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "Honest", true).await;
    let src = dir.path().join("album");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("01-long.wav"), busker::synth::song_wav(5, 8.0)).unwrap();
    std::fs::write(src.join("02-other.wav"), busker::synth::song_wav(6, 8.0)).unwrap();
    let report = within("publish", artist.publish(&src, options())).await.unwrap();
    let tracks: Vec<_> = artist.resolve(&report.release_id.to_string()).unwrap();
    // The liar serves the first two chunks of each track honestly, then flipped bytes.
    let mut spare = HashSet::new();
    for t in &tracks {
        let m = artist.local().store.manifest(&t.id).unwrap().unwrap();
        spare.extend(m.chunks.iter().take(2).copied());
    }
    let (evil, _orders, _) = evil_peer_sparing(artist.clone(), true, spare).await;

    // 1. The fan knows only the liar at first; the honest artist joins once it is banned.
    let fan = spawn(dir.path(), "fan", false).await;
    let mut events = fan.subscribe();
    within("dial evil", fan.dial(&evil)).await.unwrap();
    event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    let sink = MemorySink::new();
    let samples = sink.samples.clone();
    let player = fan.play(vec![tracks[0].clone()], Box::new(sink), PlayOptions::default()).unwrap();
    event(&mut events, "ban", |e| matches!(e, Event::PeerBanned { reason, .. } if reason.contains("BLAKE3"))).await;
    within("dial artist", fan.dial(&addr(&artist).await)).await.unwrap();
    let status = within("playback", tokio::task::spawn_blocking(move || player.wait())).await.unwrap().unwrap();
    assert!(status.tracks[0].error.is_none(), "{:?}", status.tracks[0]);
    let (_, local) = decode_file(&src.join("01-long.wav"));
    assert!(*samples.lock().unwrap() == local, "the track played correctly from the honest peer");

    // 2. A fan that only ever knows the liar: a clear error, and what it heard was correct.
    let lonely = spawn(dir.path(), "lonely", false).await;
    let mut events = lonely.subscribe();
    within("dial evil", lonely.dial(&evil)).await.unwrap();
    event(&mut events, "catalog", |e| matches!(e, Event::CatalogUpdated { seq: 2, .. })).await;
    let (status, pcm) = play(&lonely, vec![tracks[1].clone()], PlayOptions::default()).await;
    let err = status.expect_err("no honest peer: the play fails").to_string();
    eprintln!("with only the liar: {err}");
    assert!(err.contains("02-other") || err.contains("did not arrive") || err.contains("stalled"), "{err}");
    let (_, local) = decode_file(&src.join("02-other.wav"));
    assert!(pcm.len() < local.len(), "it stopped early");
    assert!(pcm[..] == local[..pcm.len()], "every sample it produced is the track's own");
}

#[test]
fn non_audio_and_truncated_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.mp3");
    std::fs::write(&junk, b"this is a text file pretending to be an mp3, and it goes on a bit".repeat(100)).unwrap();
    let wav = busker::synth::song_wav(3, 4.0);
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &wav[..wav.len() / 2]).unwrap();
    for (path, expect) in [(junk, "not decodable audio"), (cut, "truncated audio file")] {
        let mut files = FileTracks::default();
        let item = files.add(path.clone());
        let sink = MemorySink::new();
        let player = Player::start(Arc::new(files), Box::new(sink), vec![item], PlayOptions::default(), None).unwrap();
        let err = player.wait().expect_err("a broken file fails").to_string();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(err.contains(expect) && err.contains(&name), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn shuffle_plays_each_track_once_and_repeat_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = FileTracks::default();
    let mut items = Vec::new();
    for i in 0..5u64 {
        let p = dir.path().join(format!("t{i}.wav"));
        std::fs::write(&p, busker::synth::song_wav(40 + i, 0.5)).unwrap();
        items.push(files.add(p));
    }
    let files = Arc::new(files);
    let titles = |s: &Status| s.tracks.iter().map(|t| t.title.clone()).collect::<Vec<_>>();
    let opts = PlayOptions { shuffle: true, ..PlayOptions::default() };
    let shuffled = Player::start(files.clone(), Box::new(MemorySink::new()), items.clone(), opts, None).unwrap();
    let mut played = titles(&shuffled.wait().unwrap());
    played.sort();
    assert_eq!(played, (0..5).map(|i| format!("t{i}.wav")).collect::<Vec<_>>(), "each track exactly once");
    // Repeat: the queue starts again, until the 4.2 s limit (the queue lasts 2.5 s).
    let opts = PlayOptions { repeat: true, limit_ms: Some(4_200), ..PlayOptions::default() };
    let sink = MemorySink::new();
    let pcm = sink.samples.clone();
    let repeated = Player::start(files, Box::new(sink), items, opts, None).unwrap().wait().unwrap();
    let order = titles(&repeated);
    assert_eq!(order.len(), 9, "{order:?}");
    assert_eq!(order[5..], order[..4], "the second round is in the same order");
    let secs = pcm.lock().unwrap().len() as f64 / 2.0 / 44_100.0;
    assert!((4.2..4.3).contains(&secs), "stopped at the limit: {secs} s");
}

#[test]
fn probed_length_equals_the_decoded_length() {
    // PCM and FLAC lengths come from the header, checked at the stream's end; the others are
    // counted packet by packet. Either way they must equal what decoding yields.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("song.wav");
    std::fs::write(&wav, busker::synth::song_wav(5, 3.3)).unwrap();
    let mut paths = vec![wav];
    for f in ["01-sunrise.flac", "02-tidewater.mp3", "03-lanterns.ogg", "vbr-noxing.mp3"] {
        paths.push(crate::common::fixtures().join(f));
    }
    for path in paths {
        let ext = path.extension().map(|e| e.to_string_lossy().to_string());
        let info = busker::player::probe_file(&path, ext.as_deref()).unwrap();
        let (spec, samples) = decode_file(&path);
        let frames = (samples.len() / usize::from(spec.channels)) as u64;
        assert_eq!(info.frames, frames, "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_damaged_on_disk_is_fetched_again_and_the_track_plays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (_artist, fan, src, items) = artist_and_fan(dir.path()).await;
    let song = &items[3];
    within("fetch", fan.fetch(&song.id.to_string())).await.unwrap();
    let store = &fan.local().store;
    let chunks = store.manifest(&song.id).unwrap().unwrap().chunks;
    assert!(chunks.len() >= 3, "the song spans several chunks");
    // Damage the first chunk (read when the track opens) and one in the middle.
    for victim in [chunks[0], chunks[2]] {
        busker::demo::corrupt_chunk(store, &victim).unwrap();
    }
    assert_eq!(fan.local().verify(&|_| {}).unwrap().corrupt.len(), 2);

    let (status, pcm) = play(&fan, vec![song.clone()], PlayOptions::default()).await;
    let t = &status.unwrap().tracks[0];
    assert!(t.error.is_none(), "{t:?}");
    let (_, local) = decode_file(&src.join("04-song.wav"));
    assert!(pcm == local, "the repaired track plays exactly the original audio");
    let v = fan.local().verify(&|_| {}).unwrap();
    assert!(v.is_ok(), "after the repair the store verifies: {v:?}");
    assert!(store.is_complete(&song.id).unwrap());
}
