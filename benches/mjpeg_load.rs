//! The MJPEG load generator: many viewers of `/stream.mjpg` at 720p30, and what they cost the
//! server, side by side with VLC's MJPEG passthrough on identical frames.
//!
//! By default (`--source pipe`) ffmpeg makes 720p JPEGs once; for each viewer count (50, 200
//! and 500) and each peer in turn, the generator starts the server, writes those JPEGs to its
//! standard input at 30 fps from a thread of its own, each stamped with its sequence number and
//! the time it was written (a JPEG comment segment that both servers pass through):
//!
//! - framecast: the release binary with `--source pipe:mjpeg --no-hls`, so JPEGs go to viewers
//!   as they came and no H.264 encoder competes for the CPU;
//! - VLC: `cvlc - --demux mjpeg --sout '#standard{access=http,mux=mpjpeg,…}'` (as `nobody`
//!   when run as root, which VLC refuses).
//!
//! With `--source test` framecast alone encodes its own test pattern (its JPEG stage under
//! load, as a user runs it), or a server named with `--url` is measured.
//!
//! It opens the viewers over raw TCP from one thread (a current-thread tokio runtime, so the
//! generator's own cost stays small and is measured too), lets them warm up, then measures for
//! a fixed window:
//!
//! - per-viewer frame rate (parts fully received in the window);
//! - latency: the receipt wall clock minus the time the frame was written to the server (the
//!   stamp), or minus the part's `X-Timestamp` for the test pattern; same machine, same clock;
//! - server CPU (utime + stime from `/proc/PID/stat`, also per thread) and peak RSS, and CPU
//!   time per delivered frame: server CPU in the window over the parts all viewers received;
//!   also from the scheduler's run time of each thread (`/proc/PID/task/*/schedstat`, in
//!   nanoseconds), since at 50 viewers the window holds only some 20 clock ticks of server
//!   CPU, so one tick more or less moves the tick figure by 5 %;
//! - the generator's own CPU;
//! - framecast's own view from `/status`: JPEG encode time and skipped frames.
//!
//! It prints the figures next to the design targets, and the ratio framecast / VLC of CPU per
//! delivered frame for each viewer count (target: at most 0.5). The comparison runs in rounds,
//! the peers' order swapped in every other round, and the ratio given is the median over the
//! rounds with each round's own: a shared machine's load drifts by more than the difference
//! measured, and one pair of windows can land on either side of it. It always exits 0: it
//! measures, it does not assert (only a bad command line exits 2).
//!
//! Options, as arguments after `--` or environment variables:
//!
//! | argument | variable | default |
//! | --- | --- | --- |
//! | `--viewers 50,200,500` | `FRAMECAST_LOAD_VIEWERS` | `50,200,500` (one scenario each) |
//! | `--peers framecast,vlc` | `FRAMECAST_LOAD_PEERS` | both (VLC only with `--source pipe`) |
//! | `--source pipe` | `FRAMECAST_LOAD_SOURCE` | `pipe` (ffmpeg JPEGs) or `test` (test pattern) |
//! | `--duration-s 10` | `FRAMECAST_LOAD_DURATION_S` | 10 s measured per scenario (3 quick) |
//! | `--warmup-s 2` | `FRAMECAST_LOAD_WARMUP_S` | 2 s after the ramp, not measured (1 quick) |
//! | `--rounds 3` | `FRAMECAST_LOAD_ROUNDS` | 3 (1 quick): every scenario again, peers in turn |
//! | `--quick 1` | `FRAMECAST_LOAD_QUICK` | off: a short run, for a first look |
//! | `--url http://HOST:PORT/` | `FRAMECAST_URL` | start `target/release/framecast` |
//! | `--pid PID` | `FRAMECAST_PID` | the started server (for CPU and RSS of an external one) |
//! | `--server-args "…"` | `FRAMECAST_LOAD_SERVER_ARGS` | none (extra flags for the started server) |

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use common::feeder::{self, Feeder};
use common::mjpeg_parts::{self, StreamParser};
use common::vlc::Vlc;
use common::{proc_stats, server};
use framecast::frame::unix_micros;

/// The request every viewer sends: HTTP/1.0 and a non-browser User-Agent, so framecast sends
/// full part headers with Content-Length and X-Timestamp.
const REQUEST: &[u8] =
    b"GET /stream.mjpg HTTP/1.0\r\nHost: framecast\r\nUser-Agent: framecast-mjpeg-load/1\r\n\r\n";

/// The server flags of the target figures: 720p at 30 fps.
const SERVER_ARGS: [&str; 4] = ["--size", "1280x720", "--fps", "30"];
/// framecast's flags when fed the JPEGs: passed through as they come, no H.264 encoder.
const PIPE_ARGS: [&str; 3] = ["--source", "pipe:mjpeg", "--no-hls"];
/// The fed frames: 720p at 30 fps, the size and rate of the design's figures.
const FEED_WIDTH: u32 = 1280;
const FEED_HEIGHT: u32 = 720;
const FEED_FPS: u32 = 30;
/// ffmpeg's `-q:v` for the fed JPEGs: about the size of framecast's own at quality 80.
const FEED_QUALITY: u32 = 5;
/// What the ratio of CPU per delivered frame, framecast over VLC, should stay under.
const TARGET_CPU_RATIO: f64 = 0.5;

