//! The H.264 rate gate: keeps every HLS segment within its byte budget whatever the picture.
//!
//! openh264's own rate control holds the configured bitrate on camera content, but not on
//! noise (a dark camera at high gain): with frame skipping off it will not go past its QP
//! table, and even at QP 51 a frame of noise can cost most of a second's budget. openh264's
//! own frame skipping cannot be used: it skips the IDRs that start segments too. So the gate
//! works around the encoder, per segment (an IDR to the next segment's IDR):
//!
//! - **Pacing.** A frame that is not an IDR is skipped when the segment's bytes so far plus
//!   the size of the last such frame would pass a line: half the segment's budget at its
//!   start (room for its IDR), rising to 1.15× the budget at its end. A skipped frame
//!   lengthens the frame before it (the timeline stays true). The frames on either side of
//!   the end of the segmenter's open part are never skipped: parts other than a segment's
//!   last must last at least 85 % of PART-TARGET (rfc8216bis §4.4.4.9), and with those
//!   frames encoded every part keeps its whole length (no long frame reaches the part's end
//!   for a late next frame to push past it), and no frame outlasts a part.
//! - **Re-encoding.** An encoded frame that does not fit (an IDR starting a segment larger
//!   than half the segment's budget, or any frame that would take the segment past 1.25× its
//!   budget, counting the frames each part end still to come needs at its size) is thrown
//!   away and the same picture encoded again, as an IDR, averaged over blocks as many times
//!   larger as the overshoot needs ([`crate::picture::block_average`]), and past blocks of
//!   [`MAX_BLOCK_PX`] with the picture held: inter frames repeat the last picture and cost
//!   next to nothing, and each segment's IDR brings a new one. An IDR references nothing, so
//!   the discarded frame leaves no trace in the stream.
//! - **Recovery.** Before a segment starts, the hold ends, or the block size halves, after
//!   two segments in a row that neither skipped nor re-encoded a frame. (Not by their size:
//!   openh264's rate control fills the budget at any block size.) A step too far costs one
//!   re-encoded frame.
//!
//! Every segment so stays within 1.25× its budget unless the budget cannot hold the IDR of
//! a picture of flat macroblocks (a tiny bitrate for the picture size).
//!
//! Pure: capture times and byte counts in, verdicts out; no clocks.

use crate::frame::CLOCK_90K;
use crate::hls::segmenter::SegmenterSettings;

/// The largest block a picture is averaged over: a whole macroblock.
pub const MAX_BLOCK_PX: u32 = 16;

/// The pacing line at a segment's start, in percent of its budget: room for the IDR, which
/// [`IDR_CAP_PERCENT`] bounds, so that an IDR that fits never makes the frames after it skip.
const LINE_START_PERCENT: u64 = 50;
/// The pacing line at a segment's end (it goes on rising at the same slope after that): above
/// the budget, since openh264's rate control holds the bitrate only on average; below the
/// [`SEGMENT_CAP_PERCENT`], so that a frame a little larger than guessed still fits.
const LINE_END_PERCENT: u64 = 115;
/// A segment may reach this share of its budget before a frame is re-encoded.
const SEGMENT_CAP_PERCENT: u64 = 125;
/// An IDR that starts a segment may take this share of its budget, leaving room for the
/// frames the segment must still carry (two per part end at least).
const IDR_CAP_PERCENT: u64 = 50;
/// Segments in a row that neither skip nor re-encode a frame before the block size halves.
const CALM_SEGMENTS_TO_RECOVER: u32 = 2;

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Encode,
    Skip,
}

#[derive(Debug)]
struct OpenSegment {
    start_pts_90k: u64,
    /// Where the segmenter's open part starts: the segment's start, moved on by each part it
    /// finished.
    part_start_90k: u64,
    bytes: u64,
    skipped: u64,
    reencoded: u64,
    /// Already counted as calm or not (an IDR can be due for more than one frame when one
    /// fails to encode).
    judged: bool,
    /// [`RateGate::segment_full`] has asked for the IDR of the next segment.
    idr_asked: bool,
}

