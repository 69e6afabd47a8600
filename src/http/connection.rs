//! One accepted TCP connection, shared between actix's HTTP/1 dispatcher and the writers of
//! endless bodies.
//!
//! actix copies every body chunk into its per-connection write buffer before writing it. For a
//! stream that sends the same frame to hundreds of viewers that is one copy of every frame per
//! viewer, which dominates the server's CPU. So the connection is wrapped: actix reads requests
//! and writes response heads through [`SharedConnection`] as through any socket, and a body
//! writer that holds the same socket ([`ConnectionSocket`], found in the connection's
//! extensions) writes the shared frame buffers straight to it with vectored writes.
//!
//! The two must never interleave: the direct writer starts only once actix has written
//! everything it buffered for this response (the head). actix calls `poll_flush` exactly when
//! its write buffer has gone to the socket in full, and it adds nothing more for this response
//! until the body yields, which a direct body does only at its end. So a body first marks the
//! connection "waiting for actix", and [`ConnectionSocket::actix_flushed`] resolves at actix's
//! next completed flush.
//!
//! The wrapper also decides when actix may read requests ([`ReadGate`]). actix's dispatcher
//! reads as long as the socket has bytes, up to 128 KiB of undecoded requests, and once that
//! buffer is full it wakes itself on every poll. A client that pipelines thousands of requests
//! and reads no answers fills it while the socket's send buffer is full, and the dispatcher
//! then spins at 100 % CPU for as long as the client keeps the connection open. So actix gets
//! request bytes in batches of [`READ_BATCH_BYTES`]: a new batch only once every request it
//! has started is answered and the socket has taken the answers. A connection whose answers
//! are not read then costs nothing while it waits, and holds at most a batch of requests.
//!
//! Over TLS (`server`, `tls`) the wrapper sits under the TLS layer: its socket is not offered
//! to direct writers (they would bypass the encryption), but an HTTP/1.1 connection keeps the
//! read gate ([`ConnectionReads`]), which then counts ciphertext bytes: a TLS record is
//! decrypted only once whole, so it may take a few batches, but those come at once while
//! the connection is idle. An HTTP/2 connection has it open ([`SharedConnection::ungate_reads`]):
//! HTTP/2 answers requests side by side and needs the client's frames (WINDOW_UPDATE, PING)
//! while answers are open, and it bounds what a client queues itself (the stream limit and
//! flow control windows, RFC 9113 §5.1.2 and §5.2).
//!
//! Over TLS the bodies actix writes have no stall guard of their own (a direct body has one),
//! and actix waits for a socket without a time limit. So a TLS connection's wrapper bounds its
//! writes ([`SharedConnection::limit_write_stalls`]): output the socket has not taken any of
//! for that long fails the write, and actix closes the connection, as for a plain viewer that
//! stopped reading.
//!
//! Everything here runs on one actix worker thread (the dispatcher and its body are polled by
//! the same task), hence `Rc` and `RefCell`; no borrow is ever held across an await.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Request bytes actix may take ahead of its answers: a few browser requests, or a couple of
/// hundred minimal ones, which bounds what one connection queues inside actix. Far below the
/// 128 KiB at which actix's dispatcher starts waking itself; a longer request head is simply
/// read in several batches.
const READ_BATCH_BYTES: usize = 4 * 1024;

/// The state both sides see.
#[derive(Debug)]
struct Shared {
    stream: RefCell<TcpStream>,
    /// Set by a direct body before its first write; cleared when actix has flushed.
    awaiting_actix_flush: Cell<bool>,
    /// The direct body waiting for that flush.
    flush_waiter: RefCell<Option<Waker>>,
    reads: ReadGate,
    writes: WriteStall,
}

/// How long actix's output may wait for a socket that takes nothing; off unless set.
#[derive(Debug, Default)]
struct WriteStall {
    limit: Cell<Option<Duration>>,
    /// Runs from the first write the socket refused since it last took bytes.
    timer: RefCell<Option<Pin<Box<Sleep>>>>,
}

