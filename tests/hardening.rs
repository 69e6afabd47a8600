//! What a careless client or camera can do, and that framecast stays small and quiet through
//! it: black-box tests on real sockets and pipes, with figures read from `/status`.

mod common;

use std::time::{Duration, Instant};

use std::io::Write;
use std::net::TcpStream;

use common::{MjpegReader, Server, get, require_clients, status_json};

/// How long a test waits for the server to notice what it was sent.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn status_stays_small_with_many_viewers_and_huge_user_agents() {
    const VIEWERS: usize = 130;
    /// A user agent far beyond any real one.
    const AGENT_BYTES: usize = 16 * 1024;
    let server = Server::start(&["--size", "320x240", "--fps", "10", "--no-hls"]);
    let agent = "A".repeat(AGENT_BYTES);
    let viewers: Vec<MjpegReader> = (0..VIEWERS)
        .map(|_| MjpegReader::open(server.addr, "/stream.mjpg", &agent))
        .collect();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let status = loop {
        let status = status_json(server.addr);
        if status["viewer_count"].as_u64() == Some(VIEWERS as u64) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["viewer_count"], VIEWERS as u64);
    let listed = status["viewers"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 100, "details for a bounded number of viewers");
    let agent_kept = status["viewers"][0]["user_agent"].as_str().unwrap_or("");
    assert!(
        agent_kept.chars().count() <= 201,
        "{} chars",
        agent_kept.len()
    );
    // 130 viewers with 16 KB user agents would be 2 MB listed whole.
    let body = get(server.addr, "/status").body;
    assert!(body.len() < 100 * 1024, "/status is {} bytes", body.len());
    drop(viewers);
}

#[test]
fn the_soft_fd_limit_is_raised_to_the_hard_one() {
    if !require_clients(&["prlimit"], "the_soft_fd_limit_is_raised_to_the_hard_one") {
        return;
    }
    let server = Server::start_under(&["prlimit", "--nofile=256:2048"], &["--no-hls"]);
    let status = status_json(server.addr);
    // The cap sits below the raised limit, which keeps a little room for pipes and the like.
    let max = status["connections"]["max"]
        .as_u64()
        .expect("connections.max");
    assert!((1800..2048).contains(&max), "{status}");
    let logged = server.log_lines().join("\n");
    assert!(logged.contains("fd_limit=2048"), "{logged}");
}

/// The status code of a request sent on `stream` (the response head only).
fn status_of(stream: &TcpStream, path: &str) -> (u16, Vec<String>) {
    let (status, lines, _) = common::raw_get_head(stream, path);
    (status, lines)
}

#[test]
fn past_the_connection_cap_requests_get_a_fast_503() {
    if !require_clients(
        &["prlimit"],
        "past_the_connection_cap_requests_get_a_fast_503",
    ) {
        return;
    }
    let server = Server::start_under(
        &["prlimit", "--nofile=256:256"],
        &["--size", "320x240", "--fps", "5", "--no-hls"],
    );
    let addr = server.addr;
    // 256 descriptors, some kept back for what is not a client connection.
    let max = status_json(addr)["connections"]["max"]
        .as_u64()
        .expect("connections.max") as usize;
    assert!(
        (64..=200).contains(&max),
        "{max} connections of 256 descriptors"
    );
    // Idle keep-alive connections fill the cap (each has asked for /healthz once).
    let held: Vec<TcpStream> = (0..max)
        .map(|_| {
            let stream = TcpStream::connect(addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let (status, _) = status_of(&stream, "/healthz");
            assert_eq!(status, 200);
            stream
        })
        .collect();
    // Past the cap: a new connection is still accepted and answered at once.
    let extra = TcpStream::connect(addr).expect("connect past the cap");
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, head) = status_of(&extra, "/healthz");
    assert_eq!(status, 503, "{head:?}");
    assert!(
        head.iter()
            .any(|l| l.to_ascii_lowercase().starts_with("retry-after:")),
        "{head:?}"
    );
    drop(extra);
    // Room again: the monitor is answered.
    drop(held);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let response = get(addr, "/healthz");
        if response.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", response.status);
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = status_json(addr);
    assert!(
        status["connections"]["refused"].as_u64() >= Some(1),
        "{status}"
    );
}