#[derive(Debug)]
pub struct RateGate {
    frame_interval_90k: u64,
    segment_target_90k: u64,
    part_target_90k: u64,
    /// Bytes a whole segment may take at the configured bitrate.
    segment_budget_bytes: u64,
    segment: Option<OpenSegment>,
    /// Size of the newest encoded frame that is not an IDR: the guess for the next one.
    last_inter_bytes: u64,
    block_px: u32,
    holding: bool,
    /// Calm segments in a row, up to the one open.
    calm_segments: u32,
    /// Re-encodings of the frame about to be noted by [`RateGate::encoded`].
    reencoded_pending: u64,
}

impl RateGate {
    pub fn new(bitrate_bps: u32, timing: SegmenterSettings) -> Self {
        let bitrate_bps = u64::from(bitrate_bps);
        Self {
            frame_interval_90k: timing.frame_interval_90k(),
            segment_target_90k: timing.segment_target_90k().max(1),
            part_target_90k: timing.part_target_90k(),
            segment_budget_bytes: bytes_for(bitrate_bps, timing.segment_target_90k()),
            segment: None,
            last_inter_bytes: 0,
            block_px: 1,
            holding: false,
            calm_segments: 0,
            reencoded_pending: 0,
        }
    }

    /// The block size pictures are averaged over before encoding (1: untouched).
    pub fn block_px(&self) -> u32 {
        self.block_px
    }

    /// Whether inter frames repeat the picture encoded last: the step after the largest
    /// blocks.
    pub fn holds(&self) -> bool {
        self.holding
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
        let Some(segment) = &self.segment else {
            return Verdict::Encode;
        };
        // The frames on either side of the end of the open part (as the segmenter cut it, so
        // capture-time jitter and lost frames are followed) are encoded: the part then ends
        // exactly there, and no frame longer than one interval reaches that end, which a late
        // next frame would push past it (the segmenter would then end the part early).
        let part_end_90k = segment.part_start_90k + self.part_target_90k;
        if pts_90k + self.frame_interval_90k + self.frame_interval_90k / 2 >= part_end_90k {
            return Verdict::Encode;
        }
        let held_until = pts_90k + self.frame_interval_90k;
        let elapsed_90k = held_until.saturating_sub(segment.start_pts_90k);
        // Before the first inter frame, guess it at the size of the IDR before it (noise
        // costs as much either way; ordinary pictures stay far below the line).
        let guess = match self.last_inter_bytes {
            0 => segment.bytes,
            bytes => bytes,
        };
        if segment.bytes + guess > self.line(elapsed_90k) {
            Verdict::Skip
        } else {
            Verdict::Encode
        }
    }

    /// Whether a frame captured at `pts_90k` belongs to the next segment, and so must be the
    /// IDR that starts it: the segmenter's own rule, half a frame of slack included. The
    /// segmenter asks for that IDR one frame ahead, which misses when that frame is skipped.
    /// Said once per segment: should the segmenter's timeline have fallen behind the capture
    /// clock (after a gap longer than a part), its own request comes later, and asking for an
    /// IDR on every frame until then would be ruinous.
    pub fn segment_full(&mut self, pts_90k: u64) -> bool {
        let (interval_90k, target_90k) = (self.frame_interval_90k, self.segment_target_90k);
        self.segment.as_mut().is_some_and(|segment| {
            let full = !segment.idr_asked
                && pts_90k.saturating_sub(segment.start_pts_90k) + interval_90k / 2 >= target_90k;
            segment.idr_asked |= full;
            full
        })
    }

    /// Notes a frame the gate skipped.
    pub fn skipped(&mut self) {
        if let Some(segment) = &mut self.segment {
            segment.skipped += 1;
        }
    }

    /// Whether an encoded frame of `bytes`, captured at `pts_90k`, may go into the stream.
    /// `starts_segment`: it is the IDR that will start the next segment. Room is kept for
    /// the frames that must still follow in the segment (those on either side of each part
    /// end to come), each guessed at this frame's size, or for an IDR at the last inter
    /// frame's if smaller: a segment that spends its budget early would otherwise have to
    /// take them past it.
    pub fn fits(&self, pts_90k: u64, bytes: u64, is_idr: bool, starts_segment: bool) -> bool {
        bytes <= self.largest_fitting(pts_90k, is_idr, starts_segment)
    }

