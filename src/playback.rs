//! The node's side of playback: where the [`Player`] gets tracks (the store, or the swarm as
//! the bytes arrive), the ledger hook that records plays that count, and the node's player.
//!
//! A track that is fully stored plays from the store with no network at all (a cache hit).
//! Any other track is streamed: its download joins the event loop in playback order, and the
//! player's reads wait for each verified chunk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use symphonia::core::io::MediaSource;
use tokio::sync::mpsc;

use crate::Local;
use crate::catalog::ContentId;
use crate::net::event_loop::Command;
use crate::node::Node;
use crate::player::{
    ChunkSource, Feed, FeedError, PlayError, PlayHook, PlayOptions, Player, QueueItem, Repair, Sink, Tracks,
};

/// How long a read may wait without any chunk arriving before the track fails.
const STALL: Duration = Duration::from_secs(30);

fn unreadable(e: std::io::Error) -> PlayError {
    PlayError::Source(e.to_string())
}

fn store_error(e: impl std::fmt::Display) -> PlayError {
    PlayError::Source(format!("local store: {e}"))
}

/// Opens a fully stored track from the store (no network unless a chunk turns out damaged and
/// `repair` can fetch it again).
fn open_stored(
    local: &Arc<Local>,
    id: &ContentId,
    repair: Option<Repair>,
) -> Result<Option<Box<dyn MediaSource>>, PlayError> {
    if !local.store.is_complete(id).map_err(store_error)? {
        return Ok(None);
    }
    let manifest = local.store.manifest(id).map_err(store_error)?.ok_or_else(|| store_error("manifest missing"))?;
    let mut source = ChunkSource::new(local.clone(), *id, manifest, None, STALL);
    if let Some(r) = repair {
        source = source.with_repair(r);
    }
    Ok(Some(Box::new(source.prime().map_err(unreadable)?)))
}

/// Tracks from the local store only: what this node holds completely.
pub struct StoredTracks(pub Arc<Local>);

impl Tracks for StoredTracks {
    fn open(&self, item: &QueueItem) -> Result<Box<dyn MediaSource>, PlayError> {
        open_stored(&self.0, &item.id, None)?.ok_or_else(|| {
            PlayError::Source(format!(
                "{} ({}) is not stored here; start the daemon (`busker daemon`) to stream it from peers",
                item.title,
                item.id.short()
            ))
        })
    }
}

/// Audio files on disk, for `busker play FILE`.
#[derive(Default)]
pub struct FileTracks {
    paths: HashMap<ContentId, PathBuf>,
}

impl FileTracks {
    /// A queue item for the file at `path` (named after the file), registered for opening.
    pub fn add(&mut self, path: PathBuf) -> QueueItem {
        let id = ContentId::of(path.to_string_lossy().as_bytes());
        let title = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        self.paths.insert(id, path);
        QueueItem {
            id,
            title,
            artist: crate::catalog::ArtistKey([0; 32]),
            artist_name: String::new(),
            release: String::new(),
            duration_ms: 0,
            ext,
            via: None,
        }
    }
}

impl Tracks for FileTracks {
    fn open(&self, item: &QueueItem) -> Result<Box<dyn MediaSource>, PlayError> {
        let path = self.paths.get(&item.id).ok_or_else(|| PlayError::NothingFound(item.title.clone()))?;
        let file = std::fs::File::open(path).map_err(|e| PlayError::Source(format!("{}: {e}", path.display())))?;
        Ok(Box::new(file))
    }
}

/// A feed for streaming `id` whose playhead moves are passed to the node's event loop.
fn playhead_feed(tx: mpsc::Sender<Command>, id: ContentId) -> Arc<Feed> {
    // A full command queue only delays the nudge: the reader nudges again while it waits.
    Arc::new(Feed::new(move || {
        let _ = tx.try_send(Command::Playhead { id });
    }))
}

/// Tracks through a running node: stored ones from the store, the rest streamed from peers.
pub struct NodeTracks {
    local: Arc<Local>,
    commands: mpsc::Sender<Command>,
    /// Feeds of tracks prefetched ahead of their turn.
    prefetched: Mutex<HashMap<ContentId, Arc<Feed>>>,
}

impl NodeTracks {
    fn feed(&self, id: ContentId) -> Arc<Feed> {
        playhead_feed(self.commands.clone(), id)
    }

