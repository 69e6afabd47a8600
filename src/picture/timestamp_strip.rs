//! The machine-readable timestamp strip: the capture time written into the picture itself, so
//! that any client that can see pixels (a browser canvas, a decoded JPEG, an ffmpeg frame dump)
//! can measure capture-to-display latency.
//!
//! This module owns the strip's format, drawing it into an I420 picture, and decoding it from
//! luma or RGBA pixels. `static/timestamp-strip.js` holds the same decoder for browsers; the two
//! must stay in step with the format below.
//!
//! # Format
//!
//! - The strip is the top band of the picture: rows `[0, strip_rows)` with
//!   `strip_rows = max(8, (height / 24) & !1)` (even, so it covers whole chroma rows).
//! - It is divided into [`CELLS`] = 68 cells across the whole width: cell `i` covers columns
//!   `[i * W / 68, (i + 1) * W / 68)` (integer division).
//! - A cell of value 1 has luma 235, of value 0 luma 16 (video-range white and black); chroma
//!   (U and V) is 128 under the whole strip, so it is grey in every colour conversion.
//! - Cells, left to right:
//!   - 0 = 1, 1 = 0: leading sync;
//!   - 2..58: the capture time in microseconds since the Unix epoch, 56 bits, most significant
//!     bit first (times at or beyond 2^56 µs, in the year 4253, are written modulo 2^56);
//!   - 58..66: CRC-8/SMBUS (polynomial 0x07, init 0x00, not reflected, no final xor) over the 7
//!     big-endian bytes of that 56-bit value, most significant bit first;
//!   - 66 = 0, 67 = 1: trailing sync.
//!
//! # Decoding
//!
//! Decoding works on any scaled copy of the picture `w × h` pixels. For cell `i` it averages the
//! luma of the pixels with `x0 <= x < x1` and `y0 <= y < y1`, where
//! `x0 = floor((i + 0.25) * w / 68)`, `x1 = floor((i + 0.75) * w / 68)`, `y0 = floor(0.25 * h / 24)`,
//! `y1 = floor(0.75 * h / 24)` (computed in integers as `(4i + 1) * w / 272`, `(4i + 3) * w / 272`,
//! `h / 96` and `3 * h / 96`; an empty range is widened to one pixel). That is the central half of
//! the cell horizontally and the central half of the strip vertically, so edge blur from scaling
//! and JPEG blocks stays out of the average. An average of 128 or more reads as 1. Luma from RGB
//! uses the BT.601 weights `0.299 R + 0.587 G + 0.114 B`. A sync cell or CRC mismatch decodes as
//! nothing.

use crate::frame::FrameSize;

/// Number of cells across the strip: 2 sync + 56 time bits + 8 CRC bits + 2 sync.
pub const CELLS: usize = 68;

/// Bits of the capture time: 2^56 µs is over two thousand years past the epoch, and 56 bits
/// are exactly 7 bytes for the CRC.
const TIME_BITS: usize = 56;

/// First cell of the capture time.
const TIME_CELL: usize = 2;

/// First cell of the CRC.
const CRC_CELL: usize = TIME_CELL + TIME_BITS;

/// The fixed sync cells and their values: a 1 and a 0 at each end let a decoder tell a strip
/// from a flat picture (all ones or all zeros never pass).
const SYNC_CELLS: [(usize, bool); 4] = [(0, true), (1, false), (66, false), (67, true)];

/// Luma of a 1 cell: video-range white (ITU-R BT.601 §2.5.3: black 16, white 235).
const LUMA_ONE: u8 = 235;

/// Luma of a 0 cell: video-range black.
const LUMA_ZERO: u8 = 16;

/// Neutral chroma, so the strip has no colour and converts to grey.
const CHROMA_NEUTRAL: u8 = 128;

/// Decision level between the two cell values: the middle of the full 8-bit range, because
/// browsers and JPEG decoders expand video-range luma to 0..255 and raw planes keep 16..235.
const THRESHOLD: f64 = 128.0;

/// Strip height in rows is a 24th of the picture...
const HEIGHT_DIVISOR: u32 = 24;

/// ...but at least this many rows, so that even small pictures keep a readable strip after JPEG
/// (8 rows are one JPEG block).
const MIN_ROWS: u32 = 8;

/// Rows at the top of a picture `height` rows tall that the strip covers.
pub fn strip_rows(height: u32) -> u32 {
    MIN_ROWS.max((height / HEIGHT_DIVISOR) & !1)
}

