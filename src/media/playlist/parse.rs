//! Playlist text back into the typed model: the one parser of HLS playlists in the crate, for
//! the black-box tests, the rules checks and the fuzzer.
//!
//! It reads what framecast writes and what rfc8216bis allows around it: tags in any order the
//! specification permits, CRLF line ends, comments and blank lines, quoted-string attributes in
//! any order. Tags the model has no field for are skipped, as clients skip tags they do not know
//! (rfc8216bis §4.1). It never panics; an error names the line and the reason.
//!
//! Where the model needs a value the text may leave out, the parser is strict rather than
//! inventing one: every segment (and a segment in progress) needs EXT-X-PROGRAM-DATE-TIME, a
//! media playlist needs EXT-X-MAP and EXT-X-TARGETDURATION.

use std::fmt;

use super::model::{
    HOLD_BACK_TARGET_DURATIONS, MediaPlaylist, MultivariantPlaylist, Part, PreloadHint, Segment,
    SegmentInProgress, ServerControl, Variant,
};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

use super::render::{Flavor, Skip};
use crate::frame::CLOCK_90K;

/// A media playlist as read from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMediaPlaylist {
    /// The playlist. Its segments are the ones the text lists: after an EXT-X-SKIP they start
    /// at Media Sequence Number `media_sequence + skipped_segments`. Without EXT-X-PART-INF
    /// the part target is 0 and the server control is what EXT-X-SERVER-CONTROL said, if
    /// anything (HOLD-BACK defaults to three target durations, rfc8216bis §4.4.3.8).
    pub playlist: MediaPlaylist,
    /// The text has EXT-X-PART-INF: a Low-Latency playlist.
    pub low_latency: bool,
    /// EXT-X-SKIP:SKIPPED-SEGMENTS: a Playlist Delta Update (rfc8216bis §4.4.5.2); 0 if none.
    pub skipped_segments: u64,
}

impl ParsedMediaPlaylist {
    /// The text this playlist renders to: Low-Latency (with the same EXT-X-SKIP) or plain,
    /// as parsed. Parsing it gives back a playlist that renders to the same text.
    pub fn render(&self) -> String {
        if self.low_latency {
            self.playlist.write(
                Flavor::LowLatency,
                Skip {
                    tag_count: self.skipped_segments,
                    omitted: 0,
                },
            )
        } else {
            self.playlist.write(Flavor::Standard, Skip::NONE)
        }
    }
}

/// Why a playlist did not parse: the 1-based line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number; the line after the last for what is missing at the end.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "playlist line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

type Result<T> = std::result::Result<T, String>;

/// One line of playlist text (rfc8216bis §4.1).
enum Line<'a> {
    /// `#EXT...`, split at the first colon.
    Tag {
        name: &'a str,
        value: Option<&'a str>,
    },
    /// Any other line: a URI.
    Uri(&'a str),
}

/// The meaningful lines with their 1-based numbers: blank lines and comments dropped, CR of
/// CRLF removed. The first line must be `#EXTM3U` (§4.4.1.1).
fn lines(text: &str) -> std::result::Result<Vec<(usize, Line<'_>)>, ParseError> {
    let mut raw = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if raw.next() != Some("#EXTM3U") {
        return Err(ParseError {
            line: 1,
            reason: "the first line is not #EXTM3U".into(),
        });
    }
    let mut out = Vec::new();
    for (index, line) in raw.enumerate() {
        let number = index + 2;
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            if !tag.starts_with("EXT") {
                continue; // a comment
            }
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, Some(value)),
                None => (line, None),
            };
            out.push((number, Line::Tag { name, value }));
        } else {
            out.push((number, Line::Uri(line)));
        }
    }
    Ok(out)
}

/// A tag's value, which it must have.
fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str> {
    value.ok_or_else(|| format!("{name} without a value"))
}

