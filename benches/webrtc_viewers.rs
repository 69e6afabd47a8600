//! What a WHEP viewer costs the server: its CPU at 720p30 with no viewer and with 20 WebRTC
//! viewers watching the same stream, and the cost per viewer as the difference over 20.
//!
//! Starts the release `framecast` binary (test pattern, 1280x720 at 30 fps, HLS on so the
//! encoder runs in both phases), measures the server's CPU (utime + stime from
//! `/proc/PID/stat`) over a window with no viewer, then opens 20 WHEP sessions from str0m
//! peers in this process (each its own UDP socket: ICE, DTLS-SRTP, RTP depacketizing, as a
//! browser does, without a browser's decoding cost on the 2 shared cores), waits until every
//! one receives frames, and measures again. Prints the server's cores in both phases, the
//! cost per viewer in % of a core, and the frames each viewer received per second (median,
//! min): it measures, it does not assert.
//!
//! Environment: `FRAMECAST_WEBRTC_SECONDS` (10) measured per phase, `FRAMECAST_WEBRTC_VIEWERS`
//! (20), `FRAMECAST_BIN` (the binary cargo built for this bench).

#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const DEFAULT_VIEWERS: usize = 20;
const DEFAULT_MEASURE: Duration = Duration::from_secs(10);
/// Not measured: the encoder getting going, or the viewers' first IDR and jitter.
const WARMUP: Duration = Duration::from_secs(3);
/// Every viewer must be receiving within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One WHEP viewer: a str0m peer with a receive-only video m-line; counts the frames it gets.
async fn viewer(
    server: SocketAddr,
    frames: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer")?;
    let answer = post_offer(server, &offer.to_sdp_string()).await?;
    let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let timeout = loop {
            match rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(at) => break at,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::MediaData(_)) => {
                    frames.fetch_add(1, Ordering::Relaxed);
                }
                Output::Event(_) => {}
            }
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let input_at = match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((len, source))) => {
                let receive = Receive::new(Protocol::Udp, source, local, &buf[..len])
                    .map_err(|e| e.to_string())?;
                rtc.handle_input(Input::Receive(Instant::now(), receive))
            }
            _ => rtc.handle_input(Input::Timeout(Instant::now())),
        };
        input_at.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// POSTs an offer to the first stream's WHEP resource; the SDP answer.
async fn post_offer(server: SocketAddr, offer: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST /whep HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "the WHEP answer took over 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    if !head.starts_with("HTTP/1.1 201") {
        return Err(format!(
            "WHEP answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_owned())
}

/// The server's cores over `window`.
async fn server_cores(pid: &str, window: Duration) -> Result<f64, String> {
    let ticks_per_s = proc_stats::clock_ticks_per_s();
    let before = proc_stats::process_cpu_ticks(pid).ok_or("cannot read the server's CPU")?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = proc_stats::process_cpu_ticks(pid).ok_or("cannot read the server's CPU")?;
    Ok(proc_stats::cores(
        before,
        after,
        ticks_per_s,
        started.elapsed(),
    ))
}

async fn run() -> Result<(), String> {
    let viewers: usize = env_number("FRAMECAST_WEBRTC_VIEWERS").unwrap_or(DEFAULT_VIEWERS);
    let measure = env_number::<u64>("FRAMECAST_WEBRTC_SECONDS")
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_MEASURE);
    let args: Vec<String> = [
        "--size",
        "1280x720",
        "--fps",
        "30",
        "--webrtc-listen",
        "127.0.0.1:0",
        "--webrtc-max-sessions",
        "1000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let spawned = server::spawn(&server::binary_path(), &args)?;
    let pid = spawned.pid().to_string();
    tokio::time::sleep(WARMUP).await;
    let idle = server_cores(&pid, measure).await?;
    println!("webrtc_viewers: no viewer: server {:.3} cores", idle);

    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = (0..viewers).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for frames in &counters {
        tasks.push(tokio::spawn(viewer(
            spawned.addr,
            frames.clone(),
            stop.clone(),
        )));
    }
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while counters.iter().any(|c| c.load(Ordering::Relaxed) == 0) {
        if Instant::now() > deadline {
            let receiving = counters
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) > 0)
                .count();
            return Err(format!(
                "only {receiving} of {viewers} viewers received frames in {CONNECT_TIMEOUT:?}"
            ));
        }
        if let Some(task) = tasks.iter().find(|t| t.is_finished()) {
            let _ = task;
            return Err("a viewer ended before it received a frame".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(WARMUP).await;
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let started = Instant::now();
    let watched = server_cores(&pid, measure).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut rates: Vec<f64> = counters
        .iter()
        .zip(&before)
        .map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 / elapsed)
        .collect();
    rates.sort_by(f64::total_cmp);
    stop.store(true, Ordering::Relaxed);
    let sessions = server::status(spawned.addr).await?["webrtc"]["session_count"].clone();
    let per_viewer = (watched - idle) / viewers as f64;
    println!(
        "webrtc_viewers: {viewers} viewers: server {watched:.3} cores ({sessions} sessions); \
         per viewer {:.2} % of a core; frames per viewer per second: median {:.1}, min {:.1}",
        per_viewer * 100.0,
        rates[rates.len() / 2],
        rates[0],
    );
    println!(
        "{{\"bench\":\"webrtc_viewers\",\"viewers\":{viewers},\"idle_cores\":{idle:.4},\
         \"watched_cores\":{watched:.4},\"per_viewer_core_pct\":{:.3},\
         \"viewer_fps_median\":{:.2},\"viewer_fps_min\":{:.2}}}",
        per_viewer * 100.0,
        rates[rates.len() / 2],
        rates[0]
    );
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("webrtc_viewers: {error}");
            ExitCode::FAILURE
        }
    }
}
