//! One H.264 access unit from the RTSP client, length-prefixed as in an MP4 sample
//! (14496-15 §5.3.2), made into what framecast's frames carry (see [`crate::frame::H264Unit`]):
//! Annex B with 4-byte start codes (H.264 §B.1), the stream's SPS and PPS in front of every
//! IDR, delimiters and in-band parameter sets dropped (the current ones go in front of IDRs),
//! and B slices refused (framecast keeps decode order as presentation order). Pure.
//!
//! The RTSP client can write Annex B and insert parameter sets itself, but it calls every
//! access unit without a non-IDR slice a key frame (an SEI alone is one) and does not look at
//! slice types; here both are read from the NAL units.

use crate::media::h264::{
    NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, SliceKind, nal_unit_type, slice_kind,
};

/// The Annex B start code written before every NAL unit (H.264 §B.1.1: zero_byte plus
/// start_code_prefix_one_3bytes).
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// An access unit in the form frames carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnexBUnit {
    pub annex_b: Vec<u8>,
    /// It holds an IDR slice (and so starts with the SPS and PPS).
    pub is_idr: bool,
}

/// Why an access unit cannot be carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessUnitError {
    /// A length prefix runs past the end: the RTSP client gave a broken sample.
    #[error("a NAL unit's length runs past the end of the access unit")]
    Truncated,
    /// No coded slice at all (only SEI or delimiters): nothing to show.
    #[error("the access unit holds no picture")]
    NoSlice,
    /// A B slice: the camera reorders pictures.
    #[error("the access unit holds a B slice")]
    BSlice,
    /// A NAL unit with a start code inside or a zero last byte, which H.264 rules out
    /// (§7.4.1: emulation prevention) and Annex B cannot carry: it would be cut apart.
    #[error("a NAL unit holds a start code or ends in a zero byte")]
    Malformed,
}

