//! Fuzzes the rewrite that carries a signed link's query into every URI of a playlist.
//!
//! The input as text, a playlist. Beyond "never panics": an empty query changes nothing; the
//! rewrite keeps the number of lines and every line that lists no URI; a rewritten line only
//! grows; a media or multivariant playlist that parses still parses afterwards, with as many
//! segments (or variants), every URI of framecast's kind ending with the query.

#![no_main]

use framecast::media::playlist::{carry_query, parse_media_playlist, parse_multivariant_playlist};
use libfuzzer_sys::fuzz_target;

const QUERY: &str = "exp=1767225600&sig=P0qfbAd2S0zii7Ou359Ba3C7EJ5aH6jaUJdUTBq3ZMs";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(carry_query(text, ""), text);
    let carried = carry_query(text, QUERY);
    let before: Vec<&str> = text.split('\n').collect();
    let after: Vec<&str> = carried.split('\n').collect();
    assert_eq!(before.len(), after.len(), "lines added or lost");
    for (b, a) in before.iter().zip(&after) {
        assert!(a.len() >= b.len(), "{b:?} shrank to {a:?}");
        if a.len() != b.len() {
            assert!(a.contains(QUERY), "{b:?} changed without the query: {a:?}");
        }
    }
    if let Ok(playlist) = parse_media_playlist(text) {
        let rewritten = parse_media_playlist(&carried)
            .unwrap_or_else(|e| panic!("the rewrite does not parse: {e}\n{carried}"));
        assert_eq!(
            playlist.playlist.segments.len(),
            rewritten.playlist.segments.len()
        );
        for segment in &rewritten.playlist.segments {
            let is_relative = !segment.uri.contains(':') && !segment.uri.starts_with("//");
            if is_relative && !segment.uri.is_empty() {
                assert!(segment.uri.contains(QUERY), "{}", segment.uri);
            }
        }
    }
    if let Ok(playlist) = parse_multivariant_playlist(text) {
        let rewritten = parse_multivariant_playlist(&carried)
            .unwrap_or_else(|e| panic!("the rewrite does not parse: {e}\n{carried}"));
        assert_eq!(playlist.variants.len(), rewritten.variants.len());
    }
});
