//! HTTPS: the real server with a certificate made in the test (rcgen), and real clients:
//! curl over HTTP/1.1 and HTTP/2 (ALPN), ffmpeg and ffprobe, openssl-free checks of which
//! certificate a new connection gets (curl trusting only one of them).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, require_clients, run_for_exit_code};

/// Time a single curl or ffmpeg run may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// Time the server may take for its first frame, its first HLS part, a reload.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);
const BOUNDARY: &[u8] = b"--framecast-boundary";

/// A certificate for 127.0.0.1 and localhost with `common_name`, and its key, as PEM.
fn self_signed(common_name: &str) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// A fresh directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framecast-tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The server's certificate files, and a copy of each certificate a client may trust.
struct CertFiles {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Puts a new certificate named `common_name` in the server's files; returns the path of
    /// a copy of it for clients to trust.
    fn install(&self, common_name: &str) -> PathBuf {
        let (cert, key) = self_signed(common_name);
        let trusted = self.dir.join(format!("{common_name}.pem"));
        std::fs::write(&trusted, &cert).expect("write trusted copy");
        std::fs::write(&self.cert, &cert).expect("write cert");
        std::fs::write(&self.key, &key).expect("write key");
        trusted
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            self.cert.display().to_string(),
            "--tls-key".to_owned(),
            self.key.display().to_string(),
        ]
    }
}

fn start(files: &CertFiles, trusted: &Path, extra: &[&str]) -> Server {
    let args = files.args();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    let server = Server::start_announced(&all);
    // The first frame, asked over TLS.
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let fetched = fetch(&server, trusted, "--http1.1", "/status");
        let frames = serde_json::from_slice::<serde_json::Value>(&fetched.body)
            .ok()
            .and_then(|status| status["source"]["frames"].as_u64())
            .unwrap_or(0);
        if frames > 0 {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "no frame over HTTPS: {fetched:?}"
        );
        std::thread::sleep(POLL);
    }
}

fn https(server: &Server, path: &str) -> String {
    format!("https://{}{path}", server.addr)
}

/// One finished curl request.
struct Fetched {
    exit: Option<i32>,
    http_version: String,
    status: u16,
    body: Vec<u8>,
    stderr: String,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "curl exit {:?}, HTTP/{} {}, {} bytes: {}\n{}",
            self.exit,
            self.http_version,
            self.status,
            self.body.len(),
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)]),
            self.stderr
        )
    }
}

/// `curl` with `version` (`--http1.1` or `--http2`) trusting only `trusted`.
fn fetch(server: &Server, trusted: &Path, version: &str, path: &str) -> Fetched {
    fetch_url(trusted, version, &https(server, path))
}

