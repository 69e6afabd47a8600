//! Fuzzes the checks on a WHEP or WHIP SDP offer and str0m's parse of what passes them
//! (`framecast::webrtc::offer::parse_offer`), with arbitrary bytes as any client can POST.
//!
//! Beyond "never panics": a refusal's reason is one line; an accepted offer has an H.264
//! payload type in packetization mode 1 and was at most `MAX_OFFER_BYTES` long.

#![no_main]

use framecast::webrtc::offer::{MAX_OFFER_BYTES, parse_offer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_offer(data) {
        Ok((summary, _offer)) => {
            assert!(data.len() <= MAX_OFFER_BYTES);
            assert!(!summary.h264_payload_types.is_empty());
        }
        Err(error) => {
            let reason = error.to_string();
            assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        }
    }
});
