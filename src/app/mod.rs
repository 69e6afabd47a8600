//! Wiring: starts the streams' pipelines and the HTTP server (HTTPS with a certificate, which
//! is watched for changes), reloads the configuration file and the certificate on SIGHUP, and
//! stops them in order when told to (SIGINT/SIGTERM, or a source's end with
//! `--exit-on-eof`): endless responses end, the server finishes what is open and stops, then
//! the pipeline threads stop. A second signal stops the server at once.

mod stream_set;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::web;
use tokio::signal::unix::{SignalKind, signal as unix_signal};
use tokio::sync::{Mutex, watch};

use crate::access::signing_key::{self, SigningKey};
use crate::config::{ConfigFile, Launch, Settings};
use crate::error::Error;
use crate::http::streams::StreamTable;
use crate::http::{self, AppState};
use crate::webrtc::{WebRtc, WebRtcSettings};
pub use stream_set::{ReloadSummary, StreamSet};

/// Binds WebRTC's UDP socket and starts its driver: at `webrtc_listen`, or by default on the
/// HTTP address's host at [`crate::webrtc::DEFAULT_UDP_PORT`], and on any free port when that
/// one is taken (another framecast on the host), which a configured address never is.
fn start_webrtc(server: &crate::config::ServerSettings, http: SocketAddr) -> Result<WebRtc, Error> {
    let settings = |bind| WebRtcSettings {
        bind,
        public_addresses: server.webrtc_public_addresses.clone(),
        max_sessions: server.webrtc_max_sessions as usize,
        connect_timeout: crate::webrtc::DEFAULT_CONNECT_TIMEOUT,
    };
    let bind = server
        .webrtc_listen
        .unwrap_or_else(|| SocketAddr::new(http.ip(), crate::webrtc::DEFAULT_UDP_PORT));
    match WebRtc::start(&settings(bind)) {
        Ok(webrtc) => Ok(webrtc),
        Err(error) if server.webrtc_listen.is_none() => {
            let any_port = SocketAddr::new(http.ip(), 0);
            tracing::warn!(%bind, %error, "the default WebRTC port is taken: using a free one");
            WebRtc::start(&settings(any_port)).map_err(|source| Error::Listen {
                addr: any_port,
                source,
            })
        }
        Err(source) => Err(Error::Listen { addr: bind, source }),
    }
}

/// How often `--exit-on-eof` looks whether a source has ended for good.
const FINISHED_POLL: Duration = Duration::from_millis(200);

/// Runs framecast until it is told to stop. Prints `framecast listening on http://ADDR/` on
/// standard output once it accepts connections (tests and scripts read the port from it).
pub async fn run(launch: Launch) -> Result<(), Error> {
    let settings = launch.settings;
    let signing_key = load_signing_key(settings.server.signing_key_file.as_deref())?;
    let listen = settings.server.listen;
    let listener = TcpListener::bind(listen).map_err(|source| Error::Listen {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(Error::Server)?;

    let fd_limit = http::raise_fd_limit();
    let connections = http::ConnectionLimit::for_server(fd_limit, &settings.server);
    tracing::info!(
        fd_limit,
        max_connections = connections.max(),
        "file descriptor limit"
    );
    // Before the streams start: a certificate that does not load stops the start at once.
    let certificate = match &settings.server.tls {
        Some(files) => Some(
            http::ServerCertificate::load(files).map_err(|error| Error::Tls(error.to_string()))?,
        ),
        None => None,
    };
    let webrtc = start_webrtc(&settings.server, addr)?;
    let start_id = start_id();
    let streams = StreamSet::start(&settings, &start_id)?;

    let (shutdown, shutdown_signal) = watch::channel(false);
    let state = web::Data::new(AppState {
        server: settings.server.clone(),
        streams: StreamTable::new(streams.served()),
        start_id,
        started_at: Instant::now(),
        connections,
        shutdown: shutdown_signal,
        access: http::AccessControl::new(&settings.access),
        signing_key,
        webrtc: Some(webrtc),
    });
    let server =
        http::serve(listener, state.clone(), certificate.clone()).map_err(Error::Server)?;
    if let Some(certificate) = &certificate {
        tokio::spawn(certificate.clone().watch_files());
    }
    tokio::spawn(end_streams_on_shutdown(state.clone()));
    let shutdown = Arc::new(shutdown);
    tokio::spawn(stop_on_signals(shutdown.clone(), server.handle()));
    let streams = Arc::new(Mutex::new(streams));
    tokio::spawn(reload_on_hangup(
        launch.file,
        streams.clone(),
        state.clone(),
        certificate,
    ));
    announce(addr, &settings);
    http::log_access_mode(addr, &settings.access);
    let exit_on_eof = settings.server.exit_on_eof;
    let table_state = state.clone();
    let source_finished = async move {
        if exit_on_eof {
            a_source_finished(&table_state.streams).await
        } else {
            std::future::pending::<String>().await
        }
    };
    let mut server = std::pin::pin!(server);
    let result = tokio::select! {
        result = &mut server => result.map_err(Error::Server),
        reason = source_finished => {
            tracing::warn!(reason, "a source ended for good; exiting (--exit-on-eof)");
            // The same orderly stop as for a signal: streams end, then the server.
            shutdown.send_replace(true);
            let _ = server.await;
            Err(Error::SourceFinished(reason))
        }
    };

    tracing::info!("stopping");
    let mut streams = streams.lock().await;
    streams.stop_all();
    result
}

/// The key of signed links, read from (or made in) `signing_key_file`; `None` without one:
/// signed links are then off.
fn load_signing_key(path: Option<&std::path::Path>) -> Result<Option<Arc<SigningKey>>, Error> {
    let Some(path) = path else {
        return Ok(None);
    };
    let key = SigningKey::load_or_create(path).map_err(|e| Error::SigningKey(e.to_string()))?;
    if signing_key::readable_by_others(path) {
        tracing::warn!(
            file = %path.display(),
            "signing_key_file can be read by other users than its owner: chmod 600 it"
        );
    }
    tracing::info!(file = %path.display(), "signed links are on");
    Ok(Some(Arc::new(key)))
}

/// When the server is told to stop, every stream's endless responses end (then the server
/// stops, its responses finished).
async fn end_streams_on_shutdown(state: web::Data<AppState>) {
    let mut shutdown = state.shutdown.clone();
    if shutdown.wait_for(|stopping| *stopping).await.is_ok() {
        for stream in state.streams.all().iter() {
            stream.end();
        }
    }
}

/// With `--exit-on-eof`: resolves with the reason once any stream's source has ended for good.
async fn a_source_finished(streams: &StreamTable) -> String {
    let mut tick = tokio::time::interval(FINISHED_POLL);
    loop {
        tick.tick().await;
        for stream in streams.all().iter() {
            let health = stream.hub.source_health();
            if health.finished {
                let reason = health.last_error.unwrap_or_default();
                return if streams.all().len() > 1 {
                    format!("stream `{}`: {reason}", stream.name())
                } else {
                    reason
                };
            }
        }
    }
}

/// On each SIGHUP reads the TLS certificate and the configuration file again and applies
/// them; a file that no longer loads is refused with a log line, and what runs stays as it is.
async fn reload_on_hangup(
    file: Option<ConfigFile>,
    streams: Arc<Mutex<StreamSet>>,
    state: web::Data<AppState>,
    certificate: Option<Arc<http::ServerCertificate>>,
) {
    let mut hangups = match unix_signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP: the configuration is not reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        if let Some(certificate) = &certificate {
            certificate.reload_logged("SIGHUP");
        }
        let Some(file) = &file else {
            if certificate.is_none() {
                tracing::warn!("SIGHUP: started without --config, so there is no file to reload");
            }
            continue;
        };
        let settings = match file.load() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(%error, "SIGHUP: the configuration is refused; the running streams stay as they are");
                continue;
            }
        };
        warn_of_settings_needing_a_restart(&state.server, &settings);
        if settings.access != *state.access.list().settings() {
            state.access.replace(&settings.access);
            http::log_access_mode(state.server.listen, &settings.access);
        }
        let summary = streams.lock().await.apply(&settings, &state.streams).await;
        tracing::info!(
            started = ?summary.started,
            stopped = ?summary.stopped,
            restarted = ?summary.restarted,
            unchanged = summary.unchanged.len(),
            "SIGHUP: configuration reloaded"
        );
        for (name, reason) in &summary.failed {
            tracing::error!(stream = %name, %reason, "SIGHUP: the stream could not start");
        }
    }
}

