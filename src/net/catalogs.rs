//! Catalog discovery in the event loop: serving requests, gossip announcements (validated
//! before forwarding), catalog sync with new peers, DHT records and provider records.

use libp2p::{PeerId, gossipsub, kad};

use super::announce::{Announcement, artist_of_key, catalog_key};
use super::event_loop::{EventLoop, Pending, Reply, Work};
use super::protocol::{Request, Response};
use crate::catalog::ids::{ArtistKey, ContentId};
use crate::catalog::{SignedCatalog, StoreError};
use crate::node::{Event, Via};

/// For this long after sending a chunk to one connected peer, a node declines to send the
/// same chunk to another: the first recipient can pass it on. This keeps a seeder's upload near
/// one copy when many fans fetch at once (BitTorrent calls it super-seeding). A lone fan, or a
/// fan asking later, is always served.
pub(super) const PASS_ON_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a requester leaves a chunk alone at a peer that declined it: by then the peer it
/// was sent to has usually announced it (availability is polled every 50 ms), and if not, the
/// next ask may be served (see [`DECLINE_EVERY`]).
pub(super) const DECLINED_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// Of the requests a node could decline, it serves one in this many anyway.
const DECLINE_EVERY: u32 = 3;
/// Most chunks being read for one peer at a time (16 MiB). A fetching node keeps at most its
/// window (16 chunks by default) in flight to one peer; requests beyond this are declined.
const MAX_SERVING_PER_PEER: usize = 64;
/// Most entries kept for [`PASS_ON_WINDOW`] decisions.
const RECENTLY_SERVED_CAP: usize = 65_536;

impl EventLoop {
    /// Answers a peer's request. Chunk reads (and their verification) run on the blocking pool,
    /// unless every chunk asked for is still in memory.
    pub(super) fn serve(&mut self, peer: PeerId, request: Request, channel: Reply) {
        let store = &self.local.store;
        let found = |r: Result<Option<Vec<u8>>, _>| match r {
            Ok(Some(b)) => Response::Bytes(b.into()),
            _ => Response::NotFound,
        };
        let response = match request {
            Request::Catalog(artist) => found(store.catalog_bytes(&artist)),
            Request::ListCatalogs => Response::Catalogs(store.catalog_list().unwrap_or_default()),
            Request::Manifest(id) => found(store.manifest_bytes(&id)),
            // Polled often by fellow downloaders: answered from memory where possible.
            Request::Have(ids) => {
                let now = std::time::Instant::now();
                Response::Each(ids.iter().map(|id| self.have_answer(id, now)).collect())
            }
            Request::Chunks(ids) => return self.serve_chunks(peer, ids, channel),
        };
        self.reply(channel, response);
    }

