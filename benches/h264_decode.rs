//! JPEG viewers of an H.264 source: the decode step and a cold snapshot, on 720p frames made
//! by framecast's own encoder (an IDR every 30 frames, 1 s at 30 fps), in one run.
//!
//! - Decoding: framecast's `H264Decoder` (decode plus the copy to tight I420 planes) against
//!   raw openh264 decoding the same units, rounds interleaved; ms per frame and the ratio. On
//!   framecast's own Baseline stream, and, where ffmpeg is installed, on a libx264 High
//!   profile stream of ffmpeg's `testsrc` (CABAC, as cameras send), cut by framecast's
//!   access-unit splitter as `pipe:h264` cuts it.
//! - Cold snapshot: a hub with the decode stage and one JPEG worker and nobody watching gets
//!   a snapshot-style demand with k frames of the GOP already past; the time until the JPEG of
//!   the newest frame is published, beside what waiting for the next IDR would cost at 30 fps
//!   (what players and go2rtc do), computed from the frames still to come.
//!
//! Figures only, no asserts. Every loop is bounded in count and time.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use framecast::encode::h264::{H264Encoder, H264Settings, default_bitrate_bps};
use framecast::encode::h264_decode::H264Decoder;
use framecast::frame::{Frame, FrameSize, H264Unit, Pixels};
use framecast::hub::Hub;
use framecast::media::h264_stream::AccessUnitSplitter;
use framecast::pipeline::{h264_decode, jpeg};
use framecast::source::TestPattern;

const SIZE: FrameSize = FrameSize::new(1280, 720);
const FPS: u32 = 30;
const FRAMES_PER_IDR: u32 = 30;
const FRAMES: u64 = 60;
const ROUNDS: usize = 4;
/// GOP positions measured: frames of the GOP already past when the snapshot is asked for.
const GOP_POSITIONS: [u64; 4] = [1, 10, 20, 30];
const SNAPSHOT_REPEATS: usize = 3;
/// The whole run stops after this, whatever the round count.
const TIME_LIMIT: Duration = Duration::from_secs(90);

fn main() {
    let frames = encoded_frames();
    let started = Instant::now();
    decode_speed("framecast's encoder (Baseline)", &frames, started);
    match x264_frames() {
        Some(x264) => decode_speed("libx264 (High, CABAC)", &x264, started),
        None => println!("(ffmpeg with libx264 not found: no libx264 figures)"),
    }
    cold_snapshots(&frames, started);
}

/// Both decoders over `frames`, rounds interleaved.
fn decode_speed(what: &str, frames: &[Arc<Frame>], started: Instant) {
    let (mut raw_time, mut stage_time, mut done) = (Duration::ZERO, Duration::ZERO, 0u64);
    for _ in 0..ROUNDS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let mut raw = openh264::decoder::Decoder::new().expect("openh264 decoder");
        let t = Instant::now();
        for frame in frames {
            let Pixels::H264(unit) = &frame.pixels else {
                unreachable!("encoded frames")
            };
            let picture = raw.decode(&unit.annex_b).expect("raw decode");
            std::hint::black_box(picture.is_some());
        }
        raw_time += t.elapsed();

        let mut stage = H264Decoder::new();
        let t = Instant::now();
        for frame in frames {
            std::hint::black_box(stage.decode(frame).expect("stage decode"));
        }
        stage_time += t.elapsed();
        done += frames.len() as u64;
    }
    let ms = |time: Duration| time.as_secs_f64() * 1000.0 / done.max(1) as f64;
    println!("H.264 decode, {SIZE}, {what}, {done} frames each");
    println!("{:<34} {:>10}", "decoder", "ms/frame");
    println!("{:<34} {:>10.2}", "raw openh264 (no copy)", ms(raw_time));
    println!(
        "{:<34} {:>10.2}",
        "framecast H264Decoder (+copy)",
        ms(stage_time)
    );
    println!(
        "ratio framecast/raw speed: {:.3}",
        raw_time.as_secs_f64() / stage_time.as_secs_f64()
    );
    println!();
}

