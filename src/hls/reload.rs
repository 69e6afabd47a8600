//! The delivery directives of a media playlist request (rfc8216bis §6.2.5): `_HLS_msn` and
//! `_HLS_part` for a blocking playlist reload (§6.2.5.2), `_HLS_skip` for a delta update
//! (§6.2.5.1).
//!
//! This module owns two pure steps: [`parse_query`] turns the query string into a
//! [`PlaylistRequest`], and [`resolve`] decides, for the window as it stands, whether the
//! playlist can be sent now, must wait for more media, or asks for media too far ahead. The
//! HTTP layer matches on [`Decision`]; waiting, its time limit and status codes are its own.

use thiserror::Error;

use crate::media::playlist::MediaPlaylist;
pub use crate::media::playlist::SkipRequest;

/// The longest piece of a client's value quoted back in an error, in characters.
const MAX_QUOTED_CHARS: usize = 32;

/// The delivery directives of one media playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaylistRequest {
    /// `_HLS_msn` and, if given, `_HLS_part`: the request is held until the playlist holds
    /// that segment (or that part of it), or something later. `None`: answer at once.
    pub target: Option<(u64, Option<u64>)>,
    /// `_HLS_skip`: whether a Playlist Delta Update is wanted.
    pub skip: SkipRequest,
}

/// Why a query is refused; the HTTP layer answers 400 Bad Request with this one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReloadError {
    /// rfc8216bis §6.2.5.2: `_HLS_part` is only meaningful with `_HLS_msn`.
    #[error("_HLS_part needs _HLS_msn (rfc8216bis 6.2.5.2)")]
    PartWithoutMsn,
    /// `_HLS_msn` and `_HLS_part` are decimal-integers (rfc8216bis §4.2).
    #[error("{name} must be a decimal integer, got {value:?}")]
    NotANumber {
        /// The parameter.
        name: &'static str,
        /// The start of the value the client sent.
        value: String,
    },
    /// `_HLS_skip` takes `YES` or `v2` (rfc8216bis §6.2.5.1).
    #[error("_HLS_skip must be YES or v2, got {value:?}")]
    UnknownSkip {
        /// The start of the value the client sent.
        value: String,
    },
    /// A directive given twice has no single meaning.
    #[error("{name} is given more than once")]
    Repeated {
        /// The parameter.
        name: &'static str,
    },
}

/// Reads the delivery directives from a request's query string (with or without its leading
/// `?`). Parameters other than `_HLS_msn`, `_HLS_part` and `_HLS_skip` are ignored, as are
/// `&`-separated pieces that are empty; names and values are taken as sent, without
/// percent-decoding, since every valid value is plain ASCII.
pub fn parse_query(query: &str) -> Result<PlaylistRequest, ReloadError> {
    const MSN: &str = "_HLS_msn";
    const PART: &str = "_HLS_part";
    const SKIP: &str = "_HLS_skip";

    let (mut msn, mut part, mut skip) = (None, None, None);
    let query = query.strip_prefix('?').unwrap_or(query);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            MSN => set_once(&mut msn, MSN, parse_number(MSN, value)?)?,
            PART => set_once(&mut part, PART, parse_number(PART, value)?)?,
            SKIP => set_once(&mut skip, SKIP, parse_skip(value)?)?,
            _ => {}
        }
    }
    let target = match (msn, part) {
        (Some(msn), part) => Some((msn, part)),
        (None, Some(_)) => return Err(ReloadError::PartWithoutMsn),
        (None, None) => None,
    };
    Ok(PlaylistRequest {
        target,
        skip: skip.unwrap_or_default(),
    })
}

fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), ReloadError> {
    if slot.replace(value).is_some() {
        return Err(ReloadError::Repeated { name });
    }
    Ok(())
}

/// A decimal-integer: ASCII digits only (no sign, no space), within u64 (rfc8216bis §4.2).
fn parse_number(name: &'static str, value: &str) -> Result<u64, ReloadError> {
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse() {
        Ok(number) if digits_only => Ok(number),
        _ => Err(ReloadError::NotANumber {
            name,
            value: quote_back(value),
        }),
    }
}

