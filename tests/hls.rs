//! Black-box tests of HLS and `/live.mp4` as real clients see them: the playlists' text and
//! headers over raw sockets, blocking reloads and delta updates, part and segment requests,
//! retention, and playback in ffprobe, ffmpeg and VLC.
//!
//! Every test starts its own server on 127.0.0.1:0; every loop is bounded in count and time.
//! Tests of an external client are skipped, with a notice, where the client is missing;
//! `make test` installs them.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{MjpegReader, Response, Server, get, request, require_clients, run_with_timeout};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const SEGMENT_TYPE: &str = "video/iso.segment";
/// How long the server may take from start to its first complete segment, with room for a
/// busy machine (it needs about 1-2 s).
const FIRST_MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a waiting test re-reads the playlist: fine enough to see each part (333 ms).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Slack for comparisons between durations written with five decimals.
const EPSILON_S: f64 = 1e-6;
/// The limit for an external player run; a healthy one takes under 15 s.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// VLC refuses to run as root; as root the test runs it as this unprivileged user.
const SETPRIV_NOBODY: [&str; 3] = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"];

// ----- playlist text -------------------------------------------------------------------------

/// An EXT-X-PART tag.
#[derive(Debug, Clone)]
struct PartTag {
    duration_s: f64,
    uri: String,
    independent: bool,
}

/// A complete segment: its tags and URI line.
#[derive(Debug, Clone)]
struct SegmentTag {
    program_date_time: Option<String>,
    duration_s: f64,
    uri: String,
    parts: Vec<PartTag>,
}

/// A media playlist, read from its text with only what these tests check.
#[derive(Debug, Default)]
struct MediaText {
    text: String,
    version: Option<u32>,
    independent_segments: bool,
    target_duration_s: Option<u64>,
    media_sequence: Option<u64>,
    part_target_s: Option<f64>,
    server_control: Vec<(String, String)>,
    map_uri: Option<String>,
    skipped_segments: Option<u64>,
    segments: Vec<SegmentTag>,
    /// The segment in progress: its date and parts, after the last URI line.
    open_program_date_time: Option<String>,
    open_parts: Vec<PartTag>,
    preload_hints: Vec<String>,
}

impl MediaText {
    fn parse(text: &str) -> Self {
        let mut playlist = Self {
            text: text.to_owned(),
            ..Self::default()
        };
        assert!(text.starts_with("#EXTM3U\n"), "not a playlist:\n{text}");
        let (mut pdt, mut parts, mut extinf) = (None, Vec::new(), None);
        for line in text.lines().skip(1) {
            if line.is_empty() {
                continue;
            }
            let Some(tag) = line.strip_prefix('#') else {
                let duration_s = extinf
                    .take()
                    .unwrap_or_else(|| panic!("URI {line} without EXTINF:\n{text}"));
                playlist.segments.push(SegmentTag {
                    program_date_time: pdt.take(),
                    duration_s,
                    uri: line.to_owned(),
                    parts: std::mem::take(&mut parts),
                });
                continue;
            };
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-VERSION" => playlist.version = value.parse().ok(),
                "EXT-X-INDEPENDENT-SEGMENTS" => playlist.independent_segments = true,
                "EXT-X-TARGETDURATION" => playlist.target_duration_s = value.parse().ok(),
                "EXT-X-MEDIA-SEQUENCE" => playlist.media_sequence = value.parse().ok(),
                "EXT-X-PART-INF" => {
                    playlist.part_target_s =
                        attribute(value, "PART-TARGET").and_then(|v| v.parse().ok());
                }
                "EXT-X-SERVER-CONTROL" => playlist.server_control = attributes(value),
                "EXT-X-MAP" => playlist.map_uri = attribute(value, "URI"),
                "EXT-X-SKIP" => {
                    playlist.skipped_segments =
                        attribute(value, "SKIPPED-SEGMENTS").and_then(|v| v.parse().ok());
                }
                "EXT-X-PROGRAM-DATE-TIME" => pdt = Some(value.to_owned()),
                "EXTINF" => {
                    let number = value.split(',').next().unwrap_or("");
                    extinf = Some(
                        number
                            .parse()
                            .unwrap_or_else(|_| panic!("EXTINF {value}:\n{text}")),
                    );
                }
                "EXT-X-PART" => parts.push(PartTag {
                    duration_s: attribute(value, "DURATION")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| panic!("part without DURATION: {line}")),
                    uri: attribute(value, "URI")
                        .unwrap_or_else(|| panic!("part without URI: {line}")),
                    independent: attribute(value, "INDEPENDENT").as_deref() == Some("YES"),
                }),
                "EXT-X-PRELOAD-HINT" => {
                    assert_eq!(attribute(value, "TYPE").as_deref(), Some("PART"), "{line}");
                    playlist.preload_hints.push(
                        attribute(value, "URI").unwrap_or_else(|| panic!("hint URI: {line}")),
                    );
                }
                _ => {}
            }
        }
        assert!(extinf.is_none(), "EXTINF without URI:\n{text}");
        playlist.open_program_date_time = pdt;
        playlist.open_parts = parts;
        playlist
    }

    fn target_duration_s(&self) -> u64 {
        self.target_duration_s
            .unwrap_or_else(|| panic!("no TARGETDURATION:\n{}", self.text))
    }

    fn media_sequence(&self) -> u64 {
        self.media_sequence
            .unwrap_or_else(|| panic!("no MEDIA-SEQUENCE:\n{}", self.text))
    }

    fn part_target_s(&self) -> f64 {
        self.part_target_s
            .unwrap_or_else(|| panic!("no PART-INF:PART-TARGET:\n{}", self.text))
    }

    fn server_control_s(&self, name: &str) -> f64 {
        self.server_control
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no SERVER-CONTROL {name}:\n{}", self.text))
    }

    /// The Media Sequence Number of the newest complete segment.
    fn last_msn(&self) -> u64 {
        let listed = self.segments.len() as u64 + self.skipped_segments.unwrap_or(0);
        assert!(listed > 0, "no complete segment:\n{}", self.text);
        self.media_sequence() + listed - 1
    }

    /// The one preload hint as (msn, part index).
    fn hint(&self) -> (u64, u64) {
        assert_eq!(self.preload_hints.len(), 1, "hints:\n{}", self.text);
        part_numbers(&self.preload_hints[0])
    }

    /// Whether an EXT-X-PART tag with this URI is listed (hints do not count).
    fn lists_part(&self, uri: &str) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.parts)
            .chain(&self.open_parts)
            .any(|p| p.uri == uri)
    }
}

