//! The configuration file as a user meets it, with the real binary: a file with one stream
//! serves that stream with its settings, flags beside the file override its server settings,
//! `FRAMECAST_CONFIG` names the file too, the example file in the repository starts the
//! server, and a bad file exits with code 2 naming the file and the line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Server, get, run_for_exit_code, status_json};

/// Every failing case exits before serving; a server that starts anyway is stopped here.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Writes `text` to a file named `name` in this test binary's scratch directory.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("write the configuration file");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Runs framecast with `args` and no `FRAMECAST_*` settings from the environment; returns
/// (exit code, stdout, stderr).
fn framecast(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_framecast"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FRAMECAST_") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG").args(args);
    run_for_exit_code(&mut command, RUN_LIMIT)
}

#[test]
fn a_file_with_one_stream_serves_it_with_its_settings() {
    let path = config_file(
        "one_stream.toml",
        r#"
listen = "127.0.0.1:0"
jpeg_quality = 60
hls = "off"

[[streams]]
name = "bench"
source = "test"
size = "320x240"
fps = 10
"#,
    );
    let server = Server::start(&["--config", path_str(&path)]);
    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    assert_eq!(snapshot.header("content-type"), Some("image/jpeg"));
    assert!(snapshot.body.starts_with(&[0xFF, 0xD8]), "a JPEG");
    let status = status_json(server.addr);
    // The stream's own size wins over the `--size` the test harness passes.
    assert_eq!(status["source"]["width"], 320, "{status}");
    assert_eq!(status["source"]["height"], 240, "{status}");
    assert_eq!(status["source"]["fps_configured"], 10, "{status}");
    assert_eq!(status["jpeg"]["quality"], 60, "{status}");
    assert!(status["hls"].is_null(), "hls = \"off\": {status}");
    assert_eq!(get(server.addr, "/live.m3u8").status, 404);
}

#[test]
fn flags_beside_the_file_override_its_server_settings() {
    let path = config_file(
        "flags_override.toml",
        r#"
fps = 30
jpeg_quality = 60

[[streams]]
name = "main"
source = "test"
size = "320x240"
"#,
    );
    let server = Server::start(&["--config", path_str(&path), "--fps", "12", "--no-hls"]);
    let status = status_json(server.addr);
    assert_eq!(status["source"]["fps_configured"], 12, "{status}");
    assert_eq!(status["jpeg"]["quality"], 60, "{status}");
    assert!(status["hls"].is_null(), "--no-hls: {status}");
}

#[test]
fn the_environment_names_the_file_too() {
    let path = config_file(
        "from_env.toml",
        "[[streams]]\nname = \"main\"\nsource = \"test\"\nsize = \"320x240\"\njpeg_quality = 55\n",
    );
    let setting = format!("FRAMECAST_CONFIG={}", path_str(&path));
    let server = Server::start_under(&["env", &setting], &["--no-hls"]);
    assert_eq!(get(server.addr, "/snapshot.jpg").status, 200);
    let status = status_json(server.addr);
    assert_eq!(status["jpeg"]["quality"], 55, "{status}");
    assert_eq!(status["source"]["width"], 320, "{status}");
}

#[test]
fn the_example_file_starts_the_server() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("framecast.example.toml");
    // The harness's `--listen 127.0.0.1:0` and `--size 640x360` override the example's.
    let server = Server::start(&["--config", path_str(&example), "--no-hls"]);
    let snapshot = get(server.addr, "/snapshot.jpg");
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    let status = status_json(server.addr);
    assert_eq!(status["source"]["kind"], "test", "{status}");
    assert_eq!(status["source"]["width"], 640, "{status}");
}

#[test]
fn a_bad_file_exits_2_naming_the_file_and_the_line() {
    let path = config_file(
        "bad_fps.toml",
        "listen = \"127.0.0.1:0\"\n\n[[streams]]\nname = \"main\"\nsource = \"test\"\nfps = 500\n",
    );
    let (code, out, err) = framecast(&["--config", path_str(&path)]);
    assert_eq!(code, Some(2), "stdout {out:?} stderr {err:?}");
    assert_eq!(
        err.trim_end(),
        format!(
            "framecast: {}:6:7: fps: 500 is outside 1 to 120",
            path.display()
        )
    );
    assert!(out.is_empty(), "nothing on stdout: {out}");
}

#[test]
fn a_bad_file_never_shows_a_password() {
    let path = config_file(
        "secret.toml",
        "[[streams]]\nname = \"door\"\nsource = \"rtsps://admin:hunter2@door.local/stream#udp\"\n",
    );
    let (code, _, err) = framecast(&["--config", path_str(&path)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(":3:10: source:"), "{err}");
    assert!(
        err.contains("rtsps://admin:***@door.local/stream#udp"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn files_that_cannot_be_served_exit_2_saying_why() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no_such_file.toml");
    let too_large = config_file(
        "too_large_for_hls.toml",
        "[[streams]]\nname = \"printer\"\nsource = \"test\"\n\
         [[streams]]\nname = \"garage\"\nsource = \"test\"\nsize = \"4096x2304\"\n",
    );
    let one_stream = config_file(
        "one_for_source_flag.toml",
        "[[streams]]\nname = \"main\"\nsource = \"test\"\n",
    );
    for (args, expected) in [
        (
            vec!["--config", path_str(&missing)],
            format!(
                "cannot read the configuration file {}: No such file or directory",
                missing.display()
            ),
        ),
        (
            vec!["--config", path_str(&too_large)],
            "stream `garage`: size 4096x2304 is larger than the H.264 encoder takes for HLS"
                .to_owned(),
        ),
        (
            vec!["--config", path_str(&one_stream), "--source", "test"],
            "--source (FRAMECAST_SOURCE) cannot be used with --config".to_owned(),
        ),
    ] {
        let (code, out, err) = framecast(&args);
        assert_eq!(code, Some(2), "{args:?}: stdout {out:?} stderr {err:?}");
        assert!(err.contains(&expected), "{args:?}: {err}");
    }
}
