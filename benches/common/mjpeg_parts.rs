//! Reads `/stream.mjpg` the way a non-browser MJPEG client does, without copying the JPEGs.
//!
//! Three layers, fed with whatever the socket returned: the HTTP response head; the transfer
//! coding (chunked, RFC 9112 §7.1, or the bare body up to connection close, §6.3); and the
//! multipart parts (RFC 2046 §5.1.1) framed by Content-Length, as framecast writes them for
//! non-browser clients: `--BOUNDARY`, headers with Content-Length, X-Timestamp and
//! X-Frame-Sequence, a blank line, the JPEG, then CRLF. JPEG bytes are only counted and
//! skipped, so a single thread can follow hundreds of 720p streams.
//!
//! Other servers (VLC's `mpjpeg` mux) use their own boundary, named in the response's
//! Content-Type, and carry no timestamp headers. To time their frames too, the load generator
//! feeds every server JPEGs that carry a stamp of their own: a JPEG comment segment (COM,
//! ITU-T T.81 §B.2.4.5) right after SOI with the frame's sequence number and the time it was
//! written to the server ([`stamp_segment`]). Servers pass it through untouched; this parser
//! reads it from the first bytes of each part ([`Part::stamp`]).
//!
//! This module does no I/O; [`self_check`] runs it over a stream built with framecast's own
//! framing code before any figure is taken.

use framecast::media::multipart::{self, PartHeaders};

/// Longest response head or part head accepted: framecast's are about 250 bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Longest chunk-size line accepted (hex size plus extensions).
const MAX_CHUNK_LINE_BYTES: usize = 256;

/// The payload of a stamp comment: fixed width, so every stamped JPEG of a run has one size.
const STAMP_PAYLOAD_LEN: usize = 48;
/// SOI, then the COM marker, its 2-byte length and the payload.
const STAMP_PREFIX_LEN: usize = 2 + 4 + STAMP_PAYLOAD_LEN;

/// What the load generator wrote into a JPEG before feeding it to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Counts fed frames from 0.
    pub seq: u64,
    /// When the frame was written to the server, microseconds since the Unix epoch.
    pub fed_unix_micros: u64,
}

/// The COM segment (marker, length, payload) that carries `stamp`; it goes right after SOI.
pub fn stamp_segment(stamp: Stamp) -> Vec<u8> {
    let payload = format!(
        "fcbench seq={:016} us={:016}",
        stamp.seq, stamp.fed_unix_micros
    );
    let payload = format!("{payload:<STAMP_PAYLOAD_LEN$}");
    let mut segment = vec![0xFF, 0xFE];
    // The length counts itself (2 bytes) and the payload.
    segment.extend_from_slice(&((2 + payload.len()) as u16).to_be_bytes());
    segment.extend_from_slice(payload.as_bytes());
    segment
}

/// The stamp at the start of a JPEG, if it has one.
fn parse_stamp(jpeg_prefix: &[u8]) -> Option<Stamp> {
    let payload = jpeg_prefix
        .strip_prefix(&[0xFF, 0xD8, 0xFF, 0xFE][..])?
        .get(2..)?;
    let text = std::str::from_utf8(payload.get(..STAMP_PAYLOAD_LEN)?).ok()?;
    let mut words = text.split_whitespace();
    (words.next()? == "fcbench").then_some(())?;
    let seq = words.next()?.strip_prefix("seq=")?.parse().ok()?;
    let fed_unix_micros = words.next()?.strip_prefix("us=")?.parse().ok()?;
    Some(Stamp {
        seq,
        fed_unix_micros,
    })
}

/// One complete part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub len_bytes: usize,
    /// X-Timestamp: capture time in microseconds since the Unix epoch.
    pub captured_unix_micros: Option<u64>,
    /// X-Frame-Sequence.
    pub seq: Option<u64>,
    /// The load generator's stamp inside the JPEG.
    pub stamp: Option<Stamp>,
}

/// The whole client-side parser of one MJPEG response.
#[derive(Debug)]
pub struct StreamParser {
    stage: Stage,
    parts: PartReader,
}

