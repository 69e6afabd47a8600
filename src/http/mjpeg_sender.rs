//! The MJPEG sender: a thread per core that writes the frames of directly connected
//! `/stream.mjpg` viewers to their sockets.
//!
//! Why threads of their own: each frame goes to every viewer at once. As a task per viewer, a
//! frame woke each viewer's task and its connection's dispatcher, which set up channel waits and
//! timers and polled the connection's timers and reads again; that bookkeeping cost as much as
//! the send itself. Here a new frame is one pass over the viewers, and for each a tee(2) of the
//! frame's pipe into the viewer's and a splice(2) of that into the socket (`frame_pipes`), so the
//! frame is not copied per viewer by the process or by the kernel. A viewer whose socket is full
//! waits on its thread's reactor for it to drain and then gets the newest frame (latest frame
//! wins, the gap is counted as skipped); one whose socket takes nothing for the stall time is
//! dropped.
//!
//! The connection stays actix's: actix read the request and wrote the response head, and keeps
//! reading the socket. Once the head is out, the sender gets a second descriptor of the socket
//! and writes the body; when it is done (cleanly at shutdown, or with the error that ended it)
//! it says so to the response's body, which then ends and lets actix finish the response.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{SendAncillaryBuffer, SendFlags};
use rustix::pipe::SpliceFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::hub::{Hub, PublishedJpeg, StreamDemandGuard, ViewerGuard};
use crate::media::multipart::PartHeaders;

use super::direct_body::{self, CHUNK_LINE_BYTES};
use super::endless::shutdown_requested;
use super::frame_pipes::{self, Chunk, PartPipes, PartPipesCache, ViewerPipe, ViewerPipes};

/// After this long without a new frame the last one is sent again: Safari and Firefox show a
/// part only when more data follows it, and a static scene must not leave them a frame behind.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);

/// Sender threads at most, however many cores there are.
const MAX_THREADS: usize = 4;

