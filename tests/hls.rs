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

use common::{
    MjpegReader, Response, Server, get, request, require_clients, run_with_timeout, running_as_root,
};
use framecast::media::playlist::{
    MediaPlaylist, ParsedMediaPlaylist, Part, Segment, check_update, check_written,
    parse_media_playlist, parse_multivariant_playlist,
};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const SEGMENT_TYPE: &str = "video/iso.segment";
/// How long the server may take from start to its first complete segment, with room for a
/// busy machine (it needs about 1-2 s).
const FIRST_MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a waiting test re-reads the playlist: fine enough to see each part (333 ms).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The limit for a retired segment to go: it stays for its duration plus the playlist's (7 s
/// here), so this only bounds the test.
const RETENTION_TIMEOUT: Duration = Duration::from_secs(60);
/// The limit for an external player run; a healthy one takes under 15 s.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// VLC refuses to run as root; as root the test runs it as this unprivileged user.
const SETPRIV_NOBODY: [&str; 3] = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"];

// ----- playlist text -------------------------------------------------------------------------

/// A media playlist as served: its text and what the crate's parser reads from it.
#[derive(Debug)]
struct MediaText {
    text: String,
    parsed: ParsedMediaPlaylist,
}

impl MediaText {
    fn parse(text: &str) -> Self {
        let parsed = parse_media_playlist(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        Self {
            text: text.to_owned(),
            parsed,
        }
    }

    fn playlist(&self) -> &MediaPlaylist {
        &self.parsed.playlist
    }

    /// The complete segments listed (after EXT-X-SKIP's, in a delta update).
    fn segments(&self) -> &[Segment] {
        &self.parsed.playlist.segments
    }

    fn media_sequence(&self) -> u64 {
        self.parsed.playlist.media_sequence
    }

    /// The Media Sequence Number of the newest complete segment.
    fn last_msn(&self) -> u64 {
        self.segments()
            .last()
            .unwrap_or_else(|| panic!("no complete segment:\n{}", self.text))
            .msn
    }

    /// The preload hint as (msn, part index).
    fn hint(&self) -> (u64, u64) {
        let hint = self
            .playlist()
            .preload_hint
            .as_ref()
            .unwrap_or_else(|| panic!("no EXT-X-PRELOAD-HINT:\n{}", self.text));
        part_numbers(&hint.uri)
    }

    /// Whether an EXT-X-PART tag with this URI is listed (hints do not count).
    fn lists_part(&self, uri: &str) -> bool {
        self.segments()
            .iter()
            .flat_map(|s| &s.parts)
            .chain(self.playlist().in_progress.iter().flat_map(|s| &s.parts))
            .any(|p| p.uri == uri)
    }
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

/// The rules every Low-Latency media playlist from framecast keeps: the crate's rules on what
/// the text says (rfc8216bis §4.4, §6.2.2: versions, TARGETDURATION, PART-TARGET, hold-backs,
/// skip boundary, part listing, sequence numbers, dates), then framecast's own conventions
/// (names, blocking reload, delta updates, dates in UTC with milliseconds).
fn check_ll_rules(p: &MediaText) {
    let text = &p.text;
    check_written(&p.parsed).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let playlist = p.playlist();
    assert!(
        playlist.independent_segments,
        "INDEPENDENT-SEGMENTS:\n{text}"
    );
    let map = &playlist.map_uri;
    assert!(map.starts_with("init") && map.ends_with(".mp4"), "{map}");
    let control = &playlist.server_control;
    assert!(control.can_block_reload, "CAN-BLOCK-RELOAD:\n{text}");
    assert!(
        control.can_skip_until_90k.is_some(),
        "CAN-SKIP-UNTIL:\n{text}"
    );
    for segment in p.segments() {
        let msn = segment.msn;
        assert_eq!(segment.uri, format!("seg{msn}.m4s"), "{text}");
        check_part_uris(msn, &segment.parts, text);
    }
    if let Some(open) = &playlist.in_progress {
        check_part_uris(open.msn, &open.parts, text);
    }
    // The parser needs one date per segment; the text writes each in UTC with milliseconds.
    for date in text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
    {
        assert!(is_utc_millis(date), "PROGRAM-DATE-TIME {date:?}:\n{text}");
    }
    p.hint();
}

/// The parts of one segment are numbered from 0 in order.
fn check_part_uris(msn: u64, parts: &[Part], text: &str) {
    for (index, part) in parts.iter().enumerate() {
        assert_eq!(part.uri, format!("part{msn}.{index}.m4s"), "{text}");
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
                let multivariant =
                    parse_multivariant_playlist(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
                match &multivariant.variants[..] {
                    [variant] => break variant.uri.clone(),
                    _ => panic!("not one variant:\n{text}"),
                }
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
            p.segments().len() >= count
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

/// The last value of `key=N` that `ffmpeg -progress pipe:1` printed.
fn progress_value(stdout: &str, key: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// ffmpeg decoded media up to at least `min_media_s` of its output timeline: a check on the
/// stream's own timestamps, not on how fast frames came (a dropped frame lengthens the one
/// before it rather than shortening the timeline).
fn assert_decoded_media(stdout: &str, min_media_s: u64) {
    let frames = progress_value(stdout, "frame");
    let media_us = progress_value(stdout, "out_time_us");
    assert!(
        frames > 0 && media_us >= min_media_s * 1_000_000,
        "decoded {frames} frames, {media_us} us of media:\n{stdout}"
    );
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
    let multivariant =
        parse_multivariant_playlist(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert!(multivariant.independent_segments, "{text}");
    let [variant] = &multivariant.variants[..] else {
        panic!("not one variant:\n{text}");
    };
    let codecs = &variant.codecs;
    let profile = codecs
        .strip_prefix("avc1.")
        .unwrap_or_else(|| panic!("CODECS {codecs}"));
    assert!(
        profile.len() == 6 && profile.bytes().all(|b| b.is_ascii_hexdigit()),
        "CODECS {codecs}"
    );
    assert_eq!(variant.resolution, (640, 360), "{text}");
    assert_eq!(variant.frame_rate_millihertz, 30_000, "{text}");
    let peak = variant.bandwidth_bps;
    let average = variant
        .average_bandwidth_bps
        .unwrap_or_else(|| panic!("no AVERAGE-BANDWIDTH:\n{text}"));
    assert!(average > 0 && average <= peak, "{average} {peak}");
    let uri = variant.uri.as_str();
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
    let unzipped =
        parse_multivariant_playlist(&unzipped).unwrap_or_else(|e| panic!("{e}:\n{unzipped}"));
    assert_eq!(unzipped.variants.len(), 1);
    assert_eq!(unzipped.variants[0].uri, uri);

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
        p.media_sequence() >= 1
    });
    let response = hls.get("media.m3u8");
    assert_short_lived(&response, "media.m3u8");
    check_ll_rules(&first);
    assert_eq!(first.playlist().target_duration_s, 1, "{}", first.text);
    assert_eq!(first.segments().len(), 8, "{}", first.text);
    assert_eq!(first.parsed.skipped_segments, 0);

    let mut previous = first;
    for _ in 0..4 {
        // Answered (200, not the 503 of a reload still blocked after 3 x TD) once the segment
        // exists; how long it may block is the unit tests' (hls::reload, hls::store).
        let next_msn = previous.last_msn() + 1;
        let next = hls.playlist(&format!("_HLS_msn={next_msn}"));
        check_ll_rules(&next);
        assert!(next.last_msn() >= next_msn, "{}", next.text);
        // TARGETDURATION and PART-TARGET constant, segments unchanged with their dates,
        // sequence numbers forward.
        check_update(previous.playlist(), next.playlist())
            .unwrap_or_else(|e| panic!("{e}:\n{}\nthen\n{}", previous.text, next.text));
        assert!(
            next.media_sequence() > previous.media_sequence(),
            "MEDIA-SEQUENCE {} then {}",
            previous.media_sequence(),
            next.media_sequence()
        );
        assert!(
            previous
                .segments()
                .iter()
                .any(|s| s.uri == next.segments()[0].uri),
            "{} left too soon",
            next.segments()[0].uri
        );
        previous = next;
    }
}

#[test]
fn blocking_reloads_wait_for_the_part_asked_for() {
    let hls = Hls::start(&[]);
    hls.wait_for_segments(2);

    // The hinted part does not exist yet; a request for it is held until it does: the answer
    // lists it. (The wait's bounds are the unit tests' in hls::reload and hls::store.)
    let playlist = hls.at_part_boundary();
    let (msn, index) = playlist.hint();
    let hinted = format!("part{msn}.{index}.m4s");
    assert!(!playlist.lists_part(&hinted), "{}", playlist.text);
    let next = hls.playlist(&format!("_HLS_msn={msn}&_HLS_part={index}"));
    assert!(
        next.lists_part(&hinted),
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
    let answer = hls.playlist(&format!("_HLS_msn={open}&_HLS_part=99"));
    assert!(
        answer.lists_part(&format!("part{}.0.m4s", open + 1)),
        "{}",
        answer.text
    );
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
    // Refused, not held: a held request ends in 200 or 503, never 400.
    let far = answer.last_msn() + 10;
    assert_refused(
        &refused(&format!("_HLS_msn={far}")),
        400,
        "_HLS_msn",
        "_HLS_msn far ahead",
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
    if early.segments().len() < 6 {
        assert_eq!(early.parsed.skipped_segments, 0, "{}", early.text);
    }

    // TD 1 gives CAN-SKIP-UNTIL 6 s: with 8 one-second segments the oldest two can go.
    hls.wait_for_segments(8);
    let delta = hls.playlist("_HLS_skip=YES");
    let skipped = delta.parsed.skipped_segments;
    assert!(skipped >= 1, "no EXT-X-SKIP:\n{}", delta.text);
    assert_eq!(delta.playlist().version, 9, "{}", delta.text);
    check_ll_rules(&delta);
    let skip_until_90k = delta.playlist().server_control.can_skip_until_90k.unwrap();
    let listed_90k: u64 = delta.segments().iter().map(|s| s.duration_90k).sum();
    // The newest skipped segment lasted under TD + 0.5 s (its EXTINF rounds to at most TD).
    let longest_segment_90k = (delta.playlist().target_duration_s * 2 + 1) * 45_000;
    assert!(
        listed_90k <= skip_until_90k && listed_90k + longest_segment_90k > skip_until_90k,
        "the segments left start within the skip boundary:\n{}",
        delta.text
    );
    let full = hls.playlist("");
    assert_eq!(full.parsed.skipped_segments, 0);
    assert!(full.segments().len() as u64 > skipped, "{}", full.text);
    // The delta lists the full playlist's newest segments, unchanged (their parts may have
    // left the listing in between).
    let line = |s: &Segment| {
        (
            s.msn,
            s.uri.clone(),
            s.duration_90k,
            s.program_date_time_unix_ms,
            s.discontinuity,
        )
    };
    for segment in delta.segments() {
        if let Some(same) = full.segments().iter().find(|s| s.msn == segment.msn) {
            assert_eq!(line(same), line(segment), "{}\n{}", delta.text, full.text);
        }
    }

    // Together with a blocking reload.
    let next = full.last_msn() + 1;
    let delta = hls.playlist(&format!("_HLS_msn={next}&_HLS_skip=YES"));
    assert!(delta.parsed.skipped_segments > 0, "{}", delta.text);
    assert!(delta.last_msn() >= next, "{}", delta.text);
}

#[test]
fn parts_segments_and_init_are_served_with_their_headers() {
    let hls = Hls::start(&[]);
    let playlist = hls.wait_for_segments(2);
    let map = playlist.playlist().map_uri.clone();
    let init = hls.get(&map);
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    assert_immutable(&init, "init");
    assert_eq!(box_at(&init.body, 0).0, "ftyp");

    let last = playlist.segments().last().unwrap();
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

    // The hinted part, asked for before it exists: held until it is complete, then a moof and
    // its mdat, the same bytes as once it is listed. (How long it may be held is the unit
    // tests' in hls::store.)
    let playlist = hls.at_part_boundary();
    let (msn, index) = playlist.hint();
    let name = format!("part{msn}.{index}.m4s");
    assert!(!playlist.lists_part(&name), "{}", playlist.text);
    let hinted = hls.get(&name);
    assert_eq!(hinted.status, 200, "{}", hinted.text());
    assert_eq!(hinted.header("content-type"), Some(SEGMENT_TYPE));
    assert_immutable(&hinted, "hinted part");
    let listed = hls.playlist(&format!("_HLS_msn={msn}&_HLS_part={index}"));
    assert!(listed.lists_part(&name), "{}", listed.text);
    assert!(
        hls.get(&name).body == hinted.body,
        "the hinted request got less than the whole part"
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
    // (That only the hinted part is waited for is the unit tests' in hls::store.)
    for name in &not_found {
        let response = hls.get(name);
        assert_eq!(response.status, 404, "{name}: {}", response.text());
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
    let init = hls.get(&playlist.playlist().map_uri);
    let last = playlist.segments().last().unwrap();
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
    assert_decoded_media(&stdout, 4);
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
    assert_decoded_media(&stdout, 2);
}

#[test]
fn old_segments_stay_downloadable_for_a_while_then_404() {
    // How long a segment and its parts stay after they leave the playlist (its duration plus
    // the playlist's, RFC 8216 §6.2.2; parts three target durations, rfc8216bis §6.2.2) is
    // checked with an explicit clock in hls::store's unit tests. Here, without timing: a
    // segment that just left is served, parts whose tags just left are served, and both go.
    let hls = Hls::start(&["--hls-window", "6"]);
    let gone = hls.wait_for("seg0 gone from the playlist", FIRST_MEDIA_TIMEOUT, |p| {
        p.media_sequence() >= 1
    });
    assert_eq!(gone.segments().len(), 6, "{}", gone.text);
    assert_eq!(hls.get("seg0.m4s").status, 200, "right after it left");

    // Just after a segment completes (a blocking reload returns then): the segment that left
    // the playlist now is served, and so are the parts whose tags left with it.
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
    // Parts are listed for the newest two complete segments; those of `last - 2` just left.
    let just_unlisted = format!("part{}.0.m4s", last - 2);
    assert!(!playlist.lists_part(&just_unlisted), "{}", playlist.text);
    assert_eq!(hls.get(&just_unlisted).status, 200, "{}", playlist.text);

    // seg0 goes, bounded; it was served until then, and its parts went before it.
    let deadline = Instant::now() + RETENTION_TIMEOUT;
    loop {
        let status = hls.get("seg0.m4s").status;
        if status == 404 {
            break;
        }
        assert_eq!(status, 200, "seg0 before it expired");
        assert!(
            Instant::now() < deadline,
            "seg0 still served {RETENTION_TIMEOUT:?} after it left"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    assert_eq!(hls.get("part0.0.m4s").status, 404);
}

/// RFC 9110 §9.1: a general-purpose server supports HEAD wherever it supports GET; some
/// players and proxies probe media with it.
#[test]
fn head_requests_are_answered_like_get() {
    let hls = Hls::start(&[]);
    let playlist = hls.wait_for_segments(1);
    let segment = hls.path(&playlist.segments()[0].uri);
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
