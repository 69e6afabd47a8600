//! HLS playlist text: the multivariant playlist and the media playlist, the latter both in its
//! Low-Latency form (parts, preload hint, server control, delta updates) and in its plain form.
//!
//! This module owns the tag syntax and the rendering rules of RFC 8216, its revision
//! draft-pantos-hls-rfc8216bis ("rfc8216bis" below) and Apple's HLS authoring specification. It
//! does no I/O and reads no clock: the segmenter describes its window as a [`MediaPlaylist`] and
//! gets text back. [`check_invariants`] and [`check_update`] state the rules a window has to keep
//! (target duration, part bounds, hold-backs, sequence numbers), for tests and fuzzing.
//!
//! Durations are `f64` seconds and are written with [`DURATION_DECIMALS`] decimals; every
//! comparison the rules make is done on the written value, which is what a client sees.

use std::fmt::Write as _;

/// The protocol version of Low-Latency media playlists: Playlist Delta Updates (EXT-X-SKIP)
/// need version 9 (rfc8216bis §7), and declaring it on the full playlists too keeps one
/// version across every reload.
pub const LL_HLS_VERSION: u8 = 9;

/// EXT-X-MAP in a media playlist without EXT-X-I-FRAMES-ONLY needs version 6 (RFC 8216 §7).
const MAP_MIN_VERSION: u8 = 6;

/// The multivariant playlist's own tags need no version, its media (fMP4, EXT-X-MAP) needs 6.
/// Declaring no more lets players that predate Low-Latency HLS and check the version accept
/// the presentation; Low-Latency clients find LL features in the media playlist's tags, not in
/// this number.
const MULTIVARIANT_VERSION: u8 = MAP_MIN_VERSION;

/// EXT-X-SKIP needs version 9 (rfc8216bis §4.4.5.2, §7).
const SKIP_MIN_VERSION: u8 = 9;

/// Decimals of every duration attribute. Five decimals is 10 µs: fine enough that a part of a
/// whole number of frames at any common rate keeps its length, and that an EXTINF rounded to the
/// nearest integer never crosses TARGETDURATION by rounding alone (rfc8216bis §4.4.3.1).
pub const DURATION_DECIMALS: usize = 5;

/// Decimals of FRAME-RATE: "rounded to three decimal places" (rfc8216bis §4.4.6.2).
const FRAME_RATE_DECIMALS: usize = 3;

/// Parts are listed only for segments that start within this many target durations of the
/// end of the playlist: EXT-X-PART tags should be removed once they are more than three target
/// durations from the end (rfc8216bis §6.2.2). Whole segments are kept or dropped, so the part
/// indexes a client counts in a segment are always complete.
const PART_LISTING_TARGET_DURATIONS: u64 = 3;

/// At most this many segments list parts, counting the one in progress, which always carries
/// at least the preload hint. With segments of about one target duration the rule above gives
/// no more anyway; the cap also holds for shorter segments, for validators that read the rule
/// as "the last three segments" (the `hls-parser` npm package rejects parts on any earlier
/// one, and counts the preload hint as a segment).
const MAX_SEGMENTS_WITH_PARTS: usize = 3;

/// A live media playlist keeps at least this many segments once it starts removing old ones.
/// RFC 8216 §6.2.2 only forbids going under three target durations; the design notes ask for
/// six segments, so that a client starting three target durations back (RFC 8216 §6.3.3)
/// still finds older segments to fall back on.
pub const MIN_LIVE_SEGMENTS: usize = 6;

/// HOLD-BACK is at least three target durations (rfc8216bis §4.4.3.8).
const HOLD_BACK_TARGET_DURATIONS: u64 = 3;

/// PART-HOLD-BACK must be at least twice PART-TARGET and should be three times
/// (rfc8216bis §4.4.3.8); framecast keeps the SHOULD.
const PART_HOLD_BACK_PART_TARGETS: f64 = 3.0;

/// CAN-SKIP-UNTIL, the Skip Boundary, is at least six target durations (rfc8216bis §4.4.3.8).
const SKIP_BOUNDARY_TARGET_DURATIONS: u64 = 6;

/// A part other than the last of its segment lasts at least 85 % of PART-TARGET
/// (rfc8216bis §4.4.4.9, which also exempts INDEPENDENT=YES parts; the design notes and the
/// `hls-parser` validator do not, so neither does framecast).
const MIN_PART_FRACTION: f64 = 0.85;

/// How far the parts of a segment may add up to something other than its EXTINF, in seconds:
/// both come from the same 90 kHz timestamps, so only float noise separates them.
const PART_SUM_TOLERANCE_S: f64 = 0.001;

/// Slack for comparisons between products of written durations (e.g. 3 × 0.33333).
const COMPARE_EPSILON_S: f64 = 1e-9;

/// A client's `_HLS_skip` delivery directive (rfc8216bis §6.2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SkipRequest {
    /// No directive: the whole playlist.
    #[default]
    No,
    /// `_HLS_skip=YES`: skip old segments.
    Yes,
    /// `_HLS_skip=v2`: skip old segments and EXT-X-DATERANGE tags. framecast writes no date
    /// ranges and does not announce CAN-SKIP-DATERANGES, so this renders as [`SkipRequest::Yes`].
    V2,
}

/// The multivariant playlist served at `/live.m3u8` (rfc8216bis §4.4.6).
#[derive(Debug, Clone, PartialEq)]
pub struct MultivariantPlaylist {
    /// EXT-X-INDEPENDENT-SEGMENTS (§4.4.2.1): every segment starts with an IDR.
    pub independent_segments: bool,
    /// One EXT-X-STREAM-INF tag and URI line each (§4.4.6.2).
    pub variants: Vec<Variant>,
}

/// One variant stream: an EXT-X-STREAM-INF tag and the URI of its media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// BANDWIDTH: peak segment bit rate, bits per second (§4.4.6.2, required).
    pub bandwidth_bps: u64,
    /// AVERAGE-BANDWIDTH, bits per second; `None` until it has been measured.
    pub average_bandwidth_bps: Option<u64>,
    /// CODECS, an RFC 6381 list such as `avc1.42e01f` (quoted-string); omitted when empty.
    pub codecs: String,
    /// RESOLUTION as (width, height) in pixels; omitted when either is 0.
    pub resolution: (u32, u32),
    /// FRAME-RATE, frames per second, written with three decimals; omitted unless positive.
    pub frame_rate: f64,
    /// The URI line: this variant's media playlist.
    pub uri: String,
}

/// A live media playlist: the window of segments the store holds, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// EXT-X-VERSION of the Low-Latency rendering, raised to what the written tags need (6 for
    /// EXT-X-MAP, 9 with EXT-X-SKIP; RFC 8216 §7, rfc8216bis §7); [`LL_HLS_VERSION`] is the
    /// usual value. The plain rendering declares only the 6 its tags need.
    pub version: u8,
    /// EXT-X-TARGETDURATION, whole seconds: every EXTINF rounded to the nearest integer is at
    /// most this, and it never changes during a stream (rfc8216bis §4.4.3.1, §6.2.1).
    pub target_duration_s: u64,
    /// EXT-X-SERVER-CONTROL (rfc8216bis §4.4.3.8).
    pub server_control: ServerControl,
    /// EXT-X-PART-INF:PART-TARGET, seconds: every part lasts at most this (§4.4.3.7, §4.4.4.9).
    pub part_target_s: f64,
    /// EXT-X-MEDIA-SEQUENCE: the Media Sequence Number of the first segment (§4.4.3.2).
    pub media_sequence: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities removed from the window so far (§4.4.3.3).
    pub discontinuity_sequence: u64,
    /// EXT-X-INDEPENDENT-SEGMENTS (§4.4.2.1): every segment starts with an IDR.
    pub independent_segments: bool,
    /// EXT-X-MAP:URI, the fMP4 initialization section (§4.4.4.5).
    pub map_uri: String,
    /// The complete segments, oldest first, with consecutive Media Sequence Numbers.
    pub segments: Vec<Segment>,
    /// The segment being written: its EXT-X-PART tags follow the last complete segment.
    pub in_progress: Option<SegmentInProgress>,
    /// EXT-X-PRELOAD-HINT:TYPE=PART (§4.4.5.3): the part being written now.
    pub preload_hint: Option<PreloadHint>,
}

