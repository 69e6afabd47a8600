//! Frame sources and the supervisor that keeps frames flowing when a source fails.
//!
//! A [`Source`] delivers frames, blocking until the next one; an [`Opener`] makes a fresh
//! source (for reopening after a failure). The [`supervisor`] runs both on their own threads,
//! numbers the frames, and fills every gap with [`placeholder`] frames that say what is wrong,
//! so viewers stay connected and HLS keeps its cadence.

pub mod camera;
pub mod convert;
pub mod font;
pub mod mjpeg_stream;
pub mod pipe;
pub mod placeholder;
pub mod supervisor;
pub mod test_pattern;
pub mod timestamp_strip;

use crate::config::{Config, SourceSpec};
use crate::frame::Frame;

pub use test_pattern::TestPattern;

/// Why a source did not deliver a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The device is not there (yet); reopening may find it.
    #[error("{0}")]
    NotFound(String),
    /// The source ended (a pipe at end of file, a camera unplugged).
    #[error("{0}")]
    Ended(String),
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
            Self::Ended(_) => "NO SIGNAL",
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

    /// Whether a source that has gone silent should be dropped and reopened. Not for a pipe:
    /// two readers on one standard input would split its bytes between them.
    fn reopen_when_silent(&self) -> bool {
        true
    }
}

/// Opens (and reopens) a source.
pub trait Opener: Send {
    fn describe(&self) -> String;
    fn open(&mut self) -> Result<Box<dyn Source>, SourceError>;
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
    size: crate::frame::FrameSize,
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

/// The opener for the source the configuration names. Nothing is opened yet.
pub fn opener(config: &Config) -> Box<dyn Opener> {
    match &config.source {
        SourceSpec::TestPattern => Box::new(TestPatternOpener {
            size: config.size,
            fps: config.fps,
        }),
        SourceSpec::Camera(id) => camera::opener(id, config.size, config.fps),
        SourceSpec::Pipe(format) => Box::new(pipe::PipeOpener::stdin(*format, config.size)),
    }
}
