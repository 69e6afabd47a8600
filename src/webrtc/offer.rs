//! Checks on a WHEP or WHIP SDP offer before str0m takes it, each failure with a one-line
//! reason for the 400 answer. Only what framecast needs is checked: the offer is SDP
//! (RFC 8866 §5: it starts with `v=0`), it is an offer (RFC 8842 §5.1: an offerer's DTLS role
//! is `a=setup:actpass`), it has a video m-line that is not rejected (port 0 without
//! `a=bundle-only`, RFC 8843 §7.5), and that m-line offers H.264 in packetization mode 1
//! (RFC 6184 §8.1: the non-interleaved mode, FU-A fragments, which str0m's packetizer writes).
//!
//! [`parse_offer`] then has str0m parse what passed, as the driver takes it.
//!
//! Pure: text in, a summary or a reason out.

use std::fmt;

/// The longest offer taken: a browser's offer with every codec and extension is 5 to 10 kB.
pub const MAX_OFFER_BYTES: usize = 32 * 1024;

/// The video m-line's direction as the offerer says it (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferDirection {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl OfferDirection {
    fn from_attribute(line: &str) -> Option<Self> {
        match line {
            "a=sendrecv" => Some(Self::SendRecv),
            "a=sendonly" => Some(Self::SendOnly),
            "a=recvonly" => Some(Self::RecvOnly),
            "a=inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// The offerer takes media from framecast (a WHEP viewer).
    pub fn offerer_receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The offerer sends media to framecast (a WHIP publisher).
    pub fn offerer_sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSummary {
    /// The direction of the first usable video m-line.
    pub video_direction: OfferDirection,
    /// Its H.264 payload types in packetization mode 1, in the offer's order.
    pub h264_payload_types: Vec<u8>,
}

/// Why an offer is refused; `Display` is the one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferError {
    TooLarge {
        len_bytes: usize,
    },
    NotText,
    NotSdp,
    NotAnOffer,
    NoVideo,
    NoH264,
    NoPacketizationMode1,
    WrongDirection {
        wanted: &'static str,
    },
    /// str0m refused it; its reason.
    Refused(String),
}

impl fmt::Display for OfferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len_bytes } => write!(
                f,
                "the SDP offer is {len_bytes} bytes, more than the {MAX_OFFER_BYTES} taken"
            ),
            Self::NotText => write!(f, "the SDP offer is not UTF-8 text"),
            Self::NotSdp => write!(f, "the body is not SDP: it does not start with v=0"),
            Self::NotAnOffer => write!(
                f,
                "the SDP is not an offer: its a=setup is not actpass (an answer?)"
            ),
            Self::NoVideo => write!(f, "the SDP offer has no video m-line"),
            Self::NoH264 => write!(f, "the SDP offer's video m-line has no H.264 payload type"),
            Self::NoPacketizationMode1 => write!(
                f,
                "the SDP offer has no H.264 payload type with packetization-mode=1"
            ),
            Self::WrongDirection { wanted } => {
                write!(f, "the SDP offer's video m-line must be {wanted}")
            }
            Self::Refused(reason) => write!(f, "the SDP offer was refused: {reason}"),
        }
    }
}

impl std::error::Error for OfferError {}

/// Checks an offer ([`check_offer`]) and has str0m parse it: what a session is opened with.
pub fn parse_offer(body: &[u8]) -> Result<(OfferSummary, str0m::change::SdpOffer), OfferError> {
    let summary = check_offer(body)?;
    // check_offer took it as UTF-8.
    let text = String::from_utf8_lossy(body);
    let offer = str0m::change::SdpOffer::from_sdp_string(&text)
        .map_err(|error| OfferError::Refused(one_line(&error.to_string())))?;
    Ok((summary, offer))
}

/// An error message on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One m-section while it is read.
#[derive(Default)]
struct Section {
    video: bool,
    rejected: bool,
    bundle_only: bool,
    direction: Option<OfferDirection>,
    /// H.264 payload types from `a=rtpmap`.
    h264: Vec<u8>,
    /// Payload types whose `a=fmtp` says packetization-mode=1.
    mode1: Vec<u8>,
}

impl Section {
    fn usable_video(&self) -> bool {
        self.video && (!self.rejected || self.bundle_only)
    }
}

