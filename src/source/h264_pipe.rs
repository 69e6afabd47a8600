//! H.264 from another program through a pipe (`pipe:h264`, a FIFO, or `exec:h264:COMMAND`):
//! an Annex B byte stream, as `rpicam-vid --inline -o -`, `ffmpeg … -f h264 -` and
//! `gst-launch-1.0 … ! h264parse ! fdsink` write it.
//!
//! The stream is cut into access units ([`crate::media::h264_stream`]); each picture becomes
//! one frame stamped with its arrival time, passed through to HLS as it is. The stream's
//! parameter sets are kept, so that every IDR goes out with its SPS and PPS in front even when
//! the writer sends them once at its start; the picture size comes from the SPS.
//!
//! Refused with a clear error rather than served broken: H.265 (its parameter sets look
//! nothing like H.264's), B-frames (pictures out of presentation order, which framecast does
//! not reorder), and pictures before the first IDR are skipped (nothing can decode them).

use std::collections::VecDeque;
use std::io::Read;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::frame::{Frame, FrameSize, H264Unit, Pixels};
use crate::media::h264::{
    self, NAL_PPS, NAL_SPS, SliceKind, looks_like_h265, nal_unit_type, parse_sps,
};
use crate::media::h264_stream::{AccessUnit, AccessUnitSplitter};

use super::pipe::EndOfInput;
use super::{Source, SourceError};

/// Bytes asked of the pipe per read: a few pictures at common bitrates.
const READ_CHUNK_BYTES: usize = 64 * 1024;
const END_OF_PIPE: &str = "the pipe reached its end";

/// What the writer is told to change when its stream has B-frames.
pub const B_FRAMES_REFUSED: &str = "the H.264 stream has B-frames, which framecast does not \
    reorder; turn them off in the encoder (x264/ffmpeg: -bf 0 or -tune zerolatency; cameras: \
    a GOP of I and P frames only)";
pub const H265_REFUSED: &str = "the stream is H.265 (HEVC): H.265 is not supported; send H.264";

/// The parameter sets seen last, and the picture size the SPS gives.
#[derive(Debug, Default)]
struct ParameterSets {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    size: Option<FrameSize>,
}

pub struct H264Pipe {
    input: Box<dyn Read + Send>,
    splitter: AccessUnitSplitter,
    chunk: Vec<u8>,
    units: VecDeque<AccessUnit>,
    params: ParameterSets,
    /// No IDR yet: pictures are skipped until one comes.
    before_first_idr: bool,
    /// The first bytes have been looked at for an H.265 stream.
    codec_checked: bool,
    ended: bool,
    end: EndOfInput,
    name: String,
}

impl H264Pipe {
    pub fn new(input: Box<dyn Read + Send>, name: String, end: EndOfInput) -> Self {
        Self {
            input,
            splitter: AccessUnitSplitter::default(),
            chunk: vec![0; READ_CHUNK_BYTES],
            units: VecDeque::new(),
            params: ParameterSets::default(),
            before_first_idr: true,
            codec_checked: false,
            ended: false,
            end,
            name,
        }
    }

    /// Reads more of the pipe into access units.
    fn fill(&mut self) -> Result<(), SourceError> {
        let read = loop {
            match self.input.read(&mut self.chunk) {
                Ok(read) => break read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(SourceError::Failed(format!("reading: {error}"))),
            }
        };
        let mut units = Vec::new();
        if read == 0 {
            self.ended = true;
            self.splitter.finish(&mut units);
        } else {
            let data = &self.chunk[..read];
            if !self.codec_checked
                && let Some(first) = h264::split_annex_b(data).next()
            {
                self.codec_checked = true;
                if looks_like_h265(first) {
                    return Err(SourceError::Unsupported(H265_REFUSED.into()));
                }
            }
            if let Err(error) = self.splitter.push(data, &mut units) {
                self.units.extend(units);
                return Err(SourceError::BadFrame(error.to_string()));
            }
        }
        self.units.extend(units);
        Ok(())
    }

