//! Who may have an answer: the middleware that checks every request's credentials against the
//! configured users and tokens (`crate::access`), puts the resulting [`Grant`] into the
//! request's extensions, and adds the CORS headers of the allowed origins.
//!
//! | request | needs |
//! | --- | --- |
//! | `/healthz`, `/streams/{name}/healthz`, `/static/*` | nothing, ever |
//! | a stream's resources (MJPEG, snapshot, HLS, `/live.mp4`, WHEP, WHIP, its pages and status), the root ones for the first stream | a user or token allowed that stream, or a signed link (already checked, [`Grant::SignedLink`]; WHIP refuses it) |
//! | `/`, `/status`, anything else | a user or token |
//! | `/metrics` | a user or token, unless `metrics_public = true` |
//!
//! With no users and no tokens nothing is checked: every request carries [`Grant::Open`].
//! Missing or wrong credentials are 401 with a Basic challenge (RFC 7617 §2), a principal
//! not allowed the stream 403; an address that keeps failing waits, then gets 429
//! (`crate::access::failures`). Credentials never reach a log line or a page.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    AUTHORIZATION, HeaderValue, ORIGIN, RETRY_AFTER, VARY, WWW_AUTHENTICATE,
};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _, HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::access::failures::{Admission, FailureTable};
use crate::access::users::{AccessList, AccountId, CheckCounts};
use crate::access::{Grant, credentials};
use crate::config::access::{AccessSettings, CorsOrigins};

use super::AppState;
use super::cache::CachePolicy;

/// The challenge of a 401 (RFC 7617 §2, with §2.1's charset): players and browsers then
/// send Basic credentials, in UTF-8.
const CHALLENGE: &str = "Basic realm=\"framecast\", charset=\"UTF-8\"";
/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The users and tokens in force (replaced on SIGHUP), and what survives a reload: the
/// failures by address and the counts.
#[derive(Debug)]
pub struct AccessControl {
    list: RwLock<Arc<AccessList>>,
    failures: FailureTable,
    checks: CheckCounts,
}

impl AccessControl {
    pub fn new(settings: &AccessSettings) -> Self {
        Self {
            list: RwLock::new(Arc::new(AccessList::new(settings))),
            failures: FailureTable::default(),
            checks: CheckCounts::default(),
        }
    }

    /// The list in force now.
    pub fn list(&self) -> Arc<AccessList> {
        self.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes `settings` from now on (a reload); requests being checked finish with the old.
    pub fn replace(&self, settings: &AccessSettings) {
        *self.list.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(AccessList::new(settings));
    }

    /// What `/status` says of access: counts only, never a name or a secret.
    pub fn status(&self) -> AccessStatus {
        let list = self.list();
        let settings = list.settings();
        AccessStatus {
            open: list.is_open(),
            users: settings.users.len(),
            tokens: settings.tokens.len(),
            metrics_public: settings.metrics_public,
            auth_failures: self.failures.failures_total(),
            auth_refused_too_many: self.failures.refused_total(),
            addresses_backing_off: self.failures.addresses(),
            verifications: self.checks.verifications.load(Ordering::Relaxed),
            verifications_remembered: self.checks.remembered.load(Ordering::Relaxed),
        }
    }

    /// A signed link whose signature does not match (or that is malformed) from `address`:
    /// counted with the wrong passwords, and from an address that keeps failing answered as
    /// late as a wrong password would be. Returns that delay.
    pub fn record_link_failure(&self, address: IpAddr) -> Duration {
        self.failures.record_failure(address, Instant::now())
    }

    /// Wrong or malformed credentials so far (for `/metrics`).
    pub fn failures_total(&self) -> u64 {
        self.failures.failures_total()
    }
}

/// `/status` `access`.
#[derive(Debug, Serialize)]
pub struct AccessStatus {
    /// No users or tokens: nothing is checked.
    open: bool,
    users: usize,
    tokens: usize,
    metrics_public: bool,
    /// Requests with wrong or malformed credentials.
    auth_failures: u64,
    /// Requests answered 429 because their address failed too often.
    auth_refused_too_many: u64,
    addresses_backing_off: usize,
    /// Full (argon2) verifications run, and checks answered from a recent one.
    verifications: u64,
    verifications_remembered: u64,
}

/// Says at start (and after a reload) who may watch: one line when everything is open, a
/// warning when that is so beyond this machine.
pub fn log_access_mode(listening: SocketAddr, settings: &AccessSettings) {
    if !settings.is_open() {
        tracing::info!(
            users = settings.users.len(),
            tokens = settings.tokens.len(),
            metrics_public = settings.metrics_public,
            "access: streams, pages and /status need a user or token; /healthz is open"
        );
    } else if listening.ip().is_loopback() {
        tracing::info!(
            "access: open, no users or tokens configured: whoever reaches this port watches \
             every stream"
        );
    } else {
        tracing::warn!(
            %listening,
            "access: open on a non-loopback address, no users or tokens configured: anyone on \
             the network watches every stream; add [[users]] to the configuration file"
        );
    }
}

/// What a request's path is, for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource<'a> {
    /// `/healthz`, `/static/*`: never checked.
    Open,
    /// `/metrics`.
    Metrics,
    /// A stream's resource or page: by name, or the first stream's at the root.
    Stream(StreamRef<'a>),
    /// `/`, `/status`, and paths that are nothing (their 404 too is only for principals).
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamRef<'a> {
    First,
    Named(&'a str),
}

/// What `path` (as requested, not decoded: a stream name is URL-safe as it is, and a name
/// written otherwise matches no principal's list) is; `query` for mjpg-streamer's `/?action=`.
fn classify<'a>(path: &'a str, query: &str) -> Resource<'a> {
    if let Some(rest) = path.strip_prefix("/streams/") {
        let (name, within) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        return match within {
            "/healthz" => Resource::Open,
            _ => Resource::Stream(StreamRef::Named(name)),
        };
    }
    match path {
        "/healthz" => Resource::Open,
        "/metrics" => Resource::Metrics,
        "/" if super::query::lookup(query, "action").is_some() => {
            Resource::Stream(StreamRef::First)
        }
        "/" | "/status" => Resource::Server,
        "/stream.mjpg" | "/snapshot.jpg" | "/live.m3u8" | "/live.mp4" | "/hls" | "/live"
        | "/webrtc" | "/whep" => Resource::Stream(StreamRef::First),
        _ if path.starts_with("/hls/") || path.starts_with("/whep/") => {
            Resource::Stream(StreamRef::First)
        }
        _ if path.starts_with("/static/") => Resource::Open,
        _ => Resource::Server,
    }
}

