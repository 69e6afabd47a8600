//! Multipart MJPEG framing for `multipart/x-mixed-replace` (RFC 2046 §5.1.1; the
//! "x-mixed-replace" subtype is the Netscape server-push convention that every browser keeps).
//!
//! Browsers differ in when they show a part (see the MJPEG section of the design notes):
//! Chromium paints a frame only after it has parsed the *next* part's headers, Firefox when the
//! boundary after it arrives. So the boundary always follows a JPEG at once, and for
//! Chromium-family clients the next part's headers follow too ([`PartHeaders::Eager`]); those
//! headers cannot carry a Content-Length, which is not known yet. Every other client gets full
//! headers with Content-Length, a capture timestamp and a sequence number ([`PartHeaders::Full`]),
//! because non-browser readers rely on them.

use bytes::Bytes;

/// The multipart boundary. Any token would do as long as it never occurs inside a JPEG after
/// CRLF "--": JPEG entropy data never contains `\r\n--framecast` in practice, and every part
/// carries a Content-Length for clients that want certainty.
pub const BOUNDARY: &str = "framecast-boundary";

/// The response's Content-Type.
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=framecast-boundary";

/// The first bytes of every stream: the opening delimiter (RFC 2046 §5.1.1: dash-boundary).
pub const PREAMBLE: &[u8] = b"--framecast-boundary\r\n";

/// What a part's headers carry, by client family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartHeaders {
    /// Content-Type, Content-Length, X-Timestamp and X-Frame-Sequence before each JPEG.
    Full,
    /// Only Content-Type, written right after the previous part's boundary.
    Eager,
}

impl PartHeaders {
    /// Chromium-family browsers (Chrome, Chromium, Edge, Opera, Brave and embedded Blink views)
    /// say `Chrome/` or `Chromium/` in their User-Agent; they want eager headers.
    pub fn for_user_agent(user_agent: &str) -> Self {
        if user_agent.contains("Chrome/") || user_agent.contains("Chromium/") {
            Self::Eager
        } else {
            Self::Full
        }
    }

    /// Bytes written once before the first JPEG: the opening delimiter, plus the first part's
    /// headers in eager mode.
    pub fn stream_start(self) -> &'static [u8] {
        match self {
            Self::Full => PREAMBLE,
            Self::Eager => b"--framecast-boundary\r\nContent-Type: image/jpeg\r\n\r\n",
        }
    }

    /// Bytes written right after each JPEG: the delimiter that ends it, plus the next part's
    /// headers in eager mode.
    pub fn part_end(self) -> &'static [u8] {
        match self {
            Self::Full => b"\r\n--framecast-boundary\r\n",
            Self::Eager => b"\r\n--framecast-boundary\r\nContent-Type: image/jpeg\r\n\r\n",
        }
    }
}

/// The header block of one part in [`PartHeaders::Full`] mode, ending with the blank line.
/// Built once per frame and shared by every viewer.
pub fn full_part_headers(jpeg_len_bytes: usize, captured_unix_micros: u64, seq: u64) -> Bytes {
    use std::fmt::Write as _;
    // One allocation, written in one pass: this runs for every frame a source publishes.
    let mut head = String::with_capacity(FULL_PART_HEADERS_MAX_BYTES);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "Content-Type: image/jpeg\r\nContent-Length: {jpeg_len_bytes}\r\nX-Timestamp: {}\r\nX-Frame-Sequence: {seq}\r\n\r\n",
        Timestamp(captured_unix_micros)
    );
    Bytes::from(head)
}

/// The longest [`full_part_headers`]: its fixed text and three 20-digit numbers.
const FULL_PART_HEADERS_MAX_BYTES: usize = 176;

/// Unix time in seconds with six decimals, as µStreamer and its clients write `X-Timestamp`.
pub fn format_timestamp(unix_micros: u64) -> String {
    Timestamp(unix_micros).to_string()
}