    /// Answers a chunk request: declines chunks the peer can get from another fan (see
    /// [`PASS_ON_WINDOW`]), and reads the rest on the blocking pool (or answers at once when
    /// all of them were received a moment ago and are still in memory).
    fn serve_chunks(&mut self, peer: PeerId, ids: Vec<ContentId>, channel: Reply) {
        let now = std::time::Instant::now();
        // Only an artist's node declines (so only it remembers what it served): its upload is
        // the scarce one. A fan that holds the content serves whoever asks, which is what lets
        // a swarm finish together.
        let origin = self.local.identity.artist_key().is_some();
        let mut wanted: Vec<Option<ContentId>> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((first, at)) = self.recently_served.get(&id) {
                let passable = *first != peer && now.duration_since(*at) < PASS_ON_WINDOW && self.is_connected(first);
                // Decline two of every three such requests from a peer, never all: the
                // duplicate upload drops to a third, and no requester depends on one source.
                let count = self.declines.entry(peer).or_default();
                *count += u32::from(passable);
                if passable && !(*count).is_multiple_of(DECLINE_EVERY) {
                    wanted.push(None);
                    continue;
                }
            }
            if origin && self.recently_served.len() < RECENTLY_SERVED_CAP {
                self.recently_served.insert(id, (peer, now));
            }
            wanted.push(Some(id));
        }
        let chunks = wanted.iter().filter(|w| w.is_some()).count();
        let serving = self.serving.get(&peer).copied().unwrap_or(0);
        if chunks == 0 || serving + chunks > MAX_SERVING_PER_PEER {
            // Over the bound the whole request is declined: "busy, ask again shortly".
            tracing::debug!("declining {peer}'s chunk request ({serving} chunks being read for it)");
            let answers = wanted.iter().map(|_| Response::Declined).collect();
            self.reply(channel, Response::Each(answers));
            return;
        }
        // Chunks fellow fans ask for are mostly ones this node received a moment ago: when
        // every one is still in memory, answer now instead of waking a blocking thread.
        let mut answers = Vec::with_capacity(wanted.len());
        for w in &wanted {
            match w {
                None => answers.push(Response::Declined),
                Some(id) => match self.local.store.chunk_in_memory(id) {
                    Ok(Some(bytes)) => answers.push(Response::Bytes(bytes)),
                    _ => break,
                },
            }
        }
        if answers.len() == wanted.len() {
            return self.send_served(channel, Response::Each(answers));
        }
        *self.serving.entry(peer).or_default() += chunks;
        let (local, work) = (self.local.clone(), self.work_tx.clone());
        tokio::task::spawn_blocking(move || {
            // The answers found in memory stand; the rest are read from here on.
            let rest =
                wanted[answers.len()..].iter().map(|w| w.map_or(Response::Declined, |id| read_for(&local, &id, &peer)));
            answers.extend(rest);
            let response = Response::Each(answers);
            let _ = work.blocking_send(Work::Serve { peer, chunks, channel, response });
        });
    }

    /// Sends the answer to a peer's request; false if the peer is gone.
    pub(super) fn reply(&mut self, to: Reply, response: Response) -> bool {
        match to {
            Reply::Exchange(channel) => self.swarm.behaviour_mut().exchange.send_response(channel, response).is_ok(),
            Reply::Lane(reply) => reply.send(response).is_ok(),
        }
    }

    /// Publishes our announcement: gossip, DHT record, and provider records.
    pub(super) fn announce(&mut self, a: Announcement) {
        let fresh = self.last_announced != Some(a);
        self.last_announced = Some(a);
        let b = self.swarm.behaviour_mut();
        if fresh && let Err(e) = b.gossipsub.publish(self.topic.clone(), a.encode()) {
            tracing::info!("gossip announcement not sent now ({e}); peers will sync on connect");
        }
        let key = kad::RecordKey::new(&catalog_key(&a.artist));
        let _ = b.kad.put_record(kad::Record::new(key.clone(), a.encode()), kad::Quorum::One);
        let _ = b.kad.start_providing(key);
        self.provide_all();
    }

    /// Registers as provider of every pinned piece of content.
    pub(super) fn provide_all(&mut self) {
        let pinned = self.local.store.pinned().unwrap_or_default();
        for id in pinned {
            let _ = self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&id.0));
        }
    }

    /// Validates an announcement before gossipsub may forward it: the signature must verify,
    /// it must be newer than what we hold, and the catalog it names must be fetched from the
    /// sender and verified. Only then is it accepted (and so forwarded), which means every
    /// node that forwards an announcement can also serve the catalog.
    pub(super) fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, data: &[u8]) {
        match Announcement::decode(data) {
            Err(e) => {
                self.emit(Event::AnnouncementRejected { from: source.to_string(), reason: e.to_string() });
                self.validated(&id, source, gossipsub::MessageAcceptance::Reject);
            }
            Ok(a) => match self.local.store.catalog_seq(&a.artist) {
                Ok(Some(have)) if have >= a.seq => {
                    self.emit(Event::AnnouncementIgnored { artist: a.artist, seq: a.seq });
                    self.validated(&id, source, gossipsub::MessageAcceptance::Ignore);
                }
                _ => {
                    let pending =
                        Pending::Catalog { artist: a.artist, via: Via::Gossip, expect: Some(a), gossip: Some(id) };
                    self.request(source, Request::Catalog(a.artist), pending);
                }
            },
        }
    }

    /// Reports a gossip validation result (forward, drop, or drop and penalise the sender).
    pub(super) fn validated(
        &mut self,
        id: &gossipsub::MessageId,
        source: PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, &source, acceptance);
    }

    /// A new peer: learn which catalogs it has, and let downloads use it.
    pub(super) fn on_peer_connected(&mut self, peer: PeerId) {
        self.request(peer, Request::ListCatalogs, Pending::CatalogList);
        let ids: Vec<ContentId> = self.downloads.keys().copied().collect();
        for id in ids {
            self.add_download_peer(id, peer, false);
        }
    }

    pub(super) fn on_catalog_list(&mut self, peer: PeerId, list: Vec<(ArtistKey, u64)>) {
        for (artist, seq) in list {
            let have = self.local.store.catalog_seq(&artist).ok().flatten();
            if have.is_none_or(|h| h < seq) {
                self.request(
                    peer,
                    Request::Catalog(artist),
                    Pending::Catalog { artist, via: Via::Sync, expect: None, gossip: None },
                );
            }
        }
    }

    /// Verifies a fetched catalog against the artist key (and the announcement, if any), then
    /// stores it if it is newer.
    pub(super) fn on_catalog_bytes(
        &mut self,
        peer: PeerId,
        artist: ArtistKey,
        via: Via,
        expect: Option<Announcement>,
        gossip: Option<gossipsub::MessageId>,
        bytes: &[u8],
    ) {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let outcome = match SignedCatalog::verify_for(bytes, &artist) {
            Err(e) => {
                tracing::warn!("catalog from {peer} rejected: {e}");
                if bytes.is_empty() { Ignore } else { Reject }
            }
            Ok(signed)
                if expect
                    .is_some_and(|a| signed.seq() < a.seq || (signed.seq() == a.seq && signed.hash() != a.hash)) =>
            {
                tracing::warn!("catalog from {peer} does not match its announcement");
                Ignore
            }
            Ok(signed) => {
                let seq = signed.seq();
                match self.local.store.put_catalog(signed) {
                    Ok(()) => {
                        self.emit(Event::CatalogUpdated { artist, seq, via });
                        Accept
                    }
                    Err(e) => {
                        tracing::debug!("catalog {artist} v{seq} from {peer} not stored: {e}");
                        Ignore
                    }
                }
            }
        };
        if let Some(id) = gossip {
            self.validated(&id, peer, outcome);
        }
    }

    /// DHT events: validate records before storing them; route provider results to fetches.
    pub(super) fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest { request: kad::InboundRequest::PutRecord { record: Some(record), .. } } => {
                let Ok(a) = Announcement::decode(&record.value) else { return };
                let kad = &mut self.swarm.behaviour_mut().kad;
                let held = kad::store::RecordStore::get(kad.store_mut(), &record.key)
                    .and_then(|r| Announcement::decode(&r.value).ok())
                    .map(|h| h.seq);
                let valid = artist_of_key(record.key.as_ref()) == Some(a.artist);
                if valid && held.is_none_or(|h| a.seq > h) {
                    let _ = kad::store::RecordStore::put(kad.store_mut(), record);
                }
            }
            kad::Event::InboundRequest { request: kad::InboundRequest::AddProvider { record: Some(record) } }
                if record.key.as_ref().len() <= 64 =>
            {
                let _ = kad::store::RecordStore::add_provider(self.swarm.behaviour_mut().kad.store_mut(), record);
            }
            kad::Event::OutboundQueryProgressed {
                id, result: kad::QueryResult::GetProviders(result), step, ..
            } => {
                if self.settle_queries.contains_key(&id) {
                    let providers = match result {
                        Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => providers.into_iter().collect(),
                        _ => Vec::new(),
                    };
                    return self.on_settle_providers(id, providers, step.last);
                }
                let Some(content) = self.provider_queries.get(&id).copied() else { return };
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
                    let me = *self.swarm.local_peer_id();
                    for p in providers.into_iter().filter(|p| *p != me) {
                        self.add_download_peer(content, p, true);
                    }
                }
                if step.last {
                    self.provider_queries.remove(&id);
                    self.provider_query_done(content);
                }
            }
            _ => {}
        }
    }
}

/// Reads chunk `id` to send to `peer`, hashed again unless it was verified moments ago or its
/// published file is provably untouched since it was hashed (see `catalog::sources`): we
/// never serve bytes we would not accept. A chunk damaged on our disk is dropped from the
/// store (a later fetch repairs it) and answered as not found.
fn read_for(local: &crate::Local, id: &ContentId, peer: &PeerId) -> Response {
    match local.store.read_chunk_to_serve(id) {
        Ok(bytes) => Response::Bytes(bytes),
        Err(e @ StoreError::CorruptChunk(_)) => {
            tracing::warn!("not serving chunk {id} to {peer}: {e}; dropped it from the store");
            let _ = local.store.forget_damaged_chunk(id);
            Response::NotFound
        }
        Err(e) => {
            tracing::debug!("not serving chunk {id} to {peer}: {e}");
            Response::NotFound
        }
    }
}
