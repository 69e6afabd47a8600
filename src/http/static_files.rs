//! `GET /static/{name}`: the pages' own scripts and styles, compiled into the binary so that
//! framecast is one file to deploy. hls.js (Apache-2.0) comes from npm at build time: see
//! `build.rs`; it is served only when the build found it.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::HttpError;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/style.css"),
    ),
    (
        "viewer.js",
        JAVASCRIPT,
        include_bytes!("../../static/viewer.js"),
    ),
    (
        "timestamp-strip.js",
        JAVASCRIPT,
        include_bytes!("../../static/timestamp-strip.js"),
    ),
    (
        "video-latency.js",
        JAVASCRIPT,
        include_bytes!("../../static/video-latency.js"),
    ),
    (
        "hls-page.js",
        JAVASCRIPT,
        include_bytes!("../../static/hls-page.js"),
    ),
    (
        "live-mp4.js",
        JAVASCRIPT,
        include_bytes!("../../static/live-mp4.js"),
    ),
];

/// The name hls.js is served under.
const HLS_JS_NAME: &str = "hls.js";

/// hls.js's minified build, copied into `OUT_DIR` by `build.rs` from `node_modules`.
#[cfg(framecast_hls_js)]
const HLS_JS: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/hls.min.js")));
#[cfg(not(framecast_hls_js))]
const HLS_JS: Option<&[u8]> = None;

/// Whether this build serves `/static/hls.js`; the `/hls` page says so when it does not.
pub const HLS_JS_BUNDLED: bool = HLS_JS.is_some();

pub async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, HttpError> {
    let (content_type, bytes) = if name.as_str() == HLS_JS_NAME {
        let bytes = HLS_JS.ok_or_else(|| {
            HttpError::NotFound(format!(
                "{}: hls.js is not bundled in this build (run `npm ci` before `cargo build`)",
                req.path()
            ))
        })?;
        (JAVASCRIPT, bytes)
    } else {
        FILES
            .iter()
            .find(|(file, _, _)| *file == name.as_str())
            .map(|(_, content_type, bytes)| (*content_type, *bytes))
            .ok_or_else(|| HttpError::NotFound(req.path().to_owned()))?
    };
    // The binary's version names the content: a new build is new content.
    let etag = format!("\"{}-{}\"", env!("CARGO_PKG_VERSION"), bytes.len());
    if req
        .headers()
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(HttpResponse::NotModified()
            .insert_header((ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((ETAG, etag))
        .body(bytes))
}
