//! The MJPEG sender: a thread per core that writes the frames of directly connected
//! `/stream.mjpg` viewers to their sockets.
//!
//! Why threads of their own: each frame goes to every viewer at once. As a task per viewer, a
//! frame woke each viewer's task and its connection's dispatcher, which set up channel waits and
//! timers and polled the connection's timers and reads again; that bookkeeping cost as much as
//! the send itself. Here a new frame is one pass over the viewers, and for each a single
//! sendfile(2) of the frame's memory file (`frame_file`), so the frame is not copied per viewer
//! by the process or by the kernel. A viewer whose socket is full waits on its thread's reactor
//! for it to drain and then gets the newest frame (latest frame wins, the gap is counted as
//! skipped); one whose socket takes nothing for the stall time is dropped.
//!
//! The connection stays actix's: actix read the request and wrote the response head, and keeps
//! reading the socket. Once the head is out, the sender gets a second descriptor of the socket
//! and writes the body; when it is done (cleanly at shutdown, or with the error that ended it)
//! it says so to the response's body, which then ends and lets actix finish the response.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::hub::{Hub, PublishedJpeg, StreamDemandGuard, ViewerGuard};
use crate::media::multipart::PartHeaders;

use super::direct_body::{self, CHUNK_LINE_BYTES};
use super::endless::shutdown_requested;
use super::frame_file::{FrameFile, FrameFileCache};

/// After this long without a new frame the last one is sent again: Safari and Firefox show a
/// part only when more data follows it, and a static scene must not leave them a frame behind.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);

/// Sender threads at most, however many cores there are.
const MAX_THREADS: usize = 4;

/// Viewers a sender thread takes before the next one gets any.
const VIEWERS_PER_THREAD: usize = 100;

/// Buffers of one frame's write: stream start, part headers, JPEG, part end, chunk end.
const MAX_PIECES: usize = 5;

/// A viewer handed to the sender, once actix has written its response head.
#[derive(Debug)]
pub struct Joining {
    /// A second descriptor of the viewer's socket (non-blocking, like the first).
    pub socket: std::net::TcpStream,
    /// HTTP/1.1 chunked coding (RFC 9112 §7.1); HTTP/1.0 bodies run until the socket closes.
    pub chunked: bool,
    pub mode: PartHeaders,
    /// From the viewer's `?fps=`.
    pub min_interval: Option<Duration>,
    pub stats: ViewerGuard,
    pub demand: StreamDemandGuard,
    /// Told how the body ended; the sender stops writing before it says so.
    pub done: oneshot::Sender<io::Result<()>>,
    /// When the body ends on its own: a signed link's expiry. `None`: at shutdown only.
    pub ends_at: Option<Instant>,
}

/// The handle the HTTP handlers give viewers to. Its threads start as viewers come: the first
/// with the first viewer, each next one only once every running thread has
/// [`VIEWERS_PER_THREAD`] viewers, so a server with many streams and few viewers each runs
/// one sender thread per watched stream.
#[derive(Debug, Default)]
pub struct MjpegSender {
    threads: Mutex<SenderThreads>,
}

#[derive(Debug, Default)]
struct SenderThreads {
    running: Vec<SenderThread>,
    /// One file per frame for all threads: whichever sends the frame first writes it.
    files: Arc<FrameFileCache>,
}

/// How a handler reaches one sender thread.
#[derive(Debug)]
struct SenderThread {
    joins: mpsc::UnboundedSender<Joining>,
    /// Its viewers, kept by the thread.
    viewers: Arc<AtomicUsize>,
}

