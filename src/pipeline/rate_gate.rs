//! The H.264 rate gate: keeps every HLS segment within its byte budget whatever the picture.
//!
//! openh264's own rate control holds the configured bitrate on camera content, but not on
//! noise (a dark camera at high gain): with frame skipping off it will not go past its QP
//! table, and even at QP 51 a frame of noise can cost most of a second's budget. openh264's
//! own frame skipping cannot be used: it skips the IDRs that start segments too. So the gate
//! works around the encoder, per segment (an IDR to the next segment's IDR):
//!
//! - **Pacing.** A frame that is not an IDR is skipped when the segment's bytes so far plus
//!   the size of the last such frame would pass a line that rises with the segment's elapsed
//!   capture time at the configured bitrate, plus a quarter segment of headroom. A skipped
//!   frame lengthens the frame before it (the timeline stays true), so a frame is never
//!   skipped if that would make the one before it outlast PART-TARGET.
//! - **Re-encoding.** An encoded frame that does not fit (an IDR starting a segment larger
//!   than half the segment's budget, or any frame taking the segment past 1.25× its
//!   budget) is thrown away and the same picture encoded again, as an IDR, averaged over
//!   blocks twice as large ([`crate::picture::block_average`]). An IDR references nothing, so
//!   the discarded frame leaves no trace in the stream.
//! - **Recovery.** At a segment start the block size halves again when the segment before
//!   used less than an eighth of its budget without skipping or re-encoding a frame.
//!
//! With blocks of [`MAX_BLOCK_PX`] a macroblock is one flat colour and costs a few bytes, so
//! every segment stays within 1.25× its budget unless the budget cannot hold one such
//! picture per part (a tiny bitrate for the picture size).
//!
//! Pure: capture times and byte counts in, verdicts out; no clocks.

use crate::frame::CLOCK_90K;
use crate::hls::segmenter::SegmenterSettings;

/// The largest block a picture is averaged over: a whole macroblock.
pub const MAX_BLOCK_PX: u32 = 16;

/// Headroom of the pacing line above the bitrate, in quarters of a segment's budget: openh264
/// spends more on an IDR than on the frames after it, and the line must not skip frames of
/// ordinary content that its rate control already holds.
const HEADROOM_QUARTERS: u64 = 1;
/// A segment may reach this many quarters of its budget before a frame is re-encoded.
const SEGMENT_CAP_QUARTERS: u64 = 5;
/// An IDR that starts a segment may take this many quarters of its budget, leaving room for
/// the frames the segment must still carry (one per part at least).
const IDR_CAP_QUARTERS: u64 = 2;
/// Below this many eighths of its budget, a calm segment lets the block size halve.
const RECOVER_BELOW_EIGHTHS: u64 = 1;

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Encode,
    Skip,
}

#[derive(Debug)]
struct OpenSegment {
    start_pts_90k: u64,
    bytes: u64,
    skipped: u64,
    reencoded: u64,
}

#[derive(Debug)]
pub struct RateGate {
    bitrate_bps: u64,
    frame_interval_90k: u64,
    part_target_90k: u64,
    /// Bytes a whole segment may take at the configured bitrate.
    segment_budget_bytes: u64,
    segment: Option<OpenSegment>,
    /// Size of the newest encoded frame that is not an IDR: the guess for the next one.
    last_inter_bytes: u64,
    last_encoded_pts_90k: Option<u64>,
    block_px: u32,
    /// Re-encodings of the frame about to be noted by [`RateGate::encoded`].
    reencoded_pending: u64,
}

impl RateGate {
    pub fn new(bitrate_bps: u32, timing: SegmenterSettings) -> Self {
        let bitrate_bps = u64::from(bitrate_bps);
        Self {
            bitrate_bps,
            frame_interval_90k: timing.frame_interval_90k(),
            part_target_90k: timing.part_target_90k(),
            segment_budget_bytes: bytes_for(bitrate_bps, timing.segment_target_90k()),
            segment: None,
            last_inter_bytes: 0,
            last_encoded_pts_90k: None,
            block_px: 1,
            reencoded_pending: 0,
        }
    }

    /// The block size pictures are averaged over before encoding (1: untouched).
    pub fn block_px(&self) -> u32 {
        self.block_px
    }

    #[cfg(test)]
    fn segment_budget_bytes(&self) -> u64 {
        self.segment_budget_bytes
    }

