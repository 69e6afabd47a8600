//! WHIP publishing (RFC 9725) with the real binary and real clients: headless Chromium with
//! its fake camera publishes from the `/streams/phone/publish` page, and what it sends reaches
//! an MJPEG reader (decoded, the picture changing), ffmpeg reading the HLS playlist (decoding
//! H.264 frames) and a WebRTC (WHEP) viewer in another page; a second publisher gets 409;
//! DELETE on the session ends it and the stream says NO SIGNAL again. Bad offers get 400 with
//! a reason, and only users allowed the stream publish (a signed link never does).
//!
//! The browser test fails, naming it, where Chromium, node, playwright-core or ffmpeg is
//! missing (skipped only with `FRAMECAST_ALLOW_MISSING_CLIENTS=1`).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::chromium::{missing_prerequisite, output_dir, repo_root};
use common::{
    BodyAnswer as Answer, MjpegReader, Server, ffmpeg_play, get, request, require_clients,
    require_prerequisite, send_with_body as send, sign_url, wait_for_status_at,
};

/// The script connects a publisher and a viewer in well under this on loopback.
const PUBLISHING_LIMIT: Duration = Duration::from_secs(90);
/// How long a vanished publisher may hold its place: ICE consent (RFC 7675) gives up after
/// 30 s without an answer at most; a DTLS close alert ends it at once.
const DROP_LIMIT: Duration = Duration::from_secs(45);
/// What the stream's status is given to change.
const STATUS_LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
/// MJPEG parts read from the published stream.
const MJPEG_PARTS: usize = 20;

/// A scratch directory of this test binary's own.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("whip")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Two streams: `cam`, the test pattern (first, so the server's start is seen at once), and
/// `phone`, which takes a WHIP publisher. `head` goes at the top of the file.
fn config(dir: &Path, head: &str) -> PathBuf {
    let path = dir.join("whip.toml");
    std::fs::write(
        &path,
        format!(
            r#"{head}

[[streams]]
name = "cam"
source = "test"
size = "320x240"

[[streams]]
name = "phone"
source = "whip"
size = "640x480"
fps = 30
"#
        ),
    )
    .expect("write the configuration");
    path
}

fn start_server(config: &Path) -> Server {
    Server::start(&[
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--webrtc-listen",
        "127.0.0.1:0",
    ])
}

fn post_offer(addr: SocketAddr, path: &str, headers: &[(&str, &str)], offer: &str) -> Answer {
    send(addr, "POST", path, headers, "application/sdp", offer)
}

/// The shape of Chromium's WHIP offer, sendonly H.264 in packetization mode 1; enough for the
/// checks made before a session is opened.
const SENDONLY_OFFER: &str = "v=0\r\n\
    o=- 1 2 IN IP4 127.0.0.1\r\n\
    s=-\r\n\
    t=0 0\r\n\
    a=group:BUNDLE 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:abcd\r\n\
    a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    a=setup:actpass\r\n\
    a=mid:0\r\n\
    a=sendonly\r\n\
    a=rtpmap:102 H264/90000\r\n\
    a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// A certificate fingerprint's shape (RFC 8122 §5); no DTLS gets as far as checking it.
const FINGERPRINT: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
    00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// `/streams/phone/status`'s `source` once `ready` holds for it.
fn wait_for_phone_source(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for_status_at(
        addr,
        "/streams/phone/status",
        what,
        STATUS_LIMIT,
        POLL,
        |s| ready(&s["source"]),
    )
}

fn says_no_signal_because(source: &serde_json::Value, reason: &str) -> bool {
    source["state"] == "down"
        && source["headline"] == "NO SIGNAL"
        && source["last_error"]
            .as_str()
            .is_some_and(|error| error.contains(reason))
}

