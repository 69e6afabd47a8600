//! framecast behind Debian's nginx with the shipped `contrib/nginx.conf`: LL-HLS viewers on
//! the edge cost framecast about one request per distinct part and blocking-playlist URL
//! whatever their number, signatures and credentials stay out of the media cache key while
//! every viewer is still checked at framecast, and MJPEG passes through frame by frame.
//!
//! What reached framecast is counted by a logging tap between the edge and framecast
//! (`common::nginx_edge`), not by the edge's own account of its cache.

mod common;

#[allow(dead_code)]
#[path = "../benches/common/llhls_viewer.rs"]
mod llhls_viewer;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use common::nginx_edge::{LoggedRequest, NginxEdge};
use common::{MjpegReader, Server, get, request, sign_url, wait_for_hls};

/// How long each viewer count watches: a few segments of the default 1 s.
const WATCH: Duration = Duration::from_secs(4);

/// Frames both MJPEG viewers must have passed, counted by sequence number.
const MJPEG_WINDOW_FRAMES: u64 = 40;

fn require_nginx(test: &str) -> bool {
    common::require_prerequisite(common::nginx_edge::missing(), test)
}

/// framecast with HLS warm: a complete segment listed.
fn start_origin() -> Server {
    warm(Server::start(&["--size", "320x180"]))
}

/// `server` once its HLS lists a complete segment.
fn warm(server: Server) -> Server {
    wait_for_hls(
        server.addr,
        "has a segment",
        Duration::from_secs(20),
        Duration::from_millis(50),
        |hls| common::count(hls, "segments") > 0,
    );
    server
}

/// Whether a request is for something the edge caches: a part, a segment, an init section
/// or a blocking reload of the media playlist.
fn cacheable(request: &LoggedRequest) -> bool {
    let path = request.path();
    path.contains("/hls/")
        && (path.ends_with(".m4s")
            || path.ends_with(".mp4")
            || (path.ends_with("media.m3u8") && request.uri.contains("_HLS_msn=")))
}

/// Runs `viewers` LL-HLS viewers against `addr` for [`WATCH`]; returns the parts each got.
fn watch(addr: SocketAddr, viewers: usize) -> Vec<Vec<(u64, u64)>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let prefix = llhls_viewer::wait_for_media(addr, "/live.m3u8")
            .await
            .expect("HLS media through the edge");
        let deadline = tokio::time::Instant::now() + WATCH;
        let tasks: Vec<_> = (0..viewers)
            .map(|_| tokio::spawn(llhls_viewer::viewer(addr, prefix.clone(), deadline)))
            .collect();
        let mut parts = Vec::new();
        for task in tasks {
            let fetched = task
                .await
                .expect("viewer task")
                .unwrap_or_else(|e| panic!("viewer through the edge: {e}"));
            parts.push(fetched.into_iter().map(|f| f.part).collect());
        }
        parts
    })
}

#[test]
fn llhls_viewers_on_the_edge_cost_the_origin_one_request_per_url() {
    if !require_nginx("llhls_viewers_on_the_edge_cost_the_origin_one_request_per_url") {
        return;
    }
    let origin = start_origin();
    for viewers in [1, 10, 100] {
        // A fresh edge (empty caches, empty logs) for each count.
        let edge = NginxEdge::start(origin.addr, true).expect("nginx edge");
        let parts_seen = watch(edge.addr, viewers);
        let origin_requests = edge.origin_requests();
        let edge_responses = edge.edge_responses();

        let server_errors: Vec<_> = edge_responses.iter().filter(|r| r.status >= 500).collect();
        assert!(
            server_errors.is_empty(),
            "{viewers} viewers: 5xx at the edge: {server_errors:?}\n{}",
            edge.error_log()
        );
        for (viewer, parts) in parts_seen.iter().enumerate() {
            assert!(
                !parts.is_empty(),
                "viewer {viewer} of {viewers} got no part"
            );
        }

        let mut per_url: BTreeMap<&str, usize> = BTreeMap::new();
        for request in origin_requests.iter().filter(|r| cacheable(r)) {
            *per_url.entry(request.uri.as_str()).or_default() += 1;
        }
        let repeated: Vec<_> = per_url.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "{viewers} viewers: framecast asked more than once for {repeated:?}"
        );
        // Every part a viewer got came from framecast once, through the cache.
        let distinct_parts: BTreeSet<_> = parts_seen.iter().flatten().collect();
        let part_requests = per_url.keys().filter(|uri| uri.contains("/part")).count();
        assert!(
            part_requests >= distinct_parts.len(),
            "{viewers} viewers got {} distinct parts, framecast served {part_requests}",
            distinct_parts.len()
        );
        // Each viewer is checked at framecast, once for all of them here (no credentials).
        let checks = origin_requests
            .iter()
            .filter(|r| r.method == "HEAD" && r.path() == "/live.m3u8")
            .count();
        assert!(
            (1..=2).contains(&checks),
            "{viewers} viewers: {checks} viewer checks reached framecast"
        );
        let edge_hits = edge_responses.iter().filter(|r| r.tag == "HIT").count();
        println!(
            "{viewers} viewers: {} requests at the edge ({edge_hits} cache hits), {} reached \
             framecast ({} of them cacheable, for {} distinct URLs), {} distinct parts seen",
            edge_responses.len(),
            origin_requests.len(),
            per_url.values().sum::<usize>(),
            per_url.len(),
            distinct_parts.len(),
        );
    }
}

