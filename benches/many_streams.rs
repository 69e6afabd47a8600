//! Many streams in one process: what each costs, idle and watched, and against what users run
//! today without a configuration file, one framecast process per camera.
//!
//! Every stream is framecast's test pattern at 640x360, 15 fps (the pattern is drawn and
//! stamped by the server, so the source itself costs what a camera's frames would). The
//! release binary is started with a configuration file for each scenario:
//!
//! 1. 1, 4 and 16 streams with HLS `always`, no viewer: CPU and RSS after the HLS window has
//!    filled; the per-stream cost is the growth from 1 to 16 over 15.
//! 2. 16 single-stream processes with HLS `always`, no viewer: the same work split the way it
//!    must be without `--config`; CPU and RSS added up. Ratio: one process / sixteen.
//! 3. 16 streams with HLS `on-demand`, no viewer: the idle cost when nobody plays H.264.
//! 4. 16 streams with HLS `on-demand`, one MJPEG viewer on every stream, then 100 MJPEG viewers
//!    spread over them: CPU, frames delivered, CPU per delivered frame, RSS.
//!
//! Figures only, no asserts; about three minutes. Linux only (`/proc`). `FRAMECAST_BIN` names
//! another binary. `--quick 1` (or `FRAMECAST_MANY_QUICK=1`) shortens every window.

// The shared support is written for the MJPEG load generator; this bench uses part of it.
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::mjpeg_parts::StreamParser;
use common::proc_stats;
use common::server::{self, Spawned};

const STREAMS: usize = 16;
const SIZE: &str = "640x360";
const FPS: u32 = 15;
/// HLS keeps 12 one-second segments: with `always`, memory grows until the window is full.
const HLS_WINDOW_FILL: Duration = Duration::from_secs(14);
const SPREAD_VIEWERS: usize = 100;
const READ_BUF_BYTES: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Timing {
    warm_up: Duration,
    window_fill: Duration,
    measure: Duration,
}

/// What one scenario cost.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    cores: f64,
    rss_mib: f64,
    frames_delivered: u64,
}

fn main() {
    let quick = std::env::args()
        .skip_while(|a| a != "--quick")
        .nth(1)
        .is_some()
        || std::env::var("FRAMECAST_MANY_QUICK").is_ok_and(|v| v == "1");
    let timing = if quick {
        Timing {
            warm_up: Duration::from_secs(2),
            window_fill: Duration::from_secs(4),
            measure: Duration::from_secs(3),
        }
    } else {
        Timing {
            warm_up: Duration::from_secs(4),
            window_fill: HLS_WINDOW_FILL,
            measure: Duration::from_secs(10),
        }
    };
    let binary = server::binary_path();
    let dir = std::env::temp_dir().join(format!("framecast-many-{}", std::process::id()));
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("many_streams: cannot make {}: {error}", dir.display());
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("many_streams: no runtime: {error}");
            return;
        }
    };
    println!(
        "many_streams: test pattern {SIZE} at {FPS} fps per stream, {} s measured per scenario",
        timing.measure.as_secs()
    );
    if let Err(error) = runtime.block_on(run(&binary, &dir, &timing)) {
        eprintln!("many_streams: {error}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(binary: &PathBuf, dir: &Path, timing: &Timing) -> Result<(), String> {
    println!("\n1. HLS always, no viewer, one process");
    let mut by_count = Vec::new();
    for count in [1, 4, STREAMS] {
        let server = start(binary, dir, count, "always")?;
        tokio::time::sleep(timing.window_fill).await;
        let cost = measure(&[&server], timing.measure, || async { 0 }).await;
        report(&format!("{count:>2} streams"), cost, count);
        by_count.push((count, cost));
    }
    let (one, sixteen) = (by_count[0].1, by_count[by_count.len() - 1].1);
    let per_stream_mib = (sixteen.rss_mib - one.rss_mib) / (STREAMS - 1) as f64;
    let per_stream_cores = (sixteen.cores - one.cores) / (STREAMS - 1) as f64;
    println!(
        "   each added stream: {per_stream_cores:.3} cores, {per_stream_mib:.1} MiB \
         (RSS 1 → 4 → 16 streams: {:.1} → {:.1} → {:.1} MiB)",
        by_count[0].1.rss_mib, by_count[1].1.rss_mib, by_count[2].1.rss_mib
    );

    println!("\n2. HLS always, no viewer, {STREAMS} processes of one stream each");
    let mut servers = Vec::new();
    for index in 0..STREAMS {
        servers.push(start_single(binary, index)?);
    }
    tokio::time::sleep(timing.window_fill).await;
    let refs: Vec<&Spawned> = servers.iter().collect();
    let separate = measure(&refs, timing.measure, || async { 0 }).await;
    drop(refs);
    drop(servers);
    report(&format!("{STREAMS} processes"), separate, STREAMS);
    println!(
        "   one process / {STREAMS} processes: CPU {:.2}, RSS {:.2}",
        sixteen.cores / separate.cores.max(f64::EPSILON),
        sixteen.rss_mib / separate.rss_mib.max(f64::EPSILON)
    );

    println!("\n3. HLS on-demand, no viewer, one process");
    let server = start(binary, dir, STREAMS, "on-demand")?;
    tokio::time::sleep(timing.warm_up).await;
    let idle = measure(&[&server], timing.measure, || async { 0 }).await;
    report(&format!("{STREAMS} streams"), idle, STREAMS);
    println!(
        "   on-demand / always, idle: CPU {:.2}, RSS {:.2}",
        idle.cores / sixteen.cores.max(f64::EPSILON),
        idle.rss_mib / sixteen.rss_mib.max(f64::EPSILON)
    );

    println!("\n4. HLS on-demand, MJPEG viewers, one process");
    for viewers in [STREAMS, SPREAD_VIEWERS] {
        let frames = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(tokio::sync::Notify::new());
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..viewers {
            let path = format!("/streams/s{}/stream.mjpg", index % STREAMS);
            tasks.spawn(watch(server.addr, path, frames.clone(), stop.clone()));
        }
        tokio::time::sleep(timing.warm_up).await;
        let counter = frames.clone();
        let cost = measure(&[&server], timing.measure, move || {
            let counter = counter.clone();
            async move { counter.load(Ordering::Relaxed) }
        })
        .await;
        stop.notify_waiters();
        let failed = tasks
            .join_all()
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<String>>();
        report(&format!("{viewers:>3} viewers"), cost, STREAMS);
        let per_frame_ms = cost.cores * timing.measure.as_secs_f64() * 1000.0
            / cost.frames_delivered.max(1) as f64;
        println!(
            "   {} frames delivered ({:.1} per viewer per second), {per_frame_ms:.4} ms CPU per \
             delivered frame{}",
            cost.frames_delivered,
            cost.frames_delivered as f64 / viewers as f64 / timing.measure.as_secs_f64(),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; {} viewers failed: {}", failed.len(), failed[0])
            }
        );
    }
    Ok(())
}

