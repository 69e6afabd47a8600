//! `GET /status` (JSON state for operators) and `GET /healthz` (liveness for monitors).

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::frame::unix_micros;
use crate::source::supervisor::SourceState;

use super::AppState;
use super::error::HttpError;

/// The source is healthy while its last frame is younger than this many frame intervals
/// (and at least [`MIN_HEALTHY_GAP`]): a few late frames are jitter, not an outage.
const HEALTHY_FRAME_INTERVALS: u32 = 10;
const MIN_HEALTHY_GAP: Duration = Duration::from_secs(1);

pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    let hub = &state.hub;
    let config = &state.config;
    let jpeg = &hub.jpeg;
    let encoded = jpeg.frames_encoded.load(Ordering::Relaxed);
    let encode_total_us = jpeg.encode_micros_total.load(Ordering::Relaxed);
    let health = hub.source_health();
    let newest_index = hub
        .subscribe_jpeg()
        .borrow()
        .as_ref()
        .map_or(0, |j| j.index);
    let viewers: Vec<_> = hub
        .viewers
        .snapshot()
        .iter()
        .map(|v| {
            json!({
                "id": v.id,
                "remote": v.remote.map(|a| a.to_string()),
                "user_agent": v.user_agent,
                "connected_s": round3(v.connected_at.elapsed().as_secs_f64()),
                "fps_cap": v.fps_cap,
                "fps": round3(v.rate.rate_per_s()),
                "frames_sent": v.frames_sent.load(Ordering::Relaxed),
                "frames_skipped": v.skipped_now(newest_index),
                "bytes_sent": v.bytes_sent.load(Ordering::Relaxed),
            })
        })
        .collect();
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "start_id": state.start_id,
        "uptime_s": round3(hub.started_at.elapsed().as_secs_f64()),
        "now_unix_us": unix_micros(std::time::SystemTime::now()),
        "source": {
            "kind": config.source.to_string(),
            "description": health.description,
            "state": health.state,
            "headline": health.headline,
            "last_error": health.last_error,
            "errors": health.errors,
            "reopen_attempts": health.reopen_attempts,
            "down_for_ms": health.down_since.map(|at| at.elapsed().as_millis() as u64),
            "width": config.size.width,
            "height": config.size.height,
            "fps_configured": config.fps,
            "fps_measured": round3(hub.source.rate.rate_per_s()),
            "frames": hub.source.frames.load(Ordering::Relaxed),
            "last_seq": hub.source.last_seq.load(Ordering::Relaxed),
            "last_frame_age_ms": hub.source.last_frame_age().map(|a| a.as_millis() as u64),
        },
        "jpeg": {
            "quality": config.jpeg_quality,
            "threads": config.jpeg_thread_count(),
            "active": hub.jpeg_demand_active(),
            "fps": round3(jpeg.rate.rate_per_s()),
            "frames_encoded": encoded,
            "frames_skipped": jpeg.frames_skipped.load(Ordering::Relaxed),
            "encode_ms_last": round3(jpeg.encode_micros_last.load(Ordering::Relaxed) as f64 / 1000.0),
            "encode_ms_mean": if encoded == 0 { 0.0 } else { round3(encode_total_us as f64 / encoded as f64 / 1000.0) },
        },
        "hls": state.hls.as_ref().map(|hls| {
            let c = &hls.counters;
            let encoded = c.frames_encoded.load(Ordering::Relaxed);
            let playlist = hls.store.playlist();
            json!({
                "bitrate_bps": hls.bitrate_bps,
                "fps": round3(c.rate.rate_per_s()),
                "frames_encoded": encoded,
                "errors": c.errors.load(Ordering::Relaxed),
                "frames_dropped": hub.h264_frames_dropped.load(Ordering::Relaxed),
                "encode_ms_last": round3(c.encode_micros_last.load(Ordering::Relaxed) as f64 / 1000.0),
                "encode_ms_mean": if encoded == 0 { 0.0 } else { round3(c.encode_micros_total.load(Ordering::Relaxed) as f64 / encoded as f64 / 1000.0) },
                "target_duration_s": playlist.target_duration_s,
                "part_target_s": playlist.part_target_s(),
                "segments": playlist.segments.len(),
                "newest_msn": playlist.segments.last().map(|s| s.msn),
                "bandwidth": hls.store.bandwidth().map(|b| json!({"peak_bps": b.peak_bps, "average_bps": b.average_bps})),
            })
        }),
        "viewer_count": viewers.len(),
        "viewer_frames_skipped_total": hub.viewers.total_skipped(),
        "viewers": viewers,
    });
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(body)
}

pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let health = state.hub.source_health();
    if health.state == SourceState::Down {
        return Err(HttpError::Unavailable(format!(
            "source down: {}: {}",
            health.headline.as_deref().unwrap_or("NO SIGNAL"),
            health.last_error.as_deref().unwrap_or("unknown error")
        )));
    }
    let limit =
        (Duration::from_secs(1) / state.config.fps * HEALTHY_FRAME_INTERVALS).max(MIN_HEALTHY_GAP);
    match state.hub.source.last_frame_age() {
        Some(age) if age <= limit => Ok(HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "ok: frames flowing, last {} ms ago\n",
                age.as_millis()
            ))),
        Some(age) => Err(HttpError::Unavailable(format!(
            "no frame from the source for {:.1} s",
            age.as_secs_f64()
        ))),
        None => Err(HttpError::Unavailable(
            "no frame from the source yet".into(),
        )),
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
