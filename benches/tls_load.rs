//! TLS load, two scenarios against the release framecast, with a certificate made at start
//! (rcgen):
//!
//! 1. MJPEG: `TLS_MJPEG_VIEWERS` (50) viewers of `pipe:mjpeg` (the same ffmpeg JPEGs fed at
//!    30 fps), over plain HTTP/1.1 (the zero-copy path), HTTPS with HTTP/1.1 and HTTPS with
//!    HTTP/2 (actix's body path, encrypted), one server after the other in one run: the
//!    server's CPU per delivered frame from `/proc`, and its ratio to plain.
//! 2. LL-HLS over HTTP/2: `TLS_HLS_VIEWERS` (200) viewers, each its own TLS connection as a
//!    browser has, doing what a low-latency player does (the hinted part, held until it
//!    exists, then the blocking playlist reload for the next): parts per viewer, how late
//!    each part reaches a viewer after the first got it, and the server's CPU beyond its
//!    encoding.
//!
//! The clients are tasks on one tokio thread: plain sockets, tokio-rustls, and the `h2` crate
//! for HTTP/2 (already in the tree through actix-http; curl processes would cost more CPU
//! than the server under test). `TLS_LOAD_SECONDS` (8) is each measured window;
//! `TLS_LOAD_ONLY=mjpeg` or `hls` runs one scenario. Figures only, no asserts.

#[allow(dead_code)]
mod common;
#[path = "common/llhls_viewer.rs"]
mod llhls_viewer;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::feeder::{Feeder, ffmpeg_jpegs};
use common::{proc_stats, server};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const FEED_FPS: u32 = 30;
/// Time the viewers get to connect and settle before a window is measured.
const SETTLE: Duration = Duration::from_secs(2);
/// Bounds one request of an LL-HLS viewer: a held one is answered within a part or two.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MJPEG_BOUNDARY: &[u8] = b"--framecast-boundary";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How a client speaks to the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Plain,
    TlsHttp11,
    TlsHttp2,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Self::Plain => "plain HTTP/1.1",
            Self::TlsHttp11 => "HTTPS HTTP/1.1",
            Self::TlsHttp2 => "HTTPS HTTP/2",
        }
    }
}

/// The certificate the servers get, in a temporary directory, and a client trusting it.
struct Tls {
    dir: PathBuf,
    connector_h1: TlsConnector,
    connector_h2: TlsConnector,
}

impl Tls {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("framecast-tls-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("rcgen");
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem())
            .expect("write key");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(certified.cert.der().to_vec()))
            .expect("root");
        let connector = |alpn: &[u8]| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            TlsConnector::from(Arc::new(config))
        };
        Self {
            connector_h1: connector(b"http/1.1"),
            connector_h2: connector(b"h2"),
            dir,
        }
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            self.dir.join("cert.pem").display().to_string(),
            "--tls-key".to_owned(),
            self.dir.join("key.pem").display().to_string(),
        ]
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// An HTTP/1.1 connection, plain or over TLS.
async fn connect_h1(
    tls: &Tls,
    transport: Transport,
    addr: SocketAddr,
) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if transport == Transport::Plain {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let stream = tls
        .connector_h1
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(Box::new(stream))
}

/// An HTTP/2 connection over TLS; its driver runs as a task of its own.
async fn connect_h2(tls: &Tls, addr: SocketAddr) -> Result<h2::client::SendRequest<Bytes>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let stream = tls
        .connector_h2
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    // A browser's flow-control windows (Chromium: 6 MiB a stream, 15 MiB the connection),
    // not the protocol's 64 KiB default, which would make the server wait for a
    // WINDOW_UPDATE every few frames.
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(6 << 20)
        .initial_connection_window_size(15 << 20)
        .handshake(stream)
        .await
        .map_err(|e| format!("HTTP/2: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(send)
}

/// Sends `GET path` on an HTTP/2 connection; returns the status and the body, each chunk
/// handed to `on_chunk` as it comes (the body's flow-control window is given back at once).
async fn h2_get(
    send: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    mut on_chunk: impl FnMut(&[u8]),
) -> Result<u16, String> {
    // As hls.js in a browser: playlists come gzip'd.
    let request = http::Request::get(format!("https://{addr}{path}"))
        .header("accept-encoding", "gzip")
        .body(())
        .map_err(|e| e.to_string())?;
    let ready = send.clone().ready().await.map_err(|e| e.to_string())?;
    *send = ready;
    let (response, _) = send
        .send_request(request, true)
        .map_err(|e| e.to_string())?;
    let response = response.await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        on_chunk(&chunk);
    }
    Ok(status)
}

/// Counts multipart boundaries across chunk edges.
struct BoundaryCounter {
    tail: Vec<u8>,
    count: Rc<RefCell<u64>>,
}

