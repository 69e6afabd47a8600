//! The names of HLS resources under `/hls/{start_id}/`: one type writes them (into playlists)
//! and reads them back (from request paths), so the two can never disagree.

use std::fmt;

/// One resource of the HLS presentation, by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsName {
    /// `media.m3u8`: the media playlist.
    MediaPlaylist,
    /// `init{generation}.mp4`: the fMP4 initialization section of one picture format.
    Init { generation: u32 },
    /// `seg{msn}.m4s`: a whole segment.
    Segment { msn: u64 },
    /// `part{msn}.{index}.m4s`: one part of a segment.
    Part { msn: u64, index: usize },
}

impl HlsName {
    /// Decodes a file name; `None` for anything framecast never writes.
    pub fn parse(name: &str) -> Option<Self> {
        if name == "media.m3u8" {
            return Some(Self::MediaPlaylist);
        }
        if let Some(generation) = name
            .strip_prefix("init")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(Self::Init {
                generation: number(generation)?,
            });
        }
        if let Some(msn) = name
            .strip_prefix("seg")
            .and_then(|r| r.strip_suffix(".m4s"))
        {
            return Some(Self::Segment { msn: number(msn)? });
        }
        let (msn, index) = name
            .strip_prefix("part")
            .and_then(|r| r.strip_suffix(".m4s"))
            .and_then(|r| r.split_once('.'))?;
        Some(Self::Part {
            msn: number(msn)?,
            index: number(index)?,
        })
    }
}

/// The file name, relative to the media playlist (which lives under the per-start prefix).
impl fmt::Display for HlsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MediaPlaylist => f.write_str("media.m3u8"),
            Self::Init { generation } => write!(f, "init{generation}.mp4"),
            Self::Segment { msn } => write!(f, "seg{msn}.m4s"),
            Self::Part { msn, index } => write!(f, "part{msn}.{index}.m4s"),
        }
    }
}

/// Plain decimal digits only: no sign, no spaces, no leading `+`, as [`HlsName`] writes them.
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_written_and_read_back() {
        use HlsName::*;
        let cases: &[(&str, HlsName)] = &[
            ("media.m3u8", MediaPlaylist),
            ("init0.mp4", Init { generation: 0 }),
            ("init12.mp4", Init { generation: 12 }),
            (
                "init4294967295.mp4",
                Init {
                    generation: u32::MAX,
                },
            ),
            ("seg0.m4s", Segment { msn: 0 }),
            ("seg18446744073709551615.m4s", Segment { msn: u64::MAX }),
            ("part7.2.m4s", Part { msn: 7, index: 2 }),
            ("part0.0.m4s", Part { msn: 0, index: 0 }),
        ];
        for (text, name) in cases {
            assert_eq!(name.to_string(), *text, "{name:?} writes");
            assert_eq!(HlsName::parse(text), Some(*name), "{text} reads");
        }
    }

    #[test]
    fn names_framecast_never_writes_are_refused() {
        for name in [
            "part7.m4s",
            "part7.x.m4s",
            "part.1.m4s",
            "part1.2.3.m4s",
            "seg-1.m4s",
            "seg+1.m4s",
            "seg 1.m4s",
            "seg1.mp4",
            "seg18446744073709551616.m4s",
            "init.mp4",
            "init4294967296.mp4",
            "media.m3u",
            "MEDIA.m3u8",
            "",
            "../etc/passwd",
        ] {
            assert_eq!(HlsName::parse(name), None, "{name}");
        }
    }
}
