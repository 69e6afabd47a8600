//! Black-box tests of an RTSP camera through the real binary: gst-rtsp-server
//! (tests/fixtures/rtsp_server.py) on loopback encodes a moving test pattern with x264, and
//! framecast, started with `--source rtsp://…`, serves it.
//!
//! They check that HLS and `/live.mp4` carry the camera's own slices byte for byte (the
//! server's x264 output is written to a file beside the RTP it sends), that ffmpeg and
//! Chromium's hls.js and MSE play them, that snapshots and MJPEG are decoded pictures of the
//! camera's size, that credentials from the URL work and a wrong password is reported without
//! being shown, that a camera that goes away gives placeholders behind a discontinuity and
//! then its video again with no reload, that B-frames and H.265 are refused by name in
//! `/status` and the log, and that `rtsps://` works with a pinned or any certificate and
//! refuses an unknown one, naming its fingerprint.
//!
//! The tests run one at a time: each runs a real-time x264 encoder beside the server, whose
//! passthrough timestamps are arrival times. Every loop is bounded in count and time.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::chromium::{self, run_script_with};
use common::h264_bytes::{annex_b_slices, is_run_of, mp4_slices};
use common::hls_fetch::{PlaylistFollower, discontinuities, media_path, media_playlist, sibling};
use common::rtsp_server::{self, RtspServer};
use common::{
    MjpegReader, Server, count, ffmpeg_play, get, require_clients, require_prerequisite,
    run_with_timeout, wait_for_status,
};
use framecast::media::playlist::{ParsedMediaPlaylist, check_update, parse_multivariant_playlist};
use framecast::source::rtsp::B_FRAMES_REFUSED;

/// The camera's picture and rate, and its key-frame interval (1 s).
const SIZE: (usize, usize) = (320, 240);
const FPS: u32 = 25;
const CAMERA_ARGS: [&str; 6] = ["--size", "320x240", "--fps", "25", "--key-int-max", "25"];
/// How long a test waits for a state it expects, with room for a busy 2-core machine and the
/// server's back-off before it reconnects.
const STATE_TIMEOUT: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The limit for one player run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the RTSP server and the `clients` are here (a test fails naming what is not).
fn prerequisites(test: &str, clients: &[&str]) -> bool {
    require_prerequisite(rtsp_server::missing(), test) && require_clients(clients, test)
}

/// A server reading the camera at `url`, HLS always on.
fn serve(url: &str) -> Server {
    Server::start(&[
        "--source",
        url,
        "--fps",
        &FPS.to_string(),
        "--hls",
        "always",
    ])
}

fn wait_for_hls(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    common::wait_for_hls(addr, what, STATE_TIMEOUT, POLL_INTERVAL, ready)
}

/// Waits until `/status` reports an error from the source; returns `/status` and the error.
fn source_error(addr: SocketAddr, what: &str) -> (serde_json::Value, String) {
    let status = wait_for_status(addr, what, STATE_TIMEOUT, POLL_INTERVAL, |s| {
        s["source"]["last_error"].is_string()
    });
    let error = status["source"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, error)
}

fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    let header = turbojpeg::read_header(jpeg).expect("a JPEG header");
    (header.width, header.height)
}

