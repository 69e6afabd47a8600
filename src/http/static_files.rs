//! `GET /static/{name}`: the pages' own scripts and styles, compiled into the binary so that
//! framecast is one file to deploy.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::HttpError;

/// Name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/style.css"),
    ),
    (
        "viewer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/viewer.js"),
    ),
    (
        "timestamp-strip.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/timestamp-strip.js"),
    ),
];

pub async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, HttpError> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(file, _, _)| *file == name.as_str())
        .ok_or_else(|| HttpError::NotFound(req.path().to_owned()))?;
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
        .insert_header((CONTENT_TYPE, *content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((ETAG, etag))
        .body(*bytes))
}