/// Converts `sample` (NAL units behind 4-byte big-endian lengths) to Annex B, with `sps` and
/// `pps` in front if it holds an IDR slice.
pub fn annex_b_unit(sample: &[u8], sps: &[u8], pps: &[u8]) -> Result<AnnexBUnit, AccessUnitError> {
    let mut nals = Vec::new();
    let mut rest = sample;
    while !rest.is_empty() {
        let (length, after) = rest
            .split_first_chunk::<4>()
            .ok_or(AccessUnitError::Truncated)?;
        let length = u32::from_be_bytes(*length) as usize;
        if after.len() < length {
            return Err(AccessUnitError::Truncated);
        }
        let (nal, after) = after.split_at(length);
        rest = after;
        if nal.is_empty() {
            continue;
        }
        if nal.last() == Some(&0) || nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2) {
            return Err(AccessUnitError::Malformed);
        }
        nals.push(nal);
    }

    let mut is_idr = false;
    let mut has_slice = false;
    for nal in &nals {
        match slice_kind(nal) {
            Some(SliceKind::B) => return Err(AccessUnitError::BSlice),
            Some(_) => has_slice = true,
            // A slice whose header is too short to read is kept; the decoder judges it.
            None => has_slice |= matches!(nal_unit_type(nal), Some(1..=5)),
        }
        is_idr |= nal_unit_type(nal) == Some(NAL_IDR);
    }
    if !has_slice {
        return Err(AccessUnitError::NoSlice);
    }

    let kept = nals
        .iter()
        .filter(|nal| !matches!(nal_unit_type(nal), Some(NAL_SPS | NAL_PPS | NAL_AUD)));
    let parameter_sets: &[&[u8]] = if is_idr { &[sps, pps] } else { &[] };
    let mut annex_b = Vec::with_capacity(sample.len() + sps.len() + pps.len() + 8);
    for nal in parameter_sets.iter().chain(kept) {
        annex_b.extend_from_slice(&START_CODE);
        annex_b.extend_from_slice(nal);
    }
    Ok(AnnexBUnit { annex_b, is_idr })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nal_unit_that_annex_b_would_cut_apart_is_refused() {
        use super::*;
        let sps = [0x67, 0x42];
        let pps = [0x68, 0xCE];
        for nal in [
            &[0x41, 0x9A, 0x00, 0x00, 0x01, 0x09][..],
            &[0x41, 0x9A, 0x00, 0x00, 0x00, 0x07],
            &[0x41, 0x9A, 0x05, 0x00],
        ] {
            let mut sample = (nal.len() as u32).to_be_bytes().to_vec();
            sample.extend_from_slice(nal);
            assert_eq!(
                annex_b_unit(&sample, &sps, &pps),
                Err(AccessUnitError::Malformed),
                "{nal:02x?}"
            );
        }
    }

    use super::*;

    // NAL units small enough to read as bytes. Slice headers (H.264 §7.3.3) begin with
    // first_mb_in_slice = 0 (`1` in Exp-Golomb) and slice_type: P = 0 (`1`), B = 1 (`010`),
    // I = 7 (`0001000`).
    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    /// IDR slice, I: `1` `0001000` → 0x88.
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21];
    /// Non-IDR slice, P: `1` `1` → 0xc0.
    const P: &[u8] = &[0x41, 0xc0, 0x12];
    /// Non-IDR slice, B: `1` `010` → 0xa0.
    const B: &[u8] = &[0x01, 0xa0, 0x34];
    const SEI: &[u8] = &[0x06, 0x05, 0x01, 0x80];
    const AUD: &[u8] = &[0x09, 0xf0];

    fn sample(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn an_idr_gets_the_parameter_sets_in_front() {
        let unit = annex_b_unit(&sample(&[AUD, SEI, IDR]), SPS, PPS).unwrap();
        assert!(unit.is_idr);
        #[rustfmt::skip]
        let golden: &[u8] = &[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9,
            0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
            0, 0, 0, 1, 0x06, 0x05, 0x01, 0x80,
            0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21,
        ];
        assert_eq!(unit.annex_b, golden);
    }

    #[test]
    fn in_band_parameter_sets_are_replaced_by_the_current_ones() {
        let old_sps: &[u8] = &[0x67, 0x4d, 0x00, 0x1f];
        let unit = annex_b_unit(&sample(&[old_sps, PPS, IDR]), SPS, PPS).unwrap();
        let mut golden = Vec::new();
        for nal in [SPS, PPS, IDR] {
            golden.extend_from_slice(&START_CODE);
            golden.extend_from_slice(nal);
        }
        assert_eq!(unit.annex_b, golden);
    }

    #[test]
    fn a_p_frame_is_passed_without_parameter_sets() {
        let unit = annex_b_unit(&sample(&[P]), SPS, PPS).unwrap();
        assert_eq!(
            unit,
            AnnexBUnit {
                annex_b: vec![0, 0, 0, 1, 0x41, 0xc0, 0x12],
                is_idr: false
            }
        );
    }

    #[test]
    fn b_slices_and_broken_samples_are_refused() {
        assert_eq!(
            annex_b_unit(&sample(&[B]), SPS, PPS),
            Err(AccessUnitError::BSlice)
        );
        assert_eq!(
            annex_b_unit(&sample(&[P, B]), SPS, PPS),
            Err(AccessUnitError::BSlice)
        );
        assert_eq!(
            annex_b_unit(&sample(&[SEI]), SPS, PPS),
            Err(AccessUnitError::NoSlice)
        );
        assert_eq!(annex_b_unit(&[], SPS, PPS), Err(AccessUnitError::NoSlice));
        let mut cut = sample(&[IDR]);
        cut.pop();
        assert_eq!(
            annex_b_unit(&cut, SPS, PPS),
            Err(AccessUnitError::Truncated)
        );
        assert_eq!(
            annex_b_unit(&[0, 0, 1], SPS, PPS),
            Err(AccessUnitError::Truncated)
        );
    }

    #[test]
    fn any_bytes_are_converted_or_refused_without_panic() {
        // Samples from a fixed pseudo-random sequence (a 64-bit LCG, Knuth's MMIX constants).
        let mut state: u64 = 7;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u8
        };
        for _ in 0..5_000 {
            let len = usize::from(next() % 24);
            let mut bytes: Vec<u8> = (0..len).map(|_| next()).collect();
            if let Some(first) = bytes.get_mut(..4) {
                // Mostly plausible lengths, so that the NAL units are looked at.
                first.copy_from_slice(&(u32::from(first[3] % 24)).to_be_bytes());
            }
            if let Ok(unit) = annex_b_unit(&bytes, SPS, PPS) {
                assert!(unit.annex_b.starts_with(&START_CODE));
            }
        }
    }
}
