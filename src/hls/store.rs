//! The live window shared between the H.264 thread and the HTTP handlers: the thread applies
//! segmenter events, handlers look things up, and requests that must wait for the window (a
//! blocking playlist reload, a hinted part, the first complete segment after start) wait here,
//! each bounded by three target durations.
//!
//! Each rendering of the media playlist (whole or delta update, gzip'd or not) is made at most
//! once per window change, on the first request that wants it, and shared as [`Bytes`] by
//! every request until the window changes again: a thousand blocked reloads woken by one new
//! part cost one rendering, not a thousand.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::watch;

use crate::hls::reload::{self, Decision, WindowState};
use crate::hls::segmenter::SegmenterEvent;
pub use crate::hls::window::{
    Bandwidth, FramePosition, HlsTiming, InitSegment, LiveWindow, PartLookup,
};
use crate::media::playlist::{MediaPlaylist, MultivariantPlaylist, SkipRequest};

/// One rendering of the media playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistVariant {
    /// A Playlist Delta Update (`_HLS_skip=YES` or `v2`, rfc8216bis §6.2.5.1).
    pub delta: bool,
    /// Gzip'd, for clients that accept it.
    pub gzip: bool,
}

impl PlaylistVariant {
    const COUNT: usize = 4;

    fn slot(self) -> usize {
        usize::from(self.delta) * 2 + usize::from(self.gzip)
    }
}

#[derive(Debug)]
struct Shared {
    window: LiveWindow,
    /// The renderings of the window as it stands, made on demand.
    rendered: [Option<Bytes>; PlaylistVariant::COUNT],
    /// How many renderings were made: for tests and the benchmark's sanity.
    renders: u64,
    /// When the encoder (re)started and when the last part came since: what `/healthz`
    /// judges HLS by.
    started_at: Instant,
    last_part_at: Option<Instant>,
    /// Whether the timing is final; a source's own H.264 settles it from its key frames.
    timing_settled: bool,
}

#[derive(Debug)]
pub struct HlsStore {
    shared: Mutex<Shared>,
    /// Bumped when the playlist changes (an init section, a part, a segment's start or end):
    /// what blocked playlist and part requests wait for.
    changes: watch::Sender<u64>,
    /// Bumped when a frame's own fragment arrives, thirty times a second: what `/live.mp4`
    /// viewers wait for. Kept apart so that frames do not wake every blocked playlist request.
    frames: watch::Sender<u64>,
    /// HLS requests and their waits, for `/metrics`.
    pub requests: RequestCounters,
}

/// What HLS players asked of the store, for `/metrics`.
#[derive(Debug, Default)]
pub struct RequestCounters {
    /// Requests for the stream's HLS resources (playlists, init, segments, parts).
    pub requests: AtomicU64,
    /// Requests that had to wait: blocking playlist reloads, hinted parts, requests before
    /// the first segment.
    pub blocked: AtomicU64,
    /// Of those, the ones still unanswered after three target durations.
    pub block_timeouts: AtomicU64,
}

impl HlsStore {
    pub fn new(timing: HlsTiming) -> Self {
        Self::with_timing(timing, true)
    }

    /// A store whose timing is `provisional` until [`Self::settle_timing`] (a source's own
    /// H.264: its key-frame interval decides EXT-X-TARGETDURATION). Until then nothing is
    /// published, and requests waiting for the first segment wait as long as the provisional
    /// timing says.
    pub fn unsettled(provisional: HlsTiming) -> Self {
        Self::with_timing(provisional, false)
    }

    fn with_timing(timing: HlsTiming, timing_settled: bool) -> Self {
        Self {
            shared: Mutex::new(Shared {
                window: LiveWindow::new(timing),
                rendered: Default::default(),
                renders: 0,
                started_at: Instant::now(),
                last_part_at: None,
                timing_settled,
            }),
            changes: watch::Sender::new(0),
            frames: watch::Sender::new(0),
            requests: RequestCounters::default(),
        }
    }

