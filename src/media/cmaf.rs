//! Fragmented MP4 (CMAF) boxes for one H.264 video track: the init segment (`ftyp` + `moov`)
//! and media fragments (`moof` + `mdat`), as HLS and `/live.mp4` serve them.
//!
//! References: ISO/IEC 14496-12 (ISOBMFF), cited as "14496-12 §x"; ISO/IEC 14496-15 (AVC in
//! ISOBMFF), cited as "14496-15 §x"; ISO/IEC 23000-19 (CMAF).
//!
//! Boxes are built with the `mp4-atom` crate's types. The older `mp4` crate (0.14, last released
//! in 2023) cannot write fragments: its `traf` drops `tfdt` and `trun`, its `moov` drops `mvex`,
//! and most fragment boxes are private. Two containers are assembled here rather than by
//! mp4-atom's structs, both through mp4-atom's `encode_atom`, so no box size is counted by hand:
//!
//! - `moov`, `trak`, `mdia` and `minf`, so that their children come in the order 14496-12 §6.2.3
//!   recommends (Table 1): mp4-atom's structs write `mvex` before `trak` and `vmhd` after `stbl`,
//!   which is legal, but the recommended order is the one players are most tested with.
//! - `mdat`, written straight from the samples' bytes instead of first copying them into the
//!   `Vec` of an `mp4_atom::Mdat`.
//!
//! Pure: bytes in, bytes out, no I/O.

use bytes::Bytes;
use mp4_atom::{
    Atom, Avc1, Avcc, AvccExt, BufMut as _, Dinf, Dref, Encode, FourCC, Ftyp, Hdlr, Matrix, Mdat,
    Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak,
    Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

use crate::frame::FrameSize;
use crate::media::h264::{self, SpsError};

/// The media timescale of the video track: the 90 kHz clock every frame is stamped with, so
/// sample durations and decode times need no conversion.
pub const TIMESCALE_90K: u32 = 90_000;

/// The one track of every file; also what `tfhd` refers to.
pub const TRACK_ID: u32 = 1;

/// The movie timescale (`mvhd`). Every duration that uses it is zero in a fragmented file, so
/// any valid value works; 1000 is the customary one.
const MOVIE_TIMESCALE: u32 = 1000;

/// Sample flags (14496-12 §8.8.3.1) of a sync sample (an IDR picture): sample_depends_on = 2
/// (depends on no other sample), sample_is_non_sync_sample = 0.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;

/// Sample flags (14496-12 §8.8.3.1) of any other sample: sample_depends_on = 1 (depends on
/// others), sample_is_non_sync_sample = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Size of an `mdat` header (32-bit size + type): `trun.data_offset` points past it.
const MDAT_HEADER_LEN: usize = 8;

/// ftyp major brand (14496-12 §4.3). `iso6` is the oldest ISOBMFF edition with everything the
/// fragments use (`tfdt`, default-base-is-moof).
const MAJOR_BRAND: &[u8; 4] = b"iso6";

/// ftyp compatible brands: `iso6` again (the major brand belongs in the list too); `cmfc`, a
/// CMAF track (23000-19 §7.2); `cmf2`, whose extra constraints concern edit lists and
/// composition offsets, and these files have neither; `mp41`, as ffmpeg's HLS fMP4 output
/// lists it, for tools that look for an MP4 brand before they parse.
const COMPATIBLE_BRANDS: [&[u8; 4]; 4] = [b"iso6", b"cmfc", b"cmf2", b"mp41"];

/// The H.264 video track an init segment describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// The displayed picture size; the SPS's size after cropping.
    pub size: FrameSize,
    /// The SPS NAL unit, without start code.
    pub sps: Vec<u8>,
    /// The PPS NAL unit, without start code.
    pub pps: Vec<u8>,
}

/// One video frame of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Time until the next frame, on the 90 kHz clock; never zero.
    pub duration_90k: u32,
    /// An IDR picture: a player can start decoding here.
    pub is_sync: bool,
    /// The access unit in AVCC form (4-byte lengths), see [`h264::to_avcc_sample`].
    pub data: Bytes,
}

