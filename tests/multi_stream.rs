//! Several streams in one server, with the real binary and real clients: a configuration file
//! with two or three streams, each read by ffmpeg over MJPEG and HLS at its own size; the root
//! routes serving the first; mjpg-streamer's `?action=` URLs; `/status` and `/healthz` per
//! stream and in total; one stream's failing or flooding source beside a healthy one whose
//! viewer keeps every frame; SIGHUP adding, removing and restarting streams while a viewer of
//! an unchanged one keeps receiving frames; and the grid page and a stream's page in Chromium.
//!
//! Every test starts its own server on 127.0.0.1:0 with small pictures at a low rate; every
//! loop is bounded in count and time. Nothing here checks a rate or a duration: "keeps
//! receiving frames" is checked on the frames' sequence numbers (`X-Frame-Sequence`), which the
//! source numbers one by one, so a gap of more than two means the viewer missed more than
//! two frame intervals' worth.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use common::chromium::{missing_prerequisite, run_script};
use common::{
    MjpegReader, Server, get, require_clients, require_prerequisite, run_with_timeout, status_json,
};

/// How long a test waits for the server to reach a state (a stream to appear, a source to go
/// down, a viewer to get frames), with room for a busy 2-core machine.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// How often a waiting test looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The limit for one run of ffmpeg or curl.
const CLIENT_LIMIT: Duration = Duration::from_secs(40);
/// Pictures ffmpeg decodes from each stream.
const FRAMES_DECODED: usize = 3;
/// The most parts a viewer thread reads: far more than any test waits for, so that a thread
/// left behind ends by itself.
const VIEWER_MAX_PARTS: usize = 10_000;
/// The largest gap between the sequence numbers of two frames a viewer receives one after the
/// other: one frame may be skipped when the viewer is a little late, never more.
const MAX_SEQUENCE_GAP: u64 = 2;
/// The user agent of the test's own MJPEG viewers: not a browser, so every part carries
/// Content-Length and X-Frame-Sequence.
const VIEWER_AGENT: &str = "framecast-multi-stream-test";

/// One `[[streams]]` table.
struct StreamSpec<'a> {
    name: &'a str,
    source: &'a str,
    size: &'a str,
    fps: u32,
    /// `always`, `on-demand` or `off`.
    hls: &'a str,
}

impl<'a> StreamSpec<'a> {
    /// The test pattern at `size`, 10 fps, without HLS.
    fn pattern(name: &'a str, size: &'a str) -> Self {
        Self {
            name,
            source: "test",
            size,
            fps: 10,
            hls: "off",
        }
    }

    fn toml(&self) -> String {
        // A TOML literal string: commands may hold double quotes and backslashes.
        assert!(!self.source.contains('\''), "{}", self.source);
        format!(
            "[[streams]]\nname = \"{}\"\nsource = '{}'\nsize = \"{}\"\nfps = {}\nhls = \"{}\"\n\n",
            self.name, self.source, self.size, self.fps, self.hls
        )
    }
}

/// A configuration file with `streams`, in this test binary's scratch directory.
fn config_file(file_name: &str, streams: &[StreamSpec]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file_name);
    write_config(&path, streams);
    path
}

fn write_config(path: &Path, streams: &[StreamSpec]) {
    let mut text = String::from("listen = \"127.0.0.1:0\"\njpeg_quality = 70\n\n");
    for stream in streams {
        text.push_str(&stream.toml());
    }
    std::fs::write(path, text).expect("write the configuration file");
}

fn start_server(config: &Path) -> Server {
    Server::start(&["--config", config.to_str().expect("a UTF-8 path")])
}

/// Looks again every [`POLL_INTERVAL`] until `probe` gives a value; fails after [`WAIT_LIMIT`]
/// saying what was awaited and the state `probe` last reported.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) => assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT_LIMIT:?}; last: {state}"
            ),
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `GET /streams/{name}/status`, parsed.
fn stream_status(addr: SocketAddr, name: &str) -> serde_json::Value {
    let response = get(addr, &format!("/streams/{name}/status"));
    assert_eq!(response.status, 200, "{name}: {}", response.text());
    serde_json::from_slice(&response.body).expect("status is JSON")
}

/// The names in `/status`'s `streams`, in order.
fn stream_names(status: &serde_json::Value) -> Vec<String> {
    status["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Width and height from a JPEG's header.
fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    let header = turbojpeg::read_header(jpeg).expect("a JPEG header");
    (header.width, header.height)
}

/// Has ffmpeg decode [`FRAMES_DECODED`] pictures of `url` into 8-bit grey and checks that they
/// are `width`×`height`: the file ffmpeg writes holds exactly that many bytes per picture.
fn assert_ffmpeg_decodes(url: &str, width: usize, height: usize, file_name: &str) {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file_name);
    let _ = std::fs::remove_file(&out);
    let frames = FRAMES_DECODED.to_string();
    let (ok, _, err) = run_with_timeout(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-i",
            url,
            "-frames:v",
            &frames,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-y",
            out.to_str().expect("a UTF-8 path"),
        ]),
        CLIENT_LIMIT,
    );
    assert!(ok, "ffmpeg could not read {url}: {err}");
    let len = std::fs::metadata(&out).map_or(0, |m| m.len() as usize);
    assert_eq!(
        len,
        FRAMES_DECODED * width * height,
        "{url}: {FRAMES_DECODED} grey pictures of {width}x{height} expected, {len} bytes read"
    );
}

