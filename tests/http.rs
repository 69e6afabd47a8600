//! Black-box tests of the HTTP surface over raw sockets, as curl or a camera dashboard sees it:
//! MJPEG framing and pacing, snapshots, status pages, bad input, slow viewers, and shutdown.
//!
//! Every test starts its own server on 127.0.0.1:0 with `--no-hls` (nothing here needs H.264,
//! and its encoder would compete for the CPU); every loop is bounded in count and time. No
//! test asserts a rate or a duration: pacing is checked with frame sequence numbers and the
//! counters in `/status`, and time limits only bound a wait for something that must happen.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{MjpegReader, Part, Server, get, occurrences as count, request, status_json};
use framecast::media::multipart::parse_timestamp;
use framecast::picture::timestamp_strip;

/// The response's Content-Type, byte for byte.
const STREAM_CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=framecast-boundary";
/// The opening delimiter (RFC 2046 §5.1.1: the first one may omit the leading CRLF).
const PREAMBLE: &[u8] = b"--framecast-boundary\r\n";
/// What must follow every JPEG at once: CRLF, then the delimiter line.
const PART_END: &[u8] = b"\r\n--framecast-boundary\r\n";
/// The same for Chromium-family clients, which also get the next part's headers at once.
const EAGER_PART_END: &[u8] = b"\r\n--framecast-boundary\r\nContent-Type: image/jpeg\r\n\r\n";
const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
/// A part's header block is a few short lines; more than this is a framing bug.
const MAX_PART_HEAD_BYTES: usize = 1024;
/// Bounds every wait for something the server must do; generous for a loaded 2-core machine.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Starts a server for MJPEG tests: no HLS, so no H.264 encoder competes for the CPU.
fn mjpeg_server(args: &[&str]) -> Server {
    Server::start(&[&["--no-hls"], args].concat())
}

/// Reads one part starting right after a delimiter line, byte-exact: the header block up to its
/// blank line, Content-Length bytes of JPEG, then the exact delimiter that must follow.
fn read_framed_part(reader: &mut MjpegReader) -> Part {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(
            head.len() < MAX_PART_HEAD_BYTES,
            "part head too long: {head:?}"
        );
        head.extend(reader.read_raw(1));
    }
    let head = String::from_utf8(head).expect("part head is text");
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("header line `Name: value`");
            (n.to_owned(), v.to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("Content-Length in part");
    let jpeg = reader.read_raw(len);
    let received_at = SystemTime::now();
    assert_eq!(
        reader.read_raw(PART_END.len()),
        PART_END,
        "the bytes right after the JPEG"
    );
    Part {
        headers,
        jpeg,
        received_at,
    }
}

/// Opens a stream and checks the opening delimiter, leaving the reader at the first part.
fn open_framed(addr: SocketAddr, path: &str, user_agent: &str) -> MjpegReader {
    let mut reader = MjpegReader::open(addr, path, user_agent);
    assert_eq!(reader.status, 200, "{path}");
    assert_eq!(reader.read_raw(PREAMBLE.len()), PREAMBLE);
    reader
}

fn seq_of(part: &Part) -> u64 {
    part.header("X-Frame-Sequence")
        .and_then(|v| v.parse().ok())
        .expect("X-Frame-Sequence")
}

fn micros_of(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros() as u64
}

/// The capture time the timestamp strip in `jpeg` carries.
fn strip_time(jpeg: &[u8]) -> Option<u64> {
    let gray = turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::GRAY).expect("JPEG decodes");
    timestamp_strip::decode_luma(&gray.pixels, gray.width, gray.height, gray.pitch)
}

