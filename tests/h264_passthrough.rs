//! Black-box tests of H.264 passthrough: the real binary reads the H.264 that a real
//! `ffmpeg` (libx264) writes into `pipe:h264` or a FIFO, and serves it through HLS, LL-HLS and
//! `/live.mp4` without encoding it again.
//!
//! The tests check that the playlists keep the rules for key-frame intervals of 0.48 s, 2 s
//! and 10 s, that the served samples are byte for byte the slices the pipe got, that ffmpeg
//! plays both, that `/status` says passthrough with no encoder at work, and that a writer that
//! stops and a new one give placeholder media behind a discontinuity and then the camera
//! again, the playlist valid throughout.
//!
//! Every test starts its own server on 127.0.0.1:0; every loop is bounded in count and time.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, get, require_clients, run_with_timeout, status_json};
use framecast::media::playlist::{
    ParsedMediaPlaylist, check_update, check_written, parse_media_playlist,
    parse_multivariant_playlist,
};

/// The camera's rate in these tests.
const FPS: u32 = 25;
/// How long a test waits for a state it expects, with room for a busy 2-core machine and a
/// 10 s GOP to be learned and cut.
const STATE_TIMEOUT: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The limit for one player run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// ffmpeg's libx264 writing Annex B at the real rate, 4:2:0 (testsrc is RGB, which libx264
/// would otherwise encode as High 4:4:4, which players do not take): `gop` frames from one IDR to the next
/// (no scene-cut IDRs in between), no B-frames, `frames` frames or without end.
fn x264_args(gop: u32, frames: Option<u32>, output: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=640x360:rate={FPS}"),
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-tune",
        "zerolatency",
        "-bf",
        "0",
        "-g",
        &gop.to_string(),
        "-sc_threshold",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(frames) = frames {
        args.extend(["-frames:v".into(), frames.to_string()]);
    }
    args.extend(["-f".into(), "h264".into(), "-y".into(), output.into()]);
    args
}

