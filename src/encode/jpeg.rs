//! The JPEG stage: I420 frames to JPEG through libjpeg-turbo, straight from the planes (no RGB
//! conversion), with one reused compressor per thread.
//!
//! [`JpegEncoder`] is the encoding step (measured against raw turbojpeg in
//! `benches/jpeg_stage.rs`); `pipeline::jpeg` runs a pool of them on threads fed by the hub.

use std::time::Instant;

use bytes::Bytes;
use turbojpeg::{Compressor, Subsamp, YuvImage};

use crate::frame::{Frame, FrameSize, JpegFrame, Pixels};

#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    #[error("an H.264 frame must be decoded before it is encoded as a JPEG")]
    NotDecoded,
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
            // Decoded by the pipeline's H.264 decoder first; never handed here as it is.
            Pixels::H264(_) => return Err(JpegError::NotDecoded),
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
