//! Chunk bytes on disk: one file per chunk under `chunks/ab/abcdef…`, named by BLAKE3 hash
//! (copied on publish), and one file per fetched content under `chunks/packs/`, its chunks
//! written at their offsets.
//!
//! Files are written to `chunks/tmp/` and renamed into place, so a chunk file is either absent
//! or complete. A chunk only becomes visible to readers once the sled index says it exists
//! (see [`super::store`]); a file without an index entry is an orphan of an interrupted import.
//! A content's file is written in place; each of its chunks counts only once indexed, after
//! its bytes were written, and every read re-hashes the chunk.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::ids::ContentId;
use super::store::StoreError;

/// Bytes per `pwrite` into a content file. The kernel (ext4 on Linux 6.16 and later) sizes
/// the page-cache folios of a buffered write by the write's length: a 256 KiB chunk written at
/// once takes order-6 blocks, which after another program freed its memory often come from
/// pages the host of a VM has reclaimed and must back again on first touch (the copy into the
/// page cache then ran up to 7x slower). 16 KiB pieces take order-2 folios, which the
/// allocator serves from its per-CPU lists of recently freed pages. Measured writing 800 MB
/// in 256 KiB chunks right after a libtorrent 1 -> 4 run: 1.00-1.62 s of system CPU whole,
/// 0.22-0.24 s in 16 KiB pieces (64 KiB: 0.68-0.70; 8 KiB: 0.26).
const WRITE_PIECE: usize = 16 * 1024;

