//! Frame sources: the test pattern, cameras, pipes (standard input or a FIFO), commands
//! framecast runs, RTSP cameras and WHIP publishers, and what `--source` names them by.
//!
//! A [`Source`] delivers frames, blocking until the next one; an [`Opener`] makes a fresh
//! source (for reopening after a failure). `pipeline::supervisor` runs them on threads of
//! their own, numbers the frames, and fills every gap with placeholder pictures that say what
//! is wrong. Sources know nothing of the hub, the encoders or the configuration.

pub mod camera;
pub mod exec;
pub mod h264_pipe;
pub mod pipe;
pub mod redact;
pub mod rtsp;
pub mod spec;
pub mod test_pattern;
pub mod whip;

use std::time::Duration;

use crate::frame::{Frame, FrameSize};

pub use exec::ProcessStatus;
pub use spec::SourceSpec;

/// How long a source may send nothing before it is given up and reopened, unless it says
/// otherwise: a camera that hangs without an error would otherwise never come back.
pub const REOPEN_SILENT_AFTER: Duration = Duration::from_secs(5);
pub use test_pattern::TestPattern;

/// Why a source did not deliver a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The device is not there (yet); reopening may find it.
    #[error("{0}")]
    NotFound(String),
    /// The source ended (a camera unplugged, a pipe at its end); reopening may bring it back.
    #[error("{0}")]
    Ended(String),
    /// The source ended for good: standard input at its end can never deliver again.
    #[error("{0}")]
    Finished(String),
    /// One bad frame (truncated, garbage, wrong size); the source itself goes on.
    #[error("{0}")]
    BadFrame(String),
    /// The source failed and must be reopened.
    #[error("{0}")]
    Failed(String),
    /// The source can never work in this build or configuration; no point reopening.
    #[error("{0}")]
    Unsupported(String),
}

impl SourceError {
    /// The large line of the placeholder picture.
    pub fn headline(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "CAMERA NOT FOUND",
            Self::Ended(_) | Self::Finished(_) => "NO SIGNAL",
            Self::BadFrame(_) => "BAD FRAME",
            Self::Failed(_) => "SOURCE ERROR",
            Self::Unsupported(_) => "SOURCE UNAVAILABLE",
        }
    }
}

/// A producer of frames. `next_frame` blocks until the next frame is due or has arrived; the
/// supervisor renumbers frames, so a source's `seq` and `pts_90k` need not be continuous.
pub trait Source: Send {
    /// What the source is, for logs and `/status`.
    fn describe(&self) -> String;
    fn next_frame(&mut self) -> Result<Frame, SourceError>;

    /// After how long without a frame the source should be dropped and reopened; `None` for
    /// never. Not for a pipe: two readers on one standard input would split its bytes between
    /// them, and a FIFO without a writer is silent on purpose.
    fn reopen_after_silence(&self) -> Option<Duration> {
        Some(REOPEN_SILENT_AFTER)
    }
}

/// Opens (and reopens) a source.
pub trait Opener: Send {
    fn describe(&self) -> String;
    fn open(&mut self) -> Result<Box<dyn Source>, SourceError>;

    /// For a source that is a process framecast runs: how that process is doing.
    fn process(&self) -> Option<ProcessStatus> {
        None
    }

    /// Why an open source that sends nothing is silent, when the opener knows better than
    /// "no frame for N s" (a WHIP stream that waits for its publisher).
    fn silence_reason(&self) -> Option<String> {
        None
    }
}

impl Source for TestPattern {
    fn describe(&self) -> String {
        "test pattern".into()
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        Ok(TestPattern::next_frame(self))
    }
}

struct TestPatternOpener {
    size: FrameSize,
    fps: u32,
}

impl Opener for TestPatternOpener {
    fn describe(&self) -> String {
        "test pattern".into()
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(TestPattern::new(self.size, self.fps)))
    }
}

/// The opener for the source `spec` names, for pictures of `size` at `fps` (what a camera is
/// asked for, the size raw pipe frames have). Nothing is opened yet.
pub fn opener(spec: &SourceSpec, size: FrameSize, fps: u32) -> Box<dyn Opener> {
    match spec {
        SourceSpec::TestPattern => Box::new(TestPatternOpener { size, fps }),
        SourceSpec::Camera(id) => camera::opener(id, size, fps),
        SourceSpec::Pipe(format) => Box::new(pipe::PipeOpener::stdin(*format, size)),
        SourceSpec::Fifo { format, path } => Box::new(pipe::PipeOpener::fifo(*format, size, path)),
        SourceSpec::Exec { command, format } => {
            Box::new(exec::ExecOpener::new(command.clone(), *format, size))
        }
        SourceSpec::Rtsp(address) => Box::new(rtsp::RtspOpener::new(address.clone())),
        // Fed by the stream's WHIP session: an inlet nobody else holds waits forever. The
        // pipeline makes the stream's inlet and its opener itself (`whip::WhipOpener`).
        SourceSpec::Whip => Box::new(whip::WhipOpener::new(whip::WhipInlet::new())),
    }
}
