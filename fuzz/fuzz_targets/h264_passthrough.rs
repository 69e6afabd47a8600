//! Fuzzes HLS passthrough of a source's H.264 with arbitrary bytes: the stream is cut into
//! access units as `pipe:h264` cuts it, the key-frame interval is learned from them, and they
//! are segmented into a live window, as the H.264 thread does (a picture the segmenter cannot
//! take ends the segment, as a lost one does there).
//!
//! The first input byte picks the frame rate (1 to 60 fps, so that key-frame intervals from a
//! frame to beyond the 10 s limit come up), the rest is the stream. Beyond "never panics",
//! it checks that every playlist the window lists keeps the crate's rules (target duration,
//! part target, parts, sequence numbers) and follows the one before.

#![no_main]

use std::time::{Duration, Instant, UNIX_EPOCH};

use framecast::frame::FrameSize;
use framecast::hls::passthrough::{KeyFrameLearner, Learning, passthrough_timing};
use framecast::hls::segmenter::{Segmenter, UnitInfo};
use framecast::hls::window::LiveWindow;
use framecast::media::h264_stream::{AccessUnit, AccessUnitSplitter};
use framecast::media::playlist::{check_invariants, check_update};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&rate_choice, stream)) = data.split_first() else {
        return;
    };
    // A whole number of frames a second, as the H.264 thread's frame grid makes them.
    let fps = u64::from(rate_choice % 60) + 1;
    let mut splitter = AccessUnitSplitter::default();
    let mut units = Vec::new();
    let _ = splitter.push(stream, &mut units);
    splitter.finish(&mut units);

    let mut learner = KeyFrameLearner::default();
    let mut segmenter: Option<(Segmenter, LiveWindow)> = None;
    let mut previous = None;
    let now = Instant::now();
    // As `pipe:h264` does, only access units that hold a picture become frames.
    let pictures = units.into_iter().filter(|unit| unit.has_picture);
    for (n, unit) in pictures.enumerate() {
        let n = n as u64;
        let captured_us = |n: u64| 1_790_000_000_000_000 + n * 1_000_000 / fps;
        let is_idr = unit.is_idr;
        let frames: Vec<(u64, AccessUnit)> = if segmenter.is_some() {
            vec![(n, unit)]
        } else {
            match learner.push((n, unit), is_idr, captured_us(n)) {
                Learning::Dropped(_) | Learning::Held => continue,
                Learning::Learned { timing, frames } => {
                    let derived = passthrough_timing(timing, 1.0, 0.2, 6);
                    let interval_90k = timing.key_frame_interval_90k;
                    segmenter = Some((
                        Segmenter::for_source_idrs(derived.segmenter, interval_90k),
                        LiveWindow::new(derived),
                    ));
                    frames
                }
            }
        };
        let Some((segmenter, window)) = segmenter.as_mut() else {
            continue;
        };
        for (n, unit) in frames {
            let info = UnitInfo {
                seq: 0,
                captured_at: UNIX_EPOCH + Duration::from_micros(captured_us(n)),
                size: FrameSize::new(640, 360),
            };
            // The frame's slot on the grid, as the thread's clock gives it.
            let pts_90k = n * 90_000 / fps;
            let events = match segmenter.push_annex_b(&info, &unit.annex_b, pts_90k) {
                Ok(outcome) => outcome.events,
                // As the H.264 thread does: the segment ends at a picture it cannot take, and
                // the next IDR starts one.
                Err(_) => segmenter.interrupt().unwrap_or_default(),
            };
            window.apply(events, now);
            if window.has_complete_segment() {
                let playlist = window.playlist();
                if let Err(error) = check_invariants(&playlist) {
                    panic!("{error}: {playlist:?}");
                }
                if let Some(previous) = &previous
                    && let Err(error) = check_update(previous, &playlist)
                {
                    panic!("{error}");
                }
                previous = Some(playlist);
            }
        }
    }
});
