//! Black-box tests of `--hls on-demand`: the H.264 encoder starts with the first HLS or
//! `/live.mp4` request, stops a set time after the last, and starts again with a playlist that
//! goes on from the old one. Every check reads counters from `/status` (never a wall-clock
//! rate); every loop is bounded in count and time.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{MjpegReader, Server, get, require_clients, run_with_timeout, status_json};
use framecast::media::playlist::{
    ParsedMediaPlaylist, check_update, check_written, parse_media_playlist,
    parse_multivariant_playlist,
};
use serde_json::Value;

/// The flags under test: on demand, stopping one second after the last request, which the
/// server raises to three target durations (3 s with 1 s segments) so that a player's
/// reloads, about one a target duration, never let it stop.
const ON_DEMAND: [&str; 6] = [
    "--hls",
    "on-demand",
    "--hls-idle-stop-seconds",
    "1",
    "--hls-window",
    "6",
];
/// The limit for something the server does within seconds (start, stop); it only bounds the
/// test on a busy machine.
const LIMIT: Duration = Duration::from_secs(30);
/// How often a waiting test reads `/status`.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The limit for an external client run; a healthy one takes a few seconds.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The idle time the server uses: three target durations.
const IDLE_STOP_S: u64 = 3;
/// Source frames that make more than the idle time at 30 fps: what "a while" means here,
/// counted in frames rather than timed.
const FRAMES_OF_IDLE_TIMES: u64 = 2 * IDLE_STOP_S * 30;

fn hls_status(addr: SocketAddr) -> Value {
    status_json(addr)["hls"].clone()
}

fn source_frames(addr: SocketAddr) -> u64 {
    status_json(addr)["source"]["frames"].as_u64().unwrap_or(0)
}

fn frames_encoded(addr: SocketAddr) -> u64 {
    hls_status(addr)["frames_encoded"]
        .as_u64()
        .expect("hls.frames_encoded")
}

fn running(addr: SocketAddr) -> bool {
    hls_status(addr)["running"].as_bool().expect("hls.running")
}

/// Reads `/status` until `ready` holds for its `hls` object.
fn wait_for_hls(addr: SocketAddr, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    common::wait_for_hls(addr, what, LIMIT, POLL_INTERVAL, ready)
}

