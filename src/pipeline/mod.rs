//! One stream's pipeline: the source supervisor, the JPEG workers and the H.264 thread, and the
//! hub they hand frames over. This is the only code that sees the hub and the stages together;
//! `source`, `encode` and `media` know nothing of each other or of threads that feed them.
//!
//! ```text
//! source ─► supervisor ─Frame─► hub ─► JPEG workers ─JpegFrame─► hub ─► MJPEG viewers, snapshots
//!                                 └──► H.264 thread ─► segmenter ─► HLS store ─► playlists, parts
//! ```
//!
//! A source that delivers JPEGs (an MJPEG camera or pipe) skips the JPEG workers: the hub
//! publishes its frames to viewers as they came.
//!
//! The H.264 thread runs always or on demand (`hls = "on-demand"`): HTTP handlers report
//! demand through [`StreamHls::demand`] ([`hls_demand`]).

mod capture_clock;
pub mod h264;
pub mod h264_decode;
pub mod h264_piped;
pub mod hls_demand;
pub mod jpeg;
mod rate_gate;
pub mod supervisor;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{HlsMode, ServerSettings, StreamSettings};
use crate::encode::h264::{H264Settings, default_bitrate_bps};
use crate::error::Error;
use crate::hls::segmenter::SegmenterSettings;
use crate::hls::store::{HlsStore, HlsTiming};
use crate::hub::Hub;
use crate::source::spec::PipeFormat;
use crate::source::whip::{WhipInlet, WhipOpener};
use crate::source::{self, SourceSpec};
use h264::H264Counters;
use hls_demand::HlsDemand;
use supervisor::SupervisorSettings;

/// What a stream's HLS side gives the HTTP handlers.
#[derive(Debug, Clone)]
pub struct StreamHls {
    pub store: Arc<HlsStore>,
    pub bitrate_bps: u32,
    pub counters: Arc<H264Counters>,
    /// Whether the encoder is wanted and runs: every HLS request holds it while served
    /// ([`HlsDemand::hold`]), as does a `/live.mp4` body while it lives.
    pub demand: Arc<HlsDemand>,
}

/// A running stream: its threads, and the hub and HLS store that viewers read from.
#[derive(Debug)]
pub struct Stream {
    pub hub: Arc<Hub>,
    /// `None` with HLS turned off.
    pub hls: Option<StreamHls>,
    /// Where a WHIP publisher's session hands its H.264 to the source (`source = "whip"`).
    pub whip: Option<Arc<WhipInlet>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Stream {
    /// Starts the source supervisor, the JPEG workers and, unless HLS is off, the H.264 thread.
    pub fn start(server: &ServerSettings, config: &StreamSettings) -> Result<Self, Error> {
        let hls_on = config.hls != HlsMode::Off;
        let hub = Hub::with_mjpeg_fps(hls_on, config.mjpeg_fps);
        let stop = Arc::new(AtomicBool::new(false));
        let whip = (config.source == SourceSpec::Whip).then(WhipInlet::new);
        let mut stream = Self {
            hub: hub.clone(),
            hls: None,
            whip: whip.clone(),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        // On an error below, dropping `stream` would leave started threads running: stop them.
        let started = (|| {
            let opener = match whip {
                Some(inlet) => Box::new(WhipOpener::new(inlet)),
                None => source::opener(&config.source, config.size, config.fps),
            };
            stream.threads.push(supervisor::spawn(
                opener,
                hub.clone(),
                SupervisorSettings {
                    size: config.size,
                    fps: config.fps,
                    drop_same_frames: config.drop_same_frames,
                },
                stop.clone(),
            )?);
            stream.threads.extend(jpeg::spawn_workers(
                hub.clone(),
                config.jpeg_quality,
                server.jpeg_thread_count(),
                stop.clone(),
            )?);
            // Started for every stream: it sleeps until the hub hands it an H.264 frame, which
            // only a source sending H.264 does, and only while someone wants JPEGs. Started
            // up front, it is there for the first such frame with no hand-over of its own to
            // get wrong, at the cost of one idle thread.
            stream
                .threads
                .push(h264_decode::spawn(hub.clone(), stop.clone())?);
            if hls_on {
                let (hls, thread) = start_hls(config, hub.clone(), stop.clone())?;
                stream.hls = Some(hls);
                stream.threads.push(thread);
            }
            Ok(())
        })();
        match started {
            Ok(()) => Ok(stream),
            Err(error) => {
                stream.stop();
                Err(error)
            }
        }
    }

    /// Stops every thread of the stream and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.hub.close();
        if let Some(whip) = &self.whip {
            whip.close();
        }
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a pipeline thread panicked");
            }
        }
    }
}

/// The longest EXT-X-TARGETDURATION a source's key-frame interval can lead to.
const PASSTHROUGH_MAX_TARGET_S: u64 =
    crate::hls::passthrough::MAX_LEARN_90K / crate::frame::CLOCK_90K;

/// Whether the source delivers H.264 of its own, passed through to HLS.
fn delivers_h264(source: &SourceSpec) -> bool {
    match source {
        SourceSpec::Pipe(format)
        | SourceSpec::Fifo { format, .. }
        | SourceSpec::Exec { format, .. } => *format == PipeFormat::H264,
        SourceSpec::Rtsp(_) | SourceSpec::Whip => true,
        SourceSpec::TestPattern | SourceSpec::Camera(_) => false,
    }
}

/// Starts the H.264 encoder and segmenter feeding a new HLS store, always or on demand.
fn start_hls(
    config: &StreamSettings,
    hub: Arc<Hub>,
    stop: Arc<AtomicBool>,
) -> Result<(StreamHls, JoinHandle<()>), Error> {
    let segmenter = SegmenterSettings {
        fps: config.fps,
        frames_per_segment: config.frames_per_segment(),
        frames_per_part: config.frames_per_part(),
    };
    let timing = HlsTiming::new(segmenter, usize::from(config.hls_window));
    // A source's own H.264: its key-frame interval settles the timing (hls::passthrough).
    let passthrough = delivers_h264(&config.source);
    let store = Arc::new(if passthrough {
        HlsStore::unsettled(timing)
    } else {
        HlsStore::new(timing)
    });
    let bitrate_bps = config
        .h264_bitrate
        .unwrap_or_else(|| default_bitrate_bps(config.size, config.fps));
    let counters = Arc::new(H264Counters::default());
    let settings = H264Settings {
        fps: config.fps,
        bitrate_bps,
        frames_per_idr: segmenter.frames_per_segment,
    };
    // A player reloads the playlist about once a target duration, after downloading what it
    // lists (rfc8216bis §6.3.4): an encoder that stopped sooner than that after a request
    // would stop under a watching player. Three target durations, as long as the server holds
    // a blocked request, is the least idle time.
    // A source's key-frame interval can make the target duration up to 10 s.
    let longest_target = if passthrough {
        HlsTiming {
            target_duration_s: PASSTHROUGH_MAX_TARGET_S,
            ..timing
        }
    } else {
        timing
    };
    let idle_stop = Duration::from_secs(u64::from(config.hls_idle_stop_seconds))
        .max(longest_target.block_limit());
    let demand = HlsDemand::new(config.hls, idle_stop);
    let thread = h264::spawn(
        hub,
        store.clone(),
        counters.clone(),
        settings,
        config.h264_encoder,
        demand.clone(),
        stop,
    )?;
    Ok((
        StreamHls {
            store,
            bitrate_bps,
            counters,
            demand,
        },
        thread,
    ))
}
