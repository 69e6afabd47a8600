//! Passwords out of text that quotes a source: a source string may hold a URL with
//! credentials (`exec:ffmpeg -i rtsp://user:pass@cam/…`), and neither error messages nor log
//! lines may show them.

/// What a masked password is replaced with.
const MASK: &str = "***";

/// `text` with the password of every `scheme://user:password@host` URL in it replaced by
/// `***`; the user name stays, so that a message still says which account is meant.
pub fn mask_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + "://".len();
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        // RFC 3986 §3.2: the authority ends at the path, query or fragment; in a command line
        // or a message also at white space or a quote.
        let authority_len = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '`' | '\'' | '"') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        // The last `@` ends the user information (§3.2.1); its first `:` starts the password.
        match authority.rfind('@').and_then(|at| {
            let user_info = &authority[..at];
            user_info.find(':').map(|colon| (colon, at))
        }) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[authority_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        for (text, masked) in [
            ("test", "test"),
            ("rtsp://cam/stream", "rtsp://cam/stream"),
            ("rtsp://user@cam/stream", "rtsp://user@cam/stream"),
            ("rtsp://user:secret@cam:554/s", "rtsp://user:***@cam:554/s"),
            ("rtsp://user:p@ss:w@cam/s", "rtsp://user:***@cam/s"),
            ("rtsp://user:secret@cam", "rtsp://user:***@cam"),
            (
                "exec:ffmpeg -i rtsp://a:b@one/x -i http://c:d@two?q -f mjpeg -",
                "exec:ffmpeg -i rtsp://a:***@one/x -i http://c:***@two?q -f mjpeg -",
            ),
            (
                "unknown source `http://u:pw@h` (supported: …)",
                "unknown source `http://u:***@h` (supported: …)",
            ),
            ("a://", "a://"),
            ("://:@", "://:***@"),
        ] {
            assert_eq!(mask_passwords(text), masked, "{text}");
        }
    }
}
