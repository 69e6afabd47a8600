//! Signed links at the door: a request whose query carries `exp` and `sig` is checked here
//! ([`crate::access::signed_link`]). A valid link puts [`Grant::SignedLink`] into the request's
//! extensions, where the users' access check sees that the request needs no credentials and
//! resources find its expiry (an MJPEG stream ends then) and its query (a playlist carries it
//! into every URI it lists). An invalid or expired one is 401 with a one-line reason and no
//! `WWW-Authenticate` challenge: the link itself is wrong, a password would not help.
//! Requests without `exp` and `sig` pass untouched, at the cost of one scan of the query.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _, HttpRequest, HttpResponse, web};

use crate::access::signed_link::SignedLinkError;
use crate::access::{Grant, SignedLinkGrant, now_unix, signed_link};

use super::AppState;
use super::cache::CachePolicy;

/// What a request with link parameters gets while no `signing_key_file` is configured.
pub const SIGNED_LINKS_OFF: &str =
    "signed links are off on this server: no signing_key_file is configured";

pub async fn check_signed_link(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if !signed_link::has_link_params(req.query_string()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let key = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.signing_key.clone());
    let checked = match key {
        Some(key) => signed_link::verify(&key, req.path(), req.query_string(), now_unix()),
        None => {
            return Ok(req
                .into_response(unauthorized(SIGNED_LINKS_OFF))
                .map_into_right_body());
        }
    };
    // A wrong signature is what guessing looks like: counted with the wrong passwords, and
    // from an address that keeps failing answered as late. An expired link is only old (a
    // dashboard left open) and must not hold its address back.
    if let Err(error) = &checked
        && !matches!(error, SignedLinkError::Expired { .. })
        && let Some((state, peer)) = req.app_data::<web::Data<AppState>>().zip(req.peer_addr())
    {
        let delay = state.access.record_link_failure(peer.ip());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let checked = checked.map_err(|e| e.to_string());
    match checked {
        Ok(grant) => {
            req.extensions_mut().insert(Grant::SignedLink(grant));
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(reason) => Ok(req
            .into_response(unauthorized(&reason))
            .map_into_right_body()),
    }
}

/// 401 with the reason as one line of text.
fn unauthorized(reason: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header(CachePolicy::Live.header())
        .body(format!("{reason}\n"))
}

/// The signed link a request came with, if it was one.
pub fn signed_link_of(req: &HttpRequest) -> Option<SignedLinkGrant> {
    match req.extensions().get::<Grant>() {
        Some(Grant::SignedLink(grant)) => Some(grant.clone()),
        _ => None,
    }
}

/// When a response opened by a signed link must end: its expiry on the runtime's clock.
/// `None` for every other request.
pub fn link_deadline(req: &HttpRequest) -> Option<tokio::time::Instant> {
    let grant = signed_link_of(req)?;
    let left = Duration::from_secs(grant.expires_at_unix.saturating_sub(now_unix()));
    Some(tokio::time::Instant::now() + left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::signing_key::SigningKey;
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use actix_web::{App, middleware::from_fn};

    /// What a handler behind the check sees: the grant's query, or "none".
    async fn echo_grant(req: HttpRequest) -> HttpResponse {
        let seen = signed_link_of(&req).map_or("none".to_owned(), |g| g.query);
        HttpResponse::Ok().body(seen)
    }

    async fn answer(key: Option<SigningKey>, uri: &str) -> (u16, String) {
        let server = crate::config::settings::ServerLayer::default().resolve();
        let state = web::Data::new(AppState {
            connections: super::super::ConnectionLimit::for_server(1024, &server),
            server,
            streams: Default::default(),
            start_id: "t".into(),
            started_at: std::time::Instant::now(),
            shutdown: tokio::sync::watch::channel(false).1,
            access: super::super::AccessControl::new(&Default::default()),
            signing_key: key.map(std::sync::Arc::new),
            webrtc: None,
        });
        let app = init_service(
            App::new()
                .app_data(state)
                .wrap(from_fn(check_signed_link))
                .default_service(web::to(echo_grant)),
        )
        .await;
        let response = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        let status = response.status().as_u16();
        let body = read_body(response).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32]).unwrap_or_else(|| panic!("a key"))
    }

    #[actix_web::test]
    async fn requests_without_link_parameters_pass_untouched() {
        for key in [None, Some(key())] {
            assert_eq!(
                answer(key, "/stream.mjpg?fps=5").await,
                (200, "none".into())
            );
        }
    }

    #[actix_web::test]
    async fn valid_links_carry_a_grant_and_bad_ones_are_401_with_a_reason() {
        let future = now_unix() + 3600;
        let query = signed_link::sign(&key(), "/stream.mjpg", future);
        assert_eq!(
            answer(Some(key()), &format!("/stream.mjpg?fps=5&{query}")).await,
            (200, query.clone())
        );
        let past = signed_link::sign(&key(), "/stream.mjpg", 1);
        let tampered = query.replace("sig=", "sig=A");
        for (uri, reason) in [
            (format!("/stream.mjpg?{past}"), "expired"),
            (format!("/snapshot.jpg?{query}"), "does not match"),
            (format!("/stream.mjpg?{tampered}"), "not 32 bytes"),
            (format!("/stream.mjpg?exp={future}"), "`sig` is missing"),
        ] {
            let (status, body) = answer(Some(key()), &uri).await;
            assert_eq!(status, 401, "{uri}: {body}");
            assert!(body.contains(reason), "{uri}: {body}");
            assert_eq!(body.lines().count(), 1, "{body}");
        }
        let (status, body) = answer(None, &format!("/stream.mjpg?{query}")).await;
        assert_eq!((status, body.trim()), (401, SIGNED_LINKS_OFF));
    }
}
