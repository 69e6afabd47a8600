//! The hand-over points between the source, the encoders and the viewers.
//!
//! - Raw frames go from the source thread into a [`LatestSlot`] that JPEG encoder threads take
//!   from, but only while someone wants JPEGs ([`Demand`]): MJPEG viewers, or a recent snapshot.
//! - Encoded JPEGs go into a `watch` cell: latest-frame-wins. Publishing never waits for a
//!   viewer; each viewer takes the newest frame when its socket can take one, and counts the
//!   frames it skipped.
//! - H.264 frames from the source cannot take the latest-frame-wins way: a P-frame decodes
//!   only after every frame since its IDR, in order. The hub keeps the current GOP ([`Gop`])
//!   and, while someone wants JPEGs, hands every H.264 frame in order to the decode stage
//!   through a bounded queue; the stage puts the decoded pictures into the JPEG encoders'
//!   input. A frame the stage never got (the queue overflowed, or demand was off) shows as a
//!   gap in the frames' numbers, and the stage decodes the kept GOP again from its IDR.
//! - Every H.264 access unit, encoded or the source's own, also goes to WebRTC viewers through
//!   the [`AccessUnitTap`]: a bounded broadcast that never blocks the publisher.
//! - A per-stream rate cap (`mjpeg_fps`) decides which frames reach the JPEG encoders.
//! - Counters for `/status` and `/healthz` live here too.

mod access_units;
mod gop;
mod health;
mod key_frame_requests;
mod rate_cap;
mod slot;
mod viewers;

pub use access_units::{AccessUnitTap, TAP_CAPACITY, TapUnit};
pub use gop::{GOP_MAX_BYTES, GOP_MAX_FRAMES, Gop, NumberedUnit};
pub use health::{SourceHealth, SourceState};
pub use key_frame_requests::{KEY_FRAME_MIN_INTERVAL, KeyFrameRequests};
pub use rate_cap::RateCap;
pub use slot::{LatestSlot, Taken};
pub use viewers::{
    NewViewer, ViewerBudget, ViewerGuard, ViewerKind, ViewerRefusal, ViewerRegistry, ViewerStats,
};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use crate::frame::{Frame, FrameSize, JpegFrame, Pixels, unix_micros};
use crate::media::multipart;
use crate::meter::{DurationHistogram, RateMeter};

/// Frames waiting for the H.264 encoder: a quarter second at 30 fps rides out a busy moment
/// on a loaded machine; only a sustained overload drops frames.
const H264_QUEUE_FRAMES: usize = 8;

/// H.264 frames waiting for the decode stage: a second at 30 fps, so that frames arriving while
/// the stage decodes a whole GOP from cold wait for it instead of overflowing. Items are
/// shared frames, so the bound costs no copies.
const DECODE_QUEUE_FRAMES: usize = 32;

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
    /// The newest frame's picture size, width in the high 32 bits; 0 before the first. A
    /// camera's H.264 brings its own size, whatever `--size` says.
    last_size: AtomicU64,
    pub rate: RateMeter,
    last_frame_at: Mutex<Option<Instant>>,
    health: Mutex<Option<SourceHealth>>,
}

impl SourceCounters {
    /// The newest frame's picture size; `None` before the first frame.
    pub fn last_size(&self) -> Option<FrameSize> {
        match self.last_size.load(Ordering::Relaxed) {
            0 => None,
            packed => Some(FrameSize::new((packed >> 32) as u32, packed as u32)),
        }
    }

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
    /// Encode times, for `/metrics`.
    pub encode_histogram: DurationHistogram,
    /// Frames handed to the encoders that were replaced before any encoder was free.
    pub frames_skipped: AtomicU64,
    /// Frames not handed to the encoders because of the stream's `mjpeg_fps` cap.
    pub frames_over_cap: AtomicU64,
    pub rate: RateMeter,
}

