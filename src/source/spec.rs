//! What `--source` names: which kind of source and its address. Parsed once, then handed to
//! [`super::opener`]; the rest of the crate never parses source strings.

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in moving test pattern with a machine-readable timestamp strip.
    TestPattern,
    /// A V4L2 camera: `camera:N` or `camera:/dev/videoN`.
    Camera(CameraId),
    /// Frames on standard input: `pipe:yuv420p` or `pipe:mjpeg`.
    Pipe(PipeFormat),
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
}

impl std::fmt::Display for PipeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Yuv420p => "yuv420p",
            Self::Mjpeg => "mjpeg",
        })
    }
}

impl SourceSpec {
    /// Parses what `--source` (and later a config file's `source =`) takes.
    pub fn parse(text: &str) -> Result<Self, String> {
        const SUPPORTED: &str = "test, camera:N, camera:/dev/videoN, pipe:yuv420p, pipe:mjpeg";
        match text.split_once(':') {
            None if text == "test" => Ok(Self::TestPattern),
            Some(("camera", rest)) if rest.starts_with('/') => {
                Ok(Self::Camera(CameraId::Path(rest.into())))
            }
            Some(("camera", rest)) => rest
                .parse()
                .map(|n| Self::Camera(CameraId::Index(n)))
                .map_err(|_| format!("`{text}`: a camera is camera:N or camera:/dev/videoN")),
            Some(("pipe", "yuv420p")) => Ok(Self::Pipe(PipeFormat::Yuv420p)),
            Some(("pipe", "mjpeg")) => Ok(Self::Pipe(PipeFormat::Mjpeg)),
            Some(("pipe", other)) => Err(format!(
                "unknown pipe format `{other}` (supported: yuv420p, mjpeg)"
            )),
            _ => Err(format!("unknown source `{text}` (supported: {SUPPORTED})")),
        }
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TestPattern => f.write_str("test"),
            Self::Camera(CameraId::Index(n)) => write!(f, "camera:{n}"),
            Self::Camera(CameraId::Path(path)) => write!(f, "camera:{}", path.display()),
            Self::Pipe(format) => write!(f, "pipe:{format}"),
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
        ] {
            assert_eq!(SourceSpec::parse(text), Ok(spec.clone()));
            assert_eq!(spec.to_string(), text);
        }
        for bad in ["camera:x", "camera:", "pipe:h264", "rtsp://x", "", "tests"] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
