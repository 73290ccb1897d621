//! Published files served where they are: the store records where each published file lives
//! and reads its chunks from there, instead of copying the artist's audio into `chunks/`.
//!
//! # Why in place
//!
//! An artist's masters are large, and they already sit on the artist's disk. Copying them
//! into the store would double the disk they take and make publishing a copy job rather than
//! a hashing job (on the machines we measured, writing the copy took 3–5× as long as hashing).
//! BitTorrent clients seed from the original files in the same way, and music servers
//! (Subsonic, Navidrome) serve the library where it is. `busker publish --copy` still takes a
//! copy, for files on removable media or folders about to be deleted.
//!
//! # What protects the store
//!
//! * Every local read (playing, exporting, `verify`) re-hashes the chunk against its name,
//!   exactly as for chunk files: a published file that was edited after publishing is never
//!   played, and the error names it.
//! * A chunk sent to a peer is hashed again too, unless its file is provably the one hashed
//!   at publishing: same device, inode, size, modification and change time (see
//!   [`Source::unchanged_since_hashed`]). Any write to a file, and any change of its
//!   modification time, sets its change time to the present, which nobody can set back. So
//!   what an edit would slip past is only damage below the file system (failing media),
//!   which every fan's check of every chunk still catches. That is what BitTorrent clients
//!   rely on when they seed, and it spares the seeder hashing every byte it sends a second
//!   time (about 8% of the CPU of a 1 -> 1 transfer).
//! * A chunk counts as present only while its file still has the size and modification time
//!   recorded at publishing. An edited, moved or deleted file therefore makes its chunks
//!   missing, so a fetch (or publishing the file again) stores them anew.
//! * `busker verify` reads every chunk and names each published file that no longer matches.
//! * Only paths that are absolute and valid UTF-8 are recorded; others are copied.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

/// Where a published file lives, and how it looked when it was published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Absolute path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
    /// Which file it was, and its last change: 0 where unknown (records from before it was
    /// kept, or systems without it), and then never trusted.
    pub id: FileId,
    /// When the record was taken, nanoseconds since the Unix epoch.
    pub seen_ns: u64,
}

/// A file's identity and last change as the file system reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Change time (any write or change of metadata), nanoseconds since the Unix epoch.
    pub ctime_ns: u64,
}

/// The record as stored before [`FileId`] was kept: decoded, but never trusted to skip a hash.
#[derive(Deserialize)]
struct SourceV1 {
    path: String,
    size: u64,
    mtime_ns: u64,
}

/// How long before a record was taken the file's last change must lie for the record to
/// be trusted. File times come from a coarse clock (one tick is 1–10 ms on Linux), so a
/// write in the same tick as the record could leave the change time as recorded; a file
/// changed more than a tick before the record cannot be changed again without the change
/// time moving past it.
const SETTLED: u64 = 100_000_000;

fn mtime_ns(meta: &Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
}

fn file_id(meta: &Metadata) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ctime_ns = u64::try_from(meta.ctime()).unwrap_or(0).saturating_mul(1_000_000_000);
        FileId { dev: meta.dev(), ino: meta.ino(), ctime_ns: ctime_ns.saturating_add(meta.ctime_nsec() as u64) }
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        FileId::default()
    }
}

impl Source {
    /// The record for `path` as it is now; `None` if the path cannot be recorded (not
    /// absolute, not UTF-8, or not a readable file).
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        let path = path.to_str().filter(|_| path.is_absolute() && meta.is_file())?;
        let seen_ns = crate::time::unix_now_ns();
        Some(Self { path: path.to_string(), size: meta.len(), mtime_ns: mtime_ns(&meta), id: file_id(&meta), seen_ns })
    }

    /// True if `other` describes the file as this record does (when each was taken aside).
    pub fn same_state(&self, other: &Source) -> bool {
        (&self.path, self.size, self.mtime_ns, self.id) == (&other.path, other.size, other.mtime_ns, other.id)
    }

    /// True if the file is provably the one this record describes, unchanged: same device,
    /// inode, size, modification time and change time, with its last change settled before
    /// the record was taken. Its chunks, hashed when it was published, can then be sent to
    /// peers without hashing them again (see the module docs for what that relies on).
    pub fn unchanged_since_hashed(&self) -> bool {
        self.id.ctime_ns != 0
            && self.id.ctime_ns.saturating_add(SETTLED) < self.seen_ns
            && std::fs::metadata(&self.path).is_ok_and(|m| self.size_and_mtime_match(&m) && file_id(&m) == self.id)
    }

    fn size_and_mtime_match(&self, meta: &Metadata) -> bool {
        meta.len() == self.size && mtime_ns(meta) == self.mtime_ns
    }

    /// True if the file still has the recorded size and modification time.
    pub fn unchanged(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| self.size_and_mtime_match(&m))
    }

    /// Reads `len` bytes at `offset`. The caller checks them against the chunk's name.
    pub fn read(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        super::blobs::read_at(Path::new(&self.path), offset, len)
    }

    /// The path, for messages.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// Stored form.
    pub(super) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes a stored record; `None` if damaged.
    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let current = postcard::from_bytes(bytes).ok();
        let decoded = current.or_else(|| {
            let v1: SourceV1 = postcard::from_bytes(bytes).ok()?;
            Some(Self { path: v1.path, size: v1.size, mtime_ns: v1.mtime_ns, id: FileId::default(), seen_ns: 0 })
        });
        decoded.filter(|s: &Self| s.path.len() <= 4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        std::fs::write(&path, b"0123456789").unwrap();
        let s = Source::of(&path).unwrap();
        assert!(s.unchanged());
        assert_eq!(s.read(2, 3).unwrap(), b"234");
        assert!(s.read(8, 3).is_err(), "reading past the end fails");
        assert_eq!(Source::decode(&s.encode()), Some(s.clone()));
        std::fs::write(&path, b"0123456789ab").unwrap();
        assert!(!s.unchanged());
        std::fs::remove_file(&path).unwrap();
        assert!(!s.unchanged());
        assert!(Source::of(Path::new("relative.wav")).is_none());
    }

    #[test]
    fn only_a_settled_untouched_file_is_trusted_without_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        std::fs::write(&path, b"0123456789").unwrap();
        let fresh = Source::of(&path).unwrap();
        assert!(fresh.unchanged(), "size and mtime as recorded");
        assert!(!fresh.unchanged_since_hashed(), "changed moments before the record: not settled");
        std::thread::sleep(std::time::Duration::from_nanos(SETTLED) * 2);
        let settled = Source::of(&path).unwrap();
        assert!(settled.same_state(&fresh) && settled != fresh, "same file, seen later");
        assert!(settled.unchanged_since_hashed());
        // Same size, one byte different, modification time put back: the change time moved.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"0123456780").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        assert!(settled.unchanged(), "size and mtime alone do not see the edit");
        assert!(!settled.unchanged_since_hashed());
        // A record stored before file identities were kept still decodes, and is never trusted.
        #[derive(Serialize)]
        struct V1<'a>(&'a str, u64, u64);
        let old = postcard::to_stdvec(&V1(&settled.path, settled.size, settled.mtime_ns)).unwrap();
        let decoded = Source::decode(&old).unwrap();
        assert_eq!((decoded.path.as_str(), decoded.size, decoded.id), (settled.path.as_str(), 10, FileId::default()));
        assert!(!decoded.unchanged_since_hashed());
    }
}
