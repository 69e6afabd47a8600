//! The ffmpeg command line of an H.264 encoder process: raw I420 frames in on stdin, an Annex B
//! stream out on stdout, with each encoder's options for low delay.
//!
//! What every kind gets, and why:
//! - no B-frames (`-bf 0`): one access unit comes out per frame, in order, so each is matched
//!   back to its frame's capture time, and the segmenter's decode time is its presentation time;
//! - an IDR on every `frames_per_idr`-th frame, counted from the process's first:
//!   `-force_key_frames expr:eq(mod(n,N),0)` with `-g N` (and scene-cut detection off where the
//!   encoder has it). A pipe of raw frames carries no per-frame key-frame request, so the
//!   cadence is fixed when the process starts; the H.264 thread keeps the frame count aligned
//!   with the segments (see `pipeline::h264_piped`). Forced key frames are IDRs
//!   (`-forced-idr 1` / `-forced_idr 1` where the encoder would make a plain I frame);
//! - the configured bitrate as both average and ceiling, over a one-second buffer
//!   (`-b:v`, `-maxrate`, `-bufsize`): ffmpeg's own rate control keeps segments in budget,
//!   since a frame cannot be taken back and encoded again through a pipe;
//! - no lookahead: x264 `-tune zerolatency` (no lookahead, no frame threads), NVENC
//!   `-zerolatency 1`, VideoToolbox `-realtime 1`, Quick Sync `-look_ahead 0`;
//! - the device and upload the hardware needs: VA-API `-vaapi_device` and
//!   `format=nv12,hwupload`; Quick Sync and VideoToolbox take NV12 frames from memory;
//! - SPS and PPS before every IDR: libx264 writes them there itself when no global header is
//!   asked for; for the others `dump_extra` puts the encoder's parameter sets before each key
//!   frame.
//!
//! Pure: settings in, arguments out.

use crate::frame::FrameSize;

use super::h264_choice::H264EncoderKind;

/// The render node VA-API and Quick Sync open: the first GPU's.
pub const DRI_RENDER_NODE: &str = "/dev/dri/renderD128";

/// The x264 preset the `x264` encoder uses: about twice openh264's compression at the same
/// bitrate for a few times its CPU (see `make bench`); `ultrafast` for small CPUs.
pub const DEFAULT_X264_PRESET: &str = "veryfast";

/// What one encoder process is started with.
#[derive(Debug, Clone, PartialEq)]
pub struct FfmpegParams {
    pub size: FrameSize,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// An IDR on every this many frames, from the first.
    pub frames_per_idr: u32,
    /// x264's preset (only for [`H264EncoderKind::X264`]).
    pub x264_preset: &'static str,
}

