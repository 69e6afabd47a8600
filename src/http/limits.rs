//! Connections are bounded by file descriptors, the server's scarcest resource. At start the
//! soft limit is raised to the hard one; connections are then capped below it with headroom
//! for the server's own files, so that past the cap a client (a monitor's `/healthz` included)
//! gets a fast `503` with `Retry-After` instead of a connection that is never accepted.
//!
//! One client address (an IPv6 client's /64) may hold at most `max_connections_per_address`
//! of them, so that one host cannot take every slot; past that its new connection is answered
//! the same way and closed. Loopback clients are exempt unless `limit_loopback_connections`:
//! a reverse proxy or cache on the same host brings every viewer from one loopback address.
//!
//! Viewers (`/stream.mjpg`, `/live.mp4`: responses that never end) are limited per stream and
//! in total (`max_viewers`); past either a new viewer gets `503` with `Retry-After`
//! ([`admit_viewer`]). HLS players hold no viewer slot: a player is a series of short
//! requests, which the connection caps bound, and a blocking one is held three target
//! durations at most.
//!
//! Requests pipelined on one connection are bounded too: actix reads a new batch of them only
//! once every answer it started has ended and gone to the socket (`connection::ReadGate`);
//! [`hold_reads_while_answering`] tells the connection when an answer starts and ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use crate::config::ServerSettings;
use crate::hub::{NewViewer, ViewerBudget, ViewerGuard, ViewerRefusal};

use super::AppState;
use super::cache::CachePolicy;
use super::connection::{ConnectionReads, OpenResponse};
use super::streams::ServedStream;

/// Descriptors kept for everything but client connections: the listener, epoll and wake-up
/// descriptors of every worker, pipes, files read at start, a camera, and the MJPEG senders'
/// pipes.
pub(super) const FD_HEADROOM: u64 = 64 + super::frame_pipes::MAX_PIPE_DESCRIPTORS;
/// What a refused client is told to wait before trying again.
const RETRY_AFTER_S: u32 = 5;

/// Why a request was refused, as `/status` and `/metrics` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The server holds as many connections as its descriptors allow.
    Connections,
    /// The client's address holds `max_connections_per_address` connections.
    ConnectionsPerAddress,
    /// The stream has its `max_viewers`.
    StreamViewers,
    /// The server has its `max_viewers` in total.
    TotalViewers,
}

impl RefusalReason {
    pub const ALL: [Self; 4] = [
        Self::Connections,
        Self::ConnectionsPerAddress,
        Self::StreamViewers,
        Self::TotalViewers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::ConnectionsPerAddress => "connections_per_address",
            Self::StreamViewers => "stream_viewers",
            Self::TotalViewers => "total_viewers",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The server's admission limits: open connections against the cap overall and per client
/// address, and viewer slots in total; for the connection hook, the middleware, the viewer
/// handlers, `/status` and `/metrics`.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    max: usize,
    /// Open connections by client address; an address leaves the map with its last one, so
    /// the map never holds more entries than there are open connections.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
    limit_loopback: bool,
    /// Requests refused, by [`RefusalReason`].
    refused: [AtomicU64; RefusalReason::ALL.len()],
    /// Viewer slots of every stream together.
    viewers: Arc<ViewerBudget>,
}

/// Lives in a connection's extensions: counts it open until the connection closes.
#[derive(Debug, Clone)]
struct Admission {
    refusal: Option<RefusalReason>,
    _open: Arc<OpenConnection>,
}

#[derive(Debug)]
struct OpenConnection {
    limit: Arc<ConnectionLimit>,
    /// The address it counts against, if any.
    address: Option<IpAddr>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.limit.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut per_address = self.limit.lock_per_address();
            if let Some(open) = per_address.get_mut(&address) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_address.remove(&address);
                }
            }
        }
    }
}

/// The address a client's connections count against: an IPv4 address (also when it comes
/// mapped into IPv6), or an IPv6 /64, which one host or home network usually has whole.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

