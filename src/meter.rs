//! Frame-rate measurement over a sliding one-second window, and duration histograms (encode
//! times for `/metrics`), both cheap enough to record per frame.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Upper bounds of the [`DurationHistogram`] buckets in µs: 0.5 ms doubling to 256 ms. A
/// 720p JPEG takes about 2 ms here and an H.264 frame about 7 ms; a frame that takes longer
/// than a frame interval (33 ms at 30 fps) shows in the upper buckets, and anything beyond a
/// quarter second is an outage whatever its length.
pub const DURATION_BUCKETS_US: [u64; 10] = [
    500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000,
];

/// Counts durations into fixed buckets without a lock: one relaxed add per bucket and one
/// for the sum, so recording per frame on an encoder thread costs next to nothing. Read at
/// scrape time; a reading taken while frames are recorded may be a frame out between the
/// sum and the buckets, never more.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative); the last counts what exceeds every bound.
    counts: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

/// What a [`DurationHistogram`] holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramReading {
    /// Per bucket, in the order of [`DURATION_BUCKETS_US`], then the overflow bucket.
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

impl HistogramReading {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl DurationHistogram {
    pub fn record_micros(&self, micros: u64) {
        let bucket = DURATION_BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(DURATION_BUCKETS_US.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn read(&self) -> HistogramReading {
        HistogramReading {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_into_the_first_bucket_that_holds_them() {
        let histogram = DurationHistogram::default();
        for micros in [0, 500, 501, 2_000, 300_000] {
            histogram.record_micros(micros);
        }
        let reading = histogram.read();
        assert_eq!(reading.counts, [2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(reading.count(), 5);
        assert_eq!(reading.sum_us, 303_001);
    }

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