/// Waits until the source has delivered `count` more frames (no HLS request meanwhile).
fn let_source_run(addr: SocketAddr, count: u64) {
    let until = source_frames(addr) + count;
    let deadline = Instant::now() + LIMIT;
    while source_frames(addr) < until {
        assert!(Instant::now() < deadline, "the source stalled");
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn parse_media(text: &str) -> ParsedMediaPlaylist {
    parse_media_playlist(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// `/live.m3u8`, which must answer 200 (waiting for the first segment if need be), and the
/// path of the media playlist it names.
fn media_path(addr: SocketAddr) -> String {
    let response = get(addr, "/live.m3u8");
    let text = response.text();
    assert_eq!(response.status, 200, "/live.m3u8: {text}");
    let multivariant =
        parse_multivariant_playlist(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let [variant] = &multivariant.variants[..] else {
        panic!("not one variant:\n{text}");
    };
    format!("/{}", variant.uri)
}

/// The media playlist, which must answer 200.
fn media_playlist(addr: SocketAddr, path: &str) -> ParsedMediaPlaylist {
    let response = get(addr, path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    parse_media(&response.text())
}

/// ffmpeg reads three seconds of `url` without an error and decodes frames.
fn assert_ffmpeg_plays(url: &str) {
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
            .args(["-i", url])
            .args(["-t", "3", "-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "ffmpeg failed:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Found duplicated MOOV Atom"))
        .collect();
    assert!(errors.is_empty(), "ffmpeg errors:\n{}", errors.join("\n"));
    let decoded = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    assert!(decoded > 0, "ffmpeg decoded nothing:\n{stdout}");
}

#[test]
fn the_encoder_starts_with_the_first_request_stops_when_idle_and_starts_again() {
    if !require_clients(
        &["ffmpeg"],
        "the_encoder_starts_with_the_first_request_stops_when_idle_and_starts_again",
    ) {
        return;
    }
    let server = Server::start(&ON_DEMAND);
    let addr = server.addr;

    // Before any request: nothing encoded, however long the source runs, and the stream is
    // healthy (its HLS makes no media, rightly). MJPEG and snapshots work as ever.
    let_source_run(addr, FRAMES_OF_IDLE_TIMES);
    let hls = hls_status(addr);
    assert_eq!(hls["mode"], "on-demand", "{hls}");
    assert_eq!(hls["idle_stop_s"], IDLE_STOP_S, "{hls}");
    assert_eq!(hls["running"], false, "{hls}");
    assert_eq!(hls["frames_encoded"], 0, "{hls}");
    assert_eq!(hls["starts"], 0, "{hls}");
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200, "/healthz: {}", health.text());
    let snapshot = get(addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200);
    assert!(snapshot.body.starts_with(&[0xFF, 0xD8]), "a JPEG");
    assert_eq!(frames_encoded(addr), 0, "a snapshot needs no H.264");

    // The first request waits for the first segment and gets a playlist that lists it.
    let path = media_path(addr);
    assert!(running(addr), "the request started the encoder");
    let first = media_playlist(addr, &path);
    assert!(!first.playlist.segments.is_empty(), "{}", first.render());
    assert!(!first.playlist.segments[0].discontinuity);

    // A real player reads it.
    assert_ffmpeg_plays(&server.url("/live.m3u8"));
    let before = media_playlist(addr, &path);
    let old_last = before
        .playlist
        .segments
        .last()
        .unwrap_or_else(|| panic!("no segment:\n{}", before.render()))
        .clone();

    // No request for the idle time: the encoder stops, and stays stopped.
    let stopped = wait_for_hls(addr, "the encoder stops", |hls| hls["running"] == false);
    assert_eq!(stopped["idle_stops"], 1, "{stopped}");
    let encoded = frames_encoded(addr);
    let_source_run(addr, FRAMES_OF_IDLE_TIMES);
    assert_eq!(
        frames_encoded(addr),
        encoded,
        "nothing is encoded while stopped"
    );
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200, "/healthz: {}", health.text());

    // A request starts it again: the new playlist goes on from the old one, with new media
    // after a discontinuity, never the old segments.
    let again = media_playlist(addr, &path);
    let hls = hls_status(addr);
    assert_eq!(hls["running"], true, "{hls}");
    assert_eq!(hls["starts"], 2, "{hls}");
    assert!(frames_encoded(addr) > encoded);
    let new_first = &again.playlist.segments[0];
    assert!(
        new_first.msn > old_last.msn && again.playlist.media_sequence > old_last.msn,
        "new numbers:\n{}\nafter:\n{}",
        again.render(),
        before.render()
    );
    assert!(new_first.discontinuity, "{}", again.render());
    assert!(
        new_first.program_date_time_unix_ms > old_last.program_date_time_unix_ms,
        "PROGRAM-DATE-TIME follows the capture clock"
    );
    check_update(&before.playlist, &again.playlist)
        .unwrap_or_else(|e| panic!("{e}:\n{}\nafter:\n{}", again.render(), before.render()));
    // A player joining now plays the new media from its discontinuity on.
    assert_ffmpeg_plays(&server.url("/live.m3u8"));

    // Polled like a player does, the window fills again; each playlist follows the one before
    // and, once it lists a whole window, keeps every rule.
    let deadline = Instant::now() + LIMIT;
    let mut previous = again;
    loop {
        let playlist = media_playlist(addr, &path);
        check_update(&previous.playlist, &playlist.playlist)
            .unwrap_or_else(|e| panic!("{e}:\n{}", playlist.render()));
        if playlist.playlist.segments.len() >= 6 {
            check_written(&playlist).unwrap_or_else(|e| panic!("{e}:\n{}", playlist.render()));
            assert_eq!(
                playlist.playlist.discontinuity_sequence
                    + u64::from(playlist.playlist.segments[0].discontinuity),
                1,
                "the new segments have the next discontinuity number:\n{}",
                playlist.render()
            );
            break;
        }
        assert!(Instant::now() < deadline, "{}", playlist.render());
        std::thread::sleep(POLL_INTERVAL);
        previous = playlist;
    }
    assert_eq!(hls_status(addr)["idle_stops"], 1, "polls kept it running");
}

#[test]
fn a_live_mp4_viewer_keeps_the_encoder_running_past_the_idle_time() {
    let server = Server::start(&ON_DEMAND);
    let addr = server.addr;
    assert_eq!(frames_encoded(addr), 0);
    let mut reader = MjpegReader::open(addr, "/live.mp4", "framecast-test");
    assert_eq!(reader.status, 200);
    assert_eq!(reader.header("content-type"), Some("video/mp4"));
    // Read the body box by box: ftyp, moov, then a moof + mdat per frame. Several idle times'
    // worth of frames arrive while the viewer is the only demand.
    let mut fragments = 0u64;
    let mut kinds = Vec::new();
    while fragments < FRAMES_OF_IDLE_TIMES {
        let head = reader.read_raw(8);
        let size = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        assert!((8..10_000_000).contains(&size), "box size {size}");
        let kind = String::from_utf8_lossy(&head[4..8]).into_owned();
        reader.read_raw(size - 8);
        fragments += u64::from(kind == "moof");
        if kinds.len() < 4 {
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, ["ftyp", "moov", "moof", "mdat"]);
    let hls = hls_status(addr);
    assert_eq!(hls["running"], true, "{hls}");
    assert_eq!(
        hls["idle_stops"], 0,
        "never stopped while the viewer watched: {hls}"
    );
    assert!(
        hls["frames_encoded"].as_u64() >= Some(FRAMES_OF_IDLE_TIMES),
        "{hls}"
    );

    // Once it goes, the encoder stops.
    drop(reader);
    wait_for_hls(addr, "the encoder stops", |hls| hls["running"] == false);
}
