//! Presentation times on the 90 kHz clock for the frames a source delivers.
//!
//! A source at its configured rate gets a drift-free grid (`n * 90000 / fps`), whatever the
//! jitter of its capture times, so HLS parts hold whole frames and no sample has an odd length.
//! A frame that comes late, by up to a frame interval, keeps its place on the grid: a source
//! thread that was kept from running delivers one frame late and the next on time, and moving
//! the grid to the late one would put the next barely after it (players that count in frame
//! intervals then see two frames at one time). A frame later than that (frames dropped, a
//! pause, a camera that halved its rate or runs slightly slow) moves the grid to its capture
//! time, and so does one that comes more than half an interval early (a source faster than
//! configured): media time keeps matching PROGRAM-DATE-TIME to within a frame interval. Times
//! never go backwards, even when the wall clock does.
//!
//! A source's own H.264 loses no frame on its way (every access unit is a picture the next
//! ones may refer to), so lateness there is arrival jitter, not a lost frame: its clock
//! ([`CaptureClock::tolerant`]) keeps the grid for frames up to a given time late or early,
//! and only a pause or drift beyond that moves it.

use std::time::SystemTime;

use crate::frame::{CLOCK_90K, unix_micros};

#[derive(Debug)]
pub struct CaptureClock {
    fps: u64,
    /// The capture time (µs since the epoch) that is presentation time 0.
    origin_us: Option<u64>,
    /// Frame count and presentation time the grid runs from.
    anchor: (u64, u64),
    frames: u64,
    last_pts_90k: Option<u64>,
    /// A frame this late or later moves the grid; `None`: one frame interval.
    late_limit_90k: Option<u64>,
    /// A frame more than this early moves the grid; `None`: half a frame interval.
    early_limit_90k: Option<u64>,
}

impl CaptureClock {
    pub fn new(fps: u32) -> Self {
        Self {
            fps: u64::from(fps.max(1)),
            origin_us: None,
            anchor: (0, 0),
            frames: 0,
            last_pts_90k: None,
            late_limit_90k: None,
            early_limit_90k: None,
        }
    }

    /// A clock that keeps the grid for frames up to `tolerance_90k` late or early (at least
    /// the default limits).
    pub fn tolerant(fps: u32, tolerance_90k: u64) -> Self {
        Self {
            late_limit_90k: Some(tolerance_90k),
            early_limit_90k: Some(tolerance_90k),
            ..Self::new(fps)
        }
    }

