//! Fuzzes the check of an external encoder's access units (`encode::h264_check`) with
//! arbitrary bytes, as an ffmpeg process could write them.
//!
//! The first input byte says whether the unit must be an IDR. Beyond "never panics", it checks
//! that the verdict agrees with the facts read: a unit that passes holds a picture and no B
//! slice, is an IDR where one was asked for, and an IDR that passes carries SPS and PPS.

#![no_main]

use framecast::encode::h264_check::{check_unit, unit_facts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, unit)) = data.split_first() else {
        return;
    };
    let must_be_idr = flags & 1 == 1;
    let facts = unit_facts(unit);
    match check_unit(1, unit, must_be_idr) {
        Ok(checked) => {
            assert_eq!(checked, facts);
            assert!(facts.slices > 0 && !facts.has_b_slice);
            assert!(!must_be_idr || facts.is_idr);
            assert!(!facts.is_idr || (facts.has_sps && facts.has_pps));
        }
        Err(_) => {
            let passes = facts.slices > 0
                && !facts.has_b_slice
                && (!must_be_idr || facts.is_idr)
                && (!facts.is_idr || (facts.has_sps && facts.has_pps));
            assert!(!passes, "refused a unit that keeps every rule");
        }
    }
});
