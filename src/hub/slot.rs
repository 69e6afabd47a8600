//! A one-item mailbox between blocking threads where the newest item wins.
//!
//! The source thread puts each frame in; an idle encoder thread takes it. A frame that no
//! encoder took before the next one arrived is replaced, never queued, so a slow encoder can
//! never make the source wait or make memory grow.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug)]
pub struct LatestSlot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

#[derive(Debug)]
struct SlotState<T> {
    item: Option<T>,
    closed: bool,
}

/// What [`LatestSlot::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken<T> {
    Item(T),
    TimedOut,
    Closed,
}

impl<T> Default for LatestSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> LatestSlot<T> {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(SlotState {
                item: None,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Puts `item` in, waking one waiting taker. Returns true if it replaced an item nobody took.
    pub fn put(&self, item: T) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let replaced = state.item.replace(item).is_some();
        drop(state);
        self.ready.notify_one();
        replaced
    }

    /// Waits up to `timeout` for an item and takes it.
    pub fn take(&self, timeout: Duration) -> Taken<T> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |s| s.item.is_none() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        if let Some(item) = state.item.take() {
            Taken::Item(item)
        } else if state.closed {
            Taken::Closed
        } else {
            Taken::TimedOut
        }
    }

    /// Wakes every taker for good: later takes return [`Taken::Closed`] once the slot is empty.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_newest_item_wins() {
        let slot = LatestSlot::new();
        assert!(!slot.put(1));
        assert!(slot.put(2));
        assert_eq!(slot.take(Duration::ZERO), Taken::Item(2));
        assert_eq!(slot.take(Duration::from_millis(1)), Taken::TimedOut);
    }

    #[test]
    fn close_wakes_a_waiting_taker() {
        let slot = Arc::new(LatestSlot::<u32>::new());
        let taker = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.take(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        slot.close();
        assert_eq!(taker.join().unwrap(), Taken::Closed);
    }

    #[test]
    fn a_put_wakes_a_waiting_taker() {
        let slot = Arc::new(LatestSlot::new());
        let taker = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.take(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        slot.put(7);
        assert_eq!(taker.join().unwrap(), Taken::Item(7));
    }
}
