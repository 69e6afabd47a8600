//! The built-in test-pattern source: a moving picture generated at a steady frame rate, with no
//! device needed.
//!
//! The picture: 75 % colour bars over the upper two thirds, reverse-order castellations below
//! them (both scrolling left), a luma ramp at the bottom (scrolling right), a box bouncing
//! around, and a dark panel in the middle with the word FRAMECAST, a frame counter, the capture
//! time (UTC, to the millisecond) and the size and rate. The machine-readable timestamp strip
//! ([`crate::picture::timestamp_strip`]) is drawn last, over the top rows.
//!
//! Cost: the background rows are built once in [`TestPattern::new`], each frame only copies
//! rows at a scroll offset and fills rectangles and glyph runs with `slice::fill`, so no work is
//! done per pixel. A 1080p frame takes about half a millisecond in a release build, under 2 % of
//! a core at 30 fps (run the ignored test `render_time_1080p` with `--release --ignored
//! --nocapture` to measure it).
//!
//! This module owns the picture and the pacing; it does no I/O besides sleeping.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::frame::{CLOCK_90K, Frame, FrameSize, Pixels, unix_micros};
use crate::picture::font::{self, Plane};
use crate::picture::{clock_text, timestamp_strip};

/// A colour as 8-bit video-range Y, Cb (U), Cr (V).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Yuv {
    y: u8,
    u: u8,
    v: u8,
}

const fn yuv(y: u8, u: u8, v: u8) -> Yuv {
    Yuv { y, u, v }
}

/// 75 % colour bars (100/0/75/0 bars of ITU-R BT.801), left to right, as 8-bit BT.601
/// video-range values.
const BARS: [Yuv; 7] = [
    yuv(180, 128, 128), // white
    yuv(162, 44, 142),  // yellow
    yuv(131, 156, 44),  // cyan
    yuv(112, 72, 58),   // green
    yuv(84, 184, 198),  // magenta
    yuv(65, 100, 212),  // red
    yuv(35, 212, 114),  // blue
];

const BLACK: Yuv = yuv(16, 128, 128);
const WHITE: Yuv = yuv(235, 128, 128);

/// The reverse-order castellations under the bars, as in SMPTE EG 1 colour bars: blue, black,
/// magenta, black, cyan, black, white.
const CASTELLATIONS: [Yuv; 7] = [BARS[6], BLACK, BARS[4], BLACK, BARS[2], BLACK, BARS[0]];

/// The panel behind the text: dark grey, so white text reads well and the panel stands out
/// from the black castellations.
const PANEL: Yuv = yuv(40, 128, 128);

/// Luma of the text; chroma under it is the panel's neutral grey.
const TEXT_LUMA: u8 = 235;

/// Horizontal scroll per frame as a fraction of the width (at least two pixels, kept even so
/// chroma moves with luma): 1/240 of the width is 8 px per frame at 1080p, a clear but calm
/// motion at 30 fps.
const SCROLL_DIVISOR: u32 = 240;

/// The bouncing box is a sixth of the picture height on a side.
const BOX_DIVISOR: u32 = 6;

/// Font scale of the small text line is the height over this: 7 at 1080p, 1 at 240 rows.
const SMALL_TEXT_DIVISOR: u32 = 144;

/// The widest large line, used to size the panel: the time line is always this long, and the
/// frame counter reaches it only after 10^9 frames (a year at 30 fps).
const WIDEST_LARGE_LINE: &str = "00:00:00.000 UTC";

/// Which way a band scrolls.
#[derive(Debug, Clone, Copy)]
enum Scroll {
    Left,
    Right,
}

