//! H.264 bitstream helpers: Annex-B NAL unit splitting, sequence parameter set (SPS) parsing,
//! the RFC 6381 codec string, and Annex-B to length-prefixed ("AVCC") sample conversion.
//!
//! References: ITU-T H.264 (08/2021), cited as "H.264 §x"; ISO/IEC 14496-15 (carriage of NAL
//! unit structured video in ISOBMFF), cited as "14496-15 §x"; RFC 6381.
//!
//! Everything here is pure: bytes in, values out. Nothing panics on malformed input, because
//! the bytes come from an encoder or a device that may misbehave.

/// nal_unit_type of a coded slice of a non-IDR picture (H.264 Table 7-1).
pub const NAL_SLICE_NON_IDR: u8 = 1;
/// nal_unit_type of a coded slice of an IDR picture: a random access point (H.264 Table 7-1).
pub const NAL_IDR: u8 = 5;
/// nal_unit_type of supplemental enhancement information (H.264 Table 7-1).
pub const NAL_SEI: u8 = 6;
/// nal_unit_type of a sequence parameter set (H.264 Table 7-1).
pub const NAL_SPS: u8 = 7;
/// nal_unit_type of a picture parameter set (H.264 Table 7-1).
pub const NAL_PPS: u8 = 8;
/// nal_unit_type of an access unit delimiter (H.264 Table 7-1).
pub const NAL_AUD: u8 = 9;

/// Bytes of the length prefix written before each NAL unit of an AVCC sample. Four is what
/// every player accepts; the avcC box announces it as `lengthSizeMinusOne = 3`
/// (14496-15 §5.3.3.1.2).
pub const AVCC_LENGTH_SIZE: usize = 4;

/// The nal_unit_type (the low five bits of the first byte, H.264 §7.3.1) of a NAL unit,
/// or `None` for an empty slice.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| header & 0x1f)
}

/// Iterates over the NAL units of an Annex-B byte stream, without their start codes.
pub fn split_annex_b(data: &[u8]) -> AnnexBNals<'_> {
    AnnexBNals { rest: data }
}

/// The NAL units of an Annex-B byte stream (H.264 §B.2), made by [`split_annex_b`].
///
/// Both 3-byte (`00 00 01`) and 4-byte (`00 00 00 01`) start codes are accepted. Bytes before
/// the first start code and zero bytes after a NAL unit (`trailing_zero_8bits`, or the first
/// byte of a 4-byte start code) belong to no NAL unit. Stripping trailing zeros is safe because
/// the last byte of a NAL unit is never zero (H.264 §7.4.1). Empty NAL units are skipped.
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let Some(prefix_at) = find_start_code(self.rest) else {
                self.rest = &[];
                return None;
            };
            let payload = &self.rest[prefix_at + 3..];
            let end = find_start_code(payload).unwrap_or(payload.len());
            let nal = trim_trailing_zeros(&payload[..end]);
            self.rest = &payload[end..];
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// The index of the first `00 00 01` in `data`.
fn find_start_code(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 2 < data.len() {
        match data[i + 2] {
            // A start code can begin at i + 1 or i + 2 only if data[i + 2] is zero.
            0 => i += 1,
            1 if data[i] == 0 && data[i + 1] == 0 => return Some(i),
            // Any other byte cannot be part of a start code beginning at i, i + 1 or i + 2.
            _ => i += 3,
        }
    }
    None
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let len = nal.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    &nal[..len]
}

/// The kind of a coded slice: slice_type (H.264 §7.4.3, Table 7-6) modulo 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceKind {
    P,
    B,
    I,
    Sp,
    Si,
}

/// The kind of the coded slice `nal` (nal_unit_type 1 to 5), read from the start of its slice
/// header (H.264 §7.3.3: first_mb_in_slice, then slice_type); `None` for other NAL units or a
/// header too short to read. A B slice means the stream reorders pictures.
pub fn slice_kind(nal: &[u8]) -> Option<SliceKind> {
    if !(NAL_SLICE_NON_IDR..=NAL_IDR).contains(&nal_unit_type(nal)?) {
        return None;
    }
    // Two Exp-Golomb codes: a few bytes of RBSP, well within the first 16.
    let head = nal.get(1..nal.len().min(17))?;
    let rbsp = remove_emulation_prevention(head);
    let mut r = BitReader::new(&rbsp);
    let _first_mb_in_slice = r.read_ue().ok()?;
    Some(match r.read_ue().ok()? % 5 {
        0 => SliceKind::P,
        1 => SliceKind::B,
        2 => SliceKind::I,
        3 => SliceKind::Sp,
        _ => SliceKind::Si,
    })
}

/// Whether an Annex B stream's first NAL unit header looks like H.265's rather than H.264's:
/// an H.265 stream begins with a VPS, SPS or PPS (H.265 §7.3.1.2: types 32 to 34 in bits 1 to
/// 6, `nuh_layer_id` 0, `nuh_temporal_id_plus1` 1), whose first two bytes read as H.264 are a
/// reserved or forbidden pattern (`40 01`, `42 01`, `44 01`).
pub fn looks_like_h265(nal: &[u8]) -> bool {
    matches!(nal, [0x40 | 0x42 | 0x44, 0x01, ..])
}

