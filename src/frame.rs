//! Frames as they travel through the pipeline, and the clocks that stamp them.
//!
//! A [`Frame`] is what a source produces: raw I420 planes, or a camera's own JPEG or H.264
//! access unit, immutable once made and shared by `Arc`. A [`JpegFrame`] is one frame encoded once for every MJPEG viewer and snapshot; it
//! carries its multipart part headers pre-built so that fan-out to many viewers only clones
//! `Bytes` handles.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The MPEG clock rate used for presentation timestamps (ISO/IEC 13818-1 §2.4.2.2).
pub const CLOCK_90K: u64 = 90_000;

/// A picture size in pixels. Both sides are even, because I420 subsamples chroma by two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

impl FrameSize {
    /// Smallest picture served: below this the test pattern's text and timestamp strip do not fit.
    pub const MIN: Self = Self::new(160, 120);
    /// Largest picture served or accepted from a source: 8K UHD. Anything larger is a typo in a
    /// flag or a corrupt or hostile frame header, and would cost gigabytes to decode.
    pub const MAX: Self = Self::new(7680, 4320);

    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Whether both sides are within [`FrameSize::MAX`].
    pub fn fits_max(self) -> bool {
        self.width <= Self::MAX.width && self.height <= Self::MAX.height
    }

    /// Bytes of the luma plane.
    pub fn luma_len(self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Bytes of one chroma plane (U or V).
    pub fn chroma_len(self) -> usize {
        (self.width as usize / 2) * (self.height as usize / 2)
    }

    /// Bytes of a whole I420 frame: Y, then U, then V, no padding.
    pub fn i420_len(self) -> usize {
        self.luma_len() + 2 * self.chroma_len()
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A picture's samples as the source delivered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pixels {
    /// I420 (planar 4:2:0): `size.luma_len()` bytes of Y, then U, then V, each plane tightly
    /// packed (stride = width, width / 2 for chroma).
    I420(Bytes),
    /// A complete, validated JPEG from a camera or pipe, passed to MJPEG viewers as it is and
    /// decoded to I420 only for the H.264 path.
    Jpeg(Bytes),
    /// One H.264 access unit from a camera or pipe, passed to HLS and `/live.mp4` as it is and
    /// decoded to I420 only for JPEG viewers.
    H264(H264Unit),
}

/// One H.264 access unit as a source delivers it: its NAL units in Annex B form, each behind a
/// 4-byte start code, with the SPS and PPS in front of every IDR (sources put them there when
/// the camera sends them apart), in decode order without B-frames, so decode order is
/// presentation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Unit {
    pub annex_b: Bytes,
    /// An IDR: decoding can start here.
    pub is_idr: bool,
}

/// One captured picture.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Increases by one for every frame the source produces, from 1.
    pub seq: u64,
    /// Presentation time on the 90 kHz clock, from the start of the source.
    pub pts_90k: u64,
    /// Wall-clock capture time, for latency figures and PROGRAM-DATE-TIME.
    pub captured_at: SystemTime,
    pub size: FrameSize,
    pub pixels: Pixels,
    /// The source saw no change from the previous frame (`--drop-same-frames`): MJPEG skips it,
    /// HLS still encodes it to keep its cadence.
    pub repeats_previous: bool,
}

impl Frame {
    /// A frame of I420 samples.
    pub fn from_i420(
        seq: u64,
        pts_90k: u64,
        captured_at: SystemTime,
        size: FrameSize,
        i420: Bytes,
    ) -> Self {
        Self {
            seq,
            pts_90k,
            captured_at,
            size,
            pixels: Pixels::I420(i420),
            repeats_previous: false,
        }
    }

    /// The I420 planes, when the frame holds them.
    pub fn i420(&self) -> Option<I420<'_>> {
        match &self.pixels {
            Pixels::I420(bytes) => I420::new(bytes, self.size),
            Pixels::Jpeg(_) | Pixels::H264(_) => None,
        }
    }
}

/// A checked view of I420 planes: the buffer is exactly `size.i420_len()` bytes.
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    bytes: &'a [u8],
    size: FrameSize,
}

impl<'a> I420<'a> {
    /// `None` if `bytes` is not exactly one I420 picture of `size`.
    pub fn new(bytes: &'a [u8], size: FrameSize) -> Option<Self> {
        (bytes.len() == size.i420_len()).then_some(Self { bytes, size })
    }

    pub fn size(&self) -> FrameSize {
        self.size
    }

    /// Y, U and V back to back.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn y(&self) -> &'a [u8] {
        &self.bytes[..self.size.luma_len()]
    }

    pub fn u(&self) -> &'a [u8] {
        let start = self.size.luma_len();
        &self.bytes[start..start + self.size.chroma_len()]
    }

    pub fn v(&self) -> &'a [u8] {
        let start = self.size.luma_len() + self.size.chroma_len();
        &self.bytes[start..start + self.size.chroma_len()]
    }
}

/// One frame encoded as a JPEG, ready to be sent to any number of viewers.
#[derive(Debug, Clone)]
pub struct JpegFrame {
    /// The sequence number of the [`Frame`] it was encoded from.
    pub seq: u64,
    pub captured_at: SystemTime,
    pub size: FrameSize,
    pub jpeg: Bytes,
    /// How long the encoder took, for `/status`.
    pub encode_time: Duration,
}

/// Microseconds since the Unix epoch; 0 for times before it.
pub fn unix_micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The inverse of [`unix_micros`].
pub fn from_unix_micros(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_plane_sizes() {
        let size = FrameSize::new(1280, 720);
        assert_eq!(size.luma_len(), 921_600);
        assert_eq!(size.chroma_len(), 230_400);
        assert_eq!(size.i420_len(), 1_382_400);
    }

    #[test]
    fn unix_micros_round_trips() {
        let at = from_unix_micros(1_790_000_000_123_456);
        assert_eq!(unix_micros(at), 1_790_000_000_123_456);
    }
}
