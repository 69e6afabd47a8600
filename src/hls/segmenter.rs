//! Cuts the H.264 access-unit stream into CMAF parts and segments for HLS and `/live.mp4`.
//!
//! The timeline is the capture clock: a frame's decode time is its `pts_90k` (the source's
//! capture time on the 90 kHz clock), and its duration runs to the next frame actually
//! encoded. A frame the encoder never got (it fell behind, or failed) therefore lengthens the
//! frame before it instead of shortening the timeline, and tfdt, EXTINF, part durations and
//! PROGRAM-DATE-TIME (each segment's first frame's capture time, to within the frame grid's
//! jitter) stay true to the capture clock. Since a frame's duration is known only when the next one arrives, the
//! segmenter holds the newest frame until then.
//!
//! - A part is cut by time: it ends before the frame that would take it past PART-TARGET
//!   (rfc8216bis §4.4.4.9), and is published as soon as no further frame can fit. PART-TARGET
//!   is a whole number of frames, so without lost frames every part is exactly that many.
//! - A segment starts at an IDR once the open one has reached its configured length; the
//!   segmenter asks the encoder for that IDR one frame ahead ([`PushOutcome::need_idr`]), so
//!   every segment is independent. If that frame is lost the segment ends one frame later;
//!   its EXTINF, rounded, still never exceeds EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1).
//! - With the source's own H.264 ([`Segmenter::for_source_idrs`]) nobody can be asked for an
//!   IDR: a segment starts at the first of the camera's IDRs that finds the open segment full
//!   (half a key-frame interval of slack, so a camera whose IDR comes a frame early still cuts
//!   there). The segment length is a whole number of key-frame intervals, chosen before the
//!   first segment ([`crate::hls::passthrough`]).
//! - A segment never outlasts EXT-X-TARGETDURATION (rounded, RFC 8216 §4.3.3.1). A frame that
//!   is not an IDR and would take the open segment past it (a camera whose GOP grew longer
//!   than the one learned) ends the segment before it; that frame and every one after it
//!   until the next IDR are dropped ([`PushOutcome::dropped`]), and the segment the IDR opens
//!   follows an EXT-X-DISCONTINUITY with its decode time moved on by the capture time that
//!   passed, as after an interruption. So every segment still starts with an IDR and every
//!   part that starts with one is INDEPENDENT; EXT-X-INDEPENDENT-SEGMENTS stays true.
//! - Each part is one `moof` + `mdat`; a segment is its parts concatenated.
//! - A gap longer than a part (a stalled source or encoder) cannot be one sample without
//!   breaking PART-TARGET: such a sample is cut to the longest duration the rules allow, and
//!   only then does the timeline lose time. The next segment's PROGRAM-DATE-TIME is still its
//!   real capture time.
//! - PROGRAM-DATE-TIME moves with tfdt: a segment's date is the first segment's capture time
//!   plus the decode time since then, so each segment's date plus its EXTINF is the next one's
//!   (what players that place segments by date expect). Frame times sit on a grid of frame
//!   slots that a frame's capture time may miss by up to a frame and a half
//!   (the pipeline's capture clock); taking each first frame's own capture time would
//!   make the dates jump by that much against the durations. Where decode time and capture
//!   time part by more than [`PDT_REANCHOR_INTERVALS`] frame intervals (a stall cut to the
//!   part target, a discontinuity, the wall clock stepped), the segment carries its own
//!   capture time again and later ones count from it.
//! - The encoder can stop and start again (HLS on demand, [`Segmenter::interrupt`]): the open
//!   segment ends where the encoder stopped, and the next one starts with an IDR after an
//!   EXT-X-DISCONTINUITY (rfc8216bis §3: it does not continue the bitstream of the segment
//!   before it), with the next Media Sequence Number, so no name is ever used twice. Its
//!   decode time moves on by the capture time that passed, so tfdt and PROGRAM-DATE-TIME keep
//!   following the capture clock and never go back.
//!
//! Pure: access units in, events out; no I/O and no clocks.

use std::time::SystemTime;

use bytes::Bytes;

use crate::encode::h264::AccessUnit;
use crate::frame::{CLOCK_90K, FrameSize, unix_micros};
use crate::media::cmaf::{self, CmafError, Sample, VideoTrack};
use crate::media::h264;

/// How many frame intervals a segment's first frame may be captured away from the date its
/// decode time gives before its own capture time is taken instead (see the module doc): more
/// than the grid allows between two frames (one and a half early, one late).
const PDT_REANCHOR_INTERVALS: i128 = 3;

/// How the stream is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterSettings {
    pub fps: u32,
    pub frames_per_segment: u32,
    pub frames_per_part: u32,
}

impl SegmenterSettings {
    /// Duration on the 90 kHz clock of frames `[from, to)` at the nominal rate.
    pub fn span_90k(&self, from_frame: u64, to_frame: u64) -> u64 {
        self.dts_90k(to_frame) - self.dts_90k(from_frame)
    }

    /// Time of frame `n` at the nominal rate: exact, without accumulated rounding (the source
    /// supervisor numbers frames the same way).
    pub fn dts_90k(&self, frame: u64) -> u64 {
        (u128::from(frame) * u128::from(CLOCK_90K) / u128::from(self.fps.max(1))) as u64
    }

    /// The shortest time between two frames at the nominal rate.
    pub fn frame_interval_90k(&self) -> u64 {
        (CLOCK_90K / u64::from(self.fps.max(1))).max(1)
    }

    /// PART-TARGET on the 90 kHz clock: `frames_per_part` frames, rounded up.
    pub fn part_target_90k(&self) -> u64 {
        ceil_span_90k(self.frames_per_part, self.fps)
    }

    /// The configured segment length on the 90 kHz clock, rounded up.
    pub fn segment_target_90k(&self) -> u64 {
        ceil_span_90k(self.frames_per_segment, self.fps)
    }

    /// EXT-X-TARGETDURATION: the segment length rounded up to whole seconds, at least 1.
    pub fn target_duration_s(&self) -> u64 {
        self.segment_target_90k().div_ceil(CLOCK_90K).max(1)
    }

    /// Parts in a segment without lost frames (the last one may be shorter).
    pub fn parts_per_segment(&self) -> u32 {
        self.frames_per_segment
            .div_ceil(self.frames_per_part.max(1))
    }

    /// The most parts a segment can have: lost frames can make parts shorter, never fewer
    /// than one frame.
    pub fn max_parts_per_segment(&self) -> u32 {
        self.frames_per_segment.saturating_add(1)
    }
}

/// `frames` frames at `fps` on the 90 kHz clock, rounded up.
fn ceil_span_90k(frames: u32, fps: u32) -> u64 {
    (u64::from(frames) * CLOCK_90K).div_ceil(u64::from(fps.max(1)))
}