/// Viewers connect this far apart: 500 connect within a second, quickly but not as one burst
/// that would overflow the listen backlog.
const RAMP_SPACING: Duration = Duration::from_millis(2);

/// Socket reads per viewer are up to this size: two of framecast's 32 KiB body slices, so a
/// 720p JPEG of about 60 KB takes one or two reads.
const READ_BUF_BYTES: usize = 64 * 1024;

/// Bounds a viewer's connect and request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Viewers stay connected this long after the window so that the final readings see them all.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// How long the end of a scenario waits for viewer tasks to finish before abandoning them.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the server's RSS is sampled for its peak.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Pause between scenarios, so that the sockets of one are gone before the next starts.
const SCENARIO_PAUSE: Duration = Duration::from_secs(1);

/// Design targets (see the performance table of the design notes).
const TARGET_MEDIAN_FPS: f64 = 29.0;
const TARGET_SERVER_CORES: f64 = 1.0;
const TARGET_RSS_BYTES: u64 = 100 * 1000 * 1000;
const TARGET_P99_MS: f64 = 50.0;
/// The latency target is stated for this many viewers (and applies to fewer).
const TARGET_P99_VIEWERS: usize = 100;

const DEFAULT_VIEWERS: [usize; 3] = [50, 200, 500];
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const DEFAULT_WARMUP: Duration = Duration::from_secs(2);
const QUICK_DURATION: Duration = Duration::from_secs(3);
const QUICK_WARMUP: Duration = Duration::from_secs(1);
/// Rounds of the comparison, each with every scenario once.
const DEFAULT_ROUNDS: usize = 3;
const MAX_ROUNDS: usize = 20;

const USAGE: &str = "usage: cargo bench --bench mjpeg_load -- [--viewers N[,N…]] \
     [--peers framecast,vlc] [--source pipe|test] [--duration-s S] [--warmup-s S] [--quick 1] \
     [--url http://HOST:PORT/] [--pid PID] [--server-args \"FLAGS\"]";

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("mjpeg_load: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = mjpeg_parts::self_check() {
        eprintln!("mjpeg_load: the stream parser fails its self-check, no figures: {error}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mjpeg_load: cannot start the runtime: {error}");
            return ExitCode::SUCCESS;
        }
    };
    let frames = match options.source {
        SourceMode::Pipe => {
            match feeder::ffmpeg_jpegs(FEED_WIDTH, FEED_HEIGHT, FEED_FPS, FEED_QUALITY) {
                Ok(jpegs) => Some(Arc::new(jpegs)),
                Err(error) => {
                    eprintln!("mjpeg_load: {error}; no figures");
                    return ExitCode::SUCCESS;
                }
            }
        }
        SourceMode::TestPattern => None,
    };
    let results = runtime.block_on(run_all(&options, frames));
    if !results.is_empty() {
        let first_round: Vec<&ScenarioResult> = results.iter().filter(|r| r.round == 1).collect();
        print_summary(&first_round, &options);
        print_ratios(&results);
    }
    ExitCode::SUCCESS
}

/// Who serves the viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Framecast,
    Vlc,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::Framecast => "framecast",
            Self::Vlc => "VLC",
        }
    }
}

/// Where the frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceMode {
    /// The same ffmpeg JPEGs, written to each server's standard input.
    Pipe,
    /// framecast's own test pattern, JPEG-encoded by framecast.
    TestPattern,
}

/// What to run.
#[derive(Debug)]
struct Options {
    viewers: Vec<usize>,
    peers: Vec<Peer>,
    source: SourceMode,
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    url: Option<String>,
    pid: Option<u32>,
    server_args: Vec<String>,
}

