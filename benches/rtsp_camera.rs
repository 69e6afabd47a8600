//! An H.264 RTSP camera at 1280x720, 30 fps, one key frame a second, served by framecast and by
//! what a user would script with ffmpeg instead, side by side in one run.
//!
//! The camera is the tests' real RTSP server (`tests/fixtures/rtsp_server.py`: gst-rtsp-server
//! and x264 through python3-gi) with `--shared`, so every RTSP client of the run reads ONE
//! encoder, as they would a camera; its picture is SMPTE bars moving sideways, which x264 sends
//! at about 2 Mbit/s, as a 720p camera does. An `ffmpeg -c copy -f null` client keeps it
//! streaming from start to end (see [`Camera`]). The camera's own CPU is shown but counted in
//! no figure. Each scenario warms up, then measures a fixed window: the scheduler's run time
//! of each process's threads (`/proc/PID/task/*/schedstat`, nanoseconds, where a window holds
//! only tens of clock ticks), with utime + stime from `/proc/PID/stat` beside it.
//!
//! 1. Passthrough (`--source rtsp://… --hls always`) with no viewer, then with 50 LL-HLS
//!    viewers doing what hls.js does (`benches/common/llhls_viewer.rs`), against
//!    `ffmpeg -c copy -f hls` into a temporary directory, the remux a user would script, which
//!    serves nobody. CPU in cores and in ms per camera frame, and framecast / ffmpeg. `/status`
//!    must say `hls.passthrough` with no frame encoded (H.264 or JPEG) nor decoded.
//! 2. One MJPEG viewer: framecast decoding the RTSP stream itself and encoding JPEGs
//!    (`--hls off`), against ffmpeg decoding it into a pipe (`-f rawvideo -pix_fmt yuv420p -`)
//!    read by framecast as `--source pipe:yuv420p`. CPU of framecast alone against ffmpeg +
//!    framecast, ms per JPEG the viewer received, and the ratio.
//! 3. Cold snapshots: `/snapshot.jpg` with nobody watching, each after a pause longer than a
//!    snapshot keeps the JPEG stage running (3 s, `SNAPSHOT_DEMAND_HOLD` in `src/hub`), so
//!    every request finds the decoder stopped. Time to the whole response, p50 and max, beside
//!    what waiting for the camera's next key frame would cost (half the key-frame interval on
//!    average), and the frames decoded per snapshot (`jpeg.decode.frames_decoded`).
//! 4. Eight streams in one process (`--config`, every stream on the camera's URL, HLS always),
//!    one LL-HLS viewer per stream, no MJPEG viewer: framecast's CPU per stream as a share of
//!    a core (target ≤ 2 %, the design's figure for RTSP passthrough).
//!
//! Ends with a summary table: figure, value, target, ok/MISS. It measures, it does not assert:
//! it always exits 0 (a missing prerequisite prints one line naming it), except 2 for a bad
//! command line. All traffic stays on loopback; every wait is bounded.
//!
//! Options (after `--`): `--quick` (or `RTSP_CAMERA_QUICK=1`) for a short look (3 s measured,
//! 2 s warm-up, 3 snapshots); `--seconds N` (or `RTSP_CAMERA_SECONDS`, 1 to 600) measured per
//! scenario, 10 by default. About two and a half minutes in all.
//! `FRAMECAST_BIN` names another framecast binary.

// The shared bench support; this bench uses part of it.
#[allow(dead_code)]
#[path = "common/mjpeg_parts.rs"]
mod mjpeg_parts;
#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;
// Fetch times are for the HLS load generator.
#[allow(dead_code)]
#[path = "common/llhls_viewer.rs"]
mod llhls_viewer;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use server::Spawned;

/// The python3 that has python3-gi (Debian's), not one a version manager puts first in PATH.
const PYTHON: &str = "/usr/bin/python3";
const RTSP_SERVER_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rtsp_server.py");
/// The camera: 720p30 with a key frame every 30 frames (1 s), one encoder for every client.
const CAMERA_SIZE: &str = "1280x720";
const CAMERA_FPS: u32 = 30;
const CAMERA_KEY_INT_FRAMES: u32 = 30;
/// SMPTE bars moving 3 pixels a frame: x264 fills its default 2 Mbit/s with them, about what a
/// 720p camera sends (the tests' bouncing ball is a tenth of that).
const CAMERA_PATTERN: &str = "smpte";
/// How long the camera may take to say its port.
const CAMERA_START_TIMEOUT: Duration = Duration::from_secs(20);

const HLS_VIEWERS: usize = 50;
const STREAMS: usize = 8;
/// Snapshots asked for in scenario 3 (3 quick).
const SNAPSHOTS: usize = 8;
const SNAPSHOTS_QUICK: usize = 3;
/// A snapshot keeps JPEG demand for 3 s (`SNAPSHOT_DEMAND_HOLD` in src/hub); a pause of more
/// than that, plus a margin for a loaded machine, makes the next request a cold one.
const SNAPSHOT_PAUSE: Duration = Duration::from_millis(4500);
/// Bounds one HTTP request of this bench (a cold snapshot decodes up to a second of video).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long framecast may take to get the camera's first GOP.
const SOURCE_LIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `/status` is asked while waiting for a state.
const STATUS_POLL: Duration = Duration::from_millis(250);
/// Viewers connect this far apart, so that the accept queue never overflows.
const VIEWER_CONNECT_GAP: Duration = Duration::from_millis(2);
const READ_BUF_BYTES: usize = 64 * 1024;

/// The design's target for RTSP passthrough: 2 % of a core per 720p30 stream with HLS
/// viewers and no JPEG viewer.
const TARGET_CORES_PER_STREAM: f64 = 0.02;

struct Options {
    quick: bool,
    warm_up: Duration,
    measure: Duration,
    snapshots: usize,
}

const USAGE: &str = "usage: rtsp_camera [--quick] [--seconds N]   (N from 1 to 600)";

