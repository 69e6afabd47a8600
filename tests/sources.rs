//! Black-box tests of the pipe sources and of what viewers see when a source fails.
//!
//! The real binary reads frames on standard input (`--source pipe:yuv420p` and
//! `--source pipe:mjpeg`), written either by a real `ffmpeg` or by a thread of the test. The
//! tests check what MJPEG, snapshot and HLS clients get while the pipe delivers, after it ends,
//! and around garbage, truncated JPEGs and short raw frames: the server keeps serving
//! placeholder pictures at the configured size and rate, `/status` and `/healthz` say what is
//! wrong, and good frames on the same pipe bring the video back.
//!
//! Every test starts its own server on 127.0.0.1:0; every loop is bounded in count and time.
//! Tests of an external program are skipped, with a notice, where it is missing.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use common::{
    MjpegReader, Server, get, require_clients, run_with_timeout, status_json, unix_now_micros,
};
use framecast::frame::FrameSize;
use framecast::source::TestPattern;
use framecast::source::timestamp_strip;

/// How long a server may take to report a state or a playlist change, with room for a busy
/// 2-core machine (they take well under a second when it is idle).
const STATE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a waiting test re-reads `/status` or a playlist.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The limit for an external program run on a local file.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The rate every test's source runs at: low enough to be cheap, high enough for smooth timing.
const FPS: u32 = 25;
/// The interval between frames at [`FPS`].
const FRAME_INTERVAL: Duration = Duration::from_millis(1000 / FPS as u64);
/// A writer thread stops by itself after this long, whatever the test does.
const WRITER_LIMIT: Duration = Duration::from_secs(60);
/// Share of pixels that must be clearly coloured for a picture to count as video: the test
/// patterns are mostly colour bars; placeholders are grey (neutral chroma) throughout.
const MIN_COLOURED_SHARE: f64 = 0.2;
/// A pixel whose RGB channels spread over more than this is "clearly coloured".
const COLOURED_SPREAD: u8 = 64;
/// At most this share of a placeholder's pixels may look coloured (JPEG ringing at edges).
const MAX_PLACEHOLDER_COLOURED_SHARE: f64 = 0.01;
/// A placeholder's timestamp strip may lag the wall clock by this much: rendering, JPEG
/// encoding and a busy machine, with margin.
const MAX_PLACEHOLDER_AGE_US: u64 = 2_000_000;

// ----- pictures ---------------------------------------------------------------------------------

/// Width and height from a JPEG's header.
fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    let header = turbojpeg::read_header(jpeg).expect("a JPEG header");
    (header.width, header.height)
}

/// The share of pixels whose colour channels differ by more than [`COLOURED_SPREAD`].
fn coloured_share(jpeg: &[u8]) -> f64 {
    let image = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::RGB).expect("decodes");
    coloured_share_rgb(&image.pixels)
}

fn coloured_share_rgb(rgb: &[u8]) -> f64 {
    let pixels = rgb.len() / 3;
    let coloured = rgb
        .chunks_exact(3)
        .filter(|p| {
            let (min, max) = (p.iter().min().unwrap(), p.iter().max().unwrap());
            max - min > COLOURED_SPREAD
        })
        .count();
    coloured as f64 / pixels.max(1) as f64
}

/// Whether a JPEG is a picture from the source (colourful) rather than a grey placeholder.
fn is_video(jpeg: &[u8]) -> bool {
    coloured_share(jpeg) >= MIN_COLOURED_SHARE
}

/// The capture time a picture's timestamp strip carries, decoded from its grey levels as a
/// client would.
fn strip_time_micros(jpeg: &[u8]) -> Option<u64> {
    let grey = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::GRAY).expect("decodes");
    timestamp_strip::decode_luma(&grey.pixels, grey.width, grey.height, grey.pitch)
}

/// Checks that `jpeg` is a placeholder: `size`, grey, and stamped with a recent time.
fn assert_placeholder(jpeg: &[u8], size: (usize, usize), what: &str) {
    assert_eq!(jpeg_size(jpeg), size, "{what}: placeholder size");
    let share = coloured_share(jpeg);
    assert!(
        share <= MAX_PLACEHOLDER_COLOURED_SHARE,
        "{what}: a placeholder is grey, {share:.3} of it is coloured"
    );
    let stamped = strip_time_micros(jpeg).unwrap_or_else(|| panic!("{what}: no timestamp strip"));
    let now = unix_now_micros();
    assert!(
        now.abs_diff(stamped) <= MAX_PLACEHOLDER_AGE_US,
        "{what}: strip says {stamped}, now is {now}"
    );
}

