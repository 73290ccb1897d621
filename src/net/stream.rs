//! Streaming in the event loop: a player's [`Feed`] joins a download, which then fetches in
//! playback order from the feed's playhead (see [`super::schedule::Schedule::stream_from`]).

use std::sync::Arc;

use super::event_loop::EventLoop;
use crate::catalog::ids::ContentId;
use crate::player::Feed;

impl EventLoop {
    /// A player starts reading `id`: fetch it (unpinned, so it is cached under the storage cap
    /// and seeded like any fetched content), in playback order.
    pub(super) fn start_stream(&mut self, id: ContentId, feed: Arc<Feed>) {
        if !self.downloads.contains_key(&id) {
            self.start_download(id, false);
        }
        if let Some(d) = self.downloads.get_mut(&id) {
            // Forget readers that have gone away.
            d.feeds.retain(|f| Arc::strong_count(f) > 1);
            d.feeds.push(feed.clone());
        }
        self.follow_playhead(id, Some(feed.playhead()));
        // The manifest or chunks may be stored already.
        feed.bump();
        self.drive(id);
    }

    /// A reader moved: fetch from its playhead on.
    pub(super) fn on_playhead(&mut self, id: ContentId) {
        let playhead = self.downloads.get_mut(&id).and_then(|d| {
            d.feeds.retain(|f| Arc::strong_count(f) > 1);
            d.feeds.last().map(|f| f.playhead())
        });
        self.follow_playhead(id, playhead);
        self.drive(id);
    }

    /// Fetches `id` in playback order from `playhead`. A reader that asks for a chunk this
    /// download had stored found it damaged on disk and dropped it (see `ChunkSource`): that
    /// chunk is fetched again.
    fn follow_playhead(&mut self, id: ContentId, playhead: Option<usize>) {
        let (Some(playhead), Some(d)) = (playhead, self.downloads.get_mut(&id)) else { return };
        let (Some(s), Some(m)) = (&mut d.schedule, &d.manifest) else { return };
        if m.chunks.get(playhead).is_some_and(|c| !self.local.store.has_chunk(c).unwrap_or(true)) {
            s.lost(playhead);
        }
        s.stream_from(playhead);
    }

    /// True if someone waits for `id`: a caller of fetch, or a player reading it. A download
    /// nobody waits for (resumed after a restart) keeps waiting for peers instead of failing.
    pub(super) fn has_waiter(&self, id: &ContentId) -> bool {
        self.waiters.iter().any(|w| w.ids.contains(id))
            || self.downloads.get(id).is_some_and(|d| d.feeds.iter().any(|f| Arc::strong_count(f) > 1))
    }
}
