//! Users and tokens as a user meets them, with the real binary and real clients: hashes made by
//! `framecast hash-password`, a configuration file with users and tokens, curl with and
//! without credentials (401 and its challenge, 403, 200), Bearer tokens, the back-off to 429,
//! CORS headers, ffmpeg and VLC playing with `user:pass@` URLs, the start-up log in open mode
//! and on a non-loopback address, a reload that adds a user, and secrets kept out of the log
//! and `/status`.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Server, ffmpeg_play, require_clients, run_for_exit_code, run_with_timeout, running_as_root,
};

const ALICE_PASSWORD: &str = "wonder land:42";
const BOB_PASSWORD: &str = "builder-bob";
/// What `openssl rand -hex 32` makes.
const TOKEN: &str = "3f6c1e0b9a7d2c4e8f1a3b5d7c9e0f2a4b6d8e0c2a4f6b8d0e2c4a6f8b0d2e4f";
const CAROL_PASSWORD: &str = "carol-s3cret";
const CLIENT_LIMIT: Duration = Duration::from_secs(40);
const VLC_LIMIT: Duration = Duration::from_secs(15);
/// VLC refuses to run as root.
const SETPRIV_NOBODY: [&str; 3] = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"];

/// `framecast hash-password` with `input` on standard input, waited for at most 20 s.
fn run_hash_password(input: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_framecast"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start framecast hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write the password");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "hash-password did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `framecast hash-password` with `secret` on standard input: its hash.
fn hash(secret: &str) -> String {
    let output = run_hash_password(format!("{secret}\n").as_bytes());
    assert!(output.status.success(), "{output:?}");
    let hash = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(secret));
    hash.trim_end().to_owned()
}

/// Writes a configuration file named `name` in this test binary's scratch directory.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("write the configuration file");
    path
}

/// Two streams (`front`, served at the root too, and `garage`), the admin `alice` who sees
/// both, `bob` who sees the garage, and a token for the garage; `extra` goes at the top.
fn users_config(extra: &str, hls: &str) -> String {
    format!(
        r#"{extra}
hls = "{hls}"
fps = 15

[[streams]]
name = "front"
source = "test"

[[streams]]
name = "garage"
source = "test"

[[users]]
name = "alice"
password_hash = "{alice}"
streams = ["*"]
role = "admin"

[[users]]
name = "bob"
password_hash = "{bob}"
streams = ["garage"]

[[tokens]]
name = "home-assistant"
token_hash = "{token}"
streams = ["garage"]
"#,
        alice = hash(ALICE_PASSWORD),
        bob = hash(BOB_PASSWORD),
        token = hash(TOKEN),
    )
}