/// Cold snapshot latency at several positions in the GOP.
fn cold_snapshots(frames: &[Arc<Frame>], started: Instant) {
    println!("cold snapshot, {SIZE}, IDR every {FRAMES_PER_IDR} frames at {FPS} fps");
    println!(
        "{:<24} {:>22} {:>26}",
        "GOP frames past", "framecast ms (median)", "wait for next IDR ms"
    );
    for position in GOP_POSITIONS {
        let mut times: Vec<f64> = (0..SNAPSHOT_REPEATS)
            .filter(|_| started.elapsed() < TIME_LIMIT)
            .filter_map(|_| cold_snapshot(&frames[..position as usize]))
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let frames_to_next_idr = u64::from(FRAMES_PER_IDR) - position + 1;
        let wait_ms = frames_to_next_idr as f64 * 1000.0 / f64::from(FPS);
        println!("{position:<24} {median:>22.1} {wait_ms:>26.1}");
    }
}

/// 720p frames of ffmpeg's `testsrc` from libx264 (4:2:0, no B-frames, an IDR every
/// [`FRAMES_PER_IDR`]), cut into access units as `pipe:h264` does; `None` without ffmpeg.
fn x264_frames() -> Option<Vec<Arc<Frame>>> {
    let output = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size={SIZE}:rate={FPS}"))
        .args(["-frames:v", &FRAMES.to_string(), "-pix_fmt", "yuv420p"])
        .args(["-c:v", "libx264", "-tune", "zerolatency", "-bf", "0"])
        .args(["-g", &FRAMES_PER_IDR.to_string(), "-f", "h264", "-"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let mut splitter = AccessUnitSplitter::default();
    let mut units = Vec::new();
    splitter.push(&output.stdout, &mut units).ok()?;
    splitter.finish(&mut units);
    let frames: Vec<Arc<Frame>> = units
        .into_iter()
        .filter(|unit| unit.has_picture)
        .zip(1..)
        .map(|(unit, seq)| {
            Arc::new(Frame {
                seq,
                pts_90k: seq * 3000,
                captured_at: SystemTime::now(),
                size: SIZE,
                pixels: Pixels::H264(H264Unit {
                    annex_b: unit.annex_b,
                    is_idr: unit.is_idr,
                }),
                repeats_previous: false,
            })
        })
        .collect();
    (!frames.is_empty()).then_some(frames)
}

/// 720p test pattern frames as H.264 units from framecast's encoder.
fn encoded_frames() -> Vec<Arc<Frame>> {
    let mut pattern = TestPattern::new(SIZE, FPS);
    let mut encoder = H264Encoder::new(H264Settings {
        fps: FPS,
        bitrate_bps: default_bitrate_bps(SIZE, FPS),
        frames_per_idr: FRAMES_PER_IDR,
    })
    .expect("encoder");
    let mut buf = vec![0; SIZE.i420_len()];
    (1..=FRAMES)
        .map(|seq| {
            let at = SystemTime::now();
            pattern.render(seq, at, &mut buf);
            let raw = Frame::from_i420(seq, seq * 3000, at, SIZE, Bytes::from(buf.clone()));
            let unit = encoder.encode(&raw).expect("encode");
            Arc::new(Frame {
                pixels: Pixels::H264(H264Unit {
                    annex_b: Bytes::from(unit.annex_b),
                    is_idr: unit.is_idr,
                }),
                ..raw
            })
        })
        .collect()
}

/// Publishes `frames` to a hub nobody watches, then asks for a snapshot: the time until the
/// JPEG of the last frame is published; `None` if it never comes within 10 s.
fn cold_snapshot(frames: &[Arc<Frame>]) -> Option<Duration> {
    let hub = Hub::new(false);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = vec![h264_decode::spawn(hub.clone(), stop.clone()).expect("decode thread")];
    threads.extend(jpeg::spawn_workers(hub.clone(), 80, 1, stop.clone()).expect("JPEG worker"));
    for frame in frames {
        hub.publish_frame(frame.clone());
    }
    let newest = frames.last()?.seq;
    let jpegs = hub.subscribe_jpeg();
    let asked = Instant::now();
    hub.want_snapshot();
    let mut took = None;
    while asked.elapsed() < Duration::from_secs(10) {
        if jpegs
            .borrow()
            .as_ref()
            .is_some_and(|jpeg| jpeg.frame.seq == newest)
        {
            took = Some(asked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hub.close();
    for thread in threads {
        let _ = thread.join();
    }
    took
}
