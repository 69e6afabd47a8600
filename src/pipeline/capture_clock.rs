//! Presentation times on the 90 kHz clock for the frames a source delivers.
//!
//! Every frame is placed on a drift-free grid of frame slots (`slot * 90000 / fps`), one slot
//! after the frame before it, so HLS parts hold whole frames and no two frames are ever closer
//! than a frame interval: players and muxers that count in frame intervals (ffmpeg's `-f null`
//! does) never see two frames at one time.
//!
//! - A frame up to a frame interval late (a source thread kept from running, then one that
//!   catches up at once) takes the next slot anyway.
//! - A frame later than that (frames dropped, a pause, a camera that halved its rate or runs
//!   slightly slow) takes the slot nearest its capture time, so media time keeps matching
//!   PROGRAM-DATE-TIME to within a frame interval.
//! - A frame more than one and a half frame intervals early for the next slot (a source faster
//!   than configured; a frame that caught up puts the grid up to one ahead) is
//!   [`Placement::TooEarly`]: the caller drops it, and the stream runs at the
//!   configured rate. A frame that must not be dropped (an H.264 picture, which the next
//!   ones need) takes the next slot instead.
//! - Times never go back, even when the wall clock does: a capture time far before the next
//!   slot moves the capture origin instead.
//!
//! A source's own H.264 loses no frame on its way (every access unit is a picture the next
//! ones refer to; a lost one shows as a gap in its numbers), so lateness there is arrival
//! jitter: its clock ([`CaptureClock::tolerant`]) gives a frame up to a given time late the
//! next slot too, and only a pause or drift beyond that moves it to the slot nearest its
//! capture time.

use std::time::SystemTime;

use crate::frame::{CLOCK_90K, unix_micros};

/// Capture times this many frame intervals before the next slot are taken for the wall clock
/// going back, not for a fast source: the origin moves instead of frames being dropped.
const CLOCK_STEP_INTERVALS: i128 = 4;

/// Where a frame goes on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    At {
        pts_90k: u64,
    },
    /// Earlier than the grid has room for: drop the frame.
    TooEarly,
}

#[derive(Debug)]
pub struct CaptureClock {
    fps: u64,
    /// The capture time (µs since the epoch) of slot 0.
    origin_us: Option<u64>,
    last_slot: Option<u64>,
    /// A frame this late (in µs·fps, a frame interval being 1_000_000) or later takes the
    /// slot nearest its capture time instead of the next one.
    late_limit: i128,
}

impl CaptureClock {
    pub fn new(fps: u32) -> Self {
        Self {
            fps: u64::from(fps.max(1)),
            origin_us: None,
            last_slot: None,
            late_limit: 1_000_000,
        }
    }

    /// A clock that gives a frame up to `tolerance_90k` late the next slot (at least a frame
    /// interval): for frames that are never lost on the way, only delayed.
    pub fn tolerant(fps: u32, tolerance_90k: u64) -> Self {
        let clock = Self::new(fps);
        let tolerance =
            i128::from(tolerance_90k) * 1_000_000 * i128::from(clock.fps) / i128::from(CLOCK_90K);
        Self {
            late_limit: tolerance.max(clock.late_limit),
            ..clock
        }
    }

    /// Presentation time of `slot`: exact, without accumulated rounding.
    fn slot_pts_90k(&self, slot: u64) -> u64 {
        (u128::from(slot) * u128::from(CLOCK_90K) / u128::from(self.fps)) as u64
    }

