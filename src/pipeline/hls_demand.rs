//! Who wants a stream's H.264 encoder running: the demand side of `hls = "on-demand"`.
//!
//! The HTTP side reports demand; the H.264 thread ([`super::h264`]) asks, frame by frame,
//! whether to run, and says whether it does:
//!
//! - An HLS request (a playlist, the init section, a segment or a part) is a poll: it holds
//!   demand while it is served ([`HlsDemand::hold`], which a blocked reload may need for
//!   seconds) and renews it when it ends. Players reload the playlist every part or segment,
//!   so demand lasts while one plays.
//! - A `/live.mp4` viewer holds demand for as long as its body lives ([`HlsDemandGuard`]).
//! - With nobody holding demand, the encoder stops `idle_stop` after the last request ended.
//!
//! With `hls = "always"` the encoder is always wanted. Time comes from a [`Clock`], so the
//! idle timing is tested without sleeping. (The JPEG side has its own demand in
//! [`crate::hub`]; this one knows nothing of it.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::HlsMode;

/// Where [`HlsDemand`] reads the time: the monotonic clock, or a test's.
pub trait Clock: std::fmt::Debug + Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// When the encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandPolicy {
    /// From start to stop, viewers or not.
    Always,
    /// While a viewer holds demand, and for `idle_stop` after the last request.
    OnDemand { idle_stop: Duration },
}

#[derive(Debug, Default)]
struct Holders {
    /// Requests being served and `/live.mp4` bodies alive now.
    count: usize,
    /// When the last request ended (or began, for [`HlsDemand::touch`]).
    last_request_at: Option<Instant>,
}

/// One stream's HLS demand, shared by its HTTP handlers and its H.264 thread.
#[derive(Debug)]
pub struct HlsDemand {
    policy: DemandPolicy,
    clock: Arc<dyn Clock>,
    holders: Mutex<Holders>,
    /// Whether the encoder runs now (the H.264 thread says), for `/status` and `/healthz`.
    running: AtomicBool,
    /// How often the encoder started and stopped, for `/status`.
    starts: AtomicU64,
    stops: AtomicU64,
}

impl HlsDemand {
    /// Demand for a stream in `mode` (`Off` has no encoder: treated as `Always`, never asked).
    pub fn new(mode: HlsMode, idle_stop: Duration) -> Arc<Self> {
        let policy = match mode {
            HlsMode::OnDemand => DemandPolicy::OnDemand { idle_stop },
            HlsMode::Always | HlsMode::Off => DemandPolicy::Always,
        };
        Self::with_clock(policy, Arc::new(MonotonicClock))
    }

