//! H.264 encoders side by side, on the same 720p30 frames in one run, through framecast's own
//! encoder interfaces: openh264 in process (`H264Encoder`) against x264 through the ffmpeg
//! process (`FfmpegH264`, the path every ffmpeg encoder takes) with the `ultrafast` and
//! `veryfast` presets, `-tune zerolatency`, all at the same configured bitrate.
//!
//! Frames are given at 30 fps, as a camera does, and for each encoder it prints: CPU per frame
//! (framecast's process and the ffmpeg child together, from /proc), the bitrate reached, PSNR
//! of the decoded output against the source frames (ffmpeg's `psnr` filter), and the latency
//! from giving a frame to having its access unit (median and 95th percentile). For the ffmpeg
//! path that latency includes the one frame an Annex B reader waits for the next access
//! unit's start; the first frames (the encoder's start) are reported apart. Ratios against
//! openh264 at the end. Figures only, no asserts.

#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use framecast::encode::ffmpeg_args::FfmpegParams;
use framecast::encode::ffmpeg_h264::FfmpegH264;
use framecast::encode::h264::{H264Encoder, H264Settings};
use framecast::encode::h264_choice::H264EncoderKind;
use framecast::frame::{Frame, FrameSize};
use framecast::source::TestPattern;

const SIZE: FrameSize = FrameSize::new(1280, 720);
const FPS: u32 = 30;
/// Five seconds of video: five IDRs at one per second.
const FRAMES: u64 = 150;
const FRAME_INTERVAL: Duration = Duration::from_micros(1_000_000 / FPS as u64);
/// Frames whose latency is left out of the percentiles: a process's start (loading ffmpeg
/// and the encoder) is a one-off, reported on its own.
const WARM_UP_FRAMES: usize = 10;
/// A bitrate every encoder here has to work within at 720p (the default for the size, about
/// 1.9 Mbit/s, is more than the test pattern needs, and encoders then differ in how much they
/// leave unused rather than in quality).
const BITRATE_BPS: u32 = 600_000;
/// How long the ffmpeg process may take for its last access units.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

struct Figures {
    name: &'static str,
    cpu_ms_per_frame: f64,
    bitrate_bps: f64,
    psnr_db: Option<f64>,
    latency_ms_p50: f64,
    latency_ms_p95: f64,
    /// The first frame's latency: the encoder's start.
    first_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

fn cpu_ms(ticks: u64, ticks_per_s: u64) -> f64 {
    ticks as f64 * 1000.0 / ticks_per_s as f64
}

/// The source frames as ffmpeg's raw input, once for every PSNR measurement.
fn write_source(frames: &[Frame], path: &Path) {
    let mut file = std::fs::File::create(path).expect("source file");
    for frame in frames {
        file.write_all(frame.i420().expect("I420").bytes())
            .expect("write source");
    }
}

/// PSNR (average over Y, U and V, as ffmpeg reports it) of `annex_b` decoded, against the
/// source frames. Decoded to raw frames first: ffmpeg's raw H.264 demuxer gives no reliable
/// timestamps, and the `psnr` filter pairs frames by time.
fn psnr(annex_b: &[u8], source: &Path, dir: &Path, name: &str) -> Option<f64> {
    let encoded = dir.join(format!("{name}.h264"));
    let decoded = dir.join(format!("{name}.yuv"));
    std::fs::write(&encoded, annex_b).ok()?;
    let decode = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-y", "-f", "h264", "-i"])
        .arg(&encoded)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
        .arg(&decoded)
        .status()
        .ok()?;
    if !decode.success() {
        return None;
    }
    let size = format!("{}x{}", SIZE.width, SIZE.height);
    let raw = |path: &Path| {
        [
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-video_size",
            &size,
            "-framerate",
            "30",
            "-i",
        ]
        .map(String::from)
        .into_iter()
        .chain([path.display().to_string()])
        .collect::<Vec<_>>()
    };
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin"])
        .args(raw(&decoded))
        .args(raw(source))
        .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&decoded);
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log.lines().find(|l| l.contains("PSNR y:"))?;
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("average:"))?
        .parse()
        .ok()
}

/// Sleeps until `at` (the next frame's time).
fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

