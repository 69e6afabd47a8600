//! The marshal tables, the rules on broken windows, and a simulated live window that the
//! HLS runtime's tests reuse.

use super::*;

/// 2023-11-14T22:13:20.123Z
const BASE_PDT_UNIX_MS: u64 = 1_700_000_000_123;
/// One third of a second: ten frames at 30 fps.
const PART_90K: u64 = 30_000;

fn part(msn: u64, index: usize) -> Part {
    Part {
        duration_90k: PART_90K,
        uri: format!("p{msn}.{index}.m4s"),
        independent: index == 0,
    }
}

/// A one-second-segment window: `count` complete segments from `first_msn`, three parts
/// each, then `open_parts` parts of the next. Each msn in `discontinuities` starts after a
/// one-minute jump in PROGRAM-DATE-TIME.
fn window(
    first_msn: u64,
    count: u64,
    open_parts: usize,
    discontinuities: &[u64],
    discontinuity_sequence: u64,
) -> MediaPlaylist {
    let pdt = |msn: u64| {
        let jumps = discontinuities.iter().filter(|&&d| d <= msn).count() as u64;
        BASE_PDT_UNIX_MS + (msn - first_msn) * 1000 + jumps * 60_000
    };
    let segments = (first_msn..first_msn + count)
        .map(|msn| Segment {
            msn,
            duration_90k: 90_000,
            program_date_time_unix_ms: pdt(msn),
            uri: format!("s{msn}.m4s"),
            discontinuity: discontinuities.contains(&msn),
            map_uri: None,
            parts: (0..3).map(|i| part(msn, i)).collect(),
        })
        .collect();
    let open_msn = first_msn + count;
    MediaPlaylist {
        version: LL_HLS_VERSION,
        target_duration_s: 1,
        server_control: ServerControl {
            can_block_reload: true,
            part_hold_back_90k: 90_000,
            hold_back_90k: 270_000,
            can_skip_until_90k: Some(540_000),
        },
        part_target_90k: PART_90K,
        media_sequence: first_msn,
        discontinuity_sequence,
        independent_segments: true,
        map_uri: "init.mp4".into(),
        segments,
        in_progress: Some(SegmentInProgress {
            msn: open_msn,
            program_date_time_unix_ms: pdt(open_msn),
            discontinuity: discontinuities.contains(&open_msn),
            map_uri: None,
            parts: (0..open_parts).map(|i| part(open_msn, i)).collect(),
        }),
        preload_hint: Some(PreloadHint {
            uri: format!("p{open_msn}.{open_parts}.m4s"),
        }),
    }
}

/// How a case is rendered.
#[derive(Debug, Clone, Copy)]
enum Render {
    LowLatency(Option<SkipRequest>),
    Standard,
}

struct Case {
    name: &'static str,
    playlist: MediaPlaylist,
    render: Render,
    want: &'static str,
}

