//! HTML pages, rendered from askama templates in `templates/`.

use actix_web::web;
use actix_web::{CustomizeResponder, Responder};
use askama::Template;
use askama_web::WebTemplate;

use super::AppState;
use super::cache::CachePolicy;
use super::static_files::HLS_JS_BUNDLED;

/// `GET /`: the live MJPEG picture with latency and frame-rate readouts.
#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub version: &'static str,
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Pages describe the running stream: stored, but asked for again each time.
fn page<T: Responder>(page: T) -> CustomizeResponder<T> {
    page.customize()
        .insert_header(CachePolicy::Revalidate.header())
}

pub async fn index(state: web::Data<AppState>) -> CustomizeResponder<IndexPage> {
    page(IndexPage {
        version: env!("CARGO_PKG_VERSION"),
        source: state.config.source.to_string(),
        width: state.config.size.width,
        height: state.config.size.height,
        fps: state.config.fps,
    })
}

/// `GET /hls`: the HLS stream in a `<video>`, played through the bundled hls.js, or natively
/// where hls.js cannot run (no Media Source Extensions), with latency, buffer and
/// playback-rate readouts.
#[derive(Template, WebTemplate)]
#[template(path = "hls.html")]
pub struct HlsPage {
    pub version: &'static str,
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// `false` with `--no-hls`: the page says so instead of trying to play.
    pub hls_enabled: bool,
    /// Whether `/static/hls.js` exists in this build (see `build.rs`).
    pub hls_js_bundled: bool,
}

pub async fn hls(state: web::Data<AppState>) -> CustomizeResponder<HlsPage> {
    page(HlsPage {
        version: env!("CARGO_PKG_VERSION"),
        source: state.config.source.to_string(),
        width: state.config.size.width,
        height: state.config.size.height,
        hls_enabled: state.hls.is_some(),
        hls_js_bundled: HLS_JS_BUNDLED,
    })
}

/// `GET /live`: `/live.mp4` played by the page's own Media Source Extensions player, the
/// lowest-latency `<video>` path.
#[derive(Template, WebTemplate)]
#[template(path = "live.html")]
pub struct LivePage {
    pub version: &'static str,
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// `false` with `--no-hls`, which also turns `/live.mp4` off.
    pub hls_enabled: bool,
}

pub async fn live(state: web::Data<AppState>) -> CustomizeResponder<LivePage> {
    page(LivePage {
        version: env!("CARGO_PKG_VERSION"),
        source: state.config.source.to_string(),
        width: state.config.size.width,
        height: state.config.size.height,
        hls_enabled: state.hls.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hls_page(hls_js_bundled: bool) -> String {
        HlsPage {
            version: "0",
            source: "test".into(),
            width: 640,
            height: 360,
            hls_enabled: true,
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
}
