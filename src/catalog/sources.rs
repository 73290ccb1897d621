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
//! * Every read re-hashes the chunk against its name, exactly as for chunk files: a published
//!   file that was edited after publishing is never served or played, and the error names it.
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
}

fn mtime_ns(meta: &Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
}

impl Source {
    /// The record for `path` as it is now; `None` if the path cannot be recorded (not
    /// absolute, not UTF-8, or not a readable file).
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        let path = path.to_str().filter(|_| path.is_absolute() && meta.is_file())?;
        Some(Self { path: path.to_string(), size: meta.len(), mtime_ns: mtime_ns(&meta) })
    }

    /// True if the file still has the recorded size and modification time.
    pub fn unchanged(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() == self.size && mtime_ns(&m) == self.mtime_ns)
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
        postcard::from_bytes(bytes).ok().filter(|s: &Self| s.path.len() <= 4096)
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
}
