//! Frame-rate measurement over a sliding one-second window, cheap enough to tick per frame.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one measurement window lasts: long enough to smooth jitter, short enough that a
/// stall shows within a second or two.
const WINDOW: Duration = Duration::from_secs(1);

/// Counts events and reports their rate over the last complete window.
#[derive(Debug)]
pub struct RateMeter {
    state: Mutex<MeterState>,
}

#[derive(Debug)]
struct MeterState {
    window_start: Instant,
    count_in_window: u32,
    last_rate_per_s: f64,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateMeter {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(MeterState {
                window_start: Instant::now(),
                count_in_window: 0,
                last_rate_per_s: 0.0,
            }),
        }
    }

    /// Records one event now.
    pub fn tick(&self) {
        self.tick_at(Instant::now());
    }

    fn tick_at(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.roll(now);
        state.count_in_window += 1;
    }

    /// Events per second over the last complete window; 0 once events have stopped for a window.
    pub fn rate_per_s(&self) -> f64 {
        self.rate_at(Instant::now())
    }

    fn rate_at(&self, now: Instant) -> f64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.roll(now);
        state.last_rate_per_s
    }
}

impl MeterState {
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        self.last_rate_per_s = if elapsed < 2 * WINDOW {
            f64::from(self.count_in_window) / elapsed.as_secs_f64()
        } else {
            // A whole window passed without a roll: nothing arrived in the latest one.
            0.0
        };
        self.window_start = now;
        self.count_in_window = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_rate() {
        let meter = RateMeter::new();
        let start = meter.state.lock().unwrap().window_start;
        for i in 0..30 {
            meter.tick_at(start + Duration::from_millis(i * 33));
        }
        let rate = meter.rate_at(start + Duration::from_millis(1000));
        assert!((rate - 30.0).abs() < 0.5, "{rate}");
    }

    #[test]
    fn falls_to_zero_when_events_stop() {
        let meter = RateMeter::new();
        let start = meter.state.lock().unwrap().window_start;
        meter.tick_at(start);
        assert_eq!(meter.rate_at(start + Duration::from_secs(3)), 0.0);
    }
}
