//! The H.264 stage: I420 frames to H.264 access units through openh264 (Constrained Baseline,
//! no B-frames), with an IDR exactly where the HLS segmenter starts a segment.
//!
//! openh264 writes Annex-B with SPS and PPS before every IDR and no VUI timing; the segmenter
//! moves the parameter sets into the fMP4 init segment.

use std::time::{Duration, Instant, SystemTime};

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, QpRange,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSource;

use crate::frame::{Frame, FrameSize, I420, Pixels};

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// The source frame's sequence number.
    pub seq: u64,
    pub captured_at: SystemTime,
    pub size: FrameSize,
    /// Annex-B byte stream of the picture (with SPS/PPS before an IDR).
    pub annex_b: Vec<u8>,
    pub is_idr: bool,
    pub encode_time: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum H264Error {
    #[error("openh264: {0}")]
    OpenH264(#[from] openh264::Error),
    #[error("frame of {got} bytes does not match its size {size} ({want} bytes)")]
    BadFrame {
        got: usize,
        want: usize,
        size: FrameSize,
    },
    #[error("the frame is a JPEG; decode it to I420 first")]
    NotI420,
    #[error("openh264 produced no picture (frame type {0:?})")]
    NoPicture(FrameType),
}

/// Settings fixed for a stream.
#[derive(Debug, Clone, Copy)]
pub struct H264Settings {
    pub fps: u32,
    pub bitrate_bps: u32,
    /// An IDR every this many frames: the segment length in frames.
    pub frames_per_idr: u32,
}

/// The largest picture openh264 encodes, either way up (its "max resolution" check).
pub const MAX_PICTURE: FrameSize = FrameSize::new(3840, 2160);

/// Whether openh264 takes pictures of `size`.
pub fn encodes(size: FrameSize) -> bool {
    let (long, short) = (size.width.max(size.height), size.width.min(size.height));
    long <= MAX_PICTURE.width && short <= MAX_PICTURE.height
}

/// The QP range openh264's rate control may use.
const MIN_QP: u8 = 12;
const MAX_QP: u8 = 51;

/// A default bitrate for a picture size and rate: about 0.07 bits per pixel, which gives
/// Baseline H.264 a clean picture for camera content (1280x720 at 30 fps: about 1.9 Mbit/s).
pub fn default_bitrate_bps(size: FrameSize, fps: u32) -> u32 {
    let bits = size.luma_len() as u64 * u64::from(fps) * 7 / 100;
    bits.clamp(100_000, 50_000_000) as u32
}

pub struct H264Encoder {
    encoder: Encoder,
    settings: H264Settings,
    frames_encoded: u64,
    last_size: Option<FrameSize>,
}

impl H264Encoder {
    pub fn new(settings: H264Settings) -> Result<Self, H264Error> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            // Every frame must come out: HLS parts are a whole number of frames, and a skipped
            // frame would leave a hole in the timeline.
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            // openh264 replaces a minimum QP of 0 (the crate's default) with its own range,
            // 12 to 42, and 42 does not hold the bitrate on noisy pictures. 12 is that
            // range's own floor; the ceiling is H.264's (ITU-T H.264 §7.4.3: QP 0 to 51).
            .qp(QpRange::new(MIN_QP, MAX_QP))
            // IDRs come where segments start, not where openh264 sees a scene change.
            .scene_change_detect(false)
            // The segment length, though every IDR is asked for with `force_intra_frame`:
            // without a period (0), openh264's streams made ffmpeg's muxer see repeated
            // timestamps. openh264 counts the period from each IDR, ours included, so its own
            // never comes before the next one we ask for.
            .intra_frame_period(IntraFramePeriod::from_num_frames(settings.frames_per_idr))
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        Ok(Self {
            encoder,
            settings,
            frames_encoded: 0,
            last_size: None,
        })
    }

    /// Whether the next frame encoded will be an IDR.
    pub fn idr_due(&self, size: FrameSize) -> bool {
        self.last_size != Some(size)
            || self
                .frames_encoded
                .is_multiple_of(u64::from(self.settings.frames_per_idr.max(1)))
    }

    /// Encodes one frame. Every `frames_per_idr`-th frame, counting from the first, is an IDR.
    pub fn encode(&mut self, frame: &Frame) -> Result<AccessUnit, H264Error> {
        let started = Instant::now();
        let i420 = match &frame.pixels {
            Pixels::I420(bytes) => I420::new(bytes, frame.size).ok_or(H264Error::BadFrame {
                got: bytes.len(),
                want: frame.size.i420_len(),
                size: frame.size,
            })?,
            Pixels::Jpeg(_) | Pixels::H264(_) => return Err(H264Error::NotI420),
        };
        if self.last_size.replace(frame.size) != Some(frame.size) {
            // openh264 starts over at a new size: begin with an IDR (and new SPS/PPS).
            self.frames_encoded = 0;
        }
        let frames_per_idr = u64::from(self.settings.frames_per_idr.max(1));
        let idr_due = self.frames_encoded.is_multiple_of(frames_per_idr);
        if idr_due {
            self.encoder.force_intra_frame();
        }
        let stream = self.encoder.encode(&I420Frame(i420))?;
        let frame_type = stream.frame_type();
        let annex_b = stream.to_vec();
        if annex_b.is_empty() || matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Err(H264Error::NoPicture(frame_type));
        }
        self.frames_encoded += 1;
        Ok(AccessUnit {
            seq: frame.seq,
            captured_at: frame.captured_at,
            size: frame.size,
            annex_b,
            is_idr: frame_type == FrameType::IDR,
            encode_time: started.elapsed(),
        })
    }

    /// Makes the next frame an IDR and restarts the IDR cadence there (after a frame was lost).
    pub fn restart_cadence(&mut self) {
        self.frames_encoded = 0;
    }

    /// Encodes a frame again, as an IDR, in place of the access unit just returned for it,
    /// which the caller throws away: an IDR references no earlier picture, so the decoder
    /// never misses the discarded one. The IDR cadence keeps its count.
    pub fn reencode_as_idr(&mut self, frame: &Frame) -> Result<AccessUnit, H264Error> {
        let counted = self.frames_encoded.saturating_sub(1);
        self.frames_encoded = 0;
        let unit = self.encode(frame)?;
        self.frames_encoded = counted + 1;
        Ok(unit)
    }
}

