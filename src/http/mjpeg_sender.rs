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

use super::direct_body;
use super::endless::shutdown_requested;
use super::frame_pipes::{
    self, Chunk, ChunkHead, PartFraming, PartPipes, PartPipesCache, ViewerPipe,
};

/// After this long without a new frame the last one is sent again: Safari and Firefox show a
/// part only when more data follows it, and a static scene must not leave them a frame behind.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);

/// Sender threads at most, however many cores there are.
pub(super) const MAX_THREADS: usize = 4;

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
        viewer_pipe: None,
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
    /// The pipe between chunk pipes and sockets, for all of this thread's viewers; made with
    /// the first send.
    viewer_pipe: Option<ViewerPipe>,
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
            if self.viewers.is_empty() && self.viewer_pipe.take().is_some() {
                // The last viewer left: what this thread sent from is let go.
                self.pipes.release();
            }
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
            match self.viewers[i].advance(&context, &mut self.viewer_pipe) {
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
    fn advance(&mut self, cx: &Context<'_>, viewer_pipe: &mut Option<ViewerPipe>) -> Step {
        // The response was dropped (actix closed the connection): stop quietly.
        if self.done.as_ref().is_none_or(|done| done.is_closed()) {
            return Step::Done(Ok(()));
        }
        // The body ends at shutdown, or when its signed link expires: then like a shutdown
        // for this viewer alone. One comparison per step for a viewer with a deadline.
        let ending = cx.shutting_down || self.ends_at.is_some_and(|at| cx.now >= at);
        loop {
            if let Some(out) = &mut self.out {
                match out.write(&self.socket, viewer_pipe) {
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
        let framing = PartFraming {
            mode: self.mode,
            chunked: self.chunked,
        };
        let pipes = match cx.pipes.get(&frame, framing) {
            Ok(pipes) => Some(pipes),
            Err(error) => {
                tracing::debug!(%error, "no pipes for the frame; copying it instead");
                None
            }
        };
        let part = PartSend::new(frame.clone(), framing, pipes);
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
    /// The CRLF closing the previous chunk and the stream opening's size line (RFC 9112 §7.1).
    line: ChunkHead,
    /// The stream's opening, before the first part.
    start: &'static [u8],
    /// Bytes of `line` and `start` written so far.
    written: usize,
    part: Option<PartSend>,
    /// The body bytes of this write, without chunk framing.
    payload_len: usize,
}

impl Outgoing {
    /// A write of `start` then `part`; if `chunked`, each is a chunk of its own, whose CRLF is
    /// owed to the next write. `close_previous` says a chunk is open before this write: a
    /// part's own framing closes it (a part goes out chunk head and all from its pipes, so it
    /// costs no send of its own), otherwise this write's line does. A chunked part needs a chunk
    /// open before it: the previous part's, or `start`'s.
    fn new(
        chunked: bool,
        close_previous: bool,
        start: &'static [u8],
        part: Option<PartSend>,
    ) -> Self {
        debug_assert!(
            !chunked || part.is_none() || close_previous || !start.is_empty(),
            "a chunked part closes the chunk before it"
        );
        let payload_len = start.len() + part.as_ref().map_or(0, |part| part.payload_len);
        let line = ChunkHead::between(
            chunked && close_previous && (part.is_none() || !start.is_empty()),
            chunked.then_some(start.len()),
        );
        Self {
            line,
            start,
            written: 0,
            part,
            payload_len,
        }
    }

    /// Writes what the socket takes now.
    fn write(
        &mut self,
        socket: &TcpStream,
        viewer_pipe: &mut Option<ViewerPipe>,
    ) -> io::Result<Progress> {
        let mut progressed = false;
        let all: [&[u8]; 2] = [self.line.as_bytes(), self.start];
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
            Some(part) => part.write(socket, viewer_pipe, progressed),
            None => Ok(Progress::Finished),
        }
    }
}

/// One vectored send of `slices`.
fn send_slices(socket: &TcpStream, slices: &[IoSlice<'_>], flags: SendFlags) -> io::Result<usize> {
    rustix::net::sendmsg(socket, slices, &mut SendAncillaryBuffer::default(), flags)
        .map_err(io::Error::from)
}

/// One part on its way to a viewer: each chunk's pipe is teed into the thread's viewer pipe,
/// which is spliced into the socket. A chunk the socket takes only part of is finished by
/// copying, as is a part without pipes (none could be had).
struct PartSend {
    frame: Arc<PublishedJpeg>,
    framing: PartFraming,
    head: ChunkHead,
    pipes: Option<Arc<PartPipes>>,
    /// The part's bytes, chunk head included.
    len: usize,
    /// Its body bytes, without chunk framing.
    payload_len: usize,
    /// Bytes of the part the socket took.
    sent: usize,
}

impl PartSend {
    fn new(frame: Arc<PublishedJpeg>, framing: PartFraming, pipes: Option<Arc<PartPipes>>) -> Self {
        let head = ChunkHead::new(&frame, framing);
        let [head_bytes, rest @ ..] = frame_pipes::part_pieces(&frame, framing, &head);
        let payload_len = rest.iter().map(|piece| piece.len()).sum();
        let len = head_bytes.len() + payload_len;
        Self {
            frame,
            framing,
            head,
            pipes,
            len,
            payload_len,
            sent: 0,
        }
    }

    fn write(
        &mut self,
        socket: &TcpStream,
        viewer_pipe: &mut Option<ViewerPipe>,
        mut progressed: bool,
    ) -> io::Result<Progress> {
        while self.sent < self.len {
            let step = match self.pipes.as_ref().and_then(|p| p.chunk_at(self.sent)) {
                Some(chunk) => splice_chunk(chunk, socket, viewer_pipe),
                None => Ok(ChunkStep::Copy),
            };
            let sent = match step? {
                ChunkStep::Sent { bytes, blocked } => {
                    self.sent += bytes;
                    progressed |= bytes > 0;
                    if blocked {
                        return Ok(Progress::Blocked { progressed });
                    }
                    continue;
                }
                ChunkStep::Copy => self.copy(socket)?,
            };
            match sent {
                Some(bytes) => {
                    self.sent += bytes;
                    progressed = true;
                }
                None => return Ok(Progress::Blocked { progressed }),
            }
        }
        Ok(Progress::Finished)
    }

    /// Sends the rest of the chunk holding the next byte (the rest of the part, without
    /// pipes) from the frame's buffers; what the socket took, `None` if nothing.
    fn copy(&self, socket: &TcpStream) -> io::Result<Option<usize>> {
        let end = self
            .pipes
            .as_ref()
            .map_or(self.len, |pipes| pipes.chunk_end(self.sent));
        let pieces = frame_pipes::part_pieces(&self.frame, self.framing, &self.head);
        let mut slices = [IoSlice::new(&[]); 4];
        let count = direct_body::slices_between(&pieces, self.sent, end, &mut slices);
        // More of the part follows this chunk: TCP may wait for it.
        let flags = if end < self.len {
            SendFlags::MORE | SendFlags::NOSIGNAL
        } else {
            SendFlags::NOSIGNAL
        };
        match send_now(socket, || send_slices(socket, &slices[..count], flags)) {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(Some(n)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// What became of a chunk's splice.
enum ChunkStep {
    /// The socket took `bytes` of it; `blocked` if it then filled up (the rest is copied
    /// once it drains).
    Sent { bytes: usize, blocked: bool },
    /// No pipe took it: it is to be copied.
    Copy,
}

/// Sends `chunk` to `socket` through `viewer_pipe` (made here the first time): a tee gives the
/// pipe references to the chunk's pages, a splice hands them to the socket. The viewer pipe is
/// empty again afterwards, whatever happened: what the socket did not take is thrown away.
fn splice_chunk(
    chunk: &Chunk,
    socket: &TcpStream,
    viewer_pipe: &mut Option<ViewerPipe>,
) -> io::Result<ChunkStep> {
    let pipe = match viewer_pipe {
        Some(pipe) => pipe,
        None => match ViewerPipe::new() {
            Ok(pipe) => viewer_pipe.insert(pipe),
            Err(error) => {
                tracing::debug!(%error, "no viewer pipe; copying frames");
                return Ok(ChunkStep::Copy);
            }
        },
    };
    let teed = loop {
        match rustix::pipe::tee(
            chunk.pipe(),
            &pipe.write,
            chunk.len(),
            SpliceFlags::NONBLOCK,
        ) {
            Ok(teed) => break teed,
            Err(rustix::io::Errno::INTR) => {}
            // Nothing went in.
            Err(_) => break 0,
        }
    };
    if teed == 0 {
        return Ok(ChunkStep::Copy);
    }
    let mut in_pipe = teed;
    let mut bytes = 0;
    let result = loop {
        if in_pipe == 0 {
            break Ok(ChunkStep::Sent {
                bytes,
                blocked: false,
            });
        }
        let spliced = send_now(socket, || {
            rustix::pipe::splice(
                &pipe.read,
                None,
                socket,
                None,
                in_pipe,
                SpliceFlags::NONBLOCK,
            )
            .map_err(io::Error::from)
        });
        match spliced {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes += n;
                in_pipe = in_pipe.saturating_sub(n);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                break Ok(ChunkStep::Sent {
                    bytes,
                    blocked: true,
                });
            }
            Err(error) => break Err(error),
        }
    };
    if in_pipe > 0 && pipe.drain(in_pipe).is_err() {
        // A pipe that cannot be emptied is no use to the next viewer.
        *viewer_pipe = None;
    }
    result
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
        let mut pipe = None;
        for mut out in writes {
            loop {
                socket.writable().await.unwrap();
                match out.write(&socket, &mut pipe).unwrap() {
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
        let framing = PartFraming { mode, chunked };
        let pipes = piped.then(|| PartPipesCache::default().get(frame, framing).unwrap());
        let start = if start { mode.stream_start() } else { &[] };
        let part = PartSend::new(frame.clone(), framing, pipes);
        Outgoing::new(chunked, close_previous, start, Some(part))
    }

    /// RFC 9112 §7.1: the stream's opening is a chunk, then each frame is one; a chunk's
    /// closing CRLF goes out with the next write (here the closing write at the end of the
    /// body). The same bytes whether the parts went through pipes or were copied; a client
    /// reading the chunks gets the multipart stream.
    #[tokio::test]
    async fn chunked_frames_are_one_chunk_each() {
        let one = Arc::new(published(1, b"\xFF\xD8one\xFF\xD9".to_vec()));
        let two = Arc::new(published(2, b"\xFF\xD8two!\xFF\xD9".to_vec()));
        let mode = PartHeaders::Eager;
        let start = mode.stream_start();
        let first = [&b"\xFF\xD8one\xFF\xD9"[..], mode.part_end()].concat();
        let second = [&b"\xFF\xD8two!\xFF\xD9"[..], mode.part_end()].concat();
        let expected = [
            format!("{:X}\r\n", start.len()).as_bytes(),
            start,
            b"\r\n",
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
            assert_eq!(
                dechunk(&bytes),
                [start, &first[..], &second[..]].concat(),
                "piped: {piped}"
            );
        }
    }

    /// The body of a chunked message (RFC 9112 §7.1) without its framing; the message here has
    /// no last chunk (actix writes it once the sender is done).
    fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        while !bytes.is_empty() {
            let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).unwrap(), 16)
                .unwrap();
            let data = &bytes[line_end + 2..];
            body.extend_from_slice(&data[..size]);
            assert_eq!(&data[size..size + 2], b"\r\n");
            bytes = &data[size + 2..];
        }
        body
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
