//! Pixels: pure picture code with no I/O and no threads. Conversions between camera formats
//! and I420, the bitmap font, the machine-readable timestamp strip, the placeholder picture
//! shown while a source is down, and block averaging for H.264 rate control.

pub mod block_average;
pub mod convert;
pub mod font;
pub mod placeholder;
pub mod timestamp_strip;

use std::fmt::Write as _;

/// Appends the UTC time of day of `micros` (since the Unix epoch) as `HH:MM:SS.mmm UTC`.
/// Hand-written on purpose: a time of day is three divisions, and a date-time crate would add
/// nothing but a dependency for it.
pub fn clock_text(micros: u64, out: &mut String) {
    let ms_of_day = micros / 1000 % 86_400_000;
    let (hours, minutes) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (seconds, millis) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    // Writing to a String cannot fail.
    let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}.{millis:03} UTC");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICROS: u64 = 1_790_000_000_123_456;

    #[test]
    fn clock_text_is_utc_with_milliseconds() {
        let mut text = String::new();
        clock_text(MICROS, &mut text);
        // 1_790_000_000 s is 2026-09-21 14:13:20 UTC.
        assert_eq!(text, "14:13:20.123 UTC");
        text.clear();
        clock_text(86_399_999_999, &mut text);
        assert_eq!(text, "23:59:59.999 UTC");
    }
}
