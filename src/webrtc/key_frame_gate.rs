//! Which access units a WebRTC viewer is sent: from an IDR on, every unit in order; after a
//! loss (the viewer fell behind the tap and lost units, or its queue to the driver was full)
//! nothing until the next IDR, since an inter frame decodes only on top of every frame
//! before it. So a viewer that cannot keep up skips to the next key frame instead of
//! building delay (latest-frame-wins for H.264).
//!
//! Pure: unit numbers in, decisions out.

/// What to do with one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Dropped: the viewer waits for an IDR. `first` is true for the first unit dropped
    /// since the viewer lost its place, when a key frame should be asked for.
    Skip {
        first: bool,
    },
}

#[derive(Debug, Default)]
pub struct KeyFrameGate {
    /// The index of the last unit sent; `None` before the first.
    last_sent: Option<u64>,
    /// Waiting for an IDR (at the start, or after a loss).
    lost: bool,
    /// A key frame was asked for since the loss.
    asked: bool,
}

impl KeyFrameGate {
    /// Decides for the unit numbered `index`.
    pub fn offer(&mut self, index: u64, is_idr: bool) -> Decision {
        let follows = self.last_sent.is_some_and(|last| index == last + 1);
        if is_idr || (follows && !self.lost) {
            self.last_sent = Some(index);
            self.lost = false;
            self.asked = false;
            return Decision::Send;
        }
        self.lost = true;
        let first = !self.asked;
        self.asked = true;
        Decision::Skip { first }
    }

    /// The viewer lost units it never saw (a lagging receiver, a full queue): nothing until
    /// the next IDR.
    pub fn lose(&mut self) {
        self.lost = true;
    }

    /// Whether the viewer waits for an IDR.
    pub fn waits_for_idr(&self) -> bool {
        self.lost || self.last_sent.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_starts_at_an_idr_and_then_gets_every_unit() {
        let mut gate = KeyFrameGate::default();
        assert!(gate.waits_for_idr());
        assert_eq!(gate.offer(5, false), Decision::Skip { first: true });
        assert_eq!(gate.offer(6, false), Decision::Skip { first: false });
        assert_eq!(gate.offer(7, true), Decision::Send);
        assert_eq!(gate.offer(8, false), Decision::Send);
        assert!(!gate.waits_for_idr());
    }

    #[test]
    fn a_gap_in_the_numbers_skips_to_the_next_idr() {
        let mut gate = KeyFrameGate::default();
        assert_eq!(gate.offer(1, true), Decision::Send);
        assert_eq!(gate.offer(3, false), Decision::Skip { first: true });
        // The missing unit coming late does not resume: the decoder's chain is broken.
        assert_eq!(gate.offer(4, false), Decision::Skip { first: false });
        assert_eq!(gate.offer(5, true), Decision::Send);
        assert_eq!(gate.offer(6, false), Decision::Send);
    }

    #[test]
    fn a_loss_reported_from_outside_waits_for_an_idr_even_if_numbers_follow() {
        let mut gate = KeyFrameGate::default();
        assert_eq!(gate.offer(1, true), Decision::Send);
        gate.lose();
        assert!(gate.waits_for_idr());
        assert_eq!(gate.offer(2, false), Decision::Skip { first: true });
        assert_eq!(gate.offer(3, true), Decision::Send);
    }
}
