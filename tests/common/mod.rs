//! Shared by the black-box tests: starts the real `framecast` binary on 127.0.0.1:0 and talks
//! to it over real sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the server to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server, killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts the server with the test pattern at a small size unless `args` say otherwise.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_framecast"));
        command.args(["--listen", "127.0.0.1:0"]);
        if !args.iter().any(|a| *a == "--size") {
            command.args(["--size", "640x360"]);
        }
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start framecast");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(rest) = line.strip_prefix("framecast listening on http://") {
                    let _ = tx.send(rest.trim_end_matches('/').to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(START_TIMEOUT)
            .expect("framecast did not announce its address")
            .parse()
            .expect("address");
        Self { addr, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
/// Content-Length), over HTTP/1.0 so the body is not chunked.
pub struct MjpegReader {
    reader: BufReader<TcpStream>,
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl MjpegReader {
    pub fn open(addr: SocketAddr, path: &str, user_agent: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = BufReader::new(stream);
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: {user_agent}\r\n\r\n");
        reader.get_mut().write_all(request.as_bytes()).expect("send");
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = read_headers(&mut reader);
        Self {
            reader,
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
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no boundary within 10 s");
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read boundary");
            assert!(n > 0, "stream ended");
            if line.trim_end() == "--framecast-boundary" {
                break;
            }
        }
        let headers = read_headers(&mut self.reader);
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .expect("Content-Length in part");
        let mut jpeg = vec![0; len];
        self.reader.read_exact(&mut jpeg).expect("read jpeg");
        Part {
            headers,
            jpeg,
            received_at: std::time::SystemTime::now(),
        }
    }

    /// The raw stream for tests that look at exact bytes.
    pub fn read_raw(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.reader.read_exact(&mut out).expect("read raw");
        out
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
    (status.is_some_and(|s| s.success()), out, err)
}