/// Reads `len` bytes at `offset` of the file at `path`.
pub(crate) fn read_at(path: &Path, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    // read_to_end into reserved capacity: no zero-fill of the buffer first (that memset was
    // 3% of a serving node's CPU in a loopback transfer).
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(u64::from(len)).read_to_end(&mut bytes)?;
    if bytes.len() < len as usize {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

/// The outcome of reading chunk `id` (at `offset` of its file) from `path`: absent bytes are
/// [`StoreError::MissingChunk`], bytes not matching its chaining value [`StoreError::CorruptChunk`].
fn verified(id: &ContentId, offset: u64, read: std::io::Result<Vec<u8>>, path: &Path) -> Result<Vec<u8>, StoreError> {
    use std::io::ErrorKind::{NotFound, UnexpectedEof};
    match read {
        Ok(bytes) if super::chunk::chunk_cv(offset, &bytes) == Some(*id) => Ok(bytes),
        Ok(_) => Err(StoreError::CorruptChunk(*id)),
        Err(e) if matches!(e.kind(), NotFound | UnexpectedEof) => Err(StoreError::MissingChunk(*id)),
        Err(e) => Err(io(path)(e)),
    }
}

/// The chunk file tree.
#[derive(Debug)]
pub(crate) struct ChunkFiles {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
    /// Content files open for writing, most recently opened last (at most [`OPEN_PACKS`]).
    /// Held while writing into a content file. Concurrent buffered writes to one ext4 file
    /// contend for its inode lock, whose owner-spinning took 15% of the CPU of a four-fan
    /// loopback transfer; one writer at a time took 1.7%. The write itself is a copy into the
    /// page cache, so serialising it costs no throughput. Keeping the files open spares every
    /// chunk an open and a close (1.2% of a fan's CPU).
    writing: Mutex<Vec<(ContentId, File)>>,
}

/// Most content files kept open for writing: a release's tracks download side by side.
const OPEN_PACKS: usize = 16;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

impl ChunkFiles {
    /// Opens (creating) the tree and clears temporary files left by a crash.
    pub(crate) fn open(root: PathBuf) -> Result<Self, StoreError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(Self { root, tmp, counter: AtomicU64::new(0), writing: Mutex::new(Vec::new()) })
    }

    /// Where chunk `id` lives.
    pub(crate) fn path(&self, id: &ContentId) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Writes a chunk completely, then renames it into place.
    pub(crate) fn write(&self, id: &ContentId, bytes: &[u8]) -> Result<(), StoreError> {
        let dest = self.path(id);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{}.{n}", id.short(), std::process::id()));
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        drop(f);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        fs::rename(&tmp, &dest).map_err(io(&dest))
    }

    /// Reads chunk `id` (which starts at byte `offset` of its file) and checks its chaining
    /// value. A mismatch is [`StoreError::CorruptChunk`].
    pub(crate) fn read(&self, id: &ContentId, offset: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.path(id);
        verified(id, offset, fs::read(&path), &path)
    }

    /// Where content `content`'s fetched chunks are kept.
    pub(crate) fn pack_path(&self, content: &ContentId) -> PathBuf {
        self.root.join("packs").join(content.to_string())
    }

    /// Writes a chunk at `offset` of the store's file for `content`, created at its full
    /// `size` (sparse) on first use. Filling one file per content in place, rather than
    /// creating a file per chunk, keeps inode creation off the download path: on ext4 it took
    /// about 45% of the CPU of a loopback transfer.
    pub(crate) fn write_packed(
        &self,
        content: &ContentId,
        size: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let path = self.pack_path(content);
        let mut open = self.open_packs();
        let at = match open.iter().position(|(c, _)| c == content) {
            Some(at) => at,
            None => {
                if open.len() >= OPEN_PACKS {
                    open.remove(0);
                }
                open.push((*content, Self::open_pack(&path)?));
                open.len() - 1
            }
        };
        let mut meta = open[at].1.metadata().map_err(io(&path))?;
        if meta.nlink() == 0 {
            // Deleted behind our back: write to a new file at the path, not into the old inode.
            open[at].1 = Self::open_pack(&path)?;
            meta = open[at].1.metadata().map_err(io(&path))?;
        }
        let f = &open[at].1;
        if meta.len() != size {
            f.set_len(size).map_err(io(&path))?;
        }
        // In pieces: see WRITE_PIECE.
        let mut at = offset;
        for piece in bytes.chunks(WRITE_PIECE) {
            f.write_all_at(piece, at).map_err(io(&path))?;
            at += piece.len() as u64;
        }
        Ok(())
    }

    /// Opens (creating) the content file at `path` for writing.
    fn open_pack(path: &Path) -> Result<File, StoreError> {
        let open = || fs::OpenOptions::new().create(true).truncate(false).write(true).open(path);
        match open() {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).map_err(io(dir))?;
                }
                open().map_err(io(path))
            }
            Err(e) => Err(io(path)(e)),
        }
    }

    fn open_packs(&self) -> MutexGuard<'_, Vec<(ContentId, File)>> {
        // Every update leaves the list consistent, so a panic elsewhere cannot poison it.
        self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads chunk `id` from `content`'s file and checks its chaining value.
    pub(crate) fn read_packed(
        &self,
        content: &ContentId,
        id: &ContentId,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.pack_path(content);
        verified(id, offset, read_at(&path, offset, len), &path)
    }

    /// The length of `content`'s file, if it exists.
    pub(crate) fn pack_len(&self, content: &ContentId) -> Option<u64> {
        fs::metadata(self.pack_path(content)).ok().map(|m| m.len())
    }

    /// Every content file present.
    pub(crate) fn list_packs(&self) -> Vec<ContentId> {
        let Ok(dir) = fs::read_dir(self.root.join("packs")) else { return Vec::new() };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
    }

    /// Removes `content`'s file if present.
    pub(crate) fn remove_pack(&self, content: &ContentId) -> Result<(), StoreError> {
        let path = self.pack_path(content);
        self.open_packs().retain(|(c, _)| c != content);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes chunk `id`'s file if present.
    pub(crate) fn remove(&self, id: &ContentId) -> Result<(), StoreError> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// The length of chunk `id`'s file, if it exists.
    pub(crate) fn len(&self, id: &ContentId) -> Option<u64> {
        fs::metadata(self.path(id)).ok().map(|m| m.len())
    }

    /// Every chunk file present, indexed or not.
    pub(crate) fn list(&self) -> Result<Vec<ContentId>, StoreError> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.root).map_err(io(&self.root))? {
            let shard = shard.map_err(io(&self.root))?.path();
            if shard == self.tmp || shard.ends_with("packs") || !shard.is_dir() {
                continue;
            }
            for f in fs::read_dir(&shard).map_err(io(&shard))? {
                let name = f.map_err(io(&shard))?.file_name();
                if let Some(id) = name.to_str().and_then(|n| n.parse().ok()) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_file_removed_while_open_is_written_anew_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path().to_path_buf()).unwrap();
        let content = ContentId([7; 32]);
        let path = files.pack_path(&content);
        files.write_packed(&content, 8, 0, b"abcd").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abcd\0\0\0\0");

        // Deleted by someone else: the open handle must not swallow the next write.
        fs::remove_file(&path).unwrap();
        files.write_packed(&content, 8, 4, b"efgh").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"\0\0\0\0efgh");

        // Removed by the store, and truncated by someone else: same.
        files.remove_pack(&content).unwrap();
        assert!(!path.exists());
        files.write_packed(&content, 8, 0, b"ijkl").unwrap();
        File::options().write(true).open(&path).unwrap().set_len(2).unwrap();
        files.write_packed(&content, 8, 4, b"mnop").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"ij\0\0mnop");
    }

    #[test]
    fn a_chunk_written_in_pieces_lands_whole_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::open(dir.path().to_path_buf()).unwrap();
        let content = ContentId([9; 32]);
        // Longer than a piece and not a multiple of one, at an offset that is not either.
        let bytes: Vec<u8> = (0..WRITE_PIECE * 3 + 1234).map(|i| (i % 251) as u8).collect();
        let (offset, size) = (1000, 1000 + bytes.len() as u64 + 5);
        files.write_packed(&content, size, offset, &bytes).unwrap();
        let on_disk = fs::read(files.pack_path(&content)).unwrap();
        assert_eq!(on_disk.len() as u64, size);
        assert!(on_disk[..1000].iter().all(|&b| b == 0));
        assert_eq!(&on_disk[1000..1000 + bytes.len()], &bytes[..]);
        assert!(on_disk[1000 + bytes.len()..].iter().all(|&b| b == 0));
    }
}
