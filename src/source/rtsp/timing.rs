//! The times of an RTSP camera's frames: presentation times from RTP timestamps, and capture
//! (wall-clock) times from RTCP sender reports. Pure: every input is an argument.
//!
//! RTP timestamps (RFC 3550 §5.1) count the camera's media clock (90 kHz for H.264, RFC 6184
//! §5.1) from a random start and wrap at 32 bits; the RTSP client extends them to 64 bits.
//! [`PtsRebaser`] makes them start at 0 on the 90 kHz clock and never go back or leap: a
//! camera that restarts its clock or jumps continues one frame interval after the last frame.
//!
//! A sender report (RFC 3550 §6.4.1) pairs an RTP timestamp with the camera's NTP wall-clock
//! time, so every frame's capture time follows from its RTP timestamp. [`WallClock`] uses it
//! only while it agrees with this machine's clock (a camera with an unset clock says 1970 or
//! 2000); else, and before the first report, a frame's capture time is its arrival time.

use std::time::{Duration, SystemTime};

use crate::frame::CLOCK_90K;

/// A step between frames larger than this is a jump in the camera's clock, not a gap.
const MAX_STEP_90K: u64 = 10 * CLOCK_90K;
/// The step assumed after a jump when no step has been seen yet: one frame at 30 fps.
const DEFAULT_STEP_90K: u64 = CLOCK_90K / 30;

/// Presentation times from RTP timestamps: 0 for the first frame, strictly increasing.
#[derive(Debug)]
pub struct PtsRebaser {
    /// The RTP timestamp (extended) and presentation time the scale runs from.
    anchor: Option<(i64, u64)>,
    last_pts_90k: u64,
    /// The last normal step between two frames.
    step_90k: u64,
}

impl Default for PtsRebaser {
    fn default() -> Self {
        Self::new()
    }
}

impl PtsRebaser {
    pub fn new() -> Self {
        Self {
            anchor: None,
            last_pts_90k: 0,
            step_90k: DEFAULT_STEP_90K,
        }
    }

    /// The presentation time of a frame with RTP timestamp `rtp_timestamp` on a clock of
    /// `clock_rate_hz`.
    pub fn pts_90k(&mut self, rtp_timestamp: i64, clock_rate_hz: u32) -> u64 {
        let Some((anchor_rtp, anchor_pts)) = self.anchor else {
            self.anchor = Some((rtp_timestamp, 0));
            return 0;
        };
        let elapsed = i128::from(rtp_timestamp) - i128::from(anchor_rtp);
        let scaled = elapsed * i128::from(CLOCK_90K) / i128::from(clock_rate_hz.max(1));
        let pts = i128::from(anchor_pts) + scaled;
        let last = i128::from(self.last_pts_90k);
        let pts = if pts > last && pts - last <= i128::from(MAX_STEP_90K) {
            self.step_90k = (pts - last) as u64;
            pts as u64
        } else {
            // Backwards, the same time again, or a leap: carry on one step after the last
            // frame, and measure from here.
            let pts = self.last_pts_90k + self.step_90k;
            self.anchor = Some((rtp_timestamp, pts));
            pts
        };
        self.last_pts_90k = pts;
        pts
    }
}

/// How far a capture time from the camera's clock may lie before a frame's arrival (the
/// camera's encoding and the network) or after it (the two clocks' disagreement), and still
/// be believed.
const MAX_CAPTURE_BEFORE_ARRIVAL: Duration = Duration::from_secs(5);
const MAX_CAPTURE_AFTER_ARRIVAL: Duration = Duration::from_secs(1);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 868.
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Capture times from the camera's sender reports.
#[derive(Debug, Default)]
pub struct WallClock {
    /// The latest sender report: its RTP timestamp (extended), its time, the clock rate.
    report: Option<(i64, SystemTime, u32)>,
}

impl WallClock {
    /// Takes a sender report that says the media clock read `rtp_timestamp` at `ntp_timestamp`
    /// (64-bit NTP format, RFC 5905 §6: seconds since 1900 in the high 32 bits, the fraction in
    /// the low 32).
    pub fn on_sender_report(&mut self, rtp_timestamp: i64, ntp_timestamp: u64, clock_rate_hz: u32) {
        let seconds = ntp_timestamp >> 32;
        let nanos = ((ntp_timestamp & 0xffff_ffff) * 1_000_000_000) >> 32;
        let Some(unix_seconds) = seconds.checked_sub(NTP_UNIX_OFFSET_SECS) else {
            // Before 1970: a clock never set.
            self.report = None;
            return;
        };
        let at = SystemTime::UNIX_EPOCH + Duration::new(unix_seconds, nanos as u32);
        self.report = Some((rtp_timestamp, at, clock_rate_hz.max(1)));
    }