    /// Counts one request for the stream's HLS resources.
    pub fn count_request(&self) {
        self.requests.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The timing now: final once settled, and never changed after that.
    pub fn timing(&self) -> HlsTiming {
        *self.lock().window.timing()
    }

    /// Whether the timing is final.
    pub fn timing_settled(&self) -> bool {
        self.lock().timing_settled
    }

    /// Makes `timing` final, once, before anything is published; returns the timing in force
    /// (the one settled before, if it was).
    pub fn settle_timing(&self, timing: HlsTiming) -> HlsTiming {
        let mut shared = self.lock();
        if !shared.timing_settled && shared.window.set_timing(timing) {
            shared.rendered = Default::default();
        }
        shared.timing_settled = true;
        *shared.window.timing()
    }

    /// Something waiting for the playlist to change subscribes here.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Something waiting for the next frame's fragment (`/live.mp4`) subscribes here.
    pub fn subscribe_frames(&self) -> watch::Receiver<u64> {
        self.frames.subscribe()
    }

    /// Applies the segmenter's events and wakes everyone waiting.
    pub fn apply(&self, events: Vec<SegmenterEvent>) {
        self.apply_at(events, Instant::now());
    }

    pub(crate) fn apply_at(&self, events: Vec<SegmenterEvent>, now: Instant) {
        if events.is_empty() {
            return;
        }
        let is_frame = |e: &SegmenterEvent| matches!(e, SegmenterEvent::Frame { .. });
        let has_frames = events.iter().any(is_frame);
        let playlist_changed = !events.iter().all(is_frame);
        {
            let mut shared = self.lock();
            if events
                .iter()
                .any(|e| matches!(e, SegmenterEvent::Part { .. }))
            {
                shared.last_part_at = Some(now);
            }
            shared.window.apply(events, now);
            if playlist_changed {
                shared.rendered = Default::default();
            }
        }
        if playlist_changed {
            self.changes.send_modify(|n| *n += 1);
        }
        if has_frames {
            self.frames.send_modify(|n| *n += 1);
        }
    }

    /// How long HLS has made no new media at `now`: since the last part, or since the store
    /// was made or the encoder last started if none came since.
    pub fn media_stalled_for(&self, now: Instant) -> Duration {
        let shared = self.lock();
        now.saturating_duration_since(shared.last_part_at.unwrap_or(shared.started_at))
    }

    /// The encoder starts again at `now` (HLS on demand): media is expected from then on.
    pub fn encoder_started_at(&self, now: Instant) {
        let mut shared = self.lock();
        shared.started_at = now;
        shared.last_part_at = None;
    }

    /// The encoder stopped (HLS on demand, nobody watching): see [`LiveWindow::interrupt`].
    /// Requests that come next wait for the first segment the encoder makes when it starts
    /// again.
    pub fn interrupt(&self) {
        self.interrupt_at(Instant::now());
    }

    pub(crate) fn interrupt_at(&self, now: Instant) {
        {
            let mut shared = self.lock();
            shared.window.interrupt(now);
            shared.rendered = Default::default();
        }
        self.changes.send_modify(|n| *n += 1);
        self.frames.send_modify(|n| *n += 1);
    }

    /// The media playlist as it stands.
    pub fn playlist(&self) -> MediaPlaylist {
        self.lock().window.playlist()
    }

    /// The playlist text in `variant`, rendered once per window change and shared.
    pub fn rendered_playlist(&self, variant: PlaylistVariant) -> Bytes {
        let mut shared = self.lock();
        if let Some(bytes) = &shared.rendered[variant.slot()] {
            return bytes.clone();
        }
        // Rendered under the lock, so that requests woken together by one change wait for
        // the one rendering instead of each making their own; it takes tens of microseconds.
        let skip = if variant.delta {
            SkipRequest::Yes
        } else {
            SkipRequest::No
        };
        let text = shared.window.playlist().render(Some(skip));
        let bytes = if variant.gzip {
            gzip(text.as_bytes())
        } else {
            Bytes::from(text)
        };
        shared.renders += 1;
        shared.rendered[variant.slot()] = Some(bytes.clone());
        bytes
    }

    /// How many playlist renderings were made so far.
    pub fn renders(&self) -> u64 {
        self.lock().renders
    }

    /// What blocking reloads decide on.
    pub fn window_state(&self) -> WindowState {
        self.lock().window.window_state()
    }

    pub fn init(&self) -> Option<InitSegment> {
        self.lock().window.init().cloned()
    }

    /// The init section of a given generation, while a segment needs it.
    pub fn init_of_generation(&self, generation: u32) -> Option<Bytes> {
        self.lock().window.init_of_generation(generation)
    }

    /// A complete segment, listed or retired but not expired.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.lock().window.segment(msn)
    }

