//! Responses whose body never ends (`/stream.mjpg`, `/live.mp4`): one viewer's async state
//! turned into a body, framed right for the client's HTTP version, ended when the server shuts
//! down.
//!
//! On connections that offer their socket ([`ConnectionSocket`], every plain TCP connection of
//! `http::serve`), the body is written straight to it with vectored writes (`direct_body`);
//! otherwise actix writes it, copying each chunk into its buffer.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::time::Duration;

use actix_web::http::header::USER_AGENT;
use actix_web::http::{Method, Version};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

use super::AppState;
use super::connection::ConnectionSocket;
use super::direct_body;
use super::streams::ServedStream;

/// How long a connection may take no bytes before its viewer is dropped, when the app has no
/// state to say (tests of single handlers); the server uses `--viewer-stall-seconds`.
const DEFAULT_STALL: Duration = Duration::from_secs(5);

/// A viewer hands out its body one chunk at a time; `None` ends the response.
pub trait ChunkSource: 'static {
    fn next_chunk(&mut self) -> impl Future<Output = Option<Bytes>>;

    /// A chunk that is ready now, without waiting, to go out in the same write as the one
    /// [`ChunkSource::next_chunk`] just gave (a frame's header, JPEG and boundary).
    fn ready_chunk(&mut self) -> Option<Bytes> {
        None
    }

    /// What goes out in one write when the body is written straight to the socket: the next
    /// chunk and those ready with it.
    fn next_batch(&mut self) -> impl Future<Output = Option<Batch>> {
        async {
            let first = self.next_chunk().await?;
            let mut batch = Batch {
                chunks: vec![first],
            };
            while batch.chunks.len() < direct_body::MAX_BATCH_CHUNKS {
                match self.ready_chunk() {
                    Some(chunk) => batch.chunks.push(chunk),
                    None => break,
                }
            }
            Some(batch)
        }
    }
}

/// One write's worth of body.
#[derive(Debug)]
pub struct Batch {
    pub chunks: Vec<Bytes>,
}

/// Resolves once the server is shutting down. A signal whose sender is gone never fires.
pub async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `ended`, or with `ends_at` a signal of its own that also fires then: one task per such
/// viewer waits for either, so bodies without a deadline pay nothing.
fn ended_or_expired(
    mut ended: watch::Receiver<bool>,
    ends_at: Option<tokio::time::Instant>,
) -> watch::Receiver<bool> {
    let Some(ends_at) = ends_at else {
        return ended;
    };
    let (end, ending) = watch::channel(false);
    actix_web::rt::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep_until(ends_at) => {}
            () = shutdown_requested(&mut ended) => {}
            // The body is gone: nothing to end.
            () = end.closed() => return,
        }
        end.send_replace(true);
    });
    ending
}

/// The client's User-Agent, for the viewer registry (empty when absent or not text).
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Streams `viewer` as the body of `response`. HTTP/1.0 has no chunked coding (RFC 9112
/// §6.1), so for it the body simply runs until the connection closes.
/// The body ends when `stream` stops, or at `ends_at` (a signed link's expiry) if given; a
/// viewer dropped for taking nothing is counted on its hub.
pub fn respond<V: ChunkSource>(
    req: &HttpRequest,
    response: &mut HttpResponseBuilder,
    viewer: V,
    stream: &ServedStream,
    ends_at: Option<tokio::time::Instant>,
) -> HttpResponse {
    if req.method() == Method::HEAD {
        return headers_only(response);
    }
    let chunked = is_chunked(req);
    let shutdown = ended_or_expired(stream.ended_signal(), ends_at);
    let hub = stream.hub.clone();
    match req.conn_data::<ConnectionSocket>() {
        Some(socket) => {
            let stall = stall_time(req);
            let body = direct_body::write_body(socket.clone(), chunked, viewer, shutdown, stall);
            let body = async move {
                let result = body.await;
                if let Err(error) = &result
                    && error.kind() == std::io::ErrorKind::TimedOut
                {
                    hub.viewers.count_dropped_stalled();
                }
                result
            };
            respond_direct(req, response, body)
        }
        None => {
            let mut response = response.streaming(through_actix(viewer, shutdown));
            if !chunked {
                response.head_mut().no_chunking(true);
            }
            response
        }
    }
}

/// A response whose body some other writer puts on the socket: `body` resolves when that
/// writer is done, cleanly (actix then ends the response) or with the error that closes the
/// connection.
pub fn respond_direct(
    req: &HttpRequest,
    response: &mut HttpResponseBuilder,
    body: impl Future<Output = std::io::Result<()>> + 'static,
) -> HttpResponse {
    // The body yields nothing itself: it ends cleanly or with the socket's error.
    let mut response = response.streaming(
        futures::stream::once(body).filter_map(|result| ready(result.err().map(Err::<Bytes, _>))),
    );
    if !is_chunked(req) {
        response.head_mut().no_chunking(true);
    }
    response
}

/// HTTP/1.0 has no chunked coding (RFC 9112 §6.1): its bodies run until the connection closes.
pub fn is_chunked(req: &HttpRequest) -> bool {
    req.version() >= Version::HTTP_11
}

/// How long a viewer's socket may take no bytes before the viewer is dropped.
pub fn stall_time(req: &HttpRequest) -> Duration {
    req.app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_STALL, |s| {
            Duration::from_secs(u64::from(s.server.viewer_stall_seconds))
        })
}

/// The headers of such a response without starting one (for HEAD), which would never end.
pub fn headers_only(response: &mut HttpResponseBuilder) -> HttpResponse {
    response.streaming(futures::stream::empty::<Result<Bytes, Infallible>>())
}

/// The body as a stream of chunks that actix copies and writes.
fn through_actix<V: ChunkSource>(
    viewer: V,
    shutdown: watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::unfold(
        (viewer, shutdown),
        |(mut viewer, mut shutdown)| async move {
            let chunk = tokio::select! {
                biased;
                _ = shutdown_requested(&mut shutdown) => None,
                chunk = viewer.next_chunk() => chunk,
            }?;
            Some((Ok(chunk), (viewer, shutdown)))
        },
    )
}