/// A horizontal band of the background: its rows and one row of its content, twice over, so
/// that the row at any scroll offset is a single slice of it.
struct Band {
    /// Luma rows of the picture the band covers (even bounds, so chroma rows are whole).
    rows: Range<usize>,
    scroll: Scroll,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Band {
    /// Builds a band whose colour at column `x` (of `width`) is `colour_at(x)`.
    fn new(
        rows: Range<usize>,
        width: usize,
        scroll: Scroll,
        colour_at: impl Fn(usize) -> Yuv,
    ) -> Self {
        let y = (0..2 * width).map(|x| colour_at(x % width).y).collect();
        let chroma = |pick: fn(Yuv) -> u8| -> Vec<u8> {
            (0..width)
                .map(|cx| pick(colour_at((2 * cx) % width)))
                .collect()
        };
        Self {
            rows,
            scroll,
            y,
            u: chroma(|c| c.u),
            v: chroma(|c| c.v),
        }
    }
}

/// Where things go, fixed for a picture size.
struct Layout {
    /// Horizontal scroll per frame in pixels (even).
    scroll_px: usize,
    /// Side of the bouncing box in pixels (even).
    box_px: usize,
    /// Font scale of the FRAMECAST, counter and time lines.
    large_scale: usize,
    /// Font scale of the size line.
    small_scale: usize,
    /// The panel rectangle: x, y, width, height (all even).
    panel: (usize, usize, usize, usize),
    /// Rows between two text lines.
    gap_px: usize,
    /// Margin between the panel edge and the text.
    padding_px: usize,
}

impl Layout {
    fn new(size: FrameSize, size_line: &str) -> Self {
        let (width, height) = (size.width as usize, size.height as usize);
        let even = |n: usize| n & !1;
        let small_scale = (height / SMALL_TEXT_DIVISOR as usize).max(1);
        // Large text is twice the small, but the widest line must fit in 90 % of the width.
        let widest = font::text_width(WIDEST_LARGE_LINE, 1);
        let large_scale = (2 * small_scale).min(width * 9 / 10 / widest).max(1);
        let gap_px = 2 * large_scale;
        let padding_px = 3 * large_scale;

        let text_w = font::text_width(WIDEST_LARGE_LINE, large_scale)
            .max(font::text_width(size_line, small_scale));
        let text_h = 3 * font::text_height(large_scale) + font::text_height(small_scale);
        let panel_w = even(text_w + 2 * padding_px + 1).min(even(width));
        let panel_h = even(text_h + 3 * gap_px + 2 * padding_px + 1).min(even(height));
        let strip_rows = timestamp_strip::strip_rows(size.height) as usize;
        let panel_y = even(height.saturating_sub(panel_h) / 2).max(strip_rows);
        Self {
            scroll_px: even(width / SCROLL_DIVISOR as usize).max(2),
            box_px: even(height / BOX_DIVISOR as usize).max(2),
            large_scale,
            small_scale,
            panel: (
                even(width.saturating_sub(panel_w) / 2),
                panel_y,
                panel_w,
                panel_h,
            ),
            gap_px,
            padding_px,
        }
    }
}

/// Generates test-pattern frames of one size at one rate.
pub struct TestPattern {
    size: FrameSize,
    fps: u32,
    bands: Vec<Band>,
    layout: Layout,
    /// "1920X1080 @ 30 FPS", built once.
    size_line: String,
    /// Reused for the per-frame text lines, so rendering does not allocate.
    text: String,
    /// When the first frame was made; frame slot `n` is due `n / fps` seconds after it.
    started_at: Option<Instant>,
    /// The schedule slot of the next frame.
    next_slot: u64,
    /// Sequence number of the last frame made (0 before the first).
    seq: u64,
}

impl TestPattern {
    /// Prepares a pattern of `size` at `fps` frames per second (0 is taken as 1). Does no I/O.
    pub fn new(size: FrameSize, fps: u32) -> Self {
        let fps = fps.max(1);
        let (width, height) = (size.width as usize, size.height as usize);
        let even = |n: usize| n & !1;
        let bars_end = even(height * 2 / 3);
        let castellations_end = even(height * 3 / 4).max(bars_end);
        let pick = |palette: &'static [Yuv; 7]| move |x: usize| palette[x * 7 / width];
        let ramp = |x: usize| {
            let span = width.saturating_sub(1).max(1);
            yuv((16 + x * 219 / span) as u8, 128, 128)
        };
        let bands = vec![
            Band::new(0..bars_end, width, Scroll::Left, pick(&BARS)),
            Band::new(
                bars_end..castellations_end,
                width,
                Scroll::Left,
                pick(&CASTELLATIONS),
            ),
            Band::new(castellations_end..height, width, Scroll::Right, ramp),
        ];
        let size_line = format!("{}X{} @ {} FPS", size.width, size.height, fps);
        Self {
            size,
            fps,
            bands,
            layout: Layout::new(size, &size_line),
            size_line,
            text: String::new(),
            started_at: None,
            next_slot: 0,
            seq: 0,
        }
    }

