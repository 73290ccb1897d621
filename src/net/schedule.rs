//! Download scheduling for one piece of content, as a sans-IO state machine.
//!
//! The event loop tells it which peers may have the content and what happened to each
//! request; it answers which chunk to ask of which peer next. Rules:
//!
//! * chunks are requested in file order (so a download is also playable from the start),
//!   spread over all usable peers, at most `window` in flight per peer;
//! * a peer that sends bytes that fail verification is banned for `ban_for`, and its chunk
//!   goes back to the queue for an honest peer;
//! * a peer that says it lacks the content is not asked again for this download; other
//!   failures (timeouts, dropped streams) are retried elsewhere, and a peer that keeps
//!   failing is dropped after [`MAX_FAILURES`];
//! * chunks already in the store are never requested (resume).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Failures (other than "not found") after which a peer is dropped from a download.
pub const MAX_FAILURES: u32 = 4;

#[derive(Debug, Default)]
struct PeerState {
    in_flight: usize,
    failures: u32,
    lacks: bool,
    banned_until: Option<Instant>,
}

/// Scheduling state for one download.
#[derive(Debug)]
pub struct Schedule<P> {
    total: usize,
    missing: BTreeSet<usize>,
    in_flight: HashMap<usize, P>,
    peers: HashMap<P, PeerState>,
    window: usize,
    ban_for: Duration,
}

impl<P: Clone + Eq + Hash> Schedule<P> {
    /// A schedule for `total` chunks, of which `have(i)` are already stored.
    pub fn new(total: usize, have: impl Fn(usize) -> bool, window: usize, ban_for: Duration) -> Self {
        let missing = (0..total).filter(|&i| !have(i)).collect();
        Self { total, missing, in_flight: HashMap::new(), peers: HashMap::new(), window: window.max(1), ban_for }
    }

    /// Adds a peer that may hold the content.
    pub fn add_peer(&mut self, peer: P) {
        self.peers.entry(peer).or_default();
    }

    /// Forgets a peer (disconnected); its in-flight chunks go back to the queue.
    pub fn remove_peer(&mut self, peer: &P) {
        self.peers.remove(peer);
        let lost: Vec<usize> = self.in_flight.iter().filter(|(_, p)| *p == peer).map(|(i, _)| *i).collect();
        for i in lost {
            self.in_flight.remove(&i);
            self.missing.insert(i);
        }
    }

    fn usable(state: &PeerState, now: Instant, window: usize) -> bool {
        !state.lacks
            && state.failures < MAX_FAILURES
            && state.banned_until.is_none_or(|t| t <= now)
            && state.in_flight < window
    }

    /// The next requests to send: `(peer, chunk index)` pairs, lowest index first, each to
    /// the usable peer with the fewest requests in flight.
    pub fn next(&mut self, now: Instant) -> Vec<(P, usize)> {
        let mut out = Vec::new();
        while let Some(&idx) = self.missing.first() {
            let window = self.window;
            let best = self
                .peers
                .iter_mut()
                .filter(|(_, s)| Self::usable(s, now, window))
                .min_by_key(|(_, s)| (s.in_flight, s.failures));
            let Some((peer, state)) = best else { break };
            state.in_flight += 1;
            self.missing.remove(&idx);
            self.in_flight.insert(idx, peer.clone());
            out.push((peer.clone(), idx));
        }
        out
    }

    fn settle(&mut self, peer: &P, idx: usize) -> bool {
        if self.in_flight.get(&idx) != Some(peer) {
            return false; // a late answer for a chunk reassigned meanwhile
        }
        self.in_flight.remove(&idx);
        if let Some(s) = self.peers.get_mut(peer) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        true
    }

    /// Chunk `idx` from `peer` verified and stored.
    pub fn delivered(&mut self, peer: &P, idx: usize) {
        self.settle(peer, idx);
        self.missing.remove(&idx);
    }