    /// The place of the next frame, captured at `captured_at`. `droppable`: the frame may be
    /// dropped when it comes too early.
    pub fn place(&mut self, captured_at: SystemTime, droppable: bool) -> Placement {
        let captured_us = i128::from(unix_micros(captured_at));
        let origin_us = i128::from(*self.origin_us.get_or_insert(captured_us as u64));
        let next_slot = self.last_slot.map_or(0, |slot| slot + 1);
        // Lateness in µs·fps (a frame interval is 1_000_000 of these): exact integers.
        let next_slot_us_fps = i128::from(next_slot) * 1_000_000;
        let captured_us_fps = (captured_us - origin_us) * i128::from(self.fps);
        let lateness = captured_us_fps - next_slot_us_fps;
        let interval = 1_000_000_i128;
        let slot = if lateness >= self.late_limit {
            // The slot nearest the capture time; after the next one, since it is that late.
            let nearest = (captured_us_fps + interval / 2) / interval;
            u64::try_from(nearest)
                .unwrap_or(next_slot)
                .max(next_slot + 1)
        } else if lateness * 2 >= -3 * interval || self.last_slot.is_none() {
            next_slot
        } else if lateness >= -CLOCK_STEP_INTERVALS * interval && droppable {
            return Placement::TooEarly;
        } else {
            if lateness < -CLOCK_STEP_INTERVALS * interval {
                // The wall clock went back: from now on capture times count from where it is.
                let shift_us = lateness / i128::from(self.fps);
                self.origin_us = u64::try_from(origin_us + shift_us).ok().or(self.origin_us);
            }
            next_slot
        };
        self.last_slot = Some(slot);
        Placement::At {
            pts_90k: self.slot_pts_90k(slot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::from_unix_micros;

    const START_US: u64 = 1_790_000_000_000_000;
    const INTERVAL_90K: u64 = 3000;

    fn at_us(offset_us: i64) -> SystemTime {
        from_unix_micros(START_US.saturating_add_signed(offset_us))
    }

    fn pts(clock: &mut CaptureClock, offset_us: i64) -> u64 {
        match clock.place(at_us(offset_us), true) {
            Placement::At { pts_90k } => pts_90k,
            Placement::TooEarly => panic!("a frame at {offset_us} µs was dropped"),
        }
    }

    #[test]
    fn a_source_at_its_rate_gets_a_regular_grid_whatever_its_jitter() {
        let mut clock = CaptureClock::new(30);
        let jitter = [0, 4_000, -3_000, 9_000, -9_000, 1_000, 30_000, 0];
        for n in 0..300i64 {
            let pts = pts(&mut clock, n * 33_333 + jitter[n as usize % jitter.len()]);
            assert_eq!(pts, n as u64 * INTERVAL_90K, "frame {n}");
        }
    }

    #[test]
    fn a_source_at_half_its_rate_follows_its_capture_times_on_the_grid() {
        let mut clock = CaptureClock::new(30);
        for n in 0..100i64 {
            let captured_us = n * 66_667;
            let pts = pts(&mut clock, captured_us);
            assert_eq!(pts % INTERVAL_90K, 0);
            assert!(
                pts.abs_diff(captured_us as u64 * 9 / 100) < INTERVAL_90K / 2,
                "frame {n}"
            );
        }
    }

    #[test]
    fn a_late_frame_keeps_its_place_and_the_next_on_time_one_follows_a_frame_later() {
        let mut clock = CaptureClock::new(30);
        assert_eq!(pts(&mut clock, 0), 0);
        // 26.7 ms late: a source thread kept from running.
        assert_eq!(pts(&mut clock, 60_000), 3000);
        assert_eq!(pts(&mut clock, 66_667), 6000);
        assert_eq!(pts(&mut clock, 100_000), 9000);
        // More than a frame late: frames were dropped; the slot nearest its capture time.
        assert_eq!(pts(&mut clock, 170_000), 15_000);
        assert_eq!(pts(&mut clock, 203_333), 18_000);
    }

    #[test]
    fn a_frame_over_an_interval_late_and_one_right_after_it_are_an_interval_apart() {
        let mut clock = CaptureClock::new(30);
        assert_eq!(pts(&mut clock, 0), 0);
        assert_eq!(pts(&mut clock, 33_333), 3000);
        // 35 ms late, then the next one at once: a source catching up.
        assert_eq!(pts(&mut clock, 101_667), 9000);
        assert_eq!(pts(&mut clock, 103_000), 12_000);
        assert_eq!(pts(&mut clock, 133_333), 15_000);
    }

    #[test]
    fn frames_are_never_closer_than_an_interval_whatever_the_timing() {
        let mut clock = CaptureClock::new(25);
        let mut state = 0x2545_f491_u32;
        let mut captured_us = 0i64;
        let mut last: Option<u64> = None;
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Gaps from 0 to 3 intervals.
            captured_us += i64::from(state % 120_000);
            if let Placement::At { pts_90k } = clock.place(at_us(captured_us), true) {
                if let Some(last) = last {
                    assert!(pts_90k >= last + 3600, "{last} then {pts_90k}");
                }
                last = Some(pts_90k);
            }
        }
    }

    #[test]
    fn a_slightly_slow_source_is_resynchronised_within_a_frame() {
        // 29.97 fps against 30: a frame of drift every 33 s.
        let mut clock = CaptureClock::new(30);
        for n in 0..3_000i64 {
            let captured_us = n * 1_001_000 / 30;
            let pts = pts(&mut clock, captured_us);
            let captured_90k = captured_us as u64 * 9 / 100;
            assert!(
                pts.abs_diff(captured_90k) < INTERVAL_90K,
                "frame {n}: {pts} vs {captured_90k}"
            );
        }
    }

    #[test]
    fn a_source_faster_than_configured_is_thinned_to_the_rate_unless_frames_must_stay() {
        let mut clock = CaptureClock::new(30);
        let mut placed = Vec::new();
        for n in 0..600i64 {
            if let Placement::At { pts_90k } = clock.place(at_us(n * 16_667), true) {
                placed.push(pts_90k);
            }
        }
        assert!(
            (295..=305).contains(&placed.len()),
            "{} placed",
            placed.len()
        );
        assert!(placed.windows(2).all(|w| w[1] == w[0] + INTERVAL_90K));
        let last_captured_90k = 599 * 16_667 * 9 / 100;
        assert!(placed[placed.len() - 1].abs_diff(last_captured_90k) <= 2 * INTERVAL_90K);

        // Frames that must not be dropped take the next slot.
        let mut clock = CaptureClock::new(30);
        for n in 0..10i64 {
            assert_eq!(
                clock.place(at_us(n * 16_667), false),
                Placement::At {
                    pts_90k: n as u64 * INTERVAL_90K
                }
            );
        }
    }

    #[test]
    fn a_pause_moves_the_grid_and_times_never_go_back() {
        let mut clock = CaptureClock::new(30);
        assert_eq!(pts(&mut clock, 0), 0);
        assert_eq!(pts(&mut clock, 33_333), 3000);
        // Two seconds without a frame: the next one is placed at the slot of its capture time
        // and the grid goes on from there.
        let resumed = pts(&mut clock, 2_033_333);
        assert_eq!(resumed, 183_000);
        assert_eq!(pts(&mut clock, 2_066_667), resumed + 3000);
        // The wall clock goes back an hour: times go on from where they were.
        let after = pts(&mut clock, 2_100_000 - 3_600_000_000);
        assert_eq!(after, resumed + 6000);
        assert_eq!(pts(&mut clock, 2_133_333 - 3_600_000_000), after + 3000);
    }

    #[test]
    fn a_tolerant_clock_keeps_the_grid_through_arrival_jitter_and_bursts() {
        let mut clock = CaptureClock::tolerant(25, 45_000);
        let mut place = |ms: i64| match clock.place(at_us(ms * 1000), false) {
            Placement::At { pts_90k } => pts_90k,
            Placement::TooEarly => panic!("an H.264 picture is never dropped"),
        };
        // Frames held up for 300 ms, then arriving in a burst: still one interval apart.
        let arrivals_ms = [0, 40, 80, 380, 381, 382, 383, 384, 385, 386, 400, 440];
        for (n, ms) in arrivals_ms.into_iter().enumerate() {
            assert_eq!(place(ms), n as u64 * 3600, "frame {n}");
        }
        // A pause longer than the tolerance moves the grid to the capture time.
        assert_eq!(place(2_000), 180_000);
        assert_eq!(place(2_040), 183_600);
    }
}
