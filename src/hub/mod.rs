//! The hand-over points between the source, the encoders and the viewers.
//!
//! - Raw frames go from the source thread into a [`LatestSlot`] that JPEG encoder threads take
//!   from, but only while someone wants JPEGs ([`Demand`]): MJPEG viewers, or a recent snapshot.
//! - Encoded JPEGs go into a `watch` cell: latest-frame-wins. Publishing never waits for a
//!   viewer; each viewer takes the newest frame when its socket can take one, and counts the
//!   frames it skipped.
//! - Counters for `/status` and `/healthz` live here too.

mod health;
mod slot;
mod viewers;

pub use health::{SourceHealth, SourceState};
pub use slot::{LatestSlot, Taken};
pub use viewers::{ViewerGuard, ViewerKind, ViewerRegistry, ViewerStats};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use crate::frame::{Frame, JpegFrame, Pixels, unix_micros};
use crate::media::multipart;
use crate::meter::RateMeter;

/// Frames waiting for the H.264 encoder: a quarter second at 30 fps rides out a busy moment
/// on a loaded machine; only a sustained overload drops frames.
const H264_QUEUE_FRAMES: usize = 8;

/// How long a snapshot request keeps the JPEG encoder running: long enough that a script
/// polling once a second never waits for a cold encoder, short enough to stop soon after.
const SNAPSHOT_DEMAND_HOLD: Duration = Duration::from_secs(3);

/// A JPEG as published to viewers: the frame plus what every viewer sends with it.
#[derive(Debug)]
pub struct PublishedJpeg {
    pub frame: JpegFrame,
    /// Counts published JPEGs from 1; a viewer's skipped frames are the gaps it sees here.
    pub index: u64,
    /// Part headers for clients that get full headers, built once for all of them.
    pub full_headers: Bytes,
}

/// Counters of the source, for `/status` and `/healthz`.
#[derive(Debug, Default)]
pub struct SourceCounters {
    pub frames: AtomicU64,
    pub last_seq: AtomicU64,
    pub rate: RateMeter,
    last_frame_at: Mutex<Option<Instant>>,
    health: Mutex<Option<SourceHealth>>,
}

impl SourceCounters {
    /// Time since the source last delivered a frame; `None` before the first.
    pub fn last_frame_age(&self) -> Option<Duration> {
        self.last_frame_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }
}

/// Counters of the JPEG stage, for `/status`.
#[derive(Debug, Default)]
pub struct JpegCounters {
    pub frames_encoded: AtomicU64,
    pub encode_micros_total: AtomicU64,
    pub encode_micros_last: AtomicU64,
    /// Frames handed to the encoders that were replaced before any encoder was free.
    pub frames_skipped: AtomicU64,
    pub rate: RateMeter,
}

/// Who wants JPEGs right now.
#[derive(Debug)]
pub struct Demand {
    streams: AtomicUsize,
    epoch: Instant,
    snapshot_until_micros: AtomicU64,
}

impl Demand {
    fn new() -> Self {
        Self {
            streams: AtomicUsize::new(0),
            epoch: Instant::now(),
            snapshot_until_micros: AtomicU64::new(0),
        }
    }

    pub fn is_active(&self) -> bool {
        self.streams.load(Ordering::Relaxed) > 0
            || self.micros_since_epoch() < self.snapshot_until_micros.load(Ordering::Relaxed)
    }

    fn want_snapshot(&self) {
        let until = self.micros_since_epoch() + SNAPSHOT_DEMAND_HOLD.as_micros() as u64;
        self.snapshot_until_micros
            .fetch_max(until, Ordering::Relaxed);
    }

