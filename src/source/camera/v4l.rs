//! The V4L2 backend, through nokhwa: finds a camera's device node, enumerates its formats and
//! hands over its capture buffers as a [`CameraDevice`]. Built only with the cargo feature
//! `camera`.
//!
//! nokhwa opens cameras by the N of `/dev/videoN`, so a path is resolved (symlinks such as
//! `/dev/v4l/by-id/...` included) to that number first. Its enumeration code can panic on
//! unusual driver answers (a zero step in a stepwise size range); those calls run under
//! `catch_unwind` so that a strange camera is an error, never a dead source thread.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use nokhwa::NokhwaError;
use nokhwa::backends::capture::V4LCaptureDevice;
use nokhwa::camera_traits::CaptureBackendTrait;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};

use super::capture::{CameraDevice, CameraSource, RawCameraFrame};
use super::format::{CameraFormatOffer, Choice, PixelKind, summarize};
use crate::frame::FrameSize;
use crate::source::spec::CameraId;
use crate::source::{Opener, Source, SourceError};

/// Where V4L2 device nodes live, and how their names start (`video0`, `video1`, ...).
const DEV_DIR: &str = "/dev";
const NODE_PREFIX: &str = "video";
/// Where the kernel publishes each node's name (`/sys/class/video4linux/videoN/name`).
const SYSFS_V4L_DIR: &str = "/sys/class/video4linux";
/// Every format nokhwa knows. Opening needs a format to start from; accepting any of them
/// means opening never fails for want of one, and the choice is made afterwards, by
/// [`super::choose_format`], among everything the camera offers.
const ANY_FORMAT: &[FrameFormat] = &[
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::GRAY,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];
/// `ENODEV` as `std::io::Error` prints it: the device went away under an open handle. nokhwa
/// passes errors on as text, so this is the only way to tell an unplugged camera.
const ENODEV_TEXT: &str = "os error 19";

pub fn opener(id: &CameraId, size: FrameSize, fps: u32) -> Box<dyn Opener> {
    Box::new(V4lOpener {
        id: id.clone(),
        want: size,
        fps,
    })
}

struct V4lOpener {
    id: CameraId,
    want: FrameSize,
    fps: u32,
}

impl Opener for V4lOpener {
    fn describe(&self) -> String {
        match &self.id {
            CameraId::Index(n) => format!("camera:{n} ({DEV_DIR}/{NODE_PREFIX}{n})"),
            CameraId::Path(path) => format!("camera:{}", path.display()),
        }
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        let (number, path) = device_node(&self.id)?;
        let camera = V4lCamera::open(number, path)?;
        Ok(Box::new(CameraSource::open(camera, self.want, self.fps)?))
    }
}

/// The node number and path for `id`: `NotFound` when there is no such node (yet).
fn device_node(id: &CameraId) -> Result<(u32, PathBuf), SourceError> {
    match id {
        CameraId::Index(number) => {
            let path = node_path(*number);
            if path.exists() {
                Ok((*number, path))
            } else {
                Err(SourceError::NotFound(format!(
                    "no camera at {}",
                    path.display()
                )))
            }
        }
        CameraId::Path(path) => {
            let Ok(real) = std::fs::canonicalize(path) else {
                return Err(SourceError::NotFound(format!(
                    "no camera at {}",
                    path.display()
                )));
            };
            let number = (real.parent() == Some(Path::new(DEV_DIR)))
                .then(|| real.file_name()?.to_str().and_then(node_number))
                .flatten();
            match number {
                Some(number) => Ok((number, path.clone())),
                None => Err(SourceError::Unsupported(format!(
                    "{} is not a V4L2 device node ({DEV_DIR}/{NODE_PREFIX}N)",
                    path.display()
                ))),
            }
        }
    }
}

fn node_path(number: u32) -> PathBuf {
    Path::new(DEV_DIR).join(format!("{NODE_PREFIX}{number}"))
}

