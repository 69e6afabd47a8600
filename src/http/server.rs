//! The HTTP/1 server: actix-server accepting connections, actix-http's dispatcher speaking
//! HTTP/1.1 over each, the actix-web `App` answering requests.
//!
//! Built from those parts rather than with `actix_web::HttpServer` for one reason: every
//! connection is wrapped in a [`SharedConnection`], so that endless bodies can write shared
//! frame buffers to the socket themselves instead of through actix's per-connection copy (see
//! `connection`). `HttpServer` accepts only plain `TcpStream`s. The settings below are
//! `HttpServer`'s defaults, written out.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive};
use actix_service::{ServiceFactoryExt, map_config};
use actix_web::dev::{AppConfig, Extensions, Server, fn_service};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use tokio::net::TcpStream;

use super::connection::SharedConnection;
use super::limits::{self, ConnectionLimit, FD_HEADROOM};
use super::{access, request_log, signed_access, tuning};

/// Idle time a kept-alive connection waits for its next request.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Time a client has to send its request head.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a closing connection waits for the client to close its side.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `configure`'s routes with `state` on `listener` until `stop` resolves; then stops
/// gracefully, giving open connections `shutdown_grace` to finish.
pub fn serve<T: 'static + Send + Sync>(
    listener: TcpListener,
    state: web::Data<T>,
    configure: fn(&mut web::ServiceConfig),
    connections: Arc<ConnectionLimit>,
    stop: impl Future<Output = ()> + Send + 'static,
    shutdown_grace: Duration,
) -> std::io::Result<Server> {
    let local_addr = listener.local_addr()?;
    // actix's own per-worker cap would leave connections unaccepted: keep it above ours.
    let actix_max_connections = connections.max().saturating_add(FD_HEADROOM as usize);
    let server = Server::build()
        .shutdown_signal(stop)
        .shutdown_timeout(shutdown_grace.as_secs())
        .max_concurrent_connections(actix_max_connections)
        .listen("framecast-http", listener, move || {
            let connections = connections.clone();
            let app = App::new()
                .wrap(from_fn(access::check_access))
                .wrap(from_fn(limits::refuse_over_cap))
                // A later `wrap` is an outer layer and runs first. Signed links are checked
                // before the users' access check, which finds their grant in the request's
                // extensions: that check's `wrap` goes above this line.
                .wrap(from_fn(signed_access::check_signed_link))
                .wrap(from_fn(request_log::log_request))
                .wrap(from_fn(limits::hold_reads_while_answering))
                .app_data(state.clone())
                .configure(configure);
            let http = HttpService::build()
                .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .h1_allow_half_closed(true)
                .local_addr(local_addr)
                .on_connect_ext(move |io: &SharedConnection, extensions: &mut Extensions| {
                    if let Err(error) = io.with_stream(tuning::tune_connection) {
                        tracing::debug!(%error, "cannot tune the connection");
                    }
                    extensions.insert(io.socket());
                    let peer = io.with_stream(|s| s.peer_addr().ok()).ok().flatten();
                    connections.on_connect(extensions, peer);
                })
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|stream: TcpStream| async move {
                let peer_addr = stream.peer_addr().ok();
                Ok::<_, DispatchError>((SharedConnection::new(stream), peer_addr))
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}
