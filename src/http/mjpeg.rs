//! `GET /stream.mjpg`: the live picture as multipart MJPEG, for `<img>` tags, ffmpeg and VLC.
//!
//! A viewer always gets the newest published JPEG once its socket has taken the last one:
//! latest-frame-wins, the producer never waits, and the gap in publish indices is counted as
//! skipped frames. On a plain TCP connection the body is written by the MJPEG sender thread
//! (`mjpeg_sender`), which hands each frame's pages, copied once into pipes, to every socket. On
//! any other connection the viewer is a stream of the shared buffers (part headers, JPEG,
//! boundary) that actix writes.
//!
//! A stream opened by a signed link ends, cleanly, when the link expires.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CONTENT_TYPE, PRAGMA};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, Sleep};

use crate::hub::{Hub, NewViewer, PublishedJpeg, StreamDemandGuard, ViewerGuard, ViewerKind};
use crate::media::multipart::{self, PartHeaders};

use super::cache::CachePolicy;
use super::connection::ConnectionSocket;
use super::endless::{self, ChunkSource};
use super::error::HttpError;
use super::limits;
use super::mjpeg_sender::{Joining, RESEND_AFTER};
use super::query;
use super::signed_access::link_deadline;
use super::streams::Served;

pub async fn stream(req: HttpRequest, stream: Served) -> Result<HttpResponse, HttpError> {
    let fps_cap = query::fps_cap(req.query_string())?;
    let user_agent = endless::user_agent(&req);
    let mode = PartHeaders::for_user_agent(&user_agent);
    let viewer = NewViewer {
        kind: ViewerKind::Mjpeg,
        remote: req.peer_addr(),
        user_agent,
        fps_cap,
    };
    // Before the demand: a refused viewer starts no encoder.
    let stats = match limits::admit_viewer(&req, &stream, viewer) {
        Ok(stats) => stats,
        Err(refusal) => return Ok(limits::refusal_response(refusal)),
    };
    let hub = stream.hub.clone();
    let demand = hub.want_stream();
    let min_interval = fps_cap.map(|fps| Duration::from_secs(1) / fps);
    // A stream opened by a signed link ends when the link expires.
    let ends_at = link_deadline(&req);
    // On a plain TCP connection the MJPEG sender thread writes the body to the socket.
    if let Some(socket) = req.conn_data::<ConnectionSocket>().cloned() {
        let chunked = endless::is_chunked(&req);
        let stall = endless::stall_time(&req);
        // The stream's end, which the server's stop also brings.
        let shutdown = stream.ended_signal();
        let body = async move {
            let (done, ended) = oneshot::channel();
            let joining = Joining {
                socket: wait_for_head(&socket, stall).await?,
                chunked,
                mode,
                min_interval,
                stats,
                demand,
                done,
                ends_at,
            };
            if stream
                .mjpeg_sender
                .join(&stream.hub, &shutdown, stall, joining)
                .is_err()
            {
                return Err(io::Error::other("the MJPEG sender is not running"));
            }
            ended
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the MJPEG sender stopped")))
        };
        return Ok(endless::respond_direct(
            &req,
            headers(&mut HttpResponse::Ok()),
            body,
        ));
    }
    let viewer = ViewerStream {
        frames: hub.subscribe_jpeg(),
        _demand: demand,
        stats,
        hub,
        mode,
        min_interval,
        pending: VecDeque::new(),
        started: false,
        last: None,
        last_sent_at: None,
        resend_timer: Box::pin(tokio::time::sleep(RESEND_AFTER)),
    };
    Ok(endless::respond(
        &req,
        headers(&mut HttpResponse::Ok()),
        viewer,
        &stream,
        ends_at,
    ))
}

