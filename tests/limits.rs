//! Viewer limits per stream and in total, and the connection limit per client address: raw
//! sockets hold viewers and connections open, `/status` says what the server counted.

mod common;

use std::io::BufRead;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, status_json, wait_for_status};

/// How long a test waits for the server to notice a viewer that left.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// A viewer held open by its socket: the server counts it until the socket closes. The test
/// never reads the body; the stall limit is raised so that the server does not drop it.
struct Held {
    status: u16,
    head: Vec<String>,
    body: String,
    _socket: TcpStream,
}

/// Sends `GET path` on a new connection and reads the response head, and for a refusal its
/// one-line body; the connection stays open with the response going on.
fn open(addr: SocketAddr, path: &str) -> Held {
    let socket = TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, head, body) = send(&socket, path);
    Held {
        status,
        head,
        body,
        _socket: socket,
    }
}

/// Sends `GET path` on `socket` and reads the status, the head's lines, and for a 503 the
/// first line of its body (the reason).
fn send(socket: &TcpStream, path: &str) -> (u16, Vec<String>, String) {
    let (status, lines, mut reader) = common::raw_get_head(socket, path);
    let mut body = String::new();
    if status == 503 {
        reader.read_line(&mut body).expect("the reason");
    }
    (status, lines, body)
}

fn has_header(head: &[String], name: &str) -> bool {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.iter()
        .any(|l| l.to_ascii_lowercase().starts_with(&prefix))
}

fn assert_refused(viewer: &Held, reason: &str) {
    assert_eq!(viewer.status, 503, "{:?}", viewer.head);
    assert!(has_header(&viewer.head, "Retry-After"), "{:?}", viewer.head);
    assert!(viewer.body.contains(reason), "{:?}", viewer.body);
}

/// A configuration file in this test binary's scratch directory.
fn config_file(file_name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file_name);
    std::fs::write(&path, text).expect("write the configuration file");
    path
}

fn start(config: &Path) -> Server {
    Server::start(&[
        "--config",
        config.to_str().expect("a UTF-8 path"),
        "--viewer-stall-seconds",
        "600",
    ])
}

#[test]
fn a_streams_own_limit_counts_mjpeg_and_live_mp4_viewers_and_frees_slots_as_they_leave() {
    let config = config_file(
        "own-limit.toml",
        "[[streams]]\nname = \"a\"\nsource = \"test\"\nsize = \"320x240\"\nfps = 5\n\
         max_viewers = 2\n\n\
         [[streams]]\nname = \"b\"\nsource = \"test\"\nsize = \"320x240\"\nfps = 5\nhls = \"off\"\n",
    );
    let server = start(&config);
    let addr = server.addr;
    let mjpeg = open(addr, "/streams/a/stream.mjpg");
    let mp4 = open(addr, "/streams/a/live.mp4");
    assert_eq!((mjpeg.status, mp4.status), (200, 200), "{:?}", mp4.head);
    let third = open(addr, "/streams/a/stream.mjpg");
    assert_refused(&third, "this stream has its maximum of 2 viewers");
    let fourth = open(addr, "/streams/a/live.mp4");
    assert_refused(&fourth, "this stream has its maximum of 2 viewers");
    // The other stream has no limit of its own.
    let other = open(addr, "/streams/b/stream.mjpg");
    assert_eq!(other.status, 200);

    let status = status_json(addr);
    let a = &status["streams"][0];
    assert_eq!(a["max_viewers"], 2, "{status}");
    assert_eq!(a["viewer_count"], 2, "{status}");
    assert_eq!(a["viewers_refused"], 2, "{status}");
    assert_eq!(status["streams"][1]["max_viewers"], serde_json::Value::Null);
    assert_eq!(status["viewer_limits"]["viewers"], 3, "{status}");
    assert_eq!(
        status["viewer_limits"]["refused_stream_limit"], 2,
        "{status}"
    );

    // A viewer leaves: its slot is free again once the server has seen it go.
    drop(mp4);
    wait_for_status(addr, "a slot freed", SETTLE_LIMIT, POLL, |s| {
        s["streams"][0]["viewer_count"] == 1
    });
    let again = open(addr, "/streams/a/live.mp4");
    assert_eq!(again.status, 200, "{:?}", again.head);
    drop((mjpeg, third, fourth, other, again));
}