#[test]
fn stream_headers_and_exact_part_framing() {
    let server = mjpeg_server(&[]);
    let mut reader = open_framed(server.addr, "/stream.mjpg", "framecast-tests");
    assert_eq!(reader.header("Content-Type"), Some(STREAM_CONTENT_TYPE));
    let cache = reader.header("Cache-Control").unwrap_or("");
    assert!(cache.contains("no-store"), "Cache-Control: {cache}");
    assert_eq!(reader.header("X-Accel-Buffering"), Some("no"));

    let mut previous_seq = None;
    let mut first_seq = 0;
    let mut last_seq = 0;
    for i in 0..15 {
        let part = read_framed_part(&mut reader);
        assert_eq!(part.header("Content-Type"), Some("image/jpeg"));
        assert!(part.jpeg.starts_with(&[0xFF, 0xD8]), "SOI");
        assert!(part.jpeg.ends_with(&[0xFF, 0xD9]), "EOI");

        let stamp = part.header("X-Timestamp").expect("X-Timestamp");
        let (_, fraction) = stamp.split_once('.').expect("seconds.micros");
        assert_eq!(fraction.len(), 6, "six decimals: {stamp}");
        let captured_us = parse_timestamp(stamp).expect("unix seconds");
        let received_us = micros_of(part.received_at);
        assert!(
            captured_us <= received_us,
            "part {i} captured after it arrived: {stamp}"
        );

        let seq = seq_of(&part);
        if let Some(previous) = previous_seq {
            // Equal only when the last frame is re-sent after a pause.
            assert!(seq >= previous, "sequence went back: {previous} then {seq}");
        } else {
            first_seq = seq;
        }
        previous_seq = Some(seq);
        last_seq = seq;
    }
    assert!(
        last_seq > first_seq,
        "the stream never moved on: {first_seq}..{last_seq}"
    );
}