    pub fn part(&self, msn: u64, index: usize) -> PartLookup {
        self.lock().window.part(msn, index)
    }

    /// Peak and average bit rate of the complete segments in the playlist; `None` before the
    /// first one completes.
    pub fn bandwidth(&self) -> Option<Bandwidth> {
        self.lock().window.bandwidth()
    }

    /// See [`LiveWindow::multivariant_playlist`].
    pub fn multivariant_playlist(&self, media_uri: &str) -> Option<MultivariantPlaylist> {
        self.lock().window.multivariant_playlist(media_uri)
    }

    /// For `/live.mp4`: see [`LiveWindow::next_frame`].
    pub fn next_frame(&self, cursor: Option<FramePosition>) -> Option<(FramePosition, Bytes)> {
        self.lock().window.next_frame(cursor)
    }

    /// For `/live.mp4`: see [`LiveWindow::frames_behind`].
    pub fn frames_behind(&self, cursor: FramePosition) -> u64 {
        self.lock().window.frames_behind(cursor)
    }

    /// Holds a blocking playlist reload until the window has what `target` asks for
    /// (rfc8216bis §6.2.5.2), at most three target durations.
    pub async fn wait_for_playlist(&self, target: (u64, Option<u64>)) -> Result<(), BlockError> {
        self.wait(
            |window| match reload::resolve(target, &window.window_state()) {
                Decision::Ready => Some(Ok(())),
                Decision::TooFarAhead => Some(Err(BlockError::TooFarAhead)),
                Decision::Wait => None,
            },
        )
        .await?
    }

    /// A part at once if it exists; the hinted part once it is complete (rfc8216bis §6.2.5.3:
    /// a request for a hinted part is held until the whole part is there); `None` for a part
    /// that is neither.
    pub async fn wait_for_part(&self, msn: u64, index: usize) -> Result<Option<Bytes>, BlockError> {
        self.wait(|window| match window.part(msn, index) {
            PartLookup::Ready(data) => Some(Some(data)),
            PartLookup::Missing => Some(None),
            PartLookup::Hinted => None,
        })
        .await
    }

    /// Holds a request that comes before the window lists a complete segment (just after
    /// start) until it does, bounded like a blocking reload: a player that joins at once gets
    /// a playlist it can play, never one with only a preload hint.
    pub async fn wait_for_first_segment(&self) -> Result<(), BlockError> {
        self.wait(|window| window.has_complete_segment().then_some(()))
            .await
    }

