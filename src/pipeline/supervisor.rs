//! Keeps frames flowing whatever the source does.
//!
//! The source runs on a reader thread of its own. Frames are numbered and given presentation
//! times from their capture times (so `seq` and the 90 kHz timeline continue across failures),
//! and whenever the source is down, stalled or sending garbage placeholder frames are published
//! at the configured rate instead: viewers stay connected, HLS keeps its cadence, and
//! `/status` and `/healthz` say what is wrong. A failed source is reopened with back-off (1 s,
//! doubling to 10 s); video resumes for connected viewers as soon as it is back.
//!
//! The reader thread publishes each frame itself, under the supervisor's lock: handing every
//! frame to the supervisor thread cost a thread wake-up per frame, as much CPU as the rest of
//! the frame's way to an MJPEG viewer's socket. The supervisor thread wakes only for what is
//! due by the clock: a stall to notice, a placeholder, a reopen.
//!
//! Every decision takes the time as an argument (`now`); only [`Supervisor::run`] and the
//! reader thread read the clock, so tests drive the state machine through minutes of simulated
//! time without sleeping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::capture_clock::{CaptureClock, Placement};
use crate::error::Error;
use crate::frame::{Frame, FrameSize, Pixels};
use crate::hub::{Hub, SourceState};
use crate::picture::placeholder::Placeholder;
use crate::repeated_log::{RepeatedLog, SUMMARY_INTERVAL};
use crate::source::{Opener, Source, SourceError};

/// First reopen delay, and the most it grows to.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A live source that sends nothing for this long counts as down (and at least three frame
/// intervals, for slow rates): long enough for jitter, short enough that viewers see why.
const STALL_AFTER: Duration = Duration::from_secs(1);
/// A new picture size is taken only once it has held this long: a source that flaps between
/// two sizes must not cut an HLS segment (a new init section) per frame.
const SIZE_CHANGE_HOLD: Duration = Duration::from_secs(1);
/// The longest the supervisor thread sleeps while frames flow, so that it sees a stop soon
/// even if the reader is stuck (a reader that is not says so at once).
const MAX_SLEEP: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
pub struct SupervisorSettings {
    /// Placeholders are made at this size.
    pub size: FrameSize,
    pub fps: u32,
    /// Mark frames identical to the one before (`--drop-same-frames`).
    pub drop_same_frames: bool,
}

/// Starts the supervisor thread.
pub fn spawn(
    opener: Box<dyn Opener>,
    hub: Arc<Hub>,
    settings: SupervisorSettings,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name("source".into())
        .spawn(move || Supervisor::new(opener, hub, settings, stop, Instant::now()).run())
        .map_err(Error::Thread)
}

struct Supervisor {
    opener: Box<dyn Opener>,
    hub: Arc<Hub>,
    settings: SupervisorSettings,
    stop: Arc<AtomicBool>,
    placeholder: Placeholder,
    frame_interval: Duration,
    stall_after: Duration,
    /// The reader thread of the open source, by its number; `None` while no source is open.
    /// A reader whose number is no longer here was given up on and stops.
    reader: Option<u64>,
    readers_started: u64,
    backoff: Duration,
    next_open_at: Option<Instant>,
    /// Why the picture is a placeholder now; `None` while the source delivers.
    down: Option<SourceError>,
    last_frame_at: Instant,
    next_placeholder_at: Instant,
    frames_published: u64,
    previous_pixels: Option<Pixels>,
    /// Every open after the first is a reopen attempt.
    opened_before: bool,
    error_log: RepeatedLog,
    size_gate: SizeGate,
    /// Presentation times from capture times, continuous across failures.
    clock: CaptureClock,
    /// How long the open source may be silent before it is given up and reopened.
    reopen_after_silence: Option<Duration>,
}