/// The media playlist of the first stream and the last part it lists, as paths.
fn listed_part(addr: SocketAddr) -> (String, String) {
    listed_part_of(addr, "/live.m3u8")
}

/// The media playlist named by the multivariant playlist at `multivariant` and the last part
/// it lists, as paths.
fn listed_part_of(addr: SocketAddr, multivariant: &str) -> (String, String) {
    let media = common::hls_fetch::media_path_of(addr, multivariant);
    let (_, text) = common::hls_fetch::media_playlist(addr, &media);
    let uri = text
        .lines()
        .rev()
        .filter(|line| line.starts_with("#EXT-X-PART:"))
        .find_map(|line| line.split("URI=\"").nth(1)?.split('"').next())
        .expect("a part in the playlist")
        .to_owned();
    (media.clone(), common::hls_fetch::sibling(&media, &uri))
}

#[test]
fn cache_keys_leave_out_signatures_and_every_viewer_is_checked_at_the_origin() {
    if !require_nginx("cache_keys_leave_out_signatures_and_every_viewer_is_checked_at_the_origin") {
        return;
    }
    let dir = scratch_dir("cache_keys");
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        "signing_key_file = \"edge.key\"\n[[streams]]\nname = \"main\"\nsource = \"test\"\nsize = \"320x180\"\n",
    )
    .expect("configuration file");
    // Two links to the same playlist: they differ in expiry and signature.
    let query_of = |valid: &str| {
        let link = sign_url(&config, "/live.m3u8", &["--valid", valid]);
        link.split_once('?').expect("a query").1.to_owned()
    };
    let (link_a, link_b) = (query_of("1h"), query_of("2h"));
    let origin = warm(Server::start(&[
        "--config",
        config.to_str().expect("UTF-8"),
    ]));
    let edge = NginxEdge::start(origin.addr, true).expect("nginx edge");
    let (media, part) = listed_part(origin.addr);
    let through_edge = |uri: &str, headers: &[(&str, &str)]| {
        let response = request(edge.addr, "GET", uri, headers);
        assert_eq!(response.status, 200, "{uri}: {}", response.text());
        response.header("X-Cache-Status").unwrap_or("").to_owned()
    };
    let alice = [("Authorization", "Basic YWxpY2U6c2VjcmV0")];

    // Media: one key whatever the link or the credentials.
    assert_eq!(through_edge(&format!("{part}?{link_a}"), &[]), "MISS");
    assert_eq!(through_edge(&format!("{part}?{link_b}"), &[]), "HIT");
    assert_eq!(through_edge(&part, &alice), "HIT");
    assert_eq!(through_edge(&format!("{part}?{link_a}"), &[]), "HIT");

    // A blocking reload for a part that exists answers at once; its body carries the link's
    // signature in every URI, so the link is in its key.
    let msn = part
        .rsplit('/')
        .next()
        .and_then(|name| name.strip_prefix("part"))
        .and_then(|rest| rest.split('.').next())
        .expect("part msn")
        .to_owned();
    let reload = format!("{media}?_HLS_msn={msn}&_HLS_part=0");
    assert_eq!(through_edge(&format!("{reload}&{link_a}"), &[]), "MISS");
    assert_eq!(through_edge(&format!("{reload}&{link_a}"), &[]), "HIT");
    assert_eq!(through_edge(&format!("{reload}&{link_b}"), &[]), "MISS");
    assert_eq!(through_edge(&reload, &alice), "MISS");
    assert_eq!(through_edge(&reload, &[]), "HIT");
    // Without `_HLS_msn` the playlist changes every part: framecast answers each time.
    assert_eq!(through_edge(&media, &[]), "BYPASS");
    assert_eq!(through_edge(&media, &[]), "BYPASS");

    // A named stream's HLS is checked against that stream's multivariant playlist.
    let (_, named_part) = listed_part_of(origin.addr, "/streams/main/live.m3u8");
    through_edge(&named_part, &alice);

    // Each distinct viewer (link, credentials, stream) was checked at framecast once, with
    // its link and credentials; a viewer seen before was answered from the check cache.
    let mut checks: Vec<(String, String)> = edge
        .origin_requests()
        .into_iter()
        .filter(|r| r.method == "HEAD")
        .map(|r| (r.uri, r.tag))
        .collect();
    checks.sort();
    let mut expected = [
        ("/live.m3u8".to_owned(), "-"),
        ("/live.m3u8".to_owned(), "credentials"),
        (format!("/live.m3u8?{link_a}"), "-"),
        (format!("/live.m3u8?{link_b}"), "-"),
        ("/streams/main/live.m3u8".to_owned(), "credentials"),
    ]
    .map(|(uri, tag)| (uri, tag.to_owned()));
    expected.sort();
    assert_eq!(checks, expected);
    // framecast saw the part once, with the first viewer's link as sent.
    let part_requests: Vec<String> = edge
        .origin_requests()
        .into_iter()
        .filter(|r| r.path() == part)
        .map(|r| r.uri)
        .collect();
    assert_eq!(part_requests, [format!("{part}?{link_a}")]);
}

