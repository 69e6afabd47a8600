//! HLS timing for H.264 that a source made (a camera, `pipe:h264`): its key-frame interval
//! decides the segment length, and nobody can ask it for an IDR.
//!
//! The interval is only known after two IDRs, and EXT-X-TARGETDURATION and PART-TARGET may
//! never change once a playlist is out (rfc8216bis §6.2.1), so nothing is published until the
//! first GOP has been seen: [`KeyFrameLearner`] holds it (at most [`MAX_LEARN_90K`] of
//! frames), measures the interval and the frame spacing, and hands the held frames back to be
//! segmented with the timing [`passthrough_timing`] derives from them:
//!
//! - a segment is a whole number of key-frame intervals, as many as fit in the configured
//!   segment length (at least one), so every segment starts at one of the camera's IDRs;
//! - EXT-X-TARGETDURATION is that length rounded up to whole seconds;
//! - PART-TARGET is the configured part length in whole frames at the measured rate: parts
//!   are cut by time, as for encoded video, so LL-HLS latency does not depend on the camera.
//!
//! A key-frame interval longer than [`MAX_LEARN_90K`] is taken as that long: its GOPs are
//! longer than a segment may be, and each is cut at the target duration (see
//! [`crate::hls::segmenter`]).
//!
//! Pure: times come in as values.

use crate::frame::CLOCK_90K;
use crate::hls::segmenter::SegmenterSettings;
use crate::hls::store::HlsTiming;

/// The longest first GOP held while learning, and so the longest key-frame interval
/// segments follow: 10 s, on the 90 kHz clock.
pub const MAX_LEARN_90K: u64 = 10 * CLOCK_90K;

/// The highest frame rate believed from measured spacing; anything faster is a burst.
const MAX_FPS: u32 = 240;
/// The most frames held while learning, whatever their capture times say (a clock that
/// stands still must not hold frames without end): 10 s at [`MAX_FPS`].
const MAX_LEARN_FRAMES: usize = 10 * MAX_FPS as usize;

/// What was learned from the first GOP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFrameTiming {
    /// From one IDR to the next, on the 90 kHz clock (at most [`MAX_LEARN_90K`]).
    pub key_frame_interval_90k: u64,
    /// Frames from one IDR to the next (the frames held, for an interval cut at the limit).
    pub frames_per_key_frame: u32,
    /// The nominal frame rate, from the measured spacing, rounded to whole frames a second.
    pub fps: u32,
}

impl KeyFrameTiming {
    pub fn key_frame_interval_s(&self) -> f64 {
        self.key_frame_interval_90k as f64 / CLOCK_90K as f64
    }
}

/// What [`KeyFrameLearner::push`] did with a frame.
#[derive(Debug, PartialEq)]
pub enum Learning<T> {
    /// Not an IDR, and no IDR came yet: nothing can decode it.
    Dropped(T),
    /// Held until the interval is known.
    Held,
    /// The interval is known: the frames held, oldest first, this one last.
    Learned {
        timing: KeyFrameTiming,
        frames: Vec<T>,
    },
}

/// Holds the first GOP until the next IDR (or until it spans [`MAX_LEARN_90K`], or holds
/// [`MAX_LEARN_FRAMES`]).
#[derive(Debug)]
pub struct KeyFrameLearner<T> {
    /// The frames held with their capture times (µs), from the first IDR on.
    held: Vec<(u64, T)>,
    /// The frame rate the stream's SPS says (VUI timing), if it says one.
    stream_fps: Option<f64>,
}

impl<T> Default for KeyFrameLearner<T> {
    fn default() -> Self {
        Self {
            held: Vec::new(),
            stream_fps: None,
        }
    }
}

impl<T> KeyFrameLearner<T> {
    /// Frames held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The frame rate the stream's SPS says (VUI timing): the nominal rate where the
    /// measured one agrees, since arrival times carry the writer's and the network's jitter.
    pub fn stream_rate(&mut self, fps: f64) {
        self.stream_fps = Some(fps);
    }

    /// Forgets what is held (a frame was lost, or the source went away): learning starts
    /// again at the next IDR.
    pub fn restart(&mut self) {
        self.held.clear();
    }

