//! Signed, expiring links: `PATH?exp=UNIX&sig=SIGNATURE`, for `<img src>`, hls.js, VLC and
//! `<video>`, which cannot send a password.
//!
//! The signature is HMAC-SHA256 (RFC 2104, FIPS 180-4) with the server's key over the message
//!
//! ```text
//! PATH "\n" EXP
//! ```
//!
//! PATH being the request path exactly as it appears in the URL (no query, no host) and EXP
//! the expiry as written in the query (decimal seconds since the Unix epoch), encoded as
//! unpadded base64url (RFC 4648 §5, 43 characters). The link is valid while the clock is
//! before EXP.
//!
//! Scope: a link for a stream's `live.m3u8` (`/streams/NAME/live.m3u8`, or `/live.m3u8` for
//! the first stream at the root) also covers everything under that stream's HLS prefix
//! (`/streams/NAME/hls/…`, `/hls/…`: media playlists, init sections, parts, segments), so the
//! URIs a signed playlist lists work with the same signature. Likewise a link for a stream's
//! WebRTC page (`/streams/NAME/webrtc`, `/webrtc`) covers its WHEP resource and sessions
//! (`…/whep`, `…/whep/ID`), which the page posts its offer to and deletes when it leaves.
//! Every other link covers its exact
//! path (`/live.mp4` is not HLS and needs a link of its own). Other query parameters
//! (`_HLS_msn`, `_HLS_part`, `_HLS_skip`, `fps`) are not signed: a player adds them.
//!
//! Pure: no clock, no I/O; the caller passes the time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::SignedLinkGrant;
use super::signing_key::SigningKey;

type HmacSha256 = Hmac<Sha256>;

/// The query parameter with the expiry.
pub const EXPIRY_PARAM: &str = "exp";
/// The query parameter with the signature.
pub const SIGNATURE_PARAM: &str = "sig";
/// HMAC-SHA256's output.
const SIGNATURE_BYTES: usize = 32;
/// Digits of the largest u64.
const MAX_EXPIRY_DIGITS: usize = 20;
/// The path of a stream's multivariant playlist, whose link covers the stream's HLS prefix.
const HLS_ENTRY: &str = "live.m3u8";
/// The prefix, under a stream's base, of its HLS media playlists, init sections and media.
const HLS_PREFIX: &str = "hls/";
/// The WebRTC viewer page, whose link covers the stream's WHEP resources.
const WEBRTC_ENTRY: &str = "webrtc";
/// The WHEP resource under a stream's base; sessions are under it.
const WHEP_RESOURCE: &str = "whep";

/// Why a request's signed link is refused; each reads as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedLinkError {
    #[error("signed link: `{0}` is missing")]
    Missing(&'static str),
    #[error("signed link: {0}")]
    Malformed(String),
    #[error("signed link: expired at {expired_at_unix} (Unix time)")]
    Expired { expired_at_unix: u64 },
    #[error("signed link: the signature does not match this path and expiry")]
    BadSignature,
}

/// The signed-link parameters of a query, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParams<'a> {
    /// The expiry's digits as written: they are what was signed.
    pub expiry_text: &'a str,
    pub expires_at_unix: u64,
    pub signature: [u8; SIGNATURE_BYTES],
}

