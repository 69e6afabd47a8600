//! Shared by the black-box tests: starts the real `framecast` binary on 127.0.0.1:0 and talks
//! to it over real sockets.
#![allow(dead_code)]

pub mod chromium;
pub mod h264_bytes;
pub mod hls_fetch;
pub mod nginx_edge;
pub mod rtsp_replay;
pub mod rtsp_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the server to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of the server's log a test keeps (the rest are still printed).
const LOG_LINES_KEPT: usize = 10_000;

/// A running server, killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    /// What the server wrote on standard error, line by line (also copied to the test's).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server with the test pattern at a small size unless `args` say otherwise.
    /// Returns once the source has delivered its first frame (or placeholder): the server
    /// accepts connections before that, and a test that asks at once may find no frame yet.
    pub fn start(args: &[&str]) -> Self {
        let server = Self::spawn(args, Stdio::null()).0;
        server.wait_for_first_frame();
        server
    }

    /// Like [`Server::start`] without waiting for a frame (which it looks for over plain
    /// HTTP): for a server serving HTTPS, whose test waits over TLS itself.
    pub fn start_announced(args: &[&str]) -> Self {
        Self::spawn(args, Stdio::null()).0
    }

    /// Like [`Server::start`], with standard input a pipe the test writes into (for
    /// `--source pipe:…`); dropping the returned handle is the source's end of file.
    pub fn start_with_stdin(args: &[&str]) -> (Self, ChildStdin) {
        let (server, stdin) = Self::spawn(args, Stdio::piped());
        (server, stdin.expect("piped stdin"))
    }

    /// Like [`Server::start`], run under `wrapper` (e.g. `prlimit --nofile=256`), which
    /// `exec`s the server with the arguments that follow it.
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Self {
        let server = Self::spawn_under(wrapper, args, Stdio::null()).0;
        server.wait_for_first_frame();
        server
    }

    /// Like [`Server::start`] for a server whose `/status` needs credentials (users in its
    /// configuration file): waits for `/healthz`, which is always open, to say frames flow.
    pub fn start_with_users(args: &[&str]) -> Self {
        let server = Self::spawn(args, Stdio::null()).0;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline && get(server.addr, "/healthz").status != 200 {
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn wait_for_first_frame(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let frames = status_json(self.addr)["source"]["frames"]
                .as_u64()
                .unwrap_or(0);
            if frames > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(args: &[&str], stdin: Stdio) -> (Self, Option<ChildStdin>) {
        Self::spawn_under(&[], args, stdin)
    }

    fn spawn_under(wrapper: &[&str], args: &[&str], stdin: Stdio) -> (Self, Option<ChildStdin>) {
        let binary = env!("CARGO_BIN_EXE_framecast");
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--size") {
            command.args(["--size", "640x360"]);
        }
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start framecast");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() < LOG_LINES_KEPT {
                    kept.push(line);
                }
            }
        });
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                let announced = line
                    .strip_prefix("framecast listening on http://")
                    .or_else(|| line.strip_prefix("framecast listening on https://"));
                if let Some(rest) = announced {
                    let _ = tx.send(rest.trim_end_matches('/').to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(START_TIMEOUT)
            .expect("framecast did not announce its address")
            .parse()
            .expect("address");
        (Self { addr, child, log }, stdin)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines the server has logged so far (the first [`LOG_LINES_KEPT`]).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (up to `limit`) for the server to exit by itself; `None` if it is still running.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A whole HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request with `Connection: close` and reads the whole response (bounded in time).
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw, method == "HEAD")
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

fn parse_response(raw: &[u8], head_only: bool) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        rest.to_vec()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// One part of a multipart MJPEG stream.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub jpeg: Vec<u8>,
    pub received_at: std::time::SystemTime,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an MJPEG stream as a non-browser client does (full part headers with
/// Content-Length), over HTTP/1.0 so the body should not be chunked; a chunked body is
/// de-chunked anyway, so the parts read the same either way.
pub struct MjpegReader {
    reader: BufReader<Box<dyn Read + Send>>,
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl MjpegReader {
    pub fn open(addr: SocketAddr, path: &str, user_agent: &str) -> Self {
        Self::open_on(TcpStream::connect(addr).expect("connect"), path, user_agent)
    }

    /// Like [`MjpegReader::open`] on a socket the caller connected (e.g. with a small receive
    /// buffer). Reads only the response head: the stream's parts stay in the socket until asked for.
    pub fn open_on(stream: TcpStream, path: &str, user_agent: &str) -> Self {
        let addr = stream.peer_addr().expect("peer address");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = BufReader::new(stream);
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {user_agent}\r\n\r\n");
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send");
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = read_headers(&mut reader);
        let chunked = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let body: Box<dyn Read + Send> = if chunked {
            Box::new(Dechunk {
                inner: reader,
                left_in_chunk: 0,
                started: false,
            })
        } else {
            Box::new(reader)
        };
        Self {
            reader: BufReader::new(body),
            headers,
            status,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the next part: skips to the boundary line, then headers, then Content-Length bytes.
    pub fn next_part(&mut self) -> Part {
        self.try_next_part()
            .unwrap_or_else(|error| panic!("reading the next part: {error}"))
    }

    /// Like [`MjpegReader::next_part`], for a test that expects the stream to end: the end of
    /// the stream is `Err` with [`std::io::ErrorKind::UnexpectedEof`], as is any read error.
    pub fn try_next_part(&mut self) -> std::io::Result<Part> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no boundary within 10 s",
                ));
            }
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.trim_end() == "--framecast-boundary" {
                break;
            }
        }
        let headers = read_headers(&mut self.reader);
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("no Content-Length in part"))?;
        let mut jpeg = vec![0; len];
        self.reader.read_exact(&mut jpeg)?;
        Ok(Part {
            headers,
            jpeg,
            received_at: std::time::SystemTime::now(),
        })
    }

    /// The raw stream for tests that look at exact bytes.
    pub fn read_raw(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.reader.read_exact(&mut out).expect("read raw");
        out
    }
}

