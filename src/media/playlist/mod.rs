//! HLS playlist text: the multivariant playlist and the media playlist, the latter both in its
//! Low-Latency form (parts, preload hint, server control, delta updates) and in its plain form.
//!
//! This module owns the tag syntax and the rules of RFC 8216, its revision
//! draft-pantos-hls-rfc8216bis ("rfc8216bis" below) and Apple's HLS authoring specification. It
//! does no I/O and reads no clock: the segmenter describes its window as a [`MediaPlaylist`] and
//! gets text back.
//!
//! - [`model`]: the typed playlists, durations in 90 kHz ticks;
//! - [`render`]: the text, each tag with its rfc8216bis section;
//! - [`rules`]: [`check_invariants`] and [`check_update`], the rules a window keeps (target
//!   duration, part bounds, hold-backs, sequence numbers), and [`check_written`], the same on
//!   what a client parses back, for tests and fuzzing;
//! - [`parse`]: the crate's one playlist parser, text back into the model;
//! - [`carry_query`](mod@carry_query): a query (a signed link's) added to every URI a rendered
//!   playlist lists.

pub mod carry_query;
pub mod model;
pub mod parse;
pub mod render;
pub mod rules;

#[cfg(test)]
pub(crate) mod tests;

pub use carry_query::carry_query;
pub use model::{
    LL_HLS_VERSION, MIN_LIVE_SEGMENTS, MediaPlaylist, MultivariantPlaylist, Part, PreloadHint,
    Segment, SegmentInProgress, ServerControl, SkipRequest, Variant,
};
pub use parse::{
    ParseError, ParsedMediaPlaylist, parse_media_playlist, parse_multivariant_playlist,
};
pub use render::{DURATION_DECIMALS, MAX_PROGRAM_DATE_TIME_UNIX_MS, format_program_date_time};
pub use rules::{check_invariants, check_update, check_written};