impl WriteStall {
    /// Passes on a write's result; fails one that has waited past the limit, keeping
    /// `cx`'s waker for the moment it does.
    fn check<T>(&self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Some(limit) = self.limit.get() else {
            return result;
        };
        if result.is_ready() {
            self.timer.borrow_mut().take();
            return result;
        }
        let mut timer = self.timer.borrow_mut();
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing for {} s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// When actix may read: while it has credit left, and for a new batch of credit once the
/// connection is idle, that is every request it started has its answer in full (its body has
/// ended: [`OpenResponse`]) and the socket has taken every byte actix wrote.
///
/// Credit is not renewed within the poll that used it up: actix reads in a loop until the
/// socket says "nothing more", so the gate says so itself, wakes the dispatcher, and hands out
/// the next batch on the next poll, after actix has decoded this one and started answering it.
///
/// A route that reads a request body (a WHEP offer) first allows it
/// ([`ConnectionReads::allow_body`]): otherwise, while it runs, actix could read only what is
/// left of the batch its request came in, and would wait for the answer that waits for the body.
#[derive(Debug)]
struct ReadGate {
    /// False once the gate is open for good (HTTP/2).
    gated: Cell<bool>,
    /// Bytes actix may still read before it needs a new batch.
    credit_bytes: Cell<usize>,
    /// Requests that reached the app and whose response body has not ended.
    open_responses: Cell<usize>,
    /// actix wrote since its last completed flush: the socket has not taken all of it yet.
    output_unflushed: Cell<bool>,
    /// The dispatcher, waiting for the connection to be idle.
    waiting_reader: RefCell<Option<Waker>>,
}

impl ReadGate {
    fn new() -> Self {
        Self {
            gated: Cell::new(true),
            credit_bytes: Cell::new(READ_BATCH_BYTES),
            open_responses: Cell::new(0),
            output_unflushed: Cell::new(false),
            waiting_reader: RefCell::new(None),
        }
    }

    fn is_idle(&self) -> bool {
        self.open_responses.get() == 0 && !self.output_unflushed.get()
    }

    /// How many bytes actix may read now; `None` when it must wait, with its waker kept for
    /// when the connection is idle, or woken at once when a new batch is ready.
    fn allowance(&self, cx: &Context<'_>) -> Option<usize> {
        if !self.gated.get() {
            return Some(usize::MAX);
        }
        let credit = self.credit_bytes.get();
        if credit > 0 {
            return Some(credit);
        }
        if self.is_idle() {
            self.credit_bytes.set(READ_BATCH_BYTES);
            cx.waker().wake_by_ref();
        } else {
            *self.waiting_reader.borrow_mut() = Some(cx.waker().clone());
        }
        None
    }

    fn took(&self, len_bytes: usize) {
        self.credit_bytes
            .set(self.credit_bytes.get().saturating_sub(len_bytes));
    }

    /// Wakes a dispatcher waiting to read, if the connection has become idle.
    fn wake_reader_if_idle(&self) {
        if self.is_idle()
            && let Some(waker) = self.waiting_reader.borrow_mut().take()
        {
            waker.wake();
        }
    }
}

impl Shared {
    fn stream(&self) -> io::Result<std::cell::RefMut<'_, TcpStream>> {
        // Never fails: borrows end within each poll and nothing re-enters. An error, not a
        // panic, if that ever changed.
        self.stream
            .try_borrow_mut()
            .map_err(|_| io::Error::other("connection socket used re-entrantly"))
    }
}

/// The I/O object actix's dispatcher reads and writes.
#[derive(Debug)]
pub struct SharedConnection {
    shared: Rc<Shared>,
}

impl SharedConnection {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            shared: Rc::new(Shared {
                stream: RefCell::new(stream),
                awaiting_actix_flush: Cell::new(false),
                flush_waiter: RefCell::new(None),
                reads: ReadGate::new(),
                writes: WriteStall::default(),
            }),
        }
    }

    /// A handle for direct body writers, kept in the connection's extensions of a plain
    /// TCP connection only.
    pub fn socket(&self) -> ConnectionSocket {
        ConnectionSocket {
            shared: self.shared.clone(),
        }
    }

    /// A handle for counting open answers ([`ReadGate`]), kept in the connection's
    /// extensions of every HTTP/1 connection.
    pub fn reads(&self) -> ConnectionReads {
        ConnectionReads {
            shared: self.shared.clone(),
        }
    }

    /// Fails a write the socket has taken nothing of for `limit` (see the module doc).
    pub fn limit_write_stalls(&self, limit: Duration) {
        self.shared.writes.limit.set(Some(limit));
    }

    /// Opens the read gate for good: for HTTP/2, which must read while answers are open.
    pub fn ungate_reads(&self) {
        self.shared.reads.gated.set(false);
    }

    /// Runs `f` on the TCP stream (socket options when the connection is accepted).
    pub fn with_stream<R>(&self, f: impl FnOnce(&TcpStream) -> R) -> io::Result<R> {
        let stream = self.shared.stream()?;
        Ok(f(&stream))
    }
}