/// Server settings a running server keeps until it is restarted.
fn warn_of_settings_needing_a_restart(running: &crate::config::ServerSettings, new: &Settings) {
    let mut kept = Vec::new();
    if new.server.listen != running.listen {
        kept.push("listen");
    }
    if new.server.viewer_stall_seconds != running.viewer_stall_seconds {
        kept.push("viewer_stall_seconds");
    }
    if new.server.exit_on_eof != running.exit_on_eof {
        kept.push("exit_on_eof");
    }
    if new.server.signing_key_file != running.signing_key_file {
        kept.push("signing_key_file");
    }
    if new.server.tls != running.tls {
        // The files named at start are reloaded; other files or a switch of scheme need a
        // new listener.
        kept.push("tls_cert, tls_key");
    }
    if !kept.is_empty() {
        tracing::warn!(
            settings = kept.join(", "),
            "SIGHUP: these server settings take effect when framecast restarts"
        );
    }
}

/// The first SIGINT or SIGTERM fires the shutdown signal (endless bodies end, then the server
/// stops gracefully); a second one stops the server without waiting.
async fn stop_on_signals(shutdown: Arc<watch::Sender<bool>>, server: ServerHandle) {
    let (mut interrupt, mut terminate) = match (
        unix_signal(SignalKind::interrupt()),
        unix_signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "cannot listen for SIGINT/SIGTERM");
            return;
        }
    };
    for signals_seen in 1..=2 {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if signals_seen == 1 {
            tracing::info!("stop signal: ending streams");
            shutdown.send_replace(true);
        } else {
            tracing::info!("second stop signal: stopping now");
            server.stop(false).await;
        }
    }
}

fn announce(addr: SocketAddr, settings: &Settings) {
    let mut out = std::io::stdout().lock();
    // Ignored on purpose: a closed stdout must not stop the server.
    let scheme = if settings.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let _ = writeln!(out, "framecast listening on {scheme}://{addr}/");
    let _ = out.flush();
    for stream in &settings.streams {
        // A source may hold a URL with a password (`exec:… rtsp://user:pass@…`): its
        // Display masks passwords.
        let source = stream.source.to_string();
        tracing::info!(
            %addr,
            stream = %stream.name,
            %source,
            size = %stream.size,
            fps = stream.fps,
            hls = %stream.hls,
            "serving"
        );
    }
}

/// A short id that differs between starts: milliseconds since the epoch, in base 36.
fn start_id() -> String {
    let mut n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}