    /// Takes the next frame, captured at `captured_us` (µs on any clock that does not go
    /// back).
    pub fn push(&mut self, frame: T, is_idr: bool, captured_us: u64) -> Learning<T> {
        let Some(&(first_us, _)) = self.held.first() else {
            if !is_idr {
                return Learning::Dropped(frame);
            }
            self.held.push((captured_us, frame));
            return Learning::Held;
        };
        let span_90k = captured_us.saturating_sub(first_us) * CLOCK_90K / 1_000_000;
        if is_idr || span_90k >= MAX_LEARN_90K || self.held.len() >= MAX_LEARN_FRAMES {
            // For an IDR the held frames are one GOP; at the limit, the GOP is at least that.
            let frames_per_key_frame = self.held.len() as u32;
            let mut times: Vec<u64> = self.held.iter().map(|&(at, _)| at).collect();
            if is_idr {
                times.push(captured_us);
            }
            let fps = nominal_fps(self.stream_fps, measured_fps(&times));
            // The GOP in frames at that rate: arrival times are bunched where a writer starts
            // or a network stalls, frame counts are not. Cut short by a limit: at least the
            // longest interval learned.
            let interval_90k = if is_idr {
                u64::from(frames_per_key_frame) * CLOCK_90K / u64::from(fps)
            } else {
                MAX_LEARN_90K
            };
            let timing = KeyFrameTiming {
                key_frame_interval_90k: interval_90k
                    .clamp(CLOCK_90K / u64::from(fps), MAX_LEARN_90K),
                frames_per_key_frame,
                fps,
            };
            let mut frames: Vec<T> = self.held.drain(..).map(|(_, f)| f).collect();
            frames.push(frame);
            return Learning::Learned { timing, frames };
        }
        self.held.push((captured_us, frame));
        Learning::Held
    }
}

/// Frames a second from capture times (µs, in order): the mean over them, rounded, 1 to
/// [`MAX_FPS`].
fn measured_fps(times_us: &[u64]) -> u32 {
    let (Some(first), Some(last)) = (times_us.first(), times_us.last()) else {
        return 1;
    };
    let span_us = last.saturating_sub(*first);
    let intervals = times_us.len().saturating_sub(1) as u64;
    if span_us == 0 {
        return if intervals == 0 { 1 } else { MAX_FPS };
    }
    let fps = (intervals * 1_000_000 + span_us / 2) / span_us;
    (fps as u32).clamp(1, MAX_FPS)
}

/// The rate the stream says (SPS VUI timing) where it agrees with the measured one to within
/// a third (some cameras write nonsense there), else the measured one.
fn nominal_fps(stream_fps: Option<f64>, measured: u32) -> u32 {
    let measured_f = f64::from(measured);
    match stream_fps {
        Some(fps) if fps >= measured_f * 0.75 && fps <= measured_f * 4.0 / 3.0 => {
            (fps.round() as u32).clamp(1, MAX_FPS)
        }
        _ => measured,
    }
}