/// ffprobe's view of `url`'s first video stream: (codec name, width, height).
fn ffprobe_video(url: &str) -> (String, usize, usize) {
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
            url,
        ]),
        CLIENT_LIMIT,
    );
    assert!(ok, "ffprobe could not read {url}: {err}");
    let probe: serde_json::Value = serde_json::from_str(&out).expect("ffprobe JSON");
    let stream = &probe["streams"][0];
    (
        stream["codec_name"].as_str().unwrap_or("").to_owned(),
        stream["width"].as_u64().unwrap_or(0) as usize,
        stream["height"].as_u64().unwrap_or(0) as usize,
    )
}

/// Waits until the stream's HLS window has a few segments, so a player finds a live window.
fn wait_for_hls_segments(addr: SocketAddr, name: &str) {
    wait_for(&format!("HLS segments of `{name}`"), || {
        let status = stream_status(addr, name);
        match status["hls"]["segments"].as_u64() {
            Some(segments) if segments >= 3 => Ok(()),
            _ => Err(status["hls"].to_string()),
        }
    });
}

/// An MJPEG viewer reading on its own thread, as fast as parts come, keeping every part's
/// sequence number until the stream ends, it is stopped, or [`VIEWER_MAX_PARTS`] have come.
struct Viewer {
    path: String,
    sequences: Arc<Mutex<Vec<u64>>>,
    /// Why the stream ended, once it has.
    ended: Arc<Mutex<Option<String>>>,
    /// The size of the first picture.
    first_size: Arc<Mutex<Option<(usize, usize)>>>,
    stop: Arc<AtomicBool>,
}

