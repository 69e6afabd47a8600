//! Playlist text from the typed model: tag syntax and placement (RFC 8216, rfc8216bis,
//! Apple's HLS authoring specification). Durations are written as decimal seconds with
//! [`DURATION_DECIMALS`] decimals, computed from the 90 kHz ticks with integers only.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::model::{MediaPlaylist, MultivariantPlaylist, Part, SkipRequest, Variant};
use crate::frame::CLOCK_90K;

/// EXT-X-MAP in a media playlist without EXT-X-I-FRAMES-ONLY needs version 6 (RFC 8216 §7).
pub(super) const MAP_MIN_VERSION: u8 = 6;

/// The multivariant playlist's own tags need no version, its media (fMP4, EXT-X-MAP) needs 6.
/// Declaring no more lets players that predate Low-Latency HLS and check the version accept
/// the presentation; Low-Latency clients find LL features in the media playlist's tags, not in
/// this number.
pub(super) const MULTIVARIANT_VERSION: u8 = MAP_MIN_VERSION;

/// EXT-X-SKIP needs version 9 (rfc8216bis §4.4.5.2, §7).
pub(super) const SKIP_MIN_VERSION: u8 = 9;

/// Decimals of every duration attribute. Five decimals is 10 µs, finer than one 90 kHz tick
/// (11.1 µs): a written duration reads back as exactly the ticks it was written from, and an
/// EXTINF rounded to the nearest integer never crosses TARGETDURATION by rounding alone
/// (rfc8216bis §4.4.3.1).
pub const DURATION_DECIMALS: usize = 5;

/// 10^[`DURATION_DECIMALS`]: written units per second.
const DURATION_UNITS_PER_S: u128 = 100_000;

/// Parts are listed only for segments that start within this many target durations of the
/// end of the playlist: EXT-X-PART tags should be removed once they are more than three target
/// durations from the end (rfc8216bis §6.2.2). Whole segments are kept or dropped, so the part
/// indexes a client counts in a segment are always complete.
pub(super) const PART_LISTING_TARGET_DURATIONS: u64 = 3;

/// At most this many segments list parts, counting the one in progress, which always carries
/// at least the preload hint. With segments of about one target duration the rule above gives
/// no more anyway; the cap also holds for shorter segments, for validators that read the rule
/// as "the last three segments" (the `hls-parser` npm package rejects parts on any earlier
/// one, and counts the preload hint as a segment).
pub(super) const MAX_SEGMENTS_WITH_PARTS: usize = 3;

/// Which tags a media playlist carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    /// Parts, preload hint, PART-INF and SERVER-CONTROL.
    LowLatency,
    /// Plain HLS: complete segments only.
    Standard,
}

/// Where a delta update's EXT-X-SKIP stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Skip {
    /// SKIPPED-SEGMENTS written; 0 writes no EXT-X-SKIP.
    pub tag_count: u64,
    /// How many of the model's oldest segments are left out of the text.
    pub omitted: usize,
}

impl Skip {
    pub(super) const NONE: Skip = Skip {
        tag_count: 0,
        omitted: 0,
    };
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
        if self.frame_rate_millihertz > 0 {
            // "rounded to three decimal places" (§4.4.6.2).
            let _ = write!(
                out,
                ",FRAME-RATE={}.{:03}",
                self.frame_rate_millihertz / 1000,
                self.frame_rate_millihertz % 1000
            );
        }
        out.push('\n');
        push_uri_line(out, &self.uri);
    }
}

impl MediaPlaylist {
    /// The Low-Latency playlist text. With `Some(SkipRequest::Yes | SkipRequest::V2)` and a
    /// Skip Boundary in [`super::ServerControl::can_skip_until_90k`], the oldest segments that
    /// start more than the Skip Boundary before the end are replaced by one EXT-X-SKIP tag (a
    /// Playlist Delta Update, rfc8216bis §6.2.5.1). When nothing can be skipped the whole
    /// playlist is written: the client gets what a server that ignores the directive would send.
    pub fn render(&self, delta: Option<SkipRequest>) -> String {
        let skipped = match delta {
            Some(SkipRequest::Yes | SkipRequest::V2) => self.skippable_segments(),
            Some(SkipRequest::No) | None => 0,
        };
        self.write(
            Flavor::LowLatency,
            Skip {
                tag_count: skipped as u64,
                omitted: skipped,
            },
        )
    }

