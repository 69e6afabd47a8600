//! The configuration: the command line (every flag also as a `FRAMECAST_*` environment
//! variable) and the configuration file it may name, resolved once into [`Settings`]: the
//! server's settings and every stream's, all values filled in.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the flags ([`Config`], parsed by clap), and the [`Config`] today's one-stream app runs with |
//! | [`file`](mod@file) | the TOML file: its model, its checks with line and column, its resolution with the flags |
//! | [`settings`] | the resolved [`Settings`], the defaults and the limits of every value |
//! | [`access`] | users, tokens and CORS origins: their file tables and checks |
//! | [`error`] | [`ConfigError`]: what is wrong, where |
//!
//! A bad flag, a bad file or flags that do not go together exit with code 2 (clap's
//! convention for usage errors) and a message naming the flag, or the file, line and column.

pub mod access;
pub mod error;
pub mod file;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _, Parser};

pub use error::ConfigError;
use settings::{
    DEFAULT_FPS, DEFAULT_HLS_IDLE_STOP_SECONDS, DEFAULT_HLS_PART_SECONDS,
    DEFAULT_HLS_SEGMENT_SECONDS, DEFAULT_HLS_WINDOW, DEFAULT_JPEG_QUALITY, DEFAULT_JPEG_THREADS,
    DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_VIEWER_STALL_SECONDS, FPS_RANGE,
    H264_BITRATE_RANGE_BPS, HLS_IDLE_STOP_SECONDS_RANGE, HLS_PART_SECONDS_RANGE,
    HLS_SEGMENT_SECONDS_RANGE, HLS_WINDOW_RANGE, JPEG_QUALITY_RANGE, JPEG_THREADS_RANGE,
    MAX_CONNECTIONS_PER_ADDRESS_RANGE, MAX_VIEWERS_RANGE, MJPEG_FPS_RANGE, ServerLayer,
    StreamLayer, VIEWER_STALL_SECONDS_RANGE,
};
use settings::{DEFAULT_WEBRTC_MAX_SESSIONS, WEBRTC_MAX_SESSIONS_RANGE};
pub use settings::{
    H264EncoderKind, HlsMode, ServerSettings, Settings, StreamName, StreamSettings, TlsFiles,
};

use crate::access::sign_url_command::SignUrlArgs;
use crate::frame::FrameSize;
use crate::source::SourceSpec;
use crate::source::redact::mask_secrets;

const MIN_SIZE: FrameSize = FrameSize::MIN;
const MAX_SIZE: FrameSize = FrameSize::MAX;

/// framecast serves live video from a camera, a pipe or a test pattern as MJPEG, snapshots
/// and HTML viewer pages.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "framecast", version, about, max_term_width = 100)]
pub struct Config {
    /// Read the server and its streams from this TOML file (see framecast.example.toml).
    /// Flags given beside it override the file's server settings and stream defaults.
    #[arg(long, env = "FRAMECAST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to serve HTTP on (port 0 picks a free one).
    #[arg(long, env = "FRAMECAST_LISTEN", default_value_t = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Frame source: `test` (the built-in test pattern), `camera:N` or `camera:/dev/videoN`,
    /// `pipe:yuv420p` / `pipe:mjpeg` / `pipe:h264` for frames on standard input,
    /// `pipe:FORMAT:/path` for a FIFO, `exec:COMMAND` / `exec:FORMAT:COMMAND` for a command
    /// framecast runs and restarts (its output MJPEG unless a format is named), or an RTSP
    /// camera: `rtsp://[user:pass@]host[:port]/path` (`#udp` for RTP over UDP) or
    /// `rtsps://…` over TLS (`#sha256=HEX` pins its certificate, `#insecure` takes any), or
    /// `whip` for a phone's or browser's camera published to `/streams/NAME/whip`.
    #[arg(long, env = "FRAMECAST_SOURCE", default_value = "test", value_parser = SourceParser)]
    pub source: SourceSpec,