/// The marshal table: one playlist, one way to render it, the exact text.
fn media_cases() -> Vec<Case> {
    let mut first_parts = window(0, 0, 2, &[], 0);
    first_parts.server_control.can_skip_until_90k = None;
    let standard = window(100, 7, 1, &[], 0);
    let mut delta_old_version = window(40, 10, 0, &[41, 47], 2);
    delta_old_version.version = 6;
    vec![
        Case {
            name: "live window: parts on the last three target durations, segment in progress",
            playlist: window(100, 7, 1, &[], 0),
            render: Render::LowLatency(None),
            want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXTINF:1.00000,
s100.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.123Z
#EXTINF:1.00000,
s101.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z
#EXTINF:1.00000,
s102.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.123Z
#EXTINF:1.00000,
s103.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.123Z
#EXTINF:1.00000,
s104.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p105.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p105.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p105.2.m4s\"
#EXTINF:1.00000,
s105.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p106.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p106.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p106.2.m4s\"
#EXTINF:1.00000,
s106.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:27.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p107.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p107.1.m4s\"
",
        },
        Case {
            name: "delta update skips the one segment older than the skip boundary",
            playlist: window(100, 7, 1, &[], 0),
            render: Render::LowLatency(Some(SkipRequest::Yes)),
            want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-SKIP:SKIPPED-SEGMENTS=1
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.123Z
#EXTINF:1.00000,
s101.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z
#EXTINF:1.00000,
s102.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.123Z
#EXTINF:1.00000,
s103.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.123Z
#EXTINF:1.00000,
s104.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p105.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p105.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p105.2.m4s\"
#EXTINF:1.00000,
s105.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p106.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p106.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p106.2.m4s\"
#EXTINF:1.00000,
s106.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:27.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p107.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p107.1.m4s\"
",
        },
        Case {
            name: "delta update over a discontinuity: sequence unchanged, version raised to 9",
            playlist: delta_old_version,
            render: Render::LowLatency(Some(SkipRequest::V2)),
            want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-SKIP:SKIPPED-SEGMENTS=4
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:24.123Z
#EXTINF:1.00000,
s44.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:25.123Z
#EXTINF:1.00000,
s45.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:26.123Z
#EXTINF:1.00000,
s46.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:27.123Z
#EXTINF:1.00000,
s47.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:28.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p48.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p48.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p48.2.m4s\"
#EXTINF:1.00000,
s48.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:15:29.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p49.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p49.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"p49.2.m4s\"
#EXTINF:1.00000,
s49.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p50.0.m4s\"
",
        },
        Case {
            name: "first parts of a stream, before any segment is complete",
            playlist: first_parts.clone(),
            render: Render::LowLatency(None),
            want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p0.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p0.2.m4s\"
",
        },
        Case {
            name: "a delta request without a skip boundary gets the whole playlist",
            playlist: first_parts,
            render: Render::LowLatency(Some(SkipRequest::Yes)),
            want: "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.00000,PART-HOLD-BACK=1.00000
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXT-X-PART:DURATION=0.33333,URI=\"p0.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"p0.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p0.2.m4s\"
",
        },
        Case {
            name: "plain HLS: complete segments only, the version EXT-X-MAP needs",
            playlist: standard,
            render: Render::Standard,
            want: "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z
#EXTINF:1.00000,
s100.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.123Z
#EXTINF:1.00000,
s101.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.123Z
#EXTINF:1.00000,
s102.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:23.123Z
#EXTINF:1.00000,
s103.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.123Z
#EXTINF:1.00000,
s104.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:25.123Z
#EXTINF:1.00000,
s105.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.123Z
#EXTINF:1.00000,
s106.m4s
",
        },
    ]
}

#[test]
fn media_playlist_marshal_table() {
    for case in media_cases() {
        let got = match case.render {
            Render::LowLatency(delta) => case.playlist.render(delta),
            Render::Standard => case.playlist.render_standard(),
        };
        assert_eq!(got, case.want, "case {:?}", case.name);
        check_invariants(&case.playlist).unwrap_or_else(|e| panic!("case {:?}: {e}", case.name));
        // Render → parse gives the model back, as far as the text shows it.
        let parsed = parse_media_playlist(&got)
            .unwrap_or_else(|e| panic!("case {:?}: {e}\n{got}", case.name));
        assert_eq!(
            parsed.render(),
            got,
            "case {:?}: not a fixed point",
            case.name
        );
        let listed = case.playlist.as_listed();
        match case.render {
            Render::LowLatency(delta) => {
                check_written(&parsed).unwrap_or_else(|e| panic!("case {:?}: {e}", case.name));
                let skipped = match delta {
                    Some(SkipRequest::Yes | SkipRequest::V2) => case.playlist.skippable_segments(),
                    _ => 0,
                };
                assert_eq!(
                    parsed.skipped_segments, skipped as u64,
                    "case {:?}",
                    case.name
                );
                let mut want = listed;
                want.segments.drain(..skipped);
                if skipped > 0 {
                    want.version = want.version.max(9);
                }
                assert_eq!(parsed.playlist, want, "case {:?}", case.name);
            }
            Render::Standard => {
                assert!(!parsed.low_latency, "case {:?}", case.name);
                let mut want = case.playlist.segments.clone();
                for segment in &mut want {
                    segment.parts.clear();
                }
                assert_eq!(parsed.playlist.segments, want, "case {:?}", case.name);
            }
        }
    }
}