impl Viewer {
    fn open(addr: SocketAddr, path: &str) -> Self {
        let mut reader = MjpegReader::open(addr, path, VIEWER_AGENT);
        assert_eq!(reader.status, 200, "{path}");
        let viewer = Self {
            path: path.to_owned(),
            sequences: Arc::default(),
            ended: Arc::default(),
            first_size: Arc::default(),
            stop: Arc::default(),
        };
        let (sequences, ended, first_size, stop) = (
            viewer.sequences.clone(),
            viewer.ended.clone(),
            viewer.first_size.clone(),
            viewer.stop.clone(),
        );
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for _ in 0..VIEWER_MAX_PARTS {
                    if stop.load(Ordering::Relaxed) {
                        return "stopped by the test".to_owned();
                    }
                    let part = match reader.try_next_part() {
                        Ok(part) => part,
                        Err(error) => return format!("stream ended: {error}"),
                    };
                    let Some(seq) = part.header("x-frame-sequence").and_then(|s| s.parse().ok())
                    else {
                        return format!("a part without X-Frame-Sequence: {:?}", part.headers);
                    };
                    let mut first = first_size.lock().unwrap_or_else(|e| e.into_inner());
                    if first.is_none() {
                        *first = Some(jpeg_size(&part.jpeg));
                    }
                    drop(first);
                    sequences
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(seq);
                }
                "read as many parts as a viewer may".to_owned()
            }));
            let why = outcome.unwrap_or_else(|_| "the reader failed".to_owned());
            *ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        });
        viewer
    }

    fn sequences(&self) -> Vec<u64> {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn frames(&self) -> usize {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn first_size(&self) -> Option<(usize, usize)> {
        *self.first_size.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the viewer has received `count` frames in all; fails if its stream ends.
    fn wait_for_frames(&self, count: usize) {
        wait_for(&format!("{count} frames on {}", self.path), || {
            if let Some(why) = self.ended() {
                panic!("{}: {why} after {} frames", self.path, self.frames());
            }
            if self.frames() >= count {
                Ok(())
            } else {
                Err(format!("{} frames", self.frames()))
            }
        });
    }

    /// Checks that consecutive frames' sequence numbers never go back and never skip more
    /// than [`MAX_SEQUENCE_GAP`] - 1 frames.
    fn assert_no_gap(&self) {
        let sequences = self.sequences();
        for pair in sequences.windows(2) {
            assert!(
                pair[1] >= pair[0] && pair[1] - pair[0] <= MAX_SEQUENCE_GAP,
                "{}: frame {} came after frame {} (of {} frames: {:?})",
                self.path,
                pair[1],
                pair[0],
                sequences.len(),
                sequences
            );
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        // The thread notices before its next part, or when the server is gone.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads an endless response (`/live.mp4`) on its own thread, counting its bytes, until it
/// ends or [`WAIT_LIMIT`] twice over has passed.
struct BodyReader {
    bytes: Arc<AtomicUsize>,
    ended: Arc<Mutex<Option<String>>>,
}

impl BodyReader {
    fn open(addr: SocketAddr, path: &str) -> Self {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(POLL_INTERVAL * 10))
            .expect("timeout");
        // HTTP/1.0: the body runs until the server closes the connection.
        socket
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .expect("send");
        let reader = Self {
            bytes: Arc::default(),
            ended: Arc::default(),
        };
        let (bytes, ended) = (reader.bytes.clone(), reader.ended.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT_LIMIT * 2;
            let mut buffer = vec![0; 64 * 1024];
            let why = loop {
                if Instant::now() > deadline {
                    break "still open at the reader's time limit".to_owned();
                }
                match socket.read(&mut buffer) {
                    Ok(0) => break "end of the response".to_owned(),
                    Ok(n) => {
                        bytes.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(error) => break format!("read error: {error}"),
                }
            };
            *ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        });
        reader
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Two streams of different sizes, both with HLS: ffmpeg decodes each one's MJPEG and HLS at
/// that stream's own size, the root routes are the first stream's, and one stream's HLS
/// resources are not found under the other's path.
#[test]
fn two_streams_serve_ffmpeg_each_its_own_mjpeg_and_hls() {
    if !require_clients(
        &["ffmpeg", "ffprobe"],
        "two_streams_serve_ffmpeg_each_its_own_mjpeg_and_hls",
    ) {
        return;
    }
    let config = config_file(
        "two_streams.toml",
        &[
            StreamSpec {
                hls: "always",
                ..StreamSpec::pattern("a", "320x240")
            },
            StreamSpec {
                hls: "always",
                ..StreamSpec::pattern("b", "640x360")
            },
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;

    assert_ffmpeg_decodes(
        &server.url("/streams/a/stream.mjpg"),
        320,
        240,
        "two_a.gray",
    );
    assert_ffmpeg_decodes(
        &server.url("/streams/b/stream.mjpg"),
        640,
        360,
        "two_b.gray",
    );

    let mut media_uris = Vec::new();
    for (name, width, height) in [("a", 320, 240), ("b", 640, 360)] {
        wait_for_hls_segments(addr, name);
        let playlist = get(addr, &format!("/streams/{name}/live.m3u8"));
        assert_eq!(playlist.status, 200, "{name}: {}", playlist.text());
        let playlist = playlist.text();
        assert!(
            playlist.contains(&format!("RESOLUTION={width}x{height}")),
            "{name}: {playlist}"
        );
        let hls_url = server.url(&format!("/streams/{name}/live.m3u8"));
        assert_eq!(
            ffprobe_video(&hls_url),
            ("h264".to_owned(), width, height),
            "{hls_url}"
        );
        assert_ffmpeg_decodes(&hls_url, width, height, &format!("two_{name}_hls.gray"));
        let media_uri = playlist
            .lines()
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .expect("the media playlist's URI")
            .to_owned();
        media_uris.push(media_uri);
    }
    // Each stream's HLS names carry its own instance: `b`'s are not found under `a`'s path,
    // nor at the root, which is `a`'s.
    let (a_uri, b_uri) = (&media_uris[0], &media_uris[1]);
    assert_ne!(a_uri, b_uri);
    assert_eq!(get(addr, &format!("/streams/b/{b_uri}")).status, 200);
    assert_eq!(get(addr, &format!("/{a_uri}")).status, 200);
    assert_eq!(get(addr, &format!("/streams/a/{b_uri}")).status, 404);
    assert_eq!(get(addr, &format!("/{b_uri}")).status, 404);
    assert_eq!(get(addr, &format!("/streams/b/{a_uri}")).status, 404);

    // The root routes are `a`'s.
    assert_ffmpeg_decodes(&server.url("/live.m3u8"), 320, 240, "two_root_hls.gray");
    assert_ffmpeg_decodes(&server.url("/stream.mjpg"), 320, 240, "two_root.gray");
    let snapshot = get(addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), (320, 240));
    let snapshot = get(addr, "/streams/b/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), (640, 360));
}

/// Three streams read by three ffmpeg processes at once; the root routes and pages serve the
/// first, `/` is the grid of all three, an unknown stream is 404 naming it on every resource,
/// and `/streams/{name}` leads to `/streams/{name}/`.
#[test]
fn three_streams_at_once_and_the_root_routes_serve_the_first() {
    if !require_clients(
        &["ffmpeg"],
        "three_streams_at_once_and_the_root_routes_serve_the_first",
    ) {
        return;
    }
    let sizes = [("a", 480, 270), ("b", 320, 240), ("c", 640, 360)];
    let config = config_file(
        "three_streams.toml",
        &[
            StreamSpec::pattern("a", "480x270"),
            StreamSpec::pattern("b", "320x240"),
            StreamSpec {
                hls: "always",
                ..StreamSpec::pattern("c", "640x360")
            },
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;

    // Three ffmpeg readers at once, one per stream.
    std::thread::scope(|scope| {
        for (name, width, height) in sizes {
            let url = server.url(&format!("/streams/{name}/stream.mjpg"));
            scope.spawn(move || {
                assert_ffmpeg_decodes(&url, width, height, &format!("three_{name}.gray"))
            });
        }
    });
    wait_for_hls_segments(addr, "c");
    assert_ffmpeg_decodes(
        &server.url("/streams/c/live.m3u8"),
        640,
        360,
        "three_c_hls.gray",
    );

    // The root routes are the first stream's: `a` has HLS off, so there is no playlist at the
    // root either.
    for path in ["/streams/a/live.m3u8", "/live.m3u8"] {
        let response = get(addr, path);
        assert_eq!(response.status, 404, "{path}");
        assert!(
            response.text().contains("`a`"),
            "{path}: {}",
            response.text()
        );
    }
    assert_ffmpeg_decodes(&server.url("/stream.mjpg"), 480, 270, "three_root.gray");
    assert_eq!(jpeg_size(&get(addr, "/snapshot.jpg").body), (480, 270));
    for (root, named) in [("/hls", "/streams/a/hls"), ("/live", "/streams/a/live")] {
        let root_page = get(addr, root);
        let named_page = get(addr, named);
        assert_eq!(root_page.status, 200, "{root}");
        assert_eq!(named_page.status, 200, "{named}");
        assert!(
            root_page.text().contains("480"),
            "{root}: {}",
            root_page.text()
        );
        assert!(
            named_page.text().contains("/streams/a/"),
            "{named} links its own stream: {}",
            named_page.text()
        );
    }
    let status = status_json(addr);
    assert_eq!(status["name"], "a", "{status}");
    assert_eq!(stream_names(&status), ["a", "b", "c"], "{status}");
    assert_eq!(status["totals"]["streams"], 3, "{status}");
    let healthz = get(addr, "/healthz");
    assert_eq!(healthz.status, 200, "{}", healthz.text());
    assert_eq!(healthz.text(), "ok: 3 streams live\n");

    // With several streams, `/` is the grid: one tile per stream, linking to its page.
    let grid = get(addr, "/");
    assert_eq!(grid.status, 200);
    let grid = grid.text();
    assert!(grid.contains("id=\"grid\""), "{grid}");
    for (name, _, _) in sizes {
        assert!(
            grid.contains(&format!("data-stream=\"{name}\"")),
            "{name}: {grid}"
        );
        assert!(
            grid.contains(&format!("href=\"/streams/{name}/\"")),
            "{name}: {grid}"
        );
    }

    // An unknown stream is 404 naming it, on every resource.
    for path in [
        "/streams/nope/",
        "/streams/nope",
        "/streams/nope/stream.mjpg",
        "/streams/nope/snapshot.jpg",
        "/streams/nope/live.m3u8",
        "/streams/nope/status",
        "/streams/nope/healthz",
    ] {
        let response = get(addr, path);
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert!(
            response.text().contains("nope"),
            "{path}: {}",
            response.text()
        );
    }

    // A stream's name without the slash leads to its page, keeping the query.
    let redirect = get(addr, "/streams/b");
    assert_eq!(redirect.status, 308, "{}", redirect.text());
    assert_eq!(redirect.header("location"), Some("/streams/b/"));
    let redirect = get(addr, "/streams/b?action=snapshot");
    assert_eq!(redirect.status, 308);
    assert_eq!(
        redirect.header("location"),
        Some("/streams/b/?action=snapshot")
    );
    let page = get(addr, "/streams/b/");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("src=\"/streams/b/stream.mjpg\""),
        "{}",
        page.text()
    );
}

/// mjpg-streamer's URLs, which OctoPrint, Klipper front ends and Home Assistant default to:
/// `/?action=stream|snapshot` for the first stream and `/streams/{name}/?action=…` for each,
/// read over plain HTTP, by ffmpeg and by curl; an unknown action is 400 with a one-line
/// reason.
#[test]
fn mjpg_streamer_urls_serve_the_first_stream_and_each_named_one() {
    if !require_clients(
        &["curl", "ffmpeg"],
        "mjpg_streamer_urls_serve_the_first_stream_and_each_named_one",
    ) {
        return;
    }
    let config = config_file(
        "mjpg_streamer.toml",
        &[
            StreamSpec::pattern("printer", "320x240"),
            StreamSpec::pattern("garage", "640x360"),
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;

    for (path, size) in [
        ("/?action=stream", (320, 240)),
        ("/streams/printer/?action=stream", (320, 240)),
        ("/streams/garage/?action=stream", (640, 360)),
    ] {
        let mut reader = MjpegReader::open(addr, path, VIEWER_AGENT);
        assert_eq!(reader.status, 200, "{path}");
        let content_type = reader.header("content-type").unwrap_or("").to_owned();
        assert!(
            content_type.starts_with("multipart/x-mixed-replace"),
            "{path}: {content_type}"
        );
        for _ in 0..2 {
            let part = reader.next_part();
            assert_eq!(part.header("content-type"), Some("image/jpeg"), "{path}");
            assert_eq!(jpeg_size(&part.jpeg), size, "{path}");
        }
    }
    let head = common::request(addr, "HEAD", "/?action=stream", &[]);
    assert_eq!(head.status, 200);
    assert!(
        head.header("content-type")
            .is_some_and(|t| t.starts_with("multipart/x-mixed-replace")),
        "{:?}",
        head.headers
    );

    // ffmpeg takes the URLs OctoPrint and Home Assistant are given.
    assert_ffmpeg_decodes(
        &server.url("/streams/garage/?action=stream"),
        640,
        360,
        "mjpg_streamer_garage.gray",
    );

    // curl, as scripts fetch snapshots.
    for (path, size) in [
        ("/?action=snapshot", (320, 240)),
        ("/streams/garage/?action=snapshot", (640, 360)),
    ] {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mjpg_streamer_snapshot.jpg");
        let (ok, content_type, err) = run_with_timeout(
            Command::new("curl").args([
                "--silent",
                "--show-error",
                "--fail",
                "--output",
                out.to_str().expect("a UTF-8 path"),
                "--write-out",
                "%{content_type}",
                &server.url(path),
            ]),
            CLIENT_LIMIT,
        );
        assert!(ok, "curl {path}: {err}");
        assert_eq!(content_type, "image/jpeg", "{path}");
        let jpeg = std::fs::read(&out).expect("the snapshot curl saved");
        assert_eq!(jpeg_size(&jpeg), size, "{path}");
    }

    for path in [
        "/?action=take_picture",
        "/?action=",
        "/streams/garage/?action=Stream",
    ] {
        let response = get(addr, path);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        let reason = response.text();
        assert_eq!(reason.trim_end().lines().count(), 1, "{path}: {reason:?}");
        assert!(reason.contains("action"), "{path}: {reason}");
    }
}

/// A stream whose command exits at once beside a healthy one: `/healthz` is 503 naming only
/// the failing stream while the healthy one's own `healthz` is 200; `/status` lists both with
/// totals, and each stream's `status` describes it alone.
#[test]
fn status_and_healthz_name_the_stream_whose_source_is_down() {
    let config = config_file(
        "health.toml",
        &[
            StreamSpec::pattern("yard", "320x240"),
            StreamSpec {
                source: "exec:false",
                ..StreamSpec::pattern("door", "320x240")
            },
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;
    let _viewer = Viewer::open(addr, "/streams/yard/stream.mjpg");

    // `false` exits at once, again and again: the source is down, not merely starting.
    wait_for("the source of `door` down", || {
        let door = stream_status(addr, "door");
        if door["source"]["state"] == "down" {
            Ok(())
        } else {
            Err(door["source"].to_string())
        }
    });
    let healthz = wait_for("/healthz 503", || {
        let response = get(addr, "/healthz");
        if response.status == 503 {
            Ok(response)
        } else {
            Err(format!("{} {}", response.status, response.text()))
        }
    });
    let reason = healthz.text();
    assert!(reason.contains("stream `door`: source down"), "{reason}");
    assert!(!reason.contains("yard"), "{reason}");
    assert_eq!(reason.trim_end().lines().count(), 1, "{reason:?}");

    let yard = get(addr, "/streams/yard/healthz");
    assert_eq!(yard.status, 200, "{}", yard.text());
    let door = get(addr, "/streams/door/healthz");
    assert_eq!(door.status, 503, "{}", door.text());

    let status = wait_for("one viewer of `yard` in /status", || {
        let status = status_json(addr);
        if status["totals"]["viewer_count"] == 1 {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    });
    // The top level is the first stream, as before there were several.
    assert_eq!(status["name"], "yard", "{status}");
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["source"]["width"], 320, "{status}");
    assert_eq!(status["viewer_count"], 1, "{status}");
    assert_eq!(stream_names(&status), ["yard", "door"], "{status}");
    let listed = &status["streams"];
    assert_eq!(listed[0]["path"], "/streams/yard/", "{status}");
    assert_eq!(listed[0]["healthy"], true, "{status}");
    assert_eq!(listed[0]["viewer_count"], 1, "{status}");
    assert_eq!(listed[0]["source"]["kind"], "test", "{status}");
    assert!(listed[0]["jpeg"].is_object(), "{status}");
    assert!(listed[0]["hls"].is_null(), "HLS is off: {status}");
    assert!(listed[0].get("viewers").is_none(), "{status}");
    assert_eq!(listed[1]["path"], "/streams/door/", "{status}");
    assert_eq!(listed[1]["healthy"], false, "{status}");
    assert_eq!(listed[1]["viewer_count"], 0, "{status}");
    assert_eq!(listed[1]["source"]["kind"], "exec:false", "{status}");
    let totals = &status["totals"];
    assert_eq!(totals["streams"], 2, "{status}");
    assert_eq!(totals["healthy"], 1, "{status}");
    assert_eq!(totals["viewer_count"], 1, "{status}");

    let door = stream_status(addr, "door");
    assert_eq!(door["name"], "door", "{door}");
    assert_eq!(door["healthy"], false, "{door}");
    assert!(
        door["unhealthy_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{door}"
    );
    assert!(
        door["viewers"].as_array().is_some_and(Vec::is_empty),
        "{door}"
    );
    let yard = stream_status(addr, "yard");
    assert_eq!(yard["name"], "yard", "{yard}");
    assert_eq!(yard["healthy"], true, "{yard}");
    assert_eq!(yard["viewers"].as_array().map(Vec::len), Some(1), "{yard}");
    assert_ne!(
        yard["start_id"], door["start_id"],
        "each stream has its own id"
    );
}

/// Isolation: a test pattern beside an ffmpeg command that stops after 20 frames (and is
/// started again), a command that floods 10 MB of random bytes (again and again) and a FIFO
/// that nobody writes into (a source that stalls). The
/// pattern's viewer keeps receiving frames with no gap in their sequence numbers beyond
/// [`MAX_SEQUENCE_GAP`], and the pattern's own counters stay clean.
#[test]
fn a_stream_keeps_every_frame_beside_ones_that_stop_flood_and_stall() {
    if !require_clients(
        &["ffmpeg", "sh", "head", "mkfifo"],
        "a_stream_keeps_every_frame_beside_ones_that_stop_flood_and_stall",
    ) {
        return;
    }
    let fifo = Path::new(env!("CARGO_TARGET_TMPDIR")).join("isolation_stall.fifo");
    let _ = std::fs::remove_file(&fifo);
    let (made, _, err) = run_with_timeout(Command::new("mkfifo").arg(&fifo), CLIENT_LIMIT);
    assert!(made, "mkfifo: {err}");
    let stall_source = format!("pipe:mjpeg:{}", fifo.to_str().expect("a UTF-8 path"));
    let config = config_file(
        "isolation.toml",
        &[
            StreamSpec::pattern("pattern", "320x240"),
            StreamSpec {
                source: "exec:ffmpeg -hide_banner -nostdin -nostats -re -f lavfi \
                         -i testsrc=size=320x240:rate=10 -frames:v 20 -f mjpeg -q:v 5 -",
                ..StreamSpec::pattern("stops", "320x240")
            },
            StreamSpec {
                source: "exec:sh -c \"head -c 10000000 /dev/urandom\"",
                ..StreamSpec::pattern("garbage", "320x240")
            },
            StreamSpec {
                source: &stall_source,
                ..StreamSpec::pattern("stalls", "320x240")
            },
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;
    let pattern = Viewer::open(addr, "/streams/pattern/stream.mjpg");
    // The others have viewers too, so their JPEG pipelines run.
    let _stops = Viewer::open(addr, "/streams/stops/stream.mjpg");
    let _garbage = Viewer::open(addr, "/streams/garbage/stream.mjpg");
    let _stalls = Viewer::open(addr, "/streams/stalls/stream.mjpg");
    pattern.wait_for_frames(5);
    let before = stream_status(addr, "pattern");

    // Runs until the ffmpeg stream has stopped and been started again, the garbage has been
    // read to its end and started again, and the stalled stream is unhealthy; `pattern` stays
    // healthy all the while.
    let mut polls = 0_u32;
    let (stops, garbage) = wait_for("both misbehaving sources restarted", || {
        polls += 1;
        let healthz = get(addr, "/streams/pattern/healthz");
        assert_eq!(healthz.status, 200, "poll {polls}: {}", healthz.text());
        let stops = stream_status(addr, "stops");
        let garbage = stream_status(addr, "garbage");
        let restarts = |s: &serde_json::Value| s["source"]["process"]["restarts"].as_u64();
        let stalled = get(addr, "/streams/stalls/healthz").status == 503;
        if restarts(&stops) >= Some(1)
            && restarts(&garbage) >= Some(2)
            && stalled
            && pattern.frames() >= 50
        {
            Ok((stops, garbage))
        } else {
            Err(format!(
                "stops: {}; garbage: {}; {} frames of pattern",
                stops["source"],
                garbage["source"],
                pattern.frames()
            ))
        }
    });
    let after = stream_status(addr, "pattern");
    assert_eq!(pattern.ended(), None, "the pattern viewer's stream ended");
    pattern.assert_no_gap();
    assert_eq!(pattern.first_size(), Some((320, 240)));

    // The garbage was seen as such.
    assert!(
        garbage["source"]["bad_frames"].as_u64() > Some(0),
        "{garbage}"
    );
    // The ffmpeg stream did deliver before it stopped.
    assert!(stops["source"]["frames"].as_u64() > Some(0), "{stops}");

    // The pattern's own counters: its viewer was never dropped, its source never failed, and
    // the viewer skipped no more than the frames it saw missing.
    assert_eq!(after["viewers_dropped_stalled"], 0, "{after}");
    assert_eq!(
        after["source"]["errors"], before["source"]["errors"],
        "{after}"
    );
    assert_eq!(after["healthy"], true, "{after}");
    let viewer = &after["viewers"][0];
    let sent = viewer["frames_sent"].as_u64().unwrap_or(0);
    assert!(sent >= pattern.frames() as u64, "{viewer}");
    let skipped = viewer["frames_skipped"].as_u64().unwrap_or(u64::MAX);
    let seen = pattern.sequences();
    let missing: u64 = seen
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]).saturating_sub(1))
        .sum();
    // Frames published while the last part was on its way count too: a few at most.
    assert!(
        skipped <= missing + 3,
        "status says {skipped} skipped, the viewer missed {missing}: {viewer}"
    );
}

/// SIGHUP re-reads the file: a stream added starts, one removed is gone (404), one whose
/// settings changed restarts with them, and the viewer of the unchanged one receives frames
/// all through without a sequence gap beyond [`MAX_SEQUENCE_GAP`]. A file that no longer
/// parses is refused with a log line naming it, and the streams stay as they were.
#[test]
fn sighup_adds_removes_and_restarts_streams_while_an_unchanged_one_keeps_its_viewer() {
    // `b` is removed, `c` restarted at another rate, `d` added; `a` stays as it is.
    let config = config_file(
        "reload.toml",
        &[
            StreamSpec::pattern("a", "320x240"),
            StreamSpec::pattern("b", "320x240"),
            StreamSpec {
                fps: 5,
                ..StreamSpec::pattern("c", "320x240")
            },
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;
    let hangup = || {
        let pid = Pid::from_raw(server.pid() as i32).expect("a pid");
        kill_process(pid, Signal::Hup).expect("SIGHUP to the server");
    };

    let viewer_a = Viewer::open(addr, "/streams/a/stream.mjpg");
    viewer_a.wait_for_frames(5);
    let a_before = stream_status(addr, "a");
    let c_before = stream_status(addr, "c");
    assert_eq!(c_before["source"]["fps_configured"], 5, "{c_before}");
    let frames_before_reload = viewer_a.frames();

    write_config(
        &config,
        &[
            StreamSpec::pattern("a", "320x240"),
            StreamSpec::pattern("c", "320x240"),
            StreamSpec::pattern("d", "480x270"),
        ],
    );
    hangup();
    let status = wait_for("stream `d` in /status", || {
        let status = status_json(addr);
        if stream_names(&status).iter().any(|n| n == "d") {
            Ok(status)
        } else {
            Err(stream_names(&status).join(", "))
        }
    });
    assert_eq!(stream_names(&status), ["a", "c", "d"], "{status}");

    let b = get(addr, "/streams/b/stream.mjpg");
    assert_eq!(b.status, 404, "{}", b.text());
    assert!(b.text().contains("`b`"), "{}", b.text());
    assert_eq!(get(addr, "/streams/b/status").status, 404);

    let c_after = stream_status(addr, "c");
    assert_eq!(c_after["source"]["fps_configured"], 10, "{c_after}");
    assert_ne!(
        c_after["start_id"], c_before["start_id"],
        "`c` restarted with its new settings"
    );
    let d = get(addr, "/streams/d/snapshot.jpg");
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(jpeg_size(&d.body), (480, 270));
    let grid = get(addr, "/").text();
    assert!(grid.contains("href=\"/streams/d/\""), "{grid}");
    assert!(!grid.contains("/streams/b/"), "{grid}");

    // `a` was left running: same instance, same viewer, frames all through the reload.
    viewer_a.wait_for_frames(frames_before_reload + 20);
    assert_eq!(viewer_a.ended(), None);
    viewer_a.assert_no_gap();
    let a_after = stream_status(addr, "a");
    assert_eq!(a_after["start_id"], a_before["start_id"], "{a_after}");
    assert_eq!(a_after["viewer_count"], 1, "{a_after}");
    assert_eq!(a_after["viewers_dropped_stalled"], 0, "{a_after}");
    let reloaded = server
        .log_lines()
        .into_iter()
        .find(|line| line.contains("SIGHUP: configuration reloaded"));
    let reloaded = reloaded.expect("a log line for the reload");
    for part in ["started=[\"d\"]", "stopped=[\"b\"]", "restarted=[\"c\"]"] {
        assert!(reloaded.contains(part), "{part} in {reloaded}");
    }

    // A file that no longer parses is refused, and the streams stay as they are.
    std::fs::write(&config, "[[streams]\nname = \"a\"\n").expect("write a broken file");
    hangup();
    let refused = wait_for("the refusal in the log", || {
        server
            .log_lines()
            .into_iter()
            .find(|line| line.contains("the configuration is refused"))
            .ok_or_else(|| "no such line yet".to_owned())
    });
    assert!(refused.contains("reload.toml"), "names the file: {refused}");
    let frames_at_refusal = viewer_a.frames();
    viewer_a.wait_for_frames(frames_at_refusal + 10);
    let status = status_json(addr);
    assert_eq!(stream_names(&status), ["a", "c", "d"], "{status}");
    assert_eq!(viewer_a.ended(), None);
    viewer_a.assert_no_gap();
    assert_eq!(
        stream_status(addr, "a")["start_id"],
        a_before["start_id"],
        "`a` still the same instance"
    );
}

/// A reload ends the responses of the viewers of the streams it removes or restarts, so that
/// a player notices and reconnects (to the restarted stream, or to a 404) instead of showing
/// the old stream's last picture for ever.
#[test]
fn sighup_ends_the_viewers_of_removed_and_restarted_streams() {
    let config = config_file(
        "reload_ends_viewers.toml",
        &[
            StreamSpec::pattern("a", "320x240"),
            StreamSpec {
                hls: "always",
                ..StreamSpec::pattern("b", "320x240")
            },
            StreamSpec::pattern("c", "320x240"),
        ],
    );
    let server = start_server(&config);
    let addr = server.addr;
    let viewer_b = Viewer::open(addr, "/streams/b/stream.mjpg");
    let viewer_c = Viewer::open(addr, "/streams/c/stream.mjpg");
    let mp4_b = BodyReader::open(addr, "/streams/b/live.mp4");
    viewer_b.wait_for_frames(5);
    viewer_c.wait_for_frames(5);
    wait_for("/live.mp4 of `b` under way", || {
        match (mp4_b.bytes(), mp4_b.ended()) {
            (_, Some(why)) => panic!("/live.mp4 of `b` ended at once: {why}"),
            (0, None) => Err("no bytes yet".to_owned()),
            _ => Ok(()),
        }
    });
    let c_before = stream_status(addr, "c");

    write_config(
        &config,
        &[
            StreamSpec::pattern("a", "320x240"),
            StreamSpec {
                fps: 5,
                ..StreamSpec::pattern("c", "320x240")
            },
        ],
    );
    let pid = Pid::from_raw(server.pid() as i32).expect("a pid");
    kill_process(pid, Signal::Hup).expect("SIGHUP to the server");
    wait_for("`c` restarted", || {
        // While the old `c` stops and before the new one starts, there is no `c`.
        let response = get(addr, "/streams/c/status");
        if response.status != 200 {
            return Err(format!("status {}", response.status));
        }
        let c: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
        if c["start_id"] != c_before["start_id"] {
            Ok(())
        } else {
            Err(c["start_id"].to_string())
        }
    });
    for (name, viewer) in [("b", &viewer_b), ("c", &viewer_c)] {
        let why = wait_for(&format!("the end of `{name}`'s viewer"), || {
            viewer
                .ended()
                .ok_or_else(|| format!("{} frames so far", viewer.frames()))
        });
        assert!(why.starts_with("stream ended"), "{name}: {why}");
    }
    let why = wait_for("the end of `b`'s /live.mp4", || {
        mp4_b
            .ended()
            .ok_or_else(|| format!("{} bytes so far", mp4_b.bytes()))
    });
    assert_eq!(why, "end of the response", "{why}");
    assert_eq!(stream_status(addr, "c")["viewer_count"], 0);
}

/// The grid at `/` in headless Chromium (`tests/browser/grid_page.mjs`): three tiles whose
/// MJPEG pictures load at each stream's size, each linking to its stream's page; following
/// `b`'s tile opens `/streams/b/`, whose live picture loads at `b`'s size and whose links all
/// point under `/streams/b/`. Screenshots go to `target/test-output/grid_page_mjpeg.png` and
/// `grid_stream_page_mjpeg.png`.
#[test]
fn chromium_shows_the_grid_and_a_stream_page() {
    if !require_prerequisite(
        missing_prerequisite(&["playwright-core/package.json"]),
        "chromium_shows_the_grid_and_a_stream_page",
    ) {
        return;
    }
    check_grid_in_chromium(
        "grid.toml",
        &[("a", 320, 240), ("b", 640, 360), ("c", 480, 270)],
        "mjpeg",
    );
}

/// With more streams than a browser has connections for MJPEG pictures, the grid's tiles are
/// snapshots that the page refreshes: in Chromium every tile loads at its stream's size and is
/// refreshed, and the stream page still shows the live MJPEG picture.
#[test]
fn chromium_shows_a_grid_of_five_streams_from_snapshots() {
    if !require_prerequisite(
        missing_prerequisite(&["playwright-core/package.json"]),
        "chromium_shows_a_grid_of_five_streams_from_snapshots",
    ) {
        return;
    }
    check_grid_in_chromium(
        "grid_of_five.toml",
        &[
            ("a", 160, 120),
            ("b", 320, 240),
            ("c", 240, 180),
            ("d", 480, 270),
            ("e", 320, 180),
        ],
        "snapshot",
    );
}

/// Serves `streams` (name, width, height) from the test pattern at 5 fps, runs
/// `grid_page.mjs` against the server and checks what it saw: every tile at its stream's size
/// and linking to its page, tiles refreshed the `refresh` way (`mjpeg` or `snapshot`), and
/// stream `b`'s page with its live picture and links under `/streams/b/`.
fn check_grid_in_chromium(file_name: &str, streams: &[(&str, usize, usize)], refresh: &str) {
    let sizes: Vec<String> = streams
        .iter()
        .map(|(_, width, height)| format!("{width}x{height}"))
        .collect();
    let specs: Vec<StreamSpec> = streams
        .iter()
        .zip(&sizes)
        .map(|((name, _, _), size)| StreamSpec {
            fps: 5,
            ..StreamSpec::pattern(name, size)
        })
        .collect();
    let config = config_file(file_name, &specs);
    let server = start_server(&config);
    let result = run_script("grid_page.mjs", &server.url(""));
    assert_eq!(result["refresh"], refresh, "{result}");

    let tiles = result["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), streams.len(), "{result}");
    for (tile, (name, width, height)) in tiles.iter().zip(streams) {
        assert_eq!(tile["name"], *name, "{result}");
        assert_eq!(tile["naturalWidth"], *width, "{tile}");
        assert_eq!(tile["naturalHeight"], *height, "{tile}");
        assert_eq!(tile["href"], format!("/streams/{name}/"), "{tile}");
        let src = tile["src"].as_str().unwrap_or("");
        match refresh {
            // A few streams are MJPEG pictures at a low rate, to keep a page of cameras light.
            "mjpeg" => assert_eq!(src, format!("/streams/{name}/stream.mjpg?fps=2")),
            // Many are snapshots, asked for again with a query that no cache has seen.
            _ => assert!(
                src.starts_with(&format!("/streams/{name}/snapshot.jpg?t=")),
                "{tile}"
            ),
        }
    }

    let (_, b_width, b_height) = streams
        .iter()
        .find(|(name, _, _)| *name == "b")
        .expect("a stream `b`");
    let page = &result["stream_page"];
    assert_eq!(page["path"], "/streams/b/", "{result}");
    assert_eq!(page["naturalWidth"], *b_width, "{result}");
    assert_eq!(page["naturalHeight"], *b_height, "{result}");
    assert_eq!(page["src"], "/streams/b/stream.mjpg", "{result}");
    assert_eq!(page["home"], "/", "{result}");
    let links = page["links"].as_array().expect("links");
    assert!(links.len() >= 10, "{result}");
    for link in links {
        let link = link.as_str().unwrap_or("");
        assert!(link.starts_with("/streams/b/"), "{link} in {result}");
    }
}

/// With one stream in the file, `/` is still that stream's own MJPEG page, and `/healthz` its
/// own answer, as before there were several.
#[test]
fn one_stream_keeps_its_page_at_the_root() {
    let config = config_file(
        "one_stream_root.toml",
        &[StreamSpec::pattern("only", "320x240")],
    );
    let server = start_server(&config);
    let page = get(server.addr, "/");
    assert_eq!(page.status, 200);
    let page = page.text();
    assert!(page.contains("id=\"live\""), "{page}");
    assert!(page.contains("src=\"/stream.mjpg\""), "{page}");
    assert!(!page.contains("id=\"grid\""), "{page}");
    let healthz = get(server.addr, "/healthz");
    assert_eq!(healthz.status, 200, "{}", healthz.text());
    assert!(
        healthz.text().starts_with("ok: frames flowing"),
        "{}",
        healthz.text()
    );
}
