//! H.264 encoders through an ffmpeg process, black-box: x264 runs through the same code path
//! as the hardware encoders (one ffmpeg process per stream, frames on its stdin, Annex B on
//! its stdout), so these tests hold it to every HLS rule the openh264 stream keeps: the
//! playlists' rules across reloads, an IDR at the start of every segment and nowhere else, no
//! B slices (both read from the segments' bytes), decode times that follow
//! PROGRAM-DATE-TIME, playback in ffmpeg and in hls.js in Chromium. Hardware this machine does
//! not have falls back to openh264 and `/status` says so; an encoder process killed mid-stream
//! is started again without breaking the timeline.
//!
//! Fails, naming it, where ffmpeg (or Chromium for the browser test) is missing; skipped only
//! with `FRAMECAST_ALLOW_MISSING_CLIENTS=1`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::h264_bytes::mp4_slices;
use common::hls_fetch::{PlaylistFollower, discontinuities, media_path, sibling};
use common::{
    Server, ffmpeg_play, get, require_clients, run_framecast, status_json, wait_for_status,
};
use framecast::media::h264::{SliceKind, slice_kind};
use framecast::media::playlist::ParsedMediaPlaylist;

/// A frame interval at 30 fps, in ms: a frame's capture time may be up to this much off its
/// slot on the frame grid (`pipeline::capture_clock`), so decode times follow
/// PROGRAM-DATE-TIME to within it.
const FRAME_MS: i64 = 34;

/// Limits for the server to reach a state; a healthy one needs a few seconds.
const LIMIT: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(100);

/// A stream encoded by x264 through ffmpeg: 1 s segments of 30 frames.
fn x264_server() -> Server {
    Server::start(&[
        "--size",
        "320x240",
        "--fps",
        "30",
        "--hls-segment-seconds",
        "1",
        "--h264-encoder",
        "x264",
    ])
}

/// A box's payload offset and its end, for the first box of `kind` within `data`.
fn find_box(data: &[u8], kind: &[u8; 4]) -> Option<(usize, usize)> {
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().ok()?) as usize;
        if size < 8 || at + size > data.len() {
            return None;
        }
        if &data[at + 4..at + 8] == kind {
            return Some((at + 8, at + size));
        }
        at += size;
    }
    None
}

/// The first fragment's base media decode time (ISO/IEC 14496-12 §8.8.12, `tfdt` version 1)
/// in 90 kHz ticks.
fn first_tfdt(segment: &[u8]) -> u64 {
    let (moof, moof_end) = find_box(segment, b"moof").expect("moof");
    let (traf, traf_end) = find_box(&segment[moof..moof_end], b"traf").expect("traf");
    let traf = &segment[moof + traf..moof + traf_end];
    let (tfdt, _) = find_box(traf, b"tfdt").expect("tfdt");
    assert_eq!(traf[tfdt], 1, "tfdt version 1");
    u64::from_be_bytes(traf[tfdt + 4..tfdt + 12].try_into().unwrap())
}

/// Checks every complete segment the playlist lists, from its bytes: it starts with an IDR and
/// holds no other, no slice is a B slice, and, between segments without a discontinuity, the
/// decode times advance as PROGRAM-DATE-TIME does. Returns the segments checked.
fn check_segments(addr: SocketAddr, path: &str, parsed: &ParsedMediaPlaylist) -> usize {
    let mut previous: Option<(u64, u64)> = None;
    let mut checked = 0;
    for segment in &parsed.playlist.segments {
        let response = get(addr, &sibling(path, &segment.uri));
        if response.status == 404 {
            // Retired between the playlist and this request.
            previous = None;
            continue;
        }
        assert_eq!(response.status, 200, "segment {}", segment.msn);
        let slices = mp4_slices(&response.body);
        assert!(!slices.is_empty(), "segment {} has slices", segment.msn);
        assert_eq!(
            slices[0][0] & 0x1f,
            5,
            "segment {} starts with an IDR",
            segment.msn
        );
        let idrs = slices.iter().filter(|s| s[0] & 0x1f == 5).count();
        // One picture of one or more IDR slices, at the start.
        let first_non_idr = slices
            .iter()
            .position(|s| s[0] & 0x1f != 5)
            .unwrap_or(slices.len());
        assert_eq!(
            idrs, first_non_idr,
            "segment {}: IDRs only at its start",
            segment.msn
        );
        for slice in &slices {
            assert_ne!(
                slice_kind(slice),
                Some(SliceKind::B),
                "segment {}: a B slice",
                segment.msn
            );
        }
        let tfdt = first_tfdt(&response.body);
        let pdt_ms = segment.program_date_time_unix_ms;
        if let Some((last_tfdt, last_pdt_ms)) = previous
            && !segment.discontinuity
        {
            let tfdt_ms = (tfdt - last_tfdt) as i64 / 90;
            let pdt_step_ms = pdt_ms as i64 - last_pdt_ms as i64;
            assert!(
                (tfdt_ms - pdt_step_ms).abs() <= FRAME_MS,
                "segment {}: tfdt moved {tfdt_ms} ms, PROGRAM-DATE-TIME {pdt_step_ms} ms",
                segment.msn
            );
        }
        previous = Some((tfdt, pdt_ms));
        checked += 1;
    }
    checked
}