/// Whether the JPEG carries a DHT segment before its first scan (ITU-T T.81 §B.2.4.2): the
/// tables browsers need, which a passthrough must keep.
fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        match jpeg[at + 1] {
            0xC4 => return true,
            0xDA | 0xD9 => return false,
            0xFF => at += 1,
            _ => at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]])),
        }
    }
    false
}

/// Distinct test-pattern frames of `size`, as I420.
fn pattern_frames(size: FrameSize, count: u64) -> Vec<Vec<u8>> {
    let mut pattern = TestPattern::new(size, FPS);
    (1..=count)
        .map(|seq| {
            let mut i420 = vec![0; size.i420_len()];
            pattern.render(seq, SystemTime::now(), &mut i420);
            i420
        })
        .collect()
}

/// Distinct test-pattern frames of `size`, as JPEGs (with Huffman tables, as libjpeg-turbo
/// writes them).
fn pattern_jpegs(size: FrameSize, count: u64) -> Vec<Vec<u8>> {
    pattern_frames(size, count)
        .iter()
        .map(|i420| {
            let image = turbojpeg::YuvImage {
                pixels: &i420[..],
                width: size.width as usize,
                align: 1,
                height: size.height as usize,
                subsamp: turbojpeg::Subsamp::Sub2x2,
            };
            turbojpeg::compress_yuv(image, 80).unwrap().to_vec()
        })
        .collect()
}

/// Bytes with no 0xFF in them, so nothing in them can look like a JPEG marker.
fn garbage(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 24) as u8).min(0xFE)
        })
        .collect()
}

// ----- feeding the pipe -------------------------------------------------------------------------

/// A writer thread that plays frames into the server's standard input at [`FPS`], cycling
/// through them, until stopped, until `limit` frames are written, or for [`WRITER_LIMIT`].
/// Stopping gives the pipe back, so the test can write something else into it.
struct Writer {
    stop: Arc<AtomicBool>,
    /// When each frame was written.
    written_at: Arc<Mutex<Vec<Instant>>>,
    thread: JoinHandle<ChildStdin>,
}

impl Writer {
    fn start(mut stdin: ChildStdin, frames: Vec<Vec<u8>>, limit: Option<usize>) -> Self {
        assert!(!frames.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let written_at = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, written_at) = (stop.clone(), written_at.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let count = limit.unwrap_or(usize::MAX);
                for (n, frame) in frames.iter().cycle().take(count).enumerate() {
                    let due = started + FRAME_INTERVAL * n as u32;
                    let now = Instant::now();
                    if stop.load(Ordering::Relaxed) || now - started > WRITER_LIMIT {
                        break;
                    }
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    if stdin.write_all(frame).and_then(|()| stdin.flush()).is_err() {
                        break;
                    }
                    written_at.lock().unwrap().push(Instant::now());
                }
                stdin
            })
        };
        Self {
            stop,
            written_at,
            thread,
        }
    }

    /// Stops (or waits for the end of a limited run) and gives the pipe back.
    fn stop(self) -> (ChildStdin, Vec<Instant>) {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }

    /// Waits until the writer has written its `limit` frames.
    fn finish(self) -> (ChildStdin, Vec<Instant>) {
        let stdin = self.thread.join().expect("writer thread");
        let written_at = self.written_at.lock().unwrap().clone();
        (stdin, written_at)
    }
}

/// A real ffmpeg whose standard output is copied into the server's standard input; when
/// ffmpeg ends, the copy ends and the server's input reaches its end.
struct Ffmpeg {
    child: Child,
}

