//! Real clients against a real server: ffmpeg and ffprobe read the stream and a snapshot, VLC
//! decodes the stream as an unprivileged user. A missing program skips its test with a notice
//! (`make test` installs them all).

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Server, require_clients, run_for_exit_code, run_with_timeout, running_as_root, unix_now_micros,
};
use framecast::picture::timestamp_strip;

/// Upper bound for an ffmpeg run that reads a few dozen frames.
const FFMPEG_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound for one ffprobe of one snapshot.
const FFPROBE_LIMIT: Duration = Duration::from_secs(30);
/// How long VLC plays: a live stream never ends, so VLC is stopped after this.
const VLC_PLAY: Duration = Duration::from_secs(6);

#[test]
fn ffmpeg_decodes_thirty_distinct_frames() {
    if !require_clients(&["ffmpeg"], "ffmpeg_decodes_thirty_distinct_frames") {
        return;
    }
    let server = Server::start(&["--no-hls"]);
    // No `-f mpjpeg`: ffmpeg finds the format from the response, as users run it.
    let (ok, out, err) = run_with_timeout(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-i",
            &server.url("/stream.mjpg"),
            "-frames:v",
            "30",
            "-f",
            "framemd5",
            "-",
        ]),
        FFMPEG_LIMIT,
    );
    assert!(ok, "ffmpeg failed: {err}");
    // framemd5 lines: stream, dts, pts, duration, size, hash.
    let frames: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(',').map(str::trim).collect())
        .collect();
    assert_eq!(frames.len(), 30, "{out}");
    // 640x360 in yuvj420p: a full decoded picture every time.
    assert!(frames.iter().all(|f| f.get(4) == Some(&"345600")), "{out}");
    let distinct: HashSet<&str> = frames.iter().filter_map(|f| f.get(5).copied()).collect();
    assert_eq!(distinct.len(), 30, "the pattern moves every frame: {out}");
}

/// The timestamp strip survives ffmpeg's decode, so a frame dump can measure latency.
#[test]
fn ffmpeg_frame_dump_carries_the_capture_time() {
    if !require_clients(&["ffmpeg"], "ffmpeg_frame_dump_carries_the_capture_time") {
        return;
    }
    let server = Server::start(&["--no-hls"]);
    let (ok, out, err) = run_gray_dump(&server.url("/stream.mjpg"));
    assert!(ok, "ffmpeg failed: {err}");
    let captured_us = timestamp_strip::decode_luma(&out, 640, 360, 640).expect("a strip");
    let age_us = unix_now_micros().saturating_sub(captured_us);
    assert!(age_us < 10_000_000, "frame is {} ms old", age_us / 1000);
}

/// One frame of `url` as raw 8-bit grey, through ffmpeg.
fn run_gray_dump(url: &str) -> (bool, Vec<u8>, String) {
    let output = Command::new("timeout")
        .args([
            &FFMPEG_LIMIT.as_secs().to_string(),
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
        ])
        .args([
            "-i",
            url,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    (
        output.status.success(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn ffprobe_validates_a_snapshot() {
    if !require_clients(&["ffprobe"], "ffprobe_validates_a_snapshot") {
        return;
    }
    // Not the default size, so the answer cannot come from a default.
    let server = Server::start(&["--size", "480x270", "--no-hls"]);
    let (ok, out, err) = run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_streams",
            "-of",
            "json",
            &server.url("/snapshot.jpg"),
        ]),
        FFPROBE_LIMIT,
    );
    assert!(ok, "ffprobe failed: {err}");
    let probe: serde_json::Value = serde_json::from_str(&out).expect("ffprobe JSON");
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "mjpeg", "{out}");
    assert_eq!(stream["width"], 480, "{out}");
    assert_eq!(stream["height"], 270, "{out}");
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
}

/// A scratch directory anyone may write to, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!(
            "framecast-{tag}-{}-{}",
            std::process::id(),
            unix_now_micros()
        ));
        std::fs::create_dir_all(&path).expect("create scratch dir");
        // VLC runs as `nobody` and writes its pictures and settings here.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .expect("chmod scratch dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// VLC's scene filter writes every decoded picture as a PNG: files there prove that VLC parsed
/// the multipart stream and decoded the JPEGs, and their strips that it decoded them right.
#[test]
fn vlc_decodes_the_stream_as_an_unprivileged_user() {
    if !require_clients(
        &["vlc", "setpriv", "ffmpeg"],
        "vlc_decodes_the_stream_as_an_unprivileged_user",
    ) {
        return;
    }
    let server = Server::start(&["--no-hls"]);
    let dir = ScratchDir::new("vlc");
    let dir_text = dir.path().to_str().expect("UTF-8 temp path");
    // VLC refuses to run as root.
    let mut command = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "vlc"]);
        c
    } else {
        Command::new("vlc")
    };
    command
        .env("HOME", dir.path())
        .args(["-I", "dummy", "--no-one-instance", "-q"])
        .args(["--vout=dummy", "--aout=dummy", "--no-audio"])
        .args([
            "--video-filter=scene",
            "--scene-format=png",
            "--scene-ratio=1",
        ])
        .args(["--scene-prefix=frame", &format!("--scene-path={dir_text}")])
        .arg(server.url("/stream.mjpg"));
    // A live stream never ends and VLC has no reliable stop for it: it is stopped at the limit.
    let (code, _out, err) = run_for_exit_code(&mut command, VLC_PLAY);
    let mut pictures: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("list scratch dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pictures.sort();
    assert!(
        pictures.len() >= 3,
        "VLC wrote {} pictures (exit {code:?}): {err}",
        pictures.len()
    );
    // The last picture's strip reads back as a capture time from this run.
    let last = pictures.last().expect("a picture");
    let (ok, grey, err) = run_gray_dump(last.to_str().expect("UTF-8 path"));
    assert!(ok, "ffmpeg cannot read VLC's picture: {err}");
    // VLC pads the picture's height to a multiple of 32; the strip is at the top either way.
    assert_eq!(grey.len() % 640, 0, "picture width");
    assert!(grey.len() >= 640 * 360, "picture size");
    let captured_us = timestamp_strip::decode_luma(&grey, 640, 360, 640).expect("a strip");
    let age_us = unix_now_micros().saturating_sub(captured_us);
    println!(
        "VLC wrote {} pictures; the last is {} ms old",
        pictures.len(),
        age_us / 1000
    );
    assert!(
        age_us < 30_000_000,
        "VLC's picture is {} ms old",
        age_us / 1000
    );
}
