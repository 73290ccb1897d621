//! Outbound requests and their answers: each request goes on the peer's lane or over
//! request-response (see [`super::lane`]), and each answer, or failure, goes to the part of
//! the loop that asked. Requests from peers arriving over request-response go to `serve`.

use libp2p::{PeerId, gossipsub, request_response};

use super::event_loop::{EventLoop, Pending, Reply};
use super::protocol::{Request, Response};

impl EventLoop {
    pub(super) fn on_exchange(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve(peer, request, Reply::Exchange(channel))
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some((peer, pending)) = self.pending.remove(&request_id) {
                        self.on_response(peer, pending, response);
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some((peer, pending)) = self.pending.remove(&request_id) {
                    tracing::debug!("request to {peer} failed: {error}");
                    self.on_request_failed(peer, pending);
                }
            }
            _ => {}
        }
    }

    /// Sends a request, and remembers what it was for: chunk and availability requests on the
    /// peer's lane, the rest (and those a lane cannot take) over request-response.
    pub(super) fn request(&mut self, peer: PeerId, request: Request, pending: Pending) {
        if let Some((request, pending)) = self.send_on_lane(peer, request, pending) {
            self.request_exchange(peer, request, pending);
        }
    }

    /// Sends a request over request-response.
    pub(super) fn request_exchange(&mut self, peer: PeerId, request: Request, pending: Pending) {
        let id = self.swarm.behaviour_mut().exchange.send_request(&peer, request);
        self.pending.insert(id, (peer, pending));
    }

    pub(super) fn on_response(&mut self, peer: PeerId, pending: Pending, response: Response) {
        match pending {
            Pending::CatalogList => {
                if let Response::Catalogs(list) = response {
                    self.on_catalog_list(peer, list);
                }
            }
            Pending::Catalog { artist, via, expect, gossip } => {
                let bytes = match response {
                    Response::Bytes(bytes) => bytes,
                    _ => Default::default(),
                };
                self.on_catalog_bytes(peer, artist, via, expect, gossip, &bytes);
            }
            Pending::Manifest { id } => self.on_manifest(peer, id, response),
            Pending::Chunks { id, idxs } => {
                let answers = response.each(idxs.len());
                self.on_chunks(peer, id, idxs.into_iter().zip(answers).collect());
            }
            Pending::Have { ids } => {
                let answers = response.each(ids.len());
                ids.into_iter().zip(answers).for_each(|(id, answer)| self.on_have(peer, id, answer));
            }
        }
    }

    pub(super) fn on_request_failed(&mut self, peer: PeerId, pending: Pending) {
        match pending {
            Pending::Manifest { id } => self.on_manifest(peer, id, Response::Refused),
            Pending::Chunks { id, idxs } => {
                self.on_chunks(peer, id, idxs.into_iter().map(|i| (i, Response::Refused)).collect());
            }
            Pending::Have { ids } => ids.into_iter().for_each(|id| self.on_have(peer, id, Response::Refused)),
            Pending::Catalog { gossip: Some(id), .. } => {
                self.validated(&id, peer, gossipsub::MessageAcceptance::Ignore)
            }
            Pending::CatalogList | Pending::Catalog { .. } => {}
        }
    }
}
