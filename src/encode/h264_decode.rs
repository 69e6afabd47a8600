//! H.264 access units back to I420 frames through openh264's decoder (bundled source; Debian's
//! libopenh264 has a decoder CVE and is never used for camera input), for JPEG viewers of an
//! H.264 source.
//!
//! A plain value without threads: one access unit in, one [`Frame`] of tight I420 planes out,
//! with the input frame's `seq`, `pts_90k` and `captured_at`. Decoding starts at an IDR; after
//! any error the decoder starts over and takes nothing but an IDR next, so a lost or corrupt
//! unit never turns into a picture built on missing references.

use std::time::{Duration, Instant};

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;

use crate::frame::{Frame, FrameSize, Pixels};
use crate::media::h264;

/// NAL unit type of a sequence parameter set (ITU-T H.264 Table 7-1).
const NAL_SPS: u8 = 7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the frame holds no H.264 access unit")]
    NotH264,
    #[error("waiting for an IDR to start decoding")]
    WaitingForIdr,
    #[error("openh264: {0}")]
    OpenH264(String),
    #[error("the decoder gave no picture for the access unit")]
    NoPicture,
    #[error("a picture of {width}x{height} is outside what is served (2x2 to {max})", max = FrameSize::MAX)]
    BadSize { width: u32, height: u32 },
    #[error("the decoder's planes are shorter than its picture size says")]
    ShortPlanes,
    #[error(
        "the H.264 stream is {0}, which the decoder for JPEG viewers does not take: send 8-bit \
         4:2:0 (x264/ffmpeg: -pix_fmt yuv420p)"
    )]
    Unsupported(String),
}

impl DecodeError {
    /// Whether this is a real decoding failure rather than a unit skipped while waiting for an
    /// IDR (what `/status` counts as decode errors).
    pub fn is_failure(&self) -> bool {
        !matches!(self, Self::WaitingForIdr | Self::NotH264)
    }
}

/// A decoded picture and what it cost.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub frame: Frame,
    pub decode_time: Duration,
}

/// One openh264 decoder. Created lazily, and created anew after an error: the decoder's own
/// state after a corrupt unit is not something to build on.
pub struct H264Decoder {
    decoder: Option<Decoder>,
    /// False until an IDR decodes, and again after any error.
    in_sync: bool,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("in_sync", &self.in_sync)
            .finish_non_exhaustive()
    }
}

impl Default for H264Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl H264Decoder {
    /// A decoder that waits for an IDR. Does no work until the first unit.
    pub fn new() -> Self {
        Self {
            decoder: None,
            in_sync: false,
        }
    }

    /// Whether the next unit may be a P-frame: an IDR decoded and no error since.
    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    /// Forgets the decoding state: the next unit must be an IDR.
    pub fn reset(&mut self) {
        self.decoder = None;
        self.in_sync = false;
    }

    /// Decodes one access unit (`Pixels::H264`) to a frame of I420 planes.
    ///
    /// A unit that is not an IDR while out of sync is refused with
    /// [`DecodeError::WaitingForIdr`] without touching the decoder. [`DecodeError::NoPicture`]
    /// (openh264 took the unit but gave no picture for it) keeps the decoder in sync: later
    /// units still decode on what it took. Any other error resets the decoder. Odd picture sizes (a crop in the SPS) lose their last column or row, since
    /// I420 frames have even sides (see [`even_crop`]).
    pub fn decode(&mut self, frame: &Frame) -> Result<Decoded, DecodeError> {
        let Pixels::H264(unit) = &frame.pixels else {
            return Err(DecodeError::NotH264);
        };
        if unit.is_idr {
            // An IDR starts over: whatever came before no longer matters.
            self.in_sync = false;
        } else if !self.in_sync {
            return Err(DecodeError::WaitingForIdr);
        }
        let started = Instant::now();
        let result = self.decode_unit(&unit.annex_b, frame);
        match result {
            Ok(i420) => {
                self.in_sync = true;
                Ok(Decoded {
                    frame: i420,
                    decode_time: started.elapsed(),
                })
            }
            Err(DecodeError::NoPicture) if !unit.is_idr && self.in_sync => {
                Err(DecodeError::NoPicture)
            }
            Err(error) => {
                self.reset();
                Err(error)
            }
        }
    }