fn fetch_url(trusted: &Path, version: &str, url: &str) -> Fetched {
    let body_file = trusted.with_extension(format!("body-{}", unique()));
    let (exit, out, stderr) = run_for_exit_code(
        Command::new("curl")
            .args(["-sS", version, "--max-time", "20", "--cacert"])
            .arg(trusted)
            .args(["-w", "%{http_version} %{http_code}", "-o"])
            .arg(&body_file)
            .arg(url),
        CLIENT_LIMIT,
    );
    let body = std::fs::read(&body_file).unwrap_or_default();
    let _ = std::fs::remove_file(&body_file);
    let mut written = out.split_whitespace();
    let http_version = written.next().unwrap_or("").to_owned();
    let status = written.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Fetched {
        exit,
        http_version,
        status,
        body,
        stderr,
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An endless response curl is reading, its bytes collected as they come.
struct Streaming {
    child: Child,
    body: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
}

impl Streaming {
    fn open(server: &Server, trusted: &Path, version: &str, path: &str) -> Self {
        let mut child = Command::new("curl")
            .args(["-sS", "-v", "-N", version, "--max-time", "120", "--cacert"])
            .arg(trusted)
            .arg(https(server, path))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl");
        let body = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().expect("stdout");
        let kept = body.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: enough for every check here.
                if kept.len() < 64 << 20 {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            *kept.lock().unwrap_or_else(|e| e.into_inner()) = text;
        });
        Self {
            child,
            body,
            stderr,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn parts(&self) -> usize {
        let body = self.body.lock().unwrap_or_else(|e| e.into_inner());
        body.windows(BOUNDARY.len())
            .filter(|w| *w == BOUNDARY)
            .count()
    }

    /// Waits (bounded) until at least `count` multipart boundaries have come.
    fn wait_for_parts(&self, count: usize, what: &str) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while self.parts() < count {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {count} MJPEG parts",
                self.parts()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Stops curl; returns what it wrote on stderr (`-v`: the protocol and status line).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self
                .stderr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if !text.is_empty() || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_serves_pages_snapshots_and_status_over_http2_and_http11() {
    if !require_clients(
        &["curl"],
        "https_serves_pages_snapshots_and_status_over_http2_and_http11",
    ) {
        return;
    }
    let dir = temp_dir("pages");
    let files = CertFiles::new(&dir);
    let trusted = files.install("first.test");
    let server = start(&files, &trusted, &["--no-hls"]);

    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let page = fetch(&server, &trusted, flag, "/");
        assert_eq!(
            (page.status, page.http_version.as_str()),
            (200, version),
            "{page:?}"
        );
        assert!(
            String::from_utf8_lossy(&page.body).contains("<html"),
            "{page:?}"
        );

        let snapshot = fetch(&server, &trusted, flag, "/snapshot.jpg");
        assert_eq!(
            (snapshot.status, snapshot.http_version.as_str()),
            (200, version)
        );
        assert!(
            snapshot.body.starts_with(&[0xFF, 0xD8]) && snapshot.body.ends_with(&[0xFF, 0xD9]),
            "not a JPEG: {snapshot:?}"
        );

        let status = fetch(&server, &trusted, flag, "/status");
        assert_eq!(
            (status.status, status.http_version.as_str()),
            (200, version)
        );
        let json: serde_json::Value = serde_json::from_slice(&status.body).expect("JSON");
        assert!(json["source"]["frames"].as_u64().unwrap_or(0) > 0, "{json}");
    }

    // Keep-alive over TLS and HTTP/1.1: the second request reuses the connection (the read
    // gate opens again once the first answer has gone).
    let (exit, out, stderr) = run_for_exit_code(
        Command::new("curl")
            .args(["-sS", "--http1.1", "--max-time", "20", "--cacert"])
            .arg(&trusted)
            .args([
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}/%{num_connects} ",
            ])
            .args([https(&server, "/status"), https(&server, "/healthz")]),
        CLIENT_LIMIT,
    );
    assert_eq!((exit, out.trim()), (Some(0), "200/1 200/0"), "{stderr}");

    // An MJPEG stream over HTTP/2 through actix's body path: several whole parts.
    let stream = Streaming::open(&server, &trusted, "--http2", "/stream.mjpg");
    stream.wait_for_parts(5, "MJPEG over HTTP/2");
    let body = stream.bytes();
    let jpegs = body.windows(2).filter(|w| *w == [0xFF, 0xD8]).count();
    assert!(jpegs >= 4, "{jpegs} JPEG starts in {} bytes", body.len());
    let log = stream.stop();
    assert!(log.contains("HTTP/2 200"), "not HTTP/2:\n{log}");

    // The same over HTTP/1.1 on TLS (chunked by actix).
    let stream = Streaming::open(&server, &trusted, "--http1.1", "/stream.mjpg");
    stream.wait_for_parts(5, "MJPEG over HTTP/1.1 and TLS");
    let log = stream.stop();
    assert!(log.contains("HTTP/1.1 200"), "not HTTP/1.1:\n{log}");

    // One HTTP/2 connection holds at most 100 requests open: past them, 503 at once.
    let statuses = h2_statuses_on_one_connection(&trusted, server.addr, "/stream.mjpg?fps=1", 110);
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    assert_eq!((count(200), count(503)), (100, 10), "{statuses:?}");

    // Plain HTTP to the TLS port fails, and the server goes on serving.
    let (exit, _, stderr) = run_for_exit_code(
        Command::new("curl").args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://{}/status", server.addr),
        ]),
        CLIENT_LIMIT,
    );
    assert!(
        exit.is_some_and(|code| code != 0),
        "plain HTTP answered: {stderr}"
    );
    let status = fetch(&server, &trusted, "--http2", "/status");
    assert_eq!(status.status, 200, "{status:?}");
}

/// Opens `count` requests for `path` at once on one HTTP/2 connection (the `h2` crate: curl
/// spreads parallel requests over connections) and returns their statuses.
fn h2_statuses_on_one_connection(
    trusted: &Path,
    addr: std::net::SocketAddr,
    path: &str,
    count: usize,
) -> Vec<u16> {
    use rustls::pki_types::pem::PemObject;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        let cert = rustls::pki_types::CertificateDer::from_pem_file(trusted).expect("PEM");
        roots.add(cert).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::from(addr.ip());
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS");
        let (send, connection) = h2::client::handshake(tls).await.expect("HTTP/2");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut responses = Vec::new();
        for _ in 0..count {
            let mut send = send.clone().ready().await.expect("ready");
            let request = http::Request::get(format!("https://{addr}{path}"))
                .body(())
                .expect("request");
            let (response, _) = send.send_request(request, true).expect("send");
            responses.push(response);
        }
        let mut statuses = Vec::new();
        // Bodies stay open (held in `bodies`) until every status is in.
        let mut bodies = Vec::new();
        for response in responses {
            let response = tokio::time::timeout(Duration::from_secs(20), response)
                .await
                .expect("a response within 20 s")
                .expect("response");
            statuses.push(response.status().as_u16());
            bodies.push(response.into_body());
        }
        statuses
    })
}

