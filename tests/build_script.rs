//! `build.rs` never lets a build lose hls.js quietly: compiled on its own and run the way cargo
//! runs it, against a scratch directory, it fails a build without `node_modules/hls.js` with a
//! message that names the commands to run, builds without hls.js only when
//! `FRAMECAST_WITHOUT_HLS_JS=1` asks for it, and bundles hls.js when it is there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WITHOUT_HLS_JS_ENV: &str = "FRAMECAST_WITHOUT_HLS_JS";

/// A scratch directory of its own for each test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "framecast-build-script-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("out")).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles the crate's `build.rs` into `dir` with the same rustc cargo uses.
fn compile_build_script(dir: &Path) -> PathBuf {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let binary = dir.join("build-script");
    let output = Command::new(rustc)
        .args(["--edition", "2024", "--crate-name", "build_script", "-o"])
        .arg(&binary)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("build.rs"))
        .output()
        .expect("rustc runs");
    assert!(
        output.status.success(),
        "build.rs does not compile: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// Runs the build script as cargo would for a crate in `manifest_dir`.
fn run(binary: &Path, manifest_dir: &Path, without_hls_js: Option<&str>) -> (Output, String) {
    let mut command = Command::new(binary);
    command
        .env("CARGO_MANIFEST_DIR", manifest_dir)
        .env("OUT_DIR", manifest_dir.join("out"))
        .env_remove(WITHOUT_HLS_JS_ENV);
    if let Some(value) = without_hls_js {
        command.env(WITHOUT_HLS_JS_ENV, value);
    }
    let output = command.output().expect("build script runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

fn errors(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("cargo::error="))
        .collect()
}

#[test]
fn a_build_without_hls_js_fails_and_says_what_to_run() {
    let scratch = Scratch::new("missing");
    let binary = compile_build_script(&scratch.0);
    let (_, stdout) = run(&binary, &scratch.0, None);
    let errors = errors(&stdout).join("\n");
    assert!(!errors.is_empty(), "no cargo::error line:\n{stdout}");
    assert!(errors.contains("hls.js is missing"), "{errors}");
    assert!(
        errors.contains(&format!("cd {} && npm ci", scratch.0.display())),
        "{errors}"
    );
    assert!(errors.contains("`make run`"), "{errors}");
    assert!(errors.contains("FRAMECAST_WITHOUT_HLS_JS=1"), "{errors}");
    assert!(!stdout.contains("cargo::rustc-cfg=framecast_hls_js"));

    // Anything but exactly "1" is not a request to go without.
    let (_, stdout) = run(&binary, &scratch.0, Some("yes"));
    assert!(!errors_empty(&stdout), "{stdout}");
}

fn errors_empty(stdout: &str) -> bool {
    errors(stdout).is_empty()
}

#[test]
fn a_build_without_hls_js_on_request_succeeds_and_warns() {
    let scratch = Scratch::new("opt-out");
    let binary = compile_build_script(&scratch.0);
    let (output, stdout) = run(&binary, &scratch.0, Some("1"));
    assert!(output.status.success());
    assert!(errors_empty(&stdout), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cargo::warning=built without hls.js")),
        "{stdout}"
    );
    assert!(!stdout.contains("cargo::rustc-cfg=framecast_hls_js"));
}

#[test]
fn hls_js_from_node_modules_is_bundled() {
    let scratch = Scratch::new("bundled");
    let dist = scratch.0.join("node_modules/hls.js/dist");
    std::fs::create_dir_all(&dist).expect("dist dir");
    std::fs::write(dist.join("hls.min.js"), b"/* hls.js */").expect("hls.min.js");
    let binary = compile_build_script(&scratch.0);
    let (output, stdout) = run(&binary, &scratch.0, None);
    assert!(output.status.success());
    assert!(errors_empty(&stdout), "{stdout}");
    assert!(
        stdout.contains("cargo::rustc-cfg=framecast_hls_js"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(scratch.0.join("out/hls.min.js")).expect("copied"),
        b"/* hls.js */"
    );
}