/// The arguments after `ffmpeg` for `kind`; `None` for kinds that are not ffmpeg's.
pub fn ffmpeg_args(kind: H264EncoderKind, params: &FfmpegParams) -> Option<Vec<String>> {
    let codec = kind.ffmpeg_codec()?;
    let gop = params.frames_per_idr.max(1);
    let bitrate = params.bitrate_bps.to_string();
    let mut args: Vec<String> = Vec::with_capacity(64);
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
    push(&["-hide_banner", "-loglevel", "error", "-nostats"]);
    if kind == H264EncoderKind::Vaapi {
        push(&["-vaapi_device", DRI_RENDER_NODE]);
    }
    let size = format!("{}x{}", params.size.width, params.size.height);
    let fps = params.fps.max(1).to_string();
    push(&[
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-video_size",
        &size,
    ]);
    push(&["-framerate", &fps, "-i", "pipe:0", "-an"]);
    match kind {
        H264EncoderKind::Vaapi => push(&["-vf", "format=nv12,hwupload"]),
        H264EncoderKind::Qsv | H264EncoderKind::VideoToolbox => push(&["-vf", "format=nv12"]),
        _ => {}
    }
    push(&["-c:v", codec]);
    match kind {
        H264EncoderKind::X264 => {
            push(&["-preset", params.x264_preset, "-tune", "zerolatency"]);
            push(&["-sc_threshold", "0", "-forced-idr", "1"]);
            // No HRD NALs and no repeated SEI: only what the segmenter keeps.
            push(&["-x264-params", "nal-hrd=none:aud=0"]);
        }
        H264EncoderKind::Nvenc => {
            push(&["-preset", "p1", "-tune", "ll", "-zerolatency", "1"]);
            push(&["-rc", "cbr", "-forced-idr", "1", "-no-scenecut", "1"]);
        }
        H264EncoderKind::Qsv => push(&["-look_ahead", "0", "-forced_idr", "1"]),
        H264EncoderKind::VideoToolbox => {
            push(&["-realtime", "1", "-allow_sw", "0"]);
        }
        H264EncoderKind::Vaapi => push(&["-rc_mode", "CBR"]),
        H264EncoderKind::V4l2m2m | H264EncoderKind::OpenH264 | H264EncoderKind::Auto => {}
    }
    let gop_text = gop.to_string();
    let key_frames = format!("expr:eq(mod(n,{gop}),0)");
    push(&["-bf", "0", "-g", &gop_text, "-keyint_min", &gop_text]);
    push(&["-force_key_frames", &key_frames]);
    push(&["-b:v", &bitrate, "-maxrate", &bitrate, "-bufsize", &bitrate]);
    if kind != H264EncoderKind::X264 {
        push(&["-bsf:v", "dump_extra=freq=keyframe"]);
    }
    // Each access unit leaves as soon as it is encoded, not when an output buffer fills.
    push(&["-flush_packets", "1", "-f", "h264", "pipe:1"]);
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> FfmpegParams {
        FfmpegParams {
            size: FrameSize::new(1280, 720),
            fps: 30,
            bitrate_bps: 2_000_000,
            frames_per_idr: 30,
            x264_preset: "ultrafast",
        }
    }

    /// The value after `flag`, for each time it appears.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn x264_gets_zerolatency_a_fixed_idr_cadence_and_the_bitrate() {
        let args = ffmpeg_args(H264EncoderKind::X264, &params()).unwrap();
        assert_eq!(values(&args, "-c:v"), ["libx264"]);
        assert_eq!(values(&args, "-tune"), ["zerolatency"]);
        assert_eq!(values(&args, "-preset"), ["ultrafast"]);
        assert_eq!(values(&args, "-bf"), ["0"]);
        assert_eq!(values(&args, "-g"), ["30"]);
        assert_eq!(values(&args, "-force_key_frames"), ["expr:eq(mod(n,30),0)"]);
        assert_eq!(values(&args, "-forced-idr"), ["1"]);
        assert_eq!(values(&args, "-sc_threshold"), ["0"]);
        assert_eq!(values(&args, "-b:v"), ["2000000"]);
        assert_eq!(values(&args, "-maxrate"), ["2000000"]);
        assert_eq!(values(&args, "-video_size"), ["1280x720"]);
        assert_eq!(values(&args, "-pix_fmt"), ["yuv420p"]);
        assert_eq!(values(&args, "-i"), ["pipe:0"]);
        assert_eq!(args.last().map(String::as_str), Some("pipe:1"));
        assert_eq!(values(&args, "-f"), ["rawvideo", "h264"]);
        assert!(
            values(&args, "-bsf:v").is_empty(),
            "x264 repeats headers itself"
        );
    }

    #[test]
    fn hardware_kinds_get_their_device_upload_and_low_delay_options() {
        let p = params();
        let vaapi = ffmpeg_args(H264EncoderKind::Vaapi, &p).unwrap();
        assert_eq!(values(&vaapi, "-vaapi_device"), [DRI_RENDER_NODE]);
        assert_eq!(values(&vaapi, "-vf"), ["format=nv12,hwupload"]);
        // A global option: before the input.
        let device_at = vaapi.iter().position(|a| a == "-vaapi_device").unwrap();
        let input_at = vaapi.iter().position(|a| a == "-i").unwrap();
        assert!(device_at < input_at);

        let nvenc = ffmpeg_args(H264EncoderKind::Nvenc, &p).unwrap();
        assert_eq!(values(&nvenc, "-c:v"), ["h264_nvenc"]);
        assert_eq!(values(&nvenc, "-zerolatency"), ["1"]);
        assert_eq!(values(&nvenc, "-forced-idr"), ["1"]);

        let qsv = ffmpeg_args(H264EncoderKind::Qsv, &p).unwrap();
        assert_eq!(values(&qsv, "-look_ahead"), ["0"]);
        assert_eq!(values(&qsv, "-vf"), ["format=nv12"]);

        let vt = ffmpeg_args(H264EncoderKind::VideoToolbox, &p).unwrap();
        assert_eq!(values(&vt, "-realtime"), ["1"]);

        let m2m = ffmpeg_args(H264EncoderKind::V4l2m2m, &p).unwrap();
        assert_eq!(values(&m2m, "-c:v"), ["h264_v4l2m2m"]);
        assert!(values(&m2m, "-vf").is_empty(), "takes I420 from memory");

        for kind in [
            H264EncoderKind::Vaapi,
            H264EncoderKind::V4l2m2m,
            H264EncoderKind::Nvenc,
            H264EncoderKind::Qsv,
            H264EncoderKind::VideoToolbox,
        ] {
            let args = ffmpeg_args(kind, &p).unwrap();
            assert_eq!(values(&args, "-bf"), ["0"], "{kind}");
            assert_eq!(values(&args, "-g"), ["30"], "{kind}");
            assert_eq!(
                values(&args, "-bsf:v"),
                ["dump_extra=freq=keyframe"],
                "{kind}"
            );
        }
    }

    #[test]
    fn openh264_and_auto_are_not_ffmpeg_processes() {
        assert!(ffmpeg_args(H264EncoderKind::OpenH264, &params()).is_none());
        assert!(ffmpeg_args(H264EncoderKind::Auto, &params()).is_none());
    }
}