impl BoundaryCounter {
    fn feed(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        let found = self
            .tail
            .windows(MJPEG_BOUNDARY.len())
            .filter(|w| *w == MJPEG_BOUNDARY)
            .count();
        *self.count.borrow_mut() += found as u64;
        let keep = MJPEG_BOUNDARY.len() - 1;
        let cut = self.tail.len().saturating_sub(keep);
        self.tail.drain(..cut);
    }
}

/// One MJPEG viewer: reads the stream until the task is dropped, counting parts.
async fn mjpeg_viewer(
    tls: Rc<Tls>,
    transport: Transport,
    addr: SocketAddr,
    parts: Rc<RefCell<u64>>,
) -> Result<(), String> {
    let mut counter = BoundaryCounter {
        tail: Vec::new(),
        count: parts,
    };
    if transport == Transport::TlsHttp2 {
        let mut send = connect_h2(&tls, addr).await?;
        h2_get(&mut send, addr, "/stream.mjpg", |chunk| counter.feed(chunk)).await?;
        return Ok(());
    }
    let mut conn = connect_h1(&tls, transport, addr).await?;
    conn.write_all(
        b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\nUser-Agent: framecast-bench\r\n\r\n",
    )
    .await
    .map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = conn
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the stream ended".into());
        }
        counter.feed(&buf[..n]);
    }
}

/// One MJPEG scenario's figures.
struct MjpegFigures {
    transport: Transport,
    server_cores: f64,
    frames_per_s: f64,
    cpu_us_per_frame: f64,
    client_cores: f64,
}

