//! Frames from another program through a pipe: standard input, a FIFO (named pipe), or the
//! standard output of a command framecast runs (`super::exec`):
//!
//! - `yuv420p`: raw I420 frames of the configured `--size`, back to back, as
//!   `ffmpeg … -f rawvideo -pix_fmt yuv420p -` writes them;
//! - `mjpeg`: concatenated JPEGs, as `ffmpeg … -f mjpeg -` writes them, found by their
//!   markers and validated; they are passed to MJPEG viewers as they are.
//!
//! Frames are stamped with their arrival time. A short frame or a broken JPEG is one bad frame
//! (the supervisor shows a placeholder and reading goes on); end of input ends the source.
//!
//! A FIFO is opened on the reader thread, not when the source is opened: opening a FIFO for
//! reading blocks until a writer opens it, and the supervisor must go on publishing
//! placeholders meanwhile. When its writer closes it, the source ends and is reopened, and
//! the next writer is read. When the stream stops, a reader still waiting for a writer is
//! woken (an empty open for writing), so that no thread waits on the FIFO forever.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::frame::{Frame, FrameSize, Pixels};
use crate::media::mjpeg_stream::{self, MjpegSplitter};
use crate::source::spec::PipeFormat;
use crate::source::{Opener, Source, SourceError};

/// Bytes asked of the pipe per read for MJPEG: a few frames' worth at common sizes.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// The largest JPEG accepted: far above any camera's frame, small enough to bound memory when
/// the input is garbage that never ends a frame.
const MAX_JPEG_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of non-JPEG input skipped before it is reported as a bad frame: small amounts between
/// frames are normal (padding, a writer's stray bytes); this much means the input is not MJPEG.
const GARBAGE_REPORT_BYTES: u64 = 64 * 1024;
/// Buffers of earlier JPEGs kept for the next ones: a frame is let go of soon after the next
/// arrives, so a few cover it.
const SPARE_JPEG_BUFFERS: usize = 4;
/// A buffer larger than this is not kept: one huge frame must not hold its memory for good.
const MAX_SPARE_JPEG_BYTES: usize = 2 * 1024 * 1024;

const END_OF_PIPE: &str = "the pipe reached its end";

/// The input of one opening of the source: standard input in production, a FIFO, anything
/// readable in tests. An error says why there is no input now (the supervisor retries).
pub type InputFactory = Box<dyn FnMut() -> Result<Box<dyn Read + Send>, SourceError> + Send>;

/// What the end of the input means: [`SourceError::Finished`] for standard input, which can
/// never deliver again, [`SourceError::Ended`] for inputs that reopening may renew.
pub type EndOfInput = fn(String) -> SourceError;

pub struct PipeOpener {
    format: PipeFormat,
    size: FrameSize,
    input: InputFactory,
    end: EndOfInput,
    /// What the source is, for logs and `/status`.
    name: String,
    /// The FIFO read, if it is one: its waiting reader is woken when the opener goes.
    fifo: Option<(PathBuf, Arc<AtomicBool>)>,
}

impl PipeOpener {
    /// Frames from standard input. Its end is for good: no reopening brings it back.
    pub fn stdin(format: PipeFormat, size: FrameSize) -> Self {
        let mut opener = Self::new(format, size, Box::new(|| Ok(Box::new(std::io::stdin()))));
        opener.end = |_| {
            SourceError::Finished(
                "standard input has ended for good; restart the program that feeds it".into(),
            )
        };
        opener
    }

    /// Frames from the FIFO at `path`, one writer after the other.
    pub fn fifo(format: PipeFormat, size: FrameSize, path: &Path) -> Self {
        let fifo = path.to_owned();
        let closed = Arc::new(AtomicBool::new(false));
        let closed_for_input = closed.clone();
        let mut opener = Self::new(
            format,
            size,
            Box::new(move || fifo_input(&fifo, &closed_for_input)),
        );
        opener.name = format!("pipe:{format}:{}", path.display());
        opener.fifo = Some((path.to_owned(), closed));
        opener
    }

    pub fn new(format: PipeFormat, size: FrameSize, input: InputFactory) -> Self {
        Self {
            format,
            size,
            input,
            end: SourceError::Ended,
            name: format!("pipe:{format}"),
            fifo: None,
        }
    }
}

impl Drop for PipeOpener {
    fn drop(&mut self) {
        if let Some((path, closed)) = &self.fifo {
            closed.store(true, Ordering::Relaxed);
            wake_waiting_reader(path);
        }
    }
}