/// The attributes of EXT-X-SERVER-CONTROL (rfc8216bis §4.4.3.8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerControl {
    /// CAN-BLOCK-RELOAD=YES: `_HLS_msn`/`_HLS_part` requests are held (§6.2.5.2).
    pub can_block_reload: bool,
    /// PART-HOLD-BACK, seconds: how far behind the end a low-latency client plays.
    pub part_hold_back_s: f64,
    /// HOLD-BACK, seconds: how far behind the end a client plays whole segments.
    pub hold_back_s: f64,
    /// CAN-SKIP-UNTIL, seconds: the Skip Boundary of delta updates; `None` offers none.
    pub can_skip_until_s: Option<f64>,
}

impl ServerControl {
    /// The smallest values the rules allow for a stream's target durations: HOLD-BACK 3 × TD,
    /// PART-HOLD-BACK 3 × PART-TARGET (rounded up to the written precision), CAN-SKIP-UNTIL
    /// 6 × TD, blocking reload on.
    pub fn minimums(target_duration_s: u64, part_target_s: f64) -> Self {
        let scale = 10f64.powi(DURATION_DECIMALS as i32);
        let part_hold_back_s =
            (PART_HOLD_BACK_PART_TARGETS * written(part_target_s) * scale).ceil() / scale;
        Self {
            can_block_reload: true,
            part_hold_back_s,
            hold_back_s: target_duration_s.saturating_mul(HOLD_BACK_TARGET_DURATIONS) as f64,
            can_skip_until_s: Some(
                target_duration_s.saturating_mul(SKIP_BOUNDARY_TARGET_DURATIONS) as f64,
            ),
        }
    }
}

/// One complete media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media Sequence Number. Not written: implied by EXT-X-MEDIA-SEQUENCE and the position
    /// (rfc8216bis §3), kept here so the window can be checked.
    pub msn: u64,
    /// EXTINF duration, seconds (§4.4.4.1).
    pub duration_s: f64,
    /// EXT-X-PROGRAM-DATE-TIME of the first sample, unix milliseconds (§4.4.4.6).
    pub program_date_time_unix_ms: u64,
    /// The URI line.
    pub uri: String,
    /// EXT-X-DISCONTINUITY before this segment (§4.4.4.3).
    pub discontinuity: bool,
    /// The init section this segment needs when it is not the playlist's [`MediaPlaylist::map_uri`]
    /// (after a format change): an EXT-X-MAP applies to every segment after it until the next
    /// one (RFC 8216 §4.3.2.5), so one is written wherever the needed section changes.
    pub map_uri: Option<String>,
    /// The segment's parts in order, written as EXT-X-PART tags near the live edge.
    pub parts: Vec<Part>,
}

/// The segment being written: so far only parts.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInProgress {
    /// Media Sequence Number: one past the last complete segment.
    pub msn: u64,
    /// EXT-X-PROGRAM-DATE-TIME of its first sample, unix milliseconds.
    pub program_date_time_unix_ms: u64,
    /// EXT-X-DISCONTINUITY before this segment.
    pub discontinuity: bool,
    /// As [`Segment::map_uri`].
    pub map_uri: Option<String>,
    /// The parts published so far.
    pub parts: Vec<Part>,
}

/// One partial segment: an EXT-X-PART tag (rfc8216bis §4.4.4.9).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// DURATION, seconds.
    pub duration_s: f64,
    /// URI (quoted-string).
    pub uri: String,
    /// INDEPENDENT=YES: the part starts with an IDR.
    pub independent: bool,
}

/// EXT-X-PRELOAD-HINT:TYPE=PART (rfc8216bis §4.4.5.3): the next part, requested before it exists.
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// URI (quoted-string) of the part being written.
    pub uri: String,
}

impl MultivariantPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{MULTIVARIANT_VERSION}");
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for variant in &self.variants {
            variant.write(&mut out);
        }
        out
    }
}

impl Variant {
    /// EXT-X-STREAM-INF with its attributes in a fixed order, then the URI line (§4.4.6.2).
    fn write(&self, out: &mut String) {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", self.bandwidth_bps);
        if let Some(average_bps) = self.average_bandwidth_bps {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={average_bps}");
        }
        if !self.codecs.is_empty() {
            out.push_str(",CODECS=");
            push_quoted(out, &self.codecs);
        }
        let (width, height) = self.resolution;
        if width > 0 && height > 0 {
            // decimal-resolution is not quoted (§4.2).
            let _ = write!(out, ",RESOLUTION={width}x{height}");
        }
        if self.frame_rate.is_finite() && self.frame_rate > 0.0 {
            let _ = write!(
                out,
                ",FRAME-RATE={:.*}",
                FRAME_RATE_DECIMALS, self.frame_rate
            );
        }
        out.push('\n');
        push_uri_line(out, &self.uri);
    }
}

/// Which tags a media playlist carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Parts, preload hint, PART-INF and SERVER-CONTROL.
    LowLatency,
    /// Plain HLS: complete segments only.
    Standard,
}

impl MediaPlaylist {
    /// The Low-Latency playlist text. With `Some(SkipRequest::Yes | SkipRequest::V2)` and a
    /// Skip Boundary in [`ServerControl::can_skip_until_s`], the oldest segments that start more
    /// than the Skip Boundary before the end are replaced by one EXT-X-SKIP tag (a Playlist
    /// Delta Update, rfc8216bis §6.2.5.1). When nothing can be skipped the whole playlist is
    /// written: the client gets what a server that ignores the directive would send.
    pub fn render(&self, delta: Option<SkipRequest>) -> String {
        let skipped = match delta {
            Some(SkipRequest::Yes | SkipRequest::V2) => self.skippable_segments(),
            Some(SkipRequest::No) | None => 0,
        };
        self.write(Flavor::LowLatency, skipped)
    }

    /// The same window as plain HLS (RFC 8216), for clients that do not want Low-Latency HLS:
    /// no SERVER-CONTROL, PART-INF, parts, preload hint or segment in progress, and the lowest
    /// EXT-X-VERSION its tags allow, for players that refuse versions they do not know.
    /// SERVER-CONTROL goes too because validators take it as a claim of Low-Latency HLS
    /// (`hls-parser` then demands CAN-BLOCK-RELOAD), and without HOLD-BACK clients start three
    /// target durations back (RFC 8216 §6.3.3), which is what it would say.
    pub fn render_standard(&self) -> String {
        self.write(Flavor::Standard, 0)
    }