/// Lends a frame's planes to openh264 without copying.
struct I420Frame<'a>(I420<'a>);

impl YUVSource for I420Frame<'_> {
    fn dimensions(&self) -> (usize, usize) {
        let size = self.0.size();
        (size.width as usize, size.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.size().width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264;
    use crate::source::TestPattern;

    #[test]
    fn idrs_come_exactly_at_the_cadence_with_parameter_sets() {
        let size = FrameSize::new(320, 240);
        let mut pattern = TestPattern::new(size, 30);
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 30,
            bitrate_bps: default_bitrate_bps(size, 30),
            frames_per_idr: 5,
        })
        .unwrap();
        let mut buf = vec![0; size.i420_len()];
        for n in 0..12u64 {
            pattern.render(n + 1, SystemTime::now(), &mut buf);
            let frame = Frame {
                seq: n + 1,
                pts_90k: n * 3000,
                captured_at: SystemTime::now(),
                size,
                pixels: Pixels::I420(bytes::Bytes::from(buf.clone())),
                repeats_previous: false,
            };
            let au = encoder.encode(&frame).unwrap();
            assert_eq!(au.is_idr, n % 5 == 0, "frame {n}");
            let sample = h264::to_avcc_sample(&au.annex_b);
            assert_eq!(sample.is_idr, au.is_idr);
            assert_eq!(sample.sps.is_some(), au.is_idr, "SPS before each IDR");
            if let Some(sps) = sample.sps {
                let sps = h264::parse_sps(&sps).unwrap();
                assert_eq!((sps.width, sps.height), (320, 240));
            }
        }
    }

    /// A frame thrown away and encoded again as an IDR: the stream without it decodes
    /// frame after frame, and the IDR cadence keeps its count.
    #[test]
    fn a_frame_encoded_again_as_an_idr_replaces_the_one_thrown_away() {
        let size = FrameSize::new(320, 240);
        let mut pattern = TestPattern::new(size, 30);
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 30,
            bitrate_bps: default_bitrate_bps(size, 30),
            frames_per_idr: 5,
        })
        .unwrap();
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        let mut buf = vec![0; size.i420_len()];
        let mut kept = Vec::new();
        for n in 0..8u64 {
            pattern.render(n + 1, SystemTime::now(), &mut buf);
            let frame = Frame::from_i420(
                n + 1,
                n * 3000,
                SystemTime::now(),
                size,
                bytes::Bytes::from(buf.clone()),
            );
            assert_eq!(encoder.idr_due(size), n % 5 == 0, "frame {n}");
            let mut au = encoder.encode(&frame).unwrap();
            if n == 2 {
                assert!(!au.is_idr);
                au = encoder.reencode_as_idr(&frame).unwrap();
                assert!(au.is_idr, "frame 2 again");
            } else {
                assert_eq!(au.is_idr, n % 5 == 0, "frame {n}");
            }
            kept.push(au.is_idr);
            let picture = decoder.decode(&au.annex_b).unwrap();
            assert!(picture.is_some(), "frame {n} decodes");
        }
        assert_eq!(kept, [true, false, true, false, false, true, false, false]);
        // A new size starts with an IDR.
        assert!(encoder.idr_due(FrameSize::new(160, 120)));
    }

    #[test]
    fn bitrate_scales_with_the_picture() {
        assert_eq!(
            default_bitrate_bps(FrameSize::new(1280, 720), 30),
            1_935_360
        );
        assert!(default_bitrate_bps(FrameSize::new(160, 120), 1) >= 100_000);
    }
}