impl MjpegSender {
    /// Hands `viewer` to a sender thread, starting one if needed with the stream's `hub`, its
    /// `shutdown` signal and the `stall` time after which a viewer that takes nothing is
    /// dropped. Gives the viewer back if no thread runs.
    pub fn join(
        &self,
        hub: &Arc<Hub>,
        shutdown: &watch::Receiver<bool>,
        stall: Duration,
        viewer: Joining,
    ) -> Result<(), Joining> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let count = |thread: &SenderThread| thread.viewers.load(Ordering::Relaxed);
        let with_room = threads
            .running
            .iter()
            .position(|thread| count(thread) < VIEWERS_PER_THREAD);
        let index = match with_room {
            Some(index) => Some(index),
            None if threads.running.len() < max_threads() => {
                let number = threads.running.len();
                let files = threads.files.clone();
                match start_thread(number, hub, files, shutdown, stall) {
                    Some(thread) => {
                        threads.running.push(thread);
                        Some(number)
                    }
                    None => None,
                }
            }
            None => None,
        }
        .or_else(|| {
            // Every thread is full, or no more could start: the one with the fewest viewers.
            (0..threads.running.len()).min_by_key(|&i| count(&threads.running[i]))
        });
        let Some(thread) = index.and_then(|i| threads.running.get(i)) else {
            return Err(viewer);
        };
        // Counted now, so that viewers joining at once spread as they should.
        thread.viewers.fetch_add(1, Ordering::Relaxed);
        // The channel is unbounded, but what is in it is bounded by the connection cap: each
        // entry is an open connection.
        thread.joins.send(viewer).map_err(|error| {
            thread.viewers.fetch_sub(1, Ordering::Relaxed);
            error.0
        })
    }
}

/// One sender thread per core, at most [`MAX_THREADS`]: with hundreds of viewers the sends of
/// one frame then run side by side, and the last viewer gets it sooner.
fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

/// Starts sender thread `number`.
fn start_thread(
    number: usize,
    hub: &Arc<Hub>,
    files: Arc<FrameFileCache>,
    shutdown: &watch::Receiver<bool>,
    stall: Duration,
) -> Option<SenderThread> {
    let (joins, joined) = mpsc::unbounded_channel();
    let viewers = Arc::new(AtomicUsize::new(0));
    let sender = Sender {
        hub: hub.clone(),
        files,
        stall,
        viewers: Vec::new(),
        viewer_count: viewers.clone(),
    };
    let shutdown = shutdown.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("mjpeg-sender-{number}"))
        .spawn(move || sender.run_thread(joined, shutdown));
    match spawned {
        Ok(_) => Some(SenderThread { joins, viewers }),
        Err(error) => {
            tracing::error!(%error, "cannot start an MJPEG sender thread");
            None
        }
    }
}

/// The sender thread's state.
struct Sender {
    hub: Arc<Hub>,
    files: Arc<FrameFileCache>,
    stall: Duration,
    viewers: Vec<Viewer>,
    /// How many viewers this thread has or is about to get, for [`MjpegSender::join`].
    viewer_count: Arc<AtomicUsize>,
}

