//! The registry of connected viewers (`/stream.mjpg`, `/live.mp4`) and their counters, shown
//! in `/status` and `/metrics`, and the admission of new ones against the stream's own limit
//! and the server's limit in total ([`ViewerBudget`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// A WHEP session (`/streams/{name}/whep`).
    #[serde(rename = "webrtc")]
    WebRtc,
}

impl ViewerKind {
    pub const ALL: [Self; 3] = [Self::Mjpeg, Self::LiveMp4, Self::WebRtc];

    /// The name `/status` and `/metrics` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mjpeg => "mjpeg",
            Self::LiveMp4 => "live.mp4",
            Self::WebRtc => "webrtc",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Mjpeg => 0,
            Self::LiveMp4 => 1,
            Self::WebRtc => 2,
        }
    }
}

/// Viewer slots of the whole server, shared by every stream's registry: the `max_viewers`
/// limit in total. Counts viewers even without a limit.
#[derive(Debug)]
pub struct ViewerBudget {
    taken: AtomicUsize,
    max: Option<usize>,
}

impl ViewerBudget {
    /// `None`: no limit in total.
    pub fn new(max: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            taken: AtomicUsize::new(0),
            max,
        })
    }

    pub fn max(&self) -> Option<usize> {
        self.max
    }

    /// Viewers connected now, over every stream.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// A slot, or `None` when every slot is taken.
    fn try_take(self: &Arc<Self>) -> Option<BudgetSlot> {
        let max = self.max.unwrap_or(usize::MAX);
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |taken| {
                (taken < max).then_some(taken + 1)
            })
            .ok()?;
        Some(BudgetSlot(self.clone()))
    }
}

/// One taken slot of the [`ViewerBudget`], given back when dropped.
#[derive(Debug)]
struct BudgetSlot(Arc<ViewerBudget>);

impl Drop for BudgetSlot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a viewer was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViewerRefusal {
    /// The stream has as many viewers as its `max_viewers` allows.
    #[error("this stream has its maximum of {max} viewers; try again later")]
    StreamFull { max: usize },
    /// The server has as many viewers in total as `max_viewers` allows.
    #[error("the server has its maximum of {max} viewers; try again later")]
    ServerFull { max: usize },
}

/// Who a new viewer is and what it asks for.
#[derive(Debug)]
pub struct NewViewer {
    pub kind: ViewerKind,
    pub remote: Option<SocketAddr>,
    pub user_agent: String,
    pub fps_cap: Option<u32>,
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
    /// Bytes sent to viewers that have left, by [`ViewerKind`], so totals do not shrink.
    departed_bytes: [AtomicU64; 3],
    /// Viewers turned away by this stream's limit or the server's.
    refused: AtomicU64,
}

impl ViewerRegistry {
    /// Registers a viewer without a limit (unit tests of single handlers).
    pub fn register(
        self: &Arc<Self>,
        kind: ViewerKind,
        remote: Option<SocketAddr>,
        user_agent: String,
        fps_cap: Option<u32>,
    ) -> ViewerGuard {
        self.insert(
            NewViewer {
                kind,
                remote,
                user_agent,
                fps_cap,
            },
            None,
        )
    }

