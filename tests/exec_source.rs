//! Black-box tests of the command and FIFO sources.
//!
//! The real binary runs a real command (`--source exec:ffmpeg …`, or a small `sh` script where
//! the test is about exits and output rather than pictures) or reads a FIFO that a real `ffmpeg`
//! writes into, one writer after the other. The tests check what viewers get, that a command
//! that exits is started again with back-off, that its standard error reaches the log with
//! passwords masked, and that no command outlives the server.
//!
//! Every test starts its own server on 127.0.0.1:0; every loop is bounded in count and time.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use common::{MjpegReader, Server, get, require_clients, run_with_timeout, status_json};

/// How long a server may take to report a state change, with room for a busy 2-core machine.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a waiting test re-reads `/status`.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The limit for one run of a writer `ffmpeg`.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A test pattern from ffmpeg as MJPEG at 320x240, 10 fps, at its real rate (`-re`), for
/// `frames` frames or without end; `output` is `-` or a path.
fn ffmpeg_mjpeg(frames: Option<u32>, output: &str) -> String {
    let frames = frames.map_or(String::new(), |n| format!(" -frames:v {n}"));
    format!(
        "ffmpeg -hide_banner -nostdin -nostats -re -f lavfi -i testsrc2=size=320x240:rate=10\
         {frames} -f mjpeg -q:v 5 -y {output}"
    )
}

/// `/status` `source` object.
fn source_status(addr: SocketAddr) -> serde_json::Value {
    status_json(addr)["source"].clone()
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

fn state_of(source: &serde_json::Value) -> &str {
    source["state"].as_str().unwrap_or("")
}

fn restarts_of(source: &serde_json::Value) -> u64 {
    source["process"]["restarts"].as_u64().unwrap_or(0)
}

/// Width and height from a JPEG's header.
fn jpeg_size(jpeg: &[u8]) -> (usize, usize) {
    let header = turbojpeg::read_header(jpeg).expect("a JPEG header");
    (header.width, header.height)
}

/// Waits for the server's log to have a line with `text`; returns that line.
fn wait_for_log_line(server: &Server, text: &str) -> String {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        if let Some(line) = server.log_lines().into_iter().find(|l| l.contains(text)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {text:?} within {STATE_TIMEOUT:?}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Whether a process with this id exists (a reaped one has no /proc entry).
fn process_exists(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops the server as a service manager would (SIGTERM), so that it stops its command too;
/// returns once it has exited. (Dropping a `Server` kills it with SIGKILL, which leaves a
/// command that is not writing to run until its next write fails.)
fn stop_server(mut server: Server) {
    let pid = Pid::from_raw(server.pid() as i32).expect("a pid");
    kill_process(pid, Signal::Term).expect("SIGTERM to the server");
    let exit = server.wait_for_exit(STATE_TIMEOUT);
    assert!(exit.is_some(), "the server did not stop on SIGTERM");
}

/// A fresh scratch directory for this test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framecast-exec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn frames_from_an_ffmpeg_command_are_served_as_snapshots_and_mjpeg() {
    let test = "frames_from_an_ffmpeg_command_are_served_as_snapshots_and_mjpeg";
    if !require_clients(&["ffmpeg"], test) {
        return;
    }
    let source = format!("exec:{}", ffmpeg_mjpeg(None, "-"));
    let server = Server::start(&["--source", &source, "--size", "320x240", "--fps", "10"]);
    let status = wait_for_source(server.addr, "live", |s| state_of(s) == "live");
    assert!(
        status["kind"]
            .as_str()
            .unwrap_or("")
            .starts_with("exec:ffmpeg -hide_banner"),
        "{status}"
    );
    assert_eq!(status["process"]["program"], "ffmpeg", "{status}");
    assert_eq!(status["process"]["running"], true, "{status}");

    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), (320, 240));

    let mut viewer = MjpegReader::open(server.addr, "/stream.mjpg", "framecast-exec-test/1");
    assert_eq!(viewer.status, 200);
    let pictures: HashSet<Vec<u8>> = (0..10).map(|_| viewer.next_part().jpeg).collect();
    assert!(
        pictures.len() >= 5,
        "only {} different pictures in 10 parts",
        pictures.len()
    );
    assert!(pictures.iter().all(|jpeg| jpeg_size(jpeg) == (320, 240)));
    stop_server(server);
}

#[test]
fn raw_frames_from_a_command_are_read_at_the_configured_size() {
    let test = "raw_frames_from_a_command_are_read_at_the_configured_size";
    if !require_clients(&["ffmpeg"], test) {
        return;
    }
    let source = "exec:yuv420p:ffmpeg -hide_banner -nostdin -nostats -re -f lavfi \
                  -i testsrc2=size=320x240:rate=10 -f rawvideo -pix_fmt yuv420p -";
    let server = Server::start(&["--source", source, "--size", "320x240", "--fps", "10"]);
    let status = wait_for_source(server.addr, "live", |s| state_of(s) == "live");
    assert!(
        status["kind"]
            .as_str()
            .unwrap_or("")
            .starts_with("exec:yuv420p:ffmpeg"),
        "{status}"
    );
    assert_eq!(status["bad_frames"], 0, "{status}");
    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert_eq!(jpeg_size(&snapshot.body), (320, 240));
    stop_server(server);
}

#[test]
fn a_command_that_exits_is_started_again_and_video_comes_back() {
    let test = "a_command_that_exits_is_started_again_and_video_comes_back";
    if !require_clients(&["ffmpeg"], test) {
        return;
    }
    // Two seconds of video per run.
    let source = format!("exec:{}", ffmpeg_mjpeg(Some(20), "-"));
    let server = Server::start(&["--source", &source, "--size", "320x240", "--fps", "10"]);
    let restarted = wait_for_source(server.addr, "restarted twice", |s| restarts_of(s) >= 2);
    assert_eq!(
        restarted["process"]["last_exit"], "exited with status 0",
        "{restarted}"
    );
    let live = wait_for_source(server.addr, "live after a restart", |s| {
        state_of(s) == "live" && restarts_of(s) >= 2
    });
    assert!(live["reopen_attempts"].as_u64().unwrap_or(0) >= 2, "{live}");
    let frames_before = live["frames"].as_u64().unwrap_or(0);
    wait_for_source(server.addr, "delivering", |s| {
        s["frames"].as_u64().unwrap_or(0) > frames_before
    });
    let exits = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("exec:ffmpeg exited with status 0"))
        .count();
    assert!(exits >= 1, "the exit is logged");
    stop_server(server);
}

