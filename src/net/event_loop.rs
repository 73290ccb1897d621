//! The event loop: the one task that owns the swarm. It takes [`Command`]s from [`Node`]
//! handles, drives the swarm, and emits domain [`Event`]s. It never blocks on disk for long:
//! chunk reads and writes run on the blocking pool and come back as `Work`.
//!
//! [`Node`]: crate::node::Node

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::behaviour::{Behaviour, BehaviourEvent, CATALOG_TOPIC, SwarmSettings, build_swarm};
use super::fetch::{Download, Waiter};
use super::protocol::{Request, Response};
use super::settle::{SettleJob, SettleResponse};
use super::{Announcement, FetchReport, NetError, PeerInfo, Status};
use crate::Local;
use crate::catalog::ids::{ArtistKey, ContentId};
use crate::ledger::{Receipt, Settlement};
use crate::node::{Event, Via};

/// Results of blocking work coming back to the loop. Bounded like every channel here.
const WORK_QUEUE: usize = 256;

/// What a handle asks of the loop.
pub(crate) enum Command {
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<String>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Announce {
        announcement: Announcement,
        reply: oneshot::Sender<()>,
    },
    Fetch {
        ids: Vec<ContentId>,
        pin: bool,
        reply: oneshot::Sender<Result<FetchReport, NetError>>,
    },
    Settle {
        doc: Settlement,
        reply: oneshot::Sender<Result<Receipt, NetError>>,
    },
    /// A player reads `id`: fetch it from the feed's playhead on, and bump the feed.
    Stream {
        id: ContentId,
        feed: Arc<crate::player::Feed>,
    },
    /// A streaming reader's playhead moved.
    Playhead {
        id: ContentId,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Blocking work finished.
pub(super) enum Work {
    /// Chunks read for `peer`'s request (`chunks` of them were counted in `serving`).
    Serve { peer: PeerId, chunks: usize, channel: Reply, response: Response },
    /// An answer to a request we sent on a lane.
    Answer { peer: PeerId, pending: Pending, response: Response },
    /// A request sent on a lane that ended before it was answered.
    Unanswered { peer: PeerId, request: Request, pending: Pending },
    /// A lane to `peer` ended (`unsupported`: the peer does not speak lanes).
    LaneClosed { peer: PeerId, unsupported: bool },
    /// A request `peer` sent on its lane, to be answered through `reply`.
    Inbound { peer: PeerId, request: Request, reply: oneshot::Sender<Response> },
    /// Chunks received in one response were checked: (index, length, Ok(true): stored;
    /// Ok(false): wrong hash).
    ChunksChecked { id: ContentId, peer: PeerId, results: Vec<super::fetch::Checked> },
    /// A completed fetch was pinned and flushed.
    FetchFinished(super::fetch::Finished),
    /// An incoming settlement was checked (and stored if accepted).
    Settled { channel: ResponseChannel<SettleResponse>, response: SettleResponse },
}

/// Where the answer to a peer's request goes: its request-response substream or its lane.
pub(super) enum Reply {
    Exchange(ResponseChannel<Response>),
    Lane(oneshot::Sender<Response>),
}

/// What an outbound request was for.
pub(super) enum Pending {
    CatalogList,
    /// `gossip`: the announcement being validated, accepted (forwarded) only once this
    /// catalog is fetched and verified.
    Catalog {
        artist: ArtistKey,
        via: Via,
        expect: Option<Announcement>,
        gossip: Option<gossipsub::MessageId>,
    },
    Manifest {
        id: ContentId,
    },
    /// Chunks `idxs` of content `id`, asked in one request.
    Chunks {
        id: ContentId,
        idxs: Vec<usize>,
    },
    /// Availability of each of `ids`, asked in one request.
    Have {
        ids: Vec<ContentId>,
    },
}

/// Settings the loop runs with.
#[derive(Clone, Debug)]
pub(crate) struct LoopSettings {
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub mdns: bool,
    pub max_connections: u32,
    pub window: usize,
    pub ban_for: Duration,
    pub storage_cap: u64,
}

pub(crate) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) local: Arc<Local>,
    pub(super) settings: LoopSettings,
    commands: mpsc::Receiver<Command>,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) work_tx: mpsc::Sender<Work>,
    work_rx: mpsc::Receiver<Work>,
    pub(super) pending: HashMap<OutboundRequestId, (PeerId, Pending)>,
    dials: HashMap<ConnectionId, (String, oneshot::Sender<Result<(), NetError>>)>,
    pub(super) downloads: HashMap<ContentId, Download>,
    pub(super) waiters: Vec<Waiter>,
    pub(super) bans: HashMap<PeerId, Instant>,
    pub(super) provider_queries: HashMap<kad::QueryId, ContentId>,
    pub(super) topic: gossipsub::IdentTopic,
    /// The last announcement gossiped, so an unchanged catalog is not re-published.
    pub(super) last_announced: Option<Announcement>,
    /// Peers connected now, each with the address of a connection to it.
    pub(super) connected: HashMap<PeerId, Multiaddr>,
    /// Chunks and bytes served to peers (upload accounting).
    served: (u64, u64),
    /// Per-node seed for rarest-first tie-breaking.
    pub(super) seed: u64,
    /// Recent answers to availability polls about stored content (see `have.rs`).
    pub(super) stored_haves: super::have::StoredHaves,
    /// Recently served chunks: to whom and when (super-seeding; bounded).
    pub(super) recently_served: HashMap<ContentId, (PeerId, Instant)>,
    /// Requests each peer could have been declined (super-seeding fairness counter).
    pub(super) declines: HashMap<PeerId, u32>,
    /// Chunks being read for each peer's requests (bounded per peer, so a peer that floods
    /// chunk requests cannot make the node hold gigabytes of reads in memory).
    pub(super) serving: HashMap<PeerId, usize>,
    /// Settlements on their way to artists' nodes, and their lookups and requests.
    pub(super) settle_jobs: HashMap<ArtistKey, SettleJob>,
    pub(super) settle_queries: HashMap<kad::QueryId, ArtistKey>,
    pub(super) settle_requests: HashMap<OutboundRequestId, ArtistKey>,
    /// Lanes to peers, for chunk and availability requests.
    pub(super) lanes: super::lane::Lanes,
}