#[derive(Debug)]
enum Stage {
    /// Collecting the response head.
    ResponseHead(Vec<u8>),
    Chunked(ChunkDecoder),
    /// No transfer coding: the body runs to the end of the connection.
    Identity,
    /// The last chunk arrived: nothing more is expected.
    Done,
}

impl Default for StreamParser {
    fn default() -> Self {
        Self {
            stage: Stage::ResponseHead(Vec::new()),
            parts: PartReader::default(),
        }
    }
}

impl StreamParser {
    /// True once a `200` response head has been read.
    pub fn is_streaming(&self) -> bool {
        !matches!(self.stage, Stage::ResponseHead(_))
    }

    /// Feeds the next bytes from the socket; complete parts are appended to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Part>) -> Result<(), String> {
        if let Stage::ResponseHead(head) = &mut self.stage {
            let Some(used) = take_head(head, data)? else {
                return Ok(());
            };
            let (chunked, boundary) = check_response_head(head)?;
            self.parts.boundary = boundary;
            data = &data[used..];
            self.stage = if chunked {
                Stage::Chunked(ChunkDecoder::default())
            } else {
                Stage::Identity
            };
        }
        match &mut self.stage {
            Stage::ResponseHead(_) | Stage::Done => Ok(()),
            Stage::Identity => self.parts.feed(data, out),
            Stage::Chunked(chunks) => {
                let parts = &mut self.parts;
                let finished = chunks.feed(data, |payload| parts.feed(payload, out))?;
                if finished {
                    self.stage = Stage::Done;
                }
                Ok(())
            }
        }
    }
}

/// Appends `data` to `head` up to the end of a header block (CRLF CRLF). Returns how many bytes
/// of `data` belonged to the head once it is complete, `None` while more are needed.
fn take_head(head: &mut Vec<u8>, data: &[u8]) -> Result<Option<usize>, String> {
    let old_len = head.len();
    let room = MAX_HEAD_BYTES.saturating_sub(old_len);
    head.extend_from_slice(&data[..data.len().min(room)]);
    // The terminator may straddle the previous feed: look from 3 bytes back.
    let from = old_len.saturating_sub(3);
    match find(&head[from..], b"\r\n\r\n") {
        Some(at) => {
            let end = from + at + 4;
            head.truncate(end);
            Ok(Some(end - old_len))
        }
        None if head.len() >= MAX_HEAD_BYTES => {
            Err(format!("no end of headers in {MAX_HEAD_BYTES} bytes"))
        }
        None => Ok(None),
    }
}

/// Checks for `200` and returns whether the body is chunked and its multipart boundary.
fn check_response_head(head: &[u8]) -> Result<(bool, String), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    if status_line.split(' ').nth(1) != Some("200") {
        return Err(format!("response `{status_line}`"));
    }
    let mut chunked = false;
    let mut boundary = None;
    for line in lines {
        if header_value(line, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            chunked = true;
        }
        if let Some(value) = header_value(line, "content-type") {
            // RFC 2046 §5.1.1: the boundary parameter, maybe quoted.
            boundary = value
                .split(';')
                .filter_map(|param| param.trim().strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_owned())
                .next();
        }
    }
    let boundary = boundary.ok_or("no multipart boundary in the response's Content-Type")?;
    Ok((chunked, boundary))
}

/// The value of `line` if it is header `name` (case-insensitive).
fn header_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once(':')?;
    key.trim()
        .eq_ignore_ascii_case(name)
        .then_some(value.trim())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Chunked transfer coding (RFC 9112 §7.1): `size-in-hex [;ext] CRLF data CRLF`, ending with a
/// zero size.
#[derive(Debug, Default)]
struct ChunkDecoder {
    state: ChunkState,
}

#[derive(Debug)]
enum ChunkState {
    SizeLine(Vec<u8>),
    Data(usize),
    /// The CRLF after a chunk's data; the count is how many of its 2 bytes are still due.
    DataEnd(usize),
}

impl Default for ChunkState {
    fn default() -> Self {
        Self::SizeLine(Vec::new())
    }
}