    fn decode_unit(&mut self, annex_b: &[u8], frame: &Frame) -> Result<Frame, DecodeError> {
        check_sps(annex_b)?;
        let decoder = match &mut self.decoder {
            Some(decoder) => decoder,
            empty => empty.insert(
                Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
                    .map_err(|e| DecodeError::OpenH264(e.to_string()))?,
            ),
        };
        let picture = decoder
            .decode(annex_b)
            .map_err(|e| DecodeError::OpenH264(e.to_string()))?
            .ok_or(DecodeError::NoPicture)?;
        let (width, height) = picture.dimensions();
        let size = even_crop(width, height)?;
        let (y_stride, u_stride, v_stride) = picture.strides();
        let mut i420 = Vec::with_capacity(size.i420_len());
        copy_plane(
            &mut i420,
            picture.y(),
            y_stride,
            size.width as usize,
            size.height as usize,
        )?;
        let (chroma_width, chroma_height) = (size.width as usize / 2, size.height as usize / 2);
        copy_plane(
            &mut i420,
            picture.u(),
            u_stride,
            chroma_width,
            chroma_height,
        )?;
        copy_plane(
            &mut i420,
            picture.v(),
            v_stride,
            chroma_width,
            chroma_height,
        )?;
        Ok(Frame {
            repeats_previous: frame.repeats_previous,
            ..Frame::from_i420(
                frame.seq,
                frame.pts_90k,
                frame.captured_at,
                size,
                Bytes::from(i420),
            )
        })
    }
}

/// The served size of a decoded picture: each odd side loses its last column or row, because
/// I420 frames have even sides ([`FrameSize`]). Dropping one edge line keeps every remaining
/// sample where the camera put it (scaling would blur the whole picture) and stays inside the
/// decoder's planes, whose chroma covers only the rounded-down half for odd sides.
pub fn even_crop(width: usize, height: usize) -> Result<FrameSize, DecodeError> {
    let bad = || DecodeError::BadSize {
        width: u32::try_from(width).unwrap_or(u32::MAX),
        height: u32::try_from(height).unwrap_or(u32::MAX),
    };
    let width = u32::try_from(width).map_err(|_| bad())? & !1;
    let height = u32::try_from(height).map_err(|_| bad())? & !1;
    let size = FrameSize::new(width, height);
    if width == 0 || height == 0 || !size.fits_max() {
        return Err(bad());
    }
    Ok(size)
}

/// Refuses a unit whose SPS announces a picture larger than anything served, before openh264
/// allocates its buffers for it, or samples openh264 does not decode (it takes 8-bit 4:2:0
/// only), with a reason that says what to change. An SPS our parser cannot read is left to
/// openh264.
fn check_sps(annex_b: &[u8]) -> Result<(), DecodeError> {
    for nal in h264::split_annex_b(annex_b) {
        let Some(sps) = (h264::nal_unit_type(nal) == Some(NAL_SPS))
            .then(|| h264::parse_sps(nal).ok())
            .flatten()
        else {
            continue;
        };
        if !FrameSize::new(sps.coded_width, sps.coded_height).fits_max() {
            return Err(DecodeError::BadSize {
                width: sps.width,
                height: sps.height,
            });
        }
        let chroma = match sps.chroma_format_idc {
            0 => "monochrome",
            1 => "4:2:0",
            2 => "4:2:2",
            _ => "4:4:4",
        };
        if sps.chroma_format_idc != 1 || sps.bit_depth_luma != 8 || sps.bit_depth_chroma != 8 {
            return Err(DecodeError::Unsupported(format!(
                "{}-bit {chroma}",
                sps.bit_depth_luma
            )));
        }
    }
    Ok(())
}

