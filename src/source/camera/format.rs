//! Which of a camera's formats to capture in, and how to describe them. Pure: no device, no
//! I/O; the offers come from whatever enumerated the camera.
//!
//! The rules, best first:
//!
//! 1. MJPEG at exactly the requested size and at least the requested rate: the camera's own
//!    JPEGs go straight to MJPEG viewers, nothing is re-encoded for them.
//! 2. An uncompressed format at exactly the requested size and at least the requested rate,
//!    I420 before NV12 before YUYV (in order of conversion work).
//! 3. Exactly the requested size but slower than asked: the fastest, then MJPEG before the
//!    uncompressed formats as above.
//! 4. Another size: the closest by area (then by width and height), then as 1–3 for the rate
//!    and the format.
//!
//! Among offers at least as fast as asked, the slowest wins: the source then drops the fewest
//! frames to keep the configured rate. Formats framecast cannot convert are never chosen, nor
//! are sizes that I420 cannot hold (odd or zero sides).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::frame::FrameSize;

/// A camera pixel format, as far as framecast tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PixelKind {
    /// Motion-JPEG (V4L2 `MJPG`): one JPEG per frame.
    Mjpeg,
    /// Packed 4:2:2 (V4L2 `YUYV`).
    Yuyv,
    /// Semi-planar 4:2:0 (V4L2 `NV12`).
    Nv12,
    /// Planar 4:2:0 (V4L2 `YU12`): already what frames travel in.
    I420,
    /// Anything else (RGB, greyscale, H.264, ...): listed, never captured.
    Other,
}

impl PixelKind {
    /// The V4L2 name, for logs and `--list-sources`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mjpeg => "MJPEG",
            Self::Yuyv => "YUYV",
            Self::Nv12 => "NV12",
            Self::I420 => "I420",
            Self::Other => "other",
        }
    }

    /// Lower is preferred when all else is equal: passthrough first, then the uncompressed
    /// formats by conversion work; `None` for what cannot be captured.
    fn preference(self) -> Option<u32> {
        match self {
            Self::Mjpeg => Some(0),
            Self::I420 => Some(1),
            Self::Nv12 => Some(2),
            Self::Yuyv => Some(3),
            Self::Other => None,
        }
    }
}

impl std::fmt::Display for PixelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One format, size and rate a camera says it can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraFormatOffer {
    pub kind: PixelKind,
    pub width: u32,
    pub height: u32,
    /// Frames per second; 0 when the camera did not say.
    pub fps: u32,
}

impl CameraFormatOffer {
    pub const fn new(kind: PixelKind, width: u32, height: u32, fps: u32) -> Self {
        Self {
            kind,
            width,
            height,
            fps,
        }
    }
}

/// The format to capture in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub kind: PixelKind,
    pub size: FrameSize,
    /// The rate to ask the camera for.
    pub fps: u32,
}

impl Choice {
    /// The camera's JPEGs go to viewers as they are.
    pub fn passthrough(&self) -> bool {
        self.kind == PixelKind::Mjpeg
    }
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}@{}", self.kind, self.size, self.fps)
    }
}

/// The best of `offered` for frames of `want` at `fps` (see the module doc for the rules);
/// `None` when nothing offered can be captured.
pub fn choose_format(offered: &[CameraFormatOffer], want: FrameSize, fps: u32) -> Option<Choice> {
    offered
        .iter()
        .filter_map(|offer| Some((rank(offer, want, fps)?, offer)))
        // `min_by_key` keeps the first of equals: the camera's own order breaks ties.
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, offer)| Choice {
            kind: offer.kind,
            size: FrameSize::new(offer.width, offer.height),
            fps: offer.fps,
        })
}

/// Area difference, width-plus-height difference, too slow, then the rate gap and the format
/// preference in the order that matters (see [`rank`]).
type Rank = (u64, u64, bool, u32, u32);

/// Sort key for an offer; lower is better. `None` for offers that cannot be captured.
fn rank(offer: &CameraFormatOffer, want: FrameSize, fps: u32) -> Option<Rank> {
    let preference = offer.kind.preference()?;
    let usable_size = offer.width > 0
        && offer.height > 0
        && offer.width.is_multiple_of(2)
        && offer.height.is_multiple_of(2);
    if !usable_size {
        return None;
    }
    let area = |w: u32, h: u32| u64::from(w) * u64::from(h);
    let area_diff = area(offer.width, offer.height).abs_diff(area(want.width, want.height));
    let side_diff =
        u64::from(offer.width.abs_diff(want.width)) + u64::from(offer.height.abs_diff(want.height));
    let too_slow = offer.fps < fps;
    // Fast enough: the format matters most, then the least surplus rate. Too slow: the rate
    // matters most (the fastest), then the format.
    let (first, second) = if too_slow {
        (fps - offer.fps, preference)
    } else {
        (preference, offer.fps - fps)
    };
    Some((area_diff, side_diff, too_slow, first, second))
}

