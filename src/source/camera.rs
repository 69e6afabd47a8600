//! Cameras: `--source camera:N` / `camera:/dev/videoN`, and `--list-sources`.
//!
//! | module | owns |
//! | --- | --- |
//! | [`format`] | which of a camera's formats to capture in (pure, no device) |
//! | [`capture`] | the [`CameraDevice`] seam and [`CameraSource`]: MJPEG passthrough, conversion to I420, rate keeping |
//! | `v4l` | the V4L2 device through nokhwa; only with the cargo feature `camera` |
//!
//! Without the feature everything but the V4L2 backend still builds (and is tested), and
//! asking for a camera fails with a message that names the feature.

pub mod capture;
pub mod format;
#[cfg(feature = "camera")]
mod v4l;

pub use capture::{CameraDevice, CameraSource, RawCameraFrame, frame_from_raw};
pub use format::{CameraFormatOffer, Choice, PixelKind, choose_format};

use crate::frame::FrameSize;
use crate::source::Opener;
use crate::source::spec::CameraId;

/// What a build without the cargo feature `camera` says when asked for a camera.
pub const NO_CAMERA_SUPPORT: &str =
    "framecast was built without camera support (cargo feature `camera`)";

/// An opener for the camera `id`, asked for `size` at `fps`. Nothing is opened yet: a camera
/// that is not there is `SourceError::NotFound` at each `open`, so the supervisor shows a
/// placeholder and keeps looking.
pub fn opener(id: &CameraId, size: FrameSize, fps: u32) -> Box<dyn Opener> {
    #[cfg(feature = "camera")]
    {
        v4l::opener(id, size, fps)
    }
    #[cfg(not(feature = "camera"))]
    {
        let _ = (size, fps);
        Box::new(unavailable::Unavailable { id: id.clone() })
    }
}

/// The text `--list-sources` prints: each camera with its formats, sizes and rates, or a line
/// saying there are none.
pub fn list_sources() -> String {
    #[cfg(feature = "camera")]
    {
        v4l::list_sources()
    }
    #[cfg(not(feature = "camera"))]
    {
        format!("{NO_CAMERA_SUPPORT}\n")
    }
}

#[cfg(not(feature = "camera"))]
mod unavailable {
    use super::NO_CAMERA_SUPPORT;
    use crate::source::spec::CameraId;
    use crate::source::{Opener, Source, SourceError};

    pub(super) struct Unavailable {
        pub(super) id: CameraId,
    }

    impl Opener for Unavailable {
        fn describe(&self) -> String {
            match &self.id {
                CameraId::Index(n) => format!("camera:{n}"),
                CameraId::Path(path) => format!("camera:{}", path.display()),
            }
        }

        fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
            Err(SourceError::Unsupported(NO_CAMERA_SUPPORT.into()))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn asking_for_a_camera_says_the_feature_is_off() {
            let mut opener = Unavailable {
                id: CameraId::Index(0),
            };
            assert_eq!(opener.describe(), "camera:0");
            let Err(SourceError::Unsupported(message)) = opener.open() else {
                panic!()
            };
            assert!(message.contains("cargo feature `camera`"), "{message}");
        }
    }
}
