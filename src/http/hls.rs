//! HLS over HTTP: `/live.m3u8` (multivariant), and under `/hls/{start_id}/` the media playlist
//! with blocking reloads and delta updates, the init section, segments and parts
//! (rfc8216bis §6.2.5).
//!
//! Everything under the prefix is named per server start, so media is cached as immutable and
//! a restarted server never collides with what a cache holds.
//!
//! A request that came with a signed link gets playlists whose every URI carries the link's
//! query (`exp`, `sig`), so the player's next requests are signed too.
//!
//! This file only maps requests to the store ([`crate::hls::store`]) and its errors to
//! statuses; names, waits and renderings are the store's. Every request for the stream's HLS
//! holds its demand while it is served ([`crate::pipeline::hls_demand`]): with
//! `hls = "on-demand"` the first one starts the encoder and waits, bounded, for its first
//! segment, and the encoder stops a while after the last one.

use actix_web::http::header::{
    AcceptEncoding, CONTENT_ENCODING, CONTENT_TYPE, Encoding, Header, HeaderValue, RETRY_AFTER,
    VARY,
};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;

use crate::hls::names::HlsName;
use crate::hls::reload::{self, SkipRequest};
use crate::hls::store::{HlsStore, PlaylistVariant};
use crate::media::playlist::carry_query;
use crate::pipeline::StreamHls;

use super::cache::CachePolicy;
use super::error::HttpError;
use super::signed_access::signed_link_of;
use super::streams::{Served, ServedStream};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// rfc8216bis §5: segments with the `video/iso.segment` type; the init section is `video/mp4`.
const SEGMENT_TYPE: &str = "video/iso.segment";
const INIT_TYPE: &str = "video/mp4";
/// The stream's HLS, or 404 saying it is off.
pub fn hls_of(stream: &ServedStream) -> Result<&StreamHls, HttpError> {
    stream.hls.as_ref().ok_or_else(|| {
        HttpError::NotFound(format!(
            "HLS is turned off for stream `{}` (--no-hls, hls = \"off\")",
            stream.name()
        ))
    })
}

/// `GET /live.m3u8`.
pub async fn multivariant(req: HttpRequest, stream: Served) -> Result<HttpResponse, HttpError> {
    let hls = hls_of(&stream)?;
    hls.store.count_request();
    let _demand = hls.demand.hold();
    // CODECS and BANDWIDTH are measured, never guessed: they need the first segment.
    if let Err(unavailable) = wait_for_first_segment(&hls.store).await {
        return Ok(unavailable);
    }
    let media_uri = format!("hls/{}/{}", stream.instance_id, HlsName::MediaPlaylist);
    let playlist = hls
        .store
        .multivariant_playlist(&media_uri)
        .ok_or_else(|| HttpError::Unavailable("no video yet".into()))?;
    let text = playlist.render();
    let text = match signed_link_of(&req) {
        Some(link) => carry_query(&text, &link.query),
        None => text,
    };
    // A playlist without blocking parameters changes every part.
    let cache = CachePolicy::Revalidate;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, PLAYLIST_TYPE))
        .insert_header(cache.header())
        .body(text))
}

/// `GET /hls/{start_id}/{name}`, the start id being the stream's instance id.
pub async fn resource(req: HttpRequest, stream: Served) -> Result<HttpResponse, HttpError> {
    let not_found = || HttpError::NotFound(req.path().to_owned());
    let (Some(start_id), Some(name)) = (
        req.match_info().get("start_id"),
        req.match_info().get("name"),
    ) else {
        return Err(not_found());
    };
    let hls = hls_of(&stream)?;
    if start_id != stream.instance_id {
        return Err(not_found());
    }
    let name = HlsName::parse(name).ok_or_else(not_found)?;
    hls.store.count_request();
    let _demand = hls.demand.hold();
    let store = &hls.store;
    match name {
        HlsName::MediaPlaylist => media_playlist(&req, store).await,
        HlsName::Init { generation } => store
            .init_of_generation(generation)
            .map(|data| media_response(data, INIT_TYPE))
            .ok_or_else(not_found),
        HlsName::Segment { msn } => store
            .segment(msn)
            .map(|data| media_response(data, SEGMENT_TYPE))
            .ok_or_else(not_found),
        HlsName::Part { msn, index } => part(store, msn, index)
            .await?
            .map(|data| media_response(data, SEGMENT_TYPE))
            .ok_or_else(not_found),
    }
}

