//! The running streams: each one's pipeline and what the HTTP side serves of it, started from
//! the settings, and changed to new settings on a reload: streams added start, streams removed
//! stop, streams whose settings changed restart, and streams left as they were keep running
//! untouched (their viewers, hub and HLS window stay).

use std::sync::Arc;

use crate::config::{ServerSettings, Settings, StreamSettings};
use crate::error::Error;
use crate::http::streams::{ServedStream, StreamTable};
use crate::pipeline::Stream;

/// One running stream.
#[derive(Debug)]
struct Running {
    served: Arc<ServedStream>,
    pipeline: Stream,
}

/// What a reload did, by stream name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
    /// Streams that failed to start, with the reason; the others are served.
    pub failed: Vec<(String, String)>,
}

/// Every running stream, in the configuration's order.
#[derive(Debug)]
pub struct StreamSet {
    server: ServerSettings,
    start_id: String,
    /// Numbers each start of a stream, for its instance id.
    starts: u64,
    running: Vec<Running>,
}

impl StreamSet {
    /// Starts every stream of `settings`. Fails, with every started one stopped again, if one
    /// cannot start.
    pub fn start(settings: &Settings, start_id: &str) -> Result<Self, Error> {
        let mut set = Self {
            server: settings.server.clone(),
            start_id: start_id.to_owned(),
            starts: 0,
            running: Vec::with_capacity(settings.streams.len()),
        };
        for stream in &settings.streams {
            match set.start_one(stream) {
                Ok(running) => set.running.push(running),
                Err(error) => {
                    set.stop_all();
                    return Err(error);
                }
            }
        }
        Ok(set)
    }

    fn start_one(&mut self, settings: &StreamSettings) -> Result<Running, Error> {
        let pipeline = Stream::start(&self.server, settings)?;
        self.starts += 1;
        // The first start of the first stream keeps the server's id, as before there were
        // several streams.
        let instance_id = if self.starts == 1 {
            self.start_id.clone()
        } else {
            format!("{}-{}", self.start_id, self.starts)
        };
        let served = Arc::new(
            ServedStream::new(
                settings.clone(),
                instance_id,
                pipeline.hub.clone(),
                pipeline.hls.clone(),
            )
            .with_whip(pipeline.whip.clone()),
        );
        Ok(Running { served, pipeline })
    }

    /// What the HTTP side serves, in order.
    pub fn served(&self) -> Vec<Arc<ServedStream>> {
        self.running.iter().map(|r| r.served.clone()).collect()
    }

    /// Changes the running streams to `settings`'s and `table` with them. Streams removed or
    /// changed are stopped first (their viewers' responses end, and a restarted stream's
    /// device or FIFO is let go before its new pipeline opens it again), on a blocking thread:
    /// their threads take up to a quarter second to notice. Meanwhile the table lists only the
    /// streams that stay.
    pub async fn apply(&mut self, settings: &Settings, table: &StreamTable) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        // A change of the server's JPEG threads changes every stream's pipeline.
        let restart_all = settings.server.jpeg_threads != self.server.jpeg_threads;
        self.server.jpeg_threads = settings.server.jpeg_threads;
        let (kept, to_stop): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|running| {
                !restart_all
                    && settings
                        .streams
                        .iter()
                        .any(|wanted| running.served.settings == *wanted)
            });
        for running in &to_stop {
            let name = running.served.name().to_owned();
            if settings
                .streams
                .iter()
                .any(|w| w.name == running.served.settings.name)
            {
                summary.restarted.push(name);
            } else {
                summary.stopped.push(name);
            }
        }
        if !to_stop.is_empty() {
            table.replace(kept.iter().map(|r| r.served.clone()).collect());
            for running in &to_stop {
                running.served.end();
            }
            let stopping = tokio::task::spawn_blocking(move || {
                for running in to_stop {
                    running.pipeline.stop();
                }
            });
            if stopping.await.is_err() {
                tracing::error!("stopping the streams of the old configuration failed");
            }
        }
        let mut kept = kept;
        for wanted in &settings.streams {
            let name = wanted.name.to_string();
            if let Some(at) = kept
                .iter()
                .position(|r| r.served.settings.name == wanted.name)
            {
                summary.unchanged.push(name);
                self.running.push(kept.remove(at));
                continue;
            }
            match self.start_one(wanted) {
                Ok(running) => {
                    if !summary.restarted.contains(&name) {
                        summary.started.push(name);
                    }
                    self.running.push(running);
                }
                Err(error) => {
                    summary.restarted.retain(|n| *n != name);
                    summary.failed.push((name, error.to_string()));
                }
            }
        }
        table.replace(self.served());
        summary
    }

    /// Stops every stream and waits for their threads.
    pub fn stop_all(&mut self) {
        for running in self.running.drain(..) {
            running.served.end();
            running.pipeline.stop();
        }
    }
}