/// A response as curl saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// curl with `args` and the URL of `path`; the response's status, head and body.
fn curl(server: &Server, path: &str, args: &[&str]) -> Answer {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "15"])
        .args(args)
        .arg(server.url(path))
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl {args:?} {path}: {output:?}");
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Answer {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

fn status_of(server: &Server, path: &str, args: &[&str]) -> u16 {
    curl(server, path, args).status
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

/// `/status` as alice sees it.
fn status_json(server: &Server) -> serde_json::Value {
    let answer = curl(server, "/status", &["-u", &alice()]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    serde_json::from_slice(&answer.body).expect("/status is JSON")
}

fn alice() -> String {
    format!("alice:{ALICE_PASSWORD}")
}

fn bob() -> String {
    format!("bob:{BOB_PASSWORD}")
}

#[test]
fn users_and_tokens_open_the_streams_they_are_allowed() {
    if !require_clients(
        &["curl"],
        "users_and_tokens_open_the_streams_they_are_allowed",
    ) {
        return;
    }
    let path = config_file(
        "users.toml",
        &users_config("cors_allowed_origins = [\"https://example.org\"]", "off"),
    );
    let server = Server::start_with_users(&["--config", path.to_str().expect("UTF-8")]);

    // Without credentials: 401 and the challenge players answer.
    for path in [
        "/snapshot.jpg",
        "/streams/garage/stream.mjpg",
        "/",
        "/status",
        "/metrics",
    ] {
        let answer = curl(&server, path, &[]);
        assert_eq!(answer.status, 401, "{path}: {}", answer.text());
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Basic realm=\"framecast\", charset=\"UTF-8\""),
            "{path}"
        );
    }
    // Always open.
    assert_eq!(status_of(&server, "/healthz", &[]), 200);
    assert_eq!(status_of(&server, "/streams/garage/healthz", &[]), 200);
    assert_eq!(status_of(&server, "/static/style.css", &[]), 200);

    // A user with the right password; a wrong one.
    let snapshot = curl(&server, "/snapshot.jpg", &["-u", &alice()]);
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    assert_eq!(snapshot.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        status_of(&server, "/snapshot.jpg", &["-u", "alice:nope"]),
        401
    );
    assert_eq!(
        status_of(&server, "/snapshot.jpg", &["-u", "mallory:x"]),
        401
    );

    // The token: its stream only, as Bearer or over Basic by its name.
    assert_eq!(
        status_of(&server, "/streams/garage/snapshot.jpg", &["-H", &bearer()]),
        200
    );
    assert_eq!(
        status_of(&server, "/streams/front/snapshot.jpg", &["-H", &bearer()]),
        403
    );
    assert_eq!(status_of(&server, "/snapshot.jpg", &["-H", &bearer()]), 403);
    let token_as_user = format!("home-assistant:{TOKEN}");
    assert_eq!(
        status_of(
            &server,
            "/streams/garage/snapshot.jpg",
            &["-u", &token_as_user]
        ),
        200
    );
    assert_eq!(
        status_of(
            &server,
            "/streams/garage/snapshot.jpg",
            &["-H", "Authorization: Bearer 00ff"]
        ),
        401
    );

    // A view user: its stream's resources, pages and status; not the other stream's.
    assert_eq!(
        status_of(&server, "/streams/garage/snapshot.jpg", &["-u", &bob()]),
        200
    );
    assert_eq!(status_of(&server, "/streams/garage/", &["-u", &bob()]), 200);
    assert_eq!(
        status_of(&server, "/streams/front/snapshot.jpg", &["-u", &bob()]),
        403
    );
    assert_eq!(
        status_of(&server, "/streams/front/status", &["-u", &bob()]),
        403
    );
    assert_eq!(status_of(&server, "/live.m3u8", &["-u", &bob()]), 403);
    assert_eq!(status_of(&server, "/status", &["-u", &bob()]), 200);
    // The home page lists only the streams the user may watch.
    let home = curl(&server, "/", &["-u", &bob()]);
    assert_eq!(home.status, 200);
    assert!(
        home.text().contains("data-stream=\"garage\""),
        "{}",
        home.text()
    );
    assert!(!home.text().contains("data-stream=\"front\""));
    let home = curl(&server, "/", &["-u", &alice()]).text();
    assert!(home.contains("data-stream=\"garage\"") && home.contains("data-stream=\"front\""));

    // CORS: the allowed origin is named (on a refusal too), another is not.
    let answer = curl(
        &server,
        "/streams/garage/snapshot.jpg",
        &["-H", "Origin: https://example.org", "-H", &bearer()],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://example.org")
    );
    assert!(
        answer.head.to_ascii_lowercase().contains("vary: origin"),
        "{}",
        answer.head
    );
    let answer = curl(&server, "/status", &["-H", "Origin: https://example.org"]);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://example.org")
    );
    let answer = curl(
        &server,
        "/streams/garage/snapshot.jpg",
        &["-H", "Origin: https://evil.example", "-H", &bearer()],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert!(
        answer.head.to_ascii_lowercase().contains("vary: origin"),
        "{}",
        answer.head
    );
    let preflight = curl(
        &server,
        "/streams/garage/stream.mjpg",
        &[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://example.org",
            "-H",
            "Access-Control-Request-Method: GET",
            "-H",
            "Access-Control-Request-Headers: authorization",
        ],
    );
    assert_eq!(preflight.status, 204, "{}", preflight.head);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://example.org")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Authorization")),
        "{}",
        preflight.head
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET"))
    );
    // A WHEP player on the allowed site: its POST of application/sdp and its DELETE pass the
    // preflight, and it may read the session's Location.
    let preflight = curl(
        &server,
        "/streams/garage/whep",
        &[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://example.org",
            "-H",
            "Access-Control-Request-Method: POST",
            "-H",
            "Access-Control-Request-Headers: authorization, content-type",
        ],
    );
    assert_eq!(preflight.status, 204, "{}", preflight.head);
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or("");
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{}",
        preflight.head
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Content-Type")),
        "{}",
        preflight.head
    );
    let offer = curl(
        &server,
        "/streams/garage/whep",
        &[
            "-X",
            "POST",
            "-H",
            "Origin: https://example.org",
            "-H",
            &bearer(),
            "-H",
            "Content-Type: application/sdp",
            "--data-binary",
            "not an offer",
        ],
    );
    // Past the access check (HLS, and so WebRTC, is off in this test's streams: 404).
    assert!(![401, 403].contains(&offer.status), "{}", offer.head);
    assert!(
        offer
            .header("access-control-expose-headers")
            .is_some_and(|h| h.contains("Location")),
        "{}",
        offer.head
    );

    // Verified once, then remembered: a player's request per part does not pay argon2 again.
    let before = status_json(&server)["access"].clone();
    for _ in 0..5 {
        assert_eq!(status_of(&server, "/snapshot.jpg", &["-u", &alice()]), 200);
    }
    let after = status_json(&server)["access"].clone();
    assert_eq!(
        after["verifications"], before["verifications"],
        "{before} {after}"
    );
    assert!(
        after["verifications_remembered"].as_u64()
            >= before["verifications_remembered"].as_u64().map(|n| n + 6),
        "{before} {after}"
    );
    assert_eq!(
        (after["users"].as_u64(), after["tokens"].as_u64()),
        (Some(2), Some(1))
    );

    // No secret anywhere it could be read.
    let status = curl(&server, "/status", &["-u", &alice()]).text();
    let log = server.log_lines().join("\n");
    for secret in [ALICE_PASSWORD, BOB_PASSWORD, TOKEN, "argon2"] {
        assert!(!status.contains(secret), "/status shows {secret}");
        assert!(!log.contains(secret), "the log shows {secret}");
    }
    assert!(
        log.contains("access: streams, pages and /status need a user or token"),
        "{log}"
    );
}

