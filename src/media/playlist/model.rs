//! The typed playlists: one struct per playlist kind, each field commented with the tag it
//! writes. Durations are whole ticks of the 90 kHz media clock, the clock the segments'
//! timestamps run on, so that the window arithmetic is exact; rendering writes them as decimal
//! seconds ([`super::render`]).

use crate::frame::CLOCK_90K;

/// The protocol version of Low-Latency media playlists: Playlist Delta Updates (EXT-X-SKIP)
/// need version 9 (rfc8216bis §7), and declaring it on the full playlists too keeps one
/// version across every reload.
pub const LL_HLS_VERSION: u8 = 9;

/// A live media playlist keeps at least this many segments once it starts removing old ones.
/// RFC 8216 §6.2.2 only forbids going under three target durations; the design notes ask for
/// six segments, so that a client starting three target durations back (RFC 8216 §6.3.3)
/// still finds older segments to fall back on.
pub const MIN_LIVE_SEGMENTS: usize = 6;

/// HOLD-BACK is at least three target durations (rfc8216bis §4.4.3.8).
pub(super) const HOLD_BACK_TARGET_DURATIONS: u64 = 3;

/// PART-HOLD-BACK must be at least twice PART-TARGET and should be three times
/// (rfc8216bis §4.4.3.8); framecast keeps the SHOULD.
pub(super) const PART_HOLD_BACK_PART_TARGETS: u64 = 3;

/// CAN-SKIP-UNTIL, the Skip Boundary, is at least six target durations (rfc8216bis §4.4.3.8).
pub(super) const SKIP_BOUNDARY_TARGET_DURATIONS: u64 = 6;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultivariantPlaylist {
    /// EXT-X-INDEPENDENT-SEGMENTS (§4.4.2.1): every segment starts with an IDR.
    pub independent_segments: bool,
    /// One EXT-X-STREAM-INF tag and URI line each (§4.4.6.2).
    pub variants: Vec<Variant>,
}

/// One variant stream: an EXT-X-STREAM-INF tag and the URI of its media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// BANDWIDTH: peak segment bit rate, bits per second (§4.4.6.2, required).
    pub bandwidth_bps: u64,
    /// AVERAGE-BANDWIDTH, bits per second; `None` until it has been measured.
    pub average_bandwidth_bps: Option<u64>,
    /// CODECS, an RFC 6381 list such as `avc1.42e01f` (quoted-string); omitted when empty.
    pub codecs: String,
    /// RESOLUTION as (width, height) in pixels; omitted when either is 0.
    pub resolution: (u32, u32),
    /// FRAME-RATE in thousandths of a frame per second: the tag carries three decimals
    /// (§4.4.6.2), so this is exactly what is written; omitted when 0.
    pub frame_rate_millihertz: u64,
    /// The URI line: this variant's media playlist.
    pub uri: String,
}

impl Variant {
    /// FRAME-RATE for a rate in frames per second, rounded to the three decimals the tag has.
    pub fn frame_rate_millihertz_of(fps: f64) -> u64 {
        // `as` saturates: NaN and negatives become 0 (omitted).
        (fps * 1000.0).round() as u64
    }
}

/// A live media playlist: the window of segments the store holds, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// EXT-X-PART-INF:PART-TARGET, 90 kHz ticks: every part lasts at most this (§4.4.3.7,
    /// §4.4.4.9).
    pub part_target_90k: u64,
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

impl MediaPlaylist {
    /// PART-TARGET in seconds, for display (`/status`); the rules work on ticks.
    pub fn part_target_s(&self) -> f64 {
        seconds_of_90k(self.part_target_90k)
    }
}

/// The attributes of EXT-X-SERVER-CONTROL (rfc8216bis §4.4.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerControl {
    /// CAN-BLOCK-RELOAD=YES: `_HLS_msn`/`_HLS_part` requests are held (§6.2.5.2).
    pub can_block_reload: bool,
    /// PART-HOLD-BACK, 90 kHz ticks: how far behind the end a low-latency client plays.
    pub part_hold_back_90k: u64,
    /// HOLD-BACK, 90 kHz ticks: how far behind the end a client plays whole segments.
    pub hold_back_90k: u64,
    /// CAN-SKIP-UNTIL, 90 kHz ticks: the Skip Boundary of delta updates; `None` offers none.
    pub can_skip_until_90k: Option<u64>,
}

impl ServerControl {
    /// PART-HOLD-BACK and HOLD-BACK in seconds, for display (`/status`).
    pub fn hold_backs_s(&self) -> (f64, f64) {
        (
            seconds_of_90k(self.part_hold_back_90k),
            seconds_of_90k(self.hold_back_90k),
        )
    }

    /// The smallest values the rules allow for a stream's target durations: HOLD-BACK 3 × TD,
    /// PART-HOLD-BACK 3 × PART-TARGET, CAN-SKIP-UNTIL 6 × TD, blocking reload on.
    pub fn minimums(target_duration_s: u64, part_target_90k: u64) -> Self {
        let target_90k = target_duration_s.saturating_mul(CLOCK_90K);
        Self {
            can_block_reload: true,
            part_hold_back_90k: part_target_90k.saturating_mul(PART_HOLD_BACK_PART_TARGETS),
            hold_back_90k: target_90k.saturating_mul(HOLD_BACK_TARGET_DURATIONS),
            can_skip_until_90k: Some(target_90k.saturating_mul(SKIP_BOUNDARY_TARGET_DURATIONS)),
        }
    }
}

/// One complete media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media Sequence Number. Not written: implied by EXT-X-MEDIA-SEQUENCE and the position
    /// (rfc8216bis §3), kept here so the window can be checked.
    pub msn: u64,
    /// EXTINF duration, 90 kHz ticks (§4.4.4.1).
    pub duration_90k: u64,
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// DURATION, 90 kHz ticks.
    pub duration_90k: u64,
    /// URI (quoted-string).
    pub uri: String,
    /// INDEPENDENT=YES: the part starts with an IDR.
    pub independent: bool,
}

/// EXT-X-PRELOAD-HINT:TYPE=PART (rfc8216bis §4.4.5.3): the next part, requested before it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloadHint {
    /// URI (quoted-string) of the part being written.
    pub uri: String,
}

/// Seconds of a tick count, for display only.
pub(super) fn seconds_of_90k(ticks: u64) -> f64 {
    ticks as f64 / CLOCK_90K as f64
}
