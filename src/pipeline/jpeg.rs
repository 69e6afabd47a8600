//! The JPEG workers: a pool of threads that take raw frames from the hub while someone wants
//! JPEGs, encode them and publish the results.
//!
//! More than one worker only matters when one cannot keep up with the source: an idle worker
//! takes the newest frame while another is still busy, and the hub drops any result that would
//! arrive out of order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::encode::jpeg::JpegEncoder;
use crate::error::Error;
use crate::hub::{Hub, Taken};
use crate::repeated_log::{RepeatedLog, SUMMARY_INTERVAL};

/// Starts `count` encoder threads that take frames from the hub and publish JPEGs to it until
/// `stop` is set and the hub is closed.
pub fn spawn_workers(
    hub: Arc<Hub>,
    quality: u8,
    count: usize,
    stop: Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, Error> {
    (0..count.max(1))
        .map(|n| {
            let mut encoder =
                JpegEncoder::new(quality).map_err(|e| Error::JpegEncoder(e.to_string()))?;
            let hub = hub.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("jpeg-{n}"))
                .spawn(move || run_worker(&mut encoder, &hub, &stop))
                .map_err(Error::Thread)
        })
        .collect()
}

fn run_worker(encoder: &mut JpegEncoder, hub: &Hub, stop: &AtomicBool) {
    let mut errors = RepeatedLog::new(SUMMARY_INTERVAL);
    while !stop.load(Ordering::Relaxed) {
        // Stopping the stream closes the hub, which wakes this thread: no need to look at
        // `stop` in between.
        match hub.jpeg_input().take_until_closed() {
            Taken::Item(frame) => match encoder.encode(&frame) {
                Ok(jpeg) => hub.publish_jpeg(jpeg),
                Err(error) => errors.warn("JPEG encoding failed", &error, Instant::now()),
            },
            Taken::TimedOut => {}
            Taken::Closed => break,
        }
    }
}
