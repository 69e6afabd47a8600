//! Firefox (Debian's firefox-esr, headless) shows the live MJPEG stream in an `<img>`, and the
//! index page renders: checked from the pixels of its screenshots.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, require_clients, run_with_timeout, unix_now_micros};
use framecast::source::timestamp_strip;

const WIDTH: usize = 640;
const HEIGHT: usize = 360;
/// A screenshot must show a frame captured at most this long before it was taken (start-up
/// of a cold Firefox included).
const MAX_AGE: Duration = Duration::from_secs(20);

/// Takes a headless screenshot of `url` at the given window size into `png`.
fn screenshot(dir: &Path, url: &str, window: (usize, usize), png: &Path) {
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).expect("profile dir");
    let (ok, _out, err) = run_with_timeout(
        Command::new("firefox-esr")
            .env("HOME", dir)
            .args(["--headless", "--profile"])
            .arg(&profile)
            .arg(format!("--window-size={},{}", window.0, window.1))
            .arg("--screenshot")
            .arg(png)
            .arg(url),
        Duration::from_secs(90),
    );
    assert!(
        ok && png.is_file(),
        "firefox screenshot of {url} failed: {err}"
    );
}

/// The screenshot's luma, through ffmpeg.
fn luma_of(png: &Path) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg could not read {}",
        png.display()
    );
    output.stdout
}

#[test]
fn firefox_shows_the_live_stream_in_an_img() {
    if !require_clients(
        &["firefox-esr", "ffmpeg"],
        "firefox_shows_the_live_stream_in_an_img",
    ) {
        return;
    }
    let server = Server::start(&["--size", "640x360", "--no-hls"]);
    let dir = std::env::temp_dir().join(format!("framecast-firefox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // The picture alone, at its own size in the top left corner, so the strip can be read.
    let page = dir.join("img.html");
    std::fs::write(
        &page,
        format!(
            "<!doctype html><html><body style=\"margin:0;background:#000\">\
             <img src=\"{}\" style=\"position:fixed;left:0;top:0;width:{WIDTH}px;height:{HEIGHT}px\">\
             </body></html>",
            server.url("/stream.mjpg")
        ),
    )
    .expect("page");
    let png = dir.join("img.png");
    let started = unix_now_micros();
    screenshot(
        &dir,
        &format!("file://{}", page.display()),
        (WIDTH, HEIGHT),
        &png,
    );
    let luma = luma_of(&png);
    assert_eq!(luma.len(), WIDTH * HEIGHT, "screenshot size");
    let captured = timestamp_strip::decode_luma(&luma, WIDTH, HEIGHT, WIDTH)
        .expect("the timestamp strip reads from Firefox's picture");
    assert!(
        captured + 2_000_000 >= started && captured <= unix_now_micros(),
        "Firefox shows a frame of this run: captured {captured}, test started {started}"
    );
    assert!(unix_now_micros() - captured < MAX_AGE.as_micros() as u64);

    // The index page renders with the live picture in it.
    let index = dir.join("index.png");
    screenshot(&dir, &server.url("/"), (1000, 900), &index);
    let luma = luma_of(&index);
    assert_eq!(luma.len(), 1000 * 900);
    let bright = luma.iter().filter(|&&y| y > 200).count();
    assert!(
        bright > 10_000,
        "the page shows the picture ({bright} bright pixels)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
