//! The H.264 thread: takes every frame from the hub, encodes it, cuts parts and segments, and
//! updates the HLS store. The rate gate ([`super::rate_gate`]) decides which frames are
//! encoded and how coarsely, so that every segment stays within its byte budget.
//!
//! A source's own H.264 (`Pixels::H264`: `pipe:h264`, RTSP) is not encoded: each access unit
//! goes to the segmenter as it came, without decoder, encoder or rate gate. Its key-frame
//! interval decides the segment length ([`crate::hls::passthrough`]): the first GOP is held
//! until the next IDR, the store's timing is settled from it, and then it is segmented.
//! Frames get regular times at the measured rate from their capture times ([`CaptureClock`]).
//! A frame lost before this thread (a gap in `seq`: the hub's queue to it overflowed) leaves
//! the frames after it undecodable: they are dropped until the next IDR and counted, the open
//! segment ends with the frame before the gap, and the IDR starts the next one behind a
//! discontinuity (lengthening that frame over a hole of up to a GOP would break PART-TARGET). Raw frames that come in
//! between (the supervisor's "NO SIGNAL" placeholders while the source is down) are encoded
//! by an encoder made for the first of them and freed when the source's H.264 is back; the
//! new parameter sets give a new init section and a discontinuity each way, and the source's
//! H.264 starts again at its next IDR. Placeholders before the first GOP was learned are not
//! published: the timing is not known yet.
//!
//! Every encoded access unit also goes to WebRTC viewers through the hub's
//! [`crate::hub::AccessUnitTap`], and a viewer's key-frame request makes the next frame an IDR.
//!
//! With `hls = "always"` the encoder runs from start to stop, viewers or not, so that the
//! first viewer finds a full window. With `hls = "on-demand"` it runs while
//! [`HlsDemand`] wants it: it starts on the frame after the first request (a new encoder, so
//! with an IDR) and stops, closing its segment and emptying the window
//! ([`Segmenter::interrupt`], [`HlsStore::interrupt`]), once nobody asked for a while. While
//! stopped the thread still takes the hub's frames, so none queue up or count as dropped, and
//! throws them away without decoding or encoding anything; the encoder itself is freed.
//!
//! The encoder is openh264 in process, or an ffmpeg process ([`super::h264_piped`]) when the
//! stream asks for x264 or a hardware encoder and its test encode at start works
//! ([`h264_choice::choose`]). Its access units come back a few frames later, each with its own
//! frame's times; it has no rate gate (that module says why), and when it fails too often
//! openh264 takes over for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::encode::ffmpeg_h264::EncodedFrame;
use crate::encode::h264::{AccessUnit, H264Encoder, H264Error, H264Settings};
use crate::encode::h264_choice::{self, ChoiceReason, EncoderState, H264EncoderKind};
use crate::error::Error;
use crate::frame::{CLOCK_90K, Frame, Pixels, unix_micros};
use crate::hls::passthrough::{KeyFrameLearner, Learning, passthrough_timing};
use crate::hls::segmenter::{Segmenter, SegmenterEvent, UnitInfo};
use crate::hls::store::HlsStore;
use crate::hub::{Hub, Taken};
use crate::media::h264;
use crate::meter::{DurationHistogram, RateMeter};
use crate::repeated_log::{RepeatedLog, SUMMARY_INTERVAL};

use super::capture_clock::{CaptureClock, Placement};
use super::h264_piped::{PipedEncoder, PipedEvent};
use super::hls_demand::HlsDemand;
use super::rate_gate::{RateGate, Verdict};
use crate::picture::block_average::average_blocks;
use crate::picture::convert::{self, ConvertError};

