//! The tap of a stream's H.264 access units for WebRTC viewers: every access unit the
//! stream's encoder makes, or its source's own H.264 as it came, with its capture time, handed
//! over without ever blocking the thread that publishes it.
//!
//! A bounded broadcast: each subscriber reads at its own pace, and one that falls more than
//! [`TAP_CAPACITY`] units behind loses the oldest (it sees a gap in `index` or a `Lagged`
//! error) and must skip to the next IDR. The units since the last IDR are kept (bounded like
//! the hub's GOP) so that a viewer of a source's own H.264, which cannot be asked for an IDR,
//! starts at once with them; a viewer of the encoder asks for an IDR through
//! [`AccessUnitTap::request_key_frame`] instead.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::broadcast;

use super::gop::{GOP_MAX_BYTES, GOP_MAX_FRAMES};
use super::key_frame_requests::KeyFrameRequests;

/// Units a subscriber may fall behind before it loses some: about two seconds at 30 fps,
/// more than a viewer's socket and the driver ever hold up a live stream.
pub const TAP_CAPACITY: usize = 64;

/// One H.264 access unit for WebRTC viewers.
#[derive(Debug)]
pub struct TapUnit {
    /// Numbered in publishing order from 1; a gap is a unit lost (a break in the source).
    pub index: u64,
    /// Annex B NAL units, shared by every viewer without a copy.
    pub annex_b: Arc<[u8]>,
    /// The capture time: RTP timestamps are taken from it.
    pub captured_at: SystemTime,
    pub is_idr: bool,
    /// The source's own H.264 (no encoder to ask for an IDR).
    pub passed_through: bool,
}

#[derive(Debug, Default)]
struct Kept {
    next_index: u64,
    /// The units since the last IDR, while within bounds.
    gop: Vec<Arc<TapUnit>>,
    gop_bytes: usize,
    gop_complete: bool,
}

/// See the module doc.
#[derive(Debug)]
pub struct AccessUnitTap {
    sender: broadcast::Sender<Arc<TapUnit>>,
    kept: Mutex<Kept>,
    key_frames: Mutex<KeyFrameRequests>,
}

impl Default for AccessUnitTap {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(TAP_CAPACITY),
            kept: Mutex::new(Kept {
                next_index: 1,
                ..Kept::default()
            }),
            key_frames: Mutex::new(KeyFrameRequests::default()),
        }
    }
}

impl AccessUnitTap {
    /// Publishes one access unit. Never blocks; costs a copy into shared memory only while
    /// someone subscribes or the unit is a source's own (kept for the next viewer).
    pub fn publish(
        &self,
        annex_b: &[u8],
        captured_at: SystemTime,
        is_idr: bool,
        passed_through: bool,
    ) {
        if is_idr {
            self.key_frames
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .idr_made(Instant::now());
        }
        let keep = passed_through;
        if self.sender.receiver_count() == 0 && !keep {
            // Nobody watches: only the numbering moves on.
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.next_index += 1;
            Self::clear(&mut kept);
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let unit = Arc::new(TapUnit {
            index: kept.next_index,
            annex_b: Arc::from(annex_b),
            captured_at,
            is_idr,
            passed_through,
        });
        kept.next_index += 1;
        if is_idr {
            Self::clear(&mut kept);
            kept.gop_complete = keep;
        }
        if kept.gop_complete {
            let bytes = kept.gop_bytes + unit.annex_b.len();
            if kept.gop.len() < GOP_MAX_FRAMES && bytes <= GOP_MAX_BYTES {
                kept.gop.push(unit.clone());
                kept.gop_bytes = bytes;
            } else {
                Self::clear(&mut kept);
            }
        }
        // Sent under the lock, so a subscriber never sees a unit twice or misses one
        // between the kept GOP and its receiver. No receivers is not an error.
        let _ = self.sender.send(unit);
    }

    /// A break in the stream (the source went down): what comes next may not follow on,
    /// so subscribers see a gap and wait for an IDR, and the kept GOP goes.
    pub fn discontinuity(&self) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.next_index += 1;
        Self::clear(&mut kept);
    }

    /// A new subscriber: the kept units since the last IDR of a source's own H.264 (empty
    /// when none are kept) and a receiver of every unit after them.
    pub fn subscribe(&self) -> (Vec<Arc<TapUnit>>, broadcast::Receiver<Arc<TapUnit>>) {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        (kept.gop.clone(), self.sender.subscribe())
    }

    /// A viewer wants an IDR (it just came, or it lost pictures): the encoder makes one,
    /// rate-limited per stream ([`KeyFrameRequests`]).
    pub fn request_key_frame(&self) {
        self.key_frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .request();
    }

    /// A new viewer wants an IDR to start with: granted with the next frame.
    pub fn request_start_key_frame(&self) {
        self.key_frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .request_urgent();
    }

    /// Called by the H.264 thread before it encodes a frame: whether that frame should be an
    /// IDR for a viewer's request.
    pub fn take_key_frame_request(&self, now: Instant) -> bool {
        self.key_frames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(now)
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    fn clear(kept: &mut Kept) {
        kept.gop.clear();
        kept.gop_bytes = 0;
        kept.gop_complete = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_gets_the_kept_gop_of_a_source_and_then_every_unit_once() {
        let tap = AccessUnitTap::default();
        let now = SystemTime::now();
        tap.publish(b"p", now, false, true);
        tap.publish(b"i", now, true, true);
        tap.publish(b"p1", now, false, true);
        let (gop, mut receiver) = tap.subscribe();
        assert_eq!(gop.iter().map(|u| u.index).collect::<Vec<_>>(), [2, 3]);
        assert!(gop[0].is_idr);
        tap.publish(b"p2", now, false, true);
        assert_eq!(receiver.try_recv().unwrap().index, 4);
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn encoded_units_are_not_kept_and_a_break_leaves_a_gap() {
        let tap = AccessUnitTap::default();
        let now = SystemTime::now();
        let (_, mut receiver) = tap.subscribe();
        tap.publish(b"i", now, true, false);
        tap.discontinuity();
        tap.publish(b"p", now, false, false);
        assert!(tap.subscribe().0.is_empty());
        assert_eq!(receiver.try_recv().unwrap().index, 1);
        assert_eq!(receiver.try_recv().unwrap().index, 3);
    }

    #[test]
    fn a_request_is_taken_once_and_an_idr_answers_it() {
        let tap = AccessUnitTap::default();
        let now = Instant::now();
        tap.request_key_frame();
        tap.publish(b"i", SystemTime::now(), true, false);
        assert!(!tap.take_key_frame_request(now));
    }
}
