//! The newest MJPEG frame as a file in memory (a memfd), so that each viewer's socket is fed
//! from it with `sendfile(2)`: the kernel hands the file's pages to TCP by reference, where a
//! write would copy the frame into every viewer's socket buffer.
//!
//! The file holds one part in both framings (see `media::multipart`): the full headers, the
//! JPEG, then the delimiter with the next part's eager headers. A viewer with full headers
//! sends from the start through the delimiter (the plain delimiter is the start of the eager
//! one); a Chromium-family viewer sends from the JPEG to the end. The file is written once,
//! by whichever viewer needs the frame first, and never changed: pages handed to the kernel
//! stay valid whatever happens to the file afterwards.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::hub::PublishedJpeg;
use crate::media::multipart::PartHeaders;

use super::direct_body;

/// One published frame's part, in a memfd.
#[derive(Debug)]
pub struct FrameFile {
    /// The publish index of the frame it holds.
    index: u64,
    file: File,
    headers_len: usize,
    jpeg_len: usize,
}

impl FrameFile {
    fn create(frame: &PublishedJpeg) -> io::Result<Self> {
        let fd = rustix::fs::memfd_create("framecast-frame", rustix::fs::MemfdFlags::CLOEXEC)?;
        Self::write(File::from(fd), frame)
    }

