//! LL-HLS through a caching nginx edge (Debian's nginx with the shipped `contrib/nginx.conf`)
//! against LL-HLS straight from framecast, side by side in one run: for 1, 10 and 100 viewers
//! on each path at the same time (blocking reload + every part, as hls.js does, over one
//! keep-alive connection each), how late each part reaches a viewer after the first direct
//! viewer got it. The difference between the two paths is what the edge adds (target: at most
//! 100 ms). Also: how many requests the edge answered from its cache and how many reached
//! framecast (from the edge's access log), and nginx's and framecast's CPU.
//!
//! Env: `EDGE_BENCH_SECONDS` (10 per viewer count), `EDGE_BENCH_VIEWERS` (`1,10,100`),
//! `FRAMECAST_EDGE_CONF` (another file in place of `contrib/nginx.conf`, e.g. one with
//! `proxy_cache_lock off`).
//! Figures only, no asserts.

#[path = "common/llhls_viewer.rs"]
mod llhls_viewer;
#[allow(dead_code)]
#[path = "../tests/common/nginx_edge.rs"]
mod nginx_edge;
#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use llhls_viewer::{Fetch, viewer, wait_for_media};
use nginx_edge::NginxEdge;

/// Viewers start over this long, so neither server's accept queue overflows.
const CONNECTS_PER_MS: usize = 5;
/// Parts completed during the first seconds are left out: viewers are still joining.
const RAMP: Duration = Duration::from_secs(2);

