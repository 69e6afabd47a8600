//! What an `rtsp://` or `rtsps://` source names: the camera's URL, the credentials in it,
//! the RTP transport asked for and, over TLS, how the camera's certificate is checked. Pure:
//! text in, values out.
//!
//! `rtsp[s]://[user:password@]host[:port]/path[?query][#options]`. The user name and password
//! are the URL's userinfo (RFC 3986 §3.2.1), percent-decoded; they are taken out of the URL
//! that is sent to the camera and never shown (Display and Debug mask the password). A
//! fragment is never sent to a server (RFC 3986 §3.5), so options in it cannot clash with the
//! query a camera wants. They are `&`-separated:
//!
//! - `tcp` (the default) for RTP interleaved in the RTSP connection (RFC 2326 §10.12), which
//!   passes firewalls and NAT and loses nothing; `udp` for RTP over UDP (plain `rtsp://`
//!   only: over TLS, UDP would need SRTP, RFC 7826 §19.2);
//! - for `rtsps://` (RTSP over TLS, default port 322, RFC 7826 §19.2): the camera's
//!   certificate is checked against the system's certificate authorities unless
//!   `sha256=HEX` pins it (the SHA-256 of its DER bytes, as `openssl x509 -fingerprint
//!   -sha256` prints it, colons optional), or `insecure` takes any (the connection is then
//!   encrypted but not authenticated). Cameras mostly have self-signed certificates (UniFi
//!   Protect, Bambu Lab printers): pinning is the safe way to take them.

use percent_encoding::percent_decode_str;
use url::Url;

use crate::source::redact::mask_secrets;

/// The default RTSP port (RFC 2326 §3.2) and the one over TLS (RFC 7826 §19.2).
const DEFAULT_PORT: u16 = 554;
const DEFAULT_TLS_PORT: u16 = 322;

/// How RTP packets travel from the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: the default.
    Tcp,
    /// RTP and RTCP over UDP: a lost packet breaks the picture until the next key frame.
    Udp,
}

/// How an `rtsps://` camera's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateCheck {
    /// Against the system's certificate authorities, for the host in the URL.
    SystemRoots,
    /// Exactly this certificate: the SHA-256 of its DER bytes.
    Sha256([u8; 32]),
    /// Any certificate (`#insecure`): encrypted, not authenticated.
    AcceptAny,
}

/// An `rtsp://` or `rtsps://` source as written, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspAddress {
    /// The URL as written, credentials and fragment included.
    written: String,
    transport: RtspTransport,
    /// `Some` for `rtsps://`.
    tls: Option<CertificateCheck>,
    /// Credentials given beside the URL (a stream's `source_user` and `source_password`),
    /// never in a URL without its own.
    given_credentials: Option<RtspCredentials>,
}