/// `tests/browser/whip_publish.mjs`, running: it publishes, says `PUBLISHING {…}`, and waits
/// for `stop` on its standard input before it reports.
struct PublishScript {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl PublishScript {
    fn start(base_url: &str, stream: &str) -> Self {
        let root = repo_root();
        let mut child = Command::new("node")
            .arg(root.join("tests/browser/whip_publish.mjs"))
            .arg(base_url)
            .arg(output_dir())
            .arg(stream)
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The line starting with `prefix` (within `limit`), without it; `None` if the script
    /// ended first.
    fn line_starting(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    println!("{line}");
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Some(rest.to_owned());
                    }
                    self.seen.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => panic!("no `{prefix}` within {limit:?}"),
            }
        }
    }

    /// Tells the script to go on to its next step.
    fn next_step(&mut self) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(b"stop\n");
            let _ = stdin.flush();
        }
    }

    /// The JSON after `prefix`, once the script says it.
    fn said(&mut self, prefix: &str) -> serde_json::Value {
        match self.line_starting(prefix, PUBLISHING_LIMIT) {
            Some(json) => serde_json::from_str(&json).expect("JSON"),
            None => panic!("the publish script ended early: {}", self.seen.join("\n")),
        }
    }

    /// Tells the script to stop and returns its results.
    fn finish(mut self) -> serde_json::Value {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let result = self
            .line_starting("{", PUBLISHING_LIMIT)
            .map(|rest| format!("{{{rest}"));
        let result = result.unwrap_or_else(|| panic!("no result: {}", self.seen.join("\n")));
        serde_json::from_str(&result).expect("result JSON")
    }
}

impl Drop for PublishScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_browsers_camera_reaches_mjpeg_hls_and_webrtc_viewers_until_its_session_is_deleted() {
    const TEST: &str =
        "a_browsers_camera_reaches_mjpeg_hls_and_webrtc_viewers_until_its_session_is_deleted";
    if !require_prerequisite(
        missing_prerequisite(&["playwright-core/package.json"]),
        TEST,
    ) || !require_clients(&["ffmpeg"], TEST)
    {
        return;
    }
    let dir = scratch_dir("browser");
    let server = start_server(&config(&dir, ""));
    wait_for_phone_source(server.addr, "waiting for a publisher", |source| {
        says_no_signal_because(source, "waiting for a WHIP publisher")
    });

    let mut script = PublishScript::start(&server.url(""), "phone");
    let publishing = script.said("PUBLISHING ");
    let session_url = publishing["session_url"]
        .as_str()
        .expect("the page's session URL")
        .to_owned();
    let session_path = session_url
        .strip_prefix(&server.url(""))
        .expect("a session on this server")
        .to_owned();
    assert!(
        session_path.starts_with("/streams/phone/whip/"),
        "{session_path}"
    );
    wait_for_phone_source(server.addr, "live", |source| source["state"] == "live");

    // MJPEG: the publisher's H.264, decoded and encoded again; the fake camera's picture moves.
    let mut mjpeg = MjpegReader::open(server.addr, "/streams/phone/stream.mjpg", "whip-test");
    assert_eq!(mjpeg.status, 200);
    let pictures: HashSet<Vec<u8>> = (0..MJPEG_PARTS).map(|_| mjpeg.next_part().jpeg).collect();
    assert!(
        pictures.len() >= 3,
        "only {} distinct MJPEG pictures in {MJPEG_PARTS} parts",
        pictures.len()
    );
    drop(mjpeg);
    let status = wait_for_status_at(
        server.addr,
        "/streams/phone/status",
        "decoding for MJPEG",
        STATUS_LIMIT,
        POLL,
        |s| s["jpeg"]["decode"]["frames_decoded"].as_u64() > Some(0),
    );
    assert_eq!(status["source"]["width"], 640, "{status}");

    // HLS: the H.264 passed through, cut at the key frames the publisher is asked for.
    let hls = wait_for_status_at(
        server.addr,
        "/streams/phone/status",
        "HLS timing settled",
        STATUS_LIMIT,
        POLL,
        |s| s["hls"]["timing_settled"] == true && s["hls"]["segments"].as_u64() >= Some(2),
    )["hls"]
        .clone();
    assert_eq!(hls["passthrough"], true, "{hls}");
    let (ok, frames, stderr) = ffmpeg_play(
        &server.url("/streams/phone/live.m3u8"),
        "2",
        Duration::from_secs(40),
    );
    assert!(ok && frames > 0, "ffmpeg decoded {frames} frames: {stderr}");

    // A second publisher, made by hand while the page publishes.
    let second = post_offer(server.addr, "/streams/phone/whip", &[], SENDONLY_OFFER);
    assert_eq!(second.status, 409, "{second:?}");
    assert!(second.body.contains("another publisher"), "{second:?}");

