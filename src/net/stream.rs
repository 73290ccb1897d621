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
            if let Some(s) = &mut d.schedule {
                s.stream_from(feed.playhead());
            }
        }
        // The manifest or chunks may be stored already.
        feed.bump();
        self.drive(id);
    }

    /// A reader moved: fetch from its playhead on.
    pub(super) fn on_playhead(&mut self, id: ContentId) {
        if let Some(d) = self.downloads.get_mut(&id) {
            d.feeds.retain(|f| Arc::strong_count(f) > 1);
            if let (Some(s), Some(f)) = (&mut d.schedule, d.feeds.last()) {
                s.stream_from(f.playhead());
            }
        }
        self.drive(id);
    }

    /// True if someone waits for `id`: a caller of fetch, or a player reading it. A download
    /// nobody waits for (resumed after a restart) keeps waiting for peers instead of failing.
    pub(super) fn has_waiter(&self, id: &ContentId) -> bool {
        self.waiters.iter().any(|w| w.ids.contains(id))
            || self.downloads.get(id).is_some_and(|d| d.feeds.iter().any(|f| Arc::strong_count(f) > 1))
    }
}
