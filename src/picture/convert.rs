//! Conversions from the pixel formats that cameras and pipes deliver to I420, the one format
//! frames travel in. Pure except [`jpeg_to_i420`], which drives a caller-owned libjpeg-turbo
//! decompressor.
//!
//! Sizes and strides are checked once per call, up front, and every failure is an error, never
//! a panic. The inner loops work on blocks of 16 pixels read as 16- or 32-bit words (see
//! `in_blocks`): a byte-strided loop ("every other byte") compiles to scalar code on the
//! x86-64 baseline, which has no byte shuffle, while word shifts and narrowing compile to
//! vector shifts and packs, about ten times faster.

use turbojpeg::{Colorspace, Decompressor, Subsamp, YuvImage};

use crate::frame::FrameSize;
use crate::media::mjpeg_stream::Subsampling;

/// U and V of a grey pixel: chroma is stored with an offset of 128 (JFIF, ITU-T T.871; and
/// ITU-R BT.601 video alike).
const NEUTRAL_CHROMA: u8 = 128;

/// libjpeg-turbo pads each YUV plane row to this many bytes; 1 means tightly packed rows.
const YUV_ROW_ALIGN: usize = 1;

/// The largest picture [`jpeg_to_i420`] decodes, in pixels: 8K UHD. A tiny JPEG's header may
/// claim up to 65500×65500 (libjpeg's limit), whose planes would take gigabytes before decoding
/// could fail.
const MAX_JPEG_PIXELS: usize = 7680 * 4320;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("picture size {width}x{height} cannot be I420: both sides must be even and non-zero")]
    BadSize { width: usize, height: usize },
    #[error("JPEG of {width}x{height} is larger than the {max_pixels}-pixel limit")]
    TooLarge {
        width: usize,
        height: usize,
        max_pixels: usize,
    },
    #[error("{plane} plane: a stride of {stride_bytes} bytes is shorter than a row of {row_bytes}")]
    StrideTooShort {
        plane: &'static str,
        stride_bytes: usize,
        row_bytes: usize,
    },
    #[error("{plane} plane: {got_bytes} bytes, {want_bytes} needed")]
    SourceTooShort {
        plane: &'static str,
        got_bytes: usize,
        want_bytes: usize,
    },
    #[error("destination of {got_bytes} bytes, an I420 frame of {size} takes {want_bytes}")]
    DestinationSize {
        size: FrameSize,
        got_bytes: usize,
        want_bytes: usize,
    },
    #[error("chroma subsampling {0:?} cannot be converted to I420")]
    UnsupportedSubsampling(Subsampling),
    #[error("JPEG colour space {0:?} is neither YCbCr nor greyscale")]
    UnsupportedColorspace(Colorspace),
    #[error("libjpeg-turbo: {0}")]
    Jpeg(#[from] turbojpeg::Error),
}

/// YUYV 4:2:2 packed (`Y0 U Y1 V`, V4L2 `YUYV`) to I420. Rows are `stride_bytes` apart; each
/// output chroma sample is the mean of the two input rows it covers.
pub fn yuyv_to_i420(
    src: &[u8],
    size: FrameSize,
    stride_bytes: usize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    packed_422_to_i420::<0, 8, 24>(src, size, stride_bytes, dst)
}

/// UYVY 4:2:2 packed (`U Y0 V Y1`, V4L2 `UYVY`) to I420; otherwise as [`yuyv_to_i420`].
pub fn uyvy_to_i420(
    src: &[u8],
    size: FrameSize,
    stride_bytes: usize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    packed_422_to_i420::<8, 0, 16>(src, size, stride_bytes, dst)
}

/// NV12 (V4L2 `NV12`: a Y plane, then one plane of interleaved `U V` pairs at half height, both
/// with rows `stride_bytes` apart) to I420.
pub fn nv12_to_i420(
    src: &[u8],
    size: FrameSize,
    stride_bytes: usize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    semi_planar_to_i420::<0, 8>(src, size, stride_bytes, dst)
}

/// NV21: as [`nv12_to_i420`] with `V U` pairs.
pub fn nv21_to_i420(
    src: &[u8],
    size: FrameSize,
    stride_bytes: usize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    semi_planar_to_i420::<8, 0>(src, size, stride_bytes, dst)
}

/// Planar YCbCr as libjpeg-turbo decodes a JPEG (`Decompressor::decompress_to_yuv`): the
/// chroma planes' size follows `subsampling` (full, half width, half height, or both), or
/// there are none for greyscale (`u` and `v` are then ignored).
#[derive(Debug, Clone, Copy)]
pub struct YuvPlanes<'a> {
    pub subsampling: Subsampling,
    pub y: &'a [u8],
    pub y_stride: usize,
    pub u: &'a [u8],
    pub v: &'a [u8],
    /// Row stride of both chroma planes.
    pub uv_stride: usize,
}