/// Tags only a multivariant playlist has, and tags only a media playlist has: finding one in
/// the other kind is a clear sign of the wrong playlist.
const MULTIVARIANT_ONLY_TAGS: &[&str] = &[
    "#EXT-X-STREAM-INF",
    "#EXT-X-MEDIA",
    "#EXT-X-I-FRAME-STREAM-INF",
    "#EXT-X-SESSION-DATA",
];
const MEDIA_ONLY_TAGS: &[&str] = &[
    "#EXTINF",
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-PART",
    "#EXT-X-MAP",
];

/// What has been read for the segment whose URI line has not come yet.
#[derive(Default)]
struct Pending {
    discontinuity: bool,
    program_date_time_unix_ms: Option<u64>,
    parts: Vec<Part>,
    extinf_90k: Option<u64>,
}

/// Parses a media playlist (rfc8216bis §4.4.3 to §4.4.5), Low-Latency or not, full or delta.
pub fn parse_media_playlist(text: &str) -> std::result::Result<ParsedMediaPlaylist, ParseError> {
    let lines = lines(text)?;
    let end_line = text.split('\n').count() + 1;
    let mut reader = MediaReader::default();
    for (number, line) in lines {
        reader.line(line).map_err(|reason| ParseError {
            line: number,
            reason,
        })?;
    }
    reader.finish().map_err(|reason| ParseError {
        line: end_line,
        reason,
    })
}

#[derive(Default)]
struct MediaReader {
    version: Option<u8>,
    target_duration_s: Option<u64>,
    server_control: Option<AttributeValues>,
    part_target_90k: Option<u64>,
    media_sequence: Option<u64>,
    discontinuity_sequence: Option<u64>,
    independent_segments: bool,
    /// The first EXT-X-MAP: the playlist's.
    map_uri: Option<String>,
    /// The EXT-X-MAP in force.
    current_map: Option<String>,
    skipped_segments: Option<u64>,
    /// A segment's tag, URI line or EXT-X-SKIP has been seen: playlist tags must come before.
    in_segments: bool,
    segments: Vec<Segment>,
    pending: Pending,
    preload_hint: Option<PreloadHint>,
}

/// The attributes of EXT-X-SERVER-CONTROL, read before TARGETDURATION is known.
struct AttributeValues {
    can_block_reload: bool,
    part_hold_back_90k: Option<u64>,
    hold_back_90k: Option<u64>,
    can_skip_until_90k: Option<u64>,
}

impl MediaReader {
    fn line(&mut self, line: Line<'_>) -> Result<()> {
        match line {
            Line::Uri(uri) => self.uri_line(uri),
            Line::Tag { name, value } => self.tag(name, value),
        }
    }

    /// Playlist tags "MUST appear before the first Media Segment" (rfc8216bis §4.4.3) and
    /// appear at most once.
    fn playlist_tag<T>(&self, slot: &Option<T>, name: &str) -> Result<()> {
        if self.in_segments {
            return Err(format!("{name} after the first media segment"));
        }
        if slot.is_some() {
            return Err(format!("{name} appears twice"));
        }
        Ok(())
    }