/// Writes the rendered playlists of the case tables and of a simulated live window, the seeds
/// of the `playlist_roundtrip` fuzz target, into the directory `FRAMECAST_FUZZ_SEEDS` names
/// (`make fuzz` runs it).
#[test]
#[ignore = "writes files; run by `make fuzz`"]
fn write_fuzz_seeds() {
    let dir = std::env::var_os("FRAMECAST_FUZZ_SEEDS")
        .expect("FRAMECAST_FUZZ_SEEDS names the seed directory");
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut seeds: Vec<String> = media_cases()
        .into_iter()
        .map(|c| c.want.to_owned())
        .collect();
    seeds.extend(
        multivariant_cases()
            .into_iter()
            .map(|(_, _, want)| want.to_owned()),
    );
    let mut sim = LiveSim::new(3, 8);
    for step in 0..200 {
        let playlist = sim.step();
        if step % 50 == 49 {
            seeds.push(playlist.render(None));
            seeds.push(playlist.render(Some(SkipRequest::Yes)));
            seeds.push(playlist.render_standard());
        }
    }
    for (index, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{index:02}.m3u8")), seed).unwrap();
    }
}

#[test]
fn multivariant_round_trip() {
    for (name, _, want) in multivariant_cases() {
        let parsed = parse_multivariant_playlist(want).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.render(), want, "case {name:?}");
    }
    let (_, playlist, want) = multivariant_cases().swap_remove(0);
    assert_eq!(parse_multivariant_playlist(want), Ok(playlist));
}

fn multivariant_cases() -> Vec<(&'static str, MultivariantPlaylist, &'static str)> {
    vec![
        (
            "one measured variant",
            MultivariantPlaylist {
                independent_segments: true,
                variants: vec![Variant {
                    bandwidth_bps: 2_500_000,
                    average_bandwidth_bps: Some(1_800_000),
                    codecs: "avc1.42e01f".into(),
                    resolution: (1280, 720),
                    frame_rate_millihertz: 29_970,
                    uri: "media.m3u8".into(),
                }],
            },
            "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=1800000,CODECS=\"avc1.42e01f\",RESOLUTION=1280x720,FRAME-RATE=29.970
media.m3u8
",
        ),
        (
            "unknown values are left out; quotes and line breaks cannot escape",
            MultivariantPlaylist {
                independent_segments: false,
                variants: vec![
                    Variant {
                        bandwidth_bps: 1_000_000,
                        average_bandwidth_bps: None,
                        codecs: String::new(),
                        resolution: (0, 480),
                        frame_rate_millihertz: 0,
                        uri: "a.m3u8".into(),
                    },
                    Variant {
                        bandwidth_bps: 500_000,
                        average_bandwidth_bps: None,
                        codecs: "avc1.\"64001f\r\n".into(),
                        resolution: (640, 360),
                        frame_rate_millihertz: 15_000,
                        uri: "b.m3u8\n#EXT-X-ENDLIST".into(),
                    },
                ],
            },
            "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-STREAM-INF:BANDWIDTH=1000000
a.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS=\"avc1.64001f\",RESOLUTION=640x360,FRAME-RATE=15.000
b.m3u8#EXT-X-ENDLIST
",
        ),
    ]
}

#[test]
fn multivariant_marshal_table() {
    for (name, playlist, want) in multivariant_cases() {
        assert_eq!(playlist.render(), want, "case {name:?}");
    }
}

#[test]
fn program_date_time_known_instants() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (BASE_PDT_UNIX_MS, "2023-11-14T22:13:20.123Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_709_164_799_999, "2024-02-28T23:59:59.999Z"),
        (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),
        (1_735_689_599_001, "2024-12-31T23:59:59.001Z"),
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ];
    for (unix_ms, want) in cases {
        assert_eq!(format_program_date_time(unix_ms), want, "{unix_ms}");
    }
    // Far beyond any clock: still a date, no overflow.
    assert!(format_program_date_time(u64::MAX).ends_with('Z'));
}

#[test]
fn delta_request_with_nothing_old_enough_is_the_whole_playlist() {
    // Six one-second segments and a six-second skip boundary: none starts more than six
    // seconds before the end.
    let playlist = window(0, 6, 2, &[], 0);
    assert_eq!(playlist.skippable_segments(), 0);
    assert_eq!(
        playlist.render(Some(SkipRequest::Yes)),
        playlist.render(None)
    );
    assert_eq!(
        playlist.render(Some(SkipRequest::No)),
        playlist.render(None)
    );
}

#[test]
fn segment_just_completed_lists_no_open_parts_and_hints_part_zero() {
    let text = window(10, 6, 0, &[], 0).render(None);
    assert!(text.ends_with("s15.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p16.0.m4s\"\n"));
}