    /// Picture size as WIDTHxHEIGHT; both even, from 160x120 to 7680x4320 (at most 3840x2160,
    /// either way up, with HLS on). The size raw pipe frames have, the size asked of a camera,
    /// and the size of placeholder pictures.
    #[arg(long, env = "FRAMECAST_SIZE", default_value = "1280x720", value_parser = parse_size)]
    pub size: FrameSize,

    /// Frames per second the source produces (1 to 120).
    #[arg(long, env = "FRAMECAST_FPS", default_value_t = DEFAULT_FPS,
          value_parser = clap::value_parser!(u32).range(FPS_RANGE))]
    pub fps: u32,

    /// JPEG quality for /stream.mjpg and /snapshot.jpg (1 to 100).
    #[arg(long, env = "FRAMECAST_JPEG_QUALITY", default_value_t = DEFAULT_JPEG_QUALITY,
          value_parser = clap::value_parser!(u8).range(JPEG_QUALITY_RANGE))]
    pub jpeg_quality: u8,

    /// At most this many JPEGs a second for /stream.mjpg and /snapshot.jpg (1 to 120); by
    /// default every frame. An H.264 source is still decoded whole, frames are only skipped
    /// for the JPEG encoder.
    #[arg(long, env = "FRAMECAST_MJPEG_FPS",
          value_parser = clap::value_parser!(u32).range(MJPEG_FPS_RANGE))]
    pub mjpeg_fps: Option<u32>,

    /// JPEG encoder threads; more are used only when one cannot keep up. 0 picks one per core, up to 4.
    #[arg(long, env = "FRAMECAST_JPEG_THREADS", default_value_t = DEFAULT_JPEG_THREADS,
          value_parser = clap::value_parser!(u8).range(JPEG_THREADS_RANGE))]
    pub jpeg_threads: u8,

    /// Skip frames identical to the one before for MJPEG viewers (static scenes); HLS still
    /// gets every frame.
    #[arg(long, env = "FRAMECAST_DROP_SAME_FRAMES")]
    pub drop_same_frames: bool,

    /// Drop a viewer (MJPEG or /live.mp4) whose connection has taken no bytes for this many
    /// seconds (1 to 600): a client that stopped reading must not hold a connection forever.
    #[arg(long, env = "FRAMECAST_VIEWER_STALL_SECONDS", default_value_t = DEFAULT_VIEWER_STALL_SECONDS,
          value_parser = clap::value_parser!(u16).range(VIEWER_STALL_SECONDS_RANGE))]
    pub viewer_stall_seconds: u16,

    /// Viewers (open /stream.mjpg and /live.mp4 responses) of every stream together
    /// (1 to 1000000); beyond it a new viewer gets 503 with Retry-After. HLS players are not
    /// counted: they make short requests, bounded by the connection caps. By default no
    /// limit but the connection cap.
    #[arg(long, env = "FRAMECAST_MAX_VIEWERS",
          value_parser = clap::value_parser!(u32).range(MAX_VIEWERS_RANGE))]
    pub max_viewers: Option<u32>,

    /// Open connections one client address (an IPv6 client's /64) may hold (1 to 1000000);
    /// beyond it a new connection gets 503 with Retry-After and is closed.
    #[arg(long, env = "FRAMECAST_MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
          value_parser = clap::value_parser!(u32).range(MAX_CONNECTIONS_PER_ADDRESS_RANGE))]
    pub max_connections_per_address: u32,

    /// Apply --max-connections-per-address to loopback clients too. Off by default: a reverse
    /// proxy or cache on the same host brings every viewer from one loopback address.
    #[arg(long, env = "FRAMECAST_LIMIT_LOOPBACK_CONNECTIONS")]
    pub limit_loopback_connections: bool,

    /// Exit (with status 1) when the source ends for good, standard input at its end, instead
    /// of serving the "NO SIGNAL" placeholder: for a service manager that restarts the pipeline.
    #[arg(long, env = "FRAMECAST_EXIT_ON_EOF")]
    pub exit_on_eof: bool,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. HTTP/2 is
    /// offered by ALPN and HTTP/1.1 still served. The files are read again on SIGHUP and
    /// when they change.
    #[arg(
        long,
        env = "FRAMECAST_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert's certificate; needs --tls-cert.
    #[arg(
        long,
        env = "FRAMECAST_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// The UDP address (ADDRESS:PORT) of every WebRTC (WHEP) session; port 0 picks a free
    /// one. By default the --listen address's host on port 8189, or a free port when that one
    /// is taken.
    #[arg(long, env = "FRAMECAST_WEBRTC_LISTEN", value_name = "ADDRESS:PORT")]
    pub webrtc_listen: Option<SocketAddr>,

    /// Addresses announced to WebRTC peers besides the bound one, comma-separated, each an IP
    /// or IP:PORT: the public or host address when framecast runs behind NAT or in Docker
    /// (publish the UDP port, e.g. `-p 8189:8189/udp`).
    #[arg(long, env = "FRAMECAST_WEBRTC_PUBLIC_ADDRESSES", value_name = "IP[:PORT],…",
          value_delimiter = ',', value_parser = parse_public_address)]
    pub webrtc_public_addresses: Vec<SocketAddr>,

    /// WebRTC sessions open at once, all streams together (1 to 10000); beyond it a new one
    /// gets 503.
    #[arg(long, env = "FRAMECAST_WEBRTC_MAX_SESSIONS", default_value_t = DEFAULT_WEBRTC_MAX_SESSIONS,
          value_parser = clap::value_parser!(u32).range(WEBRTC_MAX_SESSIONS_RANGE))]
    pub webrtc_max_sessions: u32,

    /// List the cameras with their formats, sizes and rates, then exit.
    #[arg(long)]
    pub list_sources: bool,

    /// When HLS (/live.m3u8, /live.mp4) and its H.264 encoder run: `always`, `on-demand`
    /// (from the first HLS or /live.mp4 request until --hls-idle-stop-seconds after the
    /// last) or `off`.
    #[arg(long, env = "FRAMECAST_HLS", value_enum, default_value_t = HlsMode::Always)]
    pub hls: HlsMode,

    /// Turn HLS (/live.m3u8, /live.mp4) and its H.264 encoder off; the same as `--hls off`.
    #[arg(long, env = "FRAMECAST_NO_HLS", conflicts_with = "hls")]
    pub no_hls: bool,

    /// With `--hls on-demand`: seconds the encoder runs on after the last HLS request or
    /// /live.mp4 viewer (1 to 3600).
    #[arg(long, env = "FRAMECAST_HLS_IDLE_STOP_SECONDS",
          default_value_t = DEFAULT_HLS_IDLE_STOP_SECONDS,
          value_parser = clap::value_parser!(u16).range(HLS_IDLE_STOP_SECONDS_RANGE))]
    pub hls_idle_stop_seconds: u16,

    /// H.264 bitrate in bits per second, with an optional k or M suffix (e.g. 2M); by default
    /// sized to the picture (about 1.9M at 1280x720, 30 fps).
    #[arg(long, env = "FRAMECAST_H264_BITRATE", value_parser = parse_bitrate)]
    pub h264_bitrate: Option<u32>,

    /// H.264 encoder: openh264 (in process), or through ffmpeg x264, vaapi, v4l2m2m, nvenc,
    /// qsv, videotoolbox, or auto (the first hardware encoder that works). One that fails its
    /// test encode at start falls back to openh264.
    #[arg(long, env = "FRAMECAST_H264_ENCODER", value_enum,
          default_value_t = H264EncoderKind::OpenH264)]
    pub h264_encoder: H264EncoderKind,

    /// HLS segment length in seconds (0.5 to 10); each segment starts with a key frame.
    #[arg(long, env = "FRAMECAST_HLS_SEGMENT_SECONDS", default_value_t = DEFAULT_HLS_SEGMENT_SECONDS,
          value_parser = parse_segment_seconds)]
    pub hls_segment_seconds: f64,

    /// Low-Latency HLS part length in seconds (rounded to whole frames, at most a segment).
    /// PART-HOLD-BACK is three parts, so this sets how far behind live LL-HLS players play:
    /// the default 0.2 s (6 frames at 30 fps, as MediaMTX) puts stock hls.js under 1 s.
    #[arg(long, env = "FRAMECAST_HLS_PART_SECONDS", default_value_t = DEFAULT_HLS_PART_SECONDS,
          value_parser = parse_part_seconds)]
    pub hls_part_seconds: f64,

    /// Complete segments listed in the HLS playlist (6 to 600).
    #[arg(long, env = "FRAMECAST_HLS_WINDOW", default_value_t = DEFAULT_HLS_WINDOW,
          value_parser = clap::value_parser!(u16).range(HLS_WINDOW_RANGE))]
    pub hls_window: u16,

    /// Instead of serving, one of these commands.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `framecast COMMAND` does instead of serving.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum Command {
    /// Read a password, or a token, as one line on standard input and print its argon2id
    /// hash: the `password_hash` of a [[users]] table or the `token_hash` of a [[tokens]]
    /// table in the configuration file.
    HashPassword,
    /// Print a signed, expiring link to a stream's MJPEG, snapshot, HLS or /live.mp4, for
    /// `<img src>` and players that cannot send a password.
    SignUrl(SignUrlArgs),
}

