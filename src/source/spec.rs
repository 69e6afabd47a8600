//! What `--source` names: which kind of source and its address. Parsed once, then handed to
//! [`super::opener`]; the rest of the crate never parses source strings.
//!
//! Printed back (`Display`), a spec is what logs and `/status` show: passwords in an `exec:`
//! command or an `rtsp://` URL are masked there (see [`super::redact`]).

use std::path::PathBuf;

use super::redact::mask_secrets;
use super::rtsp::RtspAddress;

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in moving test pattern with a machine-readable timestamp strip.
    TestPattern,
    /// A V4L2 camera: `camera:N` or `camera:/dev/videoN`.
    Camera(CameraId),
    /// Frames on standard input: `pipe:yuv420p` or `pipe:mjpeg`.
    Pipe(PipeFormat),
    /// Frames from a FIFO (named pipe) that other programs write into, one writer after the
    /// other: `pipe:mjpeg:/path` or `pipe:yuv420p:/path`.
    Fifo { format: PipeFormat, path: PathBuf },
    /// Frames a command writes on its standard output; framecast starts it, and restarts it
    /// with back-off when it exits: `exec:COMMAND` (MJPEG) or `exec:yuv420p:COMMAND`. The
    /// command line is split into words as a shell does (quotes, backslashes), but no shell
    /// runs it.
    Exec {
        /// The program and its arguments; never empty.
        command: Vec<String>,
        format: PipeFormat,
    },
    /// An RTSP camera's H.264 stream: `rtsp://[user:password@]host[:port]/path`, with `#udp`
    /// at the end for RTP over UDP instead of interleaved in the TCP connection; or
    /// `rtsps://…` over TLS (see [`RtspAddress`]).
    Rtsp(RtspAddress),
    /// H.264 a WHIP publisher (a browser's or phone's camera) sends to the stream's
    /// `POST /streams/{name}/whip`: `whip`.
    Whip,
}

/// Which camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraId {
    Index(u32),
    Path(std::path::PathBuf),
}

/// What a pipe carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeFormat {
    /// Raw I420 frames of `--size`, back to back.
    Yuv420p,
    /// Concatenated JPEGs.
    Mjpeg,
    /// An H.264 Annex B byte stream.
    H264,
}

impl std::fmt::Display for PipeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Yuv420p => "yuv420p",
            Self::Mjpeg => "mjpeg",
            Self::H264 => "h264",
        })
    }
}

impl PipeFormat {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "yuv420p" => Some(Self::Yuv420p),
            "mjpeg" => Some(Self::Mjpeg),
            "h264" => Some(Self::H264),
            _ => None,
        }
    }
}

impl std::str::FromStr for PipeFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text).ok_or_else(|| {
            format!("unknown pipe format `{text}` (supported: yuv420p, mjpeg, h264)")
        })
    }
}

impl SourceSpec {
    /// Parses what `--source` (and a config file's `source =`) takes.
    pub fn parse(text: &str) -> Result<Self, String> {
        const SUPPORTED: &str = "test, camera:N, camera:/dev/videoN, pipe:yuv420p, pipe:mjpeg, \
                                 pipe:h264, pipe:FORMAT:/path/to/fifo, exec:COMMAND, \
                                 exec:FORMAT:COMMAND, rtsp://host/path, whip";
        match text.split_once(':') {
            None if text == "test" => Ok(Self::TestPattern),
            None if text == "whip" => Ok(Self::Whip),
            Some(("camera", rest)) if rest.starts_with('/') => {
                Ok(Self::Camera(CameraId::Path(rest.into())))
            }
            Some(("camera", rest)) => rest
                .parse()
                .map(|n| Self::Camera(CameraId::Index(n)))
                .map_err(|_| format!("`{text}`: a camera is camera:N or camera:/dev/videoN")),
            Some(("pipe", rest)) => Self::parse_pipe(rest),
            Some(("exec", rest)) => Self::parse_exec(rest),
            Some(("rtsp" | "rtsps", rest)) if rest.starts_with("//") => {
                RtspAddress::parse(text).map(Self::Rtsp)
            }
            _ => Err(format!("unknown source `{text}` (supported: {SUPPORTED})")),
        }
    }

    /// `FORMAT` (standard input) or `FORMAT:/path` (a FIFO).
    fn parse_pipe(rest: &str) -> Result<Self, String> {
        let (format_name, path) = match rest.split_once(':') {
            Some((format, path)) => (format, Some(path)),
            None => (rest, None),
        };
        let format: PipeFormat = format_name.parse()?;
        match path {
            None => Ok(Self::Pipe(format)),
            Some("") => Err(format!(
                "pipe:{format}: is missing the FIFO's path (pipe:{format}:/path/to/fifo)"
            )),
            Some(path) => Ok(Self::Fifo {
                format,
                path: path.into(),
            }),
        }
    }

