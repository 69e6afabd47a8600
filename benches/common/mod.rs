//! Support for the MJPEG load generator (`benches/mjpeg_load.rs`): the server under test, the
//! client-side stream parser, and process statistics from `/proc`.

pub mod mjpeg_parts;
pub mod proc_stats;
pub mod server;
