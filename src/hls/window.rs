//! The live HLS window, pure: the init sections, the segments and parts the playlist lists,
//! the ones that left it but must stay downloadable for a while, and the playlist and lookups
//! that follow from them. Segmenter events and the time come in as values; there are no
//! clocks, locks or tasks here ([`crate::hls::store`] shares a window between threads).
//!
//! Retention (RFC 8216 §6.2.2, rfc8216bis §6.2.2): a segment that leaves the playlist stays
//! available for its duration plus the playlist's duration; a part stays available for three
//! target durations after its EXT-X-PART tag leaves. After that: gone (404). Memory is bounded
//! by the window length.
//!
//! When the encoder stops (HLS on demand with nobody watching, [`LiveWindow::interrupt`])
//! every segment leaves the playlist at once, retained as above, and the playlist is empty
//! until the encoder's next segment: a player that comes then starts at new media, never at
//! segments from before the pause. Media Sequence Numbers go on counting and
//! EXT-X-DISCONTINUITY-SEQUENCE counts the discontinuities that left, so the first new
//! segment, which carries EXT-X-DISCONTINUITY, has the next discontinuity number.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::frame::{CLOCK_90K, FrameSize};
use crate::hls::names::HlsName;
use crate::hls::reload::{WindowState, advance_part_limit};
use crate::hls::segmenter::{SegmenterEvent, SegmenterSettings};
use crate::media::playlist::{
    LL_HLS_VERSION, MediaPlaylist, MultivariantPlaylist, Part, PreloadHint, Segment,
    SegmentInProgress, ServerControl, Variant,
};

/// Fixed for a stream: derived once from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HlsTiming {
    pub segmenter: SegmenterSettings,
    /// EXT-X-TARGETDURATION: the segment length rounded up to whole seconds; never changes.
    pub target_duration_s: u64,
    /// Complete segments listed in the playlist.
    pub window_segments: usize,
}

impl HlsTiming {
    pub fn new(segmenter: SegmenterSettings, window_segments: usize) -> Self {
        Self {
            segmenter,
            target_duration_s: segmenter.target_duration_s(),
            window_segments,
        }
    }

    /// HOLD-BACK 3 × TD, CAN-SKIP-UNTIL 6 × TD, and PART-HOLD-BACK three whole parts, computed
    /// from frames so that it is exactly 3 × the real part length rather than 3 × the rounded
    /// PART-TARGET (rfc8216bis §4.4.3.8).
    pub fn server_control(&self) -> ServerControl {
        let minimums = ServerControl::minimums(self.target_duration_s, self.part_target_90k());
        let three_parts_90k = (3 * u64::from(self.segmenter.frames_per_part) * CLOCK_90K)
            .div_ceil(u64::from(self.segmenter.fps.max(1)));
        ServerControl {
            part_hold_back_90k: three_parts_90k.max(minimums.part_hold_back_90k),
            ..minimums
        }
    }

    /// EXT-X-PART-INF:PART-TARGET in 90 kHz ticks: the configured whole number of frames,
    /// rounded up so that no part of that many frames exceeds it.
    pub fn part_target_90k(&self) -> u64 {
        (u64::from(self.segmenter.frames_per_part) * CLOCK_90K)
            .div_ceil(u64::from(self.segmenter.fps.max(1)))
    }

    /// How long a held request waits at most: three target durations (rfc8216bis §6.2.5.2
    /// lets a server answer 503 after that).
    pub fn block_limit(&self) -> Duration {
        Duration::from_secs(self.target_duration_s) * 3
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

/// Bit rates measured over the window, for the multivariant playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    pub peak_bps: u64,
    pub average_bps: u64,
}

/// Where a frame sits in the stream, and which init segment it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePosition {
    pub number: u64,
    pub init_generation: u32,
}

/// One frame as a fragment of its own (see [`SegmenterEvent::Frame`]).
#[derive(Debug, Clone)]
struct StoredFrame {
    number: u64,
    data: Bytes,
    independent: bool,
    init_generation: u32,
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

/// The live window of one stream.
#[derive(Debug)]
pub struct LiveWindow {
    timing: HlsTiming,
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
    /// The Media Sequence Number after the newest segment started: what an empty playlist's
    /// EXT-X-MEDIA-SEQUENCE says.
    next_msn: u64,
}

impl LiveWindow {
    pub fn new(timing: HlsTiming) -> Self {
        Self {
            timing,
            init: None,
            old_inits: Vec::new(),
            segments: VecDeque::new(),
            open: None,
            retired: VecDeque::new(),
            discontinuity_sequence: 0,
            recent_frames: VecDeque::new(),
            next_msn: 0,
        }
    }

