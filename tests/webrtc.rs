//! WebRTC playback (WHEP) with real clients: Debian's headless Chromium plays the `/webrtc`
//! page over loopback (`tests/browser/webrtc_page.mjs`: the picture moves, a session whose peer
//! never answers holds nobody up, a DELETEd session ends and the page reconnects), and the
//! WHEP resource answers wrong requests with their status and a one-line reason.
//!
//! A camera's own H.264 (`pipe:h264` from ffmpeg's libx264) is passed through to a WebRTC
//! peer (str0m, in the test): it starts at a key frame and frames keep coming. A peer that
//! stops reading its socket holds up no other: a second peer gets every frame meanwhile.
//!
//! With users configured, a signed link for the WebRTC page opens its WHEP resource too, and
//! the session ends when the link expires (the peer, still there, is cut off). A reload that
//! removes a stream ends its sessions the same way.
//!
//! Fails, naming it, where Chromium, node or `node_modules/playwright-core` is missing (skipped
//! only with `FRAMECAST_ALLOW_MISSING_CLIENTS=1`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::chromium::{missing_prerequisite, output_dir, run_script};
use common::{
    BodyAnswer as Answer, Server, require_prerequisite, send_with_body, sign_url, status_json,
};

/// The arguments of every server here: WebRTC on any free loopback port.
const WEBRTC_ARGS: [&str; 2] = ["--webrtc-listen", "127.0.0.1:0"];

/// A receive-only offer as a browser makes it, cut to what the checks read.
const OFFER: &str = "v=0\r\n\
    o=- 1 2 IN IP4 127.0.0.1\r\n\
    s=-\r\n\
    t=0 0\r\n\
    a=group:BUNDLE 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 103\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:test\r\n\
    a=ice-pwd:testtesttesttesttesttest\r\n\
    a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
    a=setup:actpass\r\n\
    a=mid:0\r\n\
    a=recvonly\r\n\
    a=rtcp-mux\r\n\
    a=rtpmap:103 H264/90000\r\n\
    a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// One request with a body (`Connection: close`), its whole answer read, bounded in time.
fn send(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
    send_with_body(addr, method, path, &[], content_type, body)
}

fn post_offer(addr: SocketAddr, path: &str, offer: &str) -> Answer {
    send(addr, "POST", path, "application/sdp", offer)
}

#[test]
fn webrtc_page_plays_in_chromium_and_a_deleted_session_ends() {
    if !require_prerequisite(
        missing_prerequisite(&["playwright-core/package.json"]),
        "webrtc_page_plays_in_chromium_and_a_deleted_session_ends",
    ) {
        return;
    }
    let server = Server::start(&[&WEBRTC_ARGS[..], &["--size", "640x360", "--fps", "30"]].concat());
    let result = run_script("webrtc_page.mjs", &server.url(""));
    assert!(output_dir().join("webrtc_page.png").exists());
    assert_eq!(result["delete_status"], 200, "{result}");
    // Every session is gone once the page is closed and its last session times out or is
    // deleted; the page DELETEs its own when it leaves.
    let status = status_json(server.addr);
    assert!(
        status["webrtc"]["sessions_opened_total"].as_u64() >= Some(3),
        "{status}"
    );
}