/// Waits until actix has written the response head, then gives the sender its own
/// descriptor of the socket. A viewer that takes not even the head is dropped after `stall`.
async fn wait_for_head(
    socket: &ConnectionSocket,
    stall: Duration,
) -> io::Result<std::net::TcpStream> {
    tokio::time::timeout(stall, socket.actix_flushed())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the viewer took no response head"))?;
    socket.try_clone_std()
}

/// `HEAD /stream.mjpg`: the stream's headers without starting one, which would never end.
pub async fn head(_stream: Served) -> HttpResponse {
    endless::headers_only(headers(&mut HttpResponse::Ok()))
}

fn headers(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((CONTENT_TYPE, multipart::CONTENT_TYPE))
        .insert_header(CachePolicy::Live.header())
        // For HTTP/1.0 caches and proxies.
        .insert_header((PRAGMA, "no-cache"))
        // Tells nginx not to buffer the stream when framecast sits behind it.
        .insert_header(("X-Accel-Buffering", "no"))
}

/// One viewer's position in the stream.
struct ViewerStream {
    hub: Arc<Hub>,
    frames: watch::Receiver<Option<Arc<PublishedJpeg>>>,
    _demand: StreamDemandGuard,
    stats: ViewerGuard,
    mode: PartHeaders,
    min_interval: Option<Duration>,
    /// Buffers of the frame being sent.
    pending: VecDeque<Bytes>,
    started: bool,
    last: Option<Arc<PublishedJpeg>>,
    last_sent_at: Option<Instant>,
    /// Fires when the last frame is due again (see [`RESEND_AFTER`]).
    resend_timer: Pin<Box<Sleep>>,
}

impl ChunkSource for ViewerStream {
    /// The next chunk of the body; `None` ends the stream (the server is shutting down).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            let frame = self.wait_for_frame().await?;
            self.queue_frame(frame);
        }
        self.ready_chunk()
    }

    /// The rest of the frame being sent.
    fn ready_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.pending.pop_front()?;
        self.stats.stats().record_bytes(chunk.len());
        Some(chunk)
    }
}

impl ViewerStream {
    /// Waits out the viewer's `?fps=` interval, then for its next frame.
    async fn wait_for_frame(&mut self) -> Option<Arc<PublishedJpeg>> {
        if let (Some(interval), Some(sent_at)) = (self.min_interval, self.last_sent_at) {
            tokio::time::sleep_until(sent_at + interval).await;
        }
        self.next_frame().await
    }

    /// Waits for a frame newer than the last one sent, or re-sends the last after a pause.
    async fn next_frame(&mut self) -> Option<Arc<PublishedJpeg>> {
        // Moving a timer's deadline later is cheap; a new timer per frame and viewer is not.
        self.resend_timer
            .as_mut()
            .reset(Instant::now() + RESEND_AFTER);
        loop {
            let newest = self.frames.borrow_and_update().clone();
            if let Some(frame) = newest {
                let is_new = match &self.last {
                    Some(last) => frame.index > last.index,
                    // A viewer's first frame must be current, not one left from before it came.
                    None => self.hub.is_fresh(&frame),
                };
                if is_new {
                    return Some(frame);
                }
            }
            tokio::select! {
                changed = self.frames.changed() => changed.ok()?,
                () = self.resend_timer.as_mut() => {
                    if let Some(last) = &self.last {
                        return Some(last.clone());
                    }
                    self.resend_timer.as_mut().reset(Instant::now() + RESEND_AFTER);
                }
            }
        }
    }

    fn queue_frame(&mut self, frame: Arc<PublishedJpeg>) {
        if let Some(start) = self.stream_start() {
            self.pending.push_back(start);
        }
        if self.mode == PartHeaders::Full {
            self.pending.push_back(frame.full_headers.clone());
        }
        self.pending.push_back(frame.frame.jpeg.clone());
        self.pending
            .push_back(Bytes::from_static(self.mode.part_end()));
        self.record_sent(frame);
    }