/// Lets a reader blocked in opening the FIFO at `path` go on: an open for writing that does
/// not block (it fails at once when no reader waits) and closes again. The reader then reads
/// the end of the input. A writer that is there keeps writing; this one writes nothing.
fn wake_waiting_reader(path: &Path) {
    let nonblocking = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let _ = OpenOptions::new()
        .write(true)
        .custom_flags(nonblocking)
        .open(path);
}

impl Opener for PipeOpener {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        let input = (self.input)()?;
        Ok(reader(
            self.format,
            self.size,
            input,
            self.name.clone(),
            self.end,
        ))
    }
}

/// A source reading `format` frames of `size` from `input`; `name` for logs, `end` for what
/// the end of the input means.
pub fn reader(
    format: PipeFormat,
    size: FrameSize,
    input: Box<dyn Read + Send>,
    name: String,
    end: EndOfInput,
) -> Box<dyn Source> {
    match format {
        PipeFormat::Yuv420p => Box::new(RawPipe {
            input,
            size,
            ended: false,
            end,
            name,
        }),
        PipeFormat::Mjpeg => Box::new(MjpegPipe {
            input,
            splitter: MjpegSplitter::new(MAX_JPEG_BYTES),
            buffers: Arc::default(),
            ended: false,
            garbage_reported: 0,
            end,
            name,
        }),
        PipeFormat::H264 => Box::new(super::h264_pipe::H264Pipe::new(input, name, end)),
    }
}

/// Checks, without blocking, that `path` is a FIFO; the input opens it when first read.
fn fifo_input(path: &Path, closed: &Arc<AtomicBool>) -> Result<Box<dyn Read + Send>, SourceError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.file_type().is_fifo() => Ok(Box::new(Fifo {
            path: path.to_owned(),
            file: None,
            closed: closed.clone(),
        })),
        Ok(_) => Err(SourceError::Failed(format!(
            "{shown} is not a FIFO (make one with `mkfifo {shown}`)"
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(SourceError::Failed(format!(
            "no FIFO at {shown} (make one with `mkfifo {shown}`)"
        ))),
        Err(e) => Err(SourceError::Failed(format!("cannot use {shown}: {e}"))),
    }
}

/// A FIFO opened on first read: the open blocks until a writer has opened it too.
struct Fifo {
    path: PathBuf,
    file: Option<File>,
    /// Set when the stream stops: a reader not yet waiting for a writer does not start to.
    closed: Arc<AtomicBool>,
}

impl Read for Fifo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let file = match &mut self.file {
            Some(file) => file,
            None if self.closed.load(Ordering::Relaxed) => return Ok(0),
            None => {
                let file = File::open(&self.path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
                })?;
                self.file.insert(file)
            }
        };
        file.read(buf)
    }
}

struct RawPipe {
    input: Box<dyn Read + Send>,
    size: FrameSize,
    ended: bool,
    end: EndOfInput,
    name: String,
}

impl Source for RawPipe {
    fn describe(&self) -> String {
        format!("{} {}", self.name, self.size)
    }

    fn reopen_after_silence(&self) -> Option<Duration> {
        None
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if self.ended {
            return Err((self.end)(END_OF_PIPE.into()));
        }
        let want = self.size.i420_len();
        let mut buf = vec![0u8; want];
        let got = read_full(&mut self.input, &mut buf)?;
        if got < want {
            self.ended = true;
            return Err(if got == 0 {
                (self.end)(END_OF_PIPE.into())
            } else {
                SourceError::BadFrame(format!(
                    "short frame: {got} of {want} bytes before the end of the pipe"
                ))
            });
        }
        Ok(Frame::from_i420(
            0,
            0,
            SystemTime::now(),
            self.size,
            Bytes::from(buf),
        ))
    }
}

/// Reads until `buf` is full or the input ends; the count read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize, SourceError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(SourceError::Failed(format!("cannot read the pipe: {e}"))),
        }
    }
    Ok(got)
}

struct MjpegPipe {
    input: Box<dyn Read + Send>,
    /// Bytes are read straight into its buffer.
    splitter: MjpegSplitter,
    buffers: Arc<JpegBuffers>,
    ended: bool,
    /// Skipped bytes already reported.
    garbage_reported: u64,
    end: EndOfInput,
    name: String,
}