impl Ffmpeg {
    fn feed(mut stdin: ChildStdin, args: &[&str]) -> Self {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ffmpeg");
        let mut stdout = child.stdout.take().expect("ffmpeg stdout");
        // Ends when ffmpeg closes its output (done or killed) or the server stops reading.
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

// ----- what the server says ---------------------------------------------------------------------

/// `/status` `source` object.
fn source_status(addr: SocketAddr) -> serde_json::Value {
    status_json(addr)["source"].clone()
}

fn state_of(source: &serde_json::Value) -> &str {
    source["state"].as_str().unwrap_or("")
}

fn count_of(source: &serde_json::Value, name: &str) -> u64 {
    source[name]
        .as_u64()
        .unwrap_or_else(|| panic!("source.{name} is not a count: {source}"))
}

/// Re-reads `/status` until `ready` holds for its `source`; returns that `source`.
fn wait_for_source(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let source = source_status(addr);
        if ready(&source) {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "source not {what} within {STATE_TIMEOUT:?}: {source}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn wait_for_state(addr: SocketAddr, state: &str) -> serde_json::Value {
    wait_for_source(addr, state, |s| state_of(s) == state)
}

/// One `/snapshot.jpg`, checked to be a JPEG.
fn snapshot(addr: SocketAddr) -> Vec<u8> {
    let response = get(addr, "/snapshot.jpg");
    assert_eq!(response.status, 200, "/snapshot.jpg: {}", response.text());
    assert_eq!(response.header("content-type"), Some("image/jpeg"));
    response.body
}

/// Snapshots until one is video from the source (a placeholder may still be the newest
/// picture for a moment after the source comes back).
fn video_snapshot(addr: SocketAddr) -> Vec<u8> {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let jpeg = snapshot(addr);
        if is_video(&jpeg) {
            return jpeg;
        }
        assert!(Instant::now() < deadline, "no snapshot of video");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Opens `/stream.mjpg` as a non-browser client.
fn mjpeg_viewer(addr: SocketAddr) -> MjpegReader {
    let viewer = MjpegReader::open(addr, "/stream.mjpg", "framecast-sources-test/1");
    assert_eq!(viewer.status, 200);
    viewer
}

/// Reads parts until `wanted` holds for one (bounded in count); returns it.
fn part_where(viewer: &mut MjpegReader, what: &str, wanted: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    for _ in 0..200 {
        let part = viewer.next_part();
        if wanted(&part.jpeg) {
            return part.jpeg;
        }
    }
    panic!("no part {what} among 200");
}

/// A viewer on its own thread, keeping every part it receives with the time it arrived.
fn record_parts(
    mut viewer: MjpegReader,
    duration: Duration,
) -> JoinHandle<Vec<(Instant, Vec<u8>)>> {
    std::thread::spawn(move || {
        let until = Instant::now() + duration;
        let mut parts = Vec::new();
        while Instant::now() < until {
            let jpeg = viewer.next_part().jpeg;
            parts.push((Instant::now(), jpeg));
        }
        parts
    })
}

// ----- HLS --------------------------------------------------------------------------------------

/// The parts of a media playlist these tests look at.
#[derive(Debug)]
struct MediaPlaylist {
    text: String,
    target_duration_s: u64,
    map_uri: String,
    /// Complete segments as (Media Sequence Number, URI).
    segments: Vec<(u64, String)>,
}

impl MediaPlaylist {
    fn parse(text: &str) -> Self {
        let tag = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name}:\n{text}"))
                .to_owned()
        };
        let media_sequence: u64 = tag("#EXT-X-MEDIA-SEQUENCE:").parse().unwrap();
        let map = tag("#EXT-X-MAP:");
        let map_uri = map
            .split_once("URI=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(uri, _)| uri.to_owned())
            .unwrap_or_else(|| panic!("EXT-X-MAP without URI: {map}"));
        let segments = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
            .map(|(i, uri)| (media_sequence + i as u64, uri.to_owned()))
            .collect();
        Self {
            text: text.to_owned(),
            target_duration_s: tag("#EXT-X-TARGETDURATION:").parse().unwrap(),
            map_uri,
            segments,
        }
    }

    fn newest_msn(&self) -> u64 {
        self.segments.last().map_or(0, |(msn, _)| *msn)
    }
}

/// The media playlist's directory (`/hls/{start_id}/`), once `/live.m3u8` answers.
fn hls_prefix(addr: SocketAddr) -> String {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let response = get(addr, "/live.m3u8");
        if response.status == 200 {
            let text = response.text();
            let uri = text
                .lines()
                .rfind(|l| !l.is_empty() && !l.starts_with('#'))
                .unwrap_or_else(|| panic!("no variant URI:\n{text}"));
            let dir = uri
                .strip_suffix("media.m3u8")
                .unwrap_or_else(|| panic!("variant URI {uri}"));
            return format!("/{dir}");
        }
        assert!(Instant::now() < deadline, "/live.m3u8: {}", response.status);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn media_playlist(addr: SocketAddr, prefix: &str) -> MediaPlaylist {
    let response = get(addr, &format!("{prefix}media.m3u8"));
    assert_eq!(response.status, 200, "media playlist: {}", response.text());
    MediaPlaylist::parse(&response.text())
}

/// Re-reads the media playlist until its newest complete segment is at least `msn`.
fn wait_for_msn(addr: SocketAddr, prefix: &str, msn: u64) -> MediaPlaylist {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let playlist = media_playlist(addr, prefix);
        if !playlist.segments.is_empty() && playlist.newest_msn() >= msn {
            return playlist;
        }
        assert!(
            Instant::now() < deadline,
            "no segment {msn} within {STATE_TIMEOUT:?}:\n{}",
            playlist.text
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A scratch file path under the system temp dir, unique to this process and `name`.
fn scratch_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("framecast-sources-{}-{name}", std::process::id()))
}

// ----- tests ------------------------------------------------------------------------------------

#[test]
fn raw_frames_from_ffmpeg_are_served_as_snapshots_and_mjpeg() {
    if !require_clients(
        &["ffmpeg"],
        "raw_frames_from_ffmpeg_are_served_as_snapshots_and_mjpeg",
    ) {
        return;
    }
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:yuv420p",
        "--size",
        "320x240",
        "--fps",
        "25",
        "--no-hls",
    ]);
    let _ffmpeg = Ffmpeg::feed(
        stdin,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "6",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ],
    );
    let source = wait_for_state(server.addr, "live");
    assert_eq!(source["kind"], "pipe:yuv420p", "{source}");

    let first = video_snapshot(server.addr);
    assert_eq!(jpeg_size(&first), (320, 240));
    std::thread::sleep(Duration::from_millis(500));
    let second = video_snapshot(server.addr);
    assert_eq!(jpeg_size(&second), (320, 240));
    assert_ne!(first, second, "the picture moves between snapshots");

    let mut viewer = mjpeg_viewer(server.addr);
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let jpeg = part_where(&mut viewer, "of video", is_video);
        assert_eq!(jpeg_size(&jpeg), (320, 240));
        seen.insert(jpeg);
    }
    assert!(
        seen.len() >= 5,
        "only {} different pictures in 10 parts",
        seen.len()
    );
    assert_eq!(state_of(&source_status(server.addr)), "live");
}

