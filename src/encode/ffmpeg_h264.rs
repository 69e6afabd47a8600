//! An H.264 encoder that is an ffmpeg process: I420 frames are written to its stdin on one
//! side, access units are read from its stdout on the other, so the encoder works on one frame
//! while the next is being written and the last one read.
//!
//! ffmpeg is a separate program, so framecast's licence stays its own whatever encoder ffmpeg
//! was built with (libx264 is GPL). Its command line is [`super::ffmpeg_args`].
//!
//! - A writer thread takes frames from a bounded queue and writes them to stdin; a reader
//!   thread cuts stdout into access units ([`crate::media::h264_stream`]) into another bounded
//!   queue; a third keeps the last lines ffmpeg printed to stderr, for the error it died of.
//! - Each access unit is matched back to its frame ([`PendingFrames`]) and checked
//!   ([`check_unit`]) as it is taken: IDR where one was asked for, no B slices, SPS and PPS
//!   before each IDR.
//! - A stall is a process that holds more frames than [`MAX_FRAMES_HELD`] or keeps its oldest
//!   frame longer than [`MAX_FRAME_WAIT`]; a dead process is one whose stdout ended or whose
//!   stdin broke. Either is an error the caller restarts the process on.
//! - An Annex B stream marks an access unit's end only with the next one's start, so each
//!   unit is read one frame late (the last on [`FfmpegH264::finish`]).
//!
//! Dropping the encoder kills the process and joins its threads.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::frame::{Frame, FrameSize, Pixels};
use crate::media::h264_stream::{AccessUnit as SplitUnit, AccessUnitSplitter};

use super::ffmpeg_args::{FfmpegParams, ffmpeg_args};
use super::h264::AccessUnit;
use super::h264_check::{PendingFrame, PendingFrames, RuleBreak, check_unit, stalled};
use super::h264_choice::H264EncoderKind;

/// The program run; `FRAMECAST_FFMPEG` names another (a build of its own, or a path).
pub fn ffmpeg_program() -> String {
    std::env::var("FRAMECAST_FFMPEG").unwrap_or_else(|_| "ffmpeg".to_owned())
}

/// Frames waiting to be written to stdin: a process that starts reads nothing for some tenths
/// of a second (loading, opening a device), and the frames of that time wait here. The frames
/// are the hub's own buffers (shared, not copied); at most this many are held.
const WRITE_QUEUE_FRAMES: usize = 30;

/// Access units read and not yet taken: bounded, so a caller that stops taking them stops the
/// reader, then ffmpeg, then the writer, and the stall shows.
const READ_QUEUE_UNITS: usize = 64;

/// The most frames an encoder may hold before it counts as stalled: a starting process's
/// queue ([`WRITE_QUEUE_FRAMES`]), the few frames hardware encoders keep in flight (V4L2 M2M
/// up to about 6) and the one the reader waits for; a process further behind has stopped.
pub const MAX_FRAMES_HELD: usize = WRITE_QUEUE_FRAMES + 8;

/// The longest the oldest frame may wait for its access unit: a process that starts takes
/// some hundreds of milliseconds to give its first, a running one a few milliseconds.
pub const MAX_FRAME_WAIT: Duration = Duration::from_secs(3);

/// stderr lines kept for the error message.
const STDERR_LINES: usize = 4;

/// The reader's buffer: a large access unit in a few reads.
const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error("{0} is not encoded by an ffmpeg process")]
    NotFfmpeg(H264EncoderKind),
    #[error("cannot start {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("the ffmpeg encoder ended{}", last_words(.stderr))]
    Died { stderr: String },
    #[error("the ffmpeg encoder stalled: {held} frames without an access unit")]
    Stalled { held: usize },
    #[error("the ffmpeg encoder broke a rule: {0}")]
    Rule(#[from] RuleBreak),
    #[error("frame of {got} is not the size the encoder was started with ({want})")]
    WrongSize { got: FrameSize, want: FrameSize },
    #[error("the frame has no I420 picture")]
    NotI420,
}

