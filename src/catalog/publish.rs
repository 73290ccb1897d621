//! Publishing: a folder of audio files becomes a signed release in the artist's catalog.
//!
//! 1. **Check and hash** every audio file (in parallel): it must decode, must not be
//!    truncated, and its duration is counted from the stream; its chunks are hashed a block
//!    at a time. Nothing is written yet, so a bad file leaves the store untouched (unless the
//!    caller asked to skip bad files).
//! 2. **Record** where each file is, so its chunks are served in place (see
//!    [`super::sources`]), or with `copy` write the chunks the store lacks into chunk files.
//! 3. **Sign and commit** the new catalog version together with the manifests, chunk index,
//!    file records and pins, in one transaction (see [`super::store`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use rayon::prelude::*;

use super::CatalogError;
use super::chunk::{MAX_FILE_BYTES, Manifest};
use super::ids::{ArtistKey, ContentId};
use super::model::{Content, Licence, Release, Splits, Track};
use super::signed::SignedCatalog;
use super::sources::Source;
use super::store::{Batch, ChunkEntry, Location, Store, StoreError};
use crate::player::{AUDIO_EXTENSIONS, MediaInfo, probe_file};

/// Most files one publish considers.
pub const MAX_FILES: usize = 500;
const MAX_DEPTH: usize = 4;
const COVER_NAMES: &[&str] = &["cover", "folder", "front", "artwork"];

/// Errors from publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// One or more files are not usable audio. Each line names a file.
    #[error("{}", bad_files_message(.0))]
    BadFiles(Vec<BadFile>),
    /// The folder holds no audio files.
    #[error("no audio files found in {0} (looked for {exts})", exts = AUDIO_EXTENSIONS.join(", "))]
    NoAudio(PathBuf),
    /// The folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The folder holds more files than one release may.
    #[error("{0} holds more than {MAX_FILES} files")]
    TooManyFiles(PathBuf),
    /// The artist has no catalog yet (run `busker init --artist NAME`).
    #[error("no catalog for artist {0}: run `busker init --artist NAME` first")]
    NoCatalog(ArtistKey),
    /// The new catalog was rejected.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A file that could not be published, and why.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BadFile {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

fn bad_files_message(files: &[BadFile]) -> String {
    let lines: Vec<String> = files.iter().map(|b| format!("{}: {}", b.path.display(), b.reason)).collect();
    lines.join("\n")
}

/// How to publish.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Release title; default: the album tag, else the folder name.
    pub title: Option<String>,
    /// Release date `YYYY-MM-DD`; default: the date tag if it is a full date, else today (UTC).
    pub date: Option<String>,
    /// Licence for the release.
    pub licence: Licence,
    /// Tip splits; default: everything to the artist key.
    pub splits: Option<Splits>,
    /// Import the good files and list the bad ones, instead of failing.
    pub skip_bad: bool,
    /// Copy the files into the store instead of serving them where they are.
    pub copy: bool,
}

/// Progress while publishing.
#[derive(Clone, Debug)]
pub enum PublishEvent {
    /// Found this many audio files holding this many bytes.
    Scanned {
        /// Files.
        files: usize,
        /// Bytes.
        bytes: u64,
    },
    /// One file checked.
    Checked(PathBuf),
    /// This many more bytes checked and hashed.
    Stored(u64),
}

/// The outcome of a publish.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PublishReport {
    /// The release id.
    pub release_id: ContentId,
    /// The release as signed.
    pub release: Release,
    /// Catalog sequence number now in force.
    pub seq: u64,
    /// True if an identical release was already in the catalog (nothing new was signed).
    pub already_published: bool,
    /// Chunks newly written.
    pub new_chunks: usize,
    /// Bytes newly written.
    pub new_bytes: u64,
    /// Bytes of all files in the release.
    pub total_bytes: u64,
    /// Files skipped with `skip_bad`.
    pub skipped: Vec<BadFile>,
    /// Where the time went.
    pub timings: PublishTimings,
}

