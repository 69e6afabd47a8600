//! Keeps frames flowing whatever the source does.
//!
//! The source runs on a reader thread of its own and hands frames over a small channel. The
//! supervisor thread numbers them (so `seq` and the 90 kHz timeline continue across failures),
//! and whenever the source is down, stalled or sending garbage it publishes placeholder frames
//! at the configured rate instead: viewers stay connected, HLS keeps its cadence, and
//! `/status` and `/healthz` say what is wrong. A failed source is reopened with back-off (1 s,
//! doubling to 10 s); video resumes for connected viewers as soon as it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::error::Error;
use crate::frame::{CLOCK_90K, Frame, FrameSize, Pixels};
use crate::hub::Hub;
use crate::source::placeholder::Placeholder;
use crate::source::{Opener, Source, SourceError};

/// First reopen delay, and the most it grows to.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A live source that sends nothing for this long counts as down (and at least three frame
/// intervals, for slow rates): long enough for jitter, short enough that viewers see why.
const STALL_AFTER: Duration = Duration::from_secs(1);
/// A source silent this long is given up and reopened: a camera that hangs without an error
/// would otherwise never come back.
const REOPEN_SILENT_AFTER: Duration = Duration::from_secs(5);
/// Frames in flight between the reader and the supervisor: enough to absorb jitter, few
/// enough that nothing old piles up.
const HANDOVER_FRAMES: usize = 2;

/// What the source is doing, for `/status` and `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Starting,
    Live,
    Down,
}

/// The source's health as the supervisor sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceHealth {
    pub description: String,
    pub state: SourceState,
    /// The placeholder's headline while down, e.g. "NO SIGNAL".
    pub headline: Option<String>,
    pub last_error: Option<String>,
    pub errors: u64,
    pub reopen_attempts: u64,
    /// Milliseconds since the source went down, while it is down.
    #[serde(skip)]
    pub down_since: Option<Instant>,
}

impl SourceHealth {
    pub fn new(description: String) -> Self {
        Self {
            description,
            state: SourceState::Starting,
            headline: None,
            last_error: None,
            errors: 0,
            reopen_attempts: 0,
            down_since: None,
        }
    }
}

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
        .spawn(move || Supervisor::new(opener, hub, settings, stop).run())
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
    reader: Option<Receiver<Result<Frame, SourceError>>>,
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
    reopen_when_silent: bool,
}

impl Supervisor {
    fn new(
        opener: Box<dyn Opener>,
        hub: Arc<Hub>,
        settings: SupervisorSettings,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let frame_interval = Duration::from_secs(1) / settings.fps.max(1);
        let now = Instant::now();
        Self {
            opener,
            hub,
            placeholder: Placeholder::new(settings.size),
            frame_interval,
            stall_after: STALL_AFTER.max(frame_interval * 3),
            settings,
            stop,
            reader: None,
            backoff: BACKOFF_START,
            next_open_at: Some(now),
            down: None,
            last_frame_at: now,
            next_placeholder_at: now,
            frames_published: 0,
            previous_pixels: None,
            opened_before: false,
            reopen_when_silent: false,
        }
    }

    fn run(mut self) {
        self.hub
            .set_source_health(|h| h.description = self.opener.describe());
        while !self.stop.load(Ordering::Relaxed) {
            self.open_if_due();
            match &self.reader {
                Some(reader) => {
                    let wait = self.frame_interval;
                    match reader.recv_timeout(wait) {
                        Ok(Ok(frame)) => self.on_frame(frame),
                        Ok(Err(error)) => self.on_error(error),
                        Err(RecvTimeoutError::Timeout) => self.on_silence(),
                        Err(RecvTimeoutError::Disconnected) => {
                            self.on_error(SourceError::Failed("the source stopped".into()))
                        }
                    }
                }
                None => std::thread::sleep(self.sleep_before_next_event()),
            }
            self.publish_placeholder_if_due();
        }
    }