async fn media_playlist(req: &HttpRequest, store: &HlsStore) -> Result<HttpResponse, HttpError> {
    let request = reload::parse_query(req.query_string())?;
    if let Err(unavailable) = wait_for_first_segment(store).await {
        return Ok(unavailable);
    }
    if let Some((msn, part)) = request.target {
        store.wait_for_playlist((msn, part)).await.map_err(|e| {
            let part = part.map_or(String::new(), |p| format!(" _HLS_part={p}"));
            HttpError::from(e).context(format_args!("_HLS_msn={msn}{part}"))
        })?;
    }
    let signed = signed_link_of(req);
    let variant = PlaylistVariant {
        delta: request.skip != SkipRequest::No,
        // A signed request takes the shared text and rewrites it; the compression
        // middleware then compresses its own copy.
        gzip: accepts_gzip(req) && signed.is_none(),
    };
    let shared = store.rendered_playlist(variant);
    let body = match &signed {
        Some(link) => signed_playlist(&shared, &link.query)?,
        None => shared,
    };
    // A signed playlist is cached like any other: a cache keys it by its whole URI, link
    // included, so it only ever goes to holders of the same link.
    let cache = match request.target {
        Some(_) => CachePolicy::BlockingPlaylist,
        None => CachePolicy::Revalidate,
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((CONTENT_TYPE, PLAYLIST_TYPE))
        .insert_header(cache.header())
        .insert_header((VARY, "Accept-Encoding"));
    if variant.gzip {
        // Already encoded: with Content-Encoding set, the compression middleware leaves the
        // body alone. (A client that takes only deflate still gets it from the middleware.)
        response.insert_header((CONTENT_ENCODING, Encoding::gzip().to_string()));
    }
    Ok(response.body(body))
}

/// The shared rendering of a playlist with a signed link's query carried into every URI it
/// lists, rewritten per request: signed requests are the few (links given to `<img>` and
/// embeds), and the rewrite is one pass over a few kilobytes.
fn signed_playlist(shared: &Bytes, query: &str) -> Result<Bytes, HttpError> {
    let text = std::str::from_utf8(shared)
        .map_err(|_| HttpError::Internal("the rendered playlist is not UTF-8".into()))?;
    Ok(Bytes::from(carry_query(text, query)))
}

/// Whether the client takes gzip (RFC 9110 §12.5.3), by the same negotiation the compression
/// middleware uses for other responses.
fn accepts_gzip(req: &HttpRequest) -> bool {
    AcceptEncoding::parse(req)
        .ok()
        .and_then(|accept| accept.negotiate([Encoding::gzip(), Encoding::identity()].iter()))
        == Some(Encoding::gzip())
}

async fn part(store: &HlsStore, msn: u64, index: usize) -> Result<Option<Bytes>, HttpError> {
    store
        .wait_for_part(msn, index)
        .await
        .map_err(|e| HttpError::from(e).context(format_args!("part {msn}.{index}")))
}

/// How long a client is asked to wait (`Retry-After`) while the key-frame interval of a
/// source's own H.264 is still being learned: it takes one GOP, at most 10 s.
const RETRY_WHILE_LEARNING_S: u64 = 2;

/// Holds a request until the window lists a complete segment (just after start, or after an
/// on-demand encoder started again), like a blocking reload. If none comes within three
/// target durations: a 503 with `Retry-After` (RFC 9110 §10.2.3). With a source's own H.264
/// the first segment needs the first whole GOP (up to 10 s, after the first IDR), and until
/// its key-frame interval is known the wait is bounded by the configured target duration: a
/// camera with long GOPs answers the first requests with 503 and `Retry-After: 2`, and every
/// request after the first segment succeeds.
async fn wait_for_first_segment(store: &HlsStore) -> Result<(), HttpResponse> {
    let Err(error) = store.wait_for_first_segment().await else {
        return Ok(());
    };
    let (reason, retry_after_s) = if store.timing_settled() {
        ("no video yet", store.timing().target_duration_s.max(1))
    } else {
        (
            "no video yet: learning the camera's key-frame interval (up to 10 s)",
            RETRY_WHILE_LEARNING_S,
        )
    };
    let mut response = HttpError::from(error).context(reason).error_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
    Err(response)
}

fn media_response(data: Bytes, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        // Media never changes under its per-start name.
        .insert_header(CachePolicy::Immutable.header())
        .body(data)
}