    fn tag(&mut self, name: &str, value: Option<&str>) -> Result<()> {
        match name {
            "#EXT-X-VERSION" => {
                self.playlist_tag(&self.version, name)?;
                let version = decimal_integer(required(name, value)?)?;
                self.version =
                    Some(u8::try_from(version).map_err(|_| format!("EXT-X-VERSION {version}"))?);
            }
            "#EXT-X-TARGETDURATION" => {
                self.playlist_tag(&self.target_duration_s, name)?;
                self.target_duration_s = Some(decimal_integer(required(name, value)?)?);
            }
            "#EXT-X-MEDIA-SEQUENCE" => {
                self.playlist_tag(&self.media_sequence, name)?;
                self.media_sequence = Some(decimal_integer(required(name, value)?)?);
            }
            "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                self.playlist_tag(&self.discontinuity_sequence, name)?;
                self.discontinuity_sequence = Some(decimal_integer(required(name, value)?)?);
            }
            "#EXT-X-INDEPENDENT-SEGMENTS" => self.independent_segments = true,
            "#EXT-X-SERVER-CONTROL" => {
                self.playlist_tag(&self.server_control, name)?;
                let attributes = attribute_list(required(name, value)?)?;
                self.server_control = Some(AttributeValues {
                    can_block_reload: attributes.enumerated("CAN-BLOCK-RELOAD")? == Some("YES"),
                    part_hold_back_90k: attributes.duration("PART-HOLD-BACK")?,
                    hold_back_90k: attributes.duration("HOLD-BACK")?,
                    can_skip_until_90k: attributes.duration("CAN-SKIP-UNTIL")?,
                });
            }
            "#EXT-X-PART-INF" => {
                self.playlist_tag(&self.part_target_90k, name)?;
                let attributes = attribute_list(required(name, value)?)?;
                self.part_target_90k = Some(
                    attributes
                        .duration("PART-TARGET")?
                        .ok_or("EXT-X-PART-INF without PART-TARGET")?,
                );
            }
            "#EXT-X-MAP" => {
                let attributes = attribute_list(required(name, value)?)?;
                let uri = attributes
                    .quoted("URI")?
                    .ok_or("EXT-X-MAP without URI")?
                    .to_owned();
                if self.map_uri.is_none() {
                    self.map_uri = Some(uri.clone());
                }
                self.current_map = Some(uri);
            }
            "#EXT-X-SKIP" => {
                if self.in_segments {
                    return Err("EXT-X-SKIP after a media segment".into());
                }
                let attributes = attribute_list(required(name, value)?)?;
                self.skipped_segments = Some(
                    attributes
                        .decimal("SKIPPED-SEGMENTS")?
                        .ok_or("EXT-X-SKIP without SKIPPED-SEGMENTS")?,
                );
                self.in_segments = true;
            }
            "#EXT-X-DISCONTINUITY" => {
                self.in_segments = true;
                self.pending.discontinuity = true;
            }
            "#EXT-X-PROGRAM-DATE-TIME" => {
                self.in_segments = true;
                if self.pending.program_date_time_unix_ms.is_some() {
                    return Err("two EXT-X-PROGRAM-DATE-TIME tags for one segment".into());
                }
                self.pending.program_date_time_unix_ms =
                    Some(date_time_unix_ms(required(name, value)?)?);
            }
            "#EXT-X-PART" => {
                self.in_segments = true;
                self.require_map(name)?;
                let attributes = attribute_list(required(name, value)?)?;
                self.pending.parts.push(Part {
                    duration_90k: attributes
                        .duration("DURATION")?
                        .ok_or("EXT-X-PART without DURATION")?,
                    uri: attributes
                        .quoted("URI")?
                        .ok_or("EXT-X-PART without URI")?
                        .to_owned(),
                    independent: attributes.enumerated("INDEPENDENT")? == Some("YES"),
                });
            }
            "#EXTINF" => {
                self.in_segments = true;
                if self.pending.extinf_90k.is_some() {
                    return Err("two EXTINF tags for one URI line".into());
                }
                let value = required(name, value)?;
                // `#EXTINF:<duration>,[<title>]` (§4.4.4.1).
                let duration = value.split_once(',').map_or(value, |(d, _)| d);
                self.pending.extinf_90k = Some(duration_90k(duration)?);
            }
            "#EXT-X-PRELOAD-HINT" => {
                let attributes = attribute_list(required(name, value)?)?;
                let uri = attributes
                    .quoted("URI")?
                    .ok_or("EXT-X-PRELOAD-HINT without URI")?;
                match attributes.enumerated("TYPE")? {
                    Some("PART") => {
                        if self.preload_hint.is_some() {
                            return Err("a second EXT-X-PRELOAD-HINT of TYPE=PART".into());
                        }
                        self.preload_hint = Some(PreloadHint {
                            uri: uri.to_owned(),
                        });
                    }
                    // A hinted init section: the model has no place for one.
                    Some("MAP") => {}
                    other => return Err(format!("EXT-X-PRELOAD-HINT TYPE {other:?}")),
                }
            }
            other if MULTIVARIANT_ONLY_TAGS.contains(&other) => {
                return Err(format!("{other} in a media playlist"));
            }
            _ => {}
        }
        Ok(())
    }

    fn require_map(&self, what: &str) -> Result<()> {
        if self.current_map.is_none() {
            return Err(format!("{what} before any EXT-X-MAP"));
        }
        Ok(())
    }

    /// The init section the segment being read needs, in the model's terms.
    fn segment_map(&self) -> Option<String> {
        self.current_map
            .clone()
            .filter(|m| Some(m) != self.map_uri.as_ref())
    }

    fn next_msn(&self) -> Result<u64> {
        self.media_sequence
            .unwrap_or(0)
            .checked_add(self.skipped_segments.unwrap_or(0))
            .and_then(|msn| msn.checked_add(self.segments.len() as u64))
            .ok_or_else(|| "Media Sequence Number overflows".into())
    }

    fn uri_line(&mut self, uri: &str) -> Result<()> {
        self.in_segments = true;
        self.require_map("a media segment")?;
        let pending = std::mem::take(&mut self.pending);
        let duration_90k = pending
            .extinf_90k
            .ok_or_else(|| format!("URI line {uri:?} without EXTINF"))?;
        let program_date_time_unix_ms = pending
            .program_date_time_unix_ms
            .ok_or_else(|| format!("segment {uri:?} without EXT-X-PROGRAM-DATE-TIME"))?;
        let segment = Segment {
            msn: self.next_msn()?,
            duration_90k,
            program_date_time_unix_ms,
            uri: uri.to_owned(),
            discontinuity: pending.discontinuity,
            map_uri: self.segment_map(),
            parts: pending.parts,
        };
        self.segments.push(segment);
        Ok(())
    }

    fn finish(mut self) -> Result<ParsedMediaPlaylist> {
        let target_duration_s = self
            .target_duration_s
            .ok_or("no EXT-X-TARGETDURATION (required, rfc8216bis §4.4.3.1)")?;
        let map_uri = self.map_uri.clone().ok_or("no EXT-X-MAP")?;
        let pending = std::mem::take(&mut self.pending);
        if pending.extinf_90k.is_some() {
            return Err("EXTINF without a URI line at the end".into());
        }
        let in_progress = if pending.parts.is_empty() {
            None
        } else {
            Some(SegmentInProgress {
                msn: self.next_msn()?,
                program_date_time_unix_ms: pending
                    .program_date_time_unix_ms
                    .ok_or("parts after the last segment without EXT-X-PROGRAM-DATE-TIME")?,
                discontinuity: pending.discontinuity,
                map_uri: self.segment_map(),
                parts: pending.parts,
            })
        };
        let low_latency = self.part_target_90k.is_some();
        let has_parts = in_progress.is_some() || self.segments.iter().any(|s| !s.parts.is_empty());
        if !low_latency && (has_parts || self.preload_hint.is_some()) {
            return Err("EXT-X-PART or EXT-X-PRELOAD-HINT without EXT-X-PART-INF".into());
        }
        let skipped_segments = self.skipped_segments.unwrap_or(0);
        if !low_latency && self.skipped_segments.is_some() {
            return Err("EXT-X-SKIP without EXT-X-PART-INF: not a Low-Latency playlist".into());
        }
        let default_hold_back_90k = target_duration_s
            .saturating_mul(CLOCK_90K)
            .saturating_mul(HOLD_BACK_TARGET_DURATIONS);
        let server_control = match self.server_control {
            Some(control) => {
                if low_latency && control.part_hold_back_90k.is_none() {
                    return Err(
                        "EXT-X-PART-INF without PART-HOLD-BACK (rfc8216bis §4.4.3.8)".into(),
                    );
                }
                ServerControl {
                    can_block_reload: control.can_block_reload,
                    part_hold_back_90k: control.part_hold_back_90k.unwrap_or(0),
                    hold_back_90k: control.hold_back_90k.unwrap_or(default_hold_back_90k),
                    can_skip_until_90k: control.can_skip_until_90k,
                }
            }
            None if low_latency => {
                return Err("EXT-X-PART-INF without EXT-X-SERVER-CONTROL".into());
            }
            None => ServerControl {
                can_block_reload: false,
                part_hold_back_90k: 0,
                hold_back_90k: default_hold_back_90k,
                can_skip_until_90k: None,
            },
        };
        Ok(ParsedMediaPlaylist {
            playlist: MediaPlaylist {
                // §4.4.1.2: no EXT-X-VERSION means version 1.
                version: self.version.unwrap_or(1),
                target_duration_s,
                server_control,
                part_target_90k: self.part_target_90k.unwrap_or(0),
                media_sequence: self.media_sequence.unwrap_or(0),
                discontinuity_sequence: self.discontinuity_sequence.unwrap_or(0),
                independent_segments: self.independent_segments,
                map_uri,
                segments: self.segments,
                in_progress,
                preload_hint: self.preload_hint,
            },
            low_latency,
            skipped_segments,
        })
    }
}

