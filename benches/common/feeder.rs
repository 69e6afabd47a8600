//! The frames every server under comparison gets: JPEGs made once by ffmpeg, written to the
//! server's standard input at a steady rate by a thread of their own, each stamped on the way
//! with its sequence number and the time it was written (see [`mjpeg_parts::stamp_segment`]),
//! so latency is measured the same way whatever the server.

use std::io::Write;
use std::process::{ChildStdin, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use framecast::frame::unix_micros;

use super::mjpeg_parts::{self, Stamp};

/// Distinct pictures looped by the feeder: two seconds at 30 fps, so consecutive frames differ
/// the way a live picture does.
const LOOP_FRAMES: u32 = 60;

/// Makes `LOOP_FRAMES` JPEGs of ffmpeg's `testsrc2` at `width`x`height`; `quality` is ffmpeg's
/// `-q:v` (2 best … 31 worst).
pub fn ffmpeg_jpegs(
    width: u32,
    height: u32,
    fps: u32,
    quality: u32,
) -> Result<Vec<Vec<u8>>, String> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate={fps}"))
        .args(["-frames:v", &LOOP_FRAMES.to_string()])
        .args(["-q:v", &quality.to_string(), "-f", "mjpeg", "-"])
        .output()
        .map_err(|e| format!("cannot run ffmpeg (needed for the frames): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let jpegs = split_jpegs(&output.stdout);
    if jpegs.len() != LOOP_FRAMES as usize {
        return Err(format!(
            "ffmpeg gave {} JPEGs, expected {LOOP_FRAMES}",
            jpegs.len()
        ));
    }
    Ok(jpegs)
}

/// Cuts concatenated baseline JPEGs at each EOI followed by SOI (ffmpeg's `-f mjpeg` output:
/// entropy-coded data never holds a bare 0xFF 0xD9, ITU-T T.81 §B.1.1.5).
fn split_jpegs(data: &[u8]) -> Vec<Vec<u8>> {
    let mut jpegs = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at + 1 < data.len() {
        if data[at] == 0xFF && data[at + 1] == 0xD9 {
            let end = at + 2;
            if end == data.len() || data[end..].starts_with(&[0xFF, 0xD8]) {
                jpegs.push(data[start..end].to_vec());
                start = end;
            }
            at = end;
        } else {
            at += 1;
        }
    }
    jpegs
}

/// Writes the frames to a server's standard input until dropped.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    written: Arc<AtomicU64>,
}

impl Feeder {
    /// Starts writing `jpegs`, looped, to `stdin` at `fps`.
    pub fn start(mut stdin: ChildStdin, jpegs: Arc<Vec<Vec<u8>>>, fps: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, written) = (stop.clone(), written.clone());
            std::thread::spawn(move || {
                let interval = Duration::from_secs(1) / fps.max(1);
                let started = Instant::now();
                let mut frame = Vec::new();
                for seq in 0u64.. {
                    if stop.load(Ordering::Relaxed) || jpegs.is_empty() {
                        return;
                    }
                    let due = started + interval * u32::try_from(seq).unwrap_or(u32::MAX);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let jpeg = &jpegs[(seq % jpegs.len() as u64) as usize];
                    let stamp = Stamp {
                        seq,
                        fed_unix_micros: unix_micros(SystemTime::now()),
                    };
                    frame.clear();
                    frame.extend_from_slice(&jpeg[..2]);
                    frame.extend_from_slice(&mjpeg_parts::stamp_segment(stamp));
                    frame.extend_from_slice(&jpeg[2..]);
                    // A server that has gone ends the feeding; the scenario reports it.
                    if stdin
                        .write_all(&frame)
                        .and_then(|()| stdin.flush())
                        .is_err()
                    {
                        return;
                    }
                    written.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Self {
            stop,
            thread: Some(thread),
            written,
        }
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread wakes within one frame interval, or when its pipe breaks as the server
        // is stopped.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
