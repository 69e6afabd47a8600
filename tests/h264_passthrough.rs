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

use common::h264_bytes::{annex_b_slices, is_run_of, mp4_slices};
use common::hls_fetch::{PlaylistFollower, discontinuities, media_path, media_playlist, sibling};
use common::{Server, count, ffmpeg_play, get, require_clients, run_with_timeout, status_json};
use framecast::media::playlist::parse_multivariant_playlist;

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

/// Re-reads `/status` until `ready` holds for its `hls` object; returns it.
fn wait_for_hls(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    common::wait_for_hls(addr, what, STATE_TIMEOUT, POLL_INTERVAL, ready)
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
    // What the interval costs a player: HOLD-BACK is three target durations.
    assert_eq!(
        hls["player_delay_s"]["standard"].as_f64(),
        Some(3.0 * target_duration_s as f64),
        "{hls}"
    );
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
    let served = mp4_slices(&data.body);
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
        let (ok, frames, stderr) = ffmpeg_play(&server.url(path), seconds, CLIENT_TIMEOUT);
        assert!(ok, "ffmpeg {path}: {stderr}");
        assert!(stderr.trim().is_empty(), "ffmpeg {path} errors:\n{stderr}");
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

    let mut playlists = PlaylistFollower::new(addr, STATE_TIMEOUT, POLL_INTERVAL);

    // The first writer: 8 s of camera.
    let first = write(8 * FPS);
    let camera = playlists.until("passing through", |h, _| {
        count(h, "segments") >= 3 && h["timing_settled"] == true
    });
    assert_eq!(count(&camera, "frames_encoded"), 0, "{camera}");
    let (ok, _, err) = first.join().expect("writer thread");
    assert!(ok, "first writer: {err}");

    // It ended: placeholders, encoded, behind a discontinuity.
    let placeholders = playlists.until("showing placeholders", |h, p| {
        h["encoder_running"] == true && count(h, "frames_encoded") > 0 && discontinuities(p) >= 1
    });
    let passed_before = count(&placeholders, "frames_passed_through");

    // The second writer: the camera again, behind another discontinuity.
    let second = write(8 * FPS);
    let back = playlists.until("passing through again", |h, p| {
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
