//! Which H.264 encoder a stream asks for (`h264_encoder`, `--h264-encoder`), which one runs,
//! and why: the record `/status` and `/metrics` show.
//!
//! `openh264` runs in process; every other kind is an ffmpeg process
//! ([`super::ffmpeg_h264`]) with that kind's codec. `auto` takes the first hardware encoder
//! whose test encode works, in [`H264EncoderKind::auto_order`], else openh264.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use serde::Deserialize;

/// An H.264 encoder a stream can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
pub enum H264EncoderKind {
    /// openh264, in process (BSD-2, Constrained Baseline).
    #[serde(rename = "openh264")]
    #[value(name = "openh264")]
    OpenH264,
    /// libx264 through ffmpeg, on the CPU.
    #[serde(rename = "x264")]
    #[value(name = "x264")]
    X264,
    /// VA-API (Intel and AMD GPUs) through ffmpeg.
    #[serde(rename = "vaapi")]
    #[value(name = "vaapi")]
    Vaapi,
    /// V4L2 memory-to-memory (Raspberry Pi 4 and other SoCs) through ffmpeg.
    #[serde(rename = "v4l2m2m")]
    #[value(name = "v4l2m2m")]
    V4l2m2m,
    /// NVIDIA NVENC through ffmpeg.
    #[serde(rename = "nvenc")]
    #[value(name = "nvenc")]
    Nvenc,
    /// Intel Quick Sync through ffmpeg.
    #[serde(rename = "qsv")]
    #[value(name = "qsv")]
    Qsv,
    /// Apple VideoToolbox (macOS) through ffmpeg.
    #[serde(rename = "videotoolbox")]
    #[value(name = "videotoolbox")]
    VideoToolbox,
    /// The first hardware encoder that works here, else openh264.
    #[serde(rename = "auto")]
    #[value(name = "auto")]
    Auto,
}

impl H264EncoderKind {
    pub const ALL: [Self; 8] = [
        Self::OpenH264,
        Self::X264,
        Self::Vaapi,
        Self::V4l2m2m,
        Self::Nvenc,
        Self::Qsv,
        Self::VideoToolbox,
        Self::Auto,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenH264 => "openh264",
            Self::X264 => "x264",
            Self::Vaapi => "vaapi",
            Self::V4l2m2m => "v4l2m2m",
            Self::Nvenc => "nvenc",
            Self::Qsv => "qsv",
            Self::VideoToolbox => "videotoolbox",
            Self::Auto => "auto",
        }
    }

    /// The ffmpeg encoder (`-c:v`) of an ffmpeg-process kind; `None` for openh264 and auto.
    pub fn ffmpeg_codec(self) -> Option<&'static str> {
        Some(match self {
            Self::X264 => "libx264",
            Self::Vaapi => "h264_vaapi",
            Self::V4l2m2m => "h264_v4l2m2m",
            Self::Nvenc => "h264_nvenc",
            Self::Qsv => "h264_qsv",
            Self::VideoToolbox => "h264_videotoolbox",
            Self::OpenH264 | Self::Auto => return None,
        })
    }

    /// The hardware encoders `auto` tries, most likely first on this platform: on Linux the
    /// GPU APIs of desktops and servers (VA-API covers Intel and AMD, then NVIDIA, then Intel's
    /// own Quick Sync), then the SoC encoders of small boards; on macOS VideoToolbox.
    pub fn auto_order() -> &'static [Self] {
        if cfg!(target_os = "macos") {
            &[Self::VideoToolbox]
        } else {
            &[Self::Vaapi, Self::Nvenc, Self::Qsv, Self::V4l2m2m]
        }
    }
}

