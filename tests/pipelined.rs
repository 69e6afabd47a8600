//! A client that pipelines thousands of requests and never reads the answers must cost the
//! server nothing while it waits: its CPU time, read from `/proc`, stays near zero, other
//! clients are served meanwhile, and once the client reads it gets every answer, well formed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, get};

/// As many as the reproduction sent.
const PIPELINED_REQUESTS: usize = 20_000;
/// The period over which the server's CPU time is measured while the client waits.
const WAIT: Duration = Duration::from_secs(3);
/// CPU share of one core the server may use over [`WAIT`]: the idle server (no HLS, a slow
/// test pattern) spends a few percent; a busy loop spends 100 %.
const MAX_CPU_SHARE: f64 = 0.10;
/// How long the writer's progress must stand still before the server counts as settled.
const SETTLED_AFTER: Duration = Duration::from_millis(500);
/// Bounds the wait for that.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// Bounds reading the answers once the client reads.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A slow pattern and no HLS, so that the idle server costs little and the measure shows the
/// connection's cost.
const SERVER_ARGS: &[&str] = &["--no-hls", "--fps", "5", "--size", "320x180"];

#[test]
fn never_read_pipelined_requests_cost_no_cpu_and_are_answered_once_read() {
    let server = Server::start(SERVER_ARGS);
    let client = NeverReadingClient::start(server.addr, "/nope");
    client.wait_until_settled();

    let cpu_share = server_cpu_share(&server, WAIT);
    assert!(
        cpu_share < MAX_CPU_SHARE,
        "the server used {:.0} % of a core while a pipelining client did not read",
        cpu_share * 100.0
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);

    // The client reads at last: every request gets its answer, in order and well formed.
    let mut reader = ResponseReader::new(client.stream.try_clone().expect("clone"));
    for index in 0..PIPELINED_REQUESTS {
        let (status, _body_len) = reader
            .next_response()
            .unwrap_or_else(|e| panic!("response {index} of {PIPELINED_REQUESTS}: {e}"));
        assert_eq!(status, 404, "response {index}");
    }
    assert_eq!(client.sent_requests(), PIPELINED_REQUESTS);
}

#[test]
fn never_read_pipelined_snapshots_cost_no_cpu() {
    let server = Server::start(SERVER_ARGS);
    let client = NeverReadingClient::start(server.addr, "/snapshot.jpg");
    client.wait_until_settled();

    let cpu_share = server_cpu_share(&server, WAIT);
    assert!(
        cpu_share < MAX_CPU_SHARE,
        "the server used {:.0} % of a core while a client did not read its snapshots",
        cpu_share * 100.0
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);

    // The first answers are whole JPEGs; the rest need not be read.
    let mut reader = ResponseReader::new(client.stream.try_clone().expect("clone"));
    for index in 0..20 {
        let (status, body_len) = reader
            .next_response()
            .unwrap_or_else(|e| panic!("snapshot {index}: {e}"));
        assert_eq!(status, 200, "snapshot {index}");
        assert!(body_len > 0, "snapshot {index} is empty");
    }
}

#[test]
fn requests_pipelined_behind_a_stream_cost_no_cpu_while_it_plays() {
    let server = Server::start(SERVER_ARGS);
    // The stream's answer never ends, so none of the requests behind it is ever answered.
    let client = NeverReadingClient::start_behind(server.addr, "/stream.mjpg", "/nope");
    let stream_bytes = Arc::new(AtomicUsize::new(0));
    let mut reader = client.stream.try_clone().expect("clone");
    let read = stream_bytes.clone();
    // Ends when the connection closes (the server is killed when the test ends).
    std::thread::spawn(move || {
        let mut chunk = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = reader.read(&mut chunk) {
            read.fetch_add(n, Ordering::Relaxed);
        }
    });
    client.wait_until_settled();

    let before = stream_bytes.load(Ordering::Relaxed);
    let cpu_share = server_cpu_share(&server, WAIT);
    assert!(
        cpu_share < MAX_CPU_SHARE,
        "the server used {:.0} % of a core with requests pipelined behind a stream",
        cpu_share * 100.0
    );
    assert!(
        stream_bytes.load(Ordering::Relaxed) > before,
        "the stream stopped while requests waited behind it"
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);
}