#[test]
fn repeated_wrong_passwords_from_one_address_back_off_then_get_429() {
    if !require_clients(
        &["curl"],
        "repeated_wrong_passwords_from_one_address_back_off_then_get_429",
    ) {
        return;
    }
    let path = config_file("backoff.toml", &users_config("", "off"));
    let server = Server::start_with_users(&["--config", path.to_str().expect("UTF-8")]);
    // The failing client comes from 127.0.0.3; the test reads /status from 127.0.0.1.
    let attacker = ["--interface", "127.0.0.3"];
    let wrong = [&attacker[..], &["-u", "alice:guess"]].concat();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(status_of(&server, "/snapshot.jpg", &wrong));
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    let refused = curl(
        &server,
        "/snapshot.jpg",
        &[&attacker[..], &["-u", &alice()]].concat(),
    );
    assert_eq!(refused.status, 429, "the right password waits too");
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Other addresses are not held back.
    assert_eq!(status_of(&server, "/snapshot.jpg", &["-u", &alice()]), 200);
    let access = status_json(&server)["access"].clone();
    assert_eq!(access["auth_failures"], 10, "{access}");
    assert_eq!(access["auth_refused_too_many"], 3, "{access}");
}

#[test]
fn ffmpeg_and_vlc_play_with_credentials_in_the_url() {
    if !require_clients(
        &["curl", "ffmpeg", "cvlc", "setpriv"],
        "ffmpeg_and_vlc_play_with_credentials_in_the_url",
    ) {
        return;
    }
    let path = config_file("players.toml", &users_config("", "always"));
    let server = Server::start_with_users(&["--config", path.to_str().expect("UTF-8")]);
    let with_user = |user: &str, path: &str| format!("http://{user}@{}{path}", server.addr);
    // Wait for the HLS window (as alice: /status needs a user).
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_json(&server)["hls"]["segments"]
        .as_u64()
        .unwrap_or(0)
        < 3
    {
        assert!(Instant::now() < deadline, "no HLS segments");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, frames, err) = ffmpeg_play(
        &with_user(&bob(), "/streams/garage/live.m3u8"),
        "3",
        CLIENT_LIMIT,
    );
    assert!(ok && frames >= 30, "ffmpeg on HLS: {frames} frames: {err}");
    let token_as_user = format!("home-assistant:{TOKEN}");
    let (ok, frames, err) = ffmpeg_play(
        &with_user(&token_as_user, "/streams/garage/stream.mjpg"),
        "2",
        CLIENT_LIMIT,
    );
    assert!(
        ok && frames >= 10,
        "ffmpeg on MJPEG: {frames} frames: {err}"
    );
    let (ok, _, _) = ffmpeg_play(&with_user(&bob(), "/stream.mjpg"), "1", CLIENT_LIMIT);
    assert!(!ok, "bob may not watch the front stream");

    let access = status_json(&server)["access"].clone();
    println!("after ffmpeg: {access}");
    assert!(
        access["verifications_remembered"].as_u64() > access["verifications"].as_u64(),
        "HLS parts are checked against the remembered verification: {access}"
    );

    // VLC, as an unprivileged user, with a user's name and password in the URL.
    // Under the system's temporary directory: the unprivileged user cannot reach the
    // target directory when the project lives in root's home.
    let dir = std::env::temp_dir().join(format!("framecast-auth-vlc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod 777");
    let mut vlc = if running_as_root() {
        let mut setpriv = Command::new("setpriv");
        setpriv.args(SETPRIV_NOBODY).arg("cvlc");
        setpriv
    } else {
        Command::new("cvlc")
    };
    vlc.env("HOME", &dir)
        .args(["-I", "dummy", "--no-audio", "--vout=dummy", "--no-stats"])
        .args([
            "--video-filter=scene",
            "--scene-format=png",
            "--scene-ratio=5",
        ])
        .args(["--scene-prefix=frame"])
        .arg(format!("--scene-path={}", dir.display()))
        .args(["--run-time=5"])
        .arg(with_user(&bob(), "/streams/garage/stream.mjpg"))
        .arg("vlc://quit");
    // A live MJPEG stream may outlast --run-time: VLC is stopped at the limit.
    let (_, _, err) = run_with_timeout(&mut vlc, VLC_LIMIT);
    let pictures = std::fs::read_dir(&dir)
        .expect("list scratch dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(pictures >= 3, "VLC decoded {pictures} pictures: {err}");
    let _ = std::fs::remove_dir_all(&dir);
    let log = server.log_lines().join("\n");
    for secret in [ALICE_PASSWORD, BOB_PASSWORD, TOKEN] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

#[test]
fn metrics_can_be_public_and_a_reload_adds_a_user() {
    if !require_clients(&["curl"], "metrics_can_be_public_and_a_reload_adds_a_user") {
        return;
    }
    let base = users_config("metrics_public = true", "off");
    let path = config_file("reload_users.toml", &base);
    let server = Server::start_with_users(&["--config", path.to_str().expect("UTF-8")]);
    let metrics = status_of(&server, "/metrics", &[]);
    assert!(metrics != 401 && metrics != 403, "/metrics: {metrics}");
    assert_eq!(status_of(&server, "/status", &[]), 401);

    let carol = format!("carol:{CAROL_PASSWORD}");
    assert_eq!(status_of(&server, "/snapshot.jpg", &["-u", &carol]), 401);
    let added = format!(
        "{base}\n[[users]]\nname = \"carol\"\npassword_hash = \"{}\"\nstreams = [\"front\"]\n",
        hash(CAROL_PASSWORD)
    );
    std::fs::write(&path, added).expect("rewrite the configuration file");
    let (code, _, err) = run_for_exit_code(
        Command::new("kill").args(["-HUP", &server.pid().to_string()]),
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(0), "{err}");
    let deadline = Instant::now() + Duration::from_secs(15);
    // The reload is asynchronous: wait for carol to be let in.
    while status_of(&server, "/snapshot.jpg", &["-u", &carol]) != 200 {
        assert!(
            Instant::now() < deadline,
            "carol is not let in after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        status_of(&server, "/streams/garage/snapshot.jpg", &["-u", &carol]),
        403
    );
}

#[test]
fn without_users_everything_is_open_and_the_log_says_so() {
    if !require_clients(
        &["curl"],
        "without_users_everything_is_open_and_the_log_says_so",
    ) {
        return;
    }
    let server = Server::start(&["--no-hls"]);
    assert_eq!(status_of(&server, "/snapshot.jpg", &[]), 200);
    assert_eq!(status_of(&server, "/status", &[]), 200);
    let log = server.log_lines().join("\n");
    assert!(
        log.contains("access: open, no users or tokens configured"),
        "{log}"
    );
    assert!(!log.contains("non-loopback"), "{log}");
    drop(server);

    // On every interface, the same start warns.
    let mut child = Command::new(env!("CARGO_BIN_EXE_framecast"))
        .args(["--listen", "0.0.0.0:0", "--no-hls", "--size", "320x240"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start framecast");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut warning = None;
    while let Ok(line) = lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("access:") {
            warning = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warning = warning.expect("an access line in the log");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("open on a non-loopback address"),
        "{warning}"
    );
}

#[test]
fn hash_password_refuses_an_empty_password() {
    let output = run_hash_password(b"\n");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no password"));
    // Two hashes of one password differ (their salts), and the flags still serve.
    assert_ne!(hash("same"), hash("same"));
}

#[test]
fn a_wrong_user_table_exits_2_naming_the_file_and_the_line() {
    let stream = "[[streams]]\nname = \"garage\"\nsource = \"test\"\n";
    for (name, users, expected) in [
        (
            "bad_hash.toml",
            "[[users]]\nname = \"alice\"\npassword_hash = \"hunter2\"\nstreams = [\"*\"]\n",
            ":6:17: password_hash: not a hash string",
        ),
        (
            "unknown_stream.toml",
            "[[users]]\nname = \"alice\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$\
             MjgQcaX2OPGk+/e2YG4txQ$mcL1XM2uRBPxztXm7yPBxwqK9yaS+pOkFNeHuEBe4kQ\"\n\
             streams = [\"front\"]\n",
            ":7:12: streams: no stream is named `front`",
        ),
        (
            "bad_role.toml",
            "[[users]]\nname = \"alice\"\npassword_hash = \"x\"\nstreams = [\"*\"]\nrole = \"root\"\n",
            ":8:8: unknown variant `root`, expected `view` or `admin`",
        ),
    ] {
        let path = config_file(name, &format!("{stream}{users}"));
        let path = path.to_str().expect("UTF-8");
        let (code, _, err) = run_for_exit_code(
            Command::new(env!("CARGO_BIN_EXE_framecast"))
                .args(["--config", path])
                .env_remove("RUST_LOG"),
            Duration::from_secs(20),
        );
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(err.contains(&format!("{path}{expected}")), "{name}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