impl Options {
    /// Environment first, then arguments (which win). cargo passes `--bench` to every bench.
    fn parse() -> Result<Self, String> {
        let mut pairs: Vec<(String, String)> = [
            ("FRAMECAST_LOAD_QUICK", "--quick"),
            ("FRAMECAST_LOAD_VIEWERS", "--viewers"),
            ("FRAMECAST_LOAD_PEERS", "--peers"),
            ("FRAMECAST_LOAD_SOURCE", "--source"),
            ("FRAMECAST_LOAD_DURATION_S", "--duration-s"),
            ("FRAMECAST_LOAD_WARMUP_S", "--warmup-s"),
            ("FRAMECAST_LOAD_ROUNDS", "--rounds"),
            ("FRAMECAST_URL", "--url"),
            ("FRAMECAST_PID", "--pid"),
            ("FRAMECAST_LOAD_SERVER_ARGS", "--server-args"),
        ]
        .into_iter()
        .filter_map(|(var, flag)| Some((flag.to_owned(), std::env::var(var).ok()?)))
        .collect();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--bench" {
                continue;
            }
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), value.to_owned()),
                None => {
                    let value = args.next().ok_or(format!("{arg} needs a value"))?;
                    (arg, value)
                }
            };
            pairs.push((flag, value));
        }

        let mut options = Self {
            viewers: DEFAULT_VIEWERS.to_vec(),
            peers: vec![Peer::Framecast, Peer::Vlc],
            source: SourceMode::Pipe,
            duration: DEFAULT_DURATION,
            warmup: DEFAULT_WARMUP,
            rounds: DEFAULT_ROUNDS,
            url: None,
            pid: None,
            server_args: Vec::new(),
        };
        for (flag, value) in pairs {
            match flag.as_str() {
                "--viewers" => {
                    options.viewers = value
                        .split(',')
                        .map(|n| n.trim().parse().ok().filter(|&n: &usize| n > 0))
                        .collect::<Option<_>>()
                        .ok_or(format!("--viewers `{value}`: whole numbers above 0"))?;
                }
                "--quick" => {
                    // Before the durations in the list, so explicit ones still win.
                    if !matches!(value.trim(), "" | "0" | "false" | "no") {
                        options.duration = QUICK_DURATION;
                        options.warmup = QUICK_WARMUP;
                        options.rounds = 1;
                    }
                }
                "--peers" => {
                    options.peers = value
                        .split(',')
                        .map(|p| match p.trim().to_ascii_lowercase().as_str() {
                            "framecast" => Some(Peer::Framecast),
                            "vlc" => Some(Peer::Vlc),
                            _ => None,
                        })
                        .collect::<Option<_>>()
                        .ok_or(format!("--peers `{value}`: framecast and/or vlc"))?;
                }
                "--source" => {
                    options.source = match value.trim() {
                        "pipe" => SourceMode::Pipe,
                        "test" => SourceMode::TestPattern,
                        _ => return Err(format!("--source `{value}`: pipe or test")),
                    };
                }
                "--duration-s" => options.duration = seconds(&flag, &value)?,
                "--warmup-s" => options.warmup = seconds(&flag, &value)?,
                "--rounds" => {
                    options.rounds = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|&n: &usize| (1..=MAX_ROUNDS).contains(&n))
                        .ok_or(format!("--rounds `{value}`: 1 to {MAX_ROUNDS}"))?;
                }
                "--url" => options.url = Some(value),
                "--pid" => {
                    options.pid = Some(value.parse().map_err(|_| format!("--pid `{value}`"))?);
                }
                "--server-args" => {
                    options.server_args = value.split_whitespace().map(str::to_owned).collect();
                }
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        if options.duration.is_zero() {
            return Err("--duration-s must be above 0".into());
        }
        if options.url.is_some() || options.source == SourceMode::TestPattern {
            // Nothing to compare against: VLC needs the fed JPEGs, an external server its own.
            options.peers = vec![Peer::Framecast];
            if options.url.is_some() {
                options.source = SourceMode::TestPattern;
            }
        }
        if options.peers.is_empty() {
            return Err("--peers: at least one".into());
        }
        Ok(options)
    }
}

/// Seconds as a decimal number, with an optional `s`.
fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .trim()
        .trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or(format!("{flag} `{value}`: seconds, e.g. 10 or 2.5"))
}

/// The server of one scenario.
struct Target {
    peer: Peer,
    addr: SocketAddr,
    /// Known for a server the generator started, or given with `--pid`.
    pid: Option<u32>,
    /// Holds a started server; dropping it stops the server. Declared before the feeder, so
    /// the server goes first and the feeder's blocked write, if any, fails and ends it.
    spawned: Option<Spawned>,
    feeder: Option<Feeder>,
}

/// A server process the generator started.
enum Spawned {
    Framecast(server::Spawned),
    Vlc(Vlc),
}

impl Target {
    fn open(
        peer: Peer,
        options: &Options,
        frames: Option<&Arc<Vec<Vec<u8>>>>,
    ) -> Result<Self, String> {
        if let Some(url) = &options.url {
            return Ok(Self {
                peer,
                addr: server::addr_from_url(url)?,
                pid: options.pid,
                spawned: None,
                feeder: None,
            });
        }
        match (peer, frames) {
            (Peer::Framecast, None) => {
                let args: Vec<String> = SERVER_ARGS
                    .iter()
                    .map(|a| a.to_string())
                    .chain(options.server_args.iter().cloned())
                    .collect();
                let spawned = server::spawn(&server::binary_path(), &args)?;
                Ok(Self {
                    peer,
                    addr: spawned.addr,
                    pid: Some(options.pid.unwrap_or(spawned.pid())),
                    spawned: Some(Spawned::Framecast(spawned)),
                    feeder: None,
                })
            }
            (Peer::Framecast, Some(frames)) => {
                let args: Vec<String> = SERVER_ARGS
                    .iter()
                    .chain(PIPE_ARGS.iter())
                    .map(|a| a.to_string())
                    .chain(options.server_args.iter().cloned())
                    .collect();
                let (spawned, stdin) = server::spawn_piped(&server::binary_path(), &args)?;
                Ok(Self {
                    peer,
                    addr: spawned.addr,
                    pid: Some(spawned.pid()),
                    feeder: Some(Feeder::start(stdin, frames.clone(), FEED_FPS)),
                    spawned: Some(Spawned::Framecast(spawned)),
                })
            }
            (Peer::Vlc, Some(frames)) => {
                // VLC listens before its input starts; feeding only then spares it a backlog
                // of frames that would inflate its first latencies.
                let (mut vlc, stdin) = Vlc::spawn(FEED_FPS)?;
                vlc.wait_listening()?;
                let feeder = Feeder::start(stdin, frames.clone(), FEED_FPS);
                Ok(Self {
                    peer,
                    addr: vlc.addr,
                    pid: Some(vlc.pid()),
                    spawned: Some(Spawned::Vlc(vlc)),
                    feeder: Some(feeder),
                })
            }
            (Peer::Vlc, None) => Err("VLC needs the fed JPEGs (--source pipe)".into()),
        }
    }

