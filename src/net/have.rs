//! Availability polling: which chunks of each download fellow peers hold. Each peer is asked
//! about every download due at once (one request names up to `MAX_HAVES` contents), and a
//! node answers from its downloads' schedules while it fetches, from the store otherwise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::event_loop::{EventLoop, Pending};
use super::fetch::Download;
use super::protocol::{MAX_HAVES, Request, Response, pack_bits};
use super::schedule::Schedule;
use crate::catalog::ids::ContentId;

/// How often a peer that holds part of the content is asked again what it has. Short: at
/// loopback speeds a stale bitfield makes fans fetch from the seeder what a fan already has.
pub(super) const HAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// How long a bitfield read from the store answers further polls. Content we are not
/// fetching changes only by eviction or damage, and a bitfield is advice: a chunk asked for
/// and gone is answered "not found". Each fresh answer costs an index lookup and a file
/// status per chunk; four fans polling a seeder every [`HAVE_EVERY`] made that 1.2% of a
/// transfer's CPU.
const STORED_HAVE_FOR: Duration = Duration::from_millis(250);
/// Most bitfields kept from the store.
const STORED_HAVES_CAP: usize = 1024;

/// Answers to availability polls about content read from the store, with when each was read.
pub(super) type StoredHaves = HashMap<ContentId, (Instant, Response)>;

impl Download {
    /// True if `peer` is due to be asked what it holds of this content: its chunks are
    /// scheduled, the peer may hold some we lack, no ask is in flight, and the last was at
    /// least [`HAVE_EVERY`] ago.
    pub(super) fn have_due(&self, peer: &PeerId, now: Instant) -> bool {
        self.schedule.as_ref().is_some_and(|s| s.wants_availability(peer))
            && !self.have_in_flight.contains(peer)
            && self.have_asked.get(peer).is_none_or(|t| now.duration_since(*t) >= HAVE_EVERY)
    }
}

impl EventLoop {
    /// Which chunks of `id` are stored, if `id` is being fetched and its manifest is known.
    fn downloads_availability(&self, id: &ContentId) -> Option<Vec<bool>> {
        self.downloads.get(id)?.schedule.as_ref().map(Schedule::stored)
    }

    /// The answer to a peer's availability poll about `id`: our bitfield, from the download's
    /// schedule while we fetch it, else from the store (kept for [`STORED_HAVE_FOR`]), or
    /// "not found" without its manifest.
    pub(super) fn have_answer(&mut self, id: &ContentId, now: Instant) -> Response {
        if let Some(bits) = self.downloads_availability(id) {
            return Response::Bytes(pack_bits(&bits).into());
        }
        if let Some((at, answer)) = self.stored_haves.get(id)
            && now.duration_since(*at) < STORED_HAVE_FOR
        {
            return answer.clone();
        }
        let answer = match self.local.store.availability(id) {
            Ok(Some(bits)) => Response::Bytes(pack_bits(&bits).into()),
            _ => Response::NotFound,
        };
        if self.stored_haves.len() >= STORED_HAVES_CAP {
            self.stored_haves.retain(|_, (at, _)| now.duration_since(*at) < STORED_HAVE_FOR);
        }
        if self.stored_haves.len() < STORED_HAVES_CAP {
            self.stored_haves.insert(*id, (now, answer.clone()));
        }
        answer
    }

    /// A peer's bitfield for `id` arrived (or it has none).
    pub(super) fn on_have(&mut self, peer: PeerId, id: ContentId, response: Response) {
        let Some(d) = self.downloads.get_mut(&id) else { return };
        d.have_in_flight.remove(&peer);
        if let Some(s) = &mut d.schedule {
            let total = s.total();
            match response {
                Response::Bytes(b) => match super::protocol::unpack_bits(&b, total) {
                    Some(bits) => s.set_availability(&peer, bits),
                    None => tracing::debug!("{peer} sent a bitfield of the wrong size for {id}"),
                },
                _ => s.set_availability(&peer, vec![false; total]),
            }
        }
        self.drive(id);
    }

    /// Asks `peer`, in one request, which chunks it holds of every download due to ask it
    /// (see [`Download::have_due`]): a release's tracks share one poll per peer.
    pub(super) fn ask_have(&mut self, peer: PeerId, now: Instant) {
        let mut ids = Vec::new();
        for (id, d) in self.downloads.iter_mut() {
            if d.candidates.contains(&peer) && d.have_due(&peer, now) {
                d.have_in_flight.insert(peer);
                d.have_asked.insert(peer, now);
                ids.push(*id);
            }
        }
        for ids in ids.chunks(MAX_HAVES) {
            self.request(peer, Request::Have(ids.to_vec()), Pending::Have { ids: ids.to_vec() });
        }
    }
}
