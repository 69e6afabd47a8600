//! The H.264 thread: takes every frame from the hub, encodes it, cuts parts and segments, and
//! updates the HLS store. It runs from start to stop, viewers or not, so that the first viewer
//! finds a full window.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use crate::encode::h264::{H264Encoder, H264Settings};
use crate::error::Error;
use crate::frame::{Frame, Pixels};
use crate::hls::segmenter::Segmenter;
use crate::hls::store::HlsStore;
use crate::hub::{Hub, Taken};
use crate::meter::RateMeter;
use crate::source::convert::{self, ConvertError};

/// How often an idle thread wakes to check for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Counters of the H.264 stage, for `/status`.
#[derive(Debug, Default)]
pub struct H264Counters {
    pub frames_encoded: AtomicU64,
    pub encode_micros_total: AtomicU64,
    pub encode_micros_last: AtomicU64,
    pub errors: AtomicU64,
    pub rate: RateMeter,
}

/// Decodes passthrough JPEGs (camera or pipe MJPEG) to I420, reusing its buffers.
struct JpegDecoder {
    decompressor: turbojpeg::Decompressor,
    scratch: Vec<u8>,
}

impl JpegDecoder {
    fn new() -> Result<Self, turbojpeg::Error> {
        Ok(Self {
            decompressor: turbojpeg::Decompressor::new()?,
            scratch: Vec::new(),
        })
    }
}

/// The frame with I420 samples: as it is, or its JPEG decoded (only the H.264 path pays for
/// that; MJPEG viewers get the JPEG untouched).
fn to_i420(frame: &Arc<Frame>, decoder: &mut JpegDecoder) -> Result<Arc<Frame>, ConvertError> {
    let Pixels::Jpeg(jpeg) = &frame.pixels else {
        return Ok(frame.clone());
    };
    let mut i420 = Vec::new();
    let size = convert::jpeg_to_i420(
        &mut decoder.decompressor,
        jpeg,
        &mut decoder.scratch,
        &mut i420,
    )?;
    let mut decoded = Frame::from_i420(
        frame.seq,
        frame.pts_90k,
        frame.captured_at,
        size,
        Bytes::from(i420),
    );
    decoded.repeats_previous = frame.repeats_previous;
    Ok(Arc::new(decoded))
}

/// Decides, for each frame the thread takes, whether it is encoded: a seam for tests that
/// play an encoder that falls behind (a frame it refuses is a frame the encoder never got).
pub type FrameFilter = Box<dyn FnMut(&Frame) -> bool + Send>;

/// Starts the H.264 thread.
pub fn spawn(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_filtered(hub, store, counters, settings, stop, Box::new(|_| true))
}

/// Starts the H.264 thread encoding only the frames `filter` keeps.
pub fn spawn_filtered(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    stop: Arc<AtomicBool>,
    mut filter: FrameFilter,
) -> Result<JoinHandle<()>, Error> {
    let mut encoder = H264Encoder::new(settings).map_err(|e| Error::H264Encoder(e.to_string()))?;
    let mut segmenter = Segmenter::new(store.timing().segmenter);
    let mut decoder = JpegDecoder::new().map_err(|e| Error::H264Encoder(e.to_string()))?;
    std::thread::Builder::new()
        .name("h264".into())
        .spawn(move || {
            let Some(input) = hub.h264_input() else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let frame = match input.take(IDLE_POLL) {
                    Taken::Item(frame) => frame,
                    Taken::TimedOut => continue,
                    Taken::Closed => break,
                };
                if !filter(&frame) {
                    continue;
                }
                let frame = match to_i420(&frame, &mut decoder) {
                    Ok(frame) => frame,
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, seq = frame.seq, "cannot decode a JPEG for H.264");
                        continue;
                    }
                };
                let unit = match encoder.encode(&frame) {
                    Ok(unit) => unit,
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, seq = frame.seq, "H.264 encoding failed");
                        continue;
                    }
                };
                let micros = unit.encode_time.as_micros() as u64;
                counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
                counters
                    .encode_micros_total
                    .fetch_add(micros, Ordering::Relaxed);
                counters.encode_micros_last.store(micros, Ordering::Relaxed);
                counters.rate.tick();
                match segmenter.push(&unit, frame.pts_90k) {
                    Ok(outcome) => {
                        if outcome.need_idr {
                            encoder.restart_cadence();
                        }
                        store.apply(outcome.events);
                    }
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, seq = unit.seq, "cannot segment H.264");
                        encoder.restart_cadence();
                    }
                }
            }
        })
        .map_err(Error::Thread)
}