/// The options from the command line and the environment; `Err` is a bad command line.
fn options() -> Result<Options, String> {
    let mut quick = std::env::var("RTSP_CAMERA_QUICK").is_ok_and(|v| v == "1");
    let mut seconds: Option<u64> = match std::env::var("RTSP_CAMERA_SECONDS") {
        Ok(text) => Some(
            text.parse()
                .map_err(|_| format!("RTSP_CAMERA_SECONDS `{text}` is not a number"))?,
        ),
        Err(_) => None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes `--bench` to every bench binary.
            "--bench" => {}
            "--quick" => quick = true,
            "--seconds" => {
                let text = args.next().ok_or("--seconds needs a number")?;
                seconds = Some(
                    text.parse()
                        .map_err(|_| format!("--seconds `{text}` is not a number"))?,
                );
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let seconds = seconds.unwrap_or(if quick { 3 } else { 10 });
    if !(1..=600).contains(&seconds) {
        return Err(format!("{seconds} s measured: give 1 to 600"));
    }
    Ok(Options {
        quick,
        warm_up: Duration::from_secs(if quick { 2 } else { 3 }),
        measure: Duration::from_secs(seconds),
        snapshots: if quick { SNAPSHOTS_QUICK } else { SNAPSHOTS },
    })
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("rtsp_camera: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(missing) = missing_prerequisite() {
        println!("rtsp_camera: skipped, {missing} is missing");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rtsp_camera: no runtime: {error}");
            return ExitCode::SUCCESS;
        }
    };
    let dir = std::env::temp_dir().join(format!("framecast-rtsp-camera-{}", std::process::id()));
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("rtsp_camera: cannot make {}: {error}", dir.display());
        return ExitCode::SUCCESS;
    }
    let mut camera = match Camera::start() {
        Ok(camera) => camera,
        Err(error) => {
            eprintln!("rtsp_camera: {error}");
            let _ = std::fs::remove_dir_all(&dir);
            return ExitCode::SUCCESS;
        }
    };
    println!(
        "rtsp_camera: camera {CAMERA_SIZE} at {CAMERA_FPS} fps, key frame every {CAMERA_KEY_INT_FRAMES} \
         frames, one shared x264 encoder at {}; {} s measured per scenario after {} s warm-up{}",
        camera.url,
        options.measure.as_secs(),
        options.warm_up.as_secs(),
        if options.quick { " (quick)" } else { "" }
    );
    let mut summary = Summary::default();
    runtime.block_on(run(
        &server::binary_path(),
        &mut camera,
        &dir,
        &options,
        &mut summary,
    ));
    drop(camera);
    let _ = std::fs::remove_dir_all(&dir);
    summary.print(&options);
    ExitCode::SUCCESS
}

async fn run(
    binary: &PathBuf,
    camera: &mut Camera,
    dir: &Path,
    options: &Options,
    summary: &mut Summary,
) {
    println!("\n1. passthrough to {HLS_VIEWERS} LL-HLS viewers vs ffmpeg -c copy -f hls");
    let outcome = passthrough(binary, camera, dir, options, summary).await;
    if !scenario_valid(outcome, camera) {
        summary.passthrough = None;
    }
    println!("\n2. one MJPEG viewer: framecast decode + JPEG vs ffmpeg decode | pipe:yuv420p");
    let outcome = mjpeg_viewer(binary, camera, options, summary).await;
    if !scenario_valid(outcome, camera) {
        summary.mjpeg = None;
    }
    println!("\n3. cold /snapshot.jpg, nobody watching");
    let outcome = cold_snapshots(binary, camera, options, summary).await;
    if !scenario_valid(outcome, camera) {
        summary.snapshot = None;
    }
    println!("\n4. {STREAMS} RTSP streams in one process, one LL-HLS viewer each");
    let outcome = many_streams(binary, camera, dir, options, summary).await;
    if !scenario_valid(outcome, camera) {
        summary.streams = None;
    }
}

