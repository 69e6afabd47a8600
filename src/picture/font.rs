//! A small built-in 5×7 bitmap font and a span-based text renderer for 8-bit planes.
//!
//! This module owns the glyph shapes (digits, `A`–`Z`, `: . - / @ ?` and space, drawn for this
//! project as constant bit rows) and [`Plane`], one 8-bit plane (such as the luma plane of an
//! I420 picture) with clipped rectangle fills and text drawing on it. Text is drawn as
//! horizontal runs filled with `slice::fill`, one run per lit stretch of a glyph row, never one
//! call per pixel, so that large scaled text costs little.
//! Lower-case letters are drawn as upper case; any other character is drawn as `?`.

/// Glyph width in font pixels.
pub const GLYPH_WIDTH: usize = 5;

/// Glyph height in font pixels.
pub const GLYPH_HEIGHT: usize = 7;

/// Horizontal distance between the starts of two glyphs, in font pixels: one blank column keeps
/// neighbouring glyphs apart.
pub const ADVANCE: usize = GLYPH_WIDTH + 1;

/// One glyph: `GLYPH_HEIGHT` rows, top first; in each row bit 4 is the leftmost column.
pub type Glyph = [u8; GLYPH_HEIGHT];

const BLANK: Glyph = [0; GLYPH_HEIGHT];
const QUESTION: Glyph = [
    0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100,
];

const DIGITS: [Glyph; 10] = [
    [
        0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
    ], // 0
    [
        0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
    ], // 1
    [
        0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
    ], // 2
    [
        0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
    ], // 3
    [
        0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
    ], // 4
    [
        0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
    ], // 5
    [
        0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
    ], // 6
    [
        0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
    ], // 7
    [
        0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
    ], // 8
    [
        0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
    ], // 9
];

const LETTERS: [Glyph; 26] = [
    [
        0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
    ], // A
    [
        0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
    ], // B
    [
        0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
    ], // C
    [
        0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100,
    ], // D
    [
        0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
    ], // E
    [
        0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
    ], // F
    [
        0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
    ], // G
    [
        0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
    ], // H
    [
        0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
    ], // I
    [
        0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
    ], // J
    [
        0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
    ], // K
    [
        0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
    ], // L
    [
        0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
    ], // M
    [
        0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
    ], // N
    [
        0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
    ], // O
    [
        0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
    ], // P
    [
        0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
    ], // Q
    [
        0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
    ], // R
    [
        0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
    ], // S
    [
        0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
    ], // T
    [
        0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
    ], // U
    [
        0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
    ], // V
    [
        0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
    ], // W
    [
        0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
    ], // X
    [
        0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100,
    ], // Y
    [
        0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
    ], // Z
];

/// The glyph drawn for `c`: lower case maps to upper case, unknown characters to `?`.
pub fn glyph(c: char) -> &'static Glyph {
    match c.to_ascii_uppercase() {
        d @ '0'..='9' => &DIGITS[d as usize - '0' as usize],
        l @ 'A'..='Z' => &LETTERS[l as usize - 'A' as usize],
        ' ' => &BLANK,
        ':' => &[0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
        '.' => &[0, 0, 0, 0, 0, 0b01100, 0b01100],
        '-' => &[0, 0, 0, 0b11111, 0, 0, 0],
        '/' => &[0, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0],
        '@' => &[
            0b01110, 0b10001, 0b00001, 0b01101, 0b10101, 0b10101, 0b01110,
        ],
        _ => &QUESTION,
    }
}

/// Width in pixels of `text` drawn at `scale` (pixels per font pixel), without the blank column
/// after the last glyph.
pub fn text_width(text: &str, scale: usize) -> usize {
    let glyphs = text.chars().count();
    (glyphs * ADVANCE).saturating_sub(1) * scale
}

/// Height in pixels of a line of text drawn at `scale`.
pub fn text_height(scale: usize) -> usize {
    GLYPH_HEIGHT * scale
}

/// Calls `run(x, y, len)` for every lit horizontal run of font pixels in `text`, in font-pixel
/// units relative to the top-left corner of the text. Adjacent lit columns form one run.
pub fn for_each_run(text: &str, mut run: impl FnMut(usize, usize, usize)) {
    for (index, c) in text.chars().enumerate() {
        let left = index * ADVANCE;
        for (y, &bits) in glyph(c).iter().enumerate() {
            let mut x = 0;
            while x < GLYPH_WIDTH {
                let lit = |column: usize| bits >> (GLYPH_WIDTH - 1 - column) & 1 == 1;
                if !lit(x) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < GLYPH_WIDTH && lit(x) {
                    x += 1;
                }
                run(left + start, y, x - start);
            }
        }
    }
}