impl Sender {
    fn run_thread(self, joined: mpsc::UnboundedReceiver<Joining>, shutdown: watch::Receiver<bool>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "cannot start the MJPEG sender's runtime");
                return;
            }
        };
        runtime.block_on(self.run(joined, shutdown));
    }

    /// Sends frames until the handle is gone (the server has stopped).
    async fn run(
        mut self,
        mut joined: mpsc::UnboundedReceiver<Joining>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut frames = self.hub.subscribe_jpeg();
        let mut shutting_down = *shutdown.borrow();
        loop {
            let newest = frames.borrow_and_update().clone();
            let wake_at = self.advance_all(newest.as_ref(), Instant::now(), shutting_down);
            let Self { viewers, .. } = &self;
            let has_viewers = !viewers.is_empty();
            tokio::select! {
                // A thread without viewers has nothing to do with a frame.
                changed = frames.changed(), if has_viewers => {
                    // The hub is gone: nothing more will come; end every body.
                    if changed.is_err() {
                        shutting_down = true;
                    }
                }
                viewer = joined.recv() => match viewer {
                    Some(viewer) => self.add(viewer),
                    None => return,
                },
                () = shutdown_requested(&mut shutdown), if !shutting_down => shutting_down = true,
                () = any_writable(viewers) => {}
                () = sleep_until(wake_at) => {}
            }
        }
    }

    fn add(&mut self, joining: Joining) {
        let socket = match TcpStream::from_std(joining.socket) {
            Ok(socket) => socket,
            Err(error) => {
                self.viewer_count.fetch_sub(1, Ordering::Relaxed);
                let _ = joining.done.send(Err(error));
                return;
            }
        };
        self.viewers.push(Viewer {
            socket,
            chunked: joining.chunked,
            mode: joining.mode,
            min_interval: joining.min_interval,
            stats: joining.stats,
            _demand: joining.demand,
            done: Some(joining.done),
            ends_at: joining.ends_at,
            started: false,
            chunk_open: false,
            last: None,
            last_sent_at: None,
            out: None,
            last_progress: Instant::now(),
        });
    }

    /// Moves every viewer on as far as it goes now; returns when the earliest of them has
    /// something to do again (a frame due, a resend, a stall to call).
    fn advance_all(
        &mut self,
        newest: Option<&Arc<PublishedJpeg>>,
        now: Instant,
        shutting_down: bool,
    ) -> Option<Instant> {
        let mut wake_at: Option<Instant> = None;
        let context = Context {
            hub: &self.hub,
            files: &self.files,
            stall: self.stall,
            newest,
            now,
            shutting_down,
        };
        let mut i = 0;
        while i < self.viewers.len() {
            match self.viewers[i].advance(&context) {
                Step::WaitUntil(at) => {
                    wake_at = match (wake_at, at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    i += 1;
                }
                Step::Done(result) => {
                    let mut viewer = self.viewers.swap_remove(i);
                    self.viewer_count.fetch_sub(1, Ordering::Relaxed);
                    if matches!(&result, Err(e) if e.kind() == io::ErrorKind::TimedOut) {
                        self.hub.viewers.count_dropped_stalled();
                    }
                    if let Some(done) = viewer.done.take() {
                        let _ = done.send(result);
                    }
                }
            }
        }
        wake_at
    }
}

