//! The H.264 thread's ffmpeg encoder process ([`FfmpegH264`]): started for the stream's
//! picture size, fed each frame, its access units handed back in order with their own frames'
//! capture times, and restarted when it dies, stalls or breaks a rule.
//!
//! - IDR cadence: ffmpeg makes every `frames_per_idr`-th frame of the process an IDR
//!   (`-force_key_frames`), and a segment is that many frames, so segments start at its IDRs
//!   as long as the frame count follows the capture clock. A frame the source or the hub lost
//!   (a hole in `pts_90k`) is therefore filled with the last picture again, at its own time,
//!   so the count stays aligned; a longer hole (over [`MAX_FILL_FRAMES`] or a segment) starts the process again (its
//!   first frame is an IDR) behind a break in the stream.
//! - The rate gate of the openh264 path is not used here: it re-encodes a frame that overran
//!   its segment's budget as an IDR at once, and through a pipe a frame cannot be taken back
//!   and encoded again, nor can a key frame be asked for per frame. The ffmpeg encoders keep
//!   the bitrate with their own rate control over a one-second buffer (`-maxrate`,
//!   `-bufsize`), and the segmenter's early cuts ([`crate::hls::segmenter`]) are never needed
//!   on this path, since the IDRs come on the fixed cadence.
//! - A failure (the process ended, stalled or broke a rule) kills it and breaks the stream:
//!   the caller closes the open segment, so everything listed stays valid, and the next
//!   segment starts at the new process's first IDR behind a discontinuity, its times still
//!   the capture clock's. The process is started again after a back-off (doubling from
//!   [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]); frames in between are not encoded (counted). After
//!   [`MAX_FAILURES_IN_A_ROW`] failures without a long healthy run between them it gives up and
//!   openh264 takes over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::encode::ffmpeg_args::{DEFAULT_X264_PRESET, FfmpegParams};
use crate::encode::ffmpeg_h264::{EncodedFrame, FfmpegError, FfmpegH264};
use crate::encode::h264::H264Settings;
use crate::encode::h264_choice::{EncoderState, H264EncoderKind};
use crate::frame::{CLOCK_90K, Frame};

/// The wait before the first restart of a failed process; it doubles with each failure in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// Failures in a row after which openh264 replaces the ffmpeg encoder.
pub const MAX_FAILURES_IN_A_ROW: u32 = 4;
/// A process that gave this many seconds of access units has recovered: its failures are
/// forgotten.
const HEALTHY_RUN_S: u64 = 30;
/// The longest hole filled with repeated pictures; a longer one starts the process again.
/// Each filled frame is encoded, so this bounds the burst a hole costs.
const MAX_FILL_FRAMES: u64 = 8;
/// How long a process replaced on purpose (a new picture size) may take to give its last
/// access units.
const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the H.264 thread does with the encoder's output, in order.
#[derive(Debug)]
pub enum PipedEvent {
    /// An access unit, with its own frame's time.
    Unit(EncodedFrame),
    /// The stream of access units breaks here: close the open segment; the next unit is an
    /// IDR that starts the next one.
    Break,
    /// The ffmpeg encoder failed too often: openh264 takes over (the reason, one line).
    GiveUp(String),
}

/// The ffmpeg encoder of one stream, across its processes.
pub struct PipedEncoder {
    kind: H264EncoderKind,
    settings: H264Settings,
    process: Option<FfmpegH264>,
    /// The last frame given to the process and its time: a hole after it is filled with it.
    last_given: Option<Arc<Frame>>,
    failures_in_a_row: u32,
    retry_at: Option<Instant>,
    /// Access units the current process gave.
    units_from_process: u64,
}

impl PipedEncoder {
    pub fn new(kind: H264EncoderKind, settings: H264Settings) -> Self {
        Self {
            kind,
            settings,
            process: None,
            last_given: None,
            failures_in_a_row: 0,
            retry_at: None,
            units_from_process: 0,
        }
    }

    pub fn kind(&self) -> H264EncoderKind {
        self.kind
    }

    /// Whether a process runs now.
    pub fn running(&self) -> bool {
        self.process.is_some()
    }

    /// Stops the process (nobody wants HLS now, or a source's own H.264 is back); the next
    /// frame starts another.
    pub fn stop(&mut self, state: &EncoderState) {
        self.process = None;
        self.last_given = None;
        self.retry_at = None;
        state.pid.store(0, Ordering::Relaxed);
    }

    fn params(&self, frame: &Frame) -> FfmpegParams {
        FfmpegParams {
            size: frame.size,
            fps: self.settings.fps,
            bitrate_bps: self.settings.bitrate_bps,
            frames_per_idr: self.settings.frames_per_idr,
            x264_preset: DEFAULT_X264_PRESET,
        }
    }

