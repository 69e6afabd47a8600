//! `GET /metrics`: the server in the Prometheus text format (version 0.0.4), for scrapers.
//!
//! Nothing is counted twice for it: at each scrape a [`Reading`] takes the counters `/status`
//! reads too (hub, pipeline, HLS store, viewer registry, connection limits), and a collector
//! hands it to `prometheus-client`'s encoder. The one exception is the encode-time histograms,
//! which the encoders record into lock-free buckets as they go ([`DurationHistogram`]).
//!
//! Names follow Prometheus conventions: `framecast_` first, units in the name (`_seconds`,
//! `_bytes`), counters end in `_total` (the encoder adds it to a counter's name), and every
//! per-stream series has the label `stream`.
//!
//! [`DurationHistogram`]: crate::meter::DurationHistogram

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::hub::{SourceState, ViewerKind};
use crate::meter::{DURATION_BUCKETS_US, HistogramReading};
use crate::webrtc::CloseReason;

use super::AppState;
use super::cache::CachePolicy;
use super::limits::RefusalReason;
use super::streams::ServedStream;

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let reading = Reading::of(&state);
    match render(reading) {
        Ok(text) => HttpResponse::Ok()
            .insert_header((
                CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            ))
            .insert_header(CachePolicy::Live.header())
            .body(text),
        // Writing into a String cannot fail; an error here is the encoder's own.
        Err(std::fmt::Error) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body("cannot encode the metrics\n"),
    }
}

/// The text of a scrape.
fn render(reading: Reading) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(reading));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Every value of one scrape, read at once.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    connections_open: u64,
    connections_max: u64,
    /// Requests refused, by reason.
    refused: Vec<(&'static str, u64)>,
    auth_failures: u64,
    streams: Vec<StreamReading>,
    /// `None` when WebRTC is off.
    webrtc: Option<WebRtcReading>,
}

