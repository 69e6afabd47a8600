//! A bound on the requests one HTTP/2 connection has open at once.
//!
//! actix-http sends no SETTINGS_MAX_CONCURRENT_STREAMS, so one HTTP/2 connection could hold
//! any number of MJPEG streams or blocking playlist reloads and so get around the connection
//! cap. Past [`MAX_OPEN_STREAMS`] (RFC 9113 §6.5.2 asks servers to allow at least 100) a
//! request is answered `503` with `Retry-After` at once, as a connection over the cap is.

use std::cell::Cell;
use std::rc::Rc;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::limits::{HeldBody, unavailable};

/// Requests one HTTP/2 connection may have open (their bodies not ended).
pub const MAX_OPEN_STREAMS: usize = 100;
/// What a refused client is told to wait before trying again.
const RETRY_AFTER_S: u32 = 1;

/// Lives in an HTTP/2 connection's extensions: its requests open now.
#[derive(Debug, Clone, Default)]
pub struct Http2Streams {
    open: Rc<Cell<usize>>,
}

/// Counts one request open until dropped with its response body.
pub struct OpenStream(Rc<Cell<usize>>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Answers a request `503` when its HTTP/2 connection already has [`MAX_OPEN_STREAMS`] open;
/// counts it open until its response body ends otherwise. Other connections pass untouched.
pub async fn limit_open_streams(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<HeldBody<OpenStream>>, Error> {
    let Some(streams) = req.conn_data::<Http2Streams>().cloned() else {
        let response = next.call(req).await?;
        return Ok(response.map_body(|_, body| HeldBody::new(body, None)));
    };
    if streams.open.get() >= MAX_OPEN_STREAMS {
        let response = unavailable(RETRY_AFTER_S).body(format!(
            "too many requests open on this connection (at most {MAX_OPEN_STREAMS})\n"
        ));
        return Ok(req
            .into_response(response)
            .map_body(|_, body| HeldBody::new(body, None)));
    }
    streams.open.set(streams.open.get() + 1);
    let open = OpenStream(streams.open.clone());
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| HeldBody::new(body, Some(open))))
}