impl Supervisor {
    fn new(
        opener: Box<dyn Opener>,
        hub: Arc<Hub>,
        settings: SupervisorSettings,
        stop: Arc<AtomicBool>,
        now: Instant,
    ) -> Self {
        let frame_interval = Duration::from_secs(1) / settings.fps.max(1);
        Self {
            opener,
            hub,
            placeholder: Placeholder::new(settings.size),
            frame_interval,
            stall_after: STALL_AFTER.max(frame_interval * 3),
            settings,
            stop,
            reader: None,
            readers_started: 0,
            backoff: BACKOFF_START,
            next_open_at: Some(now),
            down: None,
            last_frame_at: now,
            next_placeholder_at: now,
            frames_published: 0,
            previous_pixels: None,
            opened_before: false,
            error_log: RepeatedLog::new(SUMMARY_INTERVAL),
            size_gate: SizeGate::new(SIZE_CHANGE_HOLD),
            clock: CaptureClock::new(settings.fps),
            reopen_after_silence: None,
        }
    }

    fn run(self) {
        self.hub
            .set_source_health(|h| h.description = self.opener.describe());
        let stop = self.stop.clone();
        let shared = Arc::new(Shared {
            supervisor: Mutex::new(self),
            wake: Condvar::new(),
        });
        let mut supervisor = shared.lock();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            supervisor.open_if_due(now, |source, number| {
                spawn_reader(source, number, shared.clone())
            });
            if supervisor.reader.is_some() {
                supervisor.on_silence(now);
            }
            supervisor.publish_placeholder_if_due(Instant::now());
            let sleep = supervisor.sleep_before_next_event(Instant::now());
            supervisor = match shared.wake.wait_timeout(supervisor, sleep) {
                Ok((supervisor, _)) => supervisor,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        // The opener goes now, on this thread, which the server waits for: it stops a command
        // it runs. A reader still blocked in its source (holding the shared state) ends once
        // its read returns, and publishes nothing more.
        supervisor.reader = None;
        let opener = std::mem::replace(&mut supervisor.opener, Box::new(Stopped));
        drop(supervisor);
        drop(opener);
    }

    /// Opens the source if it is due, and starts its reader with `start_reader` (given the
    /// source and the reader's number; it says whether the thread started).
    fn open_if_due(
        &mut self,
        now: Instant,
        start_reader: impl FnOnce(Box<dyn Source>, u64) -> bool,
    ) {
        let Some(at) = self.next_open_at else { return };
        if self.reader.is_some() || now < at {
            return;
        }
        if self.opened_before {
            self.hub.set_source_health(|h| h.reopen_attempts += 1);
        }
        self.opened_before = true;
        match self.opener.open() {
            Ok(source) => {
                tracing::info!(source = %source.describe(), "source opened");
                self.next_open_at = None;
                self.last_frame_at = now;
                self.reopen_after_silence = source.reopen_after_silence();
                self.readers_started += 1;
                let number = self.readers_started;
                self.reader = Some(number);
                self.update_process_health();
                if !start_reader(source, number) {
                    let error = SourceError::Failed("cannot start the reader thread".into());
                    self.on_error(error, now);
                }
            }
            Err(error) => self.on_error(error, now),
        }
    }

    fn on_frame(&mut self, mut frame: Frame, now: Instant) {
        // After an outage, say so; a bad frame between good ones is counted, not logged.
        if let Some(reason) = self.down.take()
            && !matches!(reason, SourceError::BadFrame(_))
        {
            tracing::info!("source delivers frames again");
        }
        self.backoff = BACKOFF_START;
        self.last_frame_at = now;
        // A source's H.264 changes size only with a new SPS at an IDR, and every frame after
        // it needs it: taken at once, never held back or dropped.
        let admitted = match &frame.pixels {
            Pixels::H264(unit) if unit.is_idr => self.size_gate.take(frame.size),
            _ => self.size_gate.admit(frame.size, now),
        };
        if !admitted {
            self.hub
                .set_source_health(|h| h.frames_dropped_size_change += 1);
            return;
        }
        self.mark_repeat(&mut frame);
        self.hub.set_source_health(|h| {
            h.state = SourceState::Live;
            h.headline = None;
            h.down_since = None;
        });
        self.publish(frame);
    }

    /// With `--drop-same-frames`, marks a frame whose samples equal the previous frame's (one
    /// memcmp; cheap next to encoding it).
    fn mark_repeat(&mut self, frame: &mut Frame) {
        // An H.264 access unit equal to the one before is still a picture every later one
        // may refer to: never marked.
        if self.settings.drop_same_frames && !matches!(frame.pixels, Pixels::H264(_)) {
            frame.repeats_previous = self.previous_pixels.as_ref() == Some(&frame.pixels);
            self.previous_pixels = Some(frame.pixels.clone());
        }
    }

    fn on_error(&mut self, error: SourceError, now: Instant) {
        self.log_error(&error, now);
        self.update_process_health();
        let recoverable = matches!(error, SourceError::BadFrame(_));
        if !recoverable {
            self.reader = None;
            self.next_open_at = match error {
                SourceError::Unsupported(_) | SourceError::Finished(_) => None,
                _ => Some(now + self.backoff),
            };
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        if matches!(error, SourceError::Finished(_)) {
            self.hub.finish_source();
        }
        self.go_down(error, now);
    }

    /// For a command's output: whether it runs, its restarts and last exit, for `/status`.
    fn update_process_health(&self) {
        if let Some(process) = self.opener.process() {
            self.hub.set_source_health(|h| h.process = Some(process));
        }
    }

    /// The first error of a run in full, then a count every few seconds while it lasts.
    fn log_error(&mut self, error: &SourceError, now: Instant) {
        let headline = error.headline();
        self.error_log.warn(headline, error, now);
    }

    fn on_silence(&mut self, now: Instant) {
        let quiet = now.saturating_duration_since(self.last_frame_at);
        if self
            .reopen_after_silence
            .is_some_and(|after_silence| quiet >= after_silence)
        {
            // The reader thread may stay blocked in the device; it ends once its read returns
            // and finds nobody listening.
            let reason = format!("no frame for {:.0} s; reopening", quiet.as_secs_f64());
            self.on_error(SourceError::Failed(reason), now);
            return;
        }
        if self.down.is_none() && quiet >= self.stall_after {
            let reason = self
                .opener
                .silence_reason()
                .unwrap_or_else(|| format!("no frame for {:.1} s", quiet.as_secs_f64()));
            self.go_down(SourceError::Ended(reason), now);
        }
    }

    fn go_down(&mut self, error: SourceError, now: Instant) {
        let was_up = self.down.is_none();
        let headline = error.headline();
        let message = error.to_string();
        self.hub.set_source_health(|h| {
            h.state = SourceState::Down;
            h.headline = Some(headline.into());
            h.last_error = Some(message.clone());
            h.errors += 1;
            h.bad_frames += u64::from(matches!(error, SourceError::BadFrame(_)));
            h.down_since.get_or_insert(now);
        });
        self.down = Some(error);
        if was_up {
            // Show the reason at once, then keep the configured rate.
            self.next_placeholder_at = now;
        }
    }

    fn publish_placeholder_if_due(&mut self, now: Instant) {
        let Some(reason) = &self.down else { return };
        if now < self.next_placeholder_at {
            return;
        }
        let captured_at = SystemTime::now();
        let i420 = self
            .placeholder
            .render(reason.headline(), &reason.to_string(), captured_at);
        let frame = Frame::from_i420(0, 0, captured_at, self.settings.size, Bytes::from(i420));
        self.publish_placed(frame, false);
        self.next_placeholder_at += self.frame_interval;
        if self.next_placeholder_at < now {
            // Fell behind (a long open attempt): carry on from now rather than burst.
            self.next_placeholder_at = now + self.frame_interval;
        }
    }

    /// Numbers the frame on the supervisor's continuous timeline and hands it to the hub; a
    /// frame that comes before the timeline has room for it (a source faster than configured)
    /// is dropped, unless it is an H.264 picture, which the ones after it need.
    fn publish(&mut self, frame: Frame) {
        self.publish_placed(frame, true);
    }

    /// [`Self::publish`]; `from_source`: the frame came from the source (a placeholder, made
    /// here at the configured rate, is never thinned).
    fn publish_placed(&mut self, mut frame: Frame, from_source: bool) {
        let droppable = from_source && !matches!(frame.pixels, Pixels::H264(_));
        let Placement::At { pts_90k } = self.clock.place(frame.captured_at, droppable) else {
            return;
        };
        self.frames_published += 1;
        frame.seq = self.frames_published;
        frame.pts_90k = pts_90k;
        self.hub.publish_frame(Arc::new(frame));
    }

    /// How long the supervisor thread may sleep: until the next placeholder or open attempt,
    /// or, while a source is open and delivers, until it would count as stalled.
    fn sleep_before_next_event(&self, now: Instant) -> Duration {
        if self.reader.is_some() && self.down.is_none() {
            let mut until = self.last_frame_at + self.stall_after;
            if let Some(after_silence) = self.reopen_after_silence {
                until = until.min(self.last_frame_at + after_silence);
            }
            return until
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), MAX_SLEEP.max(self.frame_interval));
        }
        let mut until = self.next_placeholder_at;
        if let Some(open_at) = self.next_open_at {
            until = until.min(open_at);
        }
        until
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), self.frame_interval)
    }
}