    /// How many of the oldest segments a delta update replaces by EXT-X-SKIP: those that start
    /// more than CAN-SKIP-UNTIL before the end of the last complete segment (rfc8216bis
    /// §6.2.5.1, §4.4.5.2). Measuring from the last complete segment rather than the last part
    /// never skips more than either reading of "the end of the Playlist" allows.
    pub fn skippable_segments(&self) -> usize {
        let Some(skip_boundary_s) = self.server_control.can_skip_until_s else {
            return 0;
        };
        if !(skip_boundary_s.is_finite() && skip_boundary_s > 0.0) {
            return 0;
        }
        let skip_boundary_us = micros(skip_boundary_s);
        let end_us = self
            .segments
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(micros(s.duration_s)));
        let mut start_us = 0u64;
        let mut skipped = 0;
        for segment in &self.segments {
            if end_us.saturating_sub(start_us) <= skip_boundary_us {
                break;
            }
            skipped += 1;
            start_us = start_us.saturating_add(micros(segment.duration_s));
        }
        skipped
    }

    fn write(&self, flavor: Flavor, skipped: usize) -> String {
        let low_latency = flavor == Flavor::LowLatency;
        let mut out = String::with_capacity(128 + 160 * self.segments.len());
        out.push_str("#EXTM3U\n");
        let version = match flavor {
            Flavor::Standard => MAP_MIN_VERSION,
            Flavor::LowLatency if skipped > 0 => self.version.max(SKIP_MIN_VERSION),
            Flavor::LowLatency => self.version.max(MAP_MIN_VERSION),
        };
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration_s);
        if low_latency {
            self.write_server_control(&mut out);
            out.push_str("#EXT-X-PART-INF:PART-TARGET=");
            push_duration(&mut out, self.part_target_s);
            out.push('\n');
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        // Always, and before EXT-X-SKIP: hls.js refuses it after EXT-X-SKIP ("must appear
        // before the first Media Segment", hls.js issue 7554). It counts the discontinuities
        // before the first segment of the whole playlist, skipped or not (§4.4.3.3).
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence
        );
        out.push_str("#EXT-X-MAP:URI=");
        push_quoted(&mut out, &self.map_uri);
        out.push('\n');
        if skipped > 0 {
            // Replaces the skipped segments' URI lines and all their tags (rfc8216bis §4.4.5.2).
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }

        let first_with_parts = self.first_segment_with_parts();
        let mut current_map = self.map_uri.as_str();
        for (index, segment) in self.segments.iter().enumerate() {
            if index < skipped {
                continue;
            }
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            push_map_if_changed(
                &mut out,
                &mut current_map,
                segment.map_uri.as_deref(),
                &self.map_uri,
            );
            // On every segment, so the first one after EXT-X-SKIP carries its own too.
            push_program_date_time(&mut out, segment.program_date_time_unix_ms);
            if low_latency && index >= first_with_parts {
                for part in &segment.parts {
                    push_part(&mut out, part);
                }
            }
            out.push_str("#EXTINF:");
            push_duration(&mut out, segment.duration_s);
            out.push_str(",\n");
            push_uri_line(&mut out, &segment.uri);
        }

        if low_latency {
            if let Some(open) = self.in_progress.as_ref().filter(|s| !s.parts.is_empty()) {
                if open.discontinuity {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                push_map_if_changed(
                    &mut out,
                    &mut current_map,
                    open.map_uri.as_deref(),
                    &self.map_uri,
                );
                push_program_date_time(&mut out, open.program_date_time_unix_ms);
                for part in &open.parts {
                    push_part(&mut out, part);
                }
            }
            if let Some(hint) = &self.preload_hint {
                out.push_str("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=");
                push_quoted(&mut out, &hint.uri);
                out.push('\n');
            }
        }
        out
    }

    fn write_server_control(&self, out: &mut String) {
        let control = &self.server_control;
        out.push_str("#EXT-X-SERVER-CONTROL:");
        if control.can_block_reload {
            out.push_str("CAN-BLOCK-RELOAD=YES,");
        }
        if let Some(skip_boundary_s) = control.can_skip_until_s {
            out.push_str("CAN-SKIP-UNTIL=");
            push_duration(out, skip_boundary_s);
            out.push(',');
        }
        out.push_str("HOLD-BACK=");
        push_duration(out, control.hold_back_s);
        // Required whenever EXT-X-PART-INF is present (§4.4.3.8).
        out.push_str(",PART-HOLD-BACK=");
        push_duration(out, control.part_hold_back_s);
        out.push('\n');
    }

    /// Index of the first complete segment whose parts are listed: segments that start within
    /// three target durations of the end of the playlist, the end being that of the last
    /// published part (rfc8216bis §6.2.2), and no more than [`MAX_SEGMENTS_WITH_PARTS`].
    pub fn first_segment_with_parts(&self) -> usize {
        let complete_us = self
            .segments
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(micros(s.duration_s)));
        let open_us = self
            .in_progress
            .iter()
            .flat_map(|s| &s.parts)
            .fold(0u64, |sum, p| sum.saturating_add(micros(p.duration_s)));
        let window_us = self
            .target_duration_s
            .saturating_mul(PART_LISTING_TARGET_DURATIONS)
            .saturating_mul(1_000_000);
        let from_us = complete_us
            .saturating_add(open_us)
            .saturating_sub(window_us);
        let mut start_us = 0u64;
        let by_time = self
            .segments
            .iter()
            .position(|segment| {
                let starts_in_window = start_us >= from_us;
                start_us = start_us.saturating_add(micros(segment.duration_s));
                starts_in_window
            })
            .unwrap_or(self.segments.len());
        let by_count = self
            .segments
            .len()
            .saturating_sub(MAX_SEGMENTS_WITH_PARTS - 1);
        by_time.max(by_count)
    }
}

/// Checks the rules one media playlist has to keep; the error names the first broken one.
///
/// The target duration and part target are the playlist's own; [`check_update`] checks that
/// they stay constant from one playlist to the next.
pub fn check_invariants(playlist: &MediaPlaylist) -> Result<(), String> {
    let target_s = playlist.target_duration_s;
    if target_s == 0 {
        return Err("TARGETDURATION is 0".into());
    }
    let target_f = target_s as f64;
    let part_target = written(playlist.part_target_s);
    if !is_positive(part_target) {
        return Err(format!("PART-TARGET {part_target} is not positive"));
    }
    if part_target > target_f {
        return Err(format!(
            "PART-TARGET {part_target} exceeds TARGETDURATION {target_s}"
        ));
    }

    // rfc8216bis §4.4.3.8 and the design notes.
    let control = &playlist.server_control;
    let part_hold_back = written(control.part_hold_back_s);
    if !is_at_least(part_hold_back, PART_HOLD_BACK_PART_TARGETS * part_target) {
        return Err(format!(
            "PART-HOLD-BACK {part_hold_back} is less than 3 x PART-TARGET {part_target}"
        ));
    }
    let hold_back = written(control.hold_back_s);
    if !is_at_least(
        hold_back,
        target_s.saturating_mul(HOLD_BACK_TARGET_DURATIONS) as f64,
    ) {
        return Err(format!(
            "HOLD-BACK {hold_back} is less than 3 x TARGETDURATION {target_s}"
        ));
    }
    if let Some(skip_boundary_s) = control.can_skip_until_s {
        let skip_boundary = written(skip_boundary_s);
        if !is_at_least(
            skip_boundary,
            target_s.saturating_mul(SKIP_BOUNDARY_TARGET_DURATIONS) as f64,
        ) {
            return Err(format!(
                "CAN-SKIP-UNTIL {skip_boundary} is less than 6 x TARGETDURATION {target_s}"
            ));
        }
    }

    check_uri("EXT-X-MAP URI", &playlist.map_uri)?;

    // Media Sequence Numbers (rfc8216bis §3, §6.2.1).
    if let Some(first) = playlist.segments.first()
        && first.msn != playlist.media_sequence
    {
        return Err(format!(
            "first segment has msn {} but EXT-X-MEDIA-SEQUENCE is {}",
            first.msn, playlist.media_sequence
        ));
    }
    for pair in playlist.segments.windows(2) {
        if pair[0].msn.checked_add(1) != Some(pair[1].msn) {
            return Err(format!(
                "msn {} follows msn {}: not consecutive",
                pair[1].msn, pair[0].msn
            ));
        }
    }
    if playlist.media_sequence > 0 && playlist.segments.len() < MIN_LIVE_SEGMENTS {
        return Err(format!(
            "{} segments after old ones were removed; a live playlist keeps at least {MIN_LIVE_SEGMENTS}",
            playlist.segments.len()
        ));
    }

    let mut previous_pdt_ms: Option<u64> = None;
    for segment in &playlist.segments {
        let msn = segment.msn;
        let duration = written(segment.duration_s);
        if !is_positive(duration) {
            return Err(format!("segment {msn}: EXTINF {duration} is not positive"));
        }
        // rfc8216bis §4.4.3.1: rounded to the nearest integer, at most the target duration.
        if duration.round() > target_f {
            return Err(format!(
                "segment {msn}: EXTINF {duration} rounds above TARGETDURATION {target_s}"
            ));
        }
        check_uri("segment URI", &segment.uri).map_err(|e| format!("segment {msn}: {e}"))?;
        check_parts(&segment.parts, part_target, true)
            .map_err(|e| format!("segment {msn}: {e}"))?;
        if !segment.parts.is_empty() {
            let parts_s: f64 = segment.parts.iter().map(|p| p.duration_s).sum();
            if (parts_s - segment.duration_s).abs() > PART_SUM_TOLERANCE_S {
                return Err(format!(
                    "segment {msn}: parts add up to {parts_s} s but EXTINF is {}",
                    segment.duration_s
                ));
            }
        }
        check_pdt(
            msn,
            previous_pdt_ms,
            segment.program_date_time_unix_ms,
            segment.discontinuity,
        )?;
        previous_pdt_ms = Some(segment.program_date_time_unix_ms);
    }

    if let Some(open) = &playlist.in_progress {
        let expected_msn = match playlist.segments.last() {
            Some(last) => last.msn.checked_add(1),
            None => Some(playlist.media_sequence),
        };
        if expected_msn != Some(open.msn) {
            return Err(format!(
                "segment in progress has msn {} but {expected_msn:?} comes next",
                open.msn
            ));
        }
        // A segment's last part is published together with the segment, so every part of a
        // segment still in progress is a full-length one.
        check_parts(&open.parts, part_target, false)
            .map_err(|e| format!("segment {} (in progress): {e}", open.msn))?;
        check_pdt(
            open.msn,
            previous_pdt_ms,
            open.program_date_time_unix_ms,
            open.discontinuity,
        )?;
    }

    // Exactly one EXT-X-PRELOAD-HINT of TYPE=PART (rfc8216bis §4.4.5.3; design notes).
    match &playlist.preload_hint {
        None => Err("no EXT-X-PRELOAD-HINT".into()),
        Some(hint) => check_uri("EXT-X-PRELOAD-HINT URI", &hint.uri),
    }
}