    /// Renders frame `seq` captured at `captured_at` into `out`, an I420 buffer of
    /// `size.i420_len()` bytes. Motion depends only on `seq`, so the same arguments always give
    /// the same picture. A shorter buffer is left untouched.
    pub fn render(&mut self, seq: u64, captured_at: SystemTime, out: &mut [u8]) {
        let size = self.size;
        if out.len() < size.i420_len() {
            return;
        }
        let (width, height) = (size.width as usize, size.height as usize);
        {
            let (luma, chroma) = out.split_at_mut(size.luma_len());
            let (u, v) = chroma.split_at_mut(size.chroma_len());
            let mut planes = [
                Plane {
                    samples: luma,
                    width,
                    height,
                    stride: width,
                },
                Plane {
                    samples: u,
                    width: width / 2,
                    height: height / 2,
                    stride: width / 2,
                },
                Plane {
                    samples: v,
                    width: width / 2,
                    height: height / 2,
                    stride: width / 2,
                },
            ];
            self.draw_background(seq, &mut planes);
            self.draw_box(seq, &mut planes);
            self.draw_panel(seq, captured_at, &mut planes);
        }
        timestamp_strip::draw(out, size, unix_micros(captured_at));
    }

    /// Waits until the next frame is due, then makes it. The schedule is anchored at the first
    /// call, so it does not drift; a caller that falls more than a frame behind skips the missed
    /// slots instead of getting a burst of frames.
    pub fn next_frame(&mut self) -> Frame {
        if let Some(wait) = self.claim_slot(Instant::now()) {
            std::thread::sleep(wait);
        }
        self.render_next()
    }

    /// Takes the next slot of the schedule at `now` and returns how long to wait for it. A
    /// caller more than a frame late skips the slots it missed instead of bursting through them.
    fn claim_slot(&mut self, now: Instant) -> Option<Duration> {
        let started_at = *self.started_at.get_or_insert(now);
        let due = started_at + self.slot_offset(self.next_slot);
        let wait = if now < due {
            Some(due - now)
        } else {
            if now - due > self.slot_offset(1) {
                self.next_slot = self.slot_at(now - started_at);
            }
            None
        };
        self.next_slot += 1;
        wait
    }

    /// The next frame, captured now.
    fn render_next(&mut self) -> Frame {
        self.seq += 1;
        let captured_at = SystemTime::now();
        let mut i420 = vec![0u8; self.size.i420_len()];
        self.render(self.seq, captured_at, &mut i420);
        Frame {
            seq: self.seq,
            pts_90k: ((u128::from(self.seq) - 1) * u128::from(CLOCK_90K) / u128::from(self.fps))
                as u64,
            captured_at,
            size: self.size,
            pixels: Pixels::I420(Bytes::from(i420)),
            repeats_previous: false,
        }
    }

