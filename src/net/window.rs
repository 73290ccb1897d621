//! One window per peer, shared by every download: a release of eight tracks must not put
//! eight windows of chunk requests in flight on one connection, where the responses share the
//! link and all finish late together (nothing is stored, verified or passed on meanwhile).

use std::collections::HashMap;

use libp2p::PeerId;

use super::event_loop::EventLoop;
use crate::catalog::ids::ContentId;

impl EventLoop {
    /// Chunk requests in flight to each peer for downloads other than `id`.
    pub(super) fn in_flight_elsewhere(&self, id: &ContentId) -> HashMap<PeerId, usize> {
        let mut out: HashMap<PeerId, usize> = HashMap::new();
        for d in self.downloads.iter().filter(|(k, _)| *k != id).map(|(_, d)| d) {
            let Some(s) = &d.schedule else { continue };
            for p in &d.candidates {
                let n = s.in_flight_to(p);
                if n > 0 {
                    *out.entry(*p).or_default() += n;
                }
            }
        }
        out
    }

    /// Drives `id`, then every other download: a slot freed on a peer's shared window may
    /// be taken by any of them.
    pub(super) fn drive_all(&mut self, id: ContentId) {
        self.drive(id);
        let ids: Vec<ContentId> = self.downloads.keys().copied().filter(|k| *k != id).collect();
        for other in ids {
            self.drive(other);
        }
    }
}
