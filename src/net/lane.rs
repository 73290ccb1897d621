//! Lanes: long-lived streams to each peer (`/busker/lane/1.0.0`), [`CHUNK_LANES`] for chunk
//! requests and one for availability polls, carrying requests and their answers, pipelined,
//! answers in request order on each lane.
//!
//! Request-response opens a substream for every request. Each one costs a yamux stream
//! opening and closing, a protocol negotiation, and a timeout timer at each end (registering
//! one wakes the timer thread). Its flow-control window also starts small again every time. At
//! loopback speeds, with fans polling each other for availability, those costs add up to a
//! noticeable share of the CPU. A lane pays them once.
//!
//! Frames are the exchange protocol's (see [`super::protocol`]), and only `Chunks` and `Have`
//! requests travel on lanes. The event loop decides every answer exactly as for
//! request-response, through the same `serve` path, declines and bounds. Answers to our own
//! requests come back to it as [`Work`]. So a lane holds no state of its own beyond the order
//! of what it has in flight. A peer that does not speak lanes, or whose lane is full, is asked
//! over request-response.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::event_loop::{EventLoop, Pending, Work};
use super::protocol::{Request, Response, read_request, read_response, write_request, write_response};

/// The lane protocol name.
pub const LANE_PROTOCOL: StreamProtocol = StreamProtocol::new("/busker/lane/1.0.0");
/// Requests queued or in flight on one lane. Requests beyond it go over request-response.
const LANE_DEPTH: usize = 64;
/// Chunk lanes we open to each peer. Each is one yamux stream, and its flow-control window
/// bounds what one stream has in flight; requests take turns over the lanes.
const CHUNK_LANES: u8 = 2;
/// Inbound lanes one peer may hold open ([`CHUNK_LANES`] and one for availability per
/// connection, at most two connections).
const LANES_PER_PEER: usize = 2 * (CHUNK_LANES as usize + 1);
/// Inbound lanes in all.
const MAX_INBOUND_LANES: usize = 512;
/// How long an answer may take before the lane is given up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A request for a lane, and what it was for.
type Job = (Request, Pending);

/// The outbound lanes of one node.
pub(super) struct Lanes {
    control: libp2p_stream::Control,
    /// Per peer: availability polls (lane 0), which must not wait behind megabytes of chunks,
    /// or fans would fetch from the seeder what a fellow fan holds; and chunk requests (lanes
    /// 1 to [`CHUNK_LANES`]).
    out: HashMap<(PeerId, u8), mpsc::Sender<Job>>,
    /// Turns of the chunk lanes.
    turn: u8,
    /// Peers that do not speak lanes: asked over request-response.
    unsupported: HashSet<PeerId>,
    /// Dropped with the event loop, which ends the task accepting inbound lanes.
    _accepting: oneshot::Sender<()>,
}

impl Lanes {
    /// Lanes over `control`; inbound lanes are answered through `work`.
    pub(super) fn new(mut control: libp2p_stream::Control, work: mpsc::Sender<Work>) -> Self {
        let (accepting, stop) = oneshot::channel();
        match control.accept(LANE_PROTOCOL) {
            Ok(incoming) => {
                tokio::spawn(accept(incoming, work, stop));
            }
            Err(e) => tracing::warn!("not accepting lanes: {e}"),
        }
        Self { control, out: HashMap::new(), turn: 0, unsupported: HashSet::new(), _accepting: accepting }
    }
}

