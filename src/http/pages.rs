//! HTML pages, rendered from askama templates in `templates/`: the home page (`/`), each
//! stream's MJPEG, HLS and MSE pages, and mjpg-streamer's `?action=` URLs on the first two.

use actix_web::http::header::LOCATION;
use actix_web::{CustomizeResponder, HttpMessage as _, HttpRequest, HttpResponse, Responder, web};
use askama::Template;
use askama_web::WebTemplate;

use super::cache::CachePolicy;
use super::error::HttpError;
use super::static_files::HLS_JS_BUNDLED;
use super::streams::{Served, ServedStream};
use super::{AppState, mjpeg, query, sign_link, snapshot};
use crate::access::Grant;

/// Up to this many streams the home page shows each as an MJPEG `<img>`. A browser opens at
/// most six HTTP/1.1 connections to one server, and each MJPEG picture holds one for as long
/// as it is shown: with more streams the tiles would wait for each other, so beyond this they
/// are refreshed from snapshots instead, each a short request.
const MJPEG_TILES_MAX: usize = 4;
/// Frames per second of a grid tile: enough to see that a camera is alive, light for a page of
/// sixteen.
const TILE_FPS: u32 = 2;

/// A stream's page (`/streams/{name}/`, and `/` with one stream): the live MJPEG picture with latency and frame-rate readouts.
#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub version: &'static str,
    /// Where the stream's resources are: `/` or `/streams/{name}/`.
    pub base: String,
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Whether the page offers the "Signed link" form: to an admin, with a signing key.
    pub signing: bool,
    /// For a stream that takes a WHIP publisher: its publish page (`/streams/{name}/publish`).
    pub publish: Option<String>,
}

/// `GET /` with several streams: a grid of their live pictures.
#[derive(Template, WebTemplate)]
#[template(path = "grid.html")]
pub struct GridPage {
    pub version: &'static str,
    pub base: String,
    /// `mjpeg` when the tiles are MJPEG pictures, `snapshot` when the page refreshes them.
    pub refresh: &'static str,
    pub tile_fps: u32,
    pub tiles: Vec<Tile>,
}

/// One stream in the grid.
pub struct Tile {
    pub name: String,
    pub page: String,
    pub picture: String,
    pub source: String,
    pub width: u32,
    pub height: u32,
}

/// Pages describe the running streams: stored, but asked for again each time.
fn page<T: Responder>(page: T) -> CustomizeResponder<T> {
    page.customize()
        .insert_header(CachePolicy::Revalidate.header())
}

/// `GET /`: mjpg-streamer's `?action=` for the first stream; else with one stream its page,
/// as before there were several, and with more the grid.
pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let streams = state.streams.all();
    if query::lookup(req.query_string(), "action").is_some() || streams.len() <= 1 {
        let stream = state
            .streams
            .first()
            .ok_or_else(|| HttpError::NotFound("no stream is configured".into()))?;
        return stream_page(req, Served(stream)).await;
    }
    let mjpeg_tiles = streams.len() <= MJPEG_TILES_MAX;
    let tiles = streams
        .iter()
        // A user sees the tiles of the streams it may watch.
        .filter(|stream| super::access::may_watch(&req, &state, stream.name()))
        .map(|stream| {
            let base = stream.base_path();
            let picture = if mjpeg_tiles {
                format!("{base}stream.mjpg?fps={TILE_FPS}")
            } else {
                format!("{base}snapshot.jpg")
            };
            Tile {
                name: stream.name().to_owned(),
                page: base,
                picture,
                source: stream.settings.source.to_string(),
                width: stream.settings.size.width,
                height: stream.settings.size.height,
            }
        })
        .collect();
    let grid = GridPage {
        version: env!("CARGO_PKG_VERSION"),
        base: "/".into(),
        refresh: if mjpeg_tiles { "mjpeg" } else { "snapshot" },
        tile_fps: TILE_FPS,
        tiles,
    };
    Ok(page(grid).respond_to(&req).map_into_boxed_body())
}

/// `GET /streams/{name}/` (and `/` with one stream): the stream's MJPEG page, or with
/// mjpg-streamer's `?action=stream` / `?action=snapshot` (the URLs OctoPrint, Klipper front
/// ends and Home Assistant default to) its MJPEG stream or a snapshot.
pub async fn stream_page(req: HttpRequest, stream: Served) -> Result<HttpResponse, HttpError> {
    match query::action(req.query_string())? {
        Some(query::Action::Stream) if req.method() == actix_web::http::Method::HEAD => {
            Ok(mjpeg::head(stream).await)
        }
        Some(query::Action::Stream) => mjpeg::stream(req, stream).await,
        Some(query::Action::Snapshot) => snapshot::snapshot(req, stream).await,
        None => Ok(page(index_page(&req, &stream))
            .respond_to(&req)
            .map_into_boxed_body()),
    }
}

fn index_page(req: &HttpRequest, stream: &ServedStream) -> IndexPage {
    let has_key = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.signing_key.is_some());
    let signing = has_key && sign_link::may_sign(req.extensions().get::<Grant>());
    IndexPage {
        version: env!("CARGO_PKG_VERSION"),
        base: stream.base_for(req),
        source: stream.settings.source.to_string(),
        width: stream.settings.size.width,
        height: stream.settings.size.height,
        fps: stream.settings.fps,
        signing,
        publish: stream
            .whip
            .as_ref()
            .map(|_| format!("{}publish", stream.base_path())),
    }
}

/// `GET /streams/{name}`: the page is at `/streams/{name}/`.
pub async fn to_stream_page(req: HttpRequest, stream: Served) -> HttpResponse {
    let mut location = stream.base_path();
    if !req.query_string().is_empty() {
        location.push('?');
        location.push_str(req.query_string());
    }
    HttpResponse::PermanentRedirect()
        .insert_header((LOCATION, location))
        .finish()
}