/// Checks the rules that link a playlist to the one before it: TARGETDURATION and PART-TARGET
/// never change (rfc8216bis §6.2.1, design notes), sequence numbers never go back, a segment
/// keeps its URI, duration, date and discontinuity, and EXT-X-DISCONTINUITY-SEQUENCE grows by
/// the discontinuities that left the window (rfc8216bis §6.2.2).
pub fn check_update(previous: &MediaPlaylist, next: &MediaPlaylist) -> Result<(), String> {
    if previous.target_duration_s != next.target_duration_s {
        return Err(format!(
            "TARGETDURATION changed from {} to {}",
            previous.target_duration_s, next.target_duration_s
        ));
    }
    if written(previous.part_target_s) != written(next.part_target_s) {
        return Err(format!(
            "PART-TARGET changed from {} to {}",
            previous.part_target_s, next.part_target_s
        ));
    }
    if next.media_sequence < previous.media_sequence {
        return Err(format!(
            "EXT-X-MEDIA-SEQUENCE went back from {} to {}",
            previous.media_sequence, next.media_sequence
        ));
    }
    let last_msn = |p: &MediaPlaylist| p.segments.last().map(|s| s.msn);
    if last_msn(next) < last_msn(previous) {
        return Err("the newest segment went back".into());
    }
    for old in &previous.segments {
        let Some(new) = next.segments.iter().find(|s| s.msn == old.msn) else {
            continue;
        };
        if new.uri != old.uri
            || written(new.duration_s) != written(old.duration_s)
            || new.program_date_time_unix_ms != old.program_date_time_unix_ms
            || new.discontinuity != old.discontinuity
        {
            return Err(format!("segment {} changed between playlists", old.msn));
        }
    }
    // Only checkable when every removed segment was in the previous window.
    let removed_all_known = previous.segments.first().is_some_and(|first| {
        first.msn.saturating_add(previous.segments.len() as u64) >= next.media_sequence
    });
    if removed_all_known {
        let removed_discontinuities = previous
            .segments
            .iter()
            .filter(|s| s.msn < next.media_sequence && s.discontinuity)
            .count() as u64;
        let expected = previous
            .discontinuity_sequence
            .saturating_add(removed_discontinuities);
        if next.discontinuity_sequence != expected {
            return Err(format!(
                "EXT-X-DISCONTINUITY-SEQUENCE is {} but {expected} discontinuities left the window",
                next.discontinuity_sequence
            ));
        }
    }
    Ok(())
}

fn check_parts(parts: &[Part], part_target: f64, last_may_be_short: bool) -> Result<(), String> {
    if let Some(first) = parts.first()
        && !first.independent
    {
        // Every segment starts with an IDR (design notes), so its first part does too.
        return Err("first part is not INDEPENDENT".into());
    }
    for (index, part) in parts.iter().enumerate() {
        let duration = written(part.duration_s);
        if !is_positive(duration) {
            return Err(format!("part {index}: DURATION {duration} is not positive"));
        }
        // rfc8216bis §4.4.3.7, §4.4.4.9: no part lasts longer than PART-TARGET.
        if duration > part_target {
            return Err(format!(
                "part {index}: DURATION {duration} exceeds PART-TARGET {part_target}"
            ));
        }
        let may_be_short = last_may_be_short && index + 1 == parts.len();
        if !may_be_short && !is_at_least(duration, MIN_PART_FRACTION * part_target) {
            return Err(format!(
                "part {index}: DURATION {duration} is under 85 % of PART-TARGET {part_target}"
            ));
        }
        check_uri("part URI", &part.uri).map_err(|e| format!("part {index}: {e}"))?;
    }
    Ok(())
}

fn check_pdt(
    msn: u64,
    previous_ms: Option<u64>,
    pdt_ms: u64,
    discontinuity: bool,
) -> Result<(), String> {
    match previous_ms {
        Some(previous_ms) if pdt_ms < previous_ms && !discontinuity => Err(format!(
            "segment {msn}: PROGRAM-DATE-TIME goes back without a discontinuity"
        )),
        _ => Ok(()),
    }
}

/// URIs are written as quoted-strings or URI lines, neither of which may hold a line break or,
/// quoted, a double quote (rfc8216bis §4.2, §4.1).
fn check_uri(what: &str, uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if uri.contains(['\r', '\n', '"']) {
        return Err(format!(
            "{what} {uri:?} holds a line break or a double quote"
        ));
    }
    Ok(())
}

/// Formats unix milliseconds as an ISO 8601 UTC date-time with milliseconds, the form
/// Writes EXT-X-MAP when the segment about to be written needs another init section than the
/// one in force.
fn push_map_if_changed<'a>(
    out: &mut String,
    current: &mut &'a str,
    needed: Option<&'a str>,
    default: &'a str,
) {
    let needed = needed.unwrap_or(default);
    if needed != *current {
        out.push_str("#EXT-X-MAP:URI=");
        push_quoted(out, needed);
        out.push('\n');
        *current = needed;
    }
}

/// EXT-X-PROGRAM-DATE-TIME takes (rfc8216bis §4.4.4.6): `2023-11-14T22:13:20.000Z`.
pub fn format_program_date_time(unix_ms: u64) -> String {
    let mut out = String::with_capacity(24);
    push_date_time(&mut out, unix_ms);
    out
}

const MS_PER_DAY: u64 = 86_400_000;

fn push_date_time(out: &mut String, unix_ms: u64) {
    let days = unix_ms / MS_PER_DAY;
    let ms_of_day = unix_ms % MS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let seconds_of_day = ms_of_day / 1000;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
        ms_of_day % 1000
    );
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
///
/// Counts in 400-year eras of 146 097 days, each starting on 1 March so that the leap day
/// ends the year; within an era, the year of the era follows from the day of the era by
/// removing the leap days (one per 4 years, none per 100, one per 400), and the month from the
/// day of that March-based year, whose months from March to January repeat a 153-day pattern
/// every five months.
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    /// Days from 0000-03-01 to 1970-01-01.
    const EPOCH_FROM_ERA_START: u64 = 719_468;
    const DAYS_PER_ERA: u64 = 146_097;
    let days = days_since_epoch + EPOCH_FROM_ERA_START;
    let era = days / DAYS_PER_ERA;
    let day_of_era = days % DAYS_PER_ERA; // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // 0..=399
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11, 0 = March
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // 1..=31
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    // January and February belong to the March-based year before.
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

fn push_program_date_time(out: &mut String, unix_ms: u64) {
    out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
    push_date_time(out, unix_ms);
    out.push('\n');
}

fn push_part(out: &mut String, part: &Part) {
    out.push_str("#EXT-X-PART:DURATION=");
    push_duration(out, part.duration_s);
    out.push_str(",URI=");
    push_quoted(out, &part.uri);
    if part.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

fn push_duration(out: &mut String, seconds: f64) {
    let _ = write!(out, "{seconds:.DURATION_DECIMALS$}");
}

/// A quoted-string (rfc8216bis §4.2) cannot hold CR, LF or '"'; they are dropped rather than
/// breaking the playlist ([`check_invariants`] reports them).
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    out.extend(value.chars().filter(|c| !matches!(c, '"' | '\r' | '\n')));
    out.push('"');
}

/// A URI line ends at the first line break (rfc8216bis §4.1), so line breaks are dropped.
fn push_uri_line(out: &mut String, uri: &str) {
    out.extend(uri.chars().filter(|c| !matches!(c, '\r' | '\n')));
    out.push('\n');
}

/// `value` ≥ `minimum` up to float noise; false for NaN.
fn is_at_least(value: f64, minimum: f64) -> bool {
    value >= minimum - COMPARE_EPSILON_S
}

/// False for NaN too.
fn is_positive(value: f64) -> bool {
    value > 0.0
}

/// A duration as a client reads it back from the text.
fn written(seconds: f64) -> f64 {
    format!("{seconds:.DURATION_DECIMALS$}")
        .parse()
        .unwrap_or(f64::NAN)
}

