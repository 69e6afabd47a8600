//! `GET /snapshot.jpg` (and `HEAD`): one JPEG at most one frame old.
//!
//! A request starts the JPEG encoder if nobody is streaming, then waits (bounded) for a frame
//! that is current: the newest from the source or the one before it, or with `?after=SEQ` any
//! frame newer than SEQ. The ETag names the server start and the frame, so `If-None-Match`
//! answers 304 while the frame has not changed.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse};

use crate::frame::unix_micros;
use crate::hub::{Hub, PublishedJpeg};
use crate::media::multipart;

use super::cache::CachePolicy;
use super::error::HttpError;
use super::query;
use super::streams::Served;

/// How long a request waits for a suitable frame before answering 503.
const WAIT_FOR_FRAME: Duration = Duration::from_secs(5);
/// A source that has sent nothing for this long is stalled: its last frame is not current.
const SOURCE_STALLED_AFTER: Duration = Duration::from_secs(2);

pub async fn snapshot(req: HttpRequest, stream: Served) -> Result<HttpResponse, HttpError> {
    let after = query::after_seq(req.query_string())?;
    let hub = &stream.hub;
    hub.want_snapshot();
    let jpeg = wait_for_frame(hub, after).await?;
    let etag = format!("\"{}-{}\"", stream.instance_id, jpeg.frame.seq);
    let unchanged = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(CachePolicy::Live.header())
        .insert_header((ETAG, etag))
        .insert_header((
            "X-Timestamp",
            multipart::format_timestamp(unix_micros(jpeg.frame.captured_at)),
        ))
        .insert_header(("X-Frame-Sequence", jpeg.frame.seq.to_string()));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response
        .insert_header((CONTENT_TYPE, "image/jpeg"))
        .body(jpeg.frame.jpeg.clone()))
}

async fn wait_for_frame(
    hub: &Arc<Hub>,
    after: Option<u64>,
) -> Result<Arc<PublishedJpeg>, HttpError> {
    let stalled = hub
        .source
        .last_frame_age()
        .is_none_or(|age| age > SOURCE_STALLED_AFTER);
    // With a stalled source only a frame that arrives from now on is current.
    let newer_than = after.or(stalled.then(|| {
        hub.source
            .last_seq
            .load(std::sync::atomic::Ordering::Relaxed)
    }));
    let mut frames = hub.subscribe_jpeg();
    let deadline = tokio::time::Instant::now() + WAIT_FOR_FRAME;
    loop {
        if let Some(jpeg) = frames.borrow_and_update().clone() {
            let suitable = match newer_than {
                Some(seq) => jpeg.frame.seq > seq,
                None => hub.is_fresh(&jpeg),
            };
            if suitable {
                return Ok(jpeg);
            }
        }
        match tokio::time::timeout_at(deadline, frames.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => {
                return Err(HttpError::Unavailable("the server is shutting down".into()));
            }
            Err(_elapsed) => {
                let what = match after {
                    Some(seq) => format!("no frame newer than {seq}"),
                    None => "no frame from the source".into(),
                };
                return Err(HttpError::Unavailable(format!(
                    "{what} within {} s",
                    WAIT_FOR_FRAME.as_secs()
                )));
            }
        }
    }
}