/// Converts 4:4:4, 4:2:2, 4:4:0, 4:2:0 or greyscale planes to I420: chroma is averaged down
/// to one sample per 2×2 pixels; greyscale gets neutral chroma.
pub fn yuv_planes_to_i420(
    planes: &YuvPlanes<'_>,
    size: FrameSize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    let (y_out, u_out, v_out) = i420_planes(size, dst)?;
    let (width, height) = (size.width as usize, size.height as usize);
    let chroma_width = width / 2;
    let y_rows = plane_rows("Y", planes.y, 0, planes.y_stride, width, height)?;
    // The input chroma plane's size in samples, per subsampling (T.81 §A.1.1).
    let (in_width, in_height) = match planes.subsampling {
        Subsampling::S444 => (width, height),
        Subsampling::S422 => (chroma_width, height),
        Subsampling::S440 => (width, height / 2),
        Subsampling::S420 => (chroma_width, height / 2),
        Subsampling::Gray => {
            copy_rows(y_rows, y_out, width);
            u_out.fill(NEUTRAL_CHROMA);
            v_out.fill(NEUTRAL_CHROMA);
            return Ok(());
        }
        Subsampling::Other => {
            return Err(ConvertError::UnsupportedSubsampling(planes.subsampling));
        }
    };
    // Every plane is checked before any output is written.
    let u_rows = plane_rows("U", planes.u, 0, planes.uv_stride, in_width, in_height)?;
    let v_rows = plane_rows("V", planes.v, 0, planes.uv_stride, in_width, in_height)?;
    copy_rows(y_rows, y_out, width);
    for (rows, out) in [(u_rows, u_out), (v_rows, v_out)] {
        match planes.subsampling {
            Subsampling::S444 => halve_both(rows, out, chroma_width),
            Subsampling::S422 => halve_rows(rows, out, chroma_width),
            Subsampling::S440 => halve_columns(rows, out, chroma_width),
            _ => copy_rows(rows, out, chroma_width),
        }
    }
    Ok(())
}

/// Decodes a JPEG to I420 in `dst` without going through RGB: libjpeg-turbo decodes to its
/// YCbCr planes (into `scratch` unless they already are I420), which are then subsampled to
/// 4:2:0. Both buffers are reused between calls. `decompressor` must have no scaling factor set.
///
/// This is how a camera's own MJPEG reaches the H.264 encoder while its JPEGs go to viewers
/// unchanged.
pub fn jpeg_to_i420(
    decompressor: &mut Decompressor,
    jpeg: &[u8],
    scratch: &mut Vec<u8>,
    dst: &mut Vec<u8>,
) -> Result<FrameSize, ConvertError> {
    let header = decompressor.read_header(jpeg)?;
    let (width, height) = (header.width, header.height);
    let size = even_size(width, height)?;
    if size.luma_len() > MAX_JPEG_PIXELS {
        return Err(ConvertError::TooLarge {
            width,
            height,
            max_pixels: MAX_JPEG_PIXELS,
        });
    }
    if !matches!(header.colorspace, Colorspace::YCbCr | Colorspace::Gray) {
        return Err(ConvertError::UnsupportedColorspace(header.colorspace));
    }
    let subsampling = match header.subsamp {
        Subsamp::None => Subsampling::S444,
        Subsamp::Sub2x1 => Subsampling::S422,
        Subsamp::Sub2x2 => Subsampling::S420,
        Subsamp::Sub1x2 => Subsampling::S440,
        Subsamp::Gray => Subsampling::Gray,
        _ => return Err(ConvertError::UnsupportedSubsampling(Subsampling::Other)),
    };
    let layout = YuvImage {
        pixels: (),
        width,
        align: YUV_ROW_ALIGN,
        height,
        subsamp: header.subsamp,
    };
    let yuv_len = turbojpeg::yuv_pixels_len(width, YUV_ROW_ALIGN, height, header.subsamp)?;
    // With even sides and unpadded rows, libjpeg-turbo's 4:2:0 planes are exactly I420.
    let direct = subsampling == Subsampling::S420 && yuv_len == size.i420_len();
    let target = if direct { &mut *dst } else { &mut *scratch };
    target.resize(yuv_len, 0);
    decompressor.decompress_to_yuv(
        jpeg,
        YuvImage {
            pixels: &mut target[..],
            width,
            align: YUV_ROW_ALIGN,
            height,
            subsamp: header.subsamp,
        },
    )?;
    if direct {
        return Ok(size);
    }
    let y_len = layout.y_width() * layout.y_height();
    let uv_len = layout.uv_width() * layout.uv_height();
    let (y, chroma) = scratch.split_at(y_len.min(scratch.len()));
    let (u, v) = chroma.split_at(uv_len.min(chroma.len()));
    let planes = YuvPlanes {
        subsampling,
        y,
        y_stride: layout.y_width(),
        u,
        v,
        uv_stride: layout.uv_width(),
    };
    dst.resize(size.i420_len(), 0);
    yuv_planes_to_i420(&planes, size, dst)?;
    Ok(size)
}

