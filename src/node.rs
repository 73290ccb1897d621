//! The embeddable node: a cloneable [`Node`] handle over one event-loop task that owns the
//! libp2p swarm.
//!
//! ```no_run
//! # async fn demo() -> busker::Result<()> {
//! use busker::{Home, Local, Node};
//! let local = Local::open(&Home::at("/tmp/fan"))?;
//! let node = Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await?;
//! node.dial("/ip4/127.0.0.1/tcp/4717").await?;
//! for hit in node.search("loopback")? {
//!     println!("{hit}");
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::catalog::publish::{PublishOptions, PublishReport};
use crate::catalog::search::{Hit, search};
use crate::catalog::store::Item;
use crate::catalog::{ArtistKey, ContentId};
use crate::net::event_loop::{Command, EventLoop, LoopSettings};
use crate::net::{Announcement, FetchReport, NetError, PeerInfo, Status};
use crate::{Error, Local, Result};

/// Capacity of the command channel: callers wait (backpressure) beyond this.
const COMMAND_QUEUE: usize = 64;
/// Capacity of the event broadcast: slow subscribers miss events (and are told so).
const EVENT_QUEUE: usize = 1024;

/// How an updated catalog reached this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A gossip announcement.
    Gossip,
    /// Catalog sync with a newly connected peer.
    Sync,
    /// A DHT record lookup.
    Dht,
}

/// Things that happen on a node, for subscribers. Peers are named by their PeerId string.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Listening on an address.
    Listening {
        /// Multiaddr, with `/p2p/<peer id>`.
        addr: String,
    },
    /// A connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: String,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: String,
    },
    /// A newer, verified catalog was stored.
    CatalogUpdated {
        /// Whose.
        artist: ArtistKey,
        /// Its version.
        seq: u64,
        /// How it arrived.
        via: Via,
    },
    /// A gossip announcement was rejected (forged or malformed) and not forwarded.
    AnnouncementRejected {
        /// The peer that sent it.
        from: String,
        /// Why.
        reason: String,
    },
    /// A gossip announcement older than what we hold was dropped and not forwarded.
    AnnouncementIgnored {
        /// Whose.
        artist: ArtistKey,
        /// The stale version.
        seq: u64,
    },
    /// Fetch progress for one piece of content.
    FetchProgress {
        /// Content id.
        id: ContentId,
        /// Chunks stored.
        have: usize,
        /// Chunks in all.
        total: usize,
    },
    /// A fetch finished.
    FetchComplete {
        /// Content id.
        id: ContentId,
        /// Chunks fetched from peers in this run (the rest were already stored).
        fetched: usize,
        /// Chunks in all.
        total: usize,
    },
    /// An artist's node countersigned a settlement.
    Settled {
        /// The artist.
        artist: ArtistKey,
        /// Settlement number.
        n: u64,
    },
    /// A peer sent bytes that failed verification and is banned for a while.
    PeerBanned {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
}

/// Options for a node, with defaults taken from the node's `config.toml`.
#[derive(Debug)]
pub struct NodeBuilder {
    local: Local,
    listen: Vec<String>,
    bootstrap: Vec<String>,
    mdns: Option<bool>,
    settle_every: Option<Duration>,
}

/// What one round of settlement did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettleReport {
    /// Settlements countersigned in this round: artist, number, cumulative tip totals.
    pub settled: Vec<SettledItem>,
    /// Artists not settled yet, and why (kept and retried later).
    pub pending: Vec<(ArtistKey, String)>,
}

/// One countersigned settlement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettledItem {
    /// The artist.
    pub artist: ArtistKey,
    /// Settlement number.
    pub n: u64,
    /// Cumulative tips per unit, as countersigned.
    pub totals: Vec<crate::ledger::Money>,
    /// Plays reported in this settlement.
    pub plays: u64,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    local: Arc<Local>,
    peer_id: String,
    task: tokio::task::JoinHandle<()>,
    /// One settlement round at a time (the periodic one and `settle()` calls).
    settling: tokio::sync::Mutex<()>,
    /// The node's player: one output at a time.
    player: std::sync::Mutex<Option<crate::player::Player>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the event loop (it owns the swarm).
        self.task.abort();
    }
}

