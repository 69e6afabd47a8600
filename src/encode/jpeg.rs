//! The JPEG stage: I420 frames to JPEG through libjpeg-turbo, straight from the planes (no RGB
//! conversion), with one reused compressor per thread.
//!
//! [`JpegEncoder`] is the pure encoding step (measured against raw turbojpeg in
//! `benches/jpeg_stage.rs`); [`spawn_workers`] runs a pool of them on threads fed by the hub.
//! More than one worker only matters when one cannot keep up with the source: an idle worker
//! takes the newest frame while another is still busy, and the hub drops any result that would
//! arrive out of order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use turbojpeg::{Compressor, Subsamp, YuvImage};

use crate::frame::{Frame, FrameSize, JpegFrame, Pixels};
use crate::hub::{Hub, Taken};

/// How often an idle worker wakes to check for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    #[error("libjpeg-turbo: {0}")]
    Turbo(#[from] turbojpeg::Error),
    #[error("frame of {got} bytes does not match its size {size} ({want} bytes)")]
    BadFrame {
        got: usize,
        want: usize,
        size: FrameSize,
    },
}

/// One reusable JPEG compressor and its output buffer.
pub struct JpegEncoder {
    compressor: Compressor,
    scratch: Vec<u8>,
}

impl JpegEncoder {
    pub fn new(quality: u8) -> Result<Self, JpegError> {
        let mut compressor = Compressor::new()?;
        compressor.set_quality(i32::from(quality))?;
        compressor.set_subsamp(Subsamp::Sub2x2)?;
        Ok(Self {
            compressor,
            scratch: Vec::new(),
        })
    }

    /// Encodes one frame; a frame that already is a JPEG (camera or pipe passthrough) goes
    /// through as it is. The JPEG is copied out of a reused buffer: one small copy is far
    /// cheaper than allocating libjpeg-turbo's worst-case buffer for every frame.
    pub fn encode(&mut self, frame: &Frame) -> Result<JpegFrame, JpegError> {
        let started = Instant::now();
        let i420 = match &frame.pixels {
            Pixels::Jpeg(jpeg) => {
                return Ok(JpegFrame {
                    seq: frame.seq,
                    captured_at: frame.captured_at,
                    size: frame.size,
                    jpeg: jpeg.clone(),
                    encode_time: started.elapsed(),
                });
            }
            // turbojpeg asserts on a mismatched buffer; refuse it here instead.
            Pixels::I420(bytes) if bytes.len() != frame.size.i420_len() => {
                return Err(JpegError::BadFrame {
                    got: bytes.len(),
                    want: frame.size.i420_len(),
                    size: frame.size,
                });
            }
            Pixels::I420(bytes) => bytes,
        };
        let width = frame.size.width as usize;
        let height = frame.size.height as usize;
        let max_len = self.compressor.buf_len(width, height)?;
        if self.scratch.len() < max_len {
            self.scratch.resize(max_len, 0);
        }
        let image = YuvImage {
            pixels: &i420[..],
            width,
            align: 1,
            height,
            subsamp: Subsamp::Sub2x2,
        };
        let len = self
            .compressor
            .compress_yuv_to_slice(image, &mut self.scratch)?;
        Ok(JpegFrame {
            seq: frame.seq,
            captured_at: frame.captured_at,
            size: frame.size,
            jpeg: Bytes::copy_from_slice(&self.scratch[..len]),
            encode_time: started.elapsed(),
        })
    }
}

/// Starts `count` encoder threads that take frames from the hub and publish JPEGs to it until
/// `stop` is set and the hub is closed.
pub fn spawn_workers(
    hub: Arc<Hub>,
    quality: u8,
    count: usize,
    stop: Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, crate::error::Error> {
    (0..count.max(1))
        .map(|n| {
            let mut encoder = JpegEncoder::new(quality)
                .map_err(|e| crate::error::Error::JpegEncoder(e.to_string()))?;
            let hub = hub.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("jpeg-{n}"))
                .spawn(move || run_worker(&mut encoder, &hub, &stop))
                .map_err(crate::error::Error::Thread)
        })
        .collect()
}

fn run_worker(encoder: &mut JpegEncoder, hub: &Hub, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match hub.jpeg_input().take(IDLE_POLL) {
            Taken::Item(frame) => match encoder.encode(&frame) {
                Ok(jpeg) => hub.publish_jpeg(jpeg),
                Err(error) => tracing::warn!(%error, seq = frame.seq, "JPEG encoding failed"),
            },
            Taken::TimedOut => {}
            Taken::Closed => break,
        }
    }
}

/// A JPEG (4:2:0, quality 80) of an I420 picture, for tests that need real JPEG bytes.
#[cfg(test)]
pub(crate) fn test_jpeg(size: FrameSize, i420: &[u8]) -> Vec<u8> {
    let image = YuvImage {
        pixels: i420,
        width: size.width as usize,
        align: 1,
        height: size.height as usize,
        subsamp: Subsamp::Sub2x2,
    };
    turbojpeg::compress_yuv(image, 80)
        .expect("test JPEG")
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn grey_frame(size: FrameSize) -> Frame {
        Frame {
            seq: 7,
            pts_90k: 0,
            captured_at: SystemTime::now(),
            size,
            pixels: Pixels::I420(Bytes::from(vec![128u8; size.i420_len()])),
            repeats_previous: false,
        }
    }

    #[test]
    fn encodes_i420_to_a_jpeg_of_the_same_size() {
        let size = FrameSize::new(320, 240);
        let mut encoder = JpegEncoder::new(80).unwrap();
        let jpeg = encoder.encode(&grey_frame(size)).unwrap();
        assert_eq!(jpeg.seq, 7);
        assert!(jpeg.jpeg.starts_with(&[0xFF, 0xD8]));
        assert!(jpeg.jpeg.ends_with(&[0xFF, 0xD9]));
        let header = turbojpeg::read_header(&jpeg.jpeg).unwrap();
        assert_eq!((header.width, header.height), (320, 240));
    }

    #[test]
    fn a_jpeg_frame_passes_through_untouched() {
        let mut frame = grey_frame(FrameSize::new(320, 240));
        let mut encoder = JpegEncoder::new(80).unwrap();
        let jpeg = encoder.encode(&frame).unwrap().jpeg;
        frame.pixels = Pixels::Jpeg(jpeg.clone());
        let passed = encoder.encode(&frame).unwrap();
        assert_eq!(passed.jpeg.as_ptr(), jpeg.as_ptr(), "no copy, no re-encode");
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_an_error_not_a_panic() {
        let mut frame = grey_frame(FrameSize::new(320, 240));
        frame.pixels = Pixels::I420(Bytes::from_static(&[0; 10]));
        let mut encoder = JpegEncoder::new(80).unwrap();
        assert!(matches!(
            encoder.encode(&frame),
            Err(JpegError::BadFrame { got: 10, .. })
        ));
    }
}
