//! An H.264 Annex B byte stream (H.264 Annex B), as a pipe delivers it, cut into access units:
//! the bytes arrive in reads of any size, and each access unit (one coded picture with the
//! NAL units that belong to it) is handed out once it is complete.
//!
//! The first NAL unit of an access unit is found as H.264 §7.4.1.2.3 orders them: after a
//! picture's VCL NAL units, an access unit delimiter, SPS, PPS, SEI or NAL unit type 14 to 18
//! starts the next access unit, and so does a VCL NAL unit whose slice starts a new picture.
//! A slice starts a picture when `first_mb_in_slice` (§7.3.3) is 0: the first slice of a
//! picture covers its first macroblock, and slices in arbitrary order (a Baseline-only tool no
//! camera or encoder writes) are not supported.
//!
//! An access unit is complete only when the first bytes of the next one arrive, so it is
//! handed out one picture late, as every Annex B parser without a container must (ffmpeg's
//! too); [`AccessUnitSplitter::finish`] hands out the rest at the end of the input.
//!
//! Pure: bytes in, access units out. Memory is bounded: input that never ends a NAL unit or an
//! access unit within [`MAX_ACCESS_UNIT_BYTES`] is dropped with an error, and splitting
//! resumes at the next start code.

use bytes::{Bytes, BytesMut};

use super::h264::{NAL_AUD, NAL_IDR, NAL_PPS, NAL_SEI, NAL_SLICE_NON_IDR, NAL_SPS, nal_unit_type};

/// The largest access unit accepted: far above any camera's picture (a 4K IDR at a high
/// bitrate is about 1 MB), small enough to bound what garbage input can make us hold.
pub const MAX_ACCESS_UNIT_BYTES: usize = 8 * 1024 * 1024;

/// The 4-byte start code written before every NAL unit of an access unit handed out.
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One access unit: its NAL units in Annex B form, each behind a 4-byte start code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub annex_b: Bytes,
    /// Holds an IDR slice: decoding can start here.
    pub is_idr: bool,
    /// Holds at least one coded slice (an access unit of parameter sets alone does not).
    pub has_picture: bool,
}

/// What was wrong with the input; splitting goes on after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("an H.264 access unit is larger than {MAX_ACCESS_UNIT_BYTES} bytes; dropped")]
    TooLarge,
}

/// Cuts an Annex B byte stream into access units.
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    /// Input not yet cut into NAL units: it starts at a start code (or is the first bytes,
    /// before any start code), and its last NAL unit may be incomplete.
    pending: BytesMut,
    /// Bytes of `pending` already searched for a start code, so that each byte is scanned once.
    scanned: usize,
    /// The access unit being collected.
    current: BytesMut,
    current_is_idr: bool,
    current_has_picture: bool,
}

