//! An LL-HLS viewer that does what a low-latency player (hls.js) does: fetch the hinted part
//! (held until it exists), then the playlist with `_HLS_msn`/`_HLS_part`/`_HLS_skip=YES` for
//! the next one, gzip'd, over one keep-alive connection. Used by the HLS load generator
//! (`benches/hls_load.rs`) and the RTSP camera bench (`benches/rtsp_camera.rs`); many viewers
//! run as tasks on one tokio thread.

use framecast::hls::names::HlsName;
use framecast::media::playlist::{parse_media_playlist, parse_multivariant_playlist};
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Bounds any one request: a held request is answered within three target durations.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, and how many times, [`wait_for_media`] asks for the multivariant playlist.
const MEDIA_POLL: Duration = Duration::from_millis(500);
const MEDIA_POLLS: u32 = 60;

/// A part one viewer received, and when.
pub struct Fetch {
    pub part: (u64, u64),
    pub at: Instant,
}

/// Polls the multivariant playlist at `playlist_path` (`/live.m3u8`,
/// `/streams/NAME/live.m3u8`) until media exists; returns the media playlist's directory path.
pub async fn wait_for_media(addr: SocketAddr, playlist_path: &str) -> Result<String, String> {
    // Variant URIs are relative to the multivariant playlist.
    let base = &playlist_path[..playlist_path.rfind('/').map_or(0, |at| at + 1)];
    for _ in 0..MEDIA_POLLS {
        let mut conn = Connection::open(addr).await?;
        if let Ok((200, body)) = conn.get(playlist_path).await {
            let text = body_text(&body);
            let playlist = parse_multivariant_playlist(&text).map_err(|e| e.to_string())?;
            if let Some(variant) = playlist.variants.first() {
                let dir = variant.uri.trim_end_matches("media.m3u8");
                return Ok(if base.is_empty() {
                    format!("/{dir}")
                } else {
                    format!("{base}{dir}")
                });
            }
        }
        tokio::time::sleep(MEDIA_POLL).await;
    }
    Err(format!(
        "no HLS media at {playlist_path} after {:?}",
        MEDIA_POLL * MEDIA_POLLS
    ))
}

/// One player of the media playlist in `prefix` until `deadline`: returns the parts it
/// fetched, each with the moment it arrived.
pub async fn viewer(
    addr: SocketAddr,
    prefix: String,
    deadline: tokio::time::Instant,
) -> Result<Vec<Fetch>, String> {
    let mut conn = Connection::open(addr).await?;
    let (_, body) = conn.get(&format!("{prefix}media.m3u8")).await?;
    let mut hint = preload_hint(&body).ok_or("no preload hint")?;
    let mut parts = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let (status, _) = conn
            .get(&format!("{prefix}part{}.{}.m4s", hint.0, hint.1))
            .await?;
        if status == 200 {
            parts.push(Fetch {
                part: hint,
                at: Instant::now(),
            });
        }
        // The part just fetched is complete: the reload for it answers at once with the next
        // hint. hls.js asks for delta updates, gzip'd.
        let (_, body) = conn
            .get(&format!(
                "{prefix}media.m3u8?_HLS_msn={}&_HLS_part={}&_HLS_skip=YES",
                hint.0, hint.1
            ))
            .await?;
        hint = preload_hint(&body).ok_or("no preload hint")?;
    }
    Ok(parts)
}

/// A playlist body as text, gzip'd or not.
fn body_text(body: &[u8]) -> String {
    let mut text = String::new();
    if body.starts_with(&[0x1f, 0x8b]) {
        let _ = flate2::read::GzDecoder::new(body).read_to_string(&mut text);
        return text;
    }
    String::from_utf8_lossy(body).into_owned()
}

/// (msn, part) of the playlist's PRELOAD-HINT, read with the crate's parser.
fn preload_hint(playlist: &[u8]) -> Option<(u64, u64)> {
    let parsed = parse_media_playlist(&body_text(playlist)).ok()?;
    match HlsName::parse(&parsed.playlist.preload_hint?.uri)? {
        HlsName::Part { msn, index } => Some((msn, index as u64)),
        _ => None,
    }
}

/// A keep-alive HTTP/1.1 connection that reads Content-Length and chunked bodies.
struct Connection {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        Ok(Self {
            reader: BufReader::new(stream),
            addr,
        })
    }

    async fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>), String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(path))
            .await
            .map_err(|_| format!("{path}: timed out"))?
    }

    async fn exchange(&mut self, path: &str) -> Result<(u16, Vec<u8>), String> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: framecast-hls-load\r\nAccept-Encoding: gzip\r\n\r\n",
            self.addr
        );
        let io = |e: std::io::Error| e.to_string();
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await.map_err(io)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line `{line}`"))?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.map_err(io)?;
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(v) = header.strip_prefix("content-length:") {
                length = v.trim().parse().map_err(|_| "bad content-length")?;
            } else if header.starts_with("transfer-encoding:") && header.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).await.map_err(io)?;
                let size = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk size")?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).await.map_err(io)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body).await.map_err(io)?;
        }
        Ok((status, body))
    }
}
