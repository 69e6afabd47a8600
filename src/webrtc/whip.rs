//! A WHIP publisher (RFC 9725): a receive session whose H.264 goes to its stream's source
//! through the stream's [`WhipInlet`] ([`crate::source::whip`]).
//!
//! The handler runs on the driver's task and never waits: each access unit str0m hands over
//! is pushed into the inlet's bounded channel (a full one drops it), and a key frame is asked
//! of the publisher (PLI) when the session connects and, rate-limited, after a loss until an
//! IDR comes through. The session's end (DELETE, the peer gone, ICE/DTLS never up) drops the
//! publisher's place in the inlet: the source sees it leave and the next publisher may come.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use str0m::format::Codec;
use str0m::media::MediaData;

use super::offer::{OfferError, OfferSummary, check_offer};
use super::{CloseReason, SessionHandler, SessionId, WebRtc};
use crate::source::whip::{WhipPublisher, WhipSample};

/// Why a publisher's offer is refused beyond [`check_offer`]'s reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishOfferError {
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("the WHIP offer's video m-line must send (sendonly or sendrecv): framecast receives")]
    DoesNotSend,
    #[error(
        "the WHIP offer sends simulcast (a=simulcast): framecast takes one H.264 layer; \
         publish without simulcast"
    )]
    Simulcast,
}

/// Checks a publisher's offer: an SDP offer with H.264 in packetization mode 1
/// ([`check_offer`]) whose video the publisher sends (RFC 9725 §4.2: the WHIP client sends,
/// the server receives), in one layer: simulcast (RFC 8853) would interleave the layers'
/// pictures in the one stream. Pure.
pub fn check_publish_offer(body: &[u8]) -> Result<OfferSummary, PublishOfferError> {
    let summary = check_offer(body)?;
    if !summary.video_direction.offerer_sends() {
        return Err(PublishOfferError::DoesNotSend);
    }
    // check_offer took the body as UTF-8.
    let text = String::from_utf8_lossy(body);
    if text.lines().any(|line| line.starts_with("a=simulcast:")) {
        return Err(PublishOfferError::Simulcast);
    }
    Ok(summary)
}

/// The driver's side of a WHIP publisher.
struct WhipHandler {
    webrtc: WebRtc,
    id: SessionId,
    stream: String,
    /// `None` once the session ended: the inlet's place is free.
    publisher: Option<WhipPublisher>,
    /// The stream stopped under the session: it has been told to close.
    closing: bool,
}

impl SessionHandler for WhipHandler {
    fn on_connected(&mut self) {
        tracing::info!(stream = %self.stream, session = %self.id, "WHIP publisher connected");
        // The picture should start at once; a browser's first frame is an IDR anyway, and
        // until its first packet arrives str0m may have no stream to send the PLI on.
        self.webrtc.request_key_frame(self.id);
    }

    fn on_media(&mut self, data: &MediaData) {
        let Some(publisher) = &mut self.publisher else {
            return;
        };
        // The offer was checked for H.264 and str0m negotiates nothing else, but a unit of
        // another codec must never reach an H.264 source.
        if data.params.spec().codec != Codec::H264 {
            return;
        }
        let now = Instant::now();
        let sample = WhipSample {
            annex_b: Bytes::copy_from_slice(&data.data),
            arrived_at: wall_clock_of(data.network_time, now, SystemTime::now()),
            contiguous: data.contiguous,
        };
        let pushed = publisher.push(sample, now);
        if pushed.ask_key_frame {
            self.webrtc.request_key_frame(self.id);
        }
        if pushed.closed && !self.closing {
            // The stream stopped (a reload removed or restarted it): end the session, off this
            // task, which the close command goes through.
            self.closing = true;
            let (webrtc, id) = (self.webrtc.clone(), self.id);
            tokio::spawn(async move { webrtc.end_session(id, CloseReason::StreamEnded).await });
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        tracing::info!(
            stream = %self.stream,
            session = %self.id,
            reason = reason.as_str(),
            "WHIP publisher left"
        );
        self.publisher = None;
    }
}

/// The wall-clock time of `instant`, given that `now` is `wall_now`.
fn wall_clock_of(instant: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    wall_now
        .checked_sub(now.saturating_duration_since(instant))
        .unwrap_or(wall_now)
}

/// The handler of WHIP session `id` on `stream`, holding the inlet's place `publisher`.
pub fn publisher(
    webrtc: WebRtc,
    id: SessionId,
    stream: String,
    publisher: WhipPublisher,
) -> Box<dyn SessionHandler> {
    Box::new(WhipHandler {
        webrtc,
        id,
        stream,
        publisher: Some(publisher),
        closing: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The shape of Chromium's WHIP offer (audio and video, sendonly), cut to what matters.
    const CHROMIUM_SENDONLY: &str = "v=0\r\n\
        o=- 1 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=setup:actpass\r\n\
        a=mid:0\r\n\
        a=sendonly\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\n\
        a=setup:actpass\r\n\
        a=mid:1\r\n\
        a=sendonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn a_browsers_sendonly_offer_with_h264_is_taken() {
        let summary = check_publish_offer(CHROMIUM_SENDONLY.as_bytes()).unwrap();
        assert_eq!(summary.h264_payload_types, [102]);
        let sendrecv = CHROMIUM_SENDONLY.replace("a=sendonly", "a=sendrecv");
        assert!(check_publish_offer(sendrecv.as_bytes()).is_ok());
    }

    #[test]
    fn offers_a_publisher_cannot_make_are_refused_with_a_reason() {
        for (offer, error) in [
            (
                CHROMIUM_SENDONLY.replace("a=sendonly", "a=recvonly"),
                PublishOfferError::DoesNotSend,
            ),
            (
                CHROMIUM_SENDONLY.replace("packetization-mode=1", "packetization-mode=0"),
                PublishOfferError::Offer(OfferError::NoPacketizationMode1),
            ),
            (
                CHROMIUM_SENDONLY
                    .replace("a=rtpmap:102 H264/90000\r\n", "")
                    .replace("a=fmtp:102", "a=fmtp:96"),
                PublishOfferError::Offer(OfferError::NoH264),
            ),
            (
                format!(
                    "{CHROMIUM_SENDONLY}a=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n"
                ),
                PublishOfferError::Simulcast,
            ),
            (
                "v=0\r\n".to_owned(),
                PublishOfferError::Offer(OfferError::NotAnOffer),
            ),
        ] {
            assert_eq!(
                check_publish_offer(offer.as_bytes()),
                Err(error.clone()),
                "{offer}"
            );
            let reason = error.to_string();
            assert!(!reason.contains('\n'), "{reason}");
        }
    }

    #[test]
    fn arrival_instants_become_wall_clock_times() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let arrived = now.checked_sub(Duration::from_millis(30)).unwrap_or(now);
        let expected = wall - now.saturating_duration_since(arrived);
        assert_eq!(wall_clock_of(arrived, now, wall), expected);
        // An instant after `now` (it cannot be, but) is `now`.
        assert_eq!(wall_clock_of(now + Duration::from_secs(1), now, wall), wall);
    }
}