    /// Whether to encode the frame captured at `pts_90k`. `idr_due`: the encoder will make it
    /// an IDR, which is never skipped (it starts a segment). Before an IDR, a calm segment
    /// lets the block size halve.
    pub fn verdict(&mut self, pts_90k: u64, idr_due: bool) -> Verdict {
        if idr_due {
            self.recover_before_segment();
            return Verdict::Encode;
        }
        let (Some(segment), Some(last_pts)) = (&self.segment, self.last_encoded_pts_90k) else {
            return Verdict::Encode;
        };
        // Skipped, this frame's time goes to the frame before it, which lasts at least until
        // the next frame: that must stay within a part.
        let held_until = pts_90k + self.frame_interval_90k;
        if held_until.saturating_sub(last_pts) > self.part_target_90k {
            return Verdict::Encode;
        }
        let elapsed_90k = held_until.saturating_sub(segment.start_pts_90k);
        let line = bytes_for(self.bitrate_bps, elapsed_90k)
            + self.segment_budget_bytes * HEADROOM_QUARTERS / 4;
        if segment.bytes + self.last_inter_bytes > line {
            Verdict::Skip
        } else {
            Verdict::Encode
        }
    }

    /// Notes a frame the gate skipped.
    pub fn skipped(&mut self) {
        if let Some(segment) = &mut self.segment {
            segment.skipped += 1;
        }
    }

    /// Whether an encoded frame of `bytes` may go into the stream. `starts_segment`: it is
    /// the IDR that will start the next segment.
    pub fn fits(&self, bytes: u64, starts_segment: bool) -> bool {
        if starts_segment {
            return bytes <= self.segment_budget_bytes * IDR_CAP_QUARTERS / 4;
        }
        let so_far = self.segment.as_ref().map_or(0, |s| s.bytes);
        so_far + bytes <= self.segment_budget_bytes * SEGMENT_CAP_QUARTERS / 4
    }

    /// Doubles the block size for a frame that did not fit, to be encoded again; `false`
    /// when it is already [`MAX_BLOCK_PX`] (the frame must then go as it is).
    pub fn coarsen(&mut self) -> bool {
        if self.block_px >= MAX_BLOCK_PX {
            return false;
        }
        self.block_px *= 2;
        self.reencoded_pending += 1;
        true
    }

    /// Notes a frame that went into the stream: `starts_segment` when the segmenter opened
    /// a segment with it.
    pub fn encoded(&mut self, pts_90k: u64, bytes: u64, is_idr: bool, starts_segment: bool) {
        if starts_segment || self.segment.is_none() {
            self.segment = Some(OpenSegment {
                start_pts_90k: pts_90k,
                bytes: 0,
                skipped: 0,
                reencoded: 0,
            });
        }
        if let Some(segment) = &mut self.segment {
            segment.bytes += bytes;
            segment.reencoded += std::mem::take(&mut self.reencoded_pending);
        }
        if !is_idr {
            self.last_inter_bytes = bytes;
        }
        self.last_encoded_pts_90k = Some(pts_90k);
    }

    fn recover_before_segment(&mut self) {
        let Some(segment) = &self.segment else {
            return;
        };
        let calm = segment.skipped == 0
            && segment.reencoded == 0
            && segment.bytes <= self.segment_budget_bytes * RECOVER_BELOW_EIGHTHS / 8;
        if calm && self.block_px > 1 {
            self.block_px /= 2;
        }
    }
}