#[test]
fn jpegs_from_ffmpeg_pass_through_to_mjpeg_and_feed_hls() {
    let test = "jpegs_from_ffmpeg_pass_through_to_mjpeg_and_feed_hls";
    if !require_clients(&["ffmpeg", "ffprobe"], test) {
        return;
    }
    let (server, stdin) =
        Server::start_with_stdin(&["--source", "pipe:mjpeg", "--size", "640x480", "--fps", "25"]);
    let addr = server.addr;
    let _ffmpeg = Ffmpeg::feed(
        stdin,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x480:rate=25",
            "-t",
            "10",
            "-f",
            "mjpeg",
            "-q:v",
            "5",
            "-",
        ],
    );
    wait_for_state(addr, "live");

    let mut viewer = mjpeg_viewer(addr);
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let jpeg = part_where(&mut viewer, "of video", is_video);
        assert_eq!(jpeg_size(&jpeg), (640, 480));
        assert!(has_huffman_tables(&jpeg), "ffmpeg's JPEGs carry DHT");
        seen.insert(jpeg);
    }
    assert!(
        seen.len() >= 5,
        "only {} different pictures in 10 parts",
        seen.len()
    );

    // A segment that starts after the pipe went live holds only frames from ffmpeg.
    let prefix = hls_prefix(addr);
    let live_at = media_playlist(addr, &prefix).newest_msn();
    let playlist = wait_for_msn(addr, &prefix, live_at + 2);
    let (_, uri) = playlist.segments.last().unwrap().clone();
    let init = get(addr, &format!("{prefix}{}", playlist.map_uri));
    let segment = get(addr, &format!("{prefix}{uri}"));
    assert_eq!((init.status, segment.status), (200, 200), "{uri}");
    let file = scratch_file("pipe-segment.mp4");
    std::fs::write(&file, [init.body, segment.body].concat()).unwrap();

    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=codec_name,width,height"])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&file),
        CLIENT_TIMEOUT,
    );
    assert!(ok && stderr.trim().is_empty(), "ffprobe: {stderr}");
    for want in ["codec_name=h264", "width=640", "height=480"] {
        assert!(stdout.lines().any(|l| l == want), "{want}:\n{stdout}");
    }

    // Its first picture is ffmpeg's colourful test source, not a grey placeholder.
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout.len(), 640 * 480 * 3);
    let share = coloured_share_rgb(&output.stdout);
    assert!(
        share >= MIN_COLOURED_SHARE,
        "segment picture coloured share {share:.3}"
    );
}

