//! Frame sources. Each produces [`Frame`]s on its own thread; the test pattern paces itself.

pub mod font;
pub mod test_pattern;
pub mod timestamp_strip;

use crate::config::{Config, SourceSpec};
use crate::frame::Frame;

pub use test_pattern::TestPattern;

/// Why a source could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Failed(String),
}

/// A producer of frames. `next_frame` blocks until the next frame is due or has arrived.
pub trait Source: Send {
    /// What the source is, for logs and `/status`.
    fn describe(&self) -> String;
    fn next_frame(&mut self) -> Result<Frame, SourceError>;
}

impl Source for TestPattern {
    fn describe(&self) -> String {
        "test pattern".into()
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        Ok(TestPattern::next_frame(self))
    }
}

/// Opens the source the configuration names. Opening does the I/O; constructors do not.
pub fn open(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    match config.source {
        SourceSpec::TestPattern => Ok(Box::new(TestPattern::new(config.size, config.fps))),
    }
}
