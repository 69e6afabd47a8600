//! Carrying a query into every URI a playlist lists: a playlist fetched with a signed link
//! (`?exp=…&sig=…`) must list URIs that carry the same signature, or the player's next
//! request is refused.
//!
//! Works on the rendered text, so every rendering (multivariant or media, whole or delta
//! update) shares one rewrite. The URIs of a playlist (rfc8216bis §4.4) are:
//!
//! - URI lines: every line that is neither blank nor starts with `#` (§4.1): segment URIs in a
//!   media playlist (§4.4.4), variant URIs after EXT-X-STREAM-INF in a multivariant one
//!   (§4.4.6.2);
//! - the `URI` attribute of EXT-X-KEY (§4.4.4.4), EXT-X-MAP (§4.4.4.5), EXT-X-PART (§4.4.4.9),
//!   EXT-X-PRELOAD-HINT (§4.4.5.3), EXT-X-RENDITION-REPORT (§4.4.5.4), EXT-X-MEDIA (§4.4.6.1),
//!   EXT-X-I-FRAME-STREAM-INF (§4.4.6.3), EXT-X-SESSION-DATA (§4.4.6.4) and EXT-X-SESSION-KEY
//!   (§4.4.6.5).
//!
//! A URI gets `?QUERY` when it has no query, `&QUERY` when it has one, before any fragment.
//! URIs that name another host (with a scheme, or starting `//`) are left alone: the query is
//! this server's signature and must not leak to others. Comments and other tags are copied
//! as they are.

/// Tags whose `URI` attribute names a resource, with their rfc8216bis section.
const TAGS_WITH_URI: [&str; 9] = [
    "#EXT-X-KEY:",                // §4.4.4.4
    "#EXT-X-MAP:",                // §4.4.4.5
    "#EXT-X-PART:",               // §4.4.4.9
    "#EXT-X-PRELOAD-HINT:",       // §4.4.5.3
    "#EXT-X-RENDITION-REPORT:",   // §4.4.5.4
    "#EXT-X-MEDIA:",              // §4.4.6.1
    "#EXT-X-I-FRAME-STREAM-INF:", // §4.4.6.3
    "#EXT-X-SESSION-DATA:",       // §4.4.6.4
    "#EXT-X-SESSION-KEY:",        // §4.4.6.5
];

/// The attribute every tag above names its resource with.
const URI_ATTRIBUTE: &str = "URI";

