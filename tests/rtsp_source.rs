//! The RTSP source against a real RTSP server: gst-rtsp-server (tests/fixtures/rtsp_server.py)
//! on loopback, encoding a test pattern with x264 (or x265). The source is driven through the
//! crate's public API as the supervisor drives it: `Opener::open`, then `next_frame` on this
//! thread. tests/rtsp_camera.rs runs the same camera through the real binary.
//!
//! The depacketizing edge cases replay recorded RTP (tests/fixtures/h264_160x120_10fps.rtp,
//! FU-A fragments, STAP-A parameter sets, counters that wrap) from a minimal RTSP server,
//! whole, with a fragment lost, and joined mid-GOP.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::rtsp_replay;
use common::rtsp_server::{self, RtspServer};
use framecast::frame::{Frame, FrameSize, Pixels};
use framecast::media::h264::{NAL_PPS, NAL_SPS, nal_unit_type, parse_sps, split_annex_b};
use framecast::source::rtsp::{B_FRAMES_REFUSED, RtspAddress, RtspOpener};
use framecast::source::{Opener, Source, SourceError};

fn open(url: &str) -> Box<dyn Source> {
    let address = RtspAddress::parse(url).expect("an rtsp:// address");
    RtspOpener::new(address).open().expect("open")
}

/// The next `count` frames, failing on any error.
fn frames(source: &mut dyn Source, count: usize) -> Vec<Frame> {
    (0..count)
        .map(|i| {
            source
                .next_frame()
                .unwrap_or_else(|e| panic!("frame {i}: {e:?}"))
        })
        .collect()
}

fn h264(frame: &Frame) -> (&[u8], bool) {
    match &frame.pixels {
        Pixels::H264(unit) => (&unit.annex_b, unit.is_idr),
        other => panic!("not H.264: {other:?}"),
    }
}

/// Checks what the frame doc promises: 4-byte start codes, the SPS and PPS in front of every
/// IDR (and the size the SPS gives), presentation times from 0 and increasing; and that at
/// least `min_idrs` IDRs came.
fn check_frames(frames: &[Frame], size: FrameSize, min_idrs: usize) {
    let (_, first_is_idr) = h264(&frames[0]);
    assert!(first_is_idr, "the first frame is not an IDR");
    assert_eq!(frames[0].pts_90k, 0);
    for pair in frames.windows(2) {
        assert!(pair[1].pts_90k > pair[0].pts_90k, "pts not increasing");
        assert!(pair[1].seq > pair[0].seq);
    }
    let mut idrs = 0;
    for frame in frames {
        assert_eq!(frame.size, size);
        let (annex_b, is_idr) = h264(frame);
        assert!(annex_b.starts_with(&[0, 0, 0, 1]), "no 4-byte start code");
        let nals: Vec<&[u8]> = split_annex_b(annex_b).collect();
        if is_idr {
            idrs += 1;
            assert_eq!(nal_unit_type(nals[0]), Some(NAL_SPS));
            assert_eq!(nal_unit_type(nals[1]), Some(NAL_PPS));
            let sps = parse_sps(nals[0]).expect("SPS");
            assert_eq!(FrameSize::new(sps.width, sps.height), size);
            assert!(nals.iter().any(|nal| nal_unit_type(nal) == Some(5)));
        } else {
            assert!(nals.iter().all(|nal| nal_unit_type(nal) != Some(5)));
        }
    }
    assert!(idrs >= min_idrs, "{idrs} IDRs in {} frames", frames.len());
}