/// A time in Unix microseconds, displayed as [`format_timestamp`] writes it.
struct Timestamp(u64);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The inverse of [`format_timestamp`], for clients and tests; `None` if it is not of that form.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let (secs, frac) = text.trim().split_once('.')?;
    if frac.len() != 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let micros: u64 = frac.parse().ok()?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_part_golden_bytes() {
        let head = full_part_headers(1234, 1_790_000_000_012_345, 42);
        assert_eq!(
            &head[..],
            b"Content-Type: image/jpeg\r\nContent-Length: 1234\r\nX-Timestamp: 1790000000.012345\r\nX-Frame-Sequence: 42\r\n\r\n"
        );
        // The longest fits the one allocation, and its timestamp reads back.
        let longest = full_part_headers(usize::MAX, u64::MAX, u64::MAX);
        assert!(
            longest.len() <= FULL_PART_HEADERS_MAX_BYTES,
            "{}",
            longest.len()
        );
        let text = std::str::from_utf8(&longest).unwrap();
        let stamp = text
            .split("X-Timestamp: ")
            .nth(1)
            .unwrap()
            .split('\r')
            .next()
            .unwrap();
        assert_eq!(stamp, format_timestamp(u64::MAX));
        assert_eq!(parse_timestamp(stamp), Some(u64::MAX));
    }

    #[test]
    fn a_full_stream_is_valid_multipart() {
        // Two parts as a viewer receives them; RFC 2046 §5.1.1: each body part is preceded by
        // CRLF "--" boundary, the first delimiter may omit the leading CRLF.
        let mut stream = PartHeaders::Full.stream_start().to_vec();
        for (seq, jpeg) in [(1u64, &b"jpeg-one"[..]), (2, b"jpeg-two")] {
            stream.extend_from_slice(&full_part_headers(jpeg.len(), 5_000_000, seq));
            stream.extend_from_slice(jpeg);
            stream.extend_from_slice(PartHeaders::Full.part_end());
        }
        let text = String::from_utf8_lossy(&stream);
        let parts: Vec<&str> = text.split("--framecast-boundary\r\n").collect();
        // Before the first delimiter and after the last there is nothing.
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "");
        assert_eq!(parts[3], "");
        for part in &parts[1..3] {
            let (head, body) = part.split_once("\r\n\r\n").unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(body.len(), len + 2, "body then CRLF before the delimiter");
            assert!(body.ends_with("\r\n"));
        }
    }

    #[test]
    fn eager_mode_writes_the_next_headers_with_the_boundary() {
        assert_eq!(
            PartHeaders::Eager.part_end(),
            b"\r\n--framecast-boundary\r\nContent-Type: image/jpeg\r\n\r\n"
        );
        assert!(PartHeaders::Eager.stream_start().ends_with(b"\r\n\r\n"));
        assert!(CONTENT_TYPE.ends_with(BOUNDARY));
        assert_eq!(PREAMBLE, format!("--{BOUNDARY}\r\n").as_bytes());
    }

    #[test]
    fn user_agents_pick_the_mode() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
        let safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15";
        assert_eq!(PartHeaders::for_user_agent(chrome), PartHeaders::Eager);
        assert_eq!(PartHeaders::for_user_agent(firefox), PartHeaders::Full);
        assert_eq!(PartHeaders::for_user_agent(safari), PartHeaders::Full);
        assert_eq!(
            PartHeaders::for_user_agent("Lavf/59.27.100"),
            PartHeaders::Full
        );
        assert_eq!(PartHeaders::for_user_agent(""), PartHeaders::Full);
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_timestamp(1_000_000_000_000_001), "1000000000.000001");
        assert_eq!(
            parse_timestamp("1000000000.000001"),
            Some(1_000_000_000_000_001)
        );
        assert_eq!(parse_timestamp("12.5"), None);
        assert_eq!(parse_timestamp("x.000000"), None);
    }
}
