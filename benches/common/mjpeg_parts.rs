//! Reads `/stream.mjpg` the way a non-browser MJPEG client does, without copying the JPEGs.
//!
//! Three layers, fed with whatever the socket returned: the HTTP response head; the transfer
//! coding (chunked, RFC 9112 §7.1, or the bare body up to connection close, §6.3); and the
//! multipart parts (RFC 2046 §5.1.1) framed by Content-Length, as framecast writes them for
//! non-browser clients: `--BOUNDARY`, headers with Content-Length, X-Timestamp and
//! X-Frame-Sequence, a blank line, the JPEG, then CRLF. JPEG bytes are only counted and
//! skipped, so a single thread can follow hundreds of 720p streams.
//!
//! This module does no I/O; [`self_check`] runs it over a stream built with framecast's own
//! framing code before any figure is taken.

use framecast::media::multipart::{self, PartHeaders};

/// Longest response head or part head accepted: framecast's are about 250 bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Longest chunk-size line accepted (hex size plus extensions).
const MAX_CHUNK_LINE_BYTES: usize = 256;

/// One complete part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub len_bytes: usize,
    /// X-Timestamp: capture time in microseconds since the Unix epoch.
    pub captured_unix_micros: Option<u64>,
    /// X-Frame-Sequence.
    pub seq: Option<u64>,
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
            let chunked = check_response_head(head)?;
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

/// Checks for `200` and returns whether the body is chunked.
fn check_response_head(head: &[u8]) -> Result<bool, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    if status_line.split(' ').nth(1) != Some("200") {
        return Err(format!("response `{status_line}`"));
    }
    Ok(lines
        .any(|line| header_value(line, "transfer-encoding").is_some_and(|v| v.contains("chunked"))))
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
enum PartReader {
    /// Collecting the delimiter and the part headers (a leading CRLF ends the previous body).
    Head(Vec<u8>),
    Body {
        remaining: usize,
        part: Part,
    },
}

impl Default for PartReader {
    fn default() -> Self {
        Self::Head(Vec::new())
    }
}

impl PartReader {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Part>) -> Result<(), String> {
        while !data.is_empty() {
            match self {
                Self::Head(head) => {
                    let Some(used) = take_head(head, data)? else {
                        return Ok(());
                    };
                    data = &data[used..];
                    let part = parse_part_head(head)?;
                    *self = if part.len_bytes == 0 {
                        out.push(part);
                        Self::default()
                    } else {
                        Self::Body {
                            remaining: part.len_bytes,
                            part,
                        }
                    };
                }
                Self::Body { remaining, part } => {
                    let take = (*remaining).min(data.len());
                    data = &data[take..];
                    *remaining -= take;
                    if *remaining == 0 {
                        out.push(part.clone());
                        *self = Self::default();
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses `[CRLF] --BOUNDARY CRLF headers CRLF CRLF`.
fn parse_part_head(head: &[u8]) -> Result<Part, String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").skip_while(|line| line.is_empty());
    let delimiter = lines.next().unwrap_or("");
    if delimiter.strip_prefix("--") != Some(multipart::BOUNDARY) {
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
    })
}

/// Runs the parser over a response built with framecast's own framing, chunked and not, cut
/// into pieces of every size from 1 to 64 bytes, and compares the parts. Returns what differs.
pub fn self_check() -> Result<(), String> {
    let jpegs: [(u64, u64, Vec<u8>); 3] = [
        (1, 1_790_000_000_000_001, vec![0xFF; 300]),
        (
            2,
            1_790_000_000_033_334,
            b"\r\n--framecast-boundary\r\n".repeat(3),
        ),
        (5, 1_790_000_000_133_334, vec![7; 1]),
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
        });
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: multipart/x-mixed-replace\r\n";
    let identity = [head.as_bytes(), b"\r\n", &body].concat();
    let mut chunked = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for piece in body.chunks(77) {
        chunked.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    for (name, stream) in [("identity", &identity), ("chunked", &chunked)] {
        for piece_len in 1..=64 {
            let mut parser = StreamParser::default();
            let mut parts = Vec::new();
            for piece in stream.chunks(piece_len) {
                parser
                    .feed(piece, &mut parts)
                    .map_err(|e| format!("{name} in pieces of {piece_len}: {e}"))?;
            }
            if parts != expected {
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