    /// `COMMAND` or `FORMAT:COMMAND`. The error messages never repeat the command: it may
    /// hold a password.
    fn parse_exec(rest: &str) -> Result<Self, String> {
        let (format, command_line) = match rest.split_once(':') {
            Some((name, command)) if PipeFormat::parse(name).is_some() => {
                (PipeFormat::parse(name), command)
            }
            _ => (None, rest),
        };
        let format = format.unwrap_or(PipeFormat::Mjpeg);
        let command = shlex::split(command_line).ok_or_else(|| {
            "exec: the command has an unclosed quote or ends in a backslash".to_owned()
        })?;
        if command.is_empty() {
            return Err("exec: the command is missing (exec:COMMAND ARGUMENTS…)".into());
        }
        Ok(Self::Exec { command, format })
    }
}

impl SourceSpec {
    /// The same source with its bytes read as `format` (a config file's `format = "yuv420p"`
    /// next to its `source`); only pipes, FIFOs and commands have a format.
    pub fn with_format(self, format: PipeFormat) -> Result<Self, String> {
        match self {
            Self::Pipe(_) => Ok(Self::Pipe(format)),
            Self::Fifo { path, .. } => Ok(Self::Fifo { format, path }),
            Self::Exec { command, .. } => Ok(Self::Exec { command, format }),
            other => Err(format!(
                "a format applies to pipe: and exec: sources, not to `{other}`"
            )),
        }
    }
}

