//! The local store: chunk index, manifests, catalogs and pins in sled; chunk bytes in files,
//! either the store's own chunk files or, for published files, the files themselves (see
//! [`super::sources`]).
//!
//! # Why chunk bytes are files, not sled values
//!
//! sled holds everything a reader navigates by (the chunk index, manifests, signed catalogs,
//! pins), and commits it in one transaction per import. The chunk *bytes* live in a
//! content-addressed file tree beside it (`chunks/ab/abcdef…`), as iroh-blobs does with its
//! metadata database:
//!
//! * a flipped bit in a chunk file is found by re-hashing and reported by chunk id, whereas
//!   damage inside sled's log can make recovery silently truncate everything after it;
//! * audio is written once, not copied again by log compaction;
//! * evicting an unpinned chunk later is deleting one file.
//!
//! # Atomic imports and durability
//!
//! An import writes chunk files first (each complete or absent, via rename), then commits the
//! index entries, manifests, catalog and pins in a single sled transaction and flushes sled to
//! disk. Until that commit nothing of the import is visible; after `kill -9` at any point the
//! store still verifies, and orphan chunk files are harmless (`verify` counts them).
//!
//! Chunk files are not fsynced one by one: on the machines we measured, a per-file flush runs
//! at disk speed and would make publishing 5–9× slower than hashing, for no gain against
//! `kill -9` (the page cache survives a killed process). The kernel writes them back within
//! its writeback interval. If power fails inside that window, the affected chunks are reported
//! by `verify`, and publishing the same files again (or re-fetching from peers) rewrites
//! them: a chunk whose file is missing or the wrong size is never treated as present.

use std::path::{Path, PathBuf};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::CatalogError;
use super::blobs::ChunkFiles;
use super::chunk::{Manifest, ManifestError};
use super::ids::{ArtistKey, ContentId};
use super::signed::SignedCatalog;
use super::sources::Source;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("store database: {0}")]
    Db(#[from] sled::Error),
    /// A file in the store could not be read or written.
    #[error("store file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A chunk's bytes do not hash to its name.
    #[error("chunk {0} is corrupt (its bytes do not match its hash)")]
    CorruptChunk(ContentId),
    /// A chunk the index or a manifest refers to has no file.
    #[error("chunk {0} is missing")]
    MissingChunk(ContentId),
    /// A published file served in place no longer holds the chunk it held when published.
    #[error("chunk {chunk} no longer matches {}: the published file was changed, moved or deleted", path.display())]
    SourceChanged {
        /// The chunk.
        chunk: ContentId,
        /// The published file.
        path: PathBuf,
    },
    /// A stored manifest is damaged.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A catalog was rejected.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Nothing matches the id.
    #[error("no release or track matches {0:?}")]
    NotFound(String),
    /// The id prefix matches more than one item.
    #[error("{0:?} matches more than one item; give more digits")]
    Ambiguous(String),
}

/// Where a chunk's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// The store's own chunk file (`chunks/ab/abcd…`): `publish --copy`.
    File,
    /// At the chunk's offset in the published file recorded under this id (the file's
    /// manifest id) in the sources tree: published files, served in place.
    Source(ContentId),
    /// At the chunk's offset in the store's file for this content (`chunks/packs/…`): what
    /// was fetched from peers, written where it belongs in the file, as BitTorrent does.
    Pack(ContentId),
}

/// A chunk index entry: the chunk's length, its offset in its file (which its chaining value
/// depends on), and where its bytes are. Stored as 12 little-endian bytes, plus a tag byte
/// and a 32-byte id unless the bytes are in a chunk file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Length in bytes.
    pub len: u32,
    /// Offset of the chunk in its file.
    pub offset: u64,
    /// Where the bytes are.
    pub location: Location,
}

impl ChunkEntry {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(45);
        b.extend_from_slice(&self.len.to_le_bytes());
        b.extend_from_slice(&self.offset.to_le_bytes());
        match &self.location {
            Location::File => {}
            Location::Source(id) => {
                b.push(1);
                b.extend_from_slice(&id.0);
            }
            Location::Pack(id) => {
                b.push(2);
                b.extend_from_slice(&id.0);
            }
        }
        b
    }

    pub(super) fn decode(b: &[u8]) -> Self {
        let len = b.get(..4).and_then(|x| x.try_into().ok()).map_or(0, u32::from_le_bytes);
        let offset = b.get(4..12).and_then(|x| x.try_into().ok()).map_or(0, u64::from_le_bytes);
        let id = b.get(13..45).and_then(|x| x.try_into().ok()).map(ContentId);
        let location = match (b.get(12), id) {
            (Some(1), Some(id)) => Location::Source(id),
            (Some(2), Some(id)) => Location::Pack(id),
            _ => Location::File,
        };
        Self { len, offset, location }
    }
}

