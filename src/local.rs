//! A node's local state opened without networking: config, keys and store together.
//!
//! Commands that need no network (`init`, `id`, `publish`, `export`, `catalog`, `verify`) are
//! calls on [`Local`]. sled allows one process per database, so only one `Local` (or running
//! node) may hold a data directory at a time.

use std::path::{Path, PathBuf};

use crate::catalog::publish::{self, PublishEvent, PublishOptions, PublishReport};
use crate::catalog::store::Item;
use crate::catalog::{Catalog, ContentId, SignedCatalog, Store, VerifyReport};
use crate::config::{Config, Home};
use crate::identity::Identity;
use crate::ledger::{Entry, Ledger, Money};
use crate::{Error, Result};

/// What `init` did.
#[derive(Debug)]
pub struct InitReport {
    /// The data directory.
    pub home: PathBuf,
    /// Whether `config.toml` was written.
    pub wrote_config: bool,
    /// Key roles created (`fan`, `node`, `artist`).
    pub created_keys: Vec<&'static str>,
    /// Sequence number of the artist catalog created, if one was.
    pub created_catalog: Option<u64>,
}

/// Opened local state.
#[derive(Debug)]
pub struct Local {
    /// The data directory.
    pub home: Home,
    /// Settings.
    pub config: Config,
    /// Keys.
    pub identity: Identity,
    /// Content and catalogs.
    pub store: Store,
    /// Plays, tips and settlements.
    pub ledger: Ledger,
}

impl Local {
    /// Creates (or completes) a data directory. With `artist`, also creates the artist key and
    /// a first, empty signed catalog under that name. Safe to run again: existing keys are kept.
    pub fn init(home: &Home, artist: Option<&str>) -> Result<(Self, InitReport)> {
        let wrote_config = home.write_default_config()?;
        let (identity, created_keys) = Identity::load_or_create(&home.keys_dir(), artist.is_some())?;
        let config = home.config()?;
        let store = Store::open(&home.store_dir())?;
        let mut created_catalog = None;
        if let (Some(name), Some(key)) = (artist, identity.artist_key())
            && store.catalog(&key)?.is_none()
        {
            let signed = SignedCatalog::sign(Catalog::new(key, name.trim()), identity.artist()?)?;
            created_catalog = Some(signed.seq());
            store.put_catalog(signed)?;
        }
        let report = InitReport { home: home.root().to_path_buf(), wrote_config, created_keys, created_catalog };
        let ledger = Ledger::open(store.db(), identity.node_key())?;
        Ok((Self { home: home.clone(), config, identity, store, ledger }, report))
    }

    /// Opens an initialised data directory.
    pub fn open(home: &Home) -> Result<Self> {
        Self::open_with_config(home, home.config()?)
    }

    /// Opens an initialised data directory with settings from elsewhere (`--config FILE`).
    pub fn open_with_config(home: &Home, config: Config) -> Result<Self> {
        if !home.is_initialised() {
            return Err(crate::config::ConfigError::NotInitialised(home.root().to_path_buf()).into());
        }
        let identity = Identity::load(&home.keys_dir())?;
        let store = Store::open(&home.store_dir())?;
        let ledger = Ledger::open(store.db(), identity.node_key())?;
        Ok(Self { home: home.clone(), config, identity, store, ledger })
    }

    /// Publishes a folder as a release signed by this node's artist key.
    pub fn publish(
        &self,
        dir: &Path,
        opts: &PublishOptions,
        progress: &(dyn Fn(PublishEvent) + Sync),
    ) -> Result<PublishReport> {
        Ok(publish::publish(&self.store, self.identity.artist()?, dir, opts, progress)?)
    }

    /// This node's own catalog, if it is an artist.
    pub fn own_catalog(&self) -> Result<Option<SignedCatalog>> {
        match self.identity.artist_key() {
            Some(k) => Ok(self.store.catalog(&k)?),
            None => Ok(None),
        }
    }

    /// The catalog of an artist named by key (or unique key prefix of at least 4 hex digits)
    /// or by name (case-insensitive, unique among the catalogs this node knows).
    pub fn find_artist(&self, query: &str) -> Result<SignedCatalog> {
        let q = query.trim();
        let all = self.store.catalogs()?;
        let lower = q.to_lowercase();
        let by_key = |c: &&SignedCatalog| q.len() >= 4 && c.artist().to_string().starts_with(&lower);
        let mut hits: Vec<&SignedCatalog> = all.iter().filter(by_key).collect();
        if hits.is_empty() {
            hits = all.iter().filter(|c| c.catalog().profile.name.to_lowercase() == lower).collect();
        }
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(crate::ledger::LedgerError::Refused(format!(
                "no known artist matches {q:?} (give a name or key from `busker search`)"
            ))
            .into()),
            many => Err(crate::ledger::LedgerError::Refused(format!(
                "{} artists match {q:?}; give more of the key",
                many.len()
            ))
            .into()),
        }
    }

    /// Promises a tip to an artist (see [`Local::find_artist`]); it is settled with the
    /// artist's node at the next settlement. Returns the artist's catalog, whose profile
    /// names the payment rail, and the ledger entry.
    pub fn tip(&self, artist: &str, amount: Money) -> Result<(SignedCatalog, Entry)> {
        let catalog = self.find_artist(artist)?;
        let entry = self.ledger.tip(catalog.artist(), amount)?;
        Ok((catalog, entry))
    }

    /// Writes the original files of a release or track (id or unique prefix) into `out_dir`,
    /// byte-identical and verified. Returns the files written.
    pub fn export(&self, id: &str, out_dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(out_dir).map_err(|source| Error::Io { path: out_dir.to_path_buf(), source })?;
        let items: Vec<(ContentId, String)> = match self.store.resolve(id)? {
            Item::Content(id, name) => vec![(id, name)],
            Item::Release(_, r) => {
                let mut v: Vec<_> = r.tracks.iter().map(|t| (t.id, t.file_name.clone())).collect();
                if let Some(c) = &r.cover {
                    let ext = c.mime.rsplit('/').next().unwrap_or("bin").replace("jpeg", "jpg");
                    v.push((c.id, format!("cover.{ext}")));
                }
                v
            }
        };
        let mut written = Vec::new();
        for (i, (cid, name)) in items.iter().enumerate() {
            let mut file = safe_file_name(name).unwrap_or_else(|| format!("{:02}-{}", i + 1, cid.short()));
            if written.iter().any(|p: &PathBuf| p.file_name().is_some_and(|n| n.to_string_lossy() == file)) {
                file = format!("{:02}-{file}", i + 1);
            }
            let dest = out_dir.join(file);
            self.store.export_content(cid, &dest)?;
            written.push(dest);
        }
        Ok(written)
    }

    /// Re-hashes the whole store.
    pub fn verify(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<VerifyReport> {
        Ok(self.store.verify(progress)?)
    }
}

/// A file name from a (possibly hostile) catalog, made safe to create in an output folder:
/// no directories, no control characters, not hidden, not `.`/`..`.
pub fn safe_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next()?;
    let clean: String = base.chars().filter(|c| !c.is_control() && *c != ':').collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    (!clean.is_empty() && clean.len() <= 255).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn hostile_names_are_defused() {
        assert_eq!(safe_file_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_file_name("..").as_deref(), None);
        assert_eq!(safe_file_name(".bashrc").as_deref(), Some("bashrc"));
        assert_eq!(safe_file_name("C:\\x\\01 song.flac").as_deref(), Some("01 song.flac"));
        assert_eq!(safe_file_name("a\u{0}b.mp3").as_deref(), Some("ab.mp3"));
    }
}
