//! WHIP publishing (RFC 9725) for a stream with `source = "whip"`, and its page.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /streams/{name}/whip`, an `application/sdp` offer that sends H.264 | `201 Created`, `Location` of the session, the SDP answer (RFC 9725 §4.2) |
//! | `DELETE` on that `Location` | `200 OK`: the session ends, the stream shows "NO SIGNAL" until the next publisher (§4.3) |
//! | `PATCH` on it | `405`: no trickle ICE; the answer has every candidate (ICE-lite) |
//! | `OPTIONS /streams/{name}/whip` | `204` with `Accept-Post: application/sdp` (as WHEP's) |
//! | `GET /streams/{name}/publish` | the page that publishes the device's camera |
//!
//! The offer is read as WHEP's is ([`super::whep::read_offer`]: bounded, past the connection's
//! read gate), and checked before the publisher's place is taken.
//!
//! One publisher at a time: a second while one is in is `409 Conflict`. A stream with another
//! source is `404` saying so. Publishing changes what every viewer sees, so it takes a user
//! or token allowed the stream (the access middleware) when users exist; a signed link, which
//! lets its holder watch, never lets anyone publish (`403`).

use std::time::Duration;

use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{CustomizeResponder, HttpMessage as _, HttpRequest, HttpResponse, Responder, web};
use askama::Template;
use askama_web::WebTemplate;

use super::AppState;
use super::cache::CachePolicy;
use super::error::HttpError;
use super::streams::Served;
use super::whep::{is_sdp, read_offer, webrtc_of};
use crate::access::Grant;
use crate::source::whip::{ClaimError, WhipInlet};
use crate::webrtc::{self, NewSession, SessionId, SessionKind};

/// The path segment of a session under `/streams/{name}/whip/`.
pub const SESSION_PARAM: &str = "session";
/// What a signed link gets on the WHIP resources.
pub const SIGNED_LINKS_DO_NOT_PUBLISH: &str =
    "a signed link lets its holder watch, not publish: publishing takes a user or token";

/// `GET /streams/{name}/publish`: takes the device's camera and publishes it with WHIP.
#[derive(Template, WebTemplate)]
#[template(path = "publish.html")]
pub struct PublishPage {
    pub version: &'static str,
    pub base: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

pub async fn page(
    req: HttpRequest,
    stream: Served,
) -> Result<CustomizeResponder<PublishPage>, HttpError> {
    may_publish(&req)?;
    inlet(&stream)?;
    Ok(PublishPage {
        version: env!("CARGO_PKG_VERSION"),
        base: stream.base_path(),
        name: stream.name().to_owned(),
        width: stream.settings.size.width,
        height: stream.settings.size.height,
        fps: stream.settings.fps,
    }
    .customize()
    .insert_header(CachePolicy::Revalidate.header()))
}

/// `POST /streams/{name}/whip`: see the module doc.
pub async fn publish(
    req: HttpRequest,
    stream: Served,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpError> {
    may_publish(&req)?;
    let inlet = inlet(&stream)?;
    let webrtc = webrtc_of(&state)?;
    if !is_sdp(&req) {
        return Err(HttpError::UnsupportedMediaType(
            "a WHIP offer is sent as Content-Type: application/sdp".into(),
        ));
    }
    let offer = read_offer(&req, payload).await?;
    // Checked before the publisher's place is taken: a bad offer is 400 even while another
    // publisher is in.
    webrtc::whip::check_publish_offer(&offer)
        .map_err(|error| HttpError::BadRequest(error.to_string()))?;
    let id = SessionId::random();
    // With HLS on, an IDR per segment: a browser makes none unless asked (source::whip).
    let segment = stream.hls.as_ref().map(|_| {
        let settings = &stream.settings;
        Duration::from_secs_f64(
            f64::from(settings.frames_per_segment()) / f64::from(settings.fps.max(1)),
        )
    });
    let publisher = inlet
        .claim(id.to_string(), segment)
        .map_err(|error| match error {
            ClaimError::Busy => HttpError::Conflict(error.to_string()),
            ClaimError::Closed => HttpError::Unavailable(error.to_string()),
        })?;
    let name = stream.name().to_owned();
    let handler = webrtc::whip::publisher(webrtc.clone(), id, name.clone(), publisher);
    let opened = webrtc
        .open_session(
            &offer,
            NewSession {
                id,
                stream: name,
                kind: SessionKind::Receive,
                handler,
                // Signed links never publish: no end of its own.
                ends_at: None,
            },
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            LOCATION,
            format!("{}whip/{}", stream.base_path(), opened.id),
        ))
        .insert_header((CONTENT_TYPE, "application/sdp"))
        .insert_header(CachePolicy::Live.header())
        .body(opened.answer_sdp))
}

