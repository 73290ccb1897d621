//! [`Player`]: plays a queue of tracks on its own thread, gaplessly, into one [`Sink`], and
//! takes control messages (pause, resume, next, seek, stop, enqueue) on a bounded channel.
//!
//! Every play measures **time to first audio** (from the play command to the first decoded
//! samples handed to the sink) and **stutters** (the sink ran dry). A play counts, and is
//! passed to the [`PlayHook`] (the ledger), once it has played 30 s or half the track,
//! whichever is shorter.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use symphonia::core::io::MediaSource;

use super::decode::Decoder;
use super::queue::{QueueItem, shuffle};
use super::sink::{Sink, SinkError};
use super::{MediaError, PlayError};

/// Control messages waiting for the player thread.
const CONTROL_QUEUE: usize = 32;
/// Start fetching the next track when this much of the current one is left.
const PREFETCH_BEFORE_END_MS: u64 = 20_000;
/// A play counts after this long, or half the track if shorter.
pub const COUNT_AFTER_MS: u64 = 30_000;

/// True if `played_ms` of a track lasting `duration_ms` counts as a play.
pub fn counts(played_ms: u64, duration_ms: u64) -> bool {
    played_ms >= COUNT_AFTER_MS.min(duration_ms / 2).max(1)
}

/// Where the player gets a track's bytes.
pub trait Tracks: Send + Sync {
    /// Opens a track for reading; may block until its first bytes can be read.
    fn open(&self, item: &QueueItem) -> Result<Box<dyn MediaSource>, PlayError>;
    /// Starts fetching a track that will play soon. Does not block.
    fn prefetch(&self, _item: &QueueItem) {}
}

/// Told about every play that counts.
pub trait PlayHook: Send + Sync {
    /// `item` was played for `ms` milliseconds.
    fn played(&self, item: &QueueItem, ms: u64);
}

/// How to play a queue.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PlayOptions {
    /// Start the first track at this position (milliseconds).
    pub start_ms: u64,
    /// Play the queue in a random order.
    pub shuffle: bool,
    /// Start again when the queue ends.
    pub repeat: bool,
    /// Stop after this much audio (milliseconds), e.g. a preview.
    pub limit_ms: Option<u64>,
}

/// A message to a playing [`Player`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Skip to the next track.
    Next,
    /// Seek within the current track to this many milliseconds.
    Seek(u64),
    /// Stop playing.
    Stop,
    /// Add tracks to the end of the queue.
    Enqueue(Vec<QueueItem>),
}

/// What the player is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Opening the first track.
    #[default]
    Starting,
    /// Playing.
    Playing,
    /// Paused.
    Paused,
    /// Done: the queue ended, or it was stopped or failed.
    Stopped,
}

/// Measurements of one track's play.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackStats {
    /// The track.
    pub track: crate::catalog::ContentId,
    /// Its title.
    pub title: String,
    /// From the request (the play command for the first track, the previous track's end for
    /// the others) to the first samples handed to the sink, in milliseconds.
    pub ttfa_ms: Option<f64>,
    /// Milliseconds of audio handed to the sink.
    pub played_ms: u64,
    /// Times the sink ran dry during this track.
    pub stutters: u64,
    /// True if the play counted and went to the play hook (the ledger).
    pub counted: bool,
    /// Why the track could not be played to the end.
    pub error: Option<String>,
}

/// The track playing now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NowPlaying {
    /// The track.
    pub item: QueueItem,
    /// Position heard now, in milliseconds.
    pub position_ms: u64,
}

/// A player's state, for display and the control API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// What it is doing.
    pub state: State,
    /// The track playing now.
    pub now: Option<NowPlaying>,
    /// Tracks still to play, in order.
    pub queue: Vec<QueueItem>,
    /// Time to first audio of the play command, in milliseconds.
    pub ttfa_ms: Option<f64>,
    /// Times the sink ran dry, in all.
    pub stutters: u64,
    /// Tracks played so far, with their measurements.
    pub tracks: Vec<TrackStats>,
    /// Why playback stopped early, if it did.
    pub error: Option<String>,
    /// The output.
    pub output: String,
}

struct Shared {
    status: Mutex<Status>,
    /// Control messages sent, and applied by the play thread.
    sent: AtomicU64,
    applied: AtomicU64,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

/// A handle on a queue playing on its own thread. Cloneable; dropping every handle does not
/// stop playback (send [`Control::Stop`]).
#[derive(Clone)]
pub struct Player {
    shared: Arc<Shared>,
    control: SyncSender<Control>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player").field("state", &self.status().state).finish_non_exhaustive()
    }
}

/// Everything the play thread needs.
struct Run {
    shared: Arc<Shared>,
    control: Receiver<Control>,
    tracks: Arc<dyn Tracks>,
    sink: Box<dyn Sink>,
    hook: Option<Arc<dyn PlayHook>>,
    opts: PlayOptions,
    queue: VecDeque<QueueItem>,
    played_total: u64,
    paused: bool,
}