/// The RFC 6381 §3.3 codec string of an H.264 stream, `avc1.PPCCLL`: profile_idc, the
/// constraint flags byte and level_idc of its SPS, in upper-case hex (e.g. `avc1.42C01F`).
/// `None` if `sps_nal` is not an SPS of at least four bytes.
pub fn rfc6381_codec(sps_nal: &[u8]) -> Option<String> {
    if nal_unit_type(sps_nal) != Some(NAL_SPS) {
        return None;
    }
    match sps_nal.get(1..4)? {
        [profile, constraints, level] => {
            Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
        }
        _ => None,
    }
}

/// One access unit converted for an ISOBMFF `avc1` track: its NAL units with 4-byte big-endian
/// length prefixes, minus the parameter sets and delimiters, which belong in the avcC box
/// (14496-15 §5.3.2: for `avc1` the parameter sets live in the sample entry).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvccSample {
    /// Each remaining NAL unit preceded by its length as a 4-byte big-endian integer.
    pub data: Vec<u8>,
    /// The access unit holds an IDR slice, so decoding can start here.
    pub is_idr: bool,
    /// The SPS found in the access unit, if any (the first one).
    pub sps: Option<Vec<u8>>,
    /// The PPS found in the access unit, if any (the first one).
    pub pps: Option<Vec<u8>>,
}

/// Converts one access unit from Annex-B to an [`AvccSample`].
///
/// SPS, PPS and access unit delimiter NAL units are taken out; every other NAL unit (slices,
/// SEI, ...) is kept in order. A NAL unit longer than `u32::MAX` bytes cannot be given a
/// 4-byte length and is dropped; no encoder produces one.
pub fn to_avcc_sample(annex_b: &[u8]) -> AvccSample {
    let mut sample = AvccSample {
        data: Vec::with_capacity(annex_b.len() + 16),
        ..AvccSample::default()
    };
    for nal in split_annex_b(annex_b) {
        match nal_unit_type(nal) {
            Some(NAL_SPS) => {
                sample.sps.get_or_insert_with(|| nal.to_vec());
            }
            Some(NAL_PPS) => {
                sample.pps.get_or_insert_with(|| nal.to_vec());
            }
            Some(NAL_AUD) => {}
            nal_type => {
                let Ok(len) = u32::try_from(nal.len()) else {
                    continue;
                };
                sample.is_idr |= nal_type == Some(NAL_IDR);
                sample.data.extend_from_slice(&len.to_be_bytes());
                sample.data.extend_from_slice(nal);
            }
        }
    }
    sample
}

/// The fields of a sequence parameter set (H.264 §7.3.2.1.1) that a muxer and a playlist need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// profile_idc: 66 Baseline, 77 Main, 100 High, 110 High 10, 244 High 4:4:4, ...
    pub profile_idc: u8,
    /// The byte after profile_idc as written: constraint_set0_flag (MSB) to
    /// constraint_set5_flag and two reserved bits. RFC 6381 calls it profile compatibility.
    pub constraint_set_flags: u8,
    /// level_idc: ten times the level number (31 is level 3.1), except 9 for level 1b.
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. Absent from the SPS (so 1) below High profile.
    pub chroma_format_idc: u8,
    /// 4:4:4 coded as three separate colour planes.
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub log2_max_frame_num: u8,
    /// 0, 1 or 2 (H.264 §8.2.1).
    pub pic_order_cnt_type: u8,
    pub max_num_ref_frames: u32,
    /// False when pictures may be coded as fields (interlaced).
    pub frame_mbs_only: bool,
    /// Width of the decoded picture in pixels: whole macroblocks, before cropping.
    pub coded_width: u32,
    /// Height of the decoded picture in pixels: whole macroblocks, before cropping.
    pub coded_height: u32,
    /// Displayed width in pixels, after the frame cropping rectangle (H.264 §7.4.2.1.1).
    pub width: u32,
    /// Displayed height in pixels, after the frame cropping rectangle (H.264 §7.4.2.1.1).
    pub height: u32,
    /// VUI timing information (H.264 §E.2.1), if the encoder wrote it.
    pub timing: Option<VuiTiming>,
}

/// The timing fields of the VUI (H.264 §E.1.1, §E.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VuiTiming {
    pub num_units_in_tick: u32,
    pub time_scale: u32,
    pub fixed_frame_rate: bool,
}

impl VuiTiming {
    /// Frames per second, or `None` if a field is zero. A frame lasts two ticks: H.264 §E.2.1
    /// counts ticks per field, so 30 fps is written as `time_scale / num_units_in_tick = 60`.
    pub fn frame_rate_hz(&self) -> Option<f64> {
        if self.num_units_in_tick == 0 || self.time_scale == 0 {
            return None;
        }
        Some(f64::from(self.time_scale) / (2.0 * f64::from(self.num_units_in_tick)))
    }
}