#[test]
fn parts_more_than_three_target_durations_from_the_end_are_dropped() {
    // Segments of 1.4 s (EXTINF rounds to TD 1) in four parts of 0.35 s, two parts of the
    // next: the segment before the last starts 1.4 + 1.4 + 0.7 = 3.5 s from the end.
    let mut playlist = window(0, 6, 2, &[], 0);
    playlist.part_target_90k = 31_500;
    playlist.server_control.part_hold_back_90k = 94_500;
    let long_part = |uri: String, independent| Part {
        duration_90k: 31_500,
        uri,
        independent,
    };
    for segment in &mut playlist.segments {
        segment.duration_90k = 126_000;
        let msn = segment.msn;
        segment.program_date_time_unix_ms = BASE_PDT_UNIX_MS + 1400 * msn;
        segment.parts = (0..4)
            .map(|i| long_part(format!("p{msn}.{i}.m4s"), i == 0))
            .collect();
    }
    if let Some(open) = &mut playlist.in_progress {
        open.program_date_time_unix_ms = BASE_PDT_UNIX_MS + 1400 * 6;
        open.parts = (0..2)
            .map(|i| long_part(format!("p6.{i}.m4s"), i == 0))
            .collect();
    }
    check_invariants(&playlist).unwrap();
    let text = playlist.render(None);
    assert!(!text.contains("p4.0.m4s"), "{text}");
    assert!(
        text.contains("p5.3.m4s\"\n#EXTINF:1.40000,\ns5.m4s\n"),
        "{text}"
    );
    assert!(text.contains("p6.1.m4s"), "{text}");
    check_written(&parse_media_playlist(&text).unwrap()).unwrap();
}

#[test]
fn minimum_server_control_passes_the_checks_for_common_part_targets() {
    // 90 kHz ticks per frame at 15, 24, 25, 29.97, 30, 50 and 60 fps.
    for frame_90k in [6000, 3750, 3600, 3003, 3000, 1800, 1500] {
        for frames in 1..=30u64 {
            let part_target_90k = frames * frame_90k;
            if part_target_90k > 90_000 {
                continue;
            }
            let mut playlist = window(0, 6, 0, &[], 0);
            playlist.part_target_90k = part_target_90k;
            for segment in &mut playlist.segments {
                segment.parts.clear();
            }
            playlist.server_control = ServerControl::minimums(1, part_target_90k);
            check_invariants(&playlist)
                .unwrap_or_else(|e| panic!("{frames} frames of {frame_90k} ticks: {e}"));
        }
    }
}

#[test]
fn check_invariants_names_each_broken_rule() {
    type Break = fn(&mut MediaPlaylist);
    let cases: [(&str, Break, &str); 16] = [
        (
            "target 0",
            |p| p.target_duration_s = 0,
            "TARGETDURATION is 0",
        ),
        (
            "EXTINF rounds above TD",
            |p| p.segments[2].duration_90k = 135_000,
            "rounds above TARGETDURATION",
        ),
        (
            "part longer than PART-TARGET",
            |p| p.segments[5].parts[1].duration_90k = 30_060,
            "exceeds PART-TARGET",
        ),
        (
            "short part in the middle",
            |p| p.segments[5].parts[1].duration_90k = 18_000,
            "under 85 %",
        ),
        (
            "short part in progress",
            |p| {
                if let Some(open) = &mut p.in_progress {
                    open.parts[0].duration_90k = 9_000;
                }
            },
            "under 85 %",
        ),
        (
            "PART-HOLD-BACK too small",
            |p| p.server_control.part_hold_back_90k = 81_000,
            "PART-HOLD-BACK",
        ),
        (
            "HOLD-BACK too small",
            |p| p.server_control.hold_back_90k = 225_000,
            "HOLD-BACK 2.5",
        ),
        (
            "CAN-SKIP-UNTIL too small",
            |p| p.server_control.can_skip_until_90k = Some(450_000),
            "CAN-SKIP-UNTIL",
        ),
        ("msn gap", |p| p.segments[3].msn += 1, "not consecutive"),
        (
            "media sequence disagrees",
            |p| p.media_sequence = 7,
            "EXT-X-MEDIA-SEQUENCE is 7",
        ),
        (
            "too few segments once some were removed",
            |p| {
                p.segments.truncate(5);
                p.in_progress = None;
            },
            "at least 6",
        ),
        (
            "no preload hint",
            |p| p.preload_hint = None,
            "no EXT-X-PRELOAD-HINT",
        ),
        (
            "segment not starting independent",
            |p| p.segments[4].parts[0].independent = false,
            "not INDEPENDENT",
        ),
        (
            "URI with a line break",
            |p| p.segments[0].uri = "a\nb".into(),
            "line break",
        ),
        (
            "date going back without a discontinuity",
            |p| p.segments[3].program_date_time_unix_ms -= 5000,
            "goes back",
        ),
        (
            "segment in progress with the wrong msn",
            |p| {
                if let Some(open) = &mut p.in_progress {
                    open.msn += 1;
                }
            },
            "in progress has msn",
        ),
    ];
    check_invariants(&window(100, 7, 1, &[], 0)).unwrap();
    for (name, break_it, want) in cases {
        let mut playlist = window(100, 7, 1, &[], 0);
        break_it(&mut playlist);
        let err = check_invariants(&playlist).expect_err(name);
        assert!(err.contains(want), "case {name:?}: {err}");
    }
}