#[test]
fn x264_through_ffmpeg_keeps_the_hls_rules_and_plays() {
    if !require_clients(
        &["ffmpeg"],
        "x264_through_ffmpeg_keeps_the_hls_rules_and_plays",
    ) {
        return;
    }
    let server = x264_server();
    // The process starts with the H.264 thread's first frame, just after the server answers.
    let status = wait_for_status(server.addr, "encoder process started", LIMIT, POLL, |s| {
        s["hls"]["encoder"]["pid"].as_u64().is_some()
    });
    let encoder = &status["hls"]["encoder"];
    assert_eq!(encoder["requested"], "x264", "{status}");
    assert_eq!(encoder["chosen"], "x264", "{status}");
    assert_eq!(encoder["reason"], "requested");
    assert!(encoder["fallback_reason"].is_null());
    assert!(
        encoder["pid"].as_u64().is_some_and(|pid| pid > 0),
        "{status}"
    );
    let metrics = get(server.addr, "/metrics").text();
    assert!(
        metrics.lines().any(|l| l
            == "framecast_h264_encoder_info{stream=\"main\",requested=\"x264\",chosen=\"x264\",reason=\"requested\"} 1"),
        "{metrics}"
    );

    let mut follower = PlaylistFollower::new(server.addr, LIMIT, POLL);
    let mut last = None;
    follower.until("six segments through the rules", |_, parsed| {
        let done = parsed.playlist.segments.len() >= 6;
        if done {
            last = Some(parsed.clone());
        }
        done
    });
    let parsed = last.expect("a playlist");
    assert_eq!(parsed.playlist.target_duration_s, 1);
    let path = media_path(server.addr);
    assert!(check_segments(server.addr, &path, &parsed) >= 5);

    let (ok, frames, stderr) = ffmpeg_play(&server.url("/live.m3u8"), "3", Duration::from_secs(60));
    assert!(
        ok && frames >= 60,
        "ffmpeg decoded {frames} frames: {stderr}"
    );
    let hls = status_json(server.addr)["hls"].clone();
    assert_eq!(hls["encoder"]["restarts"], 0, "{hls}");
    assert_eq!(hls["encoder"]["rule_breaks"], 0, "{hls}");
}

#[test]
fn hardware_this_machine_lacks_falls_back_to_openh264_and_says_so() {
    if !require_clients(
        &["ffmpeg"],
        "hardware_this_machine_lacks_falls_back_to_openh264_and_says_so",
    ) {
        return;
    }
    for kind in ["vaapi", "nvenc"] {
        let device = match kind {
            "vaapi" => "/dev/dri/renderD128",
            _ => "/dev/nvidia0",
        };
        if Path::new(device).exists() {
            eprintln!("{device} exists: {kind} may work here, so it is not a fallback test");
            continue;
        }
        let server = Server::start(&["--size", "320x240", "--h264-encoder", kind]);
        let status = status_json(server.addr);
        let encoder = &status["hls"]["encoder"];
        assert_eq!(encoder["requested"], kind, "{status}");
        assert_eq!(encoder["chosen"], "openh264", "{status}");
        assert_eq!(encoder["reason"], "probe_failed", "{status}");
        let reason = encoder["fallback_reason"].as_str().unwrap_or_default();
        assert!(reason.contains(kind), "the reason names {kind}: {reason}");
        assert!(encoder["pid"].is_null());
        let logged = server
            .log_lines()
            .iter()
            .filter(|l| l.contains("openh264 encodes instead"))
            .count();
        assert_eq!(logged, 1, "one clear log line: {:?}", server.log_lines());
        let metrics = get(server.addr, "/metrics").text();
        let info = format!(
            "framecast_h264_encoder_info{{stream=\"main\",requested=\"{kind}\",chosen=\"openh264\",reason=\"probe_failed\"}} 1"
        );
        assert!(metrics.lines().any(|l| l == info), "{metrics}");
        // And the stream is served all the same.
        let mut follower = PlaylistFollower::new(server.addr, LIMIT, POLL);
        follower.until("a segment from openh264", |_, parsed| {
            !parsed.playlist.segments.is_empty()
        });
    }
}

