//! HLS from the first moment: clients that ask as soon as the server announces its address,
//! before any frame exists, get a playable stream (the first requests wait for the first
//! complete segment, bounded like a blocking reload), never a playlist with only a preload
//! hint or a guessed BANDWIDTH.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{Server, get, request, require_clients, run_with_timeout};

/// Bounds a client run: start-up (about a second for the first segment) plus what it reads.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// The value of `name=` in an attribute list (unquoted or quoted).
fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    }
    rest.split(',').next()
}

/// Checks what a player needs to start from a media playlist: tags it knows, EXT-X-MAP, at
/// least one whole segment with EXTINF and PROGRAM-DATE-TIME, each followed by its URI.
/// Returns the URIs of the init section and the segments.
fn check_playable(text: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{text}");
    let mut map = None;
    let mut segments = Vec::new();
    let mut target_duration = None;
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            assert!(tag.starts_with("EXT"), "an unknown line: {line}\n{text}");
            if let Some(value) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target_duration = Some(value.parse::<f64>().expect("TARGETDURATION"));
            }
            if line.starts_with("#EXT-X-MAP:") {
                map = attribute(line, "URI").map(str::to_owned);
            }
            if let Some(value) = line.strip_prefix("#EXTINF:") {
                let duration: f64 = value
                    .trim_end_matches(',')
                    .parse()
                    .expect("EXTINF duration");
                let td = target_duration.expect("TARGETDURATION before EXTINF");
                assert!(duration > 0.0 && duration.round() <= td, "{line}");
                let uri = lines[i + 1..]
                    .iter()
                    .find(|l| !l.starts_with('#'))
                    .expect("a URI after EXTINF");
                segments.push((*uri).to_owned());
            }
            continue;
        }
        assert!(
            lines[..i].iter().any(|l| l.starts_with("#EXTINF:")),
            "a URI with no EXTINF: {line}"
        );
    }
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:"),
        "no PROGRAM-DATE-TIME\n{text}"
    );
    assert!(!segments.is_empty(), "no complete segment\n{text}");
    (map.expect("EXT-X-MAP"), segments)
}

/// The media playlist's path from the multivariant playlist, after checking its variant.
fn check_multivariant(addr: SocketAddr) -> String {
    let response = get(addr, "/live.m3u8");
    assert_eq!(response.status, 200, "{}", response.text());
    let text = response.text();
    let stream_inf = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .unwrap_or_else(|| panic!("no STREAM-INF\n{text}"));
    let codecs = attribute(stream_inf, "CODECS").expect("CODECS");
    let profile = codecs.strip_prefix("avc1.").expect("an avc1 codec");
    assert!(
        profile.len() == 6 && profile.bytes().all(|b| b.is_ascii_hexdigit()),
        "CODECS from the SPS: {codecs}"
    );
    for name in ["BANDWIDTH", "AVERAGE-BANDWIDTH"] {
        let bps: u64 = attribute(stream_inf, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {stream_inf}"));
        assert!(bps > 0, "{stream_inf}");
    }
    assert_eq!(attribute(stream_inf, "RESOLUTION"), Some("640x360"));
    let uri = text
        .lines()
        .find(|l| l.ends_with("media.m3u8"))
        .expect("the media playlist URI");
    format!("/{uri}")
}

#[test]
fn a_playlist_asked_for_before_the_first_frame_is_playable() {
    // No wait for a first frame: the requests go out as soon as the address is known.
    let (server, _stdin) = Server::start_with_stdin(&[]);
    let addr = server.addr;
    let media = std::thread::spawn(move || {
        // The media playlist straight away, as a player that knows its URL would.
        let multivariant = get(addr, "/live.m3u8");
        assert_eq!(multivariant.status, 200);
        let path = multivariant
            .text()
            .lines()
            .find(|l| l.ends_with("media.m3u8"))
            .map(|l| format!("/{l}"))
            .expect("media playlist URI");
        get(addr, &path)
    });
    let path = check_multivariant(addr);
    let response = media.join().unwrap();
    assert_eq!(response.status, 200);
    let (map, segments) = check_playable(&response.text());
    let directory = path.trim_end_matches("media.m3u8");
    for uri in std::iter::once(&map).chain(segments.first()) {
        let media = get(addr, &format!("{directory}{uri}"));
        assert_eq!(media.status, 200, "{uri}");
        assert!(!media.body.is_empty(), "{uri}");
    }
}

#[test]
fn the_media_playlist_is_gzipd_for_clients_that_ask() {
    let (server, _stdin) = Server::start_with_stdin(&[]);
    let path = check_multivariant(server.addr);
    let plain = get(server.addr, &path);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let zipped = request(
        server.addr,
        "GET",
        &path,
        &[("Accept-Encoding", "gzip, deflate")],
    );
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    check_playable(&text);
    let refused = request(
        server.addr,
        "GET",
        &path,
        &[("Accept-Encoding", "gzip;q=0")],
    );
    assert_eq!(refused.header("content-encoding"), None);
    check_playable(&refused.text());
}

#[test]
fn ffmpeg_started_with_the_server_plays_without_an_error() {
    if !require_clients(
        &["ffmpeg"],
        "ffmpeg_started_with_the_server_plays_without_an_error",
    ) {
        return;
    }
    let (server, _stdin) = Server::start_with_stdin(&[]);
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
            .args(["-i", &server.url("/live.m3u8")])
            .args(["-t", "2", "-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "ffmpeg failed:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Found duplicated MOOV Atom"))
        .collect();
    assert!(errors.is_empty(), "ffmpeg errors:\n{}", errors.join("\n"));
    let frames = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    assert!(frames > 0, "ffmpeg decoded no frame:\n{stdout}");
}
