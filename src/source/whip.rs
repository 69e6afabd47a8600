//! H.264 from a WHIP publisher (RFC 9725): a browser or phone that publishes its camera to
//! `POST /streams/{name}/whip` (`source = "whip"`).
//!
//! The stream's [`WhipInlet`] is where the two sides meet. The WebRTC session of the one
//! publisher allowed at a time holds a [`WhipPublisher`] ([`WhipInlet::claim`]; a second
//! claim is refused while it lives) and pushes every access unit str0m depacketized into a
//! bounded channel, never waiting; the [`WhipSource`] on the supervisor's reader thread takes
//! them out and turns each into a frame stamped with its arrival time, passed through to HLS,
//! `/live.mp4` and WHEP viewers and decoded for JPEG viewers like an RTSP camera's.
//!
//! The picture is kept decodable: the last SPS and PPS go in front of every IDR that lacks
//! them (as for `pipe:h264`, [`super::h264_pipe`]), and after a gap (a lost RTP packet, a
//! unit dropped because the channel was full) pictures are skipped until the next IDR, which
//! the publisher is asked for (a PLI, at most once per [`KEY_FRAME_ASK_INTERVAL`]).
//!
//! A browser makes a key frame only at the start and when asked: left alone its GOP never
//! ends, and HLS, whose segments each start with an IDR, would have one endless segment. So
//! while HLS is on the publisher is also asked for an IDR once per segment length
//! ([`WhipInlet::claim`]'s `key_frame_every`), which gives passthrough HLS
//! ([`crate::hls::passthrough`]) a key-frame interval to cut segments at.
//!
//! With no publisher the source waits (it is never reopened for silence) and the supervisor
//! shows the placeholder with [`WAITING_FOR_PUBLISHER`]; when the publisher leaves, the
//! source ends with [`PUBLISHER_LEFT`] and is opened again to wait for the next one.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::frame::{Frame, FrameSize, H264Unit, Pixels};
use crate::media::h264::{
    self, NAL_IDR, NAL_PPS, NAL_SLICE_NON_IDR, NAL_SPS, SliceKind, nal_unit_type, parse_sps,
};

use super::h264_pipe::{B_FRAMES_REFUSED, with_parameter_sets};
use super::{Opener, Source, SourceError};

/// Why the picture is a placeholder while nobody publishes.
pub const WAITING_FOR_PUBLISHER: &str = "waiting for a WHIP publisher";
/// Why the picture is a placeholder after the publisher left.
pub const PUBLISHER_LEFT: &str = "the WHIP publisher left; waiting for a WHIP publisher";
/// Access units waiting for the source thread: it takes each as it comes, so a full channel
/// means the pipeline is stuck; a quarter of a second at 30 fps, then units are dropped.
const SAMPLE_QUEUE: usize = 8;
/// How long the source thread waits at a time before it looks whether the stream stopped.
const WAIT_SLICE: Duration = Duration::from_millis(250);
/// The least time between two key-frame requests to the publisher: a browser answers a PLI
/// within a frame or two, and asking again before the IDR could arrive only costs bitrate.
pub const KEY_FRAME_ASK_INTERVAL: Duration = Duration::from_secs(1);

/// One access unit from the publisher, as str0m depacketized it.
#[derive(Debug, Clone)]
pub struct WhipSample {
    /// The access unit's NAL units in Annex B.
    pub annex_b: Bytes,
    /// When its first packet arrived.
    pub arrived_at: SystemTime,
    /// Nothing was lost between the unit before and this one.
    pub contiguous: bool,
}

/// Why a publisher was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("another publisher is publishing to this stream; DELETE its session first")]
    Busy,
    #[error("the stream has stopped")]
    Closed,
}

/// Where a stream's WHIP publisher hands its access units to the stream's source.
#[derive(Debug)]
pub struct WhipInlet {
    state: Mutex<InletState>,
    /// Signalled when a publisher comes or the stream stops.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct InletState {
    /// The current publisher's number and its tag (the session's id), if one is in.
    publisher: Option<(u64, String)>,
    /// The current publisher's channel, until the source takes it.
    pending: Option<Receiver<WhipSample>>,
    publishers_total: u64,
    closed: bool,
}

