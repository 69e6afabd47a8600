//! Cuts the H.264 access-unit stream into CMAF parts and segments for HLS and `/live.mp4`.
//!
//! - A segment starts at an IDR once the previous one holds its configured number of frames
//!   (the encoder puts an IDR exactly there), so every segment is independent.
//! - A part is a fixed whole number of frames (`frames_per_part`), which makes PART-TARGET a
//!   whole number of frames; the last part of a segment may be shorter (rfc8216bis §4.4.4.9).
//! - Each part is one `moof` + `mdat`; a segment is its parts concatenated.
//! - Each frame is also written as a fragment of its own, for `/live.mp4`, which sends frames
//!   as they are encoded rather than whole parts.
//! - The timeline counts frames on the 90 kHz clock (`dts(n) = n * 90000 / fps`, drift-free),
//!   so decode times are continuous and no sample has a zero duration, whatever the jitter of
//!   capture times; PROGRAM-DATE-TIME comes from the capture time of each segment's first frame.
//!
//! Pure: access units in, events out; no I/O and no clocks.

use std::time::SystemTime;

use bytes::Bytes;

use crate::encode::h264::AccessUnit;
use crate::frame::{CLOCK_90K, FrameSize, unix_micros};
use crate::media::cmaf::{self, CmafError, Sample, VideoTrack};
use crate::media::h264;

/// How the stream is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterSettings {
    pub fps: u32,
    pub frames_per_segment: u32,
    pub frames_per_part: u32,
}

impl SegmenterSettings {
    /// Duration on the 90 kHz clock of frames `[from, to)` of the timeline.
    pub fn span_90k(&self, from_frame: u64, to_frame: u64) -> u64 {
        self.dts_90k(to_frame) - self.dts_90k(from_frame)
    }

    /// Decode time of frame `n` of the timeline: exact, without accumulated rounding.
    pub fn dts_90k(&self, frame: u64) -> u64 {
        (u128::from(frame) * u128::from(CLOCK_90K) / u128::from(self.fps.max(1))) as u64
    }

    /// Parts in a full segment (the last one may be shorter).
    pub fn parts_per_segment(&self) -> u32 {
        self.frames_per_segment
            .div_ceil(self.frames_per_part.max(1))
    }
}

/// What the segmenter produced from one access unit.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmenterEvent {
    /// A new init segment: the first, or after the picture format changed. Segments after it
    /// start with a discontinuity if there were segments before.
    Init {
        init: Bytes,
        codec: String,
        size: FrameSize,
    },
    /// A new segment has begun with this media sequence number.
    SegmentStart {
        msn: u64,
        program_date_time_unix_ms: u64,
        discontinuity: bool,
    },
    /// A finished part of the open segment.
    Part {
        msn: u64,
        index: u32,
        data: Bytes,
        duration_90k: u64,
        independent: bool,
        frames: u32,
    },
    /// The open segment is complete.
    SegmentEnd { msn: u64, duration_90k: u64 },
    /// One frame of the open part as a fragment of its own (moof + mdat, the same sample and
    /// decode time as in its part), for `/live.mp4`, which sends each frame as soon as it is
    /// encoded instead of waiting a whole part for it. Not listed in any playlist.
    Frame {
        /// The frame's number on the timeline (0 for the first).
        number: u64,
        data: Bytes,
        /// An IDR: a viewer can start here.
        independent: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SegmenterError {
    #[error("access unit {seq} holds no picture")]
    Empty { seq: u64 },
    #[error("cannot write fMP4: {0}")]
    Cmaf(#[from] CmafError),
}

/// What the caller should do after a push.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushOutcome {
    pub events: Vec<SegmenterEvent>,
    /// The access unit was dropped because a segment must start with an IDR: ask the encoder
    /// for one now.
    pub need_idr: bool,
}

#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    first_frame: u64,
    frames: u32,
    parts_done: u32,
}

#[derive(Debug, Default)]
struct PartBuilder {
    samples: Vec<Sample>,
    first_frame: u64,
    independent: bool,
}