/// Pixels per block in the conversion kernels: 16 bytes of output, one SSE2 register, so that
/// even the x86-64 baseline gets whole-register loads, shifts and packs.
const BLOCK: usize = 16;

/// Both packed 4:2:2 layouts. In each 16-bit word (a pixel) luma is at bit `LUMA_SHIFT`; in
/// each 32-bit word (two pixels) U is at bit `U_SHIFT` and V at `V_SHIFT`.
fn packed_422_to_i420<const LUMA_SHIFT: u32, const U_SHIFT: u32, const V_SHIFT: u32>(
    src: &[u8],
    size: FrameSize,
    stride_bytes: usize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    let (y_out, u_out, v_out) = i420_planes(size, dst)?;
    let (width, height) = (size.width as usize, size.height as usize);
    let mut rows = plane_rows("packed 4:2:2", src, 0, stride_bytes, 2 * width, height)?;
    for ((y_pair, u_row), v_row) in y_out
        .chunks_exact_mut(2 * width)
        .zip(u_out.chunks_exact_mut(width / 2))
        .zip(v_out.chunks_exact_mut(width / 2))
    {
        // plane_rows checked that there are `height` rows, so both are always there.
        let (Some(top), Some(bottom)) = (rows.next(), rows.next()) else {
            break;
        };
        let (y_top, y_bottom) = y_pair.split_at_mut(width);
        for (row, y_row) in [(top, y_top), (bottom, y_bottom)] {
            in_blocks::<{ 2 * BLOCK }, BLOCK, 1, 1>([row], [y_row], |[pixels]| {
                let mut luma = [0; BLOCK];
                for (y, word) in luma.iter_mut().zip(words16::<{ 2 * BLOCK }, BLOCK>(pixels)) {
                    *y = (word >> LUMA_SHIFT) as u8;
                }
                [luma]
            });
        }
        in_blocks::<{ 4 * BLOCK }, BLOCK, 2, 2>([top, bottom], [u_row, v_row], |[a, b]| {
            let a = words32::<{ 4 * BLOCK }, BLOCK>(a);
            let b = words32::<{ 4 * BLOCK }, BLOCK>(b);
            let (mut u, mut v) = ([0; BLOCK], [0; BLOCK]);
            for (((u, v), a), b) in u.iter_mut().zip(&mut v).zip(a).zip(b) {
                let u_sum = ((a >> U_SHIFT) & 0xFF) + ((b >> U_SHIFT) & 0xFF);
                let v_sum = ((a >> V_SHIFT) & 0xFF) + ((b >> V_SHIFT) & 0xFF);
                *u = ((u_sum + 1) >> 1) as u8;
                *v = ((v_sum + 1) >> 1) as u8;
            }
            [u, v]
        });
    }
    Ok(())
}

/// Both semi-planar 4:2:0 layouts; in each 16-bit word of the chroma plane U is at bit
/// `U_SHIFT` and V at `V_SHIFT`.
fn semi_planar_to_i420<const U_SHIFT: u32, const V_SHIFT: u32>(
    src: &[u8],
    size: FrameSize,
    stride_bytes: usize,
    dst: &mut [u8],
) -> Result<(), ConvertError> {
    let (y_out, u_out, v_out) = i420_planes(size, dst)?;
    let (width, height) = (size.width as usize, size.height as usize);
    let chroma_offset = stride_bytes
        .checked_mul(height)
        .ok_or(ConvertError::SourceTooShort {
            plane: "UV",
            got_bytes: src.len(),
            want_bytes: usize::MAX,
        })?;
    let y_rows = plane_rows("Y", src, 0, stride_bytes, width, height)?;
    let uv_rows = plane_rows("UV", src, chroma_offset, stride_bytes, width, height / 2)?;
    copy_rows(y_rows, y_out, width);
    for ((u_row, v_row), row) in u_out
        .chunks_exact_mut(width / 2)
        .zip(v_out.chunks_exact_mut(width / 2))
        .zip(uv_rows)
    {
        in_blocks::<{ 2 * BLOCK }, BLOCK, 1, 2>([row], [u_row, v_row], |[pairs]| {
            let (mut u, mut v) = ([0; BLOCK], [0; BLOCK]);
            for ((u, v), word) in u
                .iter_mut()
                .zip(&mut v)
                .zip(words16::<{ 2 * BLOCK }, BLOCK>(pairs))
            {
                *u = (word >> U_SHIFT) as u8;
                *v = (word >> V_SHIFT) as u8;
            }
            [u, v]
        });
    }
    Ok(())
}

