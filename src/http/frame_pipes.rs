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
//! A part is as many pipes ("chunks") as it needs (256 KiB each where the kernel allows it): a
//! viewer's pipe of the same capacity then always takes a whole chunk. Each framing (multipart
//! headers, HTTP/1.1 chunks or not) has its own pipes, filled by whichever viewer needs them
//! first. A sender thread has one viewer pipe for all its viewers, emptied after each send.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rustix::pipe::{PipeFlags, SpliceFlags};

use crate::hub::PublishedJpeg;
use crate::media::multipart::PartHeaders;

use super::direct_body::{self, CHUNK_LINE_BYTES};

/// How a part goes out: with which multipart headers, and whether as an HTTP/1.1 chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartFraming {
    pub mode: PartHeaders,
    /// As one chunk of a chunked body (RFC 9112 §7.1), led by the CRLF that ends the chunk
    /// before it: a viewer's stream opening is always sent first, as a chunk of its own. A
    /// frame's chunk is then the same bytes for every viewer, and goes out from the same pipes.
    pub chunked: bool,
}

impl PartFraming {
    /// Which of [`PartPipesCache`]'s slots holds parts framed so.
    fn slot(self) -> usize {
        let mode = match self.mode {
            PartHeaders::Full => 0,
            PartHeaders::Eager => 1,
        };
        mode * 2 + usize::from(self.chunked)
    }
}

/// Chunk framing between two chunks of a chunked body (RFC 9112 §7.1): the CRLF that ends the
/// chunk before, the size line of the chunk after, either, both or neither.
#[derive(Debug, Clone, Copy)]
pub struct ChunkHead {
    bytes: [u8; CHUNK_LINE_BYTES + 2],
    len: usize,
}

impl ChunkHead {
    /// What comes before `frame`'s part as `framing` frames it: for a chunked part, the CRLF
    /// that ends the previous chunk and this chunk's size line; nothing for an unchunked one.
    pub fn new(frame: &PublishedJpeg, framing: PartFraming) -> Self {
        if !framing.chunked {
            return Self::between(false, None);
        }
        let payload_len = payload_pieces(frame, framing.mode)
            .iter()
            .map(|piece| piece.len())
            .sum();
        Self::between(true, Some(payload_len))
    }