    /// The largest frame that [`RateGate::fits`].
    fn largest_fitting(&self, pts_90k: u64, is_idr: bool, starts_segment: bool) -> u64 {
        let budget = self.segment_budget_bytes;
        let (so_far, part, since_start_90k) = match &self.segment {
            Some(segment) if !starts_segment => (
                segment.bytes,
                self.part_index(segment, pts_90k),
                pts_90k.saturating_sub(segment.start_pts_90k),
            ),
            _ => (0, 0, 0),
        };
        // Each part end still to come takes the frames on either side of it; the segment's
        // own end, the frame before it, unless that is this one.
        let parts_left = self.parts_per_segment().saturating_sub(part + 1);
        let interval_90k = self.frame_interval_90k;
        let is_last = since_start_90k + interval_90k + interval_90k / 2 >= self.segment_target_90k;
        let followers = 2 * parts_left + u64::from(!is_last);
        let room = percent(budget, SEGMENT_CAP_PERCENT).saturating_sub(so_far);
        let largest = match (is_idr, self.last_inter_bytes) {
            // An IDR with nothing known of the frames after it.
            (true, 0) => room,
            // The frames after an IDR are guessed at the last inter frame's size, or at the
            // IDR's if smaller: room for a larger IDR only if the inter frames fit beside it.
            (true, inter) => match room.checked_sub(followers * inter) {
                Some(beside) if beside > inter => beside,
                _ => (room / (1 + followers)).min(inter),
            },
            // The frames after an inter frame are guessed at its size.
            (false, _) => room / (1 + followers),
        };
        if starts_segment {
            largest.min(percent(budget, IDR_CAP_PERCENT))
        } else {
            largest
        }
    }

    /// How many times the block size should double before a frame of `bytes` that did not
    /// fit is encoded again: each doubling takes about three quarters off a noisy picture
    /// (four blocks become one), and every re-encoding is a whole encode the H.264 thread
    /// spends while frames wait. At least one.
    pub fn doublings_to_fit(
        &self,
        pts_90k: u64,
        bytes: u64,
        is_idr: bool,
        starts_segment: bool,
    ) -> u32 {
        let largest = self.largest_fitting(pts_90k, is_idr, starts_segment).max(1);
        let mut doublings = 1;
        let mut guess = bytes.div_ceil(4);
        while guess > largest && doublings < 5 {
            guess = guess.div_ceil(4);
            doublings += 1;
        }
        doublings
    }

    fn parts_per_segment(&self) -> u64 {
        self.segment_target_90k
            .div_ceil(self.part_target_90k.max(1))
    }

    /// Doubles the block size for a frame that did not fit, to be encoded again, and past
    /// [`MAX_BLOCK_PX`] holds the picture; `false` when it already does (the frame must then
    /// go as it is).
    pub fn coarsen(&mut self) -> bool {
        if self.block_px < MAX_BLOCK_PX {
            self.block_px *= 2;
        } else if !self.holding {
            self.holding = true;
        } else {
            return false;
        }
        self.reencoded_pending += 1;
        true
    }

    /// Notes a part the segmenter finished, of `duration_90k`, in the open segment (not one
    /// that ended a segment with the frame that started the next).
    pub fn part_finished(&mut self, duration_90k: u64) {
        if let Some(segment) = &mut self.segment {
            segment.part_start_90k += duration_90k;
        }
    }

    /// Notes a frame that went into the stream: `starts_segment` when the segmenter opened
    /// a segment with it.
    pub fn encoded(&mut self, pts_90k: u64, bytes: u64, is_idr: bool, starts_segment: bool) {
        if starts_segment || self.segment.is_none() {
            self.segment = Some(OpenSegment {
                start_pts_90k: pts_90k,
                part_start_90k: pts_90k,
                bytes: 0,
                skipped: 0,
                reencoded: 0,
                judged: false,
                idr_asked: false,
            });
        }
        if let Some(segment) = &mut self.segment {
            segment.bytes += bytes;
            segment.reencoded += std::mem::take(&mut self.reencoded_pending);
        }
        if !is_idr {
            self.last_inter_bytes = bytes;
        }
    }

