//! The live HLS window: the init segment, the segments and parts the playlist lists, the ones
//! that left it but must stay downloadable for a while, and a change signal that blocking
//! requests wait on.
//!
//! Retention (RFC 8216 §6.2.2, rfc8216bis §6.2.2): a segment that leaves the playlist stays
//! available for its duration plus the playlist's duration; a part stays available for three
//! target durations after its EXT-X-PART tag leaves. After that: gone (404). Memory is bounded
//! by the window length.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::frame::{CLOCK_90K, FrameSize};
use crate::hls::reload::{self, Decision, WindowState};
use crate::hls::segmenter::{SegmenterEvent, SegmenterSettings};
use crate::media::playlist::{
    DURATION_DECIMALS, LL_HLS_VERSION, MediaPlaylist, Part, PreloadHint, Segment,
    SegmentInProgress, ServerControl,
};

/// Fixed for a stream: derived once from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HlsTiming {
    pub segmenter: SegmenterSettings,
    /// EXT-X-TARGETDURATION: the segment length rounded up to whole seconds; never changes.
    pub target_duration_s: u64,
    /// EXT-X-PART-INF:PART-TARGET: a whole number of frames.
    pub part_target_s: f64,
    /// Complete segments listed in the playlist.
    pub window_segments: usize,
}

impl HlsTiming {
    pub fn new(segmenter: SegmenterSettings, window_segments: usize) -> Self {
        let fps = f64::from(segmenter.fps.max(1));
        let segment_s = f64::from(segmenter.frames_per_segment) / fps;
        Self {
            segmenter,
            target_duration_s: (segment_s.ceil() as u64).max(1),
            part_target_s: f64::from(segmenter.frames_per_part) / fps,
            window_segments,
        }
    }

    /// HOLD-BACK 3 × TD, CAN-SKIP-UNTIL 6 × TD, and PART-HOLD-BACK three whole parts, computed
    /// from frames so that it is exactly 3 × the real part length rather than 3 × the rounded
    /// PART-TARGET (rfc8216bis §4.4.3.8).
    pub fn server_control(&self) -> ServerControl {
        let minimums = ServerControl::minimums(self.target_duration_s, self.part_target_s);
        let scale = 10u64.pow(DURATION_DECIMALS as u32);
        let three_parts_scaled = (3 * u64::from(self.segmenter.frames_per_part) * scale)
            .div_ceil(u64::from(self.segmenter.fps.max(1)));
        ServerControl {
            part_hold_back_s: (three_parts_scaled as f64 / scale as f64)
                .max(minimums.part_hold_back_s),
            ..minimums
        }
    }

    pub fn target_duration(&self) -> Duration {
        Duration::from_secs(self.target_duration_s)
    }
}

/// The current init segment.
#[derive(Debug, Clone)]
pub struct InitSegment {
    pub data: Bytes,
    /// RFC 6381 codec string from the SPS, for CODECS.
    pub codec: String,
    pub size: FrameSize,
    /// Changes with every new init segment (after a format change): part of its URI.
    pub generation: u32,
}

/// What a request for a part finds.
#[derive(Debug, Clone, PartialEq)]
pub enum PartLookup {
    Ready(Bytes),
    /// The part the preload hint names: it will exist soon.
    Hinted,
    Missing,
}

#[derive(Debug, Clone)]
struct StoredPart {
    data: Bytes,
    duration_90k: u64,
    independent: bool,
}

