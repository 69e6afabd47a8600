//! Pure media formats: bytes in, bytes out, no I/O and no clocks.

pub mod multipart;