    pub fn timing(&self) -> &HlsTiming {
        &self.timing
    }

    /// Replaces the timing before anything was published (a source's own H.264, whose
    /// key-frame interval decides it): EXT-X-TARGETDURATION and PART-TARGET never change
    /// under a playlist that is out. Returns whether it was taken.
    pub fn set_timing(&mut self, timing: HlsTiming) -> bool {
        let untouched = self.init.is_none()
            && self.segments.is_empty()
            && self.open.is_none()
            && self.retired.is_empty();
        if untouched {
            self.timing = timing;
        }
        untouched
    }

    /// Applies the segmenter's events at `now`, then retires and forgets what is due.
    pub fn apply(&mut self, events: Vec<SegmenterEvent>, now: Instant) {
        for event in events {
            self.apply_event(event);
        }
        let keep_frames = 2 * self.timing.segmenter.frames_per_segment as usize;
        while self.recent_frames.len() > keep_frames {
            self.recent_frames.pop_front();
        }
        self.retire(now);
    }

    /// The encoder stopped at `now` (after the segmenter's last events closed its segment):
    /// every listed segment leaves the playlist, to be served as long as retention says, and
    /// `/live.mp4`'s frames go. A segment still open (its end never came) leaves with it, its
    /// published parts kept like those of the others.
    pub fn interrupt(&mut self, now: Instant) {
        let playlist_90k: u64 = self.segments.iter().map(|s| s.duration_90k).sum();
        let open = self.open.take().filter(|s| !s.parts.is_empty());
        for mut segment in self.segments.drain(..).chain(open) {
            if segment.discontinuity {
                self.discontinuity_sequence += 1;
            }
            segment.expires_at = Some(now + duration_90k(segment.duration_90k + playlist_90k));
            segment.parts_unlisted_at.get_or_insert(now);
            self.retired.push_back(segment);
        }
        self.recent_frames.clear();
        self.retire(now);
    }

