//! `GET /status` (JSON state for operators) and `GET /healthz` (liveness for monitors).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::frame::unix_micros;
use crate::hub::{SourceState, ViewerKind};

use super::AppState;
use super::cache::CachePolicy;
use super::error::HttpError;
use super::limits::RefusalReason;
use super::streams::{Served, ServedStream};
use crate::config::ServerSettings;

/// The source is healthy while its last frame is younger than this many frame intervals
/// (and at least [`MIN_HEALTHY_GAP`]): a few late frames are jitter, not an outage.
const HEALTHY_FRAME_INTERVALS: u32 = 10;
const MIN_HEALTHY_GAP: Duration = Duration::from_secs(1);
/// HLS is unhealthy once it has made no part for this many target durations: by then every
/// blocking reload has given up with 503 and players stall. (A start-up takes under one.)
const HLS_STALLED_TARGET_DURATIONS: u32 = 3;
/// Viewers listed one by one in `/status`; the totals always count all of them. Enough for a
/// person to read, and the document stays small whatever the number of viewers.
const MAX_VIEWERS_LISTED: usize = 100;

/// `GET /status`: the whole server as JSON. Field names are part of the interface (scripts
/// and tests read them); each struct below is one object of the document.
///
/// Its top level describes the first stream as a stream's own `status` does, so that scripts
/// written before there were several keep working; `streams` has every stream (without its
/// list of viewers), and `totals` adds them up.
#[derive(Debug, Serialize)]
struct ServerStatus<'a> {
    version: &'static str,
    start_id: &'a str,
    uptime_s: f64,
    now_unix_us: u64,
    #[serde(flatten)]
    first: Option<StreamStatus>,
    connections: ConnectionsStatus,
    viewer_limits: ViewerLimitsStatus,
    totals: TotalsStatus,
    streams: Vec<StreamStatus>,
    /// Users and tokens configured, failed attempts, verifications.
    access: super::access::AccessStatus,
    /// The WebRTC socket and its sessions (WHEP viewers, WHIP publishers).
    webrtc: Option<crate::webrtc::WebRtcStatus>,
}

/// `GET /streams/{name}/status`: one stream.
#[derive(Debug, Serialize)]
struct StreamDocument<'a> {
    version: &'static str,
    /// The stream's instance id: its HLS resources are under `hls/{start_id}/`.
    start_id: &'a str,
    uptime_s: f64,
    now_unix_us: u64,
    #[serde(flatten)]
    stream: StreamStatus,
    connections: ConnectionsStatus,
}

/// What `/status` says of one stream.
#[derive(Debug, Serialize)]
struct StreamStatus {
    name: String,
    /// Where its resources are, `/streams/{name}/`.
    path: String,
    /// Whether `healthz` says it is healthy; the reason when not.
    healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    unhealthy_reason: Option<String>,
    source: SourceStatus,
    jpeg: JpegStatus,
    hls: Option<HlsStatus>,
    viewer_count: usize,
    viewer_frames_skipped_total: u64,
    /// Viewers dropped because their connection took nothing for `--viewer-stall-seconds`.
    viewers_dropped_stalled: u64,
    /// The stream's own `max_viewers`; `null`: only the server's limit in total.
    max_viewers: Option<u32>,
    /// Viewers turned away by the stream's limit or the server's.
    viewers_refused: u64,
    /// The longest-connected viewers, at most [`MAX_VIEWERS_LISTED`]; left out of the
    /// server's list of streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    viewers: Option<Vec<ViewerStatus>>,
}

/// The streams added up.
#[derive(Debug, Serialize)]
struct TotalsStatus {
    streams: usize,
    /// Streams whose `healthz` is 200.
    healthy: usize,
    viewer_count: usize,
    viewer_frames_skipped_total: u64,
    viewers_dropped_stalled: u64,
}