/// Parses a multivariant playlist (rfc8216bis §4.4.6): its variants and
/// EXT-X-INDEPENDENT-SEGMENTS.
pub fn parse_multivariant_playlist(
    text: &str,
) -> std::result::Result<MultivariantPlaylist, ParseError> {
    let mut playlist = MultivariantPlaylist {
        independent_segments: false,
        variants: Vec::new(),
    };
    let mut pending: Option<Variant> = None;
    let mut seen_version = false;
    for (number, line) in lines(text)? {
        let at = |reason: String| ParseError {
            line: number,
            reason,
        };
        match line {
            Line::Uri(uri) => {
                let mut variant = pending
                    .take()
                    .ok_or_else(|| at(format!("URI line {uri:?} without EXT-X-STREAM-INF")))?;
                variant.uri = uri.to_owned();
                playlist.variants.push(variant);
            }
            Line::Tag { name, value } => match name {
                "#EXT-X-VERSION" => {
                    if std::mem::replace(&mut seen_version, true) {
                        return Err(at("EXT-X-VERSION appears twice".into()));
                    }
                    decimal_integer(value.unwrap_or_default()).map_err(at)?;
                }
                "#EXT-X-INDEPENDENT-SEGMENTS" => playlist.independent_segments = true,
                "#EXT-X-STREAM-INF" => {
                    if pending.is_some() {
                        return Err(at("EXT-X-STREAM-INF without a URI line".into()));
                    }
                    pending = Some(stream_inf(value.unwrap_or_default()).map_err(at)?);
                }
                other if MEDIA_ONLY_TAGS.contains(&other) => {
                    return Err(at(format!("{other} in a multivariant playlist")));
                }
                _ => {}
            },
        }
    }
    if pending.is_some() {
        return Err(ParseError {
            line: text.split('\n').count() + 1,
            reason: "EXT-X-STREAM-INF without a URI line at the end".into(),
        });
    }
    Ok(playlist)
}

