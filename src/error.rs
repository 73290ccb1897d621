//! The crate-level error: every module's error, one enum.

use std::path::PathBuf;

/// Any busker error. Each variant wraps the owning module's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Configuration or data directory.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Keys.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// Catalog rules.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// Local store.
    #[error(transparent)]
    Store(#[from] crate::catalog::StoreError),
    /// Publishing.
    #[error(transparent)]
    Publish(#[from] crate::catalog::publish::PublishError),
    /// Audio.
    #[error(transparent)]
    Media(#[from] crate::player::MediaError),
    /// Playback.
    #[error(transparent)]
    Play(#[from] crate::player::PlayError),
    /// Ledger, tips and settlement.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// Networking.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// The control API.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// The node's event loop has stopped.
    #[error("the node has stopped")]
    NodeStopped,
    /// A file outside the store.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
