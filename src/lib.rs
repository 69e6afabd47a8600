//! framecast: a live-video HTTP server.
//!
//! It captures frames from a source (the built-in test pattern, a camera, or a pipe), encodes
//! each frame once, and serves it to any number of viewers: a multipart MJPEG stream for
//! `<img>` tags, fresh JPEG snapshots, Low-Latency HLS and an endless fragmented MP4 with
//! H.264, and HTML viewer pages.
//!
//! # Layout
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | the command line and environment, validated once into one [`config::Config`] |
//! | [`app`] | wiring: starts the source, the encoders and the HTTP server; orderly shutdown |
//! | [`error`] | the crate's error type for start-up failures |
//! | [`frame`] | [`frame::Frame`] and [`frame::JpegFrame`], the units that travel the pipeline |
//! | [`source`] | frame producers (test pattern, cameras, pipes), the supervisor that reopens them and shows placeholders, pixel conversion, MJPEG stream splitting |
//! | [`encode`] | blocking encoders running on their own threads (JPEG, H.264) |
//! | [`media`] | pure formats, no I/O: multipart framing, H.264 bitstream, fMP4 boxes, playlists |
//! | [`hls`] | the H.264 thread, cutting parts and segments on the capture clock, the live window (pure) and its retention, waits and rendered playlists shared by all requests, HLS file names, blocking-reload rules |
//! | [`hub`] | hand-over between source, encoders and viewers: latest-frame cells, demand, drop counters, source health |
//! | [`meter`] | frame-rate measurement |
//! | [`http`] | routes and one file per resource; the only place that knows status codes |

pub mod app;
pub mod config;
pub mod encode;
pub mod error;
pub mod frame;
pub mod hls;
pub mod http;
pub mod hub;
pub mod media;
pub mod meter;
pub mod source;