/// What one import adds. Applied all at once by [`Store::commit`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Chunk files written for this import, with their index entries.
    pub chunks: Vec<(ContentId, ChunkEntry)>,
    /// Manifests by id.
    pub manifests: Vec<(ContentId, Vec<u8>)>,
    /// The new catalog version, if any.
    pub catalog: Option<SignedCatalog>,
    /// Content to keep regardless of storage pressure.
    pub pins: Vec<ContentId>,
    /// Published files served in place, by manifest id.
    pub sources: Vec<(ContentId, Source)>,
}

/// The local content and catalog store.
#[derive(Debug)]
pub struct Store {
    pub(super) db: sled::Db,
    pub(super) chunk_index: sled::Tree,
    pub(super) manifests: sled::Tree,
    pub(super) catalogs: sled::Tree,
    pub(super) pins: sled::Tree,
    /// Content the node is fetching (resumed after a restart), by manifest id.
    pub(super) wanted: sled::Tree,
    /// Last time each chunk was read or written (unix seconds), for LRU eviction.
    pub(super) access: sled::Tree,
    /// Published files served in place, by manifest id.
    pub(super) sources: sled::Tree,
    pub(super) files: ChunkFiles,
    /// Chunks verified a moment ago, served without reading them back (see [`super::recent`]).
    pub(super) recent: super::recent::Recent,
}

/// What an id (or unique prefix) names.
#[derive(Debug, Clone)]
pub enum Item {
    /// A release in a stored catalog.
    Release(ArtistKey, Box<super::model::Release>),
    /// A track (or cover) by manifest id, with a suggested file name.
    Content(ContentId, String),
}

