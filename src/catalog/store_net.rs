//! Store operations used by the network side: verified chunk and manifest inserts, the set
//! of content being fetched, pins, and least-recently-used eviction under a storage cap.

use std::collections::HashSet;

use super::chunk::Manifest;
use super::ids::{ArtistKey, ContentId};
use super::signed::SignedCatalog;
use super::store::{ChunkEntry, Location, Store, StoreError};

fn id_of(key: &[u8]) -> ContentId {
    ContentId(key.try_into().unwrap_or([0; 32]))
}

/// The value recorded in `access` when a chunk is used: the time now, as `enforce_cap` reads it.
fn used_mark() -> [u8; 8] {
    crate::time::unix_now().to_le_bytes()
}

impl Store {
    /// Stores chunk bytes received from a peer if they are chunk `id` at byte `offset` of
    /// content `content` (`size` bytes in all). Returns false (and stores nothing) if they are
    /// not. The bytes go to their place in the store's file for that content; visible once
    /// this returns. With `keep`, they are also kept in memory for a few seconds, where fellow
    /// fans' requests for them are served from; without, their buffer is free once the caller
    /// lets go (nobody connected would ask for them, and fresh memory costs page faults).
    pub fn put_verified_chunk(
        &self,
        content: &ContentId,
        size: u64,
        id: &ContentId,
        offset: u64,
        bytes: impl Into<bytes::Bytes>,
        keep: bool,
    ) -> Result<bool, StoreError> {
        let bytes = bytes.into();
        if super::chunk::chunk_cv(offset, &bytes) != Some(*id) || offset + bytes.len() as u64 > size {
            return Ok(false);
        }
        if !self.has_intact_chunk(id)? {
            self.files.write_packed(content, size, offset, &bytes)?;
            let entry = ChunkEntry { len: bytes.len() as u32, offset, location: Location::Pack(*content) };
            self.chunk_index.insert(id.0, entry.encode())?;
        }
        // Not marked used here: `finish_fetch` marks every chunk of the content at once (one
        // database write per chunk was 2.5% of a fan's CPU); until then the fetch keeps them.
        if keep {
            self.recent.insert(*id, bytes);
        }
        Ok(true)
    }

    /// Drops chunk `id`, found damaged on disk, from the index (deleting its chunk file), so it
    /// counts as missing and the next fetch of its content asks peers for it again. A chunk
    /// served from a published file is left alone: a changed original is reported, not
    /// repaired behind the artist's back. Returns true if the chunk was dropped.
    pub fn forget_damaged_chunk(&self, id: &ContentId) -> Result<bool, StoreError> {
        let Some(v) = self.chunk_index.get(id.0)? else { return Ok(false) };
        let location = ChunkEntry::decode(&v).location;
        if matches!(location, Location::Source(_)) {
            return Ok(false);
        }
        self.chunk_index.remove(id.0)?;
        self.access.remove(id.0)?;
        self.recent.remove(id);
        if location == Location::File {
            self.files.remove(id)?;
        }
        Ok(true)
    }

    /// Lets go of chunks kept in memory since they were verified, once they are a few seconds
    /// old (an idle node holds none).
    pub fn forget_stale_chunks(&self) {
        self.recent.expire();
    }

    /// Records that chunk `id` was just used (for LRU eviction).
    pub fn touch(&self, id: &ContentId) -> Result<(), StoreError> {
        self.access.insert(id.0, &used_mark())?;
        Ok(())
    }

    /// Stores manifest bytes that must hash to `id`; returns the decoded manifest.
    pub fn put_manifest(&self, id: &ContentId, bytes: &[u8]) -> Result<Manifest, StoreError> {
        let m = Manifest::decode(bytes, id)?;
        self.manifests.insert(id.0, bytes)?;
        Ok(m)
    }