impl EventLoop {
    /// Sends a chunk or availability request on `peer`'s lane (opened on first use). Gives the
    /// job back if it must go over request-response instead.
    pub(super) fn send_on_lane(&mut self, peer: PeerId, request: Request, pending: Pending) -> Option<Job> {
        if !matches!(request, Request::Chunks(_) | Request::Have(_)) || self.lanes.unsupported.contains(&peer) {
            return Some((request, pending));
        }
        let lanes = &mut self.lanes;
        let key = match request {
            Request::Have(_) => (peer, 0),
            _ => {
                lanes.turn = lanes.turn.wrapping_add(1);
                (peer, 1 + lanes.turn % CHUNK_LANES)
            }
        };
        let lane = lanes.out.entry(key).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(LANE_DEPTH);
            tokio::spawn(run_outbound(peer, lanes.control.clone(), rx, self.work_tx.clone()));
            tx
        });
        match lane.try_send((request, pending)) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job)) => Some(job),
            Err(mpsc::error::TrySendError::Closed(job)) => {
                lanes.out.remove(&key);
                Some(job)
            }
        }
    }

    /// `peer`'s lane ended: the next request opens a new one, or goes over request-response
    /// if the peer does not speak lanes.
    pub(super) fn on_lane_closed(&mut self, peer: PeerId, unsupported: bool) {
        self.lanes.out.retain(|(p, _), l| *p != peer || !l.is_closed());
        if unsupported {
            self.lanes.unsupported.insert(peer);
        }
    }

    /// A request sent on `peer`'s lane was not answered: asked again over request-response
    /// while the peer is connected (the lane may have been refused or dropped: libp2p-stream
    /// drops an inbound stream when the node is slow to accept it), failed otherwise.
    pub(super) fn on_unanswered(&mut self, peer: PeerId, request: Request, pending: Pending) {
        if self.is_connected(&peer) {
            self.request_exchange(peer, request, pending);
        } else {
            self.on_request_failed(peer, pending);
        }
    }

    /// `peer` disconnected: its lane ends (what it had in flight comes back unanswered).
    pub(super) fn drop_lane(&mut self, peer: &PeerId) {
        self.lanes.out.retain(|(p, _), _| p != peer);
        self.lanes.unsupported.remove(peer);
    }
}