/// A destination for text: one 8-bit plane of `width × height` samples, rows `stride` apart.
pub struct Plane<'a> {
    pub samples: &'a mut [u8],
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl Plane<'_> {
    /// Sets every sample of the rectangle to `value`, clipped to the plane (and to the slice, so
    /// a short buffer never panics).
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, value: u8) {
        let x_end = x.saturating_add(w).min(self.width);
        let y_end = y.saturating_add(h).min(self.height);
        if x >= x_end {
            return;
        }
        for row in y..y_end {
            let start = row * self.stride;
            if let Some(span) = self.samples.get_mut(start + x..start + x_end) {
                span.fill(value);
            }
        }
    }

    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale × scale`
    /// samples of `value`. Unlit font pixels are left as they are; everything is clipped.
    pub fn draw_text(&mut self, x: usize, y: usize, scale: usize, text: &str, value: u8) {
        for_each_run(text, |run_x, run_y, len| {
            self.fill_rect(
                x + run_x * scale,
                y + run_y * scale,
                len * scale,
                scale,
                value,
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `text` at scale 1 into rows of '#' and '.', for readable golden comparisons.
    fn ascii_art(text: &str) -> Vec<String> {
        let width = text_width(text, 1);
        let mut samples = vec![0u8; width * GLYPH_HEIGHT];
        let mut plane = Plane {
            samples: &mut samples,
            width,
            height: GLYPH_HEIGHT,
            stride: width,
        };
        plane.draw_text(0, 0, 1, text, 1);
        samples
            .chunks(width)
            .map(|row| {
                row.iter()
                    .map(|&s| if s == 1 { '#' } else { '.' })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn glyphs_fit_in_five_columns() {
        let all = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ :.-/@?";
        for c in all.chars() {
            for &row in glyph(c) {
                assert!(row < 1 << GLYPH_WIDTH, "glyph {c:?} row {row:#b} too wide");
            }
        }
    }

    #[test]
    fn every_supported_character_has_its_own_glyph() {
        let all: Vec<char> = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ:.-/@"
            .chars()
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert_ne!(glyph(*a), &QUESTION, "{a:?} falls back to '?'");
            assert_ne!(glyph(*a), &BLANK, "{a:?} is blank");
            for b in &all[i + 1..] {
                assert_ne!(glyph(*a), glyph(*b), "{a:?} and {b:?} look the same");
            }
        }
    }

    #[test]
    fn lower_case_and_unknown_characters() {
        assert_eq!(glyph('k'), glyph('K'));
        assert_eq!(glyph('~'), &QUESTION);
        assert_eq!(glyph('é'), &QUESTION);
    }

    #[test]
    fn renders_golden_text() {
        assert_eq!(
            ascii_art("1:A"),
            [
                "..#..........###.",
                ".##....##...#...#",
                "..#....##...#...#",
                "..#.........#####",
                "..#....##...#...#",
                "..#....##...#...#",
                ".###........#...#",
            ]
        );
    }

    #[test]
    fn runs_merge_adjacent_columns() {
        let mut runs = Vec::new();
        for_each_run("T", |x, y, len| runs.push((x, y, len)));
        assert_eq!(runs[0], (0, 0, 5), "the bar of a T is one run");
        assert_eq!(runs.len(), 7);
    }

    #[test]
    fn sizes() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("AB", 1), 11);
        assert_eq!(text_width("AB", 4), 44);
        assert_eq!(text_height(4), 28);
    }

    #[test]
    fn drawing_is_clipped_to_the_plane() {
        let mut samples = vec![0u8; 10 * 4];
        let mut plane = Plane {
            samples: &mut samples,
            width: 10,
            height: 4,
            stride: 10,
        };
        plane.draw_text(7, 2, 3, "W8", 255);
        plane.fill_rect(usize::MAX - 1, 0, 5, 5, 1);
        assert!(samples[..20].iter().all(|&s| s == 0));
        assert_eq!(samples[27], 255, "top-left of the W is drawn");
    }

    #[test]
    fn short_buffer_does_not_panic() {
        let mut samples = vec![0u8; 15];
        let mut plane = Plane {
            samples: &mut samples,
            width: 10,
            height: 4,
            stride: 10,
        };
        plane.fill_rect(0, 0, 10, 4, 9);
        assert_eq!(
            samples,
            [9; 10].iter().chain(&[0; 5]).copied().collect::<Vec<_>>()
        );
    }
}
