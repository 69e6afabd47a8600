//! Key-frame requests of a stream's WebRTC viewers, rate-limited: a new viewer and a viewer's
//! PLI or FIR ask for an IDR, and the H.264 thread takes the request when it encodes the next
//! frame. An IDR costs several inter frames' bytes, and a viewer on a lossy link can send a
//! PLI on every lost packet: at most one IDR per `min_interval` is made for requests, however
//! many viewers ask. A request that comes too soon is kept, not lost, and granted once the
//! interval has passed; an IDR the encoder makes anyway (a segment boundary) answers it.
//! A new viewer's request is urgent: it is granted with the next frame whatever the interval,
//! so that the viewer starts at once (viewers arriving together still share one IDR).
//!
//! Pure: the time is passed in.

use std::time::{Duration, Instant};

/// At most one requested IDR a second per stream.
pub const KEY_FRAME_MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct KeyFrameRequests {
    min_interval: Duration,
    /// Someone asked for an IDR that has not come yet.
    wanted: bool,
    /// The waiting request is a new viewer's: not held back by the interval.
    urgent: bool,
    /// When the last IDR was made (asked for or not).
    last_idr_at: Option<Instant>,
}

impl Default for KeyFrameRequests {
    fn default() -> Self {
        Self::new(KEY_FRAME_MIN_INTERVAL)
    }
}

impl KeyFrameRequests {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            wanted: false,
            urgent: false,
            last_idr_at: None,
        }
    }

    /// A viewer asks for an IDR.
    pub fn request(&mut self) {
        self.wanted = true;
    }

    /// A new viewer asks for an IDR to start with.
    pub fn request_urgent(&mut self) {
        self.wanted = true;
        self.urgent = true;
    }

    /// Whether the encoder should make its next frame an IDR at `now`: a request is waiting
    /// and the last IDR is at least the interval ago. Taking it clears the request.
    pub fn take(&mut self, now: Instant) -> bool {
        let due = self.wanted
            && (self.urgent
                || self
                    .last_idr_at
                    .is_none_or(|last| now.saturating_duration_since(last) >= self.min_interval));
        if due {
            self.wanted = false;
            self.urgent = false;
            self.last_idr_at = Some(now);
        }
        due
    }

    /// An IDR went out at `now` for any reason: it answers every waiting request.
    pub fn idr_made(&mut self, now: Instant) {
        self.wanted = false;
        self.urgent = false;
        self.last_idr_at = Some(now);
    }

    pub fn is_wanted(&self) -> bool {
        self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_due_without_a_request() {
        let mut requests = KeyFrameRequests::default();
        assert!(!requests.take(Instant::now()));
    }

    #[test]
    fn the_first_request_is_granted_at_once_and_only_once() {
        let now = Instant::now();
        let mut requests = KeyFrameRequests::default();
        requests.request();
        requests.request();
        assert!(requests.take(now));
        assert!(!requests.take(now));
    }

    #[test]
    fn requests_within_the_interval_wait_for_it_and_are_not_lost() {
        let start = Instant::now();
        let mut requests = KeyFrameRequests::new(Duration::from_secs(1));
        requests.request();
        assert!(requests.take(start));
        // A burst of PLIs right after: nothing until a second has passed, then one IDR.
        for ms in [1, 100, 500, 999] {
            requests.request();
            assert!(!requests.take(start + Duration::from_millis(ms)), "{ms} ms");
        }
        assert!(requests.is_wanted());
        assert!(requests.take(start + Duration::from_millis(1000)));
        assert!(!requests.take(start + Duration::from_millis(1001)));
    }

    #[test]
    fn a_new_viewers_request_is_not_held_back_by_the_interval() {
        let start = Instant::now();
        let mut requests = KeyFrameRequests::new(Duration::from_secs(1));
        requests.request();
        assert!(requests.take(start));
        requests.request_urgent();
        requests.request();
        assert!(requests.take(start + Duration::from_millis(10)));
        // Only that one: the interval holds plain requests back again.
        requests.request();
        assert!(!requests.take(start + Duration::from_millis(20)));
    }

    #[test]
    fn an_idr_made_anyway_answers_waiting_requests_and_restarts_the_interval() {
        let start = Instant::now();
        let mut requests = KeyFrameRequests::new(Duration::from_secs(1));
        requests.request();
        requests.idr_made(start);
        assert!(!requests.is_wanted());
        requests.request();
        assert!(!requests.take(start + Duration::from_millis(500)));
        assert!(requests.take(start + Duration::from_millis(1500)));
    }
}