fn parse_skip(value: &str) -> Result<SkipRequest, ReloadError> {
    match value {
        "YES" => Ok(SkipRequest::Yes),
        "v2" => Ok(SkipRequest::V2),
        _ => Err(ReloadError::UnknownSkip {
            value: quote_back(value),
        }),
    }
}

fn quote_back(value: &str) -> String {
    value.chars().take(MAX_QUOTED_CHARS).collect()
}

/// The part of the window that blocking reloads depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Media Sequence Number of the newest complete segment; `None` before the first one.
    pub last_complete_msn: Option<u64>,
    /// How many parts the newest complete segment has.
    pub last_complete_parts: u64,
    /// Media Sequence Number of the segment being written (one past the newest complete one).
    pub open_msn: u64,
    /// Parts of the segment being written that are already published.
    pub open_parts: u64,
    /// The most parts any segment can have. An overestimate is safe: it only delays
    /// treating an impossible part index as part 0 of the next segment until its segment
    /// completes.
    pub max_parts_per_segment: u64,
    /// The Advance Part Limit in parts (rfc8216bis §6.2.5.2); see [`advance_part_limit`].
    pub advance_part_limit: u64,
}

impl WindowState {
    /// The state a media playlist describes; `max_parts_per_segment` comes from the
    /// segmenter's configuration.
    pub fn from_playlist(playlist: &MediaPlaylist, max_parts_per_segment: u64) -> Self {
        let last = playlist.segments.last();
        let open_msn = match (&playlist.in_progress, last) {
            (Some(open), _) => open.msn,
            (None, Some(last)) => last.msn.saturating_add(1),
            (None, None) => playlist.media_sequence,
        };
        Self {
            last_complete_msn: last.map(|s| s.msn),
            last_complete_parts: last.map_or(0, |s| s.parts.len() as u64),
            open_msn,
            open_parts: playlist
                .in_progress
                .as_ref()
                .map_or(0, |s| s.parts.len() as u64),
            max_parts_per_segment,
            advance_part_limit: advance_part_limit(playlist.part_target_s()),
        }
    }
}

/// The Advance Part Limit, in parts: three divided by the Part Target Duration when that is
/// under one second, three otherwise (rfc8216bis §6.2.5.2). Rounded up, so that a request is
/// never refused for rounding alone.
pub fn advance_part_limit(part_target_s: f64) -> u64 {
    /// Both branches of the rule say "three".
    const LIMIT: f64 = 3.0;
    if part_target_s.is_finite() && part_target_s > 0.0 && part_target_s < 1.0 {
        // `as` saturates; the quotient is at least 3 here.
        (LIMIT / part_target_s).ceil() as u64
    } else {
        LIMIT as u64
    }
}

/// What to do with a blocking request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The playlist already holds the requested segment or part, or something later: send it.
    Ready,
    /// Hold the request and decide again when the window changes.
    Wait,
    /// The request is further ahead than rfc8216bis §6.2.5.2 lets a server wait for: answer
    /// 400 Bad Request at once.
    TooFarAhead,
}

