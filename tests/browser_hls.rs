//! The video pages in a real browser: starts framecast and runs `tests/browser/hls_pages.mjs`,
//! which drives Debian's headless Chromium through playwright-core, plays `/hls` (LL-HLS through
//! the bundled hls.js) and `/live` (`/live.mp4` through the page's MSE player), checks that
//! playback advances and the picture changes, and saves screenshots to
//! `target/test-output/hls_page.png` and `live_page.png`.
//!
//! Skipped, with a notice, where Chromium, node, `node_modules/playwright-core` or
//! `node_modules/hls.js` is missing; `make test` installs all of them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, have, run_with_timeout};

/// Debian's Chromium package; playwright-core never downloads a browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The script's own limit is 55 s; this catches a node process that hangs anyway.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite(root: &Path) -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} not found (apt-get install chromium)"));
    }
    if !have("node") {
        return Some("node not on PATH (apt-get install nodejs npm)".into());
    }
    for package in ["playwright-core/package.json", "hls.js/dist/hls.min.js"] {
        if !root.join("node_modules").join(package).exists() {
            return Some(format!("node_modules/{package} missing (npm ci)"));
        }
    }
    None
}

#[test]
fn hls_and_mse_pages_play_the_live_picture_in_chromium() {
    let root = repo_root();
    if let Some(reason) = missing_prerequisite(&root) {
        println!(
            "SKIPPED hls_and_mse_pages_play_the_live_picture_in_chromium: {reason}; \
             `make test` installs it"
        );
        return;
    }
    let out_dir = root.join("target/test-output");
    std::fs::create_dir_all(&out_dir).unwrap();

    let server = Server::start(&["--size", "640x360"]);
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("node")
            .arg(root.join("tests/browser/hls_pages.mjs"))
            .arg(server.url(""))
            .arg(&out_dir)
            .current_dir(&root),
        SCRIPT_TIMEOUT,
    );
    let result = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .unwrap_or("");
    println!("{result}");
    assert!(
        ok,
        "browser test failed\nresult: {result}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let parsed: serde_json::Value = serde_json::from_str(result).unwrap();
    assert_eq!(parsed["ok"], true, "{result}");
    assert_eq!(parsed["hls"]["player"]["mode"], "ll-hls", "{result}");
    assert_eq!(parsed["live"]["player"]["mode"], "mse", "{result}");
    assert!(out_dir.join("hls_page.png").exists());
    assert!(out_dir.join("live_page.png").exists());
}
