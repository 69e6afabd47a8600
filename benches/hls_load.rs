//! LL-HLS load: N viewers doing what a low-latency player (hls.js) does, for a bounded time,
//! against a release framecast (or `FRAMECAST_URL`): fetch the hinted part (held until it
//! exists), then the playlist with `_HLS_msn`/`_HLS_part`/`_HLS_skip=YES` for the next one,
//! gzip'd, over one keep-alive connection. All viewers are tasks on one tokio thread.
//!
//! Reports the server's CPU alone (no viewers) and with the viewers: the difference is the
//! cost of the viewers, beyond encoding (target ≤ 0.3 core for 1000), also split by thread;
//! how late each part reaches each viewer after the first viewer got it (part fetch p50/p95/
//! max, target p95 ≤ 50 ms); parts fetched per viewer; the load generator's own CPU (it must
//! stay well under one core, or it and not the server is the bottleneck); and RSS over the
//! run. Env: `HLS_VIEWERS` (1000), `HLS_LOAD_SECONDS` (20; 600 for the soak), `HLS_LOAD_QUICK=1`
//! (200 viewers for 8 s), `HLS_PART_SECONDS` (the server's default part length). Figures
//! only, no asserts.

// The parts of the MJPEG generator's support this bench shares; it does not use all of them.
#[path = "common/llhls_viewer.rs"]
mod llhls_viewer;
#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use llhls_viewer::{viewer, wait_for_media};

const BASELINE: Duration = Duration::from_secs(5);
/// Viewers connect at this many per millisecond, so the server's accept queue never overflows.
const CONNECTS_PER_MS: usize = 5;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let quick = std::env::var("HLS_LOAD_QUICK").as_deref() == Ok("1");
    let viewers = env_number("HLS_VIEWERS", if quick { 200 } else { 1000 }) as usize;
    let seconds = env_number("HLS_LOAD_SECONDS", if quick { 8 } else { 20 });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spawned;
    let (addr, pid) = match std::env::var("FRAMECAST_URL") {
        Ok(url) => (server::addr_from_url(&url).expect("FRAMECAST_URL"), None),
        Err(_) => {
            let mut args: Vec<String> = ["--size", "1280x720", "--fps", "30"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if let Ok(part_s) = std::env::var("HLS_PART_SECONDS") {
                args.extend(["--hls-part-seconds".to_owned(), part_s]);
            }
            spawned = server::spawn(&server::binary_path(), &args).expect("start framecast");
            (spawned.addr, Some(spawned.pid().to_string()))
        }
    };
    runtime.block_on(run(addr, pid, viewers, Duration::from_secs(seconds)));
}

