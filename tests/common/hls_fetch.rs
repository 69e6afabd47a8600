//! Fetching a server's HLS as a player does: the media playlist named by the multivariant
//! one, parsed and held to the crate's playlist rules, and the files it lists.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use framecast::media::playlist::{
    ParsedMediaPlaylist, check_update, check_written, parse_media_playlist,
    parse_multivariant_playlist,
};

use super::{get, status_json};

/// The media playlist's path, from the multivariant playlist at `multivariant_path`
/// (`/live.m3u8` or `/streams/NAME/live.m3u8`).
pub fn media_path_of(addr: SocketAddr, multivariant_path: &str) -> String {
    let response = get(addr, multivariant_path);
    assert_eq!(response.status, 200, "{}", response.text());
    let multivariant = parse_multivariant_playlist(&response.text()).expect("multivariant");
    sibling(multivariant_path, &multivariant.variants[0].uri)
}

/// The first stream's media playlist path.
pub fn media_path(addr: SocketAddr) -> String {
    media_path_of(addr, "/live.m3u8")
}

/// The media playlist, parsed and checked against the crate's rules.
pub fn media_playlist(addr: SocketAddr, path: &str) -> (ParsedMediaPlaylist, String) {
    let response = get(addr, path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    let text = response.text();
    let parsed = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    check_written(&parsed).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    (parsed, text)
}

/// `uri` relative to the directory of the playlist at `playlist_path` (RFC 3986 §5.2, for
/// the relative paths framecast writes).
pub fn sibling(playlist_path: &str, uri: &str) -> String {
    let dir = playlist_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    format!("{dir}/{uri}")
}

/// Follows a stream's media playlist through changes of its source, as a player that keeps
/// reloading does: every playlist is held to the rules and to the one before it
/// (`check_update`, RFC 8216bis §6.2.1), whatever happens in between.
pub struct PlaylistFollower {
    addr: SocketAddr,
    path: Option<String>,
    previous: Option<ParsedMediaPlaylist>,
    limit: Duration,
    poll: Duration,
}

impl PlaylistFollower {
    /// Follows the first stream's playlist; each [`PlaylistFollower::until`] waits at most
    /// `limit`, reloading every `poll`.
    pub fn new(addr: SocketAddr, limit: Duration, poll: Duration) -> Self {
        Self {
            addr,
            path: None,
            previous: None,
            limit,
            poll,
        }
    }

    /// Reloads `/status` and, once HLS has a segment, the playlist, until `done` holds for
    /// `/status`'s `hls` object and the playlist; returns that `hls` object. Fails naming
    /// `what` when the time runs out.
    pub fn until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&serde_json::Value, &ParsedMediaPlaylist) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + self.limit;
        loop {
            let hls = status_json(self.addr)["hls"].clone();
            if hls["segments"].as_u64().unwrap_or(0) > 0 {
                let path = self.path.get_or_insert_with(|| media_path(self.addr));
                let (parsed, text) = media_playlist(self.addr, path);
                if let Some(previous) = &self.previous {
                    check_update(&previous.playlist, &parsed.playlist)
                        .unwrap_or_else(|e| panic!("{e}:\n{text}"));
                }
                let finished = done(&hls, &parsed);
                self.previous = Some(parsed);
                if finished {
                    return hls;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not {what} within {:?}: {hls}",
                self.limit
            );
            std::thread::sleep(self.poll);
        }
    }
}

/// Discontinuities since the stream began: the playlist's discontinuity sequence plus the
/// EXT-X-DISCONTINUITY tags it still lists (RFC 8216bis §4.4.3.3).
pub fn discontinuities(playlist: &ParsedMediaPlaylist) -> u64 {
    playlist.playlist.discontinuity_sequence
        + playlist
            .playlist
            .segments
            .iter()
            .filter(|s| s.discontinuity)
            .count() as u64
}
