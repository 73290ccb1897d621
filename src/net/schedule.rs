//! Download scheduling for one piece of content, as a sans-IO state machine.
//!
//! The event loop tells it which peers may have the content and what happened to each
//! request; it answers which chunk to ask of which peer next. Rules:
//!
//! * a peer is asked only for chunks it has: peers start with unknown availability (the loop
//!   asks them for a bitfield) unless known complete (a provider);
//! * in [`Order::InOrder`] chunks go in file order (streaming); in [`Order::RarestFirst`] the
//!   chunk held by the fewest peers goes first, ties broken by a per-node pseudo-random rank,
//!   so fans fetching together start in different places and can trade with each other
//!   instead of all asking the seeder for the same chunks (bulk fetching);
//! * at most `window` requests are in flight per peer (shared with other downloads through
//!   [`Schedule::next_sharing`]), and each goes to the usable peer with
//!   the fewest in flight;
//! * a peer that sends bytes that fail verification is banned for `ban_for`, and its chunk
//!   goes back to the queue for an honest peer;
//! * a peer that says it lacks the content is not asked again for this download; other
//!   failures (timeouts, dropped streams) are retried elsewhere, and a peer that keeps
//!   failing is dropped after [`MAX_FAILURES`];
//! * chunks already in the store are never requested (resume);
//! * while a player streams the content ([`Schedule::stream_from`]), chunks from the playhead on
//!   go first in file order, and the requests in flight start at one and double with each
//!   delivery (slow start): the chunk the decoder waits for never shares the link with a
//!   window of bulk requests, and a seek starts over from one request at the new playhead.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Failures (other than "not found") after which a peer is dropped from a download.
pub const MAX_FAILURES: u32 = 4;

/// Which chunk to fetch next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// File order: playback can start from the first chunk.
    InOrder,
    /// Rarest among peers first; ties by a rank derived from `seed` (different per node).
    RarestFirst {
        /// Seed for the tie-breaking rank.
        seed: u64,
    },
}

#[derive(Debug, Default)]
struct PeerState {
    in_flight: usize,
    failures: u32,
    lacks: bool,
    banned_until: Option<Instant>,
    /// Which chunks the peer has; `None` until known.
    has: Option<Vec<bool>>,
    /// Chunks the peer declined to send for now (it just sent them to someone else), until when.
    declined: HashMap<usize, Instant>,
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
    order: Order,
    stream: Option<Stream>,
}

/// Most requests in flight for a streamed download, however long it has run.
const STREAM_BUDGET: usize = 64;

/// A player reading the content: where, and how many requests may be in flight.
#[derive(Clone, Copy, Debug)]
struct Stream {
    playhead: usize,
    budget: usize,
}