    fn open_if_due(&mut self) {
        let Some(at) = self.next_open_at else { return };
        if self.reader.is_some() || Instant::now() < at {
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
                self.last_frame_at = Instant::now();
                self.reopen_when_silent = source.reopen_when_silent();
                self.reader = spawn_reader(source, self.stop.clone());
                if self.reader.is_none() {
                    self.on_error(SourceError::Failed("cannot start the reader thread".into()));
                }
            }
            Err(error) => self.on_error(error),
        }
    }

    fn on_frame(&mut self, mut frame: Frame) {
        if self.down.take().is_some() {
            tracing::info!("source delivers frames again");
        }
        self.backoff = BACKOFF_START;
        self.last_frame_at = Instant::now();
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
        if self.settings.drop_same_frames {
            frame.repeats_previous = self.previous_pixels.as_ref() == Some(&frame.pixels);
            self.previous_pixels = Some(frame.pixels.clone());
        }
    }

    fn on_error(&mut self, error: SourceError) {
        tracing::warn!(%error, "source: {}", error.headline());
        let recoverable = matches!(error, SourceError::BadFrame(_));
        if !recoverable {
            self.reader = None;
            self.next_open_at = match error {
                SourceError::Unsupported(_) => None,
                _ => Some(Instant::now() + self.backoff),
            };
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        self.go_down(error);
    }

    fn on_silence(&mut self) {
        let quiet = self.last_frame_at.elapsed();
        if self.reopen_when_silent && quiet >= REOPEN_SILENT_AFTER {
            // The reader thread may stay blocked in the device; it ends once its read returns
            // and finds nobody listening.
            self.on_error(SourceError::Failed(format!(
                "no frame for {:.0} s; reopening",
                quiet.as_secs_f64()
            )));
            return;
        }
        if self.down.is_none() && quiet >= self.stall_after {
            self.go_down(SourceError::Ended(format!(
                "no frame for {:.1} s",
                quiet.as_secs_f64()
            )));
        }
    }

    fn go_down(&mut self, error: SourceError) {
        let was_up = self.down.is_none();
        let headline = error.headline();
        let message = error.to_string();
        self.hub.set_source_health(|h| {
            h.state = SourceState::Down;
            h.headline = Some(headline.into());
            h.last_error = Some(message.clone());
            h.errors += 1;
            h.down_since.get_or_insert_with(Instant::now);
        });
        self.down = Some(error);
        if was_up {
            // Show the reason at once, then keep the configured rate.
            self.next_placeholder_at = Instant::now();
        }
    }

    fn publish_placeholder_if_due(&mut self) {
        let Some(reason) = &self.down else { return };
        let now = Instant::now();
        if now < self.next_placeholder_at {
            return;
        }
        let captured_at = SystemTime::now();
        let i420 = self
            .placeholder
            .render(reason.headline(), &reason.to_string(), captured_at);
        let frame = Frame::from_i420(0, 0, captured_at, self.settings.size, Bytes::from(i420));
        self.publish(frame);
        self.next_placeholder_at += self.frame_interval;
        if self.next_placeholder_at < now {
            // Fell behind (a long open attempt): carry on from now rather than burst.
            self.next_placeholder_at = now + self.frame_interval;
        }
    }

    /// Numbers the frame on the supervisor's continuous timeline and hands it to the hub.
    fn publish(&mut self, mut frame: Frame) {
        self.frames_published += 1;
        frame.seq = self.frames_published;
        frame.pts_90k = ((u128::from(self.frames_published - 1) * u128::from(CLOCK_90K))
            / u128::from(self.settings.fps.max(1))) as u64;
        self.hub.publish_frame(Arc::new(frame));
    }

    fn sleep_before_next_event(&self) -> Duration {
        let now = Instant::now();
        let mut until = self.next_placeholder_at;
        if let Some(open_at) = self.next_open_at {
            until = until.min(open_at);
        }
        until
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), self.frame_interval)
    }
}

