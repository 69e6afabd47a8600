//! The resolved settings the program runs with: the server's and each stream's, every value
//! filled in. The defaults and the limits every value is checked against live here too, so
//! the flags and the configuration file agree on them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::Deserialize;

use super::Config;
use super::access::AccessSettings;
pub use crate::encode::h264_choice::H264EncoderKind;
use crate::frame::FrameSize;
use crate::source::SourceSpec;

pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
pub const DEFAULT_SIZE: FrameSize = FrameSize::new(1280, 720);
pub const DEFAULT_FPS: u32 = 30;
pub const FPS_RANGE: RangeInclusive<i64> = 1..=120;
pub const DEFAULT_JPEG_QUALITY: u8 = 80;
pub const JPEG_QUALITY_RANGE: RangeInclusive<i64> = 1..=100;
/// The JPEG rate cap's range: as the frame rate's.
pub const MJPEG_FPS_RANGE: RangeInclusive<i64> = 1..=120;
/// 0 picks one thread per core, up to 4.
pub const DEFAULT_JPEG_THREADS: u8 = 0;
pub const JPEG_THREADS_RANGE: RangeInclusive<i64> = 0..=16;
pub const DEFAULT_VIEWER_STALL_SECONDS: u16 = 5;
pub const VIEWER_STALL_SECONDS_RANGE: RangeInclusive<i64> = 1..=600;
/// Viewers (`/stream.mjpg`, `/live.mp4`) in total and per stream: no limit unless set.
pub const MAX_VIEWERS_RANGE: RangeInclusive<i64> = 1..=1_000_000;
/// Open connections one client address may hold: enough for a dashboard page with dozens of
/// cameras plus its HLS requests, far below the thousands the server takes in all, so one
/// host cannot take every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 64;
pub const MAX_CONNECTIONS_PER_ADDRESS_RANGE: RangeInclusive<i64> = 1..=1_000_000;
pub const DEFAULT_HLS_SEGMENT_SECONDS: f64 = 1.0;
pub const HLS_SEGMENT_SECONDS_RANGE: RangeInclusive<f64> = 0.5..=10.0;
/// 0.2 s is 6 frames at 30 fps, as MediaMTX: stock hls.js then plays under 1 s behind live.
pub const DEFAULT_HLS_PART_SECONDS: f64 = 0.2;
pub const HLS_PART_SECONDS_RANGE: RangeInclusive<f64> = 0.05..=10.0;
pub const DEFAULT_HLS_WINDOW: u16 = 12;
pub const HLS_WINDOW_RANGE: RangeInclusive<i64> = 6..=600;
/// An on-demand stream's encoder stops this long after its last HLS or `/live.mp4` viewer.
pub const DEFAULT_HLS_IDLE_STOP_SECONDS: u16 = 30;
pub const HLS_IDLE_STOP_SECONDS_RANGE: RangeInclusive<i64> = 1..=3600;
/// WebRTC sessions open at once, all streams together.
pub const DEFAULT_WEBRTC_MAX_SESSIONS: u32 = 64;
pub const WEBRTC_MAX_SESSIONS_RANGE: RangeInclusive<i64> = 1..=10_000;
pub const H264_BITRATE_RANGE_BPS: RangeInclusive<f64> = 50_000.0..=100_000_000.0;

/// Everything the program serves: settings of the whole server and of each stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server: ServerSettings,
    /// In the order the file lists them; at least one, names unique, at most one reading
    /// standard input.
    pub streams: Vec<StreamSettings>,
    /// Users, tokens and CORS origins (`[[users]]`, `[[tokens]]`); none without a file.
    pub access: AccessSettings,
}

/// Settings of the whole process, shared by every stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// JPEG encoder threads; 0 picks one per core, up to 4.
    pub jpeg_threads: u8,
    pub viewer_stall_seconds: u16,
    /// Exit with status 1 when a source ends for good (standard input at its end).
    pub exit_on_eof: bool,
    /// Viewers of every stream together; `None`: no limit but the connection cap.
    pub max_viewers: Option<u32>,
    /// Open connections from one client address (an IPv6 client's /64).
    pub max_connections_per_address: u32,
    /// Whether `max_connections_per_address` applies to loopback clients too. Off by default:
    /// a reverse proxy or cache on the same host brings every viewer from one loopback address.
    pub limit_loopback_connections: bool,
    /// The key file of signed links (`signing_key_file`, configuration file only: secrets live
    /// in files); `None`: signed links are off.
    pub signing_key_file: Option<std::path::PathBuf>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The UDP address of every WebRTC session; `None`: the HTTP listen address's host on
    /// [`crate::webrtc::DEFAULT_UDP_PORT`] (or any free port when that one is taken).
    pub webrtc_listen: Option<SocketAddr>,
    /// Addresses announced to WebRTC peers besides the bound one (NAT, Docker); port 0 means
    /// the bound port.
    pub webrtc_public_addresses: Vec<SocketAddr>,
    pub webrtc_max_sessions: u32,
}

