//! A small mailbox between blocking threads where the newest items win.
//!
//! The source thread puts each frame in; an idle encoder thread takes the oldest waiting one.
//! When the mailbox is full the oldest item is dropped, so a slow encoder can never make the
//! source wait or make memory grow. With room for one item (the JPEG stage) the newest frame
//! always wins; a few items of room (the H.264 stage) ride out a busy moment without losing a
//! frame, which matters there because every lost frame shortens the HLS timeline.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug)]
pub struct LatestSlot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct SlotState<T> {
    items: VecDeque<T>,
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
    /// Room for one item: the newest always wins.
    pub fn new() -> Self {
        Self::with_capacity(1)
    }

    /// Room for `capacity` items (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(SlotState {
                items: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    /// Puts `item` in, waking one waiting taker. Returns true if the mailbox was full and the
    /// oldest item, which nobody took, was dropped.
    pub fn put(&self, item: T) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.items.push_back(item);
        let dropped = state.items.len() > self.capacity;
        if dropped {
            state.items.pop_front();
        }
        drop(state);
        self.ready.notify_one();
        dropped
    }

    /// Waits up to `timeout` for an item and takes it.
    pub fn take(&self, timeout: Duration) -> Taken<T> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |s| s.items.is_empty() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        if let Some(item) = state.items.pop_front() {
            Taken::Item(item)
        } else if state.closed {
            Taken::Closed
        } else {
            Taken::TimedOut
        }
    }

    /// Waits for an item and takes it, however long that is: [`Taken::Closed`] once the slot
    /// is closed and empty. For a thread that has nothing else to do: it sleeps until then.
    pub fn take_until_closed(&self) -> Taken<T> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self
            .ready
            .wait_while(state, |s| s.items.is_empty() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        match state.items.pop_front() {
            Some(item) => Taken::Item(item),
            None => Taken::Closed,
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
    fn a_larger_slot_keeps_order_and_drops_the_oldest_when_full() {
        let slot = LatestSlot::with_capacity(3);
        for n in 1..=3 {
            assert!(!slot.put(n));
        }
        assert!(slot.put(4), "full: 1 is dropped");
        for n in 2..=4 {
            assert_eq!(slot.take(Duration::ZERO), Taken::Item(n));
        }
        assert_eq!(slot.take(Duration::ZERO), Taken::TimedOut);
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

    #[test]
    fn a_taker_without_a_timeout_gets_items_then_the_close() {
        let slot = Arc::new(LatestSlot::with_capacity(2));
        let taker = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                let mut taken = Vec::new();
                while let Taken::Item(n) = slot.take_until_closed() {
                    taken.push(n);
                }
                taken
            })
        };
        slot.put(1);
        slot.close();
        // Closed, but what was put before is still taken.
        assert_eq!(taker.join().unwrap(), vec![1]);
        assert_eq!(slot.take_until_closed(), Taken::Closed);
    }
}