/// Bytes the bitrate allows over a span of the 90 kHz clock.
fn bytes_for(bitrate_bps: u64, span_90k: u64) -> u64 {
    bitrate_bps * span_90k / (8 * CLOCK_90K)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 fps, 1 s segments of 30 frames, parts of 6 frames (18,000 ticks): a 2.4 Mbit/s
    /// budget is 300,000 bytes a segment, 10,000 a frame.
    const TIMING: SegmenterSettings = SegmenterSettings {
        fps: 30,
        frames_per_segment: 30,
        frames_per_part: 6,
    };
    const BITRATE_BPS: u32 = 2_400_000;
    const FRAME_90K: u64 = 3000;

    fn gate() -> RateGate {
        RateGate::new(BITRATE_BPS, TIMING)
    }

    #[test]
    fn budgets_follow_the_bitrate_and_segment_length() {
        let gate = gate();
        assert_eq!(gate.segment_budget_bytes(), 300_000);
        assert_eq!(bytes_for(2_400_000, FRAME_90K), 10_000);
        assert_eq!(gate.block_px(), 1);
    }

    #[test]
    fn frames_at_the_bitrate_are_all_encoded() {
        let mut gate = gate();
        for n in 0..90u64 {
            let idr = n % 30 == 0;
            assert_eq!(
                gate.verdict(n * FRAME_90K, idr),
                Verdict::Encode,
                "frame {n}"
            );
            // An IDR of 50,000 bytes, then frames that bring the segment to 340,000 bytes:
            // above the budget, within the headroom.
            let bytes = if idr { 50_000 } else { 10_000 };
            assert!(gate.fits(bytes, idr));
            gate.encoded(n * FRAME_90K, bytes, idr, idr);
        }
        assert_eq!(gate.block_px(), 1);
    }

    #[test]
    fn frames_past_the_line_are_skipped_but_never_beyond_a_part() {
        let mut gate = gate();
        // An IDR of 100,000 bytes; inter frames of 40,000 bytes (4 frames' budget each).
        assert_eq!(gate.verdict(0, true), Verdict::Encode);
        gate.encoded(0, 100_000, true, true);
        let mut verdicts = Vec::new();
        for n in 1..30u64 {
            let verdict = gate.verdict(n * FRAME_90K, false);
            verdicts.push(verdict);
            match verdict {
                Verdict::Encode => gate.encoded(n * FRAME_90K, 40_000, false, false),
                Verdict::Skip => gate.skipped(),
            }
        }
        let encoded: Vec<u64> = (1..30u64)
            .zip(&verdicts)
            .filter(|(_, v)| **v == Verdict::Encode)
            .map(|(n, _)| n)
            .collect();
        // The line at frame n is (n + 1) * 10,000 + 75,000 bytes. Frame 1: 100,000 + 0 (no
        // inter frame yet) > 95,000: skipped. Frame 2: 100,000 <= 105,000: encoded, 140,000
        // so far, and the guess is 40,000 from now on. Frame n then fits once 180,000 <= the
        // line, at n = 10, but skipping frame 8 would leave frame 2 lasting past a part
        // (frames 2..9): encoded anyway. Then 220,000 fits at 14, 260,000 at 18, 300,000 at
        // 22, 340,000 at 26; 380,000 would fit at 30, the next segment.
        assert_eq!(encoded, vec![2, 8, 14, 18, 22, 26]);
        // No gap between encoded frames is longer than a part (6 frames).
        let mut last = 0;
        for n in encoded {
            assert!(n - last <= 6, "{last} -> {n}");
            last = n;
        }
    }

    #[test]
    fn idrs_are_never_skipped() {
        let mut gate = gate();
        gate.encoded(0, 1_000_000, true, true);
        assert_eq!(gate.verdict(FRAME_90K, true), Verdict::Encode);
    }

    #[test]
    fn a_frame_that_does_not_fit_is_encoded_again_with_coarser_blocks() {
        let mut gate = gate();
        // The IDR that starts a segment may take half the budget: 150,000 bytes.
        assert!(gate.fits(150_000, true));
        assert!(!gate.fits(150_001, true));
        assert!(gate.coarsen());
        assert_eq!(gate.block_px(), 2);
        gate.encoded(0, 150_000, true, true);
        // Any later frame: the segment may reach 375,000 bytes.
        assert!(gate.fits(225_000, false));
        assert!(!gate.fits(225_001, false));
        for want in [4, 8, 16] {
            assert!(gate.coarsen());
            assert_eq!(gate.block_px(), want);
        }
        assert!(!gate.coarsen(), "16 is the most");
        assert_eq!(gate.block_px(), MAX_BLOCK_PX);
    }

    #[test]
    fn blocks_halve_after_a_calm_segment_only() {
        let mut gate = gate();
        gate.encoded(0, 20_000, true, true);
        // Frame 1 did not fit twice: encoded again with blocks of 2, then 4.
        assert!(gate.coarsen() && gate.coarsen());
        gate.encoded(FRAME_90K, 20_000, true, false);
        assert_eq!(gate.verdict(30 * FRAME_90K, true), Verdict::Encode);
        assert_eq!(gate.block_px(), 4, "a segment that re-encoded is not calm");
        // 20,000 + 29 * 500 = 34,500 bytes, under an eighth (37,500), no skips: calm.
        gate.encoded(30 * FRAME_90K, 20_000, true, true);
        for n in 31..60u64 {
            gate.encoded(n * FRAME_90K, 500, false, false);
        }
        assert_eq!(gate.verdict(60 * FRAME_90K, true), Verdict::Encode);
        assert_eq!(gate.block_px(), 2);
        // One byte more than an eighth: not calm.
        gate.encoded(60 * FRAME_90K, 37_501, true, true);
        assert_eq!(gate.verdict(90 * FRAME_90K, true), Verdict::Encode);
        assert_eq!(gate.block_px(), 2);
        // A segment with a skipped frame: not calm.
        gate.encoded(90 * FRAME_90K, 100, true, true);
        gate.skipped();
        assert_eq!(gate.verdict(120 * FRAME_90K, true), Verdict::Encode);
        assert_eq!(gate.block_px(), 2);
        // A calm one again.
        gate.encoded(120 * FRAME_90K, 100, true, true);
        assert_eq!(gate.verdict(150 * FRAME_90K, true), Verdict::Encode);
        assert_eq!(gate.block_px(), 1);
    }
}