/// Why boxes could not be written. Every case is a caller's bug or a broken encoder.
#[derive(Debug, thiserror::Error)]
pub enum CmafError {
    #[error("picture size {0} does not fit the 16-bit width and height of a sample entry")]
    BadSize(FrameSize),
    #[error("the track's SPS is invalid: {0}")]
    Sps(#[from] SpsError),
    #[error("the track's PPS is not a PPS NAL unit")]
    NotPps,
    #[error("a parameter set of {len_bytes} bytes does not fit avcC's 16-bit length")]
    ParameterSetTooLong { len_bytes: usize },
    #[error("a fragment needs at least one sample")]
    NoSamples,
    #[error("sample {index} of the fragment has a zero duration")]
    ZeroDuration { index: usize },
    #[error("a fragment of {len_bytes} bytes does not fit 32-bit box sizes and offsets")]
    TooLarge { len_bytes: usize },
    #[error("box encoding failed: {0}")]
    Encode(#[from] mp4_atom::Error),
}

/// The init segment of `track`: `ftyp` then `moov` with one video track, empty sample tables
/// and `mvex`, so that all samples come in fragments (14496-12 §8.8).
pub fn init_segment(track: &VideoTrack) -> Result<Vec<u8>, CmafError> {
    let (width, height) = match (
        u16::try_from(track.size.width),
        u16::try_from(track.size.height),
    ) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(CmafError::BadSize(track.size)),
    };
    let avcc = avc_decoder_configuration(&track.sps, &track.pps)?;

    // 14496-12 §4.3 File Type Box.
    let ftyp = Ftyp {
        major_brand: MAJOR_BRAND.into(),
        minor_version: 0,
        compatible_brands: COMPATIBLE_BRANDS.iter().map(|&b| b.into()).collect(),
    };
    // 14496-12 §8.2.2 Movie Header Box. Duration 0: the length is unknown, fragments follow.
    let mvhd = Mvhd {
        creation_time: 0,
        modification_time: 0,
        timescale: MOVIE_TIMESCALE,
        duration: 0,
        rate: 1.into(),
        volume: 1.into(),
        matrix: Matrix::default(),
        next_track_id: TRACK_ID + 1,
    };
    // 14496-12 §8.3.2 Track Header Box: enabled, in the movie, width and height in 16.16.
    let tkhd = Tkhd {
        track_id: TRACK_ID,
        duration: 0,
        enabled: true,
        in_movie: true,
        width: width.into(),
        height: height.into(),
        ..Tkhd::default()
    };
    // 14496-12 §8.4.2 Media Header Box.
    let mdhd = Mdhd {
        timescale: TIMESCALE_90K,
        duration: 0,
        language: "und".into(),
        ..Mdhd::default()
    };
    // 14496-12 §8.4.3 Handler Reference Box.
    let hdlr = Hdlr {
        handler: FourCC::new(b"vide"),
        name: "VideoHandler".into(),
    };
    // 14496-12 §12.1.2 Video Media Header Box: copy mode, no op colour.
    let vmhd = Vmhd::default();
    // 14496-12 §8.7.1, §8.7.2 Data Information and Data Reference Boxes: one self-contained
    // `url ` entry, meaning the media is in this same file.
    let dinf = Dinf {
        dref: Dref {
            entries: vec![Url::default().into()],
        },
    };
    // 14496-12 §8.5.2 Sample Description Box with 14496-15 §5.4.2 AVCSampleEntry `avc1`, and
    // the mandatory sample tables (stts, stsc, stsz, stco), empty (14496-12 §8.8.1).
    let stbl = Stbl {
        stsd: Stsd {
            codecs: vec![
                Avc1 {
                    visual: Visual {
                        data_reference_index: 1,
                        width,
                        height,
                        ..Visual::default()
                    },
                    avcc,
                    ..Avc1::default()
                }
                .into(),
            ],
        },
        stco: Some(Stco::default()),
        ..Stbl::default()
    };
    // 14496-12 §8.8.1 Movie Extends Box, §8.8.3 Track Extends Box. Every trun carries its own
    // durations, sizes and flags, so the defaults are zero.
    let mvex = Mvex {
        mehd: None,
        trex: vec![Trex {
            track_id: TRACK_ID,
            default_sample_description_index: 1,
            default_sample_duration: 0,
            default_sample_size: 0,
            default_sample_flags: 0,
        }],
    };

    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out)?;
    // 14496-12 §8.2.1 Movie Box and below, children in the order of 14496-12 Table 1.
    out.encode_atom(Moov::KIND, |buf| {
        mvhd.encode(buf)?;
        buf.encode_atom(Trak::KIND, |buf| {
            tkhd.encode(buf)?;
            buf.encode_atom(Mdia::KIND, |buf| {
                mdhd.encode(buf)?;
                hdlr.encode(buf)?;
                buf.encode_atom(Minf::KIND, |buf| {
                    vmhd.encode(buf)?;
                    dinf.encode(buf)?;
                    stbl.encode(buf)
                })
            })
        })?;
        mvex.encode(buf)
    })?;
    Ok(out)
}