fn scratch_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("framecast-rtsp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// The first `fragments` media fragments of `/live.mp4` after its header (`ftyp`, `moov`).
fn live_mp4_fragments(addr: SocketAddr, fragments: usize) -> Vec<u8> {
    // The MJPEG reader reads any endless body: its raw reads see the MP4 boxes as sent.
    let mut reader = MjpegReader::open(addr, "/live.mp4", "framecast-test");
    assert_eq!(reader.status, 200);
    let mut media = Vec::new();
    let mut kinds = Vec::new();
    while kinds.iter().filter(|k| *k == "mdat").count() < fragments {
        assert!(kinds.len() < 4 * fragments + 2, "boxes {kinds:?}");
        let head = reader.read_raw(8);
        let size = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        assert!((8..10_000_000).contains(&size), "box size {size}");
        let body = reader.read_raw(size - 8);
        kinds.push(String::from_utf8_lossy(&head[4..8]).into_owned());
        if !matches!(&head[4..8], b"ftyp" | b"moov") {
            media.extend_from_slice(&head);
            media.extend_from_slice(&body);
        }
    }
    assert_eq!(kinds[..2], ["ftyp", "moov"], "{kinds:?}");
    media
}

/// The camera's H.264 passes through to HLS and `/live.mp4` as it came, ffmpeg plays both,
/// and JPEG viewers get decoded pictures of its size; the credentials in the URL are used.
#[test]
fn an_rtsp_camera_is_served_byte_for_byte_and_decoded_for_jpeg_viewers() {
    let _one = one_at_a_time();
    let test = "an_rtsp_camera_is_served_byte_for_byte_and_decoded_for_jpeg_viewers";
    if !prerequisites(test, &["ffmpeg"]) {
        return;
    }
    let dump = scratch_file("sent.h264");
    let mut args = CAMERA_ARGS.to_vec();
    args.extend(["--user", "viewer", "--password", "right"]);
    let camera = RtspServer::start_dumping(0, &args, &dump);
    let server = serve(&camera.url("viewer:right@", ""));
    let addr = server.addr;

    let hls = wait_for_hls(addr, "3 segments", |h| count(h, "segments") >= 3);
    assert_eq!(hls["passthrough"], true, "{hls}");
    assert_eq!(count(&hls, "frames_encoded"), 0, "{hls}");
    assert_eq!(hls["encoder_running"], false, "{hls}");
    let interval_s = hls["key_frame_interval_s"].as_f64().expect("learned");
    assert!((interval_s - 1.0).abs() < 0.1, "{hls}");
    // `/status` gives the camera's size, not `--size`, and no encoder bitrate.
    let status = common::status_json(addr);
    assert_eq!(count(&status["source"], "width"), SIZE.0 as u64, "{status}");
    assert_eq!(
        count(&status["source"], "height"),
        SIZE.1 as u64,
        "{status}"
    );
    assert!(status["hls"]["bitrate_bps"].is_null(), "{status}");

    // What the multivariant playlist says comes from the camera's SPS.
    let multivariant = parse_multivariant_playlist(&get(addr, "/live.m3u8").text()).expect("ok");
    let variant = &multivariant.variants[0];
    assert!(
        variant.codecs.starts_with("avc1.42"),
        "x264's Constrained Baseline: {variant:?}"
    );
    assert_eq!(variant.resolution, (SIZE.0 as u32, SIZE.1 as u32));

    // Playlists keep the rules across reloads.
    let path = media_path(addr);
    let mut previous: Option<ParsedMediaPlaylist> = None;
    for _ in 0..5 {
        let (parsed, text) = media_playlist(addr, &path);
        if let Some(previous) = &previous {
            check_update(&previous.playlist, &parsed.playlist)
                .unwrap_or_else(|e| panic!("{e}:\n{text}"));
        }
        previous = Some(parsed);
        std::thread::sleep(POLL_INTERVAL);
    }

    // A segment and the start of /live.mp4 are runs of the slices the camera sent.
    let (parsed, _) = media_playlist(addr, &path);
    let segment = parsed.playlist.segments.last().expect("a segment");
    let data = get(addr, &sibling(&path, &segment.uri));
    assert_eq!(data.status, 200);
    let from_segment = mp4_slices(&data.body);
    let from_live_mp4 = mp4_slices(&live_mp4_fragments(addr, 4));
    let sent = annex_b_slices(&std::fs::read(&dump).expect("the camera's H.264"));
    assert!(
        from_segment.len() >= (FPS / 2) as usize,
        "{} slices",
        from_segment.len()
    );
    assert!(
        is_run_of(&from_segment, &sent),
        "segment {} is not a run of the {} slices sent",
        segment.msn,
        sent.len()
    );
    assert!(
        !from_live_mp4.is_empty() && is_run_of(&from_live_mp4, &sent),
        "/live.mp4's {} slices are not a run of the {} sent",
        from_live_mp4.len(),
        sent.len()
    );

    // ffmpeg plays both.
    for (path, seconds) in [("/live.m3u8", "3"), ("/live.mp4", "2")] {
        let (ok, frames, stderr) = ffmpeg_play(&server.url(path), seconds, CLIENT_TIMEOUT);
        assert!(ok && stderr.trim().is_empty(), "ffmpeg {path}: {stderr}");
        assert!(
            frames >= u64::from(FPS),
            "ffmpeg decoded {frames} frames of {path}"
        );
    }

    // JPEG viewers get the camera's pictures, decoded, at its size.
    let snapshot = get(addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    assert_eq!(jpeg_size(&snapshot.body), SIZE);
    let mut mjpeg = MjpegReader::open(addr, "/stream.mjpg", "framecast-test");
    assert_eq!(mjpeg.status, 200);
    for _ in 0..3 {
        assert_eq!(jpeg_size(&mjpeg.next_part().jpeg), SIZE);
    }
    drop(mjpeg);
    let status = common::status_json(addr);
    assert!(
        count(&status["jpeg"]["decode"], "frames_decoded") > 0,
        "{status}"
    );
    let text = status.to_string();
    assert!(!text.contains("right@"), "the password shows: {text}");
    drop(camera);
    let _ = std::fs::remove_file(&dump);
}

/// The camera goes away and comes back on the same address: placeholders, encoded behind a
/// discontinuity, while it is gone; then its own H.264 again behind another, with every
/// playlist on the way valid and following the one before, and JPEG viewers served
/// throughout.
#[test]
fn an_rtsp_camera_that_goes_away_gives_placeholders_then_its_video_again() {
    let _one = one_at_a_time();
    let test = "an_rtsp_camera_that_goes_away_gives_placeholders_then_its_video_again";
    if !prerequisites(test, &[]) {
        return;
    }
    let camera = RtspServer::start(0, &CAMERA_ARGS);
    let port = camera.port;
    let server = serve(&camera.url("", ""));
    let addr = server.addr;
    let mut playlists = PlaylistFollower::new(addr, STATE_TIMEOUT, POLL_INTERVAL);
    let live = playlists.until("passing through", |h, _| {
        count(h, "segments") >= 2 && h["timing_settled"] == true
    });
    assert_eq!(count(&live, "frames_encoded"), 0, "{live}");

    camera.stop();
    let placeholders = playlists.until("showing placeholders", |h, p| {
        h["encoder_running"] == true && count(h, "frames_encoded") > 0 && discontinuities(p) >= 1
    });
    let passed_before = count(&placeholders, "frames_passed_through");
    let status = common::status_json(addr);
    assert_ne!(status["source"]["state"], "live", "{status}");
    assert!(status["source"]["last_error"].is_string(), "{status}");
    let snapshot = get(addr, "/snapshot.jpg");
    assert_eq!(
        snapshot.status, 200,
        "a placeholder while the camera is gone"
    );

    let camera = RtspServer::start(port, &CAMERA_ARGS);
    let back = playlists.until("passing through again", |h, p| {
        h["encoder_running"] == false
            && count(h, "frames_passed_through") > passed_before + 2 * u64::from(FPS)
            && discontinuities(p) >= 2
    });
    assert_eq!(back["passthrough"], true, "{back}");
    let status = common::status_json(addr);
    assert_eq!(status["source"]["state"], "live", "{status}");
    let snapshot = get(addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), SIZE);
    drop(camera);
}

/// Chromium plays the camera's passthrough H.264 through the `/hls` page (hls.js) and the
/// `/live` page (MSE), at the camera's size, and the picture moves.
#[test]
fn an_rtsp_camera_plays_in_chromium_through_hls_js_and_mse() {
    let _one = one_at_a_time();
    let test = "an_rtsp_camera_plays_in_chromium_through_hls_js_and_mse";
    let packages = ["playwright-core/package.json", "hls.js/dist/hls.min.js"];
    if !prerequisites(test, &[])
        || !require_prerequisite(chromium::missing_prerequisite(&packages), test)
    {
        return;
    }
    let camera = RtspServer::start(0, &CAMERA_ARGS);
    let server = serve(&camera.url("", ""));
    wait_for_hls(server.addr, "2 segments", |h| count(h, "segments") >= 2);
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    let result = run_script_with("camera_pages.mjs", &server.url(""), &[&size]);
    assert_eq!(result["hls"]["size"], size.as_str(), "{result}");
    assert_eq!(result["live"]["size"], size.as_str(), "{result}");
    let hls = common::status_json(server.addr)["hls"].clone();
    assert_eq!(
        count(&hls, "frames_encoded"),
        0,
        "still passed through: {hls}"
    );
}

/// What cannot be served is refused by name, in `/status` and in the log, with placeholders
/// meanwhile: a camera that sends B-frames, and one that sends H.265.
#[test]
fn b_frames_and_h265_are_refused_by_name_in_status_and_log() {
    let _one = one_at_a_time();
    let test = "b_frames_and_h265_are_refused_by_name_in_status_and_log";
    if !prerequisites(test, &[])
        || !require_prerequisite(
            (!rtsp_server::has_x265())
                .then(|| "x265enc (Debian: gstreamer1.0-plugins-bad)".to_owned()),
            test,
        )
    {
        return;
    }
    let b_frames_refused = B_FRAMES_REFUSED
        .split(';')
        .next()
        .unwrap_or(B_FRAMES_REFUSED);
    for (camera_args, refusal) in [
        (&["--bframes", "2"][..], b_frames_refused),
        (&["--codec", "h265"][..], "H.265 is not supported"),
    ] {
        let camera = RtspServer::start(0, camera_args);
        let server = serve(&camera.url("", ""));
        let status = wait_for_status(
            server.addr,
            &format!("refusing: {refusal}"),
            STATE_TIMEOUT,
            POLL_INTERVAL,
            |s| {
                s["source"]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(refusal))
            },
        );
        assert_ne!(status["source"]["state"], "live", "{status}");
        assert!(
            server.log_lines().iter().any(|line| line.contains(refusal)),
            "the log does not say {refusal:?}"
        );
        let snapshot = get(server.addr, "/snapshot.jpg");
        assert_eq!(snapshot.status, 200, "a placeholder instead");
        assert_eq!(
            count(&status["hls"], "frames_passed_through"),
            0,
            "{status}"
        );
    }
}