/// An ffmpeg writing into the server's standard input; what it wrote is kept.
struct Writer {
    child: Child,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Writer {
    fn start(gop: u32, mut sink: impl Write + Send + 'static) -> Self {
        let mut child = Command::new("ffmpeg")
            .args(x264_args(gop, None, "-"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ffmpeg");
        let mut stdout = child.stdout.take().expect("stdout");
        let written = Arc::new(Mutex::new(Vec::new()));
        let kept = written.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0; 64 * 1024];
            while let Ok(read) = stdout.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                kept.lock().unwrap().extend_from_slice(&chunk[..read]);
                if sink.write_all(&chunk[..read]).is_err() {
                    break;
                }
            }
        });
        Self { child, written }
    }

    fn written(&self) -> Vec<u8> {
        self.written.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/status` `hls` object.
fn hls_status(addr: SocketAddr) -> serde_json::Value {
    status_json(addr)["hls"].clone()
}

fn count(value: &serde_json::Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

/// Re-reads `/status` until `ready` holds for its `hls` object; returns it.
fn wait_for_hls(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let hls = hls_status(addr);
        if ready(&hls) {
            return hls;
        }
        assert!(
            Instant::now() < deadline,
            "HLS not {what} within {STATE_TIMEOUT:?}: {hls}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The media playlist's path, from the multivariant playlist.
fn media_path(addr: SocketAddr) -> String {
    let response = get(addr, "/live.m3u8");
    assert_eq!(response.status, 200, "{}", response.text());
    let multivariant = parse_multivariant_playlist(&response.text()).expect("multivariant");
    format!("/{}", multivariant.variants[0].uri)
}

/// The media playlist, parsed and checked against the crate's rules.
fn media_playlist(addr: SocketAddr, path: &str) -> (ParsedMediaPlaylist, String) {
    let response = get(addr, path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    let text = response.text();
    let parsed = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    check_written(&parsed).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    (parsed, text)
}

/// `path` relative to the media playlist's directory.
fn sibling(media_path: &str, name: &str) -> String {
    let dir = media_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    format!("{dir}/{name}")
}

/// The slice NAL units (types 1 and 5) of an Annex B stream, in order.
fn annex_b_slices(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut slices = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(stream.len(), |&next| next - 3);
        let mut nal = &stream[start..end];
        // The zero byte of a 4-byte start code belongs to the next one.
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if matches!(nal.first().map(|b| b & 0x1f), Some(1 | 5)) {
            slices.push(nal.to_vec());
        }
    }
    slices
}

/// The slice NAL units in the `mdat`s of a CMAF segment (4-byte lengths), in order.
fn segment_slices(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut slices = Vec::new();
    let mut at = 0;
    while at + 8 <= segment.len() {
        let size = u32::from_be_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && at + size <= segment.len(), "box at {at}");
        if &segment[at + 4..at + 8] == b"mdat" {
            let mdat = &segment[at + 8..at + size];
            let mut i = 0;
            while i + 4 <= mdat.len() {
                let len = u32::from_be_bytes(mdat[i..i + 4].try_into().unwrap()) as usize;
                let nal = &mdat[i + 4..i + 4 + len];
                if matches!(nal[0] & 0x1f, 1 | 5) {
                    slices.push(nal.to_vec());
                }
                i += 4 + len;
            }
        }
        at += size;
    }
    slices
}

/// Whether `served` is a run of consecutive slices of `fed`: the camera's own bytes.
fn is_run_of(served: &[Vec<u8>], fed: &[Vec<u8>]) -> bool {
    let Some(first) = served.first() else {
        return false;
    };
    fed.iter()
        .enumerate()
        .filter(|(_, slice)| *slice == first)
        .any(|(at, _)| fed.get(at..at + served.len()) == Some(served))
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framecast-h264-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A server reading `pipe:h264` from an ffmpeg with key frames every `gop` frames.
fn start_passthrough(gop: u32) -> (Server, Writer) {
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:h264",
        "--fps",
        &FPS.to_string(),
        "--hls",
        "always",
    ]);
    let writer = Writer::start(gop, stdin);
    (server, writer)
}

/// Serves a `gop`-frame key-frame interval and checks what HLS makes of it: the timing
/// learned, the playlist's rules, the segments' lengths, and the camera's own bytes.
fn check_passthrough(gop: u32, segments: usize, target_duration_s: u64) -> (Server, Writer) {
    let (server, writer) = start_passthrough(gop);
    let addr = server.addr;
    let hls = wait_for_hls(addr, &format!("{segments} segments"), |h| {
        count(h, "segments") >= segments as u64
    });
    let interval_s = f64::from(gop) / f64::from(FPS);
    assert_eq!(hls["passthrough"], true, "{hls}");
    assert_eq!(hls["timing_settled"], true, "{hls}");
    let learned = hls["key_frame_interval_s"].as_f64().expect("learned");
    assert!((learned - interval_s).abs() < 0.1, "{learned} s: {hls}");
    assert_eq!(count(&hls, "target_duration_s"), target_duration_s, "{hls}");
    assert_eq!(count(&hls, "frames_encoded"), 0, "nothing encoded: {hls}");
    assert_eq!(hls["encoder_running"], false, "{hls}");
    assert!(count(&hls, "frames_passed_through") > 0, "{hls}");
    assert_eq!(count(&hls, "long_gop_cuts"), 0, "{hls}");

    let response = get(addr, "/live.m3u8");
    let multivariant = parse_multivariant_playlist(&response.text()).expect("multivariant");
    let variant = &multivariant.variants[0];
    assert!(
        variant.codecs.starts_with("avc1.64"),
        "x264's High profile: {variant:?}"
    );
    assert_eq!(variant.resolution, (640, 360));
    assert_eq!(variant.frame_rate_millihertz, u64::from(FPS) * 1000);

    let path = media_path(addr);
    let (parsed, text) = media_playlist(addr, &path);
    let playlist = &parsed.playlist;
    assert_eq!(playlist.target_duration_s, target_duration_s, "{text}");
    assert!(playlist.independent_segments);
    // A segment is a whole number of key-frame intervals: all the same length here.
    let segment_90k = playlist.segments[0].duration_90k;
    let gops = (segment_90k as f64 / 90_000.0 / interval_s).round();
    assert!(gops >= 1.0, "{text}");
    for segment in &playlist.segments {
        assert!(
            segment.duration_90k.abs_diff(segment_90k) <= 3600,
            "segment {} lasts {} ticks, not {segment_90k}:\n{text}",
            segment.msn,
            segment.duration_90k
        );
        assert!(
            segment.parts.first().is_none_or(|p| p.independent),
            "{text}"
        );
    }
    // INDEPENDENT=YES only where a part starts with an IDR: once a GOP at most.
    let with_parts: Vec<_> = playlist
        .segments
        .iter()
        .filter(|s| !s.parts.is_empty())
        .collect();
    let parts: usize = with_parts.iter().map(|s| s.parts.len()).sum();
    let independent = with_parts
        .iter()
        .flat_map(|s| &s.parts)
        .filter(|p| p.independent)
        .count();
    assert!(
        !with_parts.is_empty()
            && independent <= with_parts.len() * gops as usize
            && independent < parts,
        "{text}"
    );

    // The served samples are the slices the pipe got, byte for byte.
    let segment = playlist.segments.last().expect("a segment");
    let data = get(addr, &sibling(&path, &segment.uri));
    assert_eq!(data.status, 200);
    let served = segment_slices(&data.body);
    assert!(
        served.len() >= (segment_90k * u64::from(FPS) / 90_000) as usize,
        "{} slices",
        served.len()
    );
    let fed = annex_b_slices(&writer.written());
    assert!(
        is_run_of(&served, &fed),
        "segment {} is not a run of the {} slices fed",
        segment.msn,
        fed.len()
    );
    (server, writer)
}

/// The tests of this file run one at a time: each runs a real-time libx264 encoder beside the
/// server, and passthrough timestamps are the frames' arrival times, which several encoders
/// and servers side by side on a small machine would jitter beyond what a camera does.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_half_second_key_frame_interval_gives_one_second_segments() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !require_clients(
        &["ffmpeg"],
        "a_half_second_key_frame_interval_gives_one_second_segments",
    ) {
        return;
    }
    // 12 frames: 0.48 s, two GOPs a segment.
    check_passthrough(12, 4, 1);
}

#[test]
fn a_two_second_key_frame_interval_plays_in_ffmpeg_as_hls_and_live_mp4() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = "a_two_second_key_frame_interval_plays_in_ffmpeg_as_hls_and_live_mp4";
    if !require_clients(&["ffmpeg", "ffprobe"], test) {
        return;
    }
    let (server, _writer) = check_passthrough(50, 3, 2);
    for (path, seconds) in [("/live.m3u8", "4"), ("/live.mp4", "3")] {
        let (ok, stdout, stderr) = run_with_timeout(
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
                .args(["-i", &server.url(path)])
                .args(["-t", seconds, "-f", "null", "-"]),
            CLIENT_TIMEOUT,
        );
        assert!(ok, "ffmpeg {path}: {stderr}");
        assert!(stderr.trim().is_empty(), "ffmpeg {path} errors:\n{stderr}");
        let frames: u64 = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("frame=")?.trim().parse().ok())
            .next_back()
            .unwrap_or(0);
        assert!(frames >= 50, "ffmpeg decoded {frames} frames of {path}");
    }
    // ffprobe reads the camera's picture size and profile from the served init section.
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=codec_name,profile,width,height"])
            .args(["-of", "csv=p=0"])
            .arg(server.url("/live.m3u8")),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "ffprobe: {stderr}");
    let streams: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !streams.is_empty() && streams.iter().all(|s| s.trim() == "h264,High,640,360"),
        "{stdout}"
    );
}

/// A 10 s key-frame interval: the first requests, while the first GOP is being learned,
/// are answered 503 with Retry-After; from the first segment on, requests succeed.
#[test]
fn a_ten_second_key_frame_interval_gives_ten_second_segments() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !require_clients(
        &["ffmpeg"],
        "a_ten_second_key_frame_interval_gives_ten_second_segments",
    ) {
        return;
    }
    let (server, writer) = start_passthrough(250);
    let early = get(server.addr, "/live.m3u8");
    assert_eq!(early.status, 503, "{}", early.text());
    assert_eq!(early.header("retry-after"), Some("2"));
    assert!(
        early.text().contains("key-frame interval"),
        "{}",
        early.text()
    );
    let learning = hls_status(server.addr);
    assert_eq!(learning["passthrough"], true, "{learning}");
    drop((server, writer));
    check_passthrough(250, 2, 10);
}

/// One writer after the other into a FIFO: between them the "NO SIGNAL" placeholder is
/// encoded behind a discontinuity, then the camera's H.264 passes through again behind
/// another, and every playlist on the way keeps the rules and follows the one before.
#[test]
fn a_new_writer_after_placeholders_passes_through_again() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = "a_new_writer_after_placeholders_passes_through_again";
    if !require_clients(&["ffmpeg", "mkfifo"], test) {
        return;
    }
    let dir = scratch_dir("fifo");
    let fifo = dir.join("camera.fifo");
    let (made, _, err) = run_with_timeout(Command::new("mkfifo").arg(&fifo), CLIENT_TIMEOUT);
    assert!(made, "mkfifo: {err}");
    let fifo_text = fifo.to_str().expect("a UTF-8 path").to_owned();
    let source = format!("pipe:h264:{fifo_text}");
    let server = Server::start(&[
        "--source",
        &source,
        "--fps",
        &FPS.to_string(),
        "--hls",
        "always",
    ]);
    let addr = server.addr;
    let write = |frames: u32| {
        let args = x264_args(FPS, Some(frames), &fifo_text);
        std::thread::spawn(move || {
            run_with_timeout(Command::new("ffmpeg").args(args), CLIENT_TIMEOUT)
        })
    };

    // Checks every playlist against the rules and the one before, until `done`.
    let mut previous: Option<ParsedMediaPlaylist> = None;
    let mut path: Option<String> = None;
    let mut follow =
        |what: &str, done: &dyn Fn(&serde_json::Value, &ParsedMediaPlaylist) -> bool| {
            let deadline = Instant::now() + STATE_TIMEOUT;
            loop {
                let hls = hls_status(addr);
                if count(&hls, "segments") > 0 {
                    let path = path.get_or_insert_with(|| media_path(addr));
                    let (parsed, text) = media_playlist(addr, path);
                    if let Some(previous) = &previous {
                        check_update(&previous.playlist, &parsed.playlist)
                            .unwrap_or_else(|e| panic!("{e}:\n{text}"));
                    }
                    let finished = done(&hls, &parsed);
                    previous = Some(parsed);
                    if finished {
                        return hls;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "not {what} within {STATE_TIMEOUT:?}: {hls}"
                );
                std::thread::sleep(POLL_INTERVAL);
            }
        };
    let discontinuities = |p: &ParsedMediaPlaylist| {
        p.playlist.discontinuity_sequence
            + p.playlist
                .segments
                .iter()
                .filter(|s| s.discontinuity)
                .count() as u64
    };

    // The first writer: 8 s of camera.
    let first = write(8 * FPS);
    let camera = follow("passing through", &|h, _| {
        count(h, "segments") >= 3 && h["timing_settled"] == true
    });
    assert_eq!(count(&camera, "frames_encoded"), 0, "{camera}");
    let (ok, _, err) = first.join().expect("writer thread");
    assert!(ok, "first writer: {err}");

    // It ended: placeholders, encoded, behind a discontinuity.
    let placeholders = follow("showing placeholders", &|h, p| {
        h["encoder_running"] == true && count(h, "frames_encoded") > 0 && discontinuities(p) >= 1
    });
    let passed_before = count(&placeholders, "frames_passed_through");

    // The second writer: the camera again, behind another discontinuity.
    let second = write(8 * FPS);
    let back = follow("passing through again", &|h, p| {
        h["encoder_running"] == false
            && count(h, "frames_passed_through") > passed_before + 2 * u64::from(FPS)
            && discontinuities(p) >= 2
    });
    assert_eq!(back["passthrough"], true, "{back}");
    let (ok, _, err) = second.join().expect("writer thread");
    assert!(ok, "second writer: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--hls on-demand` with a source's H.264: nothing is segmented until the first request,
/// which waits for the first GOP (answered 503 with Retry-After if it takes longer than the
/// wait); no encoder runs at any point.
#[test]
fn on_demand_passthrough_starts_with_the_first_request() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !require_clients(
        &["ffmpeg"],
        "on_demand_passthrough_starts_with_the_first_request",
    ) {
        return;
    }
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:h264",
        "--fps",
        &FPS.to_string(),
        "--hls",
        "on-demand",
    ]);
    let _writer = Writer::start(FPS, stdin);
    let addr = server.addr;
    let deadline = Instant::now() + STATE_TIMEOUT;
    while count(&status_json(addr)["source"], "frames") < 2 * u64::from(FPS) {
        assert!(Instant::now() < deadline, "no camera frames");
        std::thread::sleep(POLL_INTERVAL);
    }
    let idle = hls_status(addr);
    assert_eq!(idle["running"], false, "{idle}");
    assert_eq!(count(&idle, "frames_passed_through"), 0, "{idle}");

    let mut unavailable = 0;
    loop {
        let response = get(addr, "/live.m3u8");
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(response.header("retry-after").is_some());
        unavailable += 1;
        assert!(
            Instant::now() < deadline && unavailable < 20,
            "no playlist: {}",
            response.text()
        );
    }
    let running = hls_status(addr);
    assert_eq!(running["running"], true, "{running}");
    assert_eq!(running["passthrough"], true, "{running}");
    assert_eq!(count(&running, "frames_encoded"), 0, "{running}");
    assert!(count(&running, "frames_passed_through") > 0, "{running}");
    let path = media_path(addr);
    let (parsed, text) = media_playlist(addr, &path);
    assert_eq!(parsed.playlist.target_duration_s, 1, "{text}");
}