#[derive(Debug)]
pub struct Segmenter {
    settings: SegmenterSettings,
    track: Option<VideoTrack>,
    /// Frames placed on the timeline so far.
    frames_total: u64,
    fragment_sequence: u32,
    next_msn: u64,
    open: Option<OpenSegment>,
    part: PartBuilder,
    /// The next segment follows a format change.
    pending_discontinuity: bool,
}

impl Segmenter {
    pub fn new(settings: SegmenterSettings) -> Self {
        Self {
            settings,
            track: None,
            frames_total: 0,
            fragment_sequence: 0,
            next_msn: 0,
            open: None,
            part: PartBuilder::default(),
            pending_discontinuity: false,
        }
    }

    pub fn settings(&self) -> SegmenterSettings {
        self.settings
    }

    pub fn push(&mut self, unit: &AccessUnit) -> Result<PushOutcome, SegmenterError> {
        let sample = h264::to_avcc_sample(&unit.annex_b);
        if sample.data.is_empty() {
            return Err(SegmenterError::Empty { seq: unit.seq });
        }
        let mut outcome = PushOutcome::default();

        if let (Some(sps), Some(pps)) = (&sample.sps, &sample.pps) {
            let track = VideoTrack {
                size: unit.size,
                sps: sps.clone(),
                pps: pps.clone(),
            };
            if self.track.as_ref() != Some(&track) {
                let init = Bytes::from(cmaf::init_segment(&track)?);
                if self.track.is_some() {
                    // A new format: close what is open so no segment mixes two formats.
                    self.close_segment(&mut outcome.events)?;
                    self.pending_discontinuity = true;
                }
                outcome.events.push(SegmenterEvent::Init {
                    init,
                    codec: h264::rfc6381_codec(sps).unwrap_or_else(|| "avc1".into()),
                    size: unit.size,
                });
                self.track = Some(track);
            }
        }
        if self.track.is_none() {
            outcome.need_idr = true;
            return Ok(outcome);
        }

        let segment_full = self
            .open
            .as_ref()
            .is_some_and(|s| s.frames >= self.settings.frames_per_segment);
        if sample.is_idr && (self.open.is_none() || segment_full) {
            self.close_segment(&mut outcome.events)?;
            self.open_segment(unit.captured_at, &mut outcome.events);
        }
        if self.open.is_none() {
            outcome.need_idr = true;
            return Ok(outcome);
        }

        let frame = self.frames_total;
        self.frames_total += 1;
        if self.part.samples.is_empty() {
            self.part.first_frame = frame;
            self.part.independent = sample.is_idr;
        }
        let sample = Sample {
            duration_90k: self.settings.span_90k(frame, frame + 1) as u32,
            is_sync: sample.is_idr,
            data: Bytes::from(sample.data),
        };
        outcome.events.push(SegmenterEvent::Frame {
            number: frame,
            // The fragment sequence numbers of /live.mp4 count frames (ISO/IEC 14496-12
            // §8.8.5: increasing in the order the fragments occur), apart from the parts'.
            data: Bytes::from(cmaf::fragment(
                (frame as u32).wrapping_add(1),
                self.settings.dts_90k(frame),
                std::slice::from_ref(&sample),
            )?),
            independent: sample.is_sync,
        });
        self.part.samples.push(sample);
        let open_frames = match &mut self.open {
            Some(open) => {
                open.frames += 1;
                open.frames
            }
            None => 0,
        };
        let part_full = self.part.samples.len() >= self.settings.frames_per_part as usize;
        if part_full || open_frames >= self.settings.frames_per_segment {
            self.finish_part(&mut outcome.events)?;
        }
        if open_frames >= self.settings.frames_per_segment {
            // Complete as soon as its last frame is in: its EXTINF can be listed now, and the
            // next IDR opens the next segment.
            self.close_segment(&mut outcome.events)?;
        }
        Ok(outcome)
    }