impl ConnectionLimit {
    /// A cap below a file-descriptor limit of `fd_limit`, with the server's limits per address
    /// and on viewers.
    pub fn for_server(fd_limit: u64, server: &ServerSettings) -> Arc<Self> {
        let max = fd_limit.saturating_sub(FD_HEADROOM).max(1);
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max: usize::try_from(max).unwrap_or(usize::MAX),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: server.max_connections_per_address as usize,
            limit_loopback: server.limit_loopback_connections,
            refused: Default::default(),
            viewers: ViewerBudget::new(server.max_viewers.map(|max| max as usize)),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn max_per_address(&self) -> usize {
        self.max_per_address
    }

    pub fn limits_loopback(&self) -> bool {
        self.limit_loopback
    }

    /// Client addresses with an open connection that counts against the limit per address.
    pub fn addresses(&self) -> usize {
        self.lock_per_address().len()
    }

    /// Requests answered 503 because the server was at its cap.
    pub fn refused(&self) -> u64 {
        self.refused_for(RefusalReason::Connections)
    }

    /// Requests answered 503 for `reason`.
    pub fn refused_for(&self, reason: RefusalReason) -> u64 {
        self.refused[reason.index()].load(Ordering::Relaxed)
    }

    /// Viewer slots of every stream together.
    pub fn viewers(&self) -> &Arc<ViewerBudget> {
        &self.viewers
    }

    fn count_refused(&self, reason: RefusalReason) {
        self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The connection hook: counts the connection, overall and against its client's address
    /// (`peer`), and marks it when it is over either cap.
    pub fn on_connect(self: &Arc<Self>, extensions: &mut Extensions, peer: Option<SocketAddr>) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let address = peer
            .map(|peer| peer.ip().to_canonical())
            .filter(|ip| self.limit_loopback || !ip.is_loopback())
            .map(address_key);
        let open_from_address = address.map_or(0, |address| {
            let mut per_address = self.lock_per_address();
            let count = per_address.entry(address).or_insert(0);
            *count += 1;
            *count
        });
        let refusal = if open > self.max {
            Some(RefusalReason::Connections)
        } else if open_from_address > self.max_per_address {
            Some(RefusalReason::ConnectionsPerAddress)
        } else {
            None
        };
        extensions.insert(Admission {
            refusal,
            _open: Arc::new(OpenConnection {
                limit: self.clone(),
                address,
            }),
        });
    }

    fn lock_per_address(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_address.lock().unwrap_or_else(|e| e.into_inner())
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

/// Answers every request on a connection accepted over a cap with 503 and closes it.
pub async fn refuse_over_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let refusal = req
        .conn_data::<Admission>()
        .and_then(|admission| admission.refusal);
    let Some(reason) = refusal else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let mut text = "too many connections; try again shortly\n".to_owned();
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        state.connections.count_refused(reason);
        if reason == RefusalReason::ConnectionsPerAddress {
            text = format!(
                "too many connections from your address (at most {}); try again shortly\n",
                state.connections.max_per_address
            );
        }
    }
    // The connection ends after this answer: it would only be refused again.
    let response = unavailable(RETRY_AFTER_S).force_close().body(text);
    Ok(req.into_response(response).map_into_right_body())
}

/// A 503 with `Retry-After`, for a one-line reason as its body.
/// 503 with `Retry-After: retry_after_s`, never cached, for a one-line text reason.
pub(super) fn unavailable(retry_after_s: u32) -> HttpResponseBuilder {
    let mut response = HttpResponse::ServiceUnavailable();
    response
        .insert_header(CachePolicy::Live.header())
        .insert_header((RETRY_AFTER, retry_after_s))
        .content_type("text/plain; charset=utf-8");
    response
}

/// Registers a viewer of `stream` if the stream's `max_viewers` and the server's in total
/// leave room; a refusal is counted, and [`refusal_response`] answers it. Without the
/// server's state (tests of single handlers) every viewer is let in.
pub fn admit_viewer(
    req: &HttpRequest,
    stream: &ServedStream,
    viewer: NewViewer,
) -> Result<ViewerGuard, ViewerRefusal> {
    let registry = &stream.hub.viewers;
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Ok(registry.register(
            viewer.kind,
            viewer.remote,
            viewer.user_agent,
            viewer.fps_cap,
        ));
    };
    let stream_max = stream.settings.max_viewers.map(|max| max as usize);
    registry
        .try_register(viewer, stream_max, &state.connections.viewers)
        .inspect_err(|refusal| {
            state.connections.count_refused(match refusal {
                ViewerRefusal::StreamFull { .. } => RefusalReason::StreamViewers,
                ViewerRefusal::ServerFull { .. } => RefusalReason::TotalViewers,
            });
        })
}

/// The answer to a viewer [`admit_viewer`] refused: 503 with `Retry-After` and the reason.
pub fn refusal_response(refusal: ViewerRefusal) -> HttpResponse {
    unavailable(RETRY_AFTER_S).body(format!("{refusal}\n"))
}

/// Counts the request as open on its connection until its response body ends, so that the
/// connection reads no further requests meanwhile. The outermost middleware: the body it wraps
/// is the one actix writes.
pub async fn hold_reads_while_answering(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<HeldBody<OpenResponse>>, Error> {
    let open = req
        .conn_data::<ConnectionReads>()
        .map(ConnectionReads::open_response);
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| HeldBody::new(body, open)))
}

/// A response body that holds `held` (a guard that counts its request open) until the body
/// ends: actix drops a body as soon as it has its last chunk, or at once when it has none.
pub struct HeldBody<G> {
    body: BoxBody,
    _held: Option<G>,
}

impl<G> HeldBody<G> {
    pub fn new(body: impl MessageBody + 'static, held: Option<G>) -> Self {
        Self {
            body: body.boxed(),
            _held: held,
        }
    }
}

impl<G: Unpin> MessageBody for HeldBody<G> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_count_by_ipv4_address_or_ipv6_64() {
        let key = |text: &str| address_key(text.parse().expect("an address"));
        assert_eq!(key("192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"), "mapped IPv4");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
