//! What MJPEG passthrough saves: server CPU per frame at 720p30 when a pipe delivers JPEGs
//! that go to viewers as they are (`--source pipe:mjpeg`), against raw frames that must be
//! JPEG-encoded (`--source pipe:yuv420p`).
//!
//! For each scenario it starts the release `framecast` binary with `--no-hls` (so only the
//! MJPEG path is measured) and standard input piped, writes frames into it at 30 fps from a
//! thread of its own (60 test-pattern frames, pre-rendered and, for the JPEG scenario,
//! pre-encoded with turbojpeg at quality 80, then looped), keeps one MJPEG viewer reading
//! `/stream.mjpg`, warms up, then measures the server's CPU (utime + stime from
//! `/proc/PID/stat`, also per thread) over a fixed window. It prints milliseconds of server
//! CPU per frame and the ratio of the two; it measures, it does not assert.
//!
//! Environment: `FRAMECAST_PASSTHROUGH_SECONDS` (10) measured per scenario, `FRAMECAST_BIN`
//! (the binary cargo built for this bench).

// The parts of the MJPEG generator's support this bench shares; it does not use all of them.
#[allow(dead_code)]
#[path = "common/mjpeg_parts.rs"]
mod mjpeg_parts;
#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use framecast::frame::FrameSize;
use framecast::source::TestPattern;

/// The figure's picture size and rate: 720p30, as the design's performance targets.
const SIZE: FrameSize = FrameSize::new(1280, 720);
const FPS: u32 = 30;
/// Distinct frames looped by the writer: two seconds' worth, so consecutive frames differ
/// the way a live picture does.
const LOOP_FRAMES: u64 = 60;
/// JPEG quality of the pre-encoded frames: framecast's default, so both scenarios send
/// viewers JPEGs of about the same size.
const JPEG_QUALITY: i32 = 80;
/// Measured window per scenario unless the environment says otherwise.
const DEFAULT_MEASURE: Duration = Duration::from_secs(10);
/// Not measured: start-up, the first viewer's connection, encoder threads getting going.
const WARMUP: Duration = Duration::from_secs(2);
/// How long the binary may take to print its address on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounds each socket read of the viewer, so it notices the end of the scenario.
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// The announcement `app::run` prints on standard output once it accepts connections.
const ANNOUNCE_PREFIX: &str = "framecast listening on http://";
/// The viewer's request: HTTP/1.0 and a non-browser User-Agent, as a typical MJPEG client.
const REQUEST: &[u8] =
    b"GET /stream.mjpg HTTP/1.0\r\nHost: framecast\r\nUser-Agent: framecast-passthrough-bench/1\r\n\r\n";

/// One way of feeding the server.
struct Scenario {
    name: &'static str,
    source: &'static str,
    /// What the writer loops over: whole frames, each written with one `write_all`.
    frames: Arc<Vec<Vec<u8>>>,
}

/// What one scenario measured.
struct Measured {
    name: &'static str,
    window: Duration,
    frames_written: u64,
    parts_received: u64,
    server_cpu_s: f64,
    bench_cpu_s: f64,
    threads: Vec<(String, usize, f64)>,
}

impl Measured {
    fn ms_per_frame(&self) -> f64 {
        self.server_cpu_s * 1000.0 / self.frames_written.max(1) as f64
    }
}