    /// When the frame with `rtp_timestamp` was captured, given that it arrived at `arrived_at`.
    pub fn captured_at(&self, rtp_timestamp: i64, arrived_at: SystemTime) -> SystemTime {
        let Some((report_rtp, report_at, clock_rate_hz)) = self.report else {
            return arrived_at;
        };
        let elapsed = i128::from(rtp_timestamp) - i128::from(report_rtp);
        let elapsed_nanos = elapsed * 1_000_000_000 / i128::from(clock_rate_hz);
        let captured = if elapsed_nanos >= 0 {
            u64::try_from(elapsed_nanos)
                .ok()
                .and_then(|n| report_at.checked_add(Duration::from_nanos(n)))
        } else {
            u64::try_from(-elapsed_nanos)
                .ok()
                .and_then(|n| report_at.checked_sub(Duration::from_nanos(n)))
        };
        let believable = |at: SystemTime| match at.duration_since(arrived_at) {
            Ok(after) => after <= MAX_CAPTURE_AFTER_ARRIVAL,
            Err(before) => before.duration() <= MAX_CAPTURE_BEFORE_ARRIVAL,
        };
        captured.filter(|&at| believable(at)).unwrap_or(arrived_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_times_start_at_zero_on_the_90k_clock() {
        let mut rebaser = PtsRebaser::new();
        let start = 4_000_000_000_i64;
        let times: Vec<u64> = [0, 6000, 12000, 18000]
            .iter()
            .map(|&t| rebaser.pts_90k(start + t, 90_000))
            .collect();
        assert_eq!(times, [0, 6000, 12000, 18000]);
        // Another clock rate is scaled.
        let mut rebaser = PtsRebaser::new();
        assert_eq!(rebaser.pts_90k(-5, 48_000), 0);
        assert_eq!(rebaser.pts_90k(-5 + 48_000, 48_000), 90_000);
    }

    #[test]
    fn a_clock_that_goes_back_or_leaps_continues_one_step_later() {
        let mut rebaser = PtsRebaser::new();
        let mut times = Vec::new();
        for t in [
            1_000_000,
            1_003_000,
            1_006_000,   // 30 fps
            500,         // the camera restarted its clock
            3_500,       // and goes on from there
            3_500,       // the same time twice
            999_999_999, // a leap of hours
            1_000_002_999,
        ] {
            times.push(rebaser.pts_90k(t, 90_000));
        }
        assert_eq!(times, [0, 3000, 6000, 9000, 12000, 15000, 18000, 21000]);
    }

    #[test]
    fn before_a_sender_report_frames_are_stamped_with_their_arrival() {
        let clock = WallClock::default();
        let arrived = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert_eq!(clock.captured_at(12345, arrived), arrived);
    }

    #[test]
    fn a_sender_report_dates_the_frames_around_it() {
        let report_unix = 1_790_000_000_u64;
        // Half a second past the full second: fraction 0x8000_0000.
        let ntp = ((report_unix + NTP_UNIX_OFFSET_SECS) << 32) | 0x8000_0000;
        let mut clock = WallClock::default();
        clock.on_sender_report(900_000, ntp, 90_000);
        let report_at = SystemTime::UNIX_EPOCH + Duration::from_millis(report_unix * 1000 + 500);
        let arrived = report_at + Duration::from_millis(300);
        // 9000 ticks after the report: 100 ms.
        assert_eq!(
            clock.captured_at(909_000, arrived),
            report_at + Duration::from_millis(100)
        );
        // 4500 ticks before it: 50 ms.
        assert_eq!(
            clock.captured_at(895_500, arrived),
            report_at - Duration::from_millis(50)
        );
    }

    #[test]
    fn a_camera_clock_far_from_ours_is_not_believed() {
        let mut clock = WallClock::default();
        let arrived = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        // A camera that thinks it is 2000.
        let ntp_2000 = (946_684_800 + NTP_UNIX_OFFSET_SECS) << 32;
        clock.on_sender_report(0, ntp_2000, 90_000);
        assert_eq!(clock.captured_at(0, arrived), arrived);
        // A clock never set, before 1970 in NTP terms.
        clock.on_sender_report(0, 5 << 32, 90_000);
        assert_eq!(clock.captured_at(0, arrived), arrived);
        // Ten seconds ahead of ours.
        let ahead = (1_790_000_010 + NTP_UNIX_OFFSET_SECS) << 32;
        clock.on_sender_report(0, ahead, 90_000);
        assert_eq!(clock.captured_at(0, arrived), arrived);
    }
}