impl AsyncRead for SharedConnection {
    /// Reads at most what the [`ReadGate`] allows; `Pending` while it is closed.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(allowance) = self.shared.reads.allowance(cx) else {
            return Poll::Pending;
        };
        let stream = self.shared.stream()?;
        let len_bytes = allowance.min(buf.remaining());
        loop {
            std::task::ready!(stream.poll_read_ready(cx))?;
            match stream.try_read(buf.initialize_unfilled_to(len_bytes)) {
                Ok(read) => {
                    buf.advance(read);
                    self.shared.reads.took(read);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for SharedConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.shared.reads.output_unflushed.set(true);
        let written = {
            let mut stream = self.shared.stream()?;
            Pin::new(&mut *stream).poll_write(cx, buf)
        };
        self.shared.writes.check(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.shared.reads.output_unflushed.set(true);
        let written = {
            let mut stream = self.shared.stream()?;
            Pin::new(&mut *stream).poll_write_vectored(cx, bufs)
        };
        self.shared.writes.check(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// actix calls this once its write buffer is empty: from here on a direct writer may use
    /// the socket, and actix may read again once no answer is open.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = {
            let mut stream = self.shared.stream()?;
            Pin::new(&mut *stream).poll_flush(cx)
        };
        if flushed.is_ready() {
            self.shared.reads.output_unflushed.set(false);
            self.shared.reads.wake_reader_if_idle();
        }
        if flushed.is_ready()
            && self.shared.awaiting_actix_flush.replace(false)
            && let Some(waker) = self.shared.flush_waiter.borrow_mut().take()
        {
            waker.wake();
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.shared.stream()?;
        Pin::new(&mut *stream).poll_shutdown(cx)
    }
}

/// The connection's socket as a direct body writer uses it.
#[derive(Debug, Clone)]
pub struct ConnectionSocket {
    shared: Rc<Shared>,
}

/// The connection's read gate as the middleware that counts open answers uses it.
#[derive(Debug, Clone)]
pub struct ConnectionReads {
    shared: Rc<Shared>,
}

impl ConnectionReads {
    /// Counts a request as open until the returned guard is dropped, which the response body
    /// does when it ends; actix reads no new batch of requests meanwhile (see [`ReadGate`]).
    pub fn open_response(&self) -> OpenResponse {
        let reads = &self.shared.reads;
        reads.open_responses.set(reads.open_responses.get() + 1);
        OpenResponse {
            shared: self.shared.clone(),
        }
    }

    /// Lets actix read `len_bytes` more now, for the body of the request being answered (a
    /// route bounds it: its Content-Length within the route's limit). Without it a body longer
    /// than what is left of its request's batch would never be read.
    pub fn allow_body(&self, len_bytes: usize) {
        let reads = &self.shared.reads;
        reads
            .credit_bytes
            .set(reads.credit_bytes.get().saturating_add(len_bytes));
        if let Some(waker) = reads.waiting_reader.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl ConnectionSocket {
    /// Resolves once actix has written everything it buffered before this call (the response
    /// head). Call it from the body, that is after actix has encoded the head.
    pub async fn actix_flushed(&self) {
        self.shared.awaiting_actix_flush.set(true);
        poll_fn(|cx| {
            if self.shared.awaiting_actix_flush.get() {
                *self.shared.flush_waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// A second descriptor of the socket, for a writer on another thread (the MJPEG sender).
    /// It shares the socket's state, non-blocking mode included.
    pub fn try_clone_std(&self) -> io::Result<std::net::TcpStream> {
        let stream = self.shared.stream()?;
        let fd = std::os::fd::AsFd::as_fd(&*stream).try_clone_to_owned()?;
        Ok(std::net::TcpStream::from(fd))
    }

    /// Writes some of `bufs` once the socket can take bytes; returns how many it took.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.shared.stream()?;
        Pin::new(&mut *stream).poll_write_vectored(cx, bufs)
    }
}

/// A request being answered on its connection; see [`ConnectionSocket::open_response`].
#[derive(Debug)]
pub struct OpenResponse {
    shared: Rc<Shared>,
}

impl Drop for OpenResponse {
    fn drop(&mut self) {
        let reads = &self.shared.reads;
        reads
            .open_responses
            .set(reads.open_responses.get().saturating_sub(1));
        reads.wake_reader_if_idle();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counting_waker() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn a_used_up_batch_is_renewed_on_the_next_poll_when_idle() {
        let gate = ReadGate::new();
        let (wakes, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        assert_eq!(gate.allowance(&cx), Some(READ_BATCH_BYTES));
        gate.took(READ_BATCH_BYTES);
        // Not within this poll: the dispatcher is woken and reads on the next one.
        assert_eq!(gate.allowance(&cx), None);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(gate.allowance(&cx), Some(READ_BATCH_BYTES));
    }

    #[test]
    fn no_new_batch_while_an_answer_is_open_or_unflushed() {
        let gate = ReadGate::new();
        let (wakes, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        gate.took(READ_BATCH_BYTES);
        gate.open_responses.set(1);
        gate.output_unflushed.set(true);
        assert_eq!(gate.allowance(&cx), None);
        assert_eq!(gate.allowance(&cx), None);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "a busy loop");

        // The answer ends, but the socket has not taken it yet: still waiting.
        gate.open_responses.set(0);
        gate.wake_reader_if_idle();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
        // The socket took it: the dispatcher is woken once and gets a new batch.
        gate.output_unflushed.set(false);
        gate.wake_reader_if_idle();
        gate.wake_reader_if_idle();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert_eq!(gate.allowance(&cx), None, "renewed on the next poll");
        assert_eq!(gate.allowance(&cx), Some(READ_BATCH_BYTES));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_socket_refuses_past_the_limit_fails() {
        let stall = WriteStall::default();
        let (_wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        // Off: a refused write just waits.
        assert!(stall.check::<usize>(&mut cx, Poll::Pending).is_pending());
        assert!(stall.timer.borrow().is_none());

        stall.limit.set(Some(Duration::from_secs(5)));
        assert!(stall.check::<usize>(&mut cx, Poll::Pending).is_pending());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(stall.check::<usize>(&mut cx, Poll::Pending).is_pending());
        // The socket takes a byte: the clock starts again.
        assert!(matches!(
            stall.check(&mut cx, Poll::Ready(Ok(1))),
            Poll::Ready(Ok(1))
        ));
        assert!(stall.check::<usize>(&mut cx, Poll::Pending).is_pending());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(stall.check::<usize>(&mut cx, Poll::Pending).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        match stall.check::<usize>(&mut cx, Poll::Pending) {
            Poll::Ready(Err(error)) => assert_eq!(error.kind(), io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ungated_connection_reads_while_answers_are_open() {
        let gate = ReadGate::new();
        let (wakes, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        gate.gated.set(false);
        gate.took(READ_BATCH_BYTES);
        gate.open_responses.set(3);
        gate.output_unflushed.set(true);
        assert_eq!(gate.allowance(&cx), Some(usize::MAX));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn credit_left_is_read_even_while_an_answer_is_open() {
        let gate = ReadGate::new();
        let (_wakes, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        gate.took(100);
        gate.open_responses.set(1);
        assert_eq!(gate.allowance(&cx), Some(READ_BATCH_BYTES - 100));
    }
}