#[derive(Debug, Serialize)]
struct ConnectionsStatus {
    open: usize,
    max: usize,
    /// Requests answered 503 because the server was at its cap.
    refused: u64,
    /// `max_connections_per_address`, and whether it applies to loopback clients.
    max_per_address: usize,
    per_address_includes_loopback: bool,
    /// Client addresses (IPv6: /64s) holding connections that count against it.
    addresses: usize,
    /// Requests answered 503 because their client's address was at its cap.
    refused_per_address: u64,
}

/// The server's `max_viewers` in total and what it let in and refused.
#[derive(Debug, Serialize)]
struct ViewerLimitsStatus {
    /// `null`: no limit but the connection cap.
    max_viewers: Option<usize>,
    /// Viewers (`/stream.mjpg`, `/live.mp4`) of every stream now.
    viewers: usize,
    /// Viewers turned away by a stream's own limit, and by the limit in total.
    refused_stream_limit: u64,
    refused_total_limit: u64,
}

/// `/status` `hls.player_delay_s`.
#[derive(Debug, Serialize)]
struct PlayerDelay {
    low_latency: f64,
    standard: f64,
}

#[derive(Debug, Serialize)]
struct SourceStatus {
    /// What `--source` said, e.g. `pipe:mjpeg`.
    kind: String,
    description: String,
    state: SourceState,
    headline: Option<String>,
    last_error: Option<String>,
    errors: u64,
    bad_frames: u64,
    frames_dropped_size_change: u64,
    reopen_attempts: u64,
    /// Ended for good (standard input at its end): not reopened.
    finished: bool,
    /// For an `exec:` source: its process (running, pid, restarts, last exit).
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<crate::source::ProcessStatus>,
    down_for_ms: Option<u64>,
    /// The newest frame's size (a camera's H.264 brings its own), `--size` before the first.
    width: u32,
    height: u32,
    fps_configured: u32,
    fps_measured: f64,
    frames: u64,
    last_seq: u64,
    last_frame_age_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct JpegStatus {
    quality: u8,
    threads: usize,
    /// Whether anyone wants JPEGs now (an MJPEG viewer, a recent snapshot).
    active: bool,
    fps: f64,
    frames_encoded: u64,
    frames_skipped: u64,
    encode_ms_last: f64,
    encode_ms_mean: f64,
    /// Frames held back by the stream's `mjpeg_fps` cap.
    frames_over_cap: u64,
    /// Decoding of an H.264 source for JPEG viewers.
    decode: crate::hub::DecodeStatus,
}

#[derive(Debug, Serialize)]
struct HlsStatus {
    /// `always` or `on-demand`.
    mode: String,
    /// Whether the H.264 encoder runs now (on demand: from the first HLS or `/live.mp4`
    /// request until `idle_stop_s` after the last).
    running: bool,
    /// On demand: how long the encoder runs on after the last request (the configured time,
    /// at least three target durations); `null` for `always`.
    idle_stop_s: Option<u64>,
    /// How often the encoder started, and stopped for lack of viewers.
    starts: u64,
    idle_stops: u64,
    /// The encoder's bitrate; `null` while a camera's own H.264 passes through (what it
    /// sends is in `bandwidth`).
    bitrate_bps: Option<u32>,
    fps: f64,
    frames_encoded: u64,
    errors: u64,
    frames_dropped: u64,
    /// Frames not encoded, and frames encoded again more coarsely, to keep each segment
    /// within its byte budget; the block size pictures are averaged over now (1: untouched),
    /// and whether inter frames repeat the last picture.
    frames_skipped_rate: u64,
    frames_reencoded_rate: u64,
    picture_block_px: u64,
    picture_held: bool,
    encode_ms_last: f64,
    encode_ms_mean: f64,
    target_duration_s: u64,
    part_target_s: f64,
    /// How far behind live players start, by the playlist's own rules: LL-HLS players keep
    /// PART-HOLD-BACK, others HOLD-BACK (three target durations). With a camera's H.264 the
    /// target duration follows its key-frame interval, so this says what that interval costs.
    player_delay_s: PlayerDelay,
    segments: usize,
    newest_msn: Option<u64>,
    bandwidth: Option<BandwidthStatus>,
    /// The source sends H.264 of its own, segmented as it came (no decoder, no encoder):
    /// `frames_encoded` then counts only placeholders encoded while the source was down.
    passthrough: bool,
    /// The source's key-frame interval, learned from its first GOP: it decides the segment
    /// length. `null` until learned (and for encoded video).
    key_frame_interval_s: Option<f64>,
    /// Whether the timing (target duration, part target) is final: a passthrough stream's is
    /// once its first GOP was seen.
    timing_settled: bool,
    /// Whether the encoder exists now (raw frames, or an H.264 source's placeholders).
    encoder_running: bool,
    frames_passed_through: u64,
    /// Frames lost before the segmenter (gaps in the frame numbers), and the source's
    /// access units dropped until an IDR (before the first, after a loss or placeholders, and
    /// the rest of a GOP longer than a segment may be).
    frame_gaps: u64,
    frames_dropped_for_idr: u64,
    /// Segments ended early because a GOP outlasted the target duration.
    long_gop_cuts: u64,
    /// Which H.264 encoder runs, and why.
    encoder: EncoderStatus,
}

/// The H.264 encoder asked for, the one running, and why; an ffmpeg encoder's process.
#[derive(Debug, Serialize)]
struct EncoderStatus {
    requested: &'static str,
    chosen: &'static str,
    /// `requested`, `auto`, `probe_failed` or `failed_repeatedly`.
    reason: &'static str,
    /// What failed, when `chosen` is not what was asked for.
    fallback_reason: Option<String>,
    /// The ffmpeg process's id while one runs.
    pid: Option<u64>,
    restarts: u64,
    rule_breaks: u64,
    stalls: u64,
    frames_lost: u64,
}

impl EncoderStatus {
    fn of(state: &crate::encode::h264_choice::EncoderState) -> Self {
        let choice = state.choice();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Self {
            requested: choice.requested.as_str(),
            chosen: choice.chosen.as_str(),
            reason: choice.reason.as_str(),
            fallback_reason: choice.fallback_reason,
            pid: Some(load(&state.pid)).filter(|&pid| pid != 0),
            restarts: load(&state.restarts),
            rule_breaks: load(&state.rule_breaks),
            stalls: load(&state.stalls),
            frames_lost: load(&state.frames_lost),
        }
    }
}

#[derive(Debug, Serialize)]
struct BandwidthStatus {
    peak_bps: u64,
    average_bps: u64,
}

#[derive(Debug, Serialize)]
struct ViewerStatus {
    id: u64,
    kind: ViewerKind,
    remote: Option<String>,
    user_agent: String,
    connected_s: f64,
    fps_cap: Option<u32>,
    fps: f64,
    frames_sent: u64,
    frames_skipped: u64,
    bytes_sent: u64,
}

pub async fn server_status(state: web::Data<AppState>) -> HttpResponse {
    let streams = state.streams.all();
    let mut listed: Vec<StreamStatus> = streams
        .iter()
        .map(|stream| describe_stream(stream, &state.server, false))
        .collect();
    let totals = TotalsStatus {
        streams: listed.len(),
        healthy: listed.iter().filter(|s| s.healthy).count(),
        viewer_count: listed.iter().map(|s| s.viewer_count).sum(),
        viewer_frames_skipped_total: listed.iter().map(|s| s.viewer_frames_skipped_total).sum(),
        viewers_dropped_stalled: listed.iter().map(|s| s.viewers_dropped_stalled).sum(),
    };
    let first = streams
        .first()
        .map(|stream| describe_stream(stream, &state.server, true));
    // The first stream's viewers are listed at the top level only.
    for stream in &mut listed {
        stream.viewers = None;
    }
    let body = ServerStatus {
        version: env!("CARGO_PKG_VERSION"),
        start_id: streams
            .first()
            .map_or(state.start_id.as_str(), |s| s.instance_id.as_str()),
        uptime_s: round3(state.started_at.elapsed().as_secs_f64()),
        now_unix_us: unix_micros(std::time::SystemTime::now()),
        first,
        connections: connections_status(&state),
        viewer_limits: ViewerLimitsStatus {
            max_viewers: state.connections.viewers().max(),
            viewers: state.connections.viewers().taken(),
            refused_stream_limit: state.connections.refused_for(RefusalReason::StreamViewers),
            refused_total_limit: state.connections.refused_for(RefusalReason::TotalViewers),
        },
        totals,
        streams: listed,
        access: state.access.status(),
        webrtc: match &state.webrtc {
            Some(webrtc) => Some(webrtc.status().await),
            None => None,
        },
    };
    HttpResponse::Ok()
        .insert_header(CachePolicy::Live.header())
        .json(body)
}

pub async fn stream_status(state: web::Data<AppState>, stream: Served) -> HttpResponse {
    let body = StreamDocument {
        version: env!("CARGO_PKG_VERSION"),
        start_id: &stream.instance_id,
        uptime_s: round3(stream.hub.started_at.elapsed().as_secs_f64()),
        now_unix_us: unix_micros(std::time::SystemTime::now()),
        stream: describe_stream(&stream, &state.server, true),
        connections: connections_status(&state),
    };
    HttpResponse::Ok()
        .insert_header(CachePolicy::Live.header())
        .json(body)
}

fn connections_status(state: &AppState) -> ConnectionsStatus {
    let connections = &state.connections;
    ConnectionsStatus {
        open: connections.open(),
        max: connections.max(),
        refused: connections.refused(),
        max_per_address: connections.max_per_address(),
        per_address_includes_loopback: connections.limits_loopback(),
        addresses: connections.addresses(),
        refused_per_address: connections.refused_for(RefusalReason::ConnectionsPerAddress),
    }
}

fn describe_stream(
    stream: &ServedStream,
    server: &ServerSettings,
    with_viewers: bool,
) -> StreamStatus {
    let hub = &stream.hub;
    let config = &stream.settings;
    let health = hub.source_health();
    let newest_index = hub
        .subscribe_jpeg()
        .borrow()
        .as_ref()
        .map_or(0, |j| j.index);
    let all_viewers = hub.viewers.snapshot();
    let viewers = with_viewers.then(|| {
        all_viewers
            .iter()
            .take(MAX_VIEWERS_LISTED)
            .map(|v| ViewerStatus {
                id: v.id,
                kind: v.kind,
                remote: v.remote.map(|a| a.to_string()),
                user_agent: v.user_agent.clone(),
                connected_s: round3(v.connected_at.elapsed().as_secs_f64()),
                fps_cap: v.fps_cap,
                fps: round3(v.rate.rate_per_s()),
                frames_sent: v.frames_sent.load(Ordering::Relaxed),
                frames_skipped: match v.kind {
                    // Counted up to the newest published JPEG, while it is stuck too.
                    ViewerKind::Mjpeg => v.skipped_now(newest_index),
                    ViewerKind::LiveMp4 | ViewerKind::WebRtc => {
                        v.frames_skipped.load(Ordering::Relaxed)
                    }
                },
                bytes_sent: v.bytes_sent.load(Ordering::Relaxed),
            })
            .collect()
    });
    let jpeg = &hub.jpeg;
    let jpeg_encoded = jpeg.frames_encoded.load(Ordering::Relaxed);
    let unhealthy_reason = unhealthy_reason(stream).err();
    let source_size = hub.source.last_size().unwrap_or(config.size);
    let passing_through = stream.hls.as_ref().is_some_and(|hls| {
        hls.counters.passthrough.load(Ordering::Relaxed)
            && !hls.counters.encoder_running.load(Ordering::Relaxed)
    });
    StreamStatus {
        name: stream.name().to_owned(),
        path: stream.base_path(),
        healthy: unhealthy_reason.is_none(),
        unhealthy_reason,
        source: SourceStatus {
            kind: config.source.to_string(),
            description: health.description,
            state: health.state,
            headline: health.headline,
            last_error: health.last_error,
            errors: health.errors,
            bad_frames: health.bad_frames,
            frames_dropped_size_change: health.frames_dropped_size_change,
            reopen_attempts: health.reopen_attempts,
            finished: health.finished,
            process: health.process,
            down_for_ms: health.down_since.map(|at| at.elapsed().as_millis() as u64),
            width: source_size.width,
            height: source_size.height,
            fps_configured: config.fps,
            fps_measured: round3(hub.source.rate.rate_per_s()),
            frames: hub.source.frames.load(Ordering::Relaxed),
            last_seq: hub.source.last_seq.load(Ordering::Relaxed),
            last_frame_age_ms: hub.source.last_frame_age().map(|a| a.as_millis() as u64),
        },
        jpeg: JpegStatus {
            quality: config.jpeg_quality,
            threads: server.jpeg_thread_count(),
            active: hub.jpeg_demand_active(),
            fps: round3(jpeg.rate.rate_per_s()),
            frames_encoded: jpeg_encoded,
            frames_skipped: jpeg.frames_skipped.load(Ordering::Relaxed),
            encode_ms_last: micros_as_ms(jpeg.encode_micros_last.load(Ordering::Relaxed)),
            encode_ms_mean: mean_ms(
                jpeg.encode_micros_total.load(Ordering::Relaxed),
                jpeg_encoded,
            ),
            frames_over_cap: jpeg.frames_over_cap.load(Ordering::Relaxed),
            decode: hub.decode_status(),
        },
        hls: stream.hls.as_ref().map(|hls| {
            let c = &hls.counters;
            let encoded = c.frames_encoded.load(Ordering::Relaxed);
            let playlist = hls.store.playlist();
            HlsStatus {
                mode: hls.demand.mode().to_string(),
                running: hls.demand.is_running(),
                idle_stop_s: hls.demand.idle_stop().map(|d| d.as_secs()),
                starts: hls.demand.starts(),
                idle_stops: hls.demand.idle_stops(),
                bitrate_bps: (!passing_through).then_some(hls.bitrate_bps),
                fps: round3(c.rate.rate_per_s()),
                frames_encoded: encoded,
                errors: c.errors.load(Ordering::Relaxed),
                frames_dropped: hub.h264_frames_dropped.load(Ordering::Relaxed),
                frames_skipped_rate: c.frames_skipped_rate.load(Ordering::Relaxed),
                frames_reencoded_rate: c.frames_reencoded_rate.load(Ordering::Relaxed),
                picture_block_px: c.block_px.load(Ordering::Relaxed).max(1),
                picture_held: c.picture_held.load(Ordering::Relaxed),
                encode_ms_last: micros_as_ms(c.encode_micros_last.load(Ordering::Relaxed)),
                encode_ms_mean: mean_ms(c.encode_micros_total.load(Ordering::Relaxed), encoded),
                target_duration_s: playlist.target_duration_s,
                part_target_s: playlist.part_target_s(),
                player_delay_s: {
                    let (low_latency, standard) = playlist.server_control.hold_backs_s();
                    PlayerDelay {
                        low_latency: round3(low_latency),
                        standard: round3(standard),
                    }
                },
                segments: playlist.segments.len(),
                newest_msn: playlist.segments.last().map(|s| s.msn),
                bandwidth: hls.store.bandwidth().map(|b| BandwidthStatus {
                    peak_bps: b.peak_bps,
                    average_bps: b.average_bps,
                }),
                passthrough: c.passthrough.load(Ordering::Relaxed) || !hls.store.timing_settled(),
                key_frame_interval_s: match c.key_frame_interval_us.load(Ordering::Relaxed) {
                    0 => None,
                    us => Some(round3(us as f64 / 1e6)),
                },
                timing_settled: hls.store.timing_settled(),
                encoder_running: c.encoder_running.load(Ordering::Relaxed),
                frames_passed_through: c.frames_passed_through.load(Ordering::Relaxed),
                frame_gaps: c.frame_gaps.load(Ordering::Relaxed),
                frames_dropped_for_idr: c.frames_dropped_for_idr.load(Ordering::Relaxed),
                long_gop_cuts: c.long_gop_cuts.load(Ordering::Relaxed),
                encoder: EncoderStatus::of(&c.encoder),
            }
        }),
        viewer_count: all_viewers.len(),
        viewer_frames_skipped_total: hub.viewers.total_skipped(),
        viewers_dropped_stalled: hub.viewers.dropped_stalled(),
        max_viewers: config.max_viewers,
        viewers_refused: hub.viewers.refused(),
        viewers,
    }
}

/// `GET /healthz`: 200 when every stream is healthy, else 503 naming those that are not.
pub async fn server_healthz(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let streams = state.streams.all();
    if let [only] = streams.as_slice() {
        // One stream: its own answer, as before there were several.
        return stream_healthz(Served(only.clone())).await;
    }
    let unhealthy: Vec<String> = streams
        .iter()
        .filter_map(|stream| {
            unhealthy_reason(stream)
                .err()
                .map(|reason| format!("stream `{}`: {reason}", stream.name()))
        })
        .collect();
    if !unhealthy.is_empty() {
        return Err(HttpError::Unavailable(format!(
            "{} of {} streams unhealthy: {}",
            unhealthy.len(),
            streams.len(),
            unhealthy.join("; ")
        )));
    }
    Ok(healthy(format!("ok: {} streams live\n", streams.len())))
}

/// `GET /streams/{name}/healthz`: 200 while the stream's frames flow (and its HLS makes
/// media), else 503 saying why.
pub async fn stream_healthz(stream: Served) -> Result<HttpResponse, HttpError> {
    unhealthy_reason(&stream)
        .map(healthy)
        .map_err(HttpError::Unavailable)
}

fn healthy(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CachePolicy::Live.header())
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

/// `Ok` with the body of a healthy answer, or why the stream is not healthy.
fn unhealthy_reason(stream: &ServedStream) -> Result<String, String> {
    let hub = &stream.hub;
    let health = hub.source_health();
    if health.state == SourceState::Down {
        return Err(format!(
            "source down: {}: {}",
            health.headline.as_deref().unwrap_or("NO SIGNAL"),
            health.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    // An on-demand encoder stopped for lack of viewers makes no media, rightly.
    if let Some(hls) = stream.hls.as_ref().filter(|hls| hls.demand.is_running()) {
        let stalled = hls.store.media_stalled_for(Instant::now());
        // A passthrough stream's first media waits for its first GOP (up to 10 s) to be seen.
        let target_duration = if hls.store.timing_settled() {
            Duration::from_secs(hls.store.timing().target_duration_s)
        } else {
            Duration::from_secs(crate::hls::passthrough::MAX_LEARN_90K / crate::frame::CLOCK_90K)
        };
        let limit = target_duration * HLS_STALLED_TARGET_DURATIONS;
        if stalled > limit {
            return Err(format!(
                "HLS has made no media for {:.1} s while the source delivers",
                stalled.as_secs_f64()
            ));
        }
    }
    let limit = (Duration::from_secs(1) / stream.settings.fps * HEALTHY_FRAME_INTERVALS)
        .max(MIN_HEALTHY_GAP);
    match hub.source.last_frame_age() {
        Some(age) if age <= limit => Ok(format!(
            "ok: frames flowing, last {} ms ago\n",
            age.as_millis()
        )),
        Some(age) => Err(format!(
            "no frame from the source for {:.1} s",
            age.as_secs_f64()
        )),
        None => Err("no frame from the source yet".into()),
    }
}

fn micros_as_ms(micros: u64) -> f64 {
    round3(micros as f64 / 1000.0)
}

/// The mean of `count` durations that add up to `total_micros`, in milliseconds.
fn mean_ms(total_micros: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        round3(total_micros as f64 / count as f64 / 1000.0)
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
