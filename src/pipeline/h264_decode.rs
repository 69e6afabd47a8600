//! The H.264 decode stage: JPEG viewers and snapshots of an H.264 source (RTSP, `pipe:h264`).
//!
//! One thread per stream takes the H.264 frames the hub hands over in order while someone
//! wants JPEGs, decodes every one of them (a P-frame needs all its predecessors since the IDR)
//! and gives the pictures to the hub's JPEG input, where the JPEG workers encode them as they
//! would a raw source's frames. With no JPEG demand the hub hands nothing over and the thread
//! sleeps; a stream whose source never sends H.264 costs one idle thread.
//!
//! The frames carry the hub's numbers. Whenever the next one is not the one after the last
//! decoded (a cold start, demand that paused, frames dropped from a full queue) the stage
//! decodes the GOP the hub keeps, from its IDR up to the newest frame, at once, and hands on
//! only the newest picture: a first viewer or a cold `/snapshot.jpg` gets a current picture
//! without waiting for the camera's next key frame, and a lost frame never turns into a
//! picture decoded on missing references.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::encode::h264_decode::{DecodeError, H264Decoder};
use crate::error::Error;
use crate::frame::Frame;
use crate::hub::{DecodeWork, Hub, NumberedUnit, Taken};
use crate::repeated_log::{RepeatedLog, SUMMARY_INTERVAL};

/// Starts the decode thread; it runs until `stop` is set and the hub is closed.
pub fn spawn(hub: Arc<Hub>, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name("h264-decode".into())
        .spawn(move || {
            let mut stage = DecodeStage::with_stop(stop.clone());
            while !stop.load(Ordering::Relaxed) {
                // Stopping the stream closes the hub, which wakes this thread.
                match hub.decode_input().take_until_closed() {
                    Taken::Item(work) => stage.handle(&hub, work),
                    Taken::TimedOut => {}
                    Taken::Closed => break,
                }
            }
        })
        .map_err(Error::Thread)
}

/// The decoder and where it stands in the hub's numbering of H.264 frames.
#[derive(Debug)]
pub struct DecodeStage {
    decoder: H264Decoder,
    /// The number of the last frame given to the decoder (or passed over waiting for an IDR);
    /// 0 before the first.
    last_index: u64,
    /// The number of the IDR the decoder's current run started at.
    run_idr: Option<u64>,
    /// The IDR of a GOP that failed to decode: not decoded again from the kept copy; the
    /// decoder waits for the next IDR instead.
    failed_idr: Option<u64>,
    errors: RepeatedLog,
    /// Set when the stream stops: a long GOP decode ends early.
    stop: Arc<AtomicBool>,
}

impl Default for DecodeStage {
    fn default() -> Self {
        Self::new()
    }
}

impl DecodeStage {
    pub fn new() -> Self {
        Self::with_stop(Arc::new(AtomicBool::new(false)))
    }

    /// A stage that stops decoding a kept GOP part-way once `stop` is set.
    pub fn with_stop(stop: Arc<AtomicBool>) -> Self {
        Self {
            decoder: H264Decoder::new(),
            last_index: 0,
            run_idr: None,
            failed_idr: None,
            errors: RepeatedLog::new(SUMMARY_INTERVAL),
            stop,
        }
    }

    /// Handles one piece of work from the hub. Decodes nothing while nobody wants JPEGs.
    pub fn handle(&mut self, hub: &Hub, work: DecodeWork) {
        if !hub.jpeg_demand_active() {
            // Passed over: the next frame after demand returns shows as a gap.
            return;
        }
        match work {
            DecodeWork::DemandStarted => self.resync(hub, None),
            DecodeWork::Unit(unit) if unit.index <= self.last_index => {
                // Already decoded from the kept GOP.
            }
            DecodeWork::Unit(unit) if unit.index == self.last_index + 1 => {
                if let Some(frame) = self.decode_next(hub, &unit) {
                    hub.publish_decoded(frame);
                }
            }
            DecodeWork::Unit(unit) => self.resync(hub, Some(unit)),
        }
    }

