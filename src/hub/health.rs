//! A source's health as its supervisor sees it: what `/status` shows and `/healthz` judges.

use std::time::Instant;

use crate::source::ProcessStatus;

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
    /// Errors that were one bad frame (truncated, garbage, wrong size); the source went on.
    pub bad_frames: u64,
    /// Frames dropped because their picture size differed from the stream's and had not held
    /// long enough to become the new size.
    pub frames_dropped_size_change: u64,
    pub reopen_attempts: u64,
    /// The source ended for good (standard input at its end): it is not reopened.
    pub finished: bool,
    /// For a source that is a command framecast runs (`exec:`): the process's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStatus>,
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
            bad_frames: 0,
            frames_dropped_size_change: 0,
            reopen_attempts: 0,
            finished: false,
            process: None,
            down_since: None,
        }
    }
}
