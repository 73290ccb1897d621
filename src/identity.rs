//! Keys: the artist key, the fan master key, per-artist fan pseudonyms, and the node key.
//!
//! * The **artist key** signs catalogs. Only an artist's node has one.
//! * The **fan master key** never leaves the node. Each artist sees a different
//!   [`pseudonym`](Identity::pseudonym_for) derived from it, so two artists cannot link one fan.
//! * The **node key** is the libp2p transport identity (the PeerId); it signs nothing of value.
//!
//! Each key is a 32-byte ed25519 secret in its own file, mode 0600. A key file readable by
//! group or others is refused, as ssh does.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::catalog::ids::{ArtistKey, parse_hex32};

/// Errors reading or creating keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is readable by other users.
    #[error("key file {path} has mode {mode:o}; it must not be readable by others (chmod 600 {path})")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file's content is not a busker key of the expected role.
    #[error("key file {0} is not a valid busker key")]
    Malformed(PathBuf),
    /// The node has no artist key.
    #[error("this node has no artist key: run `busker init --artist NAME`")]
    NoArtistKey,
}

/// A node's keys.
pub struct Identity {
    /// Fan master key: the root of every pseudonym.
    fan: SigningKey,
    /// Transport key (libp2p PeerId).
    node: SigningKey,
    /// Artist key, if this node publishes.
    artist: Option<SigningKey>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("artist", &self.artist_key()).finish_non_exhaustive()
    }
}

const HEADER: &str = "busker-secret-key-v1";

fn path_of(dir: &Path, role: &str) -> PathBuf {
    dir.join(format!("{role}.key"))
}

fn read_key(dir: &Path, role: &str) -> Result<Option<SigningKey>, IdentityError> {
    let path = path_of(dir, role);
    let io = |source| IdentityError::Io { path: path.clone(), source };
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen { path, mode });
    }
    if meta.len() > 1024 {
        return Err(IdentityError::Malformed(path));
    }
    let text = fs::read_to_string(&path).map_err(io)?;
    let mut lines = text.lines();
    if lines.next() != Some(&format!("{HEADER} {role}")) {
        return Err(IdentityError::Malformed(path));
    }
    let secret =
        lines.next().and_then(|l| parse_hex32(l).ok()).ok_or_else(|| IdentityError::Malformed(path.clone()))?;
    Ok(Some(SigningKey::from_bytes(&secret)))
}

fn write_key(dir: &Path, role: &str, key: &SigningKey) -> Result<(), IdentityError> {
    let path = path_of(dir, role);
    let io = |source| IdentityError::Io { path: path.clone(), source };
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    f.write_all(format!("{HEADER} {role}\n{hex}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

impl Identity {
    /// Loads the keys in `dir`, creating the fan and node keys (and the artist key if
    /// `artist` is set) when absent. Returns the roles it created.
    pub fn load_or_create(dir: &Path, artist: bool) -> Result<(Self, Vec<&'static str>), IdentityError> {
        fs::create_dir_all(dir).map_err(|source| IdentityError::Io { path: dir.to_path_buf(), source })?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|source| IdentityError::Io { path: dir.to_path_buf(), source })?;
        let mut created = Vec::new();
        let roles: &[&'static str] = if artist { &["fan", "node", "artist"] } else { &["fan", "node"] };
        for role in roles {
            if read_key(dir, role)?.is_none() {
                write_key(dir, role, &generate())?;
                created.push(*role);
            }
        }
        Ok((Self::load(dir)?, created))
    }

    /// Loads existing keys from `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let need = |role: &str| {
            read_key(dir, role)?.ok_or_else(|| IdentityError::Io {
                path: path_of(dir, role),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing; run `busker init`"),
            })
        };
        Ok(Self { fan: need("fan")?, node: need("node")?, artist: read_key(dir, "artist")? })
    }

    /// The artist signing key, if this node has one.
    pub fn artist(&self) -> Result<&SigningKey, IdentityError> {
        self.artist.as_ref().ok_or(IdentityError::NoArtistKey)
    }

    /// The artist public key, if any.
    pub fn artist_key(&self) -> Option<ArtistKey> {
        self.artist.as_ref().map(|k| ArtistKey(k.verifying_key().to_bytes()))
    }

    /// The node (transport) secret key bytes, for building the libp2p identity.
    pub fn node_secret(&self) -> [u8; 32] {
        self.node.to_bytes()
    }

    /// The node key, which signs this node's ledger entries.
    pub fn node_key(&self) -> SigningKey {
        self.node.clone()
    }

    /// The node public key.
    pub fn node_public(&self) -> [u8; 32] {
        self.node.verifying_key().to_bytes()
    }

    /// The fan master public key. Shown to the user only; it is never sent to peers.
    pub fn fan_public(&self) -> [u8; 32] {
        self.fan.verifying_key().to_bytes()
    }

    /// The key this fan uses towards `artist`: derived from the master secret and the artist
    /// key with BLAKE3's key derivation, so it is stable per artist and unlinkable across them.
    pub fn pseudonym_for(&self, artist: &ArtistKey) -> SigningKey {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.fan.to_bytes());
        material[32..].copy_from_slice(&artist.0);
        SigningKey::from_bytes(&blake3::derive_key("busker 2026-11 fan pseudonym v1", &material))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (id, created) = Identity::load_or_create(dir.path(), true).unwrap();
        assert_eq!(created, ["fan", "node", "artist"]);
        let again = Identity::load(dir.path()).unwrap();
        assert_eq!(id.artist_key(), again.artist_key());
        let p = dir.path().join("fan.key");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Identity::load(dir.path()), Err(IdentityError::TooOpen { .. })));
    }

    #[test]
    fn pseudonyms_differ_per_artist() {
        let dir = tempfile::tempdir().unwrap();
        let (id, _) = Identity::load_or_create(dir.path(), false).unwrap();
        let (a, b) = (ArtistKey([1; 32]), ArtistKey([2; 32]));
        assert_eq!(id.pseudonym_for(&a).to_bytes(), id.pseudonym_for(&a).to_bytes());
        assert_ne!(id.pseudonym_for(&a).verifying_key(), id.pseudonym_for(&b).verifying_key());
        assert_ne!(id.pseudonym_for(&a).verifying_key().to_bytes(), id.fan_public());
    }
}
