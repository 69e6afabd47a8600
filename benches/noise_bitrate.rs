//! H.264 bitrate against the configured one, per HLS segment, on the worst content and on
//! ordinary content: the release `framecast` at 720p30 with its default bitrate, fed by a
//! real ffmpeg into standard input (`--source pipe:yuv420p`) with noise on every plane (full
//! strength, and a camera-like light grain), and on its own test pattern.
//!
//! For each scenario it reads every complete segment from the media playlist as it appears
//! (the first `NOISE_BITRATE_SEGMENTS`, 10 by default, from the start, so the onset counts)
//! and reports the ratio of each segment's bitrate (bytes × 8 / EXTINF) to the configured one,
//! max and mean (the bound is 1.5), the share of frames the rate gate skipped or encoded again,
//! the block size pictures ended up averaged over, and the server's peak RSS. Figures only,
//! no asserts. Env: `NOISE_BITRATE_SEGMENTS` (10), `FRAMECAST_BIN`.

#[allow(dead_code)]
#[path = "common/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use framecast::media::playlist::{parse_media_playlist, parse_multivariant_playlist};

const SIZE: &str = "1280x720";
const FPS: &str = "30";
/// Bounds one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the playlist and RSS are read.
const POLL: Duration = Duration::from_millis(250);
/// The most a scenario may take, whatever the segment count.
const SCENARIO_LIMIT: Duration = Duration::from_secs(40);
/// The bound the rate gate keeps.
const BOUND: f64 = 1.5;

struct Scenario {
    name: &'static str,
    /// An ffmpeg lavfi source piped in, or `None` for the built-in test pattern.
    lavfi: Option<&'static str>,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "noise, full strength, every plane",
        lavfi: Some("color=c=gray:s=1280x720:r=30,noise=alls=100:allf=t"),
    },
    Scenario {
        name: "grain (noise strength 12 on luma)",
        lavfi: Some("testsrc2=s=1280x720:r=30,noise=c0s=12:c0f=t"),
    },
    Scenario {
        name: "test pattern",
        lavfi: None,
    },
];

struct Ffmpeg(Child);

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn feed(lavfi: &str, mut stdin: ChildStdin) -> Result<Ffmpeg, String> {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
        .args(["-f", "lavfi", "-i", lavfi, "-t", "60"])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no ffmpeg output")?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut stdin);
        let _ = stdin.flush();
    });
    Ok(Ffmpeg(child))
}

/// `GET path` over HTTP/1.0: status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read {path}: {e}"))?;
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let status = String::from_utf8_lossy(&response[..at])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, response[at + 4..].to_vec()))
}

fn status_json(addr: SocketAddr) -> Result<serde_json::Value, String> {
    let (_, body) = get(addr, "/status")?;
    serde_json::from_slice(&body).map_err(|e| format!("/status: {e}"))
}

struct Figures {
    ratios: Vec<f64>,
    frames_encoded: u64,
    frames_skipped: u64,
    frames_reencoded: u64,
    frames_dropped: u64,
    block_px: u64,
    peak_rss_bytes: u64,
}

