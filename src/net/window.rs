//! One window per peer, shared by every download: a release of eight tracks must not put
//! eight windows of chunk requests in flight on one connection, where the responses share the
//! link and all finish late together (nothing is stored, verified or passed on meanwhile).

use std::collections::HashMap;

use libp2p::PeerId;

use super::event_loop::EventLoop;
use crate::catalog::ids::ContentId;

impl EventLoop {
    /// Chunk requests download `id` has in flight to each of its peers.
    fn own_in_flight(&self, id: &ContentId) -> Vec<(PeerId, usize)> {
        let Some(d) = self.downloads.get(id) else { return Vec::new() };
        let Some(s) = &d.schedule else { return Vec::new() };
        d.candidates.iter().map(|p| (*p, s.in_flight_to(p))).filter(|(_, n)| *n > 0).collect()
    }

    /// Chunk requests in flight to each peer, over every download.
    fn in_flight_by_peer(&self) -> HashMap<PeerId, usize> {
        let mut out: HashMap<PeerId, usize> = HashMap::new();
        for id in self.downloads.keys() {
            for (p, n) in self.own_in_flight(id) {
                *out.entry(p).or_default() += n;
            }
        }
        out
    }

    /// Chunk requests in flight to each peer for downloads other than `id`.
    pub(super) fn in_flight_elsewhere(&self, id: &ContentId) -> HashMap<PeerId, usize> {
        let mut out = self.in_flight_by_peer();
        for (p, n) in self.own_in_flight(id) {
            out.entry(p).and_modify(|t| *t = t.saturating_sub(n));
        }
        out
    }

    /// Drives `id`, then every other download: a slot freed on a peer's shared window may
    /// be taken by any of them. The totals per peer are counted once and kept up to date as
    /// each download sends requests, so this stays linear in the number of downloads.
    pub(super) fn drive_all(&mut self, id: ContentId) {
        let mut totals = self.in_flight_by_peer();
        let others = self.downloads.keys().copied().filter(|k| *k != id);
        let ids: Vec<ContentId> = std::iter::once(id).chain(others).collect();
        for k in ids {
            let before = self.own_in_flight(&k);
            let mut elsewhere = totals.clone();
            for (p, n) in &before {
                elsewhere.entry(*p).and_modify(|t| *t = t.saturating_sub(*n));
            }
            self.drive_with(k, &elsewhere);
            for (p, n) in before {
                totals.entry(p).and_modify(|t| *t = t.saturating_sub(n));
            }
            for (p, n) in self.own_in_flight(&k) {
                *totals.entry(p).or_default() += n;
            }
        }
    }
}