    /// The stream's opening, the first time only.
    fn stream_start(&mut self) -> Option<Bytes> {
        (!std::mem::replace(&mut self.started, true))
            .then(|| Bytes::from_static(self.mode.stream_start()))
    }

    /// Counts `frame` as sent and the frames before it this viewer never got as skipped.
    fn record_sent(&mut self, frame: Arc<PublishedJpeg>) {
        let skipped = match &self.last {
            Some(last) => frame.index.saturating_sub(last.index + 1),
            None => 0,
        };
        self.stats.stats().record_frame(skipped, frame.index);
        self.last = Some(frame);
        self.last_sent_at = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::frame::{FrameSize, JpegFrame};
    use crate::http::direct_body::MAX_BATCH_CHUNKS;

    fn viewer(hub: &Arc<Hub>, mode: PartHeaders) -> ViewerStream {
        ViewerStream {
            frames: hub.subscribe_jpeg(),
            _demand: hub.want_stream(),
            stats: hub
                .viewers
                .register(ViewerKind::Mjpeg, None, "unit-test".into(), None),
            hub: hub.clone(),
            mode,
            min_interval: None,
            pending: VecDeque::new(),
            started: false,
            last: None,
            last_sent_at: None,
            resend_timer: Box::pin(tokio::time::sleep(RESEND_AFTER)),
        }
    }

    /// What the viewer hands out for its next frame, and how many buffers that is.
    async fn frame_bytes(viewer: &mut ViewerStream) -> (Vec<u8>, usize) {
        let mut batch = vec![viewer.next_chunk().await.expect("a frame")];
        while let Some(chunk) = viewer.ready_chunk() {
            batch.push(chunk);
        }
        (batch.concat(), batch.len())
    }

    fn publish(hub: &Hub, seq: u64, jpeg: &'static [u8]) {
        hub.publish_jpeg(JpegFrame {
            seq,
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
            size: FrameSize::new(16, 16),
            jpeg: Bytes::from_static(jpeg),
            encode_time: Duration::ZERO,
        });
    }

    /// Chromium shows a frame only once the next part's headers arrived, so they are part of
    /// the frame's own write, never held back for the next frame.
    #[tokio::test]
    async fn chromium_gets_each_jpeg_with_the_next_headers_in_one_write() {
        let hub = Hub::new(false);
        let mut viewer = viewer(&hub, PartHeaders::Eager);
        publish(&hub, 1, b"\xFF\xD8one\xFF\xD9");
        let (bytes, buffers) = frame_bytes(&mut viewer).await;
        let expected = [
            PartHeaders::Eager.stream_start(),
            b"\xFF\xD8one\xFF\xD9",
            PartHeaders::Eager.part_end(),
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert!(
            buffers <= MAX_BATCH_CHUNKS,
            "{buffers} buffers: more than one write"
        );

        publish(&hub, 2, b"\xFF\xD8two\xFF\xD9");
        let (bytes, _) = frame_bytes(&mut viewer).await;
        assert_eq!(
            bytes,
            [&b"\xFF\xD8two\xFF\xD9"[..], PartHeaders::Eager.part_end()].concat()
        );
    }

    #[tokio::test]
    async fn other_clients_get_full_headers_the_jpeg_and_the_boundary_in_one_write() {
        let hub = Hub::new(false);
        let mut viewer = viewer(&hub, PartHeaders::Full);
        publish(&hub, 3, b"\xFF\xD8jpeg\xFF\xD9");
        let (bytes, buffers) = frame_bytes(&mut viewer).await;
        let headers = multipart::full_part_headers(8, 5_000_000, 3);
        let expected = [
            PartHeaders::Full.stream_start(),
            &headers,
            b"\xFF\xD8jpeg\xFF\xD9",
            PartHeaders::Full.part_end(),
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert!(
            buffers <= MAX_BATCH_CHUNKS,
            "{buffers} buffers: more than one write"
        );
        assert_eq!(
            viewer
                .stats
                .stats()
                .frames_sent
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