fn main() -> ExitCode {
    let measure = std::env::var("FRAMECAST_PASSTHROUGH_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| (1..=600).contains(&s))
        .map_or(DEFAULT_MEASURE, Duration::from_secs);
    let binary = binary_path();
    println!(
        "passthrough: {SIZE} at {FPS} fps, one MJPEG viewer, --no-hls, {} s measured after {} s warm-up",
        measure.as_secs(),
        WARMUP.as_secs()
    );
    let (raw, jpegs) = frames();
    let mean_jpeg = jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len();
    println!(
        "frames: {LOOP_FRAMES} test-pattern pictures, {} bytes raw, JPEGs {mean_jpeg} bytes on average",
        SIZE.i420_len()
    );
    let scenarios = [
        Scenario {
            name: "passthrough",
            source: "pipe:mjpeg",
            frames: Arc::new(jpegs),
        },
        Scenario {
            name: "re-encode",
            source: "pipe:yuv420p",
            frames: Arc::new(raw),
        },
    ];
    let mut results = Vec::new();
    for scenario in &scenarios {
        match run(&binary, scenario, measure) {
            Ok(measured) => results.push(measured),
            Err(error) => {
                eprintln!("{}: {error}", scenario.name);
                return ExitCode::FAILURE;
            }
        }
    }
    report(&results);
    ExitCode::SUCCESS
}

/// The release binary: `FRAMECAST_BIN` if set, else the one cargo built for this bench.
fn binary_path() -> PathBuf {
    std::env::var_os("FRAMECAST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_framecast")))
}

/// The looped frames as I420 and as JPEGs.
fn frames() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut pattern = TestPattern::new(SIZE, FPS);
    let mut compressor = turbojpeg::Compressor::new().expect("turbojpeg compressor");
    compressor.set_quality(JPEG_QUALITY).expect("quality");
    compressor
        .set_subsamp(turbojpeg::Subsamp::Sub2x2)
        .expect("subsampling");
    let mut raw = Vec::new();
    let mut jpegs = Vec::new();
    for seq in 1..=LOOP_FRAMES {
        let mut i420 = vec![0; SIZE.i420_len()];
        pattern.render(seq, SystemTime::now(), &mut i420);
        let image = turbojpeg::YuvImage {
            pixels: &i420[..],
            width: SIZE.width as usize,
            align: 1,
            height: SIZE.height as usize,
            subsamp: turbojpeg::Subsamp::Sub2x2,
        };
        jpegs.push(compressor.compress_yuv_to_vec(image).expect("encode"));
        raw.push(i420);
    }
    (raw, jpegs)
}

/// A framecast started with standard input piped; killed when dropped.
struct Spawned {
    addr: SocketAddr,
    child: Child,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Only this child, by its handle; errors mean it has already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &PathBuf, source: &str) -> Result<(Spawned, ChildStdin), String> {
    if !binary.is_file() {
        return Err(format!("{} is missing", binary.display()));
    }
    let size = SIZE.to_string();
    let fps = FPS.to_string();
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--no-hls", "--source", source])
        .args(["--size", &size, "--fps", &fps])
        // Warnings and errors only: info lines would interleave with the report.
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no pipes to framecast".into());
    };
    // Killed on drop if it never says where it listens.
    let mut spawned = Spawned {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        child,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps reading after the announcement so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(ANNOUNCE_PREFIX) {
                let _ = tx.send(rest.trim_end_matches('/').to_owned());
            }
        }
    });
    let text = rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("framecast did not print its address in {START_TIMEOUT:?}"))?;
    spawned.addr = text
        .parse()
        .map_err(|_| format!("framecast printed an address I cannot read: `{text}`"))?;
    Ok((spawned, stdin))
}

/// Writes `frames` in a loop at [`FPS`] until `stop`, counting frames written. A writer that
/// falls behind skips the missed slots rather than bursting.
fn start_writer(
    mut stdin: ChildStdin,
    frames: Arc<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let interval = Duration::from_secs(1) / FPS;
        let mut due = Instant::now();
        for frame in frames.iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else if now - due > interval {
                due = now;
            }
            due += interval;
            if stdin.write_all(frame).is_err() {
                break;
            }
            written.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// One MJPEG viewer reading as fast as parts come, counting them.
fn start_viewer(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    parts: Arc<AtomicU64>,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("viewer connect: {e}"))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| format!("viewer timeout: {e}"))?;
    stream
        .write_all(REQUEST)
        .map_err(|e| format!("viewer request: {e}"))?;
    Ok(std::thread::spawn(move || {
        let mut parser = mjpeg_parts::StreamParser::default();
        let mut buf = vec![0; 64 * 1024];
        let mut done = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buf) {
                Ok(0) => return Err("the stream ended".into()),
                Ok(n) => {
                    parser.feed(&buf[..n], &mut done)?;
                    parts.fetch_add(done.len() as u64, Ordering::Relaxed);
                    done.clear();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("viewer read: {e}")),
            }
        }
        Ok(())
    }))
}