#[test]
fn the_end_of_the_pipe_gives_placeholders_and_hls_keeps_its_cadence() {
    const SIZE: FrameSize = FrameSize::new(320, 240);
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:yuv420p",
        "--size",
        "320x240",
        "--fps",
        "25",
    ]);
    let addr = server.addr;
    let writer = Writer::start(stdin, pattern_frames(SIZE, 50), None);
    wait_for_state(addr, "live");
    let mut viewer = mjpeg_viewer(addr);
    part_where(&mut viewer, "of video", is_video);
    let prefix = hls_prefix(addr);
    let before = wait_for_msn(addr, &prefix, 1);
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200, "/healthz while live: {}", health.text());

    // Closing the pipe is the end of the source.
    let (stdin, _) = writer.stop();
    drop(stdin);
    let ended = Instant::now();
    let down = wait_for_state(addr, "down");
    assert_eq!(down["headline"], "NO SIGNAL", "{down}");
    assert!(
        down["last_error"].as_str().unwrap_or("").contains("end"),
        "{down}"
    );

    // The viewer stays connected and gets placeholders at the configured size and rate,
    // each stamped with its time.
    let placeholder = part_where(&mut viewer, "placeholder", |j| !is_video(j));
    assert_placeholder(&placeholder, (320, 240), "first placeholder");
    let counted_from = Instant::now();
    let mut parts = 0;
    while counted_from.elapsed() < Duration::from_secs(1) {
        let jpeg = viewer.next_part().jpeg;
        assert_placeholder(&jpeg, (320, 240), "later placeholder");
        parts += 1;
    }
    assert!(
        parts >= 10,
        "only {parts} placeholders in a second at 25 fps"
    );

    let health = get(addr, "/healthz");
    let body = health.text();
    assert_eq!(health.status, 503, "/healthz while down: {body}");
    assert!(body.contains("NO SIGNAL") || body.contains("end"), "{body}");

    // Reopening is retried with back-off: attempts at about 1 s and 3 s after the end.
    let first = source_status(addr);
    let retried = wait_for_source(addr, "reopened", |s| {
        count_of(s, "reopen_attempts") > count_of(&first, "reopen_attempts")
    });
    assert_eq!(state_of(&retried), "down", "{retried}");
    assert!(ended.elapsed() < Duration::from_secs(10));
    // A clean end is no bad frame: one error for the end, one per reopen that found it.
    assert!(
        count_of(&retried, "errors") <= count_of(&retried, "reopen_attempts") + 2,
        "{retried}"
    );

    // HLS keeps its cadence: new segments after the end, same TARGETDURATION.
    let at_end = media_playlist(addr, &prefix);
    let after = wait_for_msn(addr, &prefix, at_end.newest_msn() + 2);
    assert_eq!(
        after.target_duration_s, before.target_duration_s,
        "{}",
        after.text
    );
    assert_eq!(at_end.target_duration_s, before.target_duration_s);
}

