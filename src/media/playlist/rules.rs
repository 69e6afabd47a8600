//! The rules a media playlist keeps, alone ([`check_invariants`]) and from one reload to the
//! next ([`check_update`]): target duration, part bounds, hold-backs, sequence numbers, dates
//! (rfc8216bis and the design notes). For tests and fuzzing, of the model the server builds
//! and of what a client parses back from the text.
//!
//! Durations are compared in 90 kHz ticks. A written duration reads back as exactly the ticks
//! it was written from ([`super::DURATION_DECIMALS`]), so this is the comparison a client
//! makes on the text.

use super::model::{
    HOLD_BACK_TARGET_DURATIONS, MIN_LIVE_SEGMENTS, MediaPlaylist, PART_HOLD_BACK_PART_TARGETS,
    Part, SKIP_BOUNDARY_TARGET_DURATIONS,
};
use super::parse::ParsedMediaPlaylist;
use super::render::{
    MAP_MIN_VERSION, MAX_SEGMENTS_WITH_PARTS, PART_LISTING_TARGET_DURATIONS, SKIP_MIN_VERSION,
    written_duration as w,
};
use crate::frame::CLOCK_90K;

/// A part other than the last of its segment lasts at least 85 % of PART-TARGET
/// (rfc8216bis §4.4.4.9, which also exempts INDEPENDENT=YES parts; the design notes and the
/// `hls-parser` validator do not, so neither does framecast). As a fraction in percent.
const MIN_PART_PERCENT: u64 = 85;

/// How far the parts of a segment may add up to something other than its EXTINF, in ticks
/// (1 ms): both come from the same frame timestamps, but a segmenter may round a segment's
/// end differently from its parts'.
const PART_SUM_TOLERANCE_90K: u64 = 90;

/// Checks the rules one media playlist has to keep; the error names the first broken one.
///
/// The target duration and part target are the playlist's own; [`check_update`] checks that
/// they stay constant from one playlist to the next.
pub fn check_invariants(playlist: &MediaPlaylist) -> Result<(), String> {
    check_window(playlist, MIN_LIVE_SEGMENTS)
}

