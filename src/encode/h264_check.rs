//! The rules an external encoder's output must keep, checked on each access unit as it
//! arrives, and the matching of each access unit back to the frame it encodes.
//!
//! Rules (what the HLS segmenter relies on, design.md "HLS"):
//! - an IDR (H.264 §7.4.1.2.4, nal_unit_type 5) on every frame where a segment must start;
//! - no B slices (§7.4.3, slice_type 1 or 6): decode order is presentation order, so a
//!   unit's decode time is its frame's capture time;
//! - SPS and PPS in every IDR's access unit: each segment decodes on its own, and a new
//!   format is seen at once.
//!
//! Matching: with no B-frames an encoder gives exactly one access unit per frame, in the
//! order given, after a delay of its own (frames it holds). [`PendingFrames`] keeps the frames
//! given and not yet returned, oldest first: each access unit takes the oldest, so its capture
//! time and `pts_90k` are its own frame's whatever the delay, and no drift can build up.
//!
//! Pure: no I/O, no clocks (times are passed in).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::frame::FrameSize;
use crate::media::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS, SliceKind};

/// What an access unit broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleBreak {
    #[error("frame {seq} must start a segment but its access unit is not an IDR")]
    NoIdrAtSegmentStart { seq: u64 },
    #[error("frame {seq} has a B slice (the encoder reorders pictures)")]
    BSlice { seq: u64 },
    #[error("frame {seq} is an IDR without SPS and PPS before it")]
    IdrWithoutParameterSets { seq: u64 },
    #[error("an access unit holds no coded picture")]
    NoPicture,
    #[error("the encoder gave an access unit for no frame given")]
    UnmatchedOutput,
}

/// What an access unit holds, as far as the rules go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitFacts {
    pub is_idr: bool,
    pub has_sps: bool,
    pub has_pps: bool,
    pub has_b_slice: bool,
    pub slices: usize,
}

/// Reads the NAL unit headers (and each slice header's slice_type) of an Annex B access unit.
pub fn unit_facts(annex_b: &[u8]) -> UnitFacts {
    let mut facts = UnitFacts::default();
    for nal in h264::split_annex_b(annex_b) {
        match h264::nal_unit_type(nal) {
            Some(NAL_SPS) => facts.has_sps = true,
            Some(NAL_PPS) => facts.has_pps = true,
            Some(kind @ h264::NAL_SLICE_NON_IDR..=NAL_IDR) => {
                // Types 2 to 4 are data partitions (Extended profile): no encoder here writes
                // them, and they are slices all the same.
                facts.slices += 1;
                facts.is_idr |= kind == NAL_IDR;
                facts.has_b_slice |= h264::slice_kind(nal) == Some(SliceKind::B);
            }
            _ => {}
        }
    }
    facts
}

/// Checks one access unit of frame `seq` against the rules; `must_be_idr`: a segment starts
/// at this frame.
pub fn check_unit(seq: u64, annex_b: &[u8], must_be_idr: bool) -> Result<UnitFacts, RuleBreak> {
    let facts = unit_facts(annex_b);
    if facts.slices == 0 {
        return Err(RuleBreak::NoPicture);
    }
    if facts.has_b_slice {
        return Err(RuleBreak::BSlice { seq });
    }
    if must_be_idr && !facts.is_idr {
        return Err(RuleBreak::NoIdrAtSegmentStart { seq });
    }
    if facts.is_idr && !(facts.has_sps && facts.has_pps) {
        return Err(RuleBreak::IdrWithoutParameterSets { seq });
    }
    Ok(facts)
}

/// A frame given to the encoder, waiting for its access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFrame {
    pub seq: u64,
    pub pts_90k: u64,
    pub captured_at: SystemTime,
    pub size: FrameSize,
    /// The encoder was told to make this frame an IDR.
    pub must_be_idr: bool,
    /// When it was given: its access unit's encode time (and latency) runs from here.
    pub given_at: Instant,
}

/// The frames given and not yet returned, oldest first (see the module doc).
#[derive(Debug, Default)]
pub struct PendingFrames {
    frames: VecDeque<PendingFrame>,
}

impl PendingFrames {
    pub fn push(&mut self, frame: PendingFrame) {
        self.frames.push_back(frame);
    }

    /// The frame the next access unit belongs to.
    pub fn take_oldest(&mut self) -> Result<PendingFrame, RuleBreak> {
        self.frames.pop_front().ok_or(RuleBreak::UnmatchedOutput)
    }

    /// Frames given and not returned: the encoder's delay (and the one frame an Annex B
    /// reader must wait for the next access unit's start).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// How long the oldest frame has waited at `now`.
    pub fn oldest_wait(&self, now: Instant) -> Duration {
        self.frames.front().map_or(Duration::ZERO, |f| {
            now.saturating_duration_since(f.given_at)
        })
    }

    pub fn clear(&mut self) {
        self.frames.clear();
    }
}

