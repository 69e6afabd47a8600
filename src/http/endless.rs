//! Responses whose body never ends (`/stream.mjpg`, `/live.mp4`): one viewer's async state
//! turned into a body, framed right for the client's HTTP version.

use std::convert::Infallible;
use std::future::Future;

use actix_web::http::Version;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;

/// A viewer hands out its body one chunk at a time; `None` ends the response.
pub trait ChunkSource: 'static {
    fn next_chunk(&mut self) -> impl Future<Output = Option<Bytes>>;
}

/// Streams `viewer` as the body of `response`. HTTP/1.0 has no chunked coding (RFC 9112
/// §6.1), so for it the body simply runs until the connection closes.
pub fn respond<V: ChunkSource>(
    req: &HttpRequest,
    response: &mut HttpResponseBuilder,
    viewer: V,
) -> HttpResponse {
    let body = futures::stream::unfold(viewer, |mut viewer| async move {
        let chunk = viewer.next_chunk().await?;
        Some((Ok::<Bytes, Infallible>(chunk), viewer))
    });
    let mut response = response.streaming(body);
    if req.version() < Version::HTTP_11 {
        response.head_mut().no_chunking(true);
    }
    response
}

/// The headers of such a response without starting one (for HEAD), which would never end.
pub fn headers_only(response: &mut HttpResponseBuilder) -> HttpResponse {
    response.streaming(futures::stream::empty::<Result<Bytes, Infallible>>())
}