/// The frames decode, all of them, at `size`: ffprobe counts what it decodes from their bytes
/// written back to back.
fn check_decodes(frames: &[Frame], size: FrameSize, test: &str) {
    if !common::require_clients(&["ffprobe"], test) {
        return;
    }
    let path = std::env::temp_dir().join(format!("framecast-{test}-{}.h264", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("create");
    for frame in frames {
        file.write_all(h264(frame).0).expect("write");
    }
    drop(file);
    let (ok, stdout, stderr) = common::run_with_timeout(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
            path.to_str().expect("path"),
        ]),
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_file(&path);
    assert!(ok, "ffprobe: {stderr}");
    assert_eq!(
        stdout.trim(),
        format!("{},{},{}", size.width, size.height, frames.len())
    );
}

#[test]
fn an_rtsp_camera_delivers_h264_frames_over_tcp_starting_with_an_idr() {
    let test = "an_rtsp_camera_delivers_h264_frames_over_tcp_starting_with_an_idr";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    let server = RtspServer::start(0, &["--size", "320x240", "--key-int-max", "15"]);
    let mut source = open(&server.url("", ""));
    let frames = frames(source.as_mut(), 20);
    check_frames(&frames, FrameSize::new(320, 240), 2);
    // 15 fps on the 90 kHz clock, from the camera's RTP timestamps.
    assert_eq!(frames[1].pts_90k - frames[0].pts_90k, 6000);
    check_decodes(&frames, FrameSize::new(320, 240), "rtsp_tcp");
}

#[test]
fn udp_is_chosen_with_a_fragment_and_the_size_is_the_cropped_one() {
    let test = "udp_is_chosen_with_a_fragment_and_the_size_is_the_cropped_one";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    // 360 lines are 23 macroblock rows minus 8 cropped lines.
    let server = RtspServer::start(0, &["--size", "640x360", "--key-int-max", "10"]);
    let mut source = open(&server.url("", "#udp"));
    let frames = frames(source.as_mut(), 15);
    check_frames(&frames, FrameSize::new(640, 360), 2);
    check_decodes(&frames, FrameSize::new(640, 360), "rtsp_udp");
}

#[test]
fn a_new_sps_with_a_new_size_gives_the_frames_after_it_that_size() {
    let test = "a_new_sps_with_a_new_size_gives_the_frames_after_it_that_size";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    let server = RtspServer::start(
        0,
        &[
            "--size",
            "320x240",
            "--resize-after",
            "1",
            "--resize-to",
            "480x360",
        ],
    );
    let mut source = open(&server.url("", ""));
    let mut received = Vec::new();
    // 15 fps: the size changes about 15 frames in; 150 frames bound the wait.
    while received.len() < 150 {
        let frame = source.next_frame().expect("a frame");
        let resized = frame.size == FrameSize::new(480, 360);
        received.push(frame);
        if resized {
            break;
        }
    }
    let (last, before) = received.split_last().expect("frames");
    assert_eq!(
        last.size,
        FrameSize::new(480, 360),
        "no frame of the new size"
    );
    assert!(before.iter().all(|f| f.size == FrameSize::new(320, 240)));
    check_frames(&received[..1], FrameSize::new(320, 240), 1);
    // The first frame of the new size is an IDR behind the new SPS.
    let (annex_b, is_idr) = h264(last);
    assert!(is_idr);
    let sps = split_annex_b(annex_b).next().expect("a NAL unit");
    let sps = parse_sps(sps).expect("an SPS in front");
    assert_eq!((sps.width, sps.height), (480, 360));
    assert!(last.pts_90k > before.last().expect("frames before").pts_90k);
}

#[test]
fn credentials_are_taken_from_the_url_and_a_wrong_password_is_refused_unshown() {
    let test = "credentials_are_taken_from_the_url_and_a_wrong_password_is_refused_unshown";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    let server = RtspServer::start(0, &["--user", "viewer", "--password", "s3cr%t"]);

    let mut source = open(&server.url("viewer:s3cr%25t@", ""));
    check_frames(&frames(source.as_mut(), 16), FrameSize::new(320, 240), 2);
    drop(source);

    let mut source = open(&server.url("viewer:hunter2@", ""));
    let error = source
        .next_frame()
        .expect_err("a wrong password is refused");
    let message = error.to_string();
    assert!(
        matches!(error, SourceError::Failed(_)),
        "{error:?}: retried with back-off"
    );
    assert!(message.contains("authentication failed (401"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!source.describe().contains("hunter2"));

    let mut source = open(&server.url("", ""));
    let message = source.next_frame().expect_err("no credentials").to_string();
    assert!(message.contains("authentication failed (401"), "{message}");
    assert!(message.contains("rtsp://user:password@host"), "{message}");
}

#[test]
fn a_camera_that_goes_away_is_an_error_and_frames_come_back_after_reopening() {
    let test = "a_camera_that_goes_away_is_an_error_and_frames_come_back_after_reopening";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    let server = RtspServer::start(0, &[]);
    let port = server.port;
    let url = server.url("", "");
    let address = RtspAddress::parse(&url).expect("address");
    let mut opener = RtspOpener::new(address);
    let mut source = opener.open().expect("open");
    frames(source.as_mut(), 5);

    drop(server);
    // Frames already received may still come; then the loss is an error (bounded: the source
    // gives up on a silent camera by itself).
    let error = (0..100)
        .find_map(|_| source.next_frame().err())
        .expect("an error once the camera is gone");
    assert!(
        matches!(error, SourceError::Ended(_)),
        "{error:?}: the supervisor reopens an ended source"
    );
    drop(source);

    // While it is away, opening works (nothing is connected yet) and the first frame asked
    // for says that the camera cannot be reached.
    let mut source = opener.open().expect("open");
    let error = source.next_frame().expect_err("the camera is away");
    assert!(
        matches!(error, SourceError::NotFound(_)),
        "{error:?}: cannot reach the camera"
    );
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
    drop(source);

    let _server = RtspServer::start(port, &[]);
    let mut source = opener.open().expect("reopen");
    check_frames(&frames(source.as_mut(), 16), FrameSize::new(320, 240), 2);
}

#[test]
fn a_camera_that_sends_b_frames_is_refused_with_advice() {
    let test = "a_camera_that_sends_b_frames_is_refused_with_advice";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    let server = RtspServer::start(0, &["--bframes", "2", "--key-int-max", "30"]);
    let mut source = open(&server.url("", ""));
    let mut delivered = 0;
    let error = loop {
        match source.next_frame() {
            Ok(frame) => {
                // Before the first B-frame only I and P frames can come, in order.
                assert!(h264(&frame).0.starts_with(&[0, 0, 0, 1]));
                delivered += 1;
                assert!(delivered < 30, "no B-frame found in 30 frames");
            }
            Err(error) => break error,
        }
    };
    assert_eq!(error, SourceError::Unsupported(B_FRAMES_REFUSED.into()));
    // For good: the source says so again without reading on.
    assert_eq!(source.next_frame().err(), Some(error));
}

#[test]
fn an_h265_camera_is_refused_by_name() {
    let test = "an_h265_camera_is_refused_by_name";
    if !common::require_prerequisite(rtsp_server::missing(), test) {
        return;
    }
    if !common::require_prerequisite(
        (!rtsp_server::has_x265()).then(|| "x265enc (Debian: gstreamer1.0-plugins-bad)".to_owned()),
        test,
    ) {
        return;
    }
    let server = RtspServer::start(0, &["--codec", "h265"]);
    let mut source = open(&server.url("", ""));
    let error = source.next_frame().expect_err("H.265 is refused");
    assert!(matches!(error, SourceError::Unsupported(_)), "{error:?}");
    assert!(
        error.to_string().starts_with("H.265 is not supported"),
        "{error}"
    );
}

// ----- Recorded RTP -----------------------------------------------------------------------

/// 25 frames of 160x120 at 10 fps as GStreamer's rtph264pay sent them: FU-A fragments, SPS and
/// PPS in STAP-A packets, sequence numbers and timestamps that wrap (recorded by
/// tests/fixtures/record_rtp.py).
const RECORDED: &[u8] = include_bytes!("fixtures/h264_160x120_10fps.rtp");
const RECORDED_FRAMES: usize = 25;
const RECORDED_SIZE: FrameSize = FrameSize::new(160, 120);
/// 10 fps on the 90 kHz clock.
const RECORDED_FRAME_90K: u64 = 9000;

/// The recorded packets grouped by frame (their RTP timestamp), in order.
fn recorded_frames() -> Vec<Vec<Vec<u8>>> {
    let mut frames: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut last_timestamp = None;
    for packet in rtsp_replay::read_rfc4571(RECORDED) {
        let timestamp = u32::from_be_bytes(packet[4..8].try_into().expect("an RTP header"));
        if last_timestamp != Some(timestamp) {
            frames.push(Vec::new());
            last_timestamp = Some(timestamp);
        }
        frames.last_mut().expect("a frame").push(packet);
    }
    assert_eq!(frames.len(), RECORDED_FRAMES);
    frames
}

/// Whether `packet` carries an FU-A fragment (RFC 6184 §5.8).
fn is_fu_a(packet: &[u8]) -> bool {
    packet[12] & 0x1f == 28
}

/// The next frames from a source, `Err` where it reported one, until `count` frames came.
fn results(source: &mut dyn Source, count: usize) -> Vec<Result<Frame, SourceError>> {
    let mut out: Vec<Result<Frame, SourceError>> = Vec::new();
    while out.iter().filter(|r| r.is_ok()).count() < count {
        assert!(out.len() < 2 * RECORDED_FRAMES, "{out:?}");
        out.push(source.next_frame());
    }
    out
}

#[test]
fn recorded_rtp_with_fragments_and_wrapping_counters_gives_every_frame() {
    let packets: Vec<Vec<u8>> = recorded_frames().into_iter().flatten().collect();
    assert!(packets.iter().filter(|p| is_fu_a(p)).count() > RECORDED_FRAMES);
    assert!(packets.iter().any(|p| p[12] & 0x1f == 24), "STAP-A");
    let camera = rtsp_replay::RtspReplay::start(packets);
    let mut source = open(&camera.url());
    let frames = frames(source.as_mut(), RECORDED_FRAMES);
    check_frames(&frames, RECORDED_SIZE, 3);
    for (n, frame) in frames.iter().enumerate() {
        // Across the 32-bit timestamp wrap too.
        assert_eq!(frame.pts_90k, n as u64 * RECORDED_FRAME_90K, "frame {n}");
        assert_eq!(h264(frame).1, n % 10 == 0, "frame {n}: an IDR every 10");
    }
    drop(source);
    check_decodes(
        &frames,
        RECORDED_SIZE,
        "recorded_rtp_with_fragments_and_wrapping_counters_gives_every_frame",
    );
}

#[test]
fn a_lost_fragment_is_a_bad_frame_and_the_picture_resumes_at_the_next_key_frame() {
    let mut recorded = recorded_frames();
    // A fragment after the first of a P-frame in the first GOP never arrives.
    let (broken, lost) = (1..10)
        .find_map(|n| {
            let at = recorded[n]
                .iter()
                .position(|p| is_fu_a(p) && p[13] & 0x80 == 0)?;
            Some((n, at))
        })
        .expect("a P-frame in two fragments or more");
    recorded[broken].remove(lost);
    let camera = rtsp_replay::RtspReplay::start(recorded.into_iter().flatten().collect());
    let mut source = open(&camera.url());
    let results = results(source.as_mut(), broken + RECORDED_FRAMES - 10);
    // The frames before it, the loss reported once, then frame 10 onwards: nothing between
    // decodes.
    let pts: Vec<Option<u64>> = results
        .iter()
        .map(|r| r.as_ref().ok().map(|f| f.pts_90k / RECORDED_FRAME_90K))
        .collect();
    let mut expected: Vec<Option<u64>> = (0..broken as u64).map(Some).collect();
    expected.push(None);
    expected.extend((10..RECORDED_FRAMES as u64).map(Some));
    assert_eq!(pts, expected, "{results:?}");
    let error = results[broken].as_ref().expect_err("the loss");
    assert!(
        matches!(error, SourceError::BadFrame(message) if message.contains("lost")),
        "{error:?}"
    );
    let resumed = results[broken + 1].as_ref().expect("a frame");
    assert!(h264(resumed).1, "resumes at an IDR");
}

#[test]
fn a_stream_joined_mid_gop_starts_at_the_next_key_frame() {
    let recorded = recorded_frames();
    // The camera's first packets are of frame 5: no parameter sets, no IDR yet.
    let camera = rtsp_replay::RtspReplay::start(recorded[5..].iter().flatten().cloned().collect());
    let mut source = open(&camera.url());
    let frames = frames(source.as_mut(), RECORDED_FRAMES - 10);
    check_frames(&frames, RECORDED_SIZE, 2);
    assert_eq!(
        frames[0].pts_90k, 0,
        "time starts at the first frame handed on"
    );
    assert_eq!(frames[1].pts_90k, RECORDED_FRAME_90K);
}