/// What every `<video>` page of a stream shows around its player; the pages reach these
/// fields through `Deref`, so their templates name them directly.
pub struct VideoPage {
    pub version: &'static str,
    pub base: String,
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// `false` with HLS off, which also turns the H.264 encoder off, and with it `/live.mp4`
    /// and WHEP: the page says so instead of trying to play.
    pub hls_enabled: bool,
}

impl VideoPage {
    fn of(req: &HttpRequest, stream: &Served) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            base: stream.base_for(req),
            source: stream.settings.source.to_string(),
            width: stream.settings.size.width,
            height: stream.settings.size.height,
            hls_enabled: stream.hls.is_some(),
        }
    }
}

/// `GET /hls`: the HLS stream in a `<video>`, played through the bundled hls.js, or natively
/// where hls.js cannot run (no Media Source Extensions), with latency, buffer and
/// playback-rate readouts.
#[derive(Template, WebTemplate)]
#[template(path = "hls.html")]
pub struct HlsPage {
    pub video: VideoPage,
    /// Whether `/static/hls.js` exists in this build (see `build.rs`).
    pub hls_js_bundled: bool,
}

pub async fn hls(req: HttpRequest, stream: Served) -> CustomizeResponder<HlsPage> {
    page(HlsPage {
        video: VideoPage::of(&req, &stream),
        hls_js_bundled: HLS_JS_BUNDLED,
    })
}

/// `GET /live`: `/live.mp4` played by the page's own Media Source Extensions player, the
/// lowest-latency `<video>` path.
#[derive(Template, WebTemplate)]
#[template(path = "live.html")]
pub struct LivePage(VideoPage);

pub async fn live(req: HttpRequest, stream: Served) -> CustomizeResponder<LivePage> {
    page(LivePage(VideoPage::of(&req, &stream)))
}

/// `GET /webrtc`: the stream over WebRTC (WHEP) in a `<video>`, the lowest-latency H.264
/// path, with the latency readout from the pixels; reconnects when the session fails.
#[derive(Template, WebTemplate)]
#[template(path = "webrtc.html")]
pub struct WebRtcPage(VideoPage);

pub async fn webrtc(req: HttpRequest, stream: Served) -> CustomizeResponder<WebRtcPage> {
    page(WebRtcPage(VideoPage::of(&req, &stream)))
}

impl std::ops::Deref for HlsPage {
    type Target = VideoPage;
    fn deref(&self) -> &VideoPage {
        &self.video
    }
}

impl std::ops::Deref for LivePage {
    type Target = VideoPage;
    fn deref(&self) -> &VideoPage {
        &self.0
    }
}

impl std::ops::Deref for WebRtcPage {
    type Target = VideoPage;
    fn deref(&self) -> &VideoPage {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hls_page(hls_js_bundled: bool) -> String {
        HlsPage {
            video: VideoPage {
                version: "0",
                base: "/".into(),
                source: "test".into(),
                width: 640,
                height: 360,
                hls_enabled: true,
            },
            hls_js_bundled,
        }
        .render()
        .expect("the template renders")
    }

    #[test]
    fn the_hls_page_says_when_the_build_has_no_hls_js() {
        let without = hls_page(false);
        assert!(without.contains("built without hls.js"), "{without}");
        assert!(without.contains("FRAMECAST_WITHOUT_HLS_JS=1"));
        assert!(without.contains("data-hls-js=\"absent\""));
        assert!(!without.contains("src=\"/static/hls.js\""));

        let with = hls_page(true);
        assert!(!with.contains("built without hls.js"), "{with}");
        assert!(with.contains("data-hls-js=\"bundled\""));
        // hls.js is a classic script that must run before the page module uses window.Hls.
        let hls_js = with
            .find("<script src=\"/static/hls.js\">")
            .expect("hls.js script");
        let module = with
            .find("<script type=\"module\" src=\"/static/hls-page.js\">")
            .expect("page module");
        assert!(hls_js < module);
    }

    #[test]
    fn a_stream_page_links_its_own_resources() {
        let page = IndexPage {
            version: "0",
            base: "/streams/garage/".into(),
            source: "test".into(),
            width: 640,
            height: 360,
            fps: 15,
            signing: false,
            publish: None,
        }
        .render()
        .expect("the template renders");
        assert!(!page.contains("Signed link"), "only for admins: {page}");
        assert!(!page.contains("publish"), "{page}");
        assert!(
            page.contains("src=\"/streams/garage/stream.mjpg\""),
            "{page}"
        );
        assert!(page.contains("href=\"/streams/garage/snapshot.jpg\""));
        assert!(page.contains("data-base=\"/streams/garage/\""));
        for root in [
            "\"/stream.mjpg",
            "\"/snapshot.jpg",
            "\"/hls\"",
            "\"/live.m3u8",
        ] {
            assert!(!page.contains(root), "{root} in {page}");
        }
    }

    #[test]
    fn an_admins_page_offers_signed_links_for_each_kind() {
        let page = IndexPage {
            version: "0",
            base: "/streams/garage/".into(),
            source: "test".into(),
            width: 640,
            height: 360,
            fps: 15,
            signing: true,
            publish: Some("/streams/garage/publish".into()),
        }
        .render()
        .expect("the template renders");
        assert!(page.contains("Signed link"), "{page}");
        assert!(page.contains("href=\"/streams/garage/publish\""), "{page}");
        assert!(page.contains("action=\"/streams/garage/sign\""), "{page}");
        for resource in crate::access::signed_link::SIGNABLE_RESOURCES {
            assert!(
                page.contains(&format!("value=\"{resource}\"")),
                "{resource}"
            );
        }
    }
}