/// How often the idle H.264 thread wakes to follow demand and check for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Counters of the H.264 stage, for `/status`.
#[derive(Debug, Default)]
pub struct H264Counters {
    pub frames_encoded: AtomicU64,
    pub encode_micros_total: AtomicU64,
    pub encode_micros_last: AtomicU64,
    /// Encode times, for `/metrics`.
    pub encode_histogram: DurationHistogram,
    pub errors: AtomicU64,
    pub rate: RateMeter,
    /// Frames the rate gate did not encode, to keep a segment within its budget.
    pub frames_skipped_rate: AtomicU64,
    /// Encoded frames thrown away for their size and encoded again, coarser, as an IDR.
    pub frames_reencoded_rate: AtomicU64,
    /// The block size pictures are averaged over before encoding now (1: untouched).
    pub block_px: AtomicU64,
    /// Whether inter frames repeat the last picture now (the gate's last resort).
    pub picture_held: AtomicBool,
    /// The source delivers H.264 of its own, passed through without an encoder.
    pub passthrough: AtomicBool,
    /// The source's key-frame interval in µs, learned from its first GOP (0: not yet).
    pub key_frame_interval_us: AtomicU64,
    /// Access units of the source passed to the segmenter as they came.
    pub frames_passed_through: AtomicU64,
    /// Frames of the source lost before this thread (gaps in `seq`: the hub's queue overflowed).
    pub frame_gaps: AtomicU64,
    /// The source's access units dropped because nothing could decode them: before the first
    /// IDR, after a lost frame or placeholders until the next IDR, and the rest of a GOP
    /// longer than a segment may be.
    pub frames_dropped_for_idr: AtomicU64,
    /// Segments ended early because the source's GOP outlasted the target duration.
    pub long_gop_cuts: AtomicU64,
    /// Whether the encoder exists now (raw frames come: a raw source, or placeholders).
    pub encoder_running: AtomicBool,
    /// Which encoder runs and why; an ffmpeg encoder's process, restarts and failures.
    pub encoder: EncoderState,
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
    let decompressor = &mut decoder.decompressor;
    let size = match convert::jpeg_to_i420(decompressor, jpeg, &mut decoder.scratch, &mut i420) {
        Ok(size) => size,
        Err(error) => {
            // libjpeg-turbo can keep state from a failed decode that makes every later frame
            // fail too ("two SOI markers"): the next frame gets a fresh decompressor.
            if let Ok(fresh) = turbojpeg::Decompressor::new() {
                *decompressor = fresh;
            }
            return Err(error);
        }
    };
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

/// The frame averaged over blocks of `block_px` (the frame itself for 1).
fn averaged(frame: &Arc<Frame>, block_px: u32) -> Arc<Frame> {
    let Some(picture) = frame.i420().filter(|_| block_px > 1) else {
        return frame.clone();
    };
    let bytes = Bytes::from(average_blocks(&picture, block_px));
    let mut averaged = Frame::from_i420(
        frame.seq,
        frame.pts_90k,
        frame.captured_at,
        frame.size,
        bytes,
    );
    averaged.repeats_previous = frame.repeats_previous;
    Arc::new(averaged)
}

/// What the encoder is given for `frame`: its picture averaged over the gate's blocks or,
/// while the gate holds the picture, the picture the encoder was given last (with this frame's
/// times), which costs next to nothing as an inter frame. The IDR that starts a segment always
/// takes the new picture, so a held picture still changes once a segment.
fn picture_for(
    frame: &Arc<Frame>,
    gate: &RateGate,
    last_fed: Option<&Arc<Frame>>,
    starts_segment: bool,
) -> Arc<Frame> {
    match last_fed {
        Some(last) if gate.holds() && !starts_segment && last.size == frame.size => {
            Arc::new(Frame {
                seq: frame.seq,
                pts_90k: frame.pts_90k,
                captured_at: frame.captured_at,
                size: frame.size,
                pixels: last.pixels.clone(),
                repeats_previous: true,
            })
        }
        _ => averaged(frame, gate.block_px()),
    }
}

/// Encodes a frame so that it fits the gate's budget: one that does not is encoded again,
/// as an IDR, averaged over larger blocks (then held), until it fits or the gate can do no
/// more. `starts_segment`: the frame is the IDR that will start the next segment.
/// `last_fed`: the picture the encoder was given last, replaced by this frame's.
fn encode_within_budget(
    encoder: &mut H264Encoder,
    gate: &mut RateGate,
    frame: &Arc<Frame>,
    starts_segment: bool,
    last_fed: &mut Option<Arc<Frame>>,
    counters: &H264Counters,
) -> Result<AccessUnit, H264Error> {
    let mut picture = picture_for(frame, gate, last_fed.as_ref(), starts_segment);
    let mut unit = encoder.encode(&picture)?;
    let fits = |gate: &RateGate, unit: &AccessUnit| {
        gate.fits(
            frame.pts_90k,
            unit.annex_b.len() as u64,
            unit.is_idr,
            starts_segment,
        )
    };
    while !fits(gate, &unit) {
        let doublings = gate.doublings_to_fit(
            frame.pts_90k,
            unit.annex_b.len() as u64,
            unit.is_idr,
            starts_segment,
        );
        let mut coarser = false;
        for _ in 0..doublings {
            coarser |= gate.coarsen();
        }
        if !coarser {
            // Nothing more to try: the frame goes as it is.
            break;
        }
        counters
            .frames_reencoded_rate
            .fetch_add(1, Ordering::Relaxed);
        picture = picture_for(frame, gate, last_fed.as_ref(), starts_segment);
        match encoder.reencode_as_idr(&picture) {
            Ok(again) => unit = again,
            Err(error) => {
                // The encoder's references now hold the picture thrown away: the next frame
                // must not refer to them.
                encoder.restart_cadence();
                return Err(error);
            }
        }
    }
    *last_fed = Some(picture);
    Ok(unit)
}

/// Decides, for each frame the thread takes, whether it is encoded: a seam for tests that
/// play an encoder that falls behind (a frame it refuses is a frame the encoder never got).
pub type FrameFilter = Box<dyn FnMut(&Frame) -> bool + Send>;

/// What exists only while raw frames are being encoded.
struct Running {
    encoder: H264Encoder,
    gate: RateGate,
    /// The picture the encoder was given last.
    last_fed: Option<Arc<Frame>>,
}

impl Running {
    fn new(encoder: H264Encoder, settings: &H264Settings, store: &HlsStore) -> Self {
        Self {
            encoder,
            gate: RateGate::new(settings.bitrate_bps, store.timing().segmenter),
            last_fed: None,
        }
    }
}

/// How late or early a source's access unit may arrive and keep its place on the frame grid:
/// pipes and networks deliver in bursts, and no frame is lost on the way (a lost one shows as
/// a gap in `seq`), so only a pause or drift beyond this moves the grid.
const ARRIVAL_JITTER_90K: u64 = CLOCK_90K / 2;

/// The state of a source's own H.264 on its way to the segmenter.
#[derive(Default)]
struct Passthrough {
    /// Holds the first GOP while the store's timing is not settled.
    learner: KeyFrameLearner<Arc<Frame>>,
    /// Frames are dropped until the next IDR: one was lost before this thread (a gap in
    /// `seq`), or raw frames (placeholders) came in between.
    awaiting_idr: bool,
    /// Regular presentation times at the measured rate from the frames' capture times, and
    /// the time the first of them is placed at: sources stamp H.264 with its arrival time,
    /// whose jitter would make parts of uneven frame counts.
    clock: Option<(CaptureClock, u64)>,
}

/// The frame rate the SPS in front of an IDR says (VUI timing, H.264 §E.2.1), if it says one.
fn sps_frame_rate(annex_b: &[u8]) -> Option<f64> {
    let sps =
        h264::split_annex_b(annex_b).find(|nal| h264::nal_unit_type(nal) == Some(h264::NAL_SPS))?;
    h264::parse_sps(sps).ok()?.timing?.frame_rate_hz()
}

/// Starts the H.264 thread with the encoder `requested` (probed first, see
/// [`h264_choice::choose`]).
pub fn spawn(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    requested: H264EncoderKind,
    demand: Arc<HlsDemand>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_with_encoder(
        hub,
        store,
        counters,
        settings,
        requested,
        demand,
        stop,
        Box::new(|_| true),
    )
}

/// Starts the H.264 thread with openh264, encoding only the frames `filter` keeps.
pub fn spawn_filtered(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    demand: Arc<HlsDemand>,
    stop: Arc<AtomicBool>,
    filter: FrameFilter,
) -> Result<JoinHandle<()>, Error> {
    spawn_with_encoder(
        hub,
        store,
        counters,
        settings,
        H264EncoderKind::OpenH264,
        demand,
        stop,
        filter,
    )
}

/// The encoder for `requested`: the ffmpeg encoder if its test encode works, else openh264,
/// with one log line saying why.
fn choose_encoder(
    requested: H264EncoderKind,
    settings: &H264Settings,
    state: &EncoderState,
) -> Option<PipedEncoder> {
    let choice = h264_choice::choose(requested, |kind| {
        crate::encode::ffmpeg_h264::probe(kind, settings.fps, settings.bitrate_bps)
    });
    match &choice.fallback_reason {
        Some(reason) => tracing::warn!(
            requested = %choice.requested,
            %reason,
            "the H.264 encoder asked for does not work here: openh264 encodes instead"
        ),
        None if choice.chosen != H264EncoderKind::OpenH264 => tracing::info!(
            requested = %choice.requested,
            chosen = %choice.chosen,
            "H.264 encoder: ffmpeg process"
        ),
        None => {}
    }
    state.set_choice(choice.clone());
    choice
        .chosen
        .ffmpeg_codec()
        .map(|_| PipedEncoder::new(choice.chosen, *settings))
}

/// Starts the H.264 thread with the encoder `requested`, encoding only the frames `filter`
/// keeps.
#[allow(clippy::too_many_arguments)]
pub fn spawn_with_encoder(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    requested: H264EncoderKind,
    demand: Arc<HlsDemand>,
    stop: Arc<AtomicBool>,
    filter: FrameFilter,
) -> Result<JoinHandle<()>, Error> {
    // Made here even when it is not needed yet, so that bad settings fail the start; used for
    // the first raw frame (and kept for a fallback from an ffmpeg encoder).
    let encoder = H264Encoder::new(settings).map_err(|e| Error::H264Encoder(e.to_string()))?;
    let piped = choose_encoder(requested, &settings, &counters.encoder);
    let decoder = JpegDecoder::new().map_err(|e| Error::H264Encoder(e.to_string()))?;
    // A store whose timing is not settled waits for a source's H.264 to settle it.
    let segmenter = store
        .timing_settled()
        .then(|| Segmenter::new(store.timing().segmenter));
    let running = demand.wanted();
    if running {
        demand.set_running(true);
    }
    let mut thread = H264Thread {
        hub,
        store,
        counters,
        settings,
        demand,
        filter,
        spare_encoder: Some(encoder),
        piped,
        decoder,
        segmenter,
        running,
        raw: None,
        passthrough: Passthrough::default(),
        last_seq: None,
        errors: RepeatedLog::new(SUMMARY_INTERVAL),
    };
    std::thread::Builder::new()
        .name("h264".into())
        .spawn(move || thread.run(&stop))
        .map_err(Error::Thread)
}

struct H264Thread {
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    demand: Arc<HlsDemand>,
    filter: FrameFilter,
    /// The encoder made at the start, until the first raw frame needs one.
    spare_encoder: Option<H264Encoder>,
    /// The ffmpeg encoder, when one was chosen and has not been given up on.
    piped: Option<PipedEncoder>,
    decoder: JpegDecoder,
    /// `None` until the store's timing is settled (a source's own H.264, learned from its
    /// first GOP).
    segmenter: Option<Segmenter>,
    /// HLS is wanted and made.
    running: bool,
    /// The encoder, while raw frames come (a raw source, or placeholders of an H.264 one).
    raw: Option<Running>,
    passthrough: Passthrough,
    /// The last frame taken from the hub.
    last_seq: Option<u64>,
    /// Per-frame errors: the first of a run in full, then a count (the counts are in /status).
    errors: RepeatedLog,
}

impl H264Thread {
    fn run(&mut self, stop: &AtomicBool) {
        let hub = self.hub.clone();
        let Some(input) = hub.h264_input() else {
            return;
        };
        while !stop.load(Ordering::Relaxed) {
            let taken = input.take(IDLE_POLL);
            if matches!(taken, Taken::Closed) {
                break;
            }
            self.follow_demand();
            let Taken::Item(frame) = taken else {
                continue;
            };
            // A gap in the numbers is a frame the hub's queue to this thread dropped.
            let gap = self.last_seq.is_some_and(|last| frame.seq != last + 1);
            self.last_seq = Some(frame.seq);
            if !(self.filter)(&frame) {
                continue;
            }
            // Stopped: nobody wants HLS, the frame goes unused.
            if !self.running {
                continue;
            }
            match &frame.pixels {
                Pixels::H264(unit) => {
                    let (is_idr, annex_b) = (unit.is_idr, unit.annex_b.clone());
                    self.pass_through(&frame, is_idr, &annex_b, gap);
                }
                Pixels::I420(_) | Pixels::Jpeg(_) => self.encode(&frame),
            }
        }
    }