    fn open_segment(&mut self, captured_at: SystemTime, events: &mut Vec<SegmenterEvent>) {
        let msn = self.next_msn;
        self.next_msn += 1;
        self.open = Some(OpenSegment {
            msn,
            first_frame: self.frames_total,
            frames: 0,
            parts_done: 0,
        });
        events.push(SegmenterEvent::SegmentStart {
            msn,
            program_date_time_unix_ms: unix_micros(captured_at) / 1000,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
        });
    }

    fn finish_part(&mut self, events: &mut Vec<SegmenterEvent>) -> Result<(), SegmenterError> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        if self.part.samples.is_empty() {
            return Ok(());
        }
        let part = std::mem::take(&mut self.part);
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1);
        let data = cmaf::fragment(
            self.fragment_sequence,
            self.settings.dts_90k(part.first_frame),
            &part.samples,
        )?;
        let frames = part.samples.len() as u32;
        events.push(SegmenterEvent::Part {
            msn: open.msn,
            index: open.parts_done,
            data: Bytes::from(data),
            duration_90k: self
                .settings
                .span_90k(part.first_frame, part.first_frame + u64::from(frames)),
            independent: part.independent,
            frames,
        });
        open.parts_done += 1;
        Ok(())
    }

    fn close_segment(&mut self, events: &mut Vec<SegmenterEvent>) -> Result<(), SegmenterError> {
        self.finish_part(events)?;
        if let Some(open) = self.open.take() {
            events.push(SegmenterEvent::SegmentEnd {
                msn: open.msn,
                duration_90k: self.settings.span_90k(open.first_frame, self.frames_total),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::h264::{H264Encoder, H264Settings, default_bitrate_bps};
    use crate::frame::{Frame, Pixels};
    use crate::source::TestPattern;

    const SETTINGS: SegmenterSettings = SegmenterSettings {
        fps: 30,
        frames_per_segment: 30,
        frames_per_part: 10,
    };

    fn access_units(size: FrameSize, count: u64, frames_per_idr: u32) -> Vec<AccessUnit> {
        let mut pattern = TestPattern::new(size, 30);
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 30,
            bitrate_bps: default_bitrate_bps(size, 30),
            frames_per_idr,
        })
        .unwrap();
        let mut buf = vec![0; size.i420_len()];
        (0..count)
            .map(|n| {
                pattern.render(n + 1, SystemTime::now(), &mut buf);
                let frame = Frame {
                    seq: n + 1,
                    pts_90k: n * 3000,
                    captured_at: SystemTime::now(),
                    size,
                    pixels: Pixels::I420(Bytes::from(buf.clone())),
                    repeats_previous: false,
                };
                encoder.encode(&frame).unwrap()
            })
            .collect()
    }

    #[test]
    fn cuts_segments_at_idrs_and_parts_by_frame_count() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let mut events = Vec::new();
        for unit in access_units(FrameSize::new(320, 240), 95, 30) {
            let outcome = segmenter.push(&unit).unwrap();
            assert!(!outcome.need_idr);
            events.extend(outcome.events);
        }
        assert!(matches!(events[0], SegmenterEvent::Init { .. }));
        let parts: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SegmenterEvent::Part {
                    msn,
                    index,
                    duration_90k,
                    independent,
                    frames,
                    ..
                } => Some((*msn, *index, *duration_90k, *independent, *frames)),
                _ => None,
            })
            .collect();
        assert_eq!(parts.len(), 9, "three full segments of three parts");
        for (i, (msn, index, duration, independent, frames)) in parts.iter().enumerate() {
            assert_eq!(*msn, i as u64 / 3);
            assert_eq!(*index, i as u32 % 3);
            assert_eq!(*duration, 30_000);
            assert_eq!(*frames, 10);
            assert_eq!(*independent, *index == 0);
        }
        let ends: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SegmenterEvent::SegmentEnd { msn, duration_90k } => Some((*msn, *duration_90k)),
                _ => None,
            })
            .collect();
        assert_eq!(ends, vec![(0, 90_000), (1, 90_000), (2, 90_000)]);
    }

    #[test]
    fn an_uneven_rate_keeps_the_timeline_continuous() {
        let settings = SegmenterSettings {
            fps: 7,
            frames_per_segment: 7,
            frames_per_part: 2,
        };
        assert_eq!(settings.parts_per_segment(), 4);
        let total: u64 = (0..700).map(|n| settings.span_90k(n, n + 1)).sum();
        assert_eq!(total, settings.dts_90k(700));
        assert_eq!(settings.dts_90k(7), 90_000);
        assert!((0..700).all(|n| settings.span_90k(n, n + 1) > 0));
    }

    #[test]
    fn waits_for_an_idr_before_the_first_segment() {
        let units = access_units(FrameSize::new(320, 240), 3, 30);
        let mut segmenter = Segmenter::new(SETTINGS);
        // The first unit (the IDR) is lost: the rest cannot start a segment.
        let outcome = segmenter.push(&units[1]).unwrap();
        assert!(outcome.need_idr);
        assert!(outcome.events.is_empty());
    }

    #[test]
    fn a_new_picture_size_gives_a_new_init_and_a_discontinuity() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let mut events = Vec::new();
        for unit in access_units(FrameSize::new(320, 240), 15, 30) {
            events.extend(segmenter.push(&unit).unwrap().events);
        }
        for unit in access_units(FrameSize::new(640, 360), 5, 30) {
            events.extend(segmenter.push(&unit).unwrap().events);
        }
        let inits = events
            .iter()
            .filter(|e| matches!(e, SegmenterEvent::Init { .. }))
            .count();
        assert_eq!(inits, 2);
        assert!(events.iter().any(|e| matches!(
            e,
            SegmenterEvent::SegmentEnd {
                msn: 0,
                duration_90k: 45_000
            }
        )));
        assert!(events.iter().any(|e| matches!(
            e,
            SegmenterEvent::SegmentStart {
                msn: 1,
                discontinuity: true,
                ..
            }
        )));
    }

    #[test]
    fn every_frame_is_also_a_fragment_of_its_own() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let mut frames = Vec::new();
        for unit in access_units(FrameSize::new(320, 240), 35, 30) {
            for event in segmenter.push(&unit).unwrap().events {
                if let SegmenterEvent::Frame {
                    number,
                    data,
                    independent,
                } = event
                {
                    frames.push((number, data, independent));
                }
            }
        }
        assert_eq!(frames.len(), 35);
        for (i, (number, data, independent)) in frames.iter().enumerate() {
            assert_eq!(*number, i as u64);
            assert_eq!(*independent, i % 30 == 0, "frame {i}: IDRs open segments");
            assert_eq!(&data[4..8], b"moof");
            let at = data.windows(4).position(|w| w == b"tfdt").unwrap();
            let time = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap());
            assert_eq!(time, i as u64 * 3000, "the frame's decode time in its part");
            let trun = data.windows(4).position(|w| w == b"trun").unwrap();
            let count = u32::from_be_bytes(data[trun + 8..trun + 12].try_into().unwrap());
            assert_eq!(count, 1, "one sample");
        }
    }

    #[test]
    fn parts_are_fragments_with_continuous_decode_times() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let mut parts = Vec::new();
        for unit in access_units(FrameSize::new(320, 240), 30, 30) {
            for event in segmenter.push(&unit).unwrap().events {
                if let SegmenterEvent::Part { data, .. } = event {
                    parts.push(data);
                }
            }
        }
        assert_eq!(parts.len(), 3);
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(&part[4..8], b"moof");
            // tfdt v1 sits at a fixed place in these fragments: find it and read the time.
            let at = part.windows(4).position(|w| w == b"tfdt").unwrap();
            let time = u64::from_be_bytes(part[at + 8..at + 16].try_into().unwrap());
            assert_eq!(time, i as u64 * 30_000);
        }
    }
}