    /// The frame of one access unit; `None` for one that holds no picture to serve.
    fn frame_of(&mut self, unit: AccessUnit) -> Result<Option<Frame>, SourceError> {
        let mut has_sps = false;
        let mut has_pps = false;
        for nal in h264::split_annex_b(&unit.annex_b) {
            match nal_unit_type(nal) {
                Some(NAL_SPS) => {
                    has_sps = true;
                    self.take_sps(nal)?;
                }
                Some(NAL_PPS) => {
                    has_pps = true;
                    self.params.pps = Some(Bytes::copy_from_slice(nal));
                }
                _ => {
                    if h264::slice_kind(nal) == Some(SliceKind::B) {
                        return Err(SourceError::Unsupported(B_FRAMES_REFUSED.into()));
                    }
                }
            }
        }
        if !unit.has_picture {
            return Ok(None);
        }
        if unit.is_idr {
            self.before_first_idr = false;
        } else if self.before_first_idr {
            return Ok(None);
        }
        let (Some(size), Some(sps), Some(pps)) =
            (self.params.size, &self.params.sps, &self.params.pps)
        else {
            return Err(SourceError::BadFrame(
                "an H.264 picture came before its SPS and PPS".into(),
            ));
        };
        let annex_b = if unit.is_idr && !(has_sps && has_pps) {
            with_parameter_sets(sps, pps, &unit.annex_b)
        } else {
            unit.annex_b
        };
        Ok(Some(Frame {
            seq: 0,
            pts_90k: 0,
            captured_at: SystemTime::now(),
            size,
            pixels: Pixels::H264(H264Unit {
                annex_b,
                is_idr: unit.is_idr,
            }),
            repeats_previous: false,
        }))
    }

    fn take_sps(&mut self, nal: &[u8]) -> Result<(), SourceError> {
        if self.params.sps.as_deref() == Some(nal) {
            return Ok(());
        }
        let sps = parse_sps(nal)
            .map_err(|error| SourceError::BadFrame(format!("a bad H.264 SPS: {error}")))?;
        let (width, height) = (sps.width, sps.height);
        let size = FrameSize::new(width, height);
        if width == 0 || height == 0 || !size.fits_max() {
            return Err(SourceError::BadFrame(format!(
                "the H.264 SPS describes a {width}x{height} picture, larger than {}",
                FrameSize::MAX
            )));
        }
        self.params.sps = Some(Bytes::copy_from_slice(nal));
        self.params.size = Some(size);
        Ok(())
    }
}

