//! Fuzzes the MJPEG stream splitter and the JPEG checks with arbitrary bytes.
//!
//! The first input byte picks the push size (1 to 256 bytes), the rest is the stream. Beyond
//! "never panics", it checks invariants: frames are bounded and start with SOI and end with
//! EOI; the splitter's buffer stays bounded; chunking never changes the result; adding the
//! standard Huffman tables yields a JPEG that validates, has tables, and describes the same
//! picture.

#![no_main]

use bytes::Bytes;
use framecast::media::mjpeg_stream::{self, MjpegError, MjpegSplitter};
use libfuzzer_sys::fuzz_target;

/// Small, so that short inputs reach the too-large path too.
const MAX_FRAME_BYTES: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_choice, stream)) = data.split_first() else {
        return;
    };
    let chunk_len = usize::from(chunk_choice) + 1;
    let chunked = split(stream, chunk_len);
    let whole = split(stream, stream.len().max(1));
    assert_eq!(chunked, whole, "chunking changed the result");
    for frame in chunked.0.iter().flatten() {
        assert!(frame.len() <= MAX_FRAME_BYTES);
        assert!(frame.starts_with(&[0xFF, 0xD8]) && frame.ends_with(&[0xFF, 0xD9]));
        check_jpeg(frame);
    }
    check_jpeg(stream);
});

/// What a split yields: the frames and errors in order, and the garbage count.
type Split = (Vec<Result<Bytes, MjpegError>>, u64);

fn split(stream: &[u8], chunk_len: usize) -> Split {
    let mut splitter = MjpegSplitter::new(MAX_FRAME_BYTES);
    let mut results = Vec::new();
    for chunk in stream.chunks(chunk_len) {
        splitter.push(chunk);
        while let Some(result) = splitter.next_frame() {
            results.push(result);
        }
        // Once drained, at most the limit plus the start of one marker segment stay buffered.
        assert!(splitter.buffered_bytes() <= MAX_FRAME_BYTES + 3);
    }
    (results, splitter.garbage_bytes())
}

fn check_jpeg(jpeg: &[u8]) {
    let info = mjpeg_stream::validate(jpeg);
    let with_tables = mjpeg_stream::with_default_huffman_tables(jpeg);
    match (&info, &with_tables) {
        (Ok(info), Some(fixed)) => {
            assert!(!info.has_huffman_tables);
            let fixed_info = mjpeg_stream::validate(fixed).expect("tables keep a JPEG valid");
            assert!(fixed_info.has_huffman_tables);
            assert_eq!(
                (fixed_info.width, fixed_info.height, fixed_info.subsampling),
                (info.width, info.height, info.subsampling)
            );
            assert_eq!(fixed.len(), jpeg.len() + 420);
            assert!(mjpeg_stream::with_default_huffman_tables(fixed).is_none());
        }
        (Ok(info), None) => assert!(info.has_huffman_tables || info.progressive),
        (Err(_), fixed) => assert!(fixed.is_none(), "tables added to an invalid JPEG"),
    }
}