/// The HLS timing for a source's H.264 with `learned` key frames: see the module doc.
pub fn passthrough_timing(
    learned: KeyFrameTiming,
    segment_seconds: f64,
    part_seconds: f64,
    window_segments: usize,
) -> HlsTiming {
    let fps = learned.fps.max(1);
    // The GOP in whole frames at the nominal rate, from its measured length.
    let gop_frames =
        ((learned.key_frame_interval_90k * u64::from(fps) + CLOCK_90K / 2) / CLOCK_90K).max(1);
    let configured_90k = (segment_seconds.max(0.0) * CLOCK_90K as f64) as u64;
    // As many GOPs as fit in the configured length (1 % slack for measuring), at least one.
    let gops = ((configured_90k + configured_90k / 100) / learned.key_frame_interval_90k).max(1);
    // Never more than the longest interval learned, whatever the measurements said.
    let max_frames = MAX_LEARN_90K * u64::from(fps) / CLOCK_90K;
    let frames_per_segment = u32::try_from((gops * gop_frames).min(max_frames)).unwrap_or(1);
    let frames_per_part =
        ((part_seconds * f64::from(fps)).round() as u32).clamp(1, frames_per_segment);
    HlsTiming::new(
        SegmenterSettings {
            fps,
            frames_per_segment,
            frames_per_part,
        },
        window_segments,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds frames at `fps` with an IDR every `gop` frames, starting `offset` frames into a
    /// GOP; returns what was learned and how many frames came back.
    fn learn(fps: u64, gop: u64, offset: u64) -> (KeyFrameTiming, usize, u64) {
        let mut learner = KeyFrameLearner::default();
        let mut dropped = 0;
        for n in offset..offset + 20 * gop + 1000 {
            let at_us = 5_000_000 + n * 1_000_000 / fps;
            match learner.push(n, n.is_multiple_of(gop), at_us) {
                Learning::Dropped(_) => dropped += 1,
                Learning::Held => {}
                Learning::Learned { timing, frames } => {
                    assert_eq!(frames[0] % gop, 0, "from the first IDR on");
                    return (timing, frames.len(), dropped);
                }
            }
        }
        panic!("never learned");
    }

    #[test]
    fn learns_the_interval_and_rate_from_the_first_gop() {
        let (timing, frames, dropped) = learn(25, 50, 7);
        assert_eq!(dropped, 43, "frames before the first IDR");
        assert_eq!(frames, 51, "one GOP and the next IDR");
        assert_eq!(
            timing,
            KeyFrameTiming {
                key_frame_interval_90k: 180_000,
                frames_per_key_frame: 50,
                fps: 25
            }
        );
        let (timing, _, _) = learn(25, 12, 0);
        assert_eq!(timing.key_frame_interval_90k, 43_200);
        assert_eq!(timing.fps, 25);
    }

    #[test]
    fn a_burst_at_the_start_does_not_shorten_the_interval_with_the_stream_s_rate() {
        let mut learner = KeyFrameLearner::default();
        learner.stream_rate(30.0);
        // A 2 s GOP at 30 fps whose first 8 frames arrived at once.
        for n in 0..61u64 {
            let at_us = 1_000_000 + n.max(8) * 33_333;
            match learner.push(n, n.is_multiple_of(60), at_us) {
                Learning::Learned { timing, .. } => {
                    assert_eq!(n, 60);
                    assert_eq!(timing.fps, 30);
                    assert_eq!(timing.key_frame_interval_90k, 180_000);
                    return;
                }
                Learning::Held => {}
                Learning::Dropped(_) => panic!("frame {n} dropped"),
            }
        }
        panic!("never learned");
    }

    #[test]
    fn the_stream_s_rate_is_taken_only_where_the_measured_one_agrees() {
        assert_eq!(nominal_fps(Some(29.97), 31), 30);
        assert_eq!(nominal_fps(Some(25.0), 26), 25);
        assert_eq!(nominal_fps(Some(90_000.0), 25), 25, "nonsense");
        assert_eq!(nominal_fps(Some(12.5), 25), 25);
        assert_eq!(nominal_fps(None, 24), 24);
        assert_eq!(measured_fps(&[0, 40_000, 80_000, 120_000]), 25);
    }

    #[test]
    fn a_gop_longer_than_the_limit_is_taken_as_the_limit() {
        let (timing, frames, _) = learn(25, 400, 0);
        assert_eq!(timing.key_frame_interval_90k, MAX_LEARN_90K);
        assert_eq!(timing.fps, 25);
        assert_eq!(frames, 251, "10 s of frames, then the one that reached it");
    }

    #[test]
    fn a_clock_that_stands_still_holds_a_bounded_number_of_frames() {
        let mut learner = KeyFrameLearner::default();
        let mut held = 0;
        for n in 0..MAX_LEARN_FRAMES as u64 + 10 {
            match learner.push(n, n == 0, 1_000_000) {
                Learning::Held => held += 1,
                Learning::Learned { frames, timing } => {
                    assert_eq!(frames.len(), MAX_LEARN_FRAMES + 1);
                    assert_eq!(held, MAX_LEARN_FRAMES);
                    let derived = passthrough_timing(timing, 1.0, 0.2, 6);
                    assert!(derived.target_duration_s <= 10, "{derived:?}");
                    return;
                }
                Learning::Dropped(_) => panic!("frame {n} dropped"),
            }
        }
        panic!("held without end");
    }

    #[test]
    fn the_segment_is_a_whole_number_of_key_frame_intervals() {
        let timing = |interval_s: f64, segment_s: f64| {
            let learned = KeyFrameTiming {
                key_frame_interval_90k: (interval_s * 90_000.0) as u64,
                frames_per_key_frame: (interval_s * 25.0) as u32,
                fps: 25,
            };
            let t = passthrough_timing(learned, segment_s, 0.2, 6);
            (
                t.segmenter.frames_per_segment,
                t.target_duration_s,
                t.segmenter.frames_per_part,
            )
        };
        // interval → frames per segment, EXT-X-TARGETDURATION, frames per part
        assert_eq!(timing(0.48, 1.0), (24, 1, 5));
        assert_eq!(timing(0.6, 1.0), (15, 1, 5));
        assert_eq!(timing(0.9, 1.0), (23, 1, 5));
        assert_eq!(timing(2.0, 1.0), (50, 2, 5));
        assert_eq!(timing(2.0, 4.0), (100, 4, 5));
        assert_eq!(timing(10.0, 1.0), (250, 10, 5));
    }
}
