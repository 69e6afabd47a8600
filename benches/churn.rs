//! Memory and file descriptors through a load spike: what the server holds before, during and
//! after (a) waves of aborted waits, blocking playlist reloads whose clients hang up before
//! the answer, (b) a crowd of MJPEG viewers that watch for a few seconds and leave, and (c)
//! non-reading viewers, MJPEG and `/live.mp4` clients that connect and then never read, until
//! the server drops them as stalled.
//!
//! Against the release binary (or `FRAMECAST_BIN`, e.g. a build with another allocator),
//! started here at 720p30 with `--viewer-stall-seconds 2`. For each phase it prints RSS
//! (VmRSS), its anonymous part (RssAnon: the heap, what churn can leave behind) and the open
//! descriptors, read from `/proc/PID/status` and `/proc/PID/fd` (proc(5)). "after" is read once
//! the descriptors are back (bounded wait) and the allocator has had [`SETTLE`] to return
//! freed pages.
//!
//! One reading viewer comes first, on purpose: the first MJPEG viewer starts the JPEG encoders,
//! whose buffers (worst-case output buffers at 720p, libjpeg-turbo's own state) stay for the
//! next viewer. That step shows this fixed cost apart from the cost of a thousand connections,
//! and "after the spike" is compared with it.
//!
//! What stays after a spike, and why: README, "Memory after a spike".
//!
//! Env: `CHURN_CONNECTIONS` (1000 per wave), `CHURN_WAVES` (3 waves of aborted waits).
//! Figures only, no asserts; about a minute. Linux only (`/proc`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use framecast::hls::names::HlsName;
use framecast::media::playlist::{parse_media_playlist, parse_multivariant_playlist};

