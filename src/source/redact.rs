//! Secrets out of text that is logged or shown: a command line or a line a command printed may
//! carry a camera's password, as `rtsp://user:password@host/…` (RFC 3986 §3.2.1 userinfo) or as
//! a query value like `?password=…`. Pure: text in, text out.

use std::borrow::Cow;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Keys whose `key=value` values are secrets (compared without case).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "token",
    "access_token",
    "auth",
    "secret",
    "apikey",
    "api_key",
    "key",
    "sig",
    "signature",
];

/// `text` with every URL password (`scheme://user:PASSWORD@host`) and every value of a secret
/// key (`password=VALUE`, `token=VALUE`, …) replaced by [`MASK`]. User names stay: they help
/// to tell cameras apart and are not secret.
pub fn mask_secrets(text: &str) -> Cow<'_, str> {
    let masked = mask_query_values(&mask_userinfo_passwords(text)).into_owned();
    if masked == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(masked)
    }
}

/// Characters that end a URL's authority (RFC 3986 §3.2), or the URL itself in running text.
fn ends_authority(c: char) -> bool {
    matches!(c, '/' | '?' | '#' | '\'' | '"' | '<' | '>' | '`') || c.is_whitespace()
}

/// Characters that end a `key=value` value.
fn ends_value(c: char) -> bool {
    matches!(c, '&' | ';' | '#' | '\'' | '"' | ',' | '<' | '>' | '`') || c.is_whitespace()
}

fn mask_userinfo_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_len = after.find(ends_authority).unwrap_or(after.len());
        let authority = &after[..authority_len];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn mask_query_values(text: &str) -> Cow<'_, str> {
    if !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        // The key: the letters, digits and underscores right before `=`.
        let key_start = before
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |(at, c)| at + c.len_utf8());
        let key = &before[key_start..];
        let secret = SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key));
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        let value_len = after.find(ends_value).unwrap_or(after.len());
        if secret && value_len > 0 {
            out.push_str(MASK);
        } else {
            out.push_str(&after[..value_len]);
        }
        rest = &after[value_len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_values_are_masked() {
        for (text, masked) in [
            (
                "ffmpeg -i rtsp://admin:hunter2@10.0.0.5:554/stream1 -f mjpeg -",
                "ffmpeg -i rtsp://admin:***@10.0.0.5:554/stream1 -f mjpeg -",
            ),
            (
                "http://user:p%40ss:word@cam/x.mjpg",
                "http://user:***@cam/x.mjpg",
            ),
            (
                "Input #0, rtsp, from 'rtsp://u:secret@cam/live':",
                "Input #0, rtsp, from 'rtsp://u:***@cam/live':",
            ),
            (
                "rtsp://cam/live?user=admin&password=hunter2&channel=1",
                "rtsp://cam/live?user=admin&password=***&channel=1",
            ),
            (
                "http://cam/snap.cgi?PWD=x&token=abc.def",
                "http://cam/snap.cgi?PWD=***&token=***",
            ),
            (
                "a rtsp://a:b@h1/ and rtsp://c:d@h2?pass=e",
                "a rtsp://a:***@h1/ and rtsp://c:***@h2?pass=***",
            ),
            ("rtsp://a:b@c", "rtsp://a:***@c"),
            ("é=1 ü_pass=2 pass=€€", "é=1 ü_pass=2 pass=***"),
            ("rtsp://ü:ß@h/é", "rtsp://ü:***@h/é"),
        ] {
            assert_eq!(mask_secrets(text), masked, "{text}");
        }
    }

    #[test]
    fn any_text_is_masked_without_panic_and_masking_twice_changes_nothing() {
        // Text made of the characters the masking looks at, multi-byte ones among them, from
        // a fixed pseudo-random sequence (a 64-bit LCG, Knuth's MMIX constants).
        const PIECES: &[&str] = &[
            "://", ":", "@", "/", "?", "&", "=", " ", "'", "é", "€", "𝄞", "password", "token",
            "user", "x", "_", "\n",
        ];
        let mut state: u64 = 1;
        for _ in 0..5_000 {
            let mut text = String::new();
            for _ in 0..12 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(PIECES[(state >> 33) as usize % PIECES.len()]);
            }
            let once = mask_secrets(&text).into_owned();
            assert_eq!(mask_secrets(&once), once, "{text:?}");
        }
    }

    #[test]
    fn text_without_secrets_is_left_alone() {
        for text in [
            "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=10 -f mjpeg -q:v 5 -",
            "rtsp://admin@cam/stream",
            "rtsp://cam:554/stream?channel=1&subtype=0",
            "frame=  100 fps= 10 q=5.0 size=N/A time=00:00:10.00",
            "password= is empty",
            "monkey=banana keyframe=1",
            "",
        ] {
            assert!(
                matches!(mask_secrets(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }
}