/// Reads parts until one with sequence number `last` or later; returns how many had numbers
/// in `first..=last`. Bounded: at most `4 * (last - first)` parts and framecast's 10 s per part.
fn frames_in_window(reader: &mut MjpegReader, first: u64, last: u64) -> u64 {
    let mut counted = 0;
    for _ in 0..4 * (last - first + 1) {
        let part = reader.next_part();
        let seq: u64 = part
            .header("X-Frame-Sequence")
            .and_then(|s| s.parse().ok())
            .expect("X-Frame-Sequence");
        if (first..=last).contains(&seq) {
            counted += 1;
        }
        if seq >= last {
            return counted;
        }
    }
    panic!("no frame {last} within {} parts", 4 * (last - first + 1));
}

#[test]
fn mjpeg_through_the_edge_gets_the_frames_a_direct_viewer_gets() {
    if !require_nginx("mjpeg_through_the_edge_gets_the_frames_a_direct_viewer_gets") {
        return;
    }
    let origin = Server::start(&["--size", "320x180"]);
    let edge = NginxEdge::start(origin.addr, false).expect("nginx edge");
    for path in ["/stream.mjpg", "/streams/main/stream.mjpg"] {
        let mut direct = MjpegReader::open(origin.addr, path, "framecast-test");
        let mut edged = MjpegReader::open(edge.addr, path, "framecast-test");
        assert_eq!(direct.status, 200, "{path} direct");
        assert_eq!(edged.status, 200, "{path} through the edge");
        assert_eq!(edged.header("X-Cache-Status"), None, "{path} is not cached");
        // A window of sequence numbers both are certain to reach, starting after the first
        // frame each has received.
        let seq = |reader: &mut MjpegReader| -> u64 {
            let part = reader.next_part();
            part.header("X-Frame-Sequence")
                .and_then(|s| s.parse().ok())
                .expect("X-Frame-Sequence")
        };
        let first = seq(&mut direct).max(seq(&mut edged)) + 5;
        let last = first + MJPEG_WINDOW_FRAMES - 1;
        // Each reader on its own thread, so neither waits in the other's socket.
        let edge_thread = std::thread::spawn(move || frames_in_window(&mut edged, first, last));
        let direct_frames = frames_in_window(&mut direct, first, last);
        let edge_frames = edge_thread.join().expect("edge reader");
        println!("{path}: frames {first}..={last}: direct {direct_frames}, edge {edge_frames}");
        assert!(
            edge_frames + 3 >= direct_frames,
            "{path}: the edge viewer got {edge_frames} frames of {first}..={last}, the direct \
             one {direct_frames}"
        );
    }
    let health = get(edge.addr, "/healthz");
    assert_eq!(health.status, 200, "pass-through of the rest");
}

#[test]
fn a_check_that_neither_allows_nor_refuses_leaves_the_answer_to_the_origin() {
    if !require_nginx("a_check_that_neither_allows_nor_refuses_leaves_the_answer_to_the_origin") {
        return;
    }
    // Without HLS the check (the multivariant playlist) is a 404: neither allowed nor
    // refused. The request then goes to framecast uncached, and its own answer reaches the
    // viewer, not nginx's 500 for an unexpected check status.
    let origin = Server::start(&["--size", "320x180", "--no-hls"]);
    let edge = NginxEdge::start(origin.addr, true).expect("nginx edge");
    for path in ["/hls/x/part1.0.m4s", "/hls/x/media.m3u8?_HLS_msn=1"] {
        let response = get(edge.addr, path);
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert!(
            response.text().contains("HLS is turned off"),
            "{}",
            response.text()
        );
    }
    let reached: Vec<_> = edge
        .origin_requests()
        .into_iter()
        .map(|r| format!("{} {} {}", r.method, r.uri, r.status))
        .collect();
    assert_eq!(
        reached,
        [
            "HEAD /live.m3u8 404",
            "GET /hls/x/part1.0.m4s 404",
            "HEAD /live.m3u8 404",
            "GET /hls/x/media.m3u8?_HLS_msn=1 404",
        ]
    );
}