impl ChunkDecoder {
    /// Passes each piece of payload in `data` to `payload`; true once the last chunk is seen.
    fn feed(
        &mut self,
        mut data: &[u8],
        mut payload: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<bool, String> {
        while !data.is_empty() {
            match &mut self.state {
                ChunkState::SizeLine(line) => {
                    let Some(at) = data.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_CHUNK_LINE_BYTES {
                            return Err("chunk-size line too long".into());
                        }
                        return Ok(false);
                    };
                    line.extend_from_slice(&data[..at]);
                    data = &data[at + 1..];
                    let text = String::from_utf8_lossy(line);
                    let hex = text.trim_end_matches('\r').split(';').next().unwrap_or("");
                    let size = usize::from_str_radix(hex.trim(), 16)
                        .map_err(|_| format!("bad chunk size `{}`", text.trim()))?;
                    if size == 0 {
                        return Ok(true);
                    }
                    self.state = ChunkState::Data(size);
                }
                ChunkState::Data(remaining) => {
                    let take = (*remaining).min(data.len());
                    payload(&data[..take])?;
                    data = &data[take..];
                    *remaining -= take;
                    if *remaining == 0 {
                        self.state = ChunkState::DataEnd(2);
                    }
                }
                ChunkState::DataEnd(due) => {
                    let take = (*due).min(data.len());
                    let expected = &b"\r\n"[2 - *due..2 - *due + take];
                    if &data[..take] != expected {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    data = &data[take..];
                    *due -= take;
                    if *due == 0 {
                        self.state = ChunkState::default();
                    }
                }
            }
        }
        Ok(false)
    }
}

/// Multipart parts framed by Content-Length.
#[derive(Debug)]
struct PartReader {
    boundary: String,
    state: PartState,
}

#[derive(Debug)]
enum PartState {
    /// Collecting the delimiter and the part headers (a leading CRLF ends the previous body).
    Head(Vec<u8>),
    Body {
        remaining: usize,
        /// The body's first bytes, where a stamp would be.
        prefix: Vec<u8>,
        part: Part,
    },
}

impl Default for PartReader {
    fn default() -> Self {
        Self {
            boundary: multipart::BOUNDARY.to_owned(),
            state: PartState::Head(Vec::new()),
        }
    }
}

impl PartReader {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Part>) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                PartState::Head(head) => {
                    let Some(used) = take_head(head, data)? else {
                        return Ok(());
                    };
                    data = &data[used..];
                    let part = parse_part_head(head, &self.boundary)?;
                    self.state = if part.len_bytes == 0 {
                        out.push(part);
                        PartState::Head(Vec::new())
                    } else {
                        PartState::Body {
                            remaining: part.len_bytes,
                            prefix: Vec::with_capacity(STAMP_PREFIX_LEN),
                            part,
                        }
                    };
                }
                PartState::Body {
                    remaining,
                    prefix,
                    part,
                } => {
                    let take = (*remaining).min(data.len());
                    let room = STAMP_PREFIX_LEN - prefix.len();
                    prefix.extend_from_slice(&data[..take.min(room)]);
                    data = &data[take..];
                    *remaining -= take;
                    if *remaining == 0 {
                        let mut part = part.clone();
                        part.stamp = parse_stamp(prefix);
                        out.push(part);
                        self.state = PartState::Head(Vec::new());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses `[CRLF] --BOUNDARY CRLF headers CRLF CRLF`.
fn parse_part_head(head: &[u8], boundary: &str) -> Result<Part, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").skip_while(|line| line.is_empty());
    let delimiter = lines.next().unwrap_or("");
    if delimiter.strip_prefix("--") != Some(boundary) {
        return Err(format!("expected the boundary, found `{delimiter}`"));
    }
    let (mut len_bytes, mut captured_unix_micros, mut seq) = (None, None, None);
    for line in lines {
        if let Some(v) = header_value(line, "content-length") {
            len_bytes = v.parse().ok();
        } else if let Some(v) = header_value(line, "x-timestamp") {
            captured_unix_micros = multipart::parse_timestamp(v);
        } else if let Some(v) = header_value(line, "x-frame-sequence") {
            seq = v.parse().ok();
        }
    }
    Ok(Part {
        len_bytes: len_bytes.ok_or("a part without a valid Content-Length")?,
        captured_unix_micros,
        seq,
        stamp: None,
    })
}

/// Runs the parser over a response built with framecast's own framing, chunked and not, and
/// over one framed as VLC's `mpjpeg` mux frames it, each cut into pieces of every size from 1
/// to 64 bytes, and compares the parts. Returns what differs.
pub fn self_check() -> Result<(), String> {
    let stamp = Stamp {
        seq: 7,
        fed_unix_micros: 1_790_000_000_200_000,
    };
    let stamped = [
        &[0xFF, 0xD8][..],
        &stamp_segment(stamp),
        &[0xFF, 0xDB, 0, 4, 1, 2, 0xFF, 0xD9],
    ]
    .concat();
    if stamped.len() < STAMP_PREFIX_LEN || parse_stamp(&stamped) != Some(stamp) {
        return Err(format!("the stamp does not round-trip: {stamped:?}"));
    }
    let jpegs: [(u64, u64, Vec<u8>); 4] = [
        (1, 1_790_000_000_000_001, vec![0xFF; 300]),
        (
            2,
            1_790_000_000_033_334,
            b"\r\n--framecast-boundary\r\n".repeat(3),
        ),
        (5, 1_790_000_000_133_334, vec![7; 1]),
        (6, 1_790_000_000_166_667, stamped.clone()),
    ];
    let mut body = PartHeaders::Full.stream_start().to_vec();
    let mut expected = Vec::new();
    for (seq, micros, jpeg) in &jpegs {
        body.extend_from_slice(&multipart::full_part_headers(jpeg.len(), *micros, *seq));
        body.extend_from_slice(jpeg);
        body.extend_from_slice(PartHeaders::Full.part_end());
        expected.push(Part {
            len_bytes: jpeg.len(),
            captured_unix_micros: Some(*micros),
            seq: Some(*seq),
            stamp: parse_stamp(jpeg),
        });
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\n",
        multipart::CONTENT_TYPE
    );
    let identity = [head.as_bytes(), b"\r\n", &body].concat();
    let mut chunked = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for piece in body.chunks(77) {
        chunked.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    // VLC: its own quoted boundary, a CRLF before every delimiter, no timestamp headers.
    let vlc_head = "HTTP/1.0 200 OK\r\nContent-type: multipart/x-mixed-replace; boundary=\"7b3cc56e5f51db803f790dad720ed50a\"\r\n\r\n";
    let mut vlc = vlc_head.as_bytes().to_vec();
    for _ in 0..2 {
        vlc.extend_from_slice(
            format!(
                "\r\n--7b3cc56e5f51db803f790dad720ed50a\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                stamped.len()
            )
            .as_bytes(),
        );
        vlc.extend_from_slice(&stamped);
    }
    let vlc_part = Part {
        len_bytes: stamped.len(),
        captured_unix_micros: None,
        seq: None,
        stamp: Some(stamp),
    };
    let vlc_expected = vec![vlc_part.clone(), vlc_part];

    for (name, stream, expected) in [
        ("identity", &identity, &expected),
        ("chunked", &chunked, &expected),
        ("vlc", &vlc, &vlc_expected),
    ] {
        for piece_len in 1..=64 {
            let mut parser = StreamParser::default();
            let mut parts = Vec::new();
            for piece in stream.chunks(piece_len) {
                parser
                    .feed(piece, &mut parts)
                    .map_err(|e| format!("{name} in pieces of {piece_len}: {e}"))?;
            }
            if parts != *expected {
                return Err(format!(
                    "{name} in pieces of {piece_len}: got {parts:?}, want {expected:?}"
                ));
            }
        }
    }
    let mut parser = StreamParser::default();
    if parser
        .feed(b"HTTP/1.1 404 Not Found\r\n\r\n", &mut Vec::new())
        .is_ok()
    {
        return Err("a 404 was taken for a stream".into());
    }
    Ok(())
}