    fn micros_since_epoch(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Keeps the JPEG encoder running while an MJPEG stream lives.
#[derive(Debug)]
pub struct StreamDemandGuard {
    hub: Arc<Hub>,
}

impl Drop for StreamDemandGuard {
    fn drop(&mut self) {
        self.hub.demand.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shared state between the pipeline threads and the HTTP handlers.
#[derive(Debug)]
pub struct Hub {
    pub started_at: Instant,
    pub source: SourceCounters,
    pub jpeg: JpegCounters,
    pub viewers: Arc<ViewerRegistry>,
    demand: Demand,
    jpeg_input: LatestSlot<Arc<Frame>>,
    /// Frames for the H.264 encoder, fed always while HLS is on so its window stays warm.
    h264_input: Option<LatestSlot<Arc<Frame>>>,
    /// Frames the H.264 encoder never got because it fell behind.
    pub h264_frames_dropped: AtomicU64,
    jpeg_output: watch::Sender<Option<Arc<PublishedJpeg>>>,
    /// Signalled once when the source has ended for good.
    source_finished: Notify,
}

impl Hub {
    /// A hub; `with_h264` feeds every frame to the H.264 encoder too.
    pub fn new(with_h264: bool) -> Arc<Self> {
        Arc::new(Self {
            h264_input: with_h264.then(|| LatestSlot::with_capacity(H264_QUEUE_FRAMES)),
            started_at: Instant::now(),
            source: SourceCounters::default(),
            jpeg: JpegCounters::default(),
            viewers: Arc::new(ViewerRegistry::default()),
            demand: Demand::new(),
            jpeg_input: LatestSlot::new(),
            h264_frames_dropped: AtomicU64::new(0),
            jpeg_output: watch::Sender::new(None),
            source_finished: Notify::new(),
        })
    }

    /// The source's health as the supervisor last set it.
    pub fn source_health(&self) -> SourceHealth {
        self.source
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| SourceHealth::new(String::new()))
    }

    /// Updates the source's health (the supervisor does).
    pub fn set_source_health(&self, update: impl FnOnce(&mut SourceHealth)) {
        let mut health = self.source.health.lock().unwrap_or_else(|e| e.into_inner());
        update(health.get_or_insert_with(|| SourceHealth::new(String::new())));
    }

    /// Marks the source as ended for good (the supervisor does, once).
    pub fn finish_source(&self) {
        self.set_source_health(|h| h.finished = true);
        self.source_finished.notify_one();
    }

    /// Resolves once the source has ended for good.
    pub async fn source_finished(&self) {
        self.source_finished.notified().await;
    }

    /// Called by the source thread for every frame. Never blocks.
    pub fn publish_frame(&self, frame: Arc<Frame>) {
        self.source.frames.fetch_add(1, Ordering::Relaxed);
        self.source.last_seq.store(frame.seq, Ordering::Relaxed);
        self.source.rate.tick();
        *self
            .source
            .last_frame_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if let Some(h264_input) = &self.h264_input
            && h264_input.put(frame.clone())
        {
            self.h264_frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
        // A repeated frame changes nothing for MJPEG viewers; they re-send the last frame after
        // a pause anyway.
        if frame.repeats_previous || !self.demand.is_active() {
            return;
        }
        if let Pixels::Jpeg(jpeg) = &frame.pixels {
            // A JPEG from the source goes to viewers as it came: published here, it reaches them
            // without a hand-over to an encoder thread and back.
            self.publish_jpeg(JpegFrame {
                seq: frame.seq,
                captured_at: frame.captured_at,
                size: frame.size,
                jpeg: jpeg.clone(),
                encode_time: Duration::ZERO,
            });
        } else if self.jpeg_input.put(frame) {
            self.jpeg.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Where JPEG encoder threads take their next frame from.
    pub fn jpeg_input(&self) -> &LatestSlot<Arc<Frame>> {
        &self.jpeg_input
    }

    /// Where the H.264 encoder thread takes its next frame from, when HLS is on.
    pub fn h264_input(&self) -> Option<&LatestSlot<Arc<Frame>>> {
        self.h264_input.as_ref()
    }

    /// Called by a JPEG encoder thread. Frames finished out of order by parallel encoders are
    /// dropped (and counted) so viewers always see sequence numbers increase.
    pub fn publish_jpeg(&self, frame: JpegFrame) {
        let full_headers = multipart::full_part_headers(
            frame.jpeg.len(),
            unix_micros(frame.captured_at),
            frame.seq,
        );
        let encode_micros = frame.encode_time.as_micros() as u64;
        let mut pending = Some(frame);
        let published = self.jpeg_output.send_if_modified(|current| {
            let (newer, index) = match current {
                Some(cur) => (
                    pending.as_ref().is_some_and(|f| f.seq > cur.frame.seq),
                    cur.index + 1,
                ),
                None => (true, 1),
            };
            if let (true, Some(frame)) = (newer, pending.take()) {
                *current = Some(Arc::new(PublishedJpeg {
                    frame,
                    index,
                    full_headers: full_headers.clone(),
                }));
                true
            } else {
                false
            }
        });
        if published {
            self.jpeg.frames_encoded.fetch_add(1, Ordering::Relaxed);
            self.jpeg
                .encode_micros_total
                .fetch_add(encode_micros, Ordering::Relaxed);
            self.jpeg
                .encode_micros_last
                .store(encode_micros, Ordering::Relaxed);
            self.jpeg.rate.tick();
        } else {
            self.jpeg.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A receiver of published JPEGs.
    pub fn subscribe_jpeg(&self) -> watch::Receiver<Option<Arc<PublishedJpeg>>> {
        self.jpeg_output.subscribe()
    }

    /// Starts JPEG encoding for as long as the guard lives.
    pub fn want_stream(self: &Arc<Self>) -> StreamDemandGuard {
        self.demand.streams.fetch_add(1, Ordering::Relaxed);
        StreamDemandGuard { hub: self.clone() }
    }

    /// Keeps JPEG encoding on for a few seconds for snapshot requests.
    pub fn want_snapshot(&self) {
        self.demand.want_snapshot();
    }

    pub fn jpeg_demand_active(&self) -> bool {
        self.demand.is_active()
    }

    /// True if `jpeg` shows the newest frame from the source or the one before it: what a
    /// viewer or a snapshot may be given without waiting.
    pub fn is_fresh(&self, jpeg: &PublishedJpeg) -> bool {
        let newest = self.source.last_seq.load(Ordering::Relaxed);
        jpeg.frame.seq + 1 >= newest
    }

    /// Wakes every encoder thread so it can see the shutdown.
    pub fn close(&self) {
        self.jpeg_input.close();
        if let Some(h264_input) = &self.h264_input {
            h264_input.close();
        }
    }
}