/// [`check_invariants`] with the smallest number of segments a playlist that removed old ones
/// lists: [`MIN_LIVE_SEGMENTS`], or fewer for a delta update.
fn check_window(playlist: &MediaPlaylist, min_live_segments: usize) -> Result<(), String> {
    let target_s = playlist.target_duration_s;
    if target_s == 0 {
        return Err("TARGETDURATION is 0".into());
    }
    let target_90k = target_s.saturating_mul(CLOCK_90K);
    let part_target = playlist.part_target_90k;
    if part_target == 0 {
        return Err("PART-TARGET is 0".into());
    }
    if part_target > target_90k {
        return Err(format!(
            "PART-TARGET {} exceeds TARGETDURATION {target_s}",
            w(part_target)
        ));
    }

    // rfc8216bis §4.4.3.8 and the design notes.
    let control = &playlist.server_control;
    if control.part_hold_back_90k < part_target.saturating_mul(PART_HOLD_BACK_PART_TARGETS) {
        return Err(format!(
            "PART-HOLD-BACK {} is less than 3 x PART-TARGET {}",
            w(control.part_hold_back_90k),
            w(part_target)
        ));
    }
    if control.hold_back_90k < target_90k.saturating_mul(HOLD_BACK_TARGET_DURATIONS) {
        return Err(format!(
            "HOLD-BACK {} is less than 3 x TARGETDURATION {target_s}",
            w(control.hold_back_90k)
        ));
    }
    if let Some(skip_boundary_90k) = control.can_skip_until_90k
        && skip_boundary_90k < target_90k.saturating_mul(SKIP_BOUNDARY_TARGET_DURATIONS)
    {
        return Err(format!(
            "CAN-SKIP-UNTIL {} is less than 6 x TARGETDURATION {target_s}",
            w(skip_boundary_90k)
        ));
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
    if playlist.media_sequence > 0 && playlist.segments.len() < min_live_segments {
        return Err(format!(
            "{} segments after old ones were removed; a live playlist keeps at least {min_live_segments}",
            playlist.segments.len()
        ));
    }

    let mut previous_pdt_ms: Option<u64> = None;
    for segment in &playlist.segments {
        let msn = segment.msn;
        let duration = segment.duration_90k;
        if duration == 0 {
            return Err(format!("segment {msn}: EXTINF is 0"));
        }
        // rfc8216bis §4.4.3.1: rounded to the nearest integer, at most the target duration;
        // a half rounds up. In ticks: duration < (target + ½ s).
        if u128::from(duration) * 2 >= (u128::from(target_s) * 2 + 1) * u128::from(CLOCK_90K) {
            return Err(format!(
                "segment {msn}: EXTINF {} rounds above TARGETDURATION {target_s}",
                w(duration)
            ));
        }
        check_uri("segment URI", &segment.uri).map_err(|e| format!("segment {msn}: {e}"))?;
        check_parts(&segment.parts, part_target, true)
            .map_err(|e| format!("segment {msn}: {e}"))?;
        if !segment.parts.is_empty() {
            let parts_90k = segment
                .parts
                .iter()
                .fold(0u64, |sum, p| sum.saturating_add(p.duration_90k));
            if parts_90k.abs_diff(duration) > PART_SUM_TOLERANCE_90K {
                return Err(format!(
                    "segment {msn}: parts add up to {} s but EXTINF is {}",
                    w(parts_90k),
                    w(duration)
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
    if previous.part_target_90k != next.part_target_90k {
        return Err(format!(
            "PART-TARGET changed from {} to {}",
            w(previous.part_target_90k),
            w(next.part_target_90k)
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
            || new.duration_90k != old.duration_90k
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

/// Checks what a client reads back from a Low-Latency media playlist's text, full or delta:
/// the version its tags need, parts listed only on segments that start within three target
/// durations of the end and on at most three segments (rfc8216bis §6.2.2), and every rule of
/// [`check_invariants`] on the parsed model (on the listed segments of a delta update).
pub fn check_written(parsed: &ParsedMediaPlaylist) -> Result<(), String> {
    let playlist = &parsed.playlist;
    if !parsed.low_latency {
        return Err("no EXT-X-PART-INF: not a Low-Latency playlist".into());
    }
    if playlist.version < MAP_MIN_VERSION {
        return Err(format!("EXT-X-VERSION {} with EXT-X-MAP", playlist.version));
    }
    if parsed.skipped_segments > 0 && playlist.version < SKIP_MIN_VERSION {
        return Err(format!(
            "EXT-X-VERSION {} with EXT-X-SKIP",
            playlist.version
        ));
    }
    let open = playlist.in_progress.is_some() || playlist.preload_hint.is_some();
    let with_parts = playlist
        .segments
        .iter()
        .filter(|s| !s.parts.is_empty())
        .count()
        + usize::from(open);
    if with_parts > MAX_SEGMENTS_WITH_PARTS {
        return Err(format!("{with_parts} segments list parts"));
    }
    let window_90k = playlist
        .target_duration_s
        .saturating_mul(PART_LISTING_TARGET_DURATIONS)
        .saturating_mul(CLOCK_90K);
    let mut from_end_90k = playlist
        .in_progress
        .iter()
        .flat_map(|s| &s.parts)
        .fold(0u64, |sum, p| sum.saturating_add(p.duration_90k));
    for segment in playlist.segments.iter().rev() {
        from_end_90k = from_end_90k.saturating_add(segment.duration_90k);
        if !segment.parts.is_empty() && from_end_90k > window_90k {
            return Err(format!(
                "segment {} lists parts {} s from the end",
                segment.msn,
                w(from_end_90k)
            ));
        }
    }
    if parsed.skipped_segments == 0 {
        check_invariants(playlist)
    } else {
        // A delta update lists the segments after the skipped ones: check those as a window
        // of their own.
        let mut listed = playlist.clone();
        listed.media_sequence = listed
            .media_sequence
            .saturating_add(parsed.skipped_segments);
        check_window(&listed, 0)
    }
}

fn check_parts(
    parts: &[Part],
    part_target_90k: u64,
    last_may_be_short: bool,
) -> Result<(), String> {
    if let Some(first) = parts.first()
        && !first.independent
    {
        // Every segment starts with an IDR (design notes), so its first part does too.
        return Err("first part is not INDEPENDENT".into());
    }
    for (index, part) in parts.iter().enumerate() {
        let duration = part.duration_90k;
        if duration == 0 {
            return Err(format!("part {index}: DURATION is 0"));
        }
        // rfc8216bis §4.4.3.7, §4.4.4.9: no part lasts longer than PART-TARGET.
        if duration > part_target_90k {
            return Err(format!(
                "part {index}: DURATION {} exceeds PART-TARGET {}",
                w(duration),
                w(part_target_90k)
            ));
        }
        let may_be_short = last_may_be_short && index + 1 == parts.len();
        if !may_be_short
            && u128::from(duration) * 100
                < u128::from(part_target_90k) * u128::from(MIN_PART_PERCENT)
        {
            return Err(format!(
                "part {index}: DURATION {} is under 85 % of PART-TARGET {}",
                w(duration),
                w(part_target_90k)
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