fn report(label: &str, cost: Cost, streams: usize) {
    println!(
        "   {label}: {:.3} cores ({:.4} per stream), RSS {:.1} MiB ({:.2} per stream)",
        cost.cores,
        cost.cores / streams as f64,
        cost.rss_mib,
        cost.rss_mib / streams as f64
    );
}

/// framecast with `count` test-pattern streams named `s0`, `s1`, … and `hls` as given.
fn start(binary: &PathBuf, dir: &Path, count: usize, hls: &str) -> Result<Spawned, String> {
    let mut text =
        format!("size = \"{SIZE}\"\nfps = {FPS}\nhls = \"{hls}\"\nhls_idle_stop_seconds = 5\n");
    for index in 0..count {
        text.push_str(&format!(
            "\n[[streams]]\nname = \"s{index}\"\nsource = \"test\"\n"
        ));
    }
    let path = dir.join(format!("{count}-{hls}.toml"));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    server::spawn(
        binary,
        &["--config".to_owned(), path.to_string_lossy().into_owned()],
    )
}

/// framecast with one test-pattern stream described by flags, as without a configuration file.
fn start_single(binary: &PathBuf, _index: usize) -> Result<Spawned, String> {
    server::spawn(
        binary,
        &[
            "--size".into(),
            SIZE.into(),
            "--fps".into(),
            FPS.to_string(),
        ],
    )
}

/// CPU (cores) and RSS of `servers` added up over `window`, and what `delivered` counts in it.
async fn measure<F, Fut>(servers: &[&Spawned], window: Duration, delivered: F) -> Cost
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let ticks_per_s = proc_stats::clock_ticks_per_s();
    let pids: Vec<String> = servers.iter().map(|s| s.pid().to_string()).collect();
    let ticks = |pids: &[String]| -> u64 {
        pids.iter()
            .filter_map(|pid| proc_stats::process_cpu_ticks(pid))
            .sum()
    };
    let frames_before = delivered().await;
    let (ticks_before, started) = (ticks(&pids), Instant::now());
    tokio::time::sleep(window).await;
    let (ticks_after, wall) = (ticks(&pids), started.elapsed());
    let frames_after = delivered().await;
    let rss: u64 = pids
        .iter()
        .filter_map(|pid| proc_stats::rss_bytes(pid))
        .sum();
    Cost {
        cores: proc_stats::cores(ticks_before, ticks_after, ticks_per_s, wall),
        rss_mib: rss as f64 / (1024.0 * 1024.0),
        frames_delivered: frames_after.saturating_sub(frames_before),
    }
}

/// One MJPEG viewer of `path`, counting the frames it receives until `stop`.
async fn watch(
    addr: SocketAddr,
    path: String,
    frames: Arc<AtomicU64>,
    stop: Arc<tokio::sync::Notify>,
) -> Result<(), String> {
    let follow = async {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: framecast\r\nUser-Agent: framecast-many-streams/1\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut parser = StreamParser::default();
        let mut buf = vec![0u8; READ_BUF_BYTES];
        let mut parts = Vec::new();
        loop {
            let len = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if len == 0 {
                return Err(format!("{path}: the server closed the stream"));
            }
            parser.feed(&buf[..len], &mut parts)?;
            frames.fetch_add(parts.len() as u64, Ordering::Relaxed);
            parts.clear();
        }
    };
    tokio::select! {
        result = follow => result,
        () = stop.notified() => Ok(()),
    }
}
