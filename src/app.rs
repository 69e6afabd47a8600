//! Wiring: starts the stream's pipeline and the HTTP server, and stops them in order when
//! told to (SIGINT/SIGTERM, or the source's end with `--exit-on-eof`): endless responses end,
//! the server finishes what is open and stops, then the pipeline threads stop. A second signal
//! stops the server at once.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use tokio::signal::unix::{SignalKind, signal as unix_signal};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::Error;
use crate::http::{self, AppState};
use crate::pipeline::Stream;

/// Runs framecast until it is told to stop. Prints `framecast listening on http://ADDR/` on
/// standard output once it accepts connections (tests and scripts read the port from it).
pub async fn run(config: Config) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen).map_err(|source| Error::Listen {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(Error::Server)?;

    let fd_limit = http::raise_fd_limit();
    let connections = http::ConnectionLimit::below_fd_limit(fd_limit);
    tracing::info!(
        fd_limit,
        max_connections = connections.max(),
        "file descriptor limit"
    );
    let stream = Stream::start(&config)?;

    let (shutdown, shutdown_signal) = watch::channel(false);
    let state = AppState {
        hub: stream.hub.clone(),
        start_id: start_id(),
        config: config.clone(),
        hls: stream.hls.clone(),
        connections,
        shutdown: shutdown_signal,
        mjpeg_sender: Default::default(),
    };
    let server = http::serve(listener, state).map_err(Error::Server)?;
    let shutdown = Arc::new(shutdown);
    tokio::spawn(stop_on_signals(shutdown.clone(), server.handle()));
    announce(addr, &config);
    let hub = stream.hub.clone();
    let source_finished = async move {
        if config.exit_on_eof {
            hub.source_finished().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut server = std::pin::pin!(server);
    let result = tokio::select! {
        result = &mut server => result.map_err(Error::Server),
        () = source_finished => {
            let reason = stream.hub.source_health().last_error.unwrap_or_default();
            tracing::warn!(reason, "the source ended for good; exiting (--exit-on-eof)");
            // The same orderly stop as for a signal: streams end, then the server.
            shutdown.send_replace(true);
            let _ = server.await;
            Err(Error::SourceFinished(reason))
        }
    };

    tracing::info!("stopping");
    stream.stop();
    result
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

fn announce(addr: SocketAddr, config: &Config) {
    let mut out = std::io::stdout().lock();
    // Ignored on purpose: a closed stdout must not stop the server.
    let _ = writeln!(out, "framecast listening on http://{addr}/");
    let _ = out.flush();
    // A source may hold a URL with a password (`exec:… rtsp://user:pass@…`): never logged.
    // Printed with its passwords masked.
    let source = config.source.to_string();
    tracing::info!(%addr, %source, size = %config.size, fps = config.fps, "serving");
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