#[derive(Debug, Clone, PartialEq)]
struct WebRtcReading {
    sessions: u64,
    opened: u64,
    /// Sessions ended, by reason (every reason, zeros too).
    closed: Vec<(&'static str, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
struct StreamReading {
    name: String,
    source_up: bool,
    source_frames: u64,
    source_errors: u64,
    source_reopen_attempts: u64,
    jpeg_encoded: u64,
    /// Frames handed to the JPEG encoders and replaced before one was free.
    jpeg_dropped: u64,
    jpeg_encode: HistogramReading,
    /// Viewers now, bytes sent to them, by kind.
    viewers: Vec<(&'static str, u64, u64)>,
    viewer_frames_skipped: u64,
    viewers_dropped_stalled: u64,
    viewers_refused: u64,
    hls: Option<HlsReading>,
}

#[derive(Debug, Clone, PartialEq)]
struct HlsReading {
    h264_encoded: u64,
    /// Frames the H.264 stage's queue dropped.
    h264_dropped: u64,
    h264_encode: HistogramReading,
    requests: u64,
    blocked: u64,
    block_timeouts: u64,
    /// The H.264 encoder asked for and the one running, why (a word), and its restarts.
    encoder_requested: &'static str,
    encoder_chosen: &'static str,
    encoder_reason: &'static str,
    encoder_restarts: u64,
}

impl Reading {
    fn of(state: &AppState) -> Self {
        let connections = &state.connections;
        Self {
            connections_open: connections.open() as u64,
            connections_max: connections.max() as u64,
            refused: RefusalReason::ALL
                .iter()
                .map(|&reason| (reason.as_str(), connections.refused_for(reason)))
                .collect(),
            auth_failures: state.access.failures_total(),
            streams: state.streams.all().iter().map(|s| read_stream(s)).collect(),
            webrtc: state.webrtc.as_ref().map(|webrtc| {
                let counters = webrtc.counters();
                WebRtcReading {
                    sessions: counters.sessions.load(Ordering::Relaxed) as u64,
                    opened: counters.sessions_opened.load(Ordering::Relaxed),
                    closed: CloseReason::ALL
                        .iter()
                        .map(|reason| {
                            let closed = &counters.closed_by_reason[reason.index()];
                            (reason.label(), closed.load(Ordering::Relaxed))
                        })
                        .collect(),
                }
            }),
        }
    }
}

fn read_stream(stream: &ServedStream) -> StreamReading {
    let hub = &stream.hub;
    let health = hub.source_health();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    StreamReading {
        name: stream.name().to_owned(),
        source_up: health.state != SourceState::Down,
        source_frames: load(&hub.source.frames),
        source_errors: health.errors,
        source_reopen_attempts: health.reopen_attempts,
        jpeg_encoded: load(&hub.jpeg.frames_encoded),
        jpeg_dropped: load(&hub.jpeg.frames_skipped),
        jpeg_encode: hub.jpeg.encode_histogram.read(),
        viewers: ViewerKind::ALL
            .iter()
            .map(|&kind| {
                (
                    kind.as_str(),
                    hub.viewers.count_of(kind) as u64,
                    hub.viewers.bytes_sent(kind),
                )
            })
            .collect(),
        viewer_frames_skipped: hub.viewers.total_skipped(),
        viewers_dropped_stalled: hub.viewers.dropped_stalled(),
        viewers_refused: hub.viewers.refused(),
        hls: stream
            .hls
            .as_ref()
            .map(|hls| (hls, hls.counters.encoder.choice()))
            .map(|(hls, encoder)| HlsReading {
                h264_encoded: load(&hls.counters.frames_encoded),
                h264_dropped: load(&hub.h264_frames_dropped),
                h264_encode: hls.counters.encode_histogram.read(),
                requests: load(&hls.store.requests.requests),
                blocked: load(&hls.store.requests.blocked),
                block_timeouts: load(&hls.store.requests.block_timeouts),
                encoder_requested: encoder.requested.as_str(),
                encoder_chosen: encoder.chosen.as_str(),
                encoder_reason: encoder.reason.as_str(),
                encoder_restarts: load(&hls.counters.encoder.restarts),
            }),
    }
}

/// The labels of a series of the server's own (no stream).
const NO_LABELS: [(&str, &str); 0] = [];

/// One family's series: its labels and value.
type Series<'a, V> = Vec<([(&'static str, &'a str); 2], V)>;

impl Collector for Reading {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e = Families(&mut encoder);
        e.gauge(
            "framecast_connections_open",
            "Open client connections.",
            [(NO_LABELS, self.connections_open)],
        )?;
        e.gauge(
            "framecast_connections_max",
            "Client connections the server takes before it answers 503.",
            [(NO_LABELS, self.connections_max)],
        )?;
        e.counter(
            "framecast_requests_refused",
            "Requests answered 503 by a limit, by reason.",
            self.refused
                .iter()
                .map(|(reason, count)| ([("reason", *reason)], *count)),
        )?;
        e.counter(
            "framecast_auth_failures",
            "Failed authentications (passwords, tokens, signed links).",
            [(NO_LABELS, self.auth_failures)],
        )?;

        let streams = &self.streams;
        let per_stream = |value: fn(&StreamReading) -> u64| {
            streams
                .iter()
                .map(move |s| ([("stream", s.name.as_str())], value(s)))
        };
        e.gauge(
            "framecast_source_up",
            "1 while the stream's source delivers (or starts), 0 while it is down.",
            per_stream(|s| u64::from(s.source_up)),
        )?;
        e.counter(
            "framecast_source_frames",
            "Frames captured from the source.",
            per_stream(|s| s.source_frames),
        )?;
        e.counter(
            "framecast_source_errors",
            "Errors of the source (each one makes it reopen).",
            per_stream(|s| s.source_errors),
        )?;
        e.counter(
            "framecast_source_reopen_attempts",
            "Attempts to reopen the source after it failed.",
            per_stream(|s| s.source_reopen_attempts),
        )?;

        let mut encoded: Series<u64> = Vec::new();
        let mut dropped: Series<u64> = Vec::new();
        let mut encode_times: Series<&HistogramReading> = Vec::new();
        for s in streams {
            let name = s.name.as_str();
            encoded.push(([("stream", name), ("kind", "jpeg")], s.jpeg_encoded));
            dropped.push(([("stream", name), ("kind", "jpeg")], s.jpeg_dropped));
            encode_times.push(([("stream", name), ("kind", "jpeg")], &s.jpeg_encode));
            if let Some(hls) = &s.hls {
                encoded.push(([("stream", name), ("kind", "h264")], hls.h264_encoded));
                dropped.push(([("stream", name), ("kind", "h264")], hls.h264_dropped));
                encode_times.push(([("stream", name), ("kind", "h264")], &hls.h264_encode));
            }
        }
        e.counter(
            "framecast_frames_encoded",
            "Frames encoded, by kind (jpeg, h264).",
            encoded,
        )?;
        e.counter(
            "framecast_frames_dropped",
            "Frames an encoder never took because a newer one replaced them, by kind.",
            dropped,
        )?;
        e.histogram(
            "framecast_encode_seconds",
            "Time to encode one frame, by kind (jpeg, h264).",
            encode_times,
        )?;

        let mut viewers: Series<u64> = Vec::new();
        let mut bytes: Series<u64> = Vec::new();
        for s in streams {
            for (kind, count, sent) in &s.viewers {
                viewers.push(([("stream", s.name.as_str()), ("kind", kind)], *count));
                bytes.push(([("stream", s.name.as_str()), ("kind", kind)], *sent));
            }
        }
        e.gauge(
            "framecast_viewers",
            "Viewers connected now, by kind (mjpeg, live.mp4, webrtc).",
            viewers,
        )?;
        e.counter(
            "framecast_viewer_sent_bytes",
            "Bytes sent to viewers, by kind (mjpeg, live.mp4, webrtc).",
            bytes,
        )?;
        e.counter(
            "framecast_viewer_frames_skipped",
            "Frames viewers skipped because their connection was not ready for them.",
            per_stream(|s| s.viewer_frames_skipped),
        )?;
        e.counter(
            "framecast_viewers_dropped_stalled",
            "Viewers dropped because their connection took nothing for the stall limit.",
            per_stream(|s| s.viewers_dropped_stalled),
        )?;
        e.counter(
            "framecast_viewers_refused",
            "Viewers answered 503 by the stream's max_viewers or the server's.",
            per_stream(|s| s.viewers_refused),
        )?;

        let with_hls = |value: fn(&HlsReading) -> u64| {
            streams.iter().filter_map(move |s| {
                s.hls
                    .as_ref()
                    .map(|hls| ([("stream", s.name.as_str())], value(hls)))
            })
        };
        e.counter(
            "framecast_hls_requests",
            "Requests for the stream's HLS playlists, init sections, segments and parts.",
            with_hls(|h| h.requests),
        )?;
        e.counter(
            "framecast_hls_blocking_waits",
            "HLS requests held until their playlist or part existed.",
            with_hls(|h| h.blocked),
        )?;
        e.counter(
            "framecast_hls_blocking_timeouts",
            "Held HLS requests answered 503 after three target durations.",
            with_hls(|h| h.block_timeouts),
        )?;
        e.gauge(
            "framecast_h264_encoder_info",
            "The H.264 encoder running (chosen), the one asked for (requested), and why \
             (reason: requested, auto, probe_failed, failed_repeatedly); always 1.",
            streams.iter().filter_map(|s| {
                s.hls.as_ref().map(|hls| {
                    (
                        [
                            ("stream", s.name.as_str()),
                            ("requested", hls.encoder_requested),
                            ("chosen", hls.encoder_chosen),
                            ("reason", hls.encoder_reason),
                        ],
                        1,
                    )
                })
            }),
        )?;
        e.counter(
            "framecast_h264_encoder_restarts",
            "ffmpeg H.264 encoder processes started again after one died, stalled or broke a rule.",
            with_hls(|h| h.encoder_restarts),
        )?;

        if let Some(webrtc) = &self.webrtc {
            e.gauge(
                "framecast_webrtc_sessions",
                "WebRTC sessions open now (WHEP viewers and WHIP publishers).",
                [(NO_LABELS, webrtc.sessions)],
            )?;
            e.counter(
                "framecast_webrtc_sessions_opened",
                "WebRTC sessions opened.",
                [(NO_LABELS, webrtc.opened)],
            )?;
            e.counter(
                "framecast_webrtc_sessions_closed",
                "WebRTC sessions ended, by reason (deleted, connect_timeout, disconnected, \
                 failed, link_expired, stream_ended, shutdown).",
                webrtc
                    .closed
                    .iter()
                    .map(|(reason, count)| ([("reason", *reason)], *count)),
            )?;
        }
        Ok(())
    }
}

/// Writes families of one type each: a descriptor, then its series.
struct Families<'e, 'a>(&'e mut DescriptorEncoder<'a>);

impl Families<'_, '_> {
    fn counter<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, u64)>,
    ) -> Result<(), std::fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in series {
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        Ok(())
    }