/// Runs `kernel` over `NI` input rows and `NO` output rows in lockstep, `I` input bytes and
/// `O` output bytes at a time. Fixed-size arrays let the compiler keep a block in registers;
/// every row is cut to the same number of blocks first, so that no bounds checks remain. A
/// last partial block goes through zero-padded copies, so any width works with one kernel.
///
/// Kernels use plain loops over arrays, not `std::array::from_fn`: that one is not reliably
/// inlined, and a call per block costs more than the block's work.
#[inline(always)]
fn in_blocks<const I: usize, const O: usize, const NI: usize, const NO: usize>(
    inputs: [&[u8]; NI],
    mut outputs: [&mut [u8]; NO],
    kernel: impl Fn([&[u8; I]; NI]) -> [[u8; O]; NO],
) {
    let whole_blocks = inputs
        .iter()
        .map(|row| row.len() / I)
        .chain(outputs.iter().map(|row| row.len() / O))
        .min()
        .unwrap_or(0);
    let input_blocks = inputs.map(|row| {
        row.as_chunks::<I>()
            .0
            .get(..whole_blocks)
            .unwrap_or_default()
    });
    let mut output_blocks = outputs.each_mut().map(|row| {
        row.as_chunks_mut::<O>()
            .0
            .get_mut(..whole_blocks)
            .unwrap_or_default()
    });
    for block in 0..whole_blocks {
        let results = kernel(input_blocks.map(|blocks| &blocks[block]));
        for (row, result) in output_blocks.iter_mut().zip(results) {
            row[block] = result;
        }
    }
    if outputs.iter().all(|row| row.len() <= whole_blocks * O) {
        return;
    }
    let padded = inputs.map(|row| {
        let mut block = [0; I];
        let rest = row.get(whole_blocks * I..).unwrap_or_default();
        let len = rest.len().min(I);
        block[..len].copy_from_slice(&rest[..len]);
        block
    });
    let results = kernel(padded.each_ref());
    for (row, result) in outputs.iter_mut().zip(results) {
        let rest = row.get_mut(whole_blocks * O..).unwrap_or_default();
        let len = rest.len().min(O);
        rest[..len].copy_from_slice(&result[..len]);
    }
}

/// The little-endian 16-bit words of a block.
#[inline(always)]
fn words16<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u16; M] {
    const { assert!(N == 2 * M) };
    let mut words = [0; M];
    for (word, pair) in words.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *word = u16::from_le_bytes(*pair);
    }
    words
}

/// The little-endian 32-bit words of a block.
#[inline(always)]
fn words32<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u32; M] {
    const { assert!(N == 4 * M) };
    let mut words = [0; M];
    for (word, quad) in words.iter_mut().zip(bytes.as_chunks::<4>().0) {
        *word = u32::from_le_bytes(*quad);
    }
    words
}

/// Rows copied as they are (luma, and 4:2:0 chroma).
fn copy_rows<'a>(rows: impl Iterator<Item = &'a [u8]>, out: &mut [u8], out_width: usize) {
    for (out_row, row) in out.chunks_exact_mut(out_width).zip(rows) {
        out_row.copy_from_slice(row);
    }
}

/// 4:2:2 chroma: each output row is the rounded mean of two input rows. A plain byte loop:
/// the compiler turns it into vector averages as it is.
fn halve_rows<'a>(mut rows: impl Iterator<Item = &'a [u8]>, out: &mut [u8], out_width: usize) {
    for out_row in out.chunks_exact_mut(out_width) {
        let (Some(top), Some(bottom)) = (rows.next(), rows.next()) else {
            break;
        };
        for ((o, &a), &b) in out_row.iter_mut().zip(top).zip(bottom) {
            *o = ((u16::from(a) + u16::from(b) + 1) >> 1) as u8;
        }
    }
}

/// 4:4:0 chroma: each output sample is the rounded mean of two neighbours in a row.
fn halve_columns<'a>(rows: impl Iterator<Item = &'a [u8]>, out: &mut [u8], out_width: usize) {
    for (out_row, row) in out.chunks_exact_mut(out_width).zip(rows) {
        in_blocks::<{ 2 * BLOCK }, BLOCK, 1, 1>([row], [out_row], |[pairs]| {
            let mut out = [0; BLOCK];
            for (o, word) in out.iter_mut().zip(words16::<{ 2 * BLOCK }, BLOCK>(pairs)) {
                *o = (((word & 0xFF) + (word >> 8) + 1) >> 1) as u8;
            }
            [out]
        });
    }
}