#[test]
fn check_update_names_each_broken_rule() {
    type Break = fn(&mut MediaPlaylist);
    let cases: [(&str, Break, &str); 5] = [
        (
            "TD changes",
            |p| p.target_duration_s = 2,
            "TARGETDURATION changed",
        ),
        (
            "PART-TARGET changes",
            |p| p.part_target_90k = 27_000,
            "PART-TARGET changed",
        ),
        (
            "a segment changes",
            |p| p.segments[4].uri = "other.m4s".into(),
            "segment 105 changed",
        ),
        (
            "discontinuity sequence not raised",
            |p| p.discontinuity_sequence = 0,
            "EXT-X-DISCONTINUITY-SEQUENCE is 0",
        ),
        (
            "media sequence goes back",
            |p| p.media_sequence = 99,
            "went back",
        ),
    ];
    // The previous window holds a discontinuity at 100 that leaves with segment 100.
    let previous = window(100, 7, 1, &[100], 3);
    let mut good = window(100, 7, 1, &[100], 3);
    good.segments.remove(0);
    good.media_sequence = 101;
    good.discontinuity_sequence = 4;
    check_update(&previous, &good).unwrap();
    for (name, break_it, want) in cases {
        let mut next = good.clone();
        break_it(&mut next);
        let err = check_update(&previous, &next).expect_err(name);
        assert!(err.contains(want), "case {name:?}: {err}");
    }
}

#[test]
fn garbage_values_render_without_panicking() {
    let mut playlist = window(u64::MAX - 7, 7, 1, &[], 0);
    playlist.target_duration_s = u64::MAX;
    playlist.part_target_90k = 0;
    playlist.server_control.can_skip_until_90k = Some(u64::MAX);
    playlist.segments[0].duration_90k = 0;
    playlist.segments[1].duration_90k = u64::MAX;
    playlist.segments[1].program_date_time_unix_ms = u64::MAX;
    for delta in [None, Some(SkipRequest::Yes)] {
        assert!(playlist.render(delta).starts_with("#EXTM3U\n"));
    }
    assert!(playlist.render_standard().starts_with("#EXTM3U\n"));
    assert!(check_invariants(&playlist).is_err());
}

// ---- A simulated live window -----------------------------------------------------------

/// 90 kHz ticks per second.
const TICKS_PER_S: u64 = 90_000;
/// PART-TARGET: ten frames at 30 fps.
pub(crate) const SIM_PART_TARGET_TICKS: u64 = 30_000;
/// At most six parts per segment: 2 s, so TARGETDURATION 2.
pub(crate) const SIM_MAX_PARTS: u64 = 6;
const SIM_TARGET_DURATION_S: u64 = 2;

/// A segmenter stand-in: frames of 2900..=3000 ticks (jittery 30 fps), parts cut before
/// PART-TARGET would be exceeded, segments of 3 to 6 parts whose last part may be short,
/// a discontinuity (with a jump of the wall clock) now and then, and a window of `retain`
/// complete segments.
pub(crate) struct LiveSim {
    rng: u64,
    retain: usize,
    ticks: u64,
    pdt_jump_ms: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
    segments: Vec<Segment>,
    open: SegmentInProgress,
    open_start_ticks: u64,
    open_part_count: u64,
}