/// The access unit `annex_b` with `sps` and `pps` in front, in that order, and its own
/// parameter sets (if it had one of them) left out.
pub(super) fn with_parameter_sets(sps: &[u8], pps: &[u8], annex_b: &[u8]) -> Bytes {
    const START_CODE: [u8; 4] = [0, 0, 0, 1];
    let mut out = BytesMut::with_capacity(annex_b.len() + sps.len() + pps.len() + 8);
    for nal in [sps, pps] {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    for nal in h264::split_annex_b(annex_b) {
        if !matches!(nal_unit_type(nal), Some(NAL_SPS | NAL_PPS)) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
    }
    out.freeze()
}

impl Source for H264Pipe {
    fn describe(&self) -> String {
        format!("{} (H.264)", self.name)
    }

    fn reopen_after_silence(&self) -> Option<Duration> {
        None
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            if let Some(unit) = self.units.pop_front() {
                match self.frame_of(unit)? {
                    Some(frame) => return Ok(frame),
                    None => continue,
                }
            }
            if self.ended {
                return Err((self.end)(END_OF_PIPE.into()));
            }
            self.fill()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::h264::{H264Encoder, H264Settings};

    const SIZE: FrameSize = FrameSize::new(320, 240);

    /// `count` pictures from framecast's own encoder, an IDR every `per_idr`.
    fn encoded(count: u64, per_idr: u32) -> Vec<crate::encode::h264::AccessUnit> {
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 10,
            bitrate_bps: 300_000,
            frames_per_idr: per_idr,
        })
        .expect("an encoder");
        (0..count)
            .map(|n| {
                let picture = vec![(n * 20) as u8; SIZE.i420_len()];
                let frame =
                    Frame::from_i420(n + 1, n * 9000, SystemTime::now(), SIZE, picture.into());
                encoder.encode(&frame).expect("encoded")
            })
            .collect()
    }

    fn without_parameter_sets(annex_b: &[u8]) -> Vec<u8> {
        h264::split_annex_b(annex_b)
            .filter(|nal| !matches!(nal_unit_type(nal), Some(NAL_SPS | NAL_PPS)))
            .flat_map(|nal| [0u8, 0, 0, 1].into_iter().chain(nal.iter().copied()))
            .collect()
    }

    fn pipe(bytes: Vec<u8>) -> H264Pipe {
        // Small reads, so that access units cross them.
        struct Trickle(std::io::Cursor<Vec<u8>>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len().min(777);
                self.0.read(&mut buf[..len])
            }
        }
        H264Pipe::new(
            Box::new(Trickle(std::io::Cursor::new(bytes))),
            "test pipe".into(),
            SourceError::Ended,
        )
    }

    fn unit_of(frame: &Frame) -> &H264Unit {
        match &frame.pixels {
            Pixels::H264(unit) => unit,
            other => panic!("not H.264: {other:?}"),
        }
    }

    #[test]
    fn pictures_come_out_one_frame_each_and_every_idr_has_its_parameter_sets() {
        let units = encoded(6, 3);
        let mut stream = Vec::new();
        for (n, unit) in units.iter().enumerate() {
            // The writer sends the parameter sets once, at its start.
            if n == 0 {
                stream.extend_from_slice(&unit.annex_b);
            } else {
                stream.extend(without_parameter_sets(&unit.annex_b));
            }
        }
        let mut source = pipe(stream);
        for (n, unit) in units.iter().enumerate() {
            let frame = source.next_frame().expect("a picture");
            assert_eq!(frame.size, SIZE);
            let got = unit_of(&frame);
            assert_eq!(got.is_idr, unit.is_idr, "picture {n}");
            let kinds: Vec<u8> = h264::split_annex_b(&got.annex_b)
                .filter_map(nal_unit_type)
                .collect();
            if got.is_idr {
                assert_eq!(&kinds[..2], [NAL_SPS, NAL_PPS], "picture {n}: {kinds:?}");
                assert_eq!(
                    got.annex_b, unit.annex_b,
                    "picture {n} as the encoder made it"
                );
            } else {
                assert!(!kinds.contains(&NAL_SPS), "picture {n}: {kinds:?}");
            }
        }
        assert!(matches!(source.next_frame(), Err(SourceError::Ended(_))));
    }

    #[test]
    fn pictures_before_the_first_idr_are_skipped() {
        let units = encoded(5, 3);
        // Joined after the first IDR's picture: two P pictures, then an IDR.
        let mut stream = Vec::new();
        stream.extend_from_slice(&units[1].annex_b);
        stream.extend_from_slice(&units[2].annex_b);
        stream.extend_from_slice(&units[3].annex_b);
        stream.extend_from_slice(&units[4].annex_b);
        let mut source = pipe(stream);
        let first = source.next_frame().expect("the IDR");
        assert!(unit_of(&first).is_idr);
        assert!(!unit_of(&source.next_frame().expect("a P picture")).is_idr);
    }

    #[test]
    fn h265_and_b_frames_are_refused_saying_so() {
        let vps = vec![0, 0, 0, 1, 0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF];
        let error = pipe(vps).next_frame().map(|_| ()).unwrap_err();
        assert!(
            matches!(&error, SourceError::Unsupported(m) if m.contains("H.265")),
            "{error}"
        );

        let mut stream = encoded(1, 3)[0].annex_b.clone();
        // A B slice (first_mb_in_slice 0, slice_type 1), then a P slice to end it.
        stream.extend_from_slice(&[0, 0, 0, 1, 0x01, 0b1010_0000, 0x12, 0x34]);
        stream.extend_from_slice(&[0, 0, 0, 1, 0x41, 0b1100_0000, 0x12, 0x34]);
        let mut source = pipe(stream);
        assert!(unit_of(&source.next_frame().expect("the IDR")).is_idr);
        let error = source.next_frame().map(|_| ()).unwrap_err();
        assert!(
            matches!(&error, SourceError::Unsupported(m) if m.contains("B-frames")),
            "{error}"
        );
    }
}