    fn describe(&self) -> String {
        let who = match &self.spawned {
            Some(Spawned::Framecast(server)) => {
                format!("started for this scenario as pid {}", server.pid())
            }
            Some(Spawned::Vlc(vlc)) => format!("started for this scenario as pid {}", vlc.pid()),
            None => "already running".to_owned(),
        };
        let fed = match &self.feeder {
            Some(feeder) => format!(", {} frames fed so far", feeder.written()),
            None => String::new(),
        };
        let measured = match self.pid {
            Some(pid) => format!("CPU and RSS of pid {pid}"),
            None => "no --pid, so no CPU or RSS".to_owned(),
        };
        format!(
            "{} {} ({who}; {measured}{fed})",
            self.peer.name(),
            self.addr
        )
    }
}

async fn run_all(options: &Options, frames: Option<Arc<Vec<Vec<u8>>>>) -> Vec<ScenarioResult> {
    let peers: Vec<&str> = options.peers.iter().map(|p| p.name()).collect();
    println!(
        "mjpeg_load: {} at {:?} viewers, {} s warm-up then {} s measured each, on {} cores",
        peers.join(" and "),
        options.viewers,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if let Some(frames) = &frames {
        let mean = frames.iter().map(Vec::len).sum::<usize>() / frames.len().max(1);
        println!(
            "frames: {} ffmpeg testsrc2 JPEGs {FEED_WIDTH}x{FEED_HEIGHT} (-q:v {FEED_QUALITY}), \
             {mean} bytes on average, fed at {FEED_FPS} fps",
            frames.len()
        );
    }
    let mut results = Vec::new();
    for round in 1..=options.rounds {
        for &viewers in &options.viewers {
            // The peers in turn: the first of a pair runs on a slightly different machine state.
            let mut peers = options.peers.clone();
            if round % 2 == 0 {
                peers.reverse();
            }
            for peer in peers {
                if !results.is_empty() {
                    tokio::time::sleep(SCENARIO_PAUSE).await;
                }
                let target = match Target::open(peer, options, frames.as_ref()) {
                    Ok(target) => target,
                    Err(error) => {
                        eprintln!("mjpeg_load: {}: {error}", peer.name());
                        continue;
                    }
                };
                println!();
                println!(
                    "== round {round}: {viewers} viewers against {} ==",
                    target.describe()
                );
                if peer == Peer::Framecast
                    && let Err(error) = server::status(target.addr).await
                {
                    eprintln!(
                        "mjpeg_load: the server does not answer /status ({error}); no figures"
                    );
                    continue;
                }
                let mut result = run_scenario(&target, viewers, options).await;
                result.round = round;
                print_scenario(&result);
                results.push(result);
            }
        }
    }
    results
}

/// When things happen in one scenario.
struct Plan {
    addr: SocketAddr,
    measure_start: Instant,
    measure_end: Instant,
    stop_at: Instant,
}

/// What one viewer saw.
#[derive(Debug, Default)]
struct ViewerReport {
    /// Got a `200` response head.
    streaming: bool,
    parts_in_window: u32,
    /// Capture-to-receipt latency of each part in the window, in microseconds.
    latencies_us: Vec<u32>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    error: Option<String>,
}

impl ViewerReport {
    /// Source frames between the first and last part in the window that this viewer never got.
    fn missed_frames(&self) -> u64 {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => {
                (last - first + 1).saturating_sub(u64::from(self.parts_in_window))
            }
            _ => 0,
        }
    }
}

async fn run_viewer(connect_at: Instant, plan: Arc<Plan>) -> ViewerReport {
    tokio::time::sleep_until(connect_at).await;
    let mut report = ViewerReport::default();
    match tokio::time::timeout_at(plan.stop_at, follow_stream(&plan, &mut report)).await {
        // The normal end: the scenario is over.
        Err(_elapsed) => {}
        Ok(Ok(())) => report.error = Some("the server closed the stream".into()),
        Ok(Err(error)) => report.error = Some(error),
    }
    report
}

