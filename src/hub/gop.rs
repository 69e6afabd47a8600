//! The current group of pictures of an H.264 source: the access units since its last IDR, kept
//! so that a JPEG viewer or snapshot that arrives mid-GOP is served at once, by decoding from
//! that IDR, instead of waiting for the camera's next key frame (often 1 to 10 s away).
//!
//! Bounded in frames and bytes: a GOP that outgrows either bound is dropped and nothing is
//! kept until the next IDR, so a camera with a very long key-frame interval costs at most the
//! bound, and a cold start then waits for that IDR.

use std::sync::Arc;

use crate::frame::{Frame, Pixels};

/// Frames kept at most: 10 s at 60 fps, the longest key-frame interval cameras commonly use at
/// their highest rate. Decoding that many 720p frames from cold takes about a second.
pub const GOP_MAX_FRAMES: usize = 600;
/// Bytes kept at most: 10 s of a 16 Mbit/s camera stream, well above what 1080p cameras send.
pub const GOP_MAX_BYTES: usize = 20 * 1024 * 1024;

/// An H.264 frame as the hub hands it to the decode stage: numbered in the order the hub saw
/// H.264 frames, from 1, so that the stage sees any frame it missed as a gap.
#[derive(Debug, Clone)]
pub struct NumberedUnit {
    pub index: u64,
    pub frame: Arc<Frame>,
}

impl NumberedUnit {
    pub fn is_idr(&self) -> bool {
        matches!(&self.frame.pixels, Pixels::H264(unit) if unit.is_idr)
    }

    fn len_bytes(&self) -> usize {
        match &self.frame.pixels {
            Pixels::H264(unit) => unit.annex_b.len(),
            Pixels::I420(bytes) | Pixels::Jpeg(bytes) => bytes.len(),
        }
    }
}

/// The frames since the last IDR, within bounds.
#[derive(Debug)]
pub struct Gop {
    units: Vec<NumberedUnit>,
    len_bytes: usize,
    /// The last IDR and every frame after it are in `units`.
    complete: bool,
    /// The index the next frame gets.
    next_index: u64,
    max_frames: usize,
    max_bytes: usize,
}

impl Default for Gop {
    fn default() -> Self {
        Self::with_bounds(GOP_MAX_FRAMES, GOP_MAX_BYTES)
    }
}

impl Gop {
    pub fn with_bounds(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            units: Vec::new(),
            len_bytes: 0,
            complete: false,
            next_index: 1,
            max_frames,
            max_bytes,
        }
    }

    /// Numbers `frame` and keeps it: an IDR starts a new GOP; a frame past the bounds ends
    /// keeping until the next IDR.
    pub fn push(&mut self, frame: Arc<Frame>) -> NumberedUnit {
        let unit = NumberedUnit {
            index: self.next_index,
            frame,
        };
        self.next_index += 1;
        if unit.is_idr() {
            self.clear();
            self.complete = true;
        }
        if self.complete {
            let len_bytes = self.len_bytes + unit.len_bytes();
            if self.units.len() < self.max_frames && len_bytes <= self.max_bytes {
                self.units.push(unit.clone());
                self.len_bytes = len_bytes;
            } else {
                self.clear();
            }
        }
        unit
    }

    /// The stream broke (the source went down, a placeholder came between): drops the GOP,
    /// and leaves a gap in the numbers so that the decode stage, too, waits for an IDR
    /// instead of decoding the new connection's frames on the old one's pictures.
    pub fn discontinuity(&mut self) {
        self.clear();
        self.next_index += 1;
    }

    /// The frames from the last IDR to the newest, or `None` when they are not all kept (no
    /// IDR yet, or the GOP outgrew the bounds).
    pub fn units(&self) -> Option<&[NumberedUnit]> {
        (self.complete && !self.units.is_empty()).then_some(&self.units[..])
    }

    /// Frames and bytes kept now.
    pub fn len(&self) -> (usize, usize) {
        (self.units.len(), self.len_bytes)
    }

    fn clear(&mut self) {
        self.units.clear();
        self.len_bytes = 0;
        self.complete = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameSize, H264Unit};
    use bytes::Bytes;
    use std::time::SystemTime;

    fn unit(seq: u64, is_idr: bool, len: usize) -> Arc<Frame> {
        Arc::new(Frame {
            seq,
            pts_90k: seq * 3000,
            captured_at: SystemTime::UNIX_EPOCH,
            size: FrameSize::new(160, 120),
            pixels: Pixels::H264(H264Unit {
                annex_b: Bytes::from(vec![0; len]),
                is_idr,
            }),
            repeats_previous: false,
        })
    }

    fn indices(gop: &Gop) -> Option<Vec<u64>> {
        gop.units().map(|u| u.iter().map(|u| u.index).collect())
    }

    #[test]
    fn keeps_the_frames_since_the_last_idr() {
        let mut gop = Gop::with_bounds(10, 1000);
        assert_eq!(gop.push(unit(1, false, 10)).index, 1);
        assert_eq!(indices(&gop), None, "no IDR yet");
        for seq in 2..=4 {
            gop.push(unit(seq, seq == 2, 10));
        }
        assert_eq!(indices(&gop), Some(vec![2, 3, 4]));
        assert_eq!(gop.len(), (3, 30));
        gop.push(unit(5, true, 10));
        assert_eq!(indices(&gop), Some(vec![5]));
    }

    #[test]
    fn a_gop_past_its_bounds_is_dropped_until_the_next_idr() {
        let mut gop = Gop::with_bounds(3, 1000);
        for seq in 1..=4 {
            gop.push(unit(seq, seq == 1, 10));
        }
        assert_eq!(indices(&gop), None, "four frames: past the bound of three");
        gop.push(unit(5, false, 10));
        assert_eq!(indices(&gop), None);
        assert_eq!(gop.len(), (0, 0));
        gop.push(unit(6, true, 10));
        assert_eq!(indices(&gop), Some(vec![6]));

        let mut gop = Gop::with_bounds(10, 25);
        gop.push(unit(1, true, 10));
        gop.push(unit(2, false, 10));
        assert_eq!(indices(&gop), Some(vec![1, 2]));
        gop.push(unit(3, false, 10));
        assert_eq!(indices(&gop), None, "30 bytes: past the bound of 25");
        gop.push(unit(4, true, 30));
        assert_eq!(indices(&gop), None, "an IDR alone past the bound");
    }

    #[test]
    fn a_discontinuity_drops_the_gop_and_leaves_a_gap_in_the_numbers() {
        let mut gop = Gop::with_bounds(10, 1000);
        gop.push(unit(1, true, 10));
        gop.push(unit(2, false, 10));
        gop.discontinuity();
        assert_eq!(gop.push(unit(3, false, 10)).index, 4);
        assert_eq!(indices(&gop), None, "P-frames of a new connection");
        gop.push(unit(4, true, 10));
        assert_eq!(indices(&gop), Some(vec![5]));
    }
}