/// The URI of the playlist's EXT-X-PRELOAD-HINT, if it has one.
fn preload_hint(playlist: &str) -> Option<String> {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let uri = line.split("URI=\"").nth(1)?;
    Some(uri.split('"').next()?.to_owned())
}

/// `part{msn}.{index}.m4s` at the end of `uri`.
fn part_numbers(uri: &str) -> Option<(u64, u64)> {
    let name = uri.rsplit('/').next()?;
    let numbers = name.strip_prefix("part")?.strip_suffix(".m4s")?;
    let (msn, index) = numbers.split_once('.')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

#[test]
fn hls_and_live_mp4_over_http2_and_ffmpeg_over_https() {
    if !require_clients(
        &["curl", "ffmpeg", "ffprobe"],
        "hls_and_live_mp4_over_http2_and_ffmpeg_over_https",
    ) {
        return;
    }
    let dir = temp_dir("hls");
    let files = CertFiles::new(&dir);
    let trusted = files.install("first.test");
    let server = start(&files, &trusted, &["--size", "320x240", "--fps", "15"]);

    // The media playlist, as the multivariant one names it, once it hints a part.
    let multivariant = fetch(&server, &trusted, "--http2", "/live.m3u8");
    assert_eq!(
        (multivariant.status, multivariant.http_version.as_str()),
        (200, "2")
    );
    let text = String::from_utf8_lossy(&multivariant.body).into_owned();
    let media_uri = text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no variant:\n{text}"));
    let media_path = format!("/{}", media_uri.trim_start_matches('/'));
    let deadline = Instant::now() + WAIT_LIMIT;
    let (hint, msn, index) = loop {
        let playlist = fetch(&server, &trusted, "--http2", &media_path);
        let text = String::from_utf8_lossy(&playlist.body).into_owned();
        if let Some(hint) = preload_hint(&text)
            && let Some((msn, index)) = part_numbers(&hint)
        {
            break (hint, msn, index);
        }
        assert!(Instant::now() < deadline, "no part hinted: {playlist:?}");
        std::thread::sleep(POLL);
    };

    // A blocking reload for the hinted part, over HTTP/2: the answer lists it.
    let reload = fetch(
        &server,
        &trusted,
        "--http2",
        &format!("{media_path}?_HLS_msn={msn}&_HLS_part={index}"),
    );
    assert_eq!(
        (reload.status, reload.http_version.as_str()),
        (200, "2"),
        "{reload:?}"
    );
    let text = String::from_utf8_lossy(&reload.body).into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&format!("URI=\"{hint}\""))),
        "part {msn}.{index} missing:\n{text}"
    );

    // `/live.mp4` over HTTP/2: fragmented MP4 that ffprobe reads as H.264.
    let live = Streaming::open(&server, &trusted, "--http2", "/live.mp4");
    let deadline = Instant::now() + WAIT_LIMIT;
    while live.bytes().windows(4).filter(|w| *w == b"moof").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "{} bytes of /live.mp4",
            live.bytes().len()
        );
        std::thread::sleep(POLL);
    }
    let mp4 = live.bytes();
    let log = live.stop();
    assert!(log.contains("HTTP/2 200"), "not HTTP/2:\n{log}");
    assert_eq!(&mp4[4..8], b"ftyp", "not an MP4");
    let mp4_file = dir.join("live.mp4");
    std::fs::write(&mp4_file, &mp4).expect("write mp4");
    let (exit, out, err) = run_for_exit_code(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&mp4_file),
        CLIENT_LIMIT,
    );
    assert_eq!((exit, out.trim()), (Some(0), "h264"), "ffprobe: {err}");

    // ffmpeg plays the HLS stream over HTTPS (HTTP/1.1: ffmpeg has no HTTP/2).
    let (played, frames, stderr) =
        common::ffmpeg_play(&https(&server, "/live.m3u8"), "2", Duration::from_secs(60));
    assert!(played && frames > 0, "ffmpeg: {frames} frames: {stderr}");
}