/// Holds a stream's picture size steady: a frame of another size passes only once that size
/// has come without interruption for `hold`; until then such frames are dropped.
#[derive(Debug)]
struct SizeGate {
    hold: Duration,
    current: Option<FrameSize>,
    /// A different size seen since, and when it was first seen in the current run.
    candidate: Option<(FrameSize, Instant)>,
}

impl SizeGate {
    fn new(hold: Duration) -> Self {
        Self {
            hold,
            current: None,
            candidate: None,
        }
    }

    /// Takes `size` at once (a source's H.264 at an IDR with a new SPS).
    fn take(&mut self, size: FrameSize) -> bool {
        if self.current.is_some_and(|current| current != size) {
            tracing::info!(%size, "the source changed its picture size");
        }
        self.current = Some(size);
        self.candidate = None;
        true
    }

    /// Whether a frame of `size` arriving at `now` is published.
    fn admit(&mut self, size: FrameSize, now: Instant) -> bool {
        if self.current.is_none_or(|current| current == size) {
            self.current = Some(size);
            self.candidate = None;
            return true;
        }
        match self.candidate {
            Some((candidate, since)) if candidate == size => {
                if now.saturating_duration_since(since) >= self.hold {
                    tracing::info!(%size, "the source changed its picture size");
                    self.current = Some(size);
                    self.candidate = None;
                    true
                } else {
                    false
                }
            }
            _ => {
                self.candidate = Some((size, now));
                false
            }
        }
    }
}

