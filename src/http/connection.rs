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
//! Everything here runs on one actix worker thread (the dispatcher and its body are polled by
//! the same task), hence `Rc` and `RefCell`; no borrow is ever held across an await.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The state both sides see.
#[derive(Debug)]
struct Shared {
    stream: RefCell<TcpStream>,
    /// Set by a direct body before its first write; cleared when actix has flushed.
    awaiting_actix_flush: Cell<bool>,
    /// The direct body waiting for that flush.
    flush_waiter: RefCell<Option<Waker>>,
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
            }),
        }
    }

    /// A handle for direct body writers, kept in the connection's extensions.
    pub fn socket(&self) -> ConnectionSocket {
        ConnectionSocket {
            shared: self.shared.clone(),
        }
    }

    /// Runs `f` on the TCP stream (socket options when the connection is accepted).
    pub fn with_stream<R>(&self, f: impl FnOnce(&TcpStream) -> R) -> io::Result<R> {
        let stream = self.shared.stream()?;
        Ok(f(&stream))
    }
}

impl AsyncRead for SharedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut stream = self.shared.stream()?;
        Pin::new(&mut *stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.shared.stream()?;
        Pin::new(&mut *stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.shared.stream()?;
        Pin::new(&mut *stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// actix calls this once its write buffer is empty: from here on a direct writer may use
    /// the socket.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = {
            let mut stream = self.shared.stream()?;
            Pin::new(&mut *stream).poll_flush(cx)
        };
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

    /// Like [`ConnectionSocket::poll_write_vectored`], telling TCP that more follows at once
    /// (MSG_MORE), so a short piece waits for it instead of going out as a packet of its own.
    pub fn poll_write_vectored_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = self.shared.stream()?;
        let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
        poll_write_with(&stream, cx, || {
            rustix::net::sendmsg(&*stream, bufs, &mut SendAncillaryBuffer::default(), flags)
        })
    }

    /// Sends some of `range` of `file` with sendfile(2); returns how many bytes it took.
    pub fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        range: &Range<u64>,
    ) -> Poll<io::Result<usize>> {
        let stream = self.shared.stream()?;
        let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX);
        poll_write_with(&stream, cx, || {
            let mut offset = range.start;
            rustix::fs::sendfile(&*stream, file, Some(&mut offset), len)
        })
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

/// Runs a non-blocking send on `stream` once it is writable, waiting again when the kernel
/// says it would block.
fn poll_write_with(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    mut send: impl FnMut() -> rustix::io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(stream.poll_write_ready(cx))?;
        match stream.try_io(Interest::WRITABLE, || send().map_err(io::Error::from)) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            result => return Poll::Ready(result),
        }
    }
}