    /// Starts HLS when it is wanted, stops it (closing the open segment, emptying the window
    /// and freeing the encoder) when it is not any more.
    fn follow_demand(&mut self) {
        if !self.running {
            if self.demand.wanted() {
                self.store.encoder_started_at(Instant::now());
                self.running = true;
                self.demand.set_running(true);
                tracing::info!("HLS started: it is wanted");
            }
            return;
        }
        let Self {
            demand,
            segmenter,
            store,
            counters,
            errors,
            ..
        } = self;
        let stopped = demand.stop_if_unwanted(|| {
            if let Some(segmenter) = segmenter.as_mut() {
                match segmenter.interrupt() {
                    Ok(events) => store.apply(events),
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        errors.warn("cannot segment H.264", &error, Instant::now());
                    }
                }
            }
            store.interrupt();
        });
        if stopped {
            self.running = false;
            // The encoder is freed: a stopped stream costs no encoder memory.
            self.set_raw(None);
            self.passthrough = Passthrough::default();
            tracing::info!(
                idle_stop_s = self.demand.idle_stop().map_or(0, |d| d.as_secs()),
                "HLS stopped: no HLS or /live.mp4 viewer"
            );
        }
    }

    fn set_raw(&mut self, raw: Option<Running>) {
        self.counters
            .encoder_running
            .store(raw.is_some(), Ordering::Relaxed);
        if raw.is_none()
            && let Some(piped) = self.piped.as_mut()
        {
            piped.stop(&self.counters.encoder);
        }
        self.raw = raw;
    }