fn run(binary: &PathBuf, scenario: &Scenario, measure: Duration) -> Result<Measured, String> {
    let (server, stdin) = spawn(binary, scenario.source)?;
    let pid = server.child.id().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let parts = Arc::new(AtomicU64::new(0));
    let writer = start_writer(
        stdin,
        scenario.frames.clone(),
        stop.clone(),
        written.clone(),
    );
    let viewer = start_viewer(server.addr, stop.clone(), parts.clone())?;
    std::thread::sleep(WARMUP);

    let ticks_per_s = proc_stats::clock_ticks_per_s();
    let cpu = |who: &str| proc_stats::process_cpu_ticks(who).ok_or("no /proc CPU figures");
    let (server_before, bench_before) = (cpu(&pid)?, cpu("self")?);
    let threads_before = proc_stats::thread_cpu_ticks(&pid);
    let (written_before, parts_before) = (
        written.load(Ordering::Relaxed),
        parts.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    std::thread::sleep(measure);
    let window = started.elapsed();
    let (server_after, bench_after) = (cpu(&pid)?, cpu("self")?);
    let threads_after = proc_stats::thread_cpu_ticks(&pid);
    let (written_after, parts_after) = (
        written.load(Ordering::Relaxed),
        parts.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    drop(server);
    let _ = writer.join();
    let viewer_outcome = viewer
        .join()
        .map_err(|_| "the viewer thread panicked".to_owned())?;
    if let Err(error) = viewer_outcome {
        // The server was killed first, so an ended stream is expected; anything else is not.
        if !error.contains("ended") {
            return Err(error);
        }
    }
    let seconds = |ticks: u64| ticks as f64 / ticks_per_s as f64;
    Ok(Measured {
        name: scenario.name,
        window,
        frames_written: written_after - written_before,
        parts_received: parts_after - parts_before,
        server_cpu_s: seconds(server_after.saturating_sub(server_before)),
        bench_cpu_s: seconds(bench_after.saturating_sub(bench_before)),
        threads: proc_stats::thread_cores(&threads_before, &threads_after, ticks_per_s, window),
    })
}

fn report(results: &[Measured]) {
    println!();
    println!(
        "{:<12} {:>8} {:>7} {:>7} {:>12} {:>7} {:>12} {:>11}",
        "scenario",
        "window_s",
        "frames",
        "parts",
        "server_cpu_s",
        "cores",
        "ms_cpu/frame",
        "bench_cpu_s"
    );
    for m in results {
        println!(
            "{:<12} {:>8.1} {:>7} {:>7} {:>12.2} {:>7.3} {:>12.3} {:>11.2}",
            m.name,
            m.window.as_secs_f64(),
            m.frames_written,
            m.parts_received,
            m.server_cpu_s,
            m.server_cpu_s / m.window.as_secs_f64(),
            m.ms_per_frame(),
            m.bench_cpu_s,
        );
    }
    for m in results {
        let busiest: Vec<String> = m
            .threads
            .iter()
            .filter(|(_, _, cores)| *cores >= 0.001)
            .take(5)
            .map(|(name, count, cores)| format!("{name} x{count} {cores:.3}"))
            .collect();
        println!("{} threads (cores): {}", m.name, busiest.join(", "));
    }
    if let [passthrough, reencode] = results {
        let ratio = passthrough.ms_per_frame() / reencode.ms_per_frame().max(f64::EPSILON);
        println!();
        println!(
            "passthrough / re-encode CPU per frame: {ratio:.3} ({:.3} ms vs {:.3} ms)",
            passthrough.ms_per_frame(),
            reencode.ms_per_frame()
        );
    }
}
