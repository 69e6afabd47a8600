//! The crate's error type for failures that stop the server from starting or running.
//! It knows nothing of HTTP: request errors live in `http::error`.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the source: {0}")]
    Source(String),
    #[error("cannot start the JPEG encoder: {0}")]
    JpegEncoder(String),
    #[error("cannot start the H.264 encoder: {0}")]
    H264Encoder(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the source ended for good (--exit-on-eof): {0}")]
    SourceFinished(String),
    /// The key of signed links cannot be read or made; the message names the file.
    #[error("{0}")]
    SigningKey(String),
    #[error("cannot serve HTTPS: {0}")]
    Tls(String),
    #[error("server error: {0}")]
    Server(#[source] std::io::Error),
}