/// The middleware: see the module doc.
pub async fn check_access(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let list = state.access.list();
    // With a list of origins the answer depends on the request's Origin (Fetch §3.2.3): caches
    // are told so on every response, those without the header too.
    let varies_by_origin = matches!(list.settings().cors_allowed_origins, CorsOrigins::Only(_));
    let allowed_origin = req
        .headers()
        .get(ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .and_then(|origin| list.settings().cors_allowed_origins.allow(origin))
        .and_then(|allowed| HeaderValue::from_str(allowed).ok());
    let mut response = if req.method() == Method::OPTIONS
        && allowed_origin.is_some()
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    {
        // A CORS preflight (Fetch §3.2.2) carries no credentials: answered before the check.
        req.into_response(preflight()).map_into_right_body()
    } else {
        match decide(&req, &state, &list).await {
            Ok(grant) => {
                if let Some(grant) = grant {
                    req.extensions_mut().insert(grant);
                }
                next.call(req).await?.map_into_left_body()
            }
            Err(refusal) => req.into_response(refusal).map_into_right_body(),
        }
    };
    let headers = response.headers_mut();
    if let Some(origin) = allowed_origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        // A WHEP or WHIP player on another site reads its session's Location to end it.
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    if varies_by_origin {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response)
}

/// The grant to add (`None`: leave the extensions as they are), or the refusal.
async fn decide(
    req: &ServiceRequest,
    state: &AppState,
    list: &Arc<AccessList>,
) -> Result<Option<Grant>, HttpResponse> {
    let already = req.extensions().get::<Grant>().cloned();
    if list.is_open() {
        return Ok(already.is_none().then_some(Grant::Open));
    }
    let resource = classify(req.path(), req.query_string());
    match resource {
        Resource::Open => return Ok(None),
        Resource::Metrics if list.settings().metrics_public => return Ok(None),
        // Checked (path, expiry, signature) by the signed-link middleware before this one.
        _ if matches!(already, Some(Grant::SignedLink(_))) => return Ok(None),
        _ => {}
    }
    let now = Instant::now();
    let address = req.peer_addr().map(|peer| peer.ip());
    let failures = &state.access.failures;
    if let Some(address) = address
        && let Admission::Refuse { retry_after } = failures.admit(address, now)
    {
        return Err(too_many(retry_after));
    }
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        // A browser's or player's first request comes without credentials: not a failure.
        return Err(challenge("credentials needed"));
    };
    let fail = |reason: &str| {
        let delay = address.map_or(Duration::ZERO, |a| failures.record_failure(a, now));
        let response = challenge(reason);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            response
        }
    };
    let credentials = match credentials::parse(header.as_bytes()) {
        Ok(credentials) => credentials,
        Err(error) => return Err(fail(&error.to_string()).await),
    };
    let account = match list.remembered(&credentials, now) {
        Some(id) => {
            state
                .access
                .checks
                .remembered
                .fetch_add(1, Ordering::Relaxed);
            Some(id)
        }
        None => {
            state
                .access
                .checks
                .verifications
                .fetch_add(1, Ordering::Relaxed);
            verify_off_thread(list.clone(), credentials, now).await
        }
    };
    let Some(account) = account else {
        return Err(fail("wrong user name, password or token").await);
    };
    if let Resource::Stream(stream) = resource {
        let first;
        let name = match stream {
            StreamRef::Named(name) => name,
            StreamRef::First => {
                first = state.streams.first();
                first.as_ref().map_or("", |stream| stream.name())
            }
        };
        if !name.is_empty() && !list.allows(account, name) {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "this user or token may not watch this stream",
            ));
        }
    }
    Ok(Some(Grant::Principal(list.principal(account))))
}

