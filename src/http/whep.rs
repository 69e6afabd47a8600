//! WHEP (draft-ietf-wish-whep): `POST /streams/{name}/whep` with an SDP offer opens a WebRTC
//! playback session and answers `201 Created` with the SDP answer and the session's
//! `Location`; `DELETE` on that location ends it. No trickle ICE: framecast is ICE-lite and
//! its answer carries every candidate, so `PATCH` is 405.
//!
//! The offer is the one request body framecast reads: the connection's read gate is told to
//! let it through ([`ConnectionReads::allow_body`]).
//!
//! A session counts as a viewer of the stream (kind `webrtc`, within `max_viewers`) and holds
//! the stream's H.264 demand, as `/live.mp4` does, for as long as it lives.

use actix_web::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt as _;

use crate::hub::{NewViewer, ViewerKind};
use crate::webrtc::offer::{self, OfferError};
use crate::webrtc::{self, NewSession, SessionId, SessionKind, WebRtc};

use super::AppState;
use super::cache::CachePolicy;
use super::connection::ConnectionReads;
use super::endless;
use super::error::HttpError;
use super::hls::hls_of;
use super::limits;
use super::signed_access::link_deadline;
use super::streams::Served;

/// The media type of an offer and an answer (RFC 3264 in RFC 8866's format).
const SDP: &str = "application/sdp";

/// The path segment of a session under the WHEP resource.
pub const SESSION_PARAM: &str = "session";

pub(super) fn webrtc_of(state: &AppState) -> Result<&WebRtc, HttpError> {
    state
        .webrtc
        .as_ref()
        .ok_or_else(|| HttpError::Unavailable("WebRTC is not running on this server".into()))
}

/// Whether the request's body is declared as SDP (parameters aside).
pub(super) fn is_sdp(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SDP))
}

/// `POST …/whep`: opens a session for the offer in the body.
pub async fn create(
    req: HttpRequest,
    stream: Served,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpError> {
    if !is_sdp(&req) {
        return Err(HttpError::UnsupportedMediaType(format!(
            "a WHEP offer is {SDP}"
        )));
    }
    let webrtc = webrtc_of(&state)?;
    let hls = hls_of(&stream)?;
    let body = read_offer(&req, payload).await?;
    // The offer is checked before a viewer slot is taken or the encoder started.
    offer::check_offer(&body).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let viewer = NewViewer {
        kind: ViewerKind::WebRtc,
        remote: req.peer_addr(),
        user_agent: endless::user_agent(&req),
        fps_cap: None,
    };
    let viewer = match limits::admit_viewer(&req, &stream, viewer) {
        Ok(viewer) => viewer,
        Err(refusal) => return Ok(limits::refusal_response(refusal)),
    };
    let id = SessionId::random();
    let handler = webrtc::whep::viewer(
        webrtc.clone(),
        id,
        stream.hub.clone(),
        Some(viewer),
        Box::new(hls.demand.hold()),
        stream.ended_signal(),
    );
    let opened = webrtc
        .open_session(
            &body,
            NewSession {
                id,
                stream: stream.name().to_owned(),
                kind: SessionKind::Send,
                handler,
                // A session opened with a signed link ends when the link expires, as an MJPEG
                // stream does.
                ends_at: link_deadline(&req).map(tokio::time::Instant::into_std),
            },
        )
        .await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), opened.id);
    Ok(HttpResponse::Created()
        .insert_header((CONTENT_TYPE, SDP))
        .insert_header((LOCATION, location))
        .insert_header(CachePolicy::Live.header())
        .body(opened.answer_sdp))
}

/// Bytes beyond the body the connection's read gate is allowed for it: a TLS record's
/// overhead, or a chunked body's framing.
const BODY_FRAMING_SLACK_BYTES: usize = 1024;

/// Reads an SDP offer body (WHEP here, WHIP too), at most [`offer::MAX_OFFER_BYTES`] and one
/// more to tell a longer one, past the connection's read gate.
pub(super) async fn read_offer(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<u8>, HttpError> {
    let too_large =
        |len_bytes| HttpError::BadRequest(OfferError::TooLarge { len_bytes }.to_string());
    let declared: Option<usize> = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if let Some(len) = declared.filter(|&len| len > offer::MAX_OFFER_BYTES) {
        return Err(too_large(len));
    }
    // The connection reads requests in small batches while one is answered (connection.rs):
    // the body needs its own allowance.
    if let Some(reads) = req.conn_data::<ConnectionReads>() {
        reads.allow_body(declared.unwrap_or(offer::MAX_OFFER_BYTES) + BODY_FRAMING_SLACK_BYTES);
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| HttpError::BadRequest(format!("the offer: {e}")))?;
        body.extend_from_slice(&chunk);
        if body.len() > offer::MAX_OFFER_BYTES {
            return Err(too_large(body.len()));
        }
    }
    Ok(body)
}

/// The session a request's path names, if it belongs to the stream.
async fn session_of(
    req: &HttpRequest,
    stream: &Served,
    webrtc: &WebRtc,
) -> Result<SessionId, HttpError> {
    let text = req.match_info().get(SESSION_PARAM).unwrap_or_default();
    let not_found = || HttpError::NotFound("no such WHEP session".into());
    let id: SessionId = text.parse().map_err(|_| not_found())?;
    let owned = webrtc
        .sessions()
        .await
        .iter()
        .any(|s| s.id == text && s.stream == stream.name() && s.kind == SessionKind::Send);
    if owned { Ok(id) } else { Err(not_found()) }
}

/// `DELETE …/whep/{session}`: ends the session.
pub async fn delete(
    req: HttpRequest,
    stream: Served,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let webrtc = webrtc_of(&state)?;
    let id = session_of(&req, &stream, webrtc).await?;
    if !webrtc.close_session(id).await {
        return Err(HttpError::NotFound("no such WHEP session".into()));
    }
    Ok(HttpResponse::Ok()
        .insert_header(CachePolicy::Live.header())
        .finish())
}

/// `PATCH …/whep/{session}`: trickle ICE and ICE restarts are not supported.
pub async fn patch() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((ALLOW, "DELETE"))
        .insert_header(CachePolicy::Live.header())
        .content_type("text/plain; charset=utf-8")
        .body("no trickle ICE: the answer carries every candidate (ICE-lite)\n")
}

/// `OPTIONS …/whep`: what the resource takes (a CORS preflight is answered before this).
pub async fn options() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((ALLOW, "POST, OPTIONS"))
        .insert_header(("Accept-Post", SDP))
        .finish()
}
