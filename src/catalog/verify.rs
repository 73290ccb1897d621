//! Checking the store: every chunk re-hashed, every manifest and catalog re-verified, pinned
//! content required whole, and leftovers of interrupted imports counted and removed.

use std::collections::HashSet;
use std::path::PathBuf;

use rayon::prelude::*;

use super::chunk::Manifest;
use super::ids::{ArtistKey, ContentId};
use super::signed::SignedCatalog;
use super::store::{ChunkEntry, Store, StoreError};

/// The result of [`Store::verify`].
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Indexed chunks re-hashed.
    pub chunks_checked: usize,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Chunks whose bytes do not match their hash.
    pub corrupt: Vec<ContentId>,
    /// Chunks absent from pinned content, or indexed but without their bytes.
    pub missing: Vec<ContentId>,
    /// Manifests that are damaged, or pinned but absent.
    pub bad_manifests: Vec<(ContentId, String)>,
    /// Catalogs that no longer verify.
    pub bad_catalogs: Vec<(ArtistKey, String)>,
    /// Chunk files not in the index (left by an interrupted import; harmless).
    pub orphans: usize,
    /// Published files served in place that no longer hold what was published.
    #[serde(default)]
    pub changed_sources: Vec<PathBuf>,
}

impl VerifyReport {
    /// True when nothing is corrupt, missing or bad.
    pub fn is_ok(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.bad_manifests.is_empty()
            && self.bad_catalogs.is_empty()
    }
}

impl Store {
    /// Re-hashes every chunk and checks every manifest and catalog. `progress` gets bytes done.
    pub fn verify(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for entry in self.catalogs.iter() {
            let (key, bytes) = entry?;
            if let Err(e) = SignedCatalog::verify(&bytes) {
                let artist = ArtistKey(key.as_ref().try_into().unwrap_or([0; 32]));
                report.bad_catalogs.push((artist, e.to_string()));
            }
        }
        // Pinned content (everything published here, everything `get` fetched) must be whole;
        // other content is a cache, which may hold part of a file or none of it.
        let mut pinned: HashSet<ContentId> = self.pinned()?.into_iter().collect();
        let mut referenced: HashSet<ContentId> = HashSet::new();
        for entry in self.manifests.iter() {
            let (key, bytes) = entry?;
            let id = ContentId(key.as_ref().try_into().unwrap_or([0; 32]));
            let must_be_whole = pinned.remove(&id);
            match Manifest::decode(&bytes, &id) {
                Ok(m) if must_be_whole => referenced.extend(m.chunks),
                Ok(_) => {}
                Err(e) => report.bad_manifests.push((id, e.to_string())),
            }
        }
        report.bad_manifests.extend(pinned.into_iter().map(|id| (id, "pinned but absent".into())));
        let mut indexed: Vec<(ContentId, ChunkEntry)> = Vec::new();
        for entry in self.chunk_index.iter() {
            let (key, value) = entry?;
            indexed.push((ContentId(key.as_ref().try_into().unwrap_or([0; 32])), ChunkEntry::decode(&value)));
        }
        let results: Vec<(ContentId, Result<u64, StoreError>)> = indexed
            .par_iter()
            .map(|(id, entry)| {
                let r = self.read_entry(id, entry).map(|b| b.len() as u64);
                if let Ok(n) = &r {
                    progress(*n);
                }
                (*id, r)
            })
            .collect();
        let indexed_set: HashSet<ContentId> = indexed.iter().map(|(id, _)| *id).collect();
        for (id, r) in results {
            report.chunks_checked += 1;
            match r {
                Ok(n) => report.bytes_checked += n,
                Err(StoreError::CorruptChunk(_)) => report.corrupt.push(id),
                Err(StoreError::MissingChunk(_)) => report.missing.push(id),
                Err(StoreError::SourceChanged { path, .. }) => {
                    report.corrupt.push(id);
                    report.changed_sources.push(path);
                }
                Err(e) => return Err(e),
            }
        }
        report.missing.extend(referenced.iter().filter(|c| !indexed_set.contains(c)));
        report.orphans =
            self.files.list()?.iter().filter(|c| !indexed_set.contains(c)).count() + self.orphan_packs()?.len();
        report.corrupt.sort();
        report.missing.sort();
        report.missing.dedup();
        report.changed_sources.sort();
        report.changed_sources.dedup();
        Ok(report)
    }

    /// Removes orphan chunk files and content files (never indexed).
    pub fn remove_orphans(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for content in self.orphan_packs()? {
            self.files.remove_pack(&content)?;
            n += 1;
        }
        for id in self.files.list()? {
            if !self.has_chunk(&id)? {
                self.files.remove(&id)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