/// Requests written and not yet answered, oldest first; the permits bound how many.
struct InFlight {
    jobs: Mutex<VecDeque<Job>>,
    room: Semaphore,
    ready: Semaphore,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the lane we opened to `peer`: writes the jobs it is given, reads the answers in
/// order and hands them to the event loop. When it ends, it reports `LaneClosed`, then hands
/// back everything it had not answered, to be asked again over request-response.
async fn run_outbound(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut jobs: mpsc::Receiver<Job>,
    work: mpsc::Sender<Work>,
) {
    let in_flight =
        InFlight { jobs: Mutex::new(VecDeque::new()), room: Semaphore::new(LANE_DEPTH), ready: Semaphore::new(0) };
    let unsupported = match control.open_stream(peer, LANE_PROTOCOL).await {
        Ok(stream) => {
            let (mut rd, mut wr) = stream.split();
            // A job joins `in_flight` before it is written and leaves it only once answered,
            // so whichever half stops first, nothing is lost.
            let writer = async {
                while let Some(job) = jobs.recv().await {
                    let Ok(room) = in_flight.room.acquire().await else { break };
                    room.forget();
                    let request = job.0.clone();
                    in_flight.lock().push_back(job);
                    in_flight.ready.add_permits(1);
                    if let Err(e) = write_request(&mut wr, &request).await {
                        tracing::debug!("lane to {peer}: {e}");
                        return refused(&e);
                    }
                }
                false
            };
            let reader = async {
                loop {
                    let Ok(ready) = in_flight.ready.acquire().await else { break };
                    ready.forget();
                    let Some(request) = in_flight.lock().front().map(|j| j.0.clone()) else { break };
                    let response =
                        match tokio::time::timeout(ANSWER_TIMEOUT, read_response(&mut rd, Some(&request))).await {
                            Ok(Ok(response)) => response,
                            Ok(Err(e)) => {
                                tracing::debug!("lane to {peer}: {e}");
                                return refused(&e);
                            }
                            Err(_) => {
                                tracing::debug!("lane to {peer}: no answer in {ANSWER_TIMEOUT:?}");
                                break;
                            }
                        };
                    let Some((_, pending)) = in_flight.lock().pop_front() else { break };
                    in_flight.room.add_permits(1);
                    if work.send(Work::Answer { peer, pending, response }).await.is_err() {
                        break;
                    }
                }
                false
            };
            tokio::select! {
                unsupported = writer => unsupported,
                unsupported = reader => unsupported,
            }
        }
        Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => true,
        Err(e) => {
            tracing::debug!("no lane to {peer}: {e}");
            false
        }
    };
    jobs.close();
    let mut lost: Vec<Job> = in_flight.lock().drain(..).collect();
    while let Ok(job) = jobs.try_recv() {
        lost.push(job);
    }
    let _ = work.send(Work::LaneClosed { peer, unsupported }).await;
    for (request, pending) in lost {
        let _ = work.send(Work::Unanswered { peer, request, pending }).await;
    }
}

/// True if `e` says the peer does not speak the lane protocol. With lazy negotiation (see
/// `behaviour.rs`) that shows only once the stream is used.
fn refused(e: &std::io::Error) -> bool {
    use libp2p::core::upgrade::NegotiationError;
    e.get_ref()
        .and_then(|e| e.downcast_ref::<NegotiationError>())
        .is_some_and(|e| matches!(e, NegotiationError::Failed))
}

/// Accepts lanes peers open to us, within [`LANES_PER_PEER`] and [`MAX_INBOUND_LANES`], until
/// `stop` is dropped (the node stopped).
async fn accept(
    mut incoming: libp2p_stream::IncomingStreams,
    work: mpsc::Sender<Work>,
    mut stop: oneshot::Receiver<()>,
) {
    let open: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    let count = |open: &Mutex<HashMap<PeerId, usize>>, peer: PeerId, up: bool| {
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let n = open.entry(peer).or_default();
        if !up {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&peer);
            }
            return true;
        }
        if *n >= LANES_PER_PEER || total >= MAX_INBOUND_LANES {
            return false;
        }
        *n += 1;
        true
    };
    loop {
        let (peer, stream) = tokio::select! {
            next = incoming.next() => match next {
                Some(next) => next,
                None => break,
            },
            _ = &mut stop => break,
        };
        if !count(&open, peer, true) {
            tracing::debug!("refusing another lane from {peer}");
            continue;
        }
        let (open, work) = (open.clone(), work.clone());
        tokio::spawn(async move {
            run_inbound(peer, stream, work).await;
            count(&open, peer, false);
        });
    }
}

/// Answers the requests `peer` sends on its lane, in order. Each is decided by the event loop
/// (which may still be reading chunks for earlier ones while the next arrives).
async fn run_inbound(peer: PeerId, stream: libp2p::Stream, work: mpsc::Sender<Work>) {
    let (mut rd, mut wr) = stream.split();
    let (tx, mut rx) = mpsc::channel::<oneshot::Receiver<Response>>(LANE_DEPTH);
    let reader = async move {
        loop {
            let request = match read_request(&mut rd).await {
                Ok(r @ (Request::Chunks(_) | Request::Have(_))) => r,
                Ok(other) => {
                    tracing::debug!("lane from {peer}: {other:?} is not a lane request; closing it");
                    return;
                }
                Err(e) => {
                    // The peer closing its side ends the lane the normal way.
                    tracing::trace!("lane from {peer} ends: {e}");
                    return;
                }
            };
            let (reply, answer) = oneshot::channel();
            if work.send(Work::Inbound { peer, request, reply }).await.is_err() || tx.send(answer).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some(answer) = rx.recv().await {
            let response = answer.await.unwrap_or(Response::Refused);
            if let Err(e) = write_response(&mut wr, response).await {
                tracing::debug!("lane from {peer}: {e}");
                return;
            }
        }
    };
    let (mut reader, mut writer) = (std::pin::pin!(reader), std::pin::pin!(writer));
    tokio::select! {
        // No more requests: answer the ones already asked, then end.
        () = &mut reader => writer.await,
        // The peer stopped reading: stop.
        () = &mut writer => {}
    }
}