impl WhipInlet {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(InletState::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, InletState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets a publisher in, known by `tag` (its session's id), unless one is in already; it is
    /// asked for an IDR at least every `key_frame_every` (the HLS segment length).
    pub fn claim(
        self: &Arc<Self>,
        tag: String,
        key_frame_every: Option<Duration>,
    ) -> Result<WhipPublisher, ClaimError> {
        let mut state = self.lock();
        if state.closed {
            return Err(ClaimError::Closed);
        }
        if state.publisher.is_some() {
            return Err(ClaimError::Busy);
        }
        state.publishers_total += 1;
        let number = state.publishers_total;
        let (sender, receiver) = sync_channel(SAMPLE_QUEUE);
        state.publisher = Some((number, tag));
        state.pending = Some(receiver);
        drop(state);
        self.changed.notify_all();
        Ok(WhipPublisher {
            inlet: self.clone(),
            number,
            sender,
            lost_since_sent: false,
            key_frames: KeyFrameAsk::every(key_frame_every),
        })
    }

    /// The tag of the publisher that is in, if one is.
    pub fn publisher(&self) -> Option<String> {
        self.lock().publisher.as_ref().map(|(_, tag)| tag.clone())
    }

    /// Stops the inlet (the stream stops): no publisher gets in any more, and the source ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn release(&self, number: u64) {
        let mut state = self.lock();
        if state.publisher.as_ref().is_some_and(|(n, _)| *n == number) {
            state.publisher = None;
            // A channel the source never took dies with its publisher.
            state.pending = None;
        }
    }

    /// The channel of a publisher that came, waiting up to `timeout` for one; `Err` once the
    /// inlet is closed.
    fn wait_for_publisher(&self, timeout: Duration) -> Result<Option<Receiver<WhipSample>>, ()> {
        let mut state = self.lock();
        if state.pending.is_none() && !state.closed {
            state = self
                .changed
                .wait_timeout(state, timeout)
                .map(|(state, _)| state)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if state.closed {
            return Err(());
        }
        Ok(state.pending.take())
    }
}

/// The publisher's end of the inlet, held by its WebRTC session. Dropped, it lets the next
/// publisher in, and the source sees this one leave.
#[derive(Debug)]
pub struct WhipPublisher {
    inlet: Arc<WhipInlet>,
    number: u64,
    sender: SyncSender<WhipSample>,
    /// A unit was dropped: the next one sent is marked as not contiguous.
    lost_since_sent: bool,
    key_frames: KeyFrameAsk,
}

/// What became of a pushed unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Ask the publisher for a key frame now.
    pub ask_key_frame: bool,
    /// The source is gone for good (the stream stopped): the session should end.
    pub closed: bool,
}

impl WhipPublisher {
    /// Hands a unit to the source without waiting; a full channel drops it.
    pub fn push(&mut self, mut sample: WhipSample, now: Instant) -> Pushed {
        let is_idr = is_idr(&sample.annex_b);
        sample.contiguous &= !self.lost_since_sent;
        let contiguous = sample.contiguous;
        let (delivered, closed) = match self.sender.try_send(sample) {
            Ok(()) => (true, false),
            Err(TrySendError::Full(_)) => (false, false),
            Err(TrySendError::Disconnected(_)) => (false, self.inlet.is_closed()),
        };
        self.lost_since_sent = !delivered;
        Pushed {
            ask_key_frame: self.key_frames.note(is_idr, delivered, contiguous, now),
            closed,
        }
    }
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        self.inlet.release(self.number);
    }
}

/// Whether an access unit holds an IDR slice.
fn is_idr(annex_b: &[u8]) -> bool {
    h264::split_annex_b(annex_b).any(|nal| nal_unit_type(nal) == Some(NAL_IDR))
}

/// When to ask the publisher for a key frame: at the start and after a loss, until an IDR
/// gets through, and once the last IDR is `every` old; at most once per interval (or per
/// `every`, if shorter). Pure: the time is passed in.
#[derive(Debug, Clone)]
pub struct KeyFrameAsk {
    waiting_for_idr: bool,
    asked_at: Option<Instant>,
    last_idr_at: Option<Instant>,
    every: Option<Duration>,
    interval: Duration,
}

impl Default for KeyFrameAsk {
    fn default() -> Self {
        Self::every(None)
    }
}

