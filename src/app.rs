//! Wiring: starts the source thread, the JPEG encoders and the HTTP server, and stops them in
//! order when told to (SIGINT/SIGTERM): endless responses end, the server finishes what is
//! open and stops, then the pipeline threads stop. A second signal stops the server at once.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use tokio::signal::unix::{SignalKind, signal as unix_signal};
use tokio::sync::watch;

use crate::config::Config;
use crate::encode;
use crate::encode::h264::{self, H264Settings};
use crate::error::Error;
use crate::hls::pipeline::{self, H264Counters};
use crate::hls::segmenter::SegmenterSettings;
use crate::hls::store::{HlsStore, HlsTiming};
use crate::http::{self, AppState, HlsState};
use crate::hub::Hub;
use crate::source::{
    self,
    supervisor::{self, SupervisorSettings},
};

/// Runs framecast until it is told to stop. Prints `framecast listening on http://ADDR/` on
/// standard output once it accepts connections (tests and scripts read the port from it).
pub async fn run(config: Config) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen).map_err(|source| Error::Listen {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(Error::Server)?;

    let hub = Hub::new(!config.no_hls);
    let stop = Arc::new(AtomicBool::new(false));
    let source_thread = supervisor::spawn(
        source::opener(&config),
        hub.clone(),
        SupervisorSettings {
            size: config.size,
            fps: config.fps,
            drop_same_frames: config.drop_same_frames,
        },
        stop.clone(),
    )?;
    let jpeg_threads = encode::jpeg::spawn_workers(
        hub.clone(),
        config.jpeg_quality,
        config.jpeg_thread_count(),
        stop.clone(),
    )?;

    let mut threads = vec![source_thread];
    threads.extend(jpeg_threads);
    let hls = if config.no_hls {
        None
    } else {
        let (hls, thread) = start_hls(&config, hub.clone(), stop.clone())?;
        threads.push(thread);
        Some(hls)
    };

    let (shutdown, shutdown_signal) = watch::channel(false);
    let state = AppState {
        hub: hub.clone(),
        start_id: start_id(),
        config: config.clone(),
        hls,
        shutdown: shutdown_signal,
        frame_files: Default::default(),
    };
    let server = http::serve(listener, state).map_err(Error::Server)?;
    tokio::spawn(stop_on_signals(shutdown, server.handle()));
    announce(addr, &config);
    let result = server.await.map_err(Error::Server);

    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    hub.close();
    for thread in threads {
        if thread.join().is_err() {
            tracing::error!("a pipeline thread panicked");
        }
    }
    result
}

/// The first SIGINT or SIGTERM fires the shutdown signal (endless bodies end, then the server
/// stops gracefully); a second one stops the server without waiting.
async fn stop_on_signals(shutdown: watch::Sender<bool>, server: ServerHandle) {
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

/// Starts the H.264 encoder and segmenter feeding a new HLS store.
fn start_hls(
    config: &Config,
    hub: Arc<Hub>,
    stop: Arc<AtomicBool>,
) -> Result<(HlsState, JoinHandle<()>), Error> {
    let segmenter = SegmenterSettings {
        fps: config.fps,
        frames_per_segment: config.frames_per_segment(),
        frames_per_part: config.frames_per_part(),
    };
    let store = Arc::new(HlsStore::new(HlsTiming::new(
        segmenter,
        usize::from(config.hls_window),
    )));
    let bitrate_bps = config
        .h264_bitrate
        .unwrap_or_else(|| h264::default_bitrate_bps(config.size, config.fps));
    let counters = Arc::new(H264Counters::default());
    let settings = H264Settings {
        fps: config.fps,
        bitrate_bps,
        frames_per_idr: segmenter.frames_per_segment,
    };
    let thread = pipeline::spawn(hub, store.clone(), counters.clone(), settings, stop)?;
    Ok((
        HlsState {
            store,
            bitrate_bps,
            counters,
        },
        thread,
    ))
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
