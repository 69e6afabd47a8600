//! One tracing line per request: method, path (never the query, which may carry tokens later),
//! status and the time to the response head. At DEBUG level, so that a thousand HLS viewers
//! fetching parts do not flood the log by default; `RUST_LOG=framecast::http=debug` shows them.
//! Endless streams are logged when their head goes out; viewers log their own arrival and
//! departure (`hub::viewers`).

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // Nothing to do (no clock read, no copy of the path) unless the line would be written:
    // a thousand HLS viewers make ten thousand requests a second.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.call(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let response = next.call(req).await;
    let status = match &response {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    tracing::debug!(
        %method,
        path,
        status,
        head_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