/// Why an SPS could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpsError {
    /// The NAL unit is empty (`None`) or of another type.
    #[error("not an SPS (nal_unit_type {0:?})")]
    NotSps(Option<u8>),
    #[error("SPS ends early")]
    Truncated,
    /// A field holds a value the standard does not allow.
    #[error("SPS field {field} has a value out of range: {value}")]
    OutOfRange { field: &'static str, value: i64 },
    /// The picture size, after cropping, is empty or does not fit in 32 bits.
    #[error("SPS picture size is empty or too large")]
    BadDimensions,
}

/// Parses the SPS NAL unit `nal` (with its one-byte NAL header, without a start code).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, SpsError> {
    let nal_type = nal_unit_type(nal);
    if nal_type != Some(NAL_SPS) {
        return Err(SpsError::NotSps(nal_type));
    }
    let rbsp = remove_emulation_prevention(&nal[1..]);
    let mut r = BitReader::new(&rbsp);

    // H.264 §7.3.2.1.1, in order.
    let profile_idc = r.read_u8()?;
    let constraint_set_flags = r.read_u8()?;
    let level_idc = r.read_u8()?;
    let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.read_flag()?;
        }
        bit_depth_luma = 8 + r.read_ue_max("bit_depth_luma_minus8", 6)? as u8;
        bit_depth_chroma = 8 + r.read_ue_max("bit_depth_chroma_minus8", 6)? as u8;
        let _qpprime_y_zero_transform_bypass = r.read_flag()?;
        if r.read_flag()? {
            // seq_scaling_matrix_present_flag: 6 4x4 lists, then 2 8x8 lists (6 for 4:4:4).
            let list_count = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..list_count {
                if r.read_flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    let log2_max_frame_num = 4 + r.read_ue_max("log2_max_frame_num_minus4", 12)? as u8;
    let pic_order_cnt_type = r.read_ue_max("pic_order_cnt_type", 2)? as u8;
    match pic_order_cnt_type {
        0 => {
            r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.read_flag()?;
            let _offset_for_non_ref_pic = r.read_se()?;
            let _offset_for_top_to_bottom_field = r.read_se()?;
            let cycle_len = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle_len {
                let _offset_for_ref_frame = r.read_se()?;
            }
        }
        _ => {}
    }
    // MaxDpbFrames is at most 16 at any level (H.264 §A.3.1 h, §A.3.2 f).
    let max_num_ref_frames = r.read_ue_max("max_num_ref_frames", 16)?;
    let _gaps_in_frame_num_value_allowed = r.read_flag()?;
    let pic_width_in_mbs = u64::from(r.read_ue()?) + 1;
    let pic_height_in_map_units = u64::from(r.read_ue()?) + 1;
    let frame_mbs_only = r.read_flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.read_flag()?;
    }
    let _direct_8x8_inference = r.read_flag()?;
    let crop = if r.read_flag()? {
        [r.read_ue()?, r.read_ue()?, r.read_ue()?, r.read_ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    let timing = if r.read_flag()? {
        read_vui_timing(&mut r)?
    } else {
        None
    };

    // H.264 §7.4.2.1.1: sizes in macroblocks, then the cropping rectangle in crop units.
    let frame_height_in_mbs = (2 - u64::from(frame_mbs_only)) * pic_height_in_map_units;
    let coded_width = pic_width_in_mbs * 16;
    let coded_height = frame_height_in_mbs * 16;
    let field_factor = 2 - u64::from(frame_mbs_only);
    let (crop_unit_x, crop_unit_y) = if separate_colour_plane || chroma_format_idc == 0 {
        // ChromaArrayType 0.
        (1, field_factor)
    } else {
        let (sub_width_c, sub_height_c) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        (sub_width_c, sub_height_c * field_factor)
    };
    let [left, right, top, bottom] = crop;
    let width = coded_width
        .checked_sub(crop_unit_x * (left + right))
        .filter(|&w| w > 0);
    let height = coded_height
        .checked_sub(crop_unit_y * (top + bottom))
        .filter(|&h| h > 0);
    let (Some(width), Some(height)) = (width, height) else {
        return Err(SpsError::BadDimensions);
    };
    let to_u32 = |v: u64| u32::try_from(v).map_err(|_| SpsError::BadDimensions);

    Ok(Sps {
        profile_idc,
        constraint_set_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma,
        bit_depth_chroma,
        log2_max_frame_num,
        pic_order_cnt_type,
        max_num_ref_frames,
        frame_mbs_only,
        coded_width: to_u32(coded_width)?,
        coded_height: to_u32(coded_height)?,
        width: to_u32(width)?,
        height: to_u32(height)?,
        timing,
    })
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling lists
/// (the `if (profile_idc == 100 || ...)` branch of H.264 §7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Reads past one scaling_list() (H.264 §7.3.2.1.1.1); the values themselves are not needed.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta_scale = i64::from(r.read_se()?);
            if !(-128..=127).contains(&delta_scale) {
                return Err(SpsError::OutOfRange {
                    field: "delta_scale",
                    value: delta_scale,
                });
            }
            next_scale = (last_scale + delta_scale + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Reads vui_parameters() (H.264 §E.1.1) up to and including timing_info; what follows
/// (HRD, bitstream restrictions) is not needed.
fn read_vui_timing(r: &mut BitReader<'_>) -> Result<Option<VuiTiming>, SpsError> {
    /// aspect_ratio_idc value meaning an explicit sar_width and sar_height follow (Table E-1).
    const EXTENDED_SAR: u32 = 255;
    if r.read_flag()? && r.read_bits(8)? == EXTENDED_SAR {
        r.read_bits(32)?; // sar_width, sar_height
    }
    if r.read_flag()? {
        r.read_flag()?; // overscan_appropriate_flag
    }
    if r.read_flag()? {
        r.read_bits(4)?; // video_format, video_full_range_flag
        if r.read_flag()? {
            r.read_bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.read_flag()? {
        r.read_ue()?; // chroma_sample_loc_type_top_field
        r.read_ue()?; // chroma_sample_loc_type_bottom_field
    }
    if !r.read_flag()? {
        return Ok(None);
    }
    Ok(Some(VuiTiming {
        num_units_in_tick: r.read_bits(32)?,
        time_scale: r.read_bits(32)?,
        fixed_frame_rate: r.read_flag()?,
    }))
}

/// The RBSP of a NAL unit payload: every emulation_prevention_three_byte (a `03` after two
/// zero bytes) removed (H.264 §7.3.1, §7.4.1).
fn remove_emulation_prevention(payload: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &byte in payload {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    rbsp
}

/// Reads bits MSB first from an RBSP, as H.264 §7.2 `read_bits()`.
struct BitReader<'a> {
    data: &'a [u8],
    pos_bits: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos_bits: 0 }
    }

    fn read_flag(&mut self) -> Result<bool, SpsError> {
        let byte = self
            .data
            .get(self.pos_bits / 8)
            .ok_or(SpsError::Truncated)?;
        let bit = (byte >> (7 - self.pos_bits % 8)) & 1;
        self.pos_bits += 1;
        Ok(bit == 1)
    }

    /// Reads `count` (at most 32) bits as an unsigned integer.
    fn read_bits(&mut self, count: u32) -> Result<u32, SpsError> {
        debug_assert!(count <= 32);
        let mut value: u64 = 0;
        for _ in 0..count {
            value = (value << 1) | u64::from(self.read_flag()?);
        }
        // At most 32 bits were read.
        Ok(value as u32)
    }

    fn read_u8(&mut self) -> Result<u8, SpsError> {
        Ok(self.read_bits(8)? as u8)
    }

    /// An unsigned Exp-Golomb code, ue(v) (H.264 §9.1).
    fn read_ue(&mut self) -> Result<u32, SpsError> {
        let mut leading_zeros: u32 = 0;
        while !self.read_flag()? {
            leading_zeros += 1;
            // 32 leading zeros would code a value above u32::MAX, which no syntax element uses.
            if leading_zeros > 31 {
                return Err(SpsError::OutOfRange {
                    field: "exp-Golomb code",
                    value: i64::from(leading_zeros),
                });
            }
        }
        let suffix = u64::from(self.read_bits(leading_zeros)?);
        // At most 2^32 - 2.
        Ok(((1u64 << leading_zeros) - 1 + suffix) as u32)
    }

    /// ue(v) that must not exceed `max` for the field `field`.
    fn read_ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, SpsError> {
        let value = self.read_ue()?;
        if value > max {
            return Err(SpsError::OutOfRange {
                field,
                value: i64::from(value),
            });
        }
        Ok(value)
    }

    /// A signed Exp-Golomb code, se(v) (H.264 §9.1.1): 0, 1, -1, 2, -2, ...
    fn read_se(&mut self) -> Result<i32, SpsError> {
        let code = i64::from(self.read_ue()?);
        let value = if code % 2 == 1 {
            (code + 1) / 2
        } else {
            -(code / 2)
        };
        // |value| <= 2^31 - 1 since code <= 2^32 - 2.
        Ok(value as i32)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slice_kinds_come_from_the_slice_header() {
        // first_mb_in_slice = 0 ("1"), then slice_type: ue(0) "1" = P, ue(1) "010" = B,
        // ue(7) "0001000" = I (7 - 5: every slice of the picture is I).
        assert_eq!(slice_kind(&[0x41, 0b1100_0000]), Some(SliceKind::P));
        assert_eq!(slice_kind(&[0x01, 0b1010_0000]), Some(SliceKind::B));
        assert_eq!(slice_kind(&[0x65, 0x88, 0x84]), Some(SliceKind::I));
        assert_eq!(slice_kind(&[0x67, 0x42]), None, "an SPS is no slice");
        assert_eq!(slice_kind(&[0x41]), None, "no header");
        assert_eq!(slice_kind(&[0x41, 0x00, 0x00, 0x00]), None, "unreadable");
    }

    #[test]
    fn h265_parameter_sets_are_told_apart() {
        assert!(looks_like_h265(&[0x40, 0x01, 0x0C]));
        assert!(looks_like_h265(&[0x42, 0x01, 0x01]));
        assert!(!looks_like_h265(&[0x67, 0x42, 0xC0]));
        assert!(!looks_like_h265(&[0x65, 0x88]));
    }

    use super::*;

    /// Real SPS and PPS NAL units. The x264 ones come from Debian's ffmpeg with libx264
    /// (`-f lavfi -i testsrc=size=WxH:rate=30 -c:v libx264 -profile:v P -f h264`), the openh264
    /// ones from the openh264 crate 0.9 with its default configuration.
    mod golden {
        /// x264, 1280x720, Constrained Baseline, level 3.1, VUI timing 30 fps.
        pub const X264_720P_BASELINE: &[u8] = &[
            0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
        ];
        /// x264, 1920x1080 (coded 1088, cropped by 8 lines), Main, level 4.0.
        pub const X264_1080P_MAIN: &[u8] = &[
            0x67, 0x4d, 0x40, 0x28, 0xec, 0xa0, 0x3c, 0x01, 0x13, 0xf2, 0xe0, 0x22, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x1e, 0x30, 0x63, 0x2c,
        ];
        /// x264, 640x360 (coded 368), High, level 3.0.
        pub const X264_360P_HIGH: &[u8] = &[
            0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00,
            0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
        ];
        /// x264, 642x362 4:4:4 (crop unit 1x1), High 4:4:4 Predictive, level 3.0.
        pub const X264_444: &[u8] = &[
            0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x14, 0x85, 0xfc, 0x7c, 0xf8, 0x08, 0x80,
            0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8b, 0x16, 0xcb,
        ];
        /// x264, 720x480 interlaced (frame_mbs_only_flag 0, MBAFF), High, level 3.0.
        pub const X264_INTERLACED: &[u8] = &[
            0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x7b, 0x60, 0x22, 0x00, 0x00, 0x03,
            0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x3e, 0x28, 0x53, 0x2c,
        ];
        /// x264, 1920x1080, 10-bit 4:2:0, High 10, level 4.0.
        pub const X264_1080P_HIGH10: &[u8] = &[
            0x67, 0x6e, 0x00, 0x28, 0xa6, 0xcd, 0x94, 0x07, 0x80, 0x22, 0x7e, 0x5c, 0x04, 0x40,
            0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0x65, 0x80,
        ];
        /// openh264, 1280x720, Constrained Baseline, level 3.1, no VUI timing.
        pub const OPENH264_720P: &[u8] = &[
            0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x68, 0x05, 0x00, 0x5b, 0xa0, 0x1e, 0x11, 0x08, 0xd4,
        ];
        /// openh264, 640x360 (coded 368), Constrained Baseline, level 2.2.
        pub const OPENH264_360P: &[u8] = &[
            0x67, 0x42, 0xc0, 0x16, 0x8c, 0x68, 0x0a, 0x02, 0xf7, 0x96, 0x01, 0xe1, 0x10, 0x8d,
            0x40,
        ];
        /// openh264's PPS, the same at every size.
        pub const OPENH264_PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

        pub const ALL_SPS: &[&[u8]] = &[
            X264_720P_BASELINE,
            X264_1080P_MAIN,
            X264_360P_HIGH,
            X264_444,
            X264_INTERLACED,
            X264_1080P_HIGH10,
            OPENH264_720P,
            OPENH264_360P,
        ];
    }

    /// Writes RBSP bits MSB first, to build SPSs with syntax no available encoder emits.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bit_len: usize,
    }

    impl BitWriter {
        fn bits(&mut self, count: u32, value: u64) -> &mut Self {
            for i in (0..count).rev() {
                let bit_in_byte = self.bit_len % 8;
                if bit_in_byte == 0 {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (7 - bit_in_byte);
                self.bit_len += 1;
            }
            self
        }

        fn flag(&mut self, value: bool) -> &mut Self {
            self.bits(1, u64::from(value))
        }

        fn ue(&mut self, value: u32) -> &mut Self {
            let code = u64::from(value) + 1;
            let len = 64 - code.leading_zeros();
            self.bits(len - 1, 0).bits(len, code)
        }

        fn se(&mut self, value: i32) -> &mut Self {
            let code = if value > 0 {
                2 * value as u32 - 1
            } else {
                2 * value.unsigned_abs()
            };
            self.ue(code)
        }

        /// rbsp_trailing_bits, then emulation prevention, behind an SPS NAL header.
        fn into_sps_nal(mut self) -> Vec<u8> {
            self.flag(true);
            let padding_bits = (8 - self.bit_len % 8) % 8;
            self.bits(padding_bits as u32, 0);
            let mut nal = vec![0x67];
            let mut zeros = 0;
            for byte in self.bytes {
                if zeros >= 2 && byte <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if byte == 0 { zeros + 1 } else { 0 };
                nal.push(byte);
            }
            nal
        }
    }

    /// Everything of an SPS after pic_order_cnt_type's fields: one ref frame, the given size in
    /// macroblocks and map units, the given cropping, no VUI.
    fn write_sps_tail(
        w: &mut BitWriter,
        width_mbs: u32,
        height_map_units: u32,
        frame_mbs_only: bool,
        crop: Option<[u32; 4]>,
    ) {
        w.ue(1)
            .flag(false)
            .ue(width_mbs - 1)
            .ue(height_map_units - 1);
        w.flag(frame_mbs_only);
        if !frame_mbs_only {
            w.flag(false);
        }
        w.flag(true).flag(crop.is_some());
        for offset in crop.into_iter().flatten() {
            w.ue(offset);
        }
        w.flag(false);
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x09, 0xf0, // AUD after a 4-byte start code
            0, 0, 1, 0x67, 0x42, // SPS after a 3-byte start code
            0, 0, 0, 1, 0x65, 0x88, 0x00, 0x01, // IDR ending in 00 01
        ];
        let nals: Vec<&[u8]> = split_annex_b(&stream).collect();
        assert_eq!(
            nals,
            [&[0x09, 0xf0][..], &[0x67, 0x42], &[0x65, 0x88, 0x00, 0x01]]
        );
    }

    #[test]
    fn trailing_and_leading_bytes_belong_to_no_nal() {
        let stream = [
            0xff, 0x12, // garbage before the first start code
            0, 0, 1, 0x41, 0x9a, 0, 0, // trailing_zero_8bits
            0, 0, 0, 1, 0x41, 0x9b, 0, 0, 0, 0, // more trailing zeros at the end
        ];
        let nals: Vec<&[u8]> = split_annex_b(&stream).collect();
        assert_eq!(nals, [&[0x41, 0x9a][..], &[0x41, 0x9b]]);
    }

    #[test]
    fn split_skips_empty_nals_and_handles_degenerate_input() {
        let nals: Vec<&[u8]> = split_annex_b(&[0, 0, 1, 0, 0, 1, 0x09, 0x10, 0, 0, 1]).collect();
        assert_eq!(nals, [&[0x09, 0x10][..]]);
        for stream in [
            &[][..],
            &[0],
            &[0, 0],
            &[0, 0, 1],
            &[0, 0, 0, 1],
            &[1, 2, 3, 4],
        ] {
            assert_eq!(split_annex_b(stream).count(), 0, "{stream:?}");
        }
        // Bytes after a start code that is the last thing in the stream.
        let nals: Vec<&[u8]> = split_annex_b(&[0, 0, 1, 0x68]).collect();
        assert_eq!(nals, [&[0x68][..]]);
    }

    #[test]
    fn split_keeps_emulation_prevented_zeros() {
        // 00 00 03 inside a NAL unit is not a start code.
        let stream = [0, 0, 1, 0x65, 0, 0, 3, 1, 0, 0, 3, 0, 0x80];
        let nals: Vec<&[u8]> = split_annex_b(&stream).collect();
        assert_eq!(nals, [&stream[3..]]);
    }

    #[test]
    fn nal_types() {
        assert_eq!(nal_unit_type(&[]), None);
        assert_eq!(nal_unit_type(&[0x67, 0x42]), Some(NAL_SPS));
        assert_eq!(nal_unit_type(&[0x68]), Some(NAL_PPS));
        assert_eq!(nal_unit_type(&[0x65]), Some(NAL_IDR));
        assert_eq!(nal_unit_type(&[0x41]), Some(NAL_SLICE_NON_IDR));
        assert_eq!(nal_unit_type(&[0x06]), Some(NAL_SEI));
        assert_eq!(nal_unit_type(&[0x09]), Some(NAL_AUD));
    }

    #[test]
    fn parses_x264_720p_baseline() {
        let sps = parse_sps(golden::X264_720P_BASELINE).unwrap();
        assert_eq!(
            sps,
            Sps {
                profile_idc: 66,
                constraint_set_flags: 0xc0,
                level_idc: 31,
                seq_parameter_set_id: 0,
                chroma_format_idc: 1,
                separate_colour_plane: false,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                log2_max_frame_num: 4,
                pic_order_cnt_type: 2,
                max_num_ref_frames: 3,
                frame_mbs_only: true,
                coded_width: 1280,
                coded_height: 720,
                width: 1280,
                height: 720,
                timing: Some(VuiTiming {
                    num_units_in_tick: 1,
                    time_scale: 60,
                    fixed_frame_rate: false,
                }),
            }
        );
        assert_eq!(sps.timing.unwrap().frame_rate_hz(), Some(30.0));
    }

    #[test]
    fn parses_sizes_profiles_and_cropping_of_real_encoders() {
        // (SPS, profile_idc, coded size, displayed size, chroma_format_idc, luma bit depth,
        //  frame_mbs_only)
        let cases = [
            (
                golden::X264_1080P_MAIN,
                77,
                (1920, 1088),
                (1920, 1080),
                1,
                8,
                true,
            ),
            (
                golden::X264_360P_HIGH,
                100,
                (640, 368),
                (640, 360),
                1,
                8,
                true,
            ),
            (golden::X264_444, 244, (656, 368), (642, 362), 3, 8, true),
            (
                golden::X264_INTERLACED,
                100,
                (720, 480),
                (720, 480),
                1,
                8,
                false,
            ),
            (
                golden::X264_1080P_HIGH10,
                110,
                (1920, 1088),
                (1920, 1080),
                1,
                10,
                true,
            ),
            (
                golden::OPENH264_720P,
                66,
                (1280, 720),
                (1280, 720),
                1,
                8,
                true,
            ),
            (
                golden::OPENH264_360P,
                66,
                (640, 368),
                (640, 360),
                1,
                8,
                true,
            ),
        ];
        for (nal, profile, coded, shown, chroma, depth, frame_mbs_only) in cases {
            let sps = parse_sps(nal).unwrap();
            assert_eq!(sps.profile_idc, profile, "{sps:?}");
            assert_eq!((sps.coded_width, sps.coded_height), coded, "{sps:?}");
            assert_eq!((sps.width, sps.height), shown, "{sps:?}");
            assert_eq!(sps.chroma_format_idc, chroma, "{sps:?}");
            assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (depth, depth));
            assert_eq!(sps.frame_mbs_only, frame_mbs_only, "{sps:?}");
        }
        assert_eq!(parse_sps(golden::OPENH264_720P).unwrap().timing, None);
    }

    #[test]
    fn parses_poc_type_1_and_scaling_lists() {
        let mut w = BitWriter::default();
        w.bits(8, 100).bits(8, 0).bits(8, 40).ue(3); // High, level 4.0, sps id 3
        w.ue(1).ue(0).ue(0).flag(false); // 4:2:0, 8-bit, no bypass
        w.flag(true); // seq_scaling_matrix_present_flag
        for i in 0..8 {
            match i {
                // A full 4x4 list of explicit deltas.
                0 => {
                    w.flag(true);
                    for _ in 0..16 {
                        w.se(-3);
                    }
                }
                // A list that stops early: nextScale 0 means "use the default matrix".
                1 => {
                    w.flag(true).se(-8);
                }
                // An 8x8 list with the extreme deltas.
                6 => {
                    w.flag(true);
                    w.se(-128).se(127); // 136, then 7
                    for _ in 2..64 {
                        w.se(1);
                    }
                }
                _ => {
                    w.flag(false);
                }
            }
        }
        w.ue(2).ue(1); // log2_max_frame_num 6, pic_order_cnt_type 1
        w.flag(false).se(-2).se(1).ue(3).se(4).se(-5).se(6);
        write_sps_tail(&mut w, 40, 23, true, Some([0, 0, 0, 4]));
        let sps = parse_sps(&w.into_sps_nal()).unwrap();
        assert_eq!(sps.seq_parameter_set_id, 3);
        assert_eq!(sps.log2_max_frame_num, 6);
        assert_eq!(sps.pic_order_cnt_type, 1);
        assert_eq!((sps.width, sps.height), (640, 360));
    }

    #[test]
    fn parses_444_scaling_lists_and_separate_planes() {
        let mut w = BitWriter::default();
        w.bits(8, 244).bits(8, 0).bits(8, 30).ue(0);
        w.ue(3).flag(true).ue(2).ue(2).flag(false); // 4:4:4 separate planes, 10-bit
        w.flag(true);
        for i in 0..12 {
            // Only the last of the twelve lists, which exists only for 4:4:4.
            w.flag(i == 11);
        }
        for _ in 0..64 {
            w.se(1);
        }
        w.ue(0).ue(0).ue(0); // log2_max_frame_num 4, POC type 0, lsb 4 bits
        // Interlaced, so crop units are 1 x 2 for ChromaArrayType 0.
        write_sps_tail(&mut w, 20, 8, false, Some([1, 1, 1, 1]));
        let sps = parse_sps(&w.into_sps_nal()).unwrap();
        assert!(sps.separate_colour_plane);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
        assert_eq!((sps.coded_width, sps.coded_height), (320, 256));
        assert_eq!((sps.width, sps.height), (318, 252));
    }

    #[test]
    fn interlaced_420_crops_in_units_of_four_lines() {
        let mut w = BitWriter::default();
        w.bits(8, 77).bits(8, 0).bits(8, 30).ue(0).ue(0).ue(2);
        // 1920x1088 as 68 map units of field pairs; bottom crop 2 units = 8 lines.
        write_sps_tail(&mut w, 120, 34, false, Some([0, 0, 0, 2]));
        let sps = parse_sps(&w.into_sps_nal()).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
    }

    #[test]
    fn rejects_out_of_range_fields_and_bad_cropping() {
        let mut w = BitWriter::default();
        w.bits(8, 66).bits(8, 0).bits(8, 30).ue(32); // seq_parameter_set_id 32
        write_sps_tail(&mut w, 1, 1, true, None);
        assert_eq!(
            parse_sps(&w.into_sps_nal()),
            Err(SpsError::OutOfRange {
                field: "seq_parameter_set_id",
                value: 32
            })
        );

        let mut w = BitWriter::default();
        w.bits(8, 66).bits(8, 0).bits(8, 30).ue(0).ue(0).ue(3); // pic_order_cnt_type 3
        write_sps_tail(&mut w, 1, 1, true, None);
        assert!(matches!(
            parse_sps(&w.into_sps_nal()),
            Err(SpsError::OutOfRange {
                field: "pic_order_cnt_type",
                ..
            })
        ));

        // Cropping 16 pixels off a 16-pixel-wide picture leaves nothing.
        let mut w = BitWriter::default();
        w.bits(8, 66).bits(8, 0).bits(8, 30).ue(0).ue(0).ue(2);
        write_sps_tail(&mut w, 1, 1, true, Some([4, 4, 0, 0]));
        assert_eq!(parse_sps(&w.into_sps_nal()), Err(SpsError::BadDimensions));

        assert_eq!(parse_sps(&[]), Err(SpsError::NotSps(None)));
        assert_eq!(
            parse_sps(golden::OPENH264_PPS),
            Err(SpsError::NotSps(Some(NAL_PPS)))
        );
    }

    #[test]
    fn every_prefix_of_a_real_sps_errs_or_agrees() {
        for &full in golden::ALL_SPS {
            let whole = parse_sps(full).unwrap();
            for len in 0..full.len() {
                // A prefix may parse when it only lost fields after VUI timing, but it must
                // never give another picture size.
                if let Ok(sps) = parse_sps(&full[..len]) {
                    assert_eq!((sps.width, sps.height), (whole.width, whole.height));
                }
            }
            // The fixed header and the picture size are always needed.
            assert_eq!(parse_sps(&full[..5]), Err(SpsError::Truncated));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift64: deterministic, so a failure can be replayed.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut nal: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(header) = nal.first_mut() {
                *header = 0x67;
            }
            if let Ok(sps) = parse_sps(&nal) {
                parsed += 1;
                assert!(sps.width > 0 && sps.height > 0);
            }
            let _ = to_avcc_sample(&nal);
            let _ = rfc6381_codec(&nal);
        }
        // Sanity check that the generator reaches past the header checks sometimes.
        assert!(parsed > 0);
    }

    #[test]
    fn all_ones_and_long_zero_runs_are_errors() {
        // 32 leading zeros: an Exp-Golomb code beyond u32.
        let nal = [0x67, 0x42, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x80];
        assert!(matches!(parse_sps(&nal), Err(SpsError::OutOfRange { .. })));
        assert!(parse_sps(&[0x67, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn removes_emulation_prevention_bytes() {
        assert_eq!(
            remove_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 3, 0, 3]),
            [0, 0, 1, 0, 0, 0, 0, 3, 0, 3]
        );
    }

    #[test]
    fn codec_strings() {
        assert_eq!(
            rfc6381_codec(golden::X264_720P_BASELINE).as_deref(),
            Some("avc1.42C01F")
        );
        assert_eq!(
            rfc6381_codec(golden::X264_360P_HIGH).as_deref(),
            Some("avc1.64001E")
        );
        assert_eq!(
            rfc6381_codec(golden::X264_1080P_MAIN).as_deref(),
            Some("avc1.4D4028")
        );
        assert_eq!(rfc6381_codec(&[0x67, 0x42, 0xc0]), None);
        assert_eq!(rfc6381_codec(golden::OPENH264_PPS), None);
        assert_eq!(rfc6381_codec(&[]), None);
    }

    #[test]
    fn avcc_sample_moves_parameter_sets_out() {
        let mut annex_b = vec![0, 0, 0, 1, 0x09, 0x10]; // AUD
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(golden::OPENH264_720P);
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(golden::OPENH264_PPS);
        annex_b.extend_from_slice(&[0, 0, 1, 0x06, 0x05, 0x01, 0xaa, 0x80]); // SEI
        annex_b.extend_from_slice(&[0, 0, 1, 0x65, 0xb8, 0x00, 0x04]); // IDR slice
        let sample = to_avcc_sample(&annex_b);
        assert_eq!(
            sample,
            AvccSample {
                data: vec![
                    0, 0, 0, 5, 0x06, 0x05, 0x01, 0xaa, 0x80, // SEI
                    0, 0, 0, 4, 0x65, 0xb8, 0x00, 0x04, // IDR slice
                ],
                is_idr: true,
                sps: Some(golden::OPENH264_720P.to_vec()),
                pps: Some(golden::OPENH264_PPS.to_vec()),
            }
        );
    }

    #[test]
    fn avcc_sample_of_a_p_frame() {
        let annex_b = [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0, 0, 0, 1, 0x41, 0x9a, 0x03];
        let sample = to_avcc_sample(&annex_b);
        assert_eq!(
            sample.data,
            [0, 0, 0, 3, 0x41, 0x9a, 0x02, 0, 0, 0, 3, 0x41, 0x9a, 0x03]
        );
        assert!(!sample.is_idr);
        assert_eq!((sample.sps, sample.pps), (None, None));
        assert_eq!(to_avcc_sample(&[]), AvccSample::default());
    }
}