/// Appends `rows` rows of `width` samples from a plane `stride` bytes apart.
fn copy_plane(
    out: &mut Vec<u8>,
    plane: &[u8],
    stride: usize,
    width: usize,
    rows: usize,
) -> Result<(), DecodeError> {
    if stride < width {
        return Err(DecodeError::ShortPlanes);
    }
    for row in 0..rows {
        let start = row * stride;
        let line = plane
            .get(start..start + width)
            .ok_or(DecodeError::ShortPlanes)?;
        out.extend_from_slice(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::h264::{H264Encoder, H264Settings, default_bitrate_bps};
    use crate::frame::H264Unit;
    use crate::source::TestPattern;
    use std::time::SystemTime;

    /// `count` frames of the test pattern, each as I420 and as encoded by framecast's own
    /// encoder (an IDR every `frames_per_idr`).
    fn encoded(size: FrameSize, count: u64, frames_per_idr: u32) -> Vec<(Frame, Frame)> {
        let mut pattern = TestPattern::new(size, 30);
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 30,
            bitrate_bps: default_bitrate_bps(size, 30) * 4,
            frames_per_idr,
        })
        .unwrap();
        let mut buf = vec![0; size.i420_len()];
        (1..=count)
            .map(|seq| {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(seq);
                pattern.render(seq, at, &mut buf);
                let raw = Frame::from_i420(seq, seq * 3000, at, size, Bytes::from(buf.clone()));
                let au = encoder.encode(&raw).unwrap();
                let h264 = Frame {
                    pixels: Pixels::H264(H264Unit {
                        annex_b: Bytes::from(au.annex_b),
                        is_idr: au.is_idr,
                    }),
                    ..raw.clone()
                };
                (raw, h264)
            })
            .collect()
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn frames_from_framecasts_encoder_decode_to_the_same_picture() {
        let size = FrameSize::new(320, 240);
        let mut decoder = H264Decoder::new();
        for (raw, h264) in encoded(size, 8, 4) {
            let decoded = decoder.decode(&h264).unwrap().frame;
            assert_eq!(decoded.size, size);
            assert_eq!(
                (decoded.seq, decoded.pts_90k, decoded.captured_at),
                (raw.seq, raw.pts_90k, raw.captured_at)
            );
            let (got, want) = (decoded.i420().unwrap(), raw.i420().unwrap());
            let diff = mean_abs_diff(got.y(), want.y());
            assert!(diff < 6.0, "frame {}: luma differs by {diff:.2}", raw.seq);
            let diff = mean_abs_diff(got.bytes(), want.bytes());
            assert!(diff < 6.0, "frame {}: planes differ by {diff:.2}", raw.seq);
        }
        assert!(decoder.in_sync());
    }

    #[test]
    fn a_p_frame_before_any_idr_waits_and_does_not_count_as_a_failure() {
        let frames = encoded(FrameSize::new(160, 120), 3, 30);
        let mut decoder = H264Decoder::new();
        let error = decoder.decode(&frames[1].1).unwrap_err();
        assert_eq!(error, DecodeError::WaitingForIdr);
        assert!(!error.is_failure());
        assert!(decoder.decode(&frames[0].1).is_ok());
        assert!(decoder.decode(&frames[1].1).is_ok());
    }

    #[test]
    fn garbage_gives_errors_then_the_next_idr_decodes() {
        let size = FrameSize::new(160, 120);
        let frames = encoded(size, 9, 4);
        let mut decoder = H264Decoder::new();
        decoder.decode(&frames[0].1).unwrap();
        decoder.decode(&frames[1].1).unwrap();
        let mut seed = 0x2545_f491_u32;
        let garbage: Vec<u8> = [0, 0, 0, 1, 0x41]
            .into_iter()
            .chain((0..2000).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            }))
            .collect();
        let mut bad = frames[2].1.clone();
        bad.pixels = Pixels::H264(H264Unit {
            annex_b: Bytes::from(garbage.clone()),
            is_idr: false,
        });
        let error = decoder.decode(&bad).unwrap_err();
        assert!(error.is_failure(), "{error}");
        assert!(!decoder.in_sync());
        // The rest of the GOP waits for the next IDR.
        assert_eq!(
            decoder.decode(&frames[3].1).unwrap_err(),
            DecodeError::WaitingForIdr
        );
        // Garbage that claims to be an IDR fails too, and leaves the decoder waiting.
        bad.pixels = Pixels::H264(H264Unit {
            annex_b: Bytes::from(garbage),
            is_idr: true,
        });
        assert!(decoder.decode(&bad).unwrap_err().is_failure());
        for junk in [&b""[..], &[0, 0, 1], &[0, 0, 0, 1, 0x65], &[0xFF; 64]] {
            bad.pixels = Pixels::H264(H264Unit {
                annex_b: Bytes::copy_from_slice(junk),
                is_idr: true,
            });
            assert!(decoder.decode(&bad).is_err(), "{junk:?}");
        }
        for (raw, h264) in &frames[4..] {
            let decoded = decoder.decode(h264).unwrap().frame;
            assert_eq!(decoded.seq, raw.seq);
            let diff = mean_abs_diff(decoded.i420().unwrap().y(), raw.i420().unwrap().y());
            assert!(diff < 6.0, "frame {}: luma differs by {diff:.2}", raw.seq);
        }
    }

    #[test]
    fn a_frame_without_h264_is_refused() {
        let size = FrameSize::new(160, 120);
        let frame = Frame::from_i420(
            1,
            0,
            SystemTime::now(),
            size,
            Bytes::from(vec![0; size.i420_len()]),
        );
        assert_eq!(
            H264Decoder::new().decode(&frame).unwrap_err(),
            DecodeError::NotH264
        );
    }

    /// SPS NAL units of libx264 streams openh264 does not decode (from Debian's ffmpeg, as in
    /// `media::h264`'s tests): 642x362 High 4:4:4 Predictive, and 1920x1080 High 10.
    const X264_444_SPS: &[u8] = &[
        0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x14, 0x85, 0xfc, 0x7c, 0xf8, 0x08, 0x80, 0x00,
        0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8b, 0x16, 0xcb,
    ];
    const X264_HIGH10_SPS: &[u8] = &[
        0x67, 0x6e, 0x00, 0x28, 0xa6, 0xcd, 0x94, 0x07, 0x80, 0x22, 0x7e, 0x5c, 0x04, 0x40, 0x00,
        0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0x65, 0x80,
    ];

    #[test]
    fn a_stream_openh264_cannot_decode_is_refused_saying_what_to_send() {
        for (sps, what) in [
            (X264_444_SPS, "8-bit 4:4:4"),
            (X264_HIGH10_SPS, "10-bit 4:2:0"),
        ] {
            let frame = Frame {
                pixels: Pixels::H264(H264Unit {
                    annex_b: Bytes::from([&[0, 0, 0, 1][..], sps].concat()),
                    is_idr: true,
                }),
                ..Frame::from_i420(
                    1,
                    0,
                    SystemTime::now(),
                    FrameSize::new(64, 48),
                    Bytes::new(),
                )
            };
            let error = H264Decoder::new().decode(&frame).unwrap_err();
            assert_eq!(error, DecodeError::Unsupported(what.into()));
            assert!(error.to_string().contains("-pix_fmt yuv420p"), "{error}");
        }
    }

    #[test]
    fn odd_sides_lose_their_last_line() {
        assert_eq!(even_crop(1921, 1081).unwrap(), FrameSize::new(1920, 1080));
        assert_eq!(even_crop(1280, 720).unwrap(), FrameSize::new(1280, 720));
        assert!(even_crop(1, 720).is_err());
        assert!(even_crop(7682, 2).is_err());
    }

    #[test]
    fn copy_plane_takes_rows_out_of_a_strided_plane_and_refuses_short_ones() {
        let plane = [1, 2, 9, 3, 4, 9];
        let mut out = Vec::new();
        copy_plane(&mut out, &plane, 3, 2, 2).unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(
            copy_plane(&mut out, &plane, 3, 2, 3),
            Err(DecodeError::ShortPlanes)
        );
        assert_eq!(
            copy_plane(&mut out, &plane, 1, 2, 1),
            Err(DecodeError::ShortPlanes)
        );
    }
}