#[test]
fn bad_jpegs_and_garbage_are_survived_and_good_jpegs_bring_video_back() {
    // JPEGs of another size than --size, so pictures from the pipe and placeholders differ.
    const JPEG_SIZE: FrameSize = FrameSize::new(640, 480);
    let (server, stdin) =
        Server::start_with_stdin(&["--source", "pipe:mjpeg", "--size", "320x240", "--fps", "25"]);
    let addr = server.addr;
    let jpegs = pattern_jpegs(JPEG_SIZE, 25);
    let sent: HashSet<Vec<u8>> = jpegs.iter().cloned().collect();
    let writer = Writer::start(stdin, jpegs.clone(), None);
    wait_for_state(addr, "live");

    // JPEGs with Huffman tables reach viewers byte for byte.
    let mut viewer = mjpeg_viewer(addr);
    for _ in 0..5 {
        let jpeg = part_where(&mut viewer, "of video", |j| jpeg_size(j) == (640, 480));
        assert!(
            sent.contains(&jpeg),
            "a part differs from every JPEG written"
        );
    }
    let base = source_status(addr);

    // A fake start of image followed by garbage, then a JPEG cut short by the next one.
    let (mut stdin, _) = writer.stop();
    let mut bad = b"\xFF\xD8\xFF\x00".to_vec();
    bad.extend(garbage(4096));
    bad.extend_from_slice(&jpegs[0][..jpegs[0].len() / 2]);
    stdin.write_all(&bad).unwrap();
    let writer = Writer::start(stdin, jpegs.clone(), None);
    let recovered = wait_for_source(addr, "live after two bad frames", |s| {
        state_of(s) == "live" && count_of(s, "errors") >= count_of(&base, "errors") + 2
    });
    let last_error = recovered["last_error"].as_str().unwrap_or("");
    assert!(
        last_error.contains("cut short") || last_error.contains("truncated"),
        "{recovered}"
    );
    assert_eq!(
        count_of(&recovered, "reopen_attempts"),
        0,
        "a bad frame is not a reopen"
    );
    let jpeg = video_snapshot(addr);
    assert_eq!(jpeg_size(&jpeg), (640, 480));
    assert!(sent.contains(&jpeg));

    // Garbage without a single frame for over a second: the source is down, viewers get
    // placeholders at --size, the pipe stays open.
    let (mut stdin, _) = writer.stop();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        stdin.write_all(&garbage(16 * 1024)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = wait_for_state(addr, "down");
    assert!(
        count_of(&down, "errors") > count_of(&recovered, "errors"),
        "{down}"
    );
    // A new viewer: the first one's socket still holds pictures from before.
    let mut viewer = mjpeg_viewer(addr);
    let placeholder = part_where(&mut viewer, "placeholder", |j| jpeg_size(j) == (320, 240));
    assert_placeholder(&placeholder, (320, 240), "placeholder during garbage");
    assert_eq!(get(addr, "/healthz").status, 503);

    // Good JPEGs on the same pipe bring the video back.
    let writer = Writer::start(stdin, jpegs, None);
    wait_for_state(addr, "live");
    let jpeg = part_where(&mut viewer, "of video", |j| jpeg_size(j) == (640, 480));
    assert!(sent.contains(&jpeg));
    assert_eq!(jpeg_size(&video_snapshot(addr)), (640, 480));
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200, "{}", health.text());
    let (stdin, _) = writer.stop();
    drop(stdin);
}

#[test]
fn a_short_raw_frame_at_the_end_is_a_bad_frame() {
    const SIZE: FrameSize = FrameSize::new(320, 240);
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:yuv420p",
        "--size",
        "320x240",
        "--fps",
        "25",
        "--no-hls",
    ]);
    let addr = server.addr;
    let frames = pattern_frames(SIZE, 10);
    let writer = Writer::start(stdin, frames.clone(), None);
    wait_for_state(addr, "live");
    let (mut stdin, _) = writer.stop();
    let base = source_status(addr);

    // Half a frame, then the end: a bad frame, then the end of the pipe.
    stdin.write_all(&frames[0][..SIZE.i420_len() / 2]).unwrap();
    drop(stdin);
    // "BAD FRAME" for the short frame, at once followed by "NO SIGNAL" for the end.
    wait_for_source(addr, "down for the end", |s| {
        state_of(s) == "down" && s["headline"] == "NO SIGNAL"
    });

    // Each reopen finds the end again and counts one error; the short frame is one more than
    // a clean end gives. Read until both are counted (the reopen is a second away).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let source = source_status(addr);
        let new_errors = count_of(&source, "errors") - count_of(&base, "errors");
        let reopens = count_of(&source, "reopen_attempts") - count_of(&base, "reopen_attempts");
        if new_errors >= reopens + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short frame was not counted as an error: before {base}, now {source}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    // Still serving: placeholders at the configured size.
    let mut viewer = mjpeg_viewer(addr);
    let jpeg = viewer.next_part().jpeg;
    assert_placeholder(&jpeg, (320, 240), "placeholder after a short frame");
}