/// The attributes of EXT-X-STREAM-INF (§4.4.6.2); the URI comes from the next line.
fn stream_inf(value: &str) -> Result<Variant> {
    let attributes = attribute_list(value)?;
    let resolution = match attributes.unquoted("RESOLUTION")? {
        None => (0, 0),
        Some(text) => {
            let (width, height) = text
                .split_once('x')
                .ok_or_else(|| format!("RESOLUTION {text:?} is not <width>x<height>"))?;
            let pixels = |n: &str| {
                u32::try_from(decimal_integer(n)?).map_err(|_| format!("RESOLUTION {text:?}"))
            };
            (pixels(width)?, pixels(height)?)
        }
    };
    Ok(Variant {
        bandwidth_bps: attributes
            .decimal("BANDWIDTH")?
            .ok_or("EXT-X-STREAM-INF without BANDWIDTH")?,
        average_bandwidth_bps: attributes.decimal("AVERAGE-BANDWIDTH")?,
        codecs: attributes.quoted("CODECS")?.unwrap_or_default().to_owned(),
        resolution,
        frame_rate_millihertz: match attributes.unquoted("FRAME-RATE")? {
            None => 0,
            Some(text) => decimal_scaled(text, 1000)?,
        },
        uri: String::new(),
    })
}

/// An attribute list (rfc8216bis §4.2): `NAME=value` pairs separated by commas, the values
/// quoted-strings or unquoted tokens.
struct Attributes<'a> {
    pairs: Vec<(&'a str, Value<'a>)>,
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Quoted(&'a str),
    Unquoted(&'a str),
}

fn attribute_list(text: &str) -> Result<Attributes<'_>> {
    let mut pairs: Vec<(&str, Value<'_>)> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("attribute without '=' in {text:?}"))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'-'))
        {
            return Err(format!("bad attribute name {name:?}"));
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(format!("attribute {name} appears twice"));
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("attribute {name}: quoted-string without its end"))?;
            let value = &quoted[..end];
            if value.contains('\r') {
                return Err(format!(
                    "attribute {name}: carriage return in a quoted-string"
                ));
            }
            (Value::Quoted(value), &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (Value::Unquoted(&after[..end]), &after[end..])
        };
        pairs.push((name, value));
        rest = match after.strip_prefix(',') {
            Some(next) if !next.is_empty() => next,
            Some(_) => return Err(format!("attribute list {text:?} ends with a comma")),
            None if after.is_empty() => "",
            None => return Err(format!("attribute {name}: {after:?} after its value")),
        };
    }
    Ok(Attributes { pairs })
}