    /// Streams `id` again from chunk `idx` when a stored chunk is found damaged: the player's
    /// reader waits on the returned feed while the node fetches the chunk from peers.
    fn repair(&self, id: ContentId) -> Repair {
        let tx = self.commands.clone();
        Arc::new(move |feed: Option<Arc<Feed>>, idx: usize| {
            let feed = feed.unwrap_or_else(|| playhead_feed(tx.clone(), id));
            feed.want(idx);
            tx.blocking_send(Command::Stream { id, feed: feed.clone() }).ok().map(|_| feed)
        })
    }

    fn send(&self, cmd: Command) -> Result<(), PlayError> {
        // Called on the player's own thread, never inside the async runtime.
        self.commands.blocking_send(cmd).map_err(|_| PlayError::Source("the node has stopped".into()))
    }
}

impl Tracks for NodeTracks {
    fn open(&self, item: &QueueItem) -> Result<Box<dyn MediaSource>, PlayError> {
        let id = item.id;
        if let Some(stored) = open_stored(&self.local, &id, Some(self.repair(id)))? {
            tracing::debug!("{}: stored here, playing without network", item.title);
            return Ok(stored);
        }
        let prefetched = self.prefetched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        let feed = match prefetched {
            Some(f) => f,
            None => {
                let f = self.feed(id);
                self.send(Command::Stream { id, feed: f.clone() })?;
                f
            }
        };
        let mut idle = Duration::ZERO;
        let step = Duration::from_millis(250);
        loop {
            let seen = feed.version().map_err(|e| PlayError::Source(format!("{}: {e}", item.title)))?;
            if let Some(m) = self.local.store.manifest(&id).map_err(store_error)? {
                let source =
                    ChunkSource::new(self.local.clone(), id, m, Some(feed), STALL).with_repair(self.repair(id));
                return Ok(Box::new(source.prime().map_err(unreadable)?));
            }
            match feed.wait(seen, step) {
                Ok(_) => idle = Duration::ZERO,
                Err(FeedError::TimedOut(_)) if idle < STALL => idle += step,
                Err(e) => {
                    return Err(PlayError::Source(format!("{}: no peer sent its manifest ({e})", item.title)));
                }
            }
        }
    }

    fn prefetch(&self, item: &QueueItem) {
        if self.local.store.is_complete(&item.id).unwrap_or(false) {
            return;
        }
        let feed = self.feed(item.id);
        if self.commands.try_send(Command::Stream { id: item.id, feed: feed.clone() }).is_ok() {
            self.prefetched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(item.id, feed);
        }
    }
}

/// Records every play that counts in the node's ledger.
pub struct LedgerHook(pub Arc<Local>);

impl PlayHook for LedgerHook {
    fn played(&self, item: &QueueItem, ms: u64) {
        let now = crate::time::unix_now();
        match self.0.ledger.record_play(item.id, item.artist, ms, now, item.via) {
            Ok(e) => tracing::info!("play of {} recorded in the ledger (entry {})", item.title, e.seq),
            Err(e) => tracing::warn!("cannot record the play of {} in the ledger: {e}", item.title),
        }
    }
}

impl Node {
    /// Where this node's player gets tracks: the store, or the swarm.
    pub fn tracks(&self) -> Arc<dyn Tracks> {
        Arc::new(NodeTracks {
            local: self.local_arc(),
            commands: self.commands().clone(),
            prefetched: Mutex::new(HashMap::new()),
        })
    }

    /// Finds what to play among the catalogs this node knows: a track or release id (or a
    /// unique prefix), or search words.
    pub fn resolve(&self, query: &str) -> Result<Vec<QueueItem>, PlayError> {
        crate::player::resolve(&self.local().store, query)
    }

    /// Plays `items` to `sink`, streaming what is not stored, and records plays that count in
    /// the ledger. Replaces (stops) whatever the node was playing. Time to first audio is
    /// measured from this call.
    pub fn play(&self, items: Vec<QueueItem>, sink: Box<dyn Sink>, opts: PlayOptions) -> Result<Player, PlayError> {
        let hook: Arc<dyn PlayHook> = Arc::new(LedgerHook(self.local_arc()));
        let mut slot = self.player_slot().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(previous) = slot.take() {
            let _ = previous.control(crate::player::Control::Stop);
        }
        let player = Player::start(self.tracks(), sink, items, opts, Some(hook))?;
        *slot = Some(player.clone());
        Ok(player)
    }

    /// The node's current (or last) player, if it has played anything.
    pub fn player(&self) -> Option<Player> {
        self.player_slot().lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