/// A user name and password, percent-decoded. Debug does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RtspCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspCredentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl RtspAddress {
    /// Parses `text`, which starts with `rtsp://` or `rtsps://`. The error never repeats the
    /// password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = mask_secrets(text);
        let url =
            Url::parse(text).map_err(|e| format!("`{shown}` is not a valid RTSP URL: {e}"))?;
        let over_tls = match url.scheme() {
            "rtsp" => false,
            "rtsps" => true,
            other => return Err(format!("`{shown}`: `{other}` is not rtsp:// or rtsps://")),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{shown}` has no host (rtsp://host[:port]/path)"));
        }
        let mut transport = RtspTransport::Tcp;
        let mut check = CertificateCheck::SystemRoots;
        let mut checks_named = 0;
        for option in url.fragment().unwrap_or_default().split('&') {
            match option {
                "" | "tcp" => transport = RtspTransport::Tcp,
                "udp" => transport = RtspTransport::Udp,
                "insecure" => {
                    check = CertificateCheck::AcceptAny;
                    checks_named += 1;
                }
                _ if option.starts_with("sha256=") => {
                    let hex = &option["sha256=".len()..];
                    let pin = parse_sha256(hex).ok_or_else(|| {
                        format!(
                            "`{shown}`: `#sha256=` takes the certificate's SHA-256, 64 hex \
                             digits (colons allowed)"
                        )
                    })?;
                    check = CertificateCheck::Sha256(pin);
                    checks_named += 1;
                }
                other => {
                    return Err(format!(
                        "`{shown}`: unknown option `#{other}` (tcp, the default, or udp; for \
                         rtsps:// also sha256=HEX or insecure)"
                    ));
                }
            }
        }
        if checks_named > 1 {
            return Err(format!(
                "`{shown}`: name one certificate check, `#sha256=…` or `#insecure`"
            ));
        }
        if !over_tls && checks_named > 0 {
            return Err(format!(
                "`{shown}`: `#sha256=` and `#insecure` are for rtsps:// (RTSP over TLS)"
            ));
        }
        if over_tls && transport == RtspTransport::Udp {
            return Err(format!(
                "`{shown}`: rtsps:// takes RTP in its TLS connection only (#tcp); over UDP it \
                 would need SRTP, which framecast does not speak"
            ));
        }
        let address = Self {
            written: text.to_owned(),
            transport,
            tls: over_tls.then_some(check),
            given_credentials: None,
        };
        // Userinfo that is not valid UTF-8 once decoded cannot be sent.
        address.credentials_of(&url)?;
        Ok(address)
    }

    pub fn transport(&self) -> RtspTransport {
        self.transport
    }

    /// The address with `credentials` from elsewhere than its URL (a stream's config), which
    /// must then have none of its own.
    pub fn with_credentials(mut self, credentials: RtspCredentials) -> Result<Self, String> {
        let url = Url::parse(&self.written).map_err(|e| format!("bad RTSP URL: {e}"))?;
        if self.credentials_of(&url)?.is_some() {
            return Err(format!(
                "`{}` has a user name and password already; give them in one place",
                mask_secrets(&self.written)
            ));
        }
        self.given_credentials = Some(credentials);
        Ok(self)
    }

    /// For `rtsps://`: how the camera's certificate is checked.
    pub fn tls(&self) -> Option<&CertificateCheck> {
        self.tls.as_ref()
    }

    /// The camera's host, for connecting (an IPv6 address without brackets), and its port.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let url = Url::parse(&self.written).ok()?;
        let host = match url.host()? {
            url::Host::Domain(name) => name.to_owned(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Some((host, url.port().unwrap_or(self.default_port())))
    }

    fn default_port(&self) -> u16 {
        if self.tls.is_some() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        }
    }

    /// The URL to request from the camera (no credentials, no fragment) and the credentials.
    pub fn request(&self) -> Result<(Url, Option<RtspCredentials>), String> {
        let mut url = Url::parse(&self.written).map_err(|e| format!("bad RTSP URL: {e}"))?;
        let credentials = match &self.given_credentials {
            Some(given) => Some(given.clone()),
            None => self.credentials_of(&url)?,
        };
        // Both fail only for URLs without a host, which `parse` refused.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        Ok((url, credentials))
    }

    /// `host:port`, for messages that say what could not be reached.
    pub fn host_and_port(&self) -> String {
        let Ok(url) = Url::parse(&self.written) else {
            return String::new();
        };
        let host = url.host_str().unwrap_or_default();
        format!("{host}:{}", url.port().unwrap_or(self.default_port()))
    }

    fn credentials_of(&self, url: &Url) -> Result<Option<RtspCredentials>, String> {
        if url.username().is_empty() && url.password().is_none() {
            return Ok(None);
        }
        let decode = |part: &str, what: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| {
                    format!(
                        "`{}`: the {what} is not UTF-8 once percent-decoded",
                        mask_secrets(&self.written)
                    )
                })
        };
        Ok(Some(RtspCredentials {
            username: decode(url.username(), "user name")?,
            password: decode(url.password().unwrap_or_default(), "password")?,
        }))
    }
}

/// 32 bytes from 64 hex digits, colons between them allowed (as openssl prints them).
fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// `AB:CD:…`, as openssl prints a fingerprint.
pub fn format_sha256(digest: &[u8; 32]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl std::fmt::Display for RtspAddress {
    /// The URL as written, with its password masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&mask_secrets(&self.written))
    }
}