fn last_words(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// One access unit out of the process, with the time of the frame it encodes.
#[derive(Debug)]
pub struct EncodedFrame {
    pub unit: AccessUnit,
    pub pts_90k: u64,
    /// The frame was told to be an IDR (a segment starts there).
    pub must_be_idr: bool,
}

/// A running ffmpeg encoder process (see the module doc).
pub struct FfmpegH264 {
    child: Child,
    frames: Option<SyncSender<Bytes>>,
    units: Option<Receiver<SplitUnit>>,
    /// Parameter sets read without a picture, put before the next picture.
    carried: Vec<u8>,
    pending: PendingFrames,
    stderr: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
    params: FfmpegParams,
    /// Frames given so far: the next one's number in ffmpeg's `n`.
    frames_given: u64,
    dead: bool,
}

impl FfmpegH264 {
    /// Starts the process for `kind`.
    pub fn start(kind: H264EncoderKind, params: FfmpegParams) -> Result<Self, FfmpegError> {
        let args = ffmpeg_args(kind, &params).ok_or(FfmpegError::NotFfmpeg(kind))?;
        let program = ffmpeg_program();
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| FfmpegError::Spawn {
                program: program.clone(),
                error,
            })?;
        let (Some(stdin), Some(stdout), Some(stderr_pipe)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(FfmpegError::Died {
                stderr: "no pipes".into(),
            });
        };
        let (frame_tx, frame_rx) = mpsc::sync_channel::<Bytes>(WRITE_QUEUE_FRAMES);
        let (unit_tx, unit_rx) = mpsc::sync_channel::<SplitUnit>(READ_QUEUE_UNITS);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::with_capacity(3);
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map_err(|error| FfmpegError::Spawn {
                    program: format!("the {name} thread"),
                    error,
                })
        };
        let started = spawn("ffmpeg-in", Box::new(move || write_frames(stdin, frame_rx)))
            .and_then(|writer| {
                threads.push(writer);
                spawn("ffmpeg-out", Box::new(move || read_units(stdout, unit_tx)))
            })
            .and_then(|reader| {
                threads.push(reader);
                let lines = stderr.clone();
                spawn(
                    "ffmpeg-err",
                    Box::new(move || keep_stderr(stderr_pipe, lines)),
                )
            });
        match started {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error);
            }
        }
        Ok(Self {
            child,
            frames: Some(frame_tx),
            units: Some(unit_rx),
            carried: Vec::new(),
            pending: PendingFrames::default(),
            stderr,
            threads,
            params,
            frames_given: 0,
            dead: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn size(&self) -> FrameSize {
        self.params.size
    }

    /// Frames given and not yet returned.
    pub fn frames_held(&self) -> usize {
        self.pending.len()
    }

    /// Whether the next frame given will be an IDR (ffmpeg's `-force_key_frames` cadence).
    pub fn idr_due(&self) -> bool {
        self.frames_given
            .is_multiple_of(u64::from(self.params.frames_per_idr.max(1)))
    }

    /// Gives the process a frame, with the time its access unit is to carry. Never blocks: a
    /// process that does not keep up shows as a stall.
    pub fn give(&mut self, frame: &Frame, pts_90k: u64, now: Instant) -> Result<(), FfmpegError> {
        if frame.size != self.params.size {
            return Err(FfmpegError::WrongSize {
                got: frame.size,
                want: self.params.size,
            });
        }
        let Pixels::I420(bytes) = &frame.pixels else {
            return Err(FfmpegError::NotI420);
        };
        if bytes.len() != frame.size.i420_len() {
            return Err(FfmpegError::NotI420);
        }
        let must_be_idr = self.idr_due();
        let Some(frames) = &self.frames else {
            return Err(self.died());
        };
        match frames.try_send(bytes.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(FfmpegError::Stalled {
                    held: self.pending.len() + WRITE_QUEUE_FRAMES,
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(self.died()),
        }
        self.frames_given += 1;
        self.pending.push(PendingFrame {
            seq: frame.seq,
            pts_90k,
            captured_at: frame.captured_at,
            size: frame.size,
            must_be_idr,
            given_at: now,
        });
        Ok(())
    }

    /// The access units ready now, each matched to its frame and checked; an error if the
    /// process died, stalled or broke a rule (the units before it are lost with it).
    pub fn take_ready(&mut self, now: Instant) -> Result<Vec<EncodedFrame>, FfmpegError> {
        let mut out = Vec::new();
        loop {
            let Some(units) = &self.units else {
                return Err(self.died());
            };
            match units.try_recv() {
                Ok(unit) => {
                    if let Some(encoded) = self.match_unit(unit, now)? {
                        out.push(encoded);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.died()),
            }
        }
        if stalled(&self.pending, MAX_FRAMES_HELD, MAX_FRAME_WAIT, now) {
            return Err(FfmpegError::Stalled {
                held: self.pending.len(),
            });
        }
        Ok(out)
    }

    /// Ends the input and takes every access unit still to come, waiting up to `timeout` for
    /// the process to finish. The process is gone afterwards.
    pub fn finish(&mut self, timeout: Duration) -> Result<Vec<EncodedFrame>, FfmpegError> {
        // Closing the queue lets the writer close stdin once the frames in it are written.
        self.frames = None;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(units) = &self.units {
            let left = deadline.saturating_duration_since(Instant::now());
            match units.recv_timeout(left) {
                Ok(unit) => {
                    if let Some(encoded) = self.match_unit(unit, Instant::now())? {
                        out.push(encoded);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(FfmpegError::Stalled {
                        held: self.pending.len(),
                    });
                }
            }
        }
        self.units = None;
        if !self.pending.is_empty() {
            return Err(self.died());
        }
        Ok(out)
    }

    fn match_unit(
        &mut self,
        unit: SplitUnit,
        now: Instant,
    ) -> Result<Option<EncodedFrame>, FfmpegError> {
        if !unit.has_picture {
            // Parameter sets alone: they belong to the next picture.
            self.carried.extend_from_slice(&unit.annex_b);
            return Ok(None);
        }
        let annex_b = if self.carried.is_empty() {
            unit.annex_b.to_vec()
        } else {
            let mut joined = std::mem::take(&mut self.carried);
            joined.extend_from_slice(&unit.annex_b);
            joined
        };
        let frame = self.pending.take_oldest()?;
        let facts = check_unit(frame.seq, &annex_b, frame.must_be_idr)?;
        Ok(Some(EncodedFrame {
            unit: AccessUnit {
                seq: frame.seq,
                captured_at: frame.captured_at,
                size: frame.size,
                annex_b,
                is_idr: facts.is_idr,
                encode_time: now.saturating_duration_since(frame.given_at),
            },
            pts_90k: frame.pts_90k,
            must_be_idr: frame.must_be_idr,
        }))
    }

    /// The error of a process that ended: ffmpeg's last words.
    fn died(&mut self) -> FfmpegError {
        if !self.dead {
            self.dead = true;
            // Reaped now if it has exited; a process still running is killed on drop.
            let _ = self.child.try_wait();
        }
        let lines = match self.stderr.lock() {
            Ok(lines) => lines.join(" / "),
            Err(_) => String::new(),
        };
        FfmpegError::Died { stderr: lines }
    }
}

impl Drop for FfmpegH264 {
    fn drop(&mut self) {
        self.frames = None;
        self.units = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn write_frames(mut stdin: ChildStdin, frames: Receiver<Bytes>) {
    while let Ok(frame) = frames.recv() {
        if stdin.write_all(&frame).is_err() {
            // The process is gone; the reader sees its stdout end.
            return;
        }
    }
    // The queue closed: stdin closes here, and ffmpeg flushes and exits.
}

fn read_units(mut stdout: impl Read, units: SyncSender<SplitUnit>) {
    let mut splitter = AccessUnitSplitter::default();
    let mut buf = vec![0; READ_CHUNK_BYTES];
    let mut out = Vec::new();
    loop {
        let read = match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        // An access unit too large is dropped by the splitter; the frame it belonged to then
        // takes the next unit's place, and the checks or the stall find it.
        let _ = splitter.push(&buf[..read], &mut out);
        for unit in out.drain(..) {
            if units.send(unit).is_err() {
                return;
            }
        }
    }
    splitter.finish(&mut out);
    for unit in out.drain(..) {
        if units.send(unit).is_err() {
            return;
        }
    }
}

fn keep_stderr(stderr: impl Read, lines: Arc<Mutex<Vec<String>>>) {
    let reader = BufReader::new(stderr);
    // Lines are bounded in count and length; ffmpeg at `-loglevel error` prints few.
    for line in reader.split(b'\n').map_while(Result::ok) {
        let text: String = String::from_utf8_lossy(&line).chars().take(300).collect();
        let text = text.trim().to_owned();
        if text.is_empty() {
            continue;
        }
        if let Ok(mut kept) = lines.lock() {
            if kept.len() == STDERR_LINES {
                kept.remove(0);
            }
            kept.push(text);
        }
    }
}

/// The frames of a test encode: few and small, so that it takes a fraction of a second.
const PROBE_SIZE: FrameSize = FrameSize::new(320, 240);
const PROBE_FRAMES: u64 = 4;
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A short test encode with `kind`: a few small frames through the same process, command
/// line and checks as a stream's (an IDR with parameter sets first, one access unit per frame,
/// no B slices). `Err` says in one line why it failed.
pub fn probe(kind: H264EncoderKind, fps: u32, bitrate_bps: u32) -> Result<(), String> {
    let params = FfmpegParams {
        size: PROBE_SIZE,
        fps,
        bitrate_bps,
        frames_per_idr: 2,
        x264_preset: "ultrafast",
    };
    let mut encoder = FfmpegH264::start(kind, params).map_err(|e| e.to_string())?;
    let mut pixels = vec![128u8; PROBE_SIZE.i420_len()];
    let started = Instant::now();
    let mut units = 0;
    for n in 0..PROBE_FRAMES {
        // Moving content, so that inter frames have something to code.
        for (i, px) in pixels.iter_mut().take(PROBE_SIZE.luma_len()).enumerate() {
            *px = ((i as u64 + n * 7) % 200) as u8 + 16;
        }
        let frame = Frame::from_i420(
            n + 1,
            n * 3000,
            SystemTime::now(),
            PROBE_SIZE,
            Bytes::from(pixels.clone()),
        );
        encoder
            .give(&frame, n * 3000, Instant::now())
            .map_err(|e| e.to_string())?;
        // A process that died at once is seen here, without waiting for the timeout.
        units += encoder
            .take_ready(started)
            .map_err(|e| e.to_string())?
            .len();
    }
    let rest = encoder.finish(PROBE_TIMEOUT).map_err(|e| e.to_string())?;
    units += rest.len();
    if units as u64 != PROBE_FRAMES {
        return Err(format!(
            "{units} access units for {PROBE_FRAMES} frames in the test encode"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264;
    use crate::source::TestPattern;

    /// x264 (ultrafast) for `size` at 30 fps, 200 kbit/s, an IDR a second.
    fn x264_at_200k(size: FrameSize) -> FfmpegH264 {
        FfmpegH264::start(
            H264EncoderKind::X264,
            FfmpegParams {
                size,
                fps: 30,
                bitrate_bps: 200_000,
                frames_per_idr: 30,
                x264_preset: "ultrafast",
            },
        )
        .unwrap()
    }

    fn have_ffmpeg() -> bool {
        let found = Command::new(ffmpeg_program())
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found && std::env::var_os("FRAMECAST_ALLOW_MISSING_CLIENTS").is_none() {
            panic!("ffmpeg is needed for this test (FRAMECAST_ALLOW_MISSING_CLIENTS=1 skips it)");
        }
        found
    }

    /// x264 through the process: one checked access unit per frame, in order, with its own
    /// frame's times, IDRs on the cadence, and a stream openh264 decodes.
    #[test]
    fn x264_frames_come_back_in_order_with_their_times() {
        if !have_ffmpeg() {
            return;
        }
        let size = FrameSize::new(320, 240);
        let mut encoder = FfmpegH264::start(
            H264EncoderKind::X264,
            FfmpegParams {
                size,
                fps: 30,
                bitrate_bps: 500_000,
                frames_per_idr: 10,
                x264_preset: "ultrafast",
            },
        )
        .unwrap();
        let mut pattern = TestPattern::new(size, 30);
        let mut buf = vec![0; size.i420_len()];
        let mut out = Vec::new();
        for n in 0..25u64 {
            let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_000 + n * 33_333);
            pattern.render(n + 1, at, &mut buf);
            let frame = Frame::from_i420(100 + n, n * 3000, at, size, Bytes::from(buf.clone()));
            encoder.give(&frame, 7 + n * 3000, Instant::now()).unwrap();
            out.extend(encoder.take_ready(Instant::now()).unwrap());
        }
        out.extend(encoder.finish(Duration::from_secs(20)).unwrap());
        assert_eq!(out.len(), 25);
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        for (n, encoded) in out.iter().enumerate() {
            let n = n as u64;
            assert_eq!(encoded.unit.seq, 100 + n);
            assert_eq!(encoded.pts_90k, 7 + n * 3000);
            assert_eq!(
                encoded.unit.captured_at,
                SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_000 + n * 33_333)
            );
            assert_eq!(encoded.unit.is_idr, n.is_multiple_of(10), "frame {n}");
            assert_eq!(encoded.must_be_idr, n.is_multiple_of(10));
            let sample = h264::to_avcc_sample(&encoded.unit.annex_b);
            assert_eq!(sample.sps.is_some(), encoded.unit.is_idr);
            assert!(
                decoder.decode(&encoded.unit.annex_b).unwrap().is_some(),
                "frame {n}"
            );
        }
    }

    #[test]
    fn a_killed_process_is_an_error_not_a_hang() {
        if !have_ffmpeg() {
            return;
        }
        let size = FrameSize::new(160, 120);
        let mut encoder = x264_at_200k(size);
        let _ = encoder.child.kill();
        let _ = encoder.child.wait();
        let frame = Frame::from_i420(
            1,
            0,
            SystemTime::now(),
            size,
            Bytes::from(vec![0; size.i420_len()]),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let error = loop {
            assert!(Instant::now() < deadline, "the death is never seen");
            if let Err(error) = encoder.give(&frame, 0, Instant::now()) {
                break error;
            }
            if let Err(error) = encoder.take_ready(Instant::now()) {
                break error;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            matches!(
                error,
                FfmpegError::Died { .. } | FfmpegError::Stalled { .. }
            ),
            "{error}"
        );
        // A frame of another size is refused before it reaches the process.
        let other = Frame::from_i420(
            2,
            0,
            SystemTime::now(),
            FrameSize::new(64, 48),
            Bytes::from(vec![0; 64 * 48 * 3 / 2]),
        );
        assert!(matches!(
            encoder.give(&other, 0, Instant::now()),
            Err(FfmpegError::WrongSize { .. })
        ));
    }

    /// A process that takes no more input (stopped with SIGSTOP) is a stall once its queue is
    /// full: `give` says so instead of blocking.
    #[test]
    fn a_process_that_stops_reading_is_a_stall() {
        if !have_ffmpeg() {
            return;
        }
        let size = FrameSize::new(320, 240);
        let mut encoder = x264_at_200k(size);
        let stopped = Command::new("kill")
            .args(["-STOP", &encoder.pid().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let frame = Frame::from_i420(
            1,
            0,
            SystemTime::now(),
            size,
            Bytes::from(vec![0; size.i420_len()]),
        );
        // Each frame is larger than a pipe's buffer: the writer holds one, the queue the rest.
        let mut given = 0;
        let error = loop {
            assert!(given <= MAX_FRAMES_HELD + 2, "never a stall");
            match encoder.give(&frame, 0, Instant::now()) {
                Ok(()) => given += 1,
                Err(error) => break error,
            }
        };
        assert!(matches!(error, FfmpegError::Stalled { .. }), "{error}");
        assert!(
            given >= WRITE_QUEUE_FRAMES,
            "{given} frames taken before the stall"
        );
        // Dropping it kills the stopped process and joins its threads.
    }

    #[test]
    fn the_probe_passes_x264_and_names_what_failed_for_a_missing_encoder() {
        if !have_ffmpeg() {
            return;
        }
        probe(H264EncoderKind::X264, 30, 300_000).unwrap();
        // This machine has no VA-API device: the test encode fails and says so.
        if !std::path::Path::new(super::super::ffmpeg_args::DRI_RENDER_NODE).exists() {
            let reason = probe(H264EncoderKind::Vaapi, 30, 300_000).unwrap_err();
            assert!(!reason.is_empty());
        }
        assert!(probe(H264EncoderKind::OpenH264, 30, 300_000).is_err());
    }
}