/// What the segmenter produced from one access unit.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmenterEvent {
    /// A new init segment: the first, or after the picture format changed. Segments after it
    /// start with a discontinuity if there were segments before.
    Init {
        init: Bytes,
        codec: String,
        size: FrameSize,
    },
    /// A new segment has begun with this media sequence number.
    SegmentStart {
        msn: u64,
        program_date_time_unix_ms: u64,
        discontinuity: bool,
    },
    /// A finished part of the open segment.
    Part {
        msn: u64,
        index: u32,
        data: Bytes,
        duration_90k: u64,
        independent: bool,
        frames: u32,
    },
    /// The open segment is complete.
    SegmentEnd { msn: u64, duration_90k: u64 },
    /// One frame of the open part as a fragment of its own (moof + mdat, the same sample and
    /// decode time as in its part), for `/live.mp4`, which sends each frame as soon as its
    /// duration is known instead of waiting a whole part for it. Not listed in any playlist.
    Frame {
        /// The frame's number on the timeline (0 for the first).
        number: u64,
        data: Bytes,
        /// An IDR: a viewer can start here.
        independent: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SegmenterError {
    #[error("access unit {seq} holds no picture")]
    Empty { seq: u64 },
    #[error("cannot write fMP4: {0}")]
    Cmaf(#[from] CmafError),
}

/// What the segmenter needs to know of an access unit besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct UnitInfo {
    /// The source frame's sequence number, for errors.
    pub seq: u64,
    /// Its capture time: a segment it starts carries it, or the date its decode time gives
    /// when that is near, as PROGRAM-DATE-TIME.
    pub captured_at: SystemTime,
    pub size: FrameSize,
}

/// What the caller should do after a push.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushOutcome {
    pub events: Vec<SegmenterEvent>,
    /// Make the next frame an IDR: a segment must start there (the open one is full), or the
    /// access unit was dropped because no segment is open and it was not an IDR.
    pub need_idr: bool,
    /// The access unit was not placed: no segment is open and it is not an IDR (or no
    /// parameter sets were seen yet), so nothing could decode it.
    pub dropped: bool,
    /// The open segment was ended before this access unit because it would have outlasted
    /// EXT-X-TARGETDURATION (a GOP longer than the segment); frames are dropped until the
    /// next IDR.
    pub cut_long_gop: bool,
}

#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    start_dts_90k: u64,
    parts_done: u32,
}

#[derive(Debug, Default)]
struct PartBuilder {
    samples: Vec<Sample>,
    start_dts_90k: u64,
    independent: bool,
}

/// The newest frame, held until the next one gives its duration.
#[derive(Debug)]
struct HeldFrame {
    pts_90k: u64,
    dts_90k: u64,
    is_idr: bool,
    data: Bytes,
}

#[derive(Debug)]
pub struct Segmenter {
    settings: SegmenterSettings,
    track: Option<VideoTrack>,
    fragment_sequence: u32,
    next_msn: u64,
    open: Option<OpenSegment>,
    part: PartBuilder,
    held: Option<HeldFrame>,
    /// Where the timeline placed so far ends: the decode time of the next frame when nothing
    /// is held.
    end_dts_90k: u64,
    /// The next segment follows a format change.
    pending_discontinuity: bool,
    /// Frames placed on the timeline so far: the next [`SegmenterEvent::Frame`]'s number.
    frames_placed: u64,
    /// The capture time and decode time of the last frame placed.
    last_placed_90k: Option<(u64, u64)>,
    /// Set by [`Segmenter::interrupt`] until the next segment opens: the last frame placed
    /// before the interruption (capture time, decode time), from which the next segment's
    /// decode time follows the capture clock.
    resume_from_90k: Option<(u64, u64)>,
    /// How far short of the segment target an IDR may come and still start the next segment.
    idr_cut_slack_90k: u64,
    /// Capture time (µs since the epoch) less decode time (µs) at the segment that last took
    /// its own capture time as PROGRAM-DATE-TIME: later segments' dates count from it.
    pdt_anchor_us: Option<i128>,
}

impl Segmenter {
    pub fn new(settings: SegmenterSettings) -> Self {
        Self {
            settings,
            track: None,
            fragment_sequence: 0,
            next_msn: 0,
            open: None,
            part: PartBuilder::default(),
            held: None,
            end_dts_90k: 0,
            pending_discontinuity: false,
            frames_placed: 0,
            last_placed_90k: None,
            resume_from_90k: None,
            // Half a frame absorbs the one-tick rounding of frame times at rates that do not
            // divide 90 kHz.
            idr_cut_slack_90k: settings.frame_interval_90k() / 2,
            pdt_anchor_us: None,
        }
    }

    /// A segmenter for H.264 as a source made it: segments start at the source's IDRs, which
    /// come every `key_frame_interval_90k` (measured), and `settings.frames_per_segment` is a
    /// whole number of key-frame intervals. An IDR up to half an interval early still cuts.
    pub fn for_source_idrs(settings: SegmenterSettings, key_frame_interval_90k: u64) -> Self {
        let mut segmenter = Self::new(settings);
        segmenter.idr_cut_slack_90k = segmenter.idr_cut_slack_90k.max(key_frame_interval_90k / 2);
        segmenter
    }

    /// The encoder stops here (nobody wants HLS now): the held frame is placed with the
    /// nominal frame duration and the open part and segment are closed, so everything the
    /// playlist listed stays valid. The next frame pushed starts a new segment, once it is an
    /// IDR, after a discontinuity; its decode time is the last one's moved on by the capture
    /// time between them.
    pub fn interrupt(&mut self) -> Result<Vec<SegmenterEvent>, SegmenterError> {
        let mut events = Vec::new();
        self.place_held(None, &mut events)?;
        self.close_segment(&mut events)?;
        if self.next_msn > 0 {
            self.pending_discontinuity = true;
        }
        if let Some(last) = self.last_placed_90k {
            self.resume_from_90k = Some(last);
        }
        Ok(events)
    }

    pub fn settings(&self) -> SegmenterSettings {
        self.settings
    }

    /// Takes the next encoded frame, with its capture time on the 90 kHz clock (`Frame::pts_90k`).
    pub fn push(&mut self, unit: &AccessUnit, pts_90k: u64) -> Result<PushOutcome, SegmenterError> {
        self.push_annex_b(
            &UnitInfo {
                seq: unit.seq,
                captured_at: unit.captured_at,
                size: unit.size,
            },
            &unit.annex_b,
            pts_90k,
        )
    }