/// The server's CPU time over `period` as a share of one core, from `/proc/<pid>/stat`.
fn server_cpu_share(server: &Server, period: Duration) -> f64 {
    let ticks_per_s = clock_ticks_per_s();
    let before = process_cpu_ticks(server.pid());
    let started = Instant::now();
    std::thread::sleep(period);
    let after = process_cpu_ticks(server.pid());
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_s = after.saturating_sub(before) as f64 / ticks_per_s as f64;
    println!("server CPU: {cpu_s:.2} s over {elapsed_s:.2} s");
    cpu_s / elapsed_s
}

/// utime + stime of process `pid` in clock ticks (proc(5): fields 14 and 15; the command name,
/// field 2, may hold spaces, so fields are counted from its closing parenthesis).
fn process_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    let after_name = &stat[stat.rfind(')').expect("command name") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn clock_ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// Writes [`PIPELINED_REQUESTS`] requests on one connection from a thread, as fast as the
/// server takes them, and reads nothing.
struct NeverReadingClient {
    stream: TcpStream,
    sent_bytes: Arc<AtomicUsize>,
    request_len: usize,
}

impl NeverReadingClient {
    fn start(addr: SocketAddr, path: &str) -> Self {
        Self::start_behind(addr, "", path)
    }

    /// Like [`NeverReadingClient::start`], the requests written after one for `first_path`
    /// (none if empty).
    fn start_behind(addr: SocketAddr, first_path: &str, path: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let first = if first_path.is_empty() {
            String::new()
        } else {
            format!("GET {first_path} HTTP/1.1\r\nHost: x\r\n\r\n")
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let sent_bytes = Arc::new(AtomicUsize::new(0));
        let mut writer = stream.try_clone().expect("clone");
        let sent = sent_bytes.clone();
        let request_len = request.len();
        // Ends when every request is written or the connection is gone (the server is
        // killed when the test ends); the connection stays open meanwhile, as an attacker's.
        std::thread::spawn(move || {
            if writer.write_all(first.as_bytes()).is_err() {
                return;
            }
            let batch = request.repeat(100);
            for _ in 0..PIPELINED_REQUESTS / 100 {
                let mut rest = batch.as_bytes();
                while !rest.is_empty() {
                    match writer.write(rest) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            sent.fetch_add(n, Ordering::Relaxed);
                            rest = &rest[n..];
                        }
                    }
                }
            }
        });
        Self {
            stream,
            sent_bytes,
            request_len,
        }
    }

    /// Waits until the server has stopped taking requests (the writer stands still) or all
    /// of them are written.
    fn wait_until_settled(&self) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut last = usize::MAX;
        let mut still_since = Instant::now();
        while Instant::now() < deadline {
            let sent = self.sent_bytes.load(Ordering::Relaxed);
            if sent != last {
                last = sent;
                still_since = Instant::now();
            } else if still_since.elapsed() >= SETTLED_AFTER {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!(
            "client wrote {} of {PIPELINED_REQUESTS} requests before the server stopped taking them",
            last / self.request_len
        );
    }

    fn sent_requests(&self) -> usize {
        self.sent_bytes.load(Ordering::Relaxed) / self.request_len
    }
}

/// Reads HTTP/1.1 responses with a Content-Length one after the other from a stream.
struct ResponseReader {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Where the next response starts in `buffer`.
    start: usize,
}

impl ResponseReader {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            start: 0,
        }
    }

    /// The next response's status and body length.
    fn next_response(&mut self) -> Result<(u16, usize), String> {
        let head_len = loop {
            if let Some(len) = find(&self.buffer[self.start..], b"\r\n\r\n") {
                break len;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buffer[self.start..][..head_len]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("bad status line `{status_line}`"))?;
        let body_len: usize = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .ok_or_else(|| format!("no Content-Length in `{head}`"))?;
        let response_len = head_len + 4 + body_len;
        while self.buffer.len() - self.start < response_len {
            self.fill()?;
        }
        self.start += response_len;
        Ok((status, body_len))
    }

    fn fill(&mut self) -> Result<(), String> {
        self.buffer.drain(..self.start);
        self.start = 0;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("connection closed".into()),
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