fn main() {
    let seconds = std::env::var("EDGE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let counts: Vec<usize> = std::env::var("EDGE_BENCH_VIEWERS")
        .unwrap_or_else(|_| "1,10,100".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    if let Some(missing) = nginx_edge::missing() {
        eprintln!("{missing} is missing: `make test-deps` installs it");
        std::process::exit(1);
    }
    let args: Vec<String> = ["--size", "1280x720", "--fps", "30"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let origin = server::spawn(&server::binary_path(), &args).expect("start framecast");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "LL-HLS through nginx (contrib/nginx.conf) vs straight from framecast, 1280x720 at 30 fps, \
         {seconds} s per count, both paths at once"
    );
    for viewers in counts {
        // A fresh edge per count: empty cache, empty log.
        let edge = NginxEdge::start(origin.addr, false).expect("nginx edge");
        runtime.block_on(compare(
            origin.addr,
            origin.pid(),
            &edge,
            viewers,
            Duration::from_secs(seconds),
        ));
    }
}

/// What one group of viewers (direct or through the edge) got.
struct Group {
    fetches: Vec<Fetch>,
    parts_per_viewer: Vec<usize>,
    errors: Vec<String>,
}

async fn run_group(
    addr: SocketAddr,
    prefix: &str,
    viewers: usize,
    deadline: tokio::time::Instant,
) -> Vec<tokio::task::JoinHandle<Result<Vec<Fetch>, String>>> {
    let mut tasks = Vec::with_capacity(viewers);
    for _ in 0..viewers {
        tasks.push(tokio::spawn(viewer(addr, prefix.to_owned(), deadline)));
        if tasks.len() % CONNECTS_PER_MS == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    tasks
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Result<Vec<Fetch>, String>>>) -> Group {
    let mut group = Group {
        fetches: Vec::new(),
        parts_per_viewer: Vec::new(),
        errors: Vec::new(),
    };
    for task in tasks {
        match task.await {
            Ok(Ok(mut seen)) => {
                group.parts_per_viewer.push(seen.len());
                group.fetches.append(&mut seen);
            }
            Ok(Err(e)) => group.errors.push(e),
            Err(e) => group.errors.push(e.to_string()),
        }
    }
    group
}

async fn compare(
    origin: SocketAddr,
    origin_pid: u32,
    edge: &NginxEdge,
    viewers: usize,
    duration: Duration,
) {
    let direct_prefix = wait_for_media(origin, "/live.m3u8")
        .await
        .expect("HLS media from framecast");
    let edge_prefix = wait_for_media(edge.addr, "/live.m3u8")
        .await
        .expect("HLS media through the edge");
    let ticks = proc_stats::clock_ticks_per_s();
    let nginx_pids = edge.process_ids();
    let nginx_cpu = || -> Option<u64> {
        nginx_pids
            .iter()
            .map(|pid| proc_stats::process_cpu_ticks(&pid.to_string()))
            .sum()
    };
    let origin_cpu = || proc_stats::process_cpu_ticks(&origin_pid.to_string());

    let deadline = tokio::time::Instant::now() + duration;
    let direct = run_group(origin, &direct_prefix, viewers, deadline).await;
    let edged = run_group(edge.addr, &edge_prefix, viewers, deadline).await;
    tokio::time::sleep(RAMP.min(duration / 4)).await;
    let measured_from = Instant::now();
    let (nginx_before, origin_before) = (nginx_cpu(), origin_cpu());
    tokio::time::sleep_until(deadline - Duration::from_millis(500)).await;
    let wall = measured_from.elapsed();
    let cores = |before: Option<u64>, after: Option<u64>| {
        before
            .zip(after)
            .map(|(a, b)| proc_stats::cores(a, b, ticks, wall))
    };
    let nginx_cores = cores(nginx_before, nginx_cpu());
    let origin_cores = cores(origin_before, origin_cpu());
    let measured_until = Instant::now();
    let direct = collect(direct).await;
    let edged = collect(edged).await;

    // The reference for each part: the moment the first direct viewer had it.
    let mut reference: HashMap<(u64, u64), Instant> = HashMap::new();
    for fetch in &direct.fetches {
        let first = reference.entry(fetch.part).or_insert(fetch.at);
        *first = (*first).min(fetch.at);
    }
    let delays_ms = |group: &Group| {
        let mut delays: Vec<f64> = group
            .fetches
            .iter()
            .filter_map(|f| {
                let first = *reference.get(&f.part)?;
                (first >= measured_from && first <= measured_until).then(|| {
                    f.at.saturating_duration_since(first).as_secs_f64() * 1000.0
                        - first.saturating_duration_since(f.at).as_secs_f64() * 1000.0
                })
            })
            .collect();
        delays.sort_by(f64::total_cmp);
        delays
    };
    let (direct_delays, edge_delays) = (delays_ms(&direct), delays_ms(&edged));
    let responses = edge.edge_responses();
    let hits = responses.iter().filter(|r| r.tag == "HIT").count();
    let to_origin = responses
        .iter()
        .filter(|r| !matches!(r.tag.as_str(), "HIT" | "-"))
        .count();
    let server_errors = responses.iter().filter(|r| r.status >= 500).count();

    let fmt = |c: Option<f64>| c.map_or("n/a".into(), |c| format!("{c:.3}"));
    println!("{viewers} viewers on each path:");
    println!(
        "  part arrival after the first direct viewer: direct {}, edge {}",
        summary(&direct_delays),
        summary(&edge_delays)
    );
    println!(
        "  edge minus direct: p50 {:+.1} ms, p95 {:+.1} ms (target <= +100 ms)",
        percentile(&edge_delays, 0.5) - percentile(&direct_delays, 0.5),
        percentile(&edge_delays, 0.95) - percentile(&direct_delays, 0.95),
    );
    println!(
        "  parts per viewer (median): direct {}, edge {}; viewers failed: direct {}, edge {}",
        median(&direct.parts_per_viewer),
        median(&edged.parts_per_viewer),
        direct.errors.len(),
        edged.errors.len()
    );
    for error in direct.errors.iter().chain(&edged.errors).take(1) {
        println!("  first failure: {error}");
    }
    println!(
        "  edge requests: {} answered, {hits} from the cache, {to_origin} passed to framecast \
         (cache misses, bypasses, uncached), {server_errors} 5xx",
        responses.len()
    );
    println!(
        "  CPU while measured: nginx {} cores, framecast {} cores (serving both paths)",
        fmt(nginx_cores),
        fmt(origin_cores)
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn summary(sorted: &[f64]) -> String {
    format!(
        "p50 {:.1} / p95 {:.1} / max {:.1} ms ({} fetches)",
        percentile(sorted, 0.5),
        percentile(sorted, 0.95),
        percentile(sorted, 1.0),
        sorted.len()
    )
}

fn median(values: &[usize]) -> usize {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}