impl Source for MjpegPipe {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn reopen_after_silence(&self) -> Option<Duration> {
        None
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            let buffers = &self.buffers;
            match self.splitter.next_frame_with(|jpeg| buffers.keep(jpeg)) {
                Some(Ok(jpeg)) => return jpeg_frame_scanned(jpeg, self.splitter.scan_ends()),
                Some(Err(error)) => return Err(SourceError::BadFrame(error.to_string())),
                None => {}
            }
            if self.ended {
                return Err((self.end)(END_OF_PIPE.into()));
            }
            match self.input.read(self.splitter.spare(READ_CHUNK_BYTES)) {
                Ok(0) => {
                    self.ended = true;
                    let left = self.splitter.buffered_bytes();
                    if left > 0 {
                        return Err(SourceError::BadFrame(format!(
                            "the pipe ended inside a JPEG ({left} bytes)"
                        )));
                    }
                }
                Ok(n) => {
                    self.splitter.commit(n);
                    let unreported = self.splitter.garbage_bytes() - self.garbage_reported;
                    if unreported >= GARBAGE_REPORT_BYTES {
                        self.garbage_reported += unreported;
                        return Err(SourceError::BadFrame(format!(
                            "{unreported} bytes that are not JPEG skipped"
                        )));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Failed(format!("cannot read the pipe: {e}"))),
            }
        }
    }
}

