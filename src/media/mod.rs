//! Pure media formats: bytes in, bytes out, no I/O and no clocks.

pub mod cmaf;
pub mod h264;
pub mod h264_stream;
pub mod mjpeg_stream;
pub mod multipart;
pub mod playlist;