/// Undoes chunked transfer coding (RFC 9112 §7.1) as bytes are read; ends at the last chunk.
struct Dechunk<R> {
    inner: R,
    left_in_chunk: usize,
    started: bool,
}

impl<R: BufRead> Read for Dechunk<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left_in_chunk == 0 {
            let mut line = String::new();
            if self.started {
                // The CRLF that ends the previous chunk's data.
                self.inner.read_line(&mut line)?;
                line.clear();
            }
            self.started = true;
            if self.inner.read_line(&mut line)? == 0 {
                return Ok(0);
            }
            let size = line.trim_end().split(';').next().unwrap_or("");
            self.left_in_chunk = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("chunk size {line:?}"),
                )
            })?;
            if self.left_in_chunk == 0 {
                return Ok(0);
            }
        }
        let wanted = buf.len().min(self.left_in_chunk);
        let n = self.inner.read(&mut buf[..wanted])?;
        self.left_in_chunk -= n;
        Ok(n)
    }
}

fn read_headers<R: BufRead>(reader: &mut R) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    headers
}

/// The environment variable that lets a developer run the suite without some real clients:
/// `FRAMECAST_ALLOW_MISSING_CLIENTS=1 cargo test`. Without it (as under `make test` and CI) a
/// test whose client is missing fails and names the client.
pub const ALLOW_MISSING_CLIENTS: &str = "FRAMECAST_ALLOW_MISSING_CLIENTS";

/// Whether `test` can run: true when every one of `programs` is on PATH. A missing one fails
/// the test, naming it, unless [`ALLOW_MISSING_CLIENTS`] is set to `1`; then the test prints
/// that it is skipped and the caller returns early.
pub fn require_clients(programs: &[&str], test: &str) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !have(p)).collect();
    require(&missing.join(", "), test, missing.is_empty())
}

/// Like [`require_clients`] for a prerequisite described in words (a browser at a fixed path,
/// an npm package): `missing` is `None` when everything is there.
pub fn require_prerequisite(missing: Option<String>, test: &str) -> bool {
    let reason = missing.unwrap_or_default();
    require(&reason, test, reason.is_empty())
}

fn require(missing: &str, test: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var(ALLOW_MISSING_CLIENTS).as_deref() == Ok("1") {
        println!("SKIPPED {test}: {missing} missing ({ALLOW_MISSING_CLIENTS}=1)");
        return false;
    }
    panic!(
        "{test} needs {missing}, which is missing: `make test` installs it \
         (set {ALLOW_MISSING_CLIENTS}=1 to skip such tests on purpose)"
    );
}

/// Whether a program is on PATH; tests of real clients need them (`make test` installs them).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a command with a time limit; returns (exit success, stdout, stderr).
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> (bool, String, String) {
    let (code, out, err) = run_for_exit_code(command, limit);
    (code == Some(0), out, err)
}