/// Whole microseconds, so that window arithmetic is exact and repeatable; negative and NaN
/// durations count as 0.
fn micros(seconds: f64) -> u64 {
    // `as` saturates: NaN and negatives become 0, huge values u64::MAX.
    (seconds * 1e6).round() as u64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 2023-11-14T22:13:20.123Z
    const BASE_PDT_UNIX_MS: u64 = 1_700_000_000_123;
    const THIRD_S: f64 = 1.0 / 3.0;

    fn part(msn: u64, index: usize) -> Part {
        Part {
            duration_s: THIRD_S,
            uri: format!("p{msn}.{index}.m4s"),
            independent: index == 0,
        }
    }

    /// A one-second-segment window: `count` complete segments from `first_msn`, three parts
    /// each, then `open_parts` parts of the next. Each msn in `discontinuities` starts after a
    /// one-minute jump in PROGRAM-DATE-TIME.
    fn window(
        first_msn: u64,
        count: u64,
        open_parts: usize,
        discontinuities: &[u64],
        discontinuity_sequence: u64,
    ) -> MediaPlaylist {
        let pdt = |msn: u64| {
            let jumps = discontinuities.iter().filter(|&&d| d <= msn).count() as u64;
            BASE_PDT_UNIX_MS + (msn - first_msn) * 1000 + jumps * 60_000
        };
        let segments = (first_msn..first_msn + count)
            .map(|msn| Segment {
                msn,
                duration_s: 1.0,
                program_date_time_unix_ms: pdt(msn),
                uri: format!("s{msn}.m4s"),
                discontinuity: discontinuities.contains(&msn),
                map_uri: None,
                parts: (0..3).map(|i| part(msn, i)).collect(),
            })
            .collect();
        let open_msn = first_msn + count;
        MediaPlaylist {
            version: LL_HLS_VERSION,
            target_duration_s: 1,
            server_control: ServerControl {
                can_block_reload: true,
                part_hold_back_s: 1.0,
                hold_back_s: 3.0,
                can_skip_until_s: Some(6.0),
            },
            part_target_s: THIRD_S,
            media_sequence: first_msn,
            discontinuity_sequence,
            independent_segments: true,
            map_uri: "init.mp4".into(),
            segments,
            in_progress: Some(SegmentInProgress {
                msn: open_msn,
                program_date_time_unix_ms: pdt(open_msn),
                discontinuity: discontinuities.contains(&open_msn),
                map_uri: None,
                parts: (0..open_parts).map(|i| part(open_msn, i)).collect(),
            }),
            preload_hint: Some(PreloadHint {
                uri: format!("p{open_msn}.{open_parts}.m4s"),
            }),
        }
    }

    /// How a case is rendered.
    #[derive(Debug, Clone, Copy)]
    enum Render {
        LowLatency(Option<SkipRequest>),
        Standard,
    }

    struct Case {
        name: &'static str,
        playlist: MediaPlaylist,
        render: Render,
        want: &'static str,
    }

    /// The marshal table: one playlist, one way to render it, the exact text.
    fn media_cases() -> Vec<Case> {
        let mut first_parts = window(0, 0, 2, &[], 0);
        first_parts.server_control.can_skip_until_s = None;
        let standard = window(100, 7, 1, &[], 0);
        let mut delta_old_version = window(40, 10, 0, &[41, 47], 2);
        delta_old_version.version = 6;
        vec![
            Case {
                name: "live window: parts on the last three target durations, segment in progress",
                playlist: window(100, 7, 1, &[], 0),
                render: Render::LowLatency(None),
                want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXTINF:1.00000,
s100.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.123Z
#EXTINF:1.00000,
s101.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z
#EXTINF:1.00000,
s102.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.123Z
#EXTINF:1.00000,
s103.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.123Z
#EXTINF:1.00000,
s104.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p105.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p105.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p105.2.m4s\"
#EXTINF:1.00000,
s105.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p106.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p106.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p106.2.m4s\"
#EXTINF:1.00000,
s106.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:27.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p107.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p107.1.m4s\"
",
            },
            Case {
                name: "delta update skips the one segment older than the skip boundary",
                playlist: window(100, 7, 1, &[], 0),
                render: Render::LowLatency(Some(SkipRequest::Yes)),
                want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-SKIP:SKIPPED-SEGMENTS=1
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.123Z
#EXTINF:1.00000,
s101.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z
#EXTINF:1.00000,
s102.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.123Z
#EXTINF:1.00000,
s103.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.123Z
#EXTINF:1.00000,
s104.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p105.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p105.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p105.2.m4s\"
#EXTINF:1.00000,
s105.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p106.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p106.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p106.2.m4s\"
#EXTINF:1.00000,
s106.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:27.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p107.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p107.1.m4s\"
",
            },
            Case {
                name: "delta update over a discontinuity: sequence unchanged, version raised to 9",
                playlist: delta_old_version,
                render: Render::LowLatency(Some(SkipRequest::V2)),
                want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-SKIP:SKIPPED-SEGMENTS=4
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:24.123Z
#EXTINF:1.00000,
s44.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:25.123Z
#EXTINF:1.00000,
s45.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:26.123Z
#EXTINF:1.00000,
s46.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:27.123Z
#EXTINF:1.00000,
s47.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:28.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p48.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p48.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p48.2.m4s\"
#EXTINF:1.00000,
s48.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:29.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p49.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p49.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p49.2.m4s\"
#EXTINF:1.00000,
s49.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p50.0.m4s\"
",
            },
            Case {
                name: "first parts of a stream, before any segment is complete",
                playlist: first_parts.clone(),
                render: Render::LowLatency(None),
                want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p0.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p0.2.m4s\"
",
            },
            Case {
                name: "a delta request without a skip boundary gets the whole playlist",
                playlist: first_parts,
                render: Render::LowLatency(Some(SkipRequest::Yes)),
                want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p0.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p0.2.m4s\"
",
            },
            Case {
                name: "plain HLS: complete segments only, the version EXT-X-MAP needs",
                playlist: standard,
                render: Render::Standard,
                want: "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXTINF:1.00000,
s100.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.123Z
#EXTINF:1.00000,
s101.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z
#EXTINF:1.00000,
s102.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.123Z
#EXTINF:1.00000,
s103.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.123Z
#EXTINF:1.00000,
s104.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.123Z
#EXTINF:1.00000,
s105.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.123Z
#EXTINF:1.00000,
s106.m4s
",
            },
        ]
    }

    #[test]
    fn media_playlist_marshal_table() {
        for case in media_cases() {
            let got = match case.render {
                Render::LowLatency(delta) => case.playlist.render(delta),
                Render::Standard => case.playlist.render_standard(),
            };
            assert_eq!(got, case.want, "case {:?}", case.name);
            check_invariants(&case.playlist)
                .unwrap_or_else(|e| panic!("case {:?}: {e}", case.name));
            lint(&got).unwrap_or_else(|e| panic!("case {:?}: {e}", case.name));
        }
    }

    #[test]
    fn multivariant_marshal_table() {
        let cases = [
            (
                "one measured variant",
                MultivariantPlaylist {
                    independent_segments: true,
                    variants: vec![Variant {
                        bandwidth_bps: 2_500_000,
                        average_bandwidth_bps: Some(1_800_000),
                        codecs: "avc1.42e01f".into(),
                        resolution: (1280, 720),
                        frame_rate: 30_000.0 / 1001.0,
                        uri: "media.m3u8".into(),
                    }],
                },
                "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=1800000,CODECS=\"avc1.42e01f\",RESOLUTION=1280x720,FRAME-RATE=29.970
media.m3u8
",
            ),
            (
                "unknown values are left out; quotes and line breaks cannot escape",
                MultivariantPlaylist {
                    independent_segments: false,
                    variants: vec![
                        Variant {
                            bandwidth_bps: 1_000_000,
                            average_bandwidth_bps: None,
                            codecs: String::new(),
                            resolution: (0, 480),
                            frame_rate: f64::NAN,
                            uri: "a.m3u8".into(),
                        },
                        Variant {
                            bandwidth_bps: 500_000,
                            average_bandwidth_bps: None,
                            codecs: "avc1.\"64001f\r\n".into(),
                            resolution: (640, 360),
                            frame_rate: 15.0,
                            uri: "b.m3u8\n#EXT-X-ENDLIST".into(),
                        },
                    ],
                },
                "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-STREAM-INF:BANDWIDTH=1000000
a.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS=\"avc1.64001f\",RESOLUTION=640x360,FRAME-RATE=15.000
b.m3u8#EXT-X-ENDLIST
",
            ),
        ];
        for (name, playlist, want) in cases {
            assert_eq!(playlist.render(), want, "case {name:?}");
        }
    }

    #[test]
    fn program_date_time_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (BASE_PDT_UNIX_MS, "2023-11-14T22:13:20.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_164_799_999, "2024-02-28T23:59:59.999Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),
            (1_735_689_599_001, "2024-12-31T23:59:59.001Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for (unix_ms, want) in cases {
            assert_eq!(format_program_date_time(unix_ms), want, "{unix_ms}");
        }
        // Far beyond any clock: still a date, no overflow.
        assert!(format_program_date_time(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn civil_from_days_matches_counting_day_by_day() {
        // 1970-01-01 through 2369-12-31: 400 years cover every leap-year rule.
        let (mut year, mut month, mut day) = (1970u64, 1u64, 1u64);
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        for days in 0..146_097u64 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let month_len = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_len {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn delta_request_with_nothing_old_enough_is_the_whole_playlist() {
        // Six one-second segments and a six-second skip boundary: none starts more than six
        // seconds before the end.
        let playlist = window(0, 6, 2, &[], 0);
        assert_eq!(playlist.skippable_segments(), 0);
        assert_eq!(
            playlist.render(Some(SkipRequest::Yes)),
            playlist.render(None)
        );
        assert_eq!(
            playlist.render(Some(SkipRequest::No)),
            playlist.render(None)
        );
    }

    #[test]
    fn segment_just_completed_lists_no_open_parts_and_hints_part_zero() {
        let text = window(10, 6, 0, &[], 0).render(None);
        assert!(text.ends_with("s15.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p16.0.m4s\"\n"));
    }

    #[test]
    fn parts_more_than_three_target_durations_from_the_end_are_dropped() {
        // Segments of 1.4 s (EXTINF rounds to TD 1) in four parts of 0.35 s, two parts of the
        // next: the segment before the last starts 1.4 + 1.4 + 0.7 = 3.5 s from the end.
        let mut playlist = window(0, 6, 2, &[], 0);
        playlist.part_target_s = 0.35;
        playlist.server_control.part_hold_back_s = 1.05;
        let long_part = |uri: String, independent| Part {
            duration_s: 0.35,
            uri,
            independent,
        };
        for segment in &mut playlist.segments {
            segment.duration_s = 1.4;
            let msn = segment.msn;
            segment.program_date_time_unix_ms = BASE_PDT_UNIX_MS + 1400 * msn;
            segment.parts = (0..4)
                .map(|i| long_part(format!("p{msn}.{i}.m4s"), i == 0))
                .collect();
        }
        if let Some(open) = &mut playlist.in_progress {
            open.program_date_time_unix_ms = BASE_PDT_UNIX_MS + 1400 * 6;
            open.parts = (0..2)
                .map(|i| long_part(format!("p6.{i}.m4s"), i == 0))
                .collect();
        }
        check_invariants(&playlist).unwrap();
        let text = playlist.render(None);
        assert!(!text.contains("p4.0.m4s"), "{text}");
        assert!(
            text.contains("p5.3.m4s\"\n#EXTINF:1.40000,\ns5.m4s\n"),
            "{text}"
        );
        assert!(text.contains("p6.1.m4s"), "{text}");
        lint(&text).unwrap();
    }

    #[test]
    fn minimum_server_control_passes_the_checks_for_common_part_targets() {
        for fps in [15.0, 24.0, 25.0, 30_000.0 / 1001.0, 30.0, 50.0, 60.0] {
            for frames in 1..=30u32 {
                let part_target_s = f64::from(frames) / fps;
                if part_target_s > 1.0 {
                    continue;
                }
                let mut playlist = window(0, 6, 0, &[], 0);
                playlist.part_target_s = part_target_s;
                for segment in &mut playlist.segments {
                    segment.parts.clear();
                }
                playlist.server_control = ServerControl::minimums(1, part_target_s);
                check_invariants(&playlist)
                    .unwrap_or_else(|e| panic!("{frames} frames at {fps} fps: {e}"));
            }
        }
    }

    #[test]
    fn check_invariants_names_each_broken_rule() {
        type Break = fn(&mut MediaPlaylist);
        let cases: [(&str, Break, &str); 16] = [
            (
                "target 0",
                |p| p.target_duration_s = 0,
                "TARGETDURATION is 0",
            ),
            (
                "EXTINF rounds above TD",
                |p| p.segments[2].duration_s = 1.5,
                "rounds above TARGETDURATION",
            ),
            (
                "part longer than PART-TARGET",
                |p| p.segments[5].parts[1].duration_s = 0.334,
                "exceeds PART-TARGET",
            ),
            (
                "short part in the middle",
                |p| p.segments[5].parts[1].duration_s = 0.2,
                "under 85 %",
            ),
            (
                "short part in progress",
                |p| {
                    if let Some(open) = &mut p.in_progress {
                        open.parts[0].duration_s = 0.1;
                    }
                },
                "under 85 %",
            ),
            (
                "PART-HOLD-BACK too small",
                |p| p.server_control.part_hold_back_s = 0.9,
                "PART-HOLD-BACK",
            ),
            (
                "HOLD-BACK too small",
                |p| p.server_control.hold_back_s = 2.5,
                "HOLD-BACK 2.5",
            ),
            (
                "CAN-SKIP-UNTIL too small",
                |p| p.server_control.can_skip_until_s = Some(5.0),
                "CAN-SKIP-UNTIL",
            ),
            ("msn gap", |p| p.segments[3].msn += 1, "not consecutive"),
            (
                "media sequence disagrees",
                |p| p.media_sequence = 7,
                "EXT-X-MEDIA-SEQUENCE is 7",
            ),
            (
                "too few segments once some were removed",
                |p| {
                    p.segments.truncate(5);
                    p.in_progress = None;
                },
                "at least 6",
            ),
            (
                "no preload hint",
                |p| p.preload_hint = None,
                "no EXT-X-PRELOAD-HINT",
            ),
            (
                "segment not starting independent",
                |p| p.segments[4].parts[0].independent = false,
                "not INDEPENDENT",
            ),
            (
                "URI with a line break",
                |p| p.segments[0].uri = "a\nb".into(),
                "line break",
            ),
            (
                "date going back without a discontinuity",
                |p| p.segments[3].program_date_time_unix_ms -= 5000,
                "goes back",
            ),
            (
                "segment in progress with the wrong msn",
                |p| {
                    if let Some(open) = &mut p.in_progress {
                        open.msn += 1;
                    }
                },
                "in progress has msn",
            ),
        ];
        check_invariants(&window(100, 7, 1, &[], 0)).unwrap();
        for (name, break_it, want) in cases {
            let mut playlist = window(100, 7, 1, &[], 0);
            break_it(&mut playlist);
            let err = check_invariants(&playlist).expect_err(name);
            assert!(err.contains(want), "case {name:?}: {err}");
        }
    }

    #[test]
    fn check_update_names_each_broken_rule() {
        type Break = fn(&mut MediaPlaylist);
        let cases: [(&str, Break, &str); 5] = [
            (
                "TD changes",
                |p| p.target_duration_s = 2,
                "TARGETDURATION changed",
            ),
            (
                "PART-TARGET changes",
                |p| p.part_target_s = 0.3,
                "PART-TARGET changed",
            ),
            (
                "a segment changes",
                |p| p.segments[4].uri = "other.m4s".into(),
                "segment 105 changed",
            ),
            (
                "discontinuity sequence not raised",
                |p| p.discontinuity_sequence = 0,
                "EXT-X-DISCONTINUITY-SEQUENCE is 0",
            ),
            (
                "media sequence goes back",
                |p| p.media_sequence = 99,
                "went back",
            ),
        ];
        // The previous window holds a discontinuity at 100 that leaves with segment 100.
        let previous = window(100, 7, 1, &[100], 3);
        let mut good = window(100, 7, 1, &[100], 3);
        good.segments.remove(0);
        good.media_sequence = 101;
        good.discontinuity_sequence = 4;
        check_update(&previous, &good).unwrap();
        for (name, break_it, want) in cases {
            let mut next = good.clone();
            break_it(&mut next);
            let err = check_update(&previous, &next).expect_err(name);
            assert!(err.contains(want), "case {name:?}: {err}");
        }
    }

    #[test]
    fn garbage_values_render_without_panicking() {
        let mut playlist = window(u64::MAX - 7, 7, 1, &[], 0);
        playlist.target_duration_s = u64::MAX;
        playlist.part_target_s = f64::NAN;
        playlist.server_control.can_skip_until_s = Some(f64::INFINITY);
        playlist.segments[0].duration_s = -1.0;
        playlist.segments[1].duration_s = f64::MAX;
        playlist.segments[1].program_date_time_unix_ms = u64::MAX;
        for delta in [None, Some(SkipRequest::Yes)] {
            assert!(playlist.render(delta).starts_with("#EXTM3U\n"));
        }
        assert!(playlist.render_standard().starts_with("#EXTM3U\n"));
        assert!(check_invariants(&playlist).is_err());
    }

    // ---- Text-level checks: what a client reads back -------------------------------------

    /// One segment as read back from playlist text.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct ReadSegment {
        pub discontinuity: bool,
        pub program_date_time: Option<String>,
        pub parts: Vec<(f64, String, bool)>,
        pub extinf_s: f64,
        pub uri: String,
    }

    /// A media playlist as read back from its text.
    #[derive(Debug, Default)]
    pub(crate) struct ReadPlaylist {
        pub version: u64,
        pub target_duration_s: u64,
        pub part_target_s: Option<f64>,
        pub server_control: String,
        pub media_sequence: u64,
        pub discontinuity_sequence: u64,
        pub skipped: u64,
        pub segments: Vec<ReadSegment>,
        pub open_parts: Vec<(f64, String, bool)>,
        pub hint: Option<String>,
    }

    fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
        attributes.split(',').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then_some(value)
        })
    }

    fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
        text.parse().map_err(|_| format!("not a number: {text:?}"))
    }

    /// Reads playlist text back and checks the rules a client can see: one preload hint and
    /// last, a date on every segment, EXTINF and part bounds, parts only near the end, the
    /// version EXT-X-SKIP needs, MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE before EXT-X-SKIP.
    pub(crate) fn lint(text: &str) -> Result<ReadPlaylist, String> {
        let mut lines = text.lines();
        if lines.next() != Some("#EXTM3U") {
            return Err("does not start with #EXTM3U".into());
        }
        let mut read = ReadPlaylist::default();
        let (mut discontinuity, mut pdt, mut parts, mut extinf) = (false, None, Vec::new(), None);
        let mut seen_sequence = false;
        for line in lines {
            if read.hint.is_some() {
                return Err(format!("{line:?} after EXT-X-PRELOAD-HINT"));
            }
            let (tag, value) = line.split_once(':').unwrap_or((line, ""));
            match tag {
                "#EXT-X-VERSION" => read.version = number(value)?,
                "#EXT-X-INDEPENDENT-SEGMENTS" => {}
                "#EXT-X-TARGETDURATION" => read.target_duration_s = number(value)?,
                "#EXT-X-SERVER-CONTROL" => read.server_control = value.into(),
                "#EXT-X-PART-INF" => {
                    read.part_target_s = Some(number(
                        attribute(value, "PART-TARGET").ok_or("PART-INF without PART-TARGET")?,
                    )?)
                }
                "#EXT-X-MEDIA-SEQUENCE" => read.media_sequence = number(value)?,
                "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                    read.discontinuity_sequence = number(value)?;
                    seen_sequence = true;
                }
                "#EXT-X-MAP" => {}
                "#EXT-X-SKIP" => {
                    if !seen_sequence || !read.segments.is_empty() {
                        return Err("EXT-X-SKIP misplaced".into());
                    }
                    read.skipped = number(
                        attribute(value, "SKIPPED-SEGMENTS").ok_or("SKIP without a count")?,
                    )?;
                }
                "#EXT-X-DISCONTINUITY" => discontinuity = true,
                "#EXT-X-PROGRAM-DATE-TIME" => pdt = Some(value.to_string()),
                "#EXT-X-PART" => {
                    let duration = number(attribute(value, "DURATION").ok_or("no DURATION")?)?;
                    let uri = attribute(value, "URI").ok_or("no URI")?.trim_matches('"');
                    let independent = attribute(value, "INDEPENDENT") == Some("YES");
                    parts.push((duration, uri.to_string(), independent));
                }
                "#EXTINF" => extinf = Some(number::<f64>(value.trim_end_matches(','))?),
                "#EXT-X-PRELOAD-HINT" => {
                    if attribute(value, "TYPE") != Some("PART") {
                        return Err("hint is not TYPE=PART".into());
                    }
                    read.hint = Some(attribute(value, "URI").ok_or("no URI")?.into());
                }
                uri if !uri.starts_with('#') => {
                    let extinf_s = extinf.take().ok_or("URI line without EXTINF")?;
                    read.segments.push(ReadSegment {
                        discontinuity: std::mem::take(&mut discontinuity),
                        program_date_time: pdt.take(),
                        parts: std::mem::take(&mut parts),
                        extinf_s,
                        uri: uri.into(),
                    });
                }
                other => return Err(format!("unexpected tag {other:?}")),
            }
        }
        read.open_parts = parts;

        if read.version < u64::from(MAP_MIN_VERSION) {
            return Err(format!("version {} with EXT-X-MAP", read.version));
        }
        if read.skipped > 0 && read.version < u64::from(SKIP_MIN_VERSION) {
            return Err(format!("version {} with EXT-X-SKIP", read.version));
        }
        let target_s = read.target_duration_s as f64;
        for segment in &read.segments {
            if segment.program_date_time.is_none() {
                return Err(format!("{} has no PROGRAM-DATE-TIME", segment.uri));
            }
            if segment.extinf_s.round() > target_s {
                return Err(format!("{} EXTINF above TARGETDURATION", segment.uri));
            }
        }
        let all_parts = read
            .segments
            .iter()
            .flat_map(|s| &s.parts)
            .chain(&read.open_parts);
        match read.part_target_s {
            None if all_parts.clone().next().is_some() || read.hint.is_some() => {
                return Err("parts or hint without EXT-X-PART-INF".into());
            }
            None => {}
            Some(part_target_s) => {
                if read.hint.is_none() {
                    return Err("no EXT-X-PRELOAD-HINT".into());
                }
                if let Some(part) = all_parts.clone().find(|p| p.0 > part_target_s) {
                    return Err(format!("part {} longer than PART-TARGET", part.1));
                }
            }
        }
        let open = !read.open_parts.is_empty() || read.hint.is_some();
        let with_parts =
            read.segments.iter().filter(|s| !s.parts.is_empty()).count() + usize::from(open);
        if with_parts > MAX_SEGMENTS_WITH_PARTS {
            return Err(format!("{with_parts} segments list parts"));
        }
        // Parts only on segments that start within 3 x TD of the end (rfc8216bis §6.2.2).
        let mut from_end_s: f64 = read.open_parts.iter().map(|p| p.0).sum();
        for segment in read.segments.iter().rev() {
            from_end_s += segment.extinf_s;
            if !segment.parts.is_empty() && from_end_s > 3.0 * target_s + 1e-4 {
                return Err(format!(
                    "{} lists parts {from_end_s} s from the end",
                    segment.uri
                ));
            }
        }
        Ok(read)
    }

    // ---- A simulated live window -----------------------------------------------------------

    /// 90 kHz ticks per second.
    const TICKS_PER_S: u64 = 90_000;
    /// PART-TARGET: ten frames at 30 fps.
    pub(crate) const SIM_PART_TARGET_TICKS: u64 = 30_000;
    /// At most six parts per segment: 2 s, so TARGETDURATION 2.
    pub(crate) const SIM_MAX_PARTS: u64 = 6;
    const SIM_TARGET_DURATION_S: u64 = 2;

    /// A segmenter stand-in: frames of 2900..=3000 ticks (jittery 30 fps), parts cut before
    /// PART-TARGET would be exceeded, segments of 3 to 6 parts whose last part may be short,
    /// a discontinuity (with a jump of the wall clock) now and then, and a window of `retain`
    /// complete segments.
    pub(crate) struct LiveSim {
        rng: u64,
        retain: usize,
        ticks: u64,
        pdt_jump_ms: u64,
        media_sequence: u64,
        discontinuity_sequence: u64,
        segments: Vec<Segment>,
        open: SegmentInProgress,
        open_start_ticks: u64,
        open_part_count: u64,
    }

    impl LiveSim {
        pub(crate) fn new(seed: u64, retain: usize) -> Self {
            let mut sim = Self {
                rng: seed | 1,
                retain,
                ticks: 0,
                pdt_jump_ms: 0,
                media_sequence: 0,
                discontinuity_sequence: 0,
                segments: Vec::new(),
                open: SegmentInProgress {
                    msn: 0,
                    program_date_time_unix_ms: BASE_PDT_UNIX_MS,
                    discontinuity: false,
                    map_uri: None,
                    parts: Vec::new(),
                },
                open_start_ticks: 0,
                open_part_count: 0,
            };
            sim.open_part_count = 3 + sim.random(4);
            sim
        }

        /// xorshift64: a fixed sequence per seed, no dependency.
        fn random(&mut self, below: u64) -> u64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng % below
        }

        fn pdt_ms(&self, ticks: u64) -> u64 {
            BASE_PDT_UNIX_MS + ticks * 1000 / TICKS_PER_S + self.pdt_jump_ms
        }

        /// Publishes the next part and returns the playlist that lists it.
        pub(crate) fn step(&mut self) -> MediaPlaylist {
            let index = self.open.parts.len() as u64;
            let last_of_segment = index + 1 == self.open_part_count;
            let frame_limit = if last_of_segment {
                1 + self.random(10)
            } else {
                u64::MAX
            };
            let (mut part_ticks, mut frames) = (0, 0);
            while frames < frame_limit {
                let frame_ticks = 2900 + self.random(101);
                if part_ticks + frame_ticks > SIM_PART_TARGET_TICKS {
                    break;
                }
                part_ticks += frame_ticks;
                frames += 1;
            }
            self.ticks += part_ticks;
            let msn = self.open.msn;
            self.open.parts.push(Part {
                duration_s: part_ticks as f64 / TICKS_PER_S as f64,
                uri: format!("p{msn}.{index}.m4s"),
                independent: index == 0,
            });
            if last_of_segment {
                self.close_segment();
            }
            self.playlist()
        }

        fn close_segment(&mut self) {
            let discontinuity = self.random(40) == 0;
            if discontinuity {
                self.pdt_jump_ms += 1000 + self.random(60_000);
            }
            let next = SegmentInProgress {
                msn: self.open.msn + 1,
                program_date_time_unix_ms: self.pdt_ms(self.ticks),
                discontinuity,
                map_uri: None,
                parts: Vec::new(),
            };
            let done = std::mem::replace(&mut self.open, next);
            self.segments.push(Segment {
                msn: done.msn,
                duration_s: (self.ticks - self.open_start_ticks) as f64 / TICKS_PER_S as f64,
                program_date_time_unix_ms: done.program_date_time_unix_ms,
                uri: format!("s{}.m4s", done.msn),
                discontinuity: done.discontinuity,
                map_uri: None,
                parts: done.parts,
            });
            self.open_start_ticks = self.ticks;
            self.open_part_count = 3 + self.random(4);
            while self.segments.len() > self.retain {
                let removed = self.segments.remove(0);
                self.media_sequence = removed.msn + 1;
                self.discontinuity_sequence += u64::from(removed.discontinuity);
            }
        }

        fn playlist(&self) -> MediaPlaylist {
            let part_target_s = SIM_PART_TARGET_TICKS as f64 / TICKS_PER_S as f64;
            MediaPlaylist {
                version: LL_HLS_VERSION,
                target_duration_s: SIM_TARGET_DURATION_S,
                server_control: ServerControl::minimums(SIM_TARGET_DURATION_S, part_target_s),
                part_target_s,
                media_sequence: self.segments.first().map_or(self.open.msn, |s| s.msn),
                discontinuity_sequence: self.discontinuity_sequence,
                independent_segments: true,
                map_uri: "init.mp4".into(),
                segments: self.segments.clone(),
                in_progress: Some(self.open.clone()),
                preload_hint: Some(PreloadHint {
                    uri: format!("p{}.{}.m4s", self.open.msn, self.open.parts.len()),
                }),
            }
        }
    }

    /// A segment without its parts: URI, EXTINF, PROGRAM-DATE-TIME, discontinuity.
    type SegmentLine = (String, f64, Option<String>, bool);

    /// The segments (without parts) a client holds after applying `delta` to `previous`.
    fn apply_delta(
        previous: &ReadPlaylist,
        delta: &ReadPlaylist,
    ) -> Result<Vec<SegmentLine>, String> {
        let strip = |s: &ReadSegment| {
            (
                s.uri.clone(),
                s.extinf_s,
                s.program_date_time.clone(),
                s.discontinuity,
            )
        };
        let mut merged = Vec::new();
        for msn in delta.media_sequence..delta.media_sequence + delta.skipped {
            let index = msn
                .checked_sub(previous.media_sequence)
                .ok_or("skipped a segment the client never had")?;
            let segment = previous
                .segments
                .get(index as usize)
                .ok_or("skipped a segment the client never had")?;
            merged.push(strip(segment));
        }
        merged.extend(delta.segments.iter().map(strip));
        Ok(merged)
    }

    #[test]
    fn invariants_hold_over_a_simulated_live_window() {
        let mut deltas_with_skip = 0;
        let mut discontinuities_skipped = 0;
        for (seed, retain) in [(1, 14), (0x9e37_79b9, 6), (42, 20)] {
            let mut sim = LiveSim::new(seed, retain);
            let mut previous: Option<(MediaPlaylist, ReadPlaylist)> = None;
            // About 450 segments per seed.
            for step in 0..2000 {
                let playlist = sim.step();
                let at = format!("seed {seed} step {step}");
                check_invariants(&playlist).unwrap_or_else(|e| panic!("{at}: {e}"));
                let full_text = playlist.render(None);
                let full = lint(&full_text).unwrap_or_else(|e| panic!("{at}: {e}\n{full_text}"));
                assert_eq!(full.segments.len(), playlist.segments.len(), "{at}");
                assert_eq!(full.skipped, 0, "{at}");

                let standard_text = playlist.render_standard();
                let standard = lint(&standard_text).unwrap_or_else(|e| panic!("{at}: {e}"));
                for ll_only in [
                    "#EXT-X-PART",
                    "PRELOAD-HINT",
                    "#EXT-X-SKIP",
                    "SERVER-CONTROL",
                ] {
                    assert!(!standard_text.contains(ll_only), "{at}: {ll_only}");
                }
                assert_eq!(standard.segments.len(), full.segments.len(), "{at}");

                let delta_text = playlist.render(Some(SkipRequest::Yes));
                let delta = lint(&delta_text).unwrap_or_else(|e| panic!("{at}: {e}"));
                let skipped = playlist.skippable_segments();
                assert_eq!(delta.skipped, skipped as u64, "{at}");
                assert_eq!(delta.media_sequence, full.media_sequence, "{at}");
                assert_eq!(
                    delta.discontinuity_sequence, full.discontinuity_sequence,
                    "{at}"
                );
                if skipped > 0 {
                    deltas_with_skip += 1;
                    discontinuities_skipped += playlist.segments[..skipped]
                        .iter()
                        .filter(|s| s.discontinuity)
                        .count();
                    assert!(delta.version >= 9, "{at}");
                    assert!(delta.segments[0].program_date_time.is_some(), "{at}");
                    // Skipped: starts more than CAN-SKIP-UNTIL before the end; kept: not.
                    let until_s = written(playlist.server_control.can_skip_until_s.unwrap());
                    let from_end_s = |index: usize| -> f64 {
                        full.segments[index..].iter().map(|s| s.extinf_s).sum()
                    };
                    assert!(from_end_s(skipped - 1) > until_s, "{at}");
                    assert!(from_end_s(skipped) <= until_s + 1e-4, "{at}");
                }
                if let Some((previous_playlist, previous_full)) = &previous {
                    check_update(previous_playlist, &playlist)
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    let merged =
                        apply_delta(previous_full, &delta).unwrap_or_else(|e| panic!("{at}: {e}"));
                    let want: Vec<_> = full
                        .segments
                        .iter()
                        .map(|s| {
                            (
                                s.uri.clone(),
                                s.extinf_s,
                                s.program_date_time.clone(),
                                s.discontinuity,
                            )
                        })
                        .collect();
                    assert_eq!(merged, want, "{at}");
                }
                previous = Some((playlist, full));
            }
        }
        assert!(deltas_with_skip > 1000, "{deltas_with_skip}");
        assert!(discontinuities_skipped > 0);
    }
}