impl AccessUnitSplitter {
    /// Takes the next bytes of the stream; complete access units are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<AccessUnit>) -> Result<(), SplitError> {
        self.pending.extend_from_slice(data);
        // Cheap when a NAL unit is being collected: its start code is at the front.
        if find_start_code(&self.pending, 0).is_none() {
            // Nothing here belongs to a NAL unit; keep only what may begin a start code.
            let keep = self.pending.len().min(3);
            let _ = self.pending.split_to(self.pending.len() - keep);
            self.scanned = 0;
            return Ok(());
        }
        let mut result = Ok(());
        // Each complete NAL unit runs from one start code to the next.
        while let Some((first_start, first_len)) = find_start_code(&self.pending, 0) {
            let search_from = (first_start + first_len).max(self.scanned);
            let Some((next_start, _)) = find_start_code(&self.pending, search_from) else {
                // The last NAL unit is still arriving; the next search resumes here (less the
                // bytes a start code split across reads could begin in).
                self.scanned = self.pending.len().saturating_sub(3);
                // Its first bytes already say whether it begins the next access unit: if so,
                // the one collected is complete now, not only when this NAL unit ends.
                let header = &self.pending[first_start + first_len..];
                if self.current_has_picture
                    && header.len() >= 2
                    && nal_unit_type(header).is_some_and(|kind| starts_access_unit(kind, header))
                {
                    out.extend(self.take_current());
                }
                if self.pending.len() - first_start > MAX_ACCESS_UNIT_BYTES {
                    self.drop_all();
                    result = Err(SplitError::TooLarge);
                }
                break;
            };
            let chunk = self.pending.split_to(next_start).freeze();
            self.scanned = 0;
            let nal = trim_trailing_zeros(&chunk[first_start + first_len..]);
            if !nal.is_empty() && self.add_nal(nal, out).is_err() {
                result = Err(SplitError::TooLarge);
            }
        }
        result
    }

    /// The end of the input: the access units still held are appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<AccessUnit>) {
        let rest = self.pending.split().freeze();
        self.scanned = 0;
        if let Some((start, len)) = find_start_code(&rest, 0) {
            let nal = trim_trailing_zeros(&rest[start + len..]);
            if !nal.is_empty() {
                // Too large: already dropped; what was complete is still handed out.
                let _ = self.add_nal(nal, out);
            }
        }
        out.extend(self.take_current());
    }

    /// Adds one NAL unit, handing out the access unit it ends.
    fn add_nal(&mut self, nal: &[u8], out: &mut Vec<AccessUnit>) -> Result<(), SplitError> {
        let Some(kind) = nal_unit_type(nal) else {
            return Ok(());
        };
        if self.current_has_picture && starts_access_unit(kind, nal) {
            out.extend(self.take_current());
        }
        if self.current.len() + START_CODE.len() + nal.len() > MAX_ACCESS_UNIT_BYTES {
            self.take_current();
            return Err(SplitError::TooLarge);
        }
        self.current.extend_from_slice(&START_CODE);
        self.current.extend_from_slice(nal);
        if is_vcl(kind) {
            self.current_has_picture = true;
            self.current_is_idr |= kind == NAL_IDR;
        }
        Ok(())
    }

    fn take_current(&mut self) -> Option<AccessUnit> {
        if self.current.is_empty() {
            return None;
        }
        let unit = AccessUnit {
            annex_b: self.current.split().freeze(),
            is_idr: self.current_is_idr,
            has_picture: self.current_has_picture,
        };
        self.current_is_idr = false;
        self.current_has_picture = false;
        Some(unit)
    }

    fn drop_all(&mut self) {
        self.pending.clear();
        self.scanned = 0;
        self.current.clear();
        self.current_is_idr = false;
        self.current_has_picture = false;
    }
}

/// A coded slice of a picture (H.264 Table 7-1: types 1 to 5).
fn is_vcl(kind: u8) -> bool {
    (NAL_SLICE_NON_IDR..=NAL_IDR).contains(&kind)
}

/// Whether a NAL unit of type `kind` that follows a picture's slices begins the next access
/// unit (H.264 §7.4.1.2.3).
fn starts_access_unit(kind: u8, nal: &[u8]) -> bool {
    match kind {
        NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI | 14..=18 => true,
        // first_mb_in_slice is the first field of the slice header, ue(v): the value 0 is
        // the single bit 1 (§9.1).
        k if is_vcl(k) => nal.get(1).is_some_and(|byte| byte & 0x80 != 0),
        _ => false,
    }
}

/// The first start code at or after `from`: its position and length (3, or 4 when a zero byte
/// comes before `00 00 01`).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 2 < data.len() {
        match data[i + 2] {
            0 => i += 1,
            1 if data[i] == 0 && data[i + 1] == 0 => {
                return Some(if i > from && data[i - 1] == 0 {
                    (i - 1, 4)
                } else {
                    (i, 3)
                });
            }
            _ => i += 3,
        }
    }
    None
}