/// Resolves at `at`, or never.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once any viewer waiting for its socket can write again.
async fn any_writable(viewers: &[Viewer]) {
    std::future::poll_fn(|cx| {
        let mut ready = false;
        for viewer in viewers.iter().filter(|v| v.out.is_some()) {
            // Every waiting viewer is polled, so each registers for its wake-up.
            ready |= viewer.socket.poll_write_ready(cx).is_ready();
        }
        if ready {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// What a viewer's step needs to know.
struct Context<'a> {
    hub: &'a Hub,
    files: &'a FrameFileCache,
    stall: Duration,
    newest: Option<&'a Arc<PublishedJpeg>>,
    now: Instant,
    shutting_down: bool,
}

/// Where a viewer's step left it.
enum Step {
    /// Waiting for a frame or its socket; with a time, also for then.
    WaitUntil(Option<Instant>),
    /// The body is over, with this result.
    Done(io::Result<()>),
}

/// One viewer's position in the stream.
struct Viewer {
    socket: TcpStream,
    chunked: bool,
    mode: PartHeaders,
    min_interval: Option<Duration>,
    stats: ViewerGuard,
    _demand: StreamDemandGuard,
    done: Option<oneshot::Sender<io::Result<()>>>,
    /// See [`Joining::ends_at`].
    ends_at: Option<Instant>,
    /// The stream's opening has been queued.
    started: bool,
    /// The last chunk ended with a file and still owes its closing CRLF.
    chunk_open: bool,
    last: Option<Arc<PublishedJpeg>>,
    last_sent_at: Option<Instant>,
    /// The write in progress.
    out: Option<Outgoing>,
    /// When the socket last took a byte, or the write began.
    last_progress: Instant,
}

impl Viewer {
    fn advance(&mut self, cx: &Context<'_>) -> Step {
        // The response was dropped (actix closed the connection): stop quietly.
        if self.done.as_ref().is_none_or(|done| done.is_closed()) {
            return Step::Done(Ok(()));
        }
        // The body ends at shutdown, or when its signed link expires: then like a shutdown
        // for this viewer alone. One comparison per step for a viewer with a deadline.
        let ending = cx.shutting_down || self.ends_at.is_some_and(|at| cx.now >= at);
        loop {
            if let Some(out) = &mut self.out {
                match out.write(&self.socket) {
                    Ok(Progress::Finished) => {
                        self.out = None;
                        self.last_progress = cx.now;
                    }
                    Ok(Progress::Blocked { progressed }) => {
                        if progressed {
                            self.last_progress = cx.now;
                        }
                        if ending {
                            return Step::Done(Err(io::Error::other(
                                "the stream ended in the middle of a write",
                            )));
                        }
                        let stall_at = self.last_progress + cx.stall;
                        if cx.now >= stall_at {
                            return Step::Done(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("the viewer took nothing for {} s", cx.stall.as_secs()),
                            )));
                        }
                        return self.wait_until(Some(stall_at));
                    }
                    Err(error) => return Step::Done(Err(error)),
                }
            }
            if ending {
                if std::mem::take(&mut self.chunk_open) {
                    self.out = Some(Outgoing::new(true, true, &[], None));
                    continue;
                }
                return Step::Done(Ok(()));
            }
            if let (Some(interval), Some(sent_at)) = (self.min_interval, self.last_sent_at)
                && cx.now < sent_at + interval
            {
                return self.wait_until(Some(sent_at + interval));
            }
            let frame = match cx.newest {
                Some(frame) if self.wants(frame, cx.hub) => frame.clone(),
                _ => match (&self.last, self.last_sent_at) {
                    (Some(last), Some(sent_at)) if cx.now >= sent_at + RESEND_AFTER => last.clone(),
                    (Some(_), Some(sent_at)) => {
                        return self.wait_until(Some(sent_at + RESEND_AFTER));
                    }
                    _ => return self.wait_until(None),
                },
            };
            self.queue(frame, cx);
        }
    }

    /// Waits until `at`, and no later than the viewer's end.
    fn wait_until(&self, at: Option<Instant>) -> Step {
        Step::WaitUntil(match (at, self.ends_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Whether `frame` is one this viewer has not had; a first frame must be current, not
    /// one left from before the viewer came.
    fn wants(&self, frame: &PublishedJpeg, hub: &Hub) -> bool {
        match &self.last {
            Some(last) => frame.index > last.index,
            None => hub.is_fresh(frame),
        }
    }

    /// Starts the write of `frame`: from its memory file where there is one, otherwise from
    /// its buffers.
    fn queue(&mut self, frame: Arc<PublishedJpeg>, cx: &Context<'_>) {
        let start = (!std::mem::replace(&mut self.started, true))
            .then(|| Bytes::from_static(self.mode.stream_start()));
        let close_previous = std::mem::take(&mut self.chunk_open);
        let out = match cx.files.get(&frame) {
            Ok(file) => {
                let range = file.range(self.mode);
                self.chunk_open = self.chunked;
                Outgoing::new(
                    self.chunked,
                    close_previous,
                    start.as_slice(),
                    Some((file, range)),
                )
            }
            Err(error) => {
                tracing::debug!(%error, "no memory file for the frame; writing it instead");
                let mut pieces: Vec<Bytes> = start.into_iter().collect();
                if self.mode == PartHeaders::Full {
                    pieces.push(frame.full_headers.clone());
                }
                pieces.push(frame.frame.jpeg.clone());
                pieces.push(Bytes::from_static(self.mode.part_end()));
                Outgoing::new(self.chunked, close_previous, &pieces, None)
            }
        };
        self.stats.stats().record_bytes(out.payload_len);
        let skipped = match &self.last {
            Some(last) => frame.index.saturating_sub(last.index + 1),
            None => 0,
        };
        self.stats.stats().record_frame(skipped, frame.index);
        self.last = Some(frame);
        self.last_sent_at = Some(cx.now);
        self.last_progress = cx.now;
        self.out = Some(out);
    }
}

/// Runs the send `send` on `socket` at once, whether or not tokio last saw the socket
/// writable: going through tokio's readiness for every send cost more than the rare send
/// that finds the socket full. A send that would block is told to tokio, which then forgets
/// the socket's readiness, so that waiting for it to drain waits. Should the socket drain in
/// between, that wake-up is missed and the next frame or timer of the sender tries again.
fn send_now(socket: &TcpStream, mut send: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    let sent = send();
    if matches!(&sent, Err(error) if error.kind() == io::ErrorKind::WouldBlock) {
        let _ = socket.try_io(Interest::WRITABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
    sent
}

/// How far a write got.
enum Progress {
    Finished,
    /// The socket is full; `progressed` if it took some bytes first.
    Blocked {
        progressed: bool,
    },
}

/// One frame's write: the chunk line, buffers, then a file range.
struct Outgoing {
    /// The CRLF closing the previous chunk and this chunk's size line (RFC 9112 §7.1).
    line: [u8; CHUNK_LINE_BYTES + 2],
    line_len: usize,
    pieces: [Bytes; MAX_PIECES],
    /// Bytes of `line` and `pieces` written so far.
    written: usize,
    file: Option<(Arc<FrameFile>, Range<u64>)>,
    /// The body bytes of this write, without chunk framing.
    payload_len: usize,
}

impl Outgoing {
    /// A write of `buffers` then `file`, as one chunk if `chunked` (after closing the previous
    /// one if `close_previous`). With a file the chunk's CRLF is owed to the next write, so a
    /// frame costs one sendfile and at most one small send.
    fn new(
        chunked: bool,
        close_previous: bool,
        buffers: &[Bytes],
        file: Option<(Arc<FrameFile>, Range<u64>)>,
    ) -> Self {
        let mut pieces: [Bytes; MAX_PIECES] = Default::default();
        for (piece, buffer) in pieces.iter_mut().zip(buffers) {
            *piece = buffer.clone();
        }
        let payload_len = buffers.iter().map(Bytes::len).sum::<usize>()
            + file.as_ref().map_or(0, |(_, range)| {
                usize::try_from(range.end - range.start).unwrap_or(usize::MAX)
            });
        let mut line = [0u8; CHUNK_LINE_BYTES + 2];
        let mut line_len = 0;
        if chunked && close_previous {
            line[..2].copy_from_slice(b"\r\n");
            line_len = 2;
        }
        if chunked && payload_len > 0 {
            // A zero-size chunk would end the body.
            let mut size_line = [0u8; CHUNK_LINE_BYTES];
            let n = direct_body::chunk_size_line(payload_len, &mut size_line);
            line[line_len..line_len + n].copy_from_slice(&size_line[..n]);
            line_len += n;
            if file.is_none() && buffers.len() < MAX_PIECES {
                pieces[buffers.len()] = Bytes::from_static(b"\r\n");
            }
        }
        Self {
            line,
            line_len,
            pieces,
            written: 0,
            file,
            payload_len,
        }
    }

    /// Writes what the socket takes now.
    fn write(&mut self, socket: &TcpStream) -> io::Result<Progress> {
        let mut progressed = false;
        let mut all: [&[u8]; MAX_PIECES + 1] = [&[]; MAX_PIECES + 1];
        all[0] = &self.line[..self.line_len];
        for (slot, piece) in all[1..].iter_mut().zip(&self.pieces) {
            *slot = piece;
        }
        let total: usize = all.iter().map(|piece| piece.len()).sum();
        // Tell TCP that the file follows at once, so a short piece waits for it.
        let flags = if self.file.is_some() {
            SendFlags::MORE | SendFlags::NOSIGNAL
        } else {
            SendFlags::NOSIGNAL
        };
        while self.written < total {
            let mut slices = [IoSlice::new(&[]); MAX_PIECES + 1];
            let count = direct_body::remaining_slices(&all, self.written, &mut slices);
            let sent = send_now(socket, || {
                rustix::net::sendmsg(
                    socket,
                    &slices[..count],
                    &mut SendAncillaryBuffer::default(),
                    flags,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    progressed = true;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Progress::Blocked { progressed });
                }
                Err(error) => return Err(error),
            }
        }
        if let Some((file, range)) = &mut self.file {
            while range.start < range.end {
                let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
                let sent = send_now(socket, || {
                    let mut offset = range.start;
                    rustix::fs::sendfile(socket, file.file(), Some(&mut offset), len)
                        .map_err(io::Error::from)
                });
                match sent {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        range.start += n as u64;
                        progressed = true;
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Progress::Blocked { progressed });
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(Progress::Finished)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::http::frame_file::tests::published;

    /// Writes each of `writes` in turn to a loopback socket; what the other end read.
    async fn sent(writes: Vec<Outgoing>) -> Vec<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = TcpStream::from_std(server).unwrap();
        for mut out in writes {
            loop {
                socket.writable().await.unwrap();
                match out.write(&socket).unwrap() {
                    Progress::Finished => break,
                    Progress::Blocked { .. } => continue,
                }
            }
        }
        drop(socket);
        let mut received = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (&client).read_to_end(&mut received).unwrap();
        received
    }

    fn file_write(
        chunked: bool,
        close_previous: bool,
        start: bool,
        frame: &PublishedJpeg,
        mode: PartHeaders,
    ) -> Outgoing {
        let cache = FrameFileCache::default();
        let file = cache.get(frame).unwrap();
        let range = file.range(mode);
        let start: Vec<Bytes> = start
            .then(|| Bytes::from_static(mode.stream_start()))
            .into_iter()
            .collect();
        Outgoing::new(chunked, close_previous, &start, Some((file, range)))
    }

    /// RFC 9112 §7.1: each frame is one chunk; its closing CRLF goes out with the next write
    /// (here the closing write at the end of the body).
    #[tokio::test]
    async fn chunked_frames_from_files_are_one_chunk_each() {
        let one = published(1, b"\xFF\xD8one\xFF\xD9");
        let two = published(2, b"\xFF\xD8two!\xFF\xD9");
        let mode = PartHeaders::Eager;
        let bytes = sent(vec![
            file_write(true, false, true, &one, mode),
            file_write(true, true, false, &two, mode),
            Outgoing::new(true, true, &[], None),
        ])
        .await;
        let first = [mode.stream_start(), b"\xFF\xD8one\xFF\xD9", mode.part_end()].concat();
        let second = [&b"\xFF\xD8two!\xFF\xD9"[..], mode.part_end()].concat();
        let expected = [
            format!("{:X}\r\n", first.len()).as_bytes(),
            &first,
            b"\r\n",
            format!("{:X}\r\n", second.len()).as_bytes(),
            &second,
            b"\r\n",
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    /// HTTP/1.0 bodies are bare: the full part headers, the JPEG and the boundary.
    #[tokio::test]
    async fn unchunked_frames_are_bare_parts() {
        let frame = published(3, b"\xFF\xD8jpeg\xFF\xD9");
        let mode = PartHeaders::Full;
        let bytes = sent(vec![file_write(false, false, true, &frame, mode)]).await;
        let expected = [
            mode.stream_start(),
            &frame.full_headers,
            b"\xFF\xD8jpeg\xFF\xD9",
            mode.part_end(),
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    /// Without a memory file the frame goes out from its buffers, its chunk closed at once.
    #[tokio::test]
    async fn frames_from_buffers_close_their_chunk() {
        let pieces = [
            Bytes::from_static(b"--b\r\n"),
            Bytes::from_static(b"\xFF\xD8j\xFF\xD9"),
            Bytes::from_static(b"\r\n--b\r\n"),
        ];
        let bytes = sent(vec![Outgoing::new(true, false, &pieces, None)]).await;
        let payload = pieces.concat();
        let expected = [
            format!("{:X}\r\n", payload.len()).as_bytes(),
            &payload,
            b"\r\n",
        ]
        .concat();
        assert_eq!(bytes, expected);
    }
}