impl EventLoop {
    pub(crate) fn new(
        local: Arc<Local>,
        settings: LoopSettings,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<Event>,
    ) -> Result<Self, NetError> {
        let swarm_settings = SwarmSettings {
            mdns: settings.mdns,
            max_connections: settings.max_connections,
            idle_timeout: Duration::from_secs(120),
        };
        let mut swarm = build_swarm(super::keypair(&local.identity)?, &swarm_settings)?;
        for addr in &settings.listen {
            let ma: Multiaddr = addr.parse().map_err(|e| NetError::BadAddress(format!("{addr}: {e}")))?;
            swarm.listen_on(ma).map_err(|e| NetError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        }
        let topic = gossipsub::IdentTopic::new(CATALOG_TOPIC);
        swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| NetError::Swarm(e.to_string()))?;
        let (work_tx, work_rx) = mpsc::channel(WORK_QUEUE);
        let local_peer_bytes = swarm.local_peer_id().to_bytes();
        let lanes = super::lane::Lanes::new(swarm.behaviour().lanes.new_control(), work_tx.clone());
        Ok(Self {
            swarm,
            local,
            settings,
            commands,
            events,
            work_tx,
            work_rx,
            pending: HashMap::new(),
            dials: HashMap::new(),
            downloads: HashMap::new(),
            waiters: Vec::new(),
            bans: HashMap::new(),
            provider_queries: HashMap::new(),
            topic,
            last_announced: None,
            connected: HashMap::new(),
            served: (0, 0),
            stored_haves: HashMap::new(),
            recently_served: HashMap::new(),
            declines: HashMap::new(),
            serving: HashMap::new(),
            settle_jobs: HashMap::new(),
            settle_queries: HashMap::new(),
            settle_requests: HashMap::new(),
            lanes,
            seed: u64::from_le_bytes(blake3::hash(&local_peer_bytes).as_bytes()[..8].try_into().unwrap_or([0; 8])),
        })
    }

    pub(crate) fn peer_id(&self) -> String {
        self.swarm.local_peer_id().to_string()
    }

    pub(super) fn emit(&self, event: Event) {
        // No subscribers is fine; a lagging subscriber is told by the broadcast channel.
        let _ = self.events.send(event);
    }