/// Reads the stream until it ends or fails, recording the parts that complete in the window.
async fn follow_stream(plan: &Plan, report: &mut ViewerReport) -> Result<(), String> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut stream = TcpStream::connect(plan.addr).await?;
        stream.write_all(REQUEST).await?;
        Ok::<_, std::io::Error>(stream)
    })
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| format!("connect: {}", e.kind()))?;

    let mut parser = StreamParser::default();
    let mut buf = vec![0u8; READ_BUF_BYTES];
    let mut parts = Vec::new();
    loop {
        let len = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {}", e.kind()))?;
        if len == 0 {
            return Ok(());
        }
        parser.feed(&buf[..len], &mut parts)?;
        report.streaming = parser.is_streaming();
        if parts.is_empty() {
            continue;
        }
        // Every part completed by this read arrived now.
        let now = Instant::now();
        if now >= plan.measure_start && now < plan.measure_end {
            let now_us = unix_micros(SystemTime::now());
            for part in &parts {
                report.parts_in_window += 1;
                // The feeder's stamp where there is one: the same clock for every server.
                let origin_us = part
                    .stamp
                    .map(|stamp| stamp.fed_unix_micros)
                    .or(part.captured_unix_micros);
                if let Some(origin_us) = origin_us {
                    let latency_us = now_us.saturating_sub(origin_us);
                    report
                        .latencies_us
                        .push(u32::try_from(latency_us).unwrap_or(u32::MAX));
                }
                if let Some(seq) = part.stamp.map(|stamp| stamp.seq).or(part.seq) {
                    report.first_seq.get_or_insert(seq);
                    report.last_seq = Some(seq);
                }
            }
        }
        parts.clear();
    }
}

/// Readings taken at the start and the end of the window.
struct Reading {
    at: Instant,
    server_ticks: Option<u64>,
    own_ticks: Option<u64>,
    machine_ticks: Option<u64>,
    threads: BTreeMap<u64, (String, u64)>,
    /// Scheduler run time of each of the server's threads, in nanoseconds, by thread id.
    thread_run_ns: BTreeMap<u64, u64>,
    status: Option<serde_json::Value>,
}

impl Reading {
    async fn take(target: &Target) -> Self {
        let pid = target.pid.map(|p| p.to_string());
        let reading = Self {
            at: Instant::now(),
            server_ticks: pid.as_deref().and_then(proc_stats::process_cpu_ticks),
            own_ticks: proc_stats::process_cpu_ticks("self"),
            machine_ticks: proc_stats::machine_busy_ticks(),
            threads: pid
                .as_deref()
                .map(proc_stats::thread_cpu_ticks)
                .unwrap_or_default(),
            thread_run_ns: pid
                .as_deref()
                .map(proc_stats::thread_run_ns)
                .unwrap_or_default(),
            status: None,
        };
        // After the CPU readings, so that serving /status falls outside the window.
        let status = match target.peer {
            Peer::Framecast => server::status(target.addr)
                .await
                .map_err(|e| eprintln!("mjpeg_load: /status: {e}"))
                .ok(),
            Peer::Vlc => None,
        };
        Self { status, ..reading }
    }

    fn status_f64(&self, pointer: &str) -> Option<f64> {
        self.status.as_ref()?.pointer(pointer)?.as_f64()
    }
}

/// Figures of one scenario.
struct ScenarioResult {
    /// Which round of the comparison, from 1.
    round: usize,
    peer: Peer,
    viewers: usize,
    /// Parts all viewers received in the window.
    delivered_frames: u64,
    /// Server CPU time in the window over `delivered_frames`, in milliseconds.
    cpu_ms_per_frame: Option<f64>,
    /// The same from the threads' scheduler run time (nanosecond counts).
    run_ms_per_frame: Option<f64>,
    streaming: usize,
    /// Viewer errors by message, with counts.
    errors: BTreeMap<String, usize>,
    window: Duration,
    /// Per-viewer frame rate: min, median, max.
    fps: Option<[f64; 3]>,
    /// Latency in ms: p50, p99, max.
    latency_ms: Option<[f64; 3]>,
    latency_samples: usize,
    missed_frames: u64,
    server_cores: Option<f64>,
    server_rss_max_bytes: Option<u64>,
    threads: Vec<(String, usize, f64)>,
    generator_cores: Option<f64>,
    /// Every other process on the machine: busy cores minus the server and the generator.
    other_cores: Option<f64>,
    source_fps: Option<f64>,
    jpeg_fps: Option<f64>,
    encode_ms_mean: Option<f64>,
    jpeg_skipped: Option<f64>,
    viewer_skipped: Option<f64>,
}