    /// Demand that reads the time from `clock`.
    pub fn with_clock(policy: DemandPolicy, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            policy,
            clock,
            holders: Mutex::new(Holders::default()),
            running: AtomicBool::new(false),
            starts: AtomicU64::new(0),
            stops: AtomicU64::new(0),
        })
    }

    pub fn policy(&self) -> DemandPolicy {
        self.policy
    }

    /// `hls = "…"` as configured.
    pub fn mode(&self) -> HlsMode {
        match self.policy {
            DemandPolicy::Always => HlsMode::Always,
            DemandPolicy::OnDemand { .. } => HlsMode::OnDemand,
        }
    }

    /// How long the encoder runs on after the last request; `None` when it always runs.
    pub fn idle_stop(&self) -> Option<Duration> {
        match self.policy {
            DemandPolicy::Always => None,
            DemandPolicy::OnDemand { idle_stop } => Some(idle_stop),
        }
    }

    /// An HLS request came: the encoder runs (or starts) and keeps running for `idle_stop`.
    pub fn touch(&self) {
        let now = self.clock.now();
        let mut holders = self.lock();
        holders.last_request_at = Some(holders.last_request_at.map_or(now, |at| at.max(now)));
    }

    /// Holds demand while the guard lives (a request being served, a `/live.mp4` body), and
    /// renews it when the guard goes.
    pub fn hold(self: &Arc<Self>) -> HlsDemandGuard {
        self.touch();
        self.lock().count += 1;
        HlsDemandGuard {
            demand: self.clone(),
        }
    }

    /// Whether the encoder should run now.
    pub fn wanted(&self) -> bool {
        let now = self.clock.now();
        self.wanted_by(&self.lock(), now)
    }

    /// If the encoder is not wanted now, runs `stop` (which ends its media) and marks it
    /// stopped, both before any request can hold demand again: a request then either came
    /// before and keeps the encoder running, or comes after and finds its media ended, never
    /// media that is about to go. Returns whether it stopped.
    pub(crate) fn stop_if_unwanted(&self, stop: impl FnOnce()) -> bool {
        let now = self.clock.now();
        let holders = self.lock();
        if self.wanted_by(&holders, now) {
            return false;
        }
        stop();
        self.set_running(false);
        true
    }

    fn wanted_by(&self, holders: &Holders, now: Instant) -> bool {
        let DemandPolicy::OnDemand { idle_stop } = self.policy else {
            return true;
        };
        holders.count > 0
            || holders
                .last_request_at
                .is_some_and(|at| now.saturating_duration_since(at) < idle_stop)
    }

    /// Whether the encoder runs now.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// How often the encoder started (on demand: once per run).
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// How often the encoder stopped for lack of viewers.
    pub fn idle_stops(&self) -> u64 {
        self.stops.load(Ordering::Relaxed)
    }

    /// The H.264 thread says that the encoder started (`true`) or stopped (`false`).
    pub(crate) fn set_running(&self, running: bool) {
        if self.running.swap(running, Ordering::Relaxed) != running {
            let counter = if running { &self.starts } else { &self.stops };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Holders> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Holds a stream's HLS demand while it lives; renews it when dropped.
#[derive(Debug)]
pub struct HlsDemandGuard {
    demand: Arc<HlsDemand>,
}

impl Drop for HlsDemandGuard {
    fn drop(&mut self) {
        let now = self.demand.clock.now();
        let mut holders = self.demand.lock();
        holders.count = holders.count.saturating_sub(1);
        holders.last_request_at = Some(holders.last_request_at.map_or(now, |at| at.max(now)));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clock that moves only when told.
    #[derive(Debug)]
    pub(crate) struct ManualClock {
        now: Mutex<Instant>,
    }

    impl ManualClock {
        pub(crate) fn new() -> Arc<Self> {
            Arc::new(Self {
                now: Mutex::new(Instant::now()),
            })
        }

        pub(crate) fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }
    }

    const IDLE: Duration = Duration::from_secs(30);

    fn on_demand() -> (Arc<HlsDemand>, Arc<ManualClock>) {
        let clock = ManualClock::new();
        let demand =
            HlsDemand::with_clock(DemandPolicy::OnDemand { idle_stop: IDLE }, clock.clone());
        (demand, clock)
    }

    #[test]
    fn nothing_is_wanted_before_the_first_request() {
        let (demand, clock) = on_demand();
        assert!(!demand.wanted());
        clock.advance(Duration::from_secs(3600));
        assert!(!demand.wanted());
        assert_eq!(demand.mode(), HlsMode::OnDemand);
        assert_eq!(demand.idle_stop(), Some(IDLE));
    }

    #[test]
    fn a_request_keeps_the_encoder_wanted_for_the_idle_time() {
        let (demand, clock) = on_demand();
        demand.touch();
        assert!(demand.wanted());
        clock.advance(IDLE - Duration::from_millis(1));
        assert!(demand.wanted());
        clock.advance(Duration::from_millis(1));
        assert!(!demand.wanted(), "stops exactly the idle time after");
    }

    #[test]
    fn each_poll_renews_the_demand() {
        let (demand, clock) = on_demand();
        for _ in 0..10 {
            demand.touch();
            clock.advance(IDLE / 2);
            assert!(demand.wanted());
        }
        clock.advance(IDLE / 2);
        assert!(!demand.wanted());
    }

    #[test]
    fn a_held_request_counts_from_its_end() {
        let (demand, clock) = on_demand();
        let request = demand.hold();
        // A blocked reload held far longer than the idle time keeps the encoder wanted.
        clock.advance(IDLE * 3);
        assert!(demand.wanted());
        drop(request);
        clock.advance(IDLE - Duration::from_millis(1));
        assert!(demand.wanted(), "renewed when the request ended");
        clock.advance(Duration::from_millis(1));
        assert!(!demand.wanted());
    }

    #[test]
    fn a_live_mp4_viewer_holds_demand_while_it_lives() {
        let (demand, clock) = on_demand();
        let first = demand.hold();
        let second = demand.hold();
        clock.advance(IDLE * 10);
        drop(first);
        clock.advance(IDLE * 10);
        assert!(demand.wanted(), "one viewer is still there");
        drop(second);
        assert!(demand.wanted());
        clock.advance(IDLE);
        assert!(!demand.wanted());
    }

    #[test]
    fn a_stop_runs_only_when_nobody_wants_the_encoder() {
        let (demand, clock) = on_demand();
        demand.set_running(true);
        let viewer = demand.hold();
        clock.advance(IDLE * 2);
        let mut stops = 0;
        assert!(!demand.stop_if_unwanted(|| stops += 1));
        drop(viewer);
        clock.advance(IDLE);
        assert!(demand.stop_if_unwanted(|| stops += 1));
        assert_eq!(stops, 1);
        assert!(!demand.is_running());
        assert_eq!(demand.idle_stops(), 1);
        let always = HlsDemand::with_clock(DemandPolicy::Always, clock);
        assert!(!always.stop_if_unwanted(|| stops += 1));
        assert_eq!(stops, 1);
    }

    #[test]
    fn always_is_always_wanted() {
        let demand = HlsDemand::with_clock(DemandPolicy::Always, ManualClock::new());
        assert!(demand.wanted());
        assert_eq!(demand.idle_stop(), None);
        assert_eq!(demand.mode(), HlsMode::Always);
        assert_eq!(
            HlsDemand::new(HlsMode::OnDemand, IDLE).policy(),
            DemandPolicy::OnDemand { idle_stop: IDLE }
        );
    }

    #[test]
    fn starts_and_stops_are_counted_once_per_change() {
        let (demand, _) = on_demand();
        assert!(!demand.is_running());
        demand.set_running(true);
        demand.set_running(true);
        assert!(demand.is_running());
        demand.set_running(false);
        demand.set_running(false);
        demand.set_running(true);
        assert_eq!((demand.starts(), demand.idle_stops()), (2, 1));
    }
}