    fn gauge<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, u64)>,
    ) -> Result<(), std::fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in series {
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
        Ok(())
    }

    fn histogram<'r, L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, &'r HistogramReading)>,
    ) -> Result<(), std::fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, reading) in series {
            let buckets: Vec<(f64, u64)> = DURATION_BUCKETS_US
                .iter()
                .map(|&bound_us| bound_us as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(reading.counts.iter().copied())
                .collect();
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    reading.sum_us as f64 / 1e6,
                    reading.count(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(counts: &[u64], sum_us: u64) -> HistogramReading {
        let mut all = vec![0; DURATION_BUCKETS_US.len() + 1];
        all[..counts.len()].copy_from_slice(counts);
        HistogramReading {
            counts: all,
            sum_us,
        }
    }

    fn fixed_reading() -> Reading {
        Reading {
            connections_open: 3,
            connections_max: 960,
            refused: RefusalReason::ALL
                .iter()
                .map(|r| (r.as_str(), u64::from(*r == RefusalReason::StreamViewers)))
                .collect(),
            auth_failures: 2,
            streams: vec![StreamReading {
                name: "front".into(),
                source_up: true,
                source_frames: 300,
                source_errors: 0,
                source_reopen_attempts: 1,
                jpeg_encoded: 290,
                jpeg_dropped: 10,
                jpeg_encode: histogram(&[0, 0, 290], 580_000),
                viewers: vec![("mjpeg", 2, 4096), ("live.mp4", 0, 0)],
                viewer_frames_skipped: 5,
                viewers_dropped_stalled: 0,
                viewers_refused: 1,
                hls: Some(HlsReading {
                    h264_encoded: 299,
                    h264_dropped: 1,
                    h264_encode: histogram(&[0, 0, 0, 0, 299], 2_093_000),
                    requests: 40,
                    blocked: 12,
                    block_timeouts: 0,
                    encoder_requested: "vaapi",
                    encoder_chosen: "openh264",
                    encoder_reason: "probe_failed",
                    encoder_restarts: 0,
                }),
            }],
            webrtc: Some(WebRtcReading {
                sessions: 1,
                opened: 4,
                closed: CloseReason::ALL
                    .iter()
                    .map(|r| (r.label(), u64::from(*r == CloseReason::LinkExpired) * 3))
                    .collect(),
            }),
        }
    }

    #[test]
    fn a_fixed_reading_renders_as_prometheus_text() {
        let text = render(fixed_reading()).expect("render");
        for line in [
            "# TYPE framecast_connections_open gauge",
            "framecast_connections_open 3",
            "# TYPE framecast_requests_refused_total counter",
            "framecast_requests_refused_total{reason=\"stream_viewers\"} 1",
            "framecast_requests_refused_total{reason=\"connections_per_address\"} 0",
            "framecast_auth_failures_total 2",
            "framecast_source_up{stream=\"front\"} 1",
            "framecast_source_frames_total{stream=\"front\"} 300",
            "framecast_source_reopen_attempts_total{stream=\"front\"} 1",
            "framecast_frames_encoded_total{stream=\"front\",kind=\"jpeg\"} 290",
            "framecast_frames_encoded_total{stream=\"front\",kind=\"h264\"} 299",
            "framecast_frames_dropped_total{stream=\"front\",kind=\"jpeg\"} 10",
            "# TYPE framecast_encode_seconds histogram",
            "framecast_encode_seconds_bucket{stream=\"front\",kind=\"jpeg\",le=\"0.001\"} 0",
            "framecast_encode_seconds_bucket{stream=\"front\",kind=\"jpeg\",le=\"0.002\"} 290",
            "framecast_encode_seconds_bucket{stream=\"front\",kind=\"jpeg\",le=\"+Inf\"} 290",
            "framecast_encode_seconds_sum{stream=\"front\",kind=\"jpeg\"} 0.58",
            "framecast_encode_seconds_count{stream=\"front\",kind=\"h264\"} 299",
            "framecast_viewers{stream=\"front\",kind=\"mjpeg\"} 2",
            "framecast_viewers{stream=\"front\",kind=\"live.mp4\"} 0",
            "framecast_viewer_sent_bytes_total{stream=\"front\",kind=\"mjpeg\"} 4096",
            "framecast_viewers_refused_total{stream=\"front\"} 1",
            "framecast_hls_requests_total{stream=\"front\"} 40",
            "framecast_hls_blocking_waits_total{stream=\"front\"} 12",
            "framecast_hls_blocking_timeouts_total{stream=\"front\"} 0",
            "framecast_h264_encoder_info{stream=\"front\",requested=\"vaapi\",chosen=\"openh264\",reason=\"probe_failed\"} 1",
            "framecast_h264_encoder_restarts_total{stream=\"front\"} 0",
            "# TYPE framecast_webrtc_sessions gauge",
            "framecast_webrtc_sessions 1",
            "framecast_webrtc_sessions_opened_total 4",
            "framecast_webrtc_sessions_closed_total{reason=\"link_expired\"} 3",
            "framecast_webrtc_sessions_closed_total{reason=\"deleted\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        // Cumulative buckets: 11 of them, the last +Inf, never decreasing.
        let jpeg_buckets: Vec<u64> = text
            .lines()
            .filter(|l| {
                l.starts_with("framecast_encode_seconds_bucket{stream=\"front\",kind=\"jpeg\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert_eq!(jpeg_buckets.len(), DURATION_BUCKETS_US.len() + 1);
        assert!(jpeg_buckets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_stream_without_hls_has_no_hls_series() {
        let mut reading = fixed_reading();
        reading.streams[0].hls = None;
        let text = render(reading).expect("render");
        assert!(!text.contains("framecast_hls_requests_total{"), "{text}");
        assert!(!text.contains("kind=\"h264\""), "{text}");
        assert!(text.contains("# TYPE framecast_hls_requests_total counter"));
    }
}
