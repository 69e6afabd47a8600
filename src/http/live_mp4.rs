//! `GET /live.mp4`: one endless fragmented MP4 for Media Source Extensions pages, ffplay and
//! VLC: the init section, then every frame as a fragment of its own (moof + mdat) the moment it
//! is encoded, starting at the newest IDR.
//!
//! Frames rather than LL-HLS parts: a part is only complete when its last frame is, so a
//! part-by-part stream is always a whole part (a third of a second at the defaults) behind
//! before the player has even started; frame by frame it is one frame behind.
//!
//! A viewer that falls more than a segment behind (its socket could not take the frames) jumps
//! to the newest IDR instead of buffering without bound; decode times then jump forward, which
//! MSE players see as a gap and skip.
//!
//! A viewer holds the stream's HLS demand for as long as its body lives, so an on-demand
//! encoder starts with it and runs while it watches.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use tokio::sync::watch;

use crate::hls::store::{FramePosition, HlsStore};
use crate::hub::{NewViewer, ViewerGuard, ViewerKind};
use crate::pipeline::hls_demand::HlsDemandGuard;

use super::cache::CachePolicy;
use super::endless::{self, ChunkSource};
use super::error::HttpError;
use super::hls::hls_of;
use super::limits;
use super::signed_access::link_deadline;
use super::streams::Served;

/// `HEAD /live.mp4`: the headers of the stream without starting one, which would never end.
pub async fn head(stream: Served) -> Result<HttpResponse, HttpError> {
    hls_of(&stream)?;
    Ok(endless::headers_only(headers(&mut HttpResponse::Ok())))
}

fn headers(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((CONTENT_TYPE, "video/mp4"))
        .insert_header(CachePolicy::Live.header())
        .insert_header(("X-Accel-Buffering", "no"))
}

pub async fn stream(req: HttpRequest, stream: Served) -> Result<HttpResponse, HttpError> {
    let hls = hls_of(&stream)?;
    let store = hls.store.clone();
    let viewer = NewViewer {
        kind: ViewerKind::LiveMp4,
        remote: req.peer_addr(),
        user_agent: endless::user_agent(&req),
        fps_cap: None,
    };
    // Before the demand: a refused viewer starts no encoder.
    let stats = match limits::admit_viewer(&req, &stream, viewer) {
        Ok(stats) => stats,
        Err(refusal) => return Ok(limits::refusal_response(refusal)),
    };
    let viewer = Mp4Viewer {
        _demand: hls.demand.hold(),
        stats,
        changes: store.subscribe_frames(),
        store,
        cursor: None,
        init_generation: None,
        pending: VecDeque::new(),
    };
    // Opened by a signed link: the body ends when the link expires.
    Ok(endless::respond(
        &req,
        headers(&mut HttpResponse::Ok()),
        viewer,
        &stream,
        link_deadline(&req),
    ))
}

struct Mp4Viewer {
    /// Keeps the encoder running while the viewer lives.
    _demand: HlsDemandGuard,
    /// Keeps the viewer in `/status` while it lives, with its counters.
    stats: ViewerGuard,
    store: Arc<HlsStore>,
    changes: watch::Receiver<u64>,
    /// The last frame sent.
    cursor: Option<FramePosition>,
    /// The init section sent last; a new one goes out before frames that need it.
    init_generation: Option<u32>,
    pending: VecDeque<Bytes>,
}

impl Mp4Viewer {
    /// The most frames a segment can hold (EXT-X-TARGETDURATION plus the half second its
    /// rounding allows): a viewer further behind jumps to the newest IDR, which is never
    /// further back than that. Read each time: a source's H.264 settles the timing after the
    /// viewer may have come.
    fn max_lag_frames(&self) -> u64 {
        let timing = self.store.timing();
        let fps = u64::from(timing.segmenter.fps.max(1));
        timing.target_duration_s * fps + fps / 2
    }
}

impl ChunkSource for Mp4Viewer {
    /// The next chunk of the body; `None` ends the stream (the server is shutting down).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.stats.stats().record_bytes(chunk.len());
                return Some(chunk);
            }
            self.changes.borrow_and_update();
            let mut skipped = 0;
            if let Some(cursor) = self.cursor
                && self.store.frames_behind(cursor) > self.max_lag_frames()
            {
                // Too far behind: start again from the newest IDR.
                skipped = self.store.frames_behind(cursor);
                self.cursor = None;
            }
            match self.store.next_frame(self.cursor) {
                Some((position, data)) => {
                    if self.init_generation != Some(position.init_generation) {
                        let init = self.store.init_of_generation(position.init_generation)?;
                        self.pending.push_back(init);
                        self.init_generation = Some(position.init_generation);
                    }
                    self.pending.push_back(data);
                    let since = self
                        .cursor
                        .map_or(0, |c| position.number.saturating_sub(c.number + 1));
                    self.stats
                        .stats()
                        .record_frame(skipped.max(since), position.number + 1);
                    self.cursor = Some(position);
                }
                None => {
                    if let Some(cursor) = self.cursor
                        && self.store.frames_behind(cursor) > 0
                    {
                        // The next frame is gone: jump to the newest IDR.
                        self.cursor = None;
                        continue;
                    }
                    self.changes.changed().await.ok()?;
                }
            }
        }
    }
}