/// One line per format: its sizes from the smallest, each with its rates from the fastest,
/// e.g. `MJPEG 640x480@30/15 1280x720@30`. Formats in the order first offered.
pub fn summarize(offers: &[CameraFormatOffer]) -> Vec<String> {
    let mut kinds: Vec<PixelKind> = Vec::new();
    // Keyed by kind, then area, so that one kind's sizes are a contiguous, ordered range.
    let mut sizes: BTreeMap<(PixelKind, u64, u32, u32), Vec<u32>> = BTreeMap::new();
    for offer in offers {
        if !kinds.contains(&offer.kind) {
            kinds.push(offer.kind);
        }
        let area = u64::from(offer.width) * u64::from(offer.height);
        let rates = sizes
            .entry((offer.kind, area, offer.width, offer.height))
            .or_default();
        if !rates.contains(&offer.fps) {
            rates.push(offer.fps);
        }
    }
    kinds
        .iter()
        .map(|&kind| {
            let mut line = kind.label().to_owned();
            let of_kind = (kind, 0, 0, 0)..=(kind, u64::MAX, u32::MAX, u32::MAX);
            for ((_, _, width, height), rates) in sizes.range_mut(of_kind) {
                rates.sort_unstable_by(|a, b| b.cmp(a));
                let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
                let _ = write!(line, " {width}x{height}@{}", rates.join("/"));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::PixelKind::{I420, Mjpeg, Nv12, Other, Yuyv};
    use super::*;

    const HD: FrameSize = FrameSize::new(1280, 720);

    fn offer(kind: PixelKind, width: u32, height: u32, fps: u32) -> CameraFormatOffer {
        CameraFormatOffer::new(kind, width, height, fps)
    }

    /// A typical USB webcam: MJPEG at every size and 30 fps, YUYV fast only when small.
    fn webcam() -> Vec<CameraFormatOffer> {
        vec![
            offer(Yuyv, 640, 480, 30),
            offer(Yuyv, 1280, 720, 10),
            offer(Yuyv, 1920, 1080, 5),
            offer(Mjpeg, 640, 480, 30),
            offer(Mjpeg, 1280, 720, 60),
            offer(Mjpeg, 1280, 720, 30),
            offer(Mjpeg, 1920, 1080, 30),
            offer(Other, 1280, 720, 30),
        ]
    }

    #[test]
    fn choices() {
        struct Case {
            name: &'static str,
            offered: Vec<CameraFormatOffer>,
            want: FrameSize,
            fps: u32,
            expect: Option<(PixelKind, u32, u32, u32)>,
        }
        let cases = [
            Case {
                name: "MJPEG at the size, the slowest rate that is fast enough",
                offered: webcam(),
                want: HD,
                fps: 30,
                expect: Some((Mjpeg, 1280, 720, 30)),
            },
            Case {
                name: "MJPEG faster than asked when that is all there is",
                offered: webcam(),
                want: HD,
                fps: 50,
                expect: Some((Mjpeg, 1280, 720, 60)),
            },
            Case {
                name: "uncompressed when MJPEG is too slow at the size",
                offered: vec![offer(Mjpeg, 1280, 720, 15), offer(Yuyv, 1280, 720, 30)],
                want: HD,
                fps: 30,
                expect: Some((Yuyv, 1280, 720, 30)),
            },
            Case {
                name: "I420 before NV12 before YUYV",
                offered: vec![
                    offer(Yuyv, 1280, 720, 30),
                    offer(Nv12, 1280, 720, 30),
                    offer(I420, 1280, 720, 30),
                ],
                want: HD,
                fps: 30,
                expect: Some((I420, 1280, 720, 30)),
            },
            Case {
                name: "NV12 before YUYV",
                offered: vec![offer(Yuyv, 1280, 720, 30), offer(Nv12, 1280, 720, 30)],
                want: HD,
                fps: 30,
                expect: Some((Nv12, 1280, 720, 30)),
            },
            Case {
                name: "the format before a closer rate when both are fast enough",
                offered: vec![offer(Yuyv, 1280, 720, 30), offer(Nv12, 1280, 720, 60)],
                want: HD,
                fps: 30,
                expect: Some((Nv12, 1280, 720, 60)),
            },
            Case {
                name: "all too slow at the size: the fastest",
                offered: vec![
                    offer(Yuyv, 1280, 720, 10),
                    offer(Mjpeg, 1280, 720, 15),
                    offer(Nv12, 1280, 720, 5),
                ],
                want: HD,
                fps: 30,
                expect: Some((Mjpeg, 1280, 720, 15)),
            },
            Case {
                name: "equally too slow: MJPEG first",
                offered: vec![offer(Yuyv, 1280, 720, 15), offer(Mjpeg, 1280, 720, 15)],
                want: HD,
                fps: 30,
                expect: Some((Mjpeg, 1280, 720, 15)),
            },
            Case {
                name: "no exact size: the closest area",
                offered: webcam(),
                want: FrameSize::new(800, 600),
                fps: 30,
                expect: Some((Mjpeg, 640, 480, 30)),
            },
            Case {
                name: "no exact size: a larger size can be closer",
                offered: vec![offer(Mjpeg, 320, 240, 30), offer(Yuyv, 1280, 960, 30)],
                want: FrameSize::new(1024, 768),
                fps: 30,
                expect: Some((Yuyv, 1280, 960, 30)),
            },
            Case {
                name: "closest size, then rate, then MJPEG",
                offered: vec![
                    offer(Yuyv, 640, 480, 30),
                    offer(Mjpeg, 640, 480, 15),
                    offer(Mjpeg, 640, 480, 30),
                ],
                want: FrameSize::new(800, 600),
                fps: 30,
                expect: Some((Mjpeg, 640, 480, 30)),
            },
            Case {
                name: "at the closest size a fast enough rate wins over the format",
                offered: vec![offer(Mjpeg, 640, 480, 15), offer(Yuyv, 640, 480, 30)],
                want: FrameSize::new(800, 600),
                fps: 30,
                expect: Some((Yuyv, 640, 480, 30)),
            },
            Case {
                name: "never another format, however well it fits",
                offered: vec![offer(Other, 1280, 720, 30), offer(Yuyv, 320, 240, 5)],
                want: HD,
                fps: 30,
                expect: Some((Yuyv, 320, 240, 5)),
            },
            Case {
                name: "only other formats: nothing",
                offered: vec![offer(Other, 1280, 720, 30)],
                want: HD,
                fps: 30,
                expect: None,
            },
            Case {
                name: "nothing offered: nothing",
                offered: vec![],
                want: HD,
                fps: 30,
                expect: None,
            },
            Case {
                name: "sizes I420 cannot hold are skipped",
                offered: vec![
                    offer(Mjpeg, 1281, 720, 30),
                    offer(Mjpeg, 0, 0, 30),
                    offer(Mjpeg, 640, 360, 30),
                ],
                want: HD,
                fps: 30,
                expect: Some((Mjpeg, 640, 360, 30)),
            },
            Case {
                name: "an unknown rate counts as too slow",
                offered: vec![offer(Mjpeg, 1280, 720, 0), offer(Yuyv, 1280, 720, 30)],
                want: HD,
                fps: 30,
                expect: Some((Yuyv, 1280, 720, 30)),
            },
            Case {
                name: "equal offers: the first",
                offered: vec![offer(Mjpeg, 1280, 720, 30), offer(Mjpeg, 1280, 720, 30)],
                want: HD,
                fps: 30,
                expect: Some((Mjpeg, 1280, 720, 30)),
            },
        ];
        for case in cases {
            let got = choose_format(&case.offered, case.want, case.fps)
                .map(|c| (c.kind, c.size.width, c.size.height, c.fps));
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }

    #[test]
    fn the_choice_is_the_same_whatever_the_order_of_distinct_offers() {
        let mut offers = webcam();
        let first = choose_format(&offers, HD, 30);
        offers.reverse();
        assert_eq!(choose_format(&offers, HD, 30), first);
        offers.rotate_left(3);
        assert_eq!(choose_format(&offers, HD, 30), first);
    }

    #[test]
    fn passthrough_is_mjpeg_only() {
        let choice = choose_format(&webcam(), HD, 30).unwrap();
        assert!(choice.passthrough());
        assert_eq!(choice.to_string(), "MJPEG 1280x720@30");
        let choice = choose_format(&[offer(Yuyv, 640, 480, 30)], HD, 30).unwrap();
        assert!(!choice.passthrough());
    }

    #[test]
    fn summary_lines() {
        assert_eq!(
            summarize(&webcam()),
            [
                "YUYV 640x480@30 1280x720@10 1920x1080@5",
                "MJPEG 640x480@30 1280x720@60/30 1920x1080@30",
                "other 1280x720@30",
            ]
        );
        assert!(summarize(&[]).is_empty());
    }
}
