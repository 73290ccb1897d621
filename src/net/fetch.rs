//! Downloads in the event loop: manifests first, then chunks from every peer that has them,
//! each verified before it is stored. Scheduling decisions come from [`Schedule`].

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::{PeerId, kad};
use tokio::sync::oneshot;

use super::event_loop::{EventLoop, Pending, Work};
use super::protocol::{MAX_BATCH, Request, Response};
use super::schedule::{Order, Schedule};
use super::{FetchReport, NetError};
use crate::catalog::StoreError;
use crate::catalog::chunk::{CHUNK, Manifest, chunk_ranges};
use crate::catalog::ids::ContentId;
use crate::node::Event;

/// Provider lookups without progress before a caller's fetch gives up. A fetch nobody waits
/// for (resumed after a restart) keeps waiting for peers instead.
const MAX_LOOKUPS: u32 = 3;
/// Least time between two provider lookups for one download.
const LOOKUP_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// One piece of content being fetched.
pub(super) struct Download {
    pin: bool,
    pub(super) manifest: Option<Manifest>,
    pub(super) schedule: Option<Schedule<PeerId>>,
    pub(super) candidates: HashSet<PeerId>,
    manifest_asked: HashSet<PeerId>,
    manifest_in_flight: bool,
    lookup_running: bool,
    last_lookup: Option<Instant>,
    lookups: u32,
    fetched: usize,
    fetched_bytes: u64,
    per_peer: HashMap<PeerId, usize>,
    /// Availability requests: when each peer was last asked, and which are in flight.
    pub(super) have_asked: HashMap<PeerId, Instant>,
    pub(super) have_in_flight: HashSet<PeerId>,
    /// Providers found in the DHT: they hold the whole content.
    providers: HashSet<PeerId>,
    /// Players reading this content as it arrives.
    pub(super) feeds: Vec<std::sync::Arc<crate::player::Feed>>,
}

/// A received chunk, checked: its index, its length, and whether it matched its hash and was
/// stored (`Ok(true)`), failed its hash (`Ok(false)`), or could not be stored.
pub(super) type Checked = (usize, usize, Result<bool, StoreError>);

/// A finished fetch on its way back from the blocking pool.
pub(crate) struct Finished {
    id: ContentId,
    pin: bool,
    fetched: usize,
    fetched_bytes: u64,
    total: usize,
    per_peer: Vec<(String, usize)>,
}

/// A caller waiting for a set of content ids.
pub(super) struct Waiter {
    pub(super) ids: HashSet<ContentId>,
    report: FetchReport,
    pub(super) reply: oneshot::Sender<Result<FetchReport, NetError>>,
}

impl EventLoop {
    pub(super) fn start_fetch(
        &mut self,
        ids: Vec<ContentId>,
        pin: bool,
        reply: oneshot::Sender<Result<FetchReport, NetError>>,
    ) {
        let mut waiter =
            Waiter { ids: HashSet::new(), report: FetchReport { items: ids.len(), ..FetchReport::default() }, reply };
        for id in ids {
            if let Some(d) = self.downloads.get_mut(&id) {
                d.pin |= pin;
                waiter.ids.insert(id);
                continue;
            }
            match self.local.store.is_complete(&id) {
                Ok(true) => {
                    if pin {
                        let _ = self.local.store.finish_fetch(&id, true);
                    }
                    let total = self.local.store.manifest(&id).ok().flatten().map_or(0, |m| m.chunks.len());
                    waiter.report.total_chunks += total;
                }
                _ => {
                    waiter.ids.insert(id);
                    self.start_download(id, pin);
                }
            }
        }
        if waiter.ids.is_empty() {
            let _ = waiter.reply.send(Ok(waiter.report));
        } else {
            self.waiters.push(waiter);
            let ids: Vec<ContentId> = self.downloads.keys().copied().collect();
            for id in ids {
                self.drive(id);
            }
        }
    }