/// A wrong password: `/status` and the log say the camera refused it, and show neither it
/// nor the one in the address.
#[test]
fn the_server_reports_a_refused_password_without_showing_it() {
    let _one = one_at_a_time();
    let test = "the_server_reports_a_refused_password_without_showing_it";
    if !prerequisites(test, &[]) {
        return;
    }
    let camera = RtspServer::start(0, &["--user", "viewer", "--password", "right"]);
    let url = camera.url("viewer:hunter2@", "");
    let server = Server::start(&["--source", &url]);
    let (status, last_error) = source_error(server.addr, "an error from the camera");
    assert!(
        last_error.contains("authentication failed (401"),
        "{status}"
    );
    let text = status.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("viewer:***@"), "{text}");
    for line in server.log_lines() {
        assert!(!line.contains("hunter2"), "{line}");
    }
}

/// A self-signed certificate and key for 127.0.0.1 made by openssl in `dir`; their paths
/// and the certificate's SHA-256 as openssl prints it (`AB:CD:…`).
fn self_signed_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf, String) {
    let cert = dir.join("camera-cert.pem");
    let key = dir.join("camera-key.pem");
    let (ok, _, stderr) = run_with_timeout(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "openssl req: {stderr}");
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&cert),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "openssl x509: {stderr}");
    let fingerprint = stdout
        .trim()
        .split_once('=')
        .map(|(_, hex)| hex.to_owned())
        .expect("sha256 Fingerprint=…");
    (cert, key, fingerprint)
}