/// Decides a blocking reload for `target` = (`_HLS_msn`, `_HLS_part`) against the window
/// (rfc8216bis §6.2.5.2):
///
/// - `_HLS_msn` more than two past the newest complete segment is too far ahead;
/// - a part index past the end of its segment stands for part 0 of the next segment, which is
///   known once the segment is complete, and certain for an index no segment can reach;
/// - a part more than the Advance Part Limit past the newest published part is too far ahead;
/// - a segment (without `_HLS_part`) is there once it is complete; a part once published.
pub fn resolve(target: (u64, Option<u64>), window: &WindowState) -> Decision {
    let (msn, part) = target;
    // The newest complete segment is the one before the open one, so "its msn plus two" is
    // the open msn plus one.
    let furthest_msn = window.open_msn.saturating_add(1);
    if msn > furthest_msn {
        return Decision::TooFarAhead;
    }
    let is_complete = |msn: u64| window.last_complete_msn.is_some_and(|last| msn <= last);

    let Some(part) = part else {
        return if is_complete(msn) {
            Decision::Ready
        } else {
            Decision::Wait
        };
    };

    let past_end = part >= window.max_parts_per_segment.max(1)
        || (window.last_complete_msn == Some(msn) && part >= window.last_complete_parts);
    let (msn, part) = if past_end {
        (msn.saturating_add(1), 0)
    } else {
        (msn, part)
    };
    if msn > furthest_msn {
        return Decision::TooFarAhead;
    }

    if msn == window.open_msn {
        if part < window.open_parts {
            return Decision::Ready;
        }
        // Parts from the newest published one; that is index open_parts - 1.
        let ahead = part + 1 - window.open_parts;
        return if ahead > window.advance_part_limit {
            Decision::TooFarAhead
        } else {
            Decision::Wait
        };
    }
    if msn > window.open_msn {
        // At least this many parts ahead; counting only the ones certain to come keeps
        // legitimate requests from being refused.
        return if part + 1 > window.advance_part_limit {
            Decision::TooFarAhead
        } else {
            Decision::Wait
        };
    }
    // Below the open segment: complete, or older than the window, which then holds later
    // media. Before the first segment completes the window holds nothing to answer with: wait.
    if window.last_complete_msn.is_some() {
        Decision::Ready
    } else {
        Decision::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_query_table() {
        let ok = |target, skip| Ok(PlaylistRequest { target, skip });
        let not_a_number = |name, value: &str| {
            Err(ReloadError::NotANumber {
                name,
                value: value.into(),
            })
        };
        let cases: Vec<(&str, Result<PlaylistRequest, ReloadError>)> = vec![
            ("", ok(None, SkipRequest::No)),
            ("?", ok(None, SkipRequest::No)),
            ("_HLS_msn=12", ok(Some((12, None)), SkipRequest::No)),
            (
                "?_HLS_msn=12&_HLS_part=3",
                ok(Some((12, Some(3))), SkipRequest::No),
            ),
            (
                "_HLS_part=0&_HLS_msn=0",
                ok(Some((0, Some(0))), SkipRequest::No),
            ),
            (
                "_HLS_msn=18446744073709551615",
                ok(Some((u64::MAX, None)), SkipRequest::No),
            ),
            ("_HLS_skip=YES", ok(None, SkipRequest::Yes)),
            ("_HLS_skip=v2", ok(None, SkipRequest::V2)),
            (
                "_HLS_msn=7&_HLS_part=1&_HLS_skip=YES",
                ok(Some((7, Some(1))), SkipRequest::Yes),
            ),
            (
                "token=abc&_HLS_msn=5&&x&_HLS_push=1&_hls_msn=9",
                ok(Some((5, None)), SkipRequest::No),
            ),
            ("_HLS_part=2", Err(ReloadError::PartWithoutMsn)),
            (
                "_HLS_part=2&_HLS_skip=YES",
                Err(ReloadError::PartWithoutMsn),
            ),
            ("_HLS_msn=-1", not_a_number("_HLS_msn", "-1")),
            ("_HLS_msn=+1", not_a_number("_HLS_msn", "+1")),
            ("_HLS_msn= 1", not_a_number("_HLS_msn", " 1")),
            ("_HLS_msn=1.0", not_a_number("_HLS_msn", "1.0")),
            ("_HLS_msn=", not_a_number("_HLS_msn", "")),
            ("_HLS_msn", not_a_number("_HLS_msn", "")),
            ("_HLS_msn=abc", not_a_number("_HLS_msn", "abc")),
            (
                "_HLS_msn=18446744073709551616",
                not_a_number("_HLS_msn", "18446744073709551616"),
            ),
            ("_HLS_msn=3&_HLS_part=x", not_a_number("_HLS_part", "x")),
            ("_HLS_msn=3&_HLS_part=-2", not_a_number("_HLS_part", "-2")),
            (
                "_HLS_skip=yes",
                Err(ReloadError::UnknownSkip {
                    value: "yes".into(),
                }),
            ),
            (
                "_HLS_skip=",
                Err(ReloadError::UnknownSkip { value: "".into() }),
            ),
            (
                "_HLS_msn=1&_HLS_msn=2",
                Err(ReloadError::Repeated { name: "_HLS_msn" }),
            ),
            (
                "_HLS_skip=YES&_HLS_skip=YES",
                Err(ReloadError::Repeated { name: "_HLS_skip" }),
            ),
        ];
        for (query, want) in cases {
            assert_eq!(parse_query(query), want, "query {query:?}");
        }
    }

    #[test]
    fn errors_are_one_short_line() {
        let long = format!("_HLS_msn={}\n", "9".repeat(500));
        for query in [
            long.as_str(),
            "_HLS_part=1",
            "_HLS_skip=\r\nX",
            "_HLS_msn=1&_HLS_msn=1",
        ] {
            let message = parse_query(query).expect_err(query).to_string();
            assert!(!message.contains(['\r', '\n']), "{message:?}");
            assert!(message.len() < 100, "{message:?}");
        }
    }

    /// Newest complete segment 10 with 3 parts; segment 11 has 1 part; at most 4 parts a
    /// segment; Advance Part Limit 9 (parts of 1/3 s).
    const WINDOW: WindowState = WindowState {
        last_complete_msn: Some(10),
        last_complete_parts: 3,
        open_msn: 11,
        open_parts: 1,
        max_parts_per_segment: 4,
        advance_part_limit: 9,
    };

    /// (`_HLS_msn`, `_HLS_part`)
    type Target = (u64, Option<u64>);

    #[test]
    fn resolve_table() {
        use Decision::{Ready, TooFarAhead, Wait};
        let segment_just_closed = WindowState {
            open_parts: 0,
            ..WINDOW
        };
        let long_parts = WindowState {
            max_parts_per_segment: 8,
            advance_part_limit: 3,
            open_parts: 0,
            ..WINDOW
        };
        let empty = WindowState {
            last_complete_msn: None,
            last_complete_parts: 0,
            open_msn: 0,
            open_parts: 0,
            max_parts_per_segment: 4,
            advance_part_limit: 9,
        };
        let first_parts = WindowState {
            open_parts: 2,
            ..empty
        };
        let started_late = WindowState {
            open_msn: 5,
            ..first_parts
        };
        let cases: &[(&str, Target, WindowState, Decision)] = &[
            ("older than the window", (2, None), WINDOW, Ready),
            ("newest complete segment", (10, None), WINDOW, Ready),
            ("segment being written", (11, None), WINDOW, Wait),
            ("segment after it", (12, None), WINDOW, Wait),
            ("newest plus three", (13, None), WINDOW, TooFarAhead),
            ("far ahead", (u64::MAX, None), WINDOW, TooFarAhead),
            ("part of a complete segment", (10, Some(2)), WINDOW, Ready),
            ("part of an old segment", (5, Some(0)), WINDOW, Ready),
            (
                "past the end of 10 = 11.0, published",
                (10, Some(3)),
                WINDOW,
                Ready,
            ),
            (
                "past the end of 10 = 11.0, not yet",
                (10, Some(3)),
                segment_just_closed,
                Wait,
            ),
            (
                "far past the end of 10",
                (10, Some(1000)),
                segment_just_closed,
                Wait,
            ),
            (
                "past the end of an old segment",
                (9, Some(1000)),
                WINDOW,
                Ready,
            ),
            ("published part", (11, Some(0)), WINDOW, Ready),
            ("next part (the hint)", (11, Some(1)), WINDOW, Wait),
            ("last possible part", (11, Some(3)), WINDOW, Wait),
            ("impossible part = 12.0", (11, Some(4)), WINDOW, Wait),
            ("part 0 after the open segment", (12, Some(0)), WINDOW, Wait),
            ("part 3 after the open segment", (12, Some(3)), WINDOW, Wait),
            (
                "impossible part of 12 = 13.0",
                (12, Some(4)),
                WINDOW,
                TooFarAhead,
            ),
            (
                "part of newest plus three",
                (13, Some(0)),
                WINDOW,
                TooFarAhead,
            ),
            (
                "within the Advance Part Limit",
                (11, Some(2)),
                long_parts,
                Wait,
            ),
            (
                "beyond the Advance Part Limit",
                (11, Some(3)),
                long_parts,
                TooFarAhead,
            ),
            (
                "beyond the limit in the next segment",
                (12, Some(3)),
                long_parts,
                TooFarAhead,
            ),
            ("first segment, nothing yet", (0, None), empty, Wait),
            ("first part, nothing yet", (0, Some(0)), empty, Wait),
            ("second segment, nothing yet", (1, None), empty, Wait),
            ("third segment, nothing yet", (2, None), empty, TooFarAhead),
            ("first parts published", (0, Some(1)), first_parts, Ready),
            (
                "next part of the first segment",
                (0, Some(2)),
                first_parts,
                Wait,
            ),
            ("first segment not complete", (0, None), first_parts, Wait),
            (
                "before a window that started late",
                (3, None),
                started_late,
                Wait,
            ),
            (
                "its part, before the window",
                (3, Some(0)),
                started_late,
                Wait,
            ),
        ];
        for (name, target, window, want) in cases {
            assert_eq!(resolve(*target, window), *want, "case {name:?}");
        }
    }

    #[test]
    fn advance_part_limit_follows_the_part_target() {
        let cases = [
            (1.0 / 3.0, 9),
            (0.33333, 10), // 9.00009 parts, rounded up
            (0.2, 15),
            (0.5, 6),
            (1.0, 3),
            (2.0, 3),
            (0.0, 3),
            (f64::NAN, 3),
            (1e-300, u64::MAX),
        ];
        for (part_target_s, want) in cases {
            assert_eq!(advance_part_limit(part_target_s), want, "{part_target_s}");
        }
    }

    #[test]
    fn every_listed_part_is_ready_and_the_hinted_one_waits() {
        use crate::media::playlist::tests::{LiveSim, SIM_MAX_PARTS};
        let mut sim = LiveSim::new(7, 8);
        for step in 0..1500 {
            let playlist = sim.step();
            let window = WindowState::from_playlist(&playlist, SIM_MAX_PARTS);
            let at = format!("step {step}: {window:?}");
            for segment in &playlist.segments {
                assert_eq!(
                    resolve((segment.msn, None), &window),
                    Decision::Ready,
                    "{at}"
                );
                for index in 0..segment.parts.len() as u64 {
                    let decision = resolve((segment.msn, Some(index)), &window);
                    assert_eq!(decision, Decision::Ready, "{at}");
                }
            }
            let Some(open) = &playlist.in_progress else {
                panic!("{at}: the simulation always has a segment in progress");
            };
            for index in 0..open.parts.len() as u64 {
                assert_eq!(
                    resolve((open.msn, Some(index)), &window),
                    Decision::Ready,
                    "{at}"
                );
            }
            let hinted = (open.msn, Some(open.parts.len() as u64));
            assert_eq!(resolve(hinted, &window), Decision::Wait, "{at}");
            assert_eq!(resolve((open.msn, None), &window), Decision::Wait, "{at}");
            // What hls.js asks next after a segment closes: the last one's next index.
            if let Some(last) = playlist.segments.last() {
                let past_end = (last.msn, Some(last.parts.len() as u64));
                let want = if open.parts.is_empty() {
                    Decision::Wait
                } else {
                    Decision::Ready
                };
                assert_eq!(resolve(past_end, &window), want, "{at}");
            }
            assert_eq!(
                resolve((open.msn + 1, Some(0)), &window),
                Decision::Wait,
                "{at}"
            );
            assert_eq!(
                resolve((open.msn + 2, None), &window),
                Decision::TooFarAhead,
                "{at}"
            );
        }
    }
}