    /// The same window as plain HLS (RFC 8216), for clients that do not want Low-Latency HLS:
    /// no SERVER-CONTROL, PART-INF, parts, preload hint or segment in progress, and the lowest
    /// EXT-X-VERSION its tags allow, for players that refuse versions they do not know.
    /// SERVER-CONTROL goes too because validators take it as a claim of Low-Latency HLS
    /// (`hls-parser` then demands CAN-BLOCK-RELOAD), and without HOLD-BACK clients start three
    /// target durations back (RFC 8216 §6.3.3), which is what it would say.
    pub fn render_standard(&self) -> String {
        self.write(Flavor::Standard, Skip::NONE)
    }

    /// How many of the oldest segments a delta update replaces by EXT-X-SKIP: those that start
    /// more than CAN-SKIP-UNTIL before the end of the last complete segment (rfc8216bis
    /// §6.2.5.1, §4.4.5.2). Measuring from the last complete segment rather than the last part
    /// never skips more than either reading of "the end of the Playlist" allows.
    pub fn skippable_segments(&self) -> usize {
        let Some(skip_boundary_90k) = self.server_control.can_skip_until_90k else {
            return 0;
        };
        if skip_boundary_90k == 0 {
            return 0;
        }
        let end_90k = self
            .segments
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.duration_90k));
        let mut start_90k = 0u64;
        let mut skipped = 0;
        for segment in &self.segments {
            if end_90k.saturating_sub(start_90k) <= skip_boundary_90k {
                break;
            }
            skipped += 1;
            start_90k = start_90k.saturating_add(segment.duration_90k);
        }
        skipped
    }

    /// Index of the first complete segment whose parts are listed: segments that start within
    /// three target durations of the end of the playlist, the end being that of the last
    /// published part (rfc8216bis §6.2.2), and no more than [`MAX_SEGMENTS_WITH_PARTS`].
    pub fn first_segment_with_parts(&self) -> usize {
        let complete_90k = self
            .segments
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.duration_90k));
        let open_90k = self
            .in_progress
            .iter()
            .flat_map(|s| &s.parts)
            .fold(0u64, |sum, p| sum.saturating_add(p.duration_90k));
        let window_90k = self
            .target_duration_s
            .saturating_mul(PART_LISTING_TARGET_DURATIONS)
            .saturating_mul(CLOCK_90K);
        let from_90k = complete_90k
            .saturating_add(open_90k)
            .saturating_sub(window_90k);
        let mut start_90k = 0u64;
        let by_time = self
            .segments
            .iter()
            .position(|segment| {
                let starts_in_window = start_90k >= from_90k;
                start_90k = start_90k.saturating_add(segment.duration_90k);
                starts_in_window
            })
            .unwrap_or(self.segments.len());
        let by_count = self
            .segments
            .len()
            .saturating_sub(MAX_SEGMENTS_WITH_PARTS - 1);
        by_time.max(by_count)
    }

    /// The model as a client reads it back from [`MediaPlaylist::render`]`(None)`: parts only
    /// where they are listed, no segment in progress without parts, the version raised to what
    /// the tags need.
    pub fn as_listed(&self) -> MediaPlaylist {
        let mut listed = self.clone();
        let first_with_parts = self.first_segment_with_parts();
        for segment in &mut listed.segments[..first_with_parts] {
            segment.parts.clear();
        }
        listed.in_progress = listed.in_progress.filter(|s| !s.parts.is_empty());
        listed.version = listed.version.max(MAP_MIN_VERSION);
        listed
    }

    pub(super) fn write(&self, flavor: Flavor, skip: Skip) -> String {
        let low_latency = flavor == Flavor::LowLatency;
        let mut out = String::with_capacity(128 + 160 * self.segments.len());
        // §4.4.1.1: the first line of every playlist.
        out.push_str("#EXTM3U\n");
        let version = match flavor {
            Flavor::Standard => MAP_MIN_VERSION,
            Flavor::LowLatency if skip.tag_count > 0 => self.version.max(SKIP_MIN_VERSION),
            Flavor::LowLatency => self.version.max(MAP_MIN_VERSION),
        };
        // §4.4.1.2.
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        if self.independent_segments {
            // §4.4.2.1.
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        // §4.4.3.1.
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration_s);
        if low_latency {
            self.write_server_control(&mut out);
            // §4.4.3.7.
            out.push_str("#EXT-X-PART-INF:PART-TARGET=");
            push_duration(&mut out, self.part_target_90k);
            out.push('\n');
        }
        // §4.4.3.2.
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        // §4.4.3.3. Always, and before EXT-X-SKIP: hls.js refuses it after EXT-X-SKIP ("must
        // appear before the first Media Segment", hls.js issue 7554). It counts the
        // discontinuities before the first segment of the whole playlist, skipped or not.
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence
        );
        // §4.4.4.5.
        out.push_str("#EXT-X-MAP:URI=");
        push_quoted(&mut out, &self.map_uri);
        out.push('\n');
        if skip.tag_count > 0 {
            // §4.4.5.2: replaces the skipped segments' URI lines and all their tags.
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={}", skip.tag_count);
        }

        let first_with_parts = self.first_segment_with_parts();
        let mut current_map = self.map_uri.as_str();
        for (index, segment) in self.segments.iter().enumerate() {
            if index < skip.omitted {
                continue;
            }
            if segment.discontinuity {
                // §4.4.4.3.
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
            // §4.4.4.1.
            out.push_str("#EXTINF:");
            push_duration(&mut out, segment.duration_90k);
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
                // §4.4.5.3.
                out.push_str("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=");
                push_quoted(&mut out, &hint.uri);
                out.push('\n');
            }
        }
        out
    }

    /// §4.4.3.8.
    fn write_server_control(&self, out: &mut String) {
        let control = &self.server_control;
        out.push_str("#EXT-X-SERVER-CONTROL:");
        if control.can_block_reload {
            out.push_str("CAN-BLOCK-RELOAD=YES,");
        }
        if let Some(skip_boundary_90k) = control.can_skip_until_90k {
            out.push_str("CAN-SKIP-UNTIL=");
            push_duration(out, skip_boundary_90k);
            out.push(',');
        }
        out.push_str("HOLD-BACK=");
        push_duration(out, control.hold_back_90k);
        // Required whenever EXT-X-PART-INF is present (§4.4.3.8).
        out.push_str(",PART-HOLD-BACK=");
        push_duration(out, control.part_hold_back_90k);
        out.push('\n');
    }
}