/// `rtsps://`: with the camera's self-signed certificate pinned (`#sha256=`) or with any
/// taken (`#insecure`) its H.264 passes through; without either, the certificate is
/// refused in `/status` with the fingerprint that would pin it.
#[test]
fn an_rtsps_camera_is_served_with_its_certificate_pinned_and_refused_unpinned() {
    let _one = one_at_a_time();
    let test = "an_rtsps_camera_is_served_with_its_certificate_pinned_and_refused_unpinned";
    if !prerequisites(test, &["openssl"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("framecast-rtsps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (cert, key, fingerprint) = self_signed_certificate(&dir);
    let mut args = CAMERA_ARGS.to_vec();
    let (cert_arg, key_arg) = (cert.to_str().expect("UTF-8"), key.to_str().expect("UTF-8"));
    args.extend(["--tls-cert", cert_arg, "--tls-key", key_arg]);
    let camera = RtspServer::start(0, &args);
    let url = |fragment: &str| format!("rtsps://127.0.0.1:{}/test{fragment}", camera.port);

    let pinned = serve(&url(&format!("#sha256={fingerprint}")));
    let hls = wait_for_hls(pinned.addr, "2 segments", |h| count(h, "segments") >= 2);
    assert_eq!(hls["passthrough"], true, "{hls}");
    assert_eq!(count(&hls, "frames_encoded"), 0, "{hls}");
    let snapshot = get(pinned.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), SIZE);
    drop(pinned);

    let any = Server::start(&["--source", &url("#insecure"), "--hls", "off"]);
    wait_for_status(any.addr, "live", STATE_TIMEOUT, POLL_INTERVAL, |s| {
        s["source"]["state"] == "live" && count(&s["source"], "frames") > 0
    });
    drop(any);

    let unpinned = Server::start(&["--source", &url(""), "--hls", "off"]);
    let (status, last_error) = source_error(unpinned.addr, "refusing the certificate");
    assert!(
        last_error.contains("not trusted (self-signed)")
            && last_error.contains(&format!("#sha256={}", fingerprint.replace(':', ""))),
        "{status}"
    );
    assert_ne!(status["source"]["state"], "live", "{status}");
    drop(unpinned);

    let wrong_pin = Server::start(&[
        "--source",
        &url(&format!("#sha256={}", "0".repeat(64))),
        "--hls",
        "off",
    ]);
    let (status, last_error) = source_error(wrong_pin.addr, "refusing the certificate");
    assert!(
        last_error.contains("a certificate other than the one pinned")
            && last_error.contains(&fingerprint),
        "{status}"
    );
    drop(camera);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stream's `source_user` and `source_password_file` in the config file reach the camera,
/// and the password shows nowhere.
#[test]
fn credentials_from_the_stream_config_reach_the_camera() {
    let _one = one_at_a_time();
    let test = "credentials_from_the_stream_config_reach_the_camera";
    if !prerequisites(test, &[]) {
        return;
    }
    let camera = RtspServer::start(0, &["--user", "viewer", "--password", "right-horse"]);
    let dir = std::env::temp_dir().join(format!("framecast-rtsp-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(dir.join("door.pass"), "right-horse\n").expect("password file");
    let config = dir.join("cams.toml");
    std::fs::write(
        &config,
        format!(
            "[[streams]]\nname = \"door\"\nsource = \"{}\"\nhls = \"off\"\n\
             source_user = \"viewer\"\nsource_password_file = \"door.pass\"\n",
            camera.url("", "")
        ),
    )
    .expect("config file");
    let server = Server::start(&["--config", config.to_str().expect("UTF-8")]);
    let status = wait_for_status(server.addr, "live", STATE_TIMEOUT, POLL_INTERVAL, |s| {
        s["source"]["state"] == "live" && count(&s["source"], "frames") > 0
    });
    assert!(status["source"]["last_error"].is_null(), "{status}");
    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    let page = get(server.addr, "/").text();
    for text in [status.to_string(), page] {
        assert!(!text.contains("right-horse"), "{text}");
    }
    for line in server.log_lines() {
        assert!(!line.contains("right-horse"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A camera that changes its picture size mid-stream (a new SPS): segments after the change
/// need a new init section, behind a discontinuity; the playlist stays valid throughout,
/// no encoder runs, and JPEG viewers get the new size.
#[test]
fn a_new_picture_size_from_the_camera_gives_a_new_init_section_behind_a_discontinuity() {
    let _one = one_at_a_time();
    let test = "a_new_picture_size_from_the_camera_gives_a_new_init_section_behind_a_discontinuity";
    if !prerequisites(test, &["ffprobe"]) {
        return;
    }
    let mut args = CAMERA_ARGS.to_vec();
    args.extend(["--resize-after", "4", "--resize-to", "480x360"]);
    let camera = RtspServer::start(0, &args);
    let server = serve(&camera.url("", ""));
    let addr = server.addr;
    let mut playlists = PlaylistFollower::new(addr, STATE_TIMEOUT, POLL_INTERVAL);
    let mut newest_map = None;
    let hls = playlists.until("serving the new size", |h, p| {
        let changed = p
            .playlist
            .segments
            .iter()
            .rev()
            .find_map(|s| s.map_uri.clone());
        let done = changed.is_some() && discontinuities(p) >= 1 && count(h, "segments") >= 2;
        if done {
            newest_map = changed;
        }
        done
    });
    assert_eq!(count(&hls, "frames_encoded"), 0, "{hls}");
    let path = media_path(addr);
    let init = newest_map.expect("a segment names its init section");
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
            .arg(server.url(&sibling(&path, &init))),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "ffprobe: {stderr}");
    assert_eq!(stdout.trim(), "480,360", "the new init section");
    let snapshot = get(addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), (480, 360));
    drop(camera);
}
