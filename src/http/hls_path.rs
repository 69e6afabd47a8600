//! The names of HLS resources under `/hls/{start_id}/`, decoded once into a typed value so
//! handlers never parse strings.

/// One resource of the HLS presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsResource {
    /// `media.m3u8`: the media playlist.
    MediaPlaylist,
    /// `init{generation}.mp4`: the fMP4 initialization section.
    Init { generation: u32 },
    /// `seg{msn}.m4s`: a whole segment.
    Segment { msn: u64 },
    /// `part{msn}.{index}.m4s`: one part of a segment.
    Part { msn: u64, index: usize },
}

impl HlsResource {
    /// Decodes a file name; `None` for anything framecast never names.
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

/// Plain decimal digits only: no sign, no spaces, no leading `+`, as framecast writes them.
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
    fn names_decode_to_resources() {
        use HlsResource::*;
        let cases: &[(&str, Option<HlsResource>)] = &[
            ("media.m3u8", Some(MediaPlaylist)),
            ("init0.mp4", Some(Init { generation: 0 })),
            ("init12.mp4", Some(Init { generation: 12 })),
            ("seg0.m4s", Some(Segment { msn: 0 })),
            (
                "seg18446744073709551615.m4s",
                Some(Segment { msn: u64::MAX }),
            ),
            ("part7.2.m4s", Some(Part { msn: 7, index: 2 })),
            ("part7.m4s", None),
            ("part7.x.m4s", None),
            ("part.1.m4s", None),
            ("seg-1.m4s", None),
            ("seg+1.m4s", None),
            ("seg1.mp4", None),
            ("seg18446744073709551616.m4s", None),
            ("init.mp4", None),
            ("media.m3u", None),
            ("", None),
            ("../etc/passwd", None),
        ];
        for (name, want) in cases {
            assert_eq!(HlsResource::parse(name), *want, "{name}");
        }
    }
}
