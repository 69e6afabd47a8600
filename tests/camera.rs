//! Cameras as a user meets them on a machine without the camera asked for: the server keeps
//! serving a placeholder that says why, reports the source as down, and `--list-sources`
//! lists what there is (or says there is nothing) and exits 0.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, get, run_for_exit_code, status_json};

/// `--list-sources` probes devices and exits; a run still going at this limit is a hang.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long the supervisor may take to try the camera once and report it down.
const DOWN_WITHIN: Duration = Duration::from_secs(10);

/// The lowest `camera:N` with no `/dev/videoN`: `camera:0` on a machine without cameras.
fn absent_camera() -> String {
    let n = (0..1000)
        .find(|n| !Path::new(&format!("/dev/video{n}")).exists())
        .expect("a free video node number");
    format!("camera:{n}")
}

/// Whether there is any `/dev/videoN`.
fn any_video_node() -> bool {
    std::fs::read_dir("/dev")
        .map(|entries| {
            entries.flatten().any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("video")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .unwrap_or(false)
}

/// Polls `/status` until the source is down; the `source` object then.
fn source_when_down(server: &Server) -> serde_json::Value {
    let deadline = Instant::now() + DOWN_WITHIN;
    loop {
        let status = status_json(server.addr);
        if status["source"]["state"] == "down" {
            return status["source"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "source not down within {DOWN_WITHIN:?}: {}",
            status["source"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A placeholder is a whole JPEG of the configured size.
fn assert_placeholder_snapshot(server: &Server) {
    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    assert_eq!(snapshot.header("content-type"), Some("image/jpeg"));
    let header = turbojpeg::read_header(&snapshot.body).expect("a JPEG");
    assert_eq!((header.width, header.height), (640, 360));
}

#[cfg(feature = "camera")]
#[test]
fn a_missing_camera_shows_a_placeholder_and_the_server_stays_up() {
    let camera = absent_camera();
    let server = Server::start(&["--source", &camera, "--no-hls"]);
    let source = source_when_down(&server);
    assert_eq!(source["headline"], "CAMERA NOT FOUND", "{source}");
    let error = source["last_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("no camera at /dev/video"), "{source}");

    let health = get(server.addr, "/healthz");
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(
        health.text().to_lowercase().contains("camera"),
        "{}",
        health.text()
    );
    assert_placeholder_snapshot(&server);

    // Still looking for it: the supervisor reopens with back-off (1 s, then 2 s).
    let deadline = Instant::now() + DOWN_WITHIN;
    while status_json(server.addr)["source"]["reopen_attempts"].as_u64() < Some(2) {
        assert!(
            Instant::now() < deadline,
            "no second attempt to open the camera"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_placeholder_snapshot(&server);
}

#[cfg(not(feature = "camera"))]
#[test]
fn without_camera_support_the_placeholder_names_the_feature() {
    let server = Server::start(&["--source", &absent_camera(), "--no-hls"]);
    let source = source_when_down(&server);
    assert_eq!(source["headline"], "SOURCE UNAVAILABLE", "{source}");
    let error = source["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("cargo feature `camera`"), "{source}");
    assert_eq!(get(server.addr, "/healthz").status, 503);
    assert_placeholder_snapshot(&server);
}

#[test]
fn list_sources_exits_zero_and_says_what_it_found() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_framecast"));
    command.env_remove("RUST_LOG").arg("--list-sources");
    let (code, out, err) = run_for_exit_code(&mut command, RUN_LIMIT);
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    if !cfg!(feature = "camera") {
        assert!(out.contains("without camera support"), "{out}");
    } else if any_video_node() {
        assert!(out.starts_with("camera:"), "{out}");
    } else {
        assert!(out.starts_with("no cameras found"), "{out}");
    }
}