impl std::fmt::Debug for RtspAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspAddress")
            .field("url", &mask_secrets(&self.written))
            .field("transport", &self.transport)
            .field("tls", &self.tls)
            .field("given_credentials", &self.given_credentials)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_are_decoded() {
        let address = RtspAddress::parse("rtsp://admin:p%40ss%3Aw@10.0.0.5/Streaming/101").unwrap();
        let (url, credentials) = address.request().unwrap();
        assert_eq!(url.as_str(), "rtsp://10.0.0.5/Streaming/101");
        assert_eq!(
            credentials,
            Some(RtspCredentials {
                username: "admin".into(),
                password: "p@ss:w".into()
            })
        );
        assert_eq!(address.host_and_port(), "10.0.0.5:554");
        assert_eq!(address.transport(), RtspTransport::Tcp);
    }

    #[test]
    fn the_fragment_chooses_the_transport_and_is_not_sent() {
        for (text, transport, sent) in [
            (
                "rtsp://cam:8554/live?channel=1&subtype=0#udp",
                RtspTransport::Udp,
                "rtsp://cam:8554/live?channel=1&subtype=0",
            ),
            ("rtsp://cam/live#tcp", RtspTransport::Tcp, "rtsp://cam/live"),
            ("rtsp://cam/live", RtspTransport::Tcp, "rtsp://cam/live"),
        ] {
            let address = RtspAddress::parse(text).unwrap();
            assert_eq!(address.transport(), transport, "{text}");
            let (url, credentials) = address.request().unwrap();
            assert_eq!(url.as_str(), sent);
            assert_eq!(credentials, None);
        }
    }

    #[test]
    fn passwords_are_never_shown() {
        let address = RtspAddress::parse("rtsp://admin:hunter2@cam/live#udp").unwrap();
        assert_eq!(address.to_string(), "rtsp://admin:***@cam/live#udp");
        let debug = format!("{address:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let (_, credentials) = address.request().unwrap();
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn bad_addresses_say_why_without_the_password() {
        for (text, message) in [
            (
                "rtsps://u:secret@cam/live#udp",
                "`rtsps://u:***@cam/live#udp`: rtsps:// takes RTP in its TLS connection only \
                 (#tcp); over UDP it would need SRTP, which framecast does not speak",
            ),
            (
                "rtsp://u:secret@cam/live#quic",
                "`rtsp://u:***@cam/live#quic`: unknown option `#quic` (tcp, the default, or \
                 udp; for rtsps:// also sha256=HEX or insecure)",
            ),
            (
                "rtsp://cam/live#insecure",
                "`rtsp://cam/live#insecure`: `#sha256=` and `#insecure` are for rtsps:// (RTSP \
                 over TLS)",
            ),
            (
                "rtsps://cam/live#sha256=abcd",
                "`rtsps://cam/live#sha256=abcd`: `#sha256=` takes the certificate's SHA-256, 64 \
                 hex digits (colons allowed)",
            ),
            (
                "rtsps://cam/live#insecure&sha256=00",
                "`rtsps://cam/live#insecure&sha256=00`: `#sha256=` takes the certificate's \
                 SHA-256, 64 hex digits (colons allowed)",
            ),
            (
                "http://cam/live",
                "`http://cam/live`: `http` is not rtsp:// or rtsps://",
            ),
            (
                "rtsp://u:secret@cam:99999/live",
                "`rtsp://u:***@cam:99999/live` is not a valid RTSP URL: invalid port number",
            ),
            (
                "rtsp:///live",
                "`rtsp:///live` has no host (rtsp://host[:port]/path)",
            ),
            (
                "rtsp://u:%FF@cam/",
                "`rtsp://u:***@cam/`: the password is not UTF-8 once percent-decoded",
            ),
        ] {
            assert_eq!(RtspAddress::parse(text), Err(message.to_owned()), "{text}");
        }
    }

    #[test]
    fn rtsps_checks_the_certificate_as_asked_and_defaults_to_port_322() {
        let pin = "8F:43:28:8A:D2:72:F3:10:3B:6F:B1:42:84:85:EA:30:14:C0:BC:FE:BC:50:35:B3:2D:2F:0E:0A:83:8B:E1:7F";
        let digest = parse_sha256(pin).unwrap();
        assert_eq!(digest[0], 0x8f);
        assert_eq!(digest[31], 0x7f);
        assert_eq!(format_sha256(&digest), pin);
        for (text, check, host_port) in [
            (
                "rtsps://cam.example/live".to_owned(),
                CertificateCheck::SystemRoots,
                ("cam.example", 322),
            ),
            (
                format!(
                    "rtsps://10.0.0.9:7441/x#sha256={}",
                    pin.replace(':', "").to_lowercase()
                ),
                CertificateCheck::Sha256(digest),
                ("10.0.0.9", 7441),
            ),
            (
                "rtsps://[::1]:8322/x#tcp&insecure".to_owned(),
                CertificateCheck::AcceptAny,
                ("::1", 8322),
            ),
        ] {
            let address = RtspAddress::parse(&text).unwrap();
            assert_eq!(address.tls(), Some(&check), "{text}");
            assert_eq!(address.transport(), RtspTransport::Tcp);
            let (host, port) = address.host_port().unwrap();
            assert_eq!((host.as_str(), port), host_port, "{text}");
            let (url, _) = address.request().unwrap();
            assert_eq!(url.fragment(), None);
        }
        let plain = RtspAddress::parse("rtsp://cam/live").unwrap();
        assert_eq!(plain.tls(), None);
        assert_eq!(plain.host_port(), Some(("cam".to_owned(), 554)));
    }

    #[test]
    fn credentials_may_be_given_beside_a_url_without_any() {
        let given = RtspCredentials {
            username: "admin".into(),
            password: "hunter2".into(),
        };
        let address = RtspAddress::parse("rtsp://cam/live")
            .unwrap()
            .with_credentials(given.clone())
            .unwrap();
        let (url, credentials) = address.request().unwrap();
        assert_eq!(url.as_str(), "rtsp://cam/live");
        assert_eq!(credentials, Some(given.clone()));
        assert_eq!(address.to_string(), "rtsp://cam/live");
        assert!(!format!("{address:?}").contains("hunter2"));
        assert_eq!(
            RtspAddress::parse("rtsp://u:pw@cam/live")
                .unwrap()
                .with_credentials(given),
            Err(
                "`rtsp://u:***@cam/live` has a user name and password already; give them in \
                 one place"
                    .into()
            )
        );
    }
}
