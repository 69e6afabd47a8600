//! The command line (every flag also as a `FRAMECAST_*` environment variable), parsed and
//! validated once into a [`Config`] that is passed by value to whoever needs it.
//!
//! Parsing goes through clap so that every bad flag or value exits with code 2 and a message
//! naming the flag.

use std::net::SocketAddr;

use clap::Parser;

use crate::frame::FrameSize;
use crate::source::SourceSpec;

const MIN_SIZE: FrameSize = FrameSize::MIN;
const MAX_SIZE: FrameSize = FrameSize::MAX;

/// framecast serves live video from a camera, a pipe or a test pattern as MJPEG, snapshots
/// and HTML viewer pages.
#[derive(Debug, Clone, Parser)]
#[command(name = "framecast", version, about, max_term_width = 100)]
pub struct Config {
    /// Address and port to serve HTTP on (port 0 picks a free one).
    #[arg(long, env = "FRAMECAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Frame source: `test` (the built-in test pattern), `camera:N` or `camera:/dev/videoN`,
    /// `pipe:yuv420p` / `pipe:mjpeg` for frames on standard input, `pipe:mjpeg:/path` /
    /// `pipe:yuv420p:/path` for a FIFO, or `exec:COMMAND` / `exec:yuv420p:COMMAND` for a
    /// command framecast runs and restarts (its output MJPEG unless `yuv420p`).
    #[arg(long, env = "FRAMECAST_SOURCE", default_value = "test", value_parser = SourceSpec::parse)]
    pub source: SourceSpec,

    /// Picture size as WIDTHxHEIGHT; both even, from 160x120 to 7680x4320. The size raw pipe
    /// frames have, the size asked of a camera, and the size of placeholder pictures.
    #[arg(long, env = "FRAMECAST_SIZE", default_value = "1280x720", value_parser = parse_size)]
    pub size: FrameSize,

    /// Frames per second the source produces (1 to 120).
    #[arg(long, env = "FRAMECAST_FPS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,

    /// JPEG quality for /stream.mjpg and /snapshot.jpg (1 to 100).
    #[arg(long, env = "FRAMECAST_JPEG_QUALITY", default_value_t = 80,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,

    /// JPEG encoder threads; more are used only when one cannot keep up. 0 picks one per core, up to 4.
    #[arg(long, env = "FRAMECAST_JPEG_THREADS", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=16))]
    pub jpeg_threads: u8,

    /// Skip frames identical to the one before for MJPEG viewers (static scenes); HLS still
    /// gets every frame.
    #[arg(long, env = "FRAMECAST_DROP_SAME_FRAMES")]
    pub drop_same_frames: bool,

    /// Drop a viewer (MJPEG or /live.mp4) whose connection has taken no bytes for this many
    /// seconds (1 to 600): a client that stopped reading must not hold a connection forever.
    #[arg(long, env = "FRAMECAST_VIEWER_STALL_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=600))]
    pub viewer_stall_seconds: u16,

    /// Exit (with status 1) when the source ends for good, standard input at its end, instead
    /// of serving the "NO SIGNAL" placeholder: for a service manager that restarts the pipeline.
    #[arg(long, env = "FRAMECAST_EXIT_ON_EOF")]
    pub exit_on_eof: bool,

    /// List the cameras with their formats, sizes and rates, then exit.
    #[arg(long)]
    pub list_sources: bool,

    /// Turn HLS (/live.m3u8, /live.mp4) and its H.264 encoder off.
    #[arg(long, env = "FRAMECAST_NO_HLS")]
    pub no_hls: bool,

    /// H.264 bitrate in bits per second, with an optional k or M suffix (e.g. 2M); by default
    /// sized to the picture (about 1.9M at 1280x720, 30 fps).
    #[arg(long, env = "FRAMECAST_H264_BITRATE", value_parser = parse_bitrate)]
    pub h264_bitrate: Option<u32>,

    /// HLS segment length in seconds (0.5 to 10); each segment starts with a key frame.
    #[arg(long, env = "FRAMECAST_HLS_SEGMENT_SECONDS", default_value_t = 1.0,
          value_parser = parse_segment_seconds)]
    pub hls_segment_seconds: f64,

    /// Low-Latency HLS part length in seconds (rounded to whole frames, at most a segment).
    /// PART-HOLD-BACK is three parts, so this sets how far behind live LL-HLS players play:
    /// the default 0.2 s (6 frames at 30 fps, as MediaMTX) puts stock hls.js under 1 s.
    #[arg(long, env = "FRAMECAST_HLS_PART_SECONDS", default_value_t = 0.2,
          value_parser = parse_part_seconds)]
    pub hls_part_seconds: f64,

    /// Complete segments listed in the HLS playlist (6 to 600).
    #[arg(long, env = "FRAMECAST_HLS_WINDOW", default_value_t = 12,
          value_parser = clap::value_parser!(u16).range(6..=600))]
    pub hls_window: u16,
}

impl Config {
    /// Parses the process's arguments and environment; on error prints the reason and exits
    /// with code 2 (clap's convention for usage errors).
    pub fn from_args() -> Self {
        Self::parse()
    }

    /// Frames in one HLS segment: the key-frame interval.
    pub fn frames_per_segment(&self) -> u32 {
        ((self.hls_segment_seconds * f64::from(self.fps)).round() as u32).max(1)
    }

    /// Frames in one Low-Latency HLS part: a whole number, at most a segment.
    pub fn frames_per_part(&self) -> u32 {
        ((self.hls_part_seconds * f64::from(self.fps)).round() as u32)
            .clamp(1, self.frames_per_segment())
    }

    /// The number of JPEG encoder threads to start.
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
    if !(50_000.0..=100_000_000.0).contains(&bps) {
        return Err(format!("{text} is outside 50k to 100M bits per second"));
    }
    Ok(bps as u32)
}

fn parse_seconds_in(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(min..=max).contains(&value) {
        return Err(format!("{text} is outside {min} to {max} seconds"));
    }
    Ok(value)
}

fn parse_segment_seconds(text: &str) -> Result<f64, String> {
    parse_seconds_in(text, 0.5, 10.0)
}

fn parse_part_seconds(text: &str) -> Result<f64, String> {
    parse_seconds_in(text, 0.05, 10.0)
}

/// Parses `WIDTHxHEIGHT`, both even and within [`MIN_SIZE`]..=[`MAX_SIZE`].
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
    }

    #[test]
    fn hls_cuts_are_whole_frames() {
        let config = Config::try_parse_from(["framecast"]).unwrap();
        assert!(!config.no_hls);
        assert_eq!(config.frames_per_segment(), 30);
        assert_eq!(config.frames_per_part(), 6);
        let config =
            Config::try_parse_from(["framecast", "--fps", "25", "--hls-part-seconds", "5"])
                .unwrap();
        assert_eq!(config.frames_per_part(), 25, "a part is at most a segment");
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
        ] {
            let err = Config::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(args[1]), "{args:?}: {err}");
        }
    }
}
