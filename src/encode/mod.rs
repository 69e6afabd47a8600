//! Encoders. Each runs blocking work on its own thread, never on the async executor.

pub mod h264;
pub mod jpeg;
