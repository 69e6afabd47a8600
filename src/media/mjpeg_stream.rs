//! Motion-JPEG as a byte stream: finding whole JPEGs in it, checking them, and completing the
//! ones that leave out their Huffman tables. Pure: bytes in, bytes out, no I/O.
//!
//! [`MjpegSplitter`] cuts a stream of concatenated JPEGs (what `ffmpeg -f mjpeg -` writes to a
//! pipe) into frames by walking their marker structure (ITU-T T.81 §B.1.1), so that a frame is
//! only ever handed on whole. [`validate`] checks one JPEG's segment structure before it is passed
//! to viewers unchanged, and [`with_default_huffman_tables`] gives a table-less webcam frame the
//! standard tables that Motion-JPEG decoders assume (T.81 Annex K.3).

use bytes::Bytes;

/// The first byte of every marker (T.81 §B.1.1.2).
const MARKER_PREFIX: u8 = 0xFF;
/// Start of image (T.81 Table B.1).
const SOI: u8 = 0xD8;
/// End of image.
const EOI: u8 = 0xD9;
/// Start of scan: entropy-coded data follows its header.
const SOS: u8 = 0xDA;
/// Define Huffman table(s).
const DHT: u8 = 0xC4;
/// Define arithmetic coding conditioning: its presence means arithmetic coding, never Huffman.
const DAC: u8 = 0xCC;
/// Reserved "JPG" code in the SOF range; not a frame header.
const JPG: u8 = 0xC8;
/// Baseline DCT frame header.
const SOF0: u8 = 0xC0;
/// Extended sequential DCT, Huffman coding: decoded like baseline by every browser.
const SOF1: u8 = 0xC1;
/// Progressive DCT, Huffman coding.
const SOF2: u8 = 0xC2;
/// The last frame-header code (SOF15, lossless arithmetic).
const SOF15: u8 = 0xCF;
/// Temporary private use in arithmetic coding: a marker without a length (T.81 §B.1.1.3).
const TEM: u8 = 0x01;
/// First and last restart markers; they carry no length and appear inside entropy-coded data.
const RST0: u8 = 0xD0;
const RST7: u8 = 0xD7;
/// After 0xFF inside entropy-coded data, 0x00 means "a data byte 0xFF" (T.81 §B.1.1.5).
const STUFFED_ZERO: u8 = 0x00;

/// Why a byte run is not a usable JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MjpegError {
    /// The JPEG ended before its EOI: in a stream, a new SOI arrived first.
    #[error("JPEG cut short after {len_bytes} bytes, before its EOI")]
    Truncated { len_bytes: usize },
    /// The frame grew past the splitter's limit; the stream resynchronises at the next SOI.
    #[error("JPEG larger than the {max_frame_bytes}-byte limit")]
    TooLarge { max_frame_bytes: usize },
    /// The marker structure is broken at `offset` (counted from the frame's SOI).
    #[error("malformed JPEG at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    /// Well-formed, but a kind of JPEG that framecast does not pass on (arithmetic coding,
    /// lossless or hierarchical processes, 12-bit samples, heights given by DNL).
    #[error("unsupported JPEG: {reason}")]
    Unsupported { reason: &'static str },
}

/// Chroma subsampling as declared by the frame header's sampling factors (T.81 §A.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subsampling {
    /// Full-resolution chroma.
    S444,
    /// Chroma halved horizontally: what most USB webcams send.
    S422,
    /// Chroma halved in both directions.
    S420,
    /// Chroma halved vertically.
    S440,
    /// One component: luma only.
    Gray,
    /// Any other layout (4:1:1, four components, chroma tables of unequal factors...).
    Other,
}

/// What [`validate`] learnt about a JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    pub width: u32,
    pub height: u32,
    pub subsampling: Subsampling,
    /// Whether the JPEG carries at least one DHT segment. Without one it relies on the standard
    /// tables; see [`with_default_huffman_tables`].
    pub has_huffman_tables: bool,
    /// Progressive (SOF2) rather than sequential (SOF0/SOF1).
    pub progressive: bool,
}

/// Cuts a byte stream of concatenated JPEGs into whole JPEGs.
///
/// Feed bytes with [`push`](Self::push) as they arrive (or read them straight into
/// [`spare`](Self::spare) and [`commit`](Self::commit) them), then call
/// [`next_frame`](Self::next_frame) until it returns `None`. Scanning resumes where it stopped,
/// so every byte is examined once however the stream is chunked, and the results never depend
/// on the chunking. Once drained, the buffer holds at most `max_frame_bytes + 3` received bytes
/// (a frame up to the limit, then the start of a marker segment whose length has not arrived
/// yet), and the room last asked for with [`spare`](Self::spare).
pub struct MjpegSplitter {
    /// Received bytes in `buf[..filled]`, of which `buf[start..filled]` are not yet consumed;
    /// after them, room already allocated and initialised for the next read.
    buf: Vec<u8>,
    filled: usize,
    /// The first unconsumed byte: the current frame's SOI while in a frame.
    start: usize,
    /// Where scanning resumes. May lie past `buf.len()` while a marker segment's length points
    /// beyond the bytes received so far.
    pos: usize,
    state: ScanState,
    max_frame_bytes: usize,
    garbage_bytes: u64,
    /// Where each scan's entropy-coded data ended in the current frame, counted from its SOI:
    /// [`validate_scanned`] need not look for these again. The first [`MAX_SCAN_ENDS`] only.
    scan_ends: Vec<usize>,
}

/// Scan ends kept per frame: a baseline JPEG has one scan, a progressive one about ten; a
/// frame of more scans is checked the long way past these.
const MAX_SCAN_ENDS: usize = 32;

/// Counts, not contents: the buffer can hold megabytes.
impl std::fmt::Debug for MjpegSplitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MjpegSplitter")
            .field("state", &self.state)
            .field("buffered_bytes", &self.buffered_bytes())
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("garbage_bytes", &self.garbage_bytes)
            .finish()
    }
}

/// What one scanning step did.
enum Step {
    /// Needs more bytes.
    NeedMore,
    /// Moved on; scanning continues.
    Moved,
    /// Found a frame (where it lies in the buffer), or an error to report.
    Done(Result<std::ops::Range<usize>, MjpegError>),
}

/// Where in a JPEG's structure the splitter is (T.81 §B.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    /// Between frames, looking for an SOI.
    Seek,
    /// At a marker among the frame's segments.
    Marker,
    /// Inside entropy-coded data, which only an unstuffed, non-RST marker ends.
    Entropy,
}

