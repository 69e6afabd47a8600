//! Socket options for every accepted connection.
//!
//! - TCP_NODELAY: a frame's last bytes must not wait for an ACK (Nagle), or latency jumps by
//!   tens of milliseconds.
//! - TCP_NOTSENT_LOWAT (Linux): the kernel reports the socket writable only while less than
//!   this much is queued and unsent. Without it a slow viewer's socket buffer swallows
//!   megabytes (seconds of video) before the server sees back-pressure; with it the server picks
//!   the newest frame at the moment the socket can really take one.

use tokio::net::TcpStream;

/// About one 720p JPEG: enough queued to keep the link busy, little enough to stay current.
const NOTSENT_LOWAT_BYTES: u32 = 128 * 1024;

pub fn tune_connection(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    set_notsent_lowat(stream);
}

#[cfg(target_os = "linux")]
fn set_notsent_lowat(stream: &TcpStream) {
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT_BYTES) {
        tracing::debug!(%error, "cannot set TCP_NOTSENT_LOWAT");
    }
}

#[cfg(not(target_os = "linux"))]
fn set_notsent_lowat(_stream: &TcpStream) {}
