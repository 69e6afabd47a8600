//! Encoders. Each runs blocking work on its own thread, never on the async executor.

pub mod h264;
pub mod h264_decode;
pub mod jpeg;