#[test]
fn a_command_that_fails_at_once_is_retried_with_back_off() {
    let test = "a_command_that_fails_at_once_is_retried_with_back_off";
    if !require_clients(&["sh"], test) {
        return;
    }
    let server = Server::start(&["--source", "exec:sh -c 'exit 7'", "--fps", "10"]);
    let first = wait_for_source(server.addr, "down", |s| {
        state_of(s) == "down" && s["process"]["last_exit"] == "exited with status 7"
    });
    let restarts_at_first = restarts_of(&first);
    // Back-off of 1 s doubling: starts at 0, 1, 3 s. Without back-off this would be hundreds.
    std::thread::sleep(Duration::from_secs(3));
    let later = source_status(server.addr);
    let restarts = restarts_of(&later) - restarts_at_first;
    assert!(restarts <= 3, "{restarts} restarts in 3 s: {later}");
    assert!(restarts >= 1, "never restarted: {later}");
    assert_eq!(later["headline"], "NO SIGNAL", "{later}");
    let error = later["last_error"].as_str().unwrap_or("");
    assert!(
        error.starts_with("exec:sh exited with status 7 after"),
        "{later}"
    );
}

#[test]
fn the_command_s_stderr_is_logged_cut_and_masked() {
    let test = "the_command_s_stderr_is_logged_cut_and_masked";
    if !require_clients(&["sh", "head", "tr"], test) {
        return;
    }
    let script = "echo framecast-stderr-line >&2; \
                  echo 'opening rtsp://admin:hunter2@cam/live?token=abc' >&2; \
                  head -c 5000 /dev/zero | tr '\\0' x >&2; echo >&2; \
                  echo framecast-stderr-done >&2; sleep 60";
    let source = format!("exec:sh -c \"{script}\" rtsp://admin:hunter2@cam/1");
    let server = Server::start(&["--source", &source, "--fps", "10"]);
    let line = wait_for_log_line(&server, "framecast-stderr-line");
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("exec:sh"),
        "the line names its source: {line}"
    );
    wait_for_log_line(&server, "framecast-stderr-done");
    let masked = wait_for_log_line(&server, "opening rtsp://");
    assert!(
        masked.contains("rtsp://admin:***@cam/live?token=***"),
        "{masked}"
    );
    let long = wait_for_log_line(&server, "xxxxxxxxxx");
    assert!(long.len() < 600, "a line of {} bytes", long.len());
    assert!(long.contains('…'), "{long}");

    let log = server.log_lines().join("\n");
    assert!(!log.contains("hunter2"), "a password in the log:\n{log}");
    let status = get(server.addr, "/status").text();
    assert!(
        !status.contains("hunter2"),
        "a password in /status: {status}"
    );
    assert!(status.contains("rtsp://admin:***@cam/1"), "{status}");
    stop_server(server);
}