    /// Runs until shutdown. Local commands first (`biased`), then finished work, the timer, and
    /// the network.
    pub(crate) async fn run(mut self) {
        self.start();
        // Drives downloads: availability polls, provider lookups, stall checks.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.stop();
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                Some(work) = self.work_rx.recv() => self.handle_work(work),
                // Before swarm events: under load the swarm is always ready and would starve it.
                _ = tick.tick() => self.on_tick(),
                event = self.swarm.select_next_some() => self.handle_event(event),
            }
        }
    }

    fn start(&mut self) {
        for addr in self.settings.bootstrap.clone() {
            match addr.parse::<Multiaddr>() {
                Ok(ma) => {
                    if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = ma.iter().last() {
                        self.swarm.behaviour_mut().kad.add_address(&peer, ma.clone());
                    }
                    if let Err(e) = self.swarm.dial(ma) {
                        tracing::warn!("bootstrap {addr}: {e}");
                    }
                }
                Err(e) => tracing::warn!("bootstrap address {addr}: {e}"),
            }
        }
        self.provide_all();
        self.provide_settlement();
        self.resume_downloads();
    }

    fn stop(&mut self) {
        if let Err(e) = self.local.store.flush() {
            tracing::warn!("flushing store at shutdown: {e}");
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(NetError::Swarm("node shut down".into())));
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, reply } => {
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr.to_string(), reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial { addr: addr.to_string(), reason: e.to_string() }));
                    }
                }
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs());
            }
            Command::Peers { reply } => {
                let peers = self.connected.iter().map(|(p, a)| PeerInfo { peer: p.to_string(), addr: a.to_string() });
                let _ = reply.send(peers.collect());
            }
            Command::Status { reply } => {
                let (chunks, bytes) = self.local.store.usage().unwrap_or((0, 0));
                let _ = reply.send(Status {
                    peer_id: self.peer_id(),
                    listen: self.listen_addrs(),
                    peers: self.connected.len(),
                    gossip_peers: self.swarm.behaviour().gossipsub.mesh_peers(&self.topic.hash()).count(),
                    catalogs: self.local.store.catalog_list().map(|l| l.len()).unwrap_or(0),
                    chunks,
                    bytes,
                    downloads: self.downloads.len(),
                    served_chunks: self.served.0,
                    served_bytes: self.served.1,
                });
            }
            Command::Announce { announcement, reply } => {
                self.announce(announcement);
                let _ = reply.send(());
            }
            Command::Fetch { ids, pin, reply } => self.start_fetch(ids, pin, reply),
            Command::Settle { doc, reply } => self.start_settle(doc, reply),
            Command::Stream { id, feed } => self.start_stream(id, feed),
            Command::Playhead { id } => self.on_playhead(id),
            Command::Shutdown { .. } => {}
        }
    }

    fn listen_addrs(&self) -> Vec<String> {
        let me = self.swarm.local_peer_id();
        self.swarm.listeners().map(|a| format!("{a}/p2p/{me}")).collect()
    }

    /// Sends chunks read for a peer, counting them as served.
    pub(super) fn send_served(&mut self, channel: Reply, response: Response) {
        if let Response::Each(entries) = &response {
            for e in entries {
                if let Response::Bytes(b) = e {
                    self.served.0 += 1;
                    self.served.1 += b.len() as u64;
                }
            }
        }
        if !self.reply(channel, response) {
            tracing::debug!("peer went away before its response was sent");
        }
    }

    fn handle_work(&mut self, work: Work) {
        match work {
            Work::Serve { peer, chunks, channel, response } => {
                if let Some(n) = self.serving.get_mut(&peer) {
                    *n = n.saturating_sub(chunks);
                    if *n == 0 {
                        self.serving.remove(&peer);
                    }
                }
                self.send_served(channel, response);
            }
            Work::Answer { peer, pending, response } => self.on_response(peer, pending, response),
            Work::Unanswered { peer, request, pending } => self.on_unanswered(peer, request, pending),
            Work::LaneClosed { peer, unsupported } => self.on_lane_closed(peer, unsupported),
            Work::Inbound { peer, request, reply } => self.serve(peer, request, Reply::Lane(reply)),
            Work::ChunksChecked { id, peer, results } => self.on_chunks_checked(id, peer, results),
            Work::FetchFinished(done) => self.on_fetch_finished(done),
            Work::Settled { channel, response } => self.on_settled(channel, response),
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.bans.retain(|_, until| *until > now);
        self.local.store.forget_stale_chunks();
        self.recently_served.retain(|_, (_, at)| now.duration_since(*at) < super::catalogs::PASS_ON_WINDOW);
        let ids: Vec<ContentId> = self.downloads.keys().copied().collect();
        for id in ids {
            self.drive(id);
        }
    }

    fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let addr = format!("{address}/p2p/{}", self.swarm.local_peer_id());
                tracing::info!("listening on {addr}");
                self.emit(Event::Listening { addr });
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                if self.bans.get(&peer_id).is_some_and(|t| *t > Instant::now()) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 {
                    self.connected.insert(peer_id, endpoint.get_remote_address().clone());
                    self.emit(Event::PeerConnected { peer: peer_id.to_string() });
                    self.on_peer_connected(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                self.declines.remove(&peer_id);
                self.drop_lane(&peer_id);
                self.emit(Event::PeerDisconnected { peer: peer_id.to_string() });
                self.on_peer_gone(peer_id);
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial { addr, reason: error.to_string() }));
                }
            }
            SwarmEvent::Behaviour(ev) => self.handle_behaviour(ev),
            _ => {}
        }
    }

    fn handle_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (peer, addr) in list {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    if !self.connected.contains_key(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                self.on_gossip(propagation_source, message_id, &message.data);
            }
            BehaviourEvent::Kad(ev) => self.on_kad(ev),
            BehaviourEvent::Exchange(ev) => self.on_exchange(ev),
            BehaviourEvent::Settle(ev) => self.on_settle(ev),
            _ => {}
        }
    }

    /// True if `peer` is connected.
    pub(super) fn is_connected(&self, peer: &PeerId) -> bool {
        self.connected.contains_key(peer)
    }

    /// Connected peers, for adding to downloads.
    pub(super) fn connected_peers(&self) -> HashSet<PeerId> {
        self.connected.keys().copied().collect()
    }
}