/// The opener of a stopped stream: it opens nothing.
struct Stopped;

impl Opener for Stopped {
    fn describe(&self) -> String {
        "stopped".into()
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        Err(SourceError::Finished("the stream has stopped".into()))
    }
}

/// The supervisor as its two threads share it.
struct Shared {
    supervisor: Mutex<Supervisor>,
    /// Wakes the supervisor thread early: the source failed, or the stream stops.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Supervisor> {
        self.supervisor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `source` on its own thread as reader `number`, which publishes what it delivers. The
/// thread ends when the source fails for good, the supervisor gives up on this reader, or the
/// server stops. Whether the thread started.
fn spawn_reader(source: Box<dyn Source>, number: u64, shared: Arc<Shared>) -> bool {
    std::thread::Builder::new()
        .name("source-reader".into())
        .spawn(move || {
            let mut reader = Reader {
                source,
                number,
                shared,
                finished: false,
            };
            reader.run();
        })
        .is_ok()
}

/// A reader thread's state; dropped, it tells the supervisor if it ended unexpectedly.
struct Reader {
    source: Box<dyn Source>,
    number: u64,
    shared: Arc<Shared>,
    /// It ended as it should: the source failed for good (and said so), or the server stops.
    finished: bool,
}

impl Reader {
    fn run(&mut self) {
        let stop = self.shared.lock().stop.clone();
        while !stop.load(Ordering::Relaxed) {
            let result = self.source.next_frame();
            let now = Instant::now();
            let mut supervisor = self.shared.lock();
            if supervisor.reader != Some(self.number) {
                // Given up on (silent for too long): a newer reader may be running.
                self.finished = true;
                return;
            }
            match result {
                Ok(frame) => supervisor.on_frame(frame, now),
                Err(error) => {
                    let fatal = !matches!(error, SourceError::BadFrame(_));
                    supervisor.on_error(error, now);
                    drop(supervisor);
                    // The supervisor shows the reason at once and plans the reopen.
                    self.shared.wake.notify_one();
                    if fatal {
                        self.finished = true;
                        return;
                    }
                }
            }
        }
        self.finished = true;
        // The supervisor may sleep while frames flow: let it see the stop now.
        self.shared.wake.notify_one();
    }
}

impl Drop for Reader {
    /// A reader that ends otherwise (its source panicked) counts as a failed source.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut supervisor = self.shared.lock();
        if supervisor.reader == Some(self.number) {
            let error = SourceError::Failed("the source stopped".into());
            supervisor.on_error(error, Instant::now());
        }
        drop(supervisor);
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    /// An opener that fails with each of `failures` in turn, then keeps failing with
    /// "not found"; it counts its calls.
    struct FailingOpener {
        opens: Arc<AtomicUsize>,
        failures: VecDeque<SourceError>,
    }