    /// Resumes fetches that were running when the node last stopped.
    pub(super) fn resume_downloads(&mut self) {
        for (id, pin) in self.local.store.wanted().unwrap_or_default() {
            tracing::info!("resuming fetch of {id}");
            self.start_download(id, pin);
        }
    }

    pub(super) fn start_download(&mut self, id: ContentId, pin: bool) {
        if let Err(e) = self.local.store.want(&id, pin) {
            tracing::warn!("cannot record fetch of {id}: {e}");
        }
        let mut d = Download {
            pin,
            manifest: None,
            schedule: None,
            candidates: HashSet::new(),
            manifest_asked: HashSet::new(),
            manifest_in_flight: false,
            lookup_running: false,
            last_lookup: None,
            lookups: 0,
            fetched: 0,
            fetched_bytes: 0,
            per_peer: HashMap::new(),
            have_asked: HashMap::new(),
            have_in_flight: HashSet::new(),
            providers: HashSet::new(),
            feeds: Vec::new(),
        };
        let now = Instant::now();
        d.candidates = self.connected_peers().into_iter().filter(|p| !self.is_banned(p, now)).collect();
        self.downloads.insert(id, d);
        if let Ok(Some(m)) = self.local.store.manifest(&id) {
            self.set_manifest(id, m);
        }
        self.lookup_providers(id);
    }

    fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.bans.get(peer).is_some_and(|t| *t > now)
    }

    fn lookup_providers(&mut self, id: ContentId) {
        let Some(d) = self.downloads.get_mut(&id) else { return };
        if d.lookup_running || d.last_lookup.is_some_and(|t| t.elapsed() < LOOKUP_EVERY) {
            return;
        }
        d.lookup_running = true;
        d.last_lookup = Some(Instant::now());
        d.lookups += 1;
        let q = self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&id.0));
        self.provider_queries.insert(q, id);
    }

    pub(super) fn provider_query_done(&mut self, id: ContentId) {
        if let Some(d) = self.downloads.get_mut(&id) {
            d.lookup_running = false;
        }
        self.drive(id);
    }

    pub(super) fn add_download_peer(&mut self, id: ContentId, peer: PeerId, provider: bool) {
        if self.is_banned(&peer, Instant::now()) {
            return;
        }
        if let Some(d) = self.downloads.get_mut(&id) {
            d.candidates.insert(peer);
            if provider {
                d.providers.insert(peer);
            }
            if let Some(s) = &mut d.schedule {
                if provider { s.add_complete_peer(peer) } else { s.add_peer(peer) }
            }
        }
        self.drive(id);
    }

    pub(super) fn on_peer_gone(&mut self, peer: PeerId) {
        let ids: Vec<ContentId> = self.downloads.keys().copied().collect();
        for id in ids {
            if let Some(d) = self.downloads.get_mut(&id) {
                d.candidates.remove(&peer);
                if let Some(s) = &mut d.schedule {
                    s.remove_peer(&peer);
                }
            }
            self.drive(id);
        }
    }

    fn set_manifest(&mut self, id: ContentId, m: Manifest) {
        let store = &self.local.store;
        // Bulk fetching: rarest first, ranked per node so fans fetching together diverge.
        let seed = u64::from_le_bytes(id.0[..8].try_into().unwrap_or([0; 8])) ^ self.seed;
        let schedule = Schedule::new(
            m.chunks.len(),
            |i| store.has_intact_chunk(&m.chunks[i]).unwrap_or(false),
            self.settings.window,
            self.settings.ban_for,
            Order::RarestFirst { seed },
        );
        if let Some(d) = self.downloads.get_mut(&id) {
            let mut s = schedule;
            for p in &d.candidates {
                if d.providers.contains(p) { s.add_complete_peer(*p) } else { s.add_peer(*p) }
            }
            if let Some(f) = d.feeds.last() {
                s.stream_from(f.playhead());
            }
            d.schedule = Some(s);
            d.manifest = Some(m);
            d.feeds.iter().for_each(|f| f.bump());
        }
    }

    /// Sends whatever requests the download's state allows; finishes or fails it.
    pub(super) fn drive(&mut self, id: ContentId) {
        let elsewhere = self.in_flight_elsewhere(&id);
        self.drive_with(id, &elsewhere);
    }

    /// [`Self::drive`], given the chunk requests other downloads have in flight to each peer.
    pub(super) fn drive_with(&mut self, id: ContentId, elsewhere: &HashMap<PeerId, usize>) {
        let now = Instant::now();
        let waited_for = self.has_waiter(&id);
        let Some(d) = self.downloads.get_mut(&id) else { return };
        tracing::trace!(
            "drive {}: manifest {} candidates {:?} in flight {} sched {:?}",
            id.short(),
            d.manifest.is_some(),
            d.candidates,
            d.manifest_in_flight,
            d.schedule.as_ref().map(|s| (s.done(), s.total()))
        );
        let mut requests: Vec<(PeerId, Request, Pending)> = Vec::new();
        let have_due: Vec<PeerId> = d.candidates.iter().filter(|p| d.have_due(p, now)).copied().collect();
        match (&d.manifest, &mut d.schedule) {
            (Some(m), Some(s)) => {
                let shared = |p: &PeerId| elsewhere.get(p).copied().unwrap_or(0);
                // A bulk fetch asks for up to MAX_BATCH chunks per request; a stream asks one
                // at a time, so the chunk the decoder waits for arrives on its own.
                let batch = if s.is_streaming() { 1 } else { MAX_BATCH };
                let mut batches: Vec<(PeerId, Vec<usize>)> = Vec::new();
                for (peer, idx) in s.next_sharing(now, shared) {
                    match batches.iter_mut().find(|(p, v)| *p == peer && v.len() < batch) {
                        Some((_, v)) => v.push(idx),
                        None => batches.push((peer, vec![idx])),
                    }
                }
                for (peer, idxs) in batches {
                    let ids = idxs.iter().map(|&i| m.chunks[i]).collect();
                    requests.push((peer, Request::Chunks(ids), Pending::Chunks { id, idxs }));
                }
                if s.is_complete() {
                    return self.complete(id);
                }
                if s.is_stalled(now) && !d.lookup_running {
                    if d.lookups >= MAX_LOOKUPS && waited_for {
                        let (have, total) = (s.done(), s.total());
                        return self.fail(id, NetError::Stalled { id, have, total });
                    }
                    self.lookup_providers(id);
                    return;
                }
            }
            _ => {
                if !d.manifest_in_flight {
                    let next = d.candidates.iter().find(|p| !d.manifest_asked.contains(p)).copied();
                    match next {
                        Some(peer) => {
                            d.manifest_asked.insert(peer);
                            d.manifest_in_flight = true;
                            requests.push((peer, Request::Manifest(id), Pending::Manifest { id }));
                        }
                        None if !d.lookup_running => {
                            if d.lookups >= MAX_LOOKUPS && waited_for {
                                return self.fail(id, NetError::Stalled { id, have: 0, total: 0 });
                            }
                            d.manifest_asked.clear();
                            self.lookup_providers(id);
                            return;
                        }
                        None => {}
                    }
                }
            }
        }
        for (peer, req, pending) in requests {
            self.request(peer, req, pending);
        }
        for peer in have_due {
            self.ask_have(peer, now);
        }
    }

    pub(super) fn on_manifest(&mut self, peer: PeerId, id: ContentId, response: Response) {
        let Some(d) = self.downloads.get_mut(&id) else { return };
        d.manifest_in_flight = false;
        // A peer without the manifest stays a candidate: a fellow fan that lacks it now will
        // hold chunks soon, and is asked for its bitfield once the manifest arrives from
        // elsewhere (`manifest_asked` keeps it from being asked for the manifest again).
        if let Response::Bytes(bytes) = response {
            match self.local.store.put_manifest(&id, &bytes) {
                Ok(m) => self.set_manifest(id, m),
                Err(e) => self.ban(peer, format!("sent a bad manifest for {id}: {e}")),
            }
        }
        self.drive(id);
    }

    /// Answers from `peer` to chunk requests of content `id`: chunks with bytes are verified
    /// and stored on the blocking pool (one trip for the whole batch); the rest are requeued.
    pub(super) fn on_chunks(&mut self, peer: PeerId, id: ContentId, answers: Vec<(usize, Response)>) {
        let Some(d) = self.downloads.get_mut(&id) else { return };
        let (Some(m), Some(s)) = (&d.manifest, &mut d.schedule) else { return };
        let now = Instant::now();
        let (size, asked) = (m.size, answers.len());
        let mut to_store = Vec::with_capacity(asked);
        let mut oversized = false;
        for (idx, response) in answers {
            let (Some(chunk), Some(range)) = (m.chunks.get(idx), chunk_ranges(m.size).nth(idx)) else { continue };
            match response {
                Response::Bytes(bytes) if bytes.len() as u64 <= CHUNK => {
                    to_store.push((idx, *chunk, range.start, bytes));
                }
                Response::Bytes(_) => {
                    s.bad_bytes(&peer, idx, now);
                    oversized = true;
                }
                Response::NotFound => s.failed(&peer, idx, true),
                Response::Declined => s.declined(&peer, idx, now, super::catalogs::DECLINED_PAUSE),
                _ => s.failed(&peer, idx, false),
            }
        }
        let storing = to_store.len();
        if storing > 0 {
            // Keeping the chunks in memory for fellow fans pays only if a connected peer may ask
            // for them soon: one not known to hold the whole content. Fetching alone from
            // seeders, each buffer goes straight back for reuse instead (1 -> 1 bench: about 6%
            // less CPU, page faults and zero-filling of fresh memory).
            let keep = self.connected.keys().any(|p| !s.holds_all(p));
            let (local, work) = (self.local.clone(), self.work_tx.clone());
            tokio::task::spawn_blocking(move || {
                let results = to_store
                    .into_iter()
                    .map(|(idx, chunk, offset, bytes)| {
                        let len = bytes.len();
                        (idx, len, local.store.put_verified_chunk(&id, size, &chunk, offset, bytes, keep))
                    })
                    .collect();
                let _ = work.blocking_send(Work::ChunksChecked { id, peer, results });
            });
        }
        if oversized {
            self.ban(peer, "sent an oversized chunk".into());
        }
        if storing < asked {
            self.drive(id);
        }
    }

    /// Chunks from `peer` were checked and stored (`Ok(true)`), failed their hash
    /// (`Ok(false)`: the peer is banned), or could not be stored.
    pub(super) fn on_chunks_checked(&mut self, id: ContentId, peer: PeerId, results: Vec<Checked>) {
        let Some(d) = self.downloads.get_mut(&id) else { return };
        let Some(s) = &mut d.schedule else { return };
        let (mut bad, mut delivered) = (false, 0);
        for (idx, len, result) in results {
            match result {
                Ok(true) => {
                    delivered += 1;
                    s.delivered(&peer, idx);
                    d.fetched += 1;
                    d.fetched_bytes += len as u64;
                    *d.per_peer.entry(peer).or_default() += 1;
                }
                Ok(false) => {
                    s.bad_bytes(&peer, idx, Instant::now());
                    bad = true;
                }
                Err(e) => {
                    tracing::warn!("storing a chunk of {id}: {e}");
                    s.failed(&peer, idx, false);
                }
            }
        }
        if delivered > 0 {
            d.feeds.iter().for_each(|f| f.bump());
            let (have, total) = (s.done(), s.total());
            // Progress every 16 chunks, and at the end.
            if have / 16 != (have - delivered) / 16 || have == total {
                self.emit(Event::FetchProgress { id, have, total });
            }
        }
        if bad {
            self.ban(peer, format!("sent a chunk of {id} that fails its BLAKE3 hash"));
        }
        self.drive_all(id);
    }

    /// Bans a peer that sent bad bytes: no downloads use it, and it is disconnected.
    fn ban(&mut self, peer: PeerId, reason: String) {
        tracing::warn!("banning {peer}: {reason}");
        self.bans.insert(peer, Instant::now() + self.settings.ban_for);
        for d in self.downloads.values_mut() {
            d.candidates.remove(&peer);
            if let Some(s) = &mut d.schedule {
                s.remove_peer(&peer);
            }
        }
        let _ = self.swarm.disconnect_peer_id(peer);
        self.emit(Event::PeerBanned { peer: peer.to_string(), reason });
    }

    /// Every chunk is stored: pin and flush on the blocking pool (an fsync must not stall the
    /// loop), then [`Self::on_fetch_finished`] answers the callers.
    fn complete(&mut self, id: ContentId) {
        let Some(d) = self.downloads.remove(&id) else { return };
        // Polls are answered from the store from now on, not from a bitfield read before.
        self.stored_haves.remove(&id);
        d.feeds.iter().for_each(|f| f.bump());
        let _ = self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&id.0));
        let done = Finished {
            id,
            pin: d.pin,
            fetched: d.fetched,
            fetched_bytes: d.fetched_bytes,
            total: d.schedule.as_ref().map_or(0, |s| s.total()),
            per_peer: d.per_peer.into_iter().map(|(p, n)| (p.to_string(), n)).collect(),
        };
        let (local, work, cap) = (self.local.clone(), self.work_tx.clone(), self.settings.storage_cap);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = local.store.finish_fetch(&done.id, done.pin) {
                tracing::warn!("finishing fetch of {}: {e}", done.id);
            }
            if !done.pin
                && let Err(e) = local.store.enforce_cap(cap)
            {
                tracing::warn!("enforcing the storage cap: {e}");
            }
            let _ = work.blocking_send(Work::FetchFinished(done));
        });
    }

    /// A completed fetch is durable: tell subscribers and answer the callers waiting for it.
    pub(super) fn on_fetch_finished(&mut self, done: Finished) {
        self.emit(Event::FetchComplete { id: done.id, fetched: done.fetched, total: done.total });
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &mut self.waiters[i];
            if w.ids.remove(&done.id) {
                w.report.fetched_chunks += done.fetched;
                w.report.fetched_bytes += done.fetched_bytes;
                w.report.total_chunks += done.total;
                for (p, n) in &done.per_peer {
                    match w.report.per_peer.iter_mut().find(|(q, _)| q == p) {
                        Some((_, m)) => *m += n,
                        None => w.report.per_peer.push((p.clone(), *n)),
                    }
                }
                w.report.per_peer.sort_by_key(|p| std::cmp::Reverse(p.1));
            }
            if w.ids.is_empty() {
                let w = self.waiters.swap_remove(i);
                let _ = w.reply.send(Ok(w.report));
            } else {
                i += 1;
            }
        }
    }

    fn fail(&mut self, id: ContentId, err: NetError) {
        if let Some(d) = self.downloads.remove(&id) {
            d.feeds.iter().for_each(|f| f.fail(err.to_string()));
        }
        self.stored_haves.remove(&id);
        if let Err(e) = self.local.store.finish_fetch(&id, false) {
            tracing::warn!("forgetting failed fetch of {id}: {e}");
        }
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].ids.contains(&id) {
                let w = self.waiters.swap_remove(i);
                let e = match &err {
                    NetError::Stalled { id, have, total } => NetError::Stalled { id: *id, have: *have, total: *total },
                    other => NetError::Swarm(other.to_string()),
                };
                let _ = w.reply.send(Err(e));
            } else {
                i += 1;
            }
        }
    }
}
