//! The per-stream JPEG rate cap (`mjpeg_fps`): which frames go to the JPEG encoders, so that a
//! 30 fps camera can feed a 5 fps dashboard for a sixth of the encoding.
//!
//! Decided on the frames' own presentation times, not on the wall clock: the choice is the
//! same however busy the machine is, and the cap is a pure function of the timestamps.

use crate::frame::CLOCK_90K;

/// Admits at most `fps` frames per second of presentation time.
#[derive(Debug, Clone)]
pub struct RateCap {
    interval_90k: u64,
    /// The earliest presentation time of the next admitted frame.
    next_due_90k: Option<u64>,
    last_admitted_90k: u64,
    /// The presentation time of the last frame offered, admitted or not.
    last_offered_90k: Option<u64>,
}

impl RateCap {
    /// A cap of `fps` frames per second (at least 1).
    pub fn new(fps: u32) -> Self {
        Self {
            interval_90k: CLOCK_90K / u64::from(fps.max(1)),
            next_due_90k: None,
            last_admitted_90k: 0,
            last_offered_90k: None,
        }
    }

    /// Whether the frame presented at `pts_90k` goes to the encoders.
    ///
    /// Frames are admitted on a grid of one interval, which each admitted frame moves on by
    /// one interval, so over any stretch at most one frame per interval passes (plus one). A
    /// frame a little early still counts as on time: less than a third of an interval, so a
    /// source at the cap's rate whose timestamps jitter by less than a sixth of a frame either
    /// way loses no frame; and less than half the gap since the frame before, so of a faster
    /// source's frames around a slot of the grid only the nearest counts (one at twice the
    /// rate loses every other, one at three times the rate passes every third, evenly). A frame more than one and a half intervals late (after a pause), or with
    /// a timestamp going back (a restarted source), starts the grid again.
    pub fn admit(&mut self, pts_90k: u64) -> bool {
        let source_gap_90k = self
            .last_offered_90k
            .replace(pts_90k)
            .map_or(u64::MAX, |last| pts_90k.saturating_sub(last));
        let early_tolerance_90k = (self.interval_90k / 3).min(source_gap_90k / 2);
        let due = match self.next_due_90k {
            Some(due) if pts_90k >= self.last_admitted_90k => due,
            _ => pts_90k,
        };
        if pts_90k + early_tolerance_90k <= due && pts_90k < due {
            return false;
        }
        let next = due + self.interval_90k;
        self.next_due_90k = Some(if next + early_tolerance_90k <= pts_90k {
            pts_90k + self.interval_90k
        } else {
            next
        });
        self.last_admitted_90k = pts_90k;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admitted frames out of `count` at `source_fps`, with timestamps off by `jitter_90k`
    /// alternately early and late.
    fn admitted(cap_fps: u32, source_fps: u64, count: u64, jitter_90k: u64) -> u64 {
        let mut cap = RateCap::new(cap_fps);
        (0..count)
            .filter(|n| {
                let pts = 10_000 + n * CLOCK_90K / source_fps;
                let pts = if n % 2 == 0 {
                    pts + jitter_90k
                } else {
                    pts - jitter_90k
                };
                cap.admit(pts)
            })
            .count() as u64
    }

    #[test]
    fn admits_the_capped_rate_of_a_faster_source() {
        assert_eq!(admitted(5, 30, 300, 0), 50);
        assert_eq!(admitted(15, 30, 300, 0), 150);
        assert_eq!(admitted(20, 30, 300, 0), 200);
        assert_eq!(admitted(1, 30, 300, 0), 10);
        assert_eq!(admitted(10, 30, 300, 400), 100);
    }

    #[test]
    fn a_source_at_or_below_the_cap_loses_nothing_even_with_jitter() {
        assert_eq!(admitted(30, 30, 300, 0), 300);
        assert_eq!(admitted(30, 30, 300, 400), 300);
        assert_eq!(admitted(60, 30, 300, 500), 300);
        assert_eq!(admitted(120, 25, 100, 0), 100);
    }

    #[test]
    fn a_pause_or_a_restarted_clock_starts_the_grid_again() {
        let mut cap = RateCap::new(10);
        assert!(cap.admit(0));
        assert!(!cap.admit(3000));
        assert!(cap.admit(900_000), "after a pause of 10 s");
        assert!(!cap.admit(903_000));
        assert!(cap.admit(909_000));
        assert!(cap.admit(0), "timestamps went back: a new source");
        assert!(!cap.admit(3000));
        assert!(cap.admit(9000));
    }
}
