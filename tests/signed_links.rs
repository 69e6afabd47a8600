//! Signed, expiring links with the real binary and real clients: `framecast sign-url` makes
//! them from a configuration file with `signing_key_file` (the key file is made, mode 0600);
//! curl opens the MJPEG stream and snapshots with them, and gets 401 for an expired or tampered
//! one; a signed `live.m3u8` lists only signed URIs (whole, delta and gzip'd playlists) and
//! ffmpeg plays it; an open MJPEG stream and `/live.mp4` end when their link expires; Chromium
//! shows a signed MJPEG `<img>` and hls.js plays a signed playlist.
//!
//! These servers have users, so a request without a signature or credentials gets 401: every
//! URI a player fetches from a signed playlist must carry the signature for it to play.

mod common;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Server, ffmpeg_play, get, occurrences as count, request, require_clients, run_for_exit_code,
    run_framecast as framecast, sign_url,
};

/// sign-url and curl finish at once; a stream curl follows ends at its link's expiry.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// The multipart boundary framecast writes between MJPEG parts.
const PART_BOUNDARY: &[u8] = b"Content-Type: image/jpeg";

/// A scratch directory of this test binary's own.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("signed_links")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A configuration file in `dir` with one stream named `front` and its key file beside it
/// (`front.key`, relative to the file).
fn config_with_key(dir: &Path) -> PathBuf {
    let path = dir.join("signed.toml");
    std::fs::write(
        &path,
        r#"
signing_key_file = "front.key"

# `framecast hash-password` of "admin-pw" and "viewer-pw".
[[users]]
name = "alice"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$jFM8AgCK6zngj6ABpTxdbw$cZH/64qyMYGXeUS0T5p9eSTUAQFzcs/76JojmgCWgK4"
streams = ["*"]
role = "admin"

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

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// curl fetches `url` within `--max-time max_time_s`: (exit code, HTTP status, body).
fn curl(url: &str, max_time_s: u32) -> (Option<i32>, u16, Vec<u8>) {
    let dir = scratch_dir_for_body();
    let body_path = dir.join(format!("body-{}", unique()));
    let (code, stdout, stderr) = run_for_exit_code(
        Command::new("curl")
            .args(["-sS", "--max-time", &max_time_s.to_string()])
            .args(["-o", path_str(&body_path), "-w", "%{http_code}", url]),
        RUN_LIMIT + Duration::from_secs(u64::from(max_time_s)),
    );
    let status = stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {url}: {stdout} {stderr}"));
    let body = std::fs::read(&body_path).unwrap_or_default();
    let _ = std::fs::remove_file(&body_path);
    (code, status, body)
}

fn scratch_dir_for_body() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("signed_links_bodies");
    std::fs::create_dir_all(&dir).expect("body directory");
    dir
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) << 32 | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `link` with its signature's first character changed.
fn tampered(link: &str) -> String {
    let at = link.find("&sig=").expect("a signature") + "&sig=".len();
    let first = &link[at..=at];
    let other = if first == "A" { "B" } else { "A" };
    format!("{}{other}{}", &link[..at], &link[at + 1..])
}

#[test]
fn sign_url_makes_the_key_file_and_curl_opens_signed_mjpeg_and_snapshots() {
    if !require_clients(&["curl"], "signed links with curl") {
        return;
    }
    let dir = scratch_dir("curl");
    let config = config_with_key(&dir);
    let key_file = dir.join("front.key");
    assert!(!key_file.exists());
    let snapshot = sign_url(&config, "/streams/front/snapshot.jpg", &["--valid", "1h"]);
    let meta = std::fs::metadata(&key_file).expect("sign-url made the key file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key_text = std::fs::read_to_string(&key_file).expect("the key file");
    assert_eq!(key_text.trim().len(), 64, "32 bytes in hex: {key_text:?}");
    assert!(key_text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let mjpeg = sign_url(&config, "/streams/front/stream.mjpg", &["--valid", "15m"]);
    let root_mjpeg = sign_url(&config, "/stream.mjpg", &[]);

    let server = Server::start_with_users(&["--config", path_str(&config)]);
    // Without a link or credentials: refused.
    for path in ["/streams/front/snapshot.jpg", "/streams/front/stream.mjpg"] {
        let (_, status, _) = curl(&server.url(path), 10);
        assert_eq!(status, 401, "{path} unsigned");
    }
    // The server uses the key sign-url made: the links open.
    let (_, status, body) = curl(&server.url(&snapshot), 10);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(&[0xFF, 0xD8]), "a JPEG");
    for link in [&mjpeg, &root_mjpeg] {
        // An endless stream: curl stops it at --max-time, after some frames.
        let (code, status, body) = curl(&server.url(link), 2);
        assert_eq!(status, 200, "{link}");
        assert_eq!(code, Some(28), "curl ran until --max-time");
        assert!(count(&body, PART_BOUNDARY) >= 2, "frames of {link}");
    }
    assert_eq!(
        std::fs::read_to_string(&key_file).ok(),
        Some(key_text),
        "the server kept the key"
    );

    // Tampered, moved to another path, expired, half a link: 401 with one line of reason.
    let expired = sign_url(
        &config,
        "/streams/front/snapshot.jpg",
        &["--expires-at-unix", "1"],
    );
    let other_path = snapshot.replace("snapshot.jpg", "stream.mjpg");
    let half = snapshot.split("&sig=").next().expect("exp").to_owned();
    for (link, reason) in [
        (tampered(&snapshot), "signature does not match"),
        (other_path, "signature does not match"),
        (expired, "expired at 1"),
        (half, "`sig` is missing"),
    ] {
        let (_, status, body) = curl(&server.url(&link), 10);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 401, "{link}: {text}");
        assert!(text.contains(reason), "{link}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

#[test]
fn a_link_valid_for_one_second_expires() {
    if !require_clients(&["curl"], "an expiring link with curl") {
        return;
    }
    let dir = scratch_dir("one_second");
    let config = config_with_key(&dir);
    let link = sign_url(&config, "/streams/front/snapshot.jpg", &["--valid", "1s"]);
    let server = Server::start_with_users(&["--config", path_str(&config)]);
    // Bounded poll: the link is valid for at most one more second; then 401.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let (_, status, _) = curl(&server.url(&link), 10);
        statuses.push(status);
        if status == 401 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(statuses.last(), Some(&401), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 401].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn an_open_mjpeg_stream_and_live_mp4_end_when_their_link_expires() {
    if !require_clients(&["curl"], "streams ending at expiry") {
        return;
    }
    let dir = scratch_dir("stream_end");
    let config = config_with_key(&dir);
    let server = Server::start_with_users(&["--config", path_str(&config)]);
    for path in ["/streams/front/stream.mjpg", "/streams/front/live.mp4"] {
        let link = sign_url(&config, path, &["--valid", "3s"]);
        // Far longer than the link: curl ends because the server ended the response.
        let (code, status, body) = curl(&server.url(&link), 25);
        assert_eq!(status, 200, "{path}");
        assert_ne!(code, Some(28), "{path}: curl waited until --max-time");
        assert_eq!(code, Some(0), "{path}: a complete response");
        if path.ends_with(".mjpg") {
            assert!(count(&body, PART_BOUNDARY) >= 2, "frames before the end");
        } else {
            assert!(count(&body, b"moof") >= 2, "fragments before the end");
        }
    }
}

/// The URIs a playlist lists: URI lines and `URI="…"` attributes.
fn uris_of(playlist: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in playlist.lines() {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            uris.push(line.to_owned());
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("URI=\"") {
            let value = &rest[at + 5..];
            let end = value.find('"').expect("a closed quote");
            uris.push(value[..end].to_owned());
            rest = &value[end..];
        }
    }
    uris
}

/// `uri` relative to the playlist at `playlist_path`, as a client resolves it.
fn resolve(playlist_path: &str, uri: &str) -> String {
    let dir = &playlist_path[..=playlist_path.rfind('/').expect("a path")];
    format!("{dir}{uri}")
}

#[test]
fn a_signed_playlist_lists_only_signed_uris_and_ffmpeg_plays_it() {
    if !require_clients(&["ffmpeg"], "a signed playlist in ffmpeg") {
        return;
    }
    let dir = scratch_dir("playlist");
    let config = config_with_key(&dir);
    let server = Server::start_with_users(&["--config", path_str(&config)]);
    let link = sign_url(&config, "/streams/front/live.m3u8", &[]);
    let signature = &link[link.find('?').expect("a query") + 1..];

    let multivariant = get(server.addr, &link);
    assert_eq!(multivariant.status, 200, "{}", multivariant.text());
    assert_eq!(
        multivariant.header("cache-control"),
        Some("no-cache"),
        "revalidated, as unsigned"
    );
    let variants = uris_of(&multivariant.text());
    assert_eq!(variants.len(), 1, "{}", multivariant.text());
    assert!(
        variants[0].ends_with(&format!("?{signature}")),
        "{variants:?}"
    );
    let media_path = resolve(&link[..link.find('?').expect("?")], &variants[0]);

    // Whole, delta update, blocking reload, gzip'd: every URI carries the signature.
    let plain = get(server.addr, &media_path);
    assert_eq!(plain.status, 200, "{}", plain.text());
    let last_msn: u64 = plain
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a media sequence");
    let playlists = [
        plain.text(),
        get(server.addr, &format!("{media_path}&_HLS_skip=YES")).text(),
        get(server.addr, &format!("{media_path}&_HLS_msn={last_msn}")).text(),
        gunzip(&request(
            server.addr,
            "GET",
            &media_path,
            &[("Accept-Encoding", "gzip")],
        )),
    ];
    for playlist in &playlists {
        let uris = uris_of(playlist);
        assert!(uris.len() >= 3, "init, parts, segments: {playlist}");
        for uri in &uris {
            assert!(
                uri.ends_with(&format!("?{signature}")),
                "{uri} in\n{playlist}"
            );
        }
    }
    // The signature the playlist carries opens its media; a tampered one does not.
    let uris = uris_of(&playlists[0]);
    for uri in uris
        .iter()
        .filter(|u| u.ends_with(&format!("?{signature}")))
        .take(3)
    {
        let resource = resolve(&media_path, uri);
        assert_eq!(get(server.addr, &resource).status, 200, "{resource}");
        assert_eq!(
            get(server.addr, &tampered(&resource)).status,
            401,
            "{resource}"
        );
    }
    assert_eq!(get(server.addr, &tampered(&link)).status, 401);

    let (ok, frames, stderr) = ffmpeg_play(&server.url(&link), "2", RUN_LIMIT);
    assert!(ok && frames > 0, "ffmpeg played {frames} frames: {stderr}");
}

/// A gzip'd response's body, decompressed.
fn gunzip(response: &common::Response) -> String {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&response.body[..])
        .read_to_string(&mut text)
        .expect("gzip");
    text
}

#[test]
fn sign_url_refuses_bad_values_with_exit_code_2() {
    let dir = scratch_dir("refusals");
    let config = config_with_key(&dir);
    let without_key = dir.join("without_key.toml");
    std::fs::write(
        &without_key,
        "[[streams]]\nname = \"front\"\nsource = \"test\"\n",
    )
    .expect("write");
    for (args, reason) in [
        (
            vec!["--valid", "1w", "/streams/front/stream.mjpg"],
            "--valid",
        ),
        (vec!["/streams/back/stream.mjpg"], "no stream named `back`"),
        (vec!["/streams/front/status"], "not a resource"),
    ] {
        let mut all = vec!["sign-url", "--config", path_str(&config)];
        all.extend(args.iter().copied());
        let (code, stdout, stderr) = framecast(&all);
        assert_eq!(code, Some(2), "{args:?}: {stdout}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(stdout.is_empty());
    }
    let (code, _, stderr) = framecast(&[
        "sign-url",
        "--config",
        path_str(&without_key),
        "/stream.mjpg",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("has no signing_key_file"), "{stderr}");
}

#[test]
fn a_short_key_stops_the_server_naming_the_file() {
    let dir = scratch_dir("short_key");
    let config = config_with_key(&dir);
    std::fs::write(dir.join("front.key"), "abcdef\n").expect("write");
    let (code, _, stderr) = framecast(&["--config", path_str(&config), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("front.key") && stderr.contains("too short"),
        "{stderr}"
    );
}

#[test]
fn only_an_admin_may_make_links_on_the_page() {
    if !require_clients(&["curl"], "signed links from the page") {
        return;
    }
    let dir = scratch_dir("admin");
    let config = config_with_key(&dir);
    let server = Server::start_with_users(&["--config", path_str(&config)]);
    let as_user = |user: &str, path: &str| {
        let (_, status, body) = curl(
            &server.url(path).replacen("://", &format!("://{user}@"), 1),
            10,
        );
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let sign = "/streams/front/sign?path=stream.mjpg&valid=1h";
    // A viewer: 403 and no form on the page.
    let (status, text) = as_user("bob:viewer-pw", sign);
    assert_eq!(status, 403, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let (status, page) = as_user("bob:viewer-pw", "/streams/front/");
    assert_eq!(status, 200);
    assert!(!page.contains("Signed link"), "no form for viewers");
    // Without credentials: 401, like every page.
    assert_eq!(get(server.addr, sign).status, 401);
    // An admin: the form, and a link that opens without credentials.
    let (status, page) = as_user("alice:admin-pw", "/streams/front/");
    assert_eq!(status, 200);
    assert!(page.contains("Signed link"), "the form for admins");
    let (status, link) = as_user("alice:admin-pw", sign);
    assert_eq!(status, 200, "{link}");
    let link = link.trim();
    assert!(
        link.starts_with("/streams/front/stream.mjpg?exp="),
        "{link}"
    );
    let (code, status, body) = curl(&server.url(link), 2);
    assert_eq!((code, status), (Some(28), 200), "{link}");
    assert!(count(&body, PART_BOUNDARY) >= 2, "frames of {link}");
}

#[test]
fn chromium_shows_a_signed_mjpeg_img_and_hls_js_plays_a_signed_playlist() {
    let missing = common::chromium::missing_prerequisite(&["playwright-core", "hls.js"]);
    if !common::require_prerequisite(missing, "signed links in Chromium") {
        return;
    }
    let dir = scratch_dir("chromium");
    let config = config_with_key(&dir);
    let server = Server::start_with_users(&["--config", path_str(&config)]);
    let mjpeg = sign_url(&config, "/streams/front/stream.mjpg", &[]);
    let hls = sign_url(&config, "/streams/front/live.m3u8", &[]);
    let expired = sign_url(
        &config,
        "/streams/front/stream.mjpg",
        &["--expires-at-unix", "1"],
    );
    common::chromium::run_script_with(
        "signed_links.mjs",
        &server.url(""),
        &[&mjpeg, &hls, &expired],
    );
}