impl LiveSim {
    pub(crate) fn new(seed: u64, retain: usize) -> Self {
        let mut sim = Self {
            rng: seed | 1,
            retain,
            ticks: 0,
            pdt_jump_ms: 0,
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: Vec::new(),
            open: SegmentInProgress {
                msn: 0,
                program_date_time_unix_ms: BASE_PDT_UNIX_MS,
                discontinuity: false,
                map_uri: None,
                parts: Vec::new(),
            },
            open_start_ticks: 0,
            open_part_count: 0,
        };
        sim.open_part_count = 3 + sim.random(4);
        sim
    }

    /// xorshift64: a fixed sequence per seed, no dependency.
    fn random(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below
    }

    fn pdt_ms(&self, ticks: u64) -> u64 {
        BASE_PDT_UNIX_MS + ticks * 1000 / TICKS_PER_S + self.pdt_jump_ms
    }

    /// Publishes the next part and returns the playlist that lists it.
    pub(crate) fn step(&mut self) -> MediaPlaylist {
        let index = self.open.parts.len() as u64;
        let last_of_segment = index + 1 == self.open_part_count;
        let frame_limit = if last_of_segment {
            1 + self.random(10)
        } else {
            u64::MAX
        };
        let (mut part_ticks, mut frames) = (0, 0);
        while frames < frame_limit {
            let frame_ticks = 2900 + self.random(101);
            if part_ticks + frame_ticks > SIM_PART_TARGET_TICKS {
                break;
            }
            part_ticks += frame_ticks;
            frames += 1;
        }
        self.ticks += part_ticks;
        let msn = self.open.msn;
        self.open.parts.push(Part {
            duration_90k: part_ticks,
            uri: format!("p{msn}.{index}.m4s"),
            independent: index == 0,
        });
        if last_of_segment {
            self.close_segment();
        }
        self.playlist()
    }

    fn close_segment(&mut self) {
        let discontinuity = self.random(40) == 0;
        if discontinuity {
            self.pdt_jump_ms += 1000 + self.random(60_000);
        }
        let next = SegmentInProgress {
            msn: self.open.msn + 1,
            program_date_time_unix_ms: self.pdt_ms(self.ticks),
            discontinuity,
            map_uri: None,
            parts: Vec::new(),
        };
        let done = std::mem::replace(&mut self.open, next);
        self.segments.push(Segment {
            msn: done.msn,
            duration_90k: self.ticks - self.open_start_ticks,
            program_date_time_unix_ms: done.program_date_time_unix_ms,
            uri: format!("s{}.m4s", done.msn),
            discontinuity: done.discontinuity,
            map_uri: None,
            parts: done.parts,
        });
        self.open_start_ticks = self.ticks;
        self.open_part_count = 3 + self.random(4);
        while self.segments.len() > self.retain {
            let removed = self.segments.remove(0);
            self.media_sequence = removed.msn + 1;
            self.discontinuity_sequence += u64::from(removed.discontinuity);
        }
    }

    fn playlist(&self) -> MediaPlaylist {
        MediaPlaylist {
            version: LL_HLS_VERSION,
            target_duration_s: SIM_TARGET_DURATION_S,
            server_control: ServerControl::minimums(SIM_TARGET_DURATION_S, SIM_PART_TARGET_TICKS),
            part_target_90k: SIM_PART_TARGET_TICKS,
            media_sequence: self.segments.first().map_or(self.open.msn, |s| s.msn),
            discontinuity_sequence: self.discontinuity_sequence,
            independent_segments: true,
            map_uri: "init.mp4".into(),
            segments: self.segments.clone(),
            in_progress: Some(self.open.clone()),
            preload_hint: Some(PreloadHint {
                uri: format!("p{}.{}.m4s", self.open.msn, self.open.parts.len()),
            }),
        }
    }
}

/// A segment without its parts: URI, EXTINF, PROGRAM-DATE-TIME, discontinuity.
type SegmentLine = (String, u64, u64, bool);

fn line_of(segment: &Segment) -> SegmentLine {
    (
        segment.uri.clone(),
        segment.duration_90k,
        segment.program_date_time_unix_ms,
        segment.discontinuity,
    )
}