impl<'a> Attributes<'a> {
    fn get(&self, name: &str) -> Option<Value<'a>> {
        self.pairs
            .iter()
            .find_map(|(n, v)| (*n == name).then_some(*v))
    }

    fn quoted(&self, name: &str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Quoted(value)) => Ok(Some(value)),
            Some(Value::Unquoted(_)) => Err(format!("{name} is not a quoted-string")),
        }
    }

    fn unquoted(&self, name: &str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Unquoted(value)) => Ok(Some(value)),
            Some(Value::Quoted(_)) => Err(format!("{name} is quoted")),
        }
    }

    /// An enumerated-string such as YES or PART.
    fn enumerated(&self, name: &str) -> Result<Option<&'a str>> {
        self.unquoted(name)
    }

    fn decimal(&self, name: &str) -> Result<Option<u64>> {
        self.unquoted(name)?
            .map(|v| decimal_integer(v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    }

    fn duration(&self, name: &str) -> Result<Option<u64>> {
        self.unquoted(name)?
            .map(|v| duration_90k(v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    }
}

/// A decimal-integer (§4.2): digits only, at most 2^64 - 1.
fn decimal_integer(text: &str) -> Result<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal-integer"));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is larger than a decimal-integer may be"))
}

/// Seconds written as a decimal-floating-point (§4.2) in 90 kHz ticks, rounded to the nearest.
fn duration_90k(text: &str) -> Result<u64> {
    decimal_scaled(text, u128::from(CLOCK_90K))
}

/// Digits that the fraction of a decimal keeps: more are below any unit this module reads.
const MAX_FRACTION_DIGITS: usize = 18;