    /// The raw manifest bytes, for serving to peers.
    pub fn manifest_bytes(&self, id: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.manifests.get(id.0)?.map(|v| v.to_vec()))
    }

    /// The raw catalog envelope of `artist`, for serving to peers.
    pub fn catalog_bytes(&self, artist: &ArtistKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.catalogs.get(artist.0)?.map(|v| v.to_vec()))
    }

    /// Every stored catalog's artist and sequence number.
    pub fn catalog_list(&self) -> Result<Vec<(ArtistKey, u64)>, StoreError> {
        Ok(self.catalogs()?.iter().map(|c| (c.artist(), c.seq())).collect())
    }

    /// The stored sequence number of `artist`'s catalog.
    pub fn catalog_seq(&self, artist: &ArtistKey) -> Result<Option<u64>, StoreError> {
        Ok(self.catalog(artist)?.map(|c: SignedCatalog| c.seq()))
    }

    /// True if the manifest and every chunk of `id` are stored.
    pub fn is_complete(&self, id: &ContentId) -> Result<bool, StoreError> {
        let Some(m) = self.manifest(id)? else { return Ok(false) };
        for c in &m.chunks {
            if !self.has_intact_chunk(c)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Which chunks of `id` are stored, one entry per chunk; `None` without its manifest.
    pub fn availability(&self, id: &ContentId) -> Result<Option<Vec<bool>>, StoreError> {
        let Some(m) = self.manifest(id)? else { return Ok(None) };
        m.chunks.iter().map(|c| self.has_intact_chunk(c)).collect::<Result<Vec<bool>, _>>().map(Some)
    }

    /// Bytes of `id` stored and bytes in all; `None` until its manifest is known.
    pub fn progress(&self, id: &ContentId) -> Result<Option<(u64, u64)>, StoreError> {
        let Some(m) = self.manifest(id)? else { return Ok(None) };
        let mut have = 0;
        for (chunk, range) in m.chunk_plan() {
            if self.has_intact_chunk(&chunk)? {
                have += range.end - range.start;
            }
        }
        Ok(Some((have, m.size)))
    }

    /// Marks `id` as being fetched, so a restarted node resumes it.
    pub fn want(&self, id: &ContentId, pin: bool) -> Result<(), StoreError> {
        self.wanted.insert(id.0, &[u8::from(pin)])?;
        Ok(())
    }

    /// Content being fetched, with whether it should be pinned when done.
    pub fn wanted(&self) -> Result<Vec<(ContentId, bool)>, StoreError> {
        self.wanted.iter().map(|e| e.map(|(k, v)| (id_of(&k), v.first() == Some(&1))).map_err(Into::into)).collect()
    }

    /// A fetch finished (or gave up): its stored chunks count as used now, for
    /// least-recently-used eviction; pin it if asked, forget it as wanted, and flush.
    pub fn finish_fetch(&self, id: &ContentId, pin: bool) -> Result<(), StoreError> {
        if let Some(m) = self.manifest(id)? {
            let now = used_mark();
            let mut used = sled::Batch::default();
            for c in &m.chunks {
                if self.chunk_index.contains_key(c.0)? {
                    used.insert(&c.0[..], &now[..]);
                }
            }
            self.access.apply_batch(used)?;
        }
        if pin {
            self.pins.insert(id.0, &[])?;
        }
        self.wanted.remove(id.0)?;
        self.db.flush()?;
        Ok(())
    }

    /// Pinned content ids.
    pub fn pinned(&self) -> Result<Vec<ContentId>, StoreError> {
        self.pins.iter().keys().map(|k| k.map(|k| id_of(&k)).map_err(Into::into)).collect()
    }

    /// Evicts chunks not needed by pinned or wanted content, least recently used first, until
    /// the store holds at most `cap` bytes of chunks. Returns (chunks evicted, bytes freed).
    pub fn enforce_cap(&self, cap: u64) -> Result<(usize, u64), StoreError> {
        let (_, mut used) = self.usage()?;
        if used <= cap {
            return Ok((0, 0));
        }
        let mut keep: HashSet<ContentId> = HashSet::new();
        let roots = self.pinned()?.into_iter().chain(self.wanted()?.into_iter().map(|(id, _)| id));
        for id in roots {
            if let Some(m) = self.manifest(&id)? {
                keep.extend(m.chunks);
            }
        }
        let mut candidates: Vec<(u64, ContentId, u64, Location)> = Vec::new();
        for entry in self.chunk_index.iter() {
            let (k, v) = entry?;
            let id = id_of(&k);
            let entry = ChunkEntry::decode(&v);
            // Published files served in place are not the store's to delete.
            if keep.contains(&id) || matches!(entry.location, Location::Source(_)) {
                continue;
            }
            let len = u64::from(entry.len);
            let at =
                self.access.get(k)?.map(|t| u64::from_le_bytes(t.as_ref().try_into().unwrap_or([0; 8]))).unwrap_or(0);
            candidates.push((at, id, len, entry.location));
        }
        candidates.sort_by_key(|c| (c.0, c.1));
        let (mut n, mut freed) = (0, 0);
        let mut packs = HashSet::new();
        for (_, id, len, location) in candidates {
            if used <= cap {
                break;
            }
            self.chunk_index.remove(id.0)?;
            self.access.remove(id.0)?;
            self.recent.remove(&id);
            match location {
                Location::Pack(content) => {
                    packs.insert(content);
                }
                _ => self.files.remove(&id)?,
            }
            used = used.saturating_sub(len);
            freed += len;
            n += 1;
        }
        // A fetched file's disk space is returned once none of its chunks is indexed.
        for content in packs {
            if !self.pack_in_use(&content)? {
                self.files.remove_pack(&content)?;
            }
        }
        self.db.flush()?;
        Ok((n, freed))
    }
}

impl Store {
    /// True if any chunk is indexed as stored in `content`'s file.
    fn pack_in_use(&self, content: &ContentId) -> Result<bool, StoreError> {
        let chunks = self.manifest(content).ok().flatten().map(|m| m.chunks).unwrap_or_default();
        for c in &chunks {
            if self.chunk_index.get(c.0)?.is_some_and(|v| ChunkEntry::decode(&v).location == Location::Pack(*content)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Content files none of whose chunks is indexed (left by an interrupted fetch).
    pub(super) fn orphan_packs(&self) -> Result<Vec<ContentId>, StoreError> {
        let mut out = Vec::new();
        for content in self.files.list_packs() {
            if !self.pack_in_use(&content)? {
                out.push(content);
            }
        }
        Ok(out)
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}
