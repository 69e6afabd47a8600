//! The live page in a real browser: starts framecast and runs `tests/browser/mjpeg_page.mjs`,
//! which drives Debian's headless Chromium through playwright-core, checks that the MJPEG
//! picture moves and the latency readout works, and saves a screenshot to
//! `target/test-output/mjpeg_page.png`.
//!
//! Fails, naming it, where Chromium, node or `node_modules/playwright-core` is missing (skipped
//! only with `FRAMECAST_ALLOW_MISSING_CLIENTS=1`); `make test` installs all three.

mod common;

use common::chromium::{missing_prerequisite, output_dir, run_script};
use common::{Server, require_prerequisite};

#[test]
fn mjpeg_page_shows_a_moving_picture_in_chromium() {
    if !require_prerequisite(
        missing_prerequisite(&["playwright-core/package.json"]),
        "mjpeg_page_shows_a_moving_picture_in_chromium",
    ) {
        return;
    }
    let server = Server::start(&["--size", "640x360", "--fps", "30"]);
    run_script("mjpeg_page.mjs", &server.url(""));
    assert!(output_dir().join("mjpeg_page.png").exists());
}