async fn run_scenario(target: &Target, viewers: usize, options: &Options) -> ScenarioResult {
    let ticks_per_s = proc_stats::clock_ticks_per_s();
    let pid = target.pid.map(|p| p.to_string());
    let ramp_start = Instant::now();
    let ramp = RAMP_SPACING * u32::try_from(viewers).unwrap_or(u32::MAX);
    let measure_start = ramp_start + ramp + options.warmup;
    let measure_end = measure_start + options.duration;
    let plan = Arc::new(Plan {
        addr: target.addr,
        measure_start,
        measure_end,
        stop_at: measure_end + STOP_GRACE,
    });
    let mut tasks = JoinSet::new();
    for i in 0..viewers {
        let connect_at = ramp_start + RAMP_SPACING * u32::try_from(i).unwrap_or(u32::MAX);
        tasks.spawn(run_viewer(connect_at, plan.clone()));
    }

    let mut rss_max = None;
    sample_rss_until(measure_start, pid.as_deref(), &mut rss_max).await;
    let before = Reading::take(target).await;
    sample_rss_until(measure_end, pid.as_deref(), &mut rss_max).await;
    let after = Reading::take(target).await;

    let mut reports = Vec::with_capacity(viewers);
    let collect_deadline = plan.stop_at + COLLECT_TIMEOUT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(collect_deadline, tasks.join_next()).await
    {
        match joined {
            Ok(report) => reports.push(report),
            Err(error) => eprintln!("mjpeg_load: a viewer task failed: {error}"),
        }
    }
    tasks.abort_all();

    summarize(
        target.peer,
        viewers,
        &reports,
        &before,
        &after,
        ticks_per_s,
        rss_max,
    )
}

async fn sample_rss_until(until: Instant, pid: Option<&str>, rss_max: &mut Option<u64>) {
    loop {
        if let Some(rss) = pid.and_then(proc_stats::rss_bytes) {
            *rss_max = Some(rss_max.map_or(rss, |max: u64| max.max(rss)));
        }
        let now = Instant::now();
        if now >= until {
            return;
        }
        tokio::time::sleep_until(until.min(now + RSS_SAMPLE_INTERVAL)).await;
    }
}

fn summarize(
    peer: Peer,
    viewers: usize,
    reports: &[ViewerReport],
    before: &Reading,
    after: &Reading,
    ticks_per_s: u64,
    rss_max: Option<u64>,
) -> ScenarioResult {
    let window = after.at - before.at;
    let mut errors = BTreeMap::new();
    for error in reports.iter().filter_map(|r| r.error.as_ref()) {
        *errors.entry(error.clone()).or_insert(0) += 1;
    }
    // Viewers whose task never reported count as 0 fps.
    let mut fps: Vec<f64> = reports
        .iter()
        .map(|r| f64::from(r.parts_in_window) / window.as_secs_f64())
        .chain(std::iter::repeat_n(
            0.0,
            viewers.saturating_sub(reports.len()),
        ))
        .collect();
    fps.sort_by(f64::total_cmp);
    let mut latencies: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let ms = |us: u32| f64::from(us) / 1000.0;

    let cpu = |before: Option<u64>, after: Option<u64>| {
        Some(proc_stats::cores(before?, after?, ticks_per_s, window))
    };
    let status_delta =
        |pointer: &str| Some(after.status_f64(pointer)? - before.status_f64(pointer)?);
    // /status gives a running mean; the window's mean follows from the two means and counts.
    let encode_ms_mean = (|| {
        let (n0, n1) = (
            before.status_f64("/jpeg/frames_encoded")?,
            after.status_f64("/jpeg/frames_encoded")?,
        );
        let (m0, m1) = (
            before.status_f64("/jpeg/encode_ms_mean")?,
            after.status_f64("/jpeg/encode_ms_mean")?,
        );
        (n1 > n0).then(|| (m1 * n1 - m0 * n0) / (n1 - n0))
    })();

    let server_cores = cpu(before.server_ticks, after.server_ticks);
    let delivered_frames: u64 = reports.iter().map(|r| u64::from(r.parts_in_window)).sum();
    let cpu_ms_per_frame = (|| {
        let ticks = after.server_ticks?.checked_sub(before.server_ticks?)?;
        let cpu_ms = ticks as f64 * 1000.0 / ticks_per_s as f64;
        (delivered_frames > 0).then(|| cpu_ms / delivered_frames as f64)
    })();
    // Threads that ended within the window are missed; both servers keep theirs.
    let run_ns: u64 = after
        .thread_run_ns
        .iter()
        .map(|(tid, ns)| {
            let earlier = before.thread_run_ns.get(tid).copied().unwrap_or(0);
            ns.saturating_sub(earlier)
        })
        .sum();
    let run_ms_per_frame =
        (run_ns > 0 && delivered_frames > 0).then(|| run_ns as f64 / 1e6 / delivered_frames as f64);
    let generator_cores = cpu(before.own_ticks, after.own_ticks);
    let other_cores = cpu(before.machine_ticks, after.machine_ticks).map(|machine| {
        (machine - server_cores.unwrap_or(0.0) - generator_cores.unwrap_or(0.0)).max(0.0)
    });

    ScenarioResult {
        round: 1,
        peer,
        viewers,
        delivered_frames,
        cpu_ms_per_frame,
        run_ms_per_frame,
        streaming: reports.iter().filter(|r| r.streaming).count(),
        errors,
        window,
        fps: percentile(&fps, 0.0).map(|min| {
            [
                min,
                percentile(&fps, 0.5).unwrap_or(min),
                percentile(&fps, 1.0).unwrap_or(min),
            ]
        }),
        latency_ms: percentile(&latencies, 0.5).map(|p50| {
            [
                ms(p50),
                percentile(&latencies, 0.99).map_or(0.0, ms),
                percentile(&latencies, 1.0).map_or(0.0, ms),
            ]
        }),
        latency_samples: latencies.len(),
        missed_frames: reports.iter().map(ViewerReport::missed_frames).sum(),
        server_cores,
        server_rss_max_bytes: rss_max,
        threads: proc_stats::thread_cores(&before.threads, &after.threads, ticks_per_s, window),
        generator_cores,
        other_cores,
        source_fps: status_delta("/source/frames").map(|n| n / window.as_secs_f64()),
        jpeg_fps: status_delta("/jpeg/frames_encoded").map(|n| n / window.as_secs_f64()),
        encode_ms_mean,
        jpeg_skipped: status_delta("/jpeg/frames_skipped"),
        viewer_skipped: status_delta("/viewer_frames_skipped_total"),
    }
}

