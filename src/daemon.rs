//! `busker daemon`: a node plus its control API, until Ctrl-C or `POST /v1/shutdown`.

use std::net::SocketAddr;

use crate::api;
use crate::{Local, Node, Result};

/// Overrides for the daemon, on top of `config.toml`.
#[derive(Clone, Debug, Default)]
pub struct DaemonOptions {
    /// Listen multiaddrs (replace the configured ones when non-empty).
    pub listen: Vec<String>,
    /// Extra bootstrap peers.
    pub bootstrap: Vec<String>,
    /// mDNS on/off.
    pub mdns: Option<bool>,
    /// Control API address (default from config).
    pub api_listen: Option<String>,
}

/// What a started daemon tells its caller.
#[derive(Clone, Debug)]
pub struct Started {
    /// PeerId.
    pub peer_id: String,
    /// Where the control API listens.
    pub api: SocketAddr,
}

/// Runs the daemon until it is asked to stop. `on_start` is called once it is reachable.
pub async fn run(local: Local, opts: DaemonOptions, on_start: impl FnOnce(&Started, &Node)) -> Result<()> {
    let home = local.home.root().to_path_buf();
    let token = api::load_or_create_token(&home)?;
    let listener = api::bind(opts.api_listen.as_deref().unwrap_or(&local.config.api.listen)).await?;
    let api_addr = listener.local_addr().map_err(|source| crate::Error::Io { path: api::addr_path(&home), source })?;
    let mut builder = Node::builder(local);
    for a in opts.listen {
        builder = builder.listen(a);
    }
    for b in opts.bootstrap {
        builder = builder.bootstrap(b);
    }
    if let Some(m) = opts.mdns {
        builder = builder.mdns(m);
    }
    let node = builder.spawn().await?;
    node.announce().await?;
    let addr_file = api::addr_path(&home);
    std::fs::write(&addr_file, api_addr.to_string())
        .map_err(|source| crate::Error::Io { path: addr_file.clone(), source })?;
    let (stop_tx, mut stop_rx) = tokio::sync::mpsc::channel(1);
    on_start(&Started { peer_id: node.peer_id().to_string(), api: api_addr }, &node);
    let app = api::router(node.clone(), token, stop_tx);
    let stopped = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated() => {}
            _ = stop_rx.recv() => {}
        }
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(stopped).await;
    let _ = std::fs::remove_file(&addr_file);
    node.shutdown().await;
    served.map_err(|source| crate::Error::Io { path: addr_file, source })
}

/// Resolves on SIGTERM (what service managers and `kill` send), so the daemon stops cleanly.
#[cfg(unix)]
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// No SIGTERM off Unix: only Ctrl-C and `busker stop`.
#[cfg(not(unix))]
async fn terminated() {
    std::future::pending::<()>().await;
}