#[derive(Debug, Clone)]
struct StoredSegment {
    msn: u64,
    program_date_time_unix_ms: u64,
    discontinuity: bool,
    init_generation: u32,
    parts: Vec<StoredPart>,
    /// Set once complete: the parts concatenated.
    data: Option<Bytes>,
    duration_90k: u64,
    /// When the playlist stopped listing this segment's parts.
    parts_unlisted_at: Option<Instant>,
    /// When a segment that left the playlist stops being served.
    expires_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Window {
    /// The current init section.
    init: Option<InitSegment>,
    /// Earlier init sections that segments still in the window or retired still need.
    old_inits: Vec<InitSegment>,
    /// Complete segments in the playlist, oldest first.
    segments: VecDeque<StoredSegment>,
    open: Option<StoredSegment>,
    /// Segments that left the playlist, still downloadable until they expire.
    retired: VecDeque<StoredSegment>,
    /// Discontinuities that have left the playlist (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_sequence: u64,
    /// The newest frames as fragments of their own, for `/live.mp4`: at most two segments'
    /// worth, oldest first.
    recent_frames: VecDeque<StoredFrame>,
}

/// One frame as a fragment of its own (see [`SegmenterEvent::Frame`]).
#[derive(Debug, Clone)]
struct StoredFrame {
    number: u64,
    data: Bytes,
    independent: bool,
    init_generation: u32,
}

/// Bit rates measured over the window, for the multivariant playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    pub peak_bps: u64,
    pub average_bps: u64,
}

#[derive(Debug)]
pub struct HlsStore {
    timing: HlsTiming,
    window: Mutex<Window>,
    changes: watch::Sender<u64>,
}

impl HlsStore {
    pub fn new(timing: HlsTiming) -> Self {
        Self {
            timing,
            window: Mutex::new(Window::default()),
            changes: watch::Sender::new(0),
        }
    }

    pub fn timing(&self) -> &HlsTiming {
        &self.timing
    }

    /// Something waiting for the window to change subscribes here.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Applies the segmenter's events and wakes everyone waiting.
    pub fn apply(&self, events: Vec<SegmenterEvent>) {
        self.apply_at(events, Instant::now());
    }

