//! Fuzzes the H.264 decoder that JPEG viewers of an H.264 source go through (openh264, bundled
//! source, and framecast's copy out of its planes) with arbitrary bytes.
//!
//! The input is cut into access units as `pipe:h264` cuts it, and each is decoded in order.
//! Beyond "never panics" (nor crashes in openh264), it checks invariants: a decoded frame
//! keeps the unit's sequence number, has even sides within `FrameSize::MAX` and exactly one
//! I420 picture of bytes; and after an error that reset the decoder the next unit that
//! decodes is an IDR.

#![no_main]

use framecast::encode::h264_decode::{DecodeError, H264Decoder};
use framecast::frame::{Frame, FrameSize, H264Unit, Pixels};
use framecast::media::h264_stream::AccessUnitSplitter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut splitter = AccessUnitSplitter::default();
    let mut units = Vec::new();
    let _ = splitter.push(data, &mut units);
    splitter.finish(&mut units);
    let mut decoder = H264Decoder::new();
    let mut failed = false;
    for (seq, unit) in (1..).zip(units) {
        let is_idr = unit.is_idr;
        let frame = Frame {
            seq,
            pts_90k: seq * 3000,
            captured_at: std::time::SystemTime::UNIX_EPOCH,
            size: FrameSize::new(160, 120),
            pixels: Pixels::H264(H264Unit {
                annex_b: unit.annex_b,
                is_idr,
            }),
            repeats_previous: false,
        };
        match decoder.decode(&frame) {
            Ok(decoded) => {
                assert!(!failed || is_idr, "a P-frame decoded right after an error");
                failed = false;
                let picture = decoded.frame;
                assert_eq!(picture.seq, seq);
                let size = picture.size;
                assert!(size.width % 2 == 0 && size.height % 2 == 0, "{size}");
                assert!(size.width > 0 && size.height > 0 && size.fits_max(), "{size}");
                assert!(picture.i420().is_some(), "one I420 picture of {size}");
            }
            Err(DecodeError::WaitingForIdr) => assert!(!is_idr),
            // Only an error that left the decoder out of sync makes it wait for an IDR.
            Err(_) => failed = !decoder.in_sync(),
        }
    }
});
