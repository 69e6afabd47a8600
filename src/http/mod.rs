//! The HTTP side: shared state, the route table and the server. Each resource has its own file;
//! `error` is the only place that maps failures to status codes.

mod access;
mod cache;
mod connection;
mod direct_body;
mod endless;
mod error;
mod frame_pipes;
mod h2_streams;
mod hls;
mod limits;
mod live_mp4;
mod metrics;
mod mjpeg;
mod mjpeg_sender;
mod pages;
pub mod query;
mod request_log;
mod server;
mod sign_link;
mod signed_access;
mod snapshot;
mod static_files;
mod status;
pub mod streams;
mod tls;
mod tuning;
mod whep;
mod whip;

pub use access::{AccessControl, log_access_mode};
pub use error::HttpError;
pub use limits::{ConnectionLimit, raise_fd_limit};
pub use mjpeg_sender::MjpegSender;
pub use tls::{ServerCertificate, TlsError};

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::watch;

use crate::access::signing_key::SigningKey;
use crate::config::ServerSettings;
use streams::{STREAM_PARAM, StreamTable};

/// How long a graceful stop waits for open responses; endless ones end when `shutdown` fires,
/// so this only bounds a client that stopped reading.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    /// The server's settings as it started (a reload changes streams, not these).
    pub server: ServerSettings,
    /// The streams served now.
    pub streams: StreamTable,
    /// Differs on every start; each stream's instance id starts with it.
    pub start_id: String,
    pub started_at: std::time::Instant,
    /// Open connections and their cap.
    pub connections: Arc<ConnectionLimit>,
    /// Turns true when the server is told to stop: endless bodies end, then the server stops.
    pub shutdown: watch::Receiver<bool>,
    /// Users, tokens and CORS origins (replaced on SIGHUP), and failed attempts by address.
    pub access: AccessControl,
    /// The key of signed links (`signing_key_file`); `None`: signed links are off.
    pub signing_key: Option<Arc<SigningKey>>,
    /// The WebRTC driver (WHEP, WHIP); `None` only where a test builds the state itself.
    pub webrtc: Option<crate::webrtc::WebRtc>,
}

/// The route table. Every resource answers HEAD where it answers GET (RFC 9110 §9.1), and
/// other methods get 405 with an Allow header from actix.
///
/// Each stream's resources are under `/streams/{stream}/`; the root has the server's own
/// (`/` lists the streams, `/status` and `/healthz` cover them all) and, for embeds written
/// before there were several, the first stream's under their old names.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_and_head("/", pages::home))
        .service(get_and_head("/status", status::server_status))
        .service(get_and_head("/healthz", status::server_healthz))
        .service(get_and_head("/metrics", metrics::metrics))
        .service(get_and_head("/static/{name}", static_files::file))
        .service(
            web::resource(format!("/streams/{{{STREAM_PARAM}}}"))
                .route(web::get().to(pages::to_stream_page))
                .route(web::head().to(pages::to_stream_page)),
        )
        .service(
            web::scope(&format!("/streams/{{{STREAM_PARAM}}}"))
                .service(get_and_head("/", pages::stream_page))
                .service(get_and_head("/status", status::stream_status))
                .service(get_and_head("/healthz", status::stream_healthz))
                .configure(whip_routes)
                .configure(stream_routes),
        )
        .configure(stream_routes);
}

/// A stream's resources, under its path and, for the first stream, at the root.
fn stream_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_and_head("/hls", pages::hls))
        .service(get_and_head("/live", pages::live))
        .service(
            web::resource("/stream.mjpg")
                .route(web::get().to(mjpeg::stream))
                .route(web::head().to(mjpeg::head)),
        )
        .service(get_and_head("/snapshot.jpg", snapshot::snapshot))
        // An admin's signed links (the stream page's form).
        .service(get_and_head("/sign", sign_link::sign))
        // Compresses playlists; actix leaves video/* alone, so media is never compressed.
        .service(get_and_head("/live.m3u8", hls::multivariant).wrap(Compress::default()))
        .service(get_and_head("/hls/{start_id}/{name}", hls::resource).wrap(Compress::default()))
        .service(
            web::resource("/live.mp4")
                .route(web::get().to(live_mp4::stream))
                .route(web::head().to(live_mp4::head)),
        )
        .service(get_and_head("/webrtc", pages::webrtc))
        .service(
            web::resource("/whep")
                .route(web::post().to(whep::create))
                .route(web::method(actix_web::http::Method::OPTIONS).to(whep::options)),
        )
        .service(
            web::resource(format!("/whep/{{{}}}", whep::SESSION_PARAM))
                .route(web::delete().to(whep::delete))
                .route(web::patch().to(whep::patch)),
        );
}

/// WHIP publishing and its page, only under a stream's own path: a publisher names the
/// stream it publishes to.
fn whip_routes(cfg: &mut web::ServiceConfig) {
    // OPTIONS and PATCH answer as WHEP's do: the same WebRTC side, no trickle ICE.
    cfg.service(get_and_head("/publish", whip::page))
        .service(
            web::resource("/whip")
                .route(web::post().to(whip::publish))
                .route(web::method(actix_web::http::Method::OPTIONS).to(whep::options)),
        )
        .service(
            web::resource(format!("/whip/{{{}}}", whip::SESSION_PARAM))
                .route(web::delete().to(whip::end))
                .route(web::patch().to(whep::patch)),
        );
}

/// A resource whose GET handler also serves HEAD; actix sends no body for HEAD.
fn get_and_head<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    Err(HttpError::NotFound(req.path().to_owned()))
}

/// The route table with the answer for unknown paths.
fn app(cfg: &mut web::ServiceConfig) {
    routes(cfg);
    cfg.default_service(web::to(not_found));
}

/// Starts serving on an already bound listener, HTTPS only when given a certificate. The
/// returned server runs until the state's `shutdown` signal turns true.
pub fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    tls: Option<Arc<ServerCertificate>>,
) -> std::io::Result<Server> {
    let mut shutdown = state.shutdown.clone();
    let stop = async move {
        endless::shutdown_requested(&mut shutdown).await;
    };
    let connections = state.connections.clone();
    let tls = tls.map(|certificate| server::TlsServing {
        certificate,
        write_stall: Duration::from_secs(u64::from(state.server.viewer_stall_seconds)),
    });
    server::serve(listener, state, app, connections, tls, stop, SHUTDOWN_GRACE)
}