    /// Registers a viewer if both this stream (at most `stream_max` viewers, `None`: no
    /// limit of its own) and the server's `budget` have room for it. The check and the
    /// registration are one step: viewers arriving together never overshoot either limit.
    pub fn try_register(
        self: &Arc<Self>,
        viewer: NewViewer,
        stream_max: Option<usize>,
        budget: &Arc<ViewerBudget>,
    ) -> Result<ViewerGuard, ViewerRefusal> {
        let refused = |refusal| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            // Debug only: refusals come in floods when a limit is reached.
            tracing::debug!(kind = ?viewer.kind, remote = ?viewer.remote, %refusal, "viewer refused");
            Err(refusal)
        };
        // The registry's lock is held from the stream's check to the insertion.
        let mut viewers = self.lock();
        if let Some(max) = stream_max
            && viewers.len() >= max
        {
            drop(viewers);
            return refused(ViewerRefusal::StreamFull { max });
        }
        let Some(slot) = budget.try_take() else {
            drop(viewers);
            return refused(ViewerRefusal::ServerFull {
                max: budget.max().unwrap_or(usize::MAX),
            });
        };
        let stats = self.new_stats(viewer);
        viewers.insert(stats.id, stats.clone());
        drop(viewers);
        Ok(self.guard(stats, Some(slot)))
    }

    fn insert(self: &Arc<Self>, viewer: NewViewer, slot: Option<BudgetSlot>) -> ViewerGuard {
        let stats = self.new_stats(viewer);
        self.lock().insert(stats.id, stats.clone());
        self.guard(stats, slot)
    }

    fn new_stats(&self, viewer: NewViewer) -> Arc<ViewerStats> {
        let NewViewer {
            kind,
            remote,
            user_agent,
            fps_cap,
        } = viewer;
        Arc::new(ViewerStats {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            kind,
            remote,
            user_agent: truncate_chars(user_agent, MAX_USER_AGENT_CHARS),
            fps_cap,
            connected_at: Instant::now(),
            frames_sent: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            rate: RateMeter::new(),
            last_index: AtomicU64::new(0),
        })
    }

    /// The guard of a viewer just registered; logged here, outside the registry's lock.
    fn guard(self: &Arc<Self>, stats: Arc<ViewerStats>, slot: Option<BudgetSlot>) -> ViewerGuard {
        tracing::info!(
            viewer = stats.id,
            kind = ?stats.kind,
            remote = ?stats.remote,
            user_agent = stats.user_agent,
            fps_cap = ?stats.fps_cap,
            "viewer arrived"
        );
        ViewerGuard {
            registry: self.clone(),
            stats,
            _slot: slot,
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

    /// Viewers connected now, by kind.
    pub fn count_of(&self, kind: ViewerKind) -> usize {
        self.lock().values().filter(|v| v.kind == kind).count()
    }

    /// Viewers turned away so far by this stream's limit or the server's.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Bytes sent so far to viewers of `kind`, connected or gone.
    pub fn bytes_sent(&self, kind: ViewerKind) -> u64 {
        let connected: u64 = self
            .lock()
            .values()
            .filter(|v| v.kind == kind)
            .map(|v| v.bytes_sent.load(Ordering::Relaxed))
            .sum();
        connected + self.departed_bytes[kind.index()].load(Ordering::Relaxed)
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

/// Keeps a viewer registered, and its slot of the server's budget taken, while it lives.
#[derive(Debug)]
pub struct ViewerGuard {
    registry: Arc<ViewerRegistry>,
    stats: Arc<ViewerStats>,
    _slot: Option<BudgetSlot>,
}

impl ViewerGuard {
    pub fn stats(&self) -> &ViewerStats {
        &self.stats
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        let mut viewers = self.registry.lock();
        viewers.remove(&self.stats.id);
        // Under the lock, so that a reading of the totals never misses a leaving viewer.
        self.registry.departed_bytes[self.stats.kind.index()].fetch_add(
            self.stats.bytes_sent.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        drop(viewers);
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

    fn new_viewer(kind: ViewerKind) -> NewViewer {
        NewViewer {
            kind,
            remote: None,
            user_agent: "test".into(),
            fps_cap: None,
        }
    }

    #[test]
    fn a_stream_takes_viewers_up_to_its_own_limit_and_frees_slots_as_they_leave() {
        let registry = Arc::new(ViewerRegistry::default());
        let budget = ViewerBudget::new(None);
        let first = registry.try_register(new_viewer(ViewerKind::Mjpeg), Some(2), &budget);
        let second = registry.try_register(new_viewer(ViewerKind::LiveMp4), Some(2), &budget);
        assert!(first.is_ok() && second.is_ok());
        let third = registry.try_register(new_viewer(ViewerKind::Mjpeg), Some(2), &budget);
        assert_eq!(third.err(), Some(ViewerRefusal::StreamFull { max: 2 }));
        assert_eq!((registry.refused(), budget.taken()), (1, 2));
        drop(first);
        assert_eq!(budget.taken(), 1);
        let again = registry.try_register(new_viewer(ViewerKind::Mjpeg), Some(2), &budget);
        assert!(again.is_ok());
        assert_eq!(registry.count_of(ViewerKind::Mjpeg), 1);
        assert_eq!(registry.count_of(ViewerKind::LiveMp4), 1);
    }

    #[test]
    fn the_servers_budget_is_shared_by_every_stream() {
        let (a, b) = (
            Arc::new(ViewerRegistry::default()),
            Arc::new(ViewerRegistry::default()),
        );
        let budget = ViewerBudget::new(Some(2));
        let held: Vec<_> = [&a, &b]
            .into_iter()
            .filter_map(|r| {
                r.try_register(new_viewer(ViewerKind::Mjpeg), None, &budget)
                    .ok()
            })
            .collect();
        assert_eq!(held.len(), 2);
        let refused = b.try_register(new_viewer(ViewerKind::Mjpeg), Some(10), &budget);
        assert_eq!(refused.err(), Some(ViewerRefusal::ServerFull { max: 2 }));
        assert_eq!(b.count(), 1, "a refused viewer is not registered");
        drop(held);
        assert_eq!(budget.taken(), 0);
    }

    #[test]
    fn bytes_sent_stay_counted_when_viewers_leave() {
        let registry = Arc::new(ViewerRegistry::default());
        let viewer = registry.register(ViewerKind::LiveMp4, None, "a".into(), None);
        viewer.stats().record_bytes(1000);
        assert_eq!(registry.bytes_sent(ViewerKind::LiveMp4), 1000);
        drop(viewer);
        assert_eq!(registry.bytes_sent(ViewerKind::LiveMp4), 1000);
        assert_eq!(registry.bytes_sent(ViewerKind::Mjpeg), 0);
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
