//! Source conversions to I420 at 720p, per frame: YUYV and NV12 (raw camera formats), and
//! camera MJPEG decoded for the H.264 path with `jpeg_to_i420` (JPEG → YCbCr planes → I420)
//! against libjpeg-turbo decoding the same JPEG to RGB, the usual route and the anchor.
//!
//! A third JPEG row, libjpeg-turbo's YCbCr planes alone, shows what the conversion adds.
//! Each case runs in rounds of a fixed number of frames; the JPEG cases take turns in rotating
//! order so that drift and neighbours weigh on all alike. Reported: mean and best-round time per frame
//! and the frame rate they allow. Bounded in time; prints figures and always exits 0.

use std::hint::black_box;
use std::time::{Duration, Instant};

use framecast::frame::FrameSize;
use framecast::picture::convert::{jpeg_to_i420, nv12_to_i420, yuyv_to_i420};
use turbojpeg::{Compressor, Decompressor, Image, PixelFormat, Subsamp, YuvImage};

/// The picture size of the figures (720p).
const SIZE: FrameSize = FrameSize::new(1280, 720);

/// JPEG quality of the test JPEG: framecast's default, and typical of webcam MJPEG.
const QUALITY: i32 = 80;

/// Frames per round: long enough (tens of milliseconds) to dwarf timer noise.
const FRAMES_PER_ROUND: usize = 20;

/// Rounds per case at most...
const MAX_ROUNDS: usize = 15;

/// ...and at least, even when the time budget runs out.
const MIN_ROUNDS: usize = 3;

/// Time budget per case (the JPEG cases share three), so the whole run stays under half a minute.
const CASE_BUDGET: Duration = Duration::from_secs(4);

type BenchError = Box<dyn std::error::Error>;

fn main() {
    if let Err(error) = run() {
        // Figures, not asserts: a failure to measure is reported, and the run still exits 0.
        eprintln!("convert: could not measure: {error}");
    }
}

/// Timings of one case.
#[derive(Default)]
struct Timing {
    frames: usize,
    busy: Duration,
    best_round: Option<Duration>,
}

impl Timing {
    fn add_round(&mut self, elapsed: Duration) {
        self.frames += FRAMES_PER_ROUND;
        self.busy += elapsed;
        self.best_round = Some(self.best_round.map_or(elapsed, |best| best.min(elapsed)));
    }

    fn mean_ns(&self) -> f64 {
        self.busy.as_nanos() as f64 / self.frames.max(1) as f64
    }

    fn best_ns(&self) -> f64 {
        self.best_round.unwrap_or_default().as_nanos() as f64 / FRAMES_PER_ROUND as f64
    }
}

/// Runs `frame` in rounds until the budget or the round limit; `frame` returns an error to stop.
fn measure(mut frame: impl FnMut() -> Result<(), BenchError>) -> Result<Timing, BenchError> {
    let mut timing = Timing::default();
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && (rounds < MIN_ROUNDS || started.elapsed() < CASE_BUDGET) {
        let began = Instant::now();
        for _ in 0..FRAMES_PER_ROUND {
            frame()?;
        }
        timing.add_round(began.elapsed());
        rounds += 1;
    }
    Ok(timing)
}

