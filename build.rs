//! Build script: bundles hls.js (Apache-2.0, from npm, pinned in package.json and
//! package-lock.json) into the binary, so that `/hls` plays in browsers without native HLS.
//!
//! hls.js is never copied into git: `npm ci` puts it in `node_modules/`, this script copies
//! `node_modules/hls.js/dist/hls.min.js` into `OUT_DIR` and sets the `framecast_hls_js` cfg,
//! and `src/http/static_files.rs` embeds it from there. Without it the build still succeeds,
//! warns, and `/static/hls.js` answers 404 with the reason.

use std::path::PathBuf;

/// The minified browser build that npm's hls.js package ships.
const HLS_JS_SOURCE: &str = "node_modules/hls.js/dist/hls.min.js";
/// Its name inside `OUT_DIR`; `static_files.rs` includes it by this name.
const HLS_JS_OUT: &str = "hls.min.js";
/// Set when hls.js is bundled.
const HLS_JS_CFG: &str = "framecast_hls_js";

fn main() {
    // Declared either way, so `cfg(framecast_hls_js)` never trips `unexpected_cfgs`.
    println!("cargo::rustc-check-cfg=cfg({HLS_JS_CFG})");

    let (Some(manifest_dir), Some(out_dir)) = (
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::var_os("OUT_DIR").map(PathBuf::from),
    ) else {
        println!("cargo::warning=CARGO_MANIFEST_DIR or OUT_DIR is not set; hls.js is not bundled");
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

    match std::fs::copy(&source, out_dir.join(HLS_JS_OUT)) {
        Ok(_) => println!("cargo::rustc-cfg={HLS_JS_CFG}"),
        Err(error) => println!(
            "cargo::warning=hls.js is not bundled ({}: {error}): run `npm ci` first \
             (`make run` and `make test` do); /hls then plays only where the browser has \
             native HLS",
            source.display()
        ),
    }
}