/// Splits an attribute list at the commas outside quoted strings (RFC 8216 §4.2); values lose
/// their quotes.
fn attributes(list: &str) -> Vec<(String, String)> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pieces.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&list[start..]);
    pieces
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (n.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn attribute(list: &str, name: &str) -> Option<String> {
    attributes(list)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// `part{msn}.{index}.m4s` as (msn, index).
fn part_numbers(uri: &str) -> (u64, u64) {
    let (msn, index) = uri
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
        .and_then(|r| r.split_once('.'))
        .unwrap_or_else(|| panic!("not a part URI: {uri}"));
    (msn.parse().unwrap(), index.parse().unwrap())
}

/// `YYYY-MM-DDThh:mm:ss.sssZ`: UTC with milliseconds.
fn is_utc_millis(date: &str) -> bool {
    let b = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

/// The rules every Low-Latency media playlist from framecast keeps (rfc8216bis §4.4, §6.2.2).
fn check_ll_rules(p: &MediaText) {
    let text = &p.text;
    let td = p.target_duration_s();
    let td_f = td as f64;
    let part_target = p.part_target_s();
    assert!(p.version.unwrap_or(0) >= 6, "VERSION:\n{text}");
    assert!(p.independent_segments, "INDEPENDENT-SEGMENTS:\n{text}");
    let map = p
        .map_uri
        .as_deref()
        .unwrap_or_else(|| panic!("MAP:\n{text}"));
    assert!(map.starts_with("init") && map.ends_with(".mp4"), "{map}");

    let control = &p.server_control;
    assert!(
        control
            .iter()
            .any(|(n, v)| n == "CAN-BLOCK-RELOAD" && v == "YES"),
        "CAN-BLOCK-RELOAD:\n{text}"
    );
    assert!(
        p.server_control_s("PART-HOLD-BACK") >= 3.0 * part_target - EPSILON_S,
        "PART-HOLD-BACK < 3 PART-TARGET:\n{text}"
    );
    assert!(
        p.server_control_s("HOLD-BACK") >= 3.0 * td_f - EPSILON_S,
        "HOLD-BACK < 3 TD:\n{text}"
    );
    assert!(
        p.server_control_s("CAN-SKIP-UNTIL") >= 6.0 * td_f - EPSILON_S,
        "CAN-SKIP-UNTIL < 6 TD:\n{text}"
    );

    let first_msn = p.media_sequence() + p.skipped_segments.unwrap_or(0);
    for (i, segment) in p.segments.iter().enumerate() {
        let msn = first_msn + i as u64;
        assert_eq!(segment.uri, format!("seg{msn}.m4s"), "{text}");
        let pdt = segment.program_date_time.as_deref().unwrap_or("");
        assert!(
            is_utc_millis(pdt),
            "seg{msn} PROGRAM-DATE-TIME {pdt:?}:\n{text}"
        );
        assert!(
            segment.duration_s.round() <= td_f,
            "seg{msn} EXTINF over TD:\n{text}"
        );
        check_parts(msn, &segment.parts, part_target, text);
        if !segment.parts.is_empty() {
            let sum: f64 = segment.parts.iter().map(|p| p.duration_s).sum();
            assert!(
                (sum - segment.duration_s).abs() < 1e-3,
                "seg{msn}: parts add up to {sum}, EXTINF {}:\n{text}",
                segment.duration_s
            );
        }
    }
    if !p.open_parts.is_empty() {
        let pdt = p.open_program_date_time.as_deref().unwrap_or("");
        assert!(
            is_utc_millis(pdt),
            "open PROGRAM-DATE-TIME {pdt:?}:\n{text}"
        );
        let open_msn = part_numbers(&p.open_parts[0].uri).0;
        check_parts(open_msn, &p.open_parts, part_target, text);
    }
    p.hint();
}

/// The parts of one segment: numbered from 0 in order, none over PART-TARGET, part 0 independent.
fn check_parts(msn: u64, parts: &[PartTag], part_target_s: f64, text: &str) {
    for (index, part) in parts.iter().enumerate() {
        assert_eq!(part.uri, format!("part{msn}.{index}.m4s"), "{text}");
        assert!(
            part.duration_s <= part_target_s + EPSILON_S,
            "{} lasts over PART-TARGET:\n{text}",
            part.uri
        );
        if index == 0 {
            assert!(part.independent, "{} not INDEPENDENT:\n{text}", part.uri);
        }
    }
}

// ----- talking to the server ------------------------------------------------------------------

/// A server and the per-start prefix of its HLS resources, `/hls/{start_id}/`.
struct Hls {
    server: Server,
    prefix: String,
}

impl Hls {
    /// Starts a server and waits until `/live.m3u8` answers (the first media exists).
    fn start(args: &[&str]) -> Self {
        let server = Server::start(args);
        let deadline = Instant::now() + FIRST_MEDIA_TIMEOUT;
        let uri = loop {
            let response = get(server.addr, "/live.m3u8");
            if response.status == 200 {
                let text = response.text();
                let uri = text
                    .lines()
                    .rfind(|l| !l.is_empty() && !l.starts_with('#'))
                    .unwrap_or_else(|| panic!("no variant URI:\n{text}"))
                    .to_owned();
                break uri;
            }
            assert!(
                Instant::now() < deadline,
                "/live.m3u8: {} {}",
                response.status,
                response.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let prefix = format!(
            "/{}",
            uri.strip_suffix("media.m3u8")
                .unwrap_or_else(|| panic!("variant URI {uri}"))
        );
        assert!(
            prefix.starts_with("/hls/") && prefix.ends_with('/'),
            "{prefix}"
        );
        Self { server, prefix }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn get(&self, name: &str) -> Response {
        get(self.addr(), &self.path(name))
    }

    /// The media playlist with `query` (without `?`), checked to be a 200 playlist.
    fn playlist(&self, query: &str) -> MediaText {
        let path = if query.is_empty() {
            self.path("media.m3u8")
        } else {
            self.path(&format!("media.m3u8?{query}"))
        };
        let response = get(self.addr(), &path);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(response.header("content-type"), Some(PLAYLIST_TYPE));
        MediaText::parse(&response.text())
    }

    /// Re-reads the playlist until `ready` holds for it.
    fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&MediaText) -> bool,
    ) -> MediaText {
        let deadline = Instant::now() + limit;
        loop {
            let playlist = self.playlist("");
            if ready(&playlist) {
                return playlist;
            }
            assert!(
                Instant::now() < deadline,
                "no playlist with {what} within {limit:?}:\n{}",
                playlist.text
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until at least `count` complete segments are listed.
    fn wait_for_segments(&self, count: usize) -> MediaText {
        self.wait_for(&format!("{count} segments"), FIRST_MEDIA_TIMEOUT, |p| {
            p.segments.len() >= count
        })
    }

    /// A blocking reload that returns right after a part is published: the next hint then has
    /// a whole part's duration to go.
    fn at_part_boundary(&self) -> MediaText {
        let (msn, index) = self.playlist("").hint();
        self.playlist(&format!("_HLS_msn={msn}&_HLS_part={index}"))
    }
}

/// The response's Cache-Control, lower-cased.
fn cache_control(response: &Response) -> String {
    response
        .header("cache-control")
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn assert_immutable(response: &Response, what: &str) {
    let cache = cache_control(response);
    assert!(
        cache.contains("immutable") && cache.contains("max-age="),
        "{what}: Cache-Control {cache:?}"
    );
}

/// A playlist may be cached briefly at most: no-cache/no-store, or max-age of a few seconds.
fn assert_short_lived(response: &Response, what: &str) {
    let cache = cache_control(response);
    let max_age = cache
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.parse::<u64>().ok());
    assert!(
        cache.contains("no-cache")
            || cache.contains("no-store")
            || max_age.is_some_and(|s| s <= 10),
        "{what}: Cache-Control {cache:?}"
    );
}

/// A 4xx answer with a one-line reason that names `mentions`.
fn assert_refused(response: &Response, status: u16, mentions: &str, what: &str) {
    let body = response.text();
    assert_eq!(response.status, status, "{what}: {body}");
    let reason = body.trim();
    assert!(
        !reason.is_empty() && !reason.contains('\n') && reason.contains(mentions),
        "{what}: reason {body:?} should be one line naming {mentions}"
    );
}

/// The box type at `offset` of an ISO BMFF byte string and the offset after it.
fn box_at(data: &[u8], offset: usize) -> (String, usize) {
    let size = u32::from_be_bytes(data[offset..offset + 4].try_into().unwrap()) as usize;
    assert!(size >= 8, "box size {size} at {offset}");
    let kind = String::from_utf8_lossy(&data[offset + 4..offset + 8]).into_owned();
    (kind, offset + size)
}

/// A scratch directory under the system temp dir that any user may write (VLC runs as nobody).
fn scratch_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("framecast-hls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Undoes gzip with the system's `gzip`, so the tests need no compression crate.
fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gzip");
    // A playlist is far smaller than a pipe buffer, so writing all before reading cannot block.
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "gzip -d: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The last `frame=N` that `ffmpeg -progress pipe:1` printed.
fn progress_frames(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// ffmpeg's error-level output, without lines known to be harmless.
fn ffmpeg_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Found duplicated MOOV Atom"))
        .collect()
}

// ----- tests ------------------------------------------------------------------------------------

#[test]
fn multivariant_playlist_describes_the_stream() {
    let hls = Hls::start(&[]);
    // A complete segment makes AVERAGE-BANDWIDTH a measurement.
    hls.wait_for_segments(1);
    let response = get(hls.addr(), "/live.m3u8");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some(PLAYLIST_TYPE));
    assert_short_lived(&response, "/live.m3u8");
    let text = response.text();
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    assert!(
        text.lines().any(|l| l == "#EXT-X-INDEPENDENT-SEGMENTS"),
        "{text}"
    );
    let stream_inf: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(stream_inf.len(), 1, "{text}");
    let attrs = attributes(stream_inf[0]);
    let value = |name: &str| {
        attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name}:\n{text}"))
    };
    let codecs = value("CODECS");
    let profile = codecs
        .strip_prefix("avc1.")
        .unwrap_or_else(|| panic!("CODECS {codecs}"));
    assert!(
        profile.len() == 6 && profile.bytes().all(|b| b.is_ascii_hexdigit()),
        "CODECS {codecs}"
    );
    assert_eq!(value("RESOLUTION"), "640x360");
    let frame_rate: f64 = value("FRAME-RATE").parse().unwrap();
    assert!((frame_rate - 30.0).abs() < 1e-3, "FRAME-RATE {frame_rate}");
    let peak: u64 = value("BANDWIDTH").parse().unwrap();
    let average: u64 = value("AVERAGE-BANDWIDTH").parse().unwrap();
    assert!(average > 0 && average <= peak, "{average} {peak}");
    let uri = text.lines().last().unwrap();
    assert_eq!(format!("/{uri}"), hls.path("media.m3u8"));

    let zipped = request(
        hls.addr(),
        "GET",
        "/live.m3u8",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("content-type"), Some(PLAYLIST_TYPE));
    assert_eq!(&zipped.body[..2], &[0x1f, 0x8b], "gzip magic");
    let unzipped = String::from_utf8(gunzip(&zipped.body)).unwrap();
    assert!(
        unzipped.starts_with("#EXTM3U\n") && unzipped.contains("#EXT-X-STREAM-INF:"),
        "{unzipped}"
    );
    assert_eq!(unzipped.lines().last(), Some(uri));

    // The media playlist is compressed too.
    let zipped = request(
        hls.addr(),
        "GET",
        &hls.path("media.m3u8"),
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    MediaText::parse(&String::from_utf8(gunzip(&zipped.body)).unwrap());
}

#[test]
fn media_playlist_keeps_the_low_latency_rules_across_reloads() {
    // Half-second segments fill the window sooner; TARGETDURATION must still be whole seconds.
    let hls = Hls::start(&["--hls-segment-seconds", "0.5", "--hls-window", "8"]);
    let first = hls.wait_for("a full window that moved", FIRST_MEDIA_TIMEOUT, |p| {
        p.media_sequence.unwrap_or(0) >= 1
    });
    let response = hls.get("media.m3u8");
    assert_short_lived(&response, "media.m3u8");
    check_ll_rules(&first);
    assert_eq!(first.target_duration_s(), 1, "{}", first.text);
    assert_eq!(first.segments.len(), 8, "{}", first.text);
    assert!(first.skipped_segments.is_none());

    let mut previous = first;
    for _ in 0..4 {
        let next_msn = previous.last_msn() + 1;
        let started = Instant::now();
        let next = hls.playlist(&format!("_HLS_msn={next_msn}"));
        check_ll_rules(&next);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "blocking reload took {:?}",
            started.elapsed()
        );
        assert!(next.last_msn() >= next_msn, "{}", next.text);
        assert_eq!(next.target_duration_s(), previous.target_duration_s());
        assert_eq!(next.part_target_s(), previous.part_target_s());
        assert!(
            next.media_sequence() > previous.media_sequence(),
            "MEDIA-SEQUENCE {} then {}",
            previous.media_sequence(),
            next.media_sequence()
        );
        assert!(next.segments.len() >= 6, "{}", next.text);
        // The same segment keeps its date from one reload to the next.
        let kept = previous
            .segments
            .iter()
            .find(|s| s.uri == next.segments[0].uri)
            .unwrap_or_else(|| panic!("{} left too soon", next.segments[0].uri));
        assert_eq!(kept.program_date_time, next.segments[0].program_date_time);
        previous = next;
    }
}

#[test]
fn blocking_reloads_wait_for_the_part_asked_for() {
    let hls = Hls::start(&[]);
    hls.wait_for_segments(2);

    // Right after a part boundary the hinted part has a whole part to go.
    let playlist = hls.at_part_boundary();
    let (msn, index) = playlist.hint();
    let started = Instant::now();
    let next = hls.playlist(&format!("_HLS_msn={msn}&_HLS_part={index}"));
    let waited = started.elapsed();
    println!("blocking reload for part {msn}.{index} waited {waited:?}");
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert!(
        next.lists_part(&format!("part{msn}.{index}.m4s")),
        "part {msn}.{index} missing:\n{}",
        next.text
    );
    check_ll_rules(&next);

    // A part index past the end of a complete segment is part 0 of the next one.
    let last = next.last_msn();
    let answer = hls.playlist(&format!("_HLS_msn={last}&_HLS_part=99"));
    assert!(
        answer.lists_part(&format!("part{}.0.m4s", last + 1)),
        "{}",
        answer.text
    );
    // The same past the end of the open segment: it waits for the next segment's first part.
    let open = answer.last_msn() + 1;
    let started = Instant::now();
    let answer = hls.playlist(&format!("_HLS_msn={open}&_HLS_part=99"));
    assert!(
        answer.lists_part(&format!("part{}.0.m4s", open + 1)),
        "{}",
        answer.text
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // A segment alone: answered once it is complete.
    let wanted = answer.last_msn() + 1;
    let answer = hls.playlist(&format!("_HLS_msn={wanted}"));
    assert!(answer.last_msn() >= wanted, "{}", answer.text);
    let blocking = get(
        hls.addr(),
        &hls.path(&format!("media.m3u8?_HLS_msn={wanted}")),
    );
    assert_short_lived(&blocking, "blocking reload");

    let refused = |query: &str| get(hls.addr(), &hls.path(&format!("media.m3u8?{query}")));
    assert_refused(&refused("_HLS_part=1"), 400, "_HLS_msn", "_HLS_part alone");
    let far = answer.last_msn() + 10;
    let started = Instant::now();
    assert_refused(
        &refused(&format!("_HLS_msn={far}")),
        400,
        "_HLS_msn",
        "_HLS_msn far ahead",
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert_refused(&refused("_HLS_msn=abc"), 400, "_HLS_msn", "_HLS_msn=abc");
    assert_refused(
        &refused("_HLS_msn=1&_HLS_part=x"),
        400,
        "_HLS_part",
        "_HLS_part=x",
    );
    assert_refused(&refused("_HLS_skip=NO"), 400, "_HLS_skip", "_HLS_skip=NO");
}

#[test]
fn delta_updates_skip_old_segments() {
    let hls = Hls::start(&["--hls-window", "12"]);
    // With little media nothing is older than the skip boundary: the whole playlist comes back.
    let early = hls.playlist("_HLS_skip=YES");
    if early.segments.len() < 6 {
        assert!(early.skipped_segments.is_none(), "{}", early.text);
    }

    // TD 1 gives CAN-SKIP-UNTIL 6 s: with 8 one-second segments the oldest two can go.
    hls.wait_for_segments(8);
    let delta = hls.playlist("_HLS_skip=YES");
    let skipped = delta
        .skipped_segments
        .unwrap_or_else(|| panic!("no EXT-X-SKIP:\n{}", delta.text));
    assert!(skipped >= 1, "{}", delta.text);
    assert_eq!(delta.version, Some(9), "{}", delta.text);
    check_ll_rules(&delta);
    let skip_until = delta.server_control_s("CAN-SKIP-UNTIL");
    let listed_s: f64 = delta.segments.iter().map(|s| s.duration_s).sum();
    assert!(
        listed_s <= skip_until + EPSILON_S && listed_s + 1.0 > skip_until,
        "the segments left start within the skip boundary:\n{}",
        delta.text
    );
    let full = hls.playlist("");
    assert!(full.skipped_segments.is_none());
    assert!(full.segments.len() as u64 > skipped, "{}", full.text);

    // Together with a blocking reload.
    let next = full.last_msn() + 1;
    let delta = hls.playlist(&format!("_HLS_msn={next}&_HLS_skip=YES"));
    assert!(delta.skipped_segments.is_some(), "{}", delta.text);
    assert!(delta.last_msn() >= next, "{}", delta.text);
}

#[test]
fn parts_segments_and_init_are_served_with_their_headers() {
    let hls = Hls::start(&[]);
    let playlist = hls.wait_for_segments(2);
    let map = playlist.map_uri.clone().unwrap();
    let init = hls.get(&map);
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    assert_immutable(&init, "init");
    assert_eq!(box_at(&init.body, 0).0, "ftyp");

    let last = playlist.segments.last().unwrap();
    let segment = hls.get(&last.uri);
    assert_eq!(segment.status, 200, "{}", last.uri);
    assert_eq!(segment.header("content-type"), Some(SEGMENT_TYPE));
    assert_immutable(&segment, "segment");
    assert_eq!(box_at(&segment.body, 0).0, "moof");
    // A segment is its parts back to back.
    assert!(!last.parts.is_empty(), "{}", playlist.text);
    let mut joined = Vec::new();
    for part in &last.parts {
        let response = hls.get(&part.uri);
        assert_eq!(response.status, 200, "{}", part.uri);
        assert_eq!(response.header("content-type"), Some(SEGMENT_TYPE));
        assert_immutable(&response, "part");
        joined.extend_from_slice(&response.body);
    }
    assert!(joined == segment.body, "{} is not its parts", last.uri);

    // The hinted part: held until it is complete, then a moof and its mdat.
    let playlist = hls.at_part_boundary();
    let (msn, index) = playlist.hint();
    let started = Instant::now();
    let hinted = hls.get(&format!("part{msn}.{index}.m4s"));
    let waited = started.elapsed();
    println!("hinted part {msn}.{index} waited {waited:?}");
    assert_eq!(hinted.status, 200, "{}", hinted.text());
    assert_eq!(hinted.header("content-type"), Some(SEGMENT_TYPE));
    assert_immutable(&hinted, "hinted part");
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    let (first, after) = box_at(&hinted.body, 0);
    assert_eq!(first, "moof");
    assert_eq!(box_at(&hinted.body, after).0, "mdat");

    // Neither listed nor hinted: 404 at once, whatever the index.
    let playlist = hls.at_part_boundary();
    let (msn, index) = playlist.hint();
    let last_msn = playlist.last_msn();
    let not_found = [
        // The open segment is not a segment yet.
        format!("seg{}.m4s", last_msn + 1),
        format!("part{msn}.{}.m4s", index + 2),
        format!("part{}.0.m4s", msn + 5),
        format!("part{msn}.99.m4s"),
        format!("seg{}.m4s", last_msn + 1000),
        "init7.mp4".to_owned(),
        "seg.m4s".to_owned(),
        "seg1.mp4".to_owned(),
        "media.m3u".to_owned(),
        "index.html".to_owned(),
    ];
    for name in &not_found {
        let started = Instant::now();
        let response = hls.get(name);
        assert_eq!(response.status, 404, "{name}: {}", response.text());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{name} waited"
        );
    }

    // Another start's prefix: nothing of this one is served under it.
    for name in ["media.m3u8", map.as_str(), last.uri.as_str()] {
        let response = get(hls.addr(), &format!("/hls/notthisone/{name}"));
        assert_eq!(response.status, 404, "{name}");
    }
}

#[test]
fn init_and_a_segment_decode_in_ffprobe() {
    if !require_clients(&["ffprobe"], "init_and_a_segment_decode_in_ffprobe") {
        return;
    }
    let hls = Hls::start(&[]);
    let playlist = hls.wait_for_segments(2);
    let init = hls.get(playlist.map_uri.as_deref().unwrap());
    let last = playlist.segments.last().unwrap();
    let segment = hls.get(&last.uri);
    assert_eq!((init.status, segment.status), (200, 200));
    let dir = scratch_dir("ffprobe");
    let file = dir.join("segment.mp4");
    std::fs::write(&file, [init.body, segment.body].concat()).unwrap();

    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames",
            ])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&file),
        CLIENT_TIMEOUT,
    );
    assert!(ok && stderr.trim().is_empty(), "ffprobe: {stderr}");
    for want in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "nb_read_frames=30",
    ] {
        assert!(stdout.lines().any(|l| l == want), "{want}:\n{stdout}");
    }

    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_frames", "-select_streams", "v"])
            .args([
                "-show_entries",
                "frame=key_frame,pict_type",
                "-of",
                "csv=p=0",
            ])
            .arg(&file),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "ffprobe: {stderr}");
    let frames: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(frames.len(), 30, "{stdout}");
    assert_eq!(frames[0], "1,I", "the segment starts with a key frame");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_plays_the_hls_stream() {
    if !require_clients(&["ffmpeg"], "ffmpeg_plays_the_hls_stream") {
        return;
    }
    let hls = Hls::start(&[]);
    hls.wait_for_segments(3);
    let started = Instant::now();
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
            .args(["-i", &hls.server.url("/live.m3u8")])
            .args(["-t", "5", "-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    println!("ffmpeg read 5 s of HLS in {:?}", started.elapsed());
    assert!(ok, "ffmpeg failed:\n{stderr}");
    let errors = ffmpeg_errors(&stderr);
    assert!(errors.is_empty(), "ffmpeg errors:\n{}", errors.join("\n"));
    let frames = progress_frames(&stdout);
    assert!(frames >= 140, "decoded {frames} frames:\n{stdout}");
}

#[test]
fn vlc_plays_the_hls_stream() {
    if !require_clients(&["cvlc", "setpriv", "ffprobe"], "vlc_plays_the_hls_stream") {
        return;
    }
    let hls = Hls::start(&[]);
    hls.wait_for_segments(3);
    let dir = scratch_dir("vlc");
    let mut command = if running_as_root() {
        let mut setpriv = Command::new("setpriv");
        setpriv.args(SETPRIV_NOBODY).arg("cvlc");
        setpriv
    } else {
        Command::new("cvlc")
    };
    command
        .env("HOME", &dir)
        .args(["-I", "dummy", "--no-audio", "--vout=dummy", "--no-stats"])
        // The scene filter writes every 15th decoded picture as a PNG: proof of decoding.
        .args([
            "--video-filter=scene",
            "--scene-format=png",
            "--scene-ratio=15",
        ])
        .args(["--scene-prefix=frame"])
        .arg(format!("--scene-path={}", dir.display()))
        .args(["--run-time=8"])
        .arg(hls.server.url("/live.m3u8"))
        .arg("vlc://quit");
    let started = Instant::now();
    let (_, _, stderr) = run_with_timeout(&mut command, CLIENT_TIMEOUT);
    println!("VLC ran for {:?}", started.elapsed());
    let pictures = png_files(&dir);
    assert!(
        pictures.len() >= 3,
        "VLC decoded {} pictures; its log:\n{stderr}",
        pictures.len()
    );
    let contents: std::collections::HashSet<Vec<u8>> =
        pictures.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(contents.len() >= 2, "the picture does not change");
    // The PNGs are real pictures of the stream's width (VLC's dummy output scales the height
    // by its own idea of the display aspect, so only the width is the stream's).
    let (ok, stdout, probe_err) = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width",
                "-of",
                "csv=p=0",
            ])
            .arg(&pictures[pictures.len() / 2]),
        CLIENT_TIMEOUT,
    );
    assert!(ok, "{probe_err}");
    assert_eq!(stdout.trim(), "640");
    let _ = std::fs::remove_dir_all(&dir);
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn png_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "png"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn live_mp4_is_ftyp_moov_then_fragments_and_plays_in_ffmpeg() {
    let hls = Hls::start(&[]);
    // The MJPEG reader reads any endless body: its raw reads see the MP4 boxes as sent.
    let mut reader = MjpegReader::open(hls.addr(), "/live.mp4", "framecast-test");
    assert_eq!(reader.status, 200);
    assert_eq!(reader.header("content-type"), Some("video/mp4"));
    let mut kinds = Vec::new();
    for _ in 0..6 {
        let head = reader.read_raw(8);
        let size = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        assert!((8..10_000_000).contains(&size), "box size {size}");
        kinds.push(String::from_utf8_lossy(&head[4..8]).into_owned());
        reader.read_raw(size - 8);
    }
    assert_eq!(kinds, ["ftyp", "moov", "moof", "mdat", "moof", "mdat"]);
    drop(reader);

    if !require_clients(
        &["ffmpeg"],
        "live_mp4_is_ftyp_moov_then_fragments_and_plays_in_ffmpeg (ffmpeg part)",
    ) {
        return;
    }
    let started = Instant::now();
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
            .args(["-i", &hls.server.url("/live.mp4")])
            .args(["-t", "3", "-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    println!("ffmpeg read 3 s of /live.mp4 in {:?}", started.elapsed());
    assert!(ok, "ffmpeg failed:\n{stderr}");
    let errors = ffmpeg_errors(&stderr);
    assert!(errors.is_empty(), "ffmpeg errors:\n{}", errors.join("\n"));
    let frames = progress_frames(&stdout);
    assert!(frames >= 80, "decoded {frames} frames:\n{stdout}");
}

#[test]
fn old_segments_stay_downloadable_for_a_while_then_404() {
    // Six one-second segments: a segment that leaves stays for 1 s + 6 s (RFC 8216 §6.2.2).
    let hls = Hls::start(&["--hls-window", "6"]);
    let gone = hls.wait_for("seg0 gone from the playlist", FIRST_MEDIA_TIMEOUT, |p| {
        p.media_sequence.unwrap_or(0) >= 1
    });
    let left_at = Instant::now();
    assert_eq!(gone.segments.len(), 6, "{}", gone.text);
    let listed_s: f64 = gone.segments.iter().map(|s| s.duration_s).sum();
    assert_eq!(hls.get("seg0.m4s").status, 200, "right after it left");

    let still_there = left_at + Duration::from_secs(6);
    std::thread::sleep(still_there.saturating_duration_since(Instant::now()));
    assert_eq!(
        hls.get("seg0.m4s").status,
        200,
        "6 s after it left (of 1 s + {listed_s} s)"
    );

    let expired = left_at + Duration::from_millis(8_500);
    std::thread::sleep(expired.saturating_duration_since(Instant::now()));
    assert_eq!(hls.get("seg0.m4s").status, 404, "8.5 s after it left");
    // Its parts went three target durations after their tags did, long before.
    assert_eq!(hls.get("part0.0.m4s").status, 404);

    // Just after a segment completes (a blocking reload returns then): the segment that left
    // the playlist now is served, and so are parts whose tags left under three target
    // durations ago (rfc8216bis §6.2.2), but not parts whose tags left four seconds ago.
    let wanted = hls.playlist("").last_msn() + 1;
    let playlist = hls.playlist(&format!("_HLS_msn={wanted}"));
    let last = playlist.last_msn();
    let newest_retired = playlist.media_sequence() - 1;
    assert_eq!(
        hls.get(&format!("seg{newest_retired}.m4s")).status,
        200,
        "{}",
        playlist.text
    );
    // Parts are listed for the newest two complete segments; those of `last - 2` left with
    // this segment, those of `last - 3` a second ago, those of `last - 6` four seconds ago.
    assert!(!playlist.lists_part(&format!("part{}.0.m4s", last - 2)));
    for (msn, want) in [(last - 2, 200), (last - 3, 200), (last - 6, 404)] {
        let name = format!("part{msn}.0.m4s");
        assert_eq!(hls.get(&name).status, want, "{name}:\n{}", playlist.text);
    }
}

/// RFC 9110 §9.1: a general-purpose server supports HEAD wherever it supports GET; some
/// players and proxies probe media with it.
#[test]
fn head_requests_are_answered_like_get() {
    let hls = Hls::start(&[]);
    let playlist = hls.wait_for_segments(1);
    let segment = hls.path(&playlist.segments[0].uri);
    let media = hls.path("media.m3u8");
    for (path, content_type) in [
        ("/live.m3u8", PLAYLIST_TYPE),
        (media.as_str(), PLAYLIST_TYPE),
        (segment.as_str(), SEGMENT_TYPE),
        ("/live.mp4", "video/mp4"),
    ] {
        let response = request(hls.addr(), "HEAD", path, &[]);
        assert_eq!(response.status, 200, "HEAD {path}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{path}"
        );
        assert!(response.body.is_empty(), "HEAD {path} has a body");
    }
}

#[test]
fn no_hls_turns_hls_off() {
    let server = Server::start(&["--no-hls"]);
    for path in ["/live.m3u8", "/live.mp4", "/hls/whatever/media.m3u8"] {
        assert_refused(&get(server.addr, path), 404, "--no-hls", path);
    }
    // The rest of the server is there.
    assert_eq!(get(server.addr, "/healthz").status, 200);
}