/// N for a node named `videoN`; `None` for any other name.
fn node_number(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_prefix(NODE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An open V4L2 camera.
struct V4lCamera {
    path: PathBuf,
    name: String,
    device: V4LCaptureDevice<'static>,
    /// Holds a frame nokhwa hands over by value rather than borrowed from its buffers.
    owned: Vec<u8>,
}

impl V4lCamera {
    fn open(number: u32, path: PathBuf) -> Result<Self, SourceError> {
        let request = RequestedFormat::with_formats(RequestedFormatType::None, ANY_FORMAT);
        let device = guarded(&path, "cannot open", || {
            V4LCaptureDevice::new(&CameraIndex::Index(number), request)
        })?;
        let name = device.camera_info().human_name();
        Ok(Self {
            path,
            name,
            device,
            owned: Vec::new(),
        })
    }
}

impl CameraDevice for V4lCamera {
    fn describe(&self) -> String {
        if self.name.is_empty() {
            self.path.display().to_string()
        } else {
            format!("{} ({})", self.path.display(), self.name)
        }
    }

    fn offers(&mut self) -> Result<Vec<CameraFormatOffer>, SourceError> {
        let path = self.path.clone();
        let device = &mut self.device;
        let formats = guarded(&path, "cannot list the formats of", || {
            device.compatible_fourcc()
        })?;
        let mut offers = Vec::new();
        for format in formats {
            let sizes = guarded(&path, "cannot list the sizes of", || {
                device.compatible_list_by_resolution(format)
            });
            let sizes = match sizes {
                Ok(sizes) => sizes,
                Err(error) => {
                    // One format the driver cannot describe need not hide the others.
                    tracing::debug!(%error, %format, "skipping a camera format");
                    continue;
                }
            };
            let kind = pixel_kind(format);
            for (size, rates) in sizes {
                if rates.is_empty() {
                    offers.push(CameraFormatOffer::new(kind, size.width(), size.height(), 0));
                }
                for fps in rates {
                    offers.push(CameraFormatOffer::new(
                        kind,
                        size.width(),
                        size.height(),
                        fps,
                    ));
                }
            }
        }
        // nokhwa reports sizes in hash order: sort for stable choices and listings.
        offers.sort_by_key(|o| {
            let area = u64::from(o.width) * u64::from(o.height);
            (o.kind, area, o.width, o.height, std::cmp::Reverse(o.fps))
        });
        offers.dedup();
        Ok(offers)
    }

    fn open_stream(&mut self, choice: &Choice) -> Result<(), SourceError> {
        let format = match choice.kind {
            PixelKind::Mjpeg => FrameFormat::MJPEG,
            PixelKind::Yuyv => FrameFormat::YUYV,
            PixelKind::Nv12 => FrameFormat::NV12,
            PixelKind::I420 | PixelKind::Other => {
                return Err(SourceError::Failed(format!(
                    "{}: the V4L2 backend cannot capture {}",
                    self.path.display(),
                    choice.kind
                )));
            }
        };
        let wanted = CameraFormat::new(
            Resolution::new(choice.size.width, choice.size.height),
            format,
            choice.fps,
        );
        let path = self.path.clone();
        let device = &mut self.device;
        guarded(&path, &format!("cannot set {choice} on"), || {
            device.set_camera_format(wanted)
        })?;
        guarded(&path, "cannot start capture on", || device.open_stream())
    }

    fn frame(&mut self) -> Result<RawCameraFrame<'_>, SourceError> {
        let format = self.device.camera_format();
        let data: &[u8] = match self.device.frame_raw() {
            Ok(Cow::Borrowed(data)) => data,
            Ok(Cow::Owned(data)) => {
                self.owned = data;
                &self.owned
            }
            Err(error) => return Err(device_error(&self.path, "cannot read", error)),
        };
        let kind = pixel_kind(format.format());
        let (width, height) = (format.width(), format.height());
        // nokhwa does not pass on the driver's bytes-per-line; see `infer_stride`.
        let stride_bytes = match kind {
            PixelKind::Yuyv => infer_stride(data.len(), 2 * width as usize, height as usize),
            PixelKind::Nv12 => infer_stride(data.len(), width as usize, height as usize * 3 / 2),
            _ => width as usize,
        };
        Ok(RawCameraFrame {
            kind,
            width,
            height,
            stride_bytes,
            data,
        })
    }
}

fn pixel_kind(format: FrameFormat) -> PixelKind {
    match format {
        FrameFormat::MJPEG => PixelKind::Mjpeg,
        FrameFormat::YUYV => PixelKind::Yuyv,
        FrameFormat::NV12 => PixelKind::Nv12,
        FrameFormat::GRAY | FrameFormat::RAWRGB | FrameFormat::RAWBGR => PixelKind::Other,
    }
}

/// Bytes per row of an uncompressed buffer of `len_bytes` holding `rows` rows of at least
/// `row_bytes`. Drivers size such buffers as bytes-per-line × rows, so a length that divides
/// into rows a little longer than the pixels reveals row padding; anything else is taken as
/// unpadded rows (a short buffer is then reported by the conversion).
fn infer_stride(len_bytes: usize, row_bytes: usize, rows: usize) -> usize {
    if rows > 0 && len_bytes.is_multiple_of(rows) {
        let stride = len_bytes / rows;
        if stride >= row_bytes && stride < 2 * row_bytes {
            return stride;
        }
    }
    row_bytes
}

/// Runs a nokhwa call, turning its errors and panics into source errors.
fn guarded<T>(
    path: &Path,
    doing: &str,
    call: impl FnOnce() -> Result<T, NokhwaError>,
) -> Result<T, SourceError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(device_error(path, doing, error)),
        Err(_) => Err(SourceError::Failed(format!(
            "{doing} {}: the V4L2 backend failed unexpectedly",
            path.display()
        ))),
    }
}

