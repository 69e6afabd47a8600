//! HLS over HTTP: `/live.m3u8` (multivariant), and under `/hls/{start_id}/` the media playlist
//! with blocking reloads and delta updates, the init section, segments and parts
//! (rfc8216bis §6.2.5).
//!
//! Everything under the prefix is named per server start, so media is cached as immutable and
//! a restarted server never collides with what a cache holds.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use crate::hls::reload;
use crate::hls::store::{BlockError, HlsStore};
use crate::media::playlist::{MultivariantPlaylist, Variant};
use crate::pipeline::h264::H264Counters;

use super::AppState;
use super::error::HttpError;
use super::hls_path::HlsResource;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// rfc8216bis §5: segments with the `video/iso.segment` type; the init section is `video/mp4`.
const SEGMENT_TYPE: &str = "video/iso.segment";
const INIT_TYPE: &str = "video/mp4";
/// Media never changes under its per-start name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A playlist without blocking parameters changes every part: clients must always revalidate.
const LIVE_PLAYLIST_CACHE: &str = "no-cache";
/// A blocking reload's answer is specific to the part it waited for, so caches may keep it
/// briefly (Apple's LL-HLS guidance for CDNs).
const BLOCKING_PLAYLIST_CACHE: &str = "public, max-age=6";
/// How long a request waits for the very first media after start-up.
const FIRST_MEDIA_WAIT: Duration = Duration::from_secs(5);

/// What the HLS handlers need beyond the shared state.
#[derive(Debug)]
pub struct HlsState {
    pub store: Arc<HlsStore>,
    pub bitrate_bps: u32,
    pub counters: Arc<H264Counters>,
}

fn hls(state: &AppState) -> Result<&HlsState, HttpError> {
    state
        .hls
        .as_ref()
        .ok_or_else(|| HttpError::NotFound("HLS is turned off (--no-hls)".into()))
}

/// `GET /live.m3u8`.
pub async fn multivariant(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let hls = hls(&state)?;
    wait_for_media(&hls.store).await?;
    let init = hls
        .store
        .init()
        .ok_or_else(|| HttpError::Unavailable("no video yet".into()))?;
    // Until a segment is complete, announce the configured rate with headroom.
    let (peak, average) = match hls.store.bandwidth() {
        Some(b) => (b.peak_bps, Some(b.average_bps)),
        None => (u64::from(hls.bitrate_bps) * 5 / 4, None),
    };
    let playlist = MultivariantPlaylist {
        independent_segments: true,
        variants: vec![Variant {
            bandwidth_bps: peak,
            average_bandwidth_bps: average,
            codecs: init.codec,
            resolution: (init.size.width, init.size.height),
            frame_rate_millihertz: u64::from(state.config.fps) * 1000,
            uri: format!("hls/{}/media.m3u8", state.start_id),
        }],
    };
    Ok(playlist_response(playlist.render(), LIVE_PLAYLIST_CACHE))
}

/// `GET /hls/{start_id}/{name}`.
pub async fn resource(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (start_id, name) = path.into_inner();
    let not_found = || HttpError::NotFound(req.path().to_owned());
    let hls = hls(&state)?;
    if start_id != state.start_id {
        return Err(not_found());
    }
    let store = &hls.store;
    match HlsResource::parse(&name).ok_or_else(not_found)? {
        HlsResource::MediaPlaylist => media_playlist(req.query_string(), store).await,
        HlsResource::Init { generation } => store
            .init_of_generation(generation)
            .map(|data| media_response(data, INIT_TYPE))
            .ok_or_else(not_found),
        HlsResource::Segment { msn } => store
            .segment(msn)
            .map(|data| media_response(data, SEGMENT_TYPE))
            .ok_or_else(not_found),
        HlsResource::Part { msn, index } => part(store, msn, index)
            .await?
            .map(|data| media_response(data, SEGMENT_TYPE))
            .ok_or_else(not_found),
    }
}

async fn media_playlist(query: &str, store: &HlsStore) -> Result<HttpResponse, HttpError> {
    let request = reload::parse_query(query).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    wait_for_media(store).await?;
    if let Some((msn, part)) = request.target {
        store
            .wait_for_playlist((msn, part))
            .await
            .map_err(|e| match e {
                BlockError::TooFarAhead => HttpError::BadRequest(format!(
                    "_HLS_msn={msn}{} is too far ahead of the live edge",
                    part.map_or(String::new(), |p| format!(" _HLS_part={p}"))
                )),
                BlockError::TimedOut { .. } => {
                    HttpError::Unavailable(format!("playlist update {msn}: {e}"))
                }
            })?;
    }
    let text = store.playlist().render(Some(request.skip));
    let cache = if request.target.is_some() {
        BLOCKING_PLAYLIST_CACHE
    } else {
        LIVE_PLAYLIST_CACHE
    };
    Ok(playlist_response(text, cache))
}

async fn part(store: &HlsStore, msn: u64, index: usize) -> Result<Option<Bytes>, HttpError> {
    store
        .wait_for_part(msn, index)
        .await
        .map_err(|e| HttpError::Unavailable(format!("part {msn}.{index}: {e}")))
}

async fn wait_for_media(store: &HlsStore) -> Result<(), HttpError> {
    store
        .wait_for_media(FIRST_MEDIA_WAIT)
        .await
        .map_err(|e| HttpError::Unavailable(format!("no video yet: {e}")))
}

fn playlist_response(text: String, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, PLAYLIST_TYPE))
        .insert_header((CACHE_CONTROL, cache))
        .body(text)
}

fn media_response(data: Bytes, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, IMMUTABLE))
        .body(data)
}