/// The segments (without parts) a client holds after applying `delta` to `previous`.
fn apply_delta(
    previous: &MediaPlaylist,
    delta: &ParsedMediaPlaylist,
) -> Result<Vec<SegmentLine>, String> {
    let first_listed = delta.playlist.media_sequence + delta.skipped_segments;
    let mut merged = Vec::new();
    for msn in delta.playlist.media_sequence..first_listed {
        let segment = previous
            .segments
            .iter()
            .find(|s| s.msn == msn)
            .ok_or("skipped a segment the client never had")?;
        merged.push(line_of(segment));
    }
    merged.extend(delta.playlist.segments.iter().map(line_of));
    Ok(merged)
}

#[test]
fn invariants_and_round_trips_hold_over_a_simulated_live_window() {
    let mut deltas_with_skip = 0;
    let mut discontinuities_skipped = 0;
    for (seed, retain) in [(1, 14), (0x9e37_79b9, 6), (42, 20)] {
        let mut sim = LiveSim::new(seed, retain);
        let mut previous: Option<(MediaPlaylist, MediaPlaylist)> = None;
        // About 450 segments per seed.
        for step in 0..2000 {
            let playlist = sim.step();
            let at = format!("seed {seed} step {step}");
            check_invariants(&playlist).unwrap_or_else(|e| panic!("{at}: {e}"));
            let full_text = playlist.render(None);
            let full = parse_media_playlist(&full_text)
                .unwrap_or_else(|e| panic!("{at}: {e}\n{full_text}"));
            check_written(&full).unwrap_or_else(|e| panic!("{at}: {e}\n{full_text}"));
            // Render → parse → the same model, as far as the text lists it.
            assert_eq!(full.playlist, playlist.as_listed(), "{at}");
            assert_eq!(full.skipped_segments, 0, "{at}");
            assert_eq!(full.render(), full_text, "{at}");

            let standard_text = playlist.render_standard();
            let standard = parse_media_playlist(&standard_text)
                .unwrap_or_else(|e| panic!("{at}: {e}\n{standard_text}"));
            for ll_only in [
                "#EXT-X-PART",
                "PRELOAD-HINT",
                "#EXT-X-SKIP",
                "SERVER-CONTROL",
            ] {
                assert!(!standard_text.contains(ll_only), "{at}: {ll_only}");
            }
            assert!(!standard.low_latency, "{at}");
            assert_eq!(
                standard
                    .playlist
                    .segments
                    .iter()
                    .map(line_of)
                    .collect::<Vec<_>>(),
                playlist.segments.iter().map(line_of).collect::<Vec<_>>(),
                "{at}"
            );

            let delta_text = playlist.render(Some(SkipRequest::Yes));
            let delta = parse_media_playlist(&delta_text)
                .unwrap_or_else(|e| panic!("{at}: {e}\n{delta_text}"));
            check_written(&delta).unwrap_or_else(|e| panic!("{at}: {e}\n{delta_text}"));
            assert_eq!(delta.render(), delta_text, "{at}");
            let skipped = playlist.skippable_segments();
            assert_eq!(delta.skipped_segments, skipped as u64, "{at}");
            assert_eq!(
                delta.playlist.media_sequence, full.playlist.media_sequence,
                "{at}"
            );
            assert_eq!(
                delta.playlist.discontinuity_sequence, full.playlist.discontinuity_sequence,
                "{at}"
            );
            if skipped > 0 {
                deltas_with_skip += 1;
                discontinuities_skipped += playlist.segments[..skipped]
                    .iter()
                    .filter(|s| s.discontinuity)
                    .count();
                assert!(delta.playlist.version >= 9, "{at}");
                // Skipped: starts more than CAN-SKIP-UNTIL before the end; kept: not.
                let until_90k = playlist.server_control.can_skip_until_90k.unwrap();
                let from_end_90k = |index: usize| -> u64 {
                    full.playlist.segments[index..]
                        .iter()
                        .map(|s| s.duration_90k)
                        .sum()
                };
                assert!(from_end_90k(skipped - 1) > until_90k, "{at}");
                assert!(from_end_90k(skipped) <= until_90k, "{at}");
            }
            if let Some((previous_playlist, previous_full)) = &previous {
                check_update(previous_playlist, &playlist).unwrap_or_else(|e| panic!("{at}: {e}"));
                check_update(previous_full, &full.playlist).unwrap_or_else(|e| panic!("{at}: {e}"));
                let merged =
                    apply_delta(previous_full, &delta).unwrap_or_else(|e| panic!("{at}: {e}"));
                let want: Vec<_> = full.playlist.segments.iter().map(line_of).collect();
                assert_eq!(merged, want, "{at}");
            }
            previous = Some((playlist, full.playlist));
        }
    }
    assert!(deltas_with_skip > 1000, "{deltas_with_skip}");
    assert!(discontinuities_skipped > 0);
}