fn run_openh264(frames: &[Frame], settings: H264Settings, ticks_per_s: u64) -> (Figures, Vec<u8>) {
    let mut encoder = H264Encoder::new(settings).expect("openh264");
    let mut stream = Vec::new();
    let mut latencies = Vec::with_capacity(frames.len());
    let cpu_before = proc_stats::process_cpu_ticks("self").unwrap_or(0);
    let start = Instant::now();
    for (n, frame) in frames.iter().enumerate() {
        sleep_until(start + FRAME_INTERVAL * n as u32);
        let given = Instant::now();
        let unit = encoder.encode(frame).expect("openh264 encode");
        latencies.push(given.elapsed().as_secs_f64() * 1000.0);
        stream.extend_from_slice(&unit.annex_b);
    }
    let cpu = proc_stats::process_cpu_ticks("self").unwrap_or(0) - cpu_before;
    let first_ms = latencies[0];
    let mut latencies = latencies.split_off(WARM_UP_FRAMES.min(latencies.len()));
    latencies.sort_by(f64::total_cmp);
    let figures = Figures {
        first_ms,
        name: "openh264 (in process)",
        cpu_ms_per_frame: cpu_ms(cpu, ticks_per_s) / frames.len() as f64,
        bitrate_bps: stream.len() as f64 * 8.0 * f64::from(FPS) / frames.len() as f64,
        psnr_db: None,
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p95: percentile(&latencies, 0.95),
    };
    (figures, stream)
}