/// `NotFound` when the device has gone (unplugged), so that it is looked for again;
/// otherwise `Failed`, so that it is reopened.
fn device_error(path: &Path, doing: &str, error: impl std::fmt::Display) -> SourceError {
    let message = error.to_string();
    if message.contains(ENODEV_TEXT) || !path.exists() {
        SourceError::NotFound(format!(
            "{} is gone (unplugged?): {message}",
            path.display()
        ))
    } else {
        SourceError::Failed(format!("{doing} {}: {message}", path.display()))
    }
}

/// Every `/dev/videoN`, by N.
fn video_nodes() -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(DEV_DIR) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u32, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let number = node_number(entry.file_name().to_str()?)?;
            Some((number, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes
}

pub fn list_sources() -> String {
    let nodes = video_nodes();
    if nodes.is_empty() {
        return format!("no cameras found (no {DEV_DIR}/{NODE_PREFIX}N devices)\n");
    }
    let mut out = String::new();
    for (number, path) in nodes {
        let name_file = Path::new(SYSFS_V4L_DIR)
            .join(format!("{NODE_PREFIX}{number}"))
            .join("name");
        let name = std::fs::read_to_string(name_file).unwrap_or_default();
        let _ = writeln!(
            out,
            "camera:{number}  {}  \"{}\"",
            path.display(),
            name.trim()
        );
        match V4lCamera::open(number, path).and_then(|mut camera| camera.offers()) {
            Ok(offers) if offers.is_empty() => out.push_str("  no video formats\n"),
            Ok(offers) => {
                for line in summarize(&offers) {
                    let _ = writeln!(out, "  {line}");
                }
            }
            Err(error) => {
                let _ = writeln!(out, "  cannot read its formats: {error}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_numbers() {
        for (name, expect) in [
            ("video0", Some(0)),
            ("video12", Some(12)),
            ("video", None),
            ("video-x", None),
            ("video+1", None),
            ("video1a", None),
            ("media0", None),
            ("video99999999999", None),
        ] {
            assert_eq!(node_number(name), expect, "{name}");
        }
    }

    #[test]
    fn strides() {
        // Unpadded YUYV 640x480, and rows padded to 1344 bytes.
        assert_eq!(infer_stride(640 * 2 * 480, 1280, 480), 1280);
        assert_eq!(infer_stride(1344 * 480, 1280, 480), 1344);
        // A length that does not divide into rows, or rows twice as long: unpadded.
        assert_eq!(infer_stride(1280 * 480 + 100, 1280, 480), 1280);
        assert_eq!(infer_stride(2560 * 480, 1280, 480), 1280);
        // Short: the conversion will say so.
        assert_eq!(infer_stride(1000, 1280, 480), 1280);
        assert_eq!(infer_stride(0, 1280, 0), 1280);
    }

    #[test]
    fn a_missing_camera_is_not_found() {
        let id = CameraId::Index(4_000_000_000);
        let Err(SourceError::NotFound(message)) = device_node(&id) else {
            panic!()
        };
        assert_eq!(message, "no camera at /dev/video4000000000");
        let id = CameraId::Path("/dev/no-such-camera".into());
        assert!(matches!(device_node(&id), Err(SourceError::NotFound(_))));
        let mut opener = opener(
            &CameraId::Index(4_000_000_000),
            FrameSize::new(640, 480),
            30,
        );
        assert!(matches!(opener.open(), Err(SourceError::NotFound(_))));
    }

    #[test]
    fn a_path_that_is_not_a_video_node_is_unsupported() {
        let id = CameraId::Path("/dev/null".into());
        let Err(SourceError::Unsupported(message)) = device_node(&id) else {
            panic!()
        };
        assert!(message.contains("not a V4L2 device node"), "{message}");
    }

    #[test]
    fn unplugged_is_not_found_and_other_errors_reopen() {
        let here = Path::new("/");
        let gone = device_error(
            here,
            "cannot read",
            "VIDIOC_DQBUF: No such device (os error 19)",
        );
        assert!(matches!(gone, SourceError::NotFound(_)), "{gone:?}");
        let missing = device_error(Path::new("/dev/no-such-camera"), "cannot read", "EIO");
        assert!(matches!(missing, SourceError::NotFound(_)), "{missing:?}");
        let busy = device_error(here, "cannot open", "Device or resource busy (os error 16)");
        assert!(matches!(busy, SourceError::Failed(_)), "{busy:?}");
    }

    #[test]
    fn listing_never_fails() {
        let text = list_sources();
        assert!(text.ends_with('\n'));
        if video_nodes().is_empty() {
            assert!(text.starts_with("no cameras found"), "{text}");
        }
    }
}