#[test]
fn parse_errors_name_the_line_and_the_rule() {
    let good = window(100, 7, 1, &[], 0).render(None);
    let cases: [(&str, String, &str); 12] = [
        ("empty", String::new(), "#EXTM3U"),
        (
            "multivariant",
            multivariant_cases()[0].2.to_owned(),
            "EXT-X-STREAM-INF in a media playlist",
        ),
        (
            "no target duration",
            good.replace("#EXT-X-TARGETDURATION:1\n", ""),
            "no EXT-X-TARGETDURATION",
        ),
        (
            "no map",
            good.replace("#EXT-X-MAP:URI=\"init.mp4\"\n", ""),
            "before any EXT-X-MAP",
        ),
        (
            "EXTINF not a number",
            good.replacen("#EXTINF:1.00000,", "#EXTINF:one,", 1),
            "not a decimal number",
        ),
        (
            "URI line without EXTINF",
            good.replacen("#EXTINF:1.00000,\n", "", 1),
            "without EXTINF",
        ),
        (
            "segment without a date",
            good.replacen("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z\n", "", 1),
            "without EXT-X-PROGRAM-DATE-TIME",
        ),
        (
            "bad date",
            good.replacen("22:13:20.123Z", "25:13:20.123Z", 1),
            "ISO 8601",
        ),
        (
            "unterminated quote",
            good.replacen("URI=\"p107.0.m4s\"", "URI=\"p107.0.m4s", 1),
            "without its end",
        ),
        (
            "media sequence after the first segment",
            good.replacen("s100.m4s\n", "s100.m4s\n#EXT-X-MEDIA-SEQUENCE:3\n", 1),
            "after the first media segment",
        ),
        (
            "parts without PART-INF",
            good.replacen("#EXT-X-PART-INF:PART-TARGET=0.33333\n", "", 1),
            "without EXT-X-PART-INF",
        ),
        (
            "two hints",
            format!("{good}#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x.m4s\"\n"),
            "second EXT-X-PRELOAD-HINT",
        ),
    ];
    parse_media_playlist(&good).unwrap();
    for (name, text, want) in cases {
        let err = parse_media_playlist(&text).expect_err(name);
        assert!(err.to_string().contains(want), "case {name:?}: {err}");
        assert!(
            err.to_string().starts_with("playlist line "),
            "case {name:?}: {err}"
        );
    }
}

#[test]
fn the_parser_takes_what_the_specification_allows_around_framecasts_text() {
    let good = window(100, 7, 1, &[], 0).render(None);
    let want = parse_media_playlist(&good).unwrap();
    // CRLF, comments, blank lines, unknown tags, titles, attributes in another order.
    let relaxed = good
        .replace('\n', "\r\n")
        .replacen(
            "#EXT-X-VERSION:9",
            "# a comment\r\n\r\n#EXT-X-VERSION:9\r\n#EXT-X-UNKNOWN:X=1",
            1,
        )
        .replace("#EXTINF:1.00000,", "#EXTINF:1,a title")
        .replace(
            "#EXT-X-PART:DURATION=0.33333,URI=\"p107.0.m4s\",INDEPENDENT=YES",
            "#EXT-X-PART:INDEPENDENT=YES,URI=\"p107.0.m4s\",DURATION=0.333333",
        );
    assert_eq!(parse_media_playlist(&relaxed), Ok(want));
}

#[test]
fn truncated_and_damaged_text_never_panics() {
    let text = window(40, 10, 2, &[41, 47], 2).render(Some(SkipRequest::Yes));
    for end in 0..=text.len() {
        let _ = parse_media_playlist(&text[..end]);
        let _ = parse_multivariant_playlist(&text[..end]);
    }
    let lines: Vec<&str> = text.lines().collect();
    for skip in 0..lines.len() {
        let damaged: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| (i != skip).then_some(*l))
            .collect();
        if let Ok(parsed) = parse_media_playlist(&damaged.join("\n")) {
            let again = parse_media_playlist(&parsed.render()).unwrap();
            assert_eq!(again.render(), parsed.render());
        }
    }
}