/// Reads a raw HTTP/1.0 stream until `until` holds for what arrived (bounded by
/// [`WAIT_LIMIT`]), and returns the response with its body de-chunked if it was chunked.
fn read_stream(addr: SocketAddr, user_agent: &str, until: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let request =
        format!("GET /stream.mjpg HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {user_agent}\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !until(&data) {
        assert!(
            Instant::now() < deadline,
            "the stream never showed what was asked"
        );
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    let Some(body_start) = find(&data, b"\r\n\r\n", 0).map(|p| p + 4) else {
        return data;
    };
    let head = String::from_utf8_lossy(&data[..body_start]).to_ascii_lowercase();
    if !head.contains("transfer-encoding: chunked") {
        return data;
    }
    let mut body = data[..body_start].to_vec();
    let mut at = body_start;
    while let Some(line_end) = find(&data, b"\r\n", at) {
        let size_text = String::from_utf8_lossy(&data[at..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
        let chunk = line_end + 2;
        if size == 0 || chunk + size > data.len() {
            break;
        }
        body.extend_from_slice(&data[chunk..chunk + size]);
        at = chunk + size + 2;
    }
    body
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The framing each client family gets. That Chromium's next headers go out with the JPEG
/// before them, not with the next one, is checked where the server builds a frame's buffers
/// (`http::mjpeg`'s unit tests): on the wire both orders carry the same bytes.
#[test]
fn chrome_gets_the_next_part_headers_with_each_jpeg_others_the_boundary() {
    let server = mjpeg_server(&["--fps", "5"]);
    let body_start = |data: &[u8]| find(data, b"\r\n\r\n", 0).map(|p| p + 4);

    // Chromium: the stream opens with the first part's headers, and every JPEG is followed by
    // the delimiter and the next part's headers, with no Content-Length.
    let data = read_stream(server.addr, CHROME_UA, |d| count(d, EAGER_PART_END) >= 3);
    let start = body_start(&data).expect("response head");
    let opening = b"--framecast-boundary\r\nContent-Type: image/jpeg\r\n\r\n";
    assert_eq!(&data[start..start + opening.len()], opening);
    let mut jpeg_start = start + opening.len();
    for _ in 0..2 {
        let end = find(&data, EAGER_PART_END, jpeg_start).expect("a part end");
        assert_eq!(&data[jpeg_start..jpeg_start + 2], &[0xFF, 0xD8], "SOI");
        assert_eq!(
            &data[end - 2..end],
            &[0xFF, 0xD9],
            "EOI right before the part end"
        );
        jpeg_start = end + EAGER_PART_END.len();
    }
    assert_eq!(
        count(&data[start..], b"Content-Length"),
        0,
        "eager parts carry no length"
    );

    // Everyone else: the delimiter follows the JPEG; the next part's headers, with
    // Content-Length, come with the next JPEG.
    let data = read_stream(server.addr, FIREFOX_UA, |d| {
        count(d, b"X-Frame-Sequence") >= 2
    });
    let start = body_start(&data).expect("response head");
    assert_eq!(&data[start..start + PREAMBLE.len()], PREAMBLE);
    let head_start = start + PREAMBLE.len();
    let head_end = find(&data, b"\r\n\r\n", head_start).expect("part head") + 4;
    let head = String::from_utf8_lossy(&data[head_start..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    let end = head_end + len;
    assert_eq!(&data[end - 2..end], &[0xFF, 0xD9], "EOI");
    assert_eq!(&data[end..end + PART_END.len()], PART_END);
    assert!(
        data[end + PART_END.len()..].starts_with(b"Content-Type: image/jpeg\r\nContent-Length: "),
        "full headers follow the delimiter"
    );
}

/// RFC 9112 §6.1: a server must not send Transfer-Encoding to an HTTP/1.0 client, which cannot
/// decode it; such a client gets the stream as the bytes up to the connection's end.
#[test]
fn http_1_0_clients_get_an_unchunked_stream() {
    let server = mjpeg_server(&[]);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /stream.mjpg HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..64 {
        if find(&data, b"\r\n\r\n", 0).is_some_and(|p| data.len() >= p + 4 + PREAMBLE.len()) {
            break;
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "stream ended");
        data.extend_from_slice(&buf[..n]);
    }
    let body_start = find(&data, b"\r\n\r\n", 0).expect("response head") + 4;
    let head = String::from_utf8_lossy(&data[..body_start]).to_ascii_lowercase();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(&data[body_start..body_start + PREAMBLE.len()], PREAMBLE);
}

/// `?fps=5` against a 30 fps source: the capped viewer gets about every sixth frame, which
/// its sequence numbers show, and `/status` lists its cap.
#[test]
fn fps_query_caps_one_viewer() {
    const PARTS: u64 = 6;
    let server = mjpeg_server(&["--fps", "30"]);
    let mut capped = open_framed(server.addr, "/stream.mjpg?fps=5", "capped-viewer");
    let first = seq_of(&read_framed_part(&mut capped));
    let mut last = first;
    for _ in 0..PARTS {
        let seq = seq_of(&read_framed_part(&mut capped));
        assert!(seq >= last, "sequence went back: {last} then {seq}");
        last = seq;
    }
    // Six frames apart on average at full rate; at least two apart even if a loaded machine
    // made the source three times slower. Without the cap the viewer gets every frame.
    assert!(
        last - first >= 2 * PARTS,
        "{PARTS} parts after frame {first} reached only frame {last}"
    );

    let status = status_json(server.addr);
    let viewer = status["viewers"]
        .as_array()
        .expect("viewers")
        .iter()
        .find(|v| v["user_agent"] == "capped-viewer")
        .expect("the capped viewer is listed");
    assert_eq!(viewer["fps_cap"], 5);
    let sent = viewer["frames_sent"].as_u64().expect("frames_sent");
    let skipped = viewer["frames_skipped"].as_u64().expect("frames_skipped");
    assert!(
        skipped >= sent,
        "a capped viewer skips most frames: sent {sent}, skipped {skipped}"
    );
}

#[test]
fn timestamp_strip_matches_x_timestamp() {
    let server = mjpeg_server(&[]);
    let mut reader = open_framed(server.addr, "/stream.mjpg", "strip-check");
    for _ in 0..3 {
        let part = read_framed_part(&mut reader);
        let stamp = parse_timestamp(part.header("X-Timestamp").expect("X-Timestamp"));
        assert!(stamp.is_some());
        assert_eq!(strip_time(&part.jpeg), stamp, "strip vs X-Timestamp");
    }
    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    let stamp = snapshot.header("X-Timestamp").and_then(parse_timestamp);
    assert!(stamp.is_some());
    assert_eq!(
        strip_time(&snapshot.body),
        stamp,
        "snapshot strip vs X-Timestamp"
    );
}

/// A picture that stops changing does not leave the viewer a frame behind: the last frame
/// goes out again (browsers show a part only when more data follows it). Fed the same JPEG
/// over and over with `--drop-same-frames`, the server publishes it once, and the viewer keeps
/// getting that one frame.
#[test]
fn an_unchanging_picture_has_its_last_frame_sent_again() {
    let (server, mut stdin) = Server::start_with_stdin(&[
        "--no-hls",
        "--source",
        "pipe:mjpeg",
        "--size",
        "160x120",
        "--fps",
        "10",
        "--drop-same-frames",
    ]);
    // Connected first: JPEGs are passed on only while someone watches.
    let mut reader = open_framed(server.addr, "/stream.mjpg", "static-scene");
    let jpeg = gray_jpeg(160, 120);
    let feeding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let feeding = feeding.clone();
        std::thread::spawn(move || {
            // Bounded: stops when the test is done, or after 30 s at 10 fps.
            for _ in 0..300 {
                if !feeding.load(std::sync::atomic::Ordering::Relaxed)
                    || stdin.write_all(&jpeg).and_then(|()| stdin.flush()).is_err()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // Before the JPEG the viewer may get the placeholder; then the JPEG comes, and with
    // nothing new after it, it comes again.
    let mut previous = read_framed_part(&mut reader);
    let mut repeats = 0;
    for _ in 0..10 {
        let part = read_framed_part(&mut reader);
        if seq_of(&part) == seq_of(&previous) {
            assert_eq!(part.jpeg, previous.jpeg, "a re-sent frame is the same JPEG");
            repeats += 1;
            if repeats == 2 {
                break;
            }
        } else {
            assert!(seq_of(&part) > seq_of(&previous), "sequence went back");
            repeats = 0;
        }
        previous = part;
    }
    feeding.store(false, std::sync::atomic::Ordering::Relaxed);
    feeder.join().expect("feeder");
    assert_eq!(repeats, 2, "the last frame was not sent again");
}

/// A small mid-gray JPEG.
fn gray_jpeg(width: usize, height: usize) -> Vec<u8> {
    let pixels = vec![128u8; width * height];
    let image = turbojpeg::Image {
        pixels: pixels.as_slice(),
        width,
        pitch: width,
        height,
        format: turbojpeg::PixelFormat::GRAY,
    };
    turbojpeg::compress(image, 80, turbojpeg::Subsamp::Gray)
        .expect("encode")
        .to_vec()
}

#[test]
fn snapshot_headers_etag_304_and_head() {
    // At 1 fps the frame rarely changes between two quick requests, so the ETag matches.
    let server = mjpeg_server(&["--fps", "1"]);
    let first = get(server.addr, "/snapshot.jpg");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("Content-Type"), Some("image/jpeg"));
    let len: usize = first
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(len, first.body.len());
    assert!(
        first
            .header("Cache-Control")
            .unwrap_or("")
            .contains("no-store")
    );
    assert!(first.header("X-Frame-Sequence").is_some());
    assert!(
        first
            .header("X-Timestamp")
            .and_then(parse_timestamp)
            .is_some()
    );
    let header = turbojpeg::read_header(&first.body).expect("a JPEG");
    assert_eq!((header.width, header.height), (640, 360));

    let mut saw_304 = false;
    for _ in 0..5 {
        let fresh = get(server.addr, "/snapshot.jpg");
        let etag = fresh.header("ETag").expect("ETag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong ETag: {etag}"
        );
        let again = request(
            server.addr,
            "GET",
            "/snapshot.jpg",
            &[("If-None-Match", &etag)],
        );
        if again.status == 304 {
            assert!(again.body.is_empty(), "304 has no body");
            assert_eq!(again.header("ETag"), Some(etag.as_str()));
            saw_304 = true;
            break;
        }
        // The frame changed in between: a new ETag and the picture.
        assert_eq!(again.status, 200);
        assert_ne!(again.header("ETag"), Some(etag.as_str()));
    }
    assert!(saw_304, "If-None-Match never matched");

    let other = request(
        server.addr,
        "GET",
        "/snapshot.jpg",
        &[("If-None-Match", "\"not-this-one\"")],
    );
    assert_eq!(other.status, 200);
    assert!(!other.body.is_empty());

    let head = request(server.addr, "HEAD", "/snapshot.jpg", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("image/jpeg"));
    assert!(
        head.body.is_empty(),
        "HEAD has no body: {} bytes",
        head.body.len()
    );
}

#[test]
fn snapshot_after_waits_for_a_newer_frame() {
    let server = mjpeg_server(&[]);
    let first = get(server.addr, "/snapshot.jpg");
    let seq: u64 = first
        .header("X-Frame-Sequence")
        .and_then(|v| v.parse().ok())
        .expect("X-Frame-Sequence");
    for ahead in [0, 5] {
        let wanted = seq + ahead;
        let next = get(server.addr, &format!("/snapshot.jpg?after={wanted}"));
        assert_eq!(next.status, 200, "{}", next.text());
        let next_seq: u64 = next
            .header("X-Frame-Sequence")
            .and_then(|v| v.parse().ok())
            .expect("X-Frame-Sequence");
        assert!(next_seq > wanted, "after={wanted} gave {next_seq}");
    }
}

/// A snapshot shows the source's newest frame or the one before it (the one being encoded
/// may not be done): its sequence number is at least the newest one `/status` reported just
/// before the request, less one.
#[test]
fn snapshots_are_fresh() {
    let server = mjpeg_server(&["--fps", "10"]);
    for i in 0..5 {
        let newest_before = status_json(server.addr)["source"]["last_seq"]
            .as_u64()
            .expect("last_seq");
        let snapshot = get(server.addr, "/snapshot.jpg");
        assert_eq!(snapshot.status, 200);
        let seq: u64 = snapshot
            .header("X-Frame-Sequence")
            .and_then(|v| v.parse().ok())
            .expect("X-Frame-Sequence");
        assert!(
            seq + 1 >= newest_before,
            "snapshot {i} shows frame {seq}; the source was at {newest_before} before it was asked for"
        );
    }
}

#[test]
fn status_reports_rate_and_viewers() {
    const PARTS: u64 = 10;
    let server = mjpeg_server(&["--fps", "30"]);
    let mut reader = open_framed(server.addr, "/stream.mjpg", "status-test-viewer");
    for _ in 0..PARTS {
        read_framed_part(&mut reader);
    }
    let status = status_json(server.addr);
    let source = &status["source"];
    assert_eq!(source["fps_configured"], 30);
    assert_eq!(source["width"], 640);
    assert_eq!(source["height"], 360);
    // A rate over the last seconds: its value is for `make bench`, its presence for here.
    assert!(source["fps_measured"].as_f64().is_some(), "fps_measured");
    assert!(source["frames"].as_u64().expect("frames") >= PARTS);

    let viewers = status["viewers"].as_array().expect("viewers");
    let viewer = viewers
        .iter()
        .find(|v| v["user_agent"] == "status-test-viewer")
        .unwrap_or_else(|| panic!("our viewer in {viewers:?}"));
    let sent = viewer["frames_sent"].as_u64().expect("frames_sent");
    assert!(sent >= PARTS, "frames_sent {sent}, read {PARTS}");
    assert!(viewer["frames_skipped"].is_u64(), "frames_skipped");
    let bytes = viewer["bytes_sent"].as_u64().expect("bytes_sent");
    assert!(bytes >= sent * 1000, "bytes_sent {bytes} for {sent} frames");
    assert!(status["viewer_count"].as_u64().expect("viewer_count") >= 1);
}

#[test]
fn health_pages_and_static_files() {
    let server = mjpeg_server(&[]);
    let health = get(server.addr, "/healthz");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(
        health
            .header("Content-Type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    assert!(health.text().starts_with("ok"), "{}", health.text());

    let script = get(server.addr, "/static/viewer.js");
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("Content-Type")
            .unwrap_or("")
            .contains("javascript")
    );
    assert!(!script.body.is_empty());

    let page = get(server.addr, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    let html = page.text();
    assert!(
        html.contains("<img") && html.contains("src=\"/stream.mjpg\""),
        "{html}"
    );
}

#[test]
fn bad_requests_get_a_one_line_reason() {
    let server = mjpeg_server(&[]);
    for (path, status, names) in [
        ("/nope", 404, "/nope"),
        ("/static/nope.js", 404, "nope.js"),
        ("/static/..%2fCargo.toml", 404, "Cargo.toml"),
        ("/stream.mjpg?fps=abc", 400, "fps"),
        ("/stream.mjpg?fps=0", 400, "fps"),
        ("/stream.mjpg?fps=121", 400, "fps"),
        ("/snapshot.jpg?after=-1", 400, "after"),
        ("/snapshot.jpg?after=x", 400, "after"),
    ] {
        let response = get(server.addr, path);
        assert_eq!(response.status, status, "{path}: {}", response.text());
        let text = response.text();
        assert_eq!(
            text.trim_end().lines().count(),
            1,
            "{path}: one line: {text:?}"
        );
        assert!(text.contains(names), "{path}: {text:?} should name {names}");
    }
}

/// RFC 9110 §9.1: general-purpose servers support HEAD wherever they support GET (monitors
/// probe `/healthz` with HEAD); §15.5.6: a known path with a wrong method is 405 with `Allow`.
#[test]
fn head_works_where_get_does_and_wrong_methods_get_405() {
    let server = mjpeg_server(&[]);
    for path in ["/", "/healthz", "/status", "/static/viewer.js"] {
        let head = request(server.addr, "HEAD", path, &[]);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has no body");
    }
    let post = request(server.addr, "POST", "/status", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405, "POST /status: {}", post.text());
    assert!(post.header("Allow").is_some_and(|v| v.contains("GET")));
}

/// Sends `bytes` on a fresh connection, maybe reads a little of the answer, and hangs up.
fn send_and_hang_up(addr: SocketAddr, bytes: &[u8], read_answer: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // The server may close on us half-way through: that is its right.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    if read_answer {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    }
    answer
}

#[test]
fn garbage_never_kills_the_server() {
    let server = mjpeg_server(&[]);
    let addr = server.addr;
    let mut junk = Vec::with_capacity(8192);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..8192 {
        // xorshift: varied bytes, zeros and CR/LF included, the same every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk.push(x as u8);
    }
    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("malformed request line", b"GARBAGE\r\n\r\n".to_vec(), true),
        ("unknown version", b"GET / HTTP/9.9\r\n\r\n".to_vec(), true),
        ("huge header", huge_header.into_bytes(), true),
        ("many headers", many_headers.into_bytes(), true),
        ("binary junk", junk, true),
        (
            "half-sent request",
            b"GET /status HTTP/1.1\r\nHost: x\r\n".to_vec(),
            false,
        ),
        (
            "stream then gone",
            b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        (
            "body promised, not sent",
            b"POST /snapshot.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc".to_vec(),
            false,
        ),
        (
            "bad chunk",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            true,
        ),
        ("nothing at all", Vec::new(), false),
    ];
    for (what, bytes, read_answer) in &cases {
        let answer = send_and_hang_up(addr, bytes, *read_answer);
        if !answer.is_empty() {
            let line = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
            assert!(
                !line.starts_with("HTTP/1.1 5"),
                "{what}: server error {line:?}"
            );
        }
        let health = get(addr, "/healthz");
        assert_eq!(health.status, 200, "after {what}: {}", health.text());
    }
    // A client that sends half a request and keeps the connection open does not block others.
    let mut idle = TcpStream::connect(addr).expect("connect");
    idle.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    for _ in 0..3 {
        assert_eq!(get(addr, "/healthz").status, 200);
    }
    drop(idle);
}

/// Finds a viewer in `/status` by its User-Agent.
fn viewer_stats(addr: SocketAddr, user_agent: &str) -> serde_json::Value {
    viewer_in(&status_json(addr), user_agent)
}

/// Finds a viewer in a `/status` answer by its User-Agent.
fn viewer_in(status: &serde_json::Value, user_agent: &str) -> serde_json::Value {
    status["viewers"]
        .as_array()
        .expect("viewers")
        .iter()
        .find(|v| v["user_agent"] == user_agent)
        .cloned()
        .unwrap_or_else(|| panic!("{user_agent} not in {status}"))
}

/// A viewer whose socket is full: a small receive window and nobody reading.
fn stalled_viewer(addr: SocketAddr, user_agent: &str) -> MjpegReader {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    // A small receive window, so the stall reaches the server quickly.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let stalled = MjpegReader::open_on(socket.into(), "/stream.mjpg", user_agent);
    assert_eq!(stalled.status, 200);
    stalled
}

/// A viewer that stops reading is dropped once its connection has taken nothing for
/// `--viewer-stall-seconds`, and counted; its file descriptor is freed.
#[test]
fn a_viewer_that_stops_reading_is_dropped_and_counted() {
    let server = mjpeg_server(&["--fps", "30", "--viewer-stall-seconds", "1"]);
    let stalled = stalled_viewer(server.addr, "stops-reading");
    let deadline = Instant::now() + WAIT_LIMIT;
    let status = loop {
        let status = status_json(server.addr);
        if status["viewers_dropped_stalled"].as_u64() >= Some(1) {
            break status;
        }
        assert!(Instant::now() < deadline, "never dropped: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["viewer_count"], 0, "{status}");
    // A viewer that reads is not.
    let mut reader = MjpegReader::open(server.addr, "/stream.mjpg", "reads");
    for _ in 0..60 {
        reader.next_part();
    }
    assert_eq!(status_json(server.addr)["viewers_dropped_stalled"], 1);
    drop(stalled);
}

fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {stats}"))
}

#[test]
fn a_stalled_viewer_does_not_slow_another() {
    // Frames are ~30 kB at 640x360: a stalled viewer's socket fills within a few frames.
    const STEADY_PARTS: u64 = 60;
    // The stalled viewer is kept on purpose here, not dropped.
    let server = mjpeg_server(&["--fps", "30", "--viewer-stall-seconds", "600"]);
    let mut stalled = stalled_viewer(server.addr, "stalled-viewer");

    // The other viewer gets frame after frame: the stalled one holds nothing up.
    let mut steady = open_framed(server.addr, "/stream.mjpg", "steady-viewer");
    let first = seq_of(&read_framed_part(&mut steady));
    let mut last = first;
    for _ in 0..STEADY_PARTS {
        let seq = seq_of(&read_framed_part(&mut steady));
        assert!(seq >= last, "sequence went back: {last} then {seq}");
        last = seq;
    }
    assert!(last > first, "the steady viewer's stream never moved on");

    // The stalled viewer holds little beyond its socket: nowhere near all those frames. And
    // every frame published meanwhile was either sent to it or counted as skipped.
    let stalled_stats = viewer_stats(server.addr, "stalled-viewer");
    println!("stalled viewer: {stalled_stats}");
    let held = counter(&stalled_stats, "bytes_sent");
    assert!(held < 1_000_000, "{held} bytes queued for a stalled viewer");
    let sent = counter(&stalled_stats, "frames_sent");
    let skipped = counter(&stalled_stats, "frames_skipped");
    assert!(
        sent + skipped >= STEADY_PARTS,
        "sent {sent} + skipped {skipped} while {STEADY_PARTS} frames went to another viewer"
    );

    // When it reads again it catches up to the live picture within a few parts: it gets a
    // frame at least as new as the newest one when it resumed.
    let newest_at_resume = status_json(server.addr)["source"]["last_seq"]
        .as_u64()
        .expect("last_seq");
    let caught_up = (0..20).any(|_| seq_of(&stalled.next_part()) >= newest_at_resume);
    assert!(
        caught_up,
        "the stalled viewer never got back to frame {newest_at_resume}"
    );
    let resumed_stats = viewer_stats(server.addr, "stalled-viewer");
    println!("stalled viewer after catching up: {resumed_stats}");
    assert!(counter(&resumed_stats, "frames_skipped") >= skipped);
}

/// The design promises that a slow viewer's drops are visible in `/status`; a viewer that has
/// stopped reading altogether shows them growing while it stalls, not only once it reads
/// again: every frame encoded while it is stuck is one more skipped.
#[test]
fn a_stalled_viewers_skips_show_while_it_stalls() {
    const MORE_FRAMES: u64 = 30;
    // The stalled viewer is kept on purpose here, not dropped.
    let server = mjpeg_server(&["--fps", "30", "--viewer-stall-seconds", "600"]);
    let stalled = stalled_viewer(server.addr, "stalled-viewer");
    let encoded = |status: &serde_json::Value| counter(&status["jpeg"], "frames_encoded");

    // Wait until its socket is full: its frames_sent stops growing across 10 encoded frames.
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut previous = (0, 0);
    loop {
        assert!(
            Instant::now() < deadline,
            "the stalled viewer never filled up"
        );
        let status = status_json(server.addr);
        let sent = counter(&viewer_in(&status, "stalled-viewer"), "frames_sent");
        if sent > 0 && sent == previous.0 && encoded(&status) >= previous.1 + 10 {
            break;
        }
        if sent != previous.0 {
            previous = (sent, encoded(&status));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // Counters from one answer, so they describe the same moment.
    let reading = || {
        let status = status_json(server.addr);
        let viewer = viewer_in(&status, "stalled-viewer");
        (
            encoded(&status),
            counter(&viewer, "frames_sent"),
            counter(&viewer, "frames_skipped"),
        )
    };
    let (encoded_before, sent_before, skipped_before) = reading();
    let deadline = Instant::now() + WAIT_LIMIT;
    let (encoded_after, sent_after, skipped_after) = loop {
        let now = reading();
        if now.0 >= encoded_before + MORE_FRAMES {
            break now;
        }
        assert!(Instant::now() < deadline, "the encoder stopped");
        std::thread::sleep(Duration::from_millis(50));
    };
    let encoded_meanwhile = encoded_after - encoded_before;
    let sent_meanwhile = sent_after - sent_before;
    // The newest frame may be published but not yet counted, hence one frame of slack.
    assert!(
        skipped_after + sent_meanwhile + 1 >= skipped_before + encoded_meanwhile,
        "frames_skipped {skipped_before} then {skipped_after} while {encoded_meanwhile} \
         frames were encoded and {sent_meanwhile} sent"
    );
    assert!(skipped_after > skipped_before, "no skips while stalled");
    drop(stalled);
}

/// SIGTERM with a viewer connected: its response ends in order (the last chunk of the
/// chunked body), the connection closes, and the process exits.
#[test]
fn sigterm_ends_open_streams_and_the_process() {
    let server = mjpeg_server(&[]);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    stream
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\nUser-Agent: sigterm-test\r\n\r\n")
        .expect("send");
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut ended = false;
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut signalled = false;
    while Instant::now() < deadline {
        // One whole part first: its end is the delimiter after a JPEG.
        if !signalled && find(&data, b"\xFF\xD9\r\n--framecast-boundary\r\n", 0).is_some() {
            let killed = Command::new("kill")
                .args(["-TERM", &server.pid().to_string()])
                .status()
                .expect("run kill");
            assert!(killed.success(), "kill -TERM failed");
            signalled = true;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(signalled, "no whole part arrived");
    assert!(ended, "the stream did not end after SIGTERM");
    assert!(
        data.ends_with(b"\r\n0\r\n\r\n"),
        "the body ends with the last chunk: {:?}",
        String::from_utf8_lossy(&data[data.len().saturating_sub(64)..])
    );

    let deadline = Instant::now() + WAIT_LIMIT;
    while !has_exited(server.pid()) {
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True once process `pid` has exited (a zombie until its parent reaps it, or gone).
fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends with the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}
