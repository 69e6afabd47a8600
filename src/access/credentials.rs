//! The `Authorization` request header, parsed (RFC 9110 §11.6.2): HTTP Basic (RFC 7617), the
//! user name and password players and scripts send (`http://user:pass@host/…`), and Bearer
//! (RFC 6750 §2.1), the token programs send. Pure: bytes in, credentials or why not out.
//!
//! A value that holds a secret never shows it: `Debug` prints names only.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

/// Longer than any real header (actix itself caps a header at 8 KiB): refused before decoding.
pub const MAX_HEADER_BYTES: usize = 4096;

/// RFC 7617 §2 encodes with base64 (RFC 4648 §4) with padding; some clients leave the padding
/// off, which costs nothing to accept.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a request says it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user-id ":" password)`.
    Basic { user: String, password: String },
    /// `Bearer b64token`.
    Bearer { token: String },
}

impl Credentials {
    /// The secret: a password or a token.
    pub fn secret(&self) -> &str {
        match self {
            Self::Basic { password, .. } => password,
            Self::Bearer { token } => token,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Self::Bearer { .. } => f.debug_struct("Bearer").finish_non_exhaustive(),
        }
    }
}

/// Why a header is not credentials framecast takes. The text never quotes the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the Authorization header is longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("the Authorization header is not `SCHEME credentials`")]
    Malformed,
    #[error("the Authorization scheme is neither Basic nor Bearer")]
    UnknownScheme,
    #[error("the Basic credentials are not base64")]
    NotBase64,
    #[error("the Basic credentials are not UTF-8")]
    NotUtf8,
    #[error("the Basic credentials have no `:` between user and password")]
    NoColon,
    #[error("the Bearer token holds characters a token cannot (RFC 6750 §2.1)")]
    BadToken,
}

/// Parses an `Authorization` header value.
pub fn parse(header: &[u8]) -> Result<Credentials, CredentialsError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(CredentialsError::TooLong);
    }
    let header = trim_ows(header);
    // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
    let split = header
        .iter()
        .position(|&b| b == b' ')
        .ok_or(CredentialsError::Malformed)?;
    let (scheme, rest) = header.split_at(split);
    let value = trim_ows(rest);
    if value.is_empty() {
        return Err(CredentialsError::Malformed);
    }
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if scheme.eq_ignore_ascii_case(b"basic") {
        basic(value)
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        bearer(value)
    } else {
        Err(CredentialsError::UnknownScheme)
    }
}

/// RFC 7617 §2: `user-id ":" password` in base64; the user-id holds no colon, the password
/// may; UTF-8 (§2.1, the charset framecast announces).
fn basic(value: &[u8]) -> Result<Credentials, CredentialsError> {
    let decoded = BASIC_BASE64
        .decode(value)
        .map_err(|_| CredentialsError::NotBase64)?;
    let text = String::from_utf8(decoded).map_err(|_| CredentialsError::NotUtf8)?;
    let (user, password) = text.split_once(':').ok_or(CredentialsError::NoColon)?;
    Ok(Credentials::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn bearer(value: &[u8]) -> Result<Credentials, CredentialsError> {
    let body_len = value.len() - value.iter().rev().take_while(|&&b| b == b'=').count();
    let (body, _padding) = value.split_at(body_len);
    let token_char = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(b);
    if body.is_empty() || !body.iter().all(token_char) {
        return Err(CredentialsError::BadToken);
    }
    // Only ASCII passed the check above.
    let token = String::from_utf8_lossy(value).into_owned();
    Ok(Credentials::Bearer { token })
}

/// Without optional white space (RFC 9110 §5.6.3: spaces and tabs) at either end.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// `Basic …` for `user` and `password`, as a client sends it (for tests and tools).
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic_of(user: &str, password: &str) -> Result<Credentials, CredentialsError> {
        Ok(Credentials::Basic {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn basic_credentials_decode_as_rfc_7617_says() {
        // RFC 7617 §2's own example, and §2.1's UTF-8 one ("test" / "123£").
        assert_eq!(
            parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            basic_of("Aladdin", "open sesame")
        );
        assert_eq!(parse(b"Basic dGVzdDoxMjPCow=="), basic_of("test", "123£"));
        // The scheme in any case, extra spaces, padding left off.
        assert_eq!(
            parse(b"bASIC   QWxhZGRpbjpvcGVuIHNlc2FtZQ  "),
            basic_of("Aladdin", "open sesame")
        );
        // The password may hold colons; the user-id cannot, so the first colon splits.
        assert_eq!(parse(b"Basic YTpiOmM="), basic_of("a", "b:c"));
        // Empty user and password are credentials (wrong ones, checked later).
        assert_eq!(parse(b"Basic Og=="), basic_of("", ""));
        assert_eq!(
            parse(basic_header("alice", "pä:ss").as_bytes()),
            basic_of("alice", "pä:ss")
        );
    }

    #[test]
    fn bearer_tokens_are_rfc_6750_b64tokens() {
        let token = |t: &str| {
            Ok(Credentials::Bearer {
                token: t.to_owned(),
            })
        };
        assert_eq!(parse(b"Bearer mF_9.B5f-4.1JqM"), token("mF_9.B5f-4.1JqM"));
        assert_eq!(parse(b"bearer abc+/~=="), token("abc+/~=="));
        assert_eq!(
            parse(b"Bearer 0123456789abcdef0123456789abcdef"),
            token("0123456789abcdef0123456789abcdef")
        );
        for bad in [
            &b"Bearer a b"[..],
            b"Bearer ==",
            b"Bearer a=b",
            b"Bearer \xff",
            b"Bearer a,b",
        ] {
            assert_eq!(parse(bad), Err(CredentialsError::BadToken), "{bad:?}");
        }
    }

    #[test]
    fn wrong_headers_say_why_without_quoting_them() {
        for (header, why) in [
            (&b""[..], CredentialsError::Malformed),
            (b"Basic", CredentialsError::Malformed),
            (b"Basic    ", CredentialsError::Malformed),
            (b"QWxhZGRpbjpvcGVuIHNlc2FtZQ==", CredentialsError::Malformed),
            (b"Digest username=\"a\"", CredentialsError::UnknownScheme),
            (b"Basic !!!!", CredentialsError::NotBase64),
            (b"Basic QWxhZGRpbg==", CredentialsError::NoColon),
            (b"Basic /w==", CredentialsError::NotUtf8),
        ] {
            assert_eq!(parse(header), Err(why), "{header:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(parse(long.as_bytes()), Err(CredentialsError::TooLong));
    }

    #[test]
    fn debug_shows_no_secret() {
        let basic = parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{basic:?}");
        assert!(
            shown.contains("Aladdin") && !shown.contains("sesame"),
            "{shown}"
        );
        let bearer = parse(b"Bearer s3cr3t").unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{bearer:?}").contains("s3cr3t"));
    }
}