/// A command line as a shell would read it back, with passwords masked.
pub fn display_command(command: &[String]) -> String {
    let joined = shlex::try_join(command.iter().map(String::as_str))
        // Only a word with a NUL byte cannot be quoted; show it without quotes then.
        .unwrap_or_else(|_| command.join(" "));
    mask_secrets(&joined).into_owned()
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TestPattern => f.write_str("test"),
            Self::Camera(CameraId::Index(n)) => write!(f, "camera:{n}"),
            Self::Camera(CameraId::Path(path)) => write!(f, "camera:{}", path.display()),
            Self::Pipe(format) => write!(f, "pipe:{format}"),
            Self::Fifo { format, path } => write!(f, "pipe:{format}:{}", path.display()),
            Self::Exec {
                command,
                format: PipeFormat::Mjpeg,
            } => write!(f, "exec:{}", display_command(command)),
            Self::Exec { command, format } => {
                write!(f, "exec:{format}:{}", display_command(command))
            }
            Self::Rtsp(address) => write!(f, "{address}"),
            Self::Whip => f.write_str("whip"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for (text, spec) in [
            ("test", SourceSpec::TestPattern),
            ("camera:0", SourceSpec::Camera(CameraId::Index(0))),
            (
                "camera:/dev/video2",
                SourceSpec::Camera(CameraId::Path("/dev/video2".into())),
            ),
            ("pipe:yuv420p", SourceSpec::Pipe(PipeFormat::Yuv420p)),
            ("pipe:mjpeg", SourceSpec::Pipe(PipeFormat::Mjpeg)),
            ("pipe:h264", SourceSpec::Pipe(PipeFormat::H264)),
            ("whip", SourceSpec::Whip),
            (
                "pipe:mjpeg:/run/cam.fifo",
                SourceSpec::Fifo {
                    format: PipeFormat::Mjpeg,
                    path: "/run/cam.fifo".into(),
                },
            ),
            (
                "pipe:yuv420p:relative/fifo",
                SourceSpec::Fifo {
                    format: PipeFormat::Yuv420p,
                    path: "relative/fifo".into(),
                },
            ),
            (
                "exec:ffmpeg -i 'rtsp://cam/a b' -f mjpeg -",
                exec(
                    &["ffmpeg", "-i", "rtsp://cam/a b", "-f", "mjpeg", "-"],
                    PipeFormat::Mjpeg,
                ),
            ),
            (
                "exec:yuv420p:rpicam-vid -t 0 --codec yuv420 -o -",
                exec(
                    &["rpicam-vid", "-t", "0", "--codec", "yuv420", "-o", "-"],
                    PipeFormat::Yuv420p,
                ),
            ),
        ] {
            assert_eq!(SourceSpec::parse(text), Ok(spec.clone()));
            assert_eq!(spec.to_string(), text);
        }
        for bad in [
            "camera:x",
            "camera:",
            "pipe:h265",
            "rtsps://x#udp",
            "rtsp:x",
            "",
            "tests",
            "whip:x",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    fn exec(words: &[&str], format: PipeFormat) -> SourceSpec {
        SourceSpec::Exec {
            command: words.iter().map(|w| w.to_string()).collect(),
            format,
        }
    }

    #[test]
    fn exec_commands_are_split_like_a_shell_without_running_one() {
        for (text, spec) in [
            (
                r#"exec:ffmpeg -vf "drawtext=text='a b'" -f mjpeg -"#,
                exec(
                    &["ffmpeg", "-vf", "drawtext=text='a b'", "-f", "mjpeg", "-"],
                    PipeFormat::Mjpeg,
                ),
            ),
            (
                r"exec:sh -c echo\ \$HOME; exit",
                exec(&["sh", "-c", "echo $HOME;", "exit"], PipeFormat::Mjpeg),
            ),
            (
                "exec:mjpeg:cat x.mjpg",
                exec(&["cat", "x.mjpg"], PipeFormat::Mjpeg),
            ),
            (
                "exec:/opt/bin/ffmpeg:x -i a",
                exec(&["/opt/bin/ffmpeg:x", "-i", "a"], PipeFormat::Mjpeg),
            ),
            ("exec:  cam  ", exec(&["cam"], PipeFormat::Mjpeg)),
        ] {
            assert_eq!(SourceSpec::parse(text), Ok(spec), "{text}");
        }
    }

    #[test]
    fn bad_pipes_and_commands_say_why() {
        for (text, message) in [
            (
                "exec:ffmpeg -i 'rtsp://u:secret@cam",
                "exec: the command has an unclosed quote or ends in a backslash",
            ),
            (
                r"exec:ffmpeg \",
                "exec: the command has an unclosed quote or ends in a backslash",
            ),
            (
                "exec:",
                "exec: the command is missing (exec:COMMAND ARGUMENTS…)",
            ),
            (
                "exec:yuv420p:  ",
                "exec: the command is missing (exec:COMMAND ARGUMENTS…)",
            ),
            (
                "pipe:mjpeg:",
                "pipe:mjpeg: is missing the FIFO's path (pipe:mjpeg:/path/to/fifo)",
            ),
            (
                "pipe:h265:/tmp/x",
                "unknown pipe format `h265` (supported: yuv420p, mjpeg, h264)",
            ),
            (
                "fifo:/tmp/x",
                "unknown source `fifo:/tmp/x` (supported: test, camera:N, camera:/dev/videoN, \
                 pipe:yuv420p, pipe:mjpeg, pipe:h264, pipe:FORMAT:/path/to/fifo, exec:COMMAND, \
                 exec:FORMAT:COMMAND, rtsp://host/path, whip)",
            ),
        ] {
            assert_eq!(SourceSpec::parse(text), Err(message.to_owned()), "{text}");
        }
    }

    #[test]
    fn a_format_given_apart_applies_to_pipes_and_commands_only() {
        let command = SourceSpec::parse("exec:rpicam-vid -o -").unwrap();
        assert_eq!(
            command.with_format("yuv420p".parse().unwrap()),
            Ok(exec(&["rpicam-vid", "-o", "-"], PipeFormat::Yuv420p))
        );
        let fifo = SourceSpec::parse("pipe:mjpeg:/run/f").unwrap();
        assert_eq!(
            fifo.with_format(PipeFormat::Yuv420p).unwrap().to_string(),
            "pipe:yuv420p:/run/f"
        );
        assert_eq!(
            SourceSpec::Camera(CameraId::Index(0)).with_format(PipeFormat::Mjpeg),
            Err("a format applies to pipe: and exec: sources, not to `camera:0`".into())
        );
        assert_eq!("h264".parse::<PipeFormat>(), Ok(PipeFormat::H264));
        assert_eq!(
            "hevc".parse::<PipeFormat>(),
            Err("unknown pipe format `hevc` (supported: yuv420p, mjpeg, h264)".into())
        );
    }

    #[test]
    fn a_command_is_shown_with_its_password_masked() {
        let spec =
            SourceSpec::parse("exec:ffmpeg -i rtsp://admin:hunter2@cam/1 -f mjpeg -").unwrap();
        assert_eq!(
            spec.to_string(),
            "exec:ffmpeg -i rtsp://admin:***@cam/1 -f mjpeg -"
        );
        let spec = SourceSpec::parse(r#"exec:yuv420p:cam "http://c/s?password=x y""#).unwrap();
        assert_eq!(
            spec.to_string(),
            "exec:yuv420p:cam 'http://c/s?password=*** y'"
        );
    }

    #[test]
    fn rtsp_cameras_parse_and_print_back_with_the_password_masked() {
        for (text, shown) in [
            ("rtsp://cam.local/live", "rtsp://cam.local/live"),
            (
                "rtsp://admin:hunter2@10.0.0.5:554/Streaming/Channels/101#udp",
                "rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101#udp",
            ),
            (
                "rtsp://cam/cam/realmonitor?channel=1&subtype=0",
                "rtsp://cam/cam/realmonitor?channel=1&subtype=0",
            ),
        ] {
            let spec = SourceSpec::parse(text).unwrap();
            assert!(matches!(spec, SourceSpec::Rtsp(_)), "{text}");
            assert_eq!(spec.to_string(), shown);
            assert!(!format!("{spec:?}").contains("hunter2"));
        }
        assert_eq!(
            SourceSpec::parse("rtsps://u:secret@cam/live#udp"),
            Err(
                "`rtsps://u:***@cam/live#udp`: rtsps:// takes RTP in its TLS connection only \
                 (#tcp); over UDP it would need SRTP, which framecast does not speak"
                    .into()
            )
        );
        let rtsp = SourceSpec::parse("rtsp://cam/live").unwrap();
        assert_eq!(
            rtsp.with_format(PipeFormat::Mjpeg),
            Err("a format applies to pipe: and exec: sources, not to `rtsp://cam/live`".into())
        );
    }
}
