//! `GET /static/{name}`: the pages' own scripts and styles, compiled into the binary so that
//! framecast is one file to deploy. The pages' scripts are ES modules that import each other by
//! relative URL. hls.js (Apache-2.0) comes from npm at build time: see `build.rs`; only a build
//! made with `FRAMECAST_WITHOUT_HLS_JS=1` lacks it, and then `/static/hls.js` answers 404.

use actix_web::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};

use super::cache::CachePolicy;
use super::error::HttpError;

/// Scripts and ES modules alike: `text/javascript` is the one JavaScript MIME type (RFC 9239
/// §6), and browsers refuse a module served under a type that is not a JavaScript one.
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file in `static/`: its name, content type and bytes.
macro_rules! static_file {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_bytes!(concat!("../../static/", $name)),
        )
    };
}

/// Name, content type, bytes. Each page loads its own module (`viewer.js` for MJPEG,
/// `hls-page.js`, `mse-page.js`, `webrtc-page.js`); those import the rest.
const FILES: &[(&str, &str, &[u8])] = &[
    static_file!("style.css", CSS),
    // Page modules.
    static_file!("viewer.js", JAVASCRIPT),
    static_file!("hls-page.js", JAVASCRIPT),
    static_file!("mse-page.js", JAVASCRIPT),
    static_file!("webrtc-page.js", JAVASCRIPT),
    static_file!("grid.js", JAVASCRIPT),
    static_file!("publish-page.js", JAVASCRIPT),
    // Shared by the pages.
    static_file!("player.js", JAVASCRIPT),
    static_file!("latency-probe.js", JAVASCRIPT),
    static_file!("timestamp-strip.js", JAVASCRIPT),
    static_file!("fmp4.js", JAVASCRIPT),
    static_file!("live-edge.js", JAVASCRIPT),
    static_file!("whip-client.js", JAVASCRIPT),
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
                "{}: this build was made without hls.js (FRAMECAST_WITHOUT_HLS_JS=1)",
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
        .insert_header(CachePolicy::Revalidate.header())
        .insert_header((ETAG, etag))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `./name.js` modules that `source` imports (`import … from "./name.js"`).
    fn relative_imports(source: &str) -> Vec<&str> {
        source
            .split("from \"./")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn every_static_file_is_served_and_every_import_resolves() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("static/")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(name, _, _)| name.to_string()).collect();
        served.sort();
        assert_eq!(
            served, on_disk,
            "every file in static/ is served, nothing else"
        );

        for (name, content_type, bytes) in FILES {
            if !name.ends_with(".js") {
                continue;
            }
            assert_eq!(*content_type, JAVASCRIPT, "{name}");
            let source = std::str::from_utf8(bytes).expect("UTF-8");
            for import in relative_imports(source) {
                assert!(
                    FILES.iter().any(|(file, _, _)| *file == import),
                    "{name} imports ./{import}, which is not served"
                );
            }
        }
    }

    #[test]
    fn imports_are_found() {
        let source = "import { a } from \"./a.js\";\nimport { b, c } from \"./b.js\";\n";
        assert_eq!(relative_imports(source), ["a.js", "b.js"]);
    }
}