/// The AVCDecoderConfigurationRecord (14496-15 §5.3.3.1) of one SPS and one PPS.
fn avc_decoder_configuration(sps_nal: &[u8], pps_nal: &[u8]) -> Result<Avcc, CmafError> {
    let sps = h264::parse_sps(sps_nal)?;
    if h264::nal_unit_type(pps_nal) != Some(h264::NAL_PPS) {
        return Err(CmafError::NotPps);
    }
    for nal in [sps_nal, pps_nal] {
        if u16::try_from(nal.len()).is_err() {
            return Err(CmafError::ParameterSetTooLong {
                len_bytes: nal.len(),
            });
        }
    }
    // 14496-15 §5.3.3.1.2: profiles above Main, Extended and Baseline add the chroma format and
    // bit depths after the parameter sets.
    let ext = (!matches!(sps.profile_idc, 66 | 77 | 88)).then(|| AvccExt {
        chroma_format: sps.chroma_format_idc,
        bit_depth_luma: sps.bit_depth_luma,
        bit_depth_chroma: sps.bit_depth_chroma,
        sequence_parameter_sets_ext: Vec::new(),
    });
    Ok(Avcc {
        configuration_version: 1,
        // Bytes 1 to 3 of the SPS, as the record requires.
        avc_profile_indication: sps.profile_idc,
        profile_compatibility: sps.constraint_set_flags,
        avc_level_indication: sps.level_idc,
        length_size: h264::AVCC_LENGTH_SIZE as u8,
        sequence_parameter_sets: vec![sps_nal.to_vec()],
        picture_parameter_sets: vec![pps_nal.to_vec()],
        ext,
    })
}