    /// Time from the start of the schedule to slot `slot`.
    fn slot_offset(&self, slot: u64) -> Duration {
        let nanos = u128::from(slot) * 1_000_000_000 / u128::from(self.fps);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The last slot due at `elapsed` after the start of the schedule.
    fn slot_at(&self, elapsed: Duration) -> u64 {
        let slot = elapsed.as_nanos() * u128::from(self.fps) / 1_000_000_000;
        u64::try_from(slot).unwrap_or(u64::MAX)
    }

    /// Copies every background row from its band at this frame's scroll offset.
    fn draw_background(&self, seq: u64, [luma, u, v]: &mut [Plane<'_>; 3]) {
        let width = luma.width;
        if width == 0 {
            return;
        }
        let travel = (seq % width as u64) as usize * self.layout.scroll_px % width;
        for band in &self.bands {
            let offset = match band.scroll {
                Scroll::Left => travel,
                Scroll::Right => (width - travel) % width,
            } & !1;
            let source = &band.y[offset..offset + width];
            for row in band.rows.clone() {
                luma.samples[row * width..(row + 1) * width].copy_from_slice(source);
            }
            let chroma_width = u.width;
            let chroma_offset = offset / 2;
            for (plane, line) in [(&mut *u, &band.u), (&mut *v, &band.v)] {
                let source = &line[chroma_offset..chroma_offset + chroma_width];
                for row in band.rows.start / 2..band.rows.end / 2 {
                    let start = row * chroma_width;
                    plane.samples[start..start + chroma_width].copy_from_slice(source);
                }
            }
        }
    }

    /// The box bounces off the picture edges: a black square with a white centre.
    fn draw_box(&self, seq: u64, planes: &mut [Plane<'_>; 3]) {
        let (width, height) = (planes[0].width, planes[0].height);
        let side = self.layout.box_px;
        let top = timestamp_strip::strip_rows(self.size.height) as usize;
        let step = self.layout.scroll_px;
        let x = bounce(seq, step, width.saturating_sub(side));
        let y = top + bounce(seq, step / 2, height.saturating_sub(side + top));
        let border = (side / 8) & !1;
        fill_rect(planes, (x, y, side, side), BLACK);
        fill_rect(
            planes,
            (
                x + border,
                y + border,
                side.saturating_sub(2 * border),
                side.saturating_sub(2 * border),
            ),
            WHITE,
        );
    }

    /// The dark panel with FRAMECAST, the frame counter, the clock and the size line, each
    /// centred.
    fn draw_panel(&mut self, seq: u64, captured_at: SystemTime, planes: &mut [Plane<'_>; 3]) {
        let layout = &self.layout;
        let (panel_x, panel_y, panel_w, _) = layout.panel;
        fill_rect(planes, layout.panel, PANEL);

        let luma = &mut planes[0];
        let mut line_y = panel_y + layout.padding_px;
        let mut line = |luma: &mut Plane<'_>, text: &str, scale: usize| {
            let text_w = font::text_width(text, scale);
            let x = panel_x + panel_w.saturating_sub(text_w) / 2;
            luma.draw_text(x, line_y, scale, text, TEXT_LUMA);
            line_y += font::text_height(scale) + layout.gap_px;
        };
        line(luma, "FRAMECAST", layout.large_scale);
        self.text.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.text, "FRAME {seq:06}");
        line(luma, &self.text, layout.large_scale);
        self.text.clear();
        clock_text(unix_micros(captured_at), &mut self.text);
        line(luma, &self.text, layout.large_scale);
        line(luma, &self.size_line, layout.small_scale);
    }
}

/// Position on a back-and-forth path over `0..=range` after `seq` steps of `step` pixels, even.
fn bounce(seq: u64, step: usize, range: usize) -> usize {
    if range == 0 {
        return 0;
    }
    let period = 2 * range as u64;
    let travel = (seq % period) * step as u64 % period;
    let position = if travel <= range as u64 {
        travel
    } else {
        period - travel
    };
    position as usize & !1
}

/// Fills a rectangle of all three planes with one colour. `x`, `y`, width and height should be
/// even so that chroma covers exactly the same area; everything is clipped.
fn fill_rect(planes: &mut [Plane<'_>; 3], (x, y, w, h): (usize, usize, usize, usize), c: Yuv) {
    let [luma, u, v] = planes;
    luma.fill_rect(x, y, w, h, c.y);
    u.fill_rect(x / 2, y / 2, w / 2, h / 2, c.u);
    v.fill_rect(x / 2, y / 2, w / 2, h / 2, c.v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::from_unix_micros;

    const MICROS: u64 = 1_790_000_000_123_456;

    fn rendered(pattern: &mut TestPattern, seq: u64, micros: u64) -> Vec<u8> {
        let mut out = vec![0u8; pattern.size.i420_len()];
        pattern.render(seq, from_unix_micros(micros), &mut out);
        out
    }

    #[test]
    fn strip_decodes_and_frames_move() {
        let size = FrameSize::new(1280, 720);
        let mut pattern = TestPattern::new(size, 30);
        let first = rendered(&mut pattern, 1, MICROS);
        let second = rendered(&mut pattern, 2, MICROS + 33_333);
        assert_eq!(first.len(), size.i420_len());
        let decode = |i420: &[u8]| timestamp_strip::decode_luma(i420, 1280, 720, 1280);
        assert_eq!(decode(&first), Some(MICROS));
        assert_eq!(decode(&second), Some(MICROS + 33_333));
        // The picture below the strip moves, not only the strip.
        let below_strip = timestamp_strip::strip_rows(720) as usize * 1280;
        let changed = first[below_strip..]
            .iter()
            .zip(&second[below_strip..])
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed > 10_000, "only {changed} samples changed");
        assert_eq!(rendered(&mut pattern, 1, MICROS), first, "deterministic");
    }

    #[test]
    fn background_is_75_percent_bars() {
        let size = FrameSize::new(640, 480);
        let mut pattern = TestPattern::new(size, 30);
        // Frame 0 has no scroll; row 100 is in the bars, below the box and above the panel.
        let i420 = rendered(&mut pattern, 0, MICROS);
        let row = 100 * 640;
        for (bar, colour) in BARS.iter().enumerate() {
            let x = bar * 640 / 7 + 40;
            assert_eq!(i420[row + x], colour.y, "bar {bar}");
            let chroma = 50 * 320 + x / 2;
            assert_eq!(i420[size.luma_len() + chroma], colour.u, "bar {bar}");
            assert_eq!(
                i420[size.luma_len() + size.chroma_len() + chroma],
                colour.v,
                "bar {bar}"
            );
        }
    }

    #[test]
    fn every_size_renders_and_decodes() {
        for (width, height) in [
            (320, 240),
            (640, 360),
            (640, 480),
            (800, 600),
            (1280, 720),
            (1920, 1080),
            (2560, 1440),
            (3840, 2160),
        ] {
            let size = FrameSize::new(width, height);
            let mut pattern = TestPattern::new(size, 60);
            for seq in [1, 2, 1_000, 123_456_789_012] {
                let i420 = rendered(&mut pattern, seq, MICROS + seq);
                let decoded = timestamp_strip::decode_luma(
                    &i420,
                    width as usize,
                    height as usize,
                    width as usize,
                );
                assert_eq!(decoded, Some(MICROS + seq), "{size} frame {seq}");
            }
        }
    }

    #[test]
    fn odd_and_tiny_sizes_do_not_panic() {
        for (width, height) in [
            (0, 0),
            (2, 2),
            (16, 16),
            (7, 5),
            (321, 241),
            (4000, 2),
            (2, 4000),
        ] {
            let size = FrameSize::new(width, height);
            let mut pattern = TestPattern::new(size, 0);
            for seq in [0, 1, 2, 99, u64::MAX] {
                rendered(&mut pattern, seq, MICROS);
            }
            let mut short = vec![3u8; size.i420_len().saturating_sub(1)];
            pattern.render(1, from_unix_micros(MICROS), &mut short);
            assert!(short.iter().all(|&s| s == 3));
        }
    }

    #[test]
    fn bounce_stays_in_range() {
        for seq in 0..500 {
            let x = bounce(seq, 8, 100);
            assert!(x <= 100 && x & 1 == 0);
        }
        assert_eq!(bounce(3, 8, 100), 24);
        assert_eq!(bounce(15, 8, 100), 80, "on the way back");
        assert_eq!(bounce(7, 8, 0), 0);
    }

    #[test]
    fn frames_are_numbered_and_paced() {
        let fps = 50;
        let mut pattern = TestPattern::new(FrameSize::new(320, 240), fps);
        let start = Instant::now();
        // Frame 1 is due at once; frame 2 one interval later, frame 3 two.
        assert_eq!(pattern.claim_slot(start), None);
        assert_eq!(pattern.claim_slot(start), Some(Duration::from_millis(20)));
        let later = start + Duration::from_millis(25);
        assert_eq!(pattern.claim_slot(later), Some(Duration::from_millis(15)));
        let frames: Vec<Frame> = (0..3).map(|_| pattern.render_next()).collect();
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.seq, i as u64 + 1);
            assert_eq!(frame.pts_90k, i as u64 * 1_800);
            assert_eq!(frame.i420().unwrap().bytes().len(), frame.size.i420_len());
            let decoded = timestamp_strip::decode_luma(frame.i420().unwrap().y(), 320, 240, 320);
            assert_eq!(decoded, Some(unix_micros(frame.captured_at)));
        }
    }

    #[test]
    fn pts_does_not_drift() {
        let pattern = TestPattern::new(FrameSize::new(320, 240), 30);
        assert_eq!(pattern.slot_offset(30), Duration::from_secs(1));
        assert_eq!(pattern.slot_offset(1), Duration::from_nanos(33_333_333));
        assert_eq!(pattern.slot_at(Duration::from_millis(1_001)), 30);
        assert_eq!(
            pattern.slot_offset(u64::MAX),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn a_late_caller_skips_ahead_instead_of_bursting() {
        let fps = 100;
        let mut pattern = TestPattern::new(FrameSize::new(320, 240), fps);
        let start = Instant::now();
        assert_eq!(pattern.claim_slot(start), None);
        pattern.render_next();
        assert_eq!(pattern.claim_slot(start + Duration::from_millis(55)), None);
        let frame = pattern.render_next();
        assert_eq!(frame.seq, 2, "sequence numbers stay contiguous");
        assert_eq!(frame.pts_90k, 900);
        // Slots 1 to 4 were missed; had they been kept, the next four frames would come at once.
        assert_eq!(pattern.next_slot, 6);
        let wait = pattern.claim_slot(start + Duration::from_millis(56));
        assert_eq!(
            wait,
            Some(Duration::from_millis(4)),
            "slot 6 is due at 60 ms"
        );
    }

    /// Measures render time per 1080p frame; run with
    /// `cargo test --release --lib test_pattern -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing measurement, not a check"]
    fn render_time_1080p() {
        let size = FrameSize::new(1920, 1080);
        let mut pattern = TestPattern::new(size, 30);
        let mut out = vec![0u8; size.i420_len()];
        let frames = 300;
        let started = Instant::now();
        for seq in 0..frames {
            pattern.render(seq, SystemTime::now(), &mut out);
        }
        let per_frame = started.elapsed() / frames as u32;
        println!("render 1080p: {per_frame:?} per frame");
        let started = Instant::now();
        for _ in 0..frames {
            let mut fresh = vec![0u8; size.i420_len()];
            pattern.render(1, SystemTime::now(), &mut fresh);
            std::hint::black_box(&fresh);
        }
        let per_frame = started.elapsed() / frames as u32;
        println!("allocate + render 1080p: {per_frame:?} per frame");
    }
}
