//! The live page in a real browser: starts framecast and runs `tests/browser/mjpeg_page.mjs`,
//! which drives Debian's headless Chromium through playwright-core, checks that the MJPEG
//! picture moves and the latency readout works, and saves a screenshot to
//! `target/test-output/mjpeg_page.png`.
//!
//! Skipped, with a notice, where Chromium, node or `node_modules/playwright-core` is missing;
//! `make test` installs all three.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, have, run_with_timeout};

/// Debian's Chromium package; playwright-core never downloads a browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The script's own limit is 50 s; this catches a node process that hangs anyway.
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
    if !root
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some("node_modules/playwright-core missing (npm ci)".into());
    }
    None
}

#[test]
fn mjpeg_page_shows_a_moving_picture_in_chromium() {
    let root = repo_root();
    if let Some(reason) = missing_prerequisite(&root) {
        println!(
            "SKIPPED mjpeg_page_shows_a_moving_picture_in_chromium: {reason}; `make test` installs it"
        );
        return;
    }
    let out_dir = root.join("target/test-output");
    std::fs::create_dir_all(&out_dir).unwrap();

    let server = Server::start(&["--size", "640x360", "--fps", "30"]);
    let base_url = server.url("");
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("node")
            .arg(root.join("tests/browser/mjpeg_page.mjs"))
            .arg(&base_url)
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
    assert!(out_dir.join("mjpeg_page.png").exists());
}
