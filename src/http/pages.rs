//! HTML pages, rendered from askama templates in `templates/`.

use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;

use super::AppState;

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

pub async fn index(state: web::Data<AppState>) -> IndexPage {
    IndexPage {
        version: env!("CARGO_PKG_VERSION"),
        source: state.config.source.to_string(),
        width: state.config.size.width,
        height: state.config.size.height,
        fps: state.config.fps,
    }
}
