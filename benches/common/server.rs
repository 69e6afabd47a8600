//! The server under load: the release `framecast` binary started and stopped by the load
//! generator, or one already running that `FRAMECAST_URL` names. Also reads its `/status`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the binary may take to print its address: start-up is milliseconds, but a loaded
/// 2-core machine can be slow.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Bounds one `/status` request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The announcement `app::run` prints on standard output once it accepts connections (with
/// `https://` when it serves TLS).
const ANNOUNCE_PREFIX: &str = "framecast listening on http://";
const ANNOUNCE_PREFIX_TLS: &str = "framecast listening on https://";

/// A framecast the generator started; killed when dropped.
pub struct Spawned {
    pub addr: SocketAddr,
    child: Child,
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Only this child, by its handle; errors mean it has already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release binary: `FRAMECAST_BIN` if set, else the one cargo built for this bench (in
/// `target/release`, as `cargo build --release` leaves it).
pub fn binary_path() -> PathBuf {
    std::env::var_os("FRAMECAST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_framecast")))
}

/// Starts `binary` on 127.0.0.1 with a free port and `args`, and waits for its address.
pub fn spawn(binary: &PathBuf, args: &[String]) -> Result<Spawned, String> {
    spawn_with_stdin(binary, args, Stdio::null()).map(|(spawned, _)| spawned)
}

/// Like [`spawn`], with standard input a pipe the caller writes frames into
/// (`--source pipe:mjpeg`).
pub fn spawn_piped(binary: &PathBuf, args: &[String]) -> Result<(Spawned, ChildStdin), String> {
    let (spawned, stdin) = spawn_with_stdin(binary, args, Stdio::piped())?;
    let stdin = stdin.ok_or("no standard input for framecast")?;
    Ok((spawned, stdin))
}

/// Like [`spawn`], with standard input from `stdin`: another process's output, for
/// `--source pipe:yuv420p` fed by a decoder. (The MJPEG load generator, which takes this
/// module whole, has no use for it.)
#[allow(dead_code)]
pub fn spawn_reading(binary: &PathBuf, args: &[String], stdin: Stdio) -> Result<Spawned, String> {
    spawn_with_stdin(binary, args, stdin).map(|(spawned, _)| spawned)
}

fn spawn_with_stdin(
    binary: &PathBuf,
    args: &[String],
    stdin: Stdio,
) -> Result<(Spawned, Option<ChildStdin>), String> {
    if !binary.is_file() {
        return Err(format!(
            "{} is missing: run cargo build --release first",
            binary.display()
        ));
    }
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        // Warnings and errors only: per-start info lines would interleave with the report.
        .env("RUST_LOG", "warn")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let stdin = child.stdin.take();
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err("no standard output from framecast".into());
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps reading after the announcement so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let announced = line
                .strip_prefix(ANNOUNCE_PREFIX)
                .or_else(|| line.strip_prefix(ANNOUNCE_PREFIX_TLS));
            if let Some(rest) = announced {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let spawned_addr = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("framecast did not print its address in {START_TIMEOUT:?}"))
        .and_then(|text| {
            text.parse()
                .map_err(|_| format!("framecast printed an address I cannot read: `{text}`"))
        });
    match spawned_addr {
        Ok(addr) => Ok((Spawned { addr, child }, stdin)),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// The socket address in a URL such as `http://127.0.0.1:8080/` (scheme and path optional).
pub fn addr_from_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("");
    let with_port = if rest.contains(':') {
        rest.to_owned()
    } else {
        format!("{rest}:80")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{url}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{url}` resolves to no address"))
}

/// `GET /status` as JSON.
pub async fn status(addr: SocketAddr) -> Result<serde_json::Value, String> {
    let (_, body) = get(addr, "/status", STATUS_TIMEOUT).await?;
    serde_json::from_slice(&body).map_err(|e| format!("JSON: {e}"))
}

/// `GET path` over HTTP/1.0, read to the end of the body within `limit`: the status line and
/// the body; an error for any status but 200.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(String, Vec<u8>), String> {
    let fetch = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nUser-Agent: framecast-bench\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let at = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        let status_line = String::from_utf8_lossy(&response[..at])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !status_line.starts_with("HTTP/1.1 200") && !status_line.starts_with("HTTP/1.0 200") {
            return Err(format!("{path}: {status_line}"));
        }
        Ok((status_line, response[at + 4..].to_vec()))
    };
    tokio::time::timeout(limit, fetch)
        .await
        .map_err(|_| format!("{path} took over {limit:?}"))?
}