async fn run(addr: SocketAddr, pid: Option<String>, viewers: usize, duration: Duration) {
    let ticks = proc_stats::clock_ticks_per_s();
    let prefix = wait_for_media(addr, "/live.m3u8").await.expect("HLS media");
    let cpu = |pid: &Option<String>| pid.as_deref().and_then(proc_stats::process_cpu_ticks);
    let rss = |pid: &Option<String>| pid.as_deref().and_then(proc_stats::rss_bytes);
    let threads = |pid: &Option<String>| pid.as_deref().map(proc_stats::thread_cpu_ticks);
    let own_pid = std::process::id().to_string();

    let (before, threads_before, t) = (cpu(&pid), threads(&pid), Instant::now());
    tokio::time::sleep(BASELINE).await;
    let baseline_wall = t.elapsed();
    let baseline_cores = before
        .zip(cpu(&pid))
        .map(|(a, b)| proc_stats::cores(a, b, ticks, baseline_wall));
    let baseline_threads = threads_before
        .zip(threads(&pid))
        .map(|(a, b)| proc_stats::thread_cores(&a, &b, ticks, baseline_wall));

    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = Vec::with_capacity(viewers);
    for batch in (0..viewers).collect::<Vec<_>>().chunks(CONNECTS_PER_MS) {
        for _ in batch {
            tasks.push(tokio::spawn(viewer(addr, prefix.clone(), deadline)));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Measure after a short ramp, while every viewer runs.
    tokio::time::sleep(Duration::from_secs(2).min(duration / 4)).await;
    let measured_from = Instant::now();
    let (load_before, threads_before, own_before) = (
        cpu(&pid),
        threads(&pid),
        proc_stats::process_cpu_ticks(&own_pid),
    );
    let mut rss_samples = Vec::new();
    while tokio::time::Instant::now() + Duration::from_secs(1) < deadline {
        if let Some(bytes) = rss(&pid) {
            rss_samples.push(bytes);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let wall = measured_from.elapsed();
    let load_cores = load_before
        .zip(cpu(&pid))
        .map(|(a, b)| proc_stats::cores(a, b, ticks, wall));
    let load_threads = threads_before
        .zip(threads(&pid))
        .map(|(a, b)| proc_stats::thread_cores(&a, &b, ticks, wall));
    let own_cores = own_before
        .zip(proc_stats::process_cpu_ticks(&own_pid))
        .map(|(a, b)| proc_stats::cores(a, b, ticks, wall));
    let measured_until = Instant::now();

    let mut parts = Vec::new();
    let mut fetches = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(mut seen)) => {
                parts.push(seen.len());
                fetches.append(&mut seen);
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    // How late each viewer got each part after the first viewer got it: the server's fan-out
    // delay, independent of how long the part took to be made. Only parts completed while
    // every viewer ran count.
    let mut first_at: HashMap<(u64, u64), Instant> = HashMap::new();
    for fetch in &fetches {
        let first = first_at.entry(fetch.part).or_insert(fetch.at);
        *first = (*first).min(fetch.at);
    }
    let mut delays_ms: Vec<f64> = fetches
        .iter()
        .filter(|f| {
            let first = first_at[&f.part];
            first >= measured_from && first <= measured_until
        })
        .map(|f| (f.at - first_at[&f.part]).as_secs_f64() * 1000.0)
        .collect();
    delays_ms.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        delays_ms
            .get(((delays_ms.len().saturating_sub(1)) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    parts.sort_unstable();
    let median = parts.get(parts.len() / 2).copied().unwrap_or(0);
    let min = parts.first().copied().unwrap_or(0);
    let mb = |b: u64| b as f64 / 1_048_576.0;
    let fmt = |c: Option<f64>| c.map_or("n/a".into(), |c| format!("{c:.3}"));
    println!(
        "LL-HLS load: {viewers} viewers for {} s (blocking reload + every part, gzip'd delta playlists)",
        duration.as_secs()
    );
    println!("  server CPU, no viewers:   {} cores", fmt(baseline_cores));
    println!("  server CPU, with viewers: {} cores", fmt(load_cores));
    println!(
        "  cost of the viewers:      {} cores (target <= 0.3 for 1000)",
        fmt(load_cores.zip(baseline_cores).map(|(l, b)| l - b))
    );
    if let (Some(alone), Some(loaded)) = (&baseline_threads, &load_threads) {
        println!("  by thread (no viewers -> with viewers):");
        for (name, count, cores) in loaded {
            let before = alone
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or(0.0, |(_, _, c)| *c);
            println!("    {name:<20} x{count:<3} {before:.3} -> {cores:.3}");
        }
    }
    println!(
        "  part fetch delay after the first viewer: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} fetches (target p95 <= 50)",
        percentile(0.5),
        percentile(0.95),
        percentile(1.0),
        delays_ms.len()
    );
    println!(
        "  parts per viewer: min {min}, median {median} ({:.1} per second), viewers failed: {}",
        median as f64 / duration.as_secs_f64(),
        errors.len()
    );
    if let Some(first) = errors.first() {
        println!("  first failure: {first}");
    }
    println!(
        "  load generator CPU: {} cores (one thread: near 1.0 would make it the bottleneck)",
        fmt(own_cores)
    );
    if let (Some(first), Some(last), Some(max)) = (
        rss_samples.first(),
        rss_samples.last(),
        rss_samples.iter().max(),
    ) {
        println!(
            "  RSS: start {:.1} MB, end {:.1} MB, max {:.1} MB over {} samples",
            mb(*first),
            mb(*last),
            mb(*max),
            rss_samples.len()
        );
        // Growth that stops once the window is full is flat; growth to the end is a leak.
        let at = |fraction: f64| {
            let index = ((rss_samples.len() - 1) as f64 * fraction) as usize;
            format!("{:.1}", mb(rss_samples[index]))
        };
        println!(
            "  RSS over the run (MB) at 10/25/50/75/100 %: {} / {} / {} / {} / {}",
            at(0.1),
            at(0.25),
            at(0.5),
            at(0.75),
            at(1.0)
        );
    }
}
