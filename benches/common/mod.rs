//! Support for the MJPEG load generator (`benches/mjpeg_load.rs`): the servers under test
//! (framecast, VLC) and the frames fed to them, the client-side stream parser, and process
//! statistics from `/proc`.

pub mod feeder;
pub mod mjpeg_parts;
pub mod proc_stats;
pub mod server;
pub mod vlc;