    impl Opener for FailingOpener {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
            self.opens.fetch_add(1, Ordering::Relaxed);
            Err(self
                .failures
                .pop_front()
                .unwrap_or_else(|| SourceError::NotFound("gone".into())))
        }
    }

    const SIZE: FrameSize = FrameSize::new(160, 120);
    const FPS: u32 = 50;

    /// A source frame, captured a frame interval after the one made before it (the tests
    /// run faster than real time; a source delivering faster than its rate is thinned).
    fn frame(value: u8) -> Frame {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        // Far ahead of the placeholders' real capture times, so frames never come early.
        let captured_at = SystemTime::now()
            + Duration::from_secs(3600)
            + Duration::from_secs(1) / FPS * u32::try_from(made).unwrap_or(u32::MAX);
        Frame::from_i420(
            0,
            0,
            captured_at,
            SIZE,
            Bytes::from(vec![value; SIZE.i420_len()]),
        )
    }

    fn supervisor(drop_same_frames: bool, start: Instant) -> (Supervisor, Arc<AtomicUsize>) {
        let opens = Arc::new(AtomicUsize::new(0));
        let opener = FailingOpener {
            opens: opens.clone(),
            failures: VecDeque::new(),
        };
        let settings = SupervisorSettings {
            size: SIZE,
            fps: FPS,
            drop_same_frames,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let hub = Hub::new(false);
        let supervisor = Supervisor::new(Box::new(opener), hub, settings, stop, start);
        (supervisor, opens)
    }

    /// The loop of [`Supervisor::run`] without a reader, one millisecond of simulated time at a
    /// time from `from` to `until`.
    fn run_idle(supervisor: &mut Supervisor, from: Instant, until: Instant) {
        let mut now = from;
        while now < until {
            supervisor.open_if_due(now, |_, _| true);
            supervisor.publish_placeholder_if_due(now);
            now += Duration::from_millis(1);
        }
    }

    #[test]
    fn a_source_that_is_not_there_gives_placeholders_and_is_retried_with_back_off() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let (mut supervisor, opens) = supervisor(false, start);
        let frames = |s: &Supervisor| s.hub.source.frames.load(Ordering::Relaxed);

        run_idle(&mut supervisor, start, at(999));
        assert_eq!(opens.load(Ordering::Relaxed), 1, "opened at once");
        let health = supervisor.hub.source_health();
        assert_eq!(health.state, SourceState::Down);
        assert_eq!(health.headline.as_deref(), Some("CAMERA NOT FOUND"));
        // Placeholders at the configured rate: one at 0 ms, then every 20 ms.
        assert_eq!(frames(&supervisor), 50);

        // The delay doubles: reopened at 1 s and at 3 s, not in between.
        run_idle(&mut supervisor, at(999), at(1_001));
        assert_eq!(opens.load(Ordering::Relaxed), 2);
        run_idle(&mut supervisor, at(1_001), at(2_999));
        assert_eq!(opens.load(Ordering::Relaxed), 2);
        run_idle(&mut supervisor, at(2_999), at(3_300));
        assert_eq!(opens.load(Ordering::Relaxed), 3);
        assert_eq!(supervisor.hub.source_health().reopen_attempts, 2);
        // 3.3 s of placeholders at 50 fps, frame numbers without a gap.
        assert_eq!(frames(&supervisor), 165);
        assert_eq!(supervisor.hub.source.last_seq.load(Ordering::Relaxed), 165);
    }