/// Sends SIGHUP to the server.
fn hang_up(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits (bounded) until a new connection trusting only `trusted` gets through.
fn wait_until_trusted(server: &Server, trusted: &Path, what: &str) {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let fetched = fetch(server, trusted, "--http2", "/healthz");
        if fetched.status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {fetched:?}");
        std::thread::sleep(POLL);
    }
}

#[test]
fn the_certificate_is_reloaded_on_sighup_and_on_change_without_dropping_streams() {
    if !require_clients(
        &["curl"],
        "the_certificate_is_reloaded_on_sighup_and_on_change_without_dropping_streams",
    ) {
        return;
    }
    let dir = temp_dir("reload");
    let files = CertFiles::new(&dir);
    let first = files.install("first.test");
    let server = start(&files, &first, &["--no-hls"]);

    let stream = Streaming::open(&server, &first, "--http2", "/stream.mjpg");
    stream.wait_for_parts(2, "before the reload");

    // SIGHUP: new connections get the second certificate.
    let second = files.install("second.test");
    hang_up(&server);
    wait_until_trusted(&server, &second, "after SIGHUP");
    let old = fetch(&server, &first, "--http2", "/healthz");
    assert_eq!(
        old.exit,
        Some(60),
        "the first certificate is still served: {old:?}"
    );
    let deadline = Instant::now() + WAIT_LIMIT;
    while !server
        .log_lines()
        .iter()
        .any(|l| l.contains("TLS certificate reloaded") && l.contains("SIGHUP"))
    {
        assert!(Instant::now() < deadline, "no SIGHUP reload logged");
        std::thread::sleep(POLL);
    }

    // No signal: the files change, and the poll picks them up.
    let third = files.install("third.test");
    wait_until_trusted(&server, &third, "after the files changed");
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("TLS certificate reloaded") && l.contains("the files changed")),
        "no reload on change logged"
    );

    // A broken file: the third certificate stays, and one line says why.
    std::fs::write(&files.cert, "not a certificate\n").expect("write");
    let deadline = Instant::now() + WAIT_LIMIT;
    while !server
        .log_lines()
        .iter()
        .any(|l| l.contains("TLS certificate not reloaded"))
    {
        assert!(Instant::now() < deadline, "a broken file not reported");
        std::thread::sleep(POLL);
    }
    let kept = fetch(&server, &third, "--http2", "/healthz");
    assert_eq!(kept.status, 200, "{kept:?}");
    std::thread::sleep(Duration::from_secs(3));
    // (A poll that caught an install between its two writes may have refused that pair too.)
    let refusals = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("TLS certificate not reloaded") && l.contains("no CERTIFICATE"))
        .count();
    assert_eq!(refusals, 1, "a broken file is reported once");

    // The stream opened with the first certificate still gets frames.
    let before = stream.parts();
    stream.wait_for_parts(before + 3, "after the reloads");
    let log = stream.stop();
    assert!(log.contains("HTTP/2 200"), "{log}");
}