    /// Decodes the hub's kept GOP from its IDR (or from where the decoder's current run
    /// already is in it) to the newest frame, and hands on the newest picture.
    fn resync(&mut self, hub: &Hub, gap_at: Option<NumberedUnit>) {
        let Some(gop) = hub.current_gop() else {
            // Nothing whole to start from: an IDR that is itself the gap's frame decodes as it
            // is; otherwise decoding waits for the next IDR.
            match gap_at {
                Some(unit) if unit.is_idr() => {
                    self.last_index = unit.index - 1;
                    if let Some(frame) = self.decode_next(hub, &unit) {
                        hub.publish_decoded(frame);
                    }
                }
                Some(unit) => {
                    self.out_of_sync();
                    self.last_index = unit.index;
                }
                None => self.out_of_sync(),
            }
            return;
        };
        let idr = gop[0].index;
        let newest = gop[gop.len() - 1].index;
        if self.failed_idr == Some(idr) {
            self.last_index = self.last_index.max(newest);
            return;
        }
        let continues_run =
            self.decoder.in_sync() && self.run_idr == Some(idr) && self.last_index >= idr;
        if !continues_run {
            self.out_of_sync();
            self.last_index = idr - 1;
        }
        let decoded_through = self.last_index;
        let to_decode = gop.iter().filter(|unit| unit.index > decoded_through);
        if newest <= decoded_through {
            return;
        }
        hub.decode.resyncs.fetch_add(1, Ordering::Relaxed);
        let mut newest_picture = None;
        for unit in to_decode {
            // A GOP can take a second or two to decode: not past a stop or the end of demand.
            // Decoding so far stays valid; the next frame shows as a gap and carries on.
            if self.stop.load(Ordering::Relaxed) || !hub.jpeg_demand_active() {
                return;
            }
            match self.decode_next(hub, unit) {
                Some(picture) => newest_picture = Some(picture),
                // An error that left the decoder waiting for the next IDR.
                None if !self.decoder.in_sync() => break,
                None => {}
            }
        }
        // The newest picture decoded, even if an error stopped decoding after it: it was
        // decoded on sound references.
        if let Some(frame) = newest_picture {
            hub.publish_decoded(frame);
        }
    }

    /// Decodes the frame after the last one; `None` if it gave no picture.
    fn decode_next(&mut self, hub: &Hub, unit: &NumberedUnit) -> Option<Arc<Frame>> {
        self.last_index = unit.index;
        match self.decoder.decode(&unit.frame) {
            Ok(decoded) => {
                hub.decode.count_decoded(decoded.decode_time);
                if unit.is_idr() {
                    self.run_idr = Some(unit.index);
                    self.failed_idr = None;
                }
                Some(Arc::new(decoded.frame))
            }
            Err(DecodeError::WaitingForIdr) => None,
            Err(error) => {
                hub.decode.count_error(&error);
                self.errors
                    .warn("H.264 decoding failed", &error, Instant::now());
                if self.decoder.in_sync() {
                    // No picture for this unit, but the decoder took it: the next one follows.
                    return None;
                }
                // The decoder has reset itself; this GOP is not tried again.
                let run_idr = self.run_idr.take();
                self.failed_idr = if unit.is_idr() {
                    Some(unit.index)
                } else {
                    run_idr
                };
                None
            }
        }
    }