/// What the command line asks for: serve, or run a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Serve(Box<Launch>),
    Command(Command),
}

/// Parses `--source` like [`SourceSpec::parse`], but says what is wrong without quoting a
/// password: clap's own message for a bad value repeats the value as given, and a source may
/// be a URL with credentials in it.
#[derive(Debug, Clone, Copy)]
struct SourceParser;

impl clap::builder::TypedValueParser for SourceParser {
    type Value = SourceSpec;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SourceSpec, clap::Error> {
        let bad = |message: String| {
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| bad("invalid value for '--source <SOURCE>': not UTF-8\n".into()))?;
        SourceSpec::parse(text).map_err(|reason| {
            bad(format!(
                "invalid value '{}' for '--source <SOURCE>': {}\n",
                mask_secrets(text),
                mask_secrets(&reason)
            ))
        })
    }
}

/// What the command line asks for, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// `--list-sources`: list the cameras and exit.
    pub list_sources: bool,
    pub settings: Settings,
    /// The configuration file, read again on SIGHUP; `None` when the flags alone describe
    /// the stream.
    pub file: Option<ConfigFile>,
}

/// A configuration file and the flags given beside it, which stay over its values on every
/// reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub flags: ServerLayer,
}

impl ConfigFile {
    /// Reads and checks the file again.
    pub fn load(&self) -> Result<Settings, ConfigError> {
        file::load(&self.path, &self.flags).and_then(Settings::checked)
    }
}