fn run_x264(
    frames: &[Frame],
    settings: H264Settings,
    preset: &'static str,
    name: &'static str,
    ticks_per_s: u64,
) -> (Figures, Vec<u8>) {
    let params = FfmpegParams {
        size: SIZE,
        fps: settings.fps,
        bitrate_bps: settings.bitrate_bps,
        frames_per_idr: settings.frames_per_idr,
        x264_preset: preset,
    };
    let cpu_before = proc_stats::process_cpu_ticks("self").unwrap_or(0);
    let mut encoder =
        FfmpegH264::start(H264EncoderKind::X264, params).expect("ffmpeg with libx264");
    let pid = encoder.pid().to_string();
    let mut stream = Vec::new();
    let mut latencies = Vec::with_capacity(frames.len());
    let mut take = |units: Vec<framecast::encode::ffmpeg_h264::EncodedFrame>,
                    stream: &mut Vec<u8>| {
        for encoded in units {
            latencies.push(encoded.unit.encode_time.as_secs_f64() * 1000.0);
            stream.extend_from_slice(&encoded.unit.annex_b);
        }
    };
    let start = Instant::now();
    for (n, frame) in frames.iter().enumerate() {
        let due = start + FRAME_INTERVAL * n as u32;
        // Take access units as they come until the frame is due, as the H.264 thread would
        // if it polled; this measures when each is ready, not when the next frame arrives.
        while Instant::now() < due {
            take(
                encoder.take_ready(Instant::now()).expect("x264 output"),
                &mut stream,
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        encoder
            .give(frame, frame.pts_90k, Instant::now())
            .expect("give a frame to x264");
    }
    // The last access units: each ready one frame later, when the next would start.
    let tail_until = Instant::now() + FRAME_INTERVAL * 3;
    while Instant::now() < tail_until && encoder.frames_held() > 1 {
        take(
            encoder.take_ready(Instant::now()).expect("x264 output"),
            &mut stream,
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    let child_cpu = proc_stats::process_cpu_ticks(&pid).unwrap_or(0);
    // The very last unit has no successor to end it: it comes at the end of the input, and
    // its wait is not a latency a live stream sees.
    let rest = encoder.finish(FINISH_TIMEOUT).expect("x264 finish");
    let held_to_the_end = rest.len();
    for encoded in rest {
        stream.extend_from_slice(&encoded.unit.annex_b);
    }
    drop(encoder);
    let cpu = proc_stats::process_cpu_ticks("self").unwrap_or(0) - cpu_before + child_cpu;
    let first_ms = latencies.first().copied().unwrap_or(f64::NAN);
    let mut latencies = latencies.split_off(WARM_UP_FRAMES.min(latencies.len()));
    latencies.sort_by(f64::total_cmp);
    if held_to_the_end > 2 {
        // Their latencies are missing from the figures: say so rather than hide it.
        eprintln!("{name}: {held_to_the_end} access units came only at the end of the input");
    }
    let figures = Figures {
        first_ms,
        name,
        cpu_ms_per_frame: cpu_ms(cpu, ticks_per_s) / frames.len() as f64,
        bitrate_bps: stream.len() as f64 * 8.0 * f64::from(FPS) / frames.len() as f64,
        psnr_db: None,
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p95: percentile(&latencies, 0.95),
    };
    (figures, stream)
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framecast-bench-encoders-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn main() {
    let have_ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_ffmpeg {
        eprintln!("encoders bench: ffmpeg is missing (make test-deps installs it)");
        std::process::exit(1);
    }
    let settings = H264Settings {
        fps: FPS,
        bitrate_bps: BITRATE_BPS,
        frames_per_idr: FPS,
    };
    let ticks_per_s = proc_stats::clock_ticks_per_s();
    let dir = scratch();
    println!(
        "H.264 encoders, {SIZE} at {FPS} fps, {FRAMES} frames given in real time, configured \
         bitrate {} bit/s, an IDR every {FPS} frames",
        settings.bitrate_bps
    );
    for (clip, frames) in [
        ("framecast's test pattern", test_pattern_frames()),
        ("ffmpeg testsrc2 (moving, detailed)", testsrc2_frames()),
    ] {
        if frames.len() as u64 != FRAMES {
            eprintln!("{clip}: {} frames, not {FRAMES}; skipped", frames.len());
            continue;
        }
        let source = dir.join("source.yuv");
        write_source(&frames, &source);
        let mut results = Vec::new();
        let runs: [(&'static str, Option<&'static str>); 3] = [
            ("openh264 (in process)", None),
            ("x264 ultrafast (ffmpeg)", Some("ultrafast")),
            ("x264 veryfast (ffmpeg)", Some("veryfast")),
        ];
        for (name, preset) in runs {
            let (mut figures, stream) = match preset {
                None => run_openh264(&frames, settings, ticks_per_s),
                Some(preset) => run_x264(&frames, settings, preset, name, ticks_per_s),
            };
            figures.psnr_db = psnr(&stream, &source, &dir, &name.replace([' ', '(', ')'], "_"));
            results.push(figures);
        }
        print_results(clip, &results);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn frame_at(n: u64, pixels: Vec<u8>) -> Frame {
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_800_000_000_000_000 + n * 33_333);
    Frame::from_i420(n + 1, n * 3000, at, SIZE, Bytes::from(pixels))
}

fn test_pattern_frames() -> Vec<Frame> {
    let mut pattern = TestPattern::new(SIZE, FPS);
    (0..FRAMES)
        .map(|n| {
            let mut buf = vec![0; SIZE.i420_len()];
            let frame = frame_at(n, Vec::new());
            pattern.render(n + 1, frame.captured_at, &mut buf);
            frame_at(n, buf)
        })
        .collect()
}

/// ffmpeg's `testsrc2`: moving shapes, gradients and text, harder to compress than the
/// test pattern.
fn testsrc2_frames() -> Vec<Frame> {
    let size = format!("testsrc2=size={}x{}:rate={FPS}", SIZE.width, SIZE.height);
    let Ok(out) = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", &size])
        .args(["-frames:v", &FRAMES.to_string(), "-pix_fmt", "yuv420p"])
        .args(["-f", "rawvideo", "-"])
        .output()
    else {
        return Vec::new();
    };
    out.stdout
        .chunks_exact(SIZE.i420_len())
        .enumerate()
        .map(|(n, pixels)| frame_at(n as u64, pixels.to_vec()))
        .collect()
}

fn print_results(clip: &str, results: &[Figures]) {
    println!("{clip}:");
    println!(
        "{:<26} {:>12} {:>8} {:>8} {:>14} {:>14} {:>14}",
        "encoder",
        "CPU ms/frame",
        "kbit/s",
        "PSNR dB",
        "latency p50 ms",
        "latency p95 ms",
        "first unit ms"
    );
    for f in results {
        println!(
            "{:<26} {:>12.2} {:>8.0} {:>8} {:>14.1} {:>14.1} {:>14.1}",
            f.name,
            f.cpu_ms_per_frame,
            f.bitrate_bps / 1000.0,
            f.psnr_db.map_or("n/a".into(), |db| format!("{db:.2}")),
            f.latency_ms_p50,
            f.latency_ms_p95,
            f.first_ms
        );
    }
    let base = &results[0];
    for f in &results[1..] {
        println!(
            "{} vs openh264: CPU x{:.2}, bitrate x{:.2}, PSNR {:+.2} dB, latency p50 +{:.1} ms",
            f.name,
            f.cpu_ms_per_frame / base.cpu_ms_per_frame,
            f.bitrate_bps / base.bitrate_bps,
            f.psnr_db.unwrap_or(f64::NAN) - base.psnr_db.unwrap_or(f64::NAN),
            f.latency_ms_p50 - base.latency_ms_p50
        );
    }
}