impl std::fmt::Display for H264EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the running encoder is the one it is, in a word (a `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChoiceReason {
    /// The encoder asked for runs.
    #[default]
    Requested,
    /// `auto` found this one.
    Auto,
    /// The one asked for failed its test encode at start: openh264 runs.
    ProbeFailed,
    /// The one asked for failed again and again while running: openh264 runs.
    FailedRepeatedly,
}

impl ChoiceReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Auto => "auto",
            Self::ProbeFailed => "probe_failed",
            Self::FailedRepeatedly => "failed_repeatedly",
        }
    }
}

/// Which encoder was asked for, which runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderChoice {
    pub requested: H264EncoderKind,
    pub chosen: H264EncoderKind,
    pub reason: ChoiceReason,
    /// What failed, when the chosen encoder is not the one asked for (one line).
    pub fallback_reason: Option<String>,
}

impl Default for EncoderChoice {
    fn default() -> Self {
        Self {
            requested: H264EncoderKind::OpenH264,
            chosen: H264EncoderKind::OpenH264,
            reason: ChoiceReason::Requested,
            fallback_reason: None,
        }
    }
}

/// The running encoder's state, for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct EncoderState {
    pub choice: Mutex<EncoderChoice>,
    /// The ffmpeg process's id while one runs (0: none).
    pub pid: AtomicU64,
    /// ffmpeg processes started again after one died, stalled or broke a rule.
    pub restarts: AtomicU64,
    /// Access units that broke a rule (no IDR where a segment starts, a B slice, an IDR
    /// without SPS and PPS).
    pub rule_breaks: AtomicU64,
    /// Processes that stopped giving access units for the frames they were given.
    pub stalls: AtomicU64,
    /// Frames not encoded while an ffmpeg process was being started again.
    pub frames_lost: AtomicU64,
}

impl EncoderState {
    /// The choice now (a copy).
    pub fn choice(&self) -> EncoderChoice {
        match self.choice.lock() {
            Ok(choice) => choice.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_choice(&self, choice: EncoderChoice) {
        match self.choice.lock() {
            Ok(mut slot) => *slot = choice,
            Err(poisoned) => *poisoned.into_inner() = choice,
        }
    }
}

/// Chooses the encoder for `requested`: an ffmpeg kind if its test encode (`probe`) works,
/// for `auto` the first hardware kind in [`H264EncoderKind::auto_order`] whose test encode
/// works, otherwise openh264 with the reason.
pub fn choose(
    requested: H264EncoderKind,
    mut probe: impl FnMut(H264EncoderKind) -> Result<(), String>,
) -> EncoderChoice {
    let fallback = |reason: ChoiceReason, why: String| EncoderChoice {
        requested,
        chosen: H264EncoderKind::OpenH264,
        reason,
        fallback_reason: Some(why),
    };
    match requested {
        H264EncoderKind::OpenH264 => EncoderChoice::default(),
        H264EncoderKind::Auto => {
            let mut failures = Vec::new();
            for &kind in H264EncoderKind::auto_order() {
                match probe(kind) {
                    Ok(()) => {
                        return EncoderChoice {
                            requested,
                            chosen: kind,
                            reason: ChoiceReason::Auto,
                            fallback_reason: None,
                        };
                    }
                    Err(why) => failures.push(format!("{kind}: {why}")),
                }
            }
            fallback(
                ChoiceReason::ProbeFailed,
                format!("no hardware encoder works here ({})", failures.join("; ")),
            )
        }
        kind => match probe(kind) {
            Ok(()) => EncoderChoice {
                requested,
                chosen: kind,
                reason: ChoiceReason::Requested,
                fallback_reason: None,
            },
            Err(why) => fallback(
                ChoiceReason::ProbeFailed,
                format!("the test encode with {kind} failed: {why}"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_read_as_written_in_flags_and_files() {
        for kind in H264EncoderKind::ALL {
            assert_eq!(
                H264EncoderKind::from_str(kind.as_str(), false),
                Ok(kind),
                "{kind}"
            );
            #[derive(Deserialize)]
            struct Table {
                e: H264EncoderKind,
            }
            let table: Table = toml::from_str(&format!("e = \"{kind}\"")).unwrap();
            assert_eq!(table.e, kind);
        }
        assert!(H264EncoderKind::from_str("x265", false).is_err());
    }

    #[test]
    fn a_kind_that_fails_its_test_encode_falls_back_to_openh264_with_the_reason() {
        let works = |ok: &'static [H264EncoderKind]| {
            move |kind: H264EncoderKind| {
                if ok.contains(&kind) {
                    Ok(())
                } else {
                    Err(format!("no {kind} here"))
                }
            }
        };
        let x264 = choose(H264EncoderKind::X264, works(&[H264EncoderKind::X264]));
        assert_eq!(x264.chosen, H264EncoderKind::X264);
        assert_eq!(x264.reason, ChoiceReason::Requested);

        let vaapi = choose(H264EncoderKind::Vaapi, works(&[]));
        assert_eq!(vaapi.requested, H264EncoderKind::Vaapi);
        assert_eq!(vaapi.chosen, H264EncoderKind::OpenH264);
        assert_eq!(vaapi.reason, ChoiceReason::ProbeFailed);
        assert_eq!(
            vaapi.fallback_reason.as_deref(),
            Some("the test encode with vaapi failed: no vaapi here")
        );

        let mut asked = Vec::new();
        let none = choose(H264EncoderKind::Auto, |kind| {
            asked.push(kind);
            Err("absent".into())
        });
        assert_eq!(asked, H264EncoderKind::auto_order());
        assert_eq!(none.chosen, H264EncoderKind::OpenH264);
        assert!(
            none.fallback_reason
                .unwrap()
                .starts_with("no hardware encoder works here")
        );

        let last = *H264EncoderKind::auto_order().last().unwrap();
        let found = choose(H264EncoderKind::Auto, |kind| {
            if kind == last {
                Ok(())
            } else {
                Err("absent".into())
            }
        });
        assert_eq!((found.chosen, found.reason), (last, ChoiceReason::Auto));

        let mut probed = false;
        let plain = choose(H264EncoderKind::OpenH264, |_| {
            probed = true;
            Ok(())
        });
        assert_eq!(plain, EncoderChoice::default());
        assert!(!probed, "openh264 needs no test encode");
    }

    #[test]
    fn only_ffmpeg_kinds_have_a_codec_and_auto_tries_hardware_only() {
        assert_eq!(H264EncoderKind::OpenH264.ffmpeg_codec(), None);
        assert_eq!(H264EncoderKind::Auto.ffmpeg_codec(), None);
        assert_eq!(H264EncoderKind::X264.ffmpeg_codec(), Some("libx264"));
        for kind in H264EncoderKind::auto_order() {
            assert!(kind.ffmpeg_codec().is_some());
            assert_ne!(*kind, H264EncoderKind::X264, "x264 is not hardware");
        }
    }
}
