//! CPU with a never-read pipelined connection: clients that each write 20,000 pipelined
//! requests on one connection and read none of the answers, against a release framecast
//! (`FRAMECAST_BIN` to measure another build).
//!
//! Reports the server's CPU in cores over the same period, in one run: idle, then with 1 and
//! with 2 such connections for `GET /nope` and for `GET /snapshot.jpg`, each measured once
//! the server has stopped taking their requests, with the difference to idle. A connection
//! that is not read should cost nothing (difference ≈ 0); a dispatcher that spins shows a
//! whole core per connection. HLS is off, so that the idle figure is small and the
//! difference readable. Figures only, no asserts.

// The parts of the MJPEG generator's support this bench shares; it does not use all of them.
#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests each connection writes, as many as the reproduction sent.
const PIPELINED_REQUESTS: usize = 20_000;
/// Each figure is the server's CPU over this long.
const MEASURE: Duration = Duration::from_secs(5);
/// The server has stopped taking a connection's requests once its writer has stood still
/// this long...
const SETTLED_AFTER: Duration = Duration::from_millis(500);
/// ...or after this long in any case.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// A snapshot request keeps the JPEG encoder running for 3 s (`hub::SNAPSHOT_DEMAND_HOLD`):
/// that is the cost of taking snapshots, not of the connection, so it is waited out.
const SNAPSHOT_ENCODER_HOLD: Duration = Duration::from_millis(3_500);
/// Bounds connecting and the one `/healthz` asked during each scenario.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let binary = server::binary_path();
    let args: Vec<String> = ["--no-hls", "--size", "1280x720", "--fps", "30"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let spawned = match server::spawn(&binary, &args) {
        Ok(spawned) => spawned,
        Err(error) => {
            eprintln!("pipelined: {error}");
            std::process::exit(1);
        }
    };
    let pid = spawned.pid().to_string();
    let ticks_per_s = proc_stats::clock_ticks_per_s();
    let measure = || -> f64 {
        let before = proc_stats::process_cpu_ticks(&pid).unwrap_or(0);
        let started = Instant::now();
        std::thread::sleep(MEASURE);
        let after = proc_stats::process_cpu_ticks(&pid).unwrap_or(0);
        proc_stats::cores(before, after, ticks_per_s, started.elapsed())
    };

    println!(
        "CPU with a never-read pipelined connection ({PIPELINED_REQUESTS} requests each, server \
         CPU in cores over {} s, {}):",
        MEASURE.as_secs(),
        binary.display()
    );
    // A first snapshot has the encoder start and stop once before anything is measured.
    let _ = status_code(spawned.addr, "/snapshot.jpg");
    std::thread::sleep(SNAPSHOT_ENCODER_HOLD);
    let idle = measure();
    println!("  {:<34} {idle:>6.3}", "idle");

    for path in ["/nope", "/snapshot.jpg"] {
        for connections in [1, 2] {
            let clients: Vec<NeverReadingClient> = (0..connections)
                .map(|_| NeverReadingClient::start(spawned.addr, path))
                .collect();
            let mut sent_requests = Vec::new();
            for client in &clients {
                sent_requests.push(client.wait_until_settled());
            }
            if path == "/snapshot.jpg" {
                std::thread::sleep(SNAPSHOT_ENCODER_HOLD);
            }
            let busy = measure();
            let health = status_code(spawned.addr, "/healthz").map_or_else(
                |e| format!("/healthz failed: {e}"),
                |s| format!("/healthz {s}"),
            );
            let label = format!("{connections} × GET {path}");
            println!(
                "  {label:<34} {busy:>6.3}  ({:+.3} over idle; requests written: \
                 {sent_requests:?}; {health})",
                busy - idle
            );
            for client in clients {
                client.close();
            }
        }
    }
}

/// Status code of one `GET path` on a fresh connection, bounded in time.
fn status_code(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "no status line".to_owned())
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
        let stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let request_len = request.len();
        let sent_bytes = Arc::new(AtomicUsize::new(0));
        let sent = sent_bytes.clone();
        let mut writer = stream.try_clone().expect("clone the connection");
        // Ends when every request is written or the connection is shut down by `close`.
        std::thread::spawn(move || {
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

    /// Waits until the writer stands still (the server takes no more, or all are written);
    /// returns how many requests it wrote.
    fn wait_until_settled(&self) -> usize {
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
        self.sent_bytes.load(Ordering::Relaxed) / self.request_len
    }

    /// Closes the connection, unread answers and all; the writer thread ends with it.
    fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