#[test]
fn whep_answers_wrong_requests_with_their_status_and_reason() {
    let server = Server::start(&[&WEBRTC_ARGS[..], &["--webrtc-max-sessions", "1"]].concat());
    let addr = server.addr;
    let status = status_json(addr);
    assert_ne!(status["webrtc"]["udp_port"].as_u64(), Some(0), "{status}");
    assert_ne!(
        status["webrtc"]["udp_port"],
        serde_json::Value::Null,
        "{status}"
    );

    let wrong_type = send(addr, "POST", "/streams/main/whep", "text/plain", OFFER);
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.body);
    assert!(wrong_type.body.contains("application/sdp"));

    let cases = [
        ("hello".to_owned(), "not SDP"),
        (
            OFFER.replace("a=setup:actpass", "a=setup:active"),
            "not an offer",
        ),
        (OFFER.replace("m=video", "m=audio"), "no video m-line"),
        (OFFER.replace("H264/90000", "VP8/90000"), "no H.264"),
        (
            OFFER.replace("packetization-mode=1", "packetization-mode=0"),
            "packetization-mode=1",
        ),
        (OFFER.replace("a=recvonly", "a=sendonly"), "recvonly"),
    ];
    for (offer, reason) in cases {
        let answer = post_offer(addr, "/streams/main/whep", &offer);
        assert_eq!(answer.status, 400, "{reason}: {}", answer.body);
        assert!(answer.body.contains(reason), "{reason}: {}", answer.body);
        assert_eq!(answer.body.trim_end().lines().count(), 1, "{}", answer.body);
    }
    let huge = format!("{OFFER}{}", "a=x-pad:0123456789abcdef\r\n".repeat(2000));
    let refused = post_offer(addr, "/streams/main/whep", &huge);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("more than"), "{}", refused.body);
    let unknown = post_offer(addr, "/streams/nope/whep", OFFER);
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // A good offer: 201, the answer, and the session's location. Longer than the connection's
    // first read batch (4 KiB), as browsers' offers with many candidates are: the body is
    // still read.
    let long_offer = format!("{OFFER}{}", "a=x-pad:0123456789abcdef\r\n".repeat(300));
    assert!(long_offer.len() > 8 * 1024);
    let created = post_offer(addr, "/streams/main/whep", &long_offer);
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("content-type"), Some("application/sdp"));
    assert!(created.body.starts_with("v=0"), "{}", created.body);
    assert!(created.body.contains("a=ice-lite"), "{}", created.body);
    assert!(created.body.contains("a=candidate:"), "{}", created.body);
    let location = created.header("location").expect("Location").to_owned();
    assert!(location.starts_with("/streams/main/whep/"), "{location}");
    // The root route serves the first stream: its sessions live under /whep.
    let over = post_offer(addr, "/whep", OFFER);
    assert_eq!(over.status, 503, "one session is the cap: {}", over.body);

    let patch = send(
        addr,
        "PATCH",
        &location,
        "application/trickle-ice-sdpfrag",
        "a=x",
    );
    assert_eq!(patch.status, 405, "{}", patch.body);
    let status = status_json(addr);
    assert_eq!(status["webrtc"]["session_count"], 1, "{status}");
    assert_eq!(status["viewer_count"], 1, "{status}");
    let metrics = common::get(addr, "/metrics").text();
    assert!(
        metrics.contains("framecast_viewers{stream=\"main\",kind=\"webrtc\"} 1"),
        "{metrics}"
    );

    let other_stream = send(addr, "DELETE", "/streams/nope/whep/0", "text/plain", "");
    assert_eq!(other_stream.status, 404);
    let deleted = send(addr, "DELETE", &location, "text/plain", "");
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let again = send(addr, "DELETE", &location, "text/plain", "");
    assert_eq!(again.status, 404, "{}", again.body);
    let status = status_json(addr);
    assert_eq!(status["webrtc"]["session_count"], 0, "{status}");
}

/// bob's credentials (user `bob`, password `viewer-pw`) as an HTTP Basic header.
const BOB: (&str, &str) = ("Authorization", "Basic Ym9iOnZpZXdlci1wdw==");

/// A server (WebRTC on) with [`config_with_key`]'s file for `test`, and the file's path.
fn start_with_key(test: &str) -> (Server, std::path::PathBuf) {
    let config = config_with_key(test);
    let config_text = config.to_str().expect("a UTF-8 path");
    let server = Server::start_with_users(&[&WEBRTC_ARGS[..], &["--config", config_text]].concat());
    (server, config)
}

/// A configuration file with a user, a signing key and one stream named `front`.
fn config_with_key(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("webrtc")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("signed.toml");
    std::fs::write(
        &path,
        r#"
signing_key_file = "front.key"
# `framecast hash-password` of "viewer-pw".
[[users]]
name = "bob"
streams = ["*"]
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$tGv4IjrolX3PjNSlHQQ71g$notevu/VmirzvoVQJDHVkHTy3peGMoBrYo0F3v3vey0"

[[streams]]
name = "front"
source = "test"
size = "320x240"
fps = 15
"#,
    )
    .expect("write the configuration file");
    path
}

