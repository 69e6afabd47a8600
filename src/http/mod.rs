//! The HTTP side: shared state, the route table and the server. Each resource has its own file;
//! `error` is the only place that maps failures to status codes.

mod cache;
mod endless;
mod error;
mod hls;
mod limits;
mod live_mp4;
mod mjpeg;
mod pages;
pub mod query;
mod request_log;
mod snapshot;
mod static_files;
mod status;
mod tuning;

pub use error::HttpError;
pub use limits::{ConnectionLimit, raise_fd_limit};

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::config::Config;
use crate::hub::Hub;
use crate::pipeline::StreamHls;

/// How long a graceful stop waits for open responses; streams never end on their own, so this
/// is kept short.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub config: Config,
    /// Differs on every start, so ETags and cached media never match a previous run's.
    pub start_id: String,
    /// `None` with `--no-hls`.
    pub hls: Option<StreamHls>,
    /// Open connections and their cap.
    pub connections: Arc<ConnectionLimit>,
}

/// The route table. Every resource answers HEAD where it answers GET (RFC 9110 §9.1), and
/// other methods get 405 with an Allow header from actix.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_and_head("/", pages::index))
        .service(get_and_head("/hls", pages::hls))
        .service(get_and_head("/live", pages::live))
        .service(
            web::resource("/stream.mjpg")
                .route(web::get().to(mjpeg::stream))
                .route(web::head().to(mjpeg::head)),
        )
        .service(get_and_head("/snapshot.jpg", snapshot::snapshot))
        .service(get_and_head("/status", status::status))
        .service(get_and_head("/healthz", status::healthz))
        .service(get_and_head("/static/{name}", static_files::file))
        // Compresses playlists; actix leaves video/* alone, so media is never compressed.
        .service(get_and_head("/live.m3u8", hls::multivariant).wrap(Compress::default()))
        .service(get_and_head("/hls/{start_id}/{name}", hls::resource).wrap(Compress::default()))
        .service(
            web::resource("/live.mp4")
                .route(web::get().to(live_mp4::stream))
                .route(web::head().to(live_mp4::head)),
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

/// Starts serving on an already bound listener. The returned server runs until it is stopped
/// or the process gets SIGINT/SIGTERM.
pub fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let connections = state.connections.clone();
    // actix's own per-worker cap would leave connections unaccepted: keep it above ours.
    let actix_max_connections = connections
        .max()
        .saturating_add(limits::FD_HEADROOM as usize);
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(limits::refuse_over_cap))
            .wrap(from_fn(request_log::log_request))
            .app_data(state.clone())
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .on_connect(move |connection, extensions| {
        tuning::tune_connection(connection, extensions);
        connections.on_connect(connection, extensions);
    })
    .max_connections(actix_max_connections)
    .h1_write_buffer_size(mjpeg::BODY_SLICE_BYTES)
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
    .listen(listener)?
    .run();
    Ok(server)
}
