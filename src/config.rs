//! The data directory and `config.toml`.
//!
//! A data directory holds everything one node owns:
//!
//! ```text
//! <home>/config.toml   settings (documented; see configs/)
//! <home>/keys/         fan.key, node.key, artist.key (0600)
//! <home>/store/        sled database + chunk files
//! ```
//!
//! The directory is chosen by `--data-dir`, else `BUSKER_HOME`, else the platform data
//! directory (`~/.local/share/busker` on Linux).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading the configuration or locating the data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No data directory given and no platform default exists.
    #[error("no data directory: pass --data-dir or set BUSKER_HOME")]
    NoHome,
    /// The data directory has not been initialised.
    #[error("{0} is not a busker data directory: run `busker init` (or pass --data-dir)")]
    NotInitialised(PathBuf),
    /// The file could not be read or written.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// Node settings, loaded from `config.toml`. Every field has a documented default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Publishing defaults.
    pub publish: PublishConfig,
    /// Peer-to-peer networking.
    pub network: NetworkConfig,
    /// Downloads.
    pub download: DownloadConfig,
    /// Disk use.
    pub storage: StorageConfig,
    /// The local control API.
    pub api: ApiConfig,
    /// `[ledger]`.
    pub ledger: LedgerConfig,
}

/// `[ledger]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Seconds between automatic settlement attempts while the node runs (0: only on
    /// `busker settle`). Unsettled tips and plays are kept and retried across restarts.
    pub settle_secs: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self { settle_secs: 600 }
    }
}

/// `[network]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Peers to connect to at start (multiaddrs ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Most established connections.
    pub max_connections: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/4717".into(), "/ip4/0.0.0.0/udp/4717/quic-v1".into()],
            bootstrap: Vec::new(),
            mdns: true,
            max_connections: 256,
        }
    }
}

/// `[download]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// Chunk requests in flight per peer, shared by all downloads.
    pub window: usize,
    /// How long a peer that sent bad bytes is banned, in seconds.
    pub ban_secs: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self { window: 16, ban_secs: 600 }
    }
}

/// `[storage]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Most bytes of chunks kept. Pinned content (published or fetched with `get`) is never
    /// evicted; other chunks go least-recently-used first.
    pub cap_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { cap_bytes: 20 << 30 }
    }
}

/// `[api]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the control API (loopback only; port 0 picks a free one).
    pub listen: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:4718".into() }
    }
}

/// `[publish]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Licence identifier used when `busker publish` is given no `--license`.
    pub default_license: String,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self { default_license: "CC-BY-4.0".into() }
    }
}

/// The documented default `config.toml` written by `busker init`.
pub const DEFAULT_CONFIG_TOML: &str = r#"# busker node configuration. Every setting is optional; shown values are the defaults.
# Reference copies with more context: configs/artist.toml and configs/fan.toml.

[publish]
# Licence for `busker publish` when no --license is given. Known identifiers:
# CC0-1.0, CC-BY-4.0, CC-BY-SA-4.0, CC-BY-NC-4.0, CC-BY-NC-SA-4.0, CC-BY-ND-4.0,
# CC-BY-NC-ND-4.0, LicenseRef-all-rights-reserved
default_license = "CC-BY-4.0"

[network]
# Multiaddrs to listen on: TCP (TLS or noise, + yamux) and QUIC.
listen = ["/ip4/0.0.0.0/tcp/4717", "/ip4/0.0.0.0/udp/4717/quic-v1"]
# Peers to join at start, e.g. "/ip4/203.0.113.7/tcp/4717/p2p/12D3KooW…".
bootstrap = []
# Find peers on the local network (multicast DNS).
mdns = true
# Most established connections.
max_connections = 256

[download]
# Chunk requests (256 KiB each) in flight per peer, shared by all downloads.
window = 16
# Seconds a peer that sent bytes failing verification is banned.
ban_secs = 600

[storage]
# Most bytes of chunks to keep (20 GiB). Published and `busker get` content is pinned and
# never evicted; other chunks are evicted least-recently-used first.
cap_bytes = 21474836480

[api]
# Control API for the CLI, loopback only. Clients need the token in <data dir>/api.token.
listen = "127.0.0.1:4718"

[ledger]
# Seconds between automatic settlements with artists' nodes (0: only on `busker settle`).
# Tips and plays not yet countersigned are kept and retried, across restarts too.
settle_secs = 600
"#;

impl Config {
    /// Parses TOML text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e.to_string().replace('\n', " ") })
    }

    /// Loads a config file (bounded to 1 MiB).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let io = |source| ConfigError::Io { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > 1 << 20 {
            return Err(ConfigError::Invalid { path: path.to_path_buf(), message: "larger than 1 MiB".into() });
        }
        Self::parse(&std::fs::read_to_string(path).map_err(io)?, path)
    }
}

/// A node's data directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// Picks the data directory: `explicit`, else `BUSKER_HOME`, else the platform default.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self, ConfigError> {
        let root = explicit
            .or_else(|| std::env::var_os("BUSKER_HOME").filter(|v| !v.is_empty()).map(PathBuf::from))
            .or_else(|| dirs::data_dir().map(|d| d.join("busker")))
            .ok_or(ConfigError::NoHome)?;
        Ok(Self { root })
    }

    /// A data directory at exactly `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The key directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// True once `busker init` has run here.
    pub fn is_initialised(&self) -> bool {
        self.config_path().is_file() && self.keys_dir().is_dir()
    }

    /// Writes the default `config.toml` unless one exists. Returns true if it wrote one.
    pub fn write_default_config(&self) -> Result<bool, ConfigError> {
        let path = self.config_path();
        let io = |source| ConfigError::Io { path: path.clone(), source };
        std::fs::create_dir_all(&self.root).map_err(io)?;
        if path.exists() {
            return Ok(false);
        }
        std::fs::write(&path, DEFAULT_CONFIG_TOML).map_err(io)?;
        Ok(true)
    }

    /// Loads `config.toml`, or fails if the directory was never initialised.
    pub fn config(&self) -> Result<Config, ConfigError> {
        if !self.is_initialised() {
            return Err(ConfigError::NotInitialised(self.root.clone()));
        }
        Config::load(&self.config_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses_to_defaults() {
        assert_eq!(Config::parse(DEFAULT_CONFIG_TOML, Path::new("x")).unwrap(), Config::default());
    }

    #[test]
    fn shipped_example_configs_parse() {
        for (name, text) in
            [("artist", include_str!("../configs/artist.toml")), ("fan", include_str!("../configs/fan.toml"))]
        {
            Config::parse(text, Path::new(name)).unwrap();
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[publish]\ndefault_licence = 1\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("default_licence"), "{err}");
    }
}