#[test]
fn a_signed_link_for_the_webrtc_page_opens_its_whep_resource() {
    let (server, config) = start_with_key("signed");
    let addr = server.addr;

    let unsigned = post_offer(addr, "/streams/front/whep", OFFER);
    assert_eq!(unsigned.status, 401, "{}", unsigned.body);

    let page_link = sign_url(&config, "/streams/front/webrtc", &[]);
    let query = page_link.split_once('?').expect("a query").1;
    let page = common::get(addr, &page_link);
    assert_eq!(page.status, 200);
    let created = post_offer(addr, &format!("/streams/front/whep?{query}"), OFFER);
    assert_eq!(created.status, 201, "{}", created.body);
    let location = created.header("location").expect("Location").to_owned();
    let unsigned_delete = send(addr, "DELETE", &location, "text/plain", "");
    assert_eq!(unsigned_delete.status, 401, "{}", unsigned_delete.body);
    let deleted = send(
        addr,
        "DELETE",
        &format!("{location}?{query}"),
        "text/plain",
        "",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);

    // Another resource's link does not open WHEP.
    let mjpeg_link = sign_url(&config, "/streams/front/stream.mjpg", &[]);
    let mjpeg_query = mjpeg_link.split_once('?').expect("a query").1;
    let refused = post_offer(addr, &format!("/streams/front/whep?{mjpeg_query}"), OFFER);
    assert_eq!(refused.status, 401, "{}", refused.body);
}

#[test]
fn a_session_opened_with_a_signed_link_ends_when_the_link_expires() {
    let (server, config) = start_with_key("expiring");
    let addr = server.addr;
    // Long enough to connect on a loaded machine; the test waits for the expiry, not for a time.
    let link = sign_url(&config, "/streams/front/webrtc", &["--valid", "8s"]);
    let query = link.split_once('?').expect("a query").1.to_owned();
    // bob, with his password: `/status` needs a user here.
    let status = |addr| {
        let response = common::request(addr, "GET", "/status", &[BOB]);
        assert_eq!(response.status, 200, "/status: {}", response.text());
        serde_json::from_slice::<serde_json::Value>(&response.body).expect("/status is JSON")
    };
    // The peer stays as long as the server keeps the session: it never leaves on its own.
    let mut turns = 0u32;
    let (frames, _) = peer_runtime().block_on(watch_with_peer_at(
        addr,
        &format!("/streams/front/whep?{query}"),
        Duration::from_secs(60),
        |_| {
            turns += 1;
            !status_due(turns) || closed_for(&status(addr), "link expired") == 0
        },
    ));
    let status = status(addr);
    let webrtc = &status["webrtc"];
    assert_eq!(
        webrtc["sessions_closed_by_reason"]["link expired"], 1,
        "{webrtc}"
    );
    assert_eq!(webrtc["session_count"], 0, "{webrtc}");
    assert!(frames > 0, "the peer got frames before the link expired");
    // The same link opens nothing any more.
    let again = post_offer(addr, &format!("/streams/front/whep?{query}"), OFFER);
    assert_eq!(again.status, 401, "{}", again.body);
}

/// Two test-pattern streams, or only `a` (`with_b` false), as a configuration file.
fn write_streams_config(path: &std::path::Path, with_b: bool) {
    let mut text = String::from(
        "[[streams]]\nname = \"a\"\nsource = \"test\"\nsize = \"320x240\"\nfps = 15\n",
    );
    if with_b {
        text.push_str(
            "\n[[streams]]\nname = \"b\"\nsource = \"test\"\nsize = \"320x240\"\nfps = 15\n",
        );
    }
    std::fs::write(path, text).expect("write the configuration file");
}