    /// The part of the segment a frame captured at `pts_90k` falls in (within half a frame,
    /// for rates whose frame interval is not a whole number of ticks).
    fn part_index(&self, segment: &OpenSegment, pts_90k: u64) -> u64 {
        let since_start = pts_90k.saturating_sub(segment.start_pts_90k);
        (since_start + self.frame_interval_90k / 2) / self.part_target_90k.max(1)
    }

    /// Bytes a segment may hold by `elapsed_90k` after its start without skipping frames.
    fn line(&self, elapsed_90k: u64) -> u64 {
        let start = percent(self.segment_budget_bytes, LINE_START_PERCENT);
        let rise = percent(
            self.segment_budget_bytes,
            LINE_END_PERCENT - LINE_START_PERCENT,
        );
        start + rise.saturating_mul(elapsed_90k) / self.segment_target_90k
    }

    fn recover_before_segment(&mut self) {
        let Some(segment) = self.segment.as_mut().filter(|s| !s.judged) else {
            return;
        };
        segment.judged = true;
        if segment.skipped == 0 && segment.reencoded == 0 {
            self.calm_segments += 1;
        } else {
            self.calm_segments = 0;
        }
        if self.calm_segments >= CALM_SEGMENTS_TO_RECOVER {
            if self.holding {
                self.holding = false;
            } else {
                self.block_px = (self.block_px / 2).max(1);
            }
            self.calm_segments = 0;
        }
    }
}

