//! The newest MJPEG part in pipes, so that every viewer's socket is fed from the same pages:
//! `tee(2)` gives a viewer's pipe references to them, and `splice(2)` hands those to TCP. The
//! frame is copied once, into the pipes, however many viewers there are; a write per viewer
//! would copy it into every socket's buffer.
//!
//! Why pipes and not a memory file with `sendfile(2)`: a file's pages live in the page cache,
//! so each frame cost a truncate and a write through it, and each viewer's sendfile looked up
//! every page of the file and went through an internal pipe anyway. Pipe pages are plain
//! memory, counted by reference and freed when the last socket lets them go; bytes once in a
//! pipe are never changed, since only `tee` reads these pipes and nothing writes to them again.
//!
//! A part is as many pipes ("chunks") as it needs at the kernel's default pipe capacity (64 KiB
//! with 4 KiB pages): a viewer's pipe of the same capacity then always takes a whole chunk. Each
//! framing (`media::multipart`) has its own pipes, made by whichever viewer needs them first.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};

use rustix::pipe::{PipeFlags, SpliceFlags};

use crate::hub::PublishedJpeg;
use crate::media::multipart::PartHeaders;

use super::direct_body;

/// The bytes of `frame`'s part as `mode` frames it: the full headers (in full mode), the JPEG,
/// then the delimiter with the next part's headers where `mode` sends them early.
pub fn part_pieces(frame: &PublishedJpeg, mode: PartHeaders) -> [&[u8]; 3] {
    let headers: &[u8] = match mode {
        PartHeaders::Full => &frame.full_headers,
        PartHeaders::Eager => &[],
    };
    [headers, &frame.frame.jpeg, mode.part_end()]
}

/// One published frame's part in one framing, in pipes.
#[derive(Debug)]
pub struct PartPipes {
    /// The publish index of the frame it holds.
    index: u64,
    chunks: Vec<Chunk>,
    /// Where its pipes go when the last viewer is done with them.
    home: Weak<SparePipes>,
}

/// Consecutive bytes of a part, alone in a pipe.
#[derive(Debug)]
pub struct Chunk {
    pipe: FramePipe,
    /// Where its bytes are in the part.
    range: Range<usize>,
}

impl Chunk {
    /// The end to tee from.
    pub fn pipe(&self) -> &OwnedFd {
        &self.pipe.read
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }
}

/// A pipe that holds a chunk. Nothing reads from it, so its bytes stay until it is drained.
#[derive(Debug)]
struct FramePipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in it.
    held: usize,
}

