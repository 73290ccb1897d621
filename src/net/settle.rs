//! Settlement over libp2p (`/busker/settle/1.0.0`): a fan's node sends a signed
//! [`Settlement`] to the artist's node, which answers with a countersigned [`Receipt`].
//!
//! The artist's node is found as the DHT provider of the artist's settlement key (only a node
//! holding the artist key provides it); when the lookup finds nobody, connected peers are
//! asked directly, and any node without the artist key answers `NotArtist`. Frames are
//! length-prefixed postcard, bounded before anything is allocated.
//!
//! ```text
//! request  := len u32 LE | postcard(Settlement)      (len ≤ MAX_SETTLEMENT_BYTES)
//! response := len u32 LE | postcard(SettleResponse)  (len ≤ 64 KiB)
//! ```

use std::collections::HashSet;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{PeerId, StreamProtocol, kad};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::NetError;
use super::event_loop::{EventLoop, Work};
use crate::catalog::ids::ArtistKey;
use crate::ledger::settle::MAX_SETTLEMENT_BYTES;
use crate::ledger::{LedgerError, Receipt, SettleError, Settlement};

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/busker/settle/1.0.0");
const MAX_RESPONSE: usize = 64 << 10;
/// Most connected peers asked directly when the DHT finds no provider.
const MAX_DIRECT: usize = 16;

/// The artist node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettleResponse {
    /// Accepted (or accepted before): the countersigned receipt.
    Receipt(Receipt),
    /// Rejected. `rebuild`: the fan should rebuild the settlement (the artist's splits
    /// changed) rather than resend it.
    Rejected {
        /// Why, in one line.
        reason: String,
        /// Rebuild rather than resend.
        rebuild: bool,
    },
    /// This node does not hold the artist's key.
    NotArtist,
}

/// The DHT key the artist's node provides: BLAKE3-derived from the artist key.
pub(super) fn settle_key(artist: &ArtistKey) -> kad::RecordKey {
    kad::RecordKey::new(&blake3::derive_key("busker 2026-11 settlement provider v1", &artist.0))
}

/// Length-prefixed postcard frames.
#[derive(Clone, Debug, Default)]
pub struct SettleCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes > {limit}")));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for SettleCodec {
    type Protocol = StreamProtocol;
    type Request = Settlement;
    type Response = SettleResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Settlement> {
        Settlement::decode(&read_frame(io, MAX_SETTLEMENT_BYTES).await?).map_err(invalid)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SettleResponse> {
        postcard::from_bytes(&read_frame(io, MAX_RESPONSE).await?).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Settlement,
    ) -> std::io::Result<()> {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SettleResponse,
    ) -> std::io::Result<()> {
        write_frame(io, &postcard::to_stdvec(&res).map_err(invalid)?).await
    }
}

/// A settlement on its way to the artist's node.
pub(crate) struct SettleJob {
    doc: Settlement,
    reply: oneshot::Sender<Result<Receipt, NetError>>,
    /// Providers found, in order.
    candidates: Vec<PeerId>,
    tried: HashSet<PeerId>,
    /// The request in flight, if any.
    inflight: Option<OutboundRequestId>,
    /// The provider lookup finished.
    lookup_done: bool,
    /// Why the last peer failed.
    last_error: Option<String>,
}

impl EventLoop {
    /// An artist's node provides its settlement key so fans can find it.
    pub(super) fn provide_settlement(&mut self) {
        if let Some(artist) = self.local.identity.artist_key() {
            let _ = self.swarm.behaviour_mut().kad.start_providing(settle_key(&artist));
        }
    }

    /// Starts delivering a settlement to its artist's node.
    pub(super) fn start_settle(&mut self, doc: Settlement, reply: oneshot::Sender<Result<Receipt, NetError>>) {
        let artist = doc.terms.artist;
        if self.settle_jobs.contains_key(&artist) {
            let _ = reply.send(Err(NetError::Settle(format!("a settlement with {artist} is already under way"))));
            return;
        }
        let query = self.swarm.behaviour_mut().kad.get_providers(settle_key(&artist));
        self.settle_queries.insert(query, artist);
        let job = SettleJob {
            doc,
            reply,
            candidates: Vec::new(),
            tried: HashSet::new(),
            inflight: None,
            lookup_done: false,
            last_error: None,
        };
        self.settle_jobs.insert(artist, job);
    }

    /// Provider lookup results for a settlement key.
    pub(super) fn on_settle_providers(&mut self, query: kad::QueryId, providers: Vec<PeerId>, last: bool) {
        let Some(artist) = self.settle_queries.get(&query).copied() else { return };
        let me = *self.swarm.local_peer_id();
        if let Some(job) = self.settle_jobs.get_mut(&artist) {
            job.lookup_done |= last;
            for p in providers {
                if p != me && !job.candidates.contains(&p) {
                    job.candidates.push(p);
                }
            }
        }
        if last {
            self.settle_queries.remove(&query);
        }
        self.next_settle_peer(artist);
    }

