//! Fuzzes the assembly of a WHIP publisher's access units (what str0m depacketized from the
//! peer's RTP) into the frames a WHIP stream's source delivers.
//!
//! The input is cut into samples: each starts with a byte whose low bit says whether the
//! sample is contiguous with the one before and whose other bits, with the next byte, give its
//! length. Beyond "never panics", it checks invariants: a frame holds a picture, an IDR frame
//! begins with an SPS and a PPS, no frame holds a B slice, no frame is larger than its sample
//! (each NAL unit behind a four-byte start code) plus the largest parameter sets seen, and
//! after a gap only an IDR comes out first.

#![no_main]

use std::time::SystemTime;

use bytes::Bytes;
use framecast::frame::Pixels;
use framecast::media::h264::{self, NAL_PPS, NAL_SPS, SliceKind};
use framecast::source::whip::{AccessUnitAssembler, WhipSample};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut assembler = AccessUnitAssembler::default();
    let mut rest = data;
    let mut largest_parameter_sets = 0;
    let mut after_gap = true;
    while let [head, low, tail @ ..] = rest {
        let len = ((usize::from(*head >> 1) << 8) | usize::from(*low)).min(tail.len());
        let (sample, next) = tail.split_at(len);
        rest = next;
        let contiguous = head & 1 == 1;
        after_gap |= !contiguous;
        let mut sample_nals = 0;
        for nal in h264::split_annex_b(sample) {
            sample_nals += 1;
            if matches!(h264::nal_unit_type(nal), Some(NAL_SPS | NAL_PPS)) {
                largest_parameter_sets = largest_parameter_sets.max(nal.len());
            }
        }
        let result = assembler.push(WhipSample {
            annex_b: Bytes::copy_from_slice(sample),
            arrived_at: SystemTime::UNIX_EPOCH,
            contiguous,
        });
        let Ok(Some(frame)) = result else {
            continue;
        };
        let Pixels::H264(unit) = &frame.pixels else {
            panic!("a WHIP frame is H.264");
        };
        let nals: Vec<&[u8]> = h264::split_annex_b(&unit.annex_b).collect();
        assert!(
            nals.iter()
                .any(|nal| matches!(h264::nal_unit_type(nal), Some(1..=5)))
        );
        for nal in &nals {
            assert_ne!(h264::slice_kind(nal), Some(SliceKind::B));
        }
        if unit.is_idr {
            assert_eq!(h264::nal_unit_type(nals[0]), Some(NAL_SPS));
            assert_eq!(h264::nal_unit_type(nals[1]), Some(NAL_PPS));
            after_gap = false;
        }
        assert!(!after_gap, "a picture after a gap before an IDR");
        // Every NAL unit goes out behind a four-byte start code: one byte more for each that
        // came behind a three-byte one.
        assert!(
            unit.annex_b.len() <= sample.len() + sample_nals + 2 * largest_parameter_sets + 8
        );
    }
});