/// The PEM files of the server's certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One stream's settings, the file's and the flags' defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    pub name: StreamName,
    pub source: SourceSpec,
    pub size: FrameSize,
    pub fps: u32,
    pub jpeg_quality: u8,
    /// At most this many frames a second go to the JPEG encoders; `None`: every frame.
    pub mjpeg_fps: Option<u32>,
    pub drop_same_frames: bool,
    pub hls: HlsMode,
    /// `None`: sized to the picture.
    pub h264_bitrate: Option<u32>,
    /// The H.264 encoder asked for (probed at start; openh264 if it does not work).
    pub h264_encoder: H264EncoderKind,
    pub hls_segment_seconds: f64,
    pub hls_part_seconds: f64,
    pub hls_window: u16,
    /// With `hls = "on-demand"`: how long the encoder runs on after the last HLS request or
    /// `/live.mp4` viewer.
    pub hls_idle_stop_seconds: u16,
    /// Viewers of this stream (`/stream.mjpg` and `/live.mp4` together); `None`: only the
    /// server's limit in total. Set in the stream's own table only.
    pub max_viewers: Option<u32>,
}

impl StreamSettings {
    /// Frames in one HLS segment: the key-frame interval.
    pub fn frames_per_segment(&self) -> u32 {
        ((self.hls_segment_seconds * f64::from(self.fps)).round() as u32).max(1)
    }

    /// Frames in one Low-Latency HLS part: a whole number, at most a segment.
    pub fn frames_per_part(&self) -> u32 {
        ((self.hls_part_seconds * f64::from(self.fps)).round() as u32)
            .clamp(1, self.frames_per_segment())
    }
}

impl ServerSettings {
    /// The number of JPEG encoder threads each stream starts.
    pub fn jpeg_thread_count(&self) -> usize {
        match self.jpeg_threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 4),
            n => usize::from(n),
        }
    }
}

/// When a stream's H.264 encoder, and so its HLS and `/live.mp4`, runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HlsMode {
    /// From the start, so that the first viewer finds a full window.
    Always,
    /// From the first HLS or `/live.mp4` request until a while after the last viewer.
    OnDemand,
    /// Never: no HLS, no `/live.mp4`.
    Off,
}

impl std::fmt::Display for HlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::OnDemand => "on-demand",
            Self::Off => "off",
        })
    }
}