/// `playlist` with `query` (without its `?`, e.g. `exp=1&sig=x`) added to every URI it lists.
/// An empty query leaves the text as it is.
pub fn carry_query(playlist: &str, query: &str) -> String {
    if query.is_empty() {
        return playlist.to_owned();
    }
    // Each URI grows by the query and one separator; a playlist lists about one URI per
    // 40 bytes, so this is usually the final size.
    let mut out =
        String::with_capacity(playlist.len() + (playlist.len() / 40 + 4) * (query.len() + 1));
    for line in playlist.split_inclusive('\n') {
        let (body, ending) = split_line_ending(line);
        if body.trim().is_empty() {
            out.push_str(line);
        } else if !body.starts_with('#') {
            push_with_query(&mut out, body, query);
            out.push_str(ending);
        } else if TAGS_WITH_URI.iter().any(|tag| body.starts_with(tag)) {
            push_tag(&mut out, body, query);
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// A line without its line break (LF or CRLF, §4.1), and the break.
fn split_line_ending(line: &str) -> (&str, &str) {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let body = body.strip_suffix('\r').unwrap_or(body);
    (body, &line[body.len()..])
}

/// A tag line with the query added to its `URI` attribute's quoted value. The attribute list
/// (§4.2) is walked pair by pair, so a quoted value of another attribute that contains
/// `URI="` or commas is never mistaken for it.
fn push_tag(out: &mut String, line: &str, query: &str) {
    let Some(colon) = line.find(':') else {
        out.push_str(line);
        return;
    };
    out.push_str(&line[..=colon]);
    let mut rest = &line[colon + 1..];
    while !rest.is_empty() {
        let name_end = rest.find(['=', ',']).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !rest[name_end..].starts_with('=') {
            // Not an attribute (a stray comma or a bare word): copied through.
            let step = (name_end + 1).min(rest.len());
            out.push_str(&rest[..step]);
            rest = &rest[step..];
            continue;
        }
        out.push_str(&rest[..=name_end]);
        let value_and_more = &rest[name_end + 1..];
        let value_len = if let Some(quoted) = value_and_more.strip_prefix('"') {
            // A quoted-string runs to the next '"'; an unterminated one to the end.
            quoted.find('"').map_or(value_and_more.len(), |end| end + 2)
        } else {
            value_and_more.find(',').unwrap_or(value_and_more.len())
        };
        let value = &value_and_more[..value_len];
        match value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .filter(|_| name == URI_ATTRIBUTE && value.len() >= 2)
        {
            Some(uri) => {
                out.push('"');
                push_with_query(out, uri, query);
                out.push('"');
            }
            None => out.push_str(value),
        }
        rest = &value_and_more[value_len..];
        if let Some(after_comma) = rest.strip_prefix(',') {
            out.push(',');
            rest = after_comma;
        }
    }
}

/// `uri` with `query` added: before any fragment, after `?` or `&`. Left alone when it names
/// another host, or is empty.
fn push_with_query(out: &mut String, uri: &str, query: &str) {
    if uri.is_empty() || names_another_host(uri) {
        out.push_str(uri);
        return;
    }
    let (before_fragment, fragment) = uri.split_at(uri.find('#').unwrap_or(uri.len()));
    out.push_str(before_fragment);
    if !before_fragment.contains('?') {
        out.push('?');
    } else if !before_fragment.ends_with(['?', '&']) {
        out.push('&');
    }
    out.push_str(query);
    out.push_str(fragment);
}

/// A URI with a scheme (`https:`, RFC 3986 §3.1) or a network-path reference (`//host`,
/// §4.2): not relative to this server.
fn names_another_host(uri: &str) -> bool {
    if uri.starts_with("//") {
        return true;
    }
    let Some(colon) = uri.find(':') else {
        return false;
    };
    let scheme = &uri[..colon];
    // A colon after a '/', '?' or '#' is in the path or later, not a scheme's.
    !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "exp=1767225600&sig=P0qfbAd2S0zii7Ou359Ba3C7EJ5aH6jaUJdUTBq3ZMs";

    /// A Low-Latency media playlist as framecast renders it, every URI kind in it.
    const MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.00000,HOLD-BACK=3.00000,PART-HOLD-BACK=0.60000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init0.mp4\"
#EXT-X-SKIP:SKIPPED-SEGMENTS=2
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z
#EXT-X-PART:DURATION=0.20000,URI=\"part9.0.m4s\",INDEPENDENT=YES
#EXTINF:1.00000,
seg9.m4s
#EXT-X-MAP:URI=\"init1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:01.000Z
#EXT-X-PART:DURATION=0.20000,URI=\"part10.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part10.1.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../other/media.m3u8\",LAST-MSN=10,LAST-PART=0
";

    #[test]
    fn every_uri_of_a_media_playlist_carries_the_query() {
        let expected = MEDIA
            .replace("init0.mp4", &format!("init0.mp4?{Q}"))
            .replace("init1.mp4", &format!("init1.mp4?{Q}"))
            .replace("part9.0.m4s", &format!("part9.0.m4s?{Q}"))
            .replace("\nseg9.m4s\n", &format!("\nseg9.m4s?{Q}\n"))
            .replace("part10.0.m4s", &format!("part10.0.m4s?{Q}"))
            .replace("part10.1.m4s", &format!("part10.1.m4s?{Q}"))
            .replace("media.m3u8", &format!("media.m3u8?{Q}"));
        assert_eq!(carry_query(MEDIA, Q), expected);
    }

    #[test]
    fn every_uri_of_a_multivariant_playlist_carries_the_query() {
        let playlist = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x,URI=\\\"y\\\"\",URI=\"audio.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"avc1.42e01e\",RESOLUTION=640x360\n\
            hls/abc/media.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=10,URI=\"iframes.m3u8?x=1\"\n\
            #EXT-X-SESSION-DATA:DATA-ID=\"d\",URI=\"https://elsewhere.example/d.json\"\n";
        let expected = format!(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x,URI=\\\"y\\\"\",URI=\"audio.m3u8?{Q}\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"avc1.42e01e\",RESOLUTION=640x360\n\
            hls/abc/media.m3u8?{Q}\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=10,URI=\"iframes.m3u8?x=1&{Q}\"\n\
            #EXT-X-SESSION-DATA:DATA-ID=\"d\",URI=\"https://elsewhere.example/d.json\"\n"
        );
        assert_eq!(carry_query(playlist, Q), expected);
    }

    #[test]
    fn uris_take_the_query_after_their_own_and_before_a_fragment() {
        let cases = [
            ("seg1.m4s", "seg1.m4s?q=1"),
            ("seg1.m4s?a=b", "seg1.m4s?a=b&q=1"),
            ("seg1.m4s?", "seg1.m4s?q=1"),
            ("seg1.m4s?a=b&", "seg1.m4s?a=b&q=1"),
            ("seg1.m4s#t=5", "seg1.m4s?q=1#t=5"),
            ("/abs/seg1.m4s", "/abs/seg1.m4s?q=1"),
            ("a/b:c.m4s", "a/b:c.m4s?q=1"),
            ("http://cdn/seg1.m4s", "http://cdn/seg1.m4s"),
            ("//cdn/seg1.m4s", "//cdn/seg1.m4s"),
        ];
        for (uri, expected) in cases {
            let mut out = String::new();
            push_with_query(&mut out, uri, "q=1");
            assert_eq!(out, expected, "{uri}");
        }
    }

    #[test]
    fn other_lines_and_line_endings_are_kept() {
        let playlist =
            "#EXTM3U\r\n\r\n# a comment with URI=\"x\"\r\n#EXT-X-MAP:URI=\"i.mp4\"\r\nseg1.m4s";
        assert_eq!(
            carry_query(playlist, "q=1"),
            "#EXTM3U\r\n\r\n# a comment with URI=\"x\"\r\n#EXT-X-MAP:URI=\"i.mp4?q=1\"\r\nseg1.m4s?q=1"
        );
        assert_eq!(carry_query(MEDIA, ""), MEDIA);
    }

    #[test]
    fn odd_attribute_lists_are_copied_without_panicking() {
        for line in [
            "#EXT-X-MAP:",
            "#EXT-X-MAP:URI",
            "#EXT-X-MAP:URI=",
            "#EXT-X-MAP:URI=\"",
            "#EXT-X-MAP:URI=\"\"",
            "#EXT-X-MAP:,,URI=\"a\",,",
            "#EXT-X-MAP:URI=\"unterminated",
            "#EXT-X-MAP:BYTERANGE=\"1@2\",URI=x.mp4",
        ] {
            let out = carry_query(line, "q=1");
            assert!(out.starts_with("#EXT-X-MAP:"), "{line}: {out}");
        }
        assert_eq!(
            carry_query("#EXT-X-MAP:,,URI=\"a\",,", "q=1"),
            "#EXT-X-MAP:,,URI=\"a?q=1\",,"
        );
    }

    /// Every URI in a playlist, in order: the map, parts, segments, the hint.
    fn uris_of(playlist: &crate::media::playlist::MediaPlaylist) -> Vec<String> {
        let mut uris = vec![playlist.map_uri.clone()];
        for segment in &playlist.segments {
            uris.extend(segment.map_uri.iter().cloned());
            uris.extend(segment.parts.iter().map(|p| p.uri.clone()));
            uris.push(segment.uri.clone());
        }
        if let Some(open) = &playlist.in_progress {
            uris.extend(open.map_uri.iter().cloned());
            uris.extend(open.parts.iter().map(|p| p.uri.clone()));
        }
        uris.extend(playlist.preload_hint.iter().map(|h| h.uri.clone()));
        uris
    }

    /// What the renderer writes (whole, delta, plain) over a simulated live window still
    /// parses after the rewrite, to the same playlist with every URI carrying the query.
    #[test]
    fn rendered_playlists_still_parse_with_their_uris_carrying_the_query() {
        use crate::media::playlist::tests::LiveSim;
        use crate::media::playlist::{SkipRequest, parse_media_playlist};
        let mut sim = LiveSim::new(3, 8);
        for step in 0..120 {
            let playlist = sim.step();
            if step % 10 != 9 {
                continue;
            }
            for text in [
                playlist.render(None),
                playlist.render(Some(SkipRequest::Yes)),
                playlist.render_standard(),
            ] {
                let carried = carry_query(&text, Q);
                let before = parse_media_playlist(&text).unwrap_or_else(|e| panic!("{e}"));
                let after =
                    parse_media_playlist(&carried).unwrap_or_else(|e| panic!("{e}\n{carried}"));
                let (uris_before, uris_after) =
                    (uris_of(&before.playlist), uris_of(&after.playlist));
                assert_eq!(uris_before.len(), uris_after.len());
                for (b, a) in uris_before.iter().zip(&uris_after) {
                    assert_eq!(*a, format!("{b}?{Q}"));
                }
                let mut unsigned = after.playlist.clone();
                unsigned.map_uri = before.playlist.map_uri.clone();
                for (u, b) in unsigned.segments.iter_mut().zip(&before.playlist.segments) {
                    u.uri = b.uri.clone();
                    u.map_uri = b.map_uri.clone();
                    for (up, bp) in u.parts.iter_mut().zip(&b.parts) {
                        up.uri = bp.uri.clone();
                    }
                }
                if let (Some(u), Some(b)) =
                    (&mut unsigned.in_progress, &before.playlist.in_progress)
                {
                    u.map_uri = b.map_uri.clone();
                    for (up, bp) in u.parts.iter_mut().zip(&b.parts) {
                        up.uri = bp.uri.clone();
                    }
                }
                if let (Some(u), Some(b)) =
                    (&mut unsigned.preload_hint, &before.playlist.preload_hint)
                {
                    u.uri = b.uri.clone();
                }
                assert_eq!(unsigned, before.playlist, "nothing but the URIs changed");
            }
        }
    }
}
