//! The streams the server serves now, in the configuration's order, and how a request finds
//! its own: `/streams/{stream}/…` names it, and the root routes (`/stream.mjpg`,
//! `/live.m3u8`, …) serve the first, so that embeds written for a single stream keep working.
//!
//! The table is replaced as a whole when a reload adds, removes or restarts streams; a request
//! keeps the stream it found for as long as it runs, and a removed stream's viewers end when
//! its hub closes.

use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use tokio::sync::watch;

use crate::config::StreamSettings;
use crate::hub::Hub;
use crate::pipeline::StreamHls;
use crate::source::whip::WhipInlet;

use super::error::HttpError;
use super::mjpeg_sender::MjpegSender;

/// The path segment that names a stream in `/streams/{stream}/…`.
pub const STREAM_PARAM: &str = "stream";

/// One running stream as the handlers see it.
#[derive(Debug)]
pub struct ServedStream {
    pub settings: StreamSettings,
    /// Differs for every start of this stream: its HLS names and ETags never match those of an
    /// earlier run, of the server or of the stream restarted by a reload.
    pub instance_id: String,
    pub hub: Arc<Hub>,
    /// `None` with HLS off.
    pub hls: Option<StreamHls>,
    /// Writes the frames of this stream's MJPEG viewers on direct connections.
    pub mjpeg_sender: MjpegSender,
    /// Where a WHIP publisher's H.264 goes (`source = "whip"`); `None` for other sources.
    pub whip: Option<Arc<WhipInlet>>,
    /// Turns true when the stream stops (a reload removed or restarted it, or the server is
    /// stopping): its endless responses end.
    ended: watch::Sender<bool>,
}

impl ServedStream {
    pub fn new(
        settings: StreamSettings,
        instance_id: String,
        hub: Arc<Hub>,
        hls: Option<StreamHls>,
    ) -> Self {
        Self {
            settings,
            instance_id,
            hub,
            hls,
            mjpeg_sender: MjpegSender::default(),
            whip: None,
            ended: watch::Sender::new(false),
        }
    }

    /// The stream takes a WHIP publisher through `inlet` (its pipeline's).
    pub fn with_whip(mut self, inlet: Option<Arc<WhipInlet>>) -> Self {
        self.whip = inlet;
        self
    }

    /// Ends the stream's endless responses (MJPEG, `/live.mp4`) in order: each closes its last
    /// chunk, and the client sees a complete response.
    pub fn end(&self) {
        self.ended.send_replace(true);
    }

    /// Turns true when the stream stops; what endless responses listen to.
    pub fn ended_signal(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    pub fn name(&self) -> &str {
        self.settings.name.as_str()
    }

    /// Where this stream's resources are: `/streams/{name}/`.
    pub fn base_path(&self) -> String {
        format!("/streams/{}/", self.name())
    }

    /// Where the page answering `req` links this stream's resources: the root on a root
    /// route (today's URLs for the first stream), else the stream's own path.
    pub fn base_for(&self, req: &HttpRequest) -> String {
        if Served::named_in_path(req) {
            self.base_path()
        } else {
            "/".to_owned()
        }
    }
}

/// Every stream served now.
#[derive(Debug, Default)]
pub struct StreamTable {
    current: RwLock<Arc<Vec<Arc<ServedStream>>>>,
}

impl StreamTable {
    pub fn new(streams: Vec<Arc<ServedStream>>) -> Self {
        Self {
            current: RwLock::new(Arc::new(streams)),
        }
    }

    /// The streams now, in order.
    pub fn all(&self) -> Arc<Vec<Arc<ServedStream>>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<ServedStream>> {
        self.all().iter().find(|s| s.name() == name).cloned()
    }

    /// The stream the root routes serve.
    pub fn first(&self) -> Option<Arc<ServedStream>> {
        self.all().first().cloned()
    }

    /// Serves `streams` from now on.
    pub fn replace(&self, streams: Vec<Arc<ServedStream>>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(streams);
    }
}

/// The stream a request is for, as a handler argument: the one its path names, or the first
/// on a root route. An unknown name is 404 naming it.
#[derive(Debug, Clone)]
pub struct Served(pub Arc<ServedStream>);

impl Deref for Served {
    type Target = ServedStream;
    fn deref(&self) -> &ServedStream {
        &self.0
    }
}

impl Served {
    /// Whether the request came in under `/streams/{stream}/` rather than a root route.
    pub fn named_in_path(req: &HttpRequest) -> bool {
        req.match_info().get(STREAM_PARAM).is_some()
    }

    fn of_request(req: &HttpRequest) -> Result<Self, HttpError> {
        let table = req
            .app_data::<actix_web::web::Data<super::AppState>>()
            .map(|state| &state.streams)
            .ok_or_else(|| HttpError::Internal("no stream table".into()))?;
        match req.match_info().get(STREAM_PARAM) {
            Some(name) => table.get(name).map(Served).ok_or_else(|| {
                // Echoed, so cut and escaped: the name is whatever the client sent.
                let shown: String = name.chars().take(80).collect();
                HttpError::NotFound(format!("no stream named `{}`", shown.escape_debug()))
            }),
            None => table
                .first()
                .map(Served)
                .ok_or_else(|| HttpError::NotFound("no stream is configured".into())),
        }
    }
}

impl FromRequest for Served {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::of_request(req))
    }
}