/// CRC-8/SMBUS: polynomial x^8 + x^2 + x + 1 (0x07), init 0, not reflected, no final xor.
fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |crc, &byte| {
        (0..8).fold(crc ^ byte, |c, _| {
            if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            }
        })
    })
}

/// The 7 big-endian bytes of the 56-bit time.
fn time_bytes(micros: u64) -> [u8; TIME_BITS / 8] {
    let all = micros.to_be_bytes();
    let mut bytes = [0u8; TIME_BITS / 8];
    bytes.copy_from_slice(&all[8 - TIME_BITS / 8..]);
    bytes
}

/// The value of every cell for a capture time.
fn cell_values(capture_micros: u64) -> [bool; CELLS] {
    let micros = capture_micros & ((1 << TIME_BITS) - 1);
    let crc = crc8(&time_bytes(micros));
    let mut cells = [false; CELLS];
    for (cell, value) in SYNC_CELLS {
        cells[cell] = value;
    }
    for bit in 0..TIME_BITS {
        cells[TIME_CELL + bit] = micros >> (TIME_BITS - 1 - bit) & 1 == 1;
    }
    for bit in 0..8 {
        cells[CRC_CELL + bit] = crc >> (7 - bit) & 1 == 1;
    }
    cells
}

/// Draws the strip for `capture_micros` over the top of an I420 picture of `size` (Y, U, V
/// planes back to back, tightly packed). Writes the luma rows and the chroma rows under the strip.
/// A buffer shorter than `size.i420_len()` is left untouched.
pub fn draw(i420: &mut [u8], size: FrameSize, capture_micros: u64) {
    if i420.len() < size.i420_len() || size.width == 0 {
        return;
    }
    let width = size.width as usize;
    let rows = strip_rows(size.height).min(size.height) as usize;
    if rows == 0 {
        return;
    }

    // Paint the first row cell by cell, then copy it down: one fill per cell, one copy per row.
    let first_row = &mut i420[..width];
    for (i, &value) in cell_values(capture_micros).iter().enumerate() {
        let cell = i * width / CELLS..(i + 1) * width / CELLS;
        first_row[cell].fill(if value { LUMA_ONE } else { LUMA_ZERO });
    }
    for row in 1..rows {
        i420.copy_within(..width, row * width);
    }

    // Chroma rows cover two luma rows each; round up so an odd clamp still covers the strip.
    let chroma_width = width / 2;
    let chroma_rows = rows.div_ceil(2).min(size.height as usize / 2);
    let luma_len = size.luma_len();
    for plane_start in [luma_len, luma_len + size.chroma_len()] {
        let under_strip = plane_start..plane_start + chroma_rows * chroma_width;
        i420[under_strip].fill(CHROMA_NEUTRAL);
    }
}

/// Decodes the strip from a luma plane `width × height` with rows `stride` bytes apart, as
/// found in an I420 frame or a greyscale JPEG decode. `None` when there is no valid strip or the
/// plane does not fit in `luma`.
pub fn decode_luma(luma: &[u8], width: usize, height: usize, stride: usize) -> Option<u64> {
    if width == 0 || height == 0 || stride < width {
        return None;
    }
    let needed = (height - 1).checked_mul(stride)?.checked_add(width)?;
    if luma.len() < needed {
        return None;
    }
    decode_with(width, height, |x, y| f64::from(luma[y * stride + x]))
}

/// Decodes the strip from RGBA pixels `width × height`, tightly packed (a canvas `ImageData`, a
/// screenshot). Luma is taken with the BT.601 weights. `None` when there is no valid strip or the
/// picture does not fit in `rgba`.
pub fn decode_rgba(rgba: &[u8], width: usize, height: usize) -> Option<u64> {
    if width == 0 || height == 0 || rgba.len() < width.checked_mul(height)?.checked_mul(4)? {
        return None;
    }
    decode_with(width, height, |x, y| {
        let p = (y * width + x) * 4;
        0.299 * f64::from(rgba[p]) + 0.587 * f64::from(rgba[p + 1]) + 0.114 * f64::from(rgba[p + 2])
    })
}