impl Config {
    /// Parses the process's arguments and environment, and the configuration file they name
    /// unless they ask for a command. On a usage error prints the reason and exits with code 2.
    pub fn from_args() -> Invocation {
        let matches = Self::command().get_matches();
        let flags = Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        if let Some(command) = flags.command {
            return Invocation::Command(command);
        }
        match Launch::from_flags(&flags, &matches) {
            Ok(launch) => Invocation::Serve(Box::new(launch)),
            Err(error) => {
                eprintln!("framecast: {error}");
                std::process::exit(2);
            }
        }
    }

    /// `--tls-cert` and `--tls-key`, which clap lets through only together.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// What `--hls` and `--no-hls` ask for.
    pub fn hls_mode(&self) -> HlsMode {
        if self.no_hls { HlsMode::Off } else { self.hls }
    }

    /// The server settings and stream defaults given as flags (or their environment
    /// variables), for a configuration file to take under them; defaults count as not given.
    pub fn given_server_flags(&self, matches: &ArgMatches) -> ServerLayer {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        // A switch given as `false` (FRAMECAST_NO_HLS=false) is the same as not given.
        let switched_on = |id: &str, on: bool| (given(id) && on).then_some(true);
        ServerLayer {
            listen: given("listen").then_some(self.listen),
            jpeg_threads: given("jpeg_threads").then_some(self.jpeg_threads),
            viewer_stall_seconds: given("viewer_stall_seconds")
                .then_some(self.viewer_stall_seconds),
            exit_on_eof: switched_on("exit_on_eof", self.exit_on_eof),
            max_viewers: given("max_viewers").then_some(self.max_viewers).flatten(),
            max_connections_per_address: given("max_connections_per_address")
                .then_some(self.max_connections_per_address),
            limit_loopback_connections: switched_on(
                "limit_loopback_connections",
                self.limit_loopback_connections,
            ),
            tls: self.tls_files(),
            webrtc_listen: self.webrtc_listen,
            webrtc_public_addresses: given("webrtc_public_addresses")
                .then(|| self.webrtc_public_addresses.clone()),
            webrtc_max_sessions: given("webrtc_max_sessions").then_some(self.webrtc_max_sessions),
            streams: StreamLayer {
                size: given("size").then_some(self.size),
                fps: given("fps").then_some(self.fps),
                jpeg_quality: given("jpeg_quality").then_some(self.jpeg_quality),
                mjpeg_fps: given("mjpeg_fps").then_some(self.mjpeg_fps).flatten(),
                drop_same_frames: switched_on("drop_same_frames", self.drop_same_frames),
                hls: if switched_on("no_hls", self.no_hls).is_some() {
                    Some(HlsMode::Off)
                } else {
                    given("hls").then_some(self.hls)
                },
                h264_bitrate: given("h264_bitrate").then_some(self.h264_bitrate).flatten(),
                h264_encoder: given("h264_encoder").then_some(self.h264_encoder),
                hls_segment_seconds: given("hls_segment_seconds")
                    .then_some(self.hls_segment_seconds),
                hls_part_seconds: given("hls_part_seconds").then_some(self.hls_part_seconds),
                hls_window: given("hls_window").then_some(self.hls_window),
                hls_idle_stop_seconds: given("hls_idle_stop_seconds")
                    .then_some(self.hls_idle_stop_seconds),
            },
        }
    }
}