/// How one track's play ended.
enum Ending {
    Finished,
    Skipped,
    Stopped,
    Limit,
}

impl Player {
    /// Starts playing `items` to `sink`. The clock for time to first audio starts now.
    pub fn start(
        tracks: Arc<dyn Tracks>,
        sink: Box<dyn Sink>,
        mut items: Vec<QueueItem>,
        opts: PlayOptions,
        hook: Option<Arc<dyn PlayHook>>,
    ) -> Result<Player, PlayError> {
        let requested = Instant::now();
        if items.is_empty() {
            return Err(PlayError::NothingFound("an empty queue".into()));
        }
        if opts.shuffle {
            shuffle(&mut items, seed());
        }
        let status = Status { output: sink.describe(), queue: items.clone(), ..Status::default() };
        let shared =
            Arc::new(Shared { status: Mutex::new(status), sent: AtomicU64::new(0), applied: AtomicU64::new(0) });
        let (tx, rx) = std::sync::mpsc::sync_channel(CONTROL_QUEUE);
        let run = Run {
            shared: shared.clone(),
            control: rx,
            tracks,
            sink,
            hook,
            opts,
            queue: items.into(),
            played_total: 0,
            paused: false,
        };
        let thread = std::thread::Builder::new()
            .name("busker-player".into())
            .spawn(move || run.run(requested))
            .map_err(|e| PlayError::Source(format!("cannot start the player thread: {e}")))?;
        Ok(Player { shared, control: tx, thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// Sends a control message. Fails if playback has ended.
    pub fn control(&self, c: Control) -> Result<(), PlayError> {
        self.control.try_send(c).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => PlayError::Busy,
            std::sync::mpsc::TrySendError::Disconnected(_) => PlayError::NotPlaying,
        })?;
        self.shared.sent.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Sends a control message and waits (up to a second: the player may be waiting for the
    /// network) until the player has applied it; returns the state then.
    pub fn apply(&self, c: Control) -> Result<Status, PlayError> {
        self.control(c)?;
        let sent = self.shared.sent.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.applied.load(Ordering::SeqCst) < sent && Instant::now() < deadline && !self.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(self.status())
    }

    /// The current state.
    pub fn status(&self) -> Status {
        self.shared.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// True once playback has ended.
    pub fn is_finished(&self) -> bool {
        self.shared.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).state == State::Stopped
    }

    /// Blocks until playback ends; returns the final state. Errs if every track failed.
    pub fn wait(&self) -> Result<Status, PlayError> {
        let handle = self.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        let status = self.status();
        match &status.error {
            Some(e) if status.tracks.iter().all(|t| t.error.is_some()) => Err(PlayError::Failed(e.clone())),
            _ => Ok(status),
        }
    }
}

/// A seed for shuffling: the clock's nanoseconds.
fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

impl Run {
    fn run(mut self, requested: Instant) {
        let original: Vec<QueueItem> = self.queue.iter().cloned().collect();
        let mut first = true;
        let mut last_error = None;
        // Repeat only a round that played something, so a queue of broken tracks ends.
        let mut round_played = false;
        loop {
            let Some(item) = self.queue.pop_front() else {
                if self.opts.repeat && std::mem::take(&mut round_played) {
                    let mut again = original.clone();
                    if self.opts.shuffle {
                        shuffle(&mut again, seed());
                    }
                    self.queue = again.into();
                    continue;
                }
                break;
            };
            let queue: Vec<QueueItem> = self.queue.iter().cloned().collect();
            self.shared.update(|s| {
                s.now = Some(NowPlaying { item: item.clone(), position_ms: 0 });
                s.queue = queue;
            });
            let started = if first { requested } else { Instant::now() };
            let start_ms = if first { self.opts.start_ms } else { 0 };
            first = false;
            let stutters_before = self.sink.stutters();
            let mut stats = TrackStats {
                track: item.id,
                title: item.title.clone(),
                ttfa_ms: None,
                played_ms: 0,
                stutters: 0,
                counted: false,
                error: None,
            };
            let ending = self.play_one(&item, started, start_ms, &mut stats);
            stats.stutters = self.sink.stutters() - stutters_before;
            round_played |= stats.played_ms > 0;
            self.played_total += stats.played_ms;
            // Counted only where a hook records it (a local file has no artist to credit).
            if let Some(h) = self.hook.as_ref().filter(|_| counts(stats.played_ms, item.duration_ms)) {
                h.played(&item, stats.played_ms);
                stats.counted = true;
            }
            let ending = match ending {
                Ok(e) => e,
                Err(PlayError::Sink(SinkError::Closed(what))) => {
                    tracing::info!("{what} was closed; stopping");
                    Ending::Stopped
                }
                Err(e) => {
                    tracing::warn!("cannot play {}: {e}", item.title);
                    stats.error = Some(e.to_string());
                    last_error = Some(e.to_string());
                    Ending::Finished
                }
            };
            tracing::info!(
                "played {} for {} ms: first audio after {} ms, {} stutters",
                item.title,
                stats.played_ms,
                stats.ttfa_ms.map_or("-".into(), |t| format!("{t:.1}")),
                stats.stutters
            );
            let total = self.sink.stutters();
            self.shared.update(|s| {
                s.tracks.push(stats);
                s.stutters = total;
            });
            if matches!(ending, Ending::Stopped | Ending::Limit) {
                self.sink.discard();
                break;
            }
        }
        let finished = self.sink.finish();
        let total = self.sink.stutters();
        self.shared.update(|s| {
            s.state = State::Stopped;
            s.now = None;
            s.stutters = total;
            s.error = last_error.or_else(|| finished.err().map(|e| e.to_string()));
        });
    }

    fn play_one(
        &mut self,
        item: &QueueItem,
        started: Instant,
        start_ms: u64,
        stats: &mut TrackStats,
    ) -> Result<Ending, PlayError> {
        let source = self.tracks.open(item)?;
        let mut decoder = Decoder::open(source, item.ext.as_deref()).map_err(|e| named(item, e))?;
        if start_ms > 0 {
            decoder.seek(start_ms).map_err(|e| named(item, e))?;
        }
        let duration = if item.duration_ms > 0 { item.duration_ms } else { decoder.duration_ms().unwrap_or(0) };
        let mut prefetched = false;
        let mut frames: u64 = 0;
        loop {
            if let Some(ending) = self.take_controls(&mut decoder, item)? {
                return Ok(ending);
            }
            let Some((spec, samples)) = decoder.next_samples().map_err(|e| named(item, e))? else {
                return Ok(Ending::Finished);
            };
            if stats.ttfa_ms.is_none() {
                self.sink.start(spec)?;
                let ttfa = started.elapsed().as_secs_f64() * 1000.0;
                stats.ttfa_ms = Some(ttfa);
                tracing::info!("{}: first audio after {ttfa:.1} ms", item.title);
                self.shared.update(|s| {
                    s.state = State::Playing;
                    s.ttfa_ms.get_or_insert(ttfa);
                });
            }
            let n = samples.len() as u64 / u64::from(spec.channels.max(1));
            self.sink.write(samples)?;
            frames += n;
            stats.played_ms = frames * 1000 / u64::from(spec.rate.max(1));
            let heard = decoder.position_ms().saturating_sub(self.sink.buffered_ms());
            self.shared.update(|s| {
                if let Some(now) = &mut s.now {
                    now.position_ms = heard;
                }
            });
            if !prefetched && duration.saturating_sub(decoder.position_ms()) < PREFETCH_BEFORE_END_MS {
                prefetched = true;
                if let Some(next) = self.queue.front() {
                    self.tracks.prefetch(next);
                }
            }
            if let Some(limit) = self.opts.limit_ms
                && self.played_total + stats.played_ms >= limit
            {
                return Ok(Ending::Limit);
            }
        }
    }

    /// Applies waiting control messages; blocks while paused.
    fn take_controls(&mut self, decoder: &mut Decoder, item: &QueueItem) -> Result<Option<Ending>, PlayError> {
        loop {
            let msg = if self.paused {
                match self.control.recv_timeout(Duration::from_millis(500)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return Ok(Some(Ending::Stopped)),
                }
            } else {
                match self.control.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(None),
                }
            };
            self.shared.applied.fetch_add(1, Ordering::SeqCst);
            match msg {
                Control::Pause => {
                    self.paused = true;
                    self.sink.pause(true);
                    self.shared.update(|s| s.state = State::Paused);
                }
                Control::Resume => {
                    self.paused = false;
                    self.sink.pause(false);
                    self.shared.update(|s| s.state = State::Playing);
                }
                Control::Next => {
                    self.resume_for_change();
                    return Ok(Some(Ending::Skipped));
                }
                Control::Stop => {
                    self.resume_for_change();
                    return Ok(Some(Ending::Stopped));
                }
                Control::Seek(ms) => {
                    self.resume_for_change();
                    let landed = decoder.seek(ms).map_err(|e| named(item, e))?;
                    tracing::info!("{}: seeked to {landed} ms", item.title);
                    self.shared.update(|s| {
                        if let Some(now) = &mut s.now {
                            now.position_ms = landed;
                        }
                    });
                }
                Control::Enqueue(items) => {
                    self.queue.extend(items);
                    let queue: Vec<QueueItem> = self.queue.iter().cloned().collect();
                    self.shared.update(|s| s.queue = queue);
                }
            }
        }
    }

    /// Drops buffered audio before a jump, and leaves pause (a jump resumes playback).
    fn resume_for_change(&mut self) {
        self.sink.discard();
        if self.paused {
            self.paused = false;
            self.sink.pause(false);
            self.shared.update(|s| s.state = State::Playing);
        }
    }
}

fn named(item: &QueueItem, e: MediaError) -> PlayError {
    PlayError::Media { track: item.title.clone(), error: e }
}
