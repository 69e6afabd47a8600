//! The Cache-Control policy of every response, in one place. Each route names its policy;
//! nothing else writes a Cache-Control header.
//!
//! | route | policy |
//! | --- | --- |
//! | `/stream.mjpg`, `/live.mp4`, `/snapshot.jpg`, `/status`, `/healthz`, every error | [`CachePolicy::Live`] |
//! | pages, `/static/*`, `/live.m3u8`, a media playlist without blocking parameters | [`CachePolicy::Revalidate`] |
//! | a media playlist answering a blocking reload | [`CachePolicy::BlockingPlaylist`] |
//! | init sections, segments, parts (named per server start) | [`CachePolicy::Immutable`] |

use actix_web::http::header::{CACHE_CONTROL, HeaderName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Changes with every frame or every request: never stored. The older directives are for
    /// proxies and players that predate `no-store`.
    Live,
    /// May be stored, but every use asks the server first (ETag or a changed body).
    Revalidate,
    /// A blocking reload's answer is specific to the part it waited for, so caches may keep it
    /// briefly (Apple's LL-HLS guidance for CDNs).
    BlockingPlaylist,
    /// Never changes under its name.
    Immutable,
}

impl CachePolicy {
    pub const fn value(self) -> &'static str {
        match self {
            Self::Live => "no-store, no-cache, must-revalidate, max-age=0",
            Self::Revalidate => "no-cache",
            Self::BlockingPlaylist => "public, max-age=6",
            Self::Immutable => "public, max-age=31536000, immutable",
        }
    }

    /// The header pair, for `insert_header`.
    pub const fn header(self) -> (HeaderName, &'static str) {
        (CACHE_CONTROL, self.value())
    }
}