    /// Takes the next access unit in Annex B form (an encoder's or the source's own), with
    /// its capture time on the 90 kHz clock.
    pub fn push_annex_b(
        &mut self,
        unit: &UnitInfo,
        annex_b: &[u8],
        pts_90k: u64,
    ) -> Result<PushOutcome, SegmenterError> {
        let sample = h264::to_avcc_sample(annex_b);
        if sample.data.is_empty() {
            return Err(SegmenterError::Empty { seq: unit.seq });
        }
        let mut outcome = PushOutcome::default();

        if let (Some(sps), Some(pps)) = (&sample.sps, &sample.pps) {
            let track = VideoTrack {
                size: unit.size,
                sps: sps.clone(),
                pps: pps.clone(),
            };
            if self.track.as_ref() != Some(&track) {
                let init = Bytes::from(cmaf::init_segment(&track)?);
                if self.track.is_some() {
                    // A new format: close what is open so no segment mixes two formats. The
                    // held frame's successor is in another format: give it the nominal length.
                    self.place_held(None, &mut outcome.events)?;
                    self.close_segment(&mut outcome.events)?;
                    self.pending_discontinuity = true;
                }
                outcome.events.push(SegmenterEvent::Init {
                    init,
                    codec: h264::rfc6381_codec(sps).unwrap_or_else(|| "avc1".into()),
                    size: unit.size,
                });
                self.track = Some(track);
            }
        }
        if self.track.is_none() {
            outcome.need_idr = true;
            outcome.dropped = true;
            return Ok(outcome);
        }

        // A frame that cannot start a segment and would take the open one past
        // EXT-X-TARGETDURATION: the segment ends before it, and frames are dropped until the
        // next IDR (see the module doc).
        if !sample.is_idr
            && let Some(open) = &self.open
        {
            let placed_until = self.end_dts_90k.max(
                self.held
                    .as_ref()
                    .map_or(0, |h| h.dts_90k + pts_90k.saturating_sub(h.pts_90k)),
            );
            let would_end = placed_until + self.settings.frame_interval_90k();
            if would_end.saturating_sub(open.start_dts_90k) > self.max_segment_90k() {
                self.place_held(Some(pts_90k), &mut outcome.events)?;
                self.close_segment(&mut outcome.events)?;
                self.pending_discontinuity = true;
                if let Some(last) = self.last_placed_90k {
                    self.resume_from_90k = Some(last);
                }
                outcome.cut_long_gop = true;
                outcome.need_idr = true;
                outcome.dropped = true;
                return Ok(outcome);
            }
        }

        // The held frame's duration runs to this one.
        self.place_held(Some(pts_90k), &mut outcome.events)?;
        let dts_90k = match self.resume_from_90k {
            // After an interruption, the capture time that passed; never back in time.
            Some((last_pts, last_dts)) => self
                .end_dts_90k
                .max(last_dts.saturating_add(pts_90k.saturating_sub(last_pts))),
            None => self.end_dts_90k,
        };
        if sample.is_idr
            && self
                .open
                .as_ref()
                .is_none_or(|s| self.segment_full(s, dts_90k))
        {
            self.close_segment(&mut outcome.events)?;
            self.open_segment(unit.captured_at, dts_90k, &mut outcome.events);
            self.resume_from_90k = None;
        }
        let Some(open) = &self.open else {
            outcome.need_idr = true;
            outcome.dropped = true;
            return Ok(outcome);
        };
        // Would the next frame, at the earliest, find this segment full? Then it must be an IDR.
        outcome.need_idr = self.segment_full(open, dts_90k + self.settings.frame_interval_90k());
        self.held = Some(HeldFrame {
            pts_90k,
            dts_90k,
            is_idr: sample.is_idr,
            data: Bytes::from(sample.data),
        });
        Ok(outcome)
    }

    /// Whether an IDR at `dts_90k` starts the next segment (see `idr_cut_slack_90k`).
    fn segment_full(&self, open: &OpenSegment, dts_90k: u64) -> bool {
        dts_90k.saturating_sub(open.start_dts_90k) + self.idr_cut_slack_90k
            >= self.settings.segment_target_90k()
    }

    /// The longest a segment may last: its EXTINF rounded to the nearest second (a half
    /// rounding up) is at most EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1).
    fn max_segment_90k(&self) -> u64 {
        self.settings.target_duration_s() * CLOCK_90K + CLOCK_90K / 2 - 1
    }

    /// Puts the held frame into the part being built, lasting until `next_pts_90k` (the
    /// nominal frame interval with `None`), cutting parts by time.
    fn place_held(
        &mut self,
        next_pts_90k: Option<u64>,
        events: &mut Vec<SegmenterEvent>,
    ) -> Result<(), SegmenterError> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let part_target = self.settings.part_target_90k();
        let gap = next_pts_90k.map_or(self.settings.frame_interval_90k(), |next| {
            next.saturating_sub(held.pts_90k)
        });
        // No sample outlasts a part, and no segment outlasts EXT-X-TARGETDURATION.
        // (RFC 8216 §4.3.3.1: EXTINF rounded to the nearest integer is at most the target
        // duration, so a segment stays under it plus half a second.)
        let segment_room = self.open.as_ref().map_or(u64::MAX, |open| {
            self.max_segment_90k()
                .saturating_sub(held.dts_90k - open.start_dts_90k)
        });
        let duration_90k = gap.min(part_target).min(segment_room).max(1);