#[test]
fn a_reload_that_removes_a_stream_ends_its_webrtc_sessions() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("webrtc")
        .join("reload");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let config = dir.join("streams.toml");
    write_streams_config(&config, true);
    let config_text = config.to_str().expect("a UTF-8 path");
    let server = Server::start(&[&WEBRTC_ARGS[..], &["--config", config_text]].concat());
    let addr = server.addr;
    let pid = rustix::process::Pid::from_raw(server.pid() as i32).expect("a pid");
    // The peer watches `b` and never leaves on its own; once it has frames, `b` is removed.
    let mut reloaded = false;
    let mut turns = 0u32;
    let (frames, _) = peer_runtime().block_on(watch_with_peer_at(
        addr,
        "/streams/b/whep",
        Duration::from_secs(60),
        |frames| {
            if frames > 0 && !reloaded {
                write_streams_config(&config, false);
                rustix::process::kill_process(pid, rustix::process::Signal::Hup)
                    .expect("SIGHUP to the server");
                reloaded = true;
            }
            turns += 1;
            !reloaded || !status_due(turns) || closed_for(&status_json(addr), "stream ended") == 0
        },
    ));
    assert!(reloaded, "the peer got no frame from `b` ({frames})");
    let webrtc = status_json(addr)["webrtc"].clone();
    assert_eq!(
        webrtc["sessions_closed_by_reason"]["stream ended"], 1,
        "{webrtc}"
    );
    assert_eq!(webrtc["session_count"], 0, "{webrtc}");
    let metrics = common::get(addr, "/metrics").text();
    for line in [
        "framecast_webrtc_sessions 0",
        "framecast_webrtc_sessions_closed_total{reason=\"stream_ended\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

/// A current-thread runtime for a test's str0m peer.
fn peer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Whether a peer's loop, at turn `turns`, looks at `/status` now: every 20th turn (a turn
/// is 50 ms at most, so about once a second).
fn status_due(turns: u32) -> bool {
    turns.is_multiple_of(20)
}

/// How many WebRTC sessions `/status` says ended for `reason`.
fn closed_for(status: &serde_json::Value, reason: &str) -> u64 {
    status["webrtc"]["sessions_closed_by_reason"][reason]
        .as_u64()
        .unwrap_or(0)
}

/// A WHEP peer (str0m, as a browser would do ICE, DTLS-SRTP and RTP) on the first stream;
/// counts the frames it receives and whether the first was a key frame, until `frames_wanted`
/// or `limit`.
async fn watch_with_peer(server: SocketAddr, frames_wanted: u64, limit: Duration) -> (u64, bool) {
    watch_with_peer_at(server, "/whep", limit, |frames| frames < frames_wanted).await
}

/// [`watch_with_peer`] on the WHEP resource at `path`, for as long as `keep_watching` says
/// (given the frames so far; asked every 50 ms at least) or `limit`.
async fn watch_with_peer_at(
    server: SocketAddr,
    path: &str,
    limit: Duration,
    keep_watching: impl FnMut(u64) -> bool,
) -> (u64, bool) {
    let mut peer = Peer::connect(server, path).await;
    peer.watch(limit, keep_watching).await;
    (peer.frames, peer.first_is_key)
}

/// A WHEP peer: str0m on its own loopback UDP socket, which it reads only while it watches.
struct Peer {
    socket: tokio::net::UdpSocket,
    rtc: str0m::Rtc,
    /// Frames received so far.
    frames: u64,
    /// Whether the first frame was a key frame.
    first_is_key: bool,
}

impl Peer {
    /// Offers to receive video at the WHEP resource at `path` and applies the answer.
    async fn connect(server: SocketAddr, path: &str) -> Self {
        use std::time::Instant;
        use str0m::change::SdpAnswer;
        use str0m::media::{Direction, MediaKind};
        use str0m::{Candidate, Rtc};

        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let local = socket.local_addr().expect("local address");
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let path = path.to_owned();
        let answer =
            tokio::task::spawn_blocking(move || post_offer(server, &path, &offer.to_sdp_string()))
                .await
                .expect("the POST");
        assert_eq!(answer.status, 201, "{}", answer.body);
        let answer = SdpAnswer::from_sdp_string(&answer.body).expect("an SDP answer");
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("the answer applies");
        Self {
            socket,
            rtc,
            frames: 0,
            first_is_key: false,
        }
    }

    /// Does ICE, DTLS-SRTP and RTP, counting frames, for as long as `keep_watching` says
    /// (given the frames so far; asked every 50 ms at least) or `limit`.
    async fn watch(&mut self, limit: Duration, mut keep_watching: impl FnMut(u64) -> bool) {
        use std::time::Instant;
        use str0m::net::{Protocol, Receive};
        use str0m::{Event, Input, Output};

        let local = self.socket.local_addr().expect("local address");
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 2048];
        while keep_watching(self.frames) && Instant::now() < deadline {
            let timeout = loop {
                match self.rtc.poll_output().expect("str0m output") {
                    Output::Timeout(at) => break at,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Event(Event::MediaData(data)) => {
                        if self.frames == 0 {
                            self.first_is_key = data.is_keyframe();
                        }
                        self.frames += 1;
                    }
                    Output::Event(_) => {}
                }
            };
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
                Ok(Ok((len, source))) => {
                    let receive = Receive::new(Protocol::Udp, source, local, &buf[..len])
                        .expect("a datagram");
                    self.rtc
                        .handle_input(Input::Receive(Instant::now(), receive))
                        .expect("str0m input");
                }
                _ => self
                    .rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .expect("str0m timeout"),
            }
        }
    }
}