impl KeyFrameAsk {
    /// Asks after losses, and for an IDR at least `every` (none: only after losses).
    pub fn every(every: Option<Duration>) -> Self {
        Self {
            waiting_for_idr: true,
            asked_at: None,
            last_idr_at: None,
            every,
            interval: every.map_or(KEY_FRAME_ASK_INTERVAL, |every| {
                every.min(KEY_FRAME_ASK_INTERVAL)
            }),
        }
    }

    /// A unit came: an IDR that reached the source ends the wait; a unit lost, or one after a
    /// loss that is not an IDR, starts one. Whether to ask now.
    pub fn note(&mut self, is_idr: bool, delivered: bool, contiguous: bool, now: Instant) -> bool {
        if delivered && is_idr {
            self.waiting_for_idr = false;
            self.last_idr_at = Some(now);
        } else if !delivered || !contiguous {
            self.waiting_for_idr = true;
        }
        self.ask_if_waiting(now)
    }

    /// Whether to ask now: still waiting for an IDR, or the last one is due to be followed.
    pub fn ask_if_waiting(&mut self, now: Instant) -> bool {
        let due = self.every.is_some_and(|every| {
            self.last_idr_at
                .is_some_and(|at| now.saturating_duration_since(at) >= every)
        });
        if !self.waiting_for_idr && !due {
            return false;
        }
        if self
            .asked_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.interval)
        {
            return false;
        }
        self.asked_at = Some(now);
        true
    }
}

/// Turns a publisher's access units into frames: keeps the parameter sets, puts them before
/// every IDR, and skips pictures from a gap to the next IDR. Pure: samples in, frames out.
#[derive(Debug, Default)]
pub struct AccessUnitAssembler {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    size: Option<FrameSize>,
    /// Pictures are skipped until an IDR: at the start, and after a gap.
    decodable: bool,
    /// Pictures skipped so far.
    pub skipped: u64,
}

impl AccessUnitAssembler {
    /// The frame of one access unit; `None` for one that holds no picture to serve (parameter
    /// sets alone, a picture before the first IDR or after a gap).
    ///
    /// A gap, or a unit refused as bad, makes the pictures that follow undecodable until the
    /// next IDR, whatever the unit that carried the gap held.
    pub fn push(&mut self, sample: WhipSample) -> Result<Option<Frame>, SourceError> {
        if !sample.contiguous {
            self.decodable = false;
        }
        let frame = self.assemble(sample);
        if frame.is_err() {
            self.decodable = false;
        }
        frame
    }

    fn assemble(&mut self, sample: WhipSample) -> Result<Option<Frame>, SourceError> {
        let mut has_picture = false;
        let mut is_idr = false;
        for nal in h264::split_annex_b(&sample.annex_b) {
            match nal_unit_type(nal) {
                Some(NAL_SPS) => self.take_sps(nal)?,
                Some(NAL_PPS) => self.pps = Some(Bytes::copy_from_slice(nal)),
                Some(kind @ NAL_SLICE_NON_IDR..=NAL_IDR) => {
                    has_picture = true;
                    is_idr |= kind == NAL_IDR;
                    if h264::slice_kind(nal) == Some(SliceKind::B) {
                        return Err(SourceError::BadFrame(B_FRAMES_REFUSED.into()));
                    }
                }
                _ => {}
            }
        }
        if !has_picture {
            return Ok(None);
        }
        if is_idr {
            self.decodable = true;
        } else if !self.decodable {
            self.skipped += 1;
            return Ok(None);
        }
        let (Some(size), Some(sps), Some(pps)) = (self.size, &self.sps, &self.pps) else {
            return Err(SourceError::BadFrame(
                "an H.264 picture came before its SPS and PPS".into(),
            ));
        };
        // Every IDR gets the current parameter sets first, whether the unit had them (in any
        // order) or not: one copy a GOP.
        let annex_b = if is_idr {
            with_parameter_sets(sps, pps, &sample.annex_b)
        } else {
            sample.annex_b
        };
        Ok(Some(Frame {
            seq: 0,
            pts_90k: 0,
            captured_at: sample.arrived_at,
            size,
            pixels: Pixels::H264(H264Unit { annex_b, is_idr }),
            repeats_previous: false,
        }))
    }