#[test]
fn running_out_of_descriptors_is_logged_once_per_burst() {
    if !require_clients(
        &["prlimit"],
        "running_out_of_descriptors_is_logged_once_per_burst",
    ) {
        return;
    }
    /// Far more connections than descriptors.
    const CONNECTIONS: usize = 150;
    let server = Server::start_under(&["prlimit", "--nofile=96:96"], &["--no-hls"]);
    let addr = server.addr;
    let started = Instant::now();
    // The kernel completes handshakes into the listen backlog whether or not the server can
    // accept them, so every connect succeeds; the server's accepts fail once it is out of fds.
    let held: Vec<TcpStream> = (0..CONNECTIONS)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    // Let the accept loop hit the wall for a few rounds (it retries every half second).
    std::thread::sleep(Duration::from_secs(3));
    let accept_errors = || {
        server
            .log_lines()
            .iter()
            .filter(|l| l.contains("accept"))
            .count()
    };
    let lines = accept_errors();
    drop(held);
    let burst_s = started.elapsed().as_secs();
    assert!(lines >= 1, "running out of descriptors is said");
    assert!(
        lines as u64 <= 1 + burst_s / 10,
        "{lines} lines in {burst_s} s: {:#?}",
        server.log_lines()
    );
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while get(addr, "/healthz").status != 200 {
        assert!(Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_mp4_viewers_are_listed_and_one_that_stops_reading_is_dropped() {
    let server = Server::start(&["--size", "640x360", "--viewer-stall-seconds", "1"]);
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    // A small receive window, so that a viewer that does not read stalls the server quickly.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&server.addr.into()).expect("connect");
    let viewer = MjpegReader::open_on(socket.into(), "/live.mp4", "mp4-viewer");
    assert_eq!(viewer.status, 200);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let listed = loop {
        let status = status_json(server.addr);
        let listed = status["viewers"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["user_agent"] == "mp4-viewer").cloned());
        if let Some(listed) = listed.filter(|v| v["bytes_sent"].as_u64() > Some(0)) {
            break listed;
        }
        assert!(Instant::now() < deadline, "not listed: {status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(listed["kind"], "live.mp4", "{listed}");
    // It never reads: dropped and counted.
    let status = loop {
        let status = status_json(server.addr);
        if status["viewers_dropped_stalled"].as_u64() >= Some(1) {
            break status;
        }
        assert!(Instant::now() < deadline, "never dropped: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["viewer_count"], 0, "{status}");
    drop(viewer);
}

/// A source whose pictures the H.264 encoder cannot take (larger than openh264's 3840x2160):
/// MJPEG viewers and snapshots still get every picture, but HLS makes no media, and `/healthz`
/// must say so rather than answer 200 while players get nothing.
#[test]
fn healthz_is_unhealthy_while_hls_makes_no_media() {
    if !require_clients(&["ffmpeg"], "healthz_is_unhealthy_while_hls_makes_no_media") {
        return;
    }
    const FRAMES: &str = "4";
    let output = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i"])
        .args(["testsrc2=size=4096x2304:rate=5", "-frames:v", FRAMES])
        .args(["-f", "mjpeg", "-q:v", "8", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "ffmpeg made the JPEGs");
    let jpegs = output.stdout;
    let (server, mut stdin) = Server::start_with_stdin(&[
        "--source",
        "pipe:mjpeg",
        "--size",
        "1280x720",
        "--fps",
        "5",
        "--hls-segment-seconds",
        "1",
    ]);
    let addr = server.addr;
    // Feeds the pictures at about the stated rate, until the test has its answer.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        for _ in 0..200 {
            if stdin.write_all(&jpegs).is_err() || stopped.try_recv().is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(800));
        }
    });
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let health = loop {
        let health = get(addr, "/healthz");
        // Before the first frame it is 503 too ("no frame from the source yet"): wait for HLS.
        let hls_stalled = health.status == 503 && health.text().contains("HLS has made no media");
        if hls_stalled || Instant::now() > deadline {
            break health;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let status = status_json(addr);
    let snapshot = get(addr, "/snapshot.jpg");
    let _ = stop.send(());
    feeder.join().expect("feeder thread");
    assert_eq!(health.status, 503, "{}\n{status}", health.text());
    assert!(
        health.text().contains("HLS has made no media"),
        "{}",
        health.text()
    );
    assert_eq!(status["hls"]["segments"], 0, "{status}");
    assert!(status["hls"]["errors"].as_u64() > Some(0), "{status}");
    assert_eq!(snapshot.status, 200, "MJPEG still serves the picture");
}