    /// A source's own access unit: to the segmenter as it came (see the module doc).
    fn pass_through(&mut self, frame: &Arc<Frame>, is_idr: bool, annex_b: &[u8], gap: bool) {
        let counters = self.counters.clone();
        counters.passthrough.store(true, Ordering::Relaxed);
        // Nothing raw to encode while the source sends H.264.
        self.spare_encoder = None;
        if self.raw.is_some() || self.piped.as_ref().is_some_and(PipedEncoder::running) {
            self.set_raw(None);
            self.passthrough.awaiting_idr = true;
            self.passthrough.clock = None;
            tracing::info!("the source's H.264 is back: the H.264 encoder is freed");
        }
        if gap {
            counters.frame_gaps.fetch_add(1, Ordering::Relaxed);
            self.passthrough.learner.restart();
            self.end_segment_at_loss();
        }
        if self.passthrough.awaiting_idr {
            if !is_idr {
                counters
                    .frames_dropped_for_idr
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.passthrough.awaiting_idr = false;
        }
        if self.segmenter.is_some() {
            self.segment_passed(frame, annex_b);
            return;
        }
        if is_idr && let Some(fps) = sps_frame_rate(annex_b) {
            self.passthrough.learner.stream_rate(fps);
        }
        let captured_us = unix_micros(frame.captured_at);
        match self
            .passthrough
            .learner
            .push(frame.clone(), is_idr, captured_us)
        {
            Learning::Dropped(_) => {
                counters
                    .frames_dropped_for_idr
                    .fetch_add(1, Ordering::Relaxed);
            }
            Learning::Held => {}
            Learning::Learned { timing, frames } => {
                let provisional = self.store.timing();
                let fps = f64::from(provisional.segmenter.fps.max(1));
                let derived = passthrough_timing(
                    timing,
                    f64::from(provisional.segmenter.frames_per_segment) / fps,
                    f64::from(provisional.segmenter.frames_per_part) / fps,
                    provisional.window_segments,
                );
                let settled = self.store.settle_timing(derived);
                counters.key_frame_interval_us.store(
                    timing.key_frame_interval_90k * 1_000_000 / CLOCK_90K,
                    Ordering::Relaxed,
                );
                tracing::info!(
                    key_frame_interval_s = timing.key_frame_interval_s(),
                    fps = timing.fps,
                    target_duration_s = settled.target_duration_s,
                    "learned the source's key-frame interval"
                );
                self.segmenter = Some(Segmenter::for_source_idrs(
                    settled.segmenter,
                    timing.key_frame_interval_90k,
                ));
                for held in frames {
                    if let Pixels::H264(unit) = &held.pixels {
                        let annex_b = unit.annex_b.clone();
                        self.segment_passed(&held, &annex_b);
                    }
                }
            }
        }
    }

    /// Hands a source's access unit to the segmenter, timed on the regular clock.
    fn segment_passed(&mut self, frame: &Arc<Frame>, annex_b: &[u8]) {
        let Some(segmenter) = self.segmenter.as_mut() else {
            return;
        };
        let (clock, offset_90k) = self.passthrough.clock.get_or_insert_with(|| {
            let fps = segmenter.settings().fps;
            (
                CaptureClock::tolerant(fps, ARRIVAL_JITTER_90K),
                frame.pts_90k,
            )
        });
        // An H.264 picture is never dropped for coming early: it takes the next slot.
        let Placement::At { pts_90k } = clock.place(frame.captured_at, false) else {
            return;
        };
        let pts_90k = *offset_90k + pts_90k;
        let info = UnitInfo {
            seq: frame.seq,
            captured_at: frame.captured_at,
            size: frame.size,
        };
        match segmenter.push_annex_b(&info, annex_b, pts_90k) {
            Ok(outcome) => {
                let counters = &self.counters;
                if outcome.cut_long_gop {
                    counters.long_gop_cuts.fetch_add(1, Ordering::Relaxed);
                }
                if outcome.dropped {
                    counters
                        .frames_dropped_for_idr
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    counters
                        .frames_passed_through
                        .fetch_add(1, Ordering::Relaxed);
                    counters.rate.tick();
                }
                self.store.apply(outcome.events);
            }
            Err(error) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot segment H.264", &error, Instant::now());
                self.end_segment_at_loss();
            }
        }
    }

