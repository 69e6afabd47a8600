//! Encoders. Each runs blocking work on its own thread, never on the async executor.
//!
//! H.264 comes from openh264 in process ([`h264`]) or from an ffmpeg process
//! ([`ffmpeg_h264`], its command line in [`ffmpeg_args`]) for x264 and the hardware
//! encoders; [`h264_choice`] says which runs and why, [`h264_check`] checks an external
//! encoder's output against the rules HLS relies on.

pub mod ffmpeg_args;
pub mod ffmpeg_h264;
pub mod h264;
pub mod h264_check;
pub mod h264_choice;
pub mod h264_decode;
pub mod jpeg;
