//! The camera's own bytes on both sides of a passthrough: slice NAL units of an Annex B
//! stream as fed, and of the CMAF media served (segments, parts, `/live.mp4`), so that a test
//! can say the served samples are the fed ones, byte for byte.

/// The slice NAL units (types 1 and 5) of an Annex B stream, in order (H.264 Annex B.1).
pub fn annex_b_slices(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut slices = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(stream.len(), |&next| next - 3);
        let mut nal = &stream[start..end];
        // The zero byte of a 4-byte start code belongs to the next one.
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if matches!(nal.first().map(|b| b & 0x1f), Some(1 | 5)) {
            slices.push(nal.to_vec());
        }
    }
    slices
}

/// The slice NAL units in the `mdat`s of CMAF media (4-byte lengths, ISO/IEC 14496-15
/// §5.3.3), in order. A box cut off at the end (a stream read part way) is left out.
pub fn mp4_slices(media: &[u8]) -> Vec<Vec<u8>> {
    let mut slices = Vec::new();
    let mut at = 0;
    while at + 8 <= media.len() {
        let size = u32::from_be_bytes(media[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8, "box at {at} of {size} bytes");
        if at + size > media.len() {
            break;
        }
        if &media[at + 4..at + 8] == b"mdat" {
            let mdat = &media[at + 8..at + size];
            let mut i = 0;
            while i + 4 <= mdat.len() {
                let len = u32::from_be_bytes(mdat[i..i + 4].try_into().unwrap()) as usize;
                let nal = &mdat[i + 4..i + 4 + len];
                if matches!(nal[0] & 0x1f, 1 | 5) {
                    slices.push(nal.to_vec());
                }
                i += 4 + len;
            }
        }
        at += size;
    }
    slices
}

/// Whether `served` is a non-empty run of consecutive slices of `fed`: the camera's own bytes.
pub fn is_run_of(served: &[Vec<u8>], fed: &[Vec<u8>]) -> bool {
    let Some(first) = served.first() else {
        return false;
    };
    fed.iter()
        .enumerate()
        .filter(|(_, slice)| *slice == first)
        .any(|(at, _)| fed.get(at..at + served.len()) == Some(served))
}
