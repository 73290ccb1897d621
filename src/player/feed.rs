//! The meeting point of a reader that waits for chunks and the network that delivers them.
//!
//! A [`Feed`] belongs to one streamed track. The reader (a [`super::ChunkSource`] on a
//! blocking thread) moves the playhead and waits; the node's event loop bumps the feed when a
//! verified chunk or the manifest is stored, and fails it when no peer can supply the rest.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How a feed's waits end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The fetch gave up: no peer can supply the rest.
    #[error("{0}")]
    Failed(String),
    /// Nothing arrived within the wait's time limit.
    #[error("no data arrived for {0:?}")]
    TimedOut(Duration),
}

#[derive(Default)]
struct State {
    version: u64,
    playhead: usize,
    failed: Option<String>,
}

/// Shared state of one streamed track: a version counter bumped by every delivery, the chunk
/// the reader needs next, and the fetch's failure if it gave up.
pub struct Feed {
    state: Mutex<State>,
    changed: Condvar,
    nudge: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("playhead", &self.playhead()).finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed whose playhead moves are passed on by calling `nudge` (which tells the fetcher to
    /// re-prioritise; it must not block).
    pub fn new(nudge: impl Fn() + Send + Sync + 'static) -> Self {
        Self { state: Mutex::new(State::default()), changed: Condvar::new(), nudge: Box::new(nudge) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The chunk the reader needs next.
    pub fn playhead(&self) -> usize {
        self.lock().playhead
    }

    /// The reader needs chunk `idx` next: record it and tell the fetcher if it moved.
    pub fn want(&self, idx: usize) {
        let moved = {
            let mut s = self.lock();
            let moved = s.playhead != idx;
            s.playhead = idx;
            moved
        };
        if moved {
            (self.nudge)();
        }
    }

    /// Tells the fetcher again where the playhead is (after a wait that saw nothing arrive).
    pub fn renudge(&self) {
        (self.nudge)();
    }

    /// Something was stored (a chunk, the manifest): wake the readers.
    pub fn bump(&self) {
        self.lock().version += 1;
        self.changed.notify_all();
    }

    /// The fetch gave up: wake the readers with `reason`.
    pub fn fail(&self, reason: String) {
        self.lock().failed = Some(reason);
        self.changed.notify_all();
    }

    /// The current version, to pass to [`Feed::wait`] after checking the store.
    pub fn version(&self) -> Result<u64, FeedError> {
        let s = self.lock();
        match &s.failed {
            Some(r) => Err(FeedError::Failed(r.clone())),
            None => Ok(s.version),
        }
    }

    /// Blocks until the version moves past `seen`, the fetch fails, or `timeout` passes.
    pub fn wait(&self, seen: u64, timeout: Duration) -> Result<u64, FeedError> {
        let s = self.lock();
        let (s, result) = self
            .changed
            .wait_timeout_while(s, timeout, |s| s.version == seen && s.failed.is_none())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = &s.failed {
            return Err(FeedError::Failed(r.clone()));
        }
        if result.timed_out() {
            return Err(FeedError::TimedOut(timeout));
        }
        Ok(s.version)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn waits_end_on_delivery_failure_or_timeout() {
        let nudges = Arc::new(AtomicUsize::new(0));
        let n = nudges.clone();
        let feed = Arc::new(Feed::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        }));
        feed.want(3);
        feed.want(3);
        assert_eq!((feed.playhead(), nudges.load(Ordering::SeqCst)), (3, 1), "only a move nudges");
        let v = feed.version().unwrap();
        assert_eq!(feed.wait(v, Duration::from_millis(10)), Err(FeedError::TimedOut(Duration::from_millis(10))));
        let f = feed.clone();
        let t = std::thread::spawn(move || f.wait(v, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        feed.bump();
        assert_eq!(t.join().unwrap(), Ok(v + 1));
        feed.fail("no peer has chunk 3".into());
        assert_eq!(feed.wait(v + 1, Duration::from_secs(30)), Err(FeedError::Failed("no peer has chunk 3".into())));
    }
}