/// The decoder proper, over any picture `width × height` (both non-zero) given its luma at
/// (x, y). See the module doc for the sampling rule.
fn decode_with(width: usize, height: usize, luma_at: impl Fn(usize, usize) -> f64) -> Option<u64> {
    let y0 = height / 96;
    let y1 = (3 * height / 96).max(y0 + 1);
    let mut cells = [false; CELLS];
    for (i, cell) in cells.iter_mut().enumerate() {
        let x0 = (4 * i + 1) * width / (4 * CELLS);
        let x1 = ((4 * i + 3) * width / (4 * CELLS)).max(x0 + 1);
        let mut sum = 0.0;
        for y in y0..y1 {
            for x in x0..x1 {
                sum += luma_at(x, y);
            }
        }
        *cell = sum / ((x1 - x0) * (y1 - y0)) as f64 >= THRESHOLD;
    }

    if SYNC_CELLS.iter().any(|&(i, value)| cells[i] != value) {
        return None;
    }
    let bits_value = |range: std::ops::Range<usize>| {
        cells[range]
            .iter()
            .fold(0u64, |acc, &bit| acc << 1 | u64::from(bit))
    };
    let micros = bits_value(TIME_CELL..CRC_CELL);
    let crc = bits_value(CRC_CELL..CRC_CELL + 8);
    (u64::from(crc8(&time_bytes(micros))) == crc).then_some(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICROS: u64 = 1_790_000_000_123_456;

    /// An I420 picture with a busy background (so JPEG blocks next to the strip are hard to
    /// code) and the strip drawn over it.
    fn picture(size: FrameSize, micros: u64) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        let mut i420: Vec<u8> = (0..size.i420_len())
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        draw(&mut i420, size, micros);
        i420
    }

    fn decode_picture(i420: &[u8], size: FrameSize) -> Option<u64> {
        let width = size.width as usize;
        decode_luma(i420, width, size.height as usize, width)
    }

    /// JPEG-compress an I420 picture and decode it back to grey, as a client would.
    fn through_jpeg(i420: &[u8], size: FrameSize, quality: i32) -> Vec<u8> {
        let image = turbojpeg::YuvImage {
            pixels: i420,
            width: size.width as usize,
            align: 1,
            height: size.height as usize,
            subsamp: turbojpeg::Subsamp::Sub2x2,
        };
        let jpeg = turbojpeg::compress_yuv(image, quality).unwrap();
        let grey = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::GRAY).unwrap();
        assert_eq!((grey.width, grey.height), (image_size(size)));
        grey.pixels
    }

    fn image_size(size: FrameSize) -> (usize, usize) {
        (size.width as usize, size.height as usize)
    }

    #[test]
    fn strip_rows_follow_the_height() {
        assert_eq!(strip_rows(120), 8);
        assert_eq!(strip_rows(240), 10);
        assert_eq!(strip_rows(360), 14);
        assert_eq!(strip_rows(720), 30);
        assert_eq!(strip_rows(1080), 44);
        assert_eq!(strip_rows(2160), 90);
    }

    #[test]
    fn crc_golden_values() {
        // The CRC-8/SMBUS check value from the CRC catalogue.
        assert_eq!(crc8(b"123456789"), 0xf4);
        assert_eq!(
            time_bytes(MICROS),
            [0x06, 0x5b, 0xfe, 0xda, 0x27, 0xc2, 0x40]
        );
        assert_eq!(crc8(&time_bytes(MICROS)), 0x4f);
        assert_eq!(crc8(&[0; 7]), 0x00);
    }

    #[test]
    fn cells_golden_layout() {
        let cells = cell_values(MICROS);
        let text: String = cells.iter().map(|&c| if c { '1' } else { '0' }).collect();
        assert_eq!(
            text,
            concat!(
                "10", "00000110", "01011011", "11111110", "11011010", "00100111", "11000010",
                "01000000", "01001111", "01",
            )
        );
    }

    #[test]
    fn draw_writes_levels_and_neutral_chroma() {
        let size = FrameSize::new(680, 480);
        let i420 = picture(size, MICROS);
        let rows = strip_rows(480) as usize;
        // Cell i spans 10 columns at this width.
        for row in 0..rows {
            let line = &i420[row * 680..(row + 1) * 680];
            assert_eq!(&line[..10], &[LUMA_ONE; 10]);
            assert_eq!(&line[10..20], &[LUMA_ZERO; 10]);
            assert_eq!(&line[670..], &[LUMA_ONE; 10]);
        }
        let chroma = &i420[size.luma_len()..];
        for plane in [0, size.chroma_len()] {
            let under = &chroma[plane..plane + rows / 2 * 340];
            assert!(under.iter().all(|&c| c == CHROMA_NEUTRAL));
        }
    }

    #[test]
    fn round_trip_on_raw_planes() {
        for (width, height) in [
            (320, 240),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (3840, 2160),
        ] {
            let size = FrameSize::new(width, height);
            for micros in [MICROS, 0, 1, (1 << 56) - 1, 1_700_000_000_000_001] {
                let i420 = picture(size, micros);
                assert_eq!(decode_picture(&i420, size), Some(micros), "{size} {micros}");
            }
        }
    }

    #[test]
    fn times_beyond_56_bits_wrap() {
        let size = FrameSize::new(320, 240);
        let i420 = picture(size, (1 << 56) + 42);
        assert_eq!(decode_picture(&i420, size), Some(42));
    }

    #[test]
    fn survives_jpeg() {
        for (width, height) in [(1280, 720), (640, 360)] {
            let size = FrameSize::new(width, height);
            let i420 = picture(size, MICROS);
            for quality in [50, 75, 95] {
                let grey = through_jpeg(&i420, size, quality);
                let decoded = decode_luma(&grey, width as usize, height as usize, width as usize);
                assert_eq!(decoded, Some(MICROS), "{size} at quality {quality}");
            }
        }
    }

    #[test]
    fn survives_2x_downscale() {
        for (width, height) in [(640, 480), (1280, 720), (1920, 1080)] {
            let size = FrameSize::new(width, height);
            let i420 = picture(size, MICROS);
            let (w, h) = (width as usize, height as usize);
            let half: Vec<u8> = (0..h / 2)
                .flat_map(|y| (0..w / 2).map(move |x| (y, x)))
                .map(|(y, x)| {
                    let at = |dy: usize, dx: usize| u32::from(i420[(2 * y + dy) * w + 2 * x + dx]);
                    ((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1) + 2) / 4) as u8
                })
                .collect();
            assert_eq!(
                decode_luma(&half, w / 2, h / 2, w / 2),
                Some(MICROS),
                "{size}"
            );
        }
    }

    #[test]
    fn decodes_rgba_with_expanded_range() {
        // What a browser canvas holds: video range expanded to 0..255, grey since chroma is 128.
        let size = FrameSize::new(1280, 720);
        let i420 = picture(size, MICROS);
        let rgba: Vec<u8> = i420[..size.luma_len()]
            .iter()
            .flat_map(|&y| {
                let v = ((f64::from(y) - 16.0) * 255.0 / 219.0).clamp(0.0, 255.0) as u8;
                [v, v, v, 255]
            })
            .collect();
        assert_eq!(decode_rgba(&rgba, 1280, 720), Some(MICROS));
        assert_eq!(decode_rgba(&rgba[4..], 1280, 720), None, "too short");
    }

    #[test]
    fn a_flipped_cell_is_rejected() {
        let size = FrameSize::new(680, 480);
        // Cells 30 (time), 60 (CRC), 0 and 67 (sync); each is 10 columns wide here.
        for cell in [30, 60, 0, 67] {
            let mut i420 = picture(size, MICROS);
            for row in 0..strip_rows(480) as usize {
                for sample in &mut i420[row * 680 + cell * 10..row * 680 + cell * 10 + 10] {
                    *sample = if *sample == LUMA_ONE {
                        LUMA_ZERO
                    } else {
                        LUMA_ONE
                    };
                }
            }
            assert_eq!(decode_picture(&i420, size), None, "cell {cell} flipped");
        }
    }

    #[test]
    fn flat_pictures_do_not_decode() {
        for level in [0, 16, 128, 235, 255] {
            let luma = vec![level; 640 * 480];
            assert_eq!(decode_luma(&luma, 640, 480, 640), None);
        }
    }

    #[test]
    fn bad_geometry_is_refused_without_panicking() {
        let luma = vec![0u8; 100];
        assert_eq!(decode_luma(&luma, 0, 10, 10), None);
        assert_eq!(decode_luma(&luma, 10, 0, 10), None);
        assert_eq!(decode_luma(&luma, 10, 10, 9), None);
        assert_eq!(decode_luma(&luma, 10, 11, 10), None);
        assert_eq!(decode_luma(&luma, usize::MAX, 2, usize::MAX), None);
        assert_eq!(decode_rgba(&luma, 5, 5), None);
        assert_eq!(decode_rgba(&luma, usize::MAX, 5), None);
        assert_eq!(decode_luma(&luma, 1, 1, 1), None);
    }

    #[test]
    fn draw_tolerates_tiny_and_short_buffers() {
        for (width, height) in [(2, 2), (4, 6), (68, 8), (70, 2)] {
            let size = FrameSize::new(width, height);
            let mut i420 = vec![0u8; size.i420_len()];
            draw(&mut i420, size, MICROS);
        }
        let mut short = vec![7u8; 100];
        draw(&mut short, FrameSize::new(640, 480), MICROS);
        assert!(short.iter().all(|&s| s == 7));
        draw(&mut [], FrameSize::new(0, 0), MICROS);
    }
}