    /// Waits until `check` answers, at most three target durations.
    async fn wait<T>(
        &self,
        mut check: impl FnMut(&LiveWindow) -> Option<T>,
    ) -> Result<T, BlockError> {
        let limit = self.timing().block_limit();
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.subscribe();
        let mut counted = false;
        loop {
            changes.borrow_and_update();
            if let Some(answer) = check(&self.lock().window) {
                return Ok(answer);
            }
            if !std::mem::replace(&mut counted, true) {
                self.requests.blocked.fetch_add(1, Ordering::Relaxed);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The store owns the sender, so it cannot be gone while `self` lives; treat it
                // like a timeout rather than spin.
                Ok(Err(_)) | Err(_) => {
                    self.requests.block_timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(BlockError::TimedOut { after: limit });
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a held request ends without what it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("the request is too far ahead of the live edge")]
    TooFarAhead,
    #[error("not there after {} s", after.as_secs_f64())]
    TimedOut { after: Duration },
}

/// Gzip at the default level: a playlist is a few kilobytes, and it is compressed once per
/// change whatever the number of readers.
fn gzip(text: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 3), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text);
    Bytes::from(encoder.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::window::tests::{SEGMENTER, init_event, part_events};
    use std::io::Read;
    use std::sync::Arc;

    fn store(window_segments: usize) -> HlsStore {
        HlsStore::new(HlsTiming::new(SEGMENTER, window_segments))
    }

    /// Feeds `segments` whole segments, one part every 1/3 s from `start`.
    fn feed(store: &HlsStore, start: Instant, first_msn: u64, segments: u64) -> Instant {
        let mut now = start;
        for msn in first_msn..first_msn + segments {
            for index in 0..3 {
                now += Duration::from_micros(333_333);
                store.apply_at(part_events(msn, index), now);
            }
        }
        now
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_reload_waits_for_its_part_then_answers() {
        let store = Arc::new(store(12));
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        feed(&store, start, 0, 2);
        store.apply_at(part_events(2, 0), start);
        // The next part is not there: the request is held until it is published.
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_playlist((2, Some(1))).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        store.apply_at(part_events(2, 1), start);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        // Past the end of a complete segment means part 0 of the next one.
        assert_eq!(store.wait_for_playlist((1, Some(5))).await, Ok(()));
        assert_eq!(
            store.wait_for_playlist((9, None)).await,
            Err(BlockError::TooFarAhead)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_reload_gives_up_after_three_target_durations() {
        let store = store(12);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        feed(&store, start, 0, 1);
        let began = tokio::time::Instant::now();
        let result = store.wait_for_playlist((1, None)).await;
        assert!(matches!(result, Err(BlockError::TimedOut { .. })));
        assert_eq!(began.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hinted_part_request_returns_the_whole_part_when_it_is_done() {
        let store = Arc::new(store(12));
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        feed(&store, start, 0, 1);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_part(1, 0).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.apply_at(part_events(1, 0), start);
        assert_eq!(
            waiter.await.unwrap(),
            Ok(Some(Bytes::from_static(b"part1.0")))
        );
        assert_eq!(store.wait_for_part(1, 2).await, Ok(None), "not hinted: 404");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_before_the_first_complete_segment_waits_for_it() {
        let store = Arc::new(store(12));
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        store.apply_at(part_events(0, 0), start);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_first_segment().await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiter.is_finished(),
            "a part is not yet a playable playlist"
        );
        store.apply_at(part_events(0, 1), start);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        store.apply_at(part_events(0, 2), start);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        let playlist = store.playlist();
        assert_eq!(playlist.segments.len(), 1);
        assert!(
            store.bandwidth().is_some(),
            "BANDWIDTH is measured from then on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_an_interruption_requests_wait_for_new_media() {
        use crate::hls::window::tests::resumed_part_events;
        use crate::media::playlist::check_update;
        let store = Arc::new(store(6));
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        let now = feed(&store, start, 0, 8);
        let before = store.playlist();
        let renders = store.renders();
        store.interrupt_at(now);
        let empty = store.playlist();
        assert!(empty.segments.is_empty() && empty.preload_hint.is_none());
        assert_eq!(empty.media_sequence, 8);
        assert!(store.bandwidth().is_none(), "measured on new media only");
        assert!(store.segment(7).is_some(), "retained");
        let plain = PlaylistVariant {
            delta: false,
            gzip: false,
        };
        assert_eq!(
            &store.rendered_playlist(plain)[..],
            empty.render(Some(SkipRequest::No)).as_bytes(),
            "the old rendering is gone"
        );
        assert_eq!(store.renders(), renders + 1);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_first_segment().await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "the old segments are not offered");
        let restart = now + Duration::from_secs(20);
        store.encoder_started_at(restart);
        assert_eq!(
            store.media_stalled_for(restart + Duration::from_millis(200)),
            Duration::from_millis(200),
            "media is expected from the restart on"
        );
        for index in 0..3 {
            store.apply_at(resumed_part_events(8, index), restart);
        }
        assert_eq!(waiter.await.unwrap(), Ok(()));
        let after = store.playlist();
        assert_eq!(after.segments.len(), 1);
        assert!(after.segments[0].discontinuity);
        check_update(&before, &after).unwrap();
        // A player that still asks for a segment of before the pause is answered at once.
        assert_eq!(store.wait_for_playlist((5, None)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_segment_wait_gives_up_like_a_blocking_reload() {
        let store = store(12);
        store.apply_at(vec![init_event()], Instant::now());
        let began = tokio::time::Instant::now();
        assert!(matches!(
            store.wait_for_first_segment().await,
            Err(BlockError::TimedOut { .. })
        ));
        assert_eq!(began.elapsed(), store.timing().block_limit());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_requests_share_one_rendering_per_change() {
        let store = Arc::new(store(12));
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        feed(&store, start, 0, 8);
        let renders_before = store.renders();
        let variant = PlaylistVariant {
            delta: false,
            gzip: true,
        };
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.wait_for_playlist((8, Some(0))).await?;
                    Ok::<_, BlockError>(store.rendered_playlist(variant))
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.apply_at(part_events(8, 0), start + Duration::from_secs(3));
        let mut bodies = Vec::new();
        for waiter in waiters {
            bodies.push(waiter.await.unwrap().unwrap());
        }
        assert_eq!(store.renders(), renders_before + 1, "one rendering for all");
        assert!(
            bodies.iter().all(|b| b.as_ptr() == bodies[0].as_ptr()),
            "shared bytes"
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bodies[0][..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, store.playlist().render(Some(SkipRequest::No)));
        assert!(text.contains("part8.0.m4s"), "{text}");

        // Each variant is rendered once, then served from the cache until the next change.
        for delta in [false, true] {
            for gzip in [false, true] {
                let variant = PlaylistVariant { delta, gzip };
                let first = store.rendered_playlist(variant);
                assert_eq!(store.rendered_playlist(variant), first);
            }
        }
        assert_eq!(store.renders(), renders_before + 4);
        let delta = store.rendered_playlist(PlaylistVariant {
            delta: true,
            gzip: false,
        });
        assert_eq!(
            &delta[..],
            store.playlist().render(Some(SkipRequest::Yes)).as_bytes()
        );
        store.apply_at(part_events(8, 1), start + Duration::from_secs(3));
        store.rendered_playlist(variant);
        assert_eq!(
            store.renders(),
            renders_before + 5,
            "a change renders again"
        );
    }

    #[test]
    fn media_stalls_count_from_the_last_part_or_from_the_start() {
        let store = store(6);
        let start = Instant::now();
        let later = start + Duration::from_secs(30);
        assert!(store.media_stalled_for(later) >= Duration::from_secs(30));
        store.apply_at(vec![init_event()], later);
        assert!(
            store.media_stalled_for(later) >= Duration::from_secs(30),
            "an init section is no media"
        );
        feed(&store, later, 0, 1);
        let fed_at = later + Duration::from_secs(1);
        assert!(store.media_stalled_for(fed_at) <= Duration::from_secs(1));
        assert_eq!(
            store.media_stalled_for(fed_at + Duration::from_secs(4)),
            store.media_stalled_for(fed_at) + Duration::from_secs(4)
        );
    }
}