#[test]
fn a_fifo_is_read_writer_after_writer() {
    let test = "a_fifo_is_read_writer_after_writer";
    if !require_clients(&["ffmpeg", "mkfifo"], test) {
        return;
    }
    let dir = scratch_dir("fifo");
    let fifo = dir.join("camera.fifo");
    let (made, _, err) = run_with_timeout(Command::new("mkfifo").arg(&fifo), CLIENT_TIMEOUT);
    assert!(made, "mkfifo: {err}");
    let fifo_text = fifo.to_str().expect("a UTF-8 path");
    let source = format!("pipe:mjpeg:{fifo_text}");
    let server = Server::start(&["--source", &source, "--size", "320x240", "--fps", "10"]);
    let waiting = source_status(server.addr);
    assert_ne!(state_of(&waiting), "live", "{waiting}");
    assert_eq!(waiting["description"], source, "{waiting}");

    let mut reopens = 0;
    for writer in 1..=2 {
        let frames_before = source_status(server.addr)["frames"].as_u64().unwrap_or(0);
        let words: Vec<String> = ffmpeg_mjpeg(Some(30), fifo_text)
            .split(' ')
            .map(String::from)
            .collect();
        let handle = std::thread::spawn(move || {
            run_with_timeout(Command::new(&words[0]).args(&words[1..]), CLIENT_TIMEOUT)
        });
        let live = wait_for_source(server.addr, "live", |s| {
            state_of(s) == "live" && s["frames"].as_u64().unwrap_or(0) > frames_before
        });
        assert!(
            live["reopen_attempts"].as_u64().unwrap_or(0) >= reopens,
            "{live}"
        );
        let snapshot = get(server.addr, "/snapshot.jpg");
        assert_eq!(jpeg_size(&snapshot.body), (320, 240));
        let (ok, _, err) = handle.join().expect("writer thread");
        assert!(ok, "writer {writer}: {err}");
        let ended = wait_for_source(server.addr, "down after the writer closed", |s| {
            state_of(s) == "down"
        });
        assert_eq!(ended["headline"], "NO SIGNAL", "{ended}");
        assert_eq!(ended["last_error"], "the pipe reached its end", "{ended}");
        reopens = 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_fifo_is_reported_and_retried() {
    let dir = scratch_dir("missing");
    let fifo = dir.join("not-yet.fifo");
    let source = format!("pipe:mjpeg:{}", fifo.display());
    let server = Server::start(&["--source", &source, "--fps", "10"]);
    let down = wait_for_source(server.addr, "down", |s| state_of(s) == "down");
    let expected = format!(
        "no FIFO at {0} (make one with `mkfifo {0}`)",
        fifo.display()
    );
    assert_eq!(down["last_error"], expected.as_str(), "{down}");
    assert_eq!(down["headline"], "SOURCE ERROR", "{down}");
    wait_for_log_line(&server, &expected);
    wait_for_source(server.addr, "retried", |s| {
        s["reopen_attempts"].as_u64().unwrap_or(0) >= 1
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_is_stopped_with_the_server() {
    let test = "the_command_is_stopped_with_the_server";
    if !require_clients(&["ffmpeg"], test) {
        return;
    }
    let source = format!("exec:{}", ffmpeg_mjpeg(None, "-"));
    let server = Server::start(&["--source", &source, "--size", "320x240", "--fps", "10"]);
    let live = wait_for_source(server.addr, "live", |s| state_of(s) == "live");
    let pid = live["process"]["pid"].as_u64().expect("the command's pid");
    assert!(process_exists(pid));
    stop_server(server);
    // Reaped by the server before it exited: no /proc entry left, not even a zombie.
    assert!(
        !process_exists(pid),
        "ffmpeg (pid {pid}) outlived the server"
    );
}