    /// `peer` sent bytes for `idx` that do not match the hash: ban it, requeue the chunk.
    pub fn bad_bytes(&mut self, peer: &P, idx: usize, now: Instant) {
        if self.settle(peer, idx) {
            self.missing.insert(idx);
        }
        if let Some(s) = self.peers.get_mut(peer) {
            s.banned_until = Some(now + self.ban_for);
        }
    }

    /// A request to `peer` failed. `not_found`: the peer says it lacks the content.
    pub fn failed(&mut self, peer: &P, idx: usize, not_found: bool) {
        if self.settle(peer, idx) {
            self.missing.insert(idx);
        }
        if let Some(s) = self.peers.get_mut(peer) {
            if not_found {
                s.lacks = true;
            } else {
                s.failures += 1;
            }
        }
    }

    /// Chunks stored so far.
    pub fn done(&self) -> usize {
        self.total - self.missing.len() - self.in_flight.len()
    }

    /// Total chunks.
    pub fn total(&self) -> usize {
        self.total
    }

    /// True when every chunk is stored.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.in_flight.is_empty()
    }

    /// True when chunks remain but no peer can be asked now and nothing is in flight.
    pub fn is_stalled(&self, now: Instant) -> bool {
        !self.is_complete()
            && self.in_flight.is_empty()
            && !self.peers.values().any(|s| Self::usable(s, now, self.window))
    }

    /// True if `peer` is part of this download and not excluded.
    pub fn has_usable_peer(&self, peer: &P, now: Instant) -> bool {
        self.peers.get(peer).is_some_and(|s| Self::usable(s, now, usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_requests_in_order_within_the_window() {
        let now = Instant::now();
        let mut s = Schedule::new(10, |i| i == 0, 2, Duration::from_secs(60));
        s.add_peer("a");
        s.add_peer("b");
        let reqs = s.next(now);
        assert_eq!(reqs.len(), 4);
        let mut idx: Vec<usize> = reqs.iter().map(|r| r.1).collect();
        idx.sort();
        assert_eq!(idx, vec![1, 2, 3, 4]);
        assert!(s.next(now).is_empty(), "window is full");
        s.delivered(&reqs[0].0, reqs[0].1);
        assert_eq!(s.next(now).len(), 1);
    }

    #[test]
    fn a_lying_peer_is_banned_and_its_chunk_goes_to_an_honest_one() {
        let now = Instant::now();
        let mut s = Schedule::new(3, |_| false, 1, Duration::from_secs(60));
        s.add_peer("liar");
        s.add_peer("honest");
        let reqs = s.next(now);
        let (liar_idx, honest_idx) = {
            let l = reqs.iter().find(|r| r.0 == "liar").unwrap().1;
            let h = reqs.iter().find(|r| r.0 == "honest").unwrap().1;
            (l, h)
        };
        s.bad_bytes(&"liar", liar_idx, now);
        s.delivered(&"honest", honest_idx);
        let again = s.next(now);
        assert!(again.iter().all(|r| r.0 == "honest"));
        assert_eq!(again[0].1, liar_idx);
        s.delivered(&"honest", liar_idx);
        let last = s.next(now);
        s.delivered(&"honest", last[0].1);
        assert!(s.is_complete());
        // After the ban expires the peer is usable again.
        assert!(s.has_usable_peer(&"liar", now + Duration::from_secs(61)));
    }

    #[test]
    fn not_found_and_disconnects_requeue_and_stall_is_reported() {
        let now = Instant::now();
        let mut s = Schedule::new(2, |_| false, 4, Duration::from_secs(1));
        s.add_peer(1u8);
        let reqs = s.next(now);
        assert_eq!(reqs.len(), 2);
        s.failed(&1, 0, true);
        s.remove_peer(&1);
        assert!(s.is_stalled(now));
        assert_eq!(s.done(), 0);
        s.add_peer(2);
        assert_eq!(s.next(now).len(), 2);
    }
}