    /// The presentation time of the next frame, captured at `captured_at`.
    pub fn pts_90k(&mut self, captured_at: SystemTime) -> u64 {
        let captured_us = unix_micros(captured_at);
        let origin_us = *self.origin_us.get_or_insert(captured_us);
        let interval_90k = CLOCK_90K / self.fps;
        let (anchor_frame, anchor_pts) = self.anchor;
        let on_grid = anchor_pts + (self.frames - anchor_frame) * CLOCK_90K / self.fps;
        let captured = i128::from(captured_us) - i128::from(origin_us);
        let captured_90k = captured * i128::from(CLOCK_90K) / 1_000_000;
        let earliest = self.last_pts_90k.map_or(0, |last| last + 1);
        let lateness_90k = captured_90k - i128::from(on_grid);
        let interval = i128::from(interval_90k);
        // At most half an interval early, and less than a whole one late (or the tolerance).
        let late_limit = i128::from(self.late_limit_90k.unwrap_or(interval_90k)).max(interval);
        let early_limit =
            i128::from(self.early_limit_90k.unwrap_or(interval_90k / 2)).max(interval / 2);
        let fits_the_grid = lateness_90k >= -early_limit && lateness_90k < late_limit;
        let pts = if fits_the_grid && on_grid >= earliest {
            on_grid
        } else {
            // Off the grid: move the grid to this frame (never back in time; after the wall
            // clock went back, the capture origin moves with it).
            let pts = u64::try_from(captured_90k).unwrap_or(0).max(earliest);
            if i128::from(pts) != captured_90k {
                let shift_us = (captured_90k - i128::from(pts)) * 1_000_000 / i128::from(CLOCK_90K);
                self.origin_us =
                    Some(u64::try_from(i128::from(origin_us) + shift_us).unwrap_or(origin_us));
            }
            self.anchor = (self.frames, pts);
            pts
        };
        self.frames += 1;
        self.last_pts_90k = Some(pts);
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::from_unix_micros;

    const START_US: u64 = 1_790_000_000_000_000;

    fn at_us(offset_us: i64) -> SystemTime {
        from_unix_micros(START_US.saturating_add_signed(offset_us))
    }

    #[test]
    fn a_source_at_its_rate_gets_a_regular_grid_whatever_its_jitter() {
        let mut clock = CaptureClock::new(30);
        let jitter = [0, 4_000, -3_000, 9_000, -9_000, 1_000];
        for n in 0..300i64 {
            let pts = clock.pts_90k(at_us(n * 33_333 + jitter[n as usize % jitter.len()]));
            assert_eq!(pts, n as u64 * 3000, "frame {n}");
        }
    }

    #[test]
    fn a_source_at_half_its_rate_follows_its_capture_times() {
        let mut clock = CaptureClock::new(30);
        for n in 0..100i64 {
            let captured_us = n * 66_667;
            let pts = clock.pts_90k(at_us(captured_us));
            assert_eq!(pts, captured_us as u64 * 9 / 100, "frame {n}");
        }
    }

    #[test]
    fn a_late_frame_keeps_its_place_and_the_next_on_time_one_follows_a_frame_later() {
        let mut clock = CaptureClock::new(30);
        assert_eq!(clock.pts_90k(at_us(0)), 0);
        // 26.7 ms late: a source thread kept from running.
        assert_eq!(clock.pts_90k(at_us(60_000)), 3000);
        assert_eq!(clock.pts_90k(at_us(66_667)), 6000);
        assert_eq!(clock.pts_90k(at_us(100_000)), 9000);
        // More than a frame late: frames were dropped; placed at its capture time.
        assert_eq!(clock.pts_90k(at_us(170_000)), 15_300);
        assert_eq!(clock.pts_90k(at_us(203_333)), 18_300);
    }

    #[test]
    fn a_slightly_slow_source_is_resynchronised_within_a_frame() {
        // 29.97 fps against 30: a frame of drift every 33 s.
        let mut clock = CaptureClock::new(30);
        for n in 0..3_000i64 {
            let captured_us = n * 1_001_000 / 30;
            let pts = clock.pts_90k(at_us(captured_us));
            let captured_90k = captured_us as u64 * 9 / 100;
            assert!(
                pts.abs_diff(captured_90k) < 3_000,
                "frame {n}: {pts} vs {captured_90k}"
            );
        }
    }

    #[test]
    fn a_tolerant_clock_keeps_the_grid_through_arrival_jitter_and_bursts() {
        let mut clock = CaptureClock::tolerant(25, 45_000);
        // Frames held up for 300 ms, then arriving in a burst: still one interval apart.
        let arrivals_ms = [0, 40, 80, 380, 381, 382, 383, 384, 385, 386, 400, 440];
        for (n, ms) in arrivals_ms.into_iter().enumerate() {
            assert_eq!(
                clock.pts_90k(at_us(ms * 1000)),
                n as u64 * 3600,
                "frame {n}"
            );
        }
        // A pause longer than the tolerance moves the grid.
        let resumed = clock.pts_90k(at_us(2_000_000));
        assert!(resumed.abs_diff(180_000) <= 1, "{resumed}");
        assert_eq!(clock.pts_90k(at_us(2_040_000)), resumed + 3600);
    }

    #[test]
    fn a_pause_moves_the_grid_and_times_never_go_back() {
        let mut clock = CaptureClock::new(30);
        assert_eq!(clock.pts_90k(at_us(0)), 0);
        assert_eq!(clock.pts_90k(at_us(33_333)), 3000);
        // Two seconds without a frame: the next one is placed at its capture time (to the tick)
        // and the grid goes on from there.
        let resumed = clock.pts_90k(at_us(2_033_333));
        assert!(resumed.abs_diff(183_000) <= 1, "{resumed}");
        assert_eq!(clock.pts_90k(at_us(2_066_667)), resumed + 3000);
        // The wall clock goes back an hour: times go on from where they were.
        let after = clock.pts_90k(at_us(2_100_000 - 3_600_000_000));
        assert!(after > resumed + 3000);
        let next = clock.pts_90k(at_us(2_133_333 - 3_600_000_000));
        assert_eq!(next, after + 3000);
    }
}
