//! framecast: a live-video HTTP server.
//!
//! It captures frames from a source (the built-in test pattern, a camera, a pipe, an RTSP
//! camera), encodes each frame once or passes a camera's H.264 through, and serves it to any
//! number of viewers: a multipart MJPEG stream for `<img>` tags, fresh JPEG snapshots,
//! Low-Latency HLS and an endless fragmented MP4 with H.264, WebRTC playback (WHEP) over one
//! UDP port, and HTML viewer pages. Over
//! HTTP/1.1 or, with a certificate, HTTPS with HTTP/2; open, or to users and tokens with
//! per-stream permissions and to holders of signed, expiring links.
//!
//! # Layout
//!
//! Dependencies point one way: `app` → `http` → `webrtc` → `pipeline` → `hls` / `hub` → `encode` /
//! `source` → `media` / `picture` → `frame`.
//!
//! | module | owns |
//! | --- | --- |
//! | [`access`] | who may watch: the [`access::Grant`] a checked request carries (users, tokens, signed links) |
//! | [`config`] | the command line, the environment and the configuration file (`--config`), resolved once into [`config::Settings`]: the server's and every stream's settings |
//! | [`app`] | wiring: starts every stream's pipeline and the HTTP server; the running set of streams and its reload on SIGHUP; orderly shutdown |
//! | [`http`] | the route table (each stream under `/streams/{name}/`, the first also at the root) and one file per resource; the table of served streams; the only place that knows status codes and cache policies; the MJPEG sender threads that write every MJPEG viewer's frames; HTTPS and HTTP/2 with a reloadable certificate; the connection and viewer limits; `/status` and `/metrics` |
//! | [`pipeline`] | one stream's threads: the source supervisor (placeholders, back-off), the JPEG workers, the H.264 thread (and its ffmpeg encoder's restarts), the H.264 decode stage for JPEG viewers of an H.264 source; the only code that sees the hub and the stages together |
//! | [`webrtc`] | WebRTC over one UDP socket (str0m, ICE-lite, one task drives every session): the session core, SDP offer checks, WHEP viewers fed from a stream's access-unit tap |
//! | [`hls`] | cutting parts and segments on the capture clock, the live window (pure) and its retention, waits and rendered playlists shared by all requests, HLS file names, blocking-reload rules |
//! | [`hub`] | hand-over between the pipeline and viewers: latest-frame cells, demand, an H.264 source's current GOP, the JPEG rate cap, viewer registry and its limits, source health, counters |
//! | [`encode`] | encoders: JPEG (turbojpeg), H.264 (openh264 in process as a plain value; x264 and the hardware encoders as an ffmpeg process with its pipe threads), which H.264 encoder runs and why, the checks of an external encoder's output, H.264 decoding for JPEG viewers (openh264) |
//! | [`source`] | frame producers (test pattern, cameras, pipes, FIFOs, commands framecast runs, RTSP cameras over TCP, UDP or TLS, WHIP publishers) and the `--source` specs that name them |
//! | [`media`] | pure formats, no I/O: multipart framing, the MJPEG byte stream and JPEG markers, H.264 bitstream, fMP4 boxes, playlists |
//! | [`picture`] | pure pixels: format conversion, the font, the timestamp strip, the placeholder picture |
//! | [`frame`] | [`frame::Frame`] and [`frame::JpegFrame`], the units that travel the pipeline |
//! | [`error`] | the crate's error type for start-up failures |
//! | [`meter`] | frame-rate measurement, duration histograms |
//! | [`repeated_log`] | bounded logging of conditions that repeat per frame or per request |

pub mod access;
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
pub mod picture;
pub mod pipeline;
pub mod repeated_log;
pub mod source;
pub mod webrtc;