    pub(crate) fn apply_at(&self, events: Vec<SegmenterEvent>, now: Instant) {
        if events.is_empty() {
            return;
        }
        {
            let mut window = self.lock();
            for event in events {
                Self::apply_event(&mut window, event);
            }
            let keep_frames = 2 * self.timing.segmenter.frames_per_segment as usize;
            while window.recent_frames.len() > keep_frames {
                window.recent_frames.pop_front();
            }
            self.retire(&mut window, now);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    fn apply_event(window: &mut Window, event: SegmenterEvent) {
        match event {
            SegmenterEvent::Init { init, codec, size } => {
                let generation = window.init.as_ref().map_or(0, |i| i.generation + 1);
                let previous = window.init.replace(InitSegment {
                    data: init,
                    codec,
                    size,
                    generation,
                });
                window.old_inits.extend(previous);
            }
            SegmenterEvent::SegmentStart {
                msn,
                program_date_time_unix_ms,
                discontinuity,
            } => {
                window.open = Some(StoredSegment {
                    msn,
                    program_date_time_unix_ms,
                    discontinuity,
                    init_generation: window.init.as_ref().map_or(0, |i| i.generation),
                    parts: Vec::new(),
                    data: None,
                    duration_90k: 0,
                    parts_unlisted_at: None,
                    expires_at: None,
                });
            }
            SegmenterEvent::Part {
                msn,
                data,
                duration_90k,
                independent,
                ..
            } => {
                if let Some(open) = window.open.as_mut().filter(|s| s.msn == msn) {
                    open.duration_90k += duration_90k;
                    open.parts.push(StoredPart {
                        data,
                        duration_90k,
                        independent,
                    });
                }
            }
            SegmenterEvent::Frame {
                number,
                data,
                independent,
            } => {
                window.recent_frames.push_back(StoredFrame {
                    number,
                    data,
                    independent,
                    init_generation: window.init.as_ref().map_or(0, |i| i.generation),
                });
            }
            SegmenterEvent::SegmentEnd { msn, duration_90k } => {
                if let Some(mut segment) = window.open.take_if(|s| s.msn == msn) {
                    let mut joined =
                        BytesMut::with_capacity(segment.parts.iter().map(|p| p.data.len()).sum());
                    for part in &segment.parts {
                        joined.extend_from_slice(&part.data);
                    }
                    segment.data = Some(joined.freeze());
                    segment.duration_90k = duration_90k;
                    window.segments.push_back(segment);
                }
            }
        }
    }

    /// Moves segments out of the playlist, stamps when parts stop being listed, and forgets
    /// what has expired.
    fn retire(&self, window: &mut Window, now: Instant) {
        while window.segments.len() > self.timing.window_segments {
            let Some(mut segment) = window.segments.pop_front() else {
                break;
            };
            if segment.discontinuity {
                window.discontinuity_sequence += 1;
            }
            let playlist_90k: u64 = window.segments.iter().map(|s| s.duration_90k).sum();
            segment.expires_at = Some(now + duration_90k(segment.duration_90k + playlist_90k));
            segment.parts_unlisted_at.get_or_insert(now);
            window.retired.push_back(segment);
        }
        window
            .retired
            .retain(|s| s.expires_at.is_none_or(|at| at > now));
        let Window {
            old_inits,
            segments,
            retired,
            ..
        } = &mut *window;
        old_inits.retain(|init| {
            segments
                .iter()
                .chain(retired.iter())
                .any(|s| s.init_generation == init.generation)
        });

        let playlist = self.build_playlist(window);
        let first_listed = playlist.first_segment_with_parts();
        for segment in window.segments.iter_mut().take(first_listed) {
            segment.parts_unlisted_at.get_or_insert(now);
        }
        let part_grace = self.timing.target_duration() * 3;
        for segment in window.segments.iter_mut().chain(window.retired.iter_mut()) {
            if segment
                .parts_unlisted_at
                .is_some_and(|at| now.duration_since(at) > part_grace)
            {
                segment.parts = Vec::new();
            }
        }
    }

    /// The media playlist as it stands.
    pub fn playlist(&self) -> MediaPlaylist {
        self.build_playlist(&self.lock())
    }

    fn build_playlist(&self, window: &Window) -> MediaPlaylist {
        // The playlist's EXT-X-MAP is the oldest segment's; later ones name theirs where it changes.
        let first_generation = window
            .segments
            .front()
            .or(window.open.as_ref())
            .map(|s| s.init_generation)
            .or(window.init.as_ref().map(|i| i.generation))
            .unwrap_or(0);
        let map_uri = init_uri(first_generation);
        let map_of = |s: &StoredSegment| {
            (s.init_generation != first_generation).then(|| init_uri(s.init_generation))
        };
        let parts_of = |s: &StoredSegment| -> Vec<Part> {
            s.parts
                .iter()
                .enumerate()
                .map(|(index, part)| Part {
                    duration_s: seconds_90k(part.duration_90k),
                    uri: part_uri(s.msn, index),
                    independent: part.independent,
                })
                .collect()
        };
        let segments = window
            .segments
            .iter()
            .map(|s| Segment {
                msn: s.msn,
                duration_s: seconds_90k(s.duration_90k),
                program_date_time_unix_ms: s.program_date_time_unix_ms,
                uri: segment_uri(s.msn),
                discontinuity: s.discontinuity,
                map_uri: map_of(s),
                parts: parts_of(s),
            })
            .collect::<Vec<_>>();
        let in_progress = window.open.as_ref().map(|s| SegmentInProgress {
            msn: s.msn,
            program_date_time_unix_ms: s.program_date_time_unix_ms,
            discontinuity: s.discontinuity,
            map_uri: map_of(s),
            parts: parts_of(s),
        });
        let preload_hint = hinted_part(window).map(|(msn, index)| PreloadHint {
            uri: part_uri(msn, index),
        });
        MediaPlaylist {
            version: LL_HLS_VERSION,
            target_duration_s: self.timing.target_duration_s,
            server_control: self.timing.server_control(),
            part_target_s: self.timing.part_target_s,
            media_sequence: segments
                .first()
                .map(|s| s.msn)
                .or(in_progress.as_ref().map(|s| s.msn))
                .unwrap_or(0),
            discontinuity_sequence: window.discontinuity_sequence,
            independent_segments: true,
            map_uri,
            segments,
            in_progress,
            preload_hint,
        }
    }

    /// What blocking reloads decide on.
    pub fn window_state(&self) -> WindowState {
        WindowState::from_playlist(
            &self.playlist(),
            u64::from(self.timing.segmenter.parts_per_segment()),
        )
    }

    /// True once there is something to play.
    pub fn has_media(&self) -> bool {
        let window = self.lock();
        window.init.is_some() && (!window.segments.is_empty() || window.open.is_some())
    }

    pub fn init(&self) -> Option<InitSegment> {
        self.lock().init.clone()
    }

    /// The init section of a given generation, while a segment needs it.
    pub fn init_of_generation(&self, generation: u32) -> Option<Bytes> {
        let window = self.lock();
        window
            .init
            .iter()
            .chain(window.old_inits.iter())
            .find(|i| i.generation == generation)
            .map(|i| i.data.clone())
    }

    /// A complete segment, listed or retired but not expired.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        let window = self.lock();
        window
            .segments
            .iter()
            .chain(window.retired.iter())
            .find(|s| s.msn == msn)
            .and_then(|s| s.data.clone())
    }

    pub fn part(&self, msn: u64, index: usize) -> PartLookup {
        let window = self.lock();
        let found = window
            .segments
            .iter()
            .chain(window.retired.iter())
            .chain(window.open.iter())
            .find(|s| s.msn == msn)
            .and_then(|s| s.parts.get(index))
            .map(|p| p.data.clone());
        match found {
            Some(data) => PartLookup::Ready(data),
            None if hinted_part(&window) == Some((msn, index)) => PartLookup::Hinted,
            None => PartLookup::Missing,
        }
    }

    /// Peak and average bit rate of the complete segments in the playlist; `None` before the
    /// first one completes.
    pub fn bandwidth(&self) -> Option<Bandwidth> {
        let window = self.lock();
        let mut peak_bps = 0u64;
        let (mut bits, mut duration) = (0u64, 0u64);
        for segment in &window.segments {
            let len = segment.data.as_ref().map_or(0, |d| d.len() as u64);
            if let Some(bps) = (len * 8 * CLOCK_90K).checked_div(segment.duration_90k) {
                peak_bps = peak_bps.max(bps);
            }
            bits += len * 8;
            duration += segment.duration_90k;
        }
        (duration > 0).then(|| Bandwidth {
            peak_bps,
            average_bps: bits * CLOCK_90K / duration,
        })
    }

    /// For `/live.mp4`: the frame after `cursor` (or, with `None`, the newest IDR frame), as a
    /// fragment of its own, with its position. `None` if it does not exist (yet, or any more).
    pub fn next_frame(&self, cursor: Option<FramePosition>) -> Option<(FramePosition, Bytes)> {
        let window = self.lock();
        let frame = match cursor {
            None => window.recent_frames.iter().rev().find(|f| f.independent),
            Some(at) => {
                let first = window.recent_frames.front()?.number;
                let index = (at.number + 1).checked_sub(first)?;
                window
                    .recent_frames
                    .get(usize::try_from(index).ok()?)
                    .filter(|f| f.number == at.number + 1)
            }
        }?;
        Some((
            FramePosition {
                number: frame.number,
                init_generation: frame.init_generation,
            },
            frame.data.clone(),
        ))
    }

    /// How many frames separate `cursor` from the newest one: how far a `/live.mp4` viewer
    /// lags.
    pub fn frames_behind(&self, cursor: FramePosition) -> u64 {
        self.lock()
            .recent_frames
            .back()
            .map_or(0, |newest| newest.number.saturating_sub(cursor.number))
    }

    /// Holds a blocking playlist reload until the window has what `target` asks for
    /// (rfc8216bis §6.2.5.2), at most three target durations.
    pub async fn wait_for_playlist(&self, target: (u64, Option<u64>)) -> Result<(), BlockError> {
        let limit = self.timing.target_duration() * 3;
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            match reload::resolve(target, &self.window_state()) {
                Decision::Ready => return Ok(()),
                Decision::TooFarAhead => return Err(BlockError::TooFarAhead),
                Decision::Wait => self.wait_until(&mut changes, deadline, limit).await?,
            }
        }
    }