/// Viewers a sender thread takes before the next one gets any.
const VIEWERS_PER_THREAD: usize = 100;

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
    /// One set of pipes per frame and framing for all threads: whichever sends the frame
    /// first fills them.
    pipes: Arc<PartPipesCache>,
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
                let pipes = threads.pipes.clone();
                match start_thread(number, hub, pipes, shutdown, stall) {
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
    pipes: Arc<PartPipesCache>,
    shutdown: &watch::Receiver<bool>,
    stall: Duration,
) -> Option<SenderThread> {
    let (joins, joined) = mpsc::unbounded_channel();
    let viewers = Arc::new(AtomicUsize::new(0));
    let sender = Sender {
        hub: hub.clone(),
        pipes,
        viewer_pipes: ViewerPipes::default(),
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
    pipes: Arc<PartPipesCache>,
    /// This thread's empty viewer pipes.
    viewer_pipes: ViewerPipes,
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
            pipes: &self.pipes,
            stall: self.stall,
            newest,
            now,
            shutting_down,
        };
        let mut i = 0;
        while i < self.viewers.len() {
            match self.viewers[i].advance(&context, &mut self.viewer_pipes) {
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
    pipes: &'a PartPipesCache,
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
    fn advance(&mut self, cx: &Context<'_>, pipes: &mut ViewerPipes) -> Step {
        // The response was dropped (actix closed the connection): stop quietly.
        if self.done.as_ref().is_none_or(|done| done.is_closed()) {
            return Step::Done(Ok(()));
        }
        // The body ends at shutdown, or when its signed link expires: then like a shutdown
        // for this viewer alone. One comparison per step for a viewer with a deadline.
        let ending = cx.shutting_down || self.ends_at.is_some_and(|at| cx.now >= at);
        loop {
            if let Some(out) = &mut self.out {
                match out.write(&self.socket, pipes) {
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

    /// Starts the write of `frame`: from its pipes where it has them, otherwise from its
    /// buffers.
    fn queue(&mut self, frame: Arc<PublishedJpeg>, cx: &Context<'_>) {
        let start: &'static [u8] = if std::mem::replace(&mut self.started, true) {
            &[]
        } else {
            self.mode.stream_start()
        };
        let close_previous = std::mem::take(&mut self.chunk_open);
        let pipes = match cx.pipes.get(&frame, self.mode) {
            Ok(pipes) => Some(pipes),
            Err(error) => {
                tracing::debug!(%error, "no pipes for the frame; copying it instead");
                None
            }
        };
        let part = PartSend::new(frame.clone(), self.mode, pipes);
        self.chunk_open = self.chunked;
        let out = Outgoing::new(self.chunked, close_previous, start, Some(part));
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

/// One write: the chunk line and the stream's opening, then a part.
struct Outgoing {
    /// The CRLF closing the previous chunk and this chunk's size line (RFC 9112 §7.1).
    line: [u8; CHUNK_LINE_BYTES + 2],
    line_len: usize,
    /// The stream's opening, before the first part.
    start: &'static [u8],
    /// Bytes of `line` and `start` written so far.
    written: usize,
    part: Option<PartSend>,
    /// The body bytes of this write, without chunk framing.
    payload_len: usize,
}

impl Outgoing {
    /// A write of `start` then `part`, as one chunk if `chunked` (after closing the previous
    /// one if `close_previous`). With a part the chunk's CRLF is owed to the next write, so a
    /// part costs its splices and at most one small send.
    fn new(
        chunked: bool,
        close_previous: bool,
        start: &'static [u8],
        part: Option<PartSend>,
    ) -> Self {
        let payload_len = start.len() + part.as_ref().map_or(0, |part| part.len);
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
        }
        Self {
            line,
            line_len,
            start,
            written: 0,
            part,
            payload_len,
        }
    }

    /// Writes what the socket takes now.
    fn write(&mut self, socket: &TcpStream, pipes: &mut ViewerPipes) -> io::Result<Progress> {
        let mut progressed = false;
        let all: [&[u8]; 2] = [&self.line[..self.line_len], self.start];
        let total: usize = all.iter().map(|piece| piece.len()).sum();
        // Tell TCP that the part follows at once, so a short piece waits for it.
        let flags = if self.part.is_some() {
            SendFlags::MORE | SendFlags::NOSIGNAL
        } else {
            SendFlags::NOSIGNAL
        };
        while self.written < total {
            let mut slices = [IoSlice::new(&[]); 2];
            let count = direct_body::remaining_slices(&all, self.written, &mut slices);
            match send_now(socket, || send_slices(socket, &slices[..count], flags)) {
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
        match &mut self.part {
            Some(part) => part.write(socket, pipes, progressed),
            None => Ok(Progress::Finished),
        }
    }
}

/// One vectored send of `slices`.
fn send_slices(socket: &TcpStream, slices: &[IoSlice<'_>], flags: SendFlags) -> io::Result<usize> {
    rustix::net::sendmsg(socket, slices, &mut SendAncillaryBuffer::default(), flags)
        .map_err(io::Error::from)
}

/// One part on its way to a viewer: each chunk's pipe is teed into the viewer's pipe, which is
/// spliced into the socket. Without pipes (none could be made, or a viewer's pipe took less
/// than a chunk) the rest of the part is copied from the frame's buffers instead.
struct PartSend {
    frame: Arc<PublishedJpeg>,
    mode: PartHeaders,
    pipes: Option<Arc<PartPipes>>,
    len: usize,
    /// Bytes of the part the socket took.
    sent: usize,
    /// Where the bytes in `pipe` end: the pipe holds `sent..teed_end`.
    teed_end: usize,
    pipe: Option<ViewerPipe>,
}

impl PartSend {
    fn new(frame: Arc<PublishedJpeg>, mode: PartHeaders, pipes: Option<Arc<PartPipes>>) -> Self {
        let len = frame_pipes::part_pieces(&frame, mode)
            .iter()
            .map(|piece| piece.len())
            .sum();
        Self {
            frame,
            mode,
            pipes,
            len,
            sent: 0,
            teed_end: 0,
            pipe: None,
        }
    }

    fn write(
        &mut self,
        socket: &TcpStream,
        pipes: &mut ViewerPipes,
        mut progressed: bool,
    ) -> io::Result<Progress> {
        loop {
            // First what the viewer's pipe holds.
            if let Some(pipe) = self.pipe.as_ref().filter(|_| self.sent < self.teed_end) {
                // More of the part follows this chunk: TCP may wait for it.
                let flags = if self.teed_end < self.len {
                    SpliceFlags::NONBLOCK | SpliceFlags::MORE
                } else {
                    SpliceFlags::NONBLOCK
                };
                let sent = send_now(socket, || {
                    rustix::pipe::splice(
                        &pipe.read,
                        None,
                        socket,
                        None,
                        self.teed_end - self.sent,
                        flags,
                    )
                    .map_err(io::Error::from)
                });
                match sent {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.sent += n;
                        progressed = true;
                        continue;
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Progress::Blocked { progressed });
                    }
                    Err(error) => return Err(error),
                }
            }
            // The viewer's pipe is empty: kept for the next chunk or viewer.
            if let Some(pipe) = self.pipe.take() {
                pipes.give_back(pipe);
            }
            if self.sent >= self.len {
                return Ok(Progress::Finished);
            }
            if let Some(chunk) = self.pipes.as_ref().and_then(|p| p.chunk_at(self.sent)) {
                match tee_chunk(chunk, pipes) {
                    Ok((pipe, teed)) => {
                        self.teed_end = self.sent + teed;
                        self.pipe = Some(pipe);
                        if teed < chunk.len() {
                            // A tee cannot start inside a chunk: the rest is copied.
                            self.pipes = None;
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "cannot tee a frame into a viewer's pipe; copying it");
                        self.pipes = None;
                    }
                }
                continue;
            }
            // Copied from the frame's buffers, for want of pipes.
            let pieces = frame_pipes::part_pieces(&self.frame, self.mode);
            let mut slices = [IoSlice::new(&[]); 3];
            let count = direct_body::remaining_slices(&pieces, self.sent, &mut slices);
            match send_now(socket, || {
                send_slices(socket, &slices[..count], SendFlags::NOSIGNAL)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    progressed = true;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Progress::Blocked { progressed });
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// `chunk`'s bytes duplicated into an empty viewer's pipe (references to the same pages, no
/// copy); the pipe and how many bytes it took, at least one.
fn tee_chunk(chunk: &Chunk, pipes: &mut ViewerPipes) -> io::Result<(ViewerPipe, usize)> {
    let pipe = pipes.take()?;
    loop {
        match rustix::pipe::tee(
            chunk.pipe(),
            &pipe.write,
            chunk.len(),
            SpliceFlags::NONBLOCK,
        ) {
            Ok(0) => {
                pipes.give_back(pipe);
                return Err(io::ErrorKind::WriteZero.into());
            }
            Ok(teed) => return Ok((pipe, teed)),
            Err(rustix::io::Errno::INTR) => {}
            // Nothing went in: the pipe is as empty as it came.
            Err(error) => {
                pipes.give_back(pipe);
                return Err(error.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::http::frame_pipes::tests::published;

    /// Writes each of `writes` in turn to a loopback socket; what the other end read.
    async fn sent(writes: Vec<Outgoing>) -> Vec<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let socket = TcpStream::from_std(server).unwrap();
        let reader = std::thread::spawn(move || {
            let mut received = Vec::new();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            (&client).read_to_end(&mut received).unwrap();
            received
        });
        let mut pipes = ViewerPipes::default();
        for mut out in writes {
            loop {
                socket.writable().await.unwrap();
                match out.write(&socket, &mut pipes).unwrap() {
                    Progress::Finished => break,
                    Progress::Blocked { .. } => continue,
                }
            }
        }
        drop(socket);
        reader.join().unwrap()
    }

    /// The write of `frame`'s part, through pipes if `piped`, else copied from its buffers.
    fn part_write(
        chunked: bool,
        close_previous: bool,
        start: bool,
        frame: &Arc<PublishedJpeg>,
        mode: PartHeaders,
        piped: bool,
    ) -> Outgoing {
        let pipes = piped.then(|| PartPipesCache::default().get(frame, mode).unwrap());
        let start = if start { mode.stream_start() } else { &[] };
        let part = PartSend::new(frame.clone(), mode, pipes);
        Outgoing::new(chunked, close_previous, start, Some(part))
    }

    /// RFC 9112 §7.1: each frame is one chunk; its closing CRLF goes out with the next write
    /// (here the closing write at the end of the body). The same bytes whether the part went
    /// through pipes or was copied.
    #[tokio::test]
    async fn chunked_frames_are_one_chunk_each() {
        let one = Arc::new(published(1, b"\xFF\xD8one\xFF\xD9".to_vec()));
        let two = Arc::new(published(2, b"\xFF\xD8two!\xFF\xD9".to_vec()));
        let mode = PartHeaders::Eager;
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
        for piped in [true, false] {
            let bytes = sent(vec![
                part_write(true, false, true, &one, mode, piped),
                part_write(true, true, false, &two, mode, piped),
                Outgoing::new(true, true, &[], None),
            ])
            .await;
            assert_eq!(bytes, expected, "piped: {piped}");
        }
    }

    /// HTTP/1.0 bodies are bare: the full part headers, the JPEG and the boundary.
    #[tokio::test]
    async fn unchunked_frames_are_bare_parts() {
        let frame = Arc::new(published(3, b"\xFF\xD8jpeg\xFF\xD9".to_vec()));
        let mode = PartHeaders::Full;
        let expected = [
            mode.stream_start(),
            &frame.full_headers,
            b"\xFF\xD8jpeg\xFF\xD9",
            mode.part_end(),
        ]
        .concat();
        for piped in [true, false] {
            let bytes = sent(vec![part_write(false, false, true, &frame, mode, piped)]).await;
            assert_eq!(bytes, expected, "piped: {piped}");
        }
    }

    /// A part of many chunks, larger than the socket's buffer: it goes out whole and in
    /// order, each chunk through the viewer's pipe, with waits for the socket between.
    #[tokio::test]
    async fn a_part_larger_than_the_socket_buffer_goes_out_whole() {
        let jpeg: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let frame = Arc::new(published(7, jpeg.clone()));
        let mode = PartHeaders::Eager;
        let bytes = sent(vec![part_write(false, false, false, &frame, mode, true)]).await;
        assert_eq!(bytes.len(), jpeg.len() + mode.part_end().len());
        assert!(bytes == [&jpeg[..], mode.part_end()].concat());
    }
}