async fn mjpeg_scenario(
    tls: Rc<Tls>,
    transport: Transport,
    viewers: usize,
    window: Duration,
    jpegs: Arc<Vec<Vec<u8>>>,
) -> Result<MjpegFigures, String> {
    let mut args: Vec<String> = [
        "--source",
        "pipe:mjpeg",
        "--size",
        "640x360",
        "--fps",
        "30",
        "--no-hls",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if transport != Transport::Plain {
        args.extend(tls.server_args());
    }
    let (spawned, stdin) = server::spawn_piped(&server::binary_path(), &args)?;
    let _feeder = Feeder::start(stdin, jpegs, FEED_FPS);
    let (addr, pid) = (spawned.addr, spawned.pid().to_string());
    let parts = Rc::new(RefCell::new(0u64));
    let errors = Rc::new(RefCell::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let (tls, parts, errors) = (tls.clone(), parts.clone(), errors.clone());
        tasks.push(tokio::task::spawn_local(async move {
            if let Err(error) = mjpeg_viewer(tls, transport, addr, parts).await {
                errors.borrow_mut().push(error);
            }
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let ticks = proc_stats::clock_ticks_per_s();
    let (cpu_before, own_before, parts_before, started) = (
        proc_stats::process_cpu_ticks(&pid),
        proc_stats::process_cpu_ticks("self"),
        *parts.borrow(),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let wall = started.elapsed();
    let (cpu_after, own_after, parts_after) = (
        proc_stats::process_cpu_ticks(&pid),
        proc_stats::process_cpu_ticks("self"),
        *parts.borrow(),
    );
    for task in tasks {
        task.abort();
    }
    // The server goes before its feeder, which would make it log the end of its input.
    drop(spawned);
    if let Some(error) = errors.borrow().first() {
        return Err(format!(
            "{}: {} of {viewers} viewers failed, e.g. {error}",
            transport.label(),
            errors.borrow().len()
        ));
    }
    let cores = |before: Option<u64>, after: Option<u64>| {
        before
            .zip(after)
            .map_or(f64::NAN, |(b, a)| proc_stats::cores(b, a, ticks, wall))
    };
    let server_cores = cores(cpu_before, cpu_after);
    let frames = parts_after.saturating_sub(parts_before) as f64;
    Ok(MjpegFigures {
        transport,
        server_cores,
        frames_per_s: frames / wall.as_secs_f64(),
        cpu_us_per_frame: server_cores * wall.as_secs_f64() * 1e6 / frames.max(1.0),
        client_cores: cores(own_before, own_after),
    })
}

/// A playlist body as text, gzip'd or not.
fn body_text(body: &[u8]) -> String {
    let mut text = String::new();
    if body.starts_with(&[0x1f, 0x8b]) {
        let _ = std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(body), &mut text);
        return text;
    }
    String::from_utf8_lossy(body).into_owned()
}

/// `part{msn}.{index}.m4s` of the playlist's EXT-X-PRELOAD-HINT.
fn preload_hint(playlist: &[u8]) -> Option<(u64, u64)> {
    let text = body_text(playlist);
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let uri = line.split("URI=\"").nth(1)?.split('"').next()?;
    let name = uri.rsplit('/').next()?;
    let (msn, index) = name
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

/// The media playlist's directory, once the multivariant playlist names it (bounded).
async fn media_prefix(tls: &Tls, addr: SocketAddr) -> Result<String, String> {
    for _ in 0..60 {
        let mut send = connect_h2(tls, addr).await?;
        let mut body = Vec::new();
        if h2_get(&mut send, addr, "/live.m3u8", |c| body.extend_from_slice(c)).await? == 200 {
            let text = body_text(&body);
            if let Some(uri) = text.lines().find(|l| !l.is_empty() && !l.starts_with('#')) {
                let dir = uri.trim_end_matches("media.m3u8").trim_start_matches('/');
                return Ok(format!("/{dir}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("no HLS media after 30 s".into())
}

/// `GET path` into `body`, bounded by [`REQUEST_TIMEOUT`].
async fn timed_get(
    send: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    body: &mut Vec<u8>,
) -> Result<u16, String> {
    body.clear();
    let fetch = h2_get(send, addr, path, |c| body.extend_from_slice(c));
    tokio::time::timeout(REQUEST_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{path}: no answer in {REQUEST_TIMEOUT:?}"))?
}

/// One LL-HLS player over HTTP/2 until `deadline`: the parts it got and when.
async fn hls_viewer(
    tls: Rc<Tls>,
    addr: SocketAddr,
    prefix: Rc<String>,
    deadline: tokio::time::Instant,
) -> Result<Vec<((u64, u64), Instant)>, String> {
    let mut send = connect_h2(&tls, addr).await?;
    let mut body = Vec::new();
    timed_get(&mut send, addr, &format!("{prefix}media.m3u8"), &mut body).await?;
    let mut hint = preload_hint(&body).ok_or("no preload hint")?;
    let mut parts = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let path = format!("{prefix}part{}.{}.m4s", hint.0, hint.1);
        if timed_get(&mut send, addr, &path, &mut body).await? == 200 {
            parts.push((hint, Instant::now()));
        }
        let path = format!(
            "{prefix}media.m3u8?_HLS_msn={}&_HLS_part={}&_HLS_skip=YES",
            hint.0, hint.1
        );
        timed_get(&mut send, addr, &path, &mut body).await?;
        hint = preload_hint(&body).ok_or("no preload hint in a reload")?;
    }
    Ok(parts)
}

/// One LL-HLS scenario's figures.
struct HlsFigures {
    transport: Transport,
    failed: usize,
    first_error: Option<String>,
    parts_min: usize,
    parts_max: usize,
    distinct_parts: usize,
    lag_ms: [f64; 3],
    baseline_cores: f64,
    loaded_cores: f64,
    client_cores: f64,
}

/// LL-HLS viewers over `transport` (plain HTTP/1.1 with the HLS load generator's viewer, or
/// HTTP/2 over TLS), each on a connection of its own.
async fn hls_scenario(
    tls: Rc<Tls>,
    transport: Transport,
    viewers: usize,
    window: Duration,
) -> Result<HlsFigures, String> {
    let mut args: Vec<String> = ["--size", "640x360", "--fps", "30"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if transport != Transport::Plain {
        args.extend(tls.server_args());
    }
    let spawned = server::spawn(&server::binary_path(), &args)?;
    let (addr, pid) = (spawned.addr, spawned.pid().to_string());
    let prefix = Rc::new(if transport == Transport::Plain {
        llhls_viewer::wait_for_media(addr, "/live.m3u8").await?
    } else {
        media_prefix(&tls, addr).await?
    });
    let ticks = proc_stats::clock_ticks_per_s();
    let cores_over = |window: Duration| {
        let pid = pid.clone();
        async move {
            let (before, t) = (proc_stats::process_cpu_ticks(&pid), Instant::now());
            tokio::time::sleep(window).await;
            before
                .zip(proc_stats::process_cpu_ticks(&pid))
                .map_or(f64::NAN, |(b, a)| {
                    proc_stats::cores(b, a, ticks, t.elapsed())
                })
        }
    };
    let baseline_cores = cores_over(Duration::from_secs(3)).await;

    let deadline = tokio::time::Instant::now() + SETTLE + window;
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let (tls, prefix) = (tls.clone(), prefix.clone());
        tasks.push(tokio::task::spawn_local(async move {
            if transport == Transport::Plain {
                let fetches = llhls_viewer::viewer(addr, (*prefix).clone(), deadline).await?;
                Ok(fetches.into_iter().map(|f| (f.part, f.at)).collect())
            } else {
                hls_viewer(tls, addr, prefix, deadline).await
            }
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let own_before = proc_stats::process_cpu_ticks("self");
    let t = Instant::now();
    let loaded_cores = cores_over(window).await;
    let client_cores = own_before
        .zip(proc_stats::process_cpu_ticks("self"))
        .map_or(f64::NAN, |(b, a)| {
            proc_stats::cores(b, a, ticks, t.elapsed())
        });

    let mut errors: Vec<String> = Vec::new();
    let mut all: Vec<Vec<((u64, u64), Instant)>> = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(parts)) => all.push(parts),
            Ok(Err(error)) => errors.push(error),
            Err(error) => errors.push(error.to_string()),
        }
    }
    drop(spawned);
    // How late each part reached each viewer after the first viewer had it.
    let mut first: std::collections::HashMap<(u64, u64), Instant> = Default::default();
    for (part, at) in all.iter().flatten() {
        first
            .entry(*part)
            .and_modify(|seen| *seen = (*seen).min(*at))
            .or_insert(*at);
    }
    let mut lags_ms: Vec<f64> = all
        .iter()
        .flatten()
        .map(|(part, at)| at.duration_since(first[part]).as_secs_f64() * 1e3)
        .collect();
    lags_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        lags_ms
            .get(((lags_ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let per_viewer: Vec<usize> = all.iter().map(Vec::len).collect();
    Ok(HlsFigures {
        transport,
        failed: errors.len(),
        first_error: errors.into_iter().next(),
        parts_min: per_viewer.iter().copied().min().unwrap_or(0),
        parts_max: per_viewer.iter().copied().max().unwrap_or(0),
        distinct_parts: first.len(),
        lag_ms: [pick(0.5), pick(0.95), pick(1.0)],
        baseline_cores,
        loaded_cores,
        client_cores,
    })
}

fn main() {
    let mjpeg_viewers = env_number("TLS_MJPEG_VIEWERS", 50) as usize;
    let hls_viewers = env_number("TLS_HLS_VIEWERS", 200) as usize;
    let window = Duration::from_secs(env_number("TLS_LOAD_SECONDS", 8));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let tls = Rc::new(Tls::new());
        let jpegs = Arc::new(ffmpeg_jpegs(640, 360, FEED_FPS, 5).expect("JPEGs from ffmpeg"));
        println!(
            "MJPEG, {mjpeg_viewers} viewers of pipe:mjpeg 640x360 at {FEED_FPS} fps ({} KB a \
             frame), {:.0} s each:",
            jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len().max(1) / 1000,
            window.as_secs_f64()
        );
        let scenario = std::env::var("TLS_LOAD_ONLY").unwrap_or_default();
        let mut plain_us = None;
        for transport in [Transport::Plain, Transport::TlsHttp11, Transport::TlsHttp2] {
            if scenario == "hls" {
                break;
            }
            match mjpeg_scenario(tls.clone(), transport, mjpeg_viewers, window, jpegs.clone())
                .await
            {
                Ok(figures) => {
                    let base = *plain_us.get_or_insert(figures.cpu_us_per_frame);
                    println!(
                        "  {:<15} server {:.3} cores, {:.0} frames/s delivered, {:.1} µs CPU \
                         per delivered frame ({:.2}x plain); load generator {:.3} cores",
                        figures.transport.label(),
                        figures.server_cores,
                        figures.frames_per_s,
                        figures.cpu_us_per_frame,
                        figures.cpu_us_per_frame / base,
                        figures.client_cores
                    );
                }
                Err(error) => println!("  {}: {error}", transport.label()),
            }
        }
        if scenario == "mjpeg" {
            return;
        }
        println!(
            "LL-HLS, {hls_viewers} viewers (640x360, 30 fps, blocking reloads, every part), {:.0} s \
             each:",
            (SETTLE + window).as_secs_f64()
        );
        let mut plain_extra = None;
        for transport in [Transport::Plain, Transport::TlsHttp2] {
            match hls_scenario(tls.clone(), transport, hls_viewers, window).await {
                Ok(f) => {
                    let extra = f.loaded_cores - f.baseline_cores;
                    let base = *plain_extra.get_or_insert(extra);
                    println!(
                        "  {:<15} {} failed{}; parts per viewer {}-{} of {}; part after the first \
                         viewer p50 {:.1} / p95 {:.1} / max {:.1} ms; server {:.3} cores \
                         encoding alone, +{:.3} with the viewers ({:.2}x plain); load generator \
                         {:.3} cores",
                        f.transport.label(),
                        f.failed,
                        f.first_error.map_or(String::new(), |e| format!(" (e.g. {e})")),
                        f.parts_min,
                        f.parts_max,
                        f.distinct_parts,
                        f.lag_ms[0],
                        f.lag_ms[1],
                        f.lag_ms[2],
                        f.baseline_cores,
                        extra,
                        extra / base,
                        f.client_cores
                    );
                }
                Err(error) => println!("  {}: {error}", transport.label()),
            }
        }
    });
}