/// Counters of the H.264 decode stage (JPEG viewers of an H.264 source), for `/status`.
#[derive(Debug, Default)]
pub struct DecodeCounters {
    /// Access units decoded to pictures.
    pub frames_decoded: AtomicU64,
    /// Access units the decoder failed on (each makes it wait for an IDR).
    pub decode_errors: AtomicU64,
    pub decode_micros_total: AtomicU64,
    pub decode_micros_last: AtomicU64,
    /// Frames dropped from the full hand-over queue before the stage took them.
    pub frames_lost: AtomicU64,
    /// Times the stage decoded the kept GOP from its IDR: cold starts and recoveries from
    /// lost frames.
    pub resyncs: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl DecodeCounters {
    /// Counts one decoded access unit.
    pub fn count_decoded(&self, decode_time: Duration) {
        let micros = decode_time.as_micros() as u64;
        self.frames_decoded.fetch_add(1, Ordering::Relaxed);
        self.decode_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        self.decode_micros_last.store(micros, Ordering::Relaxed);
    }

    /// Counts one failed access unit, and keeps why for `/status`.
    pub fn count_error(&self, error: &dyn std::fmt::Display) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }
}

/// The decode stage's figures as `/status` shows them (all zero for a source that sends no
/// H.264).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecodeStatus {
    pub frames_decoded: u64,
    pub errors: u64,
    pub decode_ms_last: f64,
    pub decode_ms_mean: f64,
    /// Frames the hand-over queue dropped; each made the stage decode the kept GOP again.
    pub frames_lost: u64,
    pub resyncs: u64,
    /// Why the last unit that failed did.
    pub last_error: Option<String>,
    /// Frames and bytes of the GOP kept for cold starts.
    pub gop_frames: usize,
    pub gop_bytes: usize,
}

/// What the hub hands the H.264 decode stage.
#[derive(Debug, Clone)]
pub enum DecodeWork {
    /// The next H.264 frame, numbered.
    Unit(NumberedUnit),
    /// JPEG demand has just started: decode the kept GOP now, without waiting for a frame.
    DemandStarted,
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
    jpeg_rate_cap: Option<Mutex<RateCap>>,
    /// The current GOP of an H.264 source.
    gop: Mutex<Gop>,
    /// H.264 frames in order for the decode stage, while JPEG demand is active.
    decode_input: LatestSlot<DecodeWork>,
    /// The source has sent H.264: demand starting wakes the decode stage.
    h264_seen: AtomicBool,
    pub decode: DecodeCounters,
    /// Frames for the H.264 encoder, fed always while HLS is on so its window stays warm.
    h264_input: Option<LatestSlot<Arc<Frame>>>,
    /// Frames the H.264 encoder never got because it fell behind.
    pub h264_frames_dropped: AtomicU64,
    jpeg_output: watch::Sender<Option<Arc<PublishedJpeg>>>,
    /// Signalled once when the source has ended for good.
    source_finished: Notify,
    /// Every H.264 access unit (encoded or the source's own) for WebRTC viewers.
    pub access_units: AccessUnitTap,
}

impl Hub {
    /// A hub; `with_h264` feeds every frame to the H.264 encoder too.
    pub fn new(with_h264: bool) -> Arc<Self> {
        Self::with_mjpeg_fps(with_h264, None)
    }

