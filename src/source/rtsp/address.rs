//! What an `rtsp://` source names: the camera's URL, the credentials in it and the RTP
//! transport asked for. Pure: text in, values out.
//!
//! `rtsp://[user:password@]host[:port]/path[?query][#udp]`. The user name and password are
//! the URL's userinfo (RFC 3986 §3.2.1), percent-decoded; they are taken out of the URL that
//! is sent to the camera and never shown (Display and Debug mask the password). The fragment
//! chooses the transport: none or `#tcp` for RTP interleaved in the RTSP connection (RFC 2326
//! §10.12), which passes firewalls and NAT and loses nothing; `#udp` for RTP over UDP. A
//! fragment is never sent to a server (RFC 3986 §3.5), so it cannot clash with the query a
//! camera wants.
//!
//! `rtsps://` (RTSP over TLS) is refused here: the RTSP client framecast uses speaks plain
//! `rtsp://` only.

use percent_encoding::percent_decode_str;
use url::Url;

use crate::source::redact::mask_secrets;

/// The default RTSP port (RFC 2326 §3.2).
const DEFAULT_PORT: u16 = 554;

/// How RTP packets travel from the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: the default.
    Tcp,
    /// RTP and RTCP over UDP: a lost packet breaks the picture until the next key frame.
    Udp,
}

/// An `rtsp://` source as written, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspAddress {
    /// The URL as written, credentials and fragment included.
    written: String,
    transport: RtspTransport,
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
        match url.scheme() {
            "rtsp" => {}
            "rtsps" => {
                return Err(format!(
                    "`{shown}`: rtsps:// (RTSP over TLS) is not supported; the camera's \
                     plain rtsp:// address works (usually port 554)"
                ));
            }
            other => return Err(format!("`{shown}`: `{other}` is not rtsp://")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{shown}` has no host (rtsp://host[:port]/path)"));
        }
        let transport = match url.fragment() {
            None | Some("" | "tcp") => RtspTransport::Tcp,
            Some("udp") => RtspTransport::Udp,
            Some(other) => {
                return Err(format!(
                    "`{shown}`: unknown transport `#{other}` (#tcp, the default, or #udp)"
                ));
            }
        };
        let address = Self {
            written: text.to_owned(),
            transport,
        };
        // Userinfo that is not valid UTF-8 once decoded cannot be sent.
        address.credentials_of(&url)?;
        Ok(address)
    }

    pub fn transport(&self) -> RtspTransport {
        self.transport
    }

    /// The URL to request from the camera (no credentials, no fragment) and the credentials.
    pub fn request(&self) -> Result<(Url, Option<RtspCredentials>), String> {
        let mut url = Url::parse(&self.written).map_err(|e| format!("bad RTSP URL: {e}"))?;
        let credentials = self.credentials_of(&url)?;
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
        format!("{host}:{}", url.port().unwrap_or(DEFAULT_PORT))
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
                "rtsps://u:secret@cam/live",
                "`rtsps://u:***@cam/live`: rtsps:// (RTSP over TLS) is not supported; the \
                 camera's plain rtsp:// address works (usually port 554)",
            ),
            (
                "rtsp://u:secret@cam/live#quic",
                "`rtsp://u:***@cam/live#quic`: unknown transport `#quic` (#tcp, the default, \
                 or #udp)",
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
}