/// A cheap, well-mixed rank for tie-breaking (splitmix64).
fn rank(seed: u64, idx: usize) -> u64 {
    let mut z = seed.wrapping_add((idx as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<P: Clone + Eq + Hash> Schedule<P> {
    /// A schedule for `total` chunks, of which `have(i)` are already stored.
    pub fn new(total: usize, have: impl Fn(usize) -> bool, window: usize, ban_for: Duration, order: Order) -> Self {
        let missing = (0..total).filter(|&i| !have(i)).collect();
        Self {
            total,
            missing,
            in_flight: HashMap::new(),
            peers: HashMap::new(),
            window: window.max(1),
            ban_for,
            order,
            stream: None,
        }
    }

    /// Streams from chunk `playhead`: chunks from there on go first, in file order. If that
    /// chunk is not stored yet, the requests in flight restart from one (slow start).
    pub fn stream_from(&mut self, playhead: usize) {
        let playhead = playhead.min(self.total.saturating_sub(1));
        let waiting = self.missing.contains(&playhead) || self.in_flight.contains_key(&playhead);
        let budget = match self.stream {
            Some(s) if !waiting => s.budget,
            _ => 1,
        };
        self.stream = Some(Stream { playhead, budget });
    }

    /// True if a player streams this content.
    pub fn is_streaming(&self) -> bool {
        self.stream.is_some()
    }

    /// Adds a peer that may hold some of the content (availability to be learned).
    pub fn add_peer(&mut self, peer: P) {
        self.peers.entry(peer).or_default();
    }

    /// Adds a peer known to hold all of the content (a provider).
    pub fn add_complete_peer(&mut self, peer: P) {
        let total = self.total;
        self.peers.entry(peer).or_default().has = Some(vec![true; total]);
    }

    /// Records which chunks `peer` has (from its bitfield). Ignored if the length is wrong.
    pub fn set_availability(&mut self, peer: &P, has: Vec<bool>) {
        if has.len() != self.total {
            return;
        }
        if let Some(s) = self.peers.get_mut(peer) {
            s.has = Some(has);
        }
    }

    /// True if `peer` is known to hold every chunk (a provider, or a bitfield with all set).
    pub fn holds_all(&self, peer: &P) -> bool {
        self.peers.get(peer).is_some_and(|s| s.has.as_ref().is_some_and(|h| h.iter().all(|b| *b)))
    }

    /// True if `peer` is part of this download and its availability is unknown or partial.
    pub fn wants_availability(&self, peer: &P) -> bool {
        self.peers.get(peer).is_some_and(|s| !s.lacks && s.has.as_ref().is_none_or(|h| h.iter().any(|b| !b)))
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

    /// The next requests to send: `(peer, chunk index)` pairs. Each free slot goes to the
    /// usable peer with the fewest requests in flight, asking it for the best chunk it has.
    pub fn next(&mut self, now: Instant) -> Vec<(P, usize)> {
        self.next_sharing(now, |_| 0)
    }

    /// Like [`Self::next`], when other downloads share each peer's window: `elsewhere(peer)`
    /// requests to `peer` are in flight for them. A streamed download ignores them: the chunk
    /// a player waits for must not queue behind a bulk fetch.
    pub fn next_sharing(&mut self, now: Instant, elsewhere: impl Fn(&P) -> usize) -> Vec<(P, usize)> {
        let mut out = Vec::new();
        let shared = |p: &P| if self.stream.is_some() { 0 } else { elsewhere(p) };
        let room: HashMap<P, usize> =
            self.peers.keys().map(|p| (p.clone(), self.window.saturating_sub(shared(p)))).collect();
        loop {
            if self.stream.is_some_and(|s| self.in_flight.len() >= s.budget) {
                break;
            }
            let mut peers: Vec<(&P, &PeerState)> = self
                .peers
                .iter()
                .filter(|(p, s)| s.has.is_some() && Self::usable(s, now, room.get(*p).copied().unwrap_or(0)))
                .collect();
            peers.sort_by_key(|(_, s)| (s.in_flight, s.failures));
            let pick = peers.iter().find_map(|(p, s)| self.best_chunk(s, now).map(|i| ((*p).clone(), i)));
            let Some((peer, idx)) = pick else { break };
            if let Some(s) = self.peers.get_mut(&peer) {
                s.in_flight += 1;
            }
            self.missing.remove(&idx);
            self.in_flight.insert(idx, peer.clone());
            out.push((peer, idx));
        }
        out
    }

    /// The chunk to ask `state`'s peer for: one it has that we miss, by the schedule's order.
    ///
    /// When bulk-fetching, a complete peer (a seeder) is not asked for a chunk that a partial
    /// peer (a fellow downloader) with room in its window holds and has not declined: the seeder
    /// serves what nobody else has or will send now, and downloaders trade the rest, which
    /// keeps the seeder's upload near one copy without leaving it idle while fans wait. In the
    /// endgame (no more chunks left than one window) anyone who has a chunk is asked: finishing
    /// soon matters more than a few chunks of upload.
    fn best_chunk(&self, state: &PeerState, now: Instant) -> Option<usize> {
        let has = state.has.as_ref()?;
        let seeder = has.iter().all(|b| *b);
        let endgame = self.missing.len() + self.in_flight.len() <= self.window;
        let declined_by = |s: &PeerState, i: usize| s.declined.get(&i).is_some_and(|until| *until > now);
        let partial_holds = |i: usize| {
            self.peers.values().any(|s| {
                s.has.as_ref().is_some_and(|h| h.get(i) == Some(&true) && h.iter().any(|b| !b))
                    && Self::usable(s, now, self.window)
                    && !declined_by(s, i)
            })
        };
        let declined = |i: usize| declined_by(state, i);
        let candidates = self.missing.iter().copied().filter(|&i| has.get(i) == Some(&true) && !declined(i));
        if let Some(stream) = self.stream {
            // From the playhead on in file order, then what lies before it.
            let mut before = None;
            for i in candidates {
                if i >= stream.playhead {
                    return Some(i);
                }
                before = before.or(Some(i));
            }
            return before;
        }
        match self.order {
            Order::InOrder => candidates.min(),
            Order::RarestFirst { seed } => {
                candidates.filter(|&i| endgame || !(seeder && partial_holds(i))).min_by_key(|&i| {
                    let holders =
                        self.peers.values().filter(|s| s.has.as_ref().is_some_and(|h| h.get(i) == Some(&true))).count();
                    (holders, rank(seed, i))
                })
            }
        }
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
        if let Some(s) = &mut self.stream {
            s.budget = (s.budget * 2).min(STREAM_BUDGET);
        }
    }

    /// Chunk `idx`, stored earlier, was found damaged on disk and dropped: fetch it again.
    pub fn lost(&mut self, idx: usize) {
        if idx < self.total && !self.in_flight.contains_key(&idx) {
            self.missing.insert(idx);
        }
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

    /// `peer` declined to send chunk `idx` for now (it just sent it to another peer, which can
    /// pass it on). Not a failure: the chunk is requeued and not asked of `peer` for `pause`.
    pub fn declined(&mut self, peer: &P, idx: usize, now: Instant, pause: Duration) {
        if self.settle(peer, idx) {
            self.missing.insert(idx);
        }
        if let Some(s) = self.peers.get_mut(peer) {
            s.declined.retain(|_, until| *until > now);
            s.declined.insert(idx, now + pause);
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

    /// Requests in flight to `peer` for this download.
    pub fn in_flight_to(&self, peer: &P) -> usize {
        self.peers.get(peer).map_or(0, |s| s.in_flight)
    }

    /// Which chunks are stored: everything neither missing nor in flight.
    pub fn stored(&self) -> Vec<bool> {
        (0..self.total).map(|i| !self.missing.contains(&i) && !self.in_flight.contains_key(&i)).collect()
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
        let mut s = Schedule::new(10, |i| i == 0, 2, Duration::from_secs(60), Order::InOrder);
        s.add_complete_peer("a");
        s.add_complete_peer("b");
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
    fn streaming_starts_with_one_request_at_the_playhead_and_doubles() {
        let now = Instant::now();
        let mut s = Schedule::new(40, |_| false, 16, Duration::from_secs(60), Order::RarestFirst { seed: 3 });
        s.add_complete_peer("a");
        s.add_complete_peer("b");
        s.stream_from(0);
        let first = s.next(now);
        assert_eq!(first, vec![(first[0].0, 0)], "only the chunk the decoder waits for");
        s.delivered(&first[0].0, 0);
        let second: Vec<usize> = s.next(now).iter().map(|r| r.1).collect();
        assert_eq!(second, vec![1, 2], "then two, in file order");
        // A seek to a chunk far ahead: one request there, whatever else is in flight.
        s.stream_from(30);
        assert!(s.next(now).is_empty(), "budget is back to one and two are in flight");
        let (p1, p2) = (s.in_flight[&1], s.in_flight[&2]);
        s.delivered(&p1, 1);
        s.delivered(&p2, 2);
        let after: Vec<usize> = s.next(now).iter().map(|r| r.1).collect();
        assert_eq!(after, vec![30, 31, 32, 33], "from the playhead on: {after:?}");
        // Past the end of the file the playhead wraps to what is still missing before it.
        let mut t = Schedule::new(3, |i| i == 2, 4, Duration::from_secs(60), Order::InOrder);
        t.add_complete_peer("a");
        t.stream_from(2);
        assert_eq!(t.next(now), vec![("a", 0)]);
    }

    #[test]
    fn only_providers_and_full_bitfields_hold_all() {
        let mut s: Schedule<&str> = Schedule::new(3, |_| false, 1, Duration::from_secs(60), Order::InOrder);
        s.add_complete_peer("seeder");
        s.add_peer("fan");
        assert!(s.holds_all(&"seeder"));
        assert!(!s.holds_all(&"fan"), "availability unknown");
        s.set_availability(&"fan", vec![true, false, true]);
        assert!(!s.holds_all(&"fan"));
        s.set_availability(&"fan", vec![true; 3]);
        assert!(s.holds_all(&"fan"));
        assert!(!s.holds_all(&"stranger"), "not part of the download");
    }

    #[test]
    fn the_seeder_serves_what_fellow_fans_cannot_or_will_not() {
        let now = Instant::now();
        let mut s = Schedule::new(6, |_| false, 1, Duration::from_secs(60), Order::RarestFirst { seed: 1 });
        s.add_complete_peer("seeder");
        s.add_peer("fan");
        s.set_availability(&"fan", vec![false, false, false, false, true, false]);
        // Chunk 4 is left to the fan; the seeder is asked for others.
        let first = s.next(now);
        assert!(first.contains(&("fan", 4)), "{first:?}");
        // The fan declines 4 (it just sent it on): the seeder now serves it too, rather than
        // the download waiting for the pause to end.
        s.declined(&"fan", 4, now, Duration::from_millis(250));
        let mut asked = first.into_iter().filter(|(p, _)| *p == "seeder").collect::<Vec<_>>();
        for _ in 0..6 {
            if asked.contains(&("seeder", 4)) {
                return;
            }
            for (p, i) in asked.drain(..) {
                s.delivered(&p, i);
            }
            asked = s.next(now).into_iter().filter(|(p, _)| *p == "seeder").collect();
        }
        panic!("the seeder was never asked for the declined chunk");
    }

    #[test]
    fn a_window_shared_with_other_downloads_leaves_only_the_free_slots() {
        let now = Instant::now();
        let mut s = Schedule::new(10, |_| false, 4, Duration::from_secs(60), Order::InOrder);
        s.add_complete_peer("a");
        s.add_complete_peer("b");
        let busy = |p: &&str| if *p == "a" { 3 } else { 4 };
        assert_eq!(s.next_sharing(now, busy), vec![("a", 0)], "a has one free slot, b none");
        assert_eq!(s.in_flight_to(&"a"), 1);
        assert!(s.next_sharing(now, busy).is_empty());
        // A streamed download does not wait for bulk ones.
        let mut t = Schedule::new(10, |_| false, 4, Duration::from_secs(60), Order::InOrder);
        t.add_complete_peer("a");
        t.stream_from(5);
        assert_eq!(t.next_sharing(now, |_| 4), vec![("a", 5)]);
    }

    #[test]
    fn a_lying_peer_is_banned_and_its_chunk_goes_to_an_honest_one() {
        let now = Instant::now();
        let mut s = Schedule::new(3, |_| false, 1, Duration::from_secs(60), Order::InOrder);
        s.add_complete_peer("liar");
        s.add_complete_peer("honest");
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
        let mut s = Schedule::new(2, |_| false, 4, Duration::from_secs(1), Order::InOrder);
        s.add_complete_peer(1u8);
        let reqs = s.next(now);
        assert_eq!(reqs.len(), 2);
        s.failed(&1, 0, true);
        s.remove_peer(&1);
        assert!(s.is_stalled(now));
        assert_eq!(s.done(), 0);
        s.add_complete_peer(2);
        assert_eq!(s.next(now).len(), 2);
    }

    #[test]
    fn peers_are_asked_only_for_what_they_have_rarest_first() {
        let now = Instant::now();
        let mut s = Schedule::new(6, |_| false, 8, Duration::from_secs(1), Order::RarestFirst { seed: 7 });
        s.add_peer("seeder");
        s.add_peer("fan");
        assert!(s.next(now).is_empty(), "nothing is asked before availability is known");
        s.set_availability(&"seeder", vec![true; 6]);
        s.set_availability(&"fan", vec![true, true, true, false, false, false]);
        let reqs = s.next(now);
        assert_eq!(reqs.len(), 6);
        for (p, i) in &reqs {
            if *p == "fan" {
                assert!(*i < 3, "the fan is only asked for chunks it has");
            }
        }
        // Chunks only the seeder has (3, 4, 5) are rarest: the seeder gets those.
        let from_seeder: Vec<usize> = reqs.iter().filter(|r| r.0 == "seeder").map(|r| r.1).collect();
        assert!([3, 4, 5].iter().all(|i| from_seeder.contains(i)), "{reqs:?}");
        assert!(s.wants_availability(&"fan") && !s.wants_availability(&"seeder"));
        // Two nodes with different seeds start rarest-first downloads in different places.
        let first = |seed| {
            let mut s = Schedule::new(64, |_| false, 1, Duration::from_secs(1), Order::RarestFirst { seed });
            s.add_complete_peer(0u8);
            s.next(now)[0].1
        };
        assert_ne!((first(1), first(2), first(3)), (first(1), first(1), first(1)));
    }
}