fn percent(bytes: u64, percent: u64) -> u64 {
    bytes * percent / 100
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
        // Half the budget at the start, 1.15x at the end: 6,500 bytes more each frame.
        assert_eq!(gate.line(0), 150_000);
        assert_eq!(gate.line(FRAME_90K), 156_500);
        assert_eq!(gate.line(30 * FRAME_90K), 345_000);
        assert_eq!(gate.block_px(), 1);
    }

    #[test]
    fn an_idr_at_its_cap_then_frames_at_the_line_slope_are_all_encoded() {
        let mut gate = gate();
        for n in 0..90u64 {
            let idr = n % 30 == 0;
            assert_eq!(
                gate.verdict(n * FRAME_90K, idr),
                Verdict::Encode,
                "frame {n}"
            );
            // From the second segment, 150,000 + 29 * 6,500 = 338,500 bytes a segment: 1.13x
            // the budget. (The first IDR is smaller: before any inter frame, the first is
            // guessed at the IDR's size.)
            let bytes = match (idr, n) {
                (true, 0) => 60_000,
                (true, _) => 150_000,
                (false, _) => 6_500,
            };
            assert!(gate.fits(n * FRAME_90K, bytes, idr, idr));
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
                Verdict::Encode => {
                    gate.encoded(n * FRAME_90K, 40_000, false, false);
                    // The segmenter finishes a part with the frame at its end.
                    if n % 6 == 0 {
                        gate.part_finished(6 * FRAME_90K);
                    }
                }
                Verdict::Skip => gate.skipped(),
            }
        }
        let encoded: Vec<u64> = (1..30u64)
            .zip(&verdicts)
            .filter(|(_, v)| **v == Verdict::Encode)
            .map(|(n, _)| n)
            .collect();
        // Frame n is judged at the line of n + 1 frames, 150,000 + (n + 1) * 6,500 bytes;
        // parts end at frames 6, 12, 18, 24 and 30, and the frames on either side of each end
        // (5 and 6, ..., 29) are encoded whatever the line says. Until an inter frame is
        // known, the guess is the IDR's 100,000 bytes: frames 1 to 4 do not fit (200,000
        // against 163,000 to 182,500); 5 and 6 end part 0: 180,000 so far, and the guess is
        // 40,000 from now on. 220,000 fits at frame 10; then 11 and 12, 17 and 18, 23 and 24,
        // 29 end parts. (Only `fits` keeps such a segment within its cap.)
        assert_eq!(encoded, vec![5, 6, 10, 11, 12, 17, 18, 23, 24, 29]);
    }

    #[test]
    fn the_frames_at_the_end_of_the_part_the_segmenter_cut_are_encoded() {
        let mut gate = gate();
        gate.encoded(0, 100_000, true, true);
        gate.encoded(FRAME_90K, 100_000, false, false);
        // Far past the line: only the frames on either side of the end of a part are
        // encoded. Part 0 ends at frame 6: frame 5 (within half a frame, the capture clock's
        // tolerance) and on.
        assert_eq!(gate.verdict(4 * FRAME_90K, false), Verdict::Skip);
        assert_eq!(gate.verdict(5 * FRAME_90K - 1501, false), Verdict::Skip);
        assert_eq!(gate.verdict(5 * FRAME_90K - 1500, false), Verdict::Encode);
        assert_eq!(gate.verdict(6 * FRAME_90K, false), Verdict::Encode);
        // The source stalled: the segmenter cut part 0 at 5 frames, so part 1 ends at 11.
        gate.part_finished(5 * FRAME_90K);
        assert_eq!(gate.verdict(9 * FRAME_90K, false), Verdict::Skip);
        assert_eq!(gate.verdict(10 * FRAME_90K, false), Verdict::Encode);
        assert_eq!(gate.verdict(11 * FRAME_90K, false), Verdict::Encode);
        // Until the segmenter finishes the part, later frames are encoded too (the one at its
        // end was lost).
        assert_eq!(gate.verdict(12 * FRAME_90K, false), Verdict::Encode);
        gate.part_finished(6 * FRAME_90K);
        assert_eq!(gate.verdict(13 * FRAME_90K, false), Verdict::Skip);
    }

    #[test]
    fn a_frame_a_segment_length_after_its_start_starts_the_next() {
        let mut gate = gate();
        assert!(!gate.segment_full(0), "no segment yet");
        gate.encoded(5 * FRAME_90K, 100_000, true, true);
        // The segment runs from frame 5 for 30 frames (90,000 ticks), less half a frame.
        assert!(!gate.segment_full(34 * FRAME_90K));
        assert!(!gate.segment_full(35 * FRAME_90K - 1501));
        assert!(gate.segment_full(35 * FRAME_90K - 1500));
        // Once: the segmenter did not start a segment there (its timeline is behind).
        assert!(!gate.segment_full(36 * FRAME_90K));
        gate.encoded(37 * FRAME_90K, 100_000, true, true);
        assert!(!gate.segment_full(66 * FRAME_90K));
        assert!(gate.segment_full(67 * FRAME_90K));
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
        assert!(gate.fits(0, 150_000, true, true));
        assert!(!gate.fits(0, 150_001, true, true));
        assert!(gate.coarsen());
        assert_eq!(gate.block_px(), 2);
        gate.encoded(0, 150_000, true, true);
        // A frame in the last part: the segment may reach 375,000 bytes.
        assert!(gate.fits(29 * FRAME_90K, 225_000, false, false));
        assert!(!gate.fits(29 * FRAME_90K, 225_001, false, false));
        for want in [4, 8, 16] {
            assert!(gate.coarsen());
            assert_eq!(gate.block_px(), want);
        }
        assert!(!gate.holds());
        assert!(gate.coarsen(), "after 16 pixels, the picture is held");
        assert!(gate.holds());
        assert!(!gate.coarsen(), "holding is the most");
        assert_eq!(gate.block_px(), MAX_BLOCK_PX);
    }

    #[test]
    fn a_held_picture_comes_back_before_the_blocks_shrink() {
        let mut gate = gate();
        for _ in 0..5 {
            assert!(gate.coarsen());
        }
        assert!(gate.holds());
        // The first segment counts the re-encodings; the two after it are calm.
        for first in [0, 30, 60, 90] {
            segment(&mut gate, first, 29);
        }
        assert!(!gate.holds());
        assert_eq!(gate.block_px(), MAX_BLOCK_PX);
        segment(&mut gate, 120, 29);
        segment(&mut gate, 150, 29);
        assert_eq!(gate.block_px(), 8);
    }

    #[test]
    fn room_is_kept_for_the_frames_every_part_end_to_come_needs() {
        let mut gate = gate();
        gate.encoded(0, 100_000, true, true);
        // Frame 1, in part 0: four part ends to come, two frames each, and the frame before
        // the segment's end: nine, each guessed at this frame's size.
        // 100,000 + 10 * 27,500 = 375,000, the cap.
        assert!(gate.fits(FRAME_90K, 27_500, false, false));
        assert!(!gate.fits(FRAME_90K, 27_501, false, false));
        // Frame 6, in part 1: seven to come. 100,000 + 8 * 34,375 = 375,000.
        assert!(gate.fits(6 * FRAME_90K, 34_375, false, false));
        assert!(!gate.fits(6 * FRAME_90K, 34_376, false, false));
        // A frame in the last part: only the segment's last frame to come.
        assert!(gate.fits(25 * FRAME_90K, 137_500, false, false));
        assert!(!gate.fits(25 * FRAME_90K, 137_501, false, false));
        gate.encoded(FRAME_90K, 20_000, false, false);
        // An IDR made again for frame 7 (part 1): the frames to come are guessed at the last
        // inter frame's 20,000 bytes, smaller than the IDR. 120,000 + 115,000 + 7 * 20,000
        // = 375,000.
        assert!(gate.fits(7 * FRAME_90K, 115_000, true, false));
        assert!(!gate.fits(7 * FRAME_90K, 115_001, true, false));
    }

    #[test]
    fn the_block_size_jumps_by_what_the_frame_overshot() {
        let mut gate = gate();
        // The IDR that starts a segment may take 150,000 bytes: 600,000 needs one doubling
        // (a quarter), 600,001 two, and no more than five.
        assert_eq!(gate.doublings_to_fit(0, 600_000, true, true), 1);
        assert_eq!(gate.doublings_to_fit(0, 600_001, true, true), 2);
        assert_eq!(gate.doublings_to_fit(0, 160_000, true, true), 1);
        assert_eq!(gate.doublings_to_fit(0, u64::MAX, true, true), 5);
        gate.encoded(0, 100_000, true, true);
        // Frame 1 may take 27,500 bytes (see above): 110,000 is one doubling, 110,001 two.
        assert_eq!(gate.doublings_to_fit(FRAME_90K, 110_000, false, false), 1);
        assert_eq!(gate.doublings_to_fit(FRAME_90K, 110_001, false, false), 2);
    }

    /// Opens a segment at frame `first` with an IDR and `inter` more frames.
    fn segment(gate: &mut RateGate, first: u64, inter: u64) {
        assert_eq!(gate.verdict(first * FRAME_90K, true), Verdict::Encode);
        gate.encoded(first * FRAME_90K, 100_000, true, true);
        for n in first + 1..=first + inter {
            gate.encoded(n * FRAME_90K, 5_000, false, false);
        }
    }

    #[test]
    fn blocks_halve_after_two_calm_segments_in_a_row() {
        let mut gate = gate();
        segment(&mut gate, 0, 0);
        // Frame 1 did not fit twice: encoded again with blocks of 2, then 4.
        assert!(gate.coarsen() && gate.coarsen());
        gate.encoded(FRAME_90K, 20_000, true, false);
        segment(&mut gate, 30, 29);
        assert_eq!(gate.block_px(), 4, "a segment that re-encoded is not calm");
        segment(&mut gate, 60, 29);
        assert_eq!(gate.block_px(), 4, "one calm segment");
        segment(&mut gate, 90, 29);
        assert_eq!(gate.block_px(), 2, "two calm segments");
        gate.skipped();
        segment(&mut gate, 120, 29);
        assert_eq!(gate.block_px(), 2, "a segment that skipped is not calm");
        // The IDR is due for frames 150 and 151 (the first failed to encode) before the
        // segment starts at 152: the segment before is judged once.
        assert_eq!(gate.verdict(150 * FRAME_90K, true), Verdict::Encode);
        assert_eq!(gate.verdict(151 * FRAME_90K, true), Verdict::Encode);
        segment(&mut gate, 152, 27);
        assert_eq!(gate.block_px(), 2, "one calm segment, judged once");
        segment(&mut gate, 180, 29);
        assert_eq!(gate.block_px(), 1);
    }
}
