//! H.264 stage throughput: framecast's `H264Encoder` against raw openh264 with the same
//! settings, on the same 720p frames, in one run, rounds interleaved to cancel drift.
//! Prints frames per second for each and the ratio (target ≥ 0.95). Figures only, no asserts.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use framecast::encode::h264::{H264Encoder, H264Settings, default_bitrate_bps};
use framecast::frame::{Frame, FrameSize, Pixels};
use framecast::source::TestPattern;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange,
    RateControlMode, UsageType,
};
use openh264::formats::YUVBuffer;

const SIZE: FrameSize = FrameSize::new(1280, 720);
const FPS: u32 = 30;
const FRAMES: u64 = 60;
const ROUNDS: usize = 4;
/// The whole run stops after this, whatever the round count.
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let mut pattern = TestPattern::new(SIZE, FPS);
    let frames: Vec<Frame> = (0..FRAMES)
        .map(|n| {
            let mut buf = vec![0; SIZE.i420_len()];
            pattern.render(n + 1, SystemTime::now(), &mut buf);
            Frame {
                seq: n + 1,
                pts_90k: n * 3000,
                captured_at: SystemTime::now(),
                size: SIZE,
                pixels: Pixels::I420(Bytes::from(buf)),
                repeats_previous: false,
            }
        })
        .collect();
    let raw_frames: Vec<YUVBuffer> = frames
        .iter()
        .map(|f| {
            YUVBuffer::from_vec(
                f.i420().expect("I420 frame").bytes().to_vec(),
                SIZE.width as usize,
                SIZE.height as usize,
            )
        })
        .collect();
    let settings = H264Settings {
        fps: FPS,
        bitrate_bps: default_bitrate_bps(SIZE, FPS),
        frames_per_idr: FPS,
    };

    let started = Instant::now();
    let (mut raw_time, mut stage_time, mut frames_done) = (Duration::ZERO, Duration::ZERO, 0u64);
    let (mut raw_bytes, mut stage_bytes) = (0usize, 0usize);
    for _ in 0..ROUNDS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(FPS as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            .qp(QpRange::new(12, 51))
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(FPS))
            .num_threads(1);
        let mut raw =
            Encoder::with_api_config(OpenH264API::from_source(), config).expect("openh264 encoder");
        let t = Instant::now();
        for (n, yuv) in raw_frames.iter().enumerate() {
            if n % FPS as usize == 0 {
                raw.force_intra_frame();
            }
            raw_bytes += raw.encode(yuv).expect("raw encode").to_vec().len();
        }
        raw_time += t.elapsed();

        let mut stage = H264Encoder::new(settings).expect("framecast encoder");
        let t = Instant::now();
        for frame in &frames {
            stage_bytes += stage.encode(frame).expect("stage encode").annex_b.len();
        }
        stage_time += t.elapsed();
        frames_done += FRAMES;
    }
    let raw_fps = frames_done as f64 / raw_time.as_secs_f64();
    let stage_fps = frames_done as f64 / stage_time.as_secs_f64();
    println!(
        "H.264 stage, {SIZE} I420 test pattern, {frames_done} frames each, interleaved rounds"
    );
    println!("{:<28} {:>10} {:>16}", "encoder", "fps", "mean bytes/frame");
    println!(
        "{:<28} {:>10.1} {:>16}",
        "raw openh264",
        raw_fps,
        raw_bytes as u64 / frames_done.max(1)
    );
    println!(
        "{:<28} {:>10.1} {:>16}",
        "framecast H264Encoder",
        stage_fps,
        stage_bytes as u64 / frames_done.max(1)
    );
    println!(
        "ratio framecast/raw: {:.3} (target >= 0.95)",
        stage_fps / raw_fps
    );
}