impl MjpegSplitter {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            start: 0,
            pos: 0,
            state: ScanState::Seek,
            max_frame_bytes,
            garbage_bytes: 0,
            scan_ends: Vec::new(),
        }
    }

    /// Appends bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.spare(data.len())[..data.len()].copy_from_slice(data);
        self.commit(data.len());
    }

    /// Room for at least `len_bytes` more bytes of the stream, to read them straight into the
    /// buffer (a read into a buffer of its own and a push would copy every byte once more);
    /// [`commit`](Self::commit) then says how many were written.
    pub fn spare(&mut self, len_bytes: usize) -> &mut [u8] {
        // Drop consumed bytes once they are at least half the bytes held: each byte is then
        // moved at most about once, which keeps appending amortised O(n).
        if self.start > 0 && self.start >= self.filled - self.start {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.pos -= self.start;
            self.start = 0;
        }
        // Zeroed once when the buffer grows, then reused read after read.
        let wanted = self.filled + len_bytes;
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Takes the first `len_bytes` of [`spare`](Self::spare) as received (at most what it gave).
    pub fn commit(&mut self, len_bytes: usize) {
        self.filled = (self.filled + len_bytes).min(self.buf.len());
    }

    /// The bytes received so far.
    fn received(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Bytes skipped while looking for an SOI: between frames, and after a frame dropped as
    /// malformed or too large.
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage_bytes
    }

    /// Where each scan's entropy-coded data ended in the frame [`next_frame`](Self::next_frame)
    /// returned last (offsets in the frame), for [`validate_scanned`].
    pub fn scan_ends(&self) -> &[usize] {
        &self.scan_ends
    }

    /// Bytes received and not yet returned or skipped: the start of a frame still arriving.
    pub fn buffered_bytes(&self) -> usize {
        self.filled - self.start
    }

    /// The next whole JPEG, or the next error, or `None` when more bytes are needed.
    ///
    /// After an error the splitter has already moved on: a `Truncated` frame gives way to the
    /// frame that cut it short; after `TooLarge` and `Malformed` it looks for the next SOI.
    pub fn next_frame(&mut self) -> Option<Result<Bytes, MjpegError>> {
        self.next_frame_with(Bytes::copy_from_slice)
    }

    /// [`next_frame`](Self::next_frame), with the frame's bytes kept by `keep` (which copies
    /// them: the splitter reuses its buffer).
    pub fn next_frame_with(
        &mut self,
        keep: impl FnOnce(&[u8]) -> Bytes,
    ) -> Option<Result<Bytes, MjpegError>> {
        loop {
            let step = match self.state {
                ScanState::Seek => self.seek_soi(),
                ScanState::Marker => self.step_marker(),
                ScanState::Entropy => self.step_entropy(),
            };
            if let Step::Done(outcome) = step {
                return Some(outcome.map(|frame| keep(&self.buf[frame])));
            }
            // A frame is at least as long as the part of it scanned so far. Only a segment
            // length moves `pos` past the bytes received, and that case is handled where the
            // length is read, so the frame's first `max_frame_bytes + 1` bytes are all here.
            if self.state != ScanState::Seek && self.pos - self.start > self.max_frame_bytes {
                return Some(Err(self.too_large(self.start + self.max_frame_bytes + 1)));
            }
            if let Step::NeedMore = step {
                return None;
            }
        }
    }

    /// Skips to the next SOI. A real SOI is always followed by another marker (T.81 §B.2.1),
    /// so `FF D8 FF` is required: a stray `FF D8` in garbage does not start a frame.
    fn seek_soi(&mut self) -> Step {
        let mut at = self.start;
        loop {
            let Some(offset) = memchr::memchr(MARKER_PREFIX, &self.received()[at..]) else {
                self.skip_garbage_to(self.filled);
                return Step::NeedMore;
            };
            at += offset;
            match (self.received().get(at + 1), self.received().get(at + 2)) {
                (Some(&SOI), Some(&MARKER_PREFIX)) => {
                    self.skip_garbage_to(at);
                    self.pos = at + 2;
                    self.state = ScanState::Marker;
                    self.scan_ends.clear();
                    return Step::Moved;
                }
                // Too few bytes to tell: keep them for the next push.
                (None, _) | (Some(&SOI), None) => {
                    self.skip_garbage_to(at);
                    return Step::NeedMore;
                }
                _ => at += 1,
            }
        }
    }

    fn skip_garbage_to(&mut self, at: usize) {
        self.garbage_bytes += (at - self.start) as u64;
        self.start = at;
        self.pos = at;
    }

    /// Handles the marker at `pos`.
    fn step_marker(&mut self) -> Step {
        let at = self.pos;
        let (Some(&prefix), Some(&code)) = (self.received().get(at), self.received().get(at + 1))
        else {
            return Step::NeedMore;
        };
        if prefix != MARKER_PREFIX {
            return Step::Done(Err(self.malformed(at, "expected a marker")));
        }
        match code {
            // A fill byte: any marker may be preceded by any number of 0xFF (T.81 §B.1.1.2).
            MARKER_PREFIX => self.pos = at + 1,
            SOI => {
                let len_bytes = at - self.start;
                self.start = at;
                self.pos = at + 2;
                self.scan_ends.clear();
                return Step::Done(Err(MjpegError::Truncated { len_bytes }));
            }
            EOI => {
                let end = at + 2;
                if end - self.start > self.max_frame_bytes {
                    return Step::Done(Err(self.too_large(self.start + self.max_frame_bytes + 1)));
                }
                let frame = self.start..end;
                self.start = end;
                self.pos = end;
                self.state = ScanState::Seek;
                return Step::Done(Ok(frame));
            }
            TEM | RST0..=RST7 => self.pos = at + 2,
            STUFFED_ZERO => {
                return Step::Done(Err(self.malformed(at, "0xFF00 outside entropy-coded data")));
            }
            _ => {
                let (Some(&high), Some(&low)) =
                    (self.received().get(at + 2), self.received().get(at + 3))
                else {
                    return Step::NeedMore;
                };
                // The length counts its own two bytes but not the marker (T.81 §B.1.1.4).
                let len = usize::from(u16::from_be_bytes([high, low]));
                if len < 2 {
                    return Step::Done(Err(self.malformed(at, "marker segment length below 2")));
                }
                // The segment's body need not have arrived: `pos` may point past the buffer.
                self.pos = at + 2 + len;
                if self.pos - self.start > self.max_frame_bytes {
                    // Resynchronise at this marker rather than trust a length that may be
                    // garbage and skip over the next frame.
                    return Step::Done(Err(self.too_large(at)));
                }
                if code == SOS {
                    self.state = ScanState::Entropy;
                }
            }
        }
        Step::Moved
    }

    /// Scans entropy-coded data up to the next marker that ends it.
    fn step_entropy(&mut self) -> Step {
        // While the scan header has not fully arrived, `pos` lies past the buffer.
        let from = self.pos.min(self.filled);
        let Some(offset) = memchr::memchr(MARKER_PREFIX, &self.received()[from..]) else {
            self.pos = self.pos.max(self.filled);
            return Step::NeedMore;
        };
        let at = from + offset;
        let Some(&next) = self.received().get(at + 1) else {
            self.pos = at;
            return Step::NeedMore;
        };
        match next {
            // Stuffing and restart markers belong to the entropy-coded data (T.81 §B.1.1.5,
            // §F.1.2.3); a second 0xFF makes the first a fill byte.
            STUFFED_ZERO | RST0..=RST7 => self.pos = at + 2,
            MARKER_PREFIX => self.pos = at + 1,
            _ => {
                self.pos = at;
                self.state = ScanState::Marker;
                if self.scan_ends.len() < MAX_SCAN_ENDS {
                    self.scan_ends.push(at - self.start);
                }
            }
        }
        Step::Moved
    }

    /// Drops the current frame and resynchronises at `at`.
    fn malformed(&mut self, at: usize, reason: &'static str) -> MjpegError {
        let offset = at - self.start;
        self.start = at;
        self.pos = at;
        self.state = ScanState::Seek;
        MjpegError::Malformed { offset, reason }
    }

    /// Drops the current frame and resynchronises at `resume`, an offset in `buf` after the
    /// frame's start that is already received. Where the frame is cut depends only on the
    /// bytes, never on how they were chunked, so pushes of any size give the same results.
    fn too_large(&mut self, resume: usize) -> MjpegError {
        let resume = resume.clamp(self.start + 1, self.filled.max(self.start + 1));
        self.start = resume;
        self.pos = resume;
        self.state = ScanState::Seek;
        MjpegError::TooLarge {
            max_frame_bytes: self.max_frame_bytes,
        }
    }
}