/// Where the time of a publish went, in microseconds.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PublishTimings {
    /// Wall time checking and hashing every file (in parallel).
    pub check_us: u64,
    /// CPU time of that spent checking that files decode and counting their length.
    pub probe_cpu_us: u64,
    /// CPU time of that spent reading and hashing.
    pub hash_cpu_us: u64,
    /// Wall time deciding which chunks are new, and writing chunk files (`copy` only).
    pub write_us: u64,
    /// Wall time signing and committing (including the flush to disk).
    pub commit_us: u64,
}

struct Found {
    path: PathBuf,
    info: MediaInfo,
    size: u64,
    manifest: Manifest,
    /// The file as it was when hashed, if it can be served in place.
    source: Option<Source>,
    probe_us: u64,
    hash_us: u64,
}

/// Publishes the audio files in `dir` as a new release signed by `key`.
pub fn publish(
    store: &Store,
    key: &SigningKey,
    dir: &Path,
    opts: &PublishOptions,
    progress: &(dyn Fn(PublishEvent) + Sync),
) -> Result<PublishReport, PublishError> {
    let artist = ArtistKey(key.verifying_key().to_bytes());
    let current = store.catalog(&artist)?.ok_or(PublishError::NoCatalog(artist))?;
    let (audio, cover) = scan(dir)?;
    if audio.is_empty() {
        return Err(PublishError::NoAudio(dir.to_path_buf()));
    }
    let total: u64 = audio.iter().map(|(_, s)| s).sum();
    progress(PublishEvent::Scanned { files: audio.len(), bytes: total });
    let mut timings = PublishTimings::default();
    let phase = Instant::now();

    let checked: Vec<Result<Found, BadFile>> = audio
        .par_iter()
        .map(|(path, size)| {
            let r = check_and_hash(path, *size);
            progress(PublishEvent::Checked(path.clone()));
            progress(PublishEvent::Stored(*size));
            r
        })
        .collect();
    let (mut found, mut bad) = (Vec::new(), Vec::new());
    for r in checked {
        match r {
            Ok(f) => found.push(f),
            Err(b) => bad.push(b),
        }
    }
    if !bad.is_empty() && (!opts.skip_bad || found.is_empty()) {
        return Err(PublishError::BadFiles(bad));
    }
    timings.check_us = phase.elapsed().as_micros() as u64;
    timings.probe_cpu_us = found.iter().map(|f| f.probe_us).sum();
    timings.hash_cpu_us = found.iter().map(|f| f.hash_us).sum();
    found.sort_by(|a, b| {
        (a.info.track_number.unwrap_or(u32::MAX), &a.path).cmp(&(b.info.track_number.unwrap_or(u32::MAX), &b.path))
    });

    let mut batch = Batch::default();
    let mut seen = HashSet::new();
    let mut new_bytes = 0;
    let mut tracks = Vec::with_capacity(found.len());
    let phase = Instant::now();
    for (i, f) in found.iter().enumerate() {
        let (id, n) = import_file(store, f, opts.copy, &mut batch, &mut seen)?;
        new_bytes += n;
        tracks.push(track_entry(f, id, i));
    }
    let cover = match cover {
        Some(path) => {
            let f = hash_only(&path)?;
            let (id, n) = import_file(store, &f, opts.copy, &mut batch, &mut seen)?;
            new_bytes += n;
            Some(Content { id, size: f.size, mime: image_mime(&path).to_string() })
        }
        None => None,
    };
    timings.write_us = phase.elapsed().as_micros() as u64;
    let release = Release {
        title: opts
            .title
            .clone()
            .or_else(|| majority(found.iter().filter_map(|f| f.info.album.clone())))
            .unwrap_or_else(|| folder_name(dir)),
        date: opts.date.clone().or_else(|| tag_date(&found)).unwrap_or_else(today_utc),
        cover,
        licence: opts.licence.clone(),
        splits: opts.splits.clone().unwrap_or_else(|| Splits::sole(artist)),
        tracks,
    };
    let phase = Instant::now();
    let release_id = release.id();
    batch.pins = batch.manifests.iter().map(|(id, _)| *id).collect();
    let already_published = current.catalog().release(&release_id).is_some();
    let mut seq = current.seq();
    if !already_published {
        let mut next = current.catalog().clone();
        next.seq += 1;
        next.releases.push(release.clone());
        let signed = SignedCatalog::sign(next, key)?;
        seq = signed.seq();
        batch.catalog = Some(signed);
    }
    let new_chunks = batch.chunks.len();
    if batch.catalog.is_some() || !batch.chunks.is_empty() || !batch.manifests.is_empty() {
        store.commit(batch)?;
    }
    timings.commit_us = phase.elapsed().as_micros() as u64;
    Ok(PublishReport {
        release_id,
        release,
        seq,
        already_published,
        new_chunks,
        new_bytes,
        total_bytes: total,
        skipped: bad,
        timings,
    })
}

