//! The server: actix-server accepting connections, actix-http's dispatchers speaking HTTP over
//! each (HTTP/1.1 on plain TCP; HTTP/2 or HTTP/1.1 by ALPN over TLS), the actix-web `App`
//! answering requests.
//!
//! Built from those parts rather than with `actix_web::HttpServer` for one reason: every
//! connection is wrapped in a [`SharedConnection`], so that endless bodies can write shared
//! frame buffers to the socket themselves instead of through actix's per-connection copy (see
//! `connection`). `HttpServer` accepts only plain `TcpStream`s. The settings below are
//! `HttpServer`'s defaults, written out.
//!
//! With a certificate (`tls`), each accepted connection is first a TLS handshake (rustls,
//! bounded by [`CLIENT_REQUEST_TIMEOUT`]) over the same wrapper; its ALPN result picks the
//! dispatcher. Such a connection offers no socket to direct writers, since bytes written
//! past the TLS layer would be cleartext on an encrypted stream: MJPEG and `/live.mp4` go
//! through actix's ordinary body path there (`endless`), a copy per viewer that encryption
//! costs anyway. The connection cap, the socket tuning and, for HTTP/1.1, the read gate hold
//! as on plain connections; HTTP/2 has the gate open (see `connection`) and a bound on the
//! requests it has open at once instead (`h2_streams`). The stall limit a
//! direct body keeps is kept by the connection instead (`--viewer-stall-seconds`).

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Protocol};
use actix_service::{ServiceFactory, ServiceFactoryExt, map_config};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Extensions, Server, ServiceRequest, ServiceResponse, fn_service};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::connection::SharedConnection;
use super::h2_streams::{self, Http2Streams};
use super::limits::{self, ConnectionLimit, FD_HEADROOM};
use super::tls::{ALPN_H2, ServerCertificate};
use super::{access, request_log, signed_access, tuning};

/// Idle time a kept-alive connection waits for its next request.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Time a client has to send its request head, and to finish a TLS handshake.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a closing connection waits for the client to close its side.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP settings every connection gets, whatever its transport (a macro: the builder's
/// type depends on the transport and on the app it is finished with).
macro_rules! http_service {
    () => {
        HttpService::build()
            .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
            .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .h1_allow_half_closed(true)
    };
}

/// How HTTPS is served: with this certificate, each connection closed when its socket takes
/// nothing for `write_stall`.
pub struct TlsServing {
    pub certificate: Arc<ServerCertificate>,
    pub write_stall: Duration,
}

/// Serves `configure`'s routes with `state` on `listener` until `stop` resolves; then stops
/// gracefully, giving open connections `shutdown_grace` to finish. With `tls`, HTTPS only.
pub fn serve<T: 'static + Send + Sync>(
    listener: TcpListener,
    state: web::Data<T>,
    configure: fn(&mut web::ServiceConfig),
    connections: Arc<ConnectionLimit>,
    tls: Option<TlsServing>,
    stop: impl Future<Output = ()> + Send + 'static,
    shutdown_grace: Duration,
) -> std::io::Result<Server> {
    let local_addr = listener.local_addr()?;
    // actix's own per-worker cap would leave connections unaccepted: keep it above ours.
    let actix_max_connections = connections.max().saturating_add(FD_HEADROOM as usize);
    let builder = Server::build()
        .shutdown_signal(stop)
        .shutdown_timeout(shutdown_grace.as_secs())
        .max_concurrent_connections(actix_max_connections);
    let Some(TlsServing {
        certificate,
        write_stall,
    }) = tls
    else {
        let server = builder
            .listen("framecast-http", listener, move || {
                let connections = connections.clone();
                let http = http_service!()
                    .local_addr(local_addr)
                    .on_connect_ext(move |io: &SharedConnection, extensions: &mut Extensions| {
                        if let Err(error) = io.with_stream(tuning::tune_connection) {
                            tracing::debug!(%error, "cannot tune the connection");
                        }
                        extensions.insert(io.socket());
                        extensions.insert(io.reads());
                        let peer = io.with_stream(|s| s.peer_addr().ok()).ok().flatten();
                        connections.on_connect(extensions, peer);
                    })
                    .h1(map_config(app(state.clone(), configure), |_| {
                        AppConfig::default()
                    }));
                fn_service(|stream: TcpStream| async move {
                    let peer_addr = stream.peer_addr().ok();
                    Ok::<_, DispatchError>((SharedConnection::new(stream), peer_addr))
                })
                .and_then(http)
            })?
            .run();
        return Ok(server);
    };
    let tls_config = certificate.server_config().map_err(std::io::Error::other)?;
    let acceptor = TlsAcceptor::from(tls_config);
    let server = builder
        .listen("framecast-https", listener, move || {
            let connections = connections.clone();
            let acceptor = acceptor.clone();
            let http = http_service!()
                .local_addr(local_addr)
                .on_connect_ext(
                    move |io: &TlsStream<SharedConnection>, extensions: &mut Extensions| {
                        let (connection, session) = io.get_ref();
                        if let Err(error) = connection.with_stream(tuning::tune_connection) {
                            tracing::debug!(%error, "cannot tune the connection");
                        }
                        if session.alpn_protocol() == Some(ALPN_H2) {
                            extensions.insert(Http2Streams::default());
                        } else {
                            extensions.insert(connection.reads());
                        }
                        let peer = connection
                            .with_stream(|s| s.peer_addr().ok())
                            .ok()
                            .flatten();
                        connections.on_connect(extensions, peer);
                    },
                )
                .finish(map_config(app(state.clone(), configure), |_| {
                    AppConfig::default()
                }));
            fn_service(move |stream: TcpStream| {
                let acceptor = acceptor.clone();
                async move {
                    let peer_addr = stream.peer_addr().ok();
                    let connection = SharedConnection::new(stream);
                    connection.limit_write_stalls(write_stall);
                    let handshake = acceptor.accept(connection);
                    let tls = tokio::time::timeout(CLIENT_REQUEST_TIMEOUT, handshake)
                        .await
                        .map_err(|_| {
                            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
                        })
                        .and_then(|accepted| accepted)
                        .map_err(|error| {
                            // Scanners and plain-HTTP clients: not worth more than debug.
                            tracing::debug!(%error, peer = ?peer_addr, "TLS handshake failed");
                            DispatchError::Io(error)
                        })?;
                    let (connection, session) = tls.get_ref();
                    let protocol = if session.alpn_protocol() == Some(ALPN_H2) {
                        connection.ungate_reads();
                        Protocol::Http2
                    } else {
                        Protocol::Http1
                    };
                    Ok::<_, DispatchError>((tls, protocol, peer_addr))
                }
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}

/// The app of one worker: the middleware, `state` and `configure`'s routes.
fn app<T: 'static>(
    state: web::Data<T>,
    configure: fn(&mut web::ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(from_fn(access::check_access))
        .wrap(from_fn(h2_streams::limit_open_streams))
        .wrap(from_fn(limits::refuse_over_cap))
        // A later `wrap` is an outer layer and runs first. Signed links are checked before
        // the users' access check, which finds their grant in the request's extensions.
        .wrap(from_fn(signed_access::check_signed_link))
        .wrap(from_fn(request_log::log_request))
        .wrap(from_fn(limits::hold_reads_while_answering))
        .app_data(state)
        .configure(configure)
}
