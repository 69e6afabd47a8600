//! Build script: bundles hls.js (Apache-2.0, from npm, pinned in package.json and
//! package-lock.json) into the binary, so that `/hls` plays in browsers without native HLS.
//!
//! hls.js is never copied into git: `npm ci` puts it in `node_modules/`, this script copies
//! `node_modules/hls.js/dist/hls.min.js` into `OUT_DIR` and sets the `framecast_hls_js` cfg,
//! and `src/http/static_files.rs` embeds it from there.
//!
//! Without it the build fails and says what to run (`npm ci`, or `make run`, which does it):
//! a binary whose `/hls` page quietly plays only where the browser has native HLS is worse
//! than no binary. A build without hls.js is possible only on request, with
//! `FRAMECAST_WITHOUT_HLS_JS=1`; the `/hls` page of such a binary says that it was built so.
//! The script fetches nothing itself: a build script that downloads breaks offline and
//! vendored builds, and npm's lock file is what pins hls.js.

use std::path::{Path, PathBuf};

/// The minified browser build that npm's hls.js package ships.
const HLS_JS_SOURCE: &str = "node_modules/hls.js/dist/hls.min.js";
/// Its name inside `OUT_DIR`; `static_files.rs` includes it by this name.
const HLS_JS_OUT: &str = "hls.min.js";
/// Set when hls.js is bundled.
const HLS_JS_CFG: &str = "framecast_hls_js";
/// Set to `1` to build without hls.js on purpose.
const WITHOUT_HLS_JS_ENV: &str = "FRAMECAST_WITHOUT_HLS_JS";

fn main() {
    // Declared either way, so `cfg(framecast_hls_js)` never trips `unexpected_cfgs`.
    println!("cargo::rustc-check-cfg=cfg({HLS_JS_CFG})");
    println!("cargo::rerun-if-env-changed={WITHOUT_HLS_JS_ENV}");

    let (Some(manifest_dir), Some(out_dir)) = (
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::var_os("OUT_DIR").map(PathBuf::from),
    ) else {
        fail("CARGO_MANIFEST_DIR or OUT_DIR is not set: run this build through cargo");
        return;
    };
    let source = manifest_dir.join(HLS_JS_SOURCE);
    // npm extracts files with a fixed old mtime, so a new hls.js version shows up as a change
    // of the lock file, not of the file itself. A missing file makes cargo rerun this script
    // on every build, which is what picks up a later `npm ci`.
    println!("cargo::rerun-if-changed={}", source.display());
    println!(
        "cargo::rerun-if-changed={}",
        manifest_dir.join("package-lock.json").display()
    );

    let without = std::env::var(WITHOUT_HLS_JS_ENV).is_ok_and(|v| v == "1");
    if without {
        println!(
            "cargo::warning=built without hls.js ({WITHOUT_HLS_JS_ENV}=1): /hls plays only \
             where the browser has native HLS, and says so"
        );
        return;
    }
    match std::fs::copy(&source, out_dir.join(HLS_JS_OUT)) {
        Ok(_) => println!("cargo::rustc-cfg={HLS_JS_CFG}"),
        Err(error) => fail(&missing_message(&manifest_dir, &source, &error)),
    }
}

/// What a developer reads when hls.js is not there: what is missing and the exact commands.
fn missing_message(manifest_dir: &Path, source: &Path, error: &std::io::Error) -> String {
    format!(
        "hls.js is missing ({}: {error}).\n\
         framecast bundles hls.js from npm for its /hls page. Install it, then build again:\n\
         \n    cd {} && npm ci\n\n\
         or build and run with `make run`, which installs it first.\n\
         To build without hls.js on purpose (the /hls page then plays only where the browser \
         has native HLS, and says so), set {WITHOUT_HLS_JS_ENV}=1.",
        source.display(),
        manifest_dir.display(),
    )
}

/// Fails the build with `message`: cargo prints each `cargo::error` line as an error and stops
/// once the script returns (exiting non-zero instead would bury the text under "failed to run
/// custom build command").
fn fail(message: &str) {
    for line in message.lines().filter(|line| !line.trim().is_empty()) {
        println!("cargo::error={line}");
    }
}