/// How many datagrams the kernel dropped for the loopback UDP socket on `port` because its
/// receive buffer was full (the last column of `/proc/net/udp`).
fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .find(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|address| address.ends_with(&local))
        })
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
        .expect("the socket in /proc/net/udp")
}

#[test]
fn a_peer_that_stops_reading_holds_no_other_viewer_up() {
    let server = Server::start(&[&WEBRTC_ARGS[..], &["--size", "640x360", "--fps", "30"]].concat());
    let addr = server.addr;
    peer_runtime().block_on(async {
        let mut stalled = Peer::connect(addr, "/whep").await;
        stalled
            .watch(Duration::from_secs(30), |frames| frames < 10)
            .await;
        assert!(
            stalled.frames >= 10,
            "the first peer got {}",
            stalled.frames
        );
        // From here on nobody reads the first peer's socket: a small receive buffer fills
        // with the first frames and the kernel drops the rest, as for a viewer whose network
        // or process stopped. Its session keeps sending until ICE gives up on it.
        rustix::net::sockopt::set_socket_recv_buffer_size(&stalled.socket, 4096)
            .expect("a small receive buffer");
        let mut reader = Peer::connect(addr, "/whep").await;
        // Ten seconds of video at 30 fps: far more than the stalled socket can hold.
        reader
            .watch(Duration::from_secs(60), |frames| frames < 300)
            .await;
        assert_eq!(reader.frames, 300, "the reading peer got its frames");
        assert!(
            reader.first_is_key,
            "the reading peer started at a key frame"
        );
        let stalled_port = stalled.socket.local_addr().expect("local address").port();
        assert!(
            udp_drops(stalled_port) > 0,
            "the kernel dropped datagrams for the peer that stopped reading"
        );
        let webrtc = status_json(addr)["webrtc"].clone();
        assert_eq!(webrtc["sessions_opened_total"], 2, "{webrtc}");
        drop(stalled);
    });
}

#[test]
fn a_cameras_own_h264_is_passed_through_to_a_webrtc_peer() {
    if !common::require_clients(
        &["ffmpeg"],
        "a_cameras_own_h264_is_passed_through_to_a_webrtc_peer",
    ) {
        return;
    }
    let (server, mut stdin) = Server::start_with_stdin(
        &[&WEBRTC_ARGS[..], &["--source", "pipe:h264", "--fps", "25"]].concat(),
    );
    // libx264 at the real rate with a 2 s key-frame interval, into the server's stdin.
    let mut ffmpeg = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-tune",
            "zerolatency",
            "-bf",
            "0",
            "-g",
            "50",
            "-sc_threshold",
            "0",
            "-f",
            "h264",
            "-",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    let mut h264 = ffmpeg.stdout.take().expect("ffmpeg's output");
    let copier = std::thread::spawn(move || {
        let _ = std::io::copy(&mut h264, &mut stdin);
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while common::count(&status_json(server.addr)["source"], "frames") < 60 {
        assert!(std::time::Instant::now() < deadline, "no camera frames");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (frames, first_is_key) =
        peer_runtime().block_on(watch_with_peer(server.addr, 50, Duration::from_secs(30)));
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    drop(server);
    let _ = copier.join();
    assert!(frames >= 50, "the peer got {frames} frames");
    assert!(first_is_key, "the first frame is the kept GOP's IDR");
}