    /// A hub that hands at most `mjpeg_fps` frames a second to the JPEG encoders.
    pub fn with_mjpeg_fps(with_h264: bool, mjpeg_fps: Option<u32>) -> Arc<Self> {
        Arc::new(Self {
            jpeg_rate_cap: mjpeg_fps.map(|fps| Mutex::new(RateCap::new(fps))),
            gop: Mutex::new(Gop::default()),
            decode_input: LatestSlot::with_capacity(DECODE_QUEUE_FRAMES),
            h264_seen: AtomicBool::new(false),
            decode: DecodeCounters::default(),
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
            access_units: AccessUnitTap::default(),
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
        self.source.last_size.store(
            (u64::from(frame.size.width) << 32) | u64::from(frame.size.height),
            Ordering::Relaxed,
        );
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
        if let Pixels::H264(_) = &frame.pixels {
            self.publish_h264(frame);
            return;
        }
        if self.h264_seen.load(Ordering::Relaxed) {
            // A placeholder between H.264 frames: the source went down, and what comes next
            // may not follow on from what came before.
            self.h264_discontinuity();
        }
        // A repeated frame changes nothing for MJPEG viewers; they re-send the last frame after
        // a pause anyway.
        if frame.repeats_previous || !self.demand.is_active() {
            return;
        }
        if !self.admit_to_jpeg(&frame) {
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

    /// Keeps an H.264 frame in the GOP and, while someone wants JPEGs, hands it to the decode
    /// stage: every frame, in order, whether or not it repeats the previous picture.
    fn publish_h264(&self, frame: Arc<Frame>) {
        self.h264_seen.store(true, Ordering::Relaxed);
        if let Pixels::H264(unit) = &frame.pixels {
            self.access_units
                .publish(&unit.annex_b, frame.captured_at, unit.is_idr, true);
        }
        // Numbered and kept under one lock: a frame the stage later finds missing is then
        // always either in the GOP it reads or after it.
        let unit = self
            .gop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(frame);
        if self.demand.is_active() && self.decode_input.put(DecodeWork::Unit(unit)) {
            self.decode.frames_lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks a break in an H.264 source's frames (a reconnection): the kept GOP is dropped,
    /// and decoding for JPEG viewers resumes at the next IDR.
    pub fn h264_discontinuity(&self) {
        self.access_units.discontinuity();
        self.gop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .discontinuity();
    }

    /// Where the H.264 decode stage takes its work from.
    pub fn decode_input(&self) -> &LatestSlot<DecodeWork> {
        &self.decode_input
    }

    /// The kept GOP, from its IDR to the newest frame; `None` when it is not wholly kept (no
    /// IDR yet, or past the bounds: then decoding waits for the next IDR).
    pub fn current_gop(&self) -> Option<Vec<NumberedUnit>> {
        let gop = self.gop.lock().unwrap_or_else(|e| e.into_inner());
        gop.units().map(<[NumberedUnit]>::to_vec)
    }

    /// The decode stage's figures and the kept GOP's size, for `/status`.
    pub fn decode_status(&self) -> DecodeStatus {
        let (gop_frames, gop_bytes) = self.gop.lock().unwrap_or_else(|e| e.into_inner()).len();
        let c = &self.decode;
        let frames_decoded = c.frames_decoded.load(Ordering::Relaxed);
        // Whole microseconds: three decimals of a millisecond.
        let ms = |micros: u64| micros as f64 / 1000.0;
        DecodeStatus {
            frames_decoded,
            errors: c.decode_errors.load(Ordering::Relaxed),
            decode_ms_last: ms(c.decode_micros_last.load(Ordering::Relaxed)),
            decode_ms_mean: ms(
                c.decode_micros_total.load(Ordering::Relaxed) / frames_decoded.max(1)
            ),
            frames_lost: c.frames_lost.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            gop_frames,
            gop_bytes,
        }
    }

    /// Called by the decode stage with each picture it decoded that viewers should get: goes
    /// to the JPEG encoders as a raw frame from the source would, within the rate cap.
    pub fn publish_decoded(&self, frame: Arc<Frame>) {
        if frame.repeats_previous || !self.demand.is_active() || !self.admit_to_jpeg(&frame) {
            return;
        }
        if self.jpeg_input.put(frame) {
            self.jpeg.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the rate cap lets `frame` go to the JPEG encoders (counted when not).
    fn admit_to_jpeg(&self, frame: &Frame) -> bool {
        let Some(cap) = &self.jpeg_rate_cap else {
            return true;
        };
        let admitted = cap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(frame.pts_90k);
        if !admitted {
            self.jpeg.frames_over_cap.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Wakes the decode stage of an H.264 source when demand has just started, so that it
    /// decodes the kept GOP at once instead of at the next frame.
    fn demand_started(&self) {
        if self.h264_seen.load(Ordering::Relaxed)
            && self.decode_input.put(DecodeWork::DemandStarted)
        {
            self.decode.frames_lost.fetch_add(1, Ordering::Relaxed);
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
            self.jpeg.encode_histogram.record_micros(encode_micros);
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
        let was_active = self.demand.is_active();
        self.demand.streams.fetch_add(1, Ordering::Relaxed);
        if !was_active {
            self.demand_started();
        }
        StreamDemandGuard { hub: self.clone() }
    }

    /// Keeps JPEG encoding on for a few seconds for snapshot requests.
    pub fn want_snapshot(&self) {
        let was_active = self.demand.is_active();
        self.demand.want_snapshot();
        if !was_active {
            self.demand_started();
        }
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
        self.decode_input.close();
        if let Some(h264_input) = &self.h264_input {
            h264_input.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameSize, H264Unit};
    use std::time::SystemTime;

    fn frame(seq: u64, pixels: Pixels) -> Arc<Frame> {
        Arc::new(Frame {
            seq,
            pts_90k: seq * 3000,
            captured_at: SystemTime::UNIX_EPOCH,
            size: FrameSize::new(160, 120),
            pixels,
            repeats_previous: false,
        })
    }

    fn raw(seq: u64) -> Arc<Frame> {
        frame(
            seq,
            Pixels::I420(Bytes::from(vec![0; FrameSize::new(160, 120).i420_len()])),
        )
    }

    #[test]
    fn the_rate_cap_holds_back_raw_frames_from_the_encoders() {
        let hub = Hub::with_mjpeg_fps(false, Some(5));
        let _viewer = hub.want_stream();
        let mut handed = Vec::new();
        for seq in 1..=30 {
            hub.publish_frame(raw(seq));
            if let Taken::Item(frame) = hub.jpeg_input().take(Duration::ZERO) {
                handed.push(frame.seq);
            }
        }
        assert_eq!(handed, [1, 7, 13, 19, 25]);
        assert_eq!(hub.jpeg.frames_over_cap.load(Ordering::Relaxed), 25);
    }

    #[test]
    fn the_rate_cap_holds_back_a_sources_jpegs_too() {
        let hub = Hub::with_mjpeg_fps(false, Some(10));
        let _viewer = hub.want_stream();
        for seq in 1..=30 {
            hub.publish_frame(frame(seq, Pixels::Jpeg(Bytes::from_static(b"jpeg"))));
        }
        assert_eq!(hub.jpeg.frames_encoded.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn h264_frames_wake_the_decode_stage_only_when_demand_starts() {
        let hub = Hub::new(false);
        let _viewer = hub.want_stream();
        assert!(
            matches!(hub.decode_input().take(Duration::ZERO), Taken::TimedOut),
            "no H.264 seen: nothing to wake"
        );
        let h264 = |seq| {
            frame(
                seq,
                Pixels::H264(H264Unit {
                    annex_b: Bytes::from_static(&[0, 0, 0, 1, 0x65, 1]),
                    is_idr: seq == 1,
                }),
            )
        };
        hub.publish_frame(h264(1));
        assert!(matches!(
            hub.decode_input().take(Duration::ZERO),
            Taken::Item(DecodeWork::Unit(NumberedUnit { index: 1, .. }))
        ));
        assert!(matches!(
            hub.jpeg_input().take(Duration::ZERO),
            Taken::TimedOut
        ));
        hub.want_snapshot();
        assert!(
            matches!(hub.decode_input().take(Duration::ZERO), Taken::TimedOut),
            "demand was already on"
        );
        let hub = Hub::new(false);
        hub.publish_frame(h264(1));
        hub.want_snapshot();
        assert!(matches!(
            hub.decode_input().take(Duration::ZERO),
            Taken::Item(DecodeWork::DemandStarted)
        ));
    }
}