/// Checks that a file is audio, counts its length and hashes its chunks, noting how the file
/// looked so that a change while publishing (or later) is caught.
fn check_and_hash(path: &Path, size: u64) -> Result<Found, BadFile> {
    let bad = |reason: String| BadFile { path: path.to_path_buf(), reason };
    if size > MAX_FILE_BYTES {
        return Err(bad(format!("{size} bytes is over the {MAX_FILE_BYTES}-byte limit")));
    }
    let t = Instant::now();
    let mut found = hash_only(path).map_err(|e| match e {
        PublishError::Io { source, .. } => bad(source.to_string()),
        other => bad(other.to_string()),
    })?;
    let hash_us = t.elapsed().as_micros() as u64;
    let t = Instant::now();
    found.info = probe_file(path, extension(path).as_deref()).map_err(|e| bad(e.to_string()))?;
    found.probe_us = t.elapsed().as_micros() as u64;
    found.hash_us = hash_us;
    // The record taken before hashing must still describe the file after probing it.
    let unchanged = found.source.as_ref().is_none_or(|s| Source::of(&s.path()).is_some_and(|now| now.same_state(s)));
    if !unchanged || found.size != size {
        return Err(bad("the file changed while it was being published".into()));
    }
    Ok(found)
}

/// Hashes a file's chunks (no audio check: cover art), noting how the file looked first.
fn hash_only(path: &Path) -> Result<Found, PublishError> {
    let io = |source| PublishError::Io { path: path.to_path_buf(), source };
    // Recorded under its canonical path, so the daemon finds it whatever its working directory.
    let source = std::fs::canonicalize(path).ok().and_then(|p| Source::of(&p));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(io(std::io::Error::other(format!("{size} bytes is over the {MAX_FILE_BYTES}-byte limit"))));
    }
    let manifest = Manifest::read_from(&mut file, size).map_err(io)?;
    let source = source.filter(|s| s.size == size);
    let (path, info) = (path.to_path_buf(), MediaInfo::default());
    Ok(Found { path, info, size, manifest, source, probe_us: 0, hash_us: 0 })
}

