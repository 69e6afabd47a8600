//! After a spike of connections that come and go, the server gives back what they held: its
//! file descriptors return to their idle count and its memory (VmRSS) to near its idle size.
//! The spike: blocking playlist reloads whose clients hang up before the answer, viewers that
//! connect, watch and leave, and viewers that never read (dropped as stalled). Figures from
//! `/proc/PID` and `/status`; every wait is bounded.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{MjpegReader, Server, get, rss_kib, status_json};
use framecast::hls::names::HlsName;
use framecast::media::playlist::{parse_media_playlist, parse_multivariant_playlist};

/// Aborted blocking reloads per wave.
const WAITS_PER_WAVE: usize = 500;
const WAVES: usize = 2;
/// Viewers that read a frame and leave.
const LEAVING_VIEWERS: usize = 200;
/// Viewers that never read.
const STALLED_VIEWERS: usize = 100;
/// How long the server may take to close what the clients left and give memory back.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A receive buffer so small that a viewer that does not read stalls the server at once.
const STALLED_RCVBUF_BYTES: usize = 4096;
/// Descriptors the server may hold beyond its idle count afterwards.
const FD_SLACK: usize = 3;
/// Descriptors the MJPEG sender keeps once started: an event poller and a waker for each of
/// its threads (one per core, at most four). The pipes it sends frames through go once nobody
/// watches.
const MJPEG_SENDER_FDS: usize = 2 * 4;

#[test]
fn descriptors_and_memory_come_back_after_a_spike_of_connections() {
    // This client holds as many sockets as the server; the default soft limit may be 1024.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = Server::start(&[
        "--size",
        "640x360",
        "--fps",
        "15",
        "--viewer-stall-seconds",
        "1",
    ]);
    let addr = server.addr;
    let prefix = media_prefix(addr);
    // Warm before the idle figures are taken: HLS has its first segment (the multivariant
    // playlist waits for it) and the JPEG encoders run (the first MJPEG viewer starts them; they
    // keep their buffers for the next).
    let fds_before = fd_count(server.pid());
    let mut viewer = MjpegReader::open(addr, "/stream.mjpg", "warm-up");
    viewer.next_part();
    drop(viewer);
    // The first viewer starts what MJPEG keeps for the next: the sender threads, each with its
    // event descriptors. A fixed number, counted as idle.
    wait_for(|| (fd_count(server.pid()) <= fds_before + MJPEG_SENDER_FDS).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    let idle_fds = fd_count(server.pid());
    let idle_rss_kib = rss_kib(server.pid());

    for _ in 0..WAVES {
        let target = next_msn(addr, &prefix);
        let path = format!("{prefix}media.m3u8?_HLS_msn={target}");
        let waiting: Vec<TcpStream> = (0..WAITS_PER_WAVE)
            .map(|_| send_request(addr, &path, None))
            .collect();
        wait_for(|| (fd_count(server.pid()) >= idle_fds + WAITS_PER_WAVE / 2).then_some(()));
        drop(waiting);
    }
    for _ in 0..LEAVING_VIEWERS {
        let mut viewer = MjpegReader::open(addr, "/stream.mjpg", "leaving");
        viewer.next_part();
    }
    let dropped_before = dropped_stalled(addr);
    let stalled: Vec<TcpStream> = (0..STALLED_VIEWERS)
        .map(|n| {
            let path = if n % 2 == 0 {
                "/stream.mjpg"
            } else {
                "/live.mp4"
            };
            send_request(addr, path, Some(STALLED_RCVBUF_BYTES))
        })
        .collect();
    wait_for(|| {
        let dropped = dropped_stalled(addr).saturating_sub(dropped_before);
        (dropped >= STALLED_VIEWERS as u64).then_some(())
    });
    drop(stalled);

    let fds = wait_for_or_last(|| fd_count(server.pid()), |&fds| fds <= idle_fds + FD_SLACK);
    assert!(
        fds <= idle_fds + FD_SLACK,
        "{fds} descriptors open after the spike, {idle_fds} before"
    );
    // Near the idle size: within half of it plus a few MB (actix's request pools, allocator
    // caches). With glibc's malloc this spike left 45 MB from 20 MB idle; with jemalloc, 38 MB
    // from 25 MB.
    let bound_kib = idle_rss_kib * 3 / 2 + 6 * 1024;
    let rss = wait_for_or_last(|| rss_kib(server.pid()), |&rss| rss <= bound_kib);
    println!(
        "RSS {idle_rss_kib} KiB idle, {rss} KiB after; descriptors {idle_fds} idle, {fds} after"
    );
    assert!(
        rss <= bound_kib,
        "RSS {} KiB after the spike, {idle_rss_kib} KiB idle (bound {bound_kib} KiB)",
        rss
    );
}

/// Polls `check` until it answers, at most [`SETTLE_TIMEOUT`].
fn wait_for<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        if let Some(answer) = check() {
            return answer;
        }
        assert!(Instant::now() < deadline, "not within {SETTLE_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `read` until `done` holds for its value, at most [`SETTLE_TIMEOUT`]; the last value.
fn wait_for_or_last<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let value = read();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

fn dropped_stalled(addr: SocketAddr) -> u64 {
    status_json(addr)["viewers_dropped_stalled"]
        .as_u64()
        .unwrap_or(0)
}

/// Connects and sends `GET path`, reading nothing; `rcvbuf` shrinks the receive buffer first.
fn send_request(addr: SocketAddr, path: &str, rcvbuf: Option<usize>) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    if let Some(bytes) = rcvbuf {
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    }
    socket.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: churn\r\n\r\n"
    )
    .expect("send");
    stream
}

/// The media playlist's directory, e.g. `/hls/mx27nm37/`.
fn media_prefix(addr: SocketAddr) -> String {
    let response = get(addr, "/live.m3u8");
    assert_eq!(response.status, 200, "{}", response.text());
    let playlist = parse_multivariant_playlist(&response.text()).expect("multivariant playlist");
    let variant = playlist.variants.first().expect("a variant");
    format!("/{}", variant.uri.trim_end_matches("media.m3u8"))
}

/// The segment after the one being written: a blocking reload for it waits one to two
/// segment durations.
fn next_msn(addr: SocketAddr, prefix: &str) -> u64 {
    let response = get(addr, &format!("{prefix}media.m3u8"));
    let parsed = parse_media_playlist(&response.text()).expect("media playlist");
    let hint = parsed.playlist.preload_hint.expect("preload hint");
    match HlsName::parse(&hint.uri) {
        Some(HlsName::Part { msn, .. }) => msn + 1,
        other => panic!("preload hint {other:?}"),
    }
}