    /// Asks the next provider found, then (once the lookup is over) connected peers not yet
    /// tried; gives up when there are none.
    fn next_settle_peer(&mut self, artist: ArtistKey) {
        let connected = self.connected_peers();
        let Some(job) = self.settle_jobs.get_mut(&artist) else { return };
        if job.inflight.is_some() {
            return;
        }
        let mut next = job.candidates.iter().copied().find(|p| !job.tried.contains(p));
        if next.is_none() && job.lookup_done && job.tried.len() < MAX_DIRECT {
            next = connected.into_iter().find(|p| !job.tried.contains(p));
        }
        match next {
            Some(peer) => {
                job.tried.insert(peer);
                let id = self.swarm.behaviour_mut().settle.send_request(&peer, job.doc.clone());
                job.inflight = Some(id);
                self.settle_requests.insert(id, artist);
            }
            None if job.lookup_done => {
                if let Some(job) = self.settle_jobs.remove(&artist) {
                    let why = job.last_error.unwrap_or_else(|| "no reachable peer holds the artist key".into());
                    let _ = job.reply.send(Err(NetError::ArtistUnreachable { artist, reason: why }));
                }
            }
            None => {}
        }
    }

    /// Settlement protocol events, both directions.
    pub(super) fn on_settle(&mut self, event: request_response::Event<Settlement, SettleResponse>) {
        match event {
            request_response::Event::Message { message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => self.serve_settlement(request, channel),
                request_response::Message::Response { request_id, response } => {
                    self.on_settle_answer(request_id, Ok(response))
                }
            },
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                self.on_settle_answer(request_id, Err(error.to_string()))
            }
            _ => {}
        }
    }

    fn on_settle_answer(&mut self, request_id: OutboundRequestId, answer: Result<SettleResponse, String>) {
        let Some(artist) = self.settle_requests.remove(&request_id) else { return };
        let Some(job) = self.settle_jobs.get_mut(&artist) else { return };
        job.inflight = None;
        match answer {
            Ok(SettleResponse::Receipt(r)) => match r.verify(&job.doc) {
                Ok(()) => {
                    if let Some(job) = self.settle_jobs.remove(&artist) {
                        let _ = job.reply.send(Ok(r));
                    }
                    return;
                }
                Err(e) => job.last_error = Some(e.to_string()),
            },
            Ok(SettleResponse::Rejected { reason, rebuild }) => {
                if let Some(job) = self.settle_jobs.remove(&artist) {
                    let _ = job.reply.send(Err(NetError::SettleRejected { artist, reason, rebuild }));
                }
                return;
            }
            Ok(SettleResponse::NotArtist) => {}
            Err(e) => job.last_error = Some(e),
        }
        self.next_settle_peer(artist);
    }

    /// An incoming settlement: if this node holds the artist key, check and countersign it on
    /// the blocking pool (it writes and flushes the database).
    fn serve_settlement(&mut self, doc: Settlement, channel: ResponseChannel<SettleResponse>) {
        let local = self.local.clone();
        if local.identity.artist_key() != Some(doc.terms.artist) {
            let _ = self.swarm.behaviour_mut().settle.send_response(channel, SettleResponse::NotArtist);
            return;
        }
        let work = self.work_tx.clone();
        tokio::task::spawn_blocking(move || {
            let response = match accept(&local, &doc) {
                Ok(receipt) => SettleResponse::Receipt(receipt),
                Err(e) => {
                    tracing::info!("settlement rejected: {e}");
                    let rebuild = matches!(e, LedgerError::Settle(SettleError::Splits(..)));
                    SettleResponse::Rejected { reason: e.to_string(), rebuild }
                }
            };
            let _ = work.blocking_send(Work::Settled { channel, response });
        });
    }

    /// Sends the answer computed on the blocking pool.
    pub(super) fn on_settled(&mut self, channel: ResponseChannel<SettleResponse>, response: SettleResponse) {
        if self.swarm.behaviour_mut().settle.send_response(channel, response).is_err() {
            tracing::debug!("fan went away before its receipt was sent");
        }
    }
}

fn accept(local: &crate::Local, doc: &Settlement) -> Result<Receipt, LedgerError> {
    let key = local.identity.artist().map_err(|e| LedgerError::Refused(e.to_string()))?;
    let catalog = local
        .own_catalog()
        .map_err(|e| LedgerError::Db(e.to_string()))?
        .ok_or_else(|| LedgerError::Refused("this artist has no catalog".into()))?;
    let today = u32::try_from(crate::time::unix_now() / crate::time::DAY).unwrap_or(u32::MAX);
    local.ledger.accept_settlement(doc, &catalog, key, today)
}