    fn take_sps(&mut self, nal: &[u8]) -> Result<(), SourceError> {
        if self.sps.as_deref() == Some(nal) {
            return Ok(());
        }
        let sps = parse_sps(nal)
            .map_err(|error| SourceError::BadFrame(format!("a bad H.264 SPS: {error}")))?;
        let size = FrameSize::new(sps.width, sps.height);
        if sps.width == 0 || sps.height == 0 || !size.fits_max() {
            return Err(SourceError::BadFrame(format!(
                "the H.264 SPS describes a {}x{} picture, larger than {}",
                sps.width,
                sps.height,
                FrameSize::MAX
            )));
        }
        self.sps = Some(Bytes::copy_from_slice(nal));
        self.size = Some(size);
        Ok(())
    }
}

/// Opens a [`WhipSource`] on the stream's inlet; opening never fails (it waits for a
/// publisher instead).
#[derive(Debug)]
pub struct WhipOpener {
    inlet: Arc<WhipInlet>,
}

impl WhipOpener {
    pub fn new(inlet: Arc<WhipInlet>) -> Self {
        Self { inlet }
    }
}

impl Opener for WhipOpener {
    fn describe(&self) -> String {
        "WHIP publisher".into()
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(WhipSource {
            inlet: self.inlet.clone(),
            samples: None,
            assembler: AccessUnitAssembler::default(),
        }))
    }

    fn silence_reason(&self) -> Option<String> {
        self.inlet
            .publisher()
            .is_none()
            .then(|| WAITING_FOR_PUBLISHER.to_owned())
    }
}

/// The frames of the stream's publisher, one after the other.
pub struct WhipSource {
    inlet: Arc<WhipInlet>,
    /// The channel of the publisher being read.
    samples: Option<Receiver<WhipSample>>,
    assembler: AccessUnitAssembler,
}