impl Store {
    /// Opens or creates the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir.join("db")).mode(sled::Mode::HighThroughput).open()?;
        Ok(Self {
            chunk_index: db.open_tree("chunks")?,
            manifests: db.open_tree("manifests")?,
            catalogs: db.open_tree("catalogs")?,
            pins: db.open_tree("pins")?,
            wanted: db.open_tree("wanted")?,
            access: db.open_tree("access")?,
            sources: db.open_tree("sources")?,
            files: ChunkFiles::open(dir.join("chunks"))?,
            recent: Default::default(),
            db,
        })
    }

    /// The database, for other modules' trees (the ledger lives beside the store).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// True if chunk `id` is indexed.
    pub fn has_chunk(&self, id: &ContentId) -> Result<bool, StoreError> {
        Ok(self.chunk_index.contains_key(id.0)?)
    }

    /// True if chunk `id` is indexed and its file looks intact (cheap: no hashing): a chunk
    /// file of the indexed length, or a published file unchanged since publishing.
    pub fn has_intact_chunk(&self, id: &ContentId) -> Result<bool, StoreError> {
        let Some(entry) = self.chunk_index.get(id.0)? else { return Ok(false) };
        let entry = ChunkEntry::decode(&entry);
        Ok(match entry.location {
            Location::File => self.files.len(id) == Some(u64::from(entry.len)),
            Location::Source(source) => self.source(&source)?.is_some_and(|s| s.unchanged()),
            Location::Pack(content) => {
                self.files.pack_len(&content).is_some_and(|n| n >= entry.offset + u64::from(entry.len))
            }
        })
    }

    /// The file holding chunk `id`'s bytes, and the byte range of the chunk in it, if indexed.
    pub fn chunk_file(&self, id: &ContentId) -> Result<Option<(PathBuf, std::ops::Range<u64>)>, StoreError> {
        let Some(entry) = self.chunk_index.get(id.0)? else { return Ok(None) };
        let e = ChunkEntry::decode(&entry);
        let at = |start: u64| start..start + u64::from(e.len);
        Ok(match e.location {
            Location::File => Some((self.files.path(id), at(0))),
            Location::Pack(content) => Some((self.files.pack_path(&content), at(e.offset))),
            Location::Source(s) => self.source(&s)?.map(|s| (s.path(), at(e.offset))),
        })
    }

    /// The published file recorded under `id`, if any.
    pub fn source(&self, id: &ContentId) -> Result<Option<Source>, StoreError> {
        Ok(self.sources.get(id.0)?.and_then(|b| Source::decode(&b)))
    }

    /// Writes chunk bytes to a file; invisible until a [`Batch`] naming it is committed.
    pub fn write_chunk(&self, id: &ContentId, bytes: &[u8]) -> Result<(), StoreError> {
        self.files.write(id, bytes)
    }

    /// Reads a chunk and verifies its chaining value.
    pub fn read_chunk(&self, id: &ContentId) -> Result<Vec<u8>, StoreError> {
        let entry = self.chunk_index.get(id.0)?.ok_or(StoreError::MissingChunk(*id))?;
        self.read_entry(id, &ChunkEntry::decode(&entry))
    }

    /// Reads a chunk to send to a peer: like [`Self::read_chunk`], except that a chunk received
    /// and verified in the last few seconds comes from memory (see `recent.rs`). Local reads
    /// (players, `verify`) always go to disk, so damage there is found and repaired.
    ///
    /// A chunk of a published file is also sent without hashing it again while the file is
    /// provably the one hashed at publishing (see [`Source::unchanged_since_hashed`]).
    ///
    /// The chunk counts as used for least-recently-used eviction. One served from memory was
    /// stored, and so marked used, seconds ago: it is not marked again (a write per chunk
    /// served to fellow fans, 0.5% of a transfer's CPU).
    pub fn read_chunk_to_serve(&self, id: &ContentId) -> Result<bytes::Bytes, StoreError> {
        if let Some(bytes) = self.chunk_in_memory(id)? {
            return Ok(bytes);
        }
        let entry = self.chunk_index.get(id.0)?.ok_or(StoreError::MissingChunk(*id))?;
        let entry = ChunkEntry::decode(&entry);
        let bytes = self.read_entry_as(id, &entry, true)?;
        if let Err(e) = self.touch(id) {
            // The bytes are good; only eviction order suffers.
            tracing::warn!("cannot mark chunk {id} used: {e}");
        }
        Ok(bytes.into())
    }

    /// Chunk `id` to send to a peer if it was received and verified in the last few seconds
    /// and is still stored: no disk read and no hashing, so the caller need not move to a
    /// blocking thread. `None` if [`Self::read_chunk_to_serve`] must read it.
    pub fn chunk_in_memory(&self, id: &ContentId) -> Result<Option<bytes::Bytes>, StoreError> {
        let Some(bytes) = self.recent.get(id) else { return Ok(None) };
        // Still indexed: a chunk evicted meanwhile is not served from memory either.
        Ok(self.chunk_index.contains_key(id.0)?.then_some(bytes))
    }

    /// Reads and verifies the chunk `entry` locates.
    pub(super) fn read_entry(&self, id: &ContentId, entry: &ChunkEntry) -> Result<Vec<u8>, StoreError> {
        self.read_entry_as(id, entry, false)
    }

    /// Reads the chunk `entry` locates, verified against `id`; with `serving`, a chunk of a
    /// published file provably unchanged since it was hashed is not hashed again.
    fn read_entry_as(&self, id: &ContentId, entry: &ChunkEntry, serving: bool) -> Result<Vec<u8>, StoreError> {
        let source = match entry.location {
            Location::File => return self.files.read(id, entry.offset),
            Location::Pack(content) => return self.files.read_packed(&content, id, entry.offset, entry.len),
            Location::Source(source) => source,
        };
        let changed = |path| StoreError::SourceChanged { chunk: *id, path };
        let source = self.source(&source)?.ok_or_else(|| changed(PathBuf::from("(unrecorded file)")))?;
        let trusted = serving && source.unchanged_since_hashed();
        match source.read(entry.offset, entry.len) {
            Ok(bytes) if trusted || super::chunk::chunk_cv(entry.offset, &bytes) == Some(*id) => Ok(bytes),
            _ => Err(changed(source.path())),
        }
    }

    /// Applies an import atomically, and flushes the metadata to disk. Rejects a catalog not
    /// newer than the stored one.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let trees = (&self.chunk_index, &self.manifests, &self.catalogs, &self.pins, &self.sources);
        let result = trees.transaction(|(chunks, manifests, catalogs, pins, sources)| {
            if let Some(new) = &batch.catalog {
                let stored = match catalogs.get(new.artist().0)? {
                    Some(b) => SignedCatalog::verify(&b).ok().map(|c| c.seq()),
                    None => None,
                };
                new.check_newer_than(stored).map_err(ConflictableTransactionError::Abort)?;
                catalogs.insert(&new.artist().0, new.bytes())?;
            }
            for (id, entry) in &batch.chunks {
                chunks.insert(&id.0, entry.encode())?;
            }
            for (id, bytes) in &batch.manifests {
                manifests.insert(&id.0, bytes.as_slice())?;
            }
            for id in &batch.pins {
                pins.insert(&id.0, &[])?;
            }
            for (id, source) in &batch.sources {
                sources.insert(&id.0, source.encode())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e.into()),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.db.flush()?;
        Ok(())
    }

    /// Stores a verified catalog received from elsewhere if it is newer than ours.
    pub fn put_catalog(&self, signed: SignedCatalog) -> Result<(), StoreError> {
        self.commit(Batch { catalog: Some(signed), ..Batch::default() })
    }

    /// Loads and checks a manifest.
    pub fn manifest(&self, id: &ContentId) -> Result<Option<Manifest>, StoreError> {
        match self.manifests.get(id.0)? {
            Some(bytes) => Ok(Some(Manifest::decode(&bytes, id)?)),
            None => Ok(None),
        }
    }

    /// The newest stored catalog of `artist`, re-verified (disk is untrusted too).
    pub fn catalog(&self, artist: &ArtistKey) -> Result<Option<SignedCatalog>, StoreError> {
        match self.catalogs.get(artist.0)? {
            Some(bytes) => Ok(Some(SignedCatalog::verify_for(&bytes, artist)?)),
            None => Ok(None),
        }
    }

    /// Every stored catalog that verifies.
    pub fn catalogs(&self) -> Result<Vec<SignedCatalog>, StoreError> {
        let mut out = Vec::new();
        for entry in self.catalogs.iter() {
            let (_, bytes) = entry?;
            match SignedCatalog::verify(&bytes) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!("skipping stored catalog that no longer verifies: {e}"),
            }
        }
        Ok(out)
    }

    /// Finds a release or track by full id or unique hex prefix (at least 4 digits).
    pub fn resolve(&self, query: &str) -> Result<Item, StoreError> {
        let q = query.trim().to_ascii_lowercase();
        if q.len() < 4 || q.len() > 64 || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound(query.to_string()));
        }
        let mut found: Vec<Item> = Vec::new();
        for signed in self.catalogs()? {
            for r in &signed.catalog().releases {
                if r.id().to_string().starts_with(&q) {
                    found.push(Item::Release(signed.artist(), Box::new(r.clone())));
                }
                for t in &r.tracks {
                    if t.id.to_string().starts_with(&q)
                        && !found.iter().any(|f| matches!(f, Item::Content(id, _) if *id == t.id))
                    {
                        found.push(Item::Content(t.id, t.file_name.clone()));
                    }
                }
            }
        }
        match found.len() {
            0 => Err(StoreError::NotFound(query.to_string())),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::Ambiguous(query.to_string())),
        }
    }

    /// Writes content `id` to `dest`, verifying every chunk and the whole-file hash.
    /// The file appears only when complete.
    pub fn export_content(&self, id: &ContentId, dest: &Path) -> Result<u64, StoreError> {
        use std::io::Write;
        let m = self.manifest(id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let partial = dest.with_extension("busker-partial");
        let io = |source| StoreError::Io { path: partial.clone(), source };
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io)?);
        let mut whole = blake3::Hasher::new();
        for chunk in &m.chunks {
            let bytes = self.read_chunk(chunk)?;
            whole.update(&bytes);
            out.write_all(&bytes).map_err(io)?;
        }
        out.flush().map_err(io)?;
        drop(out);
        if ContentId::from(whole.finalize()) != m.hash {
            let _ = std::fs::remove_file(&partial);
            return Err(StoreError::Manifest(ManifestError::Malformed(
                *id,
                "chunks do not add up to the file hash".into(),
            )));
        }
        std::fs::rename(&partial, dest).map_err(|source| StoreError::Io { path: dest.to_path_buf(), source })?;
        Ok(m.size)
    }

    /// Number of indexed chunks and the bytes the store's own chunk files take (published
    /// files served in place are not counted: they are not the store's disk).
    pub fn usage(&self) -> Result<(usize, u64), StoreError> {
        let mut n = 0;
        let mut bytes = 0u64;
        for entry in self.chunk_index.iter() {
            let (_, v) = entry?;
            n += 1;
            let e = ChunkEntry::decode(&v);
            if !matches!(e.location, Location::Source(_)) {
                bytes += u64::from(e.len);
            }
        }
        Ok((n, bytes))
    }
}
