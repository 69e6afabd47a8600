//! What a careless client or camera can do, and that framecast stays small and quiet through
//! it: black-box tests on real sockets and pipes, with figures read from `/status`.

mod common;

use std::time::{Duration, Instant};

use common::{MjpegReader, Server, get, status_json};

/// How long a test waits for the server to notice what it was sent.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn status_stays_small_with_many_viewers_and_huge_user_agents() {
    const VIEWERS: usize = 130;
    /// A user agent far beyond any real one.
    const AGENT_BYTES: usize = 16 * 1024;
    let server = Server::start(&["--size", "320x240", "--fps", "10", "--no-hls"]);
    let agent = "A".repeat(AGENT_BYTES);
    let viewers: Vec<MjpegReader> = (0..VIEWERS)
        .map(|_| MjpegReader::open(server.addr, "/stream.mjpg", &agent))
        .collect();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let status = loop {
        let status = status_json(server.addr);
        if status["viewer_count"].as_u64() == Some(VIEWERS as u64) || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["viewer_count"], VIEWERS as u64);
    let listed = status["viewers"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 100, "details for a bounded number of viewers");
    let agent_kept = status["viewers"][0]["user_agent"].as_str().unwrap_or("");
    assert!(
        agent_kept.chars().count() <= 201,
        "{} chars",
        agent_kept.len()
    );
    // 130 viewers with 16 KB user agents would be 2 MB listed whole.
    let body = get(server.addr, "/status").body;
    assert!(body.len() < 100 * 1024, "/status is {} bytes", body.len());
    drop(viewers);
}