    /// A picture of the source's H.264 was lost: nothing after it decodes until the next
    /// IDR. The open segment ends with the last frame placed, as at an interruption, and the
    /// next IDR starts one behind a discontinuity, its time following the capture clock.
    /// (Lengthening the last frame over the hole instead would take up to a whole GOP, more
    /// than a part may last, and cutting it short would leave a part under 85 % of
    /// PART-TARGET.)
    fn end_segment_at_loss(&mut self) {
        self.passthrough.awaiting_idr = true;
        let Some(segmenter) = self.segmenter.as_mut() else {
            return;
        };
        match segmenter.interrupt() {
            Ok(events) => self.store.apply(events),
            Err(error) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot segment H.264", &error, Instant::now());
            }
        }
    }

    /// A raw frame (I420, or a JPEG to decode): encoded, within the rate gate's budget. With
    /// an H.264 source these are its placeholders; the encoder is made for the first of them.
    fn encode(&mut self, frame: &Arc<Frame>) {
        if self.piped.is_some() && self.segmenter.is_some() && self.encode_piped(frame) {
            return;
        }
        let Some(segmenter) = self.segmenter.as_mut() else {
            // The timing waits for the source's first GOP: placeholders before it are not
            // published, and a GOP being learned is lost with the source.
            self.passthrough.learner.restart();
            return;
        };
        // After raw frames the source's H.264 can only start again at an IDR.
        self.passthrough.awaiting_idr = true;
        self.passthrough.clock = None;
        let counters = &self.counters;
        if self.raw.is_none() {
            let encoder = match self.spare_encoder.take() {
                Some(encoder) => Ok(encoder),
                None => H264Encoder::new(self.settings),
            };
            match encoder {
                Ok(encoder) => {
                    let running = Running::new(encoder, &self.settings, &self.store);
                    self.counters.encoder_running.store(true, Ordering::Relaxed);
                    self.raw = Some(running);
                }
                Err(error) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    self.errors
                        .warn("cannot start the H.264 encoder", &error, now);
                    return;
                }
            }
        }
        let Some(Running {
            encoder,
            gate,
            last_fed,
        }) = self.raw.as_mut()
        else {
            return;
        };
        // An IDR is due at the encoder's cadence, and also where a segment must start
        // after the gate skipped the frame before it.
        // A WebRTC viewer's request (rate-limited by the tap) makes an IDR mid-segment too:
        // its part is marked INDEPENDENT, and the segment still starts at its own IDR.
        let idr_due = encoder.idr_due(frame.size)
            || gate.segment_full(frame.pts_90k)
            || self.hub.access_units.take_key_frame_request(Instant::now());
        if idr_due {
            encoder.restart_cadence();
        }
        if gate.verdict(frame.pts_90k, idr_due) == Verdict::Skip {
            gate.skipped();
            counters.frames_skipped_rate.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let frame = match to_i420(frame, &mut self.decoder) {
            Ok(frame) => frame,
            Err(error) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot decode a JPEG for H.264", &error, Instant::now());
                return;
            }
        };
        let encoded = encode_within_budget(encoder, gate, &frame, idr_due, last_fed, counters);
        counters
            .block_px
            .store(u64::from(gate.block_px()), Ordering::Relaxed);
        counters.picture_held.store(gate.holds(), Ordering::Relaxed);
        let unit = match encoded {
            Ok(unit) => unit,
            Err(error) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("H.264 encoding failed", &error, Instant::now());
                return;
            }
        };
        let micros = unit.encode_time.as_micros() as u64;
        counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
        counters
            .encode_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        counters.encode_micros_last.store(micros, Ordering::Relaxed);
        counters.encode_histogram.record_micros(micros);
        counters.rate.tick();
        self.hub
            .access_units
            .publish(&unit.annex_b, frame.captured_at, unit.is_idr, false);
        match segmenter.push(&unit, frame.pts_90k) {
            Ok(outcome) => {
                let starts_segment = outcome
                    .events
                    .iter()
                    .any(|e| matches!(e, SegmenterEvent::SegmentStart { .. }));
                gate.encoded(
                    frame.pts_90k,
                    unit.annex_b.len() as u64,
                    unit.is_idr,
                    starts_segment,
                );
                // Parts finished with a segment's first frame belong to the segment
                // before it.
                if !starts_segment {
                    for event in &outcome.events {
                        if let SegmenterEvent::Part { duration_90k, .. } = event {
                            gate.part_finished(*duration_90k);
                        }
                    }
                }
                if outcome.need_idr {
                    encoder.restart_cadence();
                }
                self.store.apply(outcome.events);
            }
            Err(error) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot segment H.264", &error, Instant::now());
                encoder.restart_cadence();
            }
        }
    }

    /// A raw frame through the ffmpeg encoder ([`super::h264_piped`]): `false` when it was
    /// given up on just now, and openh264 is to encode the frame instead.
    fn encode_piped(&mut self, frame: &Arc<Frame>) -> bool {
        // After raw frames the source's H.264 can only start again at an IDR.
        self.passthrough.awaiting_idr = true;
        self.passthrough.clock = None;
        let frame = match to_i420(frame, &mut self.decoder) {
            Ok(frame) => frame,
            Err(error) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot decode a JPEG for H.264", &error, Instant::now());
                return true;
            }
        };
        let Some(piped) = self.piped.as_mut() else {
            return false;
        };
        let mut events = Vec::new();
        piped.encode(&frame, Instant::now(), &self.counters.encoder, &mut events);
        let running = piped.running();
        self.counters
            .encoder_running
            .store(running, Ordering::Relaxed);
        for event in events {
            match event {
                PipedEvent::Unit(encoded) => self.segment_encoded(encoded),
                PipedEvent::Break => self.interrupt_segment(),
                PipedEvent::GiveUp(reason) => {
                    tracing::warn!(%reason, "the ffmpeg H.264 encoder is given up: openh264 encodes from here");
                    let state = &self.counters.encoder;
                    let mut choice = state.choice();
                    choice.chosen = H264EncoderKind::OpenH264;
                    choice.reason = ChoiceReason::FailedRepeatedly;
                    choice.fallback_reason = Some(reason);
                    state.set_choice(choice);
                    self.piped = None;
                    return false;
                }
            }
        }
        true
    }

    /// An access unit of the ffmpeg encoder, at its own frame's time, to the segmenter. Its
    /// IDRs come on a fixed cadence, so the segmenter's request for one (`need_idr`) is met
    /// by it already.
    fn segment_encoded(&mut self, encoded: EncodedFrame) {
        let Some(segmenter) = self.segmenter.as_mut() else {
            return;
        };
        let counters = &self.counters;
        let micros = encoded.unit.encode_time.as_micros() as u64;
        counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
        counters
            .encode_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        counters.encode_micros_last.store(micros, Ordering::Relaxed);
        counters.encode_histogram.record_micros(micros);
        counters.rate.tick();
        match segmenter.push(&encoded.unit, encoded.pts_90k) {
            Ok(outcome) => self.store.apply(outcome.events),
            Err(error) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot segment H.264", &error, Instant::now());
            }
        }
    }

    /// The encoder's stream breaks (its process failed or was replaced): the open segment
    /// ends with what it has, and the next IDR starts one behind a discontinuity, its times
    /// following the capture clock.
    fn interrupt_segment(&mut self) {
        let Some(segmenter) = self.segmenter.as_mut() else {
            return;
        };
        match segmenter.interrupt() {
            Ok(events) => self.store.apply(events),
            Err(error) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.errors
                    .warn("cannot segment H.264", &error, Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSize;
    use crate::hls::segmenter::SegmenterSettings;
    use crate::hls::segmenter::tests::{BASE_UNIX_US, frame, read_fragment};
    use crate::hls::store::{HlsTiming, PartLookup};
    use crate::hls::window::tests::assert_extinf_reaches_the_next_pdt;
    use crate::pipeline::hls_demand::DemandPolicy;
    use crate::pipeline::hls_demand::tests::ManualClock;
    use crate::source::TestPattern;
    use std::time::{Duration, Instant, SystemTime};

    /// A filter that counts the frames offered to the encoder and passes those `pass` keeps.
    fn counting_filter(
        pass: impl Fn(&Frame) -> bool + Send + 'static,
    ) -> (Arc<AtomicU64>, FrameFilter) {
        let taken = Arc::new(AtomicU64::new(0));
        let counted = taken.clone();
        let filter: FrameFilter = Box::new(move |frame: &Frame| {
            counted.fetch_add(1, Ordering::SeqCst);
            pass(frame)
        });
        (taken, filter)
    }

    /// 30 fps at 300 kbit/s, an IDR where each of `segments`' segments starts.
    fn encoder_for(segments: SegmenterSettings) -> H264Settings {
        H264Settings {
            fps: 30,
            bitrate_bps: 300_000,
            frames_per_idr: segments.frames_per_segment,
        }
    }

    /// An always-on H.264 thread (openh264) on `hub` and `store`, encoding what `filter`
    /// passes; with the flag that stops it.
    fn always_on_thread(
        hub: &Arc<Hub>,
        store: &Arc<HlsStore>,
        counters: Arc<H264Counters>,
        settings: H264Settings,
        filter: FrameFilter,
    ) -> (JoinHandle<()>, Arc<AtomicBool>) {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_filtered(
            hub.clone(),
            store.clone(),
            counters,
            settings,
            HlsDemand::new(crate::config::HlsMode::Always, Duration::ZERO),
            stop.clone(),
            filter,
        )
        .unwrap();
        (thread, stop)
    }

    /// An encoder that falls behind, played by the thread's frame filter: frames are handed
    /// over one at a time (each taken before the next is published, so the hub drops none),
    /// and the filter refuses some as an overloaded encoder would never get them.
    #[test]
    fn frames_the_encoder_never_got_lengthen_the_frame_before_them() {
        let settings = SegmenterSettings {
            fps: 30,
            frames_per_segment: 30,
            frames_per_part: 6,
        };
        let lost = [7, 20, 21, 35, 59, 75, 76, 77, 118, 119, 200, 260, 261];
        let store = Arc::new(HlsStore::new(HlsTiming::new(settings, 6)));
        let hub = Hub::new(true);
        let (taken, filter) = counting_filter(move |frame| !lost.contains(&(frame.pts_90k / 3000)));
        let (thread, stop) = always_on_thread(
            &hub,
            &store,
            Arc::new(H264Counters::default()),
            encoder_for(settings),
            filter,
        );
        let size = FrameSize::new(320, 240);
        let mut pattern = TestPattern::new(size, 30);
        for n in 0..300 {
            hub.publish_frame(Arc::new(frame(&mut pattern, size, n)));
            let deadline = Instant::now() + Duration::from_secs(20);
            while taken.load(Ordering::SeqCst) <= n {
                assert!(Instant::now() < deadline, "frame {n} was never taken");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        stop.store(true, Ordering::SeqCst);
        hub.close();
        thread.join().unwrap();
        assert_eq!(hub.h264_frames_dropped.load(Ordering::SeqCst), 0);

        let playlist = store.playlist();
        assert_eq!(playlist.segments.len(), 6);
        assert_extinf_reaches_the_next_pdt(&playlist);
        // Every listed part's samples start at their frames' capture times, one after the
        // other without a hole: tfdt is the capture clock and no frame was shortened.
        let kept: Vec<u64> = (0..300).filter(|n| !lost.contains(n)).collect();
        let mut next_tfdt = None;
        let mut checked = 0;
        let listed = playlist
            .segments
            .iter()
            .map(|s| (s.msn, s.program_date_time_unix_ms, s.parts.len()))
            .chain(
                playlist
                    .in_progress
                    .iter()
                    .map(|s| (s.msn, s.program_date_time_unix_ms, s.parts.len())),
            );
        for (msn, pdt_unix_ms, parts) in listed.filter(|(_, _, parts)| *parts > 0) {
            for index in 0..parts {
                let PartLookup::Ready(data) = store.part(msn, index) else {
                    panic!("part {msn}.{index} is listed but missing");
                };
                let (tfdt, samples) = read_fragment(&data);
                if index == 0 {
                    assert_eq!(pdt_unix_ms, (BASE_UNIX_US + tfdt * 1000 / 90) / 1000);
                }
                assert!(next_tfdt.is_none_or(|t| t == tfdt), "{msn}.{index}");
                let mut at = tfdt;
                for (duration, _) in samples {
                    let n = at / 3000;
                    assert_eq!(at, n * 3000, "a sample starts on its frame's capture time");
                    let following = kept.iter().find(|&&k| k > n).copied();
                    assert!(kept.contains(&n), "frame {n} was never encoded");
                    if let Some(following) = following {
                        assert_eq!(u64::from(duration), (following - n) * 3000, "frame {n}");
                    }
                    at += u64::from(duration);
                    checked += 1;
                }
                next_tfdt = Some(at);
            }
        }
        assert!(checked > 30, "{checked} samples checked");
    }

    /// A WebRTC viewer's key-frame request makes the next encoded frame an IDR in the middle
    /// of a segment: the tap hands it to viewers as an IDR, the HLS part it starts is
    /// INDEPENDENT, every other part's flag still says whether it starts with an IDR, and
    /// segments still start at their own IDRs.
    #[test]
    fn a_viewers_key_frame_request_makes_an_idr_mid_segment_and_parts_stay_marked_right() {
        let settings = SegmenterSettings {
            fps: 30,
            frames_per_segment: 30,
            frames_per_part: 6,
        };
        let store = Arc::new(HlsStore::new(HlsTiming::new(settings, 6)));
        let hub = Hub::new(true);
        let (_, mut tap) = hub.access_units.subscribe();
        // Read as the units come: the tap keeps fewer than the run makes.
        let collector = std::thread::spawn(move || {
            let mut units = Vec::new();
            while units.len() < 100 {
                match tap.blocking_recv() {
                    Ok(unit) => units.push(unit),
                    Err(error) => panic!("the tap: {error}"),
                }
            }
            units
        });
        let (taken, filter) = counting_filter(|_| true);
        let (thread, stop) = always_on_thread(
            &hub,
            &store,
            Arc::new(H264Counters::default()),
            encoder_for(settings),
            filter,
        );
        let size = FrameSize::new(320, 240);
        let mut pattern = TestPattern::new(size, 30);
        // Frame 42 starts part 2 of the second segment.
        const REQUESTED_AT: u64 = 42;
        for n in 0..100 {
            if n == REQUESTED_AT {
                hub.access_units.request_start_key_frame();
            }
            hub.publish_frame(Arc::new(frame(&mut pattern, size, n)));
            let deadline = Instant::now() + Duration::from_secs(20);
            while taken.load(Ordering::SeqCst) <= n {
                assert!(Instant::now() < deadline, "frame {n} was never taken");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        stop.store(true, Ordering::SeqCst);
        hub.close();
        thread.join().unwrap();

        let units = collector.join().unwrap();
        assert!(units.iter().all(|u| !u.passed_through));
        let idrs: Vec<usize> = (0..units.len()).filter(|&i| units[i].is_idr).collect();
        assert_eq!(idrs, [0, 30, REQUESTED_AT as usize, 60, 90]);

        let playlist = store.playlist();
        let mut independent_parts = Vec::new();
        for segment in &playlist.segments {
            for (part_index, part) in segment.parts.iter().enumerate() {
                let PartLookup::Ready(data) = store.part(segment.msn, part_index) else {
                    panic!("part {}.{part_index} is listed but missing", segment.msn);
                };
                let (_, samples) = read_fragment(&data);
                assert_eq!(
                    part.independent, samples[0].1,
                    "{}.{part_index}",
                    segment.msn
                );
                if part_index == 0 {
                    assert!(
                        part.independent,
                        "segment {} starts with an IDR",
                        segment.msn
                    );
                }
                if part.independent {
                    independent_parts.push((segment.msn, part_index));
                }
            }
        }
        assert!(
            independent_parts.contains(&(1, 2)),
            "the requested IDR's part: {independent_parts:?}"
        );
        assert_eq!(
            independent_parts.iter().filter(|(_, i)| *i != 0).count(),
            1,
            "{independent_parts:?}"
        );
    }

    /// The H.264 thread of an on-demand stream, fed frame by frame, its idle time on a clock
    /// the test moves.
    struct OnDemandThread {
        hub: Arc<Hub>,
        store: Arc<HlsStore>,
        counters: Arc<H264Counters>,
        demand: Arc<HlsDemand>,
        clock: Arc<ManualClock>,
        taken: Arc<AtomicU64>,
        published: u64,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        pattern: TestPattern,
    }

    const SIZE: FrameSize = FrameSize::new(320, 240);
    const IDLE_STOP: Duration = Duration::from_secs(5);

    impl OnDemandThread {
        fn start() -> Self {
            let settings = SegmenterSettings {
                fps: 30,
                frames_per_segment: 30,
                frames_per_part: 10,
            };
            let store = Arc::new(HlsStore::new(HlsTiming::new(settings, 6)));
            let hub = Hub::new(true);
            let clock = ManualClock::new();
            let demand = HlsDemand::with_clock(
                DemandPolicy::OnDemand {
                    idle_stop: IDLE_STOP,
                },
                clock.clone(),
            );
            let (taken, filter) = counting_filter(|_| true);
            let counters = Arc::new(H264Counters::default());
            let stop = Arc::new(AtomicBool::new(false));
            let thread = spawn_filtered(
                hub.clone(),
                store.clone(),
                counters.clone(),
                H264Settings {
                    fps: 30,
                    bitrate_bps: 300_000,
                    frames_per_idr: 30,
                },
                demand.clone(),
                stop.clone(),
                filter,
            )
            .unwrap();
            Self {
                hub,
                store,
                counters,
                demand,
                clock,
                taken,
                published: 0,
                stop,
                thread: Some(thread),
                pattern: TestPattern::new(SIZE, 30),
            }
        }

        /// Publishes the frames numbered `frames`, each once the thread took the one before.
        fn feed(&mut self, frames: std::ops::Range<u64>) {
            for n in frames {
                self.hub
                    .publish_frame(Arc::new(frame(&mut self.pattern, SIZE, n)));
                self.published += 1;
                let deadline = Instant::now() + Duration::from_secs(20);
                while self.taken.load(Ordering::SeqCst) < self.published {
                    assert!(Instant::now() < deadline, "frame {n} was never taken");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }

        fn encoded(&self) -> u64 {
            self.counters.frames_encoded.load(Ordering::SeqCst)
        }

        /// Waits until `count` frames are encoded: the last frame fed may still be in the
        /// encoder when the test looks.
        fn assert_encoded(&self, count: u64, what: &str) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.encoded() < count && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(self.encoded(), count, "{what}");
        }
    }

    impl Drop for OnDemandThread {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            self.hub.close();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    #[test]
    fn an_on_demand_encoder_runs_from_the_first_request_until_idle() {
        let mut stream = OnDemandThread::start();
        stream.feed(0..30);
        assert_eq!(stream.encoded(), 0, "nothing is encoded before a request");
        assert!(!stream.demand.is_running());
        assert!(stream.store.init().is_none());

        stream.demand.touch();
        stream.feed(30..130);
        assert!(stream.demand.is_running());
        stream.assert_encoded(100, "every frame from the first request on");
        let before = stream.store.playlist();
        assert_eq!(before.segments.len(), 3);
        assert_eq!(
            before.segments[0].program_date_time_unix_ms,
            (BASE_UNIX_US + 30 * 1_000_000 / 30) / 1000,
            "the first segment starts at the first frame after the request"
        );

        // Polls within the idle time keep it running.
        stream.clock.advance(IDLE_STOP - Duration::from_millis(1));
        stream.demand.touch();
        stream.clock.advance(IDLE_STOP - Duration::from_millis(1));
        stream.feed(130..140);
        stream.assert_encoded(110, "still running");

        // No request for the idle time: the encoder stops and the window empties.
        stream.clock.advance(Duration::from_millis(1));
        stream.feed(140..200);
        assert!(!stream.demand.is_running());
        assert_eq!(stream.encoded(), 110, "nothing encoded while stopped");
        assert_eq!(stream.hub.h264_frames_dropped.load(Ordering::SeqCst), 0);
        let stopped = stream.store.playlist();
        assert!(stopped.segments.is_empty() && stopped.in_progress.is_none());
        assert_eq!(
            stopped.media_sequence, 4,
            "segment 3 was closed at the stop"
        );
        assert!(stream.store.segment(3).is_some(), "and stays downloadable");

        // A request a while later starts it again, with new numbers and a discontinuity.
        stream.demand.touch();
        stream.feed(300..400);
        assert!(stream.demand.is_running());
        stream.assert_encoded(210, "running again");
        assert_eq!((stream.demand.starts(), stream.demand.idle_stops()), (2, 1));
        let after = stream.store.playlist();
        let first = &after.segments[0];
        assert_eq!(first.msn, 4);
        assert!(first.discontinuity);
        assert_eq!(
            first.program_date_time_unix_ms,
            (BASE_UNIX_US + 300 * 1_000_000 / 30) / 1000,
            "PROGRAM-DATE-TIME is the capture clock"
        );
        assert_eq!(after.discontinuity_sequence, 0);
        crate::media::playlist::check_update(&before, &after).unwrap();
        let PartLookup::Ready(data) = stream.store.part(4, 0) else {
            panic!("part 4.0");
        };
        let (tfdt, samples) = read_fragment(&data);
        assert!(samples[0].1, "the new segment starts with an IDR");
        assert_eq!(
            tfdt,
            300 * 3000 - 30 * 3000,
            "decode times follow the capture clock"
        );
        assert_extinf_reaches_the_next_pdt(&after);

        // A viewer holding demand keeps it running past the idle time.
        let viewer = stream.demand.hold();
        stream.clock.advance(IDLE_STOP * 4);
        stream.feed(400..410);
        stream.assert_encoded(220, "held by the viewer");
        drop(viewer);
        stream.clock.advance(IDLE_STOP);
        stream.feed(410..420);
        assert!(!stream.demand.is_running());
        assert_eq!(stream.encoded(), 220);
    }

    fn jpeg_frame(jpeg: Vec<u8>) -> Arc<Frame> {
        Arc::new(Frame {
            seq: 1,
            pts_90k: 0,
            captured_at: SystemTime::now(),
            size: FrameSize::new(320, 240),
            pixels: Pixels::Jpeg(Bytes::from(jpeg)),
            repeats_previous: false,
        })
    }

    #[test]
    fn a_jpeg_that_fails_to_decode_does_not_spoil_the_next() {
        let size = FrameSize::new(320, 240);
        let good = crate::encode::jpeg::test_jpeg(size, &vec![100; size.i420_len()]);
        let mut broken = good.clone();
        broken.truncate(good.len() / 3);
        broken.extend_from_slice(&good);
        let mut decoder = JpegDecoder::new().unwrap();
        for _ in 0..3 {
            let _ = to_i420(&jpeg_frame(broken.clone()), &mut decoder);
            let decoded = to_i420(&jpeg_frame(good.clone()), &mut decoder).unwrap();
            assert_eq!(decoded.size, size);
        }
    }
    /// A source's H.264 through the thread: the first GOP settles the timing, a frame the hub
    /// dropped (a gap in `seq`) drops the frames after it until the next IDR, placeholders
    /// while the source is down are encoded behind a discontinuity, and the source's next
    /// IDR frees the encoder and starts a segment behind another.
    #[test]
    fn a_source_s_h264_passes_through_resyncs_after_a_gap_and_placeholders_go_between() {
        use crate::frame::H264Unit;
        use crate::hls::segmenter::tests::source_units;
        use crate::media::playlist::check_invariants;
        let provisional = SegmenterSettings {
            fps: 30,
            frames_per_segment: 30,
            frames_per_part: 6,
        };
        let store = Arc::new(HlsStore::unsettled(HlsTiming::new(provisional, 6)));
        let hub = Hub::new(true);
        let (taken, filter) = counting_filter(|_| true);
        let counters = Arc::new(H264Counters::default());
        let (thread, stop) = always_on_thread(
            &hub,
            &store,
            counters.clone(),
            H264Settings {
                fps: 25,
                bitrate_bps: 300_000,
                frames_per_idr: 25,
            },
            filter,
        );
        let (idr, p) = source_units();
        let at = |n: u64| crate::frame::from_unix_micros(BASE_UNIX_US + n * 40_000);
        let camera = |n: u64| {
            let is_idr = n.is_multiple_of(25);
            Frame {
                seq: n + 1,
                pts_90k: n * 3600,
                captured_at: at(n),
                size: FrameSize::MIN,
                pixels: Pixels::H264(H264Unit {
                    annex_b: Bytes::from(if is_idr { idr.clone() } else { p.clone() }),
                    is_idr,
                }),
                repeats_previous: false,
            }
        };
        let mut pattern = TestPattern::new(SIZE, 25);
        let mut placeholder = |n: u64| {
            let mut i420 = vec![0; SIZE.i420_len()];
            pattern.render(n + 1, at(n), &mut i420);
            Frame::from_i420(n + 1, n * 3600, at(n), SIZE, Bytes::from(i420))
        };
        let mut published = 0;
        let mut publish = |frame: Frame| {
            hub.publish_frame(Arc::new(frame));
            published += 1;
            let deadline = Instant::now() + Duration::from_secs(20);
            while taken.load(Ordering::SeqCst) < published {
                assert!(
                    Instant::now() < deadline,
                    "frame {published} was never taken"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // Frame 110 is lost before the thread; placeholders from 200 to 259; the camera is
        // back at 263, its next IDR at 275.
        for n in (0..200).filter(|&n| n != 110) {
            publish(camera(n));
        }
        assert!(store.timing_settled());
        assert_eq!(store.timing().target_duration_s, 1);
        for n in 200..260 {
            publish(placeholder(n));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while counters.frames_encoded.load(Ordering::SeqCst) < 60 {
            assert!(Instant::now() < deadline, "placeholders encoded");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(counters.encoder_running.load(Ordering::SeqCst));
        for n in 263..400 {
            publish(camera(n));
        }
        stop.store(true, Ordering::SeqCst);
        hub.close();
        thread.join().unwrap();

        let count = |c: &AtomicU64| c.load(Ordering::SeqCst);
        assert_eq!(count(&counters.key_frame_interval_us), 1_000_000);
        assert_eq!(count(&counters.frame_gaps), 2, "frame 110, and 260 to 262");
        assert_eq!(
            count(&counters.frames_dropped_for_idr),
            14 + 12,
            "111 to 124, then 263 to 274"
        );
        assert_eq!(count(&counters.frames_passed_through), 199 - 14 + 125);
        assert_eq!(count(&counters.frames_encoded), 60, "only the placeholders");
        assert!(!counters.encoder_running.load(Ordering::SeqCst), "freed");
        assert!(counters.passthrough.load(Ordering::SeqCst));
        let playlist = store.playlist();
        check_invariants(&playlist).unwrap();
        assert_eq!(playlist.target_duration_s, 1);
        let init = store.init().unwrap();
        assert_eq!((init.generation, init.size), (2, FrameSize::MIN));
        let listed = playlist.segments.iter().filter(|s| s.discontinuity).count() as u64;
        assert_eq!(
            playlist.discontinuity_sequence + listed,
            3,
            "after the gap, before the placeholders and after them"
        );
        // The camera's segments after its return: each one GOP, the first behind a
        // discontinuity, starting at the IDR's capture time.
        let back = playlist
            .segments
            .iter()
            .position(|s| s.discontinuity)
            .expect("a discontinuity");
        let first = &playlist.segments[back];
        assert_eq!(
            first.program_date_time_unix_ms,
            (BASE_UNIX_US + 275 * 40_000) / 1000
        );
        for segment in &playlist.segments[back..] {
            assert_eq!(segment.duration_90k, 90_000);
            assert!(segment.parts[0].independent);
            assert!(segment.parts[1..].iter().all(|p| !p.independent));
        }
    }
}