/// Nearest-rank percentile of sorted values; `q` from 0 (min) to 1 (max).
fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1);
    sorted.get(rank.min(last)).copied()
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.decimals$}"))
}

fn mb(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / 1e6)
}

fn print_scenario(r: &ScenarioResult) {
    let [fps_min, fps_med, fps_max] = r.fps.map_or([None; 3], |f| f.map(Some));
    let [p50, p99, max] = r.latency_ms.map_or([None; 3], |l| l.map(Some));
    println!(
        "  viewers streaming {}/{}, window {:.2} s, {} latency samples, {} frames missed by viewers",
        r.streaming,
        r.viewers,
        r.window.as_secs_f64(),
        r.latency_samples,
        r.missed_frames
    );
    for (error, count) in &r.errors {
        println!("  viewer error x{count}: {error}");
    }
    println!(
        "  fps per viewer min/median/max {} / {} / {}",
        opt(fps_min, 1),
        opt(fps_med, 1),
        opt(fps_max, 1)
    );
    println!(
        "  server CPU per delivered frame {} ms, by run time {} ms ({} frames delivered to all \
         viewers)",
        opt(r.cpu_ms_per_frame, 4),
        opt(r.run_ms_per_frame, 4),
        r.delivered_frames
    );
    println!(
        "  latency capture->receipt p50/p99/max {} / {} / {} ms",
        opt(p50, 1),
        opt(p99, 1),
        opt(max, 1)
    );
    println!(
        "  server CPU {} cores, RSS max {} MB; generator CPU {} cores; other processes {} cores",
        opt(r.server_cores, 2),
        opt(mb(r.server_rss_max_bytes), 1),
        opt(r.generator_cores, 2),
        opt(r.other_cores, 2)
    );
    println!(
        "  server /status: source {} fps, JPEG {} fps, encode {} ms mean, skipped in window: \
         JPEG stage {}, viewers {}",
        opt(r.source_fps, 1),
        opt(r.jpeg_fps, 1),
        opt(r.encode_ms_mean, 2),
        opt(r.jpeg_skipped, 0),
        opt(r.viewer_skipped, 0)
    );
    if !r.threads.is_empty() {
        let busiest: Vec<String> = r
            .threads
            .iter()
            .take(6)
            .map(|(name, count, cores)| {
                let times = if *count > 1 {
                    format!(" x{count}")
                } else {
                    String::new()
                };
                format!("{name}{times} {cores:.2}")
            })
            .collect();
        println!("  server threads (cores): {}", busiest.join(", "));
    }
}

/// "ok" or "MISS" against a target, blank where it does not apply.
fn verdict(value: Option<f64>, meets: impl Fn(f64) -> bool, applies: bool) -> &'static str {
    match (applies, value) {
        (false, _) | (true, None) => "",
        (true, Some(v)) if meets(v) => " ok",
        (true, Some(_)) => " MISS",
    }
}