/// Buffers of JPEGs no longer held, for the next ones: a new buffer per frame went through the
/// allocator's path for large blocks twice per frame (here, and on whichever thread let the
/// frame go last), which cost more than copying the frame into it.
#[derive(Debug, Default)]
struct JpegBuffers {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl JpegBuffers {
    /// `jpeg` copied into a spare buffer, which comes back here once the frame is let go.
    fn keep(self: &Arc<Self>, jpeg: &[u8]) -> Bytes {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut bytes = spare.unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(jpeg);
        Bytes::from_owner(PooledJpeg {
            bytes,
            home: Arc::downgrade(self),
        })
    }
}

/// A JPEG's bytes in a buffer that goes back to its [`JpegBuffers`] when dropped.
struct PooledJpeg {
    bytes: Vec<u8>,
    home: Weak<JpegBuffers>,
}

impl AsRef<[u8]> for PooledJpeg {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for PooledJpeg {
    fn drop(&mut self) {
        let Some(home) = self.home.upgrade() else {
            return;
        };
        if self.bytes.capacity() > MAX_SPARE_JPEG_BYTES {
            return;
        }
        let mut spare = home.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_JPEG_BUFFERS {
            spare.push(std::mem::take(&mut self.bytes));
        }
    }
}

/// A validated JPEG as a passthrough frame; standard Huffman tables are added to JPEGs that
/// rely on them (browsers cannot decode those otherwise).
pub fn jpeg_frame(jpeg: Bytes) -> Result<Frame, SourceError> {
    jpeg_frame_scanned(jpeg, &[])
}

/// [`jpeg_frame`] for a JPEG the splitter cut out, which found where its scans end
/// (`scan_ends`): the check need not look through its entropy-coded data again.
fn jpeg_frame_scanned(jpeg: Bytes, scan_ends: &[usize]) -> Result<Frame, SourceError> {
    let info = mjpeg_stream::validate_scanned(&jpeg, scan_ends)
        .map_err(|e| SourceError::BadFrame(e.to_string()))?;
    let size = FrameSize::new(info.width, info.height);
    if info.width == 0 || info.height == 0 {
        return Err(SourceError::BadFrame("JPEG of zero size".into()));
    }
    if !size.fits_max() {
        return Err(SourceError::BadFrame(format!(
            "a JPEG of {size} is larger than the largest picture taken ({})",
            FrameSize::MAX
        )));
    }
    let jpeg = if info.has_huffman_tables {
        jpeg
    } else {
        mjpeg_stream::with_default_huffman_tables(&jpeg).unwrap_or(jpeg)
    };
    Ok(Frame {
        seq: 0,
        pts_90k: 0,
        captured_at: SystemTime::now(),
        size,
        pixels: Pixels::Jpeg(jpeg),
        repeats_previous: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn opener(format: PipeFormat, size: FrameSize, bytes: Vec<u8>) -> PipeOpener {
        let mut once = Some(bytes);
        PipeOpener::new(
            format,
            size,
            Box::new(move || Ok(Box::new(Cursor::new(once.take().unwrap_or_default())))),
        )
    }

    fn jpeg(size: FrameSize, value: u8) -> Vec<u8> {
        crate::encode::jpeg::test_jpeg(size, &vec![value; size.i420_len()])
    }

    #[test]
    fn a_fifo_path_that_is_missing_or_not_a_fifo_says_so() {
        let missing = Path::new("/nonexistent/framecast.fifo");
        let closed = Arc::new(AtomicBool::new(false));
        let Err(SourceError::Failed(reason)) = fifo_input(missing, &closed) else {
            panic!("a missing FIFO opened");
        };
        assert_eq!(
            reason,
            "no FIFO at /nonexistent/framecast.fifo \
             (make one with `mkfifo /nonexistent/framecast.fifo`)"
        );
        let Err(SourceError::Failed(reason)) = fifo_input(Path::new("/"), &closed) else {
            panic!("a directory opened as a FIFO");
        };
        assert_eq!(reason, "/ is not a FIFO (make one with `mkfifo /`)");
    }

    #[test]
    fn a_reader_waiting_for_a_writer_is_let_go_when_the_opener_goes() {
        let dir = std::env::temp_dir().join(format!("framecast-pipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("waiting.fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let mut opener = PipeOpener::fifo(PipeFormat::Mjpeg, FrameSize::new(320, 240), &path);
        let mut source = opener.open().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Ok(std::fs::read_link("/proc/thread-self").unwrap()));
            // Blocks in opening the FIFO: no writer comes.
            let _ = tx.send(Err(source.next_frame().map(|_| ())));
        });
        let Ok(Ok(thread)) = rx.recv_timeout(Duration::from_secs(10)) else {
            panic!("the reader thread did not start");
        };
        // Waits (bounded) until the reader sleeps in the open.
        let stat = Path::new("/proc").join(thread).join("stat");
        for _ in 0..500 {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            if state
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('S')
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(opener);
        let result = rx.recv_timeout(Duration::from_secs(10));
        assert!(
            matches!(result, Ok(Err(Err(SourceError::Ended(_))))),
            "{result:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_jpeg_buffer_is_reused_once_its_frame_is_let_go() {
        let buffers = Arc::new(JpegBuffers::default());
        let first = buffers.keep(b"first");
        let held = buffers.keep(b"held");
        let first_at = first.as_ptr();
        drop(first);
        let second = buffers.keep(b"2nd");
        assert_eq!(second.as_ptr(), first_at, "the buffer let go is used again");
        assert_eq!(&second[..], b"2nd");
        assert_eq!(&held[..], b"held", "a frame still held keeps its bytes");
    }

    #[test]
    fn raw_frames_then_a_short_one_then_the_end() {
        let size = FrameSize::new(160, 120);
        let mut bytes = vec![7u8; size.i420_len() * 2];
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut source = opener(PipeFormat::Yuv420p, size, bytes).open().unwrap();
        for _ in 0..2 {
            let frame = source.next_frame().unwrap();
            assert_eq!(frame.i420().unwrap().bytes()[0], 7);
        }
        assert!(
            matches!(source.next_frame(), Err(SourceError::BadFrame(m)) if m.contains("short frame"))
        );
        assert!(matches!(source.next_frame(), Err(SourceError::Ended(_))));
    }

    /// `jpeg` with its frame header claiming `width` x `height` (T.81 §B.2.2: after the SOF0
    /// marker come Lf (2 bytes), P (1), Y (2), X (2)).
    pub(crate) fn with_claimed_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        let sof = out
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG");
        out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        out
    }

    #[test]
    fn a_jpeg_claiming_a_huge_picture_is_a_bad_frame_and_the_next_one_is_fine() {
        let size = FrameSize::new(320, 240);
        let good = jpeg(size, 90);
        let mut bytes = with_claimed_size(&good, 65535, 65535);
        bytes.extend_from_slice(&good);
        let mut source = opener(PipeFormat::Mjpeg, size, bytes).open().unwrap();
        let Err(SourceError::BadFrame(reason)) = source.next_frame() else {
            panic!("a 65535x65535 JPEG passed");
        };
        assert!(reason.contains("larger than"), "{reason}");
        assert_eq!(source.next_frame().unwrap().size, size);
    }

    #[test]
    fn jpegs_pass_through_and_garbage_is_a_bad_frame_not_the_end() {
        let size = FrameSize::new(320, 240);
        let good = jpeg(size, 90);
        let mut bytes = good.clone();
        bytes.extend_from_slice(&good[..good.len() / 2]); // truncated by the next SOI
        bytes.extend_from_slice(&good);
        bytes.extend_from_slice(b"random garbage between frames");
        bytes.extend_from_slice(&good);
        let mut source = opener(PipeFormat::Mjpeg, size, bytes).open().unwrap();
        let mut results = Vec::new();
        for _ in 0..6 {
            results.push(source.next_frame());
        }
        let kinds: Vec<&str> = results
            .iter()
            .map(|r| match r {
                Ok(_) => "ok",
                Err(SourceError::BadFrame(_)) => "bad",
                Err(SourceError::Ended(_)) => "end",
                Err(_) => "other",
            })
            .collect();
        assert_eq!(kinds, ["ok", "bad", "ok", "ok", "end", "end"]);
        let Ok(first) = &results[0] else { panic!() };
        assert_eq!(first.size, size);
        assert!(matches!(&first.pixels, Pixels::Jpeg(j) if j[..] == good[..]));
    }
}
