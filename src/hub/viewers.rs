//! The registry of connected MJPEG viewers and their counters, shown in `/status`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::meter::RateMeter;

/// The most of a user agent kept: enough to tell browsers and players apart, and a client
/// cannot make `/status` or the log large by sending a huge header.
pub const MAX_USER_AGENT_CHARS: usize = 200;

/// What a viewer watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ViewerKind {
    /// `/stream.mjpg`.
    #[serde(rename = "mjpeg")]
    Mjpeg,
    /// `/live.mp4`.
    #[serde(rename = "live.mp4")]
    LiveMp4,
}

/// One viewer's counters, updated by its stream and read by `/status`.
#[derive(Debug)]
pub struct ViewerStats {
    pub id: u64,
    pub kind: ViewerKind,
    pub remote: Option<SocketAddr>,
    pub user_agent: String,
    pub fps_cap: Option<u32>,
    pub connected_at: Instant,
    pub frames_sent: AtomicU64,
    /// Frames the encoder published that this viewer never got because it was not ready.
    pub frames_skipped: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub rate: RateMeter,
    /// Publish index of the last frame sent; 0 before the first.
    last_index: AtomicU64,
}

impl ViewerStats {
    pub fn record_frame(&self, skipped: u64, index: u64) {
        self.last_index.store(index, Ordering::Relaxed);
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.frames_skipped.fetch_add(skipped, Ordering::Relaxed);
        self.rate.tick();
    }

    /// Frames skipped so far, counting those published since this viewer's last frame: a
    /// viewer whose socket is stuck shows its skips while it is stuck, not only once it reads.
    pub fn skipped_now(&self, newest_index: u64) -> u64 {
        let counted = self.frames_skipped.load(Ordering::Relaxed);
        match self.last_index.load(Ordering::Relaxed) {
            0 => counted,
            last => counted + newest_index.saturating_sub(last + 1),
        }
    }

    pub fn record_bytes(&self, len_bytes: usize) {
        self.bytes_sent
            .fetch_add(len_bytes as u64, Ordering::Relaxed);
    }
}

/// Who is watching. Removing happens when the [`ViewerGuard`] drops, which actix does when the
/// client goes away and the response body is dropped.
#[derive(Debug, Default)]
pub struct ViewerRegistry {
    next_id: AtomicU64,
    viewers: Mutex<BTreeMap<u64, Arc<ViewerStats>>>,
    /// Frames skipped by viewers that have left, so totals do not shrink when they go.
    departed_skipped: AtomicU64,
    /// Viewers dropped because their connection took nothing for the stall limit.
    dropped_stalled: AtomicU64,
}

impl ViewerRegistry {
    pub fn register(
        self: &Arc<Self>,
        kind: ViewerKind,
        remote: Option<SocketAddr>,
        user_agent: String,
        fps_cap: Option<u32>,
    ) -> ViewerGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let user_agent = truncate_chars(user_agent, MAX_USER_AGENT_CHARS);
        tracing::info!(
            viewer = id,
            ?kind,
            ?remote,
            user_agent,
            ?fps_cap,
            "viewer arrived"
        );
        let stats = Arc::new(ViewerStats {
            id,
            kind,
            remote,
            user_agent,
            fps_cap,
            connected_at: Instant::now(),
            frames_sent: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            rate: RateMeter::new(),
            last_index: AtomicU64::new(0),
        });
        self.lock().insert(id, stats.clone());
        ViewerGuard {
            registry: self.clone(),
            stats,
        }
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    pub fn snapshot(&self) -> Vec<Arc<ViewerStats>> {
        self.lock().values().cloned().collect()
    }

    /// Counts a viewer dropped because its connection stopped taking bytes.
    pub fn count_dropped_stalled(&self) {
        self.dropped_stalled.fetch_add(1, Ordering::Relaxed);
    }

    /// Viewers dropped so far because their connection stopped taking bytes.
    pub fn dropped_stalled(&self) -> u64 {
        self.dropped_stalled.load(Ordering::Relaxed)
    }

    /// Frames skipped by every viewer so far, connected or gone.
    pub fn total_skipped(&self) -> u64 {
        let connected: u64 = self
            .lock()
            .values()
            .map(|v| v.frames_skipped.load(Ordering::Relaxed))
            .sum();
        connected + self.departed_skipped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ViewerStats>>> {
        self.viewers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a viewer registered while it lives.
#[derive(Debug)]
pub struct ViewerGuard {
    registry: Arc<ViewerRegistry>,
    stats: Arc<ViewerStats>,
}

impl ViewerGuard {
    pub fn stats(&self) -> &ViewerStats {
        &self.stats
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.stats.id);
        tracing::info!(
            viewer = self.stats.id,
            frames_sent = self.stats.frames_sent.load(Ordering::Relaxed),
            frames_skipped = self.stats.frames_skipped.load(Ordering::Relaxed),
            bytes_sent = self.stats.bytes_sent.load(Ordering::Relaxed),
            connected_s = self.stats.connected_at.elapsed().as_secs_f64(),
            "viewer left"
        );
        self.registry.departed_skipped.fetch_add(
            self.stats.frames_skipped.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn truncate_chars(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_leave_when_their_guard_drops_and_totals_stay() {
        let registry = Arc::new(ViewerRegistry::default());
        let a = registry.register(ViewerKind::Mjpeg, None, "a".into(), None);
        let b = registry.register(ViewerKind::Mjpeg, None, "b".into(), Some(5));
        assert_eq!(registry.count(), 2);
        a.stats().record_frame(3, 5);
        assert_eq!(a.stats().skipped_now(9), 6, "three counted, three since");
        drop(a);
        assert_eq!(registry.count(), 1);
        assert_eq!(registry.snapshot()[0].id, b.stats().id);
        assert_eq!(registry.total_skipped(), 3);
    }

    #[test]
    fn long_user_agents_are_cut() {
        let registry = Arc::new(ViewerRegistry::default());
        let viewer = registry.register(ViewerKind::LiveMp4, None, "é".repeat(10_000), None);
        let kept = &viewer.stats().user_agent;
        assert_eq!(kept.chars().count(), MAX_USER_AGENT_CHARS + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(truncate_chars("short".into(), 200), "short");
    }
}
