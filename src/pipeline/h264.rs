//! The H.264 thread: takes every frame from the hub, encodes it, cuts parts and segments, and
//! updates the HLS store. The rate gate ([`super::rate_gate`]) decides which frames are
//! encoded and how coarsely, so that every segment stays within its byte budget.
//!
//! With `hls = "always"` the encoder runs from start to stop, viewers or not, so that the
//! first viewer finds a full window. With `hls = "on-demand"` it runs while
//! [`HlsDemand`] wants it: it starts on the frame after the first request (a new encoder, so
//! with an IDR) and stops, closing its segment and emptying the window
//! ([`Segmenter::interrupt`], [`HlsStore::interrupt`]), once nobody asked for a while. While
//! stopped the thread still takes the hub's frames, so none queue up or count as dropped, and
//! throws them away without decoding or encoding anything; the encoder itself is freed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;

use crate::encode::h264::{AccessUnit, H264Encoder, H264Error, H264Settings};
use crate::error::Error;
use crate::frame::{Frame, Pixels};
use crate::hls::segmenter::{Segmenter, SegmenterEvent};
use crate::hls::store::HlsStore;
use crate::hub::{Hub, Taken};
use crate::meter::RateMeter;
use crate::repeated_log::{RepeatedLog, SUMMARY_INTERVAL};

use super::IDLE_POLL;
use super::hls_demand::HlsDemand;
use super::rate_gate::{RateGate, Verdict};
use crate::picture::block_average::average_blocks;
use crate::picture::convert::{self, ConvertError};

/// Counters of the H.264 stage, for `/status`.
#[derive(Debug, Default)]
pub struct H264Counters {
    pub frames_encoded: AtomicU64,
    pub encode_micros_total: AtomicU64,
    pub encode_micros_last: AtomicU64,
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

/// What exists only while the encoder runs.
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

/// Starts the H.264 thread.
pub fn spawn(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    demand: Arc<HlsDemand>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, Error> {
    spawn_filtered(
        hub,
        store,
        counters,
        settings,
        demand,
        stop,
        Box::new(|_| true),
    )
}

/// Starts the H.264 thread encoding only the frames `filter` keeps.
pub fn spawn_filtered(
    hub: Arc<Hub>,
    store: Arc<HlsStore>,
    counters: Arc<H264Counters>,
    settings: H264Settings,
    demand: Arc<HlsDemand>,
    stop: Arc<AtomicBool>,
    mut filter: FrameFilter,
) -> Result<JoinHandle<()>, Error> {
    // Made here even when it is not needed yet, so that bad settings fail the start.
    let encoder = H264Encoder::new(settings).map_err(|e| Error::H264Encoder(e.to_string()))?;
    let mut segmenter = Segmenter::new(store.timing().segmenter);
    let mut decoder = JpegDecoder::new().map_err(|e| Error::H264Encoder(e.to_string()))?;
    let mut running = demand.wanted().then(|| {
        demand.set_running(true);
        Running::new(encoder, &settings, &store)
    });
    // Per-frame errors: the first of a run in full, then a count (the counts are in /status).
    let mut errors = RepeatedLog::new(SUMMARY_INTERVAL);
    std::thread::Builder::new()
        .name("h264".into())
        .spawn(move || {
            let Some(input) = hub.h264_input() else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let taken = input.take(IDLE_POLL);
                if matches!(taken, Taken::Closed) {
                    break;
                }
                if running.is_none() {
                    if demand.wanted() {
                        match H264Encoder::new(settings) {
                            Ok(encoder) => {
                                store.encoder_started_at(Instant::now());
                                running = Some(Running::new(encoder, &settings, &store));
                                demand.set_running(true);
                                tracing::info!("H.264 encoder started: HLS is wanted");
                            }
                            Err(error) => {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                                let now = Instant::now();
                                errors.warn("cannot start the H.264 encoder", &error, now);
                            }
                        }
                    }
                } else if demand.stop_if_unwanted(|| {
                    match segmenter.interrupt() {
                        Ok(events) => store.apply(events),
                        Err(error) => {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            errors.warn("cannot segment H.264", &error, Instant::now());
                        }
                    }
                    store.interrupt();
                }) {
                    // The encoder is freed: a stopped stream costs no encoder memory.
                    running = None;
                    tracing::info!(
                        idle_stop_s = demand.idle_stop().map_or(0, |d| d.as_secs()),
                        "H.264 encoder stopped: no HLS or /live.mp4 viewer"
                    );
                }
                let Taken::Item(frame) = taken else {
                    continue;
                };
                if !filter(&frame) {
                    continue;
                }
                // Stopped: nobody wants HLS, the frame goes unused.
                let Some(Running {
                    encoder,
                    gate,
                    last_fed,
                }) = running.as_mut()
                else {
                    continue;
                };
                // An IDR is due at the encoder's cadence, and also where a segment must start
                // after the gate skipped the frame before it.
                let idr_due = encoder.idr_due(frame.size) || gate.segment_full(frame.pts_90k);
                if idr_due {
                    encoder.restart_cadence();
                }
                if gate.verdict(frame.pts_90k, idr_due) == Verdict::Skip {
                    gate.skipped();
                    counters.frames_skipped_rate.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let frame = match to_i420(&frame, &mut decoder) {
                    Ok(frame) => frame,
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        errors.warn("cannot decode a JPEG for H.264", &error, Instant::now());
                        continue;
                    }
                };
                let encoded =
                    encode_within_budget(encoder, gate, &frame, idr_due, last_fed, &counters);
                counters
                    .block_px
                    .store(u64::from(gate.block_px()), Ordering::Relaxed);
                counters.picture_held.store(gate.holds(), Ordering::Relaxed);
                let unit = match encoded {
                    Ok(unit) => unit,
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        errors.warn("H.264 encoding failed", &error, Instant::now());
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
                        store.apply(outcome.events);
                    }
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        errors.warn("cannot segment H.264", &error, Instant::now());
                        encoder.restart_cadence();
                    }
                }
            }
        })
        .map_err(Error::Thread)
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
        let taken = Arc::new(AtomicU64::new(0));
        let filter: FrameFilter = {
            let taken = taken.clone();
            Box::new(move |frame: &Frame| {
                taken.fetch_add(1, Ordering::SeqCst);
                !lost.contains(&(frame.pts_90k / 3000))
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_filtered(
            hub.clone(),
            store.clone(),
            Arc::new(H264Counters::default()),
            H264Settings {
                fps: 30,
                bitrate_bps: 300_000,
                frames_per_idr: settings.frames_per_segment,
            },
            HlsDemand::new(crate::config::HlsMode::Always, Duration::ZERO),
            stop.clone(),
            filter,
        )
        .unwrap();
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
            let taken = Arc::new(AtomicU64::new(0));
            let filter: FrameFilter = {
                let taken = taken.clone();
                Box::new(move |_: &Frame| {
                    taken.fetch_add(1, Ordering::SeqCst);
                    true
                })
            };
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
}