fn run(scenario: &Scenario, segments: usize) -> Result<Figures, String> {
    let binary = server::binary_path();
    let mut args: Vec<String> = ["--size", SIZE, "--fps", FPS]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (spawned, _ffmpeg) = match scenario.lavfi {
        Some(lavfi) => {
            args.extend(["--source".into(), "pipe:yuv420p".into()]);
            let (spawned, stdin) = server::spawn_piped(&binary, &args)?;
            (spawned, Some(feed(lavfi, stdin)?))
        }
        None => {
            args.extend(["--source".into(), "test".into()]);
            (server::spawn(&binary, &args)?, None)
        }
    };
    let addr = spawned.addr;
    let pid = spawned.pid().to_string();
    let deadline = Instant::now() + SCENARIO_LIMIT;
    let mut peak_rss_bytes = 0;
    let prefix = loop {
        if Instant::now() > deadline {
            return Err("no /live.m3u8".into());
        }
        if let Ok((200, body)) = get(addr, "/live.m3u8") {
            let text = String::from_utf8_lossy(&body);
            let multivariant = parse_multivariant_playlist(&text).map_err(|e| e.to_string())?;
            let uri = &multivariant.variants.first().ok_or("no variant")?.uri;
            break format!("/{}", uri.strip_suffix("media.m3u8").ok_or("variant URI")?);
        }
        std::thread::sleep(POLL);
    };
    let status = status_json(addr)?;
    let bitrate_bps = status["hls"]["bitrate_bps"].as_f64().ok_or("bitrate_bps")?;
    let mut seen: BTreeMap<u64, f64> = BTreeMap::new();
    while seen.len() < segments && Instant::now() < deadline {
        if let Some(rss) = proc_stats::rss_bytes(&pid) {
            peak_rss_bytes = peak_rss_bytes.max(rss);
        }
        let (_, body) = get(addr, &format!("{prefix}media.m3u8"))?;
        let parsed =
            parse_media_playlist(&String::from_utf8_lossy(&body)).map_err(|e| e.to_string())?;
        for segment in &parsed.playlist.segments {
            if seen.contains_key(&segment.msn) || seen.len() >= segments {
                continue;
            }
            let (code, data) = get(addr, &format!("{prefix}{}", segment.uri))?;
            if code != 200 {
                return Err(format!("{}: {code}", segment.uri));
            }
            let seconds = segment.duration_90k as f64 / 90_000.0;
            seen.insert(segment.msn, data.len() as f64 * 8.0 / seconds / bitrate_bps);
        }
        std::thread::sleep(POLL);
    }
    let status = status_json(addr)?;
    // The server first: ffmpeg ending before it would make it log that its input ended.
    drop(spawned);
    let hls = &status["hls"];
    let number = |key: &str| hls[key].as_u64().unwrap_or(0);
    Ok(Figures {
        ratios: seen.into_values().collect(),
        frames_encoded: number("frames_encoded"),
        frames_skipped: number("frames_skipped_rate"),
        frames_reencoded: number("frames_reencoded_rate"),
        frames_dropped: number("frames_dropped"),
        block_px: number("picture_block_px"),
        peak_rss_bytes,
    })
}

fn main() -> ExitCode {
    let segments = std::env::var("NOISE_BITRATE_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10usize)
        .max(1);
    println!(
        "H.264 bitrate per HLS segment against the configured bitrate, {SIZE} at {FPS} fps, \
         default bitrate, first {segments} segments (bound: {BOUND}x)"
    );
    let mut failed = false;
    for scenario in &SCENARIOS {
        match run(scenario, segments) {
            Ok(f) => {
                let max = f.ratios.iter().copied().fold(0.0, f64::max);
                let mean = f.ratios.iter().sum::<f64>() / f.ratios.len().max(1) as f64;
                let taken = f.frames_encoded + f.frames_skipped;
                let share = |n: u64| 100.0 * n as f64 / taken.max(1) as f64;
                println!(
                    "{:<36} segments {:>2}  ratio max {:.2}x mean {:.2}x  {}  skipped {:.1} %  \
                     re-encoded {:.1} %  dropped (encoder behind) {}  blocks {} px  peak RSS {:.1} MB",
                    scenario.name,
                    f.ratios.len(),
                    max,
                    mean,
                    if max <= BOUND { "within" } else { "OVER" },
                    share(f.frames_skipped),
                    share(f.frames_reencoded),
                    f.frames_dropped,
                    f.block_px,
                    f.peak_rss_bytes as f64 / 1e6,
                );
                let list: Vec<String> = f.ratios.iter().map(|r| format!("{r:.2}")).collect();
                println!("{:<36} per segment: {}", "", list.join(" "));
            }
            Err(error) => {
                println!("{:<36} failed: {error}", scenario.name);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
