//! Publishing: a folder of audio files becomes a signed release in the artist's catalog.
//!
//! 1. **Scan and check** every audio file (in parallel): it must decode, must not be
//!    truncated, and its duration is counted from the stream. Nothing is written yet, so a bad
//!    file leaves the store untouched (unless the caller asked to skip bad files).
//! 2. **Chunk and hash** each file (both cores), writing only chunks the store lacks.
//! 3. **Sign and commit** the new catalog version together with the manifests, chunk index and
//!    pins, in one transaction (see [`super::store`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rayon::prelude::*;

use super::CatalogError;
use super::chunk::{MAX_FILE_BYTES, Manifest};
use super::ids::{ArtistKey, ContentId};
use super::model::{Content, Licence, Release, Splits, Track};
use super::signed::SignedCatalog;
use super::store::{Batch, ChunkEntry, Store, StoreError};
use crate::player::{AUDIO_EXTENSIONS, MediaError, MediaInfo, SharedBytes, probe};

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
    /// This many more bytes chunked and stored.
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

/// Wall time of each publishing phase, in microseconds.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PublishTimings {
    /// Checking every file decodes (reading, probing, counting its duration).
    pub check_us: u64,
    /// Reading, chunking and hashing.
    pub hash_us: u64,
    /// Writing chunk files.
    pub write_us: u64,
    /// Signing and the store commit (including its flush).
    pub commit_us: u64,
}

struct Found {
    path: PathBuf,
    info: MediaInfo,
    size: u64,
    /// The bytes read while checking, kept so they are not read twice (within a budget).
    bytes: Option<Arc<Vec<u8>>>,
}

/// Most bytes of checked files kept in memory for hashing instead of being read again.
const KEEP_CHECKED_BYTES: u64 = 1 << 30;

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
    let phase = std::time::Instant::now();

    let keep = total <= KEEP_CHECKED_BYTES;
    let checked: Vec<Result<Found, BadFile>> = audio
        .par_iter()
        .map(|(path, size)| {
            let r = check_file(path, *size, keep).map(|(info, bytes)| Found {
                path: path.clone(),
                info,
                size: *size,
                bytes,
            });
            progress(PublishEvent::Checked(path.clone()));
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
    found.sort_by(|a, b| {
        (a.info.track_number.unwrap_or(u32::MAX), &a.path).cmp(&(b.info.track_number.unwrap_or(u32::MAX), &b.path))
    });

    let mut batch = Batch::default();
    let mut seen = HashSet::new();
    let mut new_bytes = 0;
    let mut tracks = Vec::with_capacity(found.len());
    for (i, f) in found.iter_mut().enumerate() {
        let kept = f.bytes.take(); // freed once this file is stored
        let (id, n) = import_file(
            store,
            &f.path,
            kept.as_deref().map(Vec::as_slice),
            &mut batch,
            &mut seen,
            &mut timings,
            progress,
        )?;
        new_bytes += n;
        tracks.push(track_entry(f, id, i));
    }
    let cover = match cover {
        Some(path) => {
            let (id, n) = import_file(store, &path, None, &mut batch, &mut seen, &mut timings, progress)?;
            new_bytes += n;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Some(Content { id, size, mime: image_mime(&path).to_string() })
        }
        None => None,
    };
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
    let phase = std::time::Instant::now();
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

/// What checking a file yields: its media info, and its bytes if they are to be kept.
type Checked = (MediaInfo, Option<Arc<Vec<u8>>>);

fn check_file(path: &Path, size: u64, keep: bool) -> Result<Checked, BadFile> {
    let bad = |reason: String| BadFile { path: path.to_path_buf(), reason };
    if size > MAX_FILE_BYTES {
        return Err(bad(format!("{size} bytes is over the {MAX_FILE_BYTES}-byte limit")));
    }
    let bytes = Arc::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
    let ext = extension(path);
    let info = probe(SharedBytes(bytes.clone()), ext.as_deref()).map_err(|e: MediaError| bad(e.to_string()))?;
    Ok((info, keep.then_some(bytes)))
}

/// Chunks, hashes and writes one file; returns its manifest id and the bytes newly written.
fn import_file(
    store: &Store,
    path: &Path,
    kept: Option<&[u8]>,
    batch: &mut Batch,
    seen: &mut HashSet<ContentId>,
    timings: &mut PublishTimings,
    progress: &(dyn Fn(PublishEvent) + Sync),
) -> Result<(ContentId, u64), PublishError> {
    let phase = std::time::Instant::now();
    let read;
    let data: &[u8] = match kept {
        Some(bytes) => bytes,
        None => {
            read = std::fs::read(path).map_err(|source| PublishError::Io { path: path.to_path_buf(), source })?;
            &read
        }
    };
    let manifest = Manifest::build(data);
    timings.hash_us += phase.elapsed().as_micros() as u64;
    let phase = std::time::Instant::now();
    // Decide sequentially (dedup), write in parallel: creating files is partly kernel CPU.
    let mut to_write = Vec::new();
    for (chunk, range) in manifest.chunk_plan() {
        if seen.insert(chunk) && !store.has_intact_chunk(&chunk)? {
            to_write.push((chunk, range));
        }
    }
    to_write.par_iter().try_for_each(|(chunk, r)| store.write_chunk(chunk, &data[r.start as usize..r.end as usize]))?;
    let mut written = 0;
    for (chunk, range) in to_write {
        let len = range.end - range.start;
        batch.chunks.push((chunk, ChunkEntry { len: len as u32, offset: range.start }));
        written += len;
    }
    progress(PublishEvent::Stored(manifest.size));
    let id = manifest.id();
    if seen.insert(id) && store.manifest(&id)?.is_none() {
        batch.manifests.push((id, manifest.encode()));
    }
    timings.write_us += phase.elapsed().as_micros() as u64;
    Ok((id, written))
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