/// A stream's name: part of its URLs (`/streams/{name}/`), so URL-safe as it is:
/// `[a-z0-9][a-z0-9_-]*`, at most [`StreamName::MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    pub const MAX_LEN: usize = 64;
    /// The one stream the flags describe when there is no configuration file.
    pub const MAIN: &str = "main";

    pub fn new(text: &str) -> Result<Self, String> {
        let starts_well = text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let url_safe = text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !starts_well || !url_safe || text.len() > Self::MAX_LEN {
            return Err(format!(
                "stream name `{}` is not one of lowercase letters, digits, `_` and `-`, starting \
                 with a letter or digit, at most {} characters",
                text.escape_debug(),
                Self::MAX_LEN
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Settings {
    /// What the flags describe without a configuration file: one stream named `main`.
    pub fn from_flags(flags: &Config) -> Self {
        Self {
            server: ServerSettings {
                listen: flags.listen,
                jpeg_threads: flags.jpeg_threads,
                viewer_stall_seconds: flags.viewer_stall_seconds,
                exit_on_eof: flags.exit_on_eof,
                max_viewers: flags.max_viewers,
                max_connections_per_address: flags.max_connections_per_address,
                limit_loopback_connections: flags.limit_loopback_connections,
                signing_key_file: None,
                tls: flags.tls_files(),
                webrtc_listen: flags.webrtc_listen,
                webrtc_public_addresses: flags.webrtc_public_addresses.clone(),
                webrtc_max_sessions: flags.webrtc_max_sessions,
            },
            streams: vec![StreamSettings {
                name: StreamName(StreamName::MAIN.to_owned()),
                source: flags.source.clone(),
                size: flags.size,
                fps: flags.fps,
                jpeg_quality: flags.jpeg_quality,
                mjpeg_fps: flags.mjpeg_fps,
                drop_same_frames: flags.drop_same_frames,
                hls: flags.hls_mode(),
                h264_bitrate: flags.h264_bitrate,
                h264_encoder: flags.h264_encoder,
                hls_segment_seconds: flags.hls_segment_seconds,
                hls_part_seconds: flags.hls_part_seconds,
                hls_window: flags.hls_window,
                hls_idle_stop_seconds: flags.hls_idle_stop_seconds,
                // One stream: the limit in total is its own.
                max_viewers: None,
            }],
            access: AccessSettings::default(),
        }
    }

    /// The streams' names, in order.
    pub fn stream_names(&self) -> impl Iterator<Item = &StreamName> {
        self.streams.iter().map(|stream| &stream.name)
    }
}

/// Server settings and stream defaults as one layer gives them (the flags, or the top of the
/// file), each possibly unset. Layers are stacked with [`ServerLayer::or`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerLayer {
    pub listen: Option<SocketAddr>,
    pub jpeg_threads: Option<u8>,
    pub viewer_stall_seconds: Option<u16>,
    pub exit_on_eof: Option<bool>,
    pub max_viewers: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub limit_loopback_connections: Option<bool>,
    /// `tls_cert` and `tls_key`, given together or not at all.
    pub tls: Option<TlsFiles>,
    pub webrtc_listen: Option<SocketAddr>,
    pub webrtc_public_addresses: Option<Vec<SocketAddr>>,
    pub webrtc_max_sessions: Option<u32>,
    /// Defaults for every stream.
    pub streams: StreamLayer,
}

/// A stream's settings as one layer gives them (a stream's table, or the server's defaults),
/// each possibly unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamLayer {
    pub size: Option<FrameSize>,
    pub fps: Option<u32>,
    pub jpeg_quality: Option<u8>,
    pub mjpeg_fps: Option<u32>,
    pub drop_same_frames: Option<bool>,
    pub hls: Option<HlsMode>,
    pub h264_bitrate: Option<u32>,
    pub h264_encoder: Option<H264EncoderKind>,
    pub hls_segment_seconds: Option<f64>,
    pub hls_part_seconds: Option<f64>,
    pub hls_window: Option<u16>,
    pub hls_idle_stop_seconds: Option<u16>,
}

impl ServerLayer {
    /// This layer's values, and `lower`'s where this one has none.
    pub fn or(self, lower: Self) -> Self {
        Self {
            listen: self.listen.or(lower.listen),
            jpeg_threads: self.jpeg_threads.or(lower.jpeg_threads),
            viewer_stall_seconds: self.viewer_stall_seconds.or(lower.viewer_stall_seconds),
            exit_on_eof: self.exit_on_eof.or(lower.exit_on_eof),
            max_viewers: self.max_viewers.or(lower.max_viewers),
            max_connections_per_address: self
                .max_connections_per_address
                .or(lower.max_connections_per_address),
            limit_loopback_connections: self
                .limit_loopback_connections
                .or(lower.limit_loopback_connections),
            tls: self.tls.or(lower.tls),
            webrtc_listen: self.webrtc_listen.or(lower.webrtc_listen),
            webrtc_public_addresses: self
                .webrtc_public_addresses
                .or(lower.webrtc_public_addresses),
            webrtc_max_sessions: self.webrtc_max_sessions.or(lower.webrtc_max_sessions),
            streams: self.streams.or(lower.streams),
        }
    }

    /// The server settings, built-in defaults where no layer gave a value.
    pub fn resolve(&self) -> ServerSettings {
        ServerSettings {
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            jpeg_threads: self.jpeg_threads.unwrap_or(DEFAULT_JPEG_THREADS),
            viewer_stall_seconds: self
                .viewer_stall_seconds
                .unwrap_or(DEFAULT_VIEWER_STALL_SECONDS),
            exit_on_eof: self.exit_on_eof.unwrap_or(false),
            max_viewers: self.max_viewers,
            max_connections_per_address: self
                .max_connections_per_address
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
            limit_loopback_connections: self.limit_loopback_connections.unwrap_or(false),
            signing_key_file: None,
            tls: self.tls.clone(),
            webrtc_listen: self.webrtc_listen,
            webrtc_public_addresses: self.webrtc_public_addresses.clone().unwrap_or_default(),
            webrtc_max_sessions: self
                .webrtc_max_sessions
                .unwrap_or(DEFAULT_WEBRTC_MAX_SESSIONS),
        }
    }
}

impl StreamLayer {
    /// This layer's values, and `lower`'s where this one has none.
    pub fn or(self, lower: Self) -> Self {
        Self {
            size: self.size.or(lower.size),
            fps: self.fps.or(lower.fps),
            jpeg_quality: self.jpeg_quality.or(lower.jpeg_quality),
            mjpeg_fps: self.mjpeg_fps.or(lower.mjpeg_fps),
            drop_same_frames: self.drop_same_frames.or(lower.drop_same_frames),
            hls: self.hls.or(lower.hls),
            h264_bitrate: self.h264_bitrate.or(lower.h264_bitrate),
            h264_encoder: self.h264_encoder.or(lower.h264_encoder),
            hls_segment_seconds: self.hls_segment_seconds.or(lower.hls_segment_seconds),
            hls_part_seconds: self.hls_part_seconds.or(lower.hls_part_seconds),
            hls_window: self.hls_window.or(lower.hls_window),
            hls_idle_stop_seconds: self.hls_idle_stop_seconds.or(lower.hls_idle_stop_seconds),
        }
    }

    /// The stream's settings, built-in defaults where no layer gave a value.
    pub fn resolve(&self, name: StreamName, source: SourceSpec) -> StreamSettings {
        StreamSettings {
            name,
            source,
            size: self.size.unwrap_or(DEFAULT_SIZE),
            fps: self.fps.unwrap_or(DEFAULT_FPS),
            jpeg_quality: self.jpeg_quality.unwrap_or(DEFAULT_JPEG_QUALITY),
            mjpeg_fps: self.mjpeg_fps,
            drop_same_frames: self.drop_same_frames.unwrap_or(false),
            hls: self.hls.unwrap_or(HlsMode::Always),
            h264_bitrate: self.h264_bitrate,
            h264_encoder: self.h264_encoder.unwrap_or(H264EncoderKind::OpenH264),
            hls_segment_seconds: self
                .hls_segment_seconds
                .unwrap_or(DEFAULT_HLS_SEGMENT_SECONDS),
            hls_part_seconds: self.hls_part_seconds.unwrap_or(DEFAULT_HLS_PART_SECONDS),
            hls_window: self.hls_window.unwrap_or(DEFAULT_HLS_WINDOW),
            hls_idle_stop_seconds: self
                .hls_idle_stop_seconds
                .unwrap_or(DEFAULT_HLS_IDLE_STOP_SECONDS),
            // A stream's own table sets it; the top of the file's is the limit in total.
            max_viewers: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_url_safe() {
        for good in ["main", "0", "printer-1", "garage_door", &"a".repeat(64)] {
            assert_eq!(
                StreamName::new(good).map(|n| n.to_string()),
                Ok(good.into())
            );
        }
        for bad in [
            "",
            "Garage",
            "-x",
            "_x",
            "a b",
            "a/b",
            "caméra",
            "a.b",
            &"a".repeat(65),
        ] {
            assert!(StreamName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upper_layers_win_and_defaults_fill_the_rest() {
        let file = StreamLayer {
            fps: Some(10),
            jpeg_quality: Some(50),
            ..Default::default()
        };
        let stream = StreamLayer {
            fps: Some(5),
            mjpeg_fps: Some(2),
            ..Default::default()
        };
        let resolved = stream.or(file).resolve(
            StreamName::new("a").unwrap_or_else(|e| panic!("{e}")),
            SourceSpec::TestPattern,
        );
        assert_eq!(resolved.fps, 5);
        assert_eq!(resolved.jpeg_quality, 50);
        assert_eq!(resolved.size, DEFAULT_SIZE);
        assert_eq!(resolved.hls, HlsMode::Always);
        assert_eq!(resolved.h264_bitrate, None);
        assert_eq!(resolved.mjpeg_fps, Some(2));
        assert_eq!(StreamLayer::default().mjpeg_fps, None, "no cap by default");
        let server = ServerLayer::default().resolve();
        assert_eq!(server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(server.viewer_stall_seconds, DEFAULT_VIEWER_STALL_SECONDS);
    }
}