#[test]
fn the_limit_in_total_spans_every_stream() {
    let config = config_file(
        "total-limit.toml",
        "max_viewers = 2\nhls = \"off\"\nsize = \"320x240\"\nfps = 5\n\n\
         [[streams]]\nname = \"a\"\nsource = \"test\"\n\n\
         [[streams]]\nname = \"b\"\nsource = \"test\"\n",
    );
    let server = start(&config);
    let addr = server.addr;
    let on_a = open(addr, "/streams/a/stream.mjpg");
    let on_b = open(addr, "/streams/b/stream.mjpg");
    assert_eq!((on_a.status, on_b.status), (200, 200));
    let refused_a = open(addr, "/streams/a/stream.mjpg");
    assert_refused(&refused_a, "the server has its maximum of 2 viewers");
    let refused_root = open(addr, "/stream.mjpg");
    assert_refused(&refused_root, "the server has its maximum of 2 viewers");
    // Other resources are not viewers: still answered.
    let snapshot = common::get(addr, "/streams/b/snapshot.jpg");
    assert_eq!(snapshot.status, 200);

    let status = status_json(addr);
    let limits = &status["viewer_limits"];
    assert_eq!(limits["max_viewers"], 2, "{status}");
    assert_eq!(limits["viewers"], 2, "{status}");
    assert_eq!(limits["refused_total_limit"], 2, "{status}");
    assert_eq!(status["totals"]["viewer_count"], 2, "{status}");

    drop(on_a);
    wait_for_status(addr, "a slot freed", SETTLE_LIMIT, POLL, |s| {
        s["viewer_limits"]["viewers"] == 1
    });
    let on_b_again = open(addr, "/streams/b/stream.mjpg");
    assert_eq!(on_b_again.status, 200, "{:?}", on_b_again.head);
    drop((on_b, refused_a, refused_root, on_b_again));
}

#[test]
fn the_flag_sets_the_limit_in_total() {
    let server = Server::start(&[
        "--size",
        "320x240",
        "--fps",
        "5",
        "--no-hls",
        "--max-viewers",
        "1",
        "--viewer-stall-seconds",
        "600",
    ]);
    let first = open(server.addr, "/stream.mjpg");
    assert_eq!(first.status, 200);
    let second = open(server.addr, "/stream.mjpg");
    assert_refused(&second, "the server has its maximum of 1 viewers");
    drop((first, second));
}

/// Idle keep-alive connections, each having been answered once.
fn hold_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|i| {
            let socket = TcpStream::connect(addr).expect("connect");
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let (status, head, _) = send(&socket, "/healthz");
            assert_eq!(status, 200, "connection {i}: {head:?}");
            socket
        })
        .collect()
}

#[test]
fn one_address_cannot_take_every_connection() {
    const PER_ADDRESS: usize = 4;
    let server = Server::start(&[
        "--size",
        "320x240",
        "--fps",
        "5",
        "--no-hls",
        "--max-connections-per-address",
        "4",
        "--limit-loopback-connections",
    ]);
    let addr = server.addr;
    let status = status_json(addr);
    assert_eq!(status["connections"]["max_per_address"], 4, "{status}");
    assert_eq!(
        status["connections"]["per_address_includes_loopback"], true,
        "{status}"
    );
    let held = hold_connections(addr, PER_ADDRESS);
    // One more from the same address: answered at once with 503, then closed.
    let extra = TcpStream::connect(addr).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (status, head, reason) = send(&extra, "/healthz");
    assert_eq!(status, 503, "{head:?}");
    assert!(has_header(&head, "Retry-After"), "{head:?}");
    assert!(
        head.iter()
            .any(|l| l.eq_ignore_ascii_case("connection: close")),
        "{head:?}"
    );
    assert!(reason.contains("from your address (at most 4)"), "{reason}");
    drop(extra);
    // Room again once they go: the server may see the closes a moment after the client
    // made them, and until then it answers 503 still.
    drop(held);
    let deadline = std::time::Instant::now() + SETTLE_LIMIT;
    let status = loop {
        let response = common::get(addr, "/status");
        if response.status == 200 {
            break serde_json::from_slice::<serde_json::Value>(&response.body).expect("JSON");
        }
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(std::time::Instant::now() < deadline, "no room again");
        std::thread::sleep(POLL);
    };
    assert!(
        status["connections"]["refused_per_address"].as_u64() >= Some(1),
        "{status}"
    );
    assert_eq!(status["connections"]["refused"], 0, "{status}");
}

#[test]
fn loopback_clients_are_not_limited_per_address_by_default() {
    let server = Server::start(&[
        "--size",
        "320x240",
        "--fps",
        "5",
        "--no-hls",
        "--max-connections-per-address",
        "2",
    ]);
    let held = hold_connections(server.addr, 5);
    let status = status_json(server.addr);
    assert_eq!(
        status["connections"]["per_address_includes_loopback"], false,
        "{status}"
    );
    assert_eq!(status["connections"]["refused_per_address"], 0, "{status}");
    assert_eq!(status["connections"]["addresses"], 0, "{status}");
    drop(held);
}
