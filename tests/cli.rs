//! The command line as a user meets it: bad flags are usage errors (exit 2) that name the
//! flag, `--help` works, and an address that cannot be bound is a clear failure (exit 1).

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::run_for_exit_code;

/// Every case here exits before serving; a server that starts anyway is stopped at this limit.
const RUN_LIMIT: Duration = Duration::from_secs(20);

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
fn bad_flags_are_usage_errors_naming_the_flag() {
    for (args, named) in [
        (&["--fps", "abc"][..], "--fps"),
        (&["--fps", "0"], "--fps"),
        (&["--fps", "121"], "--fps"),
        (&["--size", "641x480"], "--size"),
        (&["--size", "big"], "--size"),
        (&["--jpeg-quality", "101"], "--jpeg-quality"),
        (&["--jpeg-quality", "0"], "--jpeg-quality"),
        (&["--source", "nope"], "--source"),
        (&["--listen", "nowhere"], "--listen"),
        (&["--bogus"], "--bogus"),
        // A size openh264 cannot encode, with HLS on: refused at start, not a silent HLS.
        (&["--size", "7680x4320"], "--no-hls"),
    ] {
        // A free port, so that a flag accepted by mistake cannot collide with anything.
        let mut full = vec!["--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        let (code, out, err) = framecast(&full);
        assert_eq!(code, Some(2), "{args:?}: stdout {out:?} stderr {err:?}");
        assert!(
            err.contains(named),
            "{args:?}: stderr should name {named}: {err}"
        );
        assert!(out.is_empty(), "{args:?}: nothing on stdout: {out}");
    }
}

#[test]
fn a_bad_environment_value_names_its_flag() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_framecast"));
    command
        .env("FRAMECAST_FPS", "abc")
        .args(["--listen", "127.0.0.1:0"]);
    let (code, _, err) = run_for_exit_code(&mut command, RUN_LIMIT);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--fps"), "{err}");
}

#[test]
fn help_and_version_exit_zero() {
    let (code, out, err) = framecast(&["--help"]);
    assert_eq!(code, Some(0), "{err}");
    for flag in [
        "--config",
        "--listen",
        "--source",
        "--size",
        "--fps",
        "--jpeg-quality",
    ] {
        assert!(out.contains(flag), "--help should list {flag}: {out}");
    }
    let (code, out, err) = framecast(&["--version"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("framecast "), "{out}");
}

#[test]
fn a_port_in_use_is_a_clear_failure() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("address").to_string();
    let (code, out, err) = framecast(&["--listen", &addr]);
    assert_eq!(code, Some(1), "stdout {out:?} stderr {err:?}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")),
        "stderr should say it cannot listen on {addr}: {err}"
    );
    assert!(!out.contains("listening"), "{out}");
    drop(taken);
}