    #[test]
    fn the_back_off_stops_growing_at_its_maximum() {
        let start = Instant::now();
        let (mut supervisor, opens) = supervisor(false, start);
        run_idle(&mut supervisor, start, start + Duration::from_secs(60));
        // Opens at 0, 1, 3, 7, 15, then every 10 s: 25, 35, 45, 55.
        assert_eq!(opens.load(Ordering::Relaxed), 9);
    }

    #[test]
    fn bad_frames_show_placeholders_and_video_resumes_on_the_same_source() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let (mut supervisor, opens) = supervisor(false, start);
        // A source that is open, read by reader 1.
        supervisor.reader = Some(1);
        supervisor.next_open_at = None;
        for ms in 0..5 {
            supervisor.on_frame(frame(1), at(ms * 20));
        }
        supervisor.on_error(SourceError::BadFrame("truncated JPEG".into()), at(100));
        supervisor.publish_placeholder_if_due(at(100));
        let health = supervisor.hub.source_health();
        assert_eq!(health.state, SourceState::Down);
        assert_eq!(health.headline.as_deref(), Some("BAD FRAME"));
        assert!(
            supervisor.reader.is_some(),
            "a bad frame does not close the source"
        );
        for ms in 6..11 {
            supervisor.on_frame(frame(2), at(ms * 20));
        }
        assert_eq!(supervisor.hub.source_health().state, SourceState::Live);
        supervisor.on_error(SourceError::Ended("end of file".into()), at(240));
        let health = supervisor.hub.source_health();
        assert_eq!(opens.load(Ordering::Relaxed), 0, "bad frames do not reopen");
        assert_eq!(health.errors, 2, "{health:?}");
        assert_eq!(health.last_error.as_deref(), Some("end of file"));
        assert_eq!(health.headline.as_deref(), Some("NO SIGNAL"));
        assert!(supervisor.reader.is_none(), "the ended source is dropped");
        // Ten frames and the one placeholder, numbered without a gap.
        assert_eq!(supervisor.hub.source.frames.load(Ordering::Relaxed), 11);
    }

    #[test]
    fn a_silent_source_goes_down_then_is_reopened() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let (mut supervisor, opens) = supervisor(false, start);
        supervisor.reader = Some(1);
        supervisor.next_open_at = None;
        supervisor.reopen_after_silence = Some(crate::source::REOPEN_SILENT_AFTER);
        supervisor.on_frame(frame(1), at(0));
        supervisor.on_silence(at(999));
        assert_eq!(supervisor.hub.source_health().state, SourceState::Live);
        supervisor.on_silence(at(1_000));
        assert_eq!(supervisor.hub.source_health().state, SourceState::Down);
        assert!(supervisor.reader.is_some(), "stalled, not yet given up");
        supervisor.on_silence(at(5_000));
        assert!(supervisor.reader.is_none(), "given up after 5 s of silence");
        supervisor.open_if_due(at(5_999), |_, _| true);
        assert_eq!(opens.load(Ordering::Relaxed), 0);
        supervisor.open_if_due(at(6_000), |_, _| true);
        assert_eq!(opens.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_whip_stream_waits_for_its_publisher_saying_so_and_is_never_reopened_for_silence() {
        use crate::source::whip::{WAITING_FOR_PUBLISHER, WhipInlet, WhipOpener};
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let inlet = WhipInlet::new();
        let settings = SupervisorSettings {
            size: SIZE,
            fps: FPS,
            drop_same_frames: false,
        };
        let mut supervisor = Supervisor::new(
            Box::new(WhipOpener::new(inlet.clone())),
            Hub::new(false),
            settings,
            Arc::new(AtomicBool::new(false)),
            start,
        );
        supervisor.open_if_due(at(0), |_, _| true);
        assert_eq!(supervisor.reopen_after_silence, None);
        supervisor.on_silence(at(1_000));
        let health = supervisor.hub.source_health();
        assert_eq!(health.headline.as_deref(), Some("NO SIGNAL"));
        assert_eq!(health.last_error.as_deref(), Some(WAITING_FOR_PUBLISHER));
        supervisor.on_silence(at(600_000));
        assert!(supervisor.reader.is_some(), "still open after ten minutes");
        assert_eq!(supervisor.hub.source_health().reopen_attempts, 0);
    }

    #[test]
    fn a_source_ended_for_good_is_not_reopened() {
        let start = Instant::now();
        let (mut supervisor, opens) = supervisor(false, start);
        supervisor.reader = Some(1);
        supervisor.next_open_at = None;
        supervisor.on_frame(frame(1), start);
        let ended = SourceError::Finished("standard input has ended for good".into());
        supervisor.on_error(ended, start + Duration::from_millis(20));
        run_idle(&mut supervisor, start, start + Duration::from_secs(60));
        assert_eq!(opens.load(Ordering::Relaxed), 0);
        let health = supervisor.hub.source_health();
        assert!(health.finished, "{health:?}");
        assert_eq!(health.headline.as_deref(), Some("NO SIGNAL"));
        // Placeholders go on at the configured rate.
        assert!(supervisor.hub.source.frames.load(Ordering::Relaxed) > 50 * 59);
    }

    #[test]
    fn bad_frames_are_counted_apart_from_other_errors() {
        let start = Instant::now();
        let (mut supervisor, _) = supervisor(false, start);
        for n in 0..90 {
            let bad = SourceError::BadFrame("truncated JPEG".into());
            supervisor.on_error(bad, start + Duration::from_millis(n * 33));
        }
        let health = supervisor.hub.source_health();
        assert_eq!((health.bad_frames, health.errors), (90, 90));
    }

    #[test]
    fn a_new_size_is_taken_once_it_holds_and_flapping_never_is() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let (big, small) = (FrameSize::new(1280, 720), FrameSize::new(640, 360));
        let mut gate = SizeGate::new(Duration::from_secs(1));
        // Flapping every frame for ten seconds: the first size stays.
        let admitted: Vec<bool> = (0..300)
            .map(|n| gate.admit(if n % 2 == 0 { big } else { small }, at(n * 33)))
            .collect();
        assert!(admitted.iter().step_by(2).all(|a| *a));
        assert!(admitted.iter().skip(1).step_by(2).all(|a| !*a));
        // A change that holds is taken after a second.
        let from = 10_000;
        assert!(gate.admit(big, at(from - 33)));
        assert!(!gate.admit(small, at(from)));
        assert!(!gate.admit(small, at(from + 999)));
        assert!(gate.admit(small, at(from + 1_000)));
        assert!(gate.admit(small, at(from + 1_033)));
        assert!(!gate.admit(big, at(from + 1_066)));
    }

    #[test]
    fn frames_of_a_flapping_size_are_dropped_and_counted() {
        let start = Instant::now();
        let (mut supervisor, _) = supervisor(false, start);
        let other = FrameSize::new(320, 240);
        for n in 0..20u64 {
            let mut f = frame(1);
            if n % 2 == 1 {
                f.size = other;
                f.pixels = Pixels::I420(Bytes::from(vec![1; other.i420_len()]));
            }
            supervisor.on_frame(f, start + Duration::from_millis(n * 20));
        }
        let health = supervisor.hub.source_health();
        assert_eq!(health.frames_dropped_size_change, 10);
        assert_eq!(supervisor.hub.source.frames.load(Ordering::Relaxed), 10);
    }

    fn h264_frame(size: FrameSize, is_idr: bool) -> Frame {
        Frame {
            seq: 0,
            pts_90k: 0,
            captured_at: SystemTime::now(),
            size,
            pixels: Pixels::H264(crate::frame::H264Unit {
                annex_b: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
                is_idr,
            }),
            repeats_previous: false,
        }
    }

    /// An H.264 size change comes with a new SPS at an IDR, and every later frame refers to
    /// it: the supervisor passes it at once, and marks no access unit as a repeat.
    #[test]
    fn h264_frames_are_never_held_back_dropped_or_marked() {
        let start = Instant::now();
        let (mut supervisor, _) = supervisor(true, start);
        let other = FrameSize::new(320, 240);
        let sizes = [SIZE, SIZE, other, other, SIZE, SIZE];
        for (n, size) in sizes.into_iter().enumerate() {
            let is_idr = n % 2 == 0;
            supervisor.on_frame(
                h264_frame(size, is_idr),
                start + Duration::from_millis(n as u64 * 20),
            );
        }
        let health = supervisor.hub.source_health();
        assert_eq!(health.frames_dropped_size_change, 0);
        assert_eq!(supervisor.hub.source.frames.load(Ordering::Relaxed), 6);
        let mut f = h264_frame(SIZE, false);
        supervisor.mark_repeat(&mut f);
        assert!(!f.repeats_previous);
    }

    /// A source that sends one frame, then blocks until `release` is dropped; or, with
    /// `panics`, panics at its second frame.
    struct ScriptedSource {
        sent: bool,
        release: std::sync::mpsc::Receiver<()>,
        panics: bool,
    }

    impl Source for ScriptedSource {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn next_frame(&mut self) -> Result<Frame, SourceError> {
            if !std::mem::replace(&mut self.sent, true) {
                return Ok(frame(1));
            }
            assert!(!self.panics, "the source breaks");
            let _ = self.release.recv();
            Err(SourceError::Ended("released".into()))
        }
        fn reopen_after_silence(&self) -> Option<Duration> {
            None
        }
    }

    /// Opens [`ScriptedSource`]s; counts its opens.
    struct ScriptedOpener {
        opens: Arc<AtomicUsize>,
        release: Option<std::sync::mpsc::Receiver<()>>,
        panics: bool,
    }

    impl Opener for ScriptedOpener {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
            self.opens.fetch_add(1, Ordering::Relaxed);
            let release = match self.release.take() {
                Some(release) => release,
                None => std::sync::mpsc::channel().1,
            };
            Ok(Box::new(ScriptedSource {
                sent: false,
                release,
                panics: self.panics,
            }))
        }
    }

    /// Runs the supervisor threads on `opener` until `done` holds for the hub (checked every
    /// 10 ms, for 10 s at most); whether it did.
    fn run_until(opener: ScriptedOpener, done: impl Fn(&Hub) -> bool) -> bool {
        let hub = Hub::new(false);
        let settings = SupervisorSettings {
            size: SIZE,
            fps: FPS,
            drop_same_frames: false,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn(Box::new(opener), hub.clone(), settings, stop.clone()).unwrap();
        let mut held = false;
        for _ in 0..1_000 {
            if done(&hub) {
                held = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        held
    }

    #[test]
    fn a_source_blocked_in_its_read_still_gives_placeholders() {
        let (release, blocked) = std::sync::mpsc::channel();
        let opener = ScriptedOpener {
            opens: Arc::new(AtomicUsize::new(0)),
            release: Some(blocked),
            panics: false,
        };
        // The frame, then placeholders saying the source stalled.
        let stalled = run_until(opener, |hub| {
            let health = hub.source_health();
            health.state == SourceState::Down
                && health.headline.as_deref() == Some("NO SIGNAL")
                && hub.source.frames.load(Ordering::Relaxed) >= 3
        });
        drop(release);
        assert!(stalled, "no placeholders while the source was blocked");
    }

    #[test]
    fn a_source_that_panics_is_reopened() {
        let opens = Arc::new(AtomicUsize::new(0));
        let opener = ScriptedOpener {
            opens: opens.clone(),
            release: None,
            panics: true,
        };
        let reopened = run_until(opener, |hub| {
            opens.load(Ordering::Relaxed) >= 2 && hub.source_health().reopen_attempts >= 1
        });
        assert!(reopened, "opened {} times", opens.load(Ordering::Relaxed));
        assert!(opens.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn identical_frames_are_marked_when_asked() {
        let (mut supervisor, _) = supervisor(true, Instant::now());
        let mut marks = Vec::new();
        for value in [1, 1, 2, 2, 2] {
            let mut f = frame(value);
            supervisor.mark_repeat(&mut f);
            marks.push(f.repeats_previous);
        }
        assert_eq!(marks, [false, true, false, true, true]);
    }
}