/// A scratch directory of this test binary's own.
fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("edge_cache")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// `Authorization: Basic` for `user:password`.
fn basic(user_password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
    format!("Basic {encoded}")
}

/// The last part `media` lists, fetched from `addr` with `headers`; polls until there is one
/// (at most 20 s).
fn last_part(addr: SocketAddr, media: &str, headers: &[(&str, &str)]) -> String {
    for _ in 0..400 {
        let text = request(addr, "GET", media, headers).text();
        let part = text
            .lines()
            .rev()
            .filter(|line| line.starts_with("#EXT-X-PART:"))
            .find_map(|line| line.split("URI=\"").nth(1)?.split('"').next());
        if let Some(part) = part {
            return common::hls_fetch::sibling(media, part);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no part in {media} within 20 s");
}

#[test]
fn the_edge_refuses_whom_the_origin_refuses_even_for_cached_parts() {
    if !require_nginx("the_edge_refuses_whom_the_origin_refuses_even_for_cached_parts") {
        return;
    }
    let dir = scratch_dir("refusals");
    let config = dir.join("edge.toml");
    // The hash is `framecast hash-password` of "admin-pw".
    std::fs::write(
        &config,
        r#"
signing_key_file = "edge.key"

[[users]]
name = "alice"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$jFM8AgCK6zngj6ABpTxdbw$cZH/64qyMYGXeUS0T5p9eSTUAQFzcs/76JojmgCWgK4"
streams = ["main"]

[[streams]]
name = "main"
source = "test"
size = "320x180"

[[streams]]
name = "other"
source = "test"
size = "160x120"
"#,
    )
    .expect("configuration file");
    let link = sign_url(&config, "/live.m3u8", &["--valid", "1h"]);
    let signature = link.split_once('?').expect("a query").1.to_owned();
    let origin = Server::start_with_users(&["--config", config.to_str().expect("UTF-8")]);
    let edge = NginxEdge::start(origin.addr, true).expect("nginx edge");
    let alice = basic("alice:admin-pw");
    let as_alice = [("Authorization", alice.as_str())];

    // A part alice may fetch, found at the origin with her credentials.
    let multivariant = request(origin.addr, "GET", "/live.m3u8", &as_alice);
    assert_eq!(multivariant.status, 200, "{}", multivariant.text());
    let variant = multivariant
        .text()
        .lines()
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .expect("a variant")
        .to_owned();
    let media = common::hls_fetch::sibling("/live.m3u8", &variant);
    let part = last_part(origin.addr, &media, &as_alice);
    let through_edge = |uri: &str, headers: &[(&str, &str)]| {
        let response = request(edge.addr, "GET", uri, headers);
        let challenge = response.header("WWW-Authenticate").map(str::to_owned);
        (response.status, challenge)
    };

    // alice fills the cache; then it holds the part.
    assert_eq!(through_edge(&part, &as_alice).0, 200);
    assert_eq!(through_edge(&part, &as_alice).0, 200);
    // Nobody, a wrong password and a forged link are refused, cached part or not; nobody gets
    // framecast's challenge.
    let (status, challenge) = through_edge(&part, &[]);
    assert_eq!(status, 401);
    assert!(
        challenge.is_some_and(|c| c.starts_with("Basic")),
        "the challenge"
    );
    let wrong = basic("alice:wrong");
    assert_eq!(
        through_edge(&part, &[("Authorization", wrong.as_str())]).0,
        401
    );
    let forged = signature.replacen("sig=", "sig=A", 1);
    assert_eq!(through_edge(&format!("{part}?{forged}"), &[]).0, 401);
    // The signed link opens the part and the playlist without credentials.
    assert_eq!(through_edge(&format!("{part}?{signature}"), &[]).0, 200);
    assert_eq!(through_edge(&format!("{media}?{signature}"), &[]).0, 200);
    // alice may not watch the other stream: 403 at the edge too.
    assert_eq!(through_edge("/streams/other/live.m3u8", &as_alice).0, 403);
    // framecast fetched the part once, for alice: the refused viewers reached only the checks.
    let part_fetches = edge
        .origin_requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path() == part)
        .count();
    assert_eq!(part_fetches, 1);
}
