//! Connections are bounded by file descriptors, the server's scarcest resource. At start the
//! soft limit is raised to the hard one; connections are then capped below it with headroom
//! for the server's own files, so that past the cap a client (a monitor's `/healthz` included)
//! gets a fast `503` with `Retry-After` instead of a connection that is never accepted.
//!
//! Requests pipelined on one connection are bounded too: actix reads a new batch of them only
//! once every answer it started has ended and gone to the socket (`connection::ReadGate`);
//! [`hold_reads_while_answering`] tells the connection when an answer starts and ends.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONNECTION, RETRY_AFTER};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::AppState;
use super::cache::CachePolicy;
use super::connection::{ConnectionReads, OpenResponse};

/// Descriptors kept for everything but client connections: the listener, epoll and wake-up
/// descriptors of every worker, pipes, files read at start, a camera.
pub(super) const FD_HEADROOM: u64 = 64;
/// What a refused client is told to wait before trying again.
const RETRY_AFTER_S: u32 = 5;

/// Open connections against the cap, for the connection hook, the middleware and `/status`.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    max: usize,
    refused: AtomicU64,
}

/// Lives in a connection's extensions: counts it open until the connection closes.
#[derive(Debug, Clone)]
struct Admission {
    over_cap: bool,
    _open: Arc<OpenConnection>,
}

#[derive(Debug)]
struct OpenConnection(Arc<ConnectionLimit>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimit {
    /// A cap below a file-descriptor limit of `fd_limit`.
    pub fn below_fd_limit(fd_limit: u64) -> Arc<Self> {
        let max = fd_limit.saturating_sub(FD_HEADROOM).max(1);
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max: usize::try_from(max).unwrap_or(usize::MAX),
            refused: AtomicU64::new(0),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests answered 503 because the server was at its cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The connection hook: counts the connection and marks it when it is over the cap.
    pub fn on_connect(self: &Arc<Self>, extensions: &mut Extensions) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        extensions.insert(Admission {
            over_cap: open > self.max,
            _open: Arc::new(OpenConnection(self.clone())),
        });
    }
}

/// Raises the soft file-descriptor limit as far as the hard limit allows; returns the limit in
/// force (the inherited one if it cannot be raised).
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the file descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Answers every request on a connection accepted over the cap with 503 and closes it.
pub async fn refuse_over_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let over_cap = req
        .conn_data::<Admission>()
        .is_some_and(|admission| admission.over_cap);
    if !over_cap {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        state.connections.refused.fetch_add(1, Ordering::Relaxed);
    }
    let response = HttpResponse::ServiceUnavailable()
        .insert_header(CachePolicy::Live.header())
        .insert_header((RETRY_AFTER, RETRY_AFTER_S))
        .insert_header((CONNECTION, "close"))
        .content_type("text/plain; charset=utf-8")
        .body("too many connections; try again shortly\n");
    Ok(req.into_response(response).map_into_right_body())
}

/// Counts the request as open on its connection until its response body ends, so that the
/// connection reads no further requests meanwhile. The outermost middleware: the body it wraps
/// is the one actix writes.
pub async fn hold_reads_while_answering(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<AnswerBody>, Error> {
    let open = req
        .conn_data::<ConnectionReads>()
        .map(ConnectionReads::open_response);
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| AnswerBody {
        body: body.boxed(),
        _open: open,
    }))
}

/// A response body that keeps its request counted open until it ends (actix drops a body as
/// soon as it has its last chunk, or at once when it has none).
pub struct AnswerBody {
    body: BoxBody,
    _open: Option<OpenResponse>,
}

impl MessageBody for AnswerBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