/// The query of a link to `path` valid until `expires_at_unix`: `exp=…&sig=…`.
pub fn sign(key: &SigningKey, path: &str, expires_at_unix: u64) -> String {
    let expiry_text = expires_at_unix.to_string();
    let signature = mac(key, path, &expiry_text).finalize().into_bytes();
    format!(
        "{EXPIRY_PARAM}={expiry_text}&{SIGNATURE_PARAM}={}",
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The resources of a stream a link can be made for (under `/streams/NAME/`, or the first
/// stream's at the root): pages are not, their own resources would not be signed.
pub const SIGNABLE_RESOURCES: [&str; 5] = [
    "stream.mjpg",
    "snapshot.jpg",
    "live.m3u8",
    "live.mp4",
    "webrtc",
];

/// The longest validity a link is made with.
pub const MAX_VALIDITY: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// `PATH?exp=…&sig=…`: a link to `path` valid until `expires_at_unix`.
pub fn signed_url(key: &SigningKey, path: &str, expires_at_unix: u64) -> String {
    format!("{path}?{}", sign(key, path, expires_at_unix))
}

/// Parses a validity: a whole number with a unit, `30s`, `15m`, `1h` or `7d`; from one second
/// to [`MAX_VALIDITY`].
pub fn parse_validity(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "`{}` is not a validity such as 30s, 15m, 1h or 7d",
            text.escape_debug()
        )
    };
    let split = text
        .len()
        .checked_sub(1)
        .filter(|&at| text.is_char_boundary(at))
        .ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let unit_s: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count: u64 = digits.parse().map_err(|_| bad())?;
    let validity = std::time::Duration::from_secs(count.saturating_mul(unit_s));
    if validity.is_zero() || validity > MAX_VALIDITY {
        return Err(format!(
            "`{}` is outside 1s to {}d",
            text.escape_debug(),
            MAX_VALIDITY.as_secs() / 86_400
        ));
    }
    Ok(validity)
}

/// Whether `query` carries a signed link's parameters (either of them): a request without
/// them is not a signed-link request and passes untouched.
pub fn has_link_params(query: &str) -> bool {
    pairs(query).any(|(name, _)| name == EXPIRY_PARAM || name == SIGNATURE_PARAM)
}

/// The signed-link parameters of `query`: `Ok(None)` when it has neither, an error when one
/// is missing, repeated or malformed. Other parameters are ignored.
pub fn parse_link_params(query: &str) -> Result<Option<LinkParams<'_>>, SignedLinkError> {
    let mut expiry: Option<&str> = None;
    let mut signature: Option<&str> = None;
    for (name, value) in pairs(query) {
        let slot = match name {
            EXPIRY_PARAM => &mut expiry,
            SIGNATURE_PARAM => &mut signature,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(SignedLinkError::Malformed(format!(
                "`{name}` is given twice"
            )));
        }
    }
    let (expiry_text, signature_text) = match (expiry, signature) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err(SignedLinkError::Missing(EXPIRY_PARAM)),
        (Some(_), None) => return Err(SignedLinkError::Missing(SIGNATURE_PARAM)),
        (Some(expiry), Some(signature)) => (expiry, signature),
    };
    let expires_at_unix = parse_expiry(expiry_text)?;
    let signature = parse_signature(signature_text)?;
    Ok(Some(LinkParams {
        expiry_text,
        expires_at_unix,
        signature,
    }))
}

/// Checks the signed link in `query` for a request of `path` at `now_unix`. The grant carries
/// the link's own parameters (`exp=…&sig=…`, nothing else of the query), for the URIs a
/// playlist lists.
pub fn verify(
    key: &SigningKey,
    path: &str,
    query: &str,
    now_unix: u64,
) -> Result<SignedLinkGrant, SignedLinkError> {
    let params = parse_link_params(query)?.ok_or(SignedLinkError::Missing(SIGNATURE_PARAM))?;
    // The signature first: a forged link learns nothing about expiry from the answer.
    let exact = mac(key, path, params.expiry_text)
        .verify_slice(&params.signature)
        .is_ok();
    let covered = exact
        || hls_scope(path)
            .or_else(|| webrtc_scope(path))
            .is_some_and(|entry| {
                mac(key, &entry, params.expiry_text)
                    .verify_slice(&params.signature)
                    .is_ok()
            });
    if !covered {
        return Err(SignedLinkError::BadSignature);
    }
    if now_unix >= params.expires_at_unix {
        return Err(SignedLinkError::Expired {
            expired_at_unix: params.expires_at_unix,
        });
    }
    Ok(SignedLinkGrant {
        expires_at_unix: params.expires_at_unix,
        query: format!(
            "{EXPIRY_PARAM}={}&{SIGNATURE_PARAM}={}",
            params.expiry_text,
            URL_SAFE_NO_PAD.encode(params.signature)
        ),
    })
}

/// For a path under a stream's HLS prefix, the path of the `live.m3u8` whose link covers it:
/// `/streams/NAME/hls/…` → `/streams/NAME/live.m3u8`, `/hls/…` → `/live.m3u8`.
pub fn hls_scope(path: &str) -> Option<String> {
    let (base, rest) = split_base(path)?;
    let under = rest.strip_prefix(HLS_PREFIX)?;
    (!under.is_empty()).then(|| format!("{base}{HLS_ENTRY}"))
}

/// For a stream's WHEP resource or one of its sessions, the path of the WebRTC page whose
/// link covers it: `/streams/NAME/whep[/ID]` → `/streams/NAME/webrtc`, `/whep[/ID]` →
/// `/webrtc`.
pub fn webrtc_scope(path: &str) -> Option<String> {
    let (base, rest) = split_base(path)?;
    let under = rest.strip_prefix(WHEP_RESOURCE)?;
    let session = match under.strip_prefix('/') {
        Some(id) => !id.is_empty() && !id.contains('/'),
        None => under.is_empty(),
    };
    session.then(|| format!("{base}{WEBRTC_ENTRY}"))
}

/// A path as its stream's base (`/streams/NAME/`, or `/` for the root) and the rest.
fn split_base(path: &str) -> Option<(&str, &str)> {
    match path.strip_prefix("/streams/") {
        Some(after) => {
            let (name, rest) = after.split_once('/')?;
            if name.is_empty() {
                return None;
            }
            Some((&path[..path.len() - rest.len()], rest))
        }
        None => Some(("/", path.strip_prefix('/')?)),
    }
}