    /// Encodes an I420 frame: gives it to the process (starting one if none runs) and
    /// appends what the process gave back, in order, to `events`.
    pub fn encode(
        &mut self,
        frame: &Arc<Frame>,
        now: Instant,
        state: &EncoderState,
        events: &mut Vec<PipedEvent>,
    ) {
        if let Some(retry_at) = self.retry_at {
            if now < retry_at {
                state.frames_lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.retry_at = None;
        }
        let interval_90k = CLOCK_90K / u64::from(self.settings.fps.max(1));
        let mut fill = Vec::new();
        if let (Some(process), Some(last)) = (&self.process, &self.last_given) {
            let missing = missing_frames(last.pts_90k, frame.pts_90k, interval_90k);
            let replace = process.size() != frame.size
                || missing > u64::from(self.settings.frames_per_idr).min(MAX_FILL_FRAMES);
            if replace {
                // A new picture size, or a hole longer than a segment: the process ends here
                // and the next one starts with an IDR.
                self.replace_process(now, state, events);
            } else {
                fill = (1..=missing)
                    .map(|k| Arc::new(repeat_of(last, k, interval_90k, frame)))
                    .collect();
            }
        }
        if self.process.is_none() {
            match FfmpegH264::start(self.kind, self.params(frame)) {
                Ok(process) => {
                    state.pid.store(u64::from(process.pid()), Ordering::Relaxed);
                    tracing::info!(
                        encoder = %self.kind,
                        pid = process.pid(),
                        size = %frame.size,
                        "ffmpeg H.264 encoder started"
                    );
                    self.process = Some(process);
                    self.units_from_process = 0;
                }
                Err(error) => {
                    self.fail(error, now, state, events);
                    return;
                }
            }
        }
        let Some(process) = self.process.as_mut() else {
            return;
        };
        let given = fill
            .iter()
            .chain(std::iter::once(frame))
            .try_for_each(|f| process.give(f, f.pts_90k, now));
        let taken = given.and_then(|()| process.take_ready(now));
        match taken {
            Ok(units) => {
                self.last_given = Some(frame.clone());
                self.units_from_process += units.len() as u64;
                if self.units_from_process >= HEALTHY_RUN_S * u64::from(self.settings.fps) {
                    self.failures_in_a_row = 0;
                }
                events.extend(units.into_iter().map(PipedEvent::Unit));
            }
            Err(error) => self.fail(error, now, state, events),
        }
    }

    /// Ends the process on purpose, keeping what it still gives.
    fn replace_process(
        &mut self,
        now: Instant,
        state: &EncoderState,
        events: &mut Vec<PipedEvent>,
    ) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        state.pid.store(0, Ordering::Relaxed);
        self.last_given = None;
        match process.finish(FINISH_TIMEOUT) {
            Ok(units) => {
                events.extend(units.into_iter().map(PipedEvent::Unit));
                events.push(PipedEvent::Break);
            }
            Err(error) => self.fail(error, now, state, events),
        }
    }

    fn fail(
        &mut self,
        error: FfmpegError,
        now: Instant,
        state: &EncoderState,
        events: &mut Vec<PipedEvent>,
    ) {
        self.process = None;
        self.last_given = None;
        state.pid.store(0, Ordering::Relaxed);
        match &error {
            FfmpegError::Stalled { .. } => {
                state.stalls.fetch_add(1, Ordering::Relaxed);
            }
            FfmpegError::Rule(_) => {
                state.rule_breaks.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        events.push(PipedEvent::Break);
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
            events.push(PipedEvent::GiveUp(format!(
                "{} failed {} times in a row, last: {error}",
                self.kind, self.failures_in_a_row
            )));
            return;
        }
        let backoff = backoff(self.failures_in_a_row);
        self.retry_at = Some(now + backoff);
        state.restarts.fetch_add(1, Ordering::Relaxed);
        // Bounded: one line per failure, and failures are spaced by the back-off.
        tracing::warn!(
            encoder = %self.kind,
            %error,
            retry_in_ms = backoff.as_millis() as u64,
            "the ffmpeg H.264 encoder failed; starting it again"
        );
    }
}

/// The wait before restart number `failures` (1 for the first).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Frames missing between one at `last_90k` and the next at `next_90k`, at `interval_90k`:
/// rounded, so that jitter of under half a frame counts as none.
pub fn missing_frames(last_90k: u64, next_90k: u64, interval_90k: u64) -> u64 {
    let interval = interval_90k.max(1);
    let delta = next_90k.saturating_sub(last_90k);
    ((delta + interval / 2) / interval).saturating_sub(1)
}

/// The `k`-th frame filling the hole after `last`: its picture again, at its own time on the
/// frame grid (and the capture clock), before `next`.
fn repeat_of(last: &Frame, k: u64, interval_90k: u64, next: &Frame) -> Frame {
    let offset_90k = k * interval_90k;
    Frame {
        seq: last.seq,
        pts_90k: last.pts_90k + offset_90k,
        captured_at: last.captured_at
            + Duration::from_micros(offset_90k * 1_000_000 / CLOCK_90K).min(
                next.captured_at
                    .duration_since(last.captured_at)
                    .unwrap_or_default(),
            ),
        size: last.size,
        pixels: last.pixels.clone(),
        repeats_previous: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn back_off_doubles_and_is_bounded() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(3), FIRST_BACKOFF * 4);
        assert_eq!(backoff(50), MAX_BACKOFF);
    }

    #[test]
    fn holes_are_counted_in_whole_frames() {
        assert_eq!(missing_frames(0, 3000, 3000), 0);
        assert_eq!(
            missing_frames(0, 4400, 3000),
            0,
            "jitter under half a frame"
        );
        assert_eq!(missing_frames(0, 4600, 3000), 1);
        assert_eq!(missing_frames(0, 9000, 3000), 2);
        assert_eq!(missing_frames(9000, 0, 3000), 0, "time never runs back");
    }

    #[test]
    fn a_filled_frame_repeats_the_picture_at_its_own_time() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let size = crate::frame::FrameSize::new(16, 16);
        let pixels = bytes::Bytes::from(vec![7; size.i420_len()]);
        let last = Frame::from_i420(5, 30_000, at, size, pixels.clone());
        let next = Frame::from_i420(
            8,
            39_000,
            at + Duration::from_millis(100),
            size,
            bytes::Bytes::from(vec![9; size.i420_len()]),
        );
        let second = repeat_of(&last, 2, 3000, &next);
        assert_eq!(second.pts_90k, 36_000);
        assert_eq!(second.captured_at, at + Duration::from_micros(66_666));
        assert!(second.repeats_previous);
        assert_eq!(second.i420().unwrap().bytes(), &pixels[..]);
    }
}