#[test]
fn a_killed_encoder_process_is_started_again_and_the_timeline_holds() {
    if !require_clients(
        &["ffmpeg", "kill"],
        "a_killed_encoder_process_is_started_again_and_the_timeline_holds",
    ) {
        return;
    }
    let server = x264_server();
    let mut follower = PlaylistFollower::new(server.addr, LIMIT, POLL);
    let before = follower.until("three segments", |_, parsed| {
        parsed.playlist.segments.len() >= 3
    });
    let pid = before["encoder"]["pid"]
        .as_u64()
        .expect("the encoder's pid");
    // The process is framecast's own child, found through /status.
    let parent = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process");
    let ppid: u32 = parent
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("its parent");
    assert_eq!(ppid, server.pid(), "the encoder is framecast's child");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());

    let mut newest_before_restart = None;
    let restarted = follower.until("the encoder started again", |hls, parsed| {
        newest_before_restart.get_or_insert(parsed.playlist.segments.last().map(|s| s.msn));
        hls["encoder"]["restarts"].as_u64() >= Some(1)
            && hls["encoder"]["pid"]
                .as_u64()
                .is_some_and(|p| p != pid && p != 0)
    });
    assert_eq!(restarted["encoder"]["chosen"], "x264", "{restarted}");
    let newest = newest_before_restart.flatten().unwrap_or(0);
    // Segments after the restart, every playlist checked against the one before (media
    // sequence numbers continue, nothing listed changes, every EXTINF within the target).
    let mut last = None;
    follower.until("four segments after the restart", |_, parsed| {
        let done = parsed
            .playlist
            .segments
            .last()
            .is_some_and(|s| s.msn >= newest + 4);
        if done {
            last = Some(parsed.clone());
        }
        done
    });
    let parsed = last.expect("a playlist");
    let segments = &parsed.playlist.segments;
    for pair in segments.windows(2) {
        assert_eq!(pair[1].msn, pair[0].msn + 1);
        assert!(
            pair[1].program_date_time_unix_ms as i64
                >= (pair[0].program_date_time_unix_ms + pair[0].duration_90k / 90) as i64
                    - FRAME_MS,
            "PROGRAM-DATE-TIME moves on by each segment's length (or more, over a gap): {pair:?}"
        );
        assert!(pair[0].duration_90k <= 90_000 + 45_000, "{pair:?}");
    }
    assert!(
        discontinuities(&parsed) >= 1,
        "the restart is a discontinuity"
    );
    let path = media_path(server.addr);
    assert!(check_segments(server.addr, &path, &parsed) >= 4);
}

#[test]
fn an_unknown_encoder_is_a_usage_error_naming_it() {
    let (code, _, stderr) = run_framecast(&["--h264-encoder", "x265"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("x265"), "{stderr}");
    assert!(
        stderr.contains("openh264") && stderr.contains("vaapi"),
        "{stderr}"
    );
}

#[test]
fn hls_js_plays_the_x264_stream_in_chromium() {
    use common::chromium::{missing_prerequisite, run_script};
    let packages = ["playwright-core/package.json", "hls.js/dist/hls.min.js"];
    if !common::require_prerequisite(
        missing_prerequisite(&packages),
        "hls_js_plays_the_x264_stream_in_chromium",
    ) || !require_clients(&["ffmpeg"], "hls_js_plays_the_x264_stream_in_chromium")
    {
        return;
    }
    let server = Server::start(&["--size", "640x360", "--h264-encoder", "x264"]);
    assert_eq!(status_json(server.addr)["hls"]["encoder"]["chosen"], "x264");
    let result = run_script("hls_pages.mjs", &server.url(""));
    assert_eq!(result["hls"]["player"]["mode"], "ll-hls", "{result}");
    assert_eq!(result["live"]["player"]["mode"], "mse", "{result}");
}

/// An ffmpeg that passes the test encode at start and then fails at once every time: the
/// stream's encoder is started again with back-off, then given up for openh264, and HLS goes
/// on through it all.
#[test]
fn an_encoder_that_keeps_failing_is_replaced_by_openh264() {
    if !require_clients(
        &["ffmpeg", "sh"],
        "an_encoder_that_keeps_failing_is_replaced_by_openh264",
    ) {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("failing-ffmpeg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let script = dir.join("ffmpeg");
    let probed = dir.join("probed");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# The first run (the test encode) is ffmpeg; every later one fails.\n\
             if [ -e '{0}' ]; then echo 'simulated encoder failure' >&2; exit 1; fi\n\
             touch '{0}'\nexec ffmpeg \"$@\"\n",
            probed.display()
        ),
    )
    .expect("write the script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let program = format!("FRAMECAST_FFMPEG={}", script.display());
    let server = Server::start_under(
        &["env", &program],
        &[
            "--size",
            "320x240",
            "--hls-segment-seconds",
            "1",
            "--h264-encoder",
            "x264",
        ],
    );
    let mut follower = PlaylistFollower::new(server.addr, LIMIT, POLL);
    let hls = follower.until("openh264 takes over", |hls, parsed| {
        hls["encoder"]["chosen"] == "openh264" && parsed.playlist.segments.len() >= 3
    });
    let encoder = &hls["encoder"];
    assert_eq!(encoder["requested"], "x264", "{hls}");
    assert_eq!(encoder["reason"], "failed_repeatedly", "{hls}");
    let reason = encoder["fallback_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("x264 failed 4 times in a row"), "{reason}");
    assert!(
        reason.contains("simulated encoder failure"),
        "ffmpeg's last words: {reason}"
    );
    assert_eq!(
        encoder["restarts"], 3,
        "started again three times, then given up"
    );
    let path = media_path(server.addr);
    let (parsed, _) = common::hls_fetch::media_playlist(server.addr, &path);
    assert!(check_segments(server.addr, &path, &parsed) >= 3);
    let _ = std::fs::remove_dir_all(&dir);
}
