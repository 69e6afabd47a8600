//! `/metrics` read by a real Prometheus parser: Python's `prometheus_client` from Debian
//! (`python3-prometheus-client`), the library Prometheus' own Python exporters use.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{MjpegReader, Server, count, get, require_prerequisite, wait_for_status};

/// The parser Debian ships; tests use the system Python, whatever else is on PATH.
const PYTHON: &str = "/usr/bin/python3";
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Parses the exposition in the file named by its first argument and prints every family as
/// JSON: name, type, and each sample's name, labels and value.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
families = [
    {"name": f.name, "type": f.type,
     "samples": [[s.name, s.labels, s.value] for s in f.samples]}
    for f in text_string_to_metric_families(text)
]
print(json.dumps(families))
"#;

fn parser_missing() -> Option<String> {
    let found = Command::new(PYTHON)
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| "python3-prometheus-client (Debian's Python Prometheus parser)".into())
}

/// One scrape, parsed by the real parser.
struct Scrape(Vec<serde_json::Value>);

impl Scrape {
    fn take(server: &Server, file_name: &str) -> Self {
        let response = get(server.addr, "/metrics");
        assert_eq!(response.status, 200, "{}", response.text());
        let content_type = response.header("Content-Type").unwrap_or("");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file_name);
        std::fs::write(&path, &response.body).expect("write the scrape");
        let (ok, stdout, stderr) = common::run_with_timeout(
            Command::new(PYTHON).args(["-c", PARSE]).arg(&path),
            Duration::from_secs(30),
        );
        assert!(
            ok,
            "the parser refused the scrape: {stderr}\n{}",
            response.text()
        );
        Self(serde_json::from_str(&stdout).expect("the parser's JSON"))
    }

    fn family(&self, name: &str) -> &serde_json::Value {
        self.0
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    /// The value of the sample `sample` whose labels include `labels`.
    fn value(&self, family: &str, sample: &str, labels: &[(&str, &str)]) -> f64 {
        self.family(family)["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s[0] == sample
                    && labels
                        .iter()
                        .all(|(name, value)| s[1][*name].as_str() == Some(*value))
            })
            .and_then(|s| s[2].as_f64())
            .unwrap_or_else(|| panic!("no sample {sample} {labels:?} in {}", self.family(family)))
    }
}

#[test]
fn metrics_parse_with_prometheus_client_and_counters_grow_while_frames_flow() {
    if !require_prerequisite(
        parser_missing(),
        "metrics_parse_with_prometheus_client_and_counters_grow_while_frames_flow",
    ) {
        return;
    }
    let server = Server::start(&["--size", "320x240", "--fps", "10"]);
    let mut viewer = MjpegReader::open(server.addr, "/stream.mjpg", "metrics-test");
    viewer.next_part();
    common::wait_for_hls(server.addr, "a segment", SETTLE_LIMIT, POLL, |hls| {
        hls["segments"].as_u64() >= Some(1)
    });
    assert_eq!(get(server.addr, "/live.m3u8").status, 200);
    let first = Scrape::take(&server, "metrics-first.txt");

    let types = [
        ("framecast_connections_open", "gauge"),
        ("framecast_requests_refused", "counter"),
        ("framecast_auth_failures", "counter"),
        ("framecast_source_up", "gauge"),
        ("framecast_source_frames", "counter"),
        ("framecast_source_reopen_attempts", "counter"),
        ("framecast_frames_encoded", "counter"),
        ("framecast_frames_dropped", "counter"),
        ("framecast_encode_seconds", "histogram"),
        ("framecast_viewers", "gauge"),
        ("framecast_viewer_sent_bytes", "counter"),
        ("framecast_viewers_refused", "counter"),
        ("framecast_hls_requests", "counter"),
        ("framecast_hls_blocking_waits", "counter"),
    ];
    for (name, kind) in types {
        assert_eq!(first.family(name)["type"], kind, "{name}");
    }
    let main = [("stream", "main")];
    assert_eq!(
        first.value("framecast_source_up", "framecast_source_up", &main),
        1.0
    );
    assert_eq!(
        first.value(
            "framecast_viewers",
            "framecast_viewers",
            &[("stream", "main"), ("kind", "mjpeg")]
        ),
        1.0
    );
    assert!(
        first.value(
            "framecast_hls_requests",
            "framecast_hls_requests_total",
            &main
        ) >= 1.0
    );
    let jpeg = [("stream", "main"), ("kind", "jpeg")];
    let h264 = [("stream", "main"), ("kind", "h264")];
    let jpeg_count = first.value(
        "framecast_encode_seconds",
        "framecast_encode_seconds_count",
        &jpeg,
    );
    let jpeg_inf = first.value(
        "framecast_encode_seconds",
        "framecast_encode_seconds_bucket",
        &[("stream", "main"), ("kind", "jpeg"), ("le", "+Inf")],
    );
    assert!(
        jpeg_count >= 1.0 && jpeg_inf == jpeg_count,
        "{jpeg_count} {jpeg_inf}"
    );

    // Frames flow: wait (by the source's own count) for more, then scrape again.
    let frames_then = count(&common::status_json(server.addr)["source"], "frames");
    wait_for_status(server.addr, "more frames", SETTLE_LIMIT, POLL, |s| {
        count(&s["source"], "frames") >= frames_then + 5
    });
    viewer.next_part();
    let second = Scrape::take(&server, "metrics-second.txt");
    for (family, sample, labels) in [
        (
            "framecast_source_frames",
            "framecast_source_frames_total",
            &main[..],
        ),
        (
            "framecast_frames_encoded",
            "framecast_frames_encoded_total",
            &jpeg[..],
        ),
        (
            "framecast_frames_encoded",
            "framecast_frames_encoded_total",
            &h264[..],
        ),
        (
            "framecast_encode_seconds",
            "framecast_encode_seconds_count",
            &h264[..],
        ),
        (
            "framecast_viewer_sent_bytes",
            "framecast_viewer_sent_bytes_total",
            &[("stream", "main"), ("kind", "mjpeg")][..],
        ),
    ] {
        let (before, after) = (
            first.value(family, sample, labels),
            second.value(family, sample, labels),
        );
        assert!(after > before, "{sample} {labels:?}: {before} then {after}");
    }
    drop(viewer);
}