        if !self.part.samples.is_empty()
            && held.dts_90k + duration_90k - self.part.start_dts_90k > part_target
        {
            self.finish_part(events)?;
        }
        if self.part.samples.is_empty() {
            self.part.start_dts_90k = held.dts_90k;
            self.part.independent = held.is_idr;
        }
        let sample = Sample {
            duration_90k: u32::try_from(duration_90k).unwrap_or(u32::MAX),
            is_sync: held.is_idr,
            data: held.data,
        };
        let number = self.frames_placed;
        self.frames_placed += 1;
        events.push(SegmenterEvent::Frame {
            number,
            // The fragment sequence numbers of /live.mp4 count frames (ISO/IEC 14496-12
            // §8.8.5: increasing in the order the fragments occur), apart from the parts'.
            data: Bytes::from(cmaf::fragment(
                (number as u32).wrapping_add(1),
                held.dts_90k,
                std::slice::from_ref(&sample),
            )?),
            independent: held.is_idr,
        });
        self.part.samples.push(sample);
        self.last_placed_90k = Some((held.pts_90k, held.dts_90k));
        self.end_dts_90k = held.dts_90k + duration_90k;
        // Publish as soon as no further frame can fit, rather than one frame later.
        if self.end_dts_90k - self.part.start_dts_90k + self.settings.frame_interval_90k()
            > part_target
        {
            self.finish_part(events)?;
        }
        Ok(())
    }

    fn open_segment(
        &mut self,
        captured_at: SystemTime,
        dts_90k: u64,
        events: &mut Vec<SegmenterEvent>,
    ) {
        let msn = self.next_msn;
        self.next_msn += 1;
        self.open = Some(OpenSegment {
            msn,
            start_dts_90k: dts_90k,
            parts_done: 0,
        });
        let discontinuity = std::mem::take(&mut self.pending_discontinuity);
        let pdt_us = self.program_date_time_us(captured_at, dts_90k, discontinuity);
        events.push(SegmenterEvent::SegmentStart {
            msn,
            program_date_time_unix_ms: u64::try_from(pdt_us / 1000).unwrap_or_default(),
            discontinuity,
        });
    }

    /// The PROGRAM-DATE-TIME (µs since the epoch) of a segment starting at `dts_90k` with a
    /// frame captured at `captured_at`: the anchor's date moved on by the decode time, unless
    /// that is too far from the capture time or the segment follows a discontinuity.
    fn program_date_time_us(
        &mut self,
        captured_at: SystemTime,
        dts_90k: u64,
        discontinuity: bool,
    ) -> i128 {
        let captured_us = i128::from(unix_micros(captured_at));
        let dts_us = i128::from(dts_90k) * 1_000_000 / i128::from(CLOCK_90K);
        let interval_us =
            i128::from(self.settings.frame_interval_90k()) * 1_000_000 / i128::from(CLOCK_90K);
        if let Some(anchor_us) = self.pdt_anchor_us
            && !discontinuity
        {
            let from_anchor_us = anchor_us + dts_us;
            if (captured_us - from_anchor_us).abs() <= PDT_REANCHOR_INTERVALS * interval_us {
                return from_anchor_us;
            }
        }
        self.pdt_anchor_us = Some(captured_us - dts_us);
        captured_us
    }

    fn finish_part(&mut self, events: &mut Vec<SegmenterEvent>) -> Result<(), SegmenterError> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        if self.part.samples.is_empty() {
            return Ok(());
        }
        let part = std::mem::take(&mut self.part);
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1);
        let data = cmaf::fragment(self.fragment_sequence, part.start_dts_90k, &part.samples)?;
        let duration_90k = part.samples.iter().map(|s| u64::from(s.duration_90k)).sum();
        events.push(SegmenterEvent::Part {
            msn: open.msn,
            index: open.parts_done,
            data: Bytes::from(data),
            duration_90k,
            independent: part.independent,
            frames: part.samples.len() as u32,
        });
        open.parts_done += 1;
        Ok(())
    }

    fn close_segment(&mut self, events: &mut Vec<SegmenterEvent>) -> Result<(), SegmenterError> {
        self.finish_part(events)?;
        if let Some(open) = self.open.take() {
            events.push(SegmenterEvent::SegmentEnd {
                msn: open.msn,
                duration_90k: self.end_dts_90k - open.start_dts_90k,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encode::h264::{H264Encoder, H264Settings, default_bitrate_bps};
    use crate::frame::{Frame, Pixels, from_unix_micros};
    use crate::source::TestPattern;
    use mp4_atom::{Decode, Moof};
    use std::time::Instant;

    const SETTINGS: SegmenterSettings = SegmenterSettings {
        fps: 30,
        frames_per_segment: 30,
        frames_per_part: 10,
    };
    /// 200 ms parts: six frames.
    const SHORT_PARTS: SegmenterSettings = SegmenterSettings {
        fps: 30,
        frames_per_segment: 30,
        frames_per_part: 6,
    };
    /// Capture time of frame 0, unix microseconds.
    pub(crate) const BASE_UNIX_US: u64 = 1_790_000_000_000_000;

    /// Capture time of frame `n` at 30 fps.
    pub(crate) fn captured_at(n: u64) -> SystemTime {
        from_unix_micros(BASE_UNIX_US + n * 1_000_000 / 30)
    }

    /// Frame `n` of a 30 fps capture, numbered and timed as the source supervisor does.
    pub(crate) fn frame(pattern: &mut TestPattern, size: FrameSize, n: u64) -> Frame {
        let mut buf = vec![0; size.i420_len()];
        pattern.render(n + 1, captured_at(n), &mut buf);
        Frame {
            seq: n + 1,
            pts_90k: n * 3000,
            captured_at: captured_at(n),
            size,
            pixels: Pixels::I420(Bytes::from(buf)),
            repeats_previous: false,
        }
    }

    /// Encodes the frames numbered in `frames` (each with its size) as the H.264 thread does,
    /// telling the encoder when the segmenter wants an IDR; frames left out are frames the
    /// encoder never got. Returns each push's outcome.
    pub(crate) fn run_pushes(
        segmenter: &mut Segmenter,
        frames: impl IntoIterator<Item = (u64, FrameSize)>,
    ) -> Vec<PushOutcome> {
        let settings = segmenter.settings();
        let mut encoder = H264Encoder::new(H264Settings {
            fps: settings.fps,
            bitrate_bps: default_bitrate_bps(FrameSize::new(320, 240), 30),
            frames_per_idr: settings.frames_per_segment,
        })
        .unwrap();
        let mut pattern_size = FrameSize::new(320, 240);
        let mut pattern = TestPattern::new(pattern_size, 30);
        let mut outcomes = Vec::new();
        for (n, size) in frames {
            if pattern_size != size {
                pattern = TestPattern::new(size, 30);
                pattern_size = size;
            }
            let frame = frame(&mut pattern, size, n);
            let unit = encoder.encode(&frame).unwrap();
            let outcome = segmenter.push(&unit, frame.pts_90k).unwrap();
            if outcome.need_idr {
                encoder.restart_cadence();
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// [`run_pushes`], its events in one list, and whether each push asked for an IDR.
    fn run(
        segmenter: &mut Segmenter,
        frames: impl IntoIterator<Item = (u64, FrameSize)>,
    ) -> (Vec<SegmenterEvent>, Vec<bool>) {
        let outcomes = run_pushes(segmenter, frames);
        let asked = outcomes.iter().map(|o| o.need_idr).collect();
        (outcomes.into_iter().flat_map(|o| o.events).collect(), asked)
    }

    pub(crate) fn small(frames: impl IntoIterator<Item = u64>) -> Vec<(u64, FrameSize)> {
        frames
            .into_iter()
            .map(|n| (n, FrameSize::new(320, 240)))
            .collect()
    }

    /// What a part's `moof` says: tfdt, then each sample's duration and sync flag.
    pub(crate) fn read_fragment(data: &[u8]) -> (u64, Vec<(u32, bool)>) {
        let moof = Moof::decode(&mut &data[..]).unwrap();
        let traf = &moof.traf[0];
        let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
        let samples = traf.trun[0]
            .samples
            .iter()
            .map(|s| {
                let flags = s.flags.unwrap();
                (s.duration.unwrap(), (flags >> 16) & 1 == 0)
            })
            .collect();
        (tfdt, samples)
    }

    /// A part as the tests see it: tfdt, samples (duration, sync), duration, INDEPENDENT.
    type PartSeen = (u64, Vec<(u32, bool)>, u64, bool);

    #[derive(Debug)]
    struct SegmentSeen {
        msn: u64,
        pdt_unix_ms: u64,
        duration_90k: Option<u64>,
        parts: Vec<PartSeen>,
    }

    /// The events as segments, each with its parts' (tfdt, samples, duration, independent),
    /// checking that event numbering is consecutive.
    fn segments(events: &[SegmenterEvent]) -> Vec<SegmentSeen> {
        let mut out: Vec<SegmentSeen> = Vec::new();
        for event in events {
            match event {
                SegmenterEvent::SegmentStart {
                    msn,
                    program_date_time_unix_ms,
                    ..
                } => out.push(SegmentSeen {
                    msn: *msn,
                    pdt_unix_ms: *program_date_time_unix_ms,
                    duration_90k: None,
                    parts: Vec::new(),
                }),
                SegmenterEvent::Part {
                    msn,
                    index,
                    data,
                    duration_90k,
                    independent,
                    frames,
                } => {
                    let open = out.last_mut().unwrap();
                    assert_eq!((open.msn, open.parts.len()), (*msn, *index as usize));
                    let (tfdt, samples) = read_fragment(data);
                    assert_eq!(samples.len(), *frames as usize);
                    open.parts
                        .push((tfdt, samples, *duration_90k, *independent));
                }
                SegmenterEvent::SegmentEnd { msn, duration_90k } => {
                    let open = out.last_mut().unwrap();
                    assert_eq!(open.msn, *msn);
                    open.duration_90k = Some(*duration_90k);
                }
                SegmenterEvent::Init { .. } | SegmenterEvent::Frame { .. } => {}
            }
        }
        out
    }

    /// Checks the timeline against the capture clock: every sample starts at its frame's
    /// capture time and lasts until the next frame encoded; parts are continuous and within
    /// PART-TARGET; segments start with an IDR, carry their first frame's capture time as
    /// PROGRAM-DATE-TIME and last as long as their parts. Returns the samples' start times.
    fn check_timeline(
        settings: SegmenterSettings,
        events: &[SegmenterEvent],
        pdt_follows_tfdt: bool,
    ) -> Vec<u64> {
        let mut starts = Vec::new();
        let mut expected_tfdt = 0u64;
        for segment in segments(events) {
            let Some(first_part) = segment.parts.first() else {
                continue;
            };
            let first_tfdt = first_part.0;
            assert!(
                !pdt_follows_tfdt
                    || segment.pdt_unix_ms
                        == (BASE_UNIX_US + first_tfdt * 1_000_000 / CLOCK_90K) / 1000,
                "segment {}: PROGRAM-DATE-TIME is its first frame's capture time",
                segment.msn
            );
            let mut parts_sum = 0;
            for (index, (tfdt, samples, duration, independent)) in segment.parts.iter().enumerate()
            {
                assert_eq!(*tfdt, expected_tfdt, "segment {} part {index}", segment.msn);
                let sum: u64 = samples.iter().map(|(d, _)| u64::from(*d)).sum();
                assert_eq!(sum, *duration, "part duration = its samples");
                assert!(*duration <= settings.part_target_90k(), "{duration}");
                assert_eq!(*independent, samples[0].1);
                if index == 0 {
                    assert!(samples[0].1, "segment {} starts with an IDR", segment.msn);
                }
                let mut at = *tfdt;
                for (d, _) in samples {
                    assert!(*d > 0);
                    starts.push(at);
                    at += u64::from(*d);
                }
                expected_tfdt = at;
                parts_sum += duration;
            }
            if let Some(duration) = segment.duration_90k {
                assert_eq!(duration, parts_sum, "EXTINF = its parts");
                let rounded_s = (duration + CLOCK_90K / 2) / CLOCK_90K;
                assert!(rounded_s <= settings.target_duration_s());
            }
        }
        starts
    }

    #[test]
    fn cuts_segments_at_idrs_and_parts_by_frame_count() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let (events, asked) = run(&mut segmenter, small(0..95));
        // The IDR is asked for on the last frame of each segment, for the one after it.
        let asked_at: Vec<_> = (0..95).filter(|&n| asked[n as usize]).collect();
        assert_eq!(asked_at, vec![29, 59, 89]);
        assert!(matches!(events[0], SegmenterEvent::Init { .. }));
        let seen = segments(&events);
        assert_eq!(seen.len(), 4, "three complete segments and an open one");
        for segment in &seen[..3] {
            assert_eq!(segment.duration_90k, Some(90_000));
            assert_eq!(segment.parts.len(), 3);
            for (index, part) in segment.parts.iter().enumerate() {
                assert_eq!(part.2, 30_000);
                assert_eq!(part.1.len(), 10);
                assert_eq!(part.3, index == 0);
            }
        }
        let starts = check_timeline(SETTINGS, &events, true);
        assert_eq!(starts, (0..90).map(|n| n * 3000).collect::<Vec<_>>());
    }

    #[test]
    fn every_frame_is_also_a_fragment_of_its_own_once_its_duration_is_known() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let (events, _) = run(&mut segmenter, small(0..35));
        let frames: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SegmenterEvent::Frame {
                    number,
                    data,
                    independent,
                } => Some((*number, data.clone(), *independent)),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 34, "the newest frame waits for its successor");
        for (i, (number, data, independent)) in frames.iter().enumerate() {
            assert_eq!(*number, i as u64);
            assert_eq!(*independent, i % 30 == 0, "frame {i}: IDRs open segments");
            let (tfdt, samples) = read_fragment(data);
            assert_eq!(tfdt, i as u64 * 3000, "the frame's decode time in its part");
            assert_eq!(samples, vec![(3000, i % 30 == 0)], "one sample");
        }
    }

    #[test]
    fn a_part_is_published_with_its_last_frame_known_to_be_last() {
        let mut segmenter = Segmenter::new(SHORT_PARTS);
        let (events, _) = run(&mut segmenter, small(0..6));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, SegmenterEvent::Part { .. })),
            "the sixth frame's duration is not known yet"
        );
        let (events, _) = run(&mut segmenter, small(6..7));
        let events: Vec<_> = events
            .into_iter()
            .filter(|e| !matches!(e, SegmenterEvent::Frame { .. }))
            .collect();
        assert!(matches!(
            events[..],
            [SegmenterEvent::Part {
                msn: 0,
                index: 0,
                duration_90k: 18_000,
                frames: 6,
                ..
            }]
        ));
    }

    #[test]
    fn lost_frames_lengthen_the_frame_before_them_and_keep_the_capture_clock() {
        // Frames the encoder never got: single ones, a pair, one at a part boundary, the
        // frame before a segment boundary, and three in a row.
        let lost = [7, 20, 21, 35, 59, 75, 76, 77, 118, 119];
        let kept: Vec<u64> = (0..181).filter(|n| !lost.contains(n)).collect();
        let mut segmenter = Segmenter::new(SHORT_PARTS);
        let (events, _) = run(&mut segmenter, small(kept.iter().copied()));
        let starts = check_timeline(SHORT_PARTS, &events, true);
        // Every sample starts at its frame's capture time: nothing was shortened.
        let want: Vec<u64> = kept.iter().map(|n| n * 3000).take(starts.len()).collect();
        assert_eq!(starts, want);
        let seen = segments(&events);
        assert!(seen.len() >= 5, "{}", seen.len());
        // Segment starts follow the capture clock too: 1 s after the previous one, or one frame
        // later where the segment's last frame was lost (59): the encoder is asked for the
        // IDR when the last frame arrives, so here the IDR came a frame late. Where the first
        // frame's predecessors were lost (118, 119) the IDR is still on time.
        let pdt: Vec<u64> = seen.iter().map(|s| s.pdt_unix_ms).collect();
        let base_ms = BASE_UNIX_US / 1000;
        assert_eq!(
            pdt,
            vec![
                base_ms,
                base_ms + 1000,
                base_ms + 2033,
                base_ms + 3033,
                base_ms + 4033,
                base_ms + 5033,
            ]
        );
        // EXTINF + PDT agree: each complete segment lasts until the next one's capture time.
        for pair in seen.windows(2) {
            let extinf_ms = pair[0].duration_90k.unwrap() / 90;
            assert_eq!(pair[0].pdt_unix_ms + extinf_ms, pair[1].pdt_unix_ms);
        }
    }

    /// The one rule a lost frame can bend: when the frame after a part's last one is lost, that
    /// last frame lasts two intervals and no longer fits, so it starts the next part and the
    /// part before ends one frame short (5/6 of PART-TARGET, under the 85 % floor). Keeping the
    /// floor would need a hole in tfdt, a shortened timeline or a part over PART-TARGET.
    #[test]
    fn a_frame_lost_at_a_part_boundary_makes_one_short_part() {
        let kept: Vec<u64> = (0..40).filter(|&n| n != 12).collect();
        let mut segmenter = Segmenter::new(SHORT_PARTS);
        let (events, _) = run(&mut segmenter, small(kept));
        let starts = check_timeline(SHORT_PARTS, &events, true);
        assert!(starts.iter().all(|&at| at != 12 * 3000));
        let durations: Vec<u64> = segments(&events)[0]
            .parts
            .iter()
            .map(|part| part.2)
            .collect();
        // The parts after it are shifted by a frame until the segment ends on time (frame 30),
        // with a short last part, which the rules allow.
        assert_eq!(
            durations,
            vec![18_000, 15_000, 18_000, 18_000, 18_000, 3_000]
        );
    }

    #[test]
    fn a_stall_longer_than_a_part_is_cut_to_the_part_target() {
        // The encoder got nothing for 20 frames (667 ms).
        let kept: Vec<u64> = (0..10).chain(30..75).collect();
        let mut segmenter = Segmenter::new(SHORT_PARTS);
        let (events, _) = run(&mut segmenter, small(kept));
        check_timeline(SHORT_PARTS, &events, false);
        let seen = segments(&events);
        // Frame 9 lasts one whole part; the segment after the stall still carries its real
        // capture time.
        let frame_9 = &seen[0].parts[2].1;
        assert_eq!(frame_9.len(), 1);
        assert_eq!(frame_9[0].0, 18_000);
        assert_eq!(seen[1].pdt_unix_ms, (BASE_UNIX_US + 45_000_000 / 30) / 1000);
    }

    /// Frames `0..count` on the 30 fps grid, each captured `offset_us(n)` away from its slot,
    /// encoded as the H.264 thread does.
    fn run_with_capture_offsets(
        segmenter: &mut Segmenter,
        count: u64,
        offset_us: impl Fn(u64) -> i64,
    ) -> Vec<SegmenterEvent> {
        let size = FrameSize::new(320, 240);
        let settings = segmenter.settings();
        let mut encoder = H264Encoder::new(H264Settings {
            fps: settings.fps,
            bitrate_bps: default_bitrate_bps(size, 30),
            frames_per_idr: settings.frames_per_segment,
        })
        .unwrap();
        let mut pattern = TestPattern::new(size, 30);
        let mut events = Vec::new();
        for n in 0..count {
            let mut unit = encoder.encode(&frame(&mut pattern, size, n)).unwrap();
            let slot_us = unix_micros(captured_at(n));
            unit.captured_at = from_unix_micros(slot_us.saturating_add_signed(offset_us(n)));
            let outcome = segmenter.push(&unit, n * 3000).unwrap();
            if outcome.need_idr {
                encoder.restart_cadence();
            }
            events.extend(outcome.events);
        }
        events
    }

    #[test]
    fn program_date_time_moves_with_the_decode_time_whatever_the_capture_jitter() {
        // Capture times up to a frame and a half early and a frame late for their slots, as
        // the capture clock allows; the first segment's first frame is 45 ms early.
        let jitter_us = [-45_000, 33_000, 0, 20_000, -50_000, 10_000, 30_000];
        let offset = |n: u64| jitter_us[(n % 7) as usize];
        let mut segmenter = Segmenter::new(SETTINGS);
        let events = run_with_capture_offsets(&mut segmenter, 185, offset);
        let seen = segments(&events);
        assert!(seen.len() >= 6, "{}", seen.len());
        for pair in seen.windows(2) {
            let extinf_ms = pair[0].duration_90k.unwrap() / 90;
            assert_eq!(
                pair[0].pdt_unix_ms + extinf_ms,
                pair[1].pdt_unix_ms,
                "segment {}: its date and EXTINF reach the next date",
                pair[0].msn
            );
        }
        for segment in &seen {
            let Some(first_part) = segment.parts.first() else {
                continue;
            };
            let first_frame = first_part.0 / 3000;
            let captured_ms =
                (unix_micros(captured_at(first_frame)) as i64 + offset(first_frame)) / 1000;
            let off_ms = (segment.pdt_unix_ms as i64 - captured_ms).abs();
            assert!(
                off_ms <= 84,
                "segment {}: date {off_ms} ms from its capture time",
                segment.msn
            );
        }
        assert_eq!(seen[0].pdt_unix_ms, (BASE_UNIX_US - 45_000) / 1000);
    }

    #[test]
    fn a_wall_clock_step_gives_the_next_segment_its_own_capture_time() {
        // From frame 50 on, capture times are 10 s later (the wall clock was set).
        let step = |n: u64| if n >= 50 { 10_000_000 } else { 0 };
        let mut segmenter = Segmenter::new(SETTINGS);
        let events = run_with_capture_offsets(&mut segmenter, 125, step);
        let pdt: Vec<u64> = segments(&events).iter().map(|s| s.pdt_unix_ms).collect();
        let base_ms = BASE_UNIX_US / 1000;
        assert_eq!(
            pdt,
            vec![
                base_ms,
                base_ms + 1_000,
                base_ms + 12_000,
                base_ms + 13_000,
                base_ms + 14_000
            ]
        );
    }

    #[test]
    fn an_uneven_rate_keeps_the_timeline_continuous() {
        let settings = SegmenterSettings {
            fps: 7,
            frames_per_segment: 7,
            frames_per_part: 2,
        };
        assert_eq!(settings.parts_per_segment(), 4);
        let total: u64 = (0..700).map(|n| settings.span_90k(n, n + 1)).sum();
        assert_eq!(total, settings.dts_90k(700));
        assert_eq!(settings.dts_90k(7), 90_000);
        assert!((0..700).all(|n| settings.span_90k(n, n + 1) > 0));
        // Two frames last at most PART-TARGET, whatever their rounding.
        assert!((0..700).all(|n| settings.span_90k(n, n + 2) <= settings.part_target_90k()));
        assert_eq!(settings.target_duration_s(), 1);
    }

    #[test]
    fn an_interruption_ends_the_segment_and_the_next_follows_the_capture_clock() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let (mut events, _) = run(&mut segmenter, small(0..45));
        let ended = segmenter.interrupt().unwrap();
        // Frame 44 was held: it goes with the nominal duration, and segment 1 ends after it.
        assert!(matches!(
            ended[..],
            [
                SegmenterEvent::Frame { number: 44, .. },
                SegmenterEvent::Part {
                    msn: 1,
                    index: 1,
                    frames: 5,
                    ..
                },
                SegmenterEvent::SegmentEnd {
                    msn: 1,
                    duration_90k: 45_000
                },
            ]
        ));
        assert!(segmenter.interrupt().unwrap().is_empty(), "nothing more");
        // Ten seconds later the encoder runs again (a new one: its first frame is an IDR).
        let (resumed, _) = run(&mut segmenter, small(345..420));
        let starts: Vec<_> = resumed
            .iter()
            .filter_map(|e| match e {
                SegmenterEvent::SegmentStart {
                    msn,
                    program_date_time_unix_ms,
                    discontinuity,
                } => Some((*msn, *program_date_time_unix_ms, *discontinuity)),
                _ => None,
            })
            .collect();
        let base_ms = BASE_UNIX_US / 1000;
        assert_eq!(
            starts,
            vec![
                (2, base_ms + 11_500, true),
                (3, base_ms + 12_500, false),
                (4, base_ms + 13_500, false)
            ],
            "the next numbers, a discontinuity once, PROGRAM-DATE-TIME the capture time"
        );
        assert!(
            !resumed
                .iter()
                .any(|e| matches!(e, SegmenterEvent::Init { .. })),
            "the same format needs no new init section"
        );
        let seen = segments(&resumed);
        // tfdt moved on by the capture time that passed: frame 345 is 301 frames after 44.
        assert_eq!(seen[0].parts[0].0, 345 * 3000);
        assert!(seen[0].parts[0].3, "independent");
        events.extend(ended);
        let before = segments(&events);
        let last_end = before.last().unwrap().parts.last().unwrap();
        assert!(
            last_end.0 + last_end.2 <= seen[0].parts[0].0,
            "tfdt never goes back"
        );
        // Frames for /live.mp4 keep counting.
        let first_frame = resumed.iter().find_map(|e| match e {
            SegmenterEvent::Frame { number, .. } => Some(*number),
            _ => None,
        });
        assert_eq!(first_frame, Some(45));
    }

    #[test]
    fn waits_for_an_idr_before_the_first_segment() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 30,
            bitrate_bps: 200_000,
            frames_per_idr: 30,
        })
        .unwrap();
        let size = FrameSize::new(320, 240);
        let mut pattern = TestPattern::new(size, 30);
        let units: Vec<_> = (0..2)
            .map(|n| encoder.encode(&frame(&mut pattern, size, n)).unwrap())
            .collect();
        // The first unit (the IDR) is lost: the rest cannot start a segment.
        let outcome = segmenter.push(&units[1], 3000).unwrap();
        assert!(outcome.need_idr);
        assert!(outcome.events.is_empty());
    }

    #[test]
    fn a_new_picture_size_gives_a_new_init_and_a_discontinuity() {
        let mut segmenter = Segmenter::new(SETTINGS);
        let frames = small(0..15)
            .into_iter()
            .chain((15..20).map(|n| (n, FrameSize::new(640, 360))));
        let (events, _) = run(&mut segmenter, frames);
        let inits = events
            .iter()
            .filter(|e| matches!(e, SegmenterEvent::Init { .. }))
            .count();
        assert_eq!(inits, 2);
        assert!(events.iter().any(|e| matches!(
            e,
            SegmenterEvent::SegmentEnd {
                msn: 0,
                duration_90k: 45_000
            }
        )));
        assert!(events.iter().any(|e| matches!(
            e,
            SegmenterEvent::SegmentStart {
                msn: 1,
                discontinuity: true,
                ..
            }
        )));
    }
    /// A source's H.264, replayed: one IDR (with SPS and PPS) and one P access unit of a
    /// small picture, encoded once. The segmenter never decodes, so repeating them is a valid
    /// stream for it.
    pub(crate) fn source_units() -> (Vec<u8>, Vec<u8>) {
        let size = FrameSize::MIN;
        let mut encoder = H264Encoder::new(H264Settings {
            fps: 25,
            bitrate_bps: 100_000,
            frames_per_idr: 1000,
        })
        .unwrap();
        let mut pattern = TestPattern::new(size, 25);
        let idr = encoder.encode(&frame(&mut pattern, size, 0)).unwrap();
        let p = encoder.encode(&frame(&mut pattern, size, 1)).unwrap();
        assert!(idr.is_idr && !p.is_idr);
        (idr.annex_b, p.annex_b)
    }

    /// A camera at `fps` with an IDR at each frame number `is_idr` says.
    struct Camera {
        fps: u64,
        idr: Vec<u8>,
        p: Vec<u8>,
    }

    impl Camera {
        fn new(fps: u64) -> Self {
            let (idr, p) = source_units();
            Self { fps, idr, p }
        }

        fn captured_us(&self, n: u64) -> u64 {
            BASE_UNIX_US + n * 1_000_000 / self.fps
        }

        /// Frame `n`: its capture time (µs), presentation time and bytes.
        fn frame(&self, n: u64, is_idr: bool) -> (u64, u64, &[u8]) {
            let pts_90k = n * CLOCK_90K / self.fps;
            let bytes = if is_idr { &self.idr } else { &self.p };
            (self.captured_us(n), pts_90k, bytes)
        }
    }

    /// What pushing a camera's frames through the learner and segmenter into a window made.
    struct SourceRun {
        timing: crate::hls::store::HlsTiming,
        events: Vec<SegmenterEvent>,
        playlists: Vec<crate::media::playlist::MediaPlaylist>,
        dropped: Vec<u64>,
        long_gop_cuts: usize,
    }

    /// Learns the key-frame interval from the first GOP, as the H.264 thread does, then
    /// segments every frame into a live window, checking the playlist's rules after each
    /// frame once it lists a segment, and each playlist against the one before.
    fn run_source(camera: &Camera, frames: &[(u64, bool)], segment_s: f64) -> SourceRun {
        use crate::hls::passthrough::{KeyFrameLearner, Learning, passthrough_timing};
        use crate::hls::window::LiveWindow;
        use crate::media::playlist::{check_invariants, check_update};
        let mut learner = KeyFrameLearner::default();
        let mut rest = frames.iter();
        let (timing, key_frame_interval_90k, held) = loop {
            let &(n, is_idr) = rest.next().expect("learned");
            if let Learning::Learned { timing, frames } =
                learner.push(n, is_idr, camera.captured_us(n))
            {
                let derived = passthrough_timing(timing, segment_s, 0.2, 6);
                break (derived, timing.key_frame_interval_90k, frames);
            }
        };
        let idrs: Vec<u64> = frames.iter().filter(|f| f.1).map(|f| f.0).collect();
        let mut segmenter = Segmenter::for_source_idrs(timing.segmenter, key_frame_interval_90k);
        let mut window = LiveWindow::new(timing);
        let mut run = SourceRun {
            timing,
            events: Vec::new(),
            playlists: Vec::new(),
            dropped: Vec::new(),
            long_gop_cuts: 0,
        };
        let now = Instant::now();
        let order = held
            .into_iter()
            .chain(rest.map(|f| f.0))
            .collect::<Vec<_>>();
        for n in order {
            let (captured_us, pts_90k, bytes) = camera.frame(n, idrs.contains(&n));
            let info = UnitInfo {
                seq: n + 1,
                captured_at: from_unix_micros(captured_us),
                size: FrameSize::MIN,
            };
            let outcome = segmenter.push_annex_b(&info, bytes, pts_90k).unwrap();
            if outcome.dropped {
                run.dropped.push(n);
            }
            run.long_gop_cuts += usize::from(outcome.cut_long_gop);
            window.apply(outcome.events.clone(), now);
            run.events.extend(outcome.events);
            if window.has_complete_segment() {
                let playlist = window.playlist();
                check_invariants(&playlist).unwrap_or_else(|e| panic!("frame {n}: {e}"));
                if let Some(previous) = run.playlists.last() {
                    check_update(previous, &playlist).unwrap_or_else(|e| panic!("frame {n}: {e}"));
                }
                run.playlists.push(playlist);
            }
        }
        run
    }

    /// Every part is INDEPENDENT exactly when its first sample is an IDR, and every sample
    /// marked as a sync sample is one of the camera's IDRs.
    fn assert_independent_only_on_idrs(events: &[SegmenterEvent]) {
        for segment in segments(events) {
            for (index, (_, samples, _, independent)) in segment.parts.iter().enumerate() {
                assert_eq!(*independent, samples[0].1, "{} part {index}", segment.msn);
            }
            assert!(
                segment.parts.first().is_none_or(|p| p.3),
                "starts with an IDR"
            );
        }
    }

    #[test]
    fn source_idrs_cut_segments_for_intervals_from_half_a_second_to_ten() {
        // (fps, frames per GOP, configured segment length) → segment frames, TARGETDURATION
        let cases = [
            (25, 12, 1.0, 24, 1),
            (30, 15, 1.0, 30, 1),
            (25, 50, 1.0, 50, 2),
            (25, 50, 4.0, 100, 4),
            (25, 250, 1.0, 250, 10),
        ];
        for (fps, gop, segment_s, segment_frames, target_s) in cases {
            let camera = Camera::new(fps);
            // Joined mid-GOP, then nine segments' worth.
            let frames: Vec<(u64, bool)> = (gop / 2..gop / 2 + 9 * segment_frames)
                .map(|n: u64| (n, n.is_multiple_of(gop)))
                .collect();
            let run = run_source(&camera, &frames, segment_s);
            let case = format!("{fps} fps, GOP {gop}");
            assert_eq!(
                run.timing.segmenter.frames_per_segment, segment_frames as u32,
                "{case}"
            );
            assert_eq!(run.timing.target_duration_s, target_s, "{case}");
            assert_eq!(run.long_gop_cuts, 0, "{case}");
            assert_eq!(run.dropped, Vec::<u64>::new(), "{case}");
            let seen = segments(&run.events);
            assert!(seen.len() >= 7, "{case}: {} segments", seen.len());
            for segment in seen.iter().filter(|s| s.duration_90k.is_some()) {
                assert_eq!(
                    segment.duration_90k,
                    Some(segment_frames * CLOCK_90K / fps),
                    "{case}: segment {} is its GOPs",
                    segment.msn
                );
                for part in &segment.parts {
                    assert!(part.2 <= run.timing.part_target_90k(), "{case}");
                }
            }
            assert_independent_only_on_idrs(&run.events);
            let last = run.playlists.last().unwrap();
            assert_eq!(last.segments.len(), 6, "{case}");
            assert!(last.independent_segments);
        }
    }

    #[test]
    fn a_gop_longer_than_the_segment_is_cut_and_the_rest_dropped_until_the_next_idr() {
        let camera = Camera::new(25);
        // A 2 s GOP learned, then one GOP of 5 s, then 2 s again.
        let mut idrs = vec![0, 50, 100, 150, 275];
        idrs.extend((1..8).map(|k| 275 + 50 * k));
        let frames: Vec<(u64, bool)> = (0..640).map(|n| (n, idrs.contains(&n))).collect();
        let run = run_source(&camera, &frames, 1.0);
        assert_eq!(run.timing.target_duration_s, 2);
        assert_eq!(run.long_gop_cuts, 1);
        // The segment from frame 150 ends before it would round above 2 s: at 2.48 s, frame
        // 212 being its last; 213 to 274 are dropped.
        assert_eq!(run.dropped, (212..275).collect::<Vec<u64>>());
        let seen = segments(&run.events);
        let cut = seen.iter().find(|s| s.msn == 3).unwrap();
        assert_eq!(cut.duration_90k, Some(62 * 3600));
        let after = &seen[4];
        assert_eq!(
            after.pdt_unix_ms,
            camera.captured_us(275) / 1000,
            "PROGRAM-DATE-TIME is the IDR's capture time"
        );
        assert!(
            run.events.iter().any(|e| matches!(
                e,
                SegmenterEvent::SegmentStart {
                    msn: 4,
                    discontinuity: true,
                    ..
                }
            )),
            "the dropped frames leave a hole: a discontinuity"
        );
        assert_eq!(
            after.parts[0].0,
            275 * 3600,
            "decode time follows the capture clock"
        );
        assert_independent_only_on_idrs(&run.events);
    }
}