    /// Writes `frame`'s part into `file` from its start, replacing what it held.
    ///
    /// Truncating first matters: it takes the old pages out of the file, and pages the kernel
    /// still holds for a socket stay as they were until TCP lets them go. Writing over them
    /// in place would change bytes already promised to a viewer.
    fn write(file: File, frame: &PublishedJpeg) -> io::Result<Self> {
        file.set_len(0)?;
        let jpeg = &frame.frame.jpeg;
        let pieces = [
            &frame.full_headers[..],
            &jpeg[..],
            PartHeaders::Eager.part_end(),
        ];
        let total: usize = pieces.iter().map(|piece| piece.len()).sum();
        // One system call for the three pieces.
        let mut written = 0;
        while written < total {
            let mut slices = [IoSlice::new(&[]); 3];
            let count = direct_body::remaining_slices(&pieces, written, &mut slices);
            match rustix::io::pwritev(&file, &slices[..count], written as u64) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Self {
            index: frame.index,
            file,
            headers_len: frame.full_headers.len(),
            jpeg_len: jpeg.len(),
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The bytes of the part as `mode` frames it.
    pub fn range(&self, mode: PartHeaders) -> Range<u64> {
        let jpeg_end = (self.headers_len + self.jpeg_len) as u64;
        match mode {
            PartHeaders::Full => 0..jpeg_end + PartHeaders::Full.part_end().len() as u64,
            PartHeaders::Eager => {
                self.headers_len as u64..jpeg_end + PartHeaders::Eager.part_end().len() as u64
            }
        }
    }
}

/// Files of earlier frames kept to be written again, which saves making and closing a file
/// per frame: a few, since a frame's file is free again once the viewers sending it are done.
const SPARE_FILES: usize = 2;

/// The file of the newest frame any viewer sent, and files of earlier ones to reuse once no
/// viewer sends from them.
#[derive(Debug, Default)]
pub struct FrameFileCache {
    files: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Files {
    newest: Option<Arc<FrameFile>>,
    earlier: Vec<Arc<FrameFile>>,
}

impl FrameFileCache {
    /// The file holding `frame`, made now if no viewer has needed it yet.
    pub fn get(&self, frame: &PublishedJpeg) -> io::Result<Arc<FrameFile>> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = files.newest.as_ref().filter(|f| f.index == frame.index) {
            return Ok(file.clone());
        }
        let file = Arc::new(match files.take_free() {
            Some(free) => FrameFile::write(free, frame)?,
            None => FrameFile::create(frame)?,
        });
        // A slow viewer may still ask for an older frame: it gets a file of its own then, and
        // the newest stays cached.
        if files.newest.as_ref().is_none_or(|f| f.index < frame.index) {
            if let Some(previous) = files.newest.replace(file.clone())
                && files.earlier.len() < SPARE_FILES
            {
                files.earlier.push(previous);
            }
        } else if files.earlier.len() < SPARE_FILES {
            files.earlier.push(file.clone());
        }
        Ok(file)
    }
}

impl Files {
    /// An earlier frame's file that no viewer holds any more.
    fn take_free(&mut self) -> Option<File> {
        let at = self
            .earlier
            .iter()
            .position(|file| Arc::strong_count(file) == 1)?;
        Arc::try_unwrap(self.earlier.swap_remove(at))
            .ok()
            .map(|file| file.file)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::{Read, Seek, SeekFrom};
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;

    use super::*;
    use crate::frame::{FrameSize, JpegFrame};
    use crate::media::multipart;

    /// A published frame `index` holding `jpeg`, for tests of what sends frames.
    pub(in crate::http) fn published(index: u64, jpeg: &'static [u8]) -> PublishedJpeg {
        PublishedJpeg {
            frame: JpegFrame {
                seq: index,
                captured_at: SystemTime::UNIX_EPOCH,
                size: FrameSize::new(16, 16),
                jpeg: Bytes::from_static(jpeg),
                encode_time: Duration::ZERO,
            },
            index,
            full_headers: multipart::full_part_headers(jpeg.len(), 0, index),
        }
    }

    fn read_range(file: &FrameFile, range: Range<u64>) -> Vec<u8> {
        let mut f = file.file();
        f.seek(SeekFrom::Start(range.start)).unwrap();
        let mut out = vec![0; (range.end - range.start) as usize];
        f.read_exact(&mut out).unwrap();
        out
    }

    #[test]
    fn both_framings_come_from_one_file() {
        let frame = published(4, b"\xFF\xD8jpeg\xFF\xD9");
        let cache = FrameFileCache::default();
        let file = cache.get(&frame).unwrap();
        assert_eq!(
            read_range(&file, file.range(PartHeaders::Full)),
            [
                &frame.full_headers[..],
                b"\xFF\xD8jpeg\xFF\xD9",
                PartHeaders::Full.part_end()
            ]
            .concat()
        );
        assert_eq!(
            read_range(&file, file.range(PartHeaders::Eager)),
            [&b"\xFF\xD8jpeg\xFF\xD9"[..], PartHeaders::Eager.part_end()].concat()
        );
    }

    #[test]
    fn the_newest_file_is_shared_and_older_frames_get_their_own() {
        let cache = FrameFileCache::default();
        let five = published(5, b"five");
        let a = cache.get(&five).unwrap();
        let b = cache.get(&five).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let four = cache.get(&published(4, b"four")).unwrap();
        assert_eq!(four.index, 4);
        assert!(Arc::ptr_eq(&cache.get(&five).unwrap(), &a));
    }

    #[test]
    fn a_file_is_written_again_only_once_no_viewer_holds_it() {
        let cache = FrameFileCache::default();
        let held = cache.get(&published(1, b"one")).unwrap();
        // Frame 2 makes frame 1's file an earlier one, still held: frame 3 gets a new file.
        let two = cache.get(&published(2, b"two")).unwrap();
        drop(two);
        let three = cache.get(&published(3, b"three-longer")).unwrap();
        assert_eq!(
            read_range(&held, held.range(PartHeaders::Eager)),
            [&b"one"[..], PartHeaders::Eager.part_end()].concat()
        );
        // Frame 2's file was free: frame 3 took it, and holds only its own bytes.
        let whole = three.range(PartHeaders::Full);
        assert_eq!(
            three.file().metadata().unwrap().len(),
            whole.end - whole.start
                + (PartHeaders::Eager.part_end().len() - PartHeaders::Full.part_end().len()) as u64
        );
        assert_eq!(
            read_range(&three, three.range(PartHeaders::Eager)),
            [&b"three-longer"[..], PartHeaders::Eager.part_end()].concat()
        );
        let four = cache.get(&published(4, b"4")).unwrap();
        assert_eq!(
            read_range(&four, four.range(PartHeaders::Eager)),
            [&b"4"[..], PartHeaders::Eager.part_end()].concat()
        );
        assert_eq!(
            read_range(&held, held.range(PartHeaders::Eager)),
            [&b"one"[..], PartHeaders::Eager.part_end()].concat()
        );
    }
}