/// The picture and rate of the design's load targets.
const SERVER_ARGS: &[&str] = &[
    "--size",
    "1280x720",
    "--fps",
    "30",
    "--viewer-stall-seconds",
    "2",
];
/// Warnings only; actix's line per dropped viewer would be a thousand lines here.
const SERVER_LOG: &str = "warn,actix_http::h1::dispatcher=off";
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Before "idle" is read: the HLS window (12 one-second segments) fills, so that its growth is
/// not taken for churn.
const WARM_UP: Duration = Duration::from_secs(15);
/// Time the allocator gets to return freed pages before "after" is read (jemalloc is told to
/// decay in about a second, src/main.rs).
const SETTLE: Duration = Duration::from_secs(3);
/// Bounds every wait for the server to notice something (descriptors closed, viewers dropped).
const NOTICE_TIMEOUT: Duration = Duration::from_secs(30);
/// A receive buffer so small that a viewer that does not read stalls the server at once.
const STALLED_RCVBUF_BYTES: usize = 4096;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each viewer of the watching crowd reads its stream.
const WATCH: Duration = Duration::from_secs(4);
/// Each watching viewer's reads; they cannot keep up with 720p30 a thousand times over on one
/// thread, so the server skips frames for them, as for any slow viewer.
const WATCH_READ_BYTES: usize = 64 * 1024;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let connections = env_number("CHURN_CONNECTIONS", 1000);
    let waves = env_number("CHURN_WAVES", 3);
    // The generator holds as many sockets as the server: the default soft limit (often 1024)
    // is too few.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < connections as u64 + 64 => {
            eprintln!("churn: only {limit} file descriptors for {connections} connections");
        }
        Ok(_) => {}
        Err(error) => eprintln!("churn: cannot raise the file descriptor limit: {error}"),
    }
    let binary = std::env::var_os("FRAMECAST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_framecast")));
    let server = match Server::start(&binary) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("churn: {error}");
            return;
        }
    };
    println!(
        "churn: {} at 720p30, {connections} connections a wave",
        binary.display()
    );
    std::thread::sleep(WARM_UP);
    let mut table = Table::default();
    let idle = server.sample();
    table.row("idle (HLS window full)", idle);

    // One viewer that reads: the JPEG encoders start and keep their buffers.
    match send_request(server.addr, "/stream.mjpg", None) {
        Ok(mut viewer) => {
            let _ = viewer.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buffer = vec![0; 64 * 1024];
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && viewer.read(&mut buffer).is_ok_and(|n| n > 0) {}
        }
        Err(error) => eprintln!("churn: one viewer: {error}"),
    }
    // The first viewer may leave one file open: the frame file MJPEG is sent from.
    server.wait_for_fds(idle.fds + 1);
    std::thread::sleep(SETTLE);
    let warm = server.sample();
    table.row("after one reading viewer (JPEG encoders warm)", warm);

    // (a) Aborted waits.
    let prefix = match media_prefix(server.addr) {
        Ok(prefix) => prefix,
        Err(error) => {
            eprintln!("churn: {error}");
            return;
        }
    };
    for wave in 1..=waves {
        let target = match next_msn(server.addr, &prefix) {
            Ok(msn) => msn,
            Err(error) => {
                eprintln!("churn: {error}");
                return;
            }
        };
        let path = format!("{prefix}media.m3u8?_HLS_msn={target}");
        let waiting: Vec<TcpStream> = (0..connections)
            .filter_map(|_| send_request(server.addr, &path, None).ok())
            .collect();
        let during = server.sample();
        let answered = waiting.iter().filter(|s| has_data(s)).count();
        drop(waiting);
        table.row(
            &format!("aborted waits, wave {wave}: {connections} held ({answered} answered first)"),
            during,
        );
        server.wait_for_fds(warm.fds);
        std::thread::sleep(SETTLE);
        table.row(&format!("  after wave {wave}"), server.sample());
    }

    // (b) Viewers that watch for a while and leave, as a crowd after an event does.
    let (watching, during) = watch_and_leave(&server, connections);
    table.row(
        &format!(
            "viewers that watch {} s and leave: {watching} watching",
            WATCH.as_secs()
        ),
        during,
    );
    server.wait_for_fds(warm.fds);
    std::thread::sleep(SETTLE);
    table.row("  after they left", server.sample());

    // (c) Non-reading viewers, half MJPEG, half /live.mp4.
    let dropped_before = server.dropped_stalled();
    let stalled: Vec<TcpStream> = (0..connections)
        .filter_map(|n| {
            let path = if n % 2 == 0 {
                "/stream.mjpg"
            } else {
                "/live.mp4"
            };
            send_request(server.addr, path, Some(STALLED_RCVBUF_BYTES)).ok()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    table.row(
        &format!("non-reading viewers: {} connected", stalled.len()),
        server.sample(),
    );
    let deadline = Instant::now() + NOTICE_TIMEOUT;
    let mut dropped = 0;
    while Instant::now() < deadline {
        dropped = server.dropped_stalled().saturating_sub(dropped_before);
        if dropped >= stalled.len() as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    server.wait_for_fds(warm.fds);
    table.row(
        &format!("  dropped as stalled: {dropped}, clients still open"),
        server.sample(),
    );
    drop(stalled);
    std::thread::sleep(SETTLE);
    table.row("  after the clients closed", server.sample());
    table.print(idle, warm);
}

/// One reading of the server's memory and descriptors.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    anon_kib: u64,
    fds: usize,
}

#[derive(Default)]
struct Table {
    rows: Vec<(String, Sample)>,
}

impl Table {
    fn row(&mut self, phase: &str, sample: Sample) {
        println!(
            "  {phase}: RSS {:.1} MB, anon {:.1} MB, {} fds",
            mb(sample.rss_kib),
            mb(sample.anon_kib),
            sample.fds
        );
        self.rows.push((phase.to_owned(), sample));
    }

    fn print(&self, idle: Sample, warm: Sample) {
        println!();
        println!(
            "{:<66} {:>8} {:>8} {:>6}",
            "phase", "RSS MB", "anon MB", "fds"
        );
        for (phase, sample) in &self.rows {
            println!(
                "{phase:<66} {:>8.1} {:>8.1} {:>6}",
                mb(sample.rss_kib),
                mb(sample.anon_kib),
                sample.fds
            );
        }
        if let Some((_, last)) = self.rows.last() {
            println!(
                "after the spike: RSS {:.2}x idle with the JPEG encoders warm ({:+.1} MB), \
                 {:.2}x idle; fds {:+} from idle",
                last.rss_kib as f64 / warm.rss_kib.max(1) as f64,
                mb(last.rss_kib) - mb(warm.rss_kib),
                last.rss_kib as f64 / idle.rss_kib.max(1) as f64,
                last.fds as i64 - idle.fds as i64
            );
        }
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The server this bench started; killed when dropped.
struct Server {
    addr: SocketAddr,
    child: Child,
}

impl Server {
    fn start(binary: &PathBuf) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(SERVER_ARGS)
            .env("RUST_LOG", SERVER_LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no standard output")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("framecast listening on http://") {
                    let _ = tx.send(rest.trim_end_matches('/').to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(START_TIMEOUT)
            .ok()
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(Self { addr, child }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err("framecast did not print its address".into())
            }
        }
    }

    fn sample(&self) -> Sample {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Sample {
            rss_kib: field("VmRSS:"),
            anon_kib: field("RssAnon:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count()),
        }
    }

    /// Waits (bounded) until the server has at most `fds` descriptors open.
    fn wait_for_fds(&self, fds: usize) {
        let deadline = Instant::now() + NOTICE_TIMEOUT;
        while self.sample().fds > fds && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn dropped_stalled(&self) -> u64 {
        get(self.addr, "/status")
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .and_then(|status| status["viewers_dropped_stalled"].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `viewers` MJPEG viewers that read for [`WATCH`] and then hang up, all tasks on one thread;
/// returns how many were reading halfway through, and the server's figures then.
fn watch_and_leave(server: &Server, viewers: usize) -> (usize, Sample) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return (0, server.sample());
    };
    let addr = server.addr;
    runtime.block_on(async {
        let until = tokio::time::Instant::now() + WATCH;
        let watching = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..viewers {
            let watching = watching.clone();
            tasks.spawn(async move {
                let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                    return;
                };
                let request = format!(
                    "GET /stream.mjpg HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: framecast-churn\r\n\r\n"
                );
                if stream.write_all(request.as_bytes()).await.is_err() {
                    return;
                }
                let mut buffer = vec![0; WATCH_READ_BYTES];
                let mut counted = false;
                while let Ok(Ok(n)) = tokio::time::timeout_at(until, stream.read(&mut buffer)).await
                {
                    if n == 0 {
                        break;
                    }
                    if !counted {
                        counted = true;
                        watching.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        tokio::time::sleep(WATCH / 2).await;
        let during = server.sample();
        let watching = watching.load(std::sync::atomic::Ordering::Relaxed);
        while tasks.join_next().await.is_some() {}
        (watching, during)
    })
}

/// Connects and sends `GET path`, reading nothing; `rcvbuf` shrinks the receive buffer first.
fn send_request(addr: SocketAddr, path: &str, rcvbuf: Option<usize>) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(bytes) = rcvbuf {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.connect(&addr.into())?;
    let mut stream: TcpStream = socket.into();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: framecast-churn\r\nAccept-Encoding: gzip\r\n\r\n"
    )?;
    Ok(stream)
}

/// Whether the server has answered on `stream` (without reading it).
fn has_data(stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    matches!(stream.peek(&mut [0]), Ok(n) if n > 0)
}

/// `GET path` with `Connection: close`: the body.
fn get(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let body_at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    Ok(response.split_off(body_at + 4))
}

/// The media playlist's directory, e.g. `/hls/mx27nm37/`, from the multivariant playlist.
fn media_prefix(addr: SocketAddr) -> Result<String, String> {
    let text = String::from_utf8_lossy(&get(addr, "/live.m3u8")?).into_owned();
    let playlist = parse_multivariant_playlist(&text).map_err(|e| e.to_string())?;
    let variant = playlist.variants.first().ok_or("no variant")?;
    Ok(format!("/{}", variant.uri.trim_end_matches("media.m3u8")))
}

/// The segment after the one being written: a reload for it waits one to two segments.
fn next_msn(addr: SocketAddr, prefix: &str) -> Result<u64, String> {
    let text = String::from_utf8_lossy(&get(addr, &format!("{prefix}media.m3u8"))?).into_owned();
    let parsed = parse_media_playlist(&text).map_err(|e| e.to_string())?;
    let hint = parsed.playlist.preload_hint.ok_or("no preload hint")?;
    match HlsName::parse(&hint.uri) {
        Some(HlsName::Part { msn, .. }) => Ok(msn + 1),
        _ => Err(format!("preload hint {:?} is not a part", hint.uri)),
    }
}