fn print_summary(results: &[&ScenarioResult], options: &Options) {
    println!();
    println!(
        "summary of round 1 of {} ({} s measured per scenario; targets from the design notes)",
        options.rounds,
        options.duration.as_secs_f64()
    );
    let mut header = format!("{:<28}", "figure");
    for r in results {
        header += &format!("{:>17}", format!("{} {}", r.peer.name(), r.viewers));
    }
    println!("{header}   target");

    type Cell = Box<dyn Fn(&ScenarioResult) -> (Option<f64>, &'static str)>;
    let fps = |i: usize| -> Cell { Box::new(move |r| (r.fps.map(|f| f[i]), "")) };
    let lat = |i: usize| -> Cell { Box::new(move |r| (r.latency_ms.map(|l| l[i]), "")) };
    let rows: Vec<(&str, usize, Cell, &str)> = vec![
        (
            "viewers streaming",
            0,
            Box::new(|r| (Some(r.streaming as f64), "")),
            "",
        ),
        ("fps per viewer min", 1, fps(0), ""),
        (
            "fps per viewer median",
            1,
            Box::new(|r| {
                let v = r.fps.map(|f| f[1]);
                (v, verdict(v, |v| v >= TARGET_MEDIAN_FPS, true))
            }),
            ">= 29 (500 viewers)",
        ),
        ("fps per viewer max", 1, fps(2), ""),
        (
            "CPU ms per delivered frame",
            4,
            Box::new(|r| (r.cpu_ms_per_frame, "")),
            "framecast <= 0.5 x VLC",
        ),
        (
            "  by run time (ns counts)",
            4,
            Box::new(|r| (r.run_ms_per_frame, "")),
            "",
        ),
        ("latency p50 ms", 1, lat(0), ""),
        (
            "latency p99 ms",
            1,
            Box::new(|r| {
                let v = r.latency_ms.map(|l| l[1]);
                let applies = r.viewers <= TARGET_P99_VIEWERS;
                (v, verdict(v, |v| v <= TARGET_P99_MS, applies))
            }),
            "<= 50 (100 viewers)",
        ),
        ("latency max ms", 1, lat(2), ""),
        (
            "server CPU cores",
            2,
            Box::new(|r| {
                let v = r.server_cores;
                (v, verdict(v, |v| v <= TARGET_SERVER_CORES, true))
            }),
            "<= 1",
        ),
        (
            "server RSS max MB",
            1,
            Box::new(|r| {
                let v = mb(r.server_rss_max_bytes);
                let limit_mb = TARGET_RSS_BYTES as f64 / 1e6;
                (v, verdict(v, |v| v <= limit_mb, true))
            }),
            "<= 100",
        ),
        (
            "generator CPU cores",
            2,
            Box::new(|r| (r.generator_cores, "")),
            "",
        ),
        (
            "other processes, cores",
            2,
            Box::new(|r| (r.other_cores, "")),
            "(shares the same cores)",
        ),
        (
            "JPEG encode ms (mean)",
            2,
            Box::new(|r| (r.encode_ms_mean, "")),
            "",
        ),
        ("JPEG frames/s", 1, Box::new(|r| (r.jpeg_fps, "")), ""),
        (
            "skipped, JPEG stage",
            0,
            Box::new(|r| (r.jpeg_skipped, "")),
            "",
        ),
        (
            "skipped, all viewers",
            0,
            Box::new(|r| (r.viewer_skipped, "")),
            "",
        ),
    ];
    for (name, decimals, cell, target) in rows {
        let mut line = format!("{name:<28}");
        for r in results {
            let (value, mark) = cell(r);
            line += &format!("{:>17}", format!("{}{mark}", opt(value, decimals)));
        }
        println!("{line}   {target}");
    }
}

/// framecast's CPU per delivered frame over VLC's, for each viewer count both were run at:
/// from clock ticks, then from run time.
fn print_ratios(results: &[ScenarioResult]) {
    print_ratio_line(results, "CPU per delivered frame", |r| r.cpu_ms_per_frame);
    print_ratio_line(results, "  the same by run time", |r| r.run_ms_per_frame);
}

fn print_ratio_line(
    results: &[ScenarioResult],
    title: &str,
    figure: impl Fn(&ScenarioResult) -> Option<f64>,
) {
    let of = |peer: Peer, viewers: usize, round: usize| {
        results
            .iter()
            .find(|r| r.peer == peer && r.viewers == viewers && r.round == round)
            .and_then(&figure)
    };
    let mut counts: Vec<usize> = results.iter().map(|r| r.viewers).collect();
    counts.sort_unstable();
    counts.dedup();
    let rounds = results.iter().map(|r| r.round).max().unwrap_or(0);
    let rows: Vec<String> = counts
        .into_iter()
        .filter_map(|viewers| {
            let mut ratios: Vec<f64> = (1..=rounds)
                .filter_map(|round| {
                    Some(of(Peer::Framecast, viewers, round)? / of(Peer::Vlc, viewers, round)?)
                })
                .collect();
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            ratios.sort_by(f64::total_cmp);
            let median = median(&ratios)?;
            let mark = verdict(Some(median), |r| r <= TARGET_CPU_RATIO, true);
            Some(if ratios.len() > 1 {
                format!(
                    "{viewers} viewers {median:.2}{mark} (rounds {})",
                    each.join(" ")
                )
            } else {
                format!("{viewers} viewers {median:.2}{mark}")
            })
        })
        .collect();
    if !rows.is_empty() {
        println!();
        println!(
            "{title}, framecast / VLC, median of rounds (target <= {TARGET_CPU_RATIO}): {}",
            rows.join(", ")
        );
    }
}

/// The median of `sorted` (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> Option<f64> {
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2.0),
    }
}
