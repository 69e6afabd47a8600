//! The video pages in a real browser: starts framecast and runs `tests/browser/hls_pages.mjs`,
//! which drives Debian's headless Chromium through playwright-core, plays `/hls` (LL-HLS through
//! the bundled hls.js) and `/live` (`/live.mp4` through the page's MSE player), checks that
//! playback advances and the picture changes, and saves screenshots to
//! `target/test-output/hls_page.png` and `live_page.png`.
//!
//! Fails, naming it, where Chromium, node, `node_modules/playwright-core` or
//! `node_modules/hls.js` is missing (skipped only with `FRAMECAST_ALLOW_MISSING_CLIENTS=1`);
//! `make test` installs all of them.

mod common;

use common::chromium::{missing_prerequisite, output_dir, run_script};
use common::{Server, require_prerequisite};

#[test]
fn hls_and_mse_pages_play_the_live_picture_in_chromium() {
    let packages = ["playwright-core/package.json", "hls.js/dist/hls.min.js"];
    if !require_prerequisite(
        missing_prerequisite(&packages),
        "hls_and_mse_pages_play_the_live_picture_in_chromium",
    ) {
        return;
    }
    let server = Server::start(&["--size", "640x360"]);
    let result = run_script("hls_pages.mjs", &server.url(""));
    assert_eq!(result["hls"]["player"]["mode"], "ll-hls", "{result}");
    assert_eq!(result["live"]["player"]["mode"], "mse", "{result}");
    assert!(output_dir().join("hls_page.png").exists());
    assert!(output_dir().join("live_page.png").exists());
}