impl Source for WhipSource {
    fn describe(&self) -> String {
        "WHIP publisher".into()
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        const STOPPED: &str = "the stream has stopped";
        loop {
            let Some(samples) = &self.samples else {
                match self.inlet.wait_for_publisher(WAIT_SLICE) {
                    Ok(Some(samples)) => {
                        self.samples = Some(samples);
                        self.assembler = AccessUnitAssembler::default();
                    }
                    Ok(None) => {}
                    Err(()) => return Err(SourceError::Finished(STOPPED.into())),
                }
                continue;
            };
            match samples.recv_timeout(WAIT_SLICE) {
                Ok(sample) => {
                    if let Some(frame) = self.assembler.push(sample)? {
                        return Ok(frame);
                    }
                }
                Err(RecvTimeoutError::Timeout) if self.inlet.is_closed() => {
                    return Err(SourceError::Finished(STOPPED.into()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.samples = None;
                    return Err(SourceError::Ended(PUBLISHER_LEFT.into()));
                }
            }
        }
    }

    /// A publisher comes when it comes: silence is no reason to reopen.
    fn reopen_after_silence(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // openh264's SPS for 320x240 Constrained Baseline and its PPS, and slices cut after the
    // slice type (all the assembler reads of them).
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0b, 0x8c, 0x68, 0x14, 0x1f, 0x20, 0x1e, 0x11, 0x08, 0xd4,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x21];
    const P: &[u8] = &[0x41, 0x9a, 0x02, 0x02];

    fn annex_b(nals: &[&[u8]]) -> Bytes {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out.into()
    }

    fn sample(nals: &[&[u8]], contiguous: bool) -> WhipSample {
        WhipSample {
            annex_b: annex_b(nals),
            arrived_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            contiguous,
        }
    }

    fn h264(frame: &Frame) -> &H264Unit {
        match &frame.pixels {
            Pixels::H264(unit) => unit,
            other => panic!("not H.264: {other:?}"),
        }
    }

    #[test]
    fn pictures_wait_for_the_first_idr_which_gets_the_last_parameter_sets() {
        let mut assembler = AccessUnitAssembler::default();
        assert_eq!(
            assembler.push(sample(&[P], true)).unwrap().map(|_| ()),
            None
        );
        assert_eq!(assembler.skipped, 1);
        // Parameter sets alone are no picture, but are kept.
        assert!(assembler.push(sample(&[SPS, PPS], true)).unwrap().is_none());
        let frame = assembler.push(sample(&[IDR], true)).unwrap().unwrap();
        assert_eq!(frame.size, FrameSize::new(320, 240));
        assert_eq!(
            frame.captured_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let unit = h264(&frame);
        assert!(unit.is_idr);
        assert_eq!(unit.annex_b, annex_b(&[SPS, PPS, IDR]));
        let frame = assembler.push(sample(&[P], true)).unwrap().unwrap();
        assert!(!h264(&frame).is_idr);
        assert_eq!(h264(&frame).annex_b, annex_b(&[P]));
    }

    #[test]
    fn an_idr_keeps_its_own_parameter_sets_in_front_whatever_their_order() {
        let mut assembler = AccessUnitAssembler::default();
        let frame = assembler
            .push(sample(&[SPS, PPS, IDR], true))
            .unwrap()
            .unwrap();
        assert_eq!(h264(&frame).annex_b, annex_b(&[SPS, PPS, IDR]));
        let frame = assembler
            .push(sample(&[PPS, IDR, SPS], true))
            .unwrap()
            .unwrap();
        assert_eq!(h264(&frame).annex_b, annex_b(&[SPS, PPS, IDR]));
    }

    #[test]
    fn after_a_gap_pictures_are_skipped_until_the_next_idr() {
        let mut assembler = AccessUnitAssembler::default();
        assembler.push(sample(&[SPS, PPS, IDR], true)).unwrap();
        assert!(assembler.push(sample(&[P], false)).unwrap().is_none());
        // Contiguous with the lost one, but that one is lost: still skipped.
        assert!(assembler.push(sample(&[P], true)).unwrap().is_none());
        assert_eq!(assembler.skipped, 2);
        let frame = assembler.push(sample(&[IDR], false)).unwrap().unwrap();
        assert_eq!(h264(&frame).annex_b, annex_b(&[SPS, PPS, IDR]));
        assert!(assembler.push(sample(&[P], true)).unwrap().is_some());
    }

    #[test]
    fn a_gap_or_a_refused_unit_holds_pictures_back_until_the_next_idr() {
        let mut assembler = AccessUnitAssembler::default();
        assembler.push(sample(&[SPS, PPS, IDR], true)).unwrap();
        // The unit after the gap is refused (a bad SPS) before its picture is looked at: the
        // gap still counts.
        assert!(assembler.push(sample(&[&[0x67, 0xff], P], false)).is_err());
        assert!(assembler.push(sample(&[P], true)).unwrap().is_none());
        assert!(assembler.push(sample(&[IDR], true)).unwrap().is_some());
        // A refused unit without a gap: the pictures after it refer to it.
        assert!(assembler.push(sample(&[&[0x67, 0xff], P], true)).is_err());
        assert!(assembler.push(sample(&[P], true)).unwrap().is_none());
        assert!(assembler.push(sample(&[IDR], true)).unwrap().is_some());
        assert!(assembler.push(sample(&[P], true)).unwrap().is_some());
    }

    #[test]
    fn bad_input_is_a_bad_frame_not_a_panic() {
        let mut assembler = AccessUnitAssembler::default();
        let cases: &[&[&[u8]]] = &[&[IDR], &[&[0x67]], &[&[0x67, 0xff, 0xff]], &[], &[&[]]];
        for nals in cases {
            match assembler.push(sample(nals, true)) {
                Ok(None) | Err(SourceError::BadFrame(_)) => {}
                other => panic!("{nals:?}: {other:?}"),
            }
        }
        // A B slice (slice_type 1, ue(v) `010`) after first_mb_in_slice 0 (`1`): 0b1010_0000.
        assembler.push(sample(&[SPS, PPS, IDR], true)).unwrap();
        assert_eq!(
            assembler.push(sample(&[&[0x01, 0xa0, 0x00]], true)).err(),
            Some(SourceError::BadFrame(B_FRAMES_REFUSED.into()))
        );
    }

    #[test]
    fn key_frames_are_asked_for_at_the_start_and_after_a_loss_at_most_once_a_second() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut ask = KeyFrameAsk::default();
        assert!(ask.ask_if_waiting(at(0)));
        assert!(!ask.note(false, true, true, at(100)), "asked 100 ms ago");
        assert!(
            ask.note(false, true, true, at(1000)),
            "still no IDR a second on"
        );
        assert!(!ask.note(true, true, true, at(1100)));
        assert!(!ask.note(false, true, true, at(5000)), "an IDR came");
        assert!(ask.note(false, false, true, at(5100)), "a unit was dropped");
        assert!(!ask.note(false, true, false, at(5200)));
        assert!(
            ask.note(true, false, true, at(6200)),
            "the IDR was dropped too"
        );
        assert!(!ask.note(false, true, true, at(6300)), "asked 100 ms ago");
        assert!(
            !ask.note(true, true, false, at(6400)),
            "an IDR after a gap is a start"
        );
    }

    #[test]
    fn with_hls_an_idr_is_asked_for_once_per_segment_length() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut ask = KeyFrameAsk::every(Some(Duration::from_millis(500)));
        assert!(!ask.note(true, true, true, at(0)));
        assert!(!ask.note(false, true, true, at(400)));
        assert!(
            ask.note(false, true, true, at(500)),
            "the IDR is 500 ms old"
        );
        assert!(!ask.note(false, true, true, at(600)), "asked 100 ms ago");
        assert!(
            ask.note(false, true, true, at(1000)),
            "no IDR came: ask again"
        );
        assert!(!ask.note(true, true, true, at(1050)));
        assert!(
            !ask.note(false, true, true, at(1500)),
            "asked 500 ms ago, IDR 450 ms old"
        );
        assert!(ask.note(false, true, true, at(1550)));
    }

    #[test]
    fn one_publisher_at_a_time_and_the_source_sees_it_leave() {
        let inlet = WhipInlet::new();
        let mut opener = WhipOpener::new(inlet.clone());
        assert_eq!(
            opener.silence_reason().as_deref(),
            Some(WAITING_FOR_PUBLISHER)
        );
        let mut publisher = inlet.claim("a".into(), None).unwrap();
        assert_eq!(inlet.claim("b".into(), None).unwrap_err(), ClaimError::Busy);
        assert_eq!(inlet.publisher().as_deref(), Some("a"));
        assert_eq!(opener.silence_reason(), None);
        let now = Instant::now();
        let pushed = publisher.push(sample(&[SPS, PPS, IDR], true), now);
        assert_eq!(
            pushed,
            Pushed {
                ask_key_frame: false,
                closed: false
            }
        );
        let mut source = opener.open().unwrap();
        assert_eq!(source.reopen_after_silence(), None);
        let frame = source.next_frame().unwrap();
        assert!(h264(&frame).is_idr);
        drop(publisher);
        assert_eq!(
            source.next_frame().err(),
            Some(SourceError::Ended(PUBLISHER_LEFT.into()))
        );
        assert_eq!(inlet.publisher(), None);
        let _next = inlet.claim("c".into(), None).unwrap();
        inlet.close();
        assert_eq!(
            inlet.claim("d".into(), None).unwrap_err(),
            ClaimError::Closed
        );
        assert!(matches!(
            opener.open().unwrap().next_frame(),
            Err(SourceError::Finished(_))
        ));
    }

    #[test]
    fn a_full_channel_drops_units_and_marks_the_next_as_after_a_gap() {
        let inlet = WhipInlet::new();
        let mut publisher = inlet.claim("a".into(), None).unwrap();
        let now = Instant::now();
        publisher.push(sample(&[SPS, PPS, IDR], true), now);
        for _ in 1..SAMPLE_QUEUE {
            publisher.push(sample(&[P], true), now);
        }
        let dropped = publisher.push(sample(&[P], true), now + KEY_FRAME_ASK_INTERVAL);
        assert!(dropped.ask_key_frame);
        let mut source = WhipOpener::new(inlet.clone()).open().unwrap();
        for _ in 0..SAMPLE_QUEUE {
            source.next_frame().unwrap();
        }
        publisher.push(sample(&[P], true), now + KEY_FRAME_ASK_INTERVAL);
        publisher.push(sample(&[IDR], true), now + KEY_FRAME_ASK_INTERVAL);
        // The P after the drop is skipped: the next frame is the IDR.
        assert!(h264(&source.next_frame().unwrap()).is_idr);
    }
}
