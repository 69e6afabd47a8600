//! Fuzzes the H.264 SPS parser, the codec string and the Annex-B splitting with arbitrary
//! bytes: the input as one SPS NAL unit, then as an Annex-B stream whose SPS NAL units are
//! parsed (a real encoder's stream as the seed reaches the deep fields: VUI, scaling lists,
//! cropping).
//!
//! Beyond "never panics": a parsed SPS describes a picture that is not empty, whose cropped
//! size fits its coded size, with bit depths and chroma format the standard allows; the codec
//! string of an SPS is that of its first three bytes.

#![no_main]

use framecast::media::h264::{
    NAL_SPS, Sps, nal_unit_type, parse_sps, rfc6381_codec, split_annex_b, to_avcc_sample,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // With a forced SPS header, so that every input reaches the field parsing.
    let mut as_sps = Vec::with_capacity(data.len() + 1);
    as_sps.push(0x67);
    as_sps.extend_from_slice(data);
    check(&as_sps);
    check(data);
    for nal in split_annex_b(data) {
        if nal_unit_type(nal) == Some(NAL_SPS) {
            check(nal);
        }
    }
    let sample = to_avcc_sample(data);
    assert!(sample.data.len() <= data.len() + 4 * (data.len() / 3 + 1));
});

fn check(nal: &[u8]) {
    let codec = rfc6381_codec(nal);
    if let Ok(sps) = parse_sps(nal) {
        check_fields(&sps);
        let codec = codec.expect("a parsed SPS has a codec string");
        assert_eq!(codec.len(), "avc1.".len() + 6, "{codec}");
    }
}

fn check_fields(sps: &Sps) {
    assert!(sps.width > 0 && sps.height > 0, "{sps:?}");
    assert!(
        sps.width <= sps.coded_width && sps.height <= sps.coded_height,
        "{sps:?}"
    );
    assert!(sps.chroma_format_idc <= 3, "{sps:?}");
    assert!((8..=14).contains(&sps.bit_depth_luma), "{sps:?}");
    assert!((8..=14).contains(&sps.bit_depth_chroma), "{sps:?}");
    assert!((4..=16).contains(&sps.log2_max_frame_num), "{sps:?}");
    assert!(sps.pic_order_cnt_type <= 2, "{sps:?}");
    if let Some(timing) = sps.timing {
        let _ = timing.frame_rate_hz();
    }
}