/// A TLS client connection to `addr` trusting only `trusted`, over HTTP/1.1.
fn tls_connect(
    trusted: &Path,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls::pki_types::CertificateDer::from_pem_file(trusted).expect("PEM");
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let socket = std::net::TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    rustls::StreamOwned::new(connection, socket)
}

#[test]
fn a_viewer_that_stops_reading_over_tls_is_dropped() {
    if !require_clients(&["curl"], "a_viewer_that_stops_reading_over_tls_is_dropped") {
        return;
    }
    let dir = temp_dir("stall");
    let files = CertFiles::new(&dir);
    let trusted = files.install("first.test");
    let args = [
        "--no-hls",
        "--size",
        "1280x720",
        "--viewer-stall-seconds",
        "1",
    ];
    let server = start(&files, &trusted, &args);

    let mut viewer = tls_connect(&trusted, server.addr);
    std::io::Write::write_all(
        &mut viewer,
        b"GET /stream.mjpg HTTP/1.1\r\nHost: framecast\r\n\r\n",
    )
    .expect("request");
    let mut head = [0u8; 512];
    let n = viewer.read(&mut head).expect("response");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );

    // It reads nothing more: once the socket takes nothing for a second, the server closes
    // the connection, and the viewer is gone from /status.
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let status = fetch(&server, &trusted, "--http1.1", "/status");
        let json: serde_json::Value = serde_json::from_slice(&status.body).expect("JSON");
        let open = json["connections"]["open"].as_u64().unwrap_or(u64::MAX);
        // This request's own connection.
        if open <= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled viewer is still open: {json}"
        );
        std::thread::sleep(POLL);
    }
    drop(viewer);
}

/// Runs the binary with `args` until it exits (it must, with these errors).
fn exit_of(args: &[&str]) -> (Option<i32>, String) {
    let (exit, _, stderr) = run_for_exit_code(
        Command::new(env!("CARGO_BIN_EXE_framecast"))
            .args(["--listen", "127.0.0.1:0", "--size", "320x240"])
            .args(args)
            .env_remove("RUST_LOG"),
        CLIENT_LIMIT,
    );
    (exit, stderr)
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start_naming_them() {
    let dir = temp_dir("errors");
    let files = CertFiles::new(&dir);
    files.install("first.test");
    let cert = files.cert.display().to_string();
    let key = files.key.display().to_string();

    // One flag without the other: a usage error.
    let (exit, stderr) = exit_of(&["--tls-cert", &cert]);
    assert_eq!(exit, Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");

    // One key without the other in the file: its line and column.
    let config = dir.join("cams.toml");
    std::fs::write(
        &config,
        format!("tls_key = \"{key}\"\n\n[[streams]]\nname = \"main\"\nsource = \"test\"\n"),
    )
    .expect("write config");
    let (exit, stderr) = exit_of(&["--config", &config.display().to_string()]);
    assert_eq!(exit, Some(2), "{stderr}");
    assert!(
        stderr.contains("cams.toml:1:11") && stderr.contains("tls_cert and tls_key go together"),
        "{stderr}"
    );

    // A file that is not there.
    let missing = dir.join("missing.pem").display().to_string();
    let (exit, stderr) = exit_of(&["--tls-cert", &missing, "--tls-key", &key]);
    assert_eq!(exit, Some(1), "{stderr}");
    assert!(
        stderr.contains("missing.pem") && stderr.contains("cannot read"),
        "{stderr}"
    );

    // A key that is not the certificate's.
    let (_, other_key) = self_signed("other.test");
    let other = dir.join("other-key.pem");
    std::fs::write(&other, other_key).expect("write key");
    let (exit, stderr) = exit_of(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &other.display().to_string(),
    ]);
    assert_eq!(exit, Some(1), "{stderr}");
    assert!(
        stderr.contains("other-key.pem") && stderr.contains("does not go with"),
        "{stderr}"
    );
}
