//! Black-box tests of JPEG viewers of an H.264 source: the real binary reads H.264 from
//! ffmpeg's libx264 on standard input (`--source pipe:h264 --hls off`), and `/snapshot.jpg`
//! and `/stream.mjpg` serve pictures decoded from it, at the size its SPS gives; `/status`
//! counts what the decode stage did.
//!
//! Every test starts its own server on 127.0.0.1:0; every loop is bounded in count and time.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::{MjpegReader, Server, get, require_clients, status_json};

/// The picture ffmpeg sends: not the server's `--size` (640x360 in tests), so the size the
/// viewers get can only come from the stream.
const WIDTH: usize = 480;
const HEIGHT: usize = 272;
/// How long a server may take to reach a state, on a busy 2-core machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// ffmpeg writing H.264 (libx264, 4:2:0, no B-frames, an IDR every 2 s at 25 fps) in real
/// time into the server's standard input, for at most a minute; killed when dropped.
struct Ffmpeg {
    child: Child,
}

impl Ffmpeg {
    fn feed(mut stdin: ChildStdin) -> Self {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={WIDTH}x{HEIGHT}:rate=25"))
            // testsrc is RGB: without yuv420p libx264 writes High 4:4:4, which no camera sends.
            .args(["-t", "60", "-pix_fmt", "yuv420p", "-c:v", "libx264"])
            .args([
                "-tune",
                "zerolatency",
                "-bf",
                "0",
                "-g",
                "50",
                "-f",
                "h264",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ffmpeg");
        let mut stdout = child.stdout.take().expect("ffmpeg stdout");
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stdout, &mut stdin);
        });
        Self { child }
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A count from `/status`'s `jpeg` object (`decode` for the decode stage's).
fn jpeg_count(addr: SocketAddr, path: &[&str]) -> u64 {
    let status = status_json(addr);
    let value = path.iter().fold(&status["jpeg"], |value, key| &value[*key]);
    value
        .as_u64()
        .unwrap_or_else(|| panic!("jpeg.{} is not a count: {status}", path.join(".")))
}

/// Re-reads `/status` until `ready` holds for it.
fn wait_for(addr: SocketAddr, what: &str, ready: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let status = status_json(addr);
        if ready(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {STATE_TIMEOUT:?}: {status}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    let header = turbojpeg::read_header(jpeg).expect("a JPEG header");
    (header.width, header.height)
}

fn h264_server() -> (Server, Ffmpeg) {
    let (server, stdin) = Server::start_with_stdin(&["--source", "pipe:h264", "--hls", "off"]);
    let ffmpeg = Ffmpeg::feed(stdin);
    // Past the first IDR, so that a snapshot lands mid-GOP.
    wait_for(server.addr, "30 frames in", |s| {
        s["source"]["frames"].as_u64().unwrap_or(0) >= 30
    });
    (server, ffmpeg)
}

#[test]
fn snapshots_and_mjpeg_of_an_h264_pipe_are_decoded_pictures_of_its_size() {
    let test = "snapshots_and_mjpeg_of_an_h264_pipe_are_decoded_pictures_of_its_size";
    if !require_clients(&["ffmpeg"], test) {
        return;
    }
    let (server, _ffmpeg) = h264_server();
    let addr = server.addr;
    assert_eq!(
        jpeg_count(addr, &["decode", "frames_decoded"]),
        0,
        "nobody wants JPEGs yet: nothing is decoded"
    );
    assert!(jpeg_count(addr, &["decode", "gop_frames"]) > 0);

    // A cold snapshot: decoded from the kept GOP's IDR, not from the next one.
    let response = get(addr, "/snapshot.jpg");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("image/jpeg"));
    assert_eq!(jpeg_size(&response.body), (WIDTH, HEIGHT));
    assert!(jpeg_count(addr, &["decode", "resyncs"]) >= 1);
    assert!(jpeg_count(addr, &["decode", "frames_decoded"]) >= 1);

    let mut viewer = MjpegReader::open(addr, "/stream.mjpg", "framecast-h264-test/1");
    assert_eq!(viewer.status, 200);
    let mut pictures = HashSet::new();
    let mut last_seq = 0;
    for _ in 0..12 {
        let part = viewer.next_part();
        assert_eq!(jpeg_size(&part.jpeg), (WIDTH, HEIGHT));
        let seq: u64 = part
            .header("X-Frame-Sequence")
            .and_then(|s| s.parse().ok())
            .expect("X-Frame-Sequence");
        assert!(seq >= last_seq, "sequence {seq} after {last_seq}");
        last_seq = seq;
        pictures.insert(part.jpeg);
    }
    assert!(
        pictures.len() >= 5,
        "only {} different pictures",
        pictures.len()
    );
    assert_eq!(jpeg_count(addr, &["decode", "errors"]), 0);
    drop(viewer);

    // Nobody watches any more (the snapshot's hold ends too): decoding stops.
    wait_for(addr, "JPEG demand off", |s| s["jpeg"]["active"] == false);
    // Read twice after a settling read, so that a frame in the decoder as demand ended
    // cannot count.
    std::thread::sleep(Duration::from_millis(200));
    let decoded = jpeg_count(addr, &["decode", "frames_decoded"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(jpeg_count(addr, &["decode", "frames_decoded"]), decoded);
    assert!(status_json(addr)["source"]["frames"].as_u64().unwrap_or(0) > 30);

    // And a snapshot starts it again, from the GOP kept meanwhile.
    let resyncs = jpeg_count(addr, &["decode", "resyncs"]);
    let response = get(addr, "/snapshot.jpg");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(jpeg_size(&response.body), (WIDTH, HEIGHT));
    assert!(jpeg_count(addr, &["decode", "resyncs"]) > resyncs);
}

#[test]
fn mjpeg_fps_caps_the_jpegs_of_an_h264_pipe_while_every_frame_is_decoded() {
    let test = "mjpeg_fps_caps_the_jpegs_of_an_h264_pipe_while_every_frame_is_decoded";
    if !require_clients(&["ffmpeg"], test) {
        return;
    }
    let (server, stdin) =
        Server::start_with_stdin(&["--source", "pipe:h264", "--hls", "off", "--mjpeg-fps", "5"]);
    let _ffmpeg = Ffmpeg::feed(stdin);
    let addr = server.addr;
    let mut viewer = MjpegReader::open(addr, "/stream.mjpg", "framecast-h264-test/1");
    assert_eq!(viewer.status, 200);
    for _ in 0..8 {
        assert_eq!(jpeg_size(&viewer.next_part().jpeg), (WIDTH, HEIGHT));
    }
    let status = status_json(addr);
    let jpeg = &status["jpeg"];
    let decoded = jpeg["decode"]["frames_decoded"].as_u64().unwrap_or(0);
    let encoded = jpeg["frames_encoded"].as_u64().unwrap_or(u64::MAX);
    let over_cap = jpeg["frames_over_cap"].as_u64().unwrap_or(0);
    // 25 fps capped at 5: four of every five decoded pictures are held back.
    assert!(over_cap > 0, "{status}");
    assert!(decoded >= 3 * encoded, "{status}");
    assert_eq!(jpeg["decode"]["errors"], 0, "{status}");
}
