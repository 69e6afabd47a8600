//! Fuzzes the playlist parser and renderer, both ways.
//!
//! The input as text: beyond "never panics", whatever parses renders to text that parses
//! again, and that text is a fixed point (parse → render gives it back, with an equal model).
//! The rules checks and the model's own renderings run on every parsed playlist and must not
//! panic either.
//!
//! The input as the choices that build a media playlist model: render (full, delta, plain) →
//! parse gives the model back, as far as each text shows it.

#![no_main]

use framecast::media::playlist::{
    MAX_PROGRAM_DATE_TIME_UNIX_MS, MediaPlaylist, Part, PreloadHint, Segment, SegmentInProgress,
    ServerControl, SkipRequest, check_invariants, check_update, check_written,
    parse_media_playlist, parse_multivariant_playlist,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = media_playlist(&mut Unstructured::new(data)) {
        model_round_trip(&model);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(first) = parse_media_playlist(text) {
        let rendered = first.render();
        let second = parse_media_playlist(&rendered)
            .unwrap_or_else(|e| panic!("rendered playlist does not parse: {e}\n{rendered}"));
        let again = second.render();
        assert_eq!(rendered, again, "rendering is not a fixed point");
        let third = parse_media_playlist(&again).expect("parses once, parses twice");
        assert_eq!(second, third, "the model changed on a second round trip");

        let _ = check_written(&first);
        let _ = check_invariants(&first.playlist);
        let _ = check_update(&first.playlist, &second.playlist);
        for delta in [None, Some(SkipRequest::Yes)] {
            assert!(first.playlist.render(delta).starts_with("#EXTM3U\n"));
        }
        assert!(first.playlist.render_standard().starts_with("#EXTM3U\n"));
        let listed = first.playlist.as_listed();
        assert!(listed.segments.len() == first.playlist.segments.len());
    }
    if let Ok(first) = parse_multivariant_playlist(text) {
        let rendered = first.render();
        let second = parse_multivariant_playlist(&rendered)
            .unwrap_or_else(|e| panic!("rendered playlist does not parse: {e}\n{rendered}"));
        assert_eq!(rendered, second.render(), "rendering is not a fixed point");
    }
});

/// Render → parse gives the model back, as far as each rendering lists it.
fn model_round_trip(model: &MediaPlaylist) {
    let listed = model.as_listed();
    let text = model.render(None);
    let parsed = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.playlist, listed, "{text}");
    assert_eq!(parsed.skipped_segments, 0);

    let text = model.render(Some(SkipRequest::Yes));
    let parsed = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let skipped = model.skippable_segments();
    assert_eq!(parsed.skipped_segments, skipped as u64, "{text}");
    assert_eq!(
        parsed.playlist.segments,
        listed.segments[skipped..],
        "{text}"
    );

    let text = model.render_standard();
    let parsed = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(!parsed.low_latency);
    let mut plain = model.segments.clone();
    for segment in &mut plain {
        segment.parts.clear();
    }
    assert_eq!(parsed.playlist.segments, plain, "{text}");
}

/// A URI that a playlist can carry: non-empty, no quote or line break, not a tag.
fn uri(u: &mut Unstructured, prefix: &str) -> Result<String> {
    const ALPHABET: &[u8] = b"abcz019._-/?=&%:, ";
    let len: u8 = u.int_in_range(0..=8)?;
    let mut uri = prefix.to_owned();
    for _ in 0..len {
        uri.push(char::from(*u.choose(ALPHABET)?));
    }
    Ok(uri)
}

fn parts(u: &mut Unstructured, msn: u64) -> Result<Vec<Part>> {
    let count: usize = u.int_in_range(0..=5)?;
    (0..count)
        .map(|index| {
            Ok(Part {
                duration_90k: u.arbitrary()?,
                uri: uri(u, &format!("p{msn}.{index}"))?,
                independent: u.arbitrary()?,
            })
        })
        .collect()
}

/// A map URI other than the playlist's, or none.
fn segment_map(u: &mut Unstructured) -> Result<Option<String>> {
    Ok(if u.ratio(1, 8)? {
        Some(uri(u, "other-init")?)
    } else {
        None
    })
}

/// A media playlist of any values the model can hold and the text can carry.
fn media_playlist(u: &mut Unstructured) -> Result<MediaPlaylist> {
    let target_duration_s = u.int_in_range(0..=30)?;
    let media_sequence: u64 = u.int_in_range(0..=u64::MAX - 100)?;
    let count: u64 = u.int_in_range(0..=20)?;
    let mut segments = Vec::new();
    for msn in media_sequence..media_sequence + count {
        segments.push(Segment {
            msn,
            duration_90k: u.int_in_range(0..=200_000)?,
            program_date_time_unix_ms: u.int_in_range(0..=MAX_PROGRAM_DATE_TIME_UNIX_MS)?,
            uri: uri(u, &format!("s{msn}"))?,
            discontinuity: u.ratio(1, 8)?,
            map_uri: segment_map(u)?,
            parts: parts(u, msn)?,
        });
    }
    let open_msn = media_sequence + count;
    let in_progress = if u.arbitrary()? {
        Some(SegmentInProgress {
            msn: open_msn,
            program_date_time_unix_ms: u.int_in_range(0..=MAX_PROGRAM_DATE_TIME_UNIX_MS)?,
            discontinuity: u.arbitrary()?,
            map_uri: segment_map(u)?,
            parts: parts(u, open_msn)?,
        })
    } else {
        None
    };
    let preload_hint = if u.arbitrary()? {
        Some(PreloadHint {
            uri: uri(u, "hint")?,
        })
    } else {
        None
    };
    Ok(MediaPlaylist {
        version: u.arbitrary()?,
        target_duration_s,
        server_control: ServerControl {
            can_block_reload: u.arbitrary()?,
            part_hold_back_90k: u.arbitrary()?,
            hold_back_90k: u.arbitrary()?,
            can_skip_until_90k: if u.arbitrary()? {
                Some(u.int_in_range(0..=2_000_000)?)
            } else {
                None
            },
        },
        part_target_90k: u.arbitrary()?,
        media_sequence,
        discontinuity_sequence: u.arbitrary()?,
        independent_segments: u.arbitrary()?,
        map_uri: uri(u, "init")?,
        segments,
        in_progress,
        preload_hint,
    })
}
