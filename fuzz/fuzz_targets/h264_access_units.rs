//! Fuzzes the Annex B access-unit splitter of `pipe:h264` with arbitrary bytes.
//!
//! The first input byte picks the push size (1 to 256 bytes), the rest is the stream. Beyond
//! "never panics", it checks invariants: every access unit is bounded and is exactly its NAL
//! units each behind a 4-byte start code; an IDR access unit holds a picture; and how the input
//! is cut into reads never changes the result.

#![no_main]

use framecast::media::h264;
use framecast::media::h264_stream::{AccessUnit, AccessUnitSplitter, MAX_ACCESS_UNIT_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_choice, stream)) = data.split_first() else {
        return;
    };
    let chunked = split(stream, usize::from(chunk_choice) + 1);
    let whole = split(stream, stream.len().max(1));
    assert_eq!(chunked, whole, "how the input was read changed the result");
    for unit in &chunked {
        assert!(unit.annex_b.len() <= MAX_ACCESS_UNIT_BYTES);
        // Its NAL units, each behind a 4-byte start code, make it up exactly.
        let rejoined: Vec<u8> = h264::split_annex_b(&unit.annex_b)
            .flat_map(|nal| [0, 0, 0, 1].iter().chain(nal).copied().collect::<Vec<u8>>())
            .collect();
        assert_eq!(rejoined, unit.annex_b);
        assert!(!unit.is_idr || unit.has_picture);
    }
});

fn split(stream: &[u8], chunk_len: usize) -> Vec<AccessUnit> {
    let mut splitter = AccessUnitSplitter::default();
    let mut out = Vec::new();
    for chunk in stream.chunks(chunk_len) {
        let _ = splitter.push(chunk, &mut out);
    }
    splitter.finish(&mut out);
    out
}