/// Adds one hashed file to the batch: its manifest, and the chunks the store lacks, either
/// served in place from the file or (with `copy`, or a file that cannot be recorded) copied
/// into chunk files. Returns its manifest id and the bytes newly added.
fn import_file(
    store: &Store,
    f: &Found,
    copy: bool,
    batch: &mut Batch,
    seen: &mut HashSet<ContentId>,
) -> Result<(ContentId, u64), PublishError> {
    let id = f.manifest.id();
    let mut new = Vec::new();
    for (chunk, range) in f.manifest.chunk_plan() {
        if seen.insert(chunk) && !store.has_intact_chunk(&chunk)? {
            new.push((chunk, range));
        }
    }
    let in_place = f.source.clone().filter(|_| !copy);
    if in_place.is_none() {
        // Read each chunk again and check it is still what was hashed before storing it.
        let changed =
            || PublishError::Io { path: f.path.clone(), source: std::io::Error::other("changed while publishing") };
        new.par_iter().try_for_each(|(chunk, r)| {
            let bytes = super::blobs::read_at(&f.path, r.start, (r.end - r.start) as u32).map_err(|_| changed())?;
            if super::chunk::chunk_cv(r.start, &bytes) != Some(*chunk) {
                return Err(changed());
            }
            store.write_chunk(chunk, &bytes).map_err(PublishError::from)
        })?;
    }
    let location = if in_place.is_some() { Location::Source(id) } else { Location::File };
    let mut added = 0;
    for (chunk, range) in new {
        let len = range.end - range.start;
        batch.chunks.push((chunk, ChunkEntry { len: len as u32, offset: range.start, location }));
        added += len;
    }
    if let Some(s) = in_place.filter(|_| added > 0) {
        batch.sources.push((id, s));
    }
    if seen.insert(id) && store.manifest(&id)?.is_none() {
        batch.manifests.push((id, f.manifest.encode()));
    }
    Ok((id, added))
}

fn track_entry(f: &Found, id: ContentId, index: usize) -> Track {
    let info = &f.info;
    let stem = f.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Track {
        title: clip(info.title.clone().unwrap_or(stem)),
        position: index as u32 + 1,
        duration_ms: info.duration_ms,
        codec: info.codec.clone(),
        sample_rate: info.sample_rate,
        channels: info.channels,
        bit_rate: (f.size.saturating_mul(8000) / info.duration_ms.max(1)).min(u64::from(u32::MAX)) as u32,
        id,
        size: f.size,
        file_name: clip(f.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
        licence: None,
    }
}

/// Keeps text within catalog bounds: no control characters, at most 256 bytes.
fn clip(s: String) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).collect();
    while out.len() > super::model::MAX_SHORT {
        out.pop();
    }
    out
}

/// Audio files with their sizes, and the cover image if one was found.
type Scan = (Vec<(PathBuf, u64)>, Option<PathBuf>);

fn scan(dir: &Path) -> Result<Scan, PublishError> {
    let mut audio = Vec::new();
    let mut cover = None;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let io = |source| PublishError::Io { path: d.clone(), source };
        let mut entries: Vec<_> = std::fs::read_dir(&d).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_lowercase();
            let meta = std::fs::metadata(&path).map_err(|source| PublishError::Io { path: path.clone(), source })?;
            if name.starts_with('.') {
                continue;
            } else if meta.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if meta.is_file() {
                let ext = extension(&path).unwrap_or_default();
                if AUDIO_EXTENSIONS.contains(&ext.as_str()) {
                    audio.push((path, meta.len()));
                } else if cover.is_none()
                    && image_mime(&path) != "application/octet-stream"
                    && COVER_NAMES.iter().any(|c| name.starts_with(c))
                {
                    cover = Some(path);
                }
            }
            if audio.len() > MAX_FILES {
                return Err(PublishError::TooManyFiles(dir.to_path_buf()));
            }
        }
    }
    Ok((audio, cover))
}

fn extension(path: &Path) -> Option<String> {
    path.extension().map(|e| e.to_string_lossy().to_lowercase())
}

fn image_mime(path: &Path) -> &'static str {
    match extension(path).as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

fn majority(items: impl Iterator<Item = String>) -> Option<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for s in items {
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(s, _)| clip(s))
}

fn folder_name(dir: &Path) -> String {
    let name = std::fs::canonicalize(dir).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    clip(name.unwrap_or_else(|| "Untitled".into()))
}

fn tag_date(found: &[Found]) -> Option<String> {
    found
        .iter()
        .filter_map(|f| f.info.date.as_deref())
        .map(|d| d.get(..10).unwrap_or(d))
        .find(|d| super::model::valid_date(d))
        .map(str::to_string)
}

pub use crate::time::today_utc;
