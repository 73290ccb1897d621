//! Helpers for tests with real nodes on 127.0.0.1 (mDNS off). Every wait is bounded.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use busker::{Event, Home, Local, Node};
use tokio::sync::broadcast;

/// Upper bound for any single wait in these tests (a hang fails instead of blocking CI).
pub const WAIT: Duration = Duration::from_secs(60);

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Spawns a node whose data directory is `dir/name`, creating it if needed.
pub async fn spawn(dir: &Path, name: &str, artist: bool) -> Node {
    // Logs go to the test's captured output (shown on failure); RUST_LOG selects them.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let home = Home::at(dir.join(name));
    let local = if home.is_initialised() {
        open_when_free(&home).await
    } else {
        Local::init(&home, artist.then_some(name)).unwrap().0
    };
    Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await.unwrap()
}

/// Opens a data directory once the previous node (and its blocking tasks) released it.
pub async fn open_when_free(home: &Home) -> Local {
    within("the data directory to be released", async {
        loop {
            match Local::open(home) {
                Ok(l) => return l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
}

/// The node's first listen address (waits until it listens).
pub async fn addr(node: &Node) -> String {
    node.wait_listening(WAIT).await.unwrap()
}

/// Waits for the first event matching `pred`.
pub async fn event(rx: &mut broadcast::Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    within(what, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("node stopped while waiting for {what}"),
            }
        }
    })
    .await
}

/// Waits until the node's gossip mesh has at least `n` peers.
pub async fn gossip_mesh(node: &Node, n: usize) {
    within("the gossip mesh", async {
        while node.status().await.unwrap().gossip_peers < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Writes an album of `n` noise WAV tracks of `secs` seconds each.
pub fn noise_album(dir: &Path, n: u64, secs: f32) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("{:02}-noise.wav", i + 1)), crate::common::noise_wav(1000 + i, secs)).unwrap();
    }
    dir.to_path_buf()
}