/// argon2 takes tens of milliseconds of CPU: on actix's blocking threads, not the workers.
async fn verify_off_thread(
    list: Arc<AccessList>,
    credentials: credentials::Credentials,
    now: Instant,
) -> Option<AccountId> {
    web::block(move || list.verify(&credentials, now))
        .await
        .ok()
        .flatten()
}

/// Whether the request's grant lets it see `stream` (the home page lists only those).
pub fn may_watch(req: &HttpRequest, state: &AppState, stream: &str) -> bool {
    match req.extensions().get::<Grant>() {
        Some(Grant::Principal(principal)) => state
            .access
            .list()
            .streams_of(&principal.name)
            .is_some_and(|streams| streams.allows(stream)),
        _ => true,
    }
}

fn refusal(status: StatusCode, reason: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(CachePolicy::Live.header())
        .content_type("text/plain; charset=utf-8")
        .body(format!("{reason}\n"))
}

fn challenge(reason: &str) -> HttpResponse {
    let mut response = refusal(StatusCode::UNAUTHORIZED, reason);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    response
}

/// RFC 6585 §4, with RFC 9110 §10.2.3's Retry-After in whole seconds.
fn too_many(retry_after: Duration) -> HttpResponse {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut response = refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts from this address; try again later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// Response headers a page on an allowed origin may read: the WHEP/WHIP session's URL
/// (draft-ietf-wish-whep §4.2, RFC 9725 §4.2) and the 503's wait.
const EXPOSED_HEADERS: &str = "Location, Retry-After";

/// Fetch §3.2.2. Beyond GET and HEAD for players: WHEP and WHIP (RFC 9725 §4.2) POST an SDP
/// offer (`Content-Type: application/sdp` is not a CORS-safelisted type) and DELETE their
/// session.
fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((
            ACCESS_CONTROL_ALLOW_METHODS,
            "GET, HEAD, POST, DELETE, PATCH",
        ))
        .insert_header((ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, Content-Type"))
        .insert_header((ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_S))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_by_what_they_serve() {
        use Resource::*;
        use StreamRef::*;
        for (path, query, expected) in [
            ("/healthz", "", Open),
            ("/static/hls.js", "", Open),
            ("/streams/garage/healthz", "", Open),
            ("/metrics", "", Metrics),
            ("/", "", Server),
            ("/status", "", Server),
            ("/nothing", "", Server),
            ("/", "action=stream", Stream(First)),
            ("/stream.mjpg", "fps=2", Stream(First)),
            ("/snapshot.jpg", "", Stream(First)),
            ("/live.m3u8", "", Stream(First)),
            ("/hls/abc/part-1.2.m4s", "", Stream(First)),
            ("/live.mp4", "", Stream(First)),
            ("/hls", "", Stream(First)),
            ("/live", "", Stream(First)),
            ("/webrtc", "", Stream(First)),
            ("/whep", "", Stream(First)),
            ("/whep/0123", "", Stream(First)),
            ("/streams/garage/whep", "", Stream(Named("garage"))),
            ("/streams/garage", "", Stream(Named("garage"))),
            ("/streams/garage/", "", Stream(Named("garage"))),
            ("/streams/garage/status", "", Stream(Named("garage"))),
            ("/streams/garage/stream.mjpg", "", Stream(Named("garage"))),
            (
                "/streams/garage/hls/x/init.mp4",
                "",
                Stream(Named("garage")),
            ),
            (
                "/streams/%67arage/stream.mjpg",
                "",
                Stream(Named("%67arage")),
            ),
            ("/streams/garage/healthz/x", "", Stream(Named("garage"))),
        ] {
            assert_eq!(classify(path, query), expected, "{path}?{query}");
        }
    }

    #[test]
    fn refusals_say_what_to_send() {
        let response = challenge("credentials needed");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(CHALLENGE.as_bytes())
        );
        let response = too_many(Duration::from_millis(41_200));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"42"[..])
        );
    }
}