    // DELETE ends the session: NO SIGNAL again, and the place is free.
    let deleted = request(server.addr, "DELETE", &session_path, &[]);
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    wait_for_phone_source(server.addr, "down after DELETE", |source| {
        says_no_signal_because(source, "WHIP publisher left")
    });
    let again = request(server.addr, "DELETE", &session_path, &[]);
    assert_eq!(again.status, 404, "{}", again.text());

    // Publishing again, then the browser's connection gone without a DELETE: the session
    // ends when framecast stops hearing from the peer, and the place is free again.
    script.next_step();
    script.said("REPUBLISHED ");
    wait_for_phone_source(server.addr, "live again", |source| {
        source["state"] == "live"
    });
    script.next_step();
    script.said("DROPPED ");
    wait_for_status_at(
        server.addr,
        "/streams/phone/status",
        "down after the publisher vanished",
        DROP_LIMIT,
        POLL,
        |s| says_no_signal_because(&s["source"], "WHIP publisher left"),
    );

    let result = script.finish();
    assert_eq!(result["ok"], true, "{result}");
    assert!(result["whep"]["frames"].as_u64() > Some(0), "{result}");
}

#[test]
fn bad_offers_and_streams_without_whip_are_refused_with_a_reason() {
    let dir = scratch_dir("refusals");
    let server = start_server(&config(&dir, ""));
    let addr = server.addr;
    let one_line = |answer: &Answer| {
        let reason = answer.body.trim_end();
        assert!(!reason.is_empty() && !reason.contains('\n'), "{answer:?}");
        reason.to_owned()
    };

    for (offer, reason) in [
        ("hello", "not SDP"),
        (
            &SENDONLY_OFFER.replace("a=sendonly", "a=recvonly") as &str,
            "must send",
        ),
        (
            &SENDONLY_OFFER.replace("packetization-mode=1", "packetization-mode=0"),
            "packetization-mode=1",
        ),
        (
            &SENDONLY_OFFER.replace("H264/90000", "VP8/90000"),
            "no H.264",
        ),
        (
            &SENDONLY_OFFER.replace("a=setup:actpass", "a=setup:active"),
            "not an offer",
        ),
    ] {
        let answer = post_offer(addr, "/streams/phone/whip", &[], offer);
        assert_eq!(answer.status, 400, "{offer}: {answer:?}");
        assert!(one_line(&answer).contains(reason), "{answer:?}");
    }

    let plain = send(
        addr,
        "POST",
        "/streams/phone/whip",
        &[],
        "text/plain",
        SENDONLY_OFFER,
    );
    assert_eq!(plain.status, 415, "{plain:?}");
    assert!(one_line(&plain).contains("application/sdp"), "{plain:?}");

    let not_whip = post_offer(addr, "/streams/cam/whip", &[], SENDONLY_OFFER);
    assert_eq!(not_whip.status, 404, "{not_whip:?}");
    assert!(
        one_line(&not_whip).contains("takes no WHIP publisher"),
        "{not_whip:?}"
    );
    let page = get(addr, "/streams/cam/publish");
    assert_eq!(page.status, 404, "{}", page.text());
    assert_eq!(
        post_offer(addr, "/streams/nothing/whip", &[], SENDONLY_OFFER).status,
        404
    );

    // No trickle ICE: PATCH is not a method of a session; an unknown session is 404.
    let patch = send(
        addr,
        "PATCH",
        "/streams/phone/whip/1",
        &[],
        "application/trickle-ice-sdpfrag",
        "a=x\r\n",
    );
    assert_eq!(patch.status, 405, "{patch:?}");
    assert!(one_line(&patch).contains("no trickle ICE"), "{patch:?}");
    let options = request(addr, "OPTIONS", "/streams/phone/whip", &[]);
    assert_eq!(options.status, 204, "{}", options.text());
    assert_eq!(options.header("Accept-Post"), Some("application/sdp"));
    let unknown = request(addr, "DELETE", "/streams/phone/whip/0123456789abcdef", &[]);
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    // A publisher whose ICE never comes up (nothing answers at the offer's address) holds the
    // place until the connect timeout ends its session; DELETE frees it at once.
    let offer = SENDONLY_OFFER.replace(
        "a=setup:actpass",
        &format!("a=fingerprint:sha-256 {FINGERPRINT}\r\na=setup:actpass\r\na=rtcp-mux"),
    );
    let first = post_offer(addr, "/streams/phone/whip", &[], &offer);
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.header("Content-Type"), Some("application/sdp"));
    assert!(first.body.starts_with("v=0"), "{first:?}");
    let location = first.header("Location").expect("Location").to_owned();
    assert!(location.starts_with("/streams/phone/whip/"), "{location}");
    assert_eq!(
        post_offer(addr, "/streams/phone/whip", &[], &offer).status,
        409
    );
    assert_eq!(request(addr, "DELETE", &location, &[]).status, 200);
    let second = post_offer(addr, "/streams/phone/whip", &[], &offer);
    assert_eq!(
        second.status, 201,
        "the place is free after DELETE: {second:?}"
    );
    let deadline = Instant::now() + STATUS_LIMIT;
    loop {
        let next = post_offer(addr, "/streams/phone/whip", &[], &offer);
        if next.status == 201 {
            break;
        }
        assert_eq!(next.status, 409, "{next:?}");
        assert!(
            Instant::now() < deadline,
            "the unconnected session still holds the place"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The publish page, and the stream waiting: no offer brought a picture.
    let page = get(addr, "/streams/phone/publish");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/static/publish-page.js"));
    assert!(
        get(addr, "/streams/phone/")
            .text()
            .contains("href=\"/streams/phone/publish\"")
    );
    assert!(!get(addr, "/streams/cam/").text().contains("publish"));
    assert_eq!(get(addr, "/static/publish-page.js").status, 200);
    assert_eq!(get(addr, "/static/whip-client.js").status, 200);
    wait_for_phone_source(addr, "still waiting", |source| {
        source["state"] == "down" && source["headline"] == "NO SIGNAL"
    });
}

#[test]
fn only_users_allowed_the_stream_publish_and_a_signed_link_does_not() {
    let dir = scratch_dir("auth");
    // `framecast hash-password` of "admin-pw" and "viewer-pw" (as in tests/signed_links.rs).
    let config = config(
        &dir,
        r#"signing_key_file = "whip.key"

[[users]]
name = "alice"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$jFM8AgCK6zngj6ABpTxdbw$cZH/64qyMYGXeUS0T5p9eSTUAQFzcs/76JojmgCWgK4"
streams = ["phone"]

[[users]]
name = "bob"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$tGv4IjrolX3PjNSlHQQ71g$notevu/VmirzvoVQJDHVkHTy3peGMoBrYo0F3v3vey0"
streams = ["cam"]
"#,
    );
    let server = Server::start_announced(&[
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--webrtc-listen",
        "127.0.0.1:0",
    ]);
    let addr = server.addr;
    // `/healthz` is open; the whole server's says unhealthy while `phone` waits.
    let deadline = Instant::now() + STATUS_LIMIT;
    while get(addr, "/streams/cam/healthz").status != 200 {
        assert!(Instant::now() < deadline, "cam never became healthy");
        std::thread::sleep(POLL);
    }
    const ALICE: (&str, &str) = ("Authorization", "Basic YWxpY2U6YWRtaW4tcHc=");
    const BOB: (&str, &str) = ("Authorization", "Basic Ym9iOnZpZXdlci1wdw==");

    let anonymous = post_offer(addr, "/streams/phone/whip", &[], SENDONLY_OFFER);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(anonymous.header("WWW-Authenticate").is_some());
    let bob = post_offer(addr, "/streams/phone/whip", &[BOB], SENDONLY_OFFER);
    assert_eq!(bob.status, 403, "{bob:?}");
    // Alice gets past the door; her offer is then judged as any other.
    let alice = post_offer(addr, "/streams/phone/whip", &[ALICE], "hello");
    assert_eq!(alice.status, 400, "{alice:?}");
    assert_eq!(get(addr, "/streams/phone/publish").status, 401);
    let page = request(addr, "GET", "/streams/phone/publish", &[ALICE]);
    assert_eq!(page.status, 200, "{}", page.text());

    // A signed link to watch the stream does not open its WHIP resource, nor its page.
    let link = sign_url(&config, "/streams/phone/live.m3u8", &[]);
    let (_, query) = link.split_once('?').expect("a query");
    let signed = post_offer(
        addr,
        &format!("/streams/phone/whip?{query}"),
        &[],
        SENDONLY_OFFER,
    );
    assert_eq!(signed.status, 401, "{signed:?}");
    let signed_page = get(addr, &format!("/streams/phone/publish?{query}"));
    assert_eq!(signed_page.status, 401, "{}", signed_page.text());
}