impl FramePipe {
    fn new() -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Self {
            read,
            write,
            held: 0,
        })
    }

    /// Empties it into `null`; the pages go once the sockets that hold them let them go.
    fn drain(&mut self, null: &File) -> io::Result<()> {
        while self.held > 0 {
            match rustix::pipe::splice(
                &self.read,
                None,
                null,
                None,
                self.held,
                SpliceFlags::NONBLOCK,
            ) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.held -= n,
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Writes `pieces` from byte `at` until they end or the pipe is full; how far it got.
    fn fill(&mut self, pieces: &[&[u8]], mut at: usize, len: usize) -> io::Result<usize> {
        // A non-blocking write to a pipe takes what fits.
        while at < len {
            let mut slices = [IoSlice::new(&[]); 3];
            let count = direct_body::remaining_slices(pieces, at, &mut slices);
            match rustix::io::writev(&self.write, &slices[..count]) {
                Ok(0) => break,
                Ok(n) => {
                    at += n;
                    self.held += n;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(at)
    }
}

impl PartPipes {
    /// Copies `frame`'s part as `mode` frames it into pipes: emptied spare ones from `spare`,
    /// else new ones.
    fn fill(frame: &PublishedJpeg, mode: PartHeaders, spare: &Arc<SparePipes>) -> io::Result<Self> {
        let pieces = part_pieces(frame, mode);
        let len: usize = pieces.iter().map(|piece| piece.len()).sum();
        let mut part = Self {
            index: frame.index,
            chunks: Vec::new(),
            home: Arc::downgrade(spare),
        };
        let mut at = 0;
        while at < len {
            let mut pipe = spare.take()?;
            let start = at;
            at = pipe.fill(&pieces, at, len)?;
            if at == start {
                return Err(io::ErrorKind::WriteZero.into());
            }
            part.chunks.push(Chunk {
                pipe,
                range: start..at,
            });
        }
        Ok(part)
    }

    /// The chunk whose bytes start at `offset` of the part, if one does.
    pub fn chunk_at(&self, offset: usize) -> Option<&Chunk> {
        let at = self
            .chunks
            .binary_search_by_key(&offset, |chunk| chunk.range.start)
            .ok()?;
        self.chunks.get(at)
    }
}

impl Drop for PartPipes {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            home.keep(self.chunks.drain(..).map(|chunk| chunk.pipe));
        }
    }
}

/// Chunk pipes kept for later frames, so a frame costs no pipe made and none closed: enough for
/// both framings of a few frames of 64 KiB, or one large frame.
const SPARE_FRAME_PIPES: usize = 16;

/// Pipes of frames no viewer sends any more, to be emptied and filled again.
#[derive(Debug)]
struct SparePipes {
    pipes: Mutex<Vec<FramePipe>>,
    /// `/dev/null`, into which spare pipes are emptied; without it, pipes are not kept.
    null: Option<File>,
}

impl SparePipes {
    fn new() -> Self {
        Self {
            pipes: Mutex::new(Vec::new()),
            null: File::options().write(true).open("/dev/null").ok(),
        }
    }

    /// An empty pipe: a spare one emptied, or a new one.
    fn take(&self) -> io::Result<FramePipe> {
        if let Some(null) = &self.null {
            loop {
                let spare = self.pipes.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(mut pipe) = spare else { break };
                if pipe.drain(null).is_ok() {
                    return Ok(pipe);
                }
            }
        }
        FramePipe::new()
    }

    fn keep(&self, pipes: impl Iterator<Item = FramePipe>) {
        if self.null.is_none() {
            return;
        }
        let mut spare = self.pipes.lock().unwrap_or_else(|e| e.into_inner());
        for pipe in pipes {
            if spare.len() >= SPARE_FRAME_PIPES {
                break;
            }
            spare.push(pipe);
        }
    }
}

/// For each framing, the pipes of the newest frame a viewer sent.
#[derive(Debug)]
pub struct PartPipesCache {
    newest: Mutex<[Option<Arc<PartPipes>>; 2]>,
    spare: Arc<SparePipes>,
}

impl Default for PartPipesCache {
    fn default() -> Self {
        Self {
            newest: Mutex::default(),
            spare: Arc::new(SparePipes::new()),
        }
    }
}

impl PartPipesCache {
    /// The pipes holding `frame`'s part as `mode` frames it, filled now if no viewer has
    /// needed them yet. A slow viewer may still ask for an older frame: it gets pipes of its
    /// own then, and the newest stay cached.
    pub fn get(&self, frame: &PublishedJpeg, mode: PartHeaders) -> io::Result<Arc<PartPipes>> {
        let slot = match mode {
            PartHeaders::Full => 0,
            PartHeaders::Eager => 1,
        };
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let cached = &mut newest[slot];
        if let Some(pipes) = cached.as_ref().filter(|p| p.index == frame.index) {
            return Ok(pipes.clone());
        }
        let pipes = Arc::new(PartPipes::fill(frame, mode, &self.spare)?);
        if cached.as_ref().is_none_or(|p| p.index < frame.index) {
            // The frame it replaces goes back to the spares once its viewers are done.
            *cached = Some(pipes.clone());
        }
        Ok(pipes)
    }
}

/// A viewer's own pipe, between a chunk's pipe and the viewer's socket.
#[derive(Debug)]
pub struct ViewerPipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

/// Empty viewer pipes kept for the next sends: most sends empty their pipe at once, so a
/// sender thread needs one, plus one for each viewer whose socket is full.
const SPARE_VIEWER_PIPES: usize = 4;

/// A sender thread's empty viewer pipes.
#[derive(Debug, Default)]
pub struct ViewerPipes {
    spare: Vec<ViewerPipe>,
}

impl ViewerPipes {
    /// An empty pipe: a spare one, or a new one.
    pub fn take(&mut self) -> io::Result<ViewerPipe> {
        if let Some(pipe) = self.spare.pop() {
            return Ok(pipe);
        }
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(ViewerPipe { read, write })
    }

    /// Keeps `pipe`, which must be empty, for a later send.
    pub fn give_back(&mut self, pipe: ViewerPipe) {
        if self.spare.len() < SPARE_VIEWER_PIPES {
            self.spare.push(pipe);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;

    use super::*;
    use crate::frame::{FrameSize, JpegFrame};
    use crate::media::multipart;

    /// A published frame `index` holding `jpeg`, for tests of what sends frames.
    pub(in crate::http) fn published(index: u64, jpeg: Vec<u8>) -> PublishedJpeg {
        PublishedJpeg {
            full_headers: multipart::full_part_headers(jpeg.len(), 0, index),
            frame: JpegFrame {
                seq: index,
                captured_at: SystemTime::UNIX_EPOCH,
                size: FrameSize::new(16, 16),
                jpeg: Bytes::from(jpeg),
                encode_time: Duration::ZERO,
            },
            index,
        }
    }

    /// The bytes of every chunk, in order, read through a tee so the chunks keep them.
    fn contents(pipes: &PartPipes) -> Vec<u8> {
        let mut out = Vec::new();
        let mut viewer = ViewerPipes::default();
        for chunk in &pipes.chunks {
            assert_eq!(chunk.range.start, out.len(), "chunks are consecutive");
            let pipe = viewer.take().unwrap();
            let teed = rustix::pipe::tee(
                chunk.pipe(),
                &pipe.write,
                chunk.len(),
                SpliceFlags::NONBLOCK,
            )
            .unwrap();
            assert_eq!(teed, chunk.len(), "a viewer's pipe takes a whole chunk");
            let mut bytes = vec![0; teed];
            let mut read = 0;
            while read < teed {
                read += rustix::io::read(&pipe.read, &mut bytes[read..]).unwrap();
            }
            out.extend_from_slice(&bytes);
            viewer.give_back(pipe);
        }
        out
    }

    #[test]
    fn each_framing_has_its_part() {
        let frame = published(4, b"\xFF\xD8jpeg\xFF\xD9".to_vec());
        let cache = PartPipesCache::default();
        let full = cache.get(&frame, PartHeaders::Full).unwrap();
        assert_eq!(
            contents(&full),
            [
                &frame.full_headers[..],
                b"\xFF\xD8jpeg\xFF\xD9",
                PartHeaders::Full.part_end()
            ]
            .concat()
        );
        let eager = cache.get(&frame, PartHeaders::Eager).unwrap();
        assert_eq!(
            contents(&eager),
            [&b"\xFF\xD8jpeg\xFF\xD9"[..], PartHeaders::Eager.part_end()].concat()
        );
        // A tee leaves the bytes where they are: the next viewer gets them too.
        assert_eq!(contents(&eager), contents(&eager));
    }

    #[test]
    fn a_part_larger_than_a_pipe_spans_chunks() {
        let jpeg: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let frame = published(1, jpeg.clone());
        let pipes =
            PartPipes::fill(&frame, PartHeaders::Eager, &Arc::new(SparePipes::new())).unwrap();
        assert!(pipes.chunks.len() > 1, "{} chunk(s)", pipes.chunks.len());
        assert_eq!(
            contents(&pipes),
            [&jpeg[..], PartHeaders::Eager.part_end()].concat()
        );
        assert!(pipes.chunk_at(pipes.chunks[1].range.start).is_some());
        assert!(
            pipes.chunk_at(1).is_none(),
            "no chunk starts inside another"
        );
    }

    #[test]
    fn the_newest_pipes_are_shared_and_older_frames_get_their_own() {
        let cache = PartPipesCache::default();
        let five = published(5, b"five".to_vec());
        let a = cache.get(&five, PartHeaders::Full).unwrap();
        let b = cache.get(&five, PartHeaders::Full).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let four = cache
            .get(&published(4, b"four".to_vec()), PartHeaders::Full)
            .unwrap();
        assert_eq!(four.index, 4);
        assert!(Arc::ptr_eq(
            &cache.get(&five, PartHeaders::Full).unwrap(),
            &a
        ));
        // The other framing has pipes of its own.
        let eager = cache.get(&five, PartHeaders::Eager).unwrap();
        assert!(!Arc::ptr_eq(&eager, &a));
    }

    #[test]
    fn pipes_no_viewer_holds_are_emptied_and_filled_again() {
        use std::os::fd::AsRawFd;
        let fd = |pipes: &PartPipes| pipes.chunks[0].pipe().as_raw_fd();
        let cache = PartPipesCache::default();
        let held = cache
            .get(&published(1, b"one".to_vec()), PartHeaders::Full)
            .unwrap();
        let two = cache
            .get(&published(2, b"two".to_vec()), PartHeaders::Full)
            .unwrap();
        let two_fd = fd(&two);
        drop(two);
        // Frame 3 replaces frame 2, which no viewer holds: its pipe is spare from then on,
        // and frame 4 gets it, emptied.
        let three = cache
            .get(&published(3, b"three".to_vec()), PartHeaders::Full)
            .unwrap();
        assert_ne!(fd(&three), two_fd);
        let four = cache
            .get(&published(4, b"four".to_vec()), PartHeaders::Full)
            .unwrap();
        assert_eq!(fd(&four), two_fd);
        let expected = |index, jpeg: &[u8]| {
            let frame = published(index, jpeg.to_vec());
            [&frame.full_headers[..], jpeg, PartHeaders::Full.part_end()].concat()
        };
        assert_eq!(contents(&four), expected(4, b"four"));
        assert_eq!(contents(&three), expected(3, b"three"));
        // Frame 1's pipe, held by a viewer all along, kept its bytes.
        assert_eq!(contents(&held), expected(1, b"one"));
        drop(held);
        assert_eq!(cache.spare.pipes.lock().unwrap().len(), 1);
    }
}