/// A NAL unit without the zero bytes after it (`trailing_zero_8bits`, §B.1.1); its own last
/// byte is never zero (§7.4.1).
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let len = nal.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    &nal[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];
    const AUD: &[u8] = &[0x09, 0xF0];
    /// first_mb_in_slice = 0 (the first bit set).
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21];
    const P_FIRST: &[u8] = &[0x41, 0x9A, 0x02, 0x03];
    /// A second slice of the same picture: first_mb_in_slice > 0 (the first bit clear).
    const P_SECOND_SLICE: &[u8] = &[0x41, 0x12, 0x34, 0x05];

    fn annex_b(nals: &[&[u8]], start_code: &[u8]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| start_code.iter().chain(nal.iter()).copied())
            .collect()
    }

    fn canonical(nals: &[&[u8]]) -> Vec<u8> {
        annex_b(nals, &START_CODE)
    }

    /// The access units of `stream` pushed in pieces of `piece` bytes, then finished.
    fn split(stream: &[u8], piece: usize) -> Vec<AccessUnit> {
        let mut splitter = AccessUnitSplitter::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece.max(1)) {
            splitter.push(chunk, &mut out).expect("fits");
        }
        splitter.finish(&mut out);
        out
    }

    #[test]
    fn pictures_are_cut_at_parameter_sets_and_first_slices_whatever_the_reads() {
        let stream = annex_b(
            &[SPS, PPS, IDR, P_FIRST, P_SECOND_SLICE, AUD, P_FIRST],
            &[0, 0, 1],
        );
        for piece in [1, 2, 3, 5, 7, 1000] {
            let units = split(&stream, piece);
            let bytes: Vec<&[u8]> = units.iter().map(|u| &u.annex_b[..]).collect();
            assert_eq!(
                bytes,
                [
                    &canonical(&[SPS, PPS, IDR])[..],
                    &canonical(&[P_FIRST, P_SECOND_SLICE])[..],
                    &canonical(&[AUD, P_FIRST])[..],
                ],
                "pieces of {piece}"
            );
            let idr: Vec<bool> = units.iter().map(|u| u.is_idr).collect();
            assert_eq!(idr, [true, false, false]);
        }
    }

    #[test]
    fn four_byte_start_codes_trailing_zeros_and_leading_garbage_are_not_part_of_a_nal() {
        let mut stream = vec![0xAB, 0xCD];
        stream.extend(annex_b(&[SPS, PPS, IDR], &[0, 0, 0, 1]));
        stream.extend([0, 0, 0]);
        stream.extend(annex_b(&[P_FIRST], &[0, 0, 0, 1]));
        let units = split(&stream, 4);
        assert_eq!(units.len(), 2);
        assert_eq!(&units[0].annex_b[..], &canonical(&[SPS, PPS, IDR])[..]);
        assert_eq!(&units[1].annex_b[..], &canonical(&[P_FIRST])[..]);
    }

    #[test]
    fn a_unit_is_handed_out_when_the_next_one_begins() {
        let mut splitter = AccessUnitSplitter::default();
        let mut out = Vec::new();
        splitter
            .push(&annex_b(&[SPS, PPS, IDR], &[0, 0, 1]), &mut out)
            .expect("fits");
        assert!(out.is_empty(), "the IDR may have more slices");
        splitter
            .push(&[0, 0, 1, P_FIRST[0]], &mut out)
            .expect("fits");
        assert!(
            out.is_empty(),
            "not yet known whether a slice of the same picture comes"
        );
        splitter.push(&P_FIRST[1..], &mut out).expect("fits");
        assert_eq!(out.len(), 1, "the first slice of the next picture ends it");
        assert!(out[0].is_idr && out[0].has_picture);
        out.clear();
        splitter.finish(&mut out);
        assert_eq!(out.len(), 1, "the last picture");
        assert_eq!(&out[0].annex_b[..], &canonical(&[P_FIRST])[..]);
        out.clear();
        splitter.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn input_that_never_ends_a_nal_is_dropped_and_splitting_resumes() {
        let mut splitter = AccessUnitSplitter::default();
        let mut out = Vec::new();
        splitter
            .push(&[0, 0, 1, 0x65, 0x88], &mut out)
            .expect("fits");
        let garbage = vec![0xFFu8; MAX_ACCESS_UNIT_BYTES];
        assert_eq!(splitter.push(&garbage, &mut out), Err(SplitError::TooLarge));
        splitter
            .push(&annex_b(&[SPS, PPS, IDR, P_FIRST], &[0, 0, 1]), &mut out)
            .expect("fits");
        splitter.finish(&mut out);
        let bytes: Vec<&[u8]> = out.iter().map(|u| &u.annex_b[..]).collect();
        assert_eq!(
            bytes,
            [&canonical(&[SPS, PPS, IDR])[..], &canonical(&[P_FIRST])[..]]
        );
    }

    #[test]
    fn input_without_start_codes_is_not_kept() {
        let mut splitter = AccessUnitSplitter::default();
        let mut out = Vec::new();
        for _ in 0..100 {
            splitter
                .push(&[0xAB; 100_000], &mut out)
                .expect("nothing to keep");
        }
        assert!(splitter.pending.len() <= 3);
        splitter
            .push(&annex_b(&[SPS, PPS, IDR], &[0, 0, 1]), &mut out)
            .expect("fits");
        splitter.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].annex_b[..], &canonical(&[SPS, PPS, IDR])[..]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u32;
        for _ in 0..200 {
            let mut splitter = AccessUnitSplitter::default();
            let mut out = Vec::new();
            let len = (state % 4000) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    // Mostly zeros and ones, so start codes are frequent.
                    [0, 0, 1, (state >> 8) as u8][(state % 4) as usize]
                })
                .collect();
            let _ = splitter.push(&data, &mut out);
            splitter.finish(&mut out);
            assert!(out.iter().all(|u| u.annex_b.len() <= MAX_ACCESS_UNIT_BYTES));
        }
    }
}