    /// The CRLF ending the previous chunk if `close_previous`, then the size line of a chunk of
    /// `next_len` bytes if one follows (never of 0 bytes: that would end the body).
    pub fn between(close_previous: bool, next_len: Option<usize>) -> Self {
        let mut head = Self {
            bytes: [0; CHUNK_LINE_BYTES + 2],
            len: 0,
        };
        if close_previous {
            head.bytes[..2].copy_from_slice(b"\r\n");
            head.len = 2;
        }
        if let Some(len) = next_len.filter(|&len| len > 0) {
            let mut line = [0; CHUNK_LINE_BYTES];
            let n = direct_body::chunk_size_line(len, &mut line);
            head.bytes[head.len..head.len + n].copy_from_slice(&line[..n]);
            head.len += n;
        }
        head
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The bytes of `frame`'s part as `framing` frames it: the chunk head (`head`, made for this
/// frame and framing), the full headers (in full mode), the JPEG, then the delimiter with the
/// next part's headers where the mode sends them early.
pub fn part_pieces<'a>(
    frame: &'a PublishedJpeg,
    framing: PartFraming,
    head: &'a ChunkHead,
) -> [&'a [u8]; 4] {
    let [headers, jpeg, end] = payload_pieces(frame, framing.mode);
    [head.as_bytes(), headers, jpeg, end]
}

/// The part's body bytes, without chunk framing.
fn payload_pieces(frame: &PublishedJpeg, mode: PartHeaders) -> [&[u8]; 3] {
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
    /// Empties it; the pages go once the sockets that hold them let them go.
    fn drain(&mut self) -> io::Result<()> {
        drain(&self.read, self.held)?;
        self.held = 0;
        Ok(())
    }

    /// Writes `pieces` from byte `at` until they end or the pipe is full; how far it got.
    fn fill(&mut self, pieces: &[&[u8]], mut at: usize, len: usize) -> io::Result<usize> {
        // A non-blocking write to a pipe takes what fits.
        while at < len {
            let mut slices = [IoSlice::new(&[]); 4];
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

/// What a pipe is asked to hold: four times the kernel's default (64 KiB with 4 KiB pages), so a
/// 1080p frame fits one pipe and a 4K one a handful, while all of them together take a small
/// share of what the kernel lets one user's pipes hold (`/proc/sys/fs/pipe-user-pages-soft`).
const PIPE_CAPACITY: usize = 256 * 1024;

/// A new non-blocking pipe of [`PIPE_CAPACITY`] if the kernel allows it (its default
/// otherwise): its read end, its write end.
fn new_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // Refused past the user's limits: the pipe keeps its default size, and a frame takes
    // more of them (or, for a viewer's pipe, is copied past what it holds).
    let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_CAPACITY);
    Ok((read, write))
}

/// Throws away the `len` bytes at the head of the pipe whose read end is `read`, without
/// copying them (a splice into `/dev/null`).
fn drain(read: &OwnedFd, mut len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let null = dev_null().ok_or(io::ErrorKind::NotFound)?;
    while len > 0 {
        match rustix::pipe::splice(read, None, null, None, len, SpliceFlags::NONBLOCK) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => len = len.saturating_sub(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// `/dev/null`, opened once; `None` where it cannot be (pipes are then not reused).
fn dev_null() -> Option<&'static File> {
    static NULL: OnceLock<Option<File>> = OnceLock::new();
    NULL.get_or_init(|| File::options().write(true).open("/dev/null").ok())
        .as_ref()
}

impl PartPipes {
    /// Copies `frame`'s part as `framing` frames it into pipes: emptied spare ones from
    /// `spare`, else new ones.
    fn fill(
        frame: &PublishedJpeg,
        framing: PartFraming,
        spare: &Arc<SparePipes>,
    ) -> io::Result<Self> {
        let head = ChunkHead::new(frame, framing);
        let pieces = part_pieces(frame, framing, &head);
        let len: usize = pieces.iter().map(|piece| piece.len()).sum();
        // Should a pipe fail, those already filled go back to the spares with it.
        let mut part = Self {
            index: frame.index,
            chunks: Vec::new(),
            home: Arc::downgrade(spare),
        };
        let mut at = 0;
        while at < len {
            let mut pipe = spare.take()?;
            let start = at;
            match pipe.fill(&pieces, at, len) {
                Ok(end) if end > start => at = end,
                result => {
                    spare.keep(std::iter::once(pipe));
                    return Err(result.err().unwrap_or(io::ErrorKind::WriteZero.into()));
                }
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

    /// Where the chunk holding byte `offset` of the part ends (the part's length past it).
    pub fn chunk_end(&self, offset: usize) -> usize {
        let at = self
            .chunks
            .partition_point(|chunk| chunk.range.end <= offset);
        self.chunks
            .get(at)
            .or(self.chunks.last())
            .map_or(offset, |chunk| chunk.range.end)
    }
}

impl Drop for PartPipes {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            home.keep(self.chunks.drain(..).map(|chunk| chunk.pipe));
        }
    }
}

/// Chunk pipes in existence at most, in use or spare: a frame's part takes one per 256 KiB, and
/// keeps them while any viewer still sends it. Past this, frames are copied to viewers instead, so a
/// crowd of slow viewers each on a different frame cannot run the server out of descriptors.
const MAX_FRAME_PIPES: usize = 32;

/// Chunk pipes kept for later frames, so a frame costs no pipe made and none closed: enough for
/// every framing of a few frames, or one large frame.
const SPARE_FRAME_PIPES: usize = 16;

/// Descriptors the MJPEG senders' pipes may hold at once, at most: the chunk pipes and each
/// sender thread's viewer pipe (two descriptors a pipe). The connection cap leaves room for them.
pub const MAX_PIPE_DESCRIPTORS: u64 =
    2 * (MAX_FRAME_PIPES as u64 + super::mjpeg_sender::MAX_THREADS as u64);

/// Pipes of frames no viewer sends any more, to be emptied and filled again, and the count of
/// all chunk pipes.
#[derive(Debug, Default)]
struct SparePipes {
    pipes: Mutex<Vec<FramePipe>>,
    /// Chunk pipes in existence, spare or in use.
    existing: AtomicUsize,
}

impl SparePipes {
    /// An empty pipe: a spare one emptied, or a new one while there are fewer than
    /// [`MAX_FRAME_PIPES`].
    fn take(&self) -> io::Result<FramePipe> {
        loop {
            let spare = self.pipes.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut pipe) = spare else { break };
            if pipe.drain().is_ok() {
                return Ok(pipe);
            }
            self.existing.fetch_sub(1, Ordering::Relaxed);
        }
        if self.existing.fetch_add(1, Ordering::Relaxed) >= MAX_FRAME_PIPES {
            self.existing.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::other("every frame pipe is in use"));
        }
        match new_pipe() {
            Ok((read, write)) => Ok(FramePipe {
                read,
                write,
                held: 0,
            }),
            Err(error) => {
                self.existing.fetch_sub(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Takes `pipes` back: kept up to [`SPARE_FRAME_PIPES`], closed beyond.
    fn keep(&self, pipes: impl Iterator<Item = FramePipe>) {
        let mut spare = self.pipes.lock().unwrap_or_else(|e| e.into_inner());
        for pipe in pipes {
            if spare.len() < SPARE_FRAME_PIPES && dev_null().is_some() {
                spare.push(pipe);
            } else {
                self.existing.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// For each framing, the pipes of the newest frame a viewer sent.
#[derive(Debug, Default)]
pub struct PartPipesCache {
    newest: Mutex<[Option<Arc<PartPipes>>; 4]>,
    spare: Arc<SparePipes>,
}

impl PartPipesCache {
    /// Lets every pipe go that no viewer holds: for when a sender thread has no viewers left,
    /// so that a server nobody watches holds none. (A viewer of another thread still sending a
    /// frame keeps that frame's pipes; the next frame is filled anew.)
    pub fn release(&self) {
        let newest = std::mem::take(&mut *self.newest.lock().unwrap_or_else(|e| e.into_inner()));
        // Dropped first: a frame no viewer holds gives its pipes to the spares, closed next.
        drop(newest);
        let spare =
            std::mem::take(&mut *self.spare.pipes.lock().unwrap_or_else(|e| e.into_inner()));
        self.spare
            .existing
            .fetch_sub(spare.len(), Ordering::Relaxed);
    }

    /// The pipes holding `frame`'s part as `framing` frames it, filled now if no viewer has
    /// needed them yet. A slow viewer may still ask for an older frame: it gets pipes of its
    /// own then, and the newest stay cached.
    pub fn get(&self, frame: &PublishedJpeg, framing: PartFraming) -> io::Result<Arc<PartPipes>> {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let cached = &mut newest[framing.slot()];
        if let Some(pipes) = cached.as_ref().filter(|p| p.index == frame.index) {
            return Ok(pipes.clone());
        }
        let pipes = Arc::new(PartPipes::fill(frame, framing, &self.spare)?);
        if cached.as_ref().is_none_or(|p| p.index < frame.index) {
            // The frame it replaces goes back to the spares once its viewers are done.
            *cached = Some(pipes.clone());
        }
        Ok(pipes)
    }
}

/// A sender thread's pipe between a chunk's pipe and a viewer's socket. A send uses it from
/// its `tee` to the end of its `splice`: a viewer whose socket fills up part way has the rest
/// of its pipe thrown away (and gets the rest of that chunk copied once its socket drains), so
/// one pipe serves all of a thread's viewers.
#[derive(Debug)]
pub struct ViewerPipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

impl ViewerPipe {
    pub fn new() -> io::Result<Self> {
        let (read, write) = new_pipe()?;
        Ok(Self { read, write })
    }

    /// Throws away the `len` bytes it holds.
    pub fn drain(&self, len: usize) -> io::Result<()> {
        drain(&self.read, len)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;

    use super::*;
    use crate::frame::{FrameSize, JpegFrame};
    use crate::media::multipart;

    const FULL: PartFraming = PartFraming {
        mode: PartHeaders::Full,
        chunked: false,
    };
    const EAGER: PartFraming = PartFraming {
        mode: PartHeaders::Eager,
        chunked: false,
    };

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
        let pipe = ViewerPipe::new().unwrap();
        for chunk in &pipes.chunks {
            assert_eq!(chunk.range.start, out.len(), "chunks are consecutive");
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
        }
        out
    }

    #[test]
    fn each_framing_has_its_part() {
        let frame = published(4, b"\xFF\xD8jpeg\xFF\xD9".to_vec());
        let cache = PartPipesCache::default();
        let full = cache.get(&frame, FULL).unwrap();
        assert_eq!(
            contents(&full),
            [
                &frame.full_headers[..],
                b"\xFF\xD8jpeg\xFF\xD9",
                PartHeaders::Full.part_end()
            ]
            .concat()
        );
        let eager = cache.get(&frame, EAGER).unwrap();
        assert_eq!(
            contents(&eager),
            [&b"\xFF\xD8jpeg\xFF\xD9"[..], PartHeaders::Eager.part_end()].concat()
        );
        // A tee leaves the bytes where they are: the next viewer gets them too.
        assert_eq!(contents(&eager), contents(&eager));
    }

    /// RFC 9112 §7.1: a chunked part is the CRLF that ends the chunk before it, the size line
    /// of its body (hex), then the body, as the unchunked framing has it.
    #[test]
    fn a_chunked_part_carries_its_chunk_head() {
        let frame = published(9, vec![0xAB; 300]);
        let cache = PartPipesCache::default();
        for mode in [PartHeaders::Full, PartHeaders::Eager] {
            let bare = contents(
                &cache
                    .get(
                        &frame,
                        PartFraming {
                            mode,
                            chunked: false,
                        },
                    )
                    .unwrap(),
            );
            let chunked = contents(
                &cache
                    .get(
                        &frame,
                        PartFraming {
                            mode,
                            chunked: true,
                        },
                    )
                    .unwrap(),
            );
            let expected = [format!("\r\n{:X}\r\n", bare.len()).as_bytes(), &bare].concat();
            assert_eq!(chunked, expected, "{mode:?}");
        }
    }

    #[test]
    fn a_part_larger_than_a_pipe_spans_chunks() {
        let jpeg: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let frame = published(1, jpeg.clone());
        let pipes = PartPipes::fill(&frame, EAGER, &Arc::default()).unwrap();
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
        let first = &pipes.chunks[0].range;
        assert_eq!(pipes.chunk_end(0), first.end);
        assert_eq!(pipes.chunk_end(first.end - 1), first.end);
        assert_eq!(pipes.chunk_end(first.end), pipes.chunks[1].range.end);
    }

    /// Past [`MAX_FRAME_PIPES`] no pipe is made (the frame is copied to viewers instead);
    /// pipes given back make room again.
    #[test]
    fn frame_pipes_are_bounded() {
        let spare = Arc::new(SparePipes::default());
        // A frame of more chunks than are allowed.
        let jpeg = vec![7u8; (MAX_FRAME_PIPES + 2) * PIPE_CAPACITY];
        let error = PartPipes::fill(&published(1, jpeg), EAGER, &spare).unwrap_err();
        assert!(error.to_string().contains("in use"), "{error}");
        // What the failed fill took went back: a small frame has its pipe.
        let small = PartPipes::fill(&published(2, b"small".to_vec()), EAGER, &spare).unwrap();
        assert_eq!(
            contents(&small),
            [&b"small"[..], PartHeaders::Eager.part_end()].concat()
        );
        drop(small);
        assert!(spare.existing.load(Ordering::Relaxed) <= SPARE_FRAME_PIPES);
    }

    #[test]
    fn the_newest_pipes_are_shared_and_older_frames_get_their_own() {
        let cache = PartPipesCache::default();
        let five = published(5, b"five".to_vec());
        let a = cache.get(&five, FULL).unwrap();
        let b = cache.get(&five, FULL).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let four = cache.get(&published(4, b"four".to_vec()), FULL).unwrap();
        assert_eq!(four.index, 4);
        assert!(Arc::ptr_eq(&cache.get(&five, FULL).unwrap(), &a));
        // The other framing has pipes of its own.
        let eager = cache.get(&five, EAGER).unwrap();
        assert!(!Arc::ptr_eq(&eager, &a));
    }

    #[test]
    fn pipes_no_viewer_holds_are_emptied_and_filled_again() {
        use std::os::fd::AsRawFd;
        let fd = |pipes: &PartPipes| pipes.chunks[0].pipe().as_raw_fd();
        let cache = PartPipesCache::default();
        let held = cache.get(&published(1, b"one".to_vec()), FULL).unwrap();
        let two = cache.get(&published(2, b"two".to_vec()), FULL).unwrap();
        let two_fd = fd(&two);
        drop(two);
        // Frame 3 replaces frame 2, which no viewer holds: its pipe is spare from then on,
        // and frame 4 gets it, emptied.
        let three = cache.get(&published(3, b"three".to_vec()), FULL).unwrap();
        assert_ne!(fd(&three), two_fd);
        let four = cache.get(&published(4, b"four".to_vec()), FULL).unwrap();
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

    /// Once nobody watches, the cache holds no pipe; one a viewer still sends from stays
    /// whole, and a later frame gets pipes again.
    #[test]
    fn released_pipes_are_closed_but_held_ones_stay() {
        let cache = PartPipesCache::default();
        let held = cache.get(&published(1, b"one".to_vec()), FULL).unwrap();
        drop(cache.get(&published(2, b"two".to_vec()), FULL).unwrap());
        drop(cache.get(&published(3, b"three".to_vec()), EAGER).unwrap());
        cache.release();
        assert_eq!(cache.spare.pipes.lock().unwrap().len(), 0);
        assert_eq!(
            cache.spare.existing.load(Ordering::Relaxed),
            1,
            "the held frame's pipe"
        );
        let one = published(1, b"one".to_vec());
        assert_eq!(
            contents(&held),
            [&one.full_headers[..], b"one", PartHeaders::Full.part_end()].concat()
        );
        drop(held);
        let four = cache.get(&published(4, b"four".to_vec()), FULL).unwrap();
        assert_eq!(four.chunks.len(), 1);
    }
}