    /// A part at once if it exists; the hinted part once it is complete (rfc8216bis §6.2.5.3:
    /// a request for a hinted part is held until the whole part is there); `None` for a part
    /// that is neither.
    pub async fn wait_for_part(&self, msn: u64, index: usize) -> Result<Option<Bytes>, BlockError> {
        let limit = self.timing.target_duration() * 3;
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            match self.part(msn, index) {
                PartLookup::Ready(data) => return Ok(Some(data)),
                PartLookup::Missing => return Ok(None),
                PartLookup::Hinted => self.wait_until(&mut changes, deadline, limit).await?,
            }
        }
    }

    /// Waits until there is something to play, at most `limit`.
    pub async fn wait_for_media(&self, limit: Duration) -> Result<(), BlockError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            if self.has_media() {
                return Ok(());
            }
            self.wait_until(&mut changes, deadline, limit).await?;
        }
    }

    async fn wait_until(
        &self,
        changes: &mut watch::Receiver<u64>,
        deadline: tokio::time::Instant,
        limit: Duration,
    ) -> Result<(), BlockError> {
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => Ok(()),
            // The store owns the sender, so it cannot be gone while `self` lives; treat it
            // like a timeout rather than spin.
            Ok(Err(_)) | Err(_) => Err(BlockError::TimedOut { after: limit }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
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

/// Where a frame sits in the stream, and which init segment it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePosition {
    pub number: u64,
    pub init_generation: u32,
}

/// The part being written now: the next part of the open segment, or part 0 of the next one.
fn hinted_part(window: &Window) -> Option<(u64, usize)> {
    window.init.as_ref()?;
    match (&window.open, window.segments.back()) {
        (Some(open), _) => Some((open.msn, open.parts.len())),
        (None, Some(last)) => Some((last.msn + 1, 0)),
        (None, None) => None,
    }
}

/// URIs relative to the media playlist, which lives under the per-start prefix.
pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

pub fn part_uri(msn: u64, index: usize) -> String {
    format!("part{msn}.{index}.m4s")
}

pub fn init_uri(generation: u32) -> String {
    format!("init{generation}.mp4")
}

fn seconds_90k(ticks: u64) -> f64 {
    ticks as f64 / CLOCK_90K as f64
}

fn duration_90k(ticks: u64) -> Duration {
    Duration::from_micros(ticks * 1_000_000 / CLOCK_90K)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::playlist::{check_invariants, check_update};
    use std::sync::Arc;

    const SEGMENTER: SegmenterSettings = SegmenterSettings {
        fps: 30,
        frames_per_segment: 30,
        frames_per_part: 10,
    };
    const PART_90K: u64 = 30_000;

    fn store(window_segments: usize) -> HlsStore {
        HlsStore::new(HlsTiming::new(SEGMENTER, window_segments))
    }

    fn init_event() -> SegmenterEvent {
        SegmenterEvent::Init {
            init: Bytes::from_static(b"init"),
            codec: "avc1.42C01F".into(),
            size: FrameSize::new(640, 360),
        }
    }

    /// The events of part `index` of segment `msn`, with the start and end around it.
    fn part_events(msn: u64, index: u32) -> Vec<SegmenterEvent> {
        let mut events = Vec::new();
        if index == 0 {
            events.push(SegmenterEvent::SegmentStart {
                msn,
                program_date_time_unix_ms: 1_790_000_000_000 + msn * 1000,
                discontinuity: false,
            });
        }
        events.push(SegmenterEvent::Part {
            msn,
            index,
            data: Bytes::from(format!("part{msn}.{index}")),
            duration_90k: PART_90K,
            independent: index == 0,
            frames: 10,
        });
        if index == 2 {
            events.push(SegmenterEvent::SegmentEnd {
                msn,
                duration_90k: 3 * PART_90K,
            });
        }
        events
    }

    /// Feeds `segments` whole segments, one part every 1/3 s from `start`; returns the time
    /// after the last part.
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

    #[test]
    fn the_playlist_keeps_every_rule_over_hundreds_of_segments() {
        let store = store(12);
        let mut now = Instant::now();
        store.apply_at(vec![init_event()], now);
        let mut previous: Option<MediaPlaylist> = None;
        for msn in 0..300 {
            for index in 0..3 {
                now += Duration::from_micros(333_333);
                store.apply_at(part_events(msn, index), now);
                let playlist = store.playlist();
                check_invariants(&playlist).unwrap_or_else(|e| panic!("{msn}.{index}: {e}"));
                if let Some(previous) = &previous {
                    check_update(previous, &playlist)
                        .unwrap_or_else(|e| panic!("{msn}.{index}: {e}"));
                }
                assert!(playlist.segments.len() <= 12);
                if msn >= 12 {
                    assert_eq!(playlist.segments.len(), 12);
                }
                assert_eq!(playlist.target_duration_s, 1);
                assert_eq!(playlist.server_control.part_hold_back_s, 1.0);
                previous = Some(playlist);
            }
        }
        let text = store
            .playlist()
            .render(Some(crate::media::playlist::SkipRequest::Yes));
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{text}");
    }

    #[test]
    fn a_segment_that_left_the_playlist_is_served_for_its_duration_plus_the_playlists() {
        let store = store(6);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        let now = feed(&store, start, 0, 7);
        // Segment 0 left when segment 6 completed (at `now`); it lasts 1 s, the playlist 6 s.
        assert_eq!(store.playlist().media_sequence, 1);
        assert!(store.segment(0).is_some());
        store.apply_at(part_events(7, 0), now + Duration::from_millis(6_900));
        assert!(store.segment(0).is_some(), "still inside 7 s");
        store.apply_at(part_events(7, 1), now + Duration::from_millis(7_100));
        assert!(store.segment(0).is_none(), "gone after 7 s");
        assert!(store.segment(1).is_some());
    }

    #[test]
    fn parts_stay_for_three_target_durations_after_their_tags_go() {
        let store = store(12);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        let now = feed(&store, start, 0, 4);
        // Parts are listed for the last segments only; segment 0's went when 3 completed.
        let playlist = store.playlist();
        let first_listed = playlist.segments[playlist.first_segment_with_parts()].msn;
        assert!(first_listed > 0, "{first_listed}");
        // Unlisted about 1 s ago (when segment 3 started showing) and kept for 3 s.
        assert!(matches!(store.part(0, 1), PartLookup::Ready(_)));
        store.apply_at(part_events(4, 0), now + Duration::from_secs(4));
        assert_eq!(store.part(0, 1), PartLookup::Missing);
        assert!(store.segment(0).is_some(), "the whole segment stays");
    }

    #[test]
    fn only_the_hinted_part_is_waited_for() {
        let store = store(12);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        feed(&store, start, 0, 2);
        store.apply_at(part_events(2, 0), start + Duration::from_secs(3));
        assert!(matches!(store.part(2, 0), PartLookup::Ready(_)));
        assert_eq!(store.part(2, 1), PartLookup::Hinted);
        assert_eq!(store.part(2, 2), PartLookup::Missing);
        assert_eq!(store.part(3, 0), PartLookup::Missing);
        assert_eq!(store.part(2, 99), PartLookup::Missing);
        let hint = store.playlist().preload_hint.unwrap();
        assert_eq!(hint.uri, "part2.1.m4s");
    }

    fn frame_event(number: u64) -> SegmenterEvent {
        SegmenterEvent::Frame {
            number,
            data: Bytes::from(format!("frame{number}")),
            independent: number.is_multiple_of(30),
        }
    }

    #[test]
    fn live_mp4_starts_at_the_newest_idr_and_follows_every_frame() {
        let store = store(12);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        assert!(store.next_frame(None).is_none(), "no frame yet");
        store.apply_at((0..35).map(frame_event).collect(), start);
        let (first, data) = store.next_frame(None).unwrap();
        assert_eq!(first.number, 30, "the newest IDR");
        assert_eq!(&data[..], b"frame30");
        let (second, data) = store.next_frame(Some(first)).unwrap();
        assert_eq!((second.number, &data[..]), (31, &b"frame31"[..]));
        assert_eq!(store.frames_behind(second), 3);
        let newest = FramePosition {
            number: 34,
            init_generation: 0,
        };
        assert!(store.next_frame(Some(newest)).is_none(), "not made yet");
        assert_eq!(store.frames_behind(newest), 0);

        // Two segments' worth are kept; a viewer further behind finds its next frame gone.
        store.apply_at((35..100).map(frame_event).collect(), start);
        assert_eq!(store.next_frame(None).unwrap().0.number, 90);
        assert!(store.next_frame(Some(second)).is_none());
        assert_eq!(store.frames_behind(second), 99 - 31);
        let oldest_kept = FramePosition {
            number: 39,
            init_generation: 0,
        };
        assert_eq!(store.next_frame(Some(oldest_kept)).unwrap().0.number, 40);
    }

    #[test]
    fn frames_name_the_init_section_they_need() {
        let store = store(6);
        let start = Instant::now();
        store.apply_at(vec![init_event(), frame_event(0)], start);
        store.apply_at(
            vec![
                SegmenterEvent::Init {
                    init: Bytes::from_static(b"init-640"),
                    codec: "avc1.42C01E".into(),
                    size: FrameSize::new(640, 480),
                },
                SegmenterEvent::Frame {
                    number: 1,
                    data: Bytes::from_static(b"frame1"),
                    independent: true,
                },
            ],
            start,
        );
        let (next, _) = store
            .next_frame(Some(FramePosition {
                number: 0,
                init_generation: 0,
            }))
            .unwrap();
        assert_eq!((next.number, next.init_generation), (1, 1));
        assert_eq!(
            store.init_of_generation(1).as_deref(),
            Some(&b"init-640"[..])
        );
    }

    #[test]
    fn a_format_change_names_the_new_init_section_where_it_starts() {
        let store = store(6);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        let mut now = feed(&store, start, 0, 2);
        store.apply_at(
            vec![SegmenterEvent::Init {
                init: Bytes::from_static(b"init-640"),
                codec: "avc1.42C01E".into(),
                size: FrameSize::new(640, 480),
            }],
            now,
        );
        for index in 0..3 {
            let mut events = part_events(2, index);
            if let SegmenterEvent::SegmentStart { discontinuity, .. } = &mut events[0] {
                *discontinuity = true;
            }
            now += Duration::from_millis(333);
            store.apply_at(events, now);
        }
        let text = store.playlist().render(None);
        assert!(text.contains("#EXT-X-MAP:URI=\"init0.mp4\"\n"), "{text}");
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n"),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2);
        assert_eq!(store.init_of_generation(0).as_deref(), Some(&b"init"[..]));
        assert_eq!(
            store.init_of_generation(1).as_deref(),
            Some(&b"init-640"[..])
        );
        // Once the old segments have left and expired, so has their init section.
        let later = feed(&store, now + Duration::from_secs(30), 3, 8);
        store.apply_at(part_events(11, 0), later + Duration::from_secs(30));
        assert_eq!(store.init_of_generation(0), None);
        assert!(store.init_of_generation(1).is_some());
    }

    #[test]
    fn bandwidth_is_measured_from_complete_segments() {
        let store = store(12);
        assert_eq!(store.bandwidth(), None);
        let start = Instant::now();
        store.apply_at(vec![init_event()], start);
        feed(&store, start, 0, 2);
        // Each segment holds three 7-byte parts per second: 168 bit/s.
        assert_eq!(
            store.bandwidth(),
            Some(Bandwidth {
                peak_bps: 168,
                average_bps: 168
            })
        );
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
}