/// Whether an encoder is stalled: it holds more frames than any encoder's delay explains, or
/// its oldest frame has waited longer than `max_wait`.
pub fn stalled(
    pending: &PendingFrames,
    max_frames: usize,
    max_wait: Duration,
    now: Instant,
) -> bool {
    pending.len() > max_frames || pending.oldest_wait(now) > max_wait
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9];
    const PPS: &[u8] = &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
    /// Slice headers (H.264 §7.3.3): first_mb_in_slice ue(0) = `1`, then slice_type:
    /// I (7: `0001000`), P (5: `00110`), B (6: `00111`).
    const IDR_SLICE: &[u8] = &[0, 0, 0, 1, 0x65, 0b1000_1000, 0x80];
    const P_SLICE: &[u8] = &[0, 0, 0, 1, 0x41, 0b1001_1000, 0x80];
    const B_SLICE: &[u8] = &[0, 0, 0, 1, 0x01, 0b1001_1100, 0x80];

    fn unit(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn an_idr_with_parameter_sets_and_a_p_frame_pass() {
        let idr = check_unit(1, &unit(&[SPS, PPS, IDR_SLICE]), true).unwrap();
        assert!(idr.is_idr && idr.has_sps && idr.has_pps && !idr.has_b_slice);
        let p = check_unit(2, &unit(&[P_SLICE]), false).unwrap();
        assert!(!p.is_idr && p.slices == 1);
        // An IDR where none was asked for is allowed: it only starts nothing.
        assert!(check_unit(3, &unit(&[SPS, PPS, IDR_SLICE]), false).is_ok());
    }

    #[test]
    fn each_broken_rule_is_named() {
        assert_eq!(
            check_unit(7, &unit(&[P_SLICE]), true),
            Err(RuleBreak::NoIdrAtSegmentStart { seq: 7 })
        );
        assert_eq!(
            check_unit(8, &unit(&[B_SLICE]), false),
            Err(RuleBreak::BSlice { seq: 8 })
        );
        assert_eq!(
            check_unit(9, &unit(&[IDR_SLICE]), true),
            Err(RuleBreak::IdrWithoutParameterSets { seq: 9 })
        );
        assert_eq!(
            check_unit(9, &unit(&[PPS, IDR_SLICE]), true),
            Err(RuleBreak::IdrWithoutParameterSets { seq: 9 })
        );
        assert_eq!(
            check_unit(1, &unit(&[SPS, PPS]), false),
            Err(RuleBreak::NoPicture)
        );
    }

    #[test]
    fn libx264_output_reads_as_its_frame_types() {
        // The B-slice check on a real encoder's slices: x264 with B-frames makes some.
        let Ok(out) = std::process::Command::new("ffmpeg")
            .args([
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x48:rate=10",
                "-frames:v",
                "12",
                "-c:v",
                "libx264",
                "-bf",
                "2",
                "-g",
                "6",
                "-f",
                "h264",
                "-",
            ])
            .output()
        else {
            eprintln!("ffmpeg is not installed: the golden units above cover the rules");
            return;
        };
        let mut splitter = crate::media::h264_stream::AccessUnitSplitter::default();
        let mut units = Vec::new();
        splitter.push(&out.stdout, &mut units).unwrap();
        splitter.finish(&mut units);
        assert_eq!(units.len(), 12);
        let facts: Vec<_> = units.iter().map(|u| unit_facts(&u.annex_b)).collect();
        assert!(facts[0].is_idr && facts[0].has_sps && facts[0].has_pps);
        assert!(
            facts.iter().any(|f| f.has_b_slice),
            "x264 -bf 2 makes B slices"
        );
    }

    #[test]
    fn access_units_take_their_own_frames_in_order_whatever_the_delay() {
        let start = Instant::now();
        let mut pending = PendingFrames::default();
        let frame = |n: u64| PendingFrame {
            seq: n,
            pts_90k: n * 3000,
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_millis(n * 33),
            size: FrameSize::new(64, 48),
            must_be_idr: n.is_multiple_of(30),
            given_at: start + Duration::from_millis(n * 33),
        };
        // An encoder that holds three frames: nothing out until the fourth is given.
        for n in 0..3 {
            pending.push(frame(n));
        }
        assert_eq!(pending.len(), 3);
        for n in 3..100 {
            pending.push(frame(n));
            let matched = pending.take_oldest().unwrap();
            assert_eq!(matched, frame(n - 3), "no drift between picture and time");
        }
        assert_eq!(
            pending.oldest_wait(start + Duration::from_millis(97 * 33 + 10)),
            Duration::from_millis(10)
        );
        assert!(!stalled(
            &pending,
            8,
            Duration::from_secs(2),
            start + Duration::from_secs(3)
        ));
        assert!(stalled(
            &pending,
            2,
            Duration::from_secs(2),
            start + Duration::from_secs(3)
        ));
        assert!(stalled(
            &pending,
            8,
            Duration::from_millis(1),
            start + Duration::from_secs(4)
        ));
        pending.clear();
        assert_eq!(pending.take_oldest(), Err(RuleBreak::UnmatchedOutput));
    }
}