#[test]
fn drop_same_frames_sends_a_repeated_jpeg_once_and_hls_goes_on() {
    const SIZE: FrameSize = FrameSize::new(320, 240);
    /// Phases of the script, in frames at 25 fps.
    const MOVING: usize = 25;
    const STILL: usize = 100;
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:mjpeg",
        "--size",
        "320x240",
        "--fps",
        "25",
        "--drop-same-frames",
    ]);
    let addr = server.addr;
    let jpegs = pattern_jpegs(SIZE, 2 * MOVING as u64);
    let still = jpegs[MOVING].clone();
    let warmup = Writer::start(stdin, jpegs[..MOVING].to_vec(), None);
    wait_for_state(addr, "live");
    let prefix = hls_prefix(addr);
    let viewer = mjpeg_viewer(addr);
    let (stdin, _) = warmup.stop();

    // Moving, then the same JPEG for 4 s, then moving again.
    let mut script = jpegs[..MOVING].to_vec();
    script.extend(std::iter::repeat_n(still.clone(), STILL));
    script.extend_from_slice(&jpegs[MOVING..]);
    let frames = script.len();
    let recorder = record_parts(
        viewer,
        FRAME_INTERVAL * frames as u32 + Duration::from_millis(500),
    );
    let writer = Writer::start(stdin, script, Some(frames));
    std::thread::sleep(FRAME_INTERVAL * (MOVING as u32 + 5));
    let still_from = media_playlist(addr, &prefix);
    std::thread::sleep(FRAME_INTERVAL * (STILL as u32 - 10));
    let still_to = media_playlist(addr, &prefix);
    let (stdin, written_at) = writer.finish();
    let parts = recorder.join().expect("viewer thread");
    drop(stdin);
    assert_eq!(written_at.len(), frames);

    // Parts that arrived while the still frames were being written, after the first of them
    // had time to arrive.
    let (start, end) = (
        written_at[MOVING] + Duration::from_millis(200),
        written_at[MOVING + STILL - 1],
    );
    let during: Vec<&Vec<u8>> = parts
        .iter()
        .filter(|(at, _)| (start..=end).contains(at))
        .map(|(_, jpeg)| jpeg)
        .collect();
    assert!(
        during.iter().all(|jpeg| **jpeg == still),
        "only the still JPEG is sent while it repeats"
    );
    // The still frame is sent once, then re-sent after each pause of a second.
    assert!(
        during.len() <= 6,
        "{} parts for {STILL} identical frames in 4 s",
        during.len()
    );
    let moving: HashSet<&Vec<u8>> = parts
        .iter()
        .filter(|(at, _)| *at < written_at[MOVING])
        .map(|(_, jpeg)| jpeg)
        .collect();
    assert!(
        moving.len() >= 10,
        "only {} different moving pictures",
        moving.len()
    );
    // Over the whole script, far fewer parts than frames.
    assert!(
        parts.len() * 10 < frames * 6,
        "{} parts for {frames} frames of which {STILL} are the same",
        parts.len()
    );

    // HLS encodes every frame, still or not: segments keep coming.
    assert!(
        still_to.newest_msn() >= still_from.newest_msn() + 2,
        "HLS stalled while frames repeated:\n{}\n{}",
        still_from.text,
        still_to.text
    );
}

#[test]
fn garbage_on_an_mjpeg_pipe_is_reported_as_bad_frames() {
    const SIZE: FrameSize = FrameSize::new(320, 240);
    /// Garbage is written for this long; it must be reported well within it.
    const GARBAGE_FOR: Duration = Duration::from_secs(3);
    let (server, stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:mjpeg",
        "--size",
        "320x240",
        "--fps",
        "25",
        "--no-hls",
    ]);
    let addr = server.addr;
    let jpegs = pattern_jpegs(SIZE, 10);
    let writer = Writer::start(stdin, jpegs.clone(), None);
    wait_for_state(addr, "live");
    let (mut stdin, _) = writer.stop();

    // A steady stream of bytes without a single JPEG in it: the pipe is not silent, its data
    // is bad, and /status should say so rather than "no frame".
    let garbage_thread = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < GARBAGE_FOR {
            stdin.write_all(&garbage(64 * 1024)).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        stdin
    });
    let deadline = Instant::now() + GARBAGE_FOR;
    let mut source = source_status(addr);
    while Instant::now() < deadline && source["headline"] != "BAD FRAME" {
        std::thread::sleep(POLL_INTERVAL);
        source = source_status(addr);
    }
    assert_eq!(source["headline"], "BAD FRAME", "{source}");
    assert!(
        source["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("bytes"),
        "the reason says how much was skipped: {source}"
    );

    let stdin = garbage_thread.join().expect("garbage writer");
    let writer = Writer::start(stdin, jpegs, None);
    wait_for_state(addr, "live");
    let (stdin, _) = writer.stop();
    drop(stdin);
}