/// `DELETE /streams/{name}/whip/{session}`: ends the publisher's session.
pub async fn end(
    req: HttpRequest,
    stream: Served,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    may_publish(&req)?;
    let inlet = inlet(&stream)?;
    let webrtc = webrtc_of(&state)?;
    let written = req.match_info().get(SESSION_PARAM).unwrap_or_default();
    let unknown = || {
        let shown: String = written.chars().take(40).collect();
        HttpError::NotFound(format!(
            "no WHIP session `{}` on this stream",
            shown.escape_debug()
        ))
    };
    let id: SessionId = written.parse().map_err(|_| unknown())?;
    // Only this stream's publisher: a session id of another stream or a viewer is not ours.
    if inlet.publisher().as_deref() != Some(id.to_string().as_str()) {
        return Err(unknown());
    }
    if !webrtc.close_session(id).await {
        return Err(unknown());
    }
    Ok(HttpResponse::Ok()
        .insert_header(CachePolicy::Live.header())
        .finish())
}

/// A signed link opens a stream to watch, never to publish.
fn may_publish(req: &HttpRequest) -> Result<(), HttpError> {
    match req.extensions().get::<Grant>() {
        Some(Grant::SignedLink(_)) => Err(HttpError::Forbidden(SIGNED_LINKS_DO_NOT_PUBLISH.into())),
        _ => Ok(()),
    }
}

/// The stream's WHIP inlet, or 404 saying the stream takes no publisher.
fn inlet(stream: &Served) -> Result<&std::sync::Arc<WhipInlet>, HttpError> {
    stream.whip.as_ref().ok_or_else(|| {
        HttpError::NotFound(format!(
            "stream `{}` takes no WHIP publisher: its source is `{}`, not `whip`",
            stream.name(),
            stream.settings.source
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_sdp_is_an_offer() {
        for (content_type, sdp) in [
            (Some("application/sdp"), true),
            (Some("Application/SDP; charset=utf-8"), true),
            (Some("text/plain"), false),
            (Some("application/sdpx"), false),
            (None, false),
        ] {
            let mut req = TestRequest::post();
            if let Some(content_type) = content_type {
                req = req.insert_header((CONTENT_TYPE, content_type));
            }
            assert_eq!(is_sdp(&req.to_http_request()), sdp, "{content_type:?}");
        }
    }

    #[test]
    fn a_signed_link_does_not_publish() {
        let req = TestRequest::post().to_http_request();
        assert!(may_publish(&req).is_ok());
        req.extensions_mut()
            .insert(Grant::SignedLink(crate::access::SignedLinkGrant {
                expires_at_unix: u64::MAX,
                query: String::new(),
            }));
        assert!(matches!(may_publish(&req), Err(HttpError::Forbidden(_))));
    }

    #[test]
    fn the_page_renders() {
        let html = PublishPage {
            version: "0",
            base: "/streams/phone/".into(),
            name: "phone".into(),
            width: 1280,
            height: 720,
            fps: 30,
        }
        .render()
        .expect("the template renders");
        assert!(html.contains("/static/publish-page.js"));
        assert!(html.contains("data-whip=\"/streams/phone/whip\""));
    }
}
