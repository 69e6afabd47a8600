//! The HTTP side: shared state, the route table and the server. Each resource has its own file;
//! `error` is the only place that maps failures to status codes.

mod error;
mod hls;
mod hls_path;
mod live_mp4;
mod mjpeg;
mod pages;
pub mod query;
mod snapshot;
mod static_files;
mod status;
mod tuning;

pub use error::HttpError;
pub use hls::HlsState;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::Compress;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::config::Config;
use crate::hub::Hub;

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
    pub hls: Option<HlsState>,
}

/// The route table.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::index))
        .route("/stream.mjpg", web::get().to(mjpeg::stream))
        .route("/snapshot.jpg", web::get().to(snapshot::snapshot))
        .route("/snapshot.jpg", web::head().to(snapshot::snapshot))
        .route("/status", web::get().to(status::status))
        .route("/healthz", web::get().to(status::healthz))
        .route("/static/{name}", web::get().to(static_files::file))
        .service(
            web::resource("/live.m3u8")
                .wrap(Compress::default())
                .route(web::get().to(hls::multivariant)),
        )
        .service(
            web::resource("/hls/{start_id}/{name}")
                // Compresses playlists; actix leaves video/* alone, so media is never compressed.
                .wrap(Compress::default())
                .route(web::get().to(hls::resource)),
        )
        .route("/live.mp4", web::get().to(live_mp4::stream));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    Err(HttpError::NotFound(req.path().to_owned()))
}

/// Starts serving on an already bound listener. The returned server runs until it is stopped
/// or the process gets SIGINT/SIGTERM.
pub fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .on_connect(tuning::tune_connection)
    .h1_write_buffer_size(mjpeg::BODY_SLICE_BYTES)
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
    .listen(listener)?
    .run();
    Ok(server)
}
