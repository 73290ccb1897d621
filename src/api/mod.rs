//! HTTP: the local control API the CLI uses while a daemon runs.
//!
//! This module owns everything that touches HTTP types. The control API listens on loopback
//! only and every route requires `Authorization: Bearer <token>`, where the token is the
//! content of `<data dir>/api.token` (mode 0600). The address actually bound is written to
//! `<data dir>/api.addr` so clients find a daemon started on port 0.

mod control;
mod ledger;
mod player;

use std::path::{Path, PathBuf};

pub use control::{Download, ExportRequest, GetRequest, GetResponse, PublishRequest, router};
pub use ledger::{
    BudgetRequest, BudgetView, LedgerView, MAX_PAGE, TipRequest, TipResponse, artist_report, budget_view, page, tip,
};
pub use player::{Output, PlayRequest, PlayStarted, QueueRequest, SeekRequest};

/// Errors setting up the API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A file of the API (token, address) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The configured address is not a loopback address.
    #[error("the control API must listen on loopback, not {0}")]
    NotLoopback(String),
}

/// The token file of a data directory.
pub fn token_path(home: &Path) -> PathBuf {
    home.join("api.token")
}

/// The file holding the address of a running daemon's API.
pub fn addr_path(home: &Path) -> PathBuf {
    home.join("api.addr")
}

/// Reads the API token, creating a random one (mode 0600) if there is none.
pub fn load_or_create_token(home: &Path) -> Result<String, ApiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = token_path(home);
    let io = |source| ApiError::Io { path: path.clone(), source };
    if let Ok(t) = std::fs::read_to_string(&path)
        && t.trim().len() == 64
    {
        return Ok(t.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    Ok(token)
}

/// Binds the control API listener, refusing non-loopback addresses.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, ApiError> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|_| ApiError::NotLoopback(addr.to_string()))?;
    if !sock.ip().is_loopback() {
        return Err(ApiError::NotLoopback(addr.to_string()));
    }
    tokio::net::TcpListener::bind(sock).await.map_err(|source| ApiError::Io { path: PathBuf::from(addr), source })
}