/// Whether a scenario's figures stand: it ran to its end and the camera served it throughout.
/// A camera that ended is started again for the next scenario.
fn scenario_valid(outcome: Result<(), String>, camera: &mut Camera) -> bool {
    if let Err(error) = &outcome {
        println!("   failed: {error}");
    }
    let Some(status) = camera.exited() else {
        return outcome.is_ok();
    };
    println!("   the camera ended during the scenario ({status}): its figures are left out");
    match Camera::start() {
        Ok(again) => *camera = again,
        Err(error) => println!("   the camera does not start again: {error}"),
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn passthrough(
    binary: &PathBuf,
    camera: &Camera,
    dir: &Path,
    options: &Options,
    summary: &mut Summary,
) -> Result<(), String> {
    let framecast = server::spawn(binary, &args(&["--source", &camera.url, "--hls", "always"]))?;
    let addr = framecast.addr;
    wait_for_status(addr, "three HLS segments", |s| {
        number(s, &["hls", "segments"]).is_some_and(|n| n >= 3.0)
    })
    .await?;
    let prefix = llhls_viewer::wait_for_media(addr, "/live.m3u8").await?;
    let frames = || async {
        let status = server::status(addr).await.ok()?;
        number(&status, &["hls", "frames_passed_through"])
    };
    // What the stream costs with nobody watching, as ffmpeg's remux below serves nobody.
    let idle = measure(&[framecast.pid()], options.measure, frames).await;
    let deadline =
        tokio::time::Instant::now() + options.warm_up + options.measure + Duration::from_secs(2);
    let mut viewers = Vec::with_capacity(HLS_VIEWERS);
    for _ in 0..HLS_VIEWERS {
        viewers.push(tokio::spawn(llhls_viewer::viewer(
            addr,
            prefix.clone(),
            deadline,
        )));
        tokio::time::sleep(VIEWER_CONNECT_GAP).await;
    }
    tokio::time::sleep(options.warm_up).await;
    let window = measure(&[framecast.pid(), camera.pid()], options.measure, frames).await;
    let status = server::status(addr).await?;
    let mut failed = 0;
    let mut parts = Vec::new();
    for viewer in viewers {
        match viewer.await {
            Ok(Ok(fetched)) => parts.push(fetched.len()),
            Ok(Err(_)) | Err(_) => failed += 1,
        }
    }
    drop(framecast);
    parts.sort_unstable();
    let checks = passthrough_checks(&status);
    let bitrate_bps = number(&status, &["hls", "bandwidth", "average_bps"]);
    let fc_idle = idle.process(0);
    println!(
        "   camera stream: {} Mbit/s on average (HLS AVERAGE-BANDWIDTH)",
        fmt(bitrate_bps.map(|b| b / 1e6), 2)
    );
    println!("   framecast, no viewer: {}", fc_idle.describe(idle.frames));
    let fc = window.process(0);
    println!(
        "   framecast, {HLS_VIEWERS} viewers: {}; {} viewers failed; parts per viewer min {}, median {}; {}",
        fc.describe(window.frames),
        failed,
        parts.first().copied().unwrap_or(0),
        parts.get(parts.len() / 2).copied().unwrap_or(0),
        checks
            .as_deref()
            .unwrap_or("passthrough, nothing encoded or decoded")
    );
    println!("   framecast threads: {}", fc.busiest_threads());
    println!(
        "   camera (not counted): {:.3} cores",
        window.process(1).cores()
    );

    // The remux a user would script: reads the camera, writes 1 s segments, serves nobody.
    let out = dir.join("remux");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot make {}: {e}", out.display()))?;
    let playlist = out.join("live.m3u8");
    let ffmpeg = Ffmpeg::start(
        &[
            "-rtsp_transport",
            "tcp",
            "-i",
            &camera.url,
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "6",
            "-hls_flags",
            "delete_segments",
            &playlist.to_string_lossy(),
        ],
        Stdio::null(),
    )?;
    wait_for_frames(&ffmpeg, CAMERA_FPS as u64).await?;
    tokio::time::sleep(options.warm_up).await;
    let counter = ffmpeg.frames.clone();
    let remux = measure(&[ffmpeg.pid(), camera.pid()], options.measure, || {
        let counter = counter.clone();
        async move { Some(counter.load(Ordering::Relaxed) as f64) }
    })
    .await;
    drop(ffmpeg);
    let ff = remux.process(0);
    println!("   ffmpeg remux: {}", ff.describe(remux.frames));
    println!(
        "   camera (not counted): {:.3} cores",
        remux.process(1).cores()
    );
    let ratio_idle = ratio(fc_idle.ms_per(idle.frames), ff.ms_per(remux.frames));
    let ratio = ratio(fc.ms_per(window.frames), ff.ms_per(remux.frames));
    println!(
        "   framecast / ffmpeg, CPU per camera frame: {} with no viewer, {} with {HLS_VIEWERS}",
        fmt(ratio_idle, 2),
        fmt(ratio, 2)
    );
    summary.passthrough = Some(PassthroughFigures {
        bitrate_bps,
        idle_cores: fc_idle.cores(),
        idle_ms_per_frame: fc_idle.ms_per(idle.frames),
        ratio_idle,
        framecast_cores: fc.cores(),
        framecast_ms_per_frame: fc.ms_per(window.frames),
        ffmpeg_cores: ff.cores(),
        ffmpeg_ms_per_frame: ff.ms_per(remux.frames),
        ratio,
        checks,
        viewers_failed: failed,
    });
    Ok(())
}

/// What is wrong with a passthrough stream's `/status`, if anything: it must pass the camera's
/// H.264 through, and encode and decode nothing.
fn passthrough_checks(status: &Value) -> Option<String> {
    let mut wrong = Vec::new();
    if status["hls"]["passthrough"] != Value::Bool(true) {
        wrong.push("hls.passthrough is not true".to_owned());
    }
    for (path, what) in [
        (&["hls", "frames_encoded"][..], "hls.frames_encoded"),
        (&["jpeg", "frames_encoded"][..], "jpeg.frames_encoded"),
        (
            &["jpeg", "decode", "frames_decoded"][..],
            "jpeg.decode.frames_decoded",
        ),
    ] {
        match number(status, path) {
            Some(0.0) => {}
            other => wrong.push(format!("{what} is {}", fmt(other, 0))),
        }
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

async fn mjpeg_viewer(
    binary: &PathBuf,
    camera: &Camera,
    options: &Options,
    summary: &mut Summary,
) -> Result<(), String> {
    // (a) framecast decodes the camera's H.264 for its JPEG viewer.
    let framecast = server::spawn(binary, &args(&["--source", &camera.url, "--hls", "off"]))?;
    wait_for_live(framecast.addr).await?;
    let (alone, alone_status) =
        watch_mjpeg(&framecast, &[framecast.pid(), camera.pid()], options).await?;
    drop(framecast);
    let fc = alone.process(0);
    println!(
        "   framecast alone: {}; {} JPEGs received ({:.1}/s), {} ms CPU per JPEG; decode {} ms mean",
        fc.describe(None),
        fmt(alone.frames, 0),
        alone.frames.unwrap_or(0.0) / alone.wall.as_secs_f64(),
        fmt(fc.ms_per(alone.frames), 3),
        fmt(
            number(&alone_status, &["jpeg", "decode", "decode_ms_mean"]),
            2
        )
    );
    println!("   framecast threads: {}", fc.busiest_threads());
    println!(
        "   camera (not counted): {:.3} cores",
        alone.process(1).cores()
    );

    // (b) ffmpeg decodes, framecast reads raw frames from the pipe.
    let ffmpeg = Ffmpeg::start(
        &[
            "-rtsp_transport",
            "tcp",
            "-i",
            &camera.url,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ],
        Stdio::piped(),
    )?;
    let mut ffmpeg = ffmpeg;
    let pipe = ffmpeg
        .child
        .stdout
        .take()
        .ok_or("no standard output from ffmpeg")?;
    let fps = CAMERA_FPS.to_string();
    let framecast = server::spawn_reading(
        binary,
        &args(&[
            "--source",
            "pipe:yuv420p",
            "--size",
            CAMERA_SIZE,
            "--fps",
            &fps,
            "--hls",
            "off",
        ]),
        Stdio::from(pipe),
    )?;
    wait_for_live(framecast.addr).await?;
    let (piped, _) = watch_mjpeg(
        &framecast,
        &[framecast.pid(), ffmpeg.pid(), camera.pid()],
        options,
    )
    .await?;
    // The server goes first (the decoder first would make it log the end of its input); the
    // decoder then reports the broken pipe, which is no error here.
    ffmpeg.stop_echo();
    drop(framecast);
    drop(ffmpeg);
    let (fc_b, ff_b) = (piped.process(0), piped.process(1));
    let both = fc_b.plus(ff_b);
    println!(
        "   ffmpeg + framecast: {} + {} = {:.3} cores; {} JPEGs received ({:.1}/s), {} ms CPU per JPEG",
        fmt(Some(ff_b.cores()), 3),
        fmt(Some(fc_b.cores()), 3),
        both.cores(),
        fmt(piped.frames, 0),
        piped.frames.unwrap_or(0.0) / piped.wall.as_secs_f64(),
        fmt(both.ms_per(piped.frames), 3)
    );
    println!("   ffmpeg threads: {}", ff_b.busiest_threads());
    println!(
        "   camera (not counted): {:.3} cores",
        piped.process(2).cores()
    );
    let ratio = ratio(fc.ms_per(alone.frames), both.ms_per(piped.frames));
    println!(
        "   framecast alone / ffmpeg + framecast, CPU per JPEG: {}",
        fmt(ratio, 2)
    );
    summary.mjpeg = Some(MjpegFigures {
        alone_cores: fc.cores(),
        alone_ms_per_jpeg: fc.ms_per(alone.frames),
        alone_jpegs_per_s: alone.frames.map(|f| f / alone.wall.as_secs_f64()),
        piped_cores: both.cores(),
        piped_ms_per_jpeg: both.ms_per(piped.frames),
        piped_jpegs_per_s: piped.frames.map(|f| f / piped.wall.as_secs_f64()),
        ratio,
    });
    Ok(())
}

/// One MJPEG viewer of `framecast` through a warm-up and a measured window of the processes
/// `pids`; the window's frames are the JPEGs the viewer received. Also the `/status` after.
async fn watch_mjpeg(
    framecast: &Spawned,
    pids: &[u32],
    options: &Options,
) -> Result<(Window, Value), String> {
    let received = Arc::new(AtomicU64::new(0));
    let viewer = tokio::spawn(mjpeg_viewer_task(framecast.addr, received.clone()));
    tokio::time::sleep(options.warm_up).await;
    let counter = received.clone();
    let window = measure(pids, options.measure, || {
        let counter = counter.clone();
        async move { Some(counter.load(Ordering::Relaxed) as f64) }
    })
    .await;
    let status = server::status(framecast.addr).await?;
    let ended = stop(viewer).await;
    if let Some(Err(error)) = ended {
        return Err(format!("the MJPEG viewer failed: {error}"));
    }
    Ok((window, status))
}

async fn cold_snapshots(
    binary: &PathBuf,
    camera: &Camera,
    options: &Options,
    summary: &mut Summary,
) -> Result<(), String> {
    let framecast = server::spawn(binary, &args(&["--source", &camera.url, "--hls", "off"]))?;
    let addr = framecast.addr;
    wait_for_live(addr).await?;
    let mut took_ms = Vec::new();
    let mut decoded_per_snapshot = Vec::new();
    let mut warm = 0;
    for _ in 0..options.snapshots {
        tokio::time::sleep(SNAPSHOT_PAUSE).await;
        let before = server::status(addr).await?;
        if before["jpeg"]["active"] != Value::Bool(false) {
            warm += 1;
        }
        let decoded_before = number(&before, &["jpeg", "decode", "frames_decoded"]);
        let started = Instant::now();
        let bytes = snapshot(addr).await?;
        let took = started.elapsed();
        let after = server::status(addr).await?;
        let decoded_after = number(&after, &["jpeg", "decode", "frames_decoded"]);
        took_ms.push(took.as_secs_f64() * 1000.0);
        if let (Some(a), Some(b)) = (decoded_before, decoded_after) {
            decoded_per_snapshot.push(b - a);
        }
        println!(
            "   {:>7.1} ms, {bytes} bytes, {} frames decoded",
            took.as_secs_f64() * 1000.0,
            fmt(decoded_before.zip(decoded_after).map(|(a, b)| b - a), 0)
        );
    }
    drop(framecast);
    took_ms.sort_by(f64::total_cmp);
    let p50 = percentile(&took_ms, 0.5);
    let max = took_ms.last().copied();
    let key_interval_s = CAMERA_KEY_INT_FRAMES as f64 / CAMERA_FPS as f64;
    let idr_wait_mean_ms = key_interval_s * 1000.0 / 2.0;
    let decoded_mean = (!decoded_per_snapshot.is_empty())
        .then(|| decoded_per_snapshot.iter().sum::<f64>() / decoded_per_snapshot.len() as f64);
    println!(
        "   p50 {} ms, max {} ms over {} cold requests ({warm} found the JPEG stage still on); \
         waiting for the next key frame instead: {idr_wait_mean_ms:.0} ms mean, {:.0} ms max \
         at a {key_interval_s:.1} s key-frame interval; {} frames decoded per snapshot on average",
        fmt(p50, 1),
        fmt(max, 1),
        took_ms.len(),
        key_interval_s * 1000.0,
        fmt(decoded_mean, 1)
    );
    summary.snapshot = Some(SnapshotFigures {
        p50_ms: p50,
        max_ms: max,
        idr_wait_mean_ms,
        decoded_mean,
        warm,
    });
    Ok(())
}

async fn many_streams(
    binary: &PathBuf,
    camera: &Camera,
    dir: &Path,
    options: &Options,
    summary: &mut Summary,
) -> Result<(), String> {
    let mut text = format!("size = \"{CAMERA_SIZE}\"\nfps = {CAMERA_FPS}\nhls = \"always\"\n");
    for index in 0..STREAMS {
        text.push_str(&format!(
            "\n[[streams]]\nname = \"s{index}\"\nsource = \"{}\"\n",
            camera.url
        ));
    }
    let config = dir.join("streams.toml");
    std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let framecast = server::spawn(
        binary,
        &["--config".to_owned(), config.to_string_lossy().into_owned()],
    )?;
    let addr = framecast.addr;
    wait_for_status(addr, "three HLS segments on every stream", |s| {
        s["streams"].as_array().is_some_and(|streams| {
            streams.len() == STREAMS
                && streams
                    .iter()
                    .all(|st| number(st, &["hls", "segments"]).is_some_and(|n| n >= 3.0))
        })
    })
    .await?;
    let deadline =
        tokio::time::Instant::now() + options.warm_up + options.measure + Duration::from_secs(2);
    let mut viewers = Vec::with_capacity(STREAMS);
    for index in 0..STREAMS {
        let prefix =
            llhls_viewer::wait_for_media(addr, &format!("/streams/s{index}/live.m3u8")).await?;
        viewers.push(tokio::spawn(llhls_viewer::viewer(addr, prefix, deadline)));
    }
    tokio::time::sleep(options.warm_up).await;
    let frames = || async {
        let status = server::status(addr).await.ok()?;
        let streams = status["streams"].as_array()?;
        streams
            .iter()
            .map(|st| number(st, &["hls", "frames_passed_through"]))
            .sum::<Option<f64>>()
    };
    let window = measure(&[framecast.pid(), camera.pid()], options.measure, frames).await;
    let status = server::status(addr).await?;
    let mut failed = 0;
    let mut parts = Vec::new();
    for viewer in viewers {
        match viewer.await {
            Ok(Ok(fetched)) => parts.push(fetched.len()),
            Ok(Err(_)) | Err(_) => failed += 1,
        }
    }
    drop(framecast);
    let wrong: Vec<String> = status["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|st| passthrough_checks(st).map(|w| format!("{}: {w}", st["name"])))
                .collect()
        })
        .unwrap_or_else(|| vec!["no streams in /status".to_owned()]);
    let fc = window.process(0);
    let per_stream = fc.cores() / STREAMS as f64;
    parts.sort_unstable();
    println!(
        "   framecast: {}; {:.2} % of a core per stream; {failed} viewers failed, parts per \
         viewer min {}; {}",
        fc.describe(window.frames),
        per_stream * 100.0,
        parts.first().copied().unwrap_or(0),
        if wrong.is_empty() {
            "every stream passthrough, nothing encoded or decoded".to_owned()
        } else {
            wrong.join("; ")
        }
    );
    println!("   framecast threads: {}", fc.busiest_threads());
    println!(
        "   camera (not counted, {STREAMS} RTSP clients): {:.3} cores",
        window.process(1).cores()
    );
    summary.streams = Some(StreamsFigures {
        cores: fc.cores(),
        per_stream,
        viewers_failed: failed,
        checks: (!wrong.is_empty()).then(|| wrong.join("; ")),
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The camera, ffmpeg, and the clients

/// The RTSP test server as the camera, and the client that keeps it streaming; killed when
/// dropped.
struct Camera {
    child: Child,
    url: String,
    /// `ffmpeg -c copy -f null` reading the camera from start to end, so that the shared
    /// pipeline streams throughout. Without it, gst-rtsp-server 1.22 now and then aborts (an
    /// assertion in `gst_rtsp_media_get_rates`) when clients PLAY while the pipeline is being
    /// prepared again, as when eight connect at once after the last client of a scenario left.
    _keeper: Option<Ffmpeg>,
}

impl Camera {
    fn start() -> Result<Self, String> {
        let fps = CAMERA_FPS.to_string();
        let key_int = CAMERA_KEY_INT_FRAMES.to_string();
        let mut child = Command::new(PYTHON)
            .arg(RTSP_SERVER_SCRIPT)
            .args(["--port", "0", "--shared", "--size", CAMERA_SIZE])
            .args(["--fps", &fps, "--key-int-max", &key_int])
            .args(["--pattern", CAMERA_PATTERN, "--horizontal-speed", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the RTSP server: {e}"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no standard output from the RTSP server".into());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("PORT ") {
                    let _ = tx.send(port.trim().parse::<u16>());
                }
            }
        });
        match rx.recv_timeout(CAMERA_START_TIMEOUT) {
            Ok(Ok(port)) => {
                let url = format!("rtsp://127.0.0.1:{port}/test");
                let keeper = Ffmpeg::start(
                    &[
                        "-loglevel",
                        "fatal",
                        "-rtsp_transport",
                        "tcp",
                        "-i",
                        &url,
                        "-c",
                        "copy",
                        "-f",
                        "null",
                        "-",
                    ],
                    Stdio::null(),
                )
                .and_then(|keeper| {
                    let started = Instant::now();
                    while keeper.frames.load(Ordering::Relaxed) < CAMERA_FPS as u64 {
                        if started.elapsed() > SOURCE_LIVE_TIMEOUT {
                            return Err(format!("no frames in {SOURCE_LIVE_TIMEOUT:?}"));
                        }
                        std::thread::sleep(STATUS_POLL);
                    }
                    Ok(keeper)
                });
                let keeper = match keeper {
                    Ok(keeper) => Some(keeper),
                    Err(error) => {
                        println!("rtsp_camera: the camera's keep-alive client: {error}");
                        None
                    }
                };
                Ok(Self {
                    child,
                    url,
                    _keeper: keeper,
                })
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the RTSP server did not say its port in {CAMERA_START_TIMEOUT:?}"
                ))
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the camera ended, if it has.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        // Only this child, by its handle; errors mean it has already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ffmpeg run, its progress (`frame=`) counted from its standard error; killed when dropped.
struct Ffmpeg {
    child: Child,
    frames: Arc<AtomicU64>,
    /// Whether its error lines are still echoed.
    echo: Arc<AtomicBool>,
}

/// ffmpeg's error lines echoed per run; the rest are left out (the camera's timestamps make
/// `-c copy` report one non-increasing DTS a second).
const FFMPEG_ERROR_LINES: usize = 2;

impl Ffmpeg {
    fn start(args: &[&str], stdout: Stdio) -> Result<Self, String> {
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(["-nostats", "-progress", "pipe:2"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
        let frames = Arc::new(AtomicU64::new(0));
        let echo = Arc::new(AtomicBool::new(true));
        if let Some(stderr) = child.stderr.take() {
            let counter = frames.clone();
            let echoing = echo.clone();
            std::thread::spawn(move || {
                let mut errors = 0;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(count) = line.strip_prefix("frame=") {
                        if let Ok(count) = count.trim().parse() {
                            counter.store(count, Ordering::Relaxed);
                        }
                    } else if !is_progress(&line) {
                        errors += 1;
                        if errors <= FFMPEG_ERROR_LINES && echoing.load(Ordering::Relaxed) {
                            eprintln!("ffmpeg: {line}");
                        }
                    }
                }
            });
        }
        Ok(Self {
            child,
            frames,
            echo,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// No more of its error lines: it is about to be stopped.
    fn stop_echo(&self) {
        self.echo.store(false, Ordering::Relaxed);
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a line of ffmpeg's standard error is one of its `-progress` lines (`key=value`).
fn is_progress(line: &str) -> bool {
    line.split_once('=').is_some_and(|(key, _)| {
        !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Waits, bounded, until ffmpeg has handled `frames` frames.
async fn wait_for_frames(ffmpeg: &Ffmpeg, frames: u64) -> Result<(), String> {
    let started = Instant::now();
    while ffmpeg.frames.load(Ordering::Relaxed) < frames {
        if started.elapsed() > SOURCE_LIVE_TIMEOUT {
            return Err(format!(
                "ffmpeg handled no {frames} frames in {SOURCE_LIVE_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
    Ok(())
}

/// framecast's arguments as owned strings.
fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Polls `/status` until `ready` holds, at most [`SOURCE_LIVE_TIMEOUT`].
async fn wait_for_status(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let started = Instant::now();
    loop {
        if let Ok(status) = server::status(addr).await
            && ready(&status)
        {
            return Ok(status);
        }
        if started.elapsed() > SOURCE_LIVE_TIMEOUT {
            return Err(format!("no {what} in {SOURCE_LIVE_TIMEOUT:?}"));
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Waits until the source is live and has sent a second of frames.
async fn wait_for_live(addr: SocketAddr) -> Result<(), String> {
    wait_for_status(addr, "live source", |s| {
        s["source"]["state"] == "live"
            && number(s, &["source", "frames"]).is_some_and(|n| n >= CAMERA_FPS as f64)
    })
    .await
    .map(|_| ())
}

/// One MJPEG viewer reading `/stream.mjpg` until aborted, counting the JPEGs it receives.
async fn mjpeg_viewer_task(addr: SocketAddr, received: Arc<AtomicU64>) -> Result<(), String> {
    let mut stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(
            b"GET /stream.mjpg HTTP/1.1\r\nHost: framecast\r\nUser-Agent: framecast-rtsp-camera/1\r\n\r\n",
        )
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut parser = mjpeg_parts::StreamParser::default();
    let mut buf = vec![0u8; READ_BUF_BYTES];
    let mut parts = Vec::new();
    loop {
        let len = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| "no bytes for 10 s".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        if len == 0 {
            return Err("the server closed the stream".into());
        }
        parser.feed(&buf[..len], &mut parts)?;
        received.fetch_add(parts.len() as u64, Ordering::Relaxed);
        parts.clear();
    }
}

/// Ends a client task: its own outcome if it had already ended, else `None`.
async fn stop<T>(task: JoinHandle<Result<(), T>>) -> Option<Result<(), T>> {
    if task.is_finished() {
        return task.await.ok();
    }
    task.abort();
    let _ = task.await;
    None
}

/// `GET /snapshot.jpg` to the end of the body; the JPEG's length.
async fn snapshot(addr: SocketAddr) -> Result<usize, String> {
    let (_, body) = server::get(addr, "/snapshot.jpg", REQUEST_TIMEOUT).await?;
    if !body.starts_with(&[0xff, 0xd8]) {
        return Err("/snapshot.jpg: not a JPEG".into());
    }
    Ok(body.len())
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// CPU of one process: clock ticks of the whole process and nanoseconds of its threads' run
/// time, at one moment.
struct CpuReading {
    ticks: Option<u64>,
    threads: BTreeMap<u64, (String, u64)>,
    run_ns: BTreeMap<u64, u64>,
}

impl CpuReading {
    fn take(pid: u32) -> Self {
        let pid = pid.to_string();
        Self {
            ticks: proc_stats::process_cpu_ticks(&pid),
            threads: proc_stats::thread_cpu_ticks(&pid),
            run_ns: proc_stats::thread_run_ns(&pid),
        }
    }
}

/// What one process used in a window.
struct ProcessCpu {
    cpu_s: Option<f64>,
    run_s: Option<f64>,
    wall: Duration,
    threads: Vec<(String, usize, f64)>,
}

impl ProcessCpu {
    fn between(before: &CpuReading, after: &CpuReading, wall: Duration) -> Self {
        let ticks_per_s = proc_stats::clock_ticks_per_s() as f64;
        let cpu_s = before
            .ticks
            .zip(after.ticks)
            .map(|(a, b)| b.saturating_sub(a) as f64 / ticks_per_s);
        // A thread born in the window counts from zero; one that ended in it is lost, which the
        // tick figure is not.
        let run_ns: u64 = after
            .run_ns
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(before.run_ns.get(tid).copied().unwrap_or(0)))
            .sum();
        Self {
            cpu_s,
            run_s: (!after.run_ns.is_empty()).then(|| run_ns as f64 / 1e9),
            wall,
            threads: proc_stats::thread_cores(
                &before.threads,
                &after.threads,
                ticks_per_s as u64,
                wall,
            ),
        }
    }

    /// Cores used: by the scheduler's run time where the kernel keeps it, else by ticks.
    fn cores(&self) -> f64 {
        self.run_s.or(self.cpu_s).unwrap_or(f64::NAN) / self.wall.as_secs_f64()
    }

    fn ms_per(&self, frames: Option<f64>) -> Option<f64> {
        frames
            .filter(|&f| f > 0.0)
            .map(|f| self.cores() * self.wall.as_secs_f64() * 1000.0 / f)
    }

    fn plus(&self, other: &ProcessCpu) -> ProcessCpu {
        let add = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a + b);
        ProcessCpu {
            cpu_s: add(self.cpu_s, other.cpu_s),
            run_s: add(self.run_s.or(self.cpu_s), other.run_s.or(other.cpu_s)),
            wall: self.wall,
            threads: Vec::new(),
        }
    }

    fn describe(&self, frames: Option<f64>) -> String {
        let ticks = self.cpu_s.map(|s| s / self.wall.as_secs_f64());
        let mut text = format!("{:.4} cores (by ticks {})", self.cores(), fmt(ticks, 3));
        if let Some(frames) = frames {
            text += &format!(
                ", {frames:.0} camera frames, {} ms CPU per frame",
                fmt(self.ms_per(Some(frames)), 3)
            );
        }
        text
    }

    fn busiest_threads(&self) -> String {
        let busy: Vec<String> = self
            .threads
            .iter()
            .filter(|(_, _, cores)| *cores >= 0.001)
            .take(6)
            .map(|(name, count, cores)| format!("{name} x{count} {cores:.3}"))
            .collect();
        if busy.is_empty() {
            "none above 0.001 cores".to_owned()
        } else {
            busy.join(", ")
        }
    }
}

/// A measured window: each process's CPU, in the order asked, and the frames counted in it.
struct Window {
    processes: Vec<ProcessCpu>,
    frames: Option<f64>,
    wall: Duration,
}

impl Window {
    fn process(&self, index: usize) -> &ProcessCpu {
        &self.processes[index]
    }
}

/// Measures `pids` over `window` while the runtime's other tasks (the viewers) run; `frames`
/// is read at both ends.
async fn measure<F, Fut>(pids: &[u32], window: Duration, frames: F) -> Window
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<f64>>,
{
    let frames_before = frames().await;
    let before: Vec<CpuReading> = pids.iter().map(|&pid| CpuReading::take(pid)).collect();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after: Vec<CpuReading> = pids.iter().map(|&pid| CpuReading::take(pid)).collect();
    let wall = started.elapsed();
    let frames_after = frames().await;
    Window {
        processes: before
            .iter()
            .zip(&after)
            .map(|(b, a)| ProcessCpu::between(b, a, wall))
            .collect(),
        frames: frames_before
            .zip(frames_after)
            .map(|(b, a)| (a - b).max(0.0)),
        wall,
    }
}

/// A number inside a JSON document.
fn number(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_f64()
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    sorted
        .get(((sorted.len().checked_sub(1)?) as f64 * p).round() as usize)
        .copied()
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

fn fmt(value: Option<f64>, decimals: usize) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or("n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The prerequisite that is missing, named: the camera (gst-rtsp-server with x264 through
/// python3-gi) or ffmpeg.
fn missing_prerequisite() -> Option<String> {
    let check = "import gi\n\
                 gi.require_version('Gst', '1.0')\n\
                 gi.require_version('GstRtspServer', '1.0')\n\
                 from gi.repository import Gst, GstRtspServer\n\
                 Gst.init(None)\n\
                 assert Gst.ElementFactory.find('x264enc')\n";
    let runs = |command: &mut Command| {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !runs(Command::new(PYTHON).args(["-c", check])) {
        return Some(format!(
            "gst-rtsp-server with x264enc through python3-gi ({PYTHON}; Debian: python3-gi \
             gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly)"
        ));
    }
    if !runs(Command::new("ffmpeg").arg("-version")) {
        return Some("ffmpeg".to_owned());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The summary

struct PassthroughFigures {
    bitrate_bps: Option<f64>,
    idle_cores: f64,
    idle_ms_per_frame: Option<f64>,
    ratio_idle: Option<f64>,
    framecast_cores: f64,
    framecast_ms_per_frame: Option<f64>,
    ffmpeg_cores: f64,
    ffmpeg_ms_per_frame: Option<f64>,
    ratio: Option<f64>,
    checks: Option<String>,
    viewers_failed: usize,
}

struct MjpegFigures {
    alone_cores: f64,
    alone_ms_per_jpeg: Option<f64>,
    alone_jpegs_per_s: Option<f64>,
    piped_cores: f64,
    piped_ms_per_jpeg: Option<f64>,
    piped_jpegs_per_s: Option<f64>,
    ratio: Option<f64>,
}

struct SnapshotFigures {
    p50_ms: Option<f64>,
    max_ms: Option<f64>,
    idr_wait_mean_ms: f64,
    decoded_mean: Option<f64>,
    warm: usize,
}

struct StreamsFigures {
    cores: f64,
    per_stream: f64,
    viewers_failed: usize,
    checks: Option<String>,
}

#[derive(Default)]
struct Summary {
    passthrough: Option<PassthroughFigures>,
    mjpeg: Option<MjpegFigures>,
    snapshot: Option<SnapshotFigures>,
    streams: Option<StreamsFigures>,
}

impl Summary {
    fn print(&self, options: &Options) {
        println!();
        println!(
            "summary ({CAMERA_SIZE} at {CAMERA_FPS} fps, {} s key-frame interval, {} s measured \
             per scenario; the camera's own CPU not counted)",
            CAMERA_KEY_INT_FRAMES as f64 / CAMERA_FPS as f64,
            options.measure.as_secs()
        );
        println!("{:<52} {:>12}   target", "figure", "value");
        let row = |name: &str, value: String, target: &str, verdict: &str| {
            println!("{name:<52} {value:>12}   {target}{verdict}");
        };
        let check = |ok: bool| if ok { "  ok" } else { "  MISS" };
        let na = "n/a (scenario failed)";
        match &self.passthrough {
            Some(p) => {
                row(
                    "1. camera stream, Mbit/s",
                    fmt(p.bitrate_bps.map(|b| b / 1e6), 2),
                    "",
                    "",
                );
                row(
                    "   framecast, no viewer: cores",
                    format!("{:.4}", p.idle_cores),
                    "",
                    "",
                );
                row(
                    "   framecast, no viewer: ms CPU per camera frame",
                    fmt(p.idle_ms_per_frame, 3),
                    "",
                    "",
                );
                row(
                    &format!("   framecast, {HLS_VIEWERS} LL-HLS viewers: cores"),
                    format!("{:.4}", p.framecast_cores),
                    "",
                    "",
                );
                row(
                    &format!("   framecast, {HLS_VIEWERS} viewers: ms CPU per camera frame"),
                    fmt(p.framecast_ms_per_frame, 3),
                    "",
                    "",
                );
                row(
                    "   ffmpeg -c copy -f hls (serves nobody): cores",
                    format!("{:.4}", p.ffmpeg_cores),
                    "",
                    "",
                );
                row(
                    "   ffmpeg: ms CPU per camera frame",
                    fmt(p.ffmpeg_ms_per_frame, 3),
                    "",
                    "",
                );
                row(
                    "   framecast no viewer / ffmpeg, CPU per frame",
                    fmt(p.ratio_idle, 2),
                    "(lower is better)",
                    "",
                );
                row(
                    &format!("   framecast {HLS_VIEWERS} viewers / ffmpeg, CPU per frame"),
                    fmt(p.ratio, 2),
                    "(lower is better)",
                    "",
                );
                row(
                    "   passthrough, nothing encoded, viewers ok",
                    if p.checks.is_none() && p.viewers_failed == 0 {
                        "yes".to_owned()
                    } else {
                        "no".to_owned()
                    },
                    "yes",
                    check(p.checks.is_none() && p.viewers_failed == 0),
                );
            }
            None => row("1. passthrough vs ffmpeg remux", String::new(), na, ""),
        }
        match &self.mjpeg {
            Some(m) => {
                row(
                    "2. framecast decode + JPEG, 1 viewer: cores",
                    format!("{:.4}", m.alone_cores),
                    "",
                    "",
                );
                row(
                    "   framecast: ms CPU per JPEG delivered",
                    fmt(m.alone_ms_per_jpeg, 3),
                    "",
                    "",
                );
                row("   framecast: JPEGs/s", fmt(m.alone_jpegs_per_s, 1), "", "");
                row(
                    "   ffmpeg decode | framecast: cores",
                    format!("{:.4}", m.piped_cores),
                    "",
                    "",
                );
                row(
                    "   ffmpeg | framecast: ms CPU per JPEG",
                    fmt(m.piped_ms_per_jpeg, 3),
                    "",
                    "",
                );
                row(
                    "   ffmpeg | framecast: JPEGs/s",
                    fmt(m.piped_jpegs_per_s, 1),
                    "",
                    "",
                );
                row(
                    "   framecast / ffmpeg pipe, CPU per JPEG",
                    fmt(m.ratio, 2),
                    "(lower is better)",
                    "",
                );
            }
            None => row(
                "2. MJPEG viewer vs ffmpeg decode pipe",
                String::new(),
                na,
                "",
            ),
        }
        match &self.snapshot {
            Some(s) => {
                let target = format!("< {:.0} (mean wait for the next IDR)", s.idr_wait_mean_ms);
                row(
                    "3. cold /snapshot.jpg p50 ms",
                    fmt(s.p50_ms, 1),
                    &target,
                    s.p50_ms.map_or("", |v| check(v < s.idr_wait_mean_ms)),
                );
                row("   cold /snapshot.jpg max ms", fmt(s.max_ms, 1), "", "");
                row(
                    "   frames decoded per snapshot (mean)",
                    fmt(s.decoded_mean, 1),
                    "",
                    "",
                );
                if s.warm > 0 {
                    row(
                        "   requests that found the JPEG stage on",
                        s.warm.to_string(),
                        "0",
                        check(false),
                    );
                }
            }
            None => row("3. cold snapshot latency", String::new(), na, ""),
        }
        match &self.streams {
            Some(s) => {
                row(
                    &format!("4. {STREAMS} RTSP streams, 1 LL-HLS viewer each: cores"),
                    format!("{:.4}", s.cores),
                    "",
                    "",
                );
                row(
                    "   per stream, % of a core",
                    format!("{:.2}", s.per_stream * 100.0),
                    &format!("<= {:.0}", TARGET_CORES_PER_STREAM * 100.0),
                    check(s.per_stream <= TARGET_CORES_PER_STREAM),
                );
                row(
                    "   passthrough, nothing encoded, viewers ok",
                    if s.checks.is_none() && s.viewers_failed == 0 {
                        "yes".to_owned()
                    } else {
                        "no".to_owned()
                    },
                    "yes",
                    check(s.checks.is_none() && s.viewers_failed == 0),
                );
            }
            None => row(
                &format!("4. {STREAMS} RTSP streams in one process"),
                String::new(),
                na,
                "",
            ),
        }
    }
}