/// Runs `source` on its own thread, sending what it delivers. The thread ends when the source
/// fails for good, the supervisor drops the receiver, or the server stops.
fn spawn_reader(
    mut source: Box<dyn Source>,
    stop: Arc<AtomicBool>,
) -> Option<Receiver<Result<Frame, SourceError>>> {
    let (tx, rx): (SyncSender<_>, _) = sync_channel(HANDOVER_FRAMES);
    std::thread::Builder::new()
        .name("source-reader".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let result = source.next_frame();
                let fatal = matches!(&result, Err(e) if !matches!(e, SourceError::BadFrame(_)));
                if tx.send(result).is_err() || fatal {
                    break;
                }
            }
        })
        .ok()?;
    Some(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A source that plays a script of results, then ends.
    struct Scripted(VecDeque<Result<Frame, SourceError>>);

    impl Source for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn next_frame(&mut self) -> Result<Frame, SourceError> {
            std::thread::sleep(Duration::from_millis(5));
            self.0
                .pop_front()
                .unwrap_or_else(|| Err(SourceError::Ended("end of script".into())))
        }
    }

    struct ScriptedOpener {
        opens: Arc<Mutex<Vec<Instant>>>,
        scripts: VecDeque<Result<Vec<Result<Frame, SourceError>>, SourceError>>,
    }

    impl Opener for ScriptedOpener {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
            self.opens.lock().unwrap().push(Instant::now());
            match self.scripts.pop_front() {
                Some(Ok(script)) => Ok(Box::new(Scripted(script.into()))),
                Some(Err(e)) => Err(e),
                None => Err(SourceError::NotFound("gone".into())),
            }
        }
    }

    const SIZE: FrameSize = FrameSize::new(160, 120);

    fn frame(value: u8) -> Frame {
        Frame::from_i420(
            0,
            0,
            SystemTime::now(),
            SIZE,
            Bytes::from(vec![value; SIZE.i420_len()]),
        )
    }

    fn run_for(
        scripts: Vec<Result<Vec<Result<Frame, SourceError>>, SourceError>>,
        drop_same: bool,
        time: Duration,
    ) -> (Arc<Hub>, Vec<Instant>) {
        let hub = Hub::new(false);
        let stop = Arc::new(AtomicBool::new(false));
        let opens = Arc::new(Mutex::new(Vec::new()));
        let opener = ScriptedOpener {
            opens: opens.clone(),
            scripts: scripts.into(),
        };
        let settings = SupervisorSettings {
            size: SIZE,
            fps: 50,
            drop_same_frames: drop_same,
        };
        let thread = spawn(Box::new(opener), hub.clone(), settings, stop.clone()).unwrap();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        let opens = opens.lock().unwrap().clone();
        (hub, opens)
    }

    #[test]
    fn a_source_that_is_not_there_gives_placeholders_and_is_retried_with_back_off() {
        let (hub, opens) = run_for(vec![], false, Duration::from_millis(3_300));
        let health = hub.source_health();
        assert_eq!(health.state, SourceState::Down);
        assert_eq!(health.headline.as_deref(), Some("CAMERA NOT FOUND"));
        // Opens at 0, 1 s and 3 s: the delay doubles.
        assert_eq!(opens.len(), 3, "{opens:?}");
        let gap = opens[2] - opens[1];
        assert!(gap >= Duration::from_millis(1_900), "{gap:?}");
        // Placeholders keep the configured rate (50 fps) the whole time.
        let frames = hub.source.frames.load(Ordering::Relaxed);
        assert!((140..=170).contains(&frames), "{frames}");
    }

    #[test]
    fn bad_frames_show_placeholders_and_video_resumes_on_the_same_source() {
        let mut script: Vec<_> = (0..5).map(|_| Ok(frame(1))).collect();
        script.push(Err(SourceError::BadFrame("truncated JPEG".into())));
        script.extend((0..5).map(|_| Ok(frame(2))));
        script.push(Err(SourceError::Ended("end of file".into())));
        let (hub, opens) = run_for(vec![Ok(script)], false, Duration::from_millis(500));
        let health = hub.source_health();
        assert_eq!(opens.len(), 1, "bad frames do not reopen");
        assert_eq!(health.errors, 2, "{health:?}");
        assert_eq!(health.last_error.as_deref(), Some("end of file"));
        assert_eq!(health.headline.as_deref(), Some("NO SIGNAL"));
        assert!(hub.source.frames.load(Ordering::Relaxed) > 10);
    }

    #[test]
    fn identical_frames_are_marked_when_asked() {
        let hub = Hub::new(false);
        let stop = Arc::new(AtomicBool::new(false));
        let mut supervisor = Supervisor::new(
            Box::new(ScriptedOpener {
                opens: Arc::default(),
                scripts: VecDeque::new(),
            }),
            hub,
            SupervisorSettings {
                size: SIZE,
                fps: 50,
                drop_same_frames: true,
            },
            stop,
        );
        let mut marks = Vec::new();
        for value in [1, 1, 2, 2, 2] {
            let mut f = frame(value);
            supervisor.mark_repeat(&mut f);
            marks.push(f.repeats_previous);
        }
        assert_eq!(marks, [false, true, false, true, true]);
    }
}
