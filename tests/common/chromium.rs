//! Runs a playwright-core script in Debian's headless Chromium against a running server and
//! reads the one JSON line of results it prints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{have, run_with_timeout};

/// Debian's Chromium package; playwright-core never downloads a browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The scripts' own limits are under a minute; this catches a node process that hangs anyway.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where screenshots go.
pub fn output_dir() -> PathBuf {
    let dir = repo_root().join("target/test-output");
    std::fs::create_dir_all(&dir).expect("test output dir");
    dir
}

/// Why a browser test cannot run here, if it cannot: Chromium, node, or one of the npm
/// `packages` (paths under node_modules) is missing. `make test` installs all of them.
pub fn missing_prerequisite(packages: &[&str]) -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} not found (apt-get install chromium)"));
    }
    if !have("node") {
        return Some("node not on PATH (apt-get install nodejs npm)".into());
    }
    packages
        .iter()
        .find(|package| !repo_root().join("node_modules").join(package).exists())
        .map(|package| format!("node_modules/{package} missing (npm ci)"))
}

/// Runs `tests/browser/{script}` with the server's base URL and the output directory, asserts
/// that it succeeded and said `"ok": true`, and returns its results.
pub fn run_script(script: &str, base_url: &str) -> serde_json::Value {
    run_script_with(script, base_url, &[])
}

/// [`run_script`] with `extra` arguments after the output directory.
pub fn run_script_with(script: &str, base_url: &str, extra: &[&str]) -> serde_json::Value {
    let root = repo_root();
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("node")
            .arg(root.join("tests/browser").join(script))
            .arg(base_url)
            .arg(output_dir())
            .args(extra)
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
        "{script} failed\nresult: {result}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let parsed: serde_json::Value = serde_json::from_str(result).expect("JSON result");
    assert_eq!(parsed["ok"], true, "{result}");
    parsed
}