    fn apply_event(&mut self, event: SegmenterEvent) {
        match event {
            SegmenterEvent::Init { init, codec, size } => {
                let generation = self.init.as_ref().map_or(0, |i| i.generation + 1);
                let previous = self.init.replace(InitSegment {
                    data: init,
                    codec,
                    size,
                    generation,
                });
                self.old_inits.extend(previous);
            }
            SegmenterEvent::SegmentStart {
                msn,
                program_date_time_unix_ms,
                discontinuity,
            } => {
                self.next_msn = self.next_msn.max(msn.saturating_add(1));
                self.open = Some(StoredSegment {
                    msn,
                    program_date_time_unix_ms,
                    discontinuity,
                    init_generation: self.init.as_ref().map_or(0, |i| i.generation),
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
                if let Some(open) = self.open.as_mut().filter(|s| s.msn == msn) {
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
                let init_generation = self.init.as_ref().map_or(0, |i| i.generation);
                self.recent_frames.push_back(StoredFrame {
                    number,
                    data,
                    independent,
                    init_generation,
                });
            }
            SegmenterEvent::SegmentEnd { msn, duration_90k } => {
                if let Some(mut segment) = self.open.take_if(|s| s.msn == msn) {
                    let mut joined =
                        BytesMut::with_capacity(segment.parts.iter().map(|p| p.data.len()).sum());
                    for part in &segment.parts {
                        joined.extend_from_slice(&part.data);
                    }
                    segment.data = Some(joined.freeze());
                    segment.duration_90k = duration_90k;
                    self.segments.push_back(segment);
                }
            }
        }
    }

    /// Moves segments out of the playlist, stamps when parts stop being listed, and forgets
    /// what has expired.
    fn retire(&mut self, now: Instant) {
        while self.segments.len() > self.timing.window_segments {
            let Some(mut segment) = self.segments.pop_front() else {
                break;
            };
            if segment.discontinuity {
                self.discontinuity_sequence += 1;
            }
            let playlist_90k: u64 = self.segments.iter().map(|s| s.duration_90k).sum();
            segment.expires_at = Some(now + duration_90k(segment.duration_90k + playlist_90k));
            segment.parts_unlisted_at.get_or_insert(now);
            self.retired.push_back(segment);
        }
        self.retired
            .retain(|s| s.expires_at.is_none_or(|at| at > now));
        let Self {
            old_inits,
            segments,
            retired,
            ..
        } = &mut *self;
        old_inits.retain(|init| {
            segments
                .iter()
                .chain(retired.iter())
                .any(|s| s.init_generation == init.generation)
        });

        let first_listed = self.playlist().first_segment_with_parts();
        for segment in self.segments.iter_mut().take(first_listed) {
            segment.parts_unlisted_at.get_or_insert(now);
        }
        let part_grace = Duration::from_secs(self.timing.target_duration_s) * 3;
        for segment in self.segments.iter_mut().chain(self.retired.iter_mut()) {
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
        // The playlist's EXT-X-MAP is the oldest segment's; later ones name theirs where it changes.
        let first_generation = self
            .segments
            .front()
            .or(self.open.as_ref())
            .map(|s| s.init_generation)
            .or(self.init.as_ref().map(|i| i.generation))
            .unwrap_or(0);
        let init_uri = |generation| HlsName::Init { generation }.to_string();
        let map_of = |s: &StoredSegment| {
            (s.init_generation != first_generation).then(|| init_uri(s.init_generation))
        };
        let parts_of = |s: &StoredSegment| -> Vec<Part> {
            s.parts
                .iter()
                .enumerate()
                .map(|(index, part)| Part {
                    duration_90k: part.duration_90k,
                    uri: HlsName::Part { msn: s.msn, index }.to_string(),
                    independent: part.independent,
                })
                .collect()
        };
        let segments = self
            .segments
            .iter()
            .map(|s| Segment {
                msn: s.msn,
                duration_90k: s.duration_90k,
                program_date_time_unix_ms: s.program_date_time_unix_ms,
                uri: HlsName::Segment { msn: s.msn }.to_string(),
                discontinuity: s.discontinuity,
                map_uri: map_of(s),
                parts: parts_of(s),
            })
            .collect::<Vec<_>>();
        let in_progress = self.open.as_ref().map(|s| SegmentInProgress {
            msn: s.msn,
            program_date_time_unix_ms: s.program_date_time_unix_ms,
            discontinuity: s.discontinuity,
            map_uri: map_of(s),
            parts: parts_of(s),
        });
        let preload_hint = self.hinted_part().map(|(msn, index)| PreloadHint {
            uri: HlsName::Part { msn, index }.to_string(),
        });
        MediaPlaylist {
            version: LL_HLS_VERSION,
            target_duration_s: self.timing.target_duration_s,
            server_control: self.timing.server_control(),
            part_target_90k: self.timing.part_target_90k(),
            media_sequence: segments
                .first()
                .map(|s| s.msn)
                .or(in_progress.as_ref().map(|s| s.msn))
                .unwrap_or(self.next_msn),
            discontinuity_sequence: self.discontinuity_sequence,
            independent_segments: true,
            map_uri: init_uri(first_generation),
            segments,
            in_progress,
            preload_hint,
        }
    }

    /// What blocking reloads decide on: the same as
    /// [`WindowState::from_playlist`] of [`Self::playlist`], without building the playlist.
    pub fn window_state(&self) -> WindowState {
        let last = self.segments.back();
        let open_msn = match (&self.open, last) {
            (Some(open), _) => open.msn,
            (None, Some(last)) => last.msn.saturating_add(1),
            (None, None) => self.next_msn,
        };
        WindowState {
            last_complete_msn: last.map(|s| s.msn),
            last_complete_parts: last.map_or(0, |s| s.parts.len() as u64),
            open_msn,
            open_parts: self.open.as_ref().map_or(0, |s| s.parts.len() as u64),
            max_parts_per_segment: u64::from(self.timing.segmenter.max_parts_per_segment()),
            advance_part_limit: advance_part_limit(
                self.timing.part_target_90k() as f64 / CLOCK_90K as f64,
            ),
        }
    }

    /// True once the playlist lists a complete segment: before that a player finds nothing it
    /// can start from (RFC 8216 §6.2.1 wants at least one segment in a playlist).
    pub fn has_complete_segment(&self) -> bool {
        self.init.is_some() && !self.segments.is_empty()
    }

    pub fn init(&self) -> Option<&InitSegment> {
        self.init.as_ref()
    }

    /// The init section of a given generation, while a segment needs it.
    pub fn init_of_generation(&self, generation: u32) -> Option<Bytes> {
        self.init
            .iter()
            .chain(self.old_inits.iter())
            .find(|i| i.generation == generation)
            .map(|i| i.data.clone())
    }

    /// A complete segment, listed or retired but not expired.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .chain(self.retired.iter())
            .find(|s| s.msn == msn)
            .and_then(|s| s.data.clone())
    }

    pub fn part(&self, msn: u64, index: usize) -> PartLookup {
        let found = self
            .segments
            .iter()
            .chain(self.retired.iter())
            .chain(self.open.iter())
            .find(|s| s.msn == msn)
            .and_then(|s| s.parts.get(index))
            .map(|p| p.data.clone());
        match found {
            Some(data) => PartLookup::Ready(data),
            None if self.hinted_part() == Some((msn, index)) => PartLookup::Hinted,
            None => PartLookup::Missing,
        }
    }

    /// Peak and average bit rate of the complete segments in the playlist; `None` before the
    /// first one completes.
    pub fn bandwidth(&self) -> Option<Bandwidth> {
        let mut peak_bps = 0u64;
        let (mut bits, mut duration) = (0u64, 0u64);
        for segment in &self.segments {
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

    /// The multivariant playlist with its one variant (`media_uri`): CODECS from the SPS and
    /// BANDWIDTH measured, so `None` before the first complete segment.
    pub fn multivariant_playlist(&self, media_uri: &str) -> Option<MultivariantPlaylist> {
        let (init, bandwidth) = (self.init.as_ref()?, self.bandwidth()?);
        Some(MultivariantPlaylist {
            independent_segments: true,
            variants: vec![Variant {
                bandwidth_bps: bandwidth.peak_bps,
                average_bandwidth_bps: Some(bandwidth.average_bps),
                codecs: init.codec.clone(),
                resolution: (init.size.width, init.size.height),
                frame_rate_millihertz: u64::from(self.timing.segmenter.fps) * 1000,
                uri: media_uri.to_owned(),
            }],
        })
    }

    /// For `/live.mp4`: the frame after `cursor` (or, with `None`, the newest IDR frame), as a
    /// fragment of its own, with its position. `None` if it does not exist (yet, or any more).
    pub fn next_frame(&self, cursor: Option<FramePosition>) -> Option<(FramePosition, Bytes)> {
        let frame = match cursor {
            None => self.recent_frames.iter().rev().find(|f| f.independent),
            Some(at) => {
                let first = self.recent_frames.front()?.number;
                let index = (at.number + 1).checked_sub(first)?;
                self.recent_frames
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
        self.recent_frames
            .back()
            .map_or(0, |newest| newest.number.saturating_sub(cursor.number))
    }

    /// The part being written now: the next part of the open segment, or part 0 of the next one.
    fn hinted_part(&self) -> Option<(u64, usize)> {
        self.init.as_ref()?;
        match (&self.open, self.segments.back()) {
            (Some(open), _) => Some((open.msn, open.parts.len())),
            (None, Some(last)) => Some((last.msn + 1, 0)),
            (None, None) => None,
        }
    }
}

fn duration_90k(ticks: u64) -> Duration {
    Duration::from_micros(ticks * 1_000_000 / CLOCK_90K)
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::playlist::{check_invariants, check_update};

    pub(crate) const SEGMENTER: SegmenterSettings = SegmenterSettings {
        fps: 30,
        frames_per_segment: 30,
        frames_per_part: 10,
    };
    const PART_90K: u64 = 30_000;

    /// Each segment's PROGRAM-DATE-TIME plus its EXTINF is the next segment's
    /// PROGRAM-DATE-TIME (to the millisecond): the playlist keeps the capture clock.
    pub(crate) fn assert_extinf_reaches_the_next_pdt(playlist: &MediaPlaylist) {
        for pair in playlist.segments.windows(2) {
            let extinf_ms = (pair[0].duration_90k as f64 / 90.0).round() as u64;
            assert_eq!(
                pair[0].program_date_time_unix_ms + extinf_ms,
                pair[1].program_date_time_unix_ms,
                "EXTINF runs to the next segment's capture time: {pair:?}"
            );
        }
    }

    pub(crate) fn window(window_segments: usize) -> LiveWindow {
        LiveWindow::new(HlsTiming::new(SEGMENTER, window_segments))
    }

    pub(crate) fn init_event() -> SegmenterEvent {
        SegmenterEvent::Init {
            init: Bytes::from_static(b"init"),
            codec: "avc1.42C01F".into(),
            size: FrameSize::new(640, 360),
        }
    }

    /// The events of part `index` of segment `msn`, with the start and end around it.
    pub(crate) fn part_events(msn: u64, index: u32) -> Vec<SegmenterEvent> {
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
    pub(crate) fn feed(
        window: &mut LiveWindow,
        start: Instant,
        first_msn: u64,
        segments: u64,
    ) -> Instant {
        let mut now = start;
        for msn in first_msn..first_msn + segments {
            for index in 0..3 {
                now += Duration::from_micros(333_333);
                window.apply(part_events(msn, index), now);
            }
        }
        now
    }

    #[test]
    fn the_playlist_keeps_every_rule_over_hundreds_of_segments() {
        let mut window = window(12);
        let mut now = Instant::now();
        window.apply(vec![init_event()], now);
        let mut previous: Option<MediaPlaylist> = None;
        for msn in 0..300 {
            for index in 0..3 {
                now += Duration::from_micros(333_333);
                window.apply(part_events(msn, index), now);
                let playlist = window.playlist();
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
                assert_eq!(playlist.server_control.part_hold_back_90k, 90_000);
                previous = Some(playlist);
            }
        }
        let text = window
            .playlist()
            .render(Some(crate::media::playlist::SkipRequest::Yes));
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{text}");
    }

    #[test]
    fn a_segment_that_left_the_playlist_is_served_for_its_duration_plus_the_playlists() {
        let mut window = window(6);
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        let now = feed(&mut window, start, 0, 7);
        // Segment 0 left when segment 6 completed (at `now`); it lasts 1 s, the playlist 6 s.
        assert_eq!(window.playlist().media_sequence, 1);
        assert!(window.segment(0).is_some());
        window.apply(part_events(7, 0), now + Duration::from_millis(6_900));
        assert!(window.segment(0).is_some(), "still inside 7 s");
        window.apply(part_events(7, 1), now + Duration::from_millis(7_100));
        assert!(window.segment(0).is_none(), "gone after 7 s");
        assert!(window.segment(1).is_some());
    }

    #[test]
    fn parts_stay_for_three_target_durations_after_their_tags_go() {
        let mut window = window(12);
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        let now = feed(&mut window, start, 0, 4);
        // Parts are listed for the last segments only; segment 0's went when 3 completed.
        let playlist = window.playlist();
        let first_listed = playlist.segments[playlist.first_segment_with_parts()].msn;
        assert!(first_listed > 0, "{first_listed}");
        // Unlisted about 1 s ago (when segment 3 started showing) and kept for 3 s.
        assert!(matches!(window.part(0, 1), PartLookup::Ready(_)));
        window.apply(part_events(4, 0), now + Duration::from_secs(4));
        assert_eq!(window.part(0, 1), PartLookup::Missing);
        assert!(window.segment(0).is_some(), "the whole segment stays");
    }

    #[test]
    fn only_the_hinted_part_is_waited_for() {
        let mut window = window(12);
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        feed(&mut window, start, 0, 2);
        window.apply(part_events(2, 0), start + Duration::from_secs(3));
        assert!(matches!(window.part(2, 0), PartLookup::Ready(_)));
        assert_eq!(window.part(2, 1), PartLookup::Hinted);
        assert_eq!(window.part(2, 2), PartLookup::Missing);
        assert_eq!(window.part(3, 0), PartLookup::Missing);
        assert_eq!(window.part(2, 99), PartLookup::Missing);
        let hint = window.playlist().preload_hint.unwrap();
        assert_eq!(hint.uri, "part2.1.m4s");
    }

    /// [`part_events`] of a segment that follows an interruption of the encoder.
    pub(crate) fn resumed_part_events(msn: u64, index: u32) -> Vec<SegmenterEvent> {
        let mut events = part_events(msn, index);
        if let Some(SegmenterEvent::SegmentStart { discontinuity, .. }) = events.first_mut() {
            *discontinuity = true;
        }
        events
    }

    #[test]
    fn an_interruption_empties_the_playlist_and_new_segments_follow_a_discontinuity() {
        let mut window = window(6);
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        let mut now = feed(&mut window, start, 0, 8);
        window.apply(vec![frame_event(0)], now);
        let before = window.playlist();
        assert_eq!(before.media_sequence, 2);
        let mut previous = before.clone();
        for round in 1..=2u64 {
            window.interrupt(now);
            let empty = window.playlist();
            let next_msn = previous.segments.last().unwrap().msn + 1;
            assert!(empty.segments.is_empty() && empty.in_progress.is_none());
            assert_eq!(empty.preload_hint, None, "no part is coming");
            assert_eq!(empty.media_sequence, next_msn, "numbers go on");
            assert!(
                !window.has_complete_segment(),
                "requests wait for new media"
            );
            assert!(
                window.next_frame(None).is_none(),
                "no stale /live.mp4 frame"
            );
            let state = window.window_state();
            assert_eq!((state.open_msn, state.last_complete_msn), (next_msn, None));
            // What the playlist listed stays downloadable for a while.
            assert!(window.segment(next_msn - 1).is_some());
            assert!(matches!(window.part(next_msn - 1, 0), PartLookup::Ready(_)));

            // The encoder runs again a minute later.
            now += Duration::from_secs(60);
            for msn in next_msn..next_msn + 7 {
                for index in 0..3 {
                    now += Duration::from_micros(333_333);
                    let events = if msn == next_msn {
                        resumed_part_events(msn, index)
                    } else {
                        part_events(msn, index)
                    };
                    window.apply(events, now);
                    let playlist = window.playlist();
                    if playlist.segments.is_empty() {
                        // Requests wait for a complete segment: no player sees this one.
                        continue;
                    }
                    check_update(&previous, &playlist)
                        .unwrap_or_else(|e| panic!("{msn}.{index}: {e}"));
                    if playlist.segments.len() >= 6 {
                        check_invariants(&playlist).unwrap_or_else(|e| panic!("{e}"));
                    }
                    previous = playlist;
                }
            }
            let playlist = window.playlist();
            assert_eq!(
                playlist.segments[0].msn,
                next_msn + 1,
                "the window moved on"
            );
            // The first new segment (and its discontinuity) has left the window, as have the
            // earlier ones: each counts once.
            assert_eq!(playlist.discontinuity_sequence, round);
            assert!(window.segment(next_msn - 1).is_none(), "expired by now");
        }
        // Halfway through the next window, the first new segment still shows the tag.
        window.interrupt(now);
        now += Duration::from_secs(60);
        let next_msn = window.playlist().media_sequence;
        for index in 0..3 {
            window.apply(resumed_part_events(next_msn, index), now);
        }
        let text = window.playlist().render(None);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"), "{text}");
        assert!(
            text.contains(&format!(
                "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:{}",
                crate::media::playlist::format_program_date_time(
                    1_790_000_000_000 + next_msn * 1000
                )
            )),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
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
        let mut window = window(12);
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        assert!(window.next_frame(None).is_none(), "no frame yet");
        window.apply((0..35).map(frame_event).collect(), start);
        let (first, data) = window.next_frame(None).unwrap();
        assert_eq!(first.number, 30, "the newest IDR");
        assert_eq!(&data[..], b"frame30");
        let (second, data) = window.next_frame(Some(first)).unwrap();
        assert_eq!((second.number, &data[..]), (31, &b"frame31"[..]));
        assert_eq!(window.frames_behind(second), 3);
        let newest = FramePosition {
            number: 34,
            init_generation: 0,
        };
        assert!(window.next_frame(Some(newest)).is_none(), "not made yet");
        assert_eq!(window.frames_behind(newest), 0);

        // Two segments' worth are kept; a viewer further behind finds its next frame gone.
        window.apply((35..100).map(frame_event).collect(), start);
        assert_eq!(window.next_frame(None).unwrap().0.number, 90);
        assert!(window.next_frame(Some(second)).is_none());
        assert_eq!(window.frames_behind(second), 99 - 31);
        let oldest_kept = FramePosition {
            number: 39,
            init_generation: 0,
        };
        assert_eq!(window.next_frame(Some(oldest_kept)).unwrap().0.number, 40);
    }

    #[test]
    fn frames_name_the_init_section_they_need() {
        let mut window = window(6);
        let start = Instant::now();
        window.apply(vec![init_event(), frame_event(0)], start);
        window.apply(
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
        let cursor = FramePosition {
            number: 0,
            init_generation: 0,
        };
        let (next, _) = window.next_frame(Some(cursor)).unwrap();
        assert_eq!((next.number, next.init_generation), (1, 1));
        assert_eq!(
            window.init_of_generation(1).as_deref(),
            Some(&b"init-640"[..])
        );
    }

    #[test]
    fn a_format_change_names_the_new_init_section_where_it_starts() {
        let mut window = window(6);
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        let mut now = feed(&mut window, start, 0, 2);
        window.apply(
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
            window.apply(events, now);
        }
        let text = window.playlist().render(None);
        assert!(text.contains("#EXT-X-MAP:URI=\"init0.mp4\"\n"), "{text}");
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n"),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 2);
        assert_eq!(window.init_of_generation(0).as_deref(), Some(&b"init"[..]));
        assert_eq!(
            window.init_of_generation(1).as_deref(),
            Some(&b"init-640"[..])
        );
        // Once the old segments have left and expired, so has their init section.
        let later = feed(&mut window, now + Duration::from_secs(30), 3, 8);
        window.apply(part_events(11, 0), later + Duration::from_secs(30));
        assert_eq!(window.init_of_generation(0), None);
        assert!(window.init_of_generation(1).is_some());
    }

    #[test]
    fn bandwidth_is_measured_from_complete_segments() {
        let mut window = window(12);
        assert_eq!(window.bandwidth(), None);
        assert!(window.multivariant_playlist("media.m3u8").is_none());
        let start = Instant::now();
        window.apply(vec![init_event()], start);
        feed(&mut window, start, 0, 2);
        // Each segment holds three 7-byte parts per second: 168 bit/s.
        assert_eq!(
            window.bandwidth(),
            Some(Bandwidth {
                peak_bps: 168,
                average_bps: 168
            })
        );
        let text = window
            .multivariant_playlist("hls/x/media.m3u8")
            .unwrap()
            .render();
        assert!(
            text.contains("BANDWIDTH=168,AVERAGE-BANDWIDTH=168"),
            "{text}"
        );
        assert!(text.contains("CODECS=\"avc1.42C01F\""), "{text}");
    }

    #[test]
    fn the_playlist_follows_the_capture_clock_when_frames_are_lost() {
        use crate::hls::segmenter::Segmenter;
        use crate::hls::segmenter::tests::{BASE_UNIX_US, run_pushes, small};
        let settings = SegmenterSettings {
            fps: 30,
            frames_per_segment: 30,
            frames_per_part: 6,
        };
        let lost = [7, 20, 21, 35, 59, 75, 76, 77, 118, 119, 200, 260, 261];
        let kept = (0..300).filter(|n| !lost.contains(n));
        let mut segmenter = Segmenter::new(settings);
        let mut window = LiveWindow::new(HlsTiming::new(settings, 6));
        let mut now = Instant::now();
        let mut previous: Option<MediaPlaylist> = None;
        for outcome in run_pushes(&mut segmenter, small(kept)) {
            now += Duration::from_micros(33_333);
            window.apply(outcome.events, now);
            let playlist = window.playlist();
            if playlist.segments.is_empty() {
                continue;
            }
            check_invariants(&playlist).unwrap_or_else(|e| panic!("{e}\n{playlist:?}"));
            if let Some(previous) = &previous {
                check_update(previous, &playlist).unwrap();
            }
            previous = Some(playlist);
        }
        let playlist = window.playlist();
        assert_eq!(playlist.segments.len(), 6);
        // PROGRAM-DATE-TIME plus EXTINF is the next segment's PROGRAM-DATE-TIME, and each
        // segment's PROGRAM-DATE-TIME is a frame's capture time (a whole number of frames
        // after the first): the playlist's clock is the capture clock.
        assert_extinf_reaches_the_next_pdt(&playlist);
        for segment in &playlist.segments {
            let since_first_us = segment.program_date_time_unix_ms * 1000 - BASE_UNIX_US;
            let frames = (since_first_us * 30).div_ceil(1_000_000);
            assert_eq!(
                segment.program_date_time_unix_ms,
                (BASE_UNIX_US + frames * 1_000_000 / 30) / 1000
            );
            let parts_90k: u64 = segment.parts.iter().map(|p| p.duration_90k).sum();
            let listed = !segment.parts.is_empty();
            assert!(!listed || parts_90k == segment.duration_90k, "{segment:?}");
        }
    }
}
