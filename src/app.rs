//! Wiring: starts the stream's pipeline and the HTTP server, and stops them in order when the
//! server stops (SIGINT/SIGTERM, handled by actix).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::{SystemTime, UNIX_EPOCH};

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

    let state = AppState {
        hub: stream.hub.clone(),
        start_id: start_id(),
        config: config.clone(),
        hls: stream.hls.clone(),
        connections,
    };
    let server = http::serve(listener, state).map_err(Error::Server)?;
    let handle = server.handle();
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
            // The stop command is sent at once; the server future then runs to its end.
            drop(handle.stop(true));
            let _ = server.await;
            Err(Error::SourceFinished(reason))
        }
    };

    tracing::info!("stopping");
    stream.stop();
    result
}

fn announce(addr: SocketAddr, config: &Config) {
    let mut out = std::io::stdout().lock();
    // Ignored on purpose: a closed stdout must not stop the server.
    let _ = writeln!(out, "framecast listening on http://{addr}/");
    let _ = out.flush();
    tracing::info!(%addr, source = %config.source, size = %config.size, fps = config.fps, "serving");
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