/// A running node. Cheap to clone; the event loop stops when the last clone is dropped or
/// [`Node::shutdown`] is called.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("peer_id", &self.inner.peer_id).finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// Listen on this multiaddr (replaces the configured listen addresses; repeatable).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen.push(addr.into());
        self
    }

    /// Connect to this peer at start (added to the configured bootstrap peers; repeatable).
    pub fn bootstrap(mut self, addr: impl Into<String>) -> Self {
        self.bootstrap.push(addr.into());
        self
    }

    /// Turn mDNS discovery on or off (overrides the config).
    pub fn mdns(mut self, on: bool) -> Self {
        self.mdns = Some(on);
        self
    }

    /// Settle with artists' nodes this often (overrides `[ledger] settle_secs`; zero: never
    /// automatically).
    pub fn settle_every(mut self, every: Duration) -> Self {
        self.settle_every = Some(every);
        self
    }

    /// Starts the event loop. Must be called within a tokio runtime.
    pub async fn spawn(self) -> Result<Node> {
        let net = &self.local.config.network;
        let listen = if self.listen.is_empty() { net.listen.clone() } else { self.listen };
        let bootstrap: Vec<String> = net.bootstrap.iter().cloned().chain(self.bootstrap).collect();
        let settings = LoopSettings {
            listen,
            bootstrap,
            mdns: self.mdns.unwrap_or(net.mdns),
            max_connections: net.max_connections,
            window: self.local.config.download.window,
            ban_for: Duration::from_secs(self.local.config.download.ban_secs),
            storage_cap: self.local.config.storage.cap_bytes,
        };
        let local = Arc::new(self.local);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let event_loop = EventLoop::new(local.clone(), settings, rx, events.clone())?;
        let peer_id = event_loop.peer_id();
        let settle_every = self.settle_every.unwrap_or(Duration::from_secs(local.config.ledger.settle_secs));
        let task = tokio::spawn(event_loop.run());
        let settling = tokio::sync::Mutex::new(());
        let node = Node {
            inner: Arc::new(Inner {
                commands: tx,
                events,
                local,
                peer_id,
                task,
                settling,
                player: std::sync::Mutex::new(None),
            }),
        };
        if !settle_every.is_zero() {
            // Holds only a weak reference: the node still stops when its last handle drops.
            let weak = Arc::downgrade(&node.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + settle_every, settle_every);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    match (Node { inner }).settle().await {
                        Ok(r) if !r.pending.is_empty() => tracing::info!("settlement: {} pending", r.pending.len()),
                        Ok(_) => {}
                        Err(Error::NodeStopped) => break,
                        Err(e) => tracing::warn!("settlement round failed: {e}"),
                    }
                }
            });
        }
        Ok(node)
    }
}

impl Node {
    /// The sender of commands to the event loop (for the player's glue).
    pub(crate) fn commands(&self) -> &mpsc::Sender<Command> {
        &self.inner.commands
    }

    /// The node's player slot.
    pub(crate) fn player_slot(&self) -> &std::sync::Mutex<Option<crate::player::Player>> {
        &self.inner.player
    }

    /// A builder for a node over opened local state.
    pub fn builder(local: Local) -> NodeBuilder {
        NodeBuilder { local, listen: Vec::new(), bootstrap: Vec::new(), mdns: None, settle_every: None }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(make(tx)).await.map_err(|_| Error::NodeStopped)?;
        rx.await.map_err(|_| Error::NodeStopped)
    }

    /// This node's libp2p PeerId.
    pub fn peer_id(&self) -> &str {
        &self.inner.peer_id
    }

    /// The node's local state (store, keys, config).
    pub fn local(&self) -> &Local {
        &self.inner.local
    }

    /// The node's local state, shared.
    pub fn local_arc(&self) -> Arc<Local> {
        self.inner.local.clone()
    }