/// The frame header fields [`validate`] reports.
struct FrameHeader {
    width: u32,
    height: u32,
    subsampling: Subsampling,
    progressive: bool,
    components: u8,
}

/// Checks that `jpeg` is one whole JPEG that browsers and libjpeg-turbo decode: SOI, a baseline,
/// extended sequential or progressive Huffman frame header, at least one scan, and EOI as its
/// last two bytes.
pub fn validate(jpeg: &[u8]) -> Result<JpegInfo, MjpegError> {
    validate_scanned(jpeg, &[])
}

/// [`validate`] for a JPEG that [`MjpegSplitter`] cut out, given where it found each scan's
/// entropy-coded data to end ([`MjpegSplitter::scan_ends`]): the check then skips that data
/// instead of looking through it for its end a second time. An end that does not point at a
/// marker that ends entropy-coded data is not taken; the data is looked through then.
pub fn validate_scanned(jpeg: &[u8], scan_ends: &[usize]) -> Result<JpegInfo, MjpegError> {
    let mut walker = SegmentWalker::new(jpeg)?;
    let mut frame: Option<FrameHeader> = None;
    let mut has_huffman_tables = false;
    let mut scans = 0usize;
    loop {
        let (at, code) = walker.next_marker()?;
        match code {
            EOI => {
                if scans == 0 {
                    return Err(malformed(at, "EOI before any scan"));
                }
                if at + 2 != jpeg.len() {
                    return Err(malformed(at + 2, "bytes after EOI"));
                }
                break;
            }
            SOI => return Err(malformed(at, "SOI inside a JPEG")),
            TEM | RST0..=RST7 => {
                return Err(malformed(at, "restart marker outside entropy-coded data"));
            }
            STUFFED_ZERO => return Err(malformed(at, "0xFF00 outside entropy-coded data")),
            _ => {
                let body = walker.segment(at)?;
                match code {
                    SOF0 | SOF1 | SOF2 => {
                        if frame.is_some() {
                            return Err(malformed(at, "second frame header"));
                        }
                        frame = Some(parse_frame_header(at, body, code == SOF2)?);
                    }
                    DAC => return Err(unsupported("arithmetic coding")),
                    DHT => {
                        check_huffman_tables(at, body)?;
                        has_huffman_tables = true;
                    }
                    code if (SOF0..=SOF15).contains(&code) && code != JPG => {
                        return Err(unsupported(
                            "not a baseline, extended sequential or progressive Huffman JPEG",
                        ));
                    }
                    SOS => {
                        let Some(frame) = &frame else {
                            return Err(malformed(at, "scan before the frame header"));
                        };
                        check_scan_header(at, body, frame.components)?;
                        match scan_ends.get(scans) {
                            Some(&end) if walker.ends_entropy_coded_data(end) => walker.pos = end,
                            _ => walker.skip_entropy_coded_data()?,
                        }
                        scans += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    let Some(frame) = frame else {
        return Err(malformed(0, "no frame header"));
    };
    Ok(JpegInfo {
        width: frame.width,
        height: frame.height,
        subsampling: frame.subsampling,
        has_huffman_tables,
        progressive: frame.progressive,
    })
}

/// Returns `jpeg` with the standard Huffman tables (T.81 Annex K.3) inserted right before its
/// first scan, or `None` if it already has tables, is progressive, or is not a JPEG that
/// [`validate`] accepts.
///
/// Many USB webcams send "MJPG" frames without a DHT segment, following the AVI1 Motion-JPEG
/// convention that decoders supply these tables; a stand-alone `.jpg` must carry them.
pub fn with_default_huffman_tables(jpeg: &[u8]) -> Option<Bytes> {
    let info = validate(jpeg).ok()?;
    // The standard tables lack the end-of-band-run symbols progressive AC scans use
    // (T.81 §G.1.2.2), so the convention only covers sequential frames.
    if info.has_huffman_tables || info.progressive {
        return None;
    }
    let first_scan = first_scan_offset(jpeg)?;
    let tables_len: usize = STANDARD_HUFFMAN_TABLES
        .iter()
        .map(|table| 1 + table.counts.len() + table.symbols.len())
        .sum();
    let segment_len = u16::try_from(2 + tables_len).ok()?;
    let mut out = Vec::with_capacity(jpeg.len() + 2 + usize::from(segment_len));
    out.extend_from_slice(&jpeg[..first_scan]);
    // One DHT segment may define several tables (T.81 §B.2.4.2).
    out.extend_from_slice(&[MARKER_PREFIX, DHT]);
    out.extend_from_slice(&segment_len.to_be_bytes());
    for table in STANDARD_HUFFMAN_TABLES {
        out.push(table.class_and_id);
        out.extend_from_slice(&table.counts);
        out.extend_from_slice(table.symbols);
    }
    out.extend_from_slice(&jpeg[first_scan..]);
    Some(Bytes::from(out))
}

/// The offset of the first SOS marker of a JPEG that [`validate`] accepted.
fn first_scan_offset(jpeg: &[u8]) -> Option<usize> {
    let mut walker = SegmentWalker::new(jpeg).ok()?;
    loop {
        let (at, code) = walker.next_marker().ok()?;
        if code == SOS {
            return Some(at);
        }
        walker.segment(at).ok()?;
    }
}

/// Walks a complete JPEG in memory marker by marker.
struct SegmentWalker<'a> {
    jpeg: &'a [u8],
    pos: usize,
}

impl<'a> SegmentWalker<'a> {
    fn new(jpeg: &'a [u8]) -> Result<Self, MjpegError> {
        if !jpeg.starts_with(&[MARKER_PREFIX, SOI]) {
            return Err(malformed(0, "does not start with SOI"));
        }
        Ok(Self { jpeg, pos: 2 })
    }

    /// The next marker's offset and code, after any fill bytes.
    fn next_marker(&mut self) -> Result<(usize, u8), MjpegError> {
        let truncated = MjpegError::Truncated {
            len_bytes: self.jpeg.len(),
        };
        if *self.jpeg.get(self.pos).ok_or(truncated.clone())? != MARKER_PREFIX {
            return Err(malformed(self.pos, "expected a marker"));
        }
        loop {
            let code = *self.jpeg.get(self.pos + 1).ok_or(truncated.clone())?;
            if code != MARKER_PREFIX {
                let at = self.pos;
                self.pos += 2;
                return Ok((at, code));
            }
            self.pos += 1;
        }
    }

    /// The body of the marker segment whose marker is at `at` (just returned by
    /// [`next_marker`](Self::next_marker)), moving past it.
    fn segment(&mut self, at: usize) -> Result<&'a [u8], MjpegError> {
        let jpeg = self.jpeg;
        let length = jpeg.get(at + 2..at + 4).ok_or(MjpegError::Truncated {
            len_bytes: jpeg.len(),
        })?;
        let len = usize::from(u16::from_be_bytes([length[0], length[1]]));
        if len < 2 {
            return Err(malformed(at, "marker segment length below 2"));
        }
        let body = jpeg
            .get(at + 4..at + 2 + len)
            .ok_or(MjpegError::Truncated {
                len_bytes: jpeg.len(),
            })?;
        self.pos = at + 2 + len;
        Ok(body)
    }

    /// Moves past entropy-coded data to the marker that ends it.
    /// Whether `at`, not before the current position, holds a marker that ends entropy-coded
    /// data: 0xFF, then neither a stuffed zero, a restart marker nor a fill byte (T.81 §B.1.1.5).
    fn ends_entropy_coded_data(&self, at: usize) -> bool {
        at >= self.pos
            && self.jpeg.get(at) == Some(&MARKER_PREFIX)
            && self
                .jpeg
                .get(at + 1)
                .is_some_and(|&code| !matches!(code, STUFFED_ZERO | RST0..=RST7 | MARKER_PREFIX))
    }

    fn skip_entropy_coded_data(&mut self) -> Result<(), MjpegError> {
        loop {
            let offset = memchr::memchr(MARKER_PREFIX, &self.jpeg[self.pos..]).ok_or(
                MjpegError::Truncated {
                    len_bytes: self.jpeg.len(),
                },
            )?;
            let at = self.pos + offset;
            match self.jpeg.get(at + 1) {
                Some(&(STUFFED_ZERO | RST0..=RST7)) => self.pos = at + 2,
                Some(&MARKER_PREFIX) => self.pos = at + 1,
                Some(_) => {
                    self.pos = at;
                    return Ok(());
                }
                None => {
                    return Err(MjpegError::Truncated {
                        len_bytes: self.jpeg.len(),
                    });
                }
            }
        }
    }
}

fn malformed(offset: usize, reason: &'static str) -> MjpegError {
    MjpegError::Malformed { offset, reason }
}

fn unsupported(reason: &'static str) -> MjpegError {
    MjpegError::Unsupported { reason }
}

/// Parses a frame header body (T.81 §B.2.2): P, Y, X, Nf, then Nf × (C, H|V, Tq).
fn parse_frame_header(
    at: usize,
    body: &[u8],
    progressive: bool,
) -> Result<FrameHeader, MjpegError> {
    let [precision, h_hi, h_lo, w_hi, w_lo, components, specs @ ..] = body else {
        return Err(malformed(at, "frame header too short"));
    };
    if *precision != 8 {
        return Err(unsupported("sample precision other than 8 bits"));
    }
    let height = u32::from(u16::from_be_bytes([*h_hi, *h_lo]));
    let width = u32::from(u16::from_be_bytes([*w_hi, *w_lo]));
    if height == 0 {
        return Err(unsupported("height defined by a DNL segment"));
    }
    if width == 0 {
        return Err(malformed(at, "zero width"));
    }
    // Progressive frames allow at most 4 components (T.81 Table B.2); framecast needs no more.
    if !(1..=4).contains(components) || specs.len() != 3 * usize::from(*components) {
        return Err(malformed(at, "bad component count in the frame header"));
    }
    let mut factors = [(0u8, 0u8); 4];
    for (factor, spec) in factors.iter_mut().zip(specs.chunks_exact(3)) {
        let (horizontal, vertical) = (spec[1] >> 4, spec[1] & 0x0F);
        if !(1..=4).contains(&horizontal) || !(1..=4).contains(&vertical) || spec[2] > 3 {
            return Err(malformed(at, "bad sampling factor or quantisation table"));
        }
        *factor = (horizontal, vertical);
    }
    let subsampling = match *components {
        1 => Subsampling::Gray,
        3 => classify_subsampling(factors[0], factors[1], factors[2]),
        _ => Subsampling::Other,
    };
    Ok(FrameHeader {
        width,
        height,
        subsampling,
        progressive,
        components: *components,
    })
}

/// Names the chroma layout from luma and chroma sampling factors (T.81 §A.1.1).
fn classify_subsampling(luma: (u8, u8), cb: (u8, u8), cr: (u8, u8)) -> Subsampling {
    if cb != cr || !luma.0.is_multiple_of(cb.0) || !luma.1.is_multiple_of(cb.1) {
        return Subsampling::Other;
    }
    match (luma.0 / cb.0, luma.1 / cb.1) {
        (1, 1) => Subsampling::S444,
        (2, 1) => Subsampling::S422,
        (2, 2) => Subsampling::S420,
        (1, 2) => Subsampling::S440,
        _ => Subsampling::Other,
    }
}

/// Checks a DHT body (T.81 §B.2.4.2): tables of Tc|Th, 16 code counts, then the symbols.
fn check_huffman_tables(at: usize, mut body: &[u8]) -> Result<(), MjpegError> {
    if body.is_empty() {
        return Err(malformed(at, "empty DHT segment"));
    }
    while let [class_and_id, rest @ ..] = body {
        if class_and_id >> 4 > 1 || class_and_id & 0x0F > 3 {
            return Err(malformed(at, "bad Huffman table class or id"));
        }
        let Some((counts, rest)) = rest.split_first_chunk::<16>() else {
            return Err(malformed(at, "DHT segment too short"));
        };
        let symbols: usize = counts.iter().map(|&n| usize::from(n)).sum();
        // A table has at most 256 symbols (T.81 §B.2.4.2, Table B.5).
        if symbols > 256 || rest.len() < symbols {
            return Err(malformed(at, "bad Huffman table symbol count"));
        }
        body = &rest[symbols..];
    }
    Ok(())
}

/// Checks a scan header body (T.81 §B.2.3): Ns, Ns × (Cs, Td|Ta), Ss, Se, Ah|Al.
fn check_scan_header(at: usize, body: &[u8], frame_components: u8) -> Result<(), MjpegError> {
    let Some((&count, rest)) = body.split_first() else {
        return Err(malformed(at, "empty scan header"));
    };
    if count == 0 || count > frame_components || rest.len() != 2 * usize::from(count) + 3 {
        return Err(malformed(at, "bad component count in the scan header"));
    }
    Ok(())
}

/// One Huffman table as a DHT segment writes it.
struct HuffmanTable {
    /// Tc (0 = DC, 1 = AC) in the high nibble, Th (the table id) in the low one.
    class_and_id: u8,
    /// BITS: how many codes have each length from 1 to 16 bits.
    counts: [u8; 16],
    /// HUFFVAL: the symbols in order of increasing code length.
    symbols: &'static [u8],
}

/// ITU-T T.81 Table K.3: luminance DC differences, code lengths and values (§K.3.1).
const LUMA_DC_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const LUMA_DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// ITU-T T.81 Table K.4: chrominance DC differences (§K.3.1).
const CHROMA_DC_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const CHROMA_DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// ITU-T T.81 Table K.5: luminance AC coefficients (§K.3.2), symbols as run/size bytes in
/// order of code length.
const LUMA_AC_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
const LUMA_AC_SYMBOLS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// ITU-T T.81 Table K.6: chrominance AC coefficients (§K.3.2).
const CHROMA_AC_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const CHROMA_AC_SYMBOLS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// The four standard tables in the order libjpeg writes them: luma (id 0) DC and AC, then
/// chroma (id 1) DC and AC. Luma tables serve grey JPEGs; the chroma ones are then unused.
const STANDARD_HUFFMAN_TABLES: [HuffmanTable; 4] = [
    HuffmanTable {
        class_and_id: 0x00,
        counts: LUMA_DC_COUNTS,
        symbols: &LUMA_DC_SYMBOLS,
    },
    HuffmanTable {
        class_and_id: 0x10,
        counts: LUMA_AC_COUNTS,
        symbols: &LUMA_AC_SYMBOLS,
    },
    HuffmanTable {
        class_and_id: 0x01,
        counts: CHROMA_DC_COUNTS,
        symbols: &CHROMA_DC_SYMBOLS,
    },
    HuffmanTable {
        class_and_id: 0x11,
        counts: CHROMA_AC_COUNTS,
        symbols: &CHROMA_AC_SYMBOLS,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

    /// A deterministic RGB picture with edges and gradients, so JPEGs have real entropy data.
    fn test_image(width: usize, height: usize, seed: u8) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let checker = if (x / 8 + y / 8) % 2 == 0 { 200 } else { 30 };
                rgb.push((x * 255 / width) as u8 ^ seed);
                rgb.push(checker);
                rgb.push(((x * y) % 251) as u8 ^ seed.rotate_left(3));
            }
        }
        rgb
    }

    fn encode(width: usize, height: usize, seed: u8, subsamp: Subsamp) -> Vec<u8> {
        let rgb = test_image(width, height, seed);
        let mut compressor = Compressor::new().unwrap();
        compressor.set_quality(90).unwrap();
        compressor.set_subsamp(subsamp).unwrap();
        let image = Image {
            pixels: &rgb[..],
            width,
            pitch: width * 3,
            height,
            format: PixelFormat::RGB,
        };
        compressor.compress_to_vec(image).unwrap()
    }

    fn decode_rgb(jpeg: &[u8]) -> Vec<u8> {
        turbojpeg::decompress(jpeg, PixelFormat::RGB)
            .unwrap()
            .pixels
    }

    fn split_all(splitter: &mut MjpegSplitter) -> Vec<Result<Bytes, MjpegError>> {
        let mut out = Vec::new();
        // Bounded: each call consumes bytes or returns None.
        for _ in 0..10_000 {
            match splitter.next_frame() {
                Some(item) => out.push(item),
                None => return out,
            }
        }
        panic!("splitter did not stop");
    }

    fn frames(jpegs: &[Vec<u8>]) -> Vec<Result<Bytes, MjpegError>> {
        jpegs
            .iter()
            .map(|jpeg| Ok(Bytes::copy_from_slice(jpeg)))
            .collect()
    }

    fn three_jpegs() -> Vec<Vec<u8>> {
        vec![
            encode(64, 48, 1, Subsamp::Sub2x1),
            encode(32, 32, 2, Subsamp::Sub2x2),
            encode(48, 16, 3, Subsamp::None),
        ]
    }

    #[test]
    fn splits_concatenated_jpegs() {
        let jpegs = three_jpegs();
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&jpegs.concat());
        assert_eq!(split_all(&mut splitter), frames(&jpegs));
        assert_eq!(splitter.garbage_bytes(), 0);
        assert_eq!(splitter.buffered_bytes(), 0);
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_frames() {
        let jpegs = three_jpegs();
        let stream = jpegs.concat();
        let mut splitter = MjpegSplitter::new(1 << 20);
        let mut got = Vec::new();
        for byte in &stream {
            splitter.push(std::slice::from_ref(byte));
            got.extend(split_all(&mut splitter));
        }
        assert_eq!(got, frames(&jpegs));
    }

    #[test]
    fn reading_into_spare_room_gives_the_same_frames_as_pushing() {
        let jpegs = three_jpegs();
        let stream = jpegs.concat();
        let mut splitter = MjpegSplitter::new(1 << 20);
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            // More room than arrives, as with a read that returns what the pipe holds.
            let room = splitter.spare(64);
            assert!(room.len() >= 64);
            room[..chunk.len()].copy_from_slice(chunk);
            splitter.commit(chunk.len());
            got.extend(split_all(&mut splitter));
        }
        assert_eq!(got, frames(&jpegs));
        assert_eq!(splitter.buffered_bytes(), 0);
        // Bytes offered but not committed are not part of the stream.
        splitter.spare(16).fill(0xFF);
        splitter.commit(0);
        assert_eq!(splitter.buffered_bytes(), 0);
        assert!(split_all(&mut splitter).is_empty());
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let jpegs = three_jpegs();
        let stream = jpegs.concat();
        for cut in 0..=stream.len() {
            let mut splitter = MjpegSplitter::new(1 << 20);
            splitter.push(&stream[..cut]);
            let mut got = split_all(&mut splitter);
            splitter.push(&stream[cut..]);
            got.extend(split_all(&mut splitter));
            assert_eq!(got, frames(&jpegs), "cut at {cut}");
        }
    }

    #[test]
    fn skips_and_counts_garbage_between_frames() {
        let jpegs = three_jpegs();
        // Garbage with near-misses: a lone FF, FF D8 not followed by FF, an EOI.
        let garbage: &[u8] = b"junk\xFF\x00\xFF\xD8\x00--boundary\r\n\xFF\xD9";
        let mut stream = garbage.to_vec();
        for jpeg in &jpegs {
            stream.extend_from_slice(jpeg);
            stream.extend_from_slice(garbage);
        }
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&stream);
        assert_eq!(split_all(&mut splitter), frames(&jpegs));
        assert_eq!(splitter.garbage_bytes(), 4 * garbage.len() as u64);
    }

    #[test]
    fn truncated_frame_gives_way_to_the_next() {
        let jpegs = three_jpegs();
        let cut = jpegs[0].len() / 2;
        let mut stream = jpegs[0][..cut].to_vec();
        stream.extend_from_slice(&jpegs[1]);
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&stream);
        assert_eq!(
            split_all(&mut splitter),
            vec![
                Err(MjpegError::Truncated { len_bytes: cut }),
                Ok(Bytes::copy_from_slice(&jpegs[1])),
            ]
        );
    }

    #[test]
    fn truncated_inside_the_header_gives_way_to_the_next() {
        let jpegs = three_jpegs();
        // Cut right after SOI and the first marker segment's start: the next SOI is then where
        // the splitter expects a marker.
        let mut stream = jpegs[0][..2].to_vec();
        stream.extend_from_slice(&jpegs[1]);
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&stream);
        assert_eq!(
            split_all(&mut splitter),
            vec![
                Err(MjpegError::Truncated { len_bytes: 2 }),
                Ok(Bytes::copy_from_slice(&jpegs[1])),
            ]
        );
    }

    #[test]
    fn oversized_frame_is_dropped_and_the_stream_resyncs() {
        let small = encode(16, 16, 4, Subsamp::Sub2x2);
        let big = encode(256, 256, 5, Subsamp::None);
        let limit = small.len() + 100;
        assert!(big.len() > 2 * limit);
        let stream = [small.clone(), big.clone(), small.clone()].concat();
        for chunk in [1, 7, 4096, stream.len()] {
            let mut splitter = MjpegSplitter::new(limit);
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                splitter.push(part);
                got.extend(split_all(&mut splitter));
                // Memory stays bounded by the limit, whatever the chunk size.
                assert!(splitter.buffered_bytes() <= limit + 3);
            }
            assert_eq!(
                got,
                vec![
                    Ok(Bytes::copy_from_slice(&small)),
                    Err(MjpegError::TooLarge {
                        max_frame_bytes: limit
                    }),
                    Ok(Bytes::copy_from_slice(&small)),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn segment_longer_than_the_limit_fails_early() {
        let next = encode(16, 16, 17, Subsamp::Sub2x2);
        // SOI, then an APP1 segment claiming 0xFFFF bytes, of which only 100 follow.
        let mut stream = vec![0xFF, SOI, 0xFF, 0xE1, 0xFF, 0xFF];
        stream.extend_from_slice(&[0x55; 100]);
        stream.extend_from_slice(&next);
        let mut splitter = MjpegSplitter::new(1000);
        splitter.push(&stream[..6]);
        // Known too large as soon as the length arrives, long before the bytes do.
        assert_eq!(
            split_all(&mut splitter),
            vec![Err(MjpegError::TooLarge {
                max_frame_bytes: 1000
            })]
        );
        splitter.push(&stream[6..]);
        assert_eq!(split_all(&mut splitter), frames(&[next]));
        // Resynchronised at the APP1 marker: its 4 bytes and the 100 that follow are skipped.
        assert_eq!(splitter.garbage_bytes(), 104);
    }

    #[test]
    fn frame_of_exactly_the_limit_passes() {
        let jpeg = encode(32, 32, 6, Subsamp::Sub2x2);
        let mut splitter = MjpegSplitter::new(jpeg.len());
        splitter.push(&jpeg);
        assert_eq!(
            split_all(&mut splitter),
            frames(std::slice::from_ref(&jpeg))
        );
        let mut splitter = MjpegSplitter::new(jpeg.len() - 1);
        splitter.push(&jpeg);
        assert_eq!(
            split_all(&mut splitter),
            vec![Err(MjpegError::TooLarge {
                max_frame_bytes: jpeg.len() - 1
            })]
        );
    }

    #[test]
    fn bad_segment_length_is_malformed() {
        let jpeg = encode(16, 16, 7, Subsamp::Sub2x2);
        let next = encode(16, 16, 8, Subsamp::Sub2x2);
        // SOI, then APP0 with a length of 1.
        let mut broken = jpeg.clone();
        broken[4] = 0;
        broken[5] = 1;
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&[broken, next.clone()].concat());
        let got = split_all(&mut splitter);
        assert_eq!(
            got[0],
            Err(MjpegError::Malformed {
                offset: 2,
                reason: "marker segment length below 2"
            })
        );
        assert_eq!(got.last(), Some(&Ok(Bytes::copy_from_slice(&next))));
    }

    /// A hand-made JPEG whose scan data holds stuffed 0xFF bytes, restart markers and fill
    /// bytes: the splitter must not end the frame at any of them.
    fn hand_made_jpeg(scan: &[u8]) -> Vec<u8> {
        let mut jpeg = vec![0xFF, SOI];
        // SOF0: 8 bits, 8x8, one component, factors 1x1, table 0.
        jpeg.extend_from_slice(&[0xFF, SOF0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        jpeg.extend_from_slice(&[0xFF, SOS, 0, 8, 1, 1, 0x00, 0, 63, 0]);
        jpeg.extend_from_slice(scan);
        jpeg.extend_from_slice(&[0xFF, EOI]);
        jpeg
    }

    #[test]
    fn stuffing_restart_and_fill_bytes_stay_inside_the_frame() {
        let scan = [
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD7, 0xFF, 0xFF, 0x00, 0x78,
        ];
        let jpeg = hand_made_jpeg(&scan);
        let stream = [jpeg.clone(), jpeg.clone()].concat();
        let mut splitter = MjpegSplitter::new(1 << 20);
        for byte in &stream {
            splitter.push(std::slice::from_ref(byte));
        }
        assert_eq!(
            split_all(&mut splitter),
            frames(&[jpeg.clone(), jpeg.clone()])
        );
        let info = validate(&jpeg).unwrap();
        assert_eq!((info.width, info.height), (8, 8));
        assert_eq!(info.subsampling, Subsampling::Gray);
        assert!(!info.has_huffman_tables);
    }

    #[test]
    fn restart_markers_from_libjpeg_turbo_split_and_validate() {
        // The turbojpeg crate cannot ask for a restart interval, so an RST marker is put into a
        // real scan by hand: the structure stays legal (T.81 §F.1.2.3), only the pixels change.
        let jpeg = encode(64, 64, 9, Subsamp::Sub2x2);
        let sos = first_scan_offset(&jpeg).unwrap();
        let mut with_rst = jpeg.clone();
        let scan_start = sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
        with_rst.splice(scan_start + 10..scan_start + 10, [0xFF, 0xD3]);
        assert!(validate(&with_rst).is_ok());
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&[with_rst.clone(), jpeg.clone()].concat());
        assert_eq!(split_all(&mut splitter), frames(&[with_rst, jpeg]));
    }

    #[test]
    fn validate_reports_size_and_subsampling() {
        for (subsamp, expected) in [
            (Subsamp::None, Subsampling::S444),
            (Subsamp::Sub2x1, Subsampling::S422),
            (Subsamp::Sub2x2, Subsampling::S420),
            (Subsamp::Sub1x2, Subsampling::S440),
            (Subsamp::Gray, Subsampling::Gray),
            (Subsamp::Sub4x1, Subsampling::Other),
        ] {
            let jpeg = encode(80, 48, 10, subsamp);
            assert_eq!(
                validate(&jpeg),
                Ok(JpegInfo {
                    width: 80,
                    height: 48,
                    subsampling: expected,
                    has_huffman_tables: true,
                    progressive: false,
                }),
                "{subsamp:?}"
            );
        }
    }

    /// A progressive JPEG: several scans, with DHT segments between them.
    fn progressive_jpeg() -> Vec<u8> {
        let rgb = test_image(64, 32, 12);
        let mut compressor = Compressor::new().unwrap();
        compressor.set_progressive(true).unwrap();
        compressor
            .compress_to_vec(Image {
                pixels: &rgb[..],
                width: 64,
                pitch: 64 * 3,
                height: 32,
                format: PixelFormat::RGB,
            })
            .unwrap()
    }

    #[test]
    fn the_splitters_scan_ends_give_the_same_checks() {
        let mut jpegs = three_jpegs();
        jpegs.push(progressive_jpeg());
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&jpegs.concat());
        for jpeg in &jpegs {
            let frame = splitter.next_frame().unwrap().unwrap();
            assert_eq!(&frame[..], &jpeg[..]);
            let ends = splitter.scan_ends().to_vec();
            // One end per scan, each at the marker after the scan's data.
            assert!(!ends.is_empty());
            for &end in &ends {
                assert_eq!(jpeg[end], MARKER_PREFIX);
                assert!(!matches!(jpeg[end + 1], STUFFED_ZERO | RST0..=RST7));
            }
            assert_eq!(validate_scanned(jpeg, &ends), validate(jpeg));
        }
        let progressive = splitter.scan_ends().len();
        assert!(progressive > 1, "{progressive} scans");
    }

    #[test]
    fn scan_ends_that_are_not_markers_are_not_taken() {
        let jpeg = encode(32, 32, 5, Subsamp::Sub2x2);
        let expected = validate(&jpeg);
        // Inside the entropy-coded data, past the end, and before the scan: all looked past.
        let sos = jpeg
            .windows(2)
            .position(|w| w == [MARKER_PREFIX, SOS])
            .unwrap();
        for wrong in [sos + 20, jpeg.len() + 5, 0] {
            assert_eq!(validate_scanned(&jpeg, &[wrong]), expected, "end {wrong}");
        }
    }

    #[test]
    fn validate_accepts_progressive() {
        let rgb = test_image(64, 32, 11);
        let mut compressor = Compressor::new().unwrap();
        compressor.set_progressive(true).unwrap();
        compressor.set_subsamp(Subsamp::Sub2x2).unwrap();
        let jpeg = compressor
            .compress_to_vec(Image {
                pixels: &rgb[..],
                width: 64,
                pitch: 64 * 3,
                height: 32,
                format: PixelFormat::RGB,
            })
            .unwrap();
        let info = validate(&jpeg).unwrap();
        assert!(info.progressive);
        assert_eq!(info.subsampling, Subsampling::S420);
        // Several scans with DHT segments between them still split as one frame.
        let mut splitter = MjpegSplitter::new(1 << 20);
        splitter.push(&[jpeg.clone(), jpeg.clone()].concat());
        assert_eq!(split_all(&mut splitter), frames(&[jpeg.clone(), jpeg]));
    }

    #[test]
    fn validate_rejects_broken_structure() {
        let jpeg = encode(32, 32, 12, Subsamp::Sub2x2);
        let n = jpeg.len();
        assert_eq!(
            validate(&jpeg[..n - 2]),
            Err(MjpegError::Truncated { len_bytes: n - 2 })
        );
        assert_eq!(
            validate(&jpeg[..n / 2]),
            Err(MjpegError::Truncated { len_bytes: n / 2 })
        );
        assert!(matches!(
            validate(&jpeg[2..]),
            Err(MjpegError::Malformed { offset: 0, .. })
        ));
        let mut trailing = jpeg.clone();
        trailing.push(0);
        assert_eq!(
            validate(&trailing),
            Err(MjpegError::Malformed {
                offset: n,
                reason: "bytes after EOI"
            })
        );
        assert!(matches!(
            validate(&[0xFF, SOI, 0xFF, EOI]),
            Err(MjpegError::Malformed { .. })
        ));
        let mut arithmetic = jpeg.clone();
        let sof = find_marker(&jpeg, SOF0);
        arithmetic[sof + 1] = 0xC9;
        assert!(matches!(
            validate(&arithmetic),
            Err(MjpegError::Unsupported { .. })
        ));
        let mut zero_width = jpeg.clone();
        zero_width[sof + 7] = 0;
        zero_width[sof + 8] = 0;
        assert!(matches!(
            validate(&zero_width),
            Err(MjpegError::Malformed { .. })
        ));
    }

    fn find_marker(jpeg: &[u8], code: u8) -> usize {
        let mut walker = SegmentWalker::new(jpeg).unwrap();
        loop {
            let (at, found) = walker.next_marker().unwrap();
            if found == code {
                return at;
            }
            walker.segment(at).unwrap();
        }
    }

    /// Removes every DHT segment (they all sit before the first scan in a sequential JPEG).
    fn strip_huffman_tables(jpeg: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut walker = SegmentWalker::new(jpeg).unwrap();
        let mut stripped = jpeg[..2].to_vec();
        let mut tables = Vec::new();
        loop {
            let (at, code) = walker.next_marker().unwrap();
            if code == SOS {
                stripped.extend_from_slice(&jpeg[at..]);
                return (stripped, tables);
            }
            let body = walker.segment(at).unwrap();
            if code == DHT {
                tables.extend_from_slice(body);
            } else {
                stripped.extend_from_slice(&jpeg[at..at + 4 + body.len()]);
            }
        }
    }

    #[test]
    fn standard_tables_are_what_libjpeg_turbo_writes() {
        // turbojpeg without optimised coding writes exactly the Annex K tables.
        let jpeg = encode(64, 48, 13, Subsamp::Sub2x1);
        let (_, tables) = strip_huffman_tables(&jpeg);
        let mut ours = Vec::new();
        for table in STANDARD_HUFFMAN_TABLES {
            ours.push(table.class_and_id);
            ours.extend_from_slice(&table.counts);
            ours.extend_from_slice(table.symbols);
            let counted: usize = table.counts.iter().map(|&n| usize::from(n)).sum();
            assert_eq!(counted, table.symbols.len());
        }
        assert_eq!(tables, ours);
    }

    #[test]
    fn restores_standard_tables_to_a_table_less_jpeg() {
        for subsamp in [Subsamp::Sub2x1, Subsamp::Sub2x2, Subsamp::Gray] {
            let jpeg = encode(64, 48, 14, subsamp);
            assert_eq!(with_default_huffman_tables(&jpeg), None);
            let (stripped, _) = strip_huffman_tables(&jpeg);
            let info = validate(&stripped).unwrap();
            assert!(!info.has_huffman_tables);
            let restored = with_default_huffman_tables(&stripped).unwrap();
            let info = validate(&restored).unwrap();
            assert!(info.has_huffman_tables);
            assert_eq!(restored.len(), stripped.len() + 4 + 416);
            assert_eq!(decode_rgb(&restored), decode_rgb(&jpeg), "{subsamp:?}");
        }
    }

    #[test]
    fn no_tables_added_to_what_does_not_validate() {
        assert_eq!(with_default_huffman_tables(b""), None);
        assert_eq!(with_default_huffman_tables(&[0xFF, SOI, 0xFF]), None);
        let jpeg = encode(16, 16, 15, Subsamp::Sub2x2);
        let (stripped, _) = strip_huffman_tables(&jpeg);
        assert_eq!(
            with_default_huffman_tables(&stripped[..stripped.len() - 1]),
            None
        );
    }

    /// xorshift64: deterministic pseudo-random bytes without a dependency.
    fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    /// Splits `stream` pushed in `chunk`-byte pieces; the results and the garbage count.
    fn split_in_chunks(
        stream: &[u8],
        chunk: usize,
        max_frame_bytes: usize,
    ) -> (Vec<Result<Bytes, MjpegError>>, u64) {
        let mut splitter = MjpegSplitter::new(max_frame_bytes);
        let mut got = Vec::new();
        for part in stream.chunks(chunk) {
            splitter.push(part);
            got.extend(split_all(&mut splitter));
            assert!(splitter.buffered_bytes() <= max_frame_bytes + 3);
        }
        (got, splitter.garbage_bytes())
    }

    #[test]
    fn random_bytes_never_panic_and_chunking_never_matters() {
        let jpeg = encode(32, 16, 16, Subsamp::Sub2x2);
        // Larger than the JPEGs, and smaller (so that frames are dropped as too large).
        for (seed, max_frame_bytes) in (1..150u64).flat_map(|seed| [(seed, 1024), (seed, 300)]) {
            let mut noise = pseudo_random_bytes(seed, 3000);
            // Bias towards markers so the interesting paths are reached.
            for (i, byte) in noise.iter_mut().enumerate() {
                if i % 5 == 0 {
                    *byte = 0xFF;
                }
            }
            // Also a stream of real JPEGs with a few bytes overwritten.
            let mut mutated = [jpeg.clone(), jpeg.clone(), jpeg.clone()].concat();
            for (i, r) in pseudo_random_bytes(seed + 1000, 6).iter().enumerate() {
                let at = (usize::from(*r) * 13 + i * 331) % mutated.len();
                mutated[at] = *r;
            }
            for input in [&noise, &mutated] {
                let _ = validate(input);
                let _ = with_default_huffman_tables(input);
                let whole = split_in_chunks(input, input.len(), max_frame_bytes);
                for chunk in [1, 3, usize::from(input[0] % 64) + 1] {
                    assert_eq!(
                        split_in_chunks(input, chunk, max_frame_bytes),
                        whole,
                        "seed {seed} chunk {chunk}"
                    );
                }
                for frame in whole.0.into_iter().flatten() {
                    assert!(frame.len() <= max_frame_bytes);
                    assert!(frame.starts_with(&[0xFF, SOI]));
                    assert!(frame.ends_with(&[0xFF, EOI]));
                    let _ = validate(&frame);
                    let _ = with_default_huffman_tables(&frame);
                }
            }
        }
    }
}