fn run() -> Result<(), BenchError> {
    let (width, height) = (SIZE.width as usize, SIZE.height as usize);
    let rgb = test_picture(width, height);
    let yuyv = yuyv_from_rgb(&rgb, width, height);
    let nv12 = nv12_from_rgb(&rgb, width, height);
    let mut compressor = Compressor::new()?;
    compressor.set_quality(QUALITY)?;
    compressor.set_subsamp(Subsamp::Sub2x1)?;
    let jpeg = compressor.compress_to_vec(Image {
        pixels: &rgb[..],
        width,
        pitch: width * 3,
        height,
        format: PixelFormat::RGB,
    })?;

    let mut i420 = vec![0u8; SIZE.i420_len()];
    let yuyv_timing = measure(|| {
        yuyv_to_i420(black_box(&yuyv), SIZE, width * 2, &mut i420)?;
        black_box(&i420);
        Ok(())
    })?;
    let nv12_timing = measure(|| {
        nv12_to_i420(black_box(&nv12), SIZE, width, &mut i420)?;
        black_box(&i420);
        Ok(())
    })?;

    let mut decompressor = Decompressor::new()?;
    let (mut scratch, mut decoded) = (Vec::new(), Vec::new());
    let mut rgb_out = vec![0u8; width * height * 3];
    let mut to_i420 = || -> Result<(), BenchError> {
        jpeg_to_i420(
            &mut decompressor,
            black_box(&jpeg),
            &mut scratch,
            &mut decoded,
        )?;
        black_box(&decoded);
        Ok(())
    };
    let mut rgb_decompressor = Decompressor::new()?;
    let mut to_rgb = || -> Result<(), BenchError> {
        rgb_decompressor.decompress(
            black_box(&jpeg),
            Image {
                pixels: &mut rgb_out[..],
                width,
                pitch: width * 3,
                height,
                format: PixelFormat::RGB,
            },
        )?;
        black_box(&rgb_out);
        Ok(())
    };
    // libjpeg-turbo's YCbCr planes alone: what jpeg_to_i420 adds on top of them is the rest.
    let mut planes_decompressor = Decompressor::new()?;
    let header = planes_decompressor.read_header(&jpeg)?;
    let mut planes = vec![0u8; turbojpeg::yuv_pixels_len(width, 1, height, header.subsamp)?];
    let mut to_planes = || -> Result<(), BenchError> {
        planes_decompressor.decompress_to_yuv(
            black_box(&jpeg),
            YuvImage {
                pixels: &mut planes[..],
                width,
                align: 1,
                height,
                subsamp: header.subsamp,
            },
        )?;
        black_box(&planes);
        Ok(())
    };
    // Warm-up, untimed: buffers grow to size, caches and page tables fill.
    to_i420()?;
    to_rgb()?;
    to_planes()?;
    let mut jpeg_timings: [Timing; 3] = Default::default();
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && (rounds < MIN_ROUNDS || started.elapsed() < 3 * CASE_BUDGET) {
        // Rotate the order (A B C, B C A, C A B) so that no side always follows another.
        for turn in 0..3 {
            let side = (turn + rounds) % 3;
            let began = Instant::now();
            for _ in 0..FRAMES_PER_ROUND {
                match side {
                    0 => to_i420()?,
                    1 => to_rgb()?,
                    _ => to_planes()?,
                }
            }
            jpeg_timings[side].add_round(began.elapsed());
        }
        rounds += 1;
    }
    let [i420_timing, rgb_timing, planes_timing] = jpeg_timings;

    println!(
        "convert: {SIZE} frames, {FRAMES_PER_ROUND} frames per round; JPEG 4:2:2 q{QUALITY}, {} bytes",
        jpeg.len()
    );
    println!();
    println!(
        "{:<34} {:>7} {:>12} {:>12} {:>10} {:>10}",
        "conversion", "frames", "mean ns/fr", "best ns/fr", "mean fps", "best fps"
    );
    for (name, timing) in [
        ("YUYV -> I420", &yuyv_timing),
        ("NV12 -> I420", &nv12_timing),
        ("JPEG 4:2:2 -> I420 (jpeg_to_i420)", &i420_timing),
        ("JPEG 4:2:2 -> RGB (anchor)", &rgb_timing),
        ("JPEG 4:2:2 -> YCbCr planes only", &planes_timing),
    ] {
        println!(
            "{:<34} {:>7} {:>12.0} {:>12.0} {:>10.1} {:>10.1}",
            name,
            timing.frames,
            timing.mean_ns(),
            timing.best_ns(),
            1e9 / timing.mean_ns().max(1.0),
            1e9 / timing.best_ns().max(1.0),
        );
    }
    println!();
    println!(
        "jpeg_to_i420 / RGB decode time: {:.3} mean, {:.3} best round to best round",
        i420_timing.mean_ns() / rgb_timing.mean_ns().max(1.0),
        i420_timing.best_ns() / rgb_timing.best_ns().max(1.0)
    );
    Ok(())
}

/// A camera-like picture: smooth gradients, hard edges and a textured patch, so the JPEG has
/// the mix of flat and busy blocks real scenes have.
fn test_picture(width: usize, height: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width * height * 3);
    let mut noise: u32 = 0x2545_F491;
    for y in 0..height {
        for x in 0..width {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let textured = x > width / 2 && y > height / 2;
            let grain = if textured { (noise >> 24) as u8 / 3 } else { 0 };
            let bar = if (x / 80) % 2 == 0 { 40 } else { 0 };
            rgb.push(((x * 255 / width) as u8).saturating_add(grain));
            rgb.push(((y * 255 / height) as u8 / 2).saturating_add(bar));
            rgb.push((((x + y) % 256) as u8).saturating_add(grain));
        }
    }
    rgb
}

/// BT.601 limited-range luma and chroma of one RGB pixel, in integer arithmetic.
fn ycbcr(pixel: &[u8]) -> (u8, u8, u8) {
    let (r, g, b) = (
        i32::from(pixel[0]),
        i32::from(pixel[1]),
        i32::from(pixel[2]),
    );
    let y = (66 * r + 129 * g + 25 * b + 128) / 256 + 16;
    let u = (-38 * r - 74 * g + 112 * b + 128) / 256 + 128;
    let v = (112 * r - 94 * g - 18 * b + 128) / 256 + 128;
    (y as u8, u as u8, v as u8)
}

fn yuyv_from_rgb(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * 2);
    for pair in rgb.chunks_exact(6).take(width * height / 2) {
        let (y0, u, v) = ycbcr(&pair[..3]);
        let (y1, _, _) = ycbcr(&pair[3..]);
        out.extend_from_slice(&[y0, u, y1, v]);
    }
    out
}

fn nv12_from_rgb(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out: Vec<u8> = rgb.chunks_exact(3).map(|pixel| ycbcr(pixel).0).collect();
    for y in (0..height).step_by(2) {
        for x in (0..width).step_by(2) {
            let (_, u, v) = ycbcr(&rgb[(y * width + x) * 3..]);
            out.extend_from_slice(&[u, v]);
        }
    }
    out
}