/// Runs a command with a time limit; returns (exit code, stdout, stderr). The code is `None`
/// when the command was killed at the limit or died from a signal.
pub fn run_for_exit_code(command: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    (status.and_then(|s| s.code()), out, err)
}

/// ffmpeg plays `url` for `seconds` of media into a null sink, within `limit`: whether it
/// exited 0, the frames it decoded (from its `-progress` report) and what it wrote to stderr.
pub fn ffmpeg_play(url: &str, seconds: &str, limit: Duration) -> (bool, u64, String) {
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
            .args(["-i", url])
            .args(["-t", seconds, "-f", "null", "-"]),
        limit,
    );
    let frames = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame=")?.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    (ok, frames, stderr)
}

/// `GET /status`, parsed.
pub fn status_json(addr: SocketAddr) -> serde_json::Value {
    let response = get(addr, "/status");
    assert_eq!(response.status, 200, "/status: {}", response.text());
    serde_json::from_slice(&response.body).expect("/status is JSON")
}

/// Re-reads `/status` (at `path`, such as `/status` or `/streams/NAME/status`) every
/// `poll` until `ready` holds for it, for at most `limit`; returns it. Fails naming `what`.
pub fn wait_for_status_at(
    addr: SocketAddr,
    path: &str,
    what: &str,
    limit: Duration,
    poll: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let response = get(addr, path);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let status: serde_json::Value =
            serde_json::from_slice(&response.body).expect("/status is JSON");
        if ready(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {limit:?}: {status}"
        );
        std::thread::sleep(poll);
    }
}

/// [`wait_for_status`] for the first stream's `hls` object: waits until `ready` holds for
/// it, and returns it.
pub fn wait_for_hls(
    addr: SocketAddr,
    what: &str,
    limit: Duration,
    poll: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for_status(addr, &format!("HLS {what}"), limit, poll, |s| {
        ready(&s["hls"])
    })["hls"]
        .clone()
}

/// A count from a `/status` object; 0 where it is missing or not a count.
pub fn count(value: &serde_json::Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

/// [`wait_for_status_at`] for the first stream's `/status`.
pub fn wait_for_status(
    addr: SocketAddr,
    what: &str,
    limit: Duration,
    poll: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for_status_at(addr, "/status", what, limit, poll, ready)
}

/// The wall clock in microseconds since the Unix epoch, as `X-Timestamp` counts.
pub fn unix_now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// VmRSS of process `pid` in KiB (proc(5)); 0 once it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Runs the framecast binary with `args` (a command such as `sign-url`, not a server) and no
/// `FRAMECAST_*` settings from the environment: (exit code, stdout, stderr).
pub fn run_framecast(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_framecast"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FRAMECAST_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG").args(args);
    run_for_exit_code(&mut command, Duration::from_secs(30))
}

/// `framecast sign-url --config CONFIG PATH EXTRA…`: the link it prints (the path and its
/// `?exp=…&sig=…`).
pub fn sign_url(config: &std::path::Path, path: &str, extra: &[&str]) -> String {
    let config = config.to_str().expect("a UTF-8 path");
    let mut args = vec!["sign-url", "--config", config, path];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_framecast(&args);
    assert_eq!(code, Some(0), "sign-url {path}: {stderr}");
    let link = stdout.trim().to_owned();
    assert!(link.starts_with(&format!("{path}?exp=")), "{link}");
    assert!(link.contains("&sig="), "{link}");
    link
}

/// Sends `GET path` on `stream` as raw HTTP/1.1 and reads the response head: (status, the
/// head's lines, the reader positioned at the body). Status 0 when no head came.
pub fn raw_get_head<'a>(
    stream: &'a TcpStream,
    path: &str,
) -> (u16, Vec<String>, BufReader<&'a TcpStream>) {
    let mut writer = stream;
    write!(writer, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send");
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    for _ in 0..50 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        lines.push(line.trim_end().to_owned());
    }
    let status = lines
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, lines, reader)
}

/// Whether the tests run as root: VLC refuses to, and nginx hands its workers to `nobody`.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// How many times `needle` occurs in `haystack` (overlapping ones included).
pub fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// An HTTP response as these tests read it.
#[derive(Debug)]
pub struct BodyAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl BodyAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` with a body of `content_type`, `Connection: close`; bounded in time.
pub fn send_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> BodyAnswer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body.as_bytes()).expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("end of the head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    BodyAnswer {
        status,
        headers,
        body: body.to_owned(),
    }
}