/// 4:4:4 chroma: each output sample is the rounded mean of a 2×2 block.
fn halve_both<'a>(mut rows: impl Iterator<Item = &'a [u8]>, out: &mut [u8], out_width: usize) {
    for out_row in out.chunks_exact_mut(out_width) {
        let (Some(top), Some(bottom)) = (rows.next(), rows.next()) else {
            break;
        };
        in_blocks::<{ 2 * BLOCK }, BLOCK, 2, 1>([top, bottom], [out_row], |[a, b]| {
            let a = words16::<{ 2 * BLOCK }, BLOCK>(a);
            let b = words16::<{ 2 * BLOCK }, BLOCK>(b);
            let mut out = [0; BLOCK];
            for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
                let sum = (a & 0xFF) + (a >> 8) + (b & 0xFF) + (b >> 8);
                *o = ((sum + 2) >> 2) as u8;
            }
            [out]
        });
    }
}

fn even_size(width: usize, height: usize) -> Result<FrameSize, ConvertError> {
    let bad = ConvertError::BadSize { width, height };
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(bad);
    }
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => Ok(FrameSize::new(w, h)),
        _ => Err(bad),
    }
}

/// The Y, U and V planes of one I420 frame.
type I420PlanesMut<'a> = (&'a mut [u8], &'a mut [u8], &'a mut [u8]);

/// Checks `size` and `dst` and splits `dst` into its Y, U and V planes.
fn i420_planes(size: FrameSize, dst: &mut [u8]) -> Result<I420PlanesMut<'_>, ConvertError> {
    even_size(size.width as usize, size.height as usize)?;
    if dst.len() != size.i420_len() {
        return Err(ConvertError::DestinationSize {
            size,
            got_bytes: dst.len(),
            want_bytes: size.i420_len(),
        });
    }
    let (y, chroma) = dst.split_at_mut(size.luma_len());
    let (u, v) = chroma.split_at_mut(size.chroma_len());
    Ok((y, u, v))
}