    /// Subscribes to node events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The addresses the node listens on (each with `/p2p/<peer id>`).
    pub async fn listen_addrs(&self) -> Result<Vec<String>> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// The first listen address, waiting up to `timeout` for the node to start listening.
    pub async fn wait_listening(&self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(a) = self.listen_addrs().await?.into_iter().next() {
                return Ok(a);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NetError::Listen {
                    addr: "any".into(),
                    reason: format!("not listening after {timeout:?}"),
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connects to a peer and waits until the connection is up.
    pub async fn dial(&self, addr: &str) -> Result<()> {
        let addr = addr.parse().map_err(|e| NetError::BadAddress(format!("{addr}: {e}")))?;
        Ok(self.ask(|reply| Command::Dial { addr, reply }).await??)
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// A summary of the node's state.
    pub async fn status(&self) -> Result<Status> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Publishes a folder as a release, then announces the new catalog to the network.
    pub async fn publish(&self, dir: &Path, opts: PublishOptions) -> Result<PublishReport> {
        let local = self.inner.local.clone();
        let dir = dir.to_path_buf();
        let report = tokio::task::spawn_blocking(move || local.publish(&dir, &opts, &|_| {}))
            .await
            .map_err(|_| Error::NodeStopped)??;
        self.announce().await?;
        Ok(report)
    }

    /// Announces this node's current catalog (gossip, DHT record, provider records).
    pub async fn announce(&self) -> Result<()> {
        let local = &self.inner.local;
        let (Some(signed), Ok(key)) = (local.own_catalog()?, local.identity.artist()) else { return Ok(()) };
        let announcement = Announcement::sign(&signed, key);
        self.ask(|reply| Command::Announce { announcement, reply }).await
    }

    /// Searches the catalogs this node knows for artists, releases and tracks.
    pub fn search(&self, query: &str) -> Result<Vec<Hit>> {
        Ok(search(&self.inner.local.store.catalogs()?, query))
    }

    /// Fetches a release or track (id or unique prefix) from the network, verifying every
    /// chunk, and pins it. Returns when every piece is stored.
    pub async fn fetch(&self, id: &str) -> Result<FetchReport> {
        let ids = self.content_ids(id)?;
        Ok(self.ask(|reply| Command::Fetch { ids, pin: true, reply }).await??)
    }

    /// Fetches and then writes the original files into `out_dir`.
    pub async fn get(&self, id: &str, out_dir: &Path) -> Result<(FetchReport, Vec<PathBuf>)> {
        let report = self.fetch(id).await?;
        let local = self.inner.local.clone();
        let (id, out) = (id.to_string(), out_dir.to_path_buf());
        let files =
            tokio::task::spawn_blocking(move || local.export(&id, &out)).await.map_err(|_| Error::NodeStopped)??;
        Ok((report, files))
    }

    fn content_ids(&self, id: &str) -> Result<Vec<ContentId>> {
        match self.inner.local.store.resolve(id) {
            Ok(Item::Content(cid, _)) => Ok(vec![cid]),
            Ok(Item::Release(_, r)) => Ok(r.tracks.iter().map(|t| t.id).chain(r.cover.iter().map(|c| c.id)).collect()),
            // Not in any known catalog: a full content id can still be fetched by hash.
            Err(e) => id.parse::<ContentId>().map(|c| vec![c]).map_err(|_| e.into()),
        }
    }

    /// Settles with every artist this node owes a settlement: allocates finished budget
    /// periods, prepares settlements (or resends those still awaiting a receipt), delivers
    /// them to the artists' nodes, and stores the countersigned receipts. Artists that cannot
    /// be reached are reported as pending and retried next time, across restarts too.
    pub async fn settle(&self) -> Result<SettleReport> {
        let _one_round = self.inner.settling.lock().await;
        let local = self.inner.local.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            local.ledger.prepare(&local.store, &local.identity, crate::time::unix_now())
        })
        .await
        .map_err(|_| Error::NodeStopped)??;
        let mut report = SettleReport { pending: prepared.skipped, ..SettleReport::default() };
        for doc in prepared.ready {
            let artist = doc.terms.artist;
            let answer = self.ask(|reply| Command::Settle { doc: doc.clone(), reply }).await?;
            let local = self.inner.local.clone();
            match answer {
                Ok(receipt) => {
                    tokio::task::spawn_blocking(move || local.ledger.accept_receipt(&receipt))
                        .await
                        .map_err(|_| Error::NodeStopped)??;
                    let t = &doc.terms;
                    let _ = self.inner.events.send(Event::Settled { artist, n: t.n });
                    report.settled.push(SettledItem {
                        artist,
                        n: t.n,
                        totals: t
                            .tips
                            .iter()
                            .map(|x| crate::ledger::Money { minor: x.total, unit: x.unit.clone() })
                            .collect(),
                        plays: t.plays.iter().map(|p| u64::from(p.plays)).sum(),
                    });
                }
                Err(NetError::SettleRejected { reason, rebuild: true, .. }) => {
                    tokio::task::spawn_blocking(move || local.ledger.discard_pending(&artist))
                        .await
                        .map_err(|_| Error::NodeStopped)??;
                    report.pending.push((artist, format!("{reason}; rebuilt at the next settlement")));
                }
                Err(e) => report.pending.push((artist, e.to_string())),
            }
        }
        Ok(report)
    }

    /// Stops the event loop and waits for it to finish.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}