    fn out_of_sync(&mut self) {
        self.decoder.reset();
        self.run_idr = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::h264::{H264Encoder, H264Settings, default_bitrate_bps};
    use crate::frame::{FrameSize, H264Unit, Pixels};
    use crate::source::TestPattern;
    use bytes::Bytes;
    use std::time::{Duration, SystemTime};

    const SIZE: FrameSize = FrameSize::new(320, 240);

    /// `count` frames of the test pattern as framecast's own encoder makes them, an IDR every
    /// `frames_per_idr`, numbered from 1, 30 fps.
    fn h264_frames(count: u64, frames_per_idr: u32) -> Vec<Arc<Frame>> {
        let mut pattern = TestPattern::new(SIZE, 30);
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 30,
            bitrate_bps: default_bitrate_bps(SIZE, 30),
            frames_per_idr,
        })
        .unwrap();
        let mut buf = vec![0; SIZE.i420_len()];
        (1..=count)
            .map(|seq| {
                let at = SystemTime::UNIX_EPOCH + Duration::from_millis(seq * 33);
                pattern.render(seq, at, &mut buf);
                let raw = Frame::from_i420(seq, seq * 3000, at, SIZE, Bytes::from(buf.clone()));
                let au = encoder.encode(&raw).unwrap();
                Arc::new(Frame {
                    pixels: Pixels::H264(H264Unit {
                        annex_b: Bytes::from(au.annex_b),
                        is_idr: au.is_idr,
                    }),
                    ..raw
                })
            })
            .collect()
    }

    /// Hands the stage everything waiting in the hub's queue.
    fn drain(stage: &mut DecodeStage, hub: &Hub) {
        for _ in 0..1000 {
            match hub.decode_input().take(Duration::ZERO) {
                Taken::Item(work) => stage.handle(hub, work),
                Taken::TimedOut | Taken::Closed => return,
            }
        }
        panic!("the queue never emptied");
    }

    /// The frame waiting for the JPEG encoders, if any.
    fn jpeg_input(hub: &Hub) -> Option<Arc<Frame>> {
        match hub.jpeg_input().take(Duration::ZERO) {
            Taken::Item(frame) => Some(frame),
            Taken::TimedOut | Taken::Closed => None,
        }
    }

    fn decoded(hub: &Hub) -> u64 {
        hub.decode.frames_decoded.load(Ordering::Relaxed)
    }

    #[test]
    fn with_no_demand_nothing_is_handed_over_or_decoded_but_the_gop_is_kept() {
        let hub = Hub::new(false);
        let mut stage = DecodeStage::new();
        for frame in h264_frames(12, 8) {
            hub.publish_frame(frame);
        }
        drain(&mut stage, &hub);
        assert_eq!(decoded(&hub), 0);
        assert!(
            jpeg_input(&hub).is_none(),
            "H.264 never goes to the JPEG slot"
        );
        let gop: Vec<u64> = hub
            .current_gop()
            .unwrap()
            .iter()
            .map(|u| u.frame.seq)
            .collect();
        assert_eq!(gop, [9, 10, 11, 12], "from the last IDR");
        let status = hub.decode_status();
        assert_eq!((status.frames_decoded, status.gop_frames), (0, 4));
        assert_eq!(hub.source.frames.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_cold_snapshot_decodes_the_kept_gop_at_once_and_hands_on_the_newest_picture() {
        let hub = Hub::new(false);
        let mut stage = DecodeStage::new();
        let frames = h264_frames(14, 8);
        for frame in &frames[..12] {
            hub.publish_frame(frame.clone());
        }
        hub.want_snapshot();
        // The wake-up alone, before any new frame: the GOP from frame 9 to 12.
        drain(&mut stage, &hub);
        assert_eq!(decoded(&hub), 4);
        assert_eq!(hub.decode.resyncs.load(Ordering::Relaxed), 1);
        let newest = jpeg_input(&hub).expect("a picture for the JPEG encoders");
        assert_eq!(
            (newest.seq, newest.pts_90k, newest.size),
            (12, 36_000, SIZE)
        );
        assert!(newest.i420().is_some());
        // Demand on: the next frames are decoded one by one, in order.
        for frame in &frames[12..] {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
            assert_eq!(jpeg_input(&hub).map(|f| f.seq), Some(frame.seq));
        }
        assert_eq!(decoded(&hub), 6);
        let status = hub.decode_status();
        assert_eq!((status.frames_decoded, status.resyncs), (6, 1));
        assert!(status.decode_ms_mean > 0.0);
        assert_eq!(hub.decode.decode_errors.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lost_frames_resync_from_the_kept_gop_without_decoding_any_frame_twice() {
        let hub = Hub::new(false);
        let _viewer = hub.want_stream();
        let mut stage = DecodeStage::new();
        let frames = h264_frames(60, 300);
        for frame in &frames[..5] {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
        }
        assert_eq!(decoded(&hub), 5);
        // The stage stalls while 55 frames arrive: the queue (32) overflows.
        for frame in &frames[5..] {
            hub.publish_frame(frame.clone());
        }
        assert!(hub.decode.frames_lost.load(Ordering::Relaxed) > 0);
        drain(&mut stage, &hub);
        assert_eq!(decoded(&hub), 60, "every frame once, in order");
        assert_eq!(hub.decode.decode_errors.load(Ordering::Relaxed), 0);
        assert_eq!(hub.decode.resyncs.load(Ordering::Relaxed), 1);
        assert_eq!(jpeg_input(&hub).map(|f| f.seq), Some(60));
    }

    #[test]
    fn demand_that_pauses_picks_up_from_the_gop_on_its_return() {
        let hub = Hub::new(false);
        let mut stage = DecodeStage::new();
        let frames = h264_frames(20, 10);
        let viewer = hub.want_stream();
        for frame in &frames[..3] {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
        }
        drop(viewer);
        for frame in &frames[3..15] {
            hub.publish_frame(frame.clone());
        }
        drain(&mut stage, &hub);
        assert_eq!(decoded(&hub), 3, "nothing while nobody watches");
        let _viewer = hub.want_stream();
        drain(&mut stage, &hub);
        // A new GOP began at frame 11: decoded from there.
        assert_eq!(decoded(&hub), 3 + 5);
        assert_eq!(jpeg_input(&hub).map(|f| f.seq), Some(15));
    }

    #[test]
    fn a_corrupt_frame_stops_decoding_until_the_next_idr() {
        let hub = Hub::new(false);
        let _viewer = hub.want_stream();
        let mut stage = DecodeStage::new();
        let mut frames = h264_frames(12, 6);
        frames[2] = Arc::new(Frame {
            pixels: Pixels::H264(H264Unit {
                annex_b: Bytes::from([&[0, 0, 0, 1, 0x41][..], &[0xA5; 300]].concat()),
                is_idr: false,
            }),
            ..(*frames[2]).clone()
        });
        for frame in &frames {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
            let handed = jpeg_input(&hub).map(|f| f.seq);
            match frame.seq {
                1 | 2 | 7.. => assert_eq!(handed, Some(frame.seq)),
                _ => assert_eq!(handed, None, "frame {}", frame.seq),
            }
        }
        assert_eq!(hub.decode.decode_errors.load(Ordering::Relaxed), 1);
        assert!(
            hub.decode_status()
                .last_error
                .is_some_and(|e| e.starts_with("openh264")),
            "{:?}",
            hub.decode_status()
        );
        assert_eq!(decoded(&hub), 2 + 6);
        // A gap while the broken GOP is the kept one does not decode it again.
        let mut stage = DecodeStage::new();
        let hub = Hub::new(false);
        for frame in &frames[..5] {
            hub.publish_frame(frame.clone());
        }
        hub.want_snapshot();
        drain(&mut stage, &hub);
        hub.publish_frame(frames[5].clone());
        drain(&mut stage, &hub);
        assert_eq!(hub.decode.decode_errors.load(Ordering::Relaxed), 1);
        assert_eq!(decoded(&hub), 2);
    }

    #[test]
    fn after_a_placeholder_decoding_waits_for_an_idr() {
        let hub = Hub::new(false);
        let _viewer = hub.want_stream();
        let mut stage = DecodeStage::new();
        let frames = h264_frames(12, 8);
        for frame in &frames[..4] {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
        }
        assert_eq!(jpeg_input(&hub).map(|f| f.seq), Some(4));
        // The source went down: a placeholder, then the camera is back mid-GOP.
        let placeholder = Frame::from_i420(
            5,
            15_000,
            SystemTime::UNIX_EPOCH,
            SIZE,
            Bytes::from(vec![16; SIZE.i420_len()]),
        );
        hub.publish_frame(Arc::new(placeholder));
        assert_eq!(jpeg_input(&hub).map(|f| f.seq), Some(5), "shown as it is");
        assert!(hub.current_gop().is_none());
        for frame in &frames[5..] {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
            let handed = jpeg_input(&hub).map(|f| f.seq);
            let expected = (frame.seq >= 9).then_some(frame.seq);
            assert_eq!(handed, expected, "frame {}", frame.seq);
        }
        assert_eq!(hub.decode.decode_errors.load(Ordering::Relaxed), 0);
        assert_eq!(decoded(&hub), 4 + 4);
    }

    #[test]
    fn a_gop_decode_stops_part_way_at_a_stop_and_resumes_where_it_was() {
        let hub = Hub::new(false);
        let stop = Arc::new(AtomicBool::new(true));
        let mut stage = DecodeStage::with_stop(stop.clone());
        let frames = h264_frames(10, 30);
        for frame in &frames[..8] {
            hub.publish_frame(frame.clone());
        }
        hub.want_snapshot();
        drain(&mut stage, &hub);
        assert_eq!(decoded(&hub), 0, "stopped before the first frame");
        stop.store(false, Ordering::Relaxed);
        for frame in &frames[8..] {
            hub.publish_frame(frame.clone());
            drain(&mut stage, &hub);
        }
        assert_eq!(decoded(&hub), 10);
        assert_eq!(jpeg_input(&hub).map(|f| f.seq), Some(10));
    }

    #[test]
    fn the_rate_cap_lets_every_frame_be_decoded_but_few_reach_the_encoders() {
        let hub = Hub::with_mjpeg_fps(false, Some(10));
        let _viewer = hub.want_stream();
        let mut stage = DecodeStage::new();
        let mut handed = 0;
        for frame in h264_frames(30, 30) {
            hub.publish_frame(frame);
            drain(&mut stage, &hub);
            handed += u32::from(jpeg_input(&hub).is_some());
        }
        assert_eq!(decoded(&hub), 30);
        assert_eq!(handed, 10, "a second of 30 fps capped at 10");
        assert_eq!(hub.jpeg.frames_over_cap.load(Ordering::Relaxed), 20);
    }

    /// The threads as a stream runs them: a snapshot-style demand on a stream that nobody
    /// watched gets a JPEG of the newest frame without a new frame arriving.
    #[test]
    fn the_stage_and_the_jpeg_workers_publish_a_jpeg_of_the_newest_frame_from_cold() {
        let hub = Hub::new(false);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![spawn(hub.clone(), stop.clone()).unwrap()];
        threads
            .extend(super::super::jpeg::spawn_workers(hub.clone(), 80, 1, stop.clone()).unwrap());
        for frame in h264_frames(25, 10) {
            hub.publish_frame(frame);
        }
        let jpegs = hub.subscribe_jpeg();
        hub.want_snapshot();
        let mut published = None;
        for _ in 0..200 {
            published = jpegs.borrow().clone();
            if published.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        hub.close();
        for thread in threads {
            thread.join().unwrap();
        }
        let published = published.expect("a JPEG within 10 s");
        assert_eq!(published.frame.seq, 25);
        assert!(hub.is_fresh(&published));
        let header = turbojpeg::read_header(&published.frame.jpeg).unwrap();
        assert_eq!((header.width, header.height), (320, 240));
        assert_eq!(
            decoded(&hub),
            5,
            "frames 21 to 25: the GOP since the IDR at 21"
        );
    }
}