/// The `rows` rows of `row_bytes` each that start at `offset` in `src`, `stride_bytes` apart.
/// The last row needs no padding after it. `rows` and `row_bytes` are non-zero.
fn plane_rows<'a>(
    plane: &'static str,
    src: &'a [u8],
    offset: usize,
    stride_bytes: usize,
    row_bytes: usize,
    rows: usize,
) -> Result<impl Iterator<Item = &'a [u8]>, ConvertError> {
    if stride_bytes < row_bytes {
        return Err(ConvertError::StrideTooShort {
            plane,
            stride_bytes,
            row_bytes,
        });
    }
    let want_bytes = stride_bytes
        .checked_mul(rows.saturating_sub(1))
        .and_then(|n| n.checked_add(row_bytes))
        .and_then(|n| n.checked_add(offset));
    let Some(plane_bytes) = want_bytes.and_then(|end| src.get(offset..end)) else {
        return Err(ConvertError::SourceTooShort {
            plane,
            got_bytes: src.len(),
            want_bytes: want_bytes.unwrap_or(usize::MAX),
        });
    };
    // Every chunk but the last is a whole stride; the last is exactly one row.
    Ok(plane_bytes
        .chunks(stride_bytes.max(1))
        .map(move |row| &row[..row_bytes.min(row.len())]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use turbojpeg::{Compressor, Image, PixelFormat};

    const SIZE: FrameSize = FrameSize::new(8, 4);

    /// Deterministic sample values that differ from pixel to pixel and plane to plane.
    fn sample(plane: usize, x: usize, y: usize) -> u8 {
        ((x * 37 + y * 91 + plane * 53) % 251) as u8
    }

    /// Reference I420 from full-resolution per-pixel Y, U, V functions (naive index loops),
    /// with chroma the rounded mean over each 2×2 block of the given chroma grid.
    fn reference_i420(
        size: FrameSize,
        luma: impl Fn(usize, usize) -> u8,
        chroma: impl Fn(usize, usize, usize) -> u8,
        chroma_factor: (usize, usize),
    ) -> Vec<u8> {
        let (w, h) = (size.width as usize, size.height as usize);
        let mut out = vec![0; size.i420_len()];
        for y in 0..h {
            for x in 0..w {
                out[y * w + x] = luma(x, y);
            }
        }
        let (fx, fy) = chroma_factor;
        for plane in 0..2 {
            let base = size.luma_len() + plane * size.chroma_len();
            for y in 0..h / 2 {
                for x in 0..w / 2 {
                    // The distinct chroma samples covering this 2×2 block.
                    let mut sum = 0u32;
                    let mut count = 0u32;
                    for dy in 0..2 / fy {
                        for dx in 0..2 / fx {
                            sum += u32::from(chroma(plane, (2 * x) / fx + dx, (2 * y) / fy + dy));
                            count += 1;
                        }
                    }
                    out[base + y * (w / 2) + x] = ((sum + count / 2) / count) as u8;
                }
            }
        }
        out
    }

    fn packed(size: FrameSize, stride: usize, order: [usize; 4]) -> Vec<u8> {
        let (w, h) = (size.width as usize, size.height as usize);
        let mut src = vec![0xEE; stride * h];
        for y in 0..h {
            for pair in 0..w / 2 {
                let at = y * stride + pair * 4;
                src[at + order[0]] = sample(0, 2 * pair, y);
                src[at + order[1]] = sample(1, pair, y);
                src[at + order[2]] = sample(0, 2 * pair + 1, y);
                src[at + order[3]] = sample(2, pair, y);
            }
        }
        src
    }

    #[test]
    fn yuyv_golden() {
        // 2x2 pixels: rows Y0 U Y1 V.
        let src = [10, 100, 20, 200, 30, 101, 40, 203];
        let mut dst = [0; 6];
        yuyv_to_i420(&src, FrameSize::new(2, 2), 4, &mut dst).unwrap();
        // U = (100 + 101 + 1) / 2 = 101, V = (200 + 203 + 1) / 2 = 202.
        assert_eq!(dst, [10, 20, 30, 40, 101, 202]);
        let src = [100, 10, 200, 20, 101, 30, 203, 40];
        let mut dst = [0; 6];
        uyvy_to_i420(&src, FrameSize::new(2, 2), 4, &mut dst).unwrap();
        assert_eq!(dst, [10, 20, 30, 40, 101, 202]);
    }

    /// Sizes that exercise whole blocks, a partial last block, and only a partial block.
    const TEST_SIZES: [FrameSize; 4] = [
        FrameSize::new(16, 6),
        FrameSize::new(64, 4),
        FrameSize::new(100, 6),
        FrameSize::new(2, 2),
    ];

    #[test]
    fn packed_422_matches_reference_with_padded_stride() {
        for size in TEST_SIZES {
            let row_bytes = 2 * size.width as usize;
            let want = reference_i420(
                size,
                |x, y| sample(0, x, y),
                |plane, x, y| sample(plane + 1, x, y),
                (2, 1),
            );
            for (order, convert) in [
                (
                    [0, 1, 2, 3],
                    yuyv_to_i420 as fn(&[u8], FrameSize, usize, &mut [u8]) -> _,
                ),
                ([1, 0, 3, 2], uyvy_to_i420),
            ] {
                for stride in [row_bytes, row_bytes + 8] {
                    let src = packed(size, stride, order);
                    let mut dst = vec![0; size.i420_len()];
                    convert(&src, size, stride, &mut dst).unwrap();
                    assert_eq!(dst, want, "{size} order {order:?} stride {stride}");
                    // The last row needs no padding.
                    let short = &src[..src.len() - (stride - row_bytes)];
                    convert(short, size, stride, &mut dst).unwrap();
                    assert_eq!(dst, want);
                }
            }
        }
    }

    #[test]
    fn nv12_and_nv21_match_reference() {
        for size in TEST_SIZES {
            let (w, h) = (size.width as usize, size.height as usize);
            let stride = w + 4;
            let want = reference_i420(
                size,
                |x, y| sample(0, x, y),
                |plane, x, y| sample(plane + 1, x, y),
                (2, 2),
            );
            for (u_at, v_at, convert) in [
                (
                    0,
                    1,
                    nv12_to_i420 as fn(&[u8], FrameSize, usize, &mut [u8]) -> _,
                ),
                (1, 0, nv21_to_i420),
            ] {
                let mut src = vec![0xEE; stride * h * 3 / 2];
                for y in 0..h {
                    for x in 0..w {
                        src[y * stride + x] = sample(0, x, y);
                    }
                }
                for y in 0..h / 2 {
                    for x in 0..w / 2 {
                        src[stride * h + y * stride + 2 * x + u_at] = sample(1, x, y);
                        src[stride * h + y * stride + 2 * x + v_at] = sample(2, x, y);
                    }
                }
                let mut dst = vec![0; size.i420_len()];
                convert(&src, size, stride, &mut dst).unwrap();
                assert_eq!(dst, want, "{size} u at {u_at}");
            }
        }
    }

    fn planes_for(size: FrameSize, subsampling: Subsampling, stride_pad: usize) -> [Vec<u8>; 3] {
        let (w, h) = (size.width as usize, size.height as usize);
        let (cw, ch) = match subsampling {
            Subsampling::S444 => (w, h),
            Subsampling::S422 => (w / 2, h),
            Subsampling::S440 => (w, h / 2),
            _ => (w / 2, h / 2),
        };
        let plane = |index: usize, pw: usize, ph: usize| {
            let stride = pw + stride_pad;
            let mut data = vec![0xEE; stride * ph];
            for y in 0..ph {
                for x in 0..pw {
                    data[y * stride + x] = sample(index, x, y);
                }
            }
            data
        };
        [plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch)]
    }

    #[test]
    fn yuv_planes_match_reference_for_every_subsampling() {
        for size in TEST_SIZES {
            let w = size.width as usize;
            for (subsampling, factor) in [
                (Subsampling::S444, (1, 1)),
                (Subsampling::S422, (2, 1)),
                (Subsampling::S440, (1, 2)),
                (Subsampling::S420, (2, 2)),
            ] {
                for pad in [0, 3] {
                    let [y, u, v] = planes_for(size, subsampling, pad);
                    let planes = YuvPlanes {
                        subsampling,
                        y: &y,
                        y_stride: w + pad,
                        u: &u,
                        v: &v,
                        uv_stride: w / factor.0 + pad,
                    };
                    let mut dst = vec![0; size.i420_len()];
                    yuv_planes_to_i420(&planes, size, &mut dst).unwrap();
                    let want = reference_i420(
                        size,
                        |x, y| sample(0, x, y),
                        |plane, x, y| sample(plane + 1, x, y),
                        factor,
                    );
                    assert_eq!(dst, want, "{size} {subsampling:?} pad {pad}");
                }
            }
        }
    }

    #[test]
    fn grey_gets_neutral_chroma() {
        let y: Vec<u8> = (0..32).collect();
        let planes = YuvPlanes {
            subsampling: Subsampling::Gray,
            y: &y,
            y_stride: 8,
            u: &[],
            v: &[],
            uv_stride: 0,
        };
        let mut dst = vec![0; SIZE.i420_len()];
        yuv_planes_to_i420(&planes, SIZE, &mut dst).unwrap();
        assert_eq!(&dst[..32], &y[..]);
        assert!(dst[32..].iter().all(|&c| c == NEUTRAL_CHROMA));
    }

    #[test]
    fn bad_sizes_are_errors_not_panics() {
        let src = vec![0; 1000];
        let mut dst = vec![0; SIZE.i420_len()];
        for size in [
            FrameSize::new(7, 4),
            FrameSize::new(8, 3),
            FrameSize::new(0, 4),
            FrameSize::new(8, 0),
        ] {
            assert!(matches!(
                yuyv_to_i420(&src, size, 16, &mut dst),
                Err(ConvertError::BadSize { .. })
            ));
            assert!(nv12_to_i420(&src, size, 16, &mut dst).is_err());
        }
        assert!(matches!(
            yuyv_to_i420(&src, SIZE, 15, &mut dst),
            Err(ConvertError::StrideTooShort { .. })
        ));
        assert!(matches!(
            yuyv_to_i420(&src[..63], SIZE, 16, &mut dst),
            Err(ConvertError::SourceTooShort { .. })
        ));
        assert!(matches!(
            nv12_to_i420(&src, SIZE, usize::MAX, &mut dst),
            Err(ConvertError::SourceTooShort { .. })
        ));
        assert!(matches!(
            uyvy_to_i420(&src, SIZE, usize::MAX / 2, &mut dst),
            Err(ConvertError::SourceTooShort { .. })
        ));
        assert!(matches!(
            nv21_to_i420(&src, SIZE, 8, &mut dst[1..]),
            Err(ConvertError::DestinationSize { .. })
        ));
        let planes = YuvPlanes {
            subsampling: Subsampling::S422,
            y: &src[..32],
            y_stride: 8,
            u: &src[..16],
            v: &src[..15],
            uv_stride: 4,
        };
        assert!(matches!(
            yuv_planes_to_i420(&planes, SIZE, &mut dst),
            Err(ConvertError::SourceTooShort { plane: "V", .. })
        ));
        let other = YuvPlanes {
            subsampling: Subsampling::Other,
            ..planes
        };
        assert!(matches!(
            yuv_planes_to_i420(&other, SIZE, &mut dst),
            Err(ConvertError::UnsupportedSubsampling(Subsampling::Other))
        ));
    }

    /// A JPEG compressed straight from YCbCr planes with the given subsampling, no RGB involved.
    fn jpeg_from_yuv(size: FrameSize, subsamp: Subsamp) -> Vec<u8> {
        let (w, h) = (size.width as usize, size.height as usize);
        let layout = YuvImage {
            pixels: (),
            width: w,
            align: 1,
            height: h,
            subsamp,
        };
        let mut pixels = Vec::new();
        for y in 0..layout.y_height() {
            for x in 0..layout.y_width() {
                pixels.push(sample(0, x, y) / 2 + 64);
            }
        }
        if subsamp != Subsamp::Gray {
            for plane in 1..3 {
                for y in 0..layout.uv_height() {
                    for x in 0..layout.uv_width() {
                        pixels.push(sample(plane, x, y) / 4 + 96);
                    }
                }
            }
        }
        let mut compressor = Compressor::new().unwrap();
        compressor.set_quality(95).unwrap();
        compressor.set_subsamp(subsamp).unwrap();
        compressor
            .compress_yuv_to_vec(YuvImage {
                pixels: &pixels[..],
                width: w,
                align: 1,
                height: h,
                subsamp,
            })
            .unwrap()
    }

    #[test]
    fn jpeg_to_i420_equals_decoding_to_planes_then_converting() {
        let size = FrameSize::new(48, 32);
        let mut decompressor = Decompressor::new().unwrap();
        let (mut scratch, mut dst) = (Vec::new(), Vec::new());
        for (subsamp, subsampling) in [
            (Subsamp::None, Subsampling::S444),
            (Subsamp::Sub2x1, Subsampling::S422),
            (Subsamp::Sub1x2, Subsampling::S440),
            (Subsamp::Sub2x2, Subsampling::S420),
            (Subsamp::Gray, Subsampling::Gray),
        ] {
            let jpeg = jpeg_from_yuv(size, subsamp);
            let got = jpeg_to_i420(&mut decompressor, &jpeg, &mut scratch, &mut dst).unwrap();
            assert_eq!(got, size);
            assert_eq!(dst.len(), size.i420_len());
            // Reference: libjpeg-turbo's own planes, converted by the naive loops above.
            let yuv = turbojpeg::decompress_to_yuv(&jpeg).unwrap();
            let (w, h) = (yuv.y_width(), yuv.y_height());
            let (cw, ch) = (yuv.uv_width(), yuv.uv_height());
            let px = &yuv.pixels;
            let factor = (w / cw.max(1), h / ch.max(1));
            let want = reference_i420(
                size,
                |x, y| px[y * w + x],
                |plane, x, y| {
                    if subsampling == Subsampling::Gray {
                        NEUTRAL_CHROMA
                    } else {
                        px[w * h + plane * cw * ch + y * cw + x]
                    }
                },
                factor,
            );
            assert_eq!(dst, want, "{subsamp:?}");
        }
    }

    #[test]
    fn jpeg_to_i420_is_close_to_the_rgb_decode() {
        // Cross-check against libjpeg-turbo's RGB output: grey content keeps chroma at 128.
        let size = FrameSize::new(32, 16);
        let rgb: Vec<u8> = (0..32 * 16).flat_map(|i| [(i % 256) as u8; 3]).collect();
        let mut compressor = Compressor::new().unwrap();
        compressor.set_subsamp(Subsamp::Sub2x1).unwrap();
        let jpeg = compressor
            .compress_to_vec(Image {
                pixels: &rgb[..],
                width: 32,
                pitch: 96,
                height: 16,
                format: PixelFormat::RGB,
            })
            .unwrap();
        let mut decompressor = Decompressor::new().unwrap();
        let (mut scratch, mut dst) = (Vec::new(), Vec::new());
        jpeg_to_i420(&mut decompressor, &jpeg, &mut scratch, &mut dst).unwrap();
        let chroma = &dst[size.luma_len()..];
        assert!(chroma.iter().all(|&c| c.abs_diff(NEUTRAL_CHROMA) <= 2));
    }

    #[test]
    fn jpeg_to_i420_rejects_odd_sizes_and_garbage() {
        let mut decompressor = Decompressor::new().unwrap();
        let (mut scratch, mut dst) = (Vec::new(), Vec::new());
        let odd = jpeg_from_yuv(FrameSize::new(9, 8), Subsamp::None);
        assert!(matches!(
            jpeg_to_i420(&mut decompressor, &odd, &mut scratch, &mut dst),
            Err(ConvertError::BadSize {
                width: 9,
                height: 8
            })
        ));
        assert!(matches!(
            jpeg_to_i420(&mut decompressor, b"not a jpeg", &mut scratch, &mut dst),
            Err(ConvertError::Jpeg(_))
        ));
        let good = jpeg_from_yuv(FrameSize::new(16, 16), Subsamp::Sub2x1);
        // A header that claims 20000x20000: refused before any plane is allocated.
        let mut huge = good.clone();
        let sof = (0..huge.len() - 1)
            .find(|&i| huge[i] == 0xFF && huge[i + 1] == 0xC0)
            .unwrap();
        huge[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
        scratch = Vec::new();
        assert!(matches!(
            jpeg_to_i420(&mut decompressor, &huge, &mut scratch, &mut dst),
            Err(ConvertError::TooLarge {
                width: 20000,
                height: 20000,
                ..
            })
        ));
        assert_eq!(scratch.capacity(), 0);
        assert!(
            jpeg_to_i420(
                &mut decompressor,
                &good[..good.len() / 2],
                &mut scratch,
                &mut dst
            )
            .is_err()
        );
    }
}