fn mac(key: &SigningKey, path: &str, expiry_text: &str) -> HmacSha256 {
    // HMAC takes keys of any length (RFC 2104 §2); new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(expiry_text.as_bytes());
    mac
}

/// `name=value` pairs of a raw query; a pair without `=` has an empty value.
fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn parse_expiry(text: &str) -> Result<u64, SignedLinkError> {
    let malformed = || {
        let shown: String = text.chars().take(24).collect();
        SignedLinkError::Malformed(format!(
            "`{EXPIRY_PARAM}={}` is not a Unix time in seconds",
            shown.escape_debug()
        ))
    };
    if text.is_empty()
        || text.len() > MAX_EXPIRY_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    text.parse().map_err(|_| malformed())
}

fn parse_signature(text: &str) -> Result<[u8; SIGNATURE_BYTES], SignedLinkError> {
    let malformed = || {
        SignedLinkError::Malformed(format!(
            "`{SIGNATURE_PARAM}` is not {SIGNATURE_BYTES} bytes of unpadded base64url"
        ))
    };
    // 43 characters encode 32 bytes; anything longer is refused before decoding.
    if text.len() != SIGNATURE_BYTES.div_ceil(3) * 4 - 1 {
        return Err(malformed());
    }
    let mut signature = [0u8; SIGNATURE_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut signature) {
        Ok(SIGNATURE_BYTES) => Ok(signature),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes 0, 1, …, 31.
    fn key() -> SigningKey {
        let bytes: Vec<u8> = (0..32).collect();
        SigningKey::from_bytes(&bytes).unwrap_or_else(|| panic!("a key"))
    }

    const EXP: u64 = 1_767_225_600;

    /// Golden values, computed independently with
    /// `printf 'PATH\n1767225600' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001…1f -binary | base64`
    /// (then `+/` → `-_`, no `=`).
    #[test]
    fn signatures_match_an_independent_hmac() {
        for (path, sig) in [
            (
                "/streams/front/stream.mjpg",
                "JN80OYmRbsjLo7z48txKc2Dw24lkbHRI14Wkv261phM",
            ),
            ("/live.m3u8", "2Q0jxghnfOKBGZxqR-z0JJhbrdgJ7qsTyP2iaSptsA8"),
            (
                "/streams/front/live.m3u8",
                "P0qfbAd2S0zii7Ou359Ba3C7EJ5aH6jaUJdUTBq3ZMs",
            ),
        ] {
            assert_eq!(sign(&key(), path, EXP), format!("exp={EXP}&sig={sig}"));
        }
    }

    #[test]
    fn a_link_verifies_for_its_path_until_it_expires() {
        let path = "/streams/front/stream.mjpg";
        let query = sign(&key(), path, EXP);
        let grant = verify(&key(), path, &query, EXP - 1);
        assert_eq!(
            grant,
            Ok(SignedLinkGrant {
                expires_at_unix: EXP,
                query: query.clone()
            })
        );
        assert_eq!(
            verify(&key(), path, &query, EXP),
            Err(SignedLinkError::Expired {
                expired_at_unix: EXP
            })
        );
        // Other parameters around it are neither signed nor carried.
        let with_others = format!("fps=5&{query}&x");
        assert_eq!(
            verify(&key(), path, &with_others, 0).map(|g| g.query),
            Ok(query.clone())
        );
        // Another path, another key, another expiry: refused.
        for (key, path, query) in [
            (key(), "/streams/front/snapshot.jpg", query.clone()),
            (key(), "/streams/back/stream.mjpg", query.clone()),
            (
                SigningKey::from_bytes(&[7; 32]).unwrap_or_else(|| panic!("a key")),
                path,
                query.clone(),
            ),
            (key(), path, query.replace(&EXP.to_string(), "1767225601")),
        ] {
            assert_eq!(
                verify(&key, path, &query, 0),
                Err(SignedLinkError::BadSignature),
                "{path} {query}"
            );
        }
    }

    #[test]
    fn a_webrtc_page_link_covers_its_streams_whep_resource_and_sessions_only() {
        let stream_query = sign(&key(), "/streams/front/webrtc", EXP);
        let root_query = sign(&key(), "/webrtc", EXP);
        for path in [
            "/streams/front/webrtc",
            "/streams/front/whep",
            "/streams/front/whep/0123456789abcdef0123456789abcdef",
        ] {
            assert!(verify(&key(), path, &stream_query, 0).is_ok(), "{path}");
            assert!(verify(&key(), path, &root_query, 0).is_err(), "{path}");
        }
        for path in ["/webrtc", "/whep", "/whep/0123"] {
            assert!(verify(&key(), path, &root_query, 0).is_ok(), "{path}");
            assert!(verify(&key(), path, &stream_query, 0).is_err(), "{path}");
        }
        for path in [
            "/streams/front/whep/",
            "/streams/front/whep/a/b",
            "/streams/front/whepx",
            "/streams/back/whep",
            "/streams/front/live.mp4",
            "/streams/front/stream.mjpg",
            "/streams/front/status",
        ] {
            assert!(verify(&key(), path, &stream_query, 0).is_err(), "{path}");
        }
    }

    #[test]
    fn a_live_m3u8_link_covers_its_streams_hls_prefix_only() {
        let stream_query = sign(&key(), "/streams/front/live.m3u8", EXP);
        let root_query = sign(&key(), "/live.m3u8", EXP);
        for path in [
            "/streams/front/live.m3u8",
            "/streams/front/hls/ab12/media.m3u8",
            "/streams/front/hls/ab12/init0.mp4",
            "/streams/front/hls/ab12/part7.2.m4s",
            "/streams/front/hls/ab12/seg7.m4s",
        ] {
            assert!(verify(&key(), path, &stream_query, 0).is_ok(), "{path}");
            assert!(verify(&key(), path, &root_query, 0).is_err(), "{path}");
        }
        for path in ["/live.m3u8", "/hls/ab12/media.m3u8", "/hls/ab12/seg7.m4s"] {
            assert!(verify(&key(), path, &root_query, 0).is_ok(), "{path}");
            assert!(verify(&key(), path, &stream_query, 0).is_err(), "{path}");
        }
        for path in [
            "/streams/front/live.mp4",
            "/streams/front/stream.mjpg",
            "/streams/front/hls",
            "/streams/front/hls/",
            "/streams/back/hls/ab12/seg7.m4s",
            "/streams/front/status",
            "/live.mp4",
            "/stream.mjpg",
            "/hls",
        ] {
            assert!(verify(&key(), path, &stream_query, 0).is_err(), "{path}");
            assert!(verify(&key(), path, &root_query, 0).is_err(), "{path}");
        }
    }

    #[test]
    fn validities_take_a_unit_and_bad_ones_say_why() {
        use std::time::Duration;
        assert_eq!(parse_validity("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_validity("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_validity("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_validity("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_validity("366d"), Ok(MAX_VALIDITY));
        for bad in [
            "",
            "h",
            "1",
            "1 h",
            "-1h",
            "1.5h",
            "1w",
            "1H",
            "0s",
            "367d",
            "99999999999s",
            "1é",
        ] {
            let error = parse_validity(bad).expect_err(bad);
            assert!(error.contains('`'), "{bad}: {error}");
        }
    }

    #[test]
    fn scopes_of_paths() {
        assert_eq!(
            hls_scope("/streams/a/hls/x/seg1.m4s").as_deref(),
            Some("/streams/a/live.m3u8")
        );
        assert_eq!(hls_scope("/hls/x/seg1.m4s").as_deref(), Some("/live.m3u8"));
        for path in [
            "",
            "/",
            "/hls",
            "/hls/",
            "/streams//hls/x",
            "/streams/a",
            "x/hls/y",
        ] {
            assert_eq!(hls_scope(path), None, "{path}");
        }
    }

    #[test]
    fn missing_and_malformed_parameters_say_which() {
        let sig = "JN80OYmRbsjLo7z48txKc2Dw24lkbHRI14Wkv261phM";
        assert_eq!(parse_link_params("fps=5&_HLS_msn=3"), Ok(None));
        assert!(!has_link_params("fps=5&expires=3&signature"));
        assert!(has_link_params("sig"));
        for (query, reason) in [
            ("exp=5", "`sig` is missing"),
            (&format!("sig={sig}"), "`exp` is missing"),
            (&format!("exp=5&exp=6&sig={sig}"), "`exp` is given twice"),
            (&format!("exp=-5&sig={sig}"), "not a Unix time"),
            (&format!("exp=&sig={sig}"), "not a Unix time"),
            (&format!("exp=1e9&sig={sig}"), "not a Unix time"),
            (
                &format!("exp=18446744073709551616&sig={sig}"),
                "not a Unix time",
            ),
            (
                &format!("exp={}&sig={sig}", "9".repeat(400)),
                "not a Unix time",
            ),
            ("exp=5&sig=abc", "not 32 bytes"),
            (&format!("exp=5&sig={sig}="), "not 32 bytes"),
            (
                &format!("exp=5&sig={}", sig.replace('J', "+")),
                "not 32 bytes",
            ),
            // The last character carries bits past the 32 bytes: not canonical.
            (
                &format!("exp=5&sig={}", sig.replace('M', "N")),
                "not 32 bytes",
            ),
        ] {
            let error = verify(&key(), "/x", query, 0).expect_err(query).to_string();
            assert!(error.contains(reason), "{query}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}