/// Writes EXT-X-MAP when the segment about to be written needs another init section than the
/// one in force (§4.4.4.5).
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

/// Formats unix milliseconds as an ISO 8601 UTC date-time with milliseconds, the form
/// EXT-X-PROGRAM-DATE-TIME takes (rfc8216bis §4.4.4.6): `2023-11-14T22:13:20.000Z`. Times
/// past [`MAX_PROGRAM_DATE_TIME_UNIX_MS`] are written as that.
pub fn format_program_date_time(unix_ms: u64) -> String {
    let mut out = String::with_capacity(24);
    push_date_time(&mut out, unix_ms);
    out
}

/// The last instant of year 9999: ISO 8601 without the expanded representation has four-digit
/// years, and no clock is that far ahead.
pub const MAX_PROGRAM_DATE_TIME_UNIX_MS: u64 = 253_402_300_799_999;

const DATE_TIME: &[FormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

fn push_date_time(out: &mut String, unix_ms: u64) {
    let ms = unix_ms.min(MAX_PROGRAM_DATE_TIME_UNIX_MS);
    let at = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    // Formatting a date within year 9999 cannot fail.
    if let Ok(text) = at.format(DATE_TIME) {
        out.push_str(&text);
    }
}

/// §4.4.4.6.
fn push_program_date_time(out: &mut String, unix_ms: u64) {
    out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
    push_date_time(out, unix_ms);
    out.push('\n');
}

/// §4.4.4.9.
fn push_part(out: &mut String, part: &Part) {
    out.push_str("#EXT-X-PART:DURATION=");
    push_duration(out, part.duration_90k);
    out.push_str(",URI=");
    push_quoted(out, &part.uri);
    if part.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

/// Ticks as decimal seconds with [`DURATION_DECIMALS`] decimals, rounded to the nearest: the
/// text `{:.5}` gives for `ticks / 90000.0`. The exact quotient in written units is
/// `ticks × 10 / 9`, whose fraction is a ninth, never a half, so no tie needs breaking.
fn push_duration(out: &mut String, ticks_90k: u64) {
    let units = duration_units(ticks_90k);
    let _ = write!(
        out,
        "{}.{:0width$}",
        units / DURATION_UNITS_PER_S,
        units % DURATION_UNITS_PER_S,
        width = DURATION_DECIMALS
    );
}

/// Ticks in written units (10 µs), rounded to the nearest.
fn duration_units(ticks_90k: u64) -> u128 {
    let numerator = u128::from(ticks_90k) * DURATION_UNITS_PER_S;
    let clock = u128::from(CLOCK_90K);
    (2 * numerator + clock) / (2 * clock)
}

/// A duration as written, for error messages.
pub(super) fn written_duration(ticks_90k: u64) -> String {
    let mut out = String::new();
    push_duration(&mut out, ticks_90k);
    out
}

/// A quoted-string (rfc8216bis §4.2) cannot hold CR, LF or '"'; they are dropped rather than
/// breaking the playlist ([`super::check_invariants`] reports them).
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
