//! The picture viewers see while the source is down: the configured size, a dark frame with
//! what is wrong in large letters ("NO SIGNAL", "CAMERA NOT FOUND", …), the reason, the time,
//! and the timestamp strip so latency stays measurable.

use std::time::SystemTime;

use crate::frame::{FrameSize, unix_micros};
use crate::picture::clock_text;
use crate::picture::font::{self, Plane};
use crate::picture::timestamp_strip;

/// Luma of the background and the text: dark grey and near white, well inside video range.
const BACKGROUND_Y: u8 = 40;
const TEXT_Y: u8 = 220;
const DIM_TEXT_Y: u8 = 150;
/// Neutral chroma: a grey picture.
const CHROMA_NEUTRAL: u8 = 128;
/// The longest reason shown; longer ones are cut with an ellipsis.
const MAX_REASON_CHARS: usize = 60;

/// Renders placeholder frames of one size.
#[derive(Debug, Clone)]
pub struct Placeholder {
    size: FrameSize,
}

impl Placeholder {
    pub fn new(size: FrameSize) -> Self {
        Self { size }
    }

    /// One I420 picture saying `headline` and `reason`, stamped with `captured_at`.
    pub fn render(&self, headline: &str, reason: &str, captured_at: SystemTime) -> Vec<u8> {
        let size = self.size;
        let mut out = vec![CHROMA_NEUTRAL; size.i420_len()];
        let (width, height) = (size.width as usize, size.height as usize);
        let mut luma = Plane {
            samples: &mut out[..size.luma_len()],
            width,
            height,
            stride: width,
        };
        luma.fill_rect(0, 0, width, height, BACKGROUND_Y);

        let reason = shorten(reason);
        let mut clock = String::new();
        clock_text(unix_micros(captured_at), &mut clock);
        // The headline fills about 60 % of the width, the other lines a third of its size.
        let big = (width * 6 / 10 / font::text_width(headline, 1).max(1)).clamp(1, height / 40 + 1);
        let small = (big / 3).max(1);
        let lines = [
            (headline, big, TEXT_Y),
            (reason.as_str(), small, DIM_TEXT_Y),
            (clock.as_str(), small, DIM_TEXT_Y),
        ];
        let gap = font::text_height(small);
        let total: usize = lines
            .iter()
            .map(|(_, s, _)| font::text_height(*s) + gap)
            .sum();
        let mut y = height.saturating_sub(total) / 2;
        for (text, scale, value) in lines {
            let x = width.saturating_sub(font::text_width(text, scale)) / 2;
            luma.draw_text(x, y, scale, text, value);
            y += font::text_height(scale) + gap;
        }
        timestamp_strip::draw(&mut out, size, unix_micros(captured_at));
        out
    }
}

fn shorten(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("");
    if line.chars().count() <= MAX_REASON_CHARS {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(MAX_REASON_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::from_unix_micros;

    #[test]
    fn a_placeholder_carries_its_time_and_differs_by_reason() {
        for size in [FrameSize::new(160, 120), FrameSize::new(1280, 720)] {
            let placeholder = Placeholder::new(size);
            let at = from_unix_micros(1_790_000_000_123_456);
            let a = placeholder.render("NO SIGNAL", "pipe closed", at);
            let b = placeholder.render("CAMERA NOT FOUND", "no /dev/video0", at);
            assert_eq!(a.len(), size.i420_len());
            assert_ne!(a, b);
            let luma = &a[..size.luma_len()];
            let w = size.width as usize;
            assert_eq!(
                timestamp_strip::decode_luma(luma, w, size.height as usize, w),
                Some(1_790_000_000_123_456)
            );
            assert!(luma.contains(&TEXT_Y), "text is drawn");
        }
    }

    #[test]
    fn long_reasons_are_cut() {
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), MAX_REASON_CHARS);
        assert_eq!(shorten("two\nlines"), "two");
    }
}
