//! Fuzzes the conversion of an RTSP camera's access units (length-prefixed NAL units, as the
//! RTSP client hands them out) to the Annex B frames framecast carries.
//!
//! The input is the sample itself, with a fixed SPS and PPS. Beyond "never panics", it checks
//! invariants: an accepted unit is its NAL units behind 4-byte start codes, begins with the
//! SPS and PPS exactly when it is an IDR, holds no B slice and no delimiter, and is never
//! larger than the sample plus the parameter sets.

#![no_main]

use framecast::media::h264::{self, NAL_AUD, SliceKind};
use framecast::source::rtsp::annex_b_unit;
use libfuzzer_sys::fuzz_target;

const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80];
const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

fuzz_target!(|sample: &[u8]| {
    let Ok(unit) = annex_b_unit(sample, SPS, PPS) else {
        return;
    };
    assert!(unit.annex_b.len() <= sample.len() + SPS.len() + PPS.len() + 8);
    let nals: Vec<&[u8]> = h264::split_annex_b(&unit.annex_b).collect();
    assert_eq!(unit.is_idr, nals.first() == Some(&SPS) && nals.get(1) == Some(&PPS));
    for nal in &nals {
        assert_ne!(h264::slice_kind(nal), Some(SliceKind::B));
        assert_ne!(h264::nal_unit_type(nal), Some(NAL_AUD));
    }
});