impl Launch {
    /// What the command line asks for: the file `--config` names with the flags given beside
    /// it over its server settings, or without a file one stream named `main` that the flags
    /// describe.
    pub fn from_flags(flags: &Config, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let Some(path) = &flags.config else {
            return Ok(Self {
                list_sources: flags.list_sources,
                settings: Settings::checked(Settings::from_flags(flags))?,
                file: None,
            });
        };
        if matches!(
            matches.value_source("source"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            return Err(ConfigError::Usage(format!(
                "--source (FRAMECAST_SOURCE) cannot be used with --config: the streams' sources \
                 are in {}",
                path.display()
            )));
        }
        let file = ConfigFile {
            path: path.clone(),
            flags: flags.given_server_flags(matches),
        };
        Ok(Self {
            list_sources: flags.list_sources,
            settings: file.load()?,
            file: Some(file),
        })
    }
}

impl Settings {
    /// `settings` if every stream can be served as it asks: a stream with HLS needs a picture
    /// the H.264 encoder takes.
    pub fn checked(settings: Self) -> Result<Self, ConfigError> {
        for stream in &settings.streams {
            if stream.hls != HlsMode::Off && !crate::encode::h264::encodes(stream.size) {
                return Err(ConfigError::Usage(format!(
                    "stream `{}`: size {} is larger than the H.264 encoder takes for HLS ({} \
                     either way up); choose a smaller size, or turn HLS off (--no-hls, \
                     hls = \"off\")",
                    stream.name,
                    stream.size,
                    crate::encode::h264::MAX_PICTURE
                )));
            }
        }
        Ok(settings)
    }
}

/// Parses a bitrate: bits per second with an optional `k` (1000) or `M` (1000000) suffix,
/// from 50k to 100M.
pub fn parse_bitrate(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (digits, scale) = match t.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1_000.0),
        None => match t.strip_suffix('M') {
            Some(d) => (d, 1_000_000.0),
            None => (t, 1.0),
        },
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a bitrate such as 2000000, 800k or 2M"))?;
    let bps = value * scale;
    if !H264_BITRATE_RANGE_BPS.contains(&bps) {
        return Err(format!("{text} is outside 50k to 100M bits per second"));
    }
    Ok(bps as u32)
}