// ----- RTSP ------------------------------------------------------------------------------------

const RTSP_SERVER_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rtsp_server.py");
/// Debian's Python, which has python3-gi (a python3 earlier on PATH may not).
const PYTHON: &str = "/usr/bin/python3";

/// What the RTSP test server needs (tests/fixtures/rtsp_server.py), or `None`.
fn missing_rtsp_server() -> Option<String> {
    let check = "import gi\n\
                 gi.require_version('Gst', '1.0')\n\
                 gi.require_version('GstRtspServer', '1.0')\n\
                 from gi.repository import Gst, GstRtspServer\n\
                 Gst.init(None)\n\
                 assert Gst.ElementFactory.find('x264enc')\n";
    let ok = Command::new(PYTHON)
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| "gst-rtsp-server through python3-gi with x264enc".to_owned())
}

/// The RTSP test server, killed when dropped.
struct RtspServer {
    child: Child,
    port: u16,
}

impl RtspServer {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(PYTHON)
            .arg(RTSP_SERVER_SCRIPT)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the RTSP server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line.strip_prefix("PORT ") {
                    let _ = tx.send(port.trim().parse::<u16>());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the RTSP server did not say its port")
            .expect("the RTSP server's port");
        Self { child, port }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RTSP camera's H.264 passes through the same way: no encoder, a valid playlist across
/// reloads, and ffmpeg plays it.
#[test]
fn an_rtsp_camera_passes_through_to_hls() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = "an_rtsp_camera_passes_through_to_hls";
    if !common::require_prerequisite(missing_rtsp_server(), test)
        || !require_clients(&["ffmpeg"], test)
    {
        return;
    }
    let camera = RtspServer::start(&["--size", "320x240", "--fps", "25", "--key-int-max", "25"]);
    let source = format!("rtsp://127.0.0.1:{}/test", camera.port);
    let server = Server::start(&["--source", &source, "--fps", "25", "--hls", "always"]);
    let addr = server.addr;
    let hls = wait_for_hls(addr, "3 segments", |h| count(h, "segments") >= 3);
    assert_eq!(hls["passthrough"], true, "{hls}");
    assert_eq!(count(&hls, "frames_encoded"), 0, "{hls}");
    assert!(hls["key_frame_interval_s"].as_f64().is_some(), "{hls}");
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
    let (ok, _, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error"])
            .args(["-i", &server.url("/live.m3u8")])
            .args(["-t", "2", "-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    assert!(ok && stderr.trim().is_empty(), "ffmpeg: {stderr}");
}
