//! Block averaging of an I420 picture: every square block of pixels becomes its mean.
//!
//! The H.264 rate gate's last resort: a picture of pure noise costs openh264 about as many
//! bytes at QP 51 as at any other QP it will pick, because no prediction helps; averaged over
//! blocks, the same picture costs almost nothing. A picture that goes blocky under overload
//! is the honest trade against a stream many times its configured bitrate.

use crate::frame::I420;

/// The picture with each `block_px` × `block_px` luma block, and each matching
/// `block_px / 2` chroma block, replaced by its rounded mean. Blocks cut by the right or
/// bottom edge average the pixels they have. `block_px` of 0 or 1 copies the picture.
pub fn average_blocks(picture: &I420<'_>, block_px: u32) -> Vec<u8> {
    let size = picture.size();
    let mut out = Vec::with_capacity(size.i420_len());
    let (width, height) = (size.width as usize, size.height as usize);
    let block = block_px.max(1) as usize;
    average_plane(picture.y(), width, height, block, &mut out);
    for chroma in [picture.u(), picture.v()] {
        average_plane(chroma, width / 2, height / 2, (block / 2).max(1), &mut out);
    }
    out
}

/// Appends `plane` (`width` × `height`, no padding) averaged over `block` × `block` blocks.
fn average_plane(plane: &[u8], width: usize, height: usize, block: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(plane);
    if block <= 1 || width == 0 {
        return;
    }
    let averaged = &mut out[start..];
    for top in (0..height).step_by(block) {
        let rows = top..(top + block).min(height);
        for left in (0..width).step_by(block) {
            let columns = left..(left + block).min(width);
            let count = (rows.len() * columns.len()) as u32;
            let sum: u32 = rows
                .clone()
                .map(|row| {
                    let line = &plane[row * width..][columns.clone()];
                    line.iter().map(|&p| u32::from(p)).sum::<u32>()
                })
                .sum();
            let mean = ((sum + count / 2) / count) as u8;
            for row in rows.clone() {
                averaged[row * width..][columns.clone()].fill(mean);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSize;

    #[test]
    fn each_block_becomes_its_rounded_mean_and_edge_blocks_average_what_they_have() {
        // 6x4 luma, 3x2 chroma; blocks of 4 luma and 2 chroma pixels.
        let size = FrameSize::new(6, 4);
        #[rustfmt::skip]
        let luma = [
            0, 1, 2, 3, 100, 200,
            4, 5, 6, 7, 100, 201,
            8, 9, 10, 11, 0, 0,
            12, 13, 14, 15, 0, 0,
        ];
        let u = [10, 20, 31, 1, 2, 3];
        let v = [255, 255, 0, 255, 254, 7];
        let bytes: Vec<u8> = luma.iter().chain(&u).chain(&v).copied().collect();
        let picture = I420::new(&bytes, size).unwrap();
        let out = average_blocks(&picture, 4);
        // Block 0..4 x 0..4: sum 120 over 16 -> 7.5 -> 8. Edge block 4..6 x 0..4: sum 601
        // over 8 -> 75.125 -> 75.
        #[rustfmt::skip]
        let want_luma = [
            8, 8, 8, 8, 75, 75,
            8, 8, 8, 8, 75, 75,
            8, 8, 8, 8, 75, 75,
            8, 8, 8, 8, 75, 75,
        ];
        // Chroma blocks of 2: (10+20+1+2)/4 = 8.25 -> 8, (31+3)/2 = 17.
        let want_u = [8, 8, 17, 8, 8, 17];
        // (255+255+255+254)/4 = 254.75 -> 255, (0+7)/2 = 3.5 -> 4.
        let want_v = [255, 255, 4, 255, 255, 4];
        let want: Vec<u8> = want_luma
            .iter()
            .chain(&want_u)
            .chain(&want_v)
            .copied()
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn a_block_of_one_copies_the_picture() {
        let size = FrameSize::new(4, 2);
        let bytes: Vec<u8> = (0..size.i420_len() as u8).collect();
        let picture = I420::new(&bytes, size).unwrap();
        assert_eq!(average_blocks(&picture, 1), bytes);
        assert_eq!(average_blocks(&picture, 0), bytes);
        // Chroma of a 2-pixel block is 1 pixel: untouched.
        let out = average_blocks(&picture, 2);
        assert_eq!(&out[8..], &bytes[8..]);
        assert_eq!(&out[..8], &[3, 3, 5, 5, 3, 3, 5, 5]);
    }
}