/// One media fragment: a `moof` describing `samples`, then the `mdat` holding them.
///
/// `sequence_number` goes into `mfhd` and should increase by one per fragment;
/// `base_media_decode_time_90k` is the decode time of the first sample (`tfdt`), which must
/// continue where the previous fragment ended.
pub fn fragment(
    sequence_number: u32,
    base_media_decode_time_90k: u64,
    samples: &[Sample],
) -> Result<Vec<u8>, CmafError> {
    if samples.is_empty() {
        return Err(CmafError::NoSamples);
    }
    let mut entries = Vec::with_capacity(samples.len());
    let mut mdat_len = MDAT_HEADER_LEN;
    for (index, sample) in samples.iter().enumerate() {
        if sample.duration_90k == 0 {
            return Err(CmafError::ZeroDuration { index });
        }
        mdat_len = mdat_len.saturating_add(sample.data.len());
        let size = u32::try_from(sample.data.len()).map_err(|_| CmafError::TooLarge {
            len_bytes: sample.data.len(),
        })?;
        entries.push(TrunEntry {
            duration: Some(sample.duration_90k),
            size: Some(size),
            flags: Some(if sample.is_sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            }),
            cts: None,
        });
    }

    // 14496-12 §8.8.4 Movie Fragment Box, §8.8.5 mfhd, §8.8.6 traf, §8.8.7 tfhd,
    // §8.8.12 tfdt, §8.8.8 trun.
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: vec![Traf {
            // default-base-is-moof: data offsets count from the first byte of this moof.
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_base_is_moof: true,
                ..Tfhd::default()
            },
            // mp4-atom always writes tfdt version 1 (64-bit), which a 90 kHz clock needs
            // after 13 hours.
            tfdt: Some(Tfdt {
                base_media_decode_time: base_media_decode_time_90k,
            }),
            trun: vec![Trun {
                // Set below, once the moof's size is known.
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Traf::default()
        }],
    };

    // trun.data_offset is the distance from the moof's first byte to the first sample, which
    // depends on the encoded moof size: encode once to learn it. The offset field has a fixed
    // width, so the second encoding has the same size.
    let mut out = Vec::new();
    moof.encode(&mut out)?;
    let moof_len = out.len();
    let total_len = moof_len.saturating_add(mdat_len);
    // The mdat size is a 32-bit field and data_offset a signed 32-bit one.
    let data_offset = i32::try_from(moof_len + MDAT_HEADER_LEN);
    let (Ok(data_offset), Ok(_)) = (data_offset, u32::try_from(total_len)) else {
        return Err(CmafError::TooLarge {
            len_bytes: total_len,
        });
    };
    for trun in moof.traf.iter_mut().flat_map(|traf| traf.trun.iter_mut()) {
        trun.data_offset = Some(data_offset);
    }
    out.clear();
    out.reserve(total_len);
    moof.encode(&mut out)?;

    // 14496-12 §8.1.1 Media Data Box.
    out.encode_atom(Mdat::KIND, |buf| {
        for sample in samples {
            buf.append_slice(&sample.data);
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::Decode;

    /// openh264's SPS and PPS for 320x240 (Constrained Baseline, level 1.1).
    const SPS_320X240: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0b, 0x8c, 0x68, 0x14, 0x1f, 0x20, 0x1e, 0x11, 0x08, 0xd4,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    /// x264's SPS for 640x360 High profile, level 3.0, and its PPS.
    const SPS_HIGH_360P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];
    const PPS_HIGH: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn track_320x240() -> VideoTrack {
        VideoTrack {
            size: FrameSize::new(320, 240),
            sps: SPS_320X240.to_vec(),
            pps: PPS.to_vec(),
        }
    }

    fn two_samples() -> Vec<Sample> {
        vec![
            Sample {
                duration_90k: 3000,
                is_sync: true,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            },
            Sample {
                duration_90k: 3003,
                is_sync: false,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            },
        ]
    }

    /// Bytes from hex text; whitespace and `#` comments to the end of a line are ignored, so
    /// goldens can be laid out one box per line.
    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
            .collect();
        assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The path of every box in `data` ("moov/trak/tkhd", ...) in file order, checking on the
    /// way that each box's size is at least its header and that children exactly fill their
    /// parent.
    fn box_paths(data: &[u8]) -> Vec<String> {
        fn walk(data: &[u8], parent: &str, out: &mut Vec<String>) {
            let mut rest = data;
            while !rest.is_empty() {
                assert!(rest.len() >= 8, "{parent}: {} stray bytes", rest.len());
                let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                let kind = std::str::from_utf8(&rest[4..8]).unwrap().to_string();
                assert!(
                    (8..=rest.len()).contains(&size),
                    "{parent}/{kind}: size {size} with {} bytes left",
                    rest.len()
                );
                let path = if parent.is_empty() {
                    kind.clone()
                } else {
                    format!("{parent}/{kind}")
                };
                out.push(path.clone());
                let body = &rest[8..size];
                // Bytes before the children: full box headers, entry counts, sample entries.
                let children_at = match kind.as_str() {
                    "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof"
                    | "traf" => Some(0),
                    "dref" | "stsd" => Some(8),
                    // SampleEntry (8) + VisualSampleEntry (70), 14496-12 §12.1.3.
                    "avc1" => Some(78),
                    _ => None,
                };
                if let Some(at) = children_at {
                    walk(&body[at..], &path, out);
                }
                rest = &rest[size..];
            }
        }
        let mut out = Vec::new();
        walk(data, "", &mut out);
        out
    }

    /// The first box of type `kind` at the top level of `data`, header included.
    fn top_level_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        let mut rest = data;
        loop {
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            if &rest[4..8] == kind {
                return &rest[..size];
            }
            rest = &rest[size..];
        }
    }

    /// The golden init segment for [`track_320x240`]; any byte change fails on purpose, so
    /// that a change of output is always a decision. Each line is one box (or box header).
    const INIT_320X240: &str = "
        00000020 66747970 69736f36 00000000 69736f36 636d6663 636d6632 6d703431 # ftyp
        0000028f 6d6f6f76 # moov
          00000078 6d766864 01000000 # mvhd v1
            0000000000000000 0000000000000000 000003e8 0000000000000000 # times, timescale, duration
            00010000 0100 0000 0000000000000000 # rate, volume, reserved
            00010000 00000000 00000000 00000000 00010000 00000000 00000000 00000000 40000000
            000000000000000000000000000000000000000000000000 00000002 # pre_defined, next_track_id
          000001e7 7472616b # trak
            00000068 746b6864 01000007 # tkhd v1, enabled | in movie | in preview
              0000000000000000 0000000000000000 00000001 00000000 0000000000000000
              0000000000000000 0000 0000 0000 0000 # reserved, layer, group, volume, reserved
              00010000 00000000 00000000 00000000 00010000 00000000 00000000 00000000 40000000
              01400000 00f00000 # width 320.0, height 240.0
            00000177 6d646961 # mdia
              0000002c 6d646864 01000000 # mdhd v1
                0000000000000000 0000000000000000 00015f90 0000000000000000 55c4 0000 # 90 kHz, und
              0000002d 68646c72 00000000 00000000 76696465 000000000000000000000000
                566964656f48616e646c657200 # hdlr vide VideoHandler
              00000116 6d696e66 # minf
                00000014 766d6864 00000001 0000 000000000000 # vmhd
                00000024 64696e66 0000001c 64726566 00000000 00000001 # dinf, dref
                  0000000c 75726c20 00000001 # url, self-contained
                000000d6 7374626c # stbl
                  0000008a 73747364 00000000 00000001 # stsd, one entry
                    0000007a 61766331 000000000000 0001 # avc1, data_reference_index 1
                      0000 0000 000000000000000000000000 0140 00f0 # width, height
                      00480000 00480000 00000000 0001 # 72 dpi, frame_count 1
                      0000000000000000000000000000000000000000000000000000000000000000 # compressor
                      0018 ffff # depth, pre_defined
                      00000024 61766343 01 42 c0 0b ff # avcC: profile, compat, level, 4-byte lengths
                        e1 000d 6742c00b8c68141f201e1108d4 # one SPS
                        01 0004 68ce3c80 # one PPS
                  00000010 73747473 00000000 00000000 # stts
                  00000010 73747363 00000000 00000000 # stsc
                  00000014 7374737a 00000000 00000000 00000000 # stsz
                  00000010 7374636f 00000000 00000000 # stco
          00000028 6d766578 # mvex
            00000020 74726578 00000000 00000001 00000001 00000000 00000000 00000000 # trex
    ";

    /// The golden fragment of [`two_samples`] with sequence number 7 and a decode time past
    /// 32 bits.
    const FRAGMENT_TWO_SAMPLES: &str = "
        00000070 6d6f6f66 # moof
          00000010 6d666864 00000000 00000007 # mfhd, sequence_number 7
          00000058 74726166 # traf
            00000010 74666864 00020000 00000001 # tfhd, default-base-is-moof, track 1
            00000014 74666474 01000000 0000000123456789 # tfdt v1
            0000002c 7472756e 01000701 00000002 00000078 # trun: offset, duration, size, flags
              00000bb8 00000006 02000000 # 3000, 6 bytes, sync
              00000bbb 00000005 01010000 # 3003, 5 bytes, non-sync
        00000013 6d646174 00000002 6588 00000001 41 # mdat
    ";

    #[test]
    fn init_segment_golden_bytes() {
        let init = init_segment(&track_320x240()).unwrap();
        assert_eq!(init, hex(INIT_320X240));
    }

    #[test]
    fn fragment_golden_bytes() {
        let fragment = fragment(7, 0x1_2345_6789, &two_samples()).unwrap();
        assert_eq!(fragment, hex(FRAGMENT_TWO_SAMPLES));
    }

    #[test]
    fn init_segment_box_tree() {
        let init = init_segment(&track_320x240()).unwrap();
        assert_eq!(
            box_paths(&init),
            [
                "ftyp",
                "moov",
                "moov/mvhd",
                "moov/trak",
                "moov/trak/tkhd",
                "moov/trak/mdia",
                "moov/trak/mdia/mdhd",
                "moov/trak/mdia/hdlr",
                "moov/trak/mdia/minf",
                "moov/trak/mdia/minf/vmhd",
                "moov/trak/mdia/minf/dinf",
                "moov/trak/mdia/minf/dinf/dref",
                "moov/trak/mdia/minf/dinf/dref/url ",
                "moov/trak/mdia/minf/stbl",
                "moov/trak/mdia/minf/stbl/stsd",
                "moov/trak/mdia/minf/stbl/stsd/avc1",
                "moov/trak/mdia/minf/stbl/stsd/avc1/avcC",
                "moov/trak/mdia/minf/stbl/stts",
                "moov/trak/mdia/minf/stbl/stsc",
                "moov/trak/mdia/minf/stbl/stsz",
                "moov/trak/mdia/minf/stbl/stco",
                "moov/mvex",
                "moov/mvex/trex",
            ]
        );
    }

    #[test]
    fn init_segment_fields() {
        let init = init_segment(&track_320x240()).unwrap();
        let mut buf = init.as_slice();
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, FourCC::new(b"iso6"));
        assert!(ftyp.compatible_brands.contains(&FourCC::new(b"iso6")));
        let moov = Moov::decode(&mut buf).unwrap();
        assert!(buf.is_empty());

        assert_eq!(moov.mvhd.duration, 0);
        assert_eq!(moov.mvhd.next_track_id, 2);
        let trak = &moov.trak[0];
        assert_eq!(moov.trak.len(), 1);
        assert_eq!(trak.tkhd.track_id, TRACK_ID);
        assert_eq!(trak.tkhd.duration, 0);
        assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
        assert_eq!(
            (trak.tkhd.width.integer(), trak.tkhd.height.integer()),
            (320, 240)
        );
        assert_eq!(trak.mdia.mdhd.timescale, TIMESCALE_90K);
        assert_eq!(trak.mdia.mdhd.duration, 0);
        assert_eq!(trak.mdia.hdlr.handler, FourCC::new(b"vide"));
        assert!(trak.mdia.minf.vmhd.is_some());

        let stbl = &trak.mdia.minf.stbl;
        let [mp4_atom::Codec::Avc1(avc1)] = stbl.stsd.codecs.as_slice() else {
            panic!("expected one avc1 entry, got {:?}", stbl.stsd.codecs);
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (320, 240));
        assert_eq!(avc1.avcc.length_size, 4);
        assert_eq!(
            (
                avc1.avcc.avc_profile_indication,
                avc1.avcc.profile_compatibility,
                avc1.avcc.avc_level_indication
            ),
            (SPS_320X240[1], SPS_320X240[2], SPS_320X240[3])
        );
        assert_eq!(avc1.avcc.sequence_parameter_sets, [SPS_320X240]);
        assert_eq!(avc1.avcc.picture_parameter_sets, [PPS]);
        assert_eq!(avc1.avcc.ext, None);
        assert!(stbl.stts.entries.is_empty() && stbl.stsc.entries.is_empty());
        assert!(
            stbl.stco
                .as_ref()
                .is_some_and(|stco| stco.entries.is_empty())
        );

        let trex = &moov.mvex.as_ref().unwrap().trex;
        assert_eq!(trex.len(), 1);
        assert_eq!(
            (trex[0].track_id, trex[0].default_sample_description_index),
            (TRACK_ID, 1)
        );
    }

    #[test]
    fn high_profile_avcc_carries_chroma_format_and_bit_depths() {
        let track = VideoTrack {
            size: FrameSize::new(640, 360),
            sps: SPS_HIGH_360P.to_vec(),
            pps: PPS_HIGH.to_vec(),
        };
        let init = init_segment(&track).unwrap();
        let mut buf = init.as_slice();
        Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        let mp4_atom::Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("not avc1");
        };
        assert_eq!(avc1.avcc.avc_profile_indication, 100);
        assert_eq!(
            avc1.avcc.ext,
            Some(AvccExt {
                chroma_format: 1,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                sequence_parameter_sets_ext: vec![],
            })
        );
    }

    #[test]
    fn fragment_invariants() {
        let samples = two_samples();
        let fragment = fragment(3, 90_000, &samples).unwrap();
        assert_eq!(
            box_paths(&fragment),
            [
                "moof",
                "moof/mfhd",
                "moof/traf",
                "moof/traf/tfhd",
                "moof/traf/tfdt",
                "moof/traf/trun",
                "mdat",
            ]
        );
        let moof_bytes = top_level_box(&fragment, b"moof");
        let moof = Moof::decode(&mut &moof_bytes[..]).unwrap();
        assert_eq!(moof.mfhd.sequence_number, 3);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, TRACK_ID);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.base_data_offset, None);
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 90_000);

        // tfdt is version 1 (64-bit) whatever the time: the byte after its header.
        let tfdt_at = moof_bytes.windows(4).position(|w| w == b"tfdt").unwrap();
        assert_eq!(moof_bytes[tfdt_at + 4], 1);

        // data_offset, counted from the moof's first byte, lands on the first payload byte.
        let trun = &traf.trun[0];
        let offset = trun.data_offset.unwrap() as usize;
        assert_eq!(offset, moof_bytes.len() + 8);
        let mut at = offset;
        for (entry, sample) in trun.samples.iter().zip(&samples) {
            let size = entry.size.unwrap() as usize;
            assert_eq!(&fragment[at..at + size], &sample.data[..]);
            at += size;
            assert_eq!(entry.duration, Some(sample.duration_90k));
            let flags = entry.flags.unwrap();
            let depends_on = (flags >> 24) & 0b11;
            let is_non_sync = (flags >> 16) & 1;
            if sample.is_sync {
                assert_eq!((depends_on, is_non_sync), (2, 0));
            } else {
                assert_eq!((depends_on, is_non_sync), (1, 1));
            }
        }
        assert_eq!(at, fragment.len(), "mdat holds exactly the samples");
    }

    #[test]
    fn data_offset_follows_the_moof_size() {
        // More samples make a bigger trun, so the offset must move with them.
        let sample = Sample {
            duration_90k: 3000,
            is_sync: false,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
        };
        for count in [1, 2, 30, 300] {
            let samples = vec![sample.clone(); count];
            let fragment = fragment(1, 0, &samples).unwrap();
            let moof_len = top_level_box(&fragment, b"moof").len();
            let moof = Moof::decode(&mut &fragment[..moof_len]).unwrap();
            assert_eq!(
                moof.traf[0].trun[0].data_offset,
                Some((moof_len + 8) as i32)
            );
            assert_eq!(fragment.len(), moof_len + 8 + 5 * count);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let mut samples = two_samples();
        samples[1].duration_90k = 0;
        assert!(matches!(
            fragment(1, 0, &samples),
            Err(CmafError::ZeroDuration { index: 1 })
        ));
        assert!(matches!(fragment(1, 0, &[]), Err(CmafError::NoSamples)));

        for size in [
            FrameSize::new(0, 240),
            FrameSize::new(320, 0),
            FrameSize::new(65_536, 240),
        ] {
            let track = VideoTrack {
                size,
                ..track_320x240()
            };
            assert!(matches!(init_segment(&track), Err(CmafError::BadSize(_))));
        }
        let swapped = VideoTrack {
            size: FrameSize::new(320, 240),
            sps: PPS.to_vec(),
            pps: SPS_320X240.to_vec(),
        };
        assert!(matches!(init_segment(&swapped), Err(CmafError::Sps(_))));
        let bad_pps = VideoTrack {
            pps: vec![0x65, 0x00],
            ..track_320x240()
        };
        assert!(matches!(init_segment(&bad_pps), Err(CmafError::NotPps)));
        let mut long_pps = PPS.to_vec();
        long_pps.resize(70_000, 0x80);
        let long = VideoTrack {
            pps: long_pps,
            ..track_320x240()
        };
        assert!(matches!(
            init_segment(&long),
            Err(CmafError::ParameterSetTooLong { len_bytes: 70_000 })
        ));
    }

    /// Runs a command, giving up after `timeout`.
    fn run_with_timeout(
        command: &mut std::process::Command,
        timeout: std::time::Duration,
    ) -> std::process::Output {
        use std::process::Stdio;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + timeout;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{command:?} still running after {timeout:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    }

    /// Real H.264 from openh264, through `to_avcc_sample`, `init_segment` and two `fragment`s,
    /// read back by ffprobe: codec, size, frame count, key frames, sync flags and timestamps must
    /// all match, and decoding must not log a single error.
    #[test]
    fn ffprobe_reads_real_h264_fragments() {
        use openh264::OpenH264API;
        use openh264::encoder::{Encoder, EncoderConfig};
        use openh264::formats::YUVBuffer;
        use std::process::Command;

        if Command::new("ffprobe").arg("-version").output().is_err() {
            eprintln!("ffprobe is not on PATH: skipping the ffprobe check");
            return;
        }
        const WIDTH: usize = 320;
        const HEIGHT: usize = 240;
        const FRAMES: usize = 12;
        const FRAME_DURATION_90K: u32 = 3000;

        let config = EncoderConfig::new().skip_frames(false);
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
        let mut samples = Vec::new();
        let mut parameter_sets = None;
        for n in 0..FRAMES {
            // A moving diagonal gradient, so that P frames carry real motion.
            let mut i420 = vec![128u8; WIDTH * HEIGHT * 3 / 2];
            for y in 0..HEIGHT {
                for x in 0..WIDTH {
                    i420[y * WIDTH + x] = ((x + 2 * y + 8 * n) % 256) as u8;
                }
            }
            let yuv = YUVBuffer::from_vec(i420, WIDTH, HEIGHT);
            let annex_b = encoder.encode(&yuv).unwrap().to_vec();
            let avcc = h264::to_avcc_sample(&annex_b);
            assert_eq!(avcc.is_idr, n == 0, "frame {n}");
            if let (Some(sps), Some(pps)) = (avcc.sps, avcc.pps) {
                parameter_sets.get_or_insert((sps, pps));
            }
            samples.push(Sample {
                duration_90k: FRAME_DURATION_90K,
                is_sync: avcc.is_idr,
                data: Bytes::from(avcc.data),
            });
        }
        let (sps, pps) = parameter_sets.expect("openh264 sends SPS and PPS with the IDR");
        assert_eq!(h264::rfc6381_codec(&sps).as_deref(), Some("avc1.42C00B"));

        let track = VideoTrack {
            size: FrameSize::new(WIDTH as u32, HEIGHT as u32),
            sps,
            pps,
        };
        let half = FRAMES / 2;
        let mut file = init_segment(&track).unwrap();
        file.extend(fragment(1, 0, &samples[..half]).unwrap());
        let second_start_90k = u64::from(FRAME_DURATION_90K) * half as u64;
        file.extend(fragment(2, second_start_90k, &samples[half..]).unwrap());

        let path =
            std::env::temp_dir().join(format!("framecast-cmaf-test-{}.mp4", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let output = run_with_timeout(
            Command::new("ffprobe")
                .args(["-v", "error", "-count_frames", "-of", "flat"])
                .args(["-show_entries"])
                .arg(concat!(
                    "stream=codec_name,width,height,time_base,nb_read_frames",
                    ":frame=key_frame,pts:packet=flags"
                ))
                .arg(&path),
            std::time::Duration::from_secs(30),
        );
        let _ = std::fs::remove_file(&path);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "ffprobe failed: {stderr}");
        assert!(stderr.trim().is_empty(), "ffprobe complained: {stderr}");

        // `-of flat` prints `section.n.key=value`; the section names differ between ffprobe
        // versions (`frames` or `packets_and_frames`), so look values up by key suffix.
        let value = |key_suffix: &str| -> String {
            stdout
                .lines()
                .find_map(|line| {
                    let (key, value) = line.split_once('=')?;
                    key.ends_with(key_suffix)
                        .then(|| value.trim_matches('"').to_string())
                })
                .unwrap_or_else(|| panic!("no {key_suffix} in:\n{stdout}"))
        };
        assert_eq!(value("stream.0.codec_name"), "h264");
        assert_eq!(value("stream.0.width"), "320");
        assert_eq!(value("stream.0.height"), "240");
        assert_eq!(value("stream.0.time_base"), "1/90000");
        assert_eq!(value("stream.0.nb_read_frames"), FRAMES.to_string());
        // The decoder's view of key frames, then the container's (trun sample flags).
        assert_eq!(value(".frame.0.key_frame"), "1");
        assert_eq!(value(".frame.1.key_frame"), "0");
        assert!(value(".packet.0.flags").starts_with('K'));
        assert!(value(".packet.1.flags").starts_with('_'));
        assert!(value(&format!(".packet.{half}.flags")).starts_with('_'));
        // Timestamps run on across the fragment boundary.
        for n in 0..FRAMES {
            let pts_90k = u64::from(FRAME_DURATION_90K) * n as u64;
            assert_eq!(value(&format!(".frame.{n}.pts")), pts_90k.to_string());
        }
    }
}