/// Checks an offer's bytes; see the module doc.
pub fn check_offer(body: &[u8]) -> Result<OfferSummary, OfferError> {
    if body.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge {
            len_bytes: body.len(),
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| OfferError::NotText)?;
    let mut lines = text.lines().map(str::trim_end);
    if lines.next() != Some("v=0") {
        return Err(OfferError::NotSdp);
    }
    let mut session_direction = OfferDirection::SendRecv;
    let mut sections: Vec<Section> = Vec::new();
    let mut setups: Vec<&str> = Vec::new();
    for line in lines {
        if let Some(media) = line.strip_prefix("m=") {
            let mut fields = media.split(' ');
            let kind = fields.next().unwrap_or_default();
            let port = fields.next().unwrap_or_default();
            sections.push(Section {
                video: kind == "video",
                rejected: port == "0",
                ..Section::default()
            });
            continue;
        }
        if let Some(setup) = line.strip_prefix("a=setup:") {
            setups.push(setup);
        }
        let direction = OfferDirection::from_attribute(line);
        let Some(section) = sections.last_mut() else {
            if let Some(direction) = direction {
                session_direction = direction;
            }
            continue;
        };
        if let Some(direction) = direction {
            section.direction = Some(direction);
        } else if line == "a=bundle-only" {
            section.bundle_only = true;
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, codec)) = rtpmap.split_once(' ')
                && codec.to_ascii_uppercase().starts_with("H264/")
                && let Ok(pt) = pt.parse()
            {
                section.h264.push(pt);
            }
        } else if let Some(fmtp) = line.strip_prefix("a=fmtp:")
            && let Some((pt, parameters)) = fmtp.split_once(' ')
            && let Ok(pt) = pt.parse()
            && parameters
                .split(';')
                .any(|p| p.trim().eq_ignore_ascii_case("packetization-mode=1"))
        {
            section.mode1.push(pt);
        }
    }
    if setups.is_empty() || setups.iter().any(|s| s.trim() != "actpass") {
        return Err(OfferError::NotAnOffer);
    }
    let videos: Vec<&Section> = sections.iter().filter(|s| s.usable_video()).collect();
    if videos.is_empty() {
        return Err(OfferError::NoVideo);
    }
    if videos.iter().all(|s| s.h264.is_empty()) {
        return Err(OfferError::NoH264);
    }
    let Some(video) = videos
        .iter()
        .find(|s| s.h264.iter().any(|pt| s.mode1.contains(pt)))
    else {
        return Err(OfferError::NoPacketizationMode1);
    };
    Ok(OfferSummary {
        video_direction: video.direction.unwrap_or(session_direction),
        h264_payload_types: video
            .h264
            .iter()
            .copied()
            .filter(|pt| video.mode1.contains(pt))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Chromium's recvonly offer, cut to what matters.
    const CHROMIUM_RECVONLY: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:abcd\r\n\
        a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=fingerprint:sha-256 00:11\r\n\
        a=setup:actpass\r\n\
        a=mid:0\r\n\
        a=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:103 H264/90000\r\n\
        a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n";

    #[test]
    fn a_browsers_recvonly_offer_passes_with_its_mode_1_payload_type() {
        let summary = check_offer(CHROMIUM_RECVONLY.as_bytes()).unwrap();
        assert_eq!(summary.video_direction, OfferDirection::RecvOnly);
        assert!(summary.video_direction.offerer_receives());
        assert!(!summary.video_direction.offerer_sends());
        assert_eq!(summary.h264_payload_types, [103]);
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let cases: &[(String, OfferError)] = &[
            ("hello".into(), OfferError::NotSdp),
            (
                CHROMIUM_RECVONLY.replace("a=setup:actpass", "a=setup:active"),
                OfferError::NotAnOffer,
            ),
            (
                CHROMIUM_RECVONLY.replace("m=video 9", "m=audio 9"),
                OfferError::NoVideo,
            ),
            (
                CHROMIUM_RECVONLY.replace("m=video 9", "m=video 0"),
                OfferError::NoVideo,
            ),
            (
                CHROMIUM_RECVONLY.replace("H264/90000", "VP9/90000"),
                OfferError::NoH264,
            ),
            (
                CHROMIUM_RECVONLY.replace("packetization-mode=1", "packetization-mode=0"),
                OfferError::NoPacketizationMode1,
            ),
        ];
        for (offer, error) in cases {
            assert_eq!(
                check_offer(offer.as_bytes()).as_ref(),
                Err(error),
                "{offer}"
            );
            let reason = error.to_string();
            assert!(!reason.contains('\n') && !reason.is_empty(), "{reason}");
        }
        assert_eq!(check_offer(&[0xff, 0xfe]), Err(OfferError::NotText));
        let big = vec![b'a'; MAX_OFFER_BYTES + 1];
        assert!(matches!(
            check_offer(&big),
            Err(OfferError::TooLarge { len_bytes }) if len_bytes == MAX_OFFER_BYTES + 1
        ));
    }

    #[test]
    fn a_bundle_only_video_line_with_port_0_counts_and_the_session_direction_applies() {
        let offer = CHROMIUM_RECVONLY
            .replace("m=video 9", "m=video 0")
            .replace("a=mid:0\r\n", "a=mid:0\r\na=bundle-only\r\n")
            .replace("a=recvonly\r\n", "")
            .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        let summary = check_offer(offer.as_bytes()).unwrap();
        assert_eq!(summary.video_direction, OfferDirection::SendOnly);
        assert!(summary.video_direction.offerer_sends());
    }

    /// Every truncation of a good offer and every offer with one line left out goes through
    /// the checks and str0m's parse without a panic (the fuzz target `sdp_offer` goes further).
    #[test]
    fn cut_and_thinned_offers_never_panic_on_the_way_to_str0m() {
        let offer = CHROMIUM_RECVONLY.as_bytes();
        assert!(parse_offer(offer).is_ok());
        for len in 0..offer.len() {
            if let Err(error) = parse_offer(&offer[..len]) {
                assert!(!error.to_string().contains('\n'));
            }
        }
        let lines: Vec<&str> = CHROMIUM_RECVONLY.split_inclusive("\r\n").collect();
        for left_out in 0..lines.len() {
            let thinned: String = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != left_out)
                .map(|(_, l)| *l)
                .collect();
            if let Err(error) = parse_offer(thinned.as_bytes()) {
                assert!(!error.to_string().contains('\n'));
            }
        }
    }

    #[test]
    fn no_input_panics() {
        for body in [
            "",
            "v=0",
            "v=0\nm=",
            "v=0\nm=video\na=rtpmap:\na=fmtp:x y",
            "v=0\na=setup:actpass\nm=video 9\na=rtpmap:1 H264\na=fmtp:1",
        ] {
            assert!(check_offer(body.as_bytes()).is_err(), "{body:?}");
        }
    }
}