/// A non-negative decimal (`12`, `12.5`, `.5`) times `scale`, rounded to the nearest (a half
/// up), or an error when it is not a decimal or does not fit in u64.
fn decimal_scaled(text: &str, scale: u128) -> Result<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(format!("{text:?} is not a decimal number"));
    }
    let too_large = || format!("{text:?} is too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        // Up to 39 digits fit a u128; anything longer is too large anyway.
        whole.parse().map_err(|_| too_large())?
    };
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let fraction_scaled = if fraction.is_empty() {
        0
    } else {
        let numerator: u128 = fraction.parse().map_err(|_| too_large())?;
        let denominator = 10u128.pow(fraction.len() as u32);
        (2 * numerator * scale + denominator) / (2 * denominator)
    };
    let total = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction_scaled))
        .ok_or_else(too_large)?;
    u64::try_from(total).map_err(|_| too_large())
}

/// An ISO 8601 date-time with a time zone (§4.4.4.6), e.g. `2023-11-14T22:13:20.123Z` or
/// `2023-11-14T23:13:20+01:00`, as unix milliseconds. Fractions beyond milliseconds are cut;
/// dates before 1970 are refused (the model counts from the unix epoch).
fn date_time_unix_ms(text: &str) -> Result<u64> {
    let at = OffsetDateTime::parse(text, &Iso8601::PARSING)
        .map_err(|e| format!("{text:?} is not an ISO 8601 date-time with a time zone: {e}"))?;
    u64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000))
        .map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_as_the_ticks_they_were_written_from() {
        for ticks in (0..200_000).chain([u64::MAX / 100_000, 30_000, 3003, 1]) {
            let text = super::super::render::written_duration(ticks);
            assert_eq!(duration_90k(&text), Ok(ticks), "{text}");
        }
        assert_eq!(duration_90k("1"), Ok(90_000));
        assert_eq!(duration_90k(".5"), Ok(45_000));
        assert_eq!(duration_90k("0.333333333333333333333333"), Ok(30_000));
        for bad in [
            "",
            ".",
            "-1",
            "1e3",
            "1.2.3",
            " 1",
            "99999999999999999999999999999999999999999",
        ] {
            assert!(duration_90k(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_read_back_as_the_milliseconds_they_were_written_from() {
        for unix_ms in [
            0,
            1_700_000_000_123,
            951_782_400_000,
            1_709_164_800_000,
            253_402_300_799_999,
        ] {
            let text = super::super::format_program_date_time(unix_ms);
            assert_eq!(date_time_unix_ms(&text), Ok(unix_ms), "{text}");
        }
        // Beyond year 9999 is written as its last instant.
        let text = super::super::format_program_date_time(u64::MAX);
        assert_eq!(date_time_unix_ms(&text), Ok(253_402_300_799_999), "{text}");
        assert_eq!(
            date_time_unix_ms("2023-11-14T23:13:20.1234+01:00"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            date_time_unix_ms("2023-11-14T17:13:20-0500"),
            Ok(1_700_000_000_000)
        );
        for bad in [
            "1969-12-31T23:59:59.999Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20",
            "2023-11-14T24:00:00Z",
            "2023-13-01T00:00:00Z",
            "T",
            "",
        ] {
            assert!(date_time_unix_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attribute_lists_follow_the_grammar() {
        let list = attribute_list("URI=\"a,b\",DURATION=0.5,INDEPENDENT=YES").unwrap();
        assert_eq!(list.quoted("URI"), Ok(Some("a,b")));
        assert_eq!(list.duration("DURATION"), Ok(Some(45_000)));
        assert_eq!(list.enumerated("INDEPENDENT"), Ok(Some("YES")));
        assert!(list.unquoted("URI").is_err());
        for bad in ["A=1,A=2", "A", "a=1", "A=\"x", "A=\"x\"y", "A=1,", "=1"] {
            assert!(attribute_list(bad).is_err(), "{bad:?}");
        }
    }
}