fn parse_seconds_in(text: &str, range: std::ops::RangeInclusive<f64>) -> Result<f64, String> {
    let (min, max) = (range.start(), range.end());
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !range.contains(&value) {
        return Err(format!("{text} is outside {min} to {max} seconds"));
    }
    Ok(value)
}

fn parse_segment_seconds(text: &str) -> Result<f64, String> {
    parse_seconds_in(text, HLS_SEGMENT_SECONDS_RANGE)
}

fn parse_part_seconds(text: &str) -> Result<f64, String> {
    parse_seconds_in(text, HLS_PART_SECONDS_RANGE)
}

/// Parses `WIDTHxHEIGHT`, both even and within [`FrameSize::MIN`]..=[`FrameSize::MAX`].
/// A WebRTC public address: `IP` (the bound port) or `IP:PORT`.
pub fn parse_public_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not IP or IP:PORT, e.g. 203.0.113.5 or 203.0.113.5:8189"))
}

pub fn parse_size(text: &str) -> Result<FrameSize, String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{text}` is not WIDTHxHEIGHT, e.g. 1280x720"))?;
    let width: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("width `{w}` is not a whole number"))?;
    let height: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("height `{h}` is not a whole number"))?;
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(format!(
            "{width}x{height} has an odd side; both must be even (4:2:0 chroma)"
        ));
    }
    if width < MIN_SIZE.width || height < MIN_SIZE.height {
        return Err(format!("{width}x{height} is smaller than {MIN_SIZE}"));
    }
    if width > MAX_SIZE.width || height > MAX_SIZE.height {
        return Err(format!("{width}x{height} is larger than {MAX_SIZE}"));
    }
    Ok(FrameSize::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_the_test_pattern_at_720p30_on_8080() {
        let config = Config::try_parse_from(["framecast"]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.source, SourceSpec::TestPattern);
        assert_eq!(config.size, FrameSize::new(1280, 720));
        assert_eq!(config.fps, 30);
        assert_eq!(config.jpeg_quality, 80);
        assert_eq!(config.mjpeg_fps, None);
    }

    /// The flags `args` parse to, and which of them were given. Environment variables count
    /// as given, so the tests use only flags no test environment sets.
    fn parse_args(args: &[&str]) -> (Config, ArgMatches) {
        let matches = Config::command()
            .try_get_matches_from(args)
            .unwrap_or_else(|e| panic!("{e}"));
        let config = Config::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{e}"));
        (config, matches)
    }

    #[test]
    fn without_a_file_the_flags_describe_one_stream_named_main_and_nothing_changes() {
        for args in [
            &["framecast"][..],
            &[
                "framecast",
                "--source",
                "pipe:yuv420p",
                "--size",
                "640x360",
                "--fps",
                "25",
                "--no-hls",
                "--h264-bitrate",
                "2M",
                "--jpeg-threads",
                "2",
                "--drop-same-frames",
                "--exit-on-eof",
                "--hls-window",
                "7",
                "--mjpeg-fps",
                "5",
            ],
        ] {
            let (flags, matches) = parse_args(args);
            let launch = Launch::from_flags(&flags, &matches).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(launch.file, None);
            let settings = launch.settings;
            let names: Vec<&str> = settings.stream_names().map(StreamName::as_str).collect();
            assert_eq!(names, ["main"]);
            let stream = &settings.streams[0];
            assert_eq!(
                (stream.source.clone(), stream.size, stream.fps, stream.hls),
                (
                    flags.source.clone(),
                    flags.size,
                    flags.fps,
                    flags.hls_mode()
                ),
                "{args:?}"
            );
            assert_eq!(
                (
                    stream.h264_bitrate,
                    stream.hls_window,
                    stream.drop_same_frames
                ),
                (flags.h264_bitrate, flags.hls_window, flags.drop_same_frames)
            );
            assert_eq!(stream.mjpeg_fps, flags.mjpeg_fps);
            assert_eq!(
                (settings.server.jpeg_threads, settings.server.exit_on_eof),
                (flags.jpeg_threads, flags.exit_on_eof)
            );
        }
    }

    #[test]
    fn only_flags_given_override_the_file() {
        let (flags, matches) = parse_args(&["framecast", "--config", "x.toml"]);
        assert_eq!(flags.given_server_flags(&matches), ServerLayer::default());
        let (flags, matches) = parse_args(&[
            "framecast",
            "--config",
            "x.toml",
            "--listen",
            "127.0.0.1:0",
            "--fps",
            "12",
            "--no-hls",
            "--h264-bitrate",
            "800k",
        ]);
        assert_eq!(
            flags.given_server_flags(&matches),
            ServerLayer {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                streams: StreamLayer {
                    fps: Some(12),
                    hls: Some(HlsMode::Off),
                    h264_bitrate: Some(800_000),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_server_and_stream_flag_can_override_the_file() {
        let (flags, matches) = parse_args(&[
            "framecast",
            "--config",
            "x.toml",
            "--listen",
            "127.0.0.1:0",
            "--jpeg-threads",
            "3",
            "--viewer-stall-seconds",
            "9",
            "--exit-on-eof",
            "--max-viewers",
            "50",
            "--max-connections-per-address",
            "8",
            "--limit-loopback-connections",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--size",
            "320x240",
            "--fps",
            "12",
            "--jpeg-quality",
            "33",
            "--mjpeg-fps",
            "4",
            "--drop-same-frames",
            "--no-hls",
            "--h264-bitrate",
            "800k",
            "--h264-encoder",
            "x264",
            "--hls-segment-seconds",
            "2",
            "--hls-part-seconds",
            "0.5",
            "--hls-window",
            "7",
            "--webrtc-listen",
            "127.0.0.1:9189",
            "--webrtc-public-addresses",
            "203.0.113.5,198.51.100.7:40000",
            "--webrtc-max-sessions",
            "9",
        ]);
        let layer = flags.given_server_flags(&matches);
        assert_eq!(
            layer,
            ServerLayer {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                jpeg_threads: Some(3),
                viewer_stall_seconds: Some(9),
                exit_on_eof: Some(true),
                max_viewers: Some(50),
                max_connections_per_address: Some(8),
                limit_loopback_connections: Some(true),
                tls: Some(TlsFiles {
                    cert: "c.pem".into(),
                    key: "k.pem".into(),
                }),
                webrtc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9189))),
                webrtc_public_addresses: Some(vec![
                    SocketAddr::from(([203, 0, 113, 5], 0)),
                    SocketAddr::from(([198, 51, 100, 7], 40000)),
                ]),
                webrtc_max_sessions: Some(9),
                streams: StreamLayer {
                    size: Some(FrameSize::new(320, 240)),
                    fps: Some(12),
                    jpeg_quality: Some(33),
                    mjpeg_fps: Some(4),
                    drop_same_frames: Some(true),
                    hls: Some(HlsMode::Off),
                    h264_bitrate: Some(800_000),
                    h264_encoder: Some(H264EncoderKind::X264),
                    hls_segment_seconds: Some(2.0),
                    hls_part_seconds: Some(0.5),
                    hls_window: Some(7),
                    hls_idle_stop_seconds: None,
                },
            }
        );
        // Every flag is either a setting above or one of these, which the file has no key for.
        let not_settings = ["config", "source", "list_sources", "help", "version"];
        let flag_count = Config::command()
            .get_arguments()
            .filter(|arg| !not_settings.contains(&arg.get_id().as_str()))
            .count();
        assert_eq!(
            flag_count, 25,
            "a new flag needs its place in given_server_flags"
        );
    }

    #[test]
    fn a_source_flag_beside_a_file_is_a_usage_error() {
        let (flags, matches) = parse_args(&["framecast", "--config", "x.toml", "--source", "test"]);
        let error = Launch::from_flags(&flags, &matches).map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err(
                "--source (FRAMECAST_SOURCE) cannot be used with --config: the streams' \
                 sources are in x.toml"
                    .into()
            )
        );
    }

    #[test]
    fn a_bad_source_is_refused_without_its_password() {
        for source in [
            "rtsps://admin:hunter2@cam/x#udp",
            "exec:ffmpeg -i \"rtsp://admin:hunter2@cam/x",
        ] {
            let error = Config::try_parse_from(["framecast", "--source", source])
                .expect_err("a bad source")
                .to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("admin:***@cam"), "{error}");
            assert!(error.contains("--source"), "{error}");
        }
    }

    #[test]
    fn hls_modes_come_from_hls_or_no_hls() {
        let mode = |args: &[&str]| parse_args(args).0.hls_mode();
        assert_eq!(mode(&["framecast"]), HlsMode::Always);
        assert_eq!(mode(&["framecast", "--no-hls"]), HlsMode::Off);
        assert_eq!(
            mode(&["framecast", "--hls", "on-demand"]),
            HlsMode::OnDemand
        );
        assert_eq!(mode(&["framecast", "--hls", "off"]), HlsMode::Off);
        let both = Config::try_parse_from(["framecast", "--hls", "always", "--no-hls"]);
        assert_eq!(both.map_err(|e| e.exit_code()).err(), Some(2));
    }

    #[test]
    fn a_picture_too_large_for_hls_is_refused_naming_the_stream() {
        let (flags, matches) = parse_args(&["framecast", "--size", "4096x2304"]);
        let error = Launch::from_flags(&flags, &matches).map_err(|e| e.to_string());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.contains("stream `main`") && e.contains("--no-hls")),
            "{error:?}"
        );
        let (flags, matches) = parse_args(&["framecast", "--size", "4096x2304", "--no-hls"]);
        assert!(Launch::from_flags(&flags, &matches).is_ok());
    }

    #[test]
    fn hls_cuts_are_whole_frames() {
        let (flags, matches) = parse_args(&["framecast"]);
        let settings = Launch::from_flags(&flags, &matches)
            .unwrap_or_else(|e| panic!("{e}"))
            .settings;
        let mut stream = settings.streams[0].clone();
        assert_eq!(stream.hls, HlsMode::Always);
        assert_eq!(stream.frames_per_segment(), 30);
        assert_eq!(stream.frames_per_part(), 6);
        stream.fps = 25;
        stream.hls_part_seconds = 5.0;
        assert_eq!(stream.frames_per_part(), 25, "a part is at most a segment");
    }

    #[test]
    fn bitrates_take_suffixes() {
        assert_eq!(parse_bitrate("2M"), Ok(2_000_000));
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("1500000"), Ok(1_500_000));
        assert!(parse_bitrate("10").is_err());
        assert!(parse_bitrate("2G").is_err());
    }

    #[test]
    fn sizes_parse_and_bad_sizes_say_why() {
        assert_eq!(parse_size("640x480"), Ok(FrameSize::new(640, 480)));
        assert_eq!(parse_size("1920X1080"), Ok(FrameSize::new(1920, 1080)));
        for (bad, why) in [
            ("640", "not WIDTHxHEIGHT"),
            ("abcx480", "width"),
            ("640x-2", "height"),
            ("641x480", "odd"),
            ("100x100", "smaller"),
            ("10000x480", "larger"),
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for args in [
            ["framecast", "--fps", "0"],
            ["framecast", "--fps", "abc"],
            ["framecast", "--jpeg-quality", "101"],
            ["framecast", "--size", "7x7"],
            ["framecast", "--source", "nope"],
            ["framecast", "--listen", "nowhere"],
            ["framecast", "--h264-bitrate", "fast"],
            ["framecast", "--hls-segment-seconds", "0"],
            ["framecast", "--hls-part-seconds", "x"],
            ["framecast", "--hls-window", "2"],
            ["framecast", "--mjpeg-fps", "0"],
            ["framecast", "--mjpeg-fps", "121"],
        ] {
            let err = Config::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(args[1]), "{args:?}: {err}");
        }
    }
}
