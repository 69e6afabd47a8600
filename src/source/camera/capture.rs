//! A camera as a frame [`Source`], whatever drives the device: [`CameraDevice`] is the seam
//! between the V4L2 backend and the logic here (format choice, rate keeping, conversion), so
//! that all of it runs in tests against a scripted device.
//!
//! Per frame: the camera's MJPEG is cut out of its capture buffer, validated and passed on as
//! it is (with the standard Huffman tables added when the camera leaves them out); YUYV, NV12
//! and I420 are converted into a fresh I420 buffer. A frame that is broken or of the wrong
//! length is one bad frame; a device error ends the source so that the supervisor reopens it.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::format::{CameraFormatOffer, Choice, PixelKind, choose_format, summarize};
use crate::frame::{Frame, FrameSize};
use crate::media::mjpeg_stream::{MjpegSplitter, Subsampling};
use crate::picture::convert::{self, YuvPlanes};
use crate::source::{Source, SourceError, pipe};

/// Bytes of a capture buffer handed to the JPEG splitter at a time. Drivers size MJPEG buffers
/// for the worst case (often width × height × 2, megabytes), while a 720p JPEG is 50–200 KB:
/// feeding it in steps copies about the JPEG plus one step, not the whole buffer.
const JPEG_SCAN_STEP_BYTES: usize = 64 * 1024;

/// One captured buffer as the device delivered it, borrowed until the next capture.
#[derive(Debug, Clone, Copy)]
pub struct RawCameraFrame<'a> {
    pub kind: PixelKind,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row of the (first) plane to the next; unused for MJPEG.
    pub stride_bytes: usize,
    /// The whole buffer; for MJPEG it may run on past the JPEG's end.
    pub data: &'a [u8],
}

/// A capture device: what it offers, how to start it, and its next buffer.
pub trait CameraDevice: Send {
    /// Which device, for logs and `/status`, e.g. `/dev/video0 (HD Webcam)`.
    fn describe(&self) -> String;
    /// Every format, size and rate the device offers.
    fn offers(&mut self) -> Result<Vec<CameraFormatOffer>, SourceError>;
    /// Sets the device to `choice` and starts capturing.
    fn open_stream(&mut self, choice: &Choice) -> Result<(), SourceError>;
    /// Blocks until the next buffer. Errors are classified by the device: `NotFound` when it
    /// is gone, `Failed` when it must be reopened, `BadFrame` for one unusable buffer.
    fn frame(&mut self) -> Result<RawCameraFrame<'_>, SourceError>;
}

/// Frames from a [`CameraDevice`] in the format [`choose_format`] picked.
pub struct CameraSource<D> {
    device: D,
    choice: Choice,
    /// Drops frames when the camera runs faster than the configured rate.
    pacer: Option<Pacer>,
    started_at: Instant,
}

impl<D: CameraDevice> CameraSource<D> {
    /// Chooses the format for `want` at `fps` among what `device` offers and starts capture.
    pub fn open(mut device: D, want: FrameSize, fps: u32) -> Result<Self, SourceError> {
        let offers = device.offers()?;
        let Some(choice) = choose_format(&offers, want, fps) else {
            let offered = summarize(&offers);
            return Err(SourceError::Failed(format!(
                "{} offers no format framecast can capture ({})",
                device.describe(),
                if offered.is_empty() {
                    "it offers none".to_owned()
                } else {
                    offered.join("; ")
                }
            )));
        };
        if choice.size != want {
            tracing::warn!(
                camera = %device.describe(), %want, got = %choice.size,
                "the camera does not offer the requested size; using the closest"
            );
        }
        device.open_stream(&choice)?;
        tracing::info!(camera = %device.describe(), format = %choice, "camera capturing");
        Ok(Self {
            device,
            choice,
            pacer: (choice.fps > fps).then(|| Pacer::new(fps, choice.fps)),
            started_at: Instant::now(),
        })
    }

    pub fn choice(&self) -> Choice {
        self.choice
    }
}

impl<D: CameraDevice> Source for CameraSource<D> {
    fn describe(&self) -> String {
        format!("camera {} {}", self.device.describe(), self.choice)
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            let raw = self.device.frame()?;
            let at = self.started_at.elapsed();
            // Dropped before conversion, so skipped frames cost nothing but the capture.
            if self.pacer.as_mut().is_none_or(|pacer| pacer.keep(at)) {
                return frame_from_raw(&raw);
            }
        }
    }
}

/// One captured buffer as a frame stamped now: MJPEG passed through, the rest as I420.
pub fn frame_from_raw(raw: &RawCameraFrame<'_>) -> Result<Frame, SourceError> {
    let captured_at = SystemTime::now();
    if raw.kind == PixelKind::Mjpeg {
        let mut frame = pipe::jpeg_frame(jpeg_in_buffer(raw.data)?)?;
        frame.captured_at = captured_at;
        return Ok(frame);
    }
    let size = FrameSize::new(raw.width, raw.height);
    let mut i420 = vec![0u8; size.i420_len()];
    let converted = match raw.kind {
        PixelKind::Yuyv => convert::yuyv_to_i420(raw.data, size, raw.stride_bytes, &mut i420),
        PixelKind::Nv12 => convert::nv12_to_i420(raw.data, size, raw.stride_bytes, &mut i420),
        PixelKind::I420 => i420_to_i420(raw, size, &mut i420),
        PixelKind::Mjpeg | PixelKind::Other => {
            return Err(SourceError::Failed(format!(
                "the camera delivered {} frames, which framecast cannot convert",
                raw.kind
            )));
        }
    };
    converted.map_err(|e| SourceError::BadFrame(format!("{} frame: {e}", raw.kind)))?;
    Ok(Frame::from_i420(0, 0, captured_at, size, Bytes::from(i420)))
}

/// Planar 4:2:0 with padded rows: chroma rows are half the luma stride (V4L2 `YU12`).
fn i420_to_i420(
    raw: &RawCameraFrame<'_>,
    size: FrameSize,
    dst: &mut [u8],
) -> Result<(), convert::ConvertError> {
    let y_len = raw.stride_bytes.saturating_mul(size.height as usize);
    let uv_stride = raw.stride_bytes / 2;
    let uv_len = uv_stride.saturating_mul(size.height as usize / 2);
    // Short buffers give short (or empty) planes, which the conversion reports.
    let plane = |start: usize, len: usize| {
        let start = start.min(raw.data.len());
        &raw.data[start..start.saturating_add(len).min(raw.data.len())]
    };
    let planes = YuvPlanes {
        subsampling: Subsampling::S420,
        y: plane(0, y_len),
        y_stride: raw.stride_bytes,
        u: plane(y_len, uv_len),
        v: plane(y_len.saturating_add(uv_len), uv_len),
        uv_stride,
    };
    convert::yuv_planes_to_i420(&planes, size, dst)
}

/// The JPEG at the start of a capture buffer, which may continue past the JPEG's end (with
/// zeros, or leftovers of an earlier frame). A JPEG that does not end inside the buffer is a
/// bad frame.
fn jpeg_in_buffer(data: &[u8]) -> Result<Bytes, SourceError> {
    // The buffer bounds the frame already; the splitter's own limit only has to not get in the way.
    let mut splitter = MjpegSplitter::new(data.len().max(1));
    for step in data.chunks(JPEG_SCAN_STEP_BYTES) {
        splitter.push(step);
        match splitter.next_frame() {
            Some(Ok(jpeg)) => return Ok(jpeg),
            Some(Err(error)) => return Err(SourceError::BadFrame(format!("camera JPEG: {error}"))),
            None => {}
        }
    }
    Err(SourceError::BadFrame(if splitter.buffered_bytes() > 0 {
        format!(
            "camera JPEG cut short: no end of image in a buffer of {} bytes",
            data.len()
        )
    } else {
        format!("no JPEG in a camera buffer of {} bytes", data.len())
    }))
}

/// Keeps frames at a target rate from a faster camera: a frame is kept when it is at most half
/// a camera interval early for the next due time, and due times advance by the target
/// interval, so the kept rate averages the target however the frames jitter.
#[derive(Debug, Clone)]
struct Pacer {
    interval: Duration,
    /// How early a frame may be and still count for its due time.
    slack: Duration,
    next_due: Duration,
}

impl Pacer {
    fn new(fps: u32, camera_fps: u32) -> Self {
        let interval = Duration::from_secs(1) / fps.max(1);
        Self {
            interval,
            slack: Duration::from_secs(1) / camera_fps.max(1) / 2,
            next_due: Duration::ZERO,
        }
    }

    /// Whether to keep a frame that arrived `at` since capture started.
    fn keep(&mut self, at: Duration) -> bool {
        if at + self.slack < self.next_due {
            return false;
        }
        self.next_due = if at > self.next_due + self.interval {
            // Far behind (a stall, or a camera slower than it said): start a new schedule
            // rather than keeping every frame to catch up.
            at + self.interval
        } else {
            self.next_due + self.interval
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    use crate::frame::Pixels;

    const SIZE: FrameSize = FrameSize::new(64, 48);

    /// One scripted capture: a buffer (its format, stride and bytes) or an error.
    type Capture = Result<(PixelKind, usize, Vec<u8>), SourceError>;

    /// A scripted device: fixed offers, then a queue of captures.
    struct FakeDevice {
        offers: Vec<CameraFormatOffer>,
        opened: Option<Choice>,
        script: VecDeque<Capture>,
        current: Vec<u8>,
    }

    impl FakeDevice {
        fn new(offers: Vec<CameraFormatOffer>) -> Self {
            Self {
                offers,
                opened: None,
                script: VecDeque::new(),
                current: Vec::new(),
            }
        }

        fn then(mut self, kind: PixelKind, stride_bytes: usize, data: Vec<u8>) -> Self {
            self.script.push_back(Ok((kind, stride_bytes, data)));
            self
        }

        fn then_fail(mut self, error: SourceError) -> Self {
            self.script.push_back(Err(error));
            self
        }
    }

    impl CameraDevice for FakeDevice {
        fn describe(&self) -> String {
            "fake".into()
        }

        fn offers(&mut self) -> Result<Vec<CameraFormatOffer>, SourceError> {
            Ok(self.offers.clone())
        }

        fn open_stream(&mut self, choice: &Choice) -> Result<(), SourceError> {
            self.opened = Some(*choice);
            Ok(())
        }

        fn frame(&mut self) -> Result<RawCameraFrame<'_>, SourceError> {
            let Some(choice) = self.opened else {
                return Err(SourceError::Failed("not streaming".into()));
            };
            let (kind, stride_bytes, data) = self
                .script
                .pop_front()
                .unwrap_or_else(|| Err(SourceError::Ended("end of script".into())))?;
            self.current = data;
            Ok(RawCameraFrame {
                kind,
                width: choice.size.width,
                height: choice.size.height,
                stride_bytes,
                data: &self.current,
            })
        }
    }

    /// A JPEG of a noisy picture, so that most of it is entropy-coded data.
    fn jpeg(size: FrameSize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        let pixels: Vec<u8> = (0..size.i420_len())
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        crate::encode::jpeg::test_jpeg(size, &pixels)
    }

    /// A capture buffer as a driver hands it over: the JPEG, then the rest of the buffer.
    fn in_buffer(jpeg: &[u8], tail: &[u8], len: usize) -> Vec<u8> {
        let mut buffer = jpeg.to_vec();
        buffer.extend_from_slice(tail);
        buffer.resize(len.max(buffer.len()), 0);
        buffer
    }

    /// YUYV with luma `y` at every pixel, U 100 and V 200, rows `stride` bytes apart.
    fn yuyv(size: FrameSize, stride: usize, y: u8) -> Vec<u8> {
        let mut row = [y, 100, y, 200].repeat(size.width as usize / 2);
        row.resize(stride, 0xEE);
        row.repeat(size.height as usize)
    }

    fn kinds(results: &[Result<Frame, SourceError>]) -> Vec<&'static str> {
        results
            .iter()
            .map(|r| match r {
                Ok(Frame {
                    pixels: Pixels::Jpeg(_),
                    ..
                }) => "jpeg",
                Ok(_) => "i420",
                Err(SourceError::BadFrame(_)) => "bad",
                Err(SourceError::Failed(_)) => "failed",
                Err(SourceError::NotFound(_)) => "not found",
                Err(SourceError::Ended(_) | SourceError::Finished(_)) => "ended",
                Err(SourceError::Unsupported(_)) => "unsupported",
            })
            .collect()
    }

    fn run(source: &mut CameraSource<FakeDevice>, count: usize) -> Vec<Result<Frame, SourceError>> {
        (0..count).map(|_| source.next_frame()).collect()
    }

    #[test]
    fn mjpeg_passes_through_and_broken_buffers_are_bad_frames() {
        let good = jpeg(SIZE, 90);
        let truncated = good[..good.len() / 2].to_vec();
        // A buffer whose JPEG ends early, followed by leftovers of an older, longer frame.
        let stale = in_buffer(&good, &good[good.len() / 3..], 200_000);
        let device = FakeDevice::new(vec![
            CameraFormatOffer::new(PixelKind::Yuyv, 64, 48, 30),
            CameraFormatOffer::new(PixelKind::Mjpeg, 64, 48, 30),
        ])
        .then(PixelKind::Mjpeg, 0, in_buffer(&good, &[], 200_000))
        .then(PixelKind::Mjpeg, 0, in_buffer(&truncated, &[], 200_000))
        .then(PixelKind::Mjpeg, 0, stale)
        .then(PixelKind::Mjpeg, 0, vec![0; 4096])
        .then(PixelKind::Mjpeg, 0, in_buffer(&good[..300], &[], 200_000))
        .then(PixelKind::Mjpeg, 0, good.clone())
        .then_fail(SourceError::Failed("VIDIOC_DQBUF: I/O error".into()));
        let mut source = CameraSource::open(device, SIZE, 30).unwrap();
        assert!(source.choice().passthrough());
        assert_eq!(source.describe(), "camera fake MJPEG 64x48@30");
        let results = run(&mut source, 7);
        assert_eq!(
            kinds(&results),
            ["jpeg", "bad", "jpeg", "bad", "bad", "jpeg", "failed"]
        );
        for result in [&results[0], &results[2], &results[5]] {
            let frame = result.as_ref().unwrap();
            assert_eq!(frame.size, SIZE);
            assert!(matches!(&frame.pixels, Pixels::Jpeg(j) if j[..] == good[..]));
        }
        let Err(SourceError::BadFrame(message)) = &results[1] else {
            panic!()
        };
        assert!(message.contains("cut short"), "{message}");
    }

    #[test]
    fn yuyv_is_converted_and_a_short_buffer_is_a_bad_frame() {
        let stride = 64 * 2 + 32; // padded rows
        let device = FakeDevice::new(vec![CameraFormatOffer::new(PixelKind::Yuyv, 64, 48, 30)])
            .then(PixelKind::Yuyv, stride, yuyv(SIZE, stride, 50))
            .then(
                PixelKind::Yuyv,
                stride,
                yuyv(SIZE, stride, 60)[..stride * 47].to_vec(),
            )
            .then(PixelKind::Yuyv, stride, yuyv(SIZE, stride, 70))
            .then_fail(SourceError::NotFound("/dev/video0 is gone".into()));
        let mut source = CameraSource::open(device, SIZE, 30).unwrap();
        let results = run(&mut source, 4);
        assert_eq!(kinds(&results), ["i420", "bad", "i420", "not found"]);
        let frame = results[2].as_ref().unwrap();
        let i420 = frame.i420().unwrap();
        assert!(i420.y().iter().all(|&y| y == 70));
        assert!(i420.u().iter().all(|&u| u == 100));
        assert!(i420.v().iter().all(|&v| v == 200));
    }

    #[test]
    fn nv12_and_i420_are_converted() {
        let (w, h) = (64usize, 48usize);
        let stride = 80;
        let mut nv12 = vec![30u8; stride * h];
        for _ in 0..h / 2 {
            let mut row = [110u8, 220].repeat(w / 2);
            row.resize(stride, 0);
            nv12.extend_from_slice(&row);
        }
        let mut yu12 = vec![40u8; stride * h];
        yu12.extend(vec![120u8; stride / 2 * h / 2]);
        yu12.extend(vec![130u8; stride / 2 * h / 2]);
        let device = FakeDevice::new(vec![CameraFormatOffer::new(PixelKind::Nv12, 64, 48, 30)])
            .then(PixelKind::Nv12, stride, nv12.clone())
            .then(PixelKind::I420, stride, yu12.clone())
            // Only the luma plane; the row padding of a last row may be missing, though.
            .then(PixelKind::Nv12, stride, nv12[..stride * h].to_vec())
            .then(
                PixelKind::Nv12,
                stride,
                nv12[..nv12.len() - (stride - w)].to_vec(),
            )
            .then(PixelKind::I420, stride, yu12[..100].to_vec());
        let mut source = CameraSource::open(device, SIZE, 30).unwrap();
        let results = run(&mut source, 6);
        assert_eq!(
            kinds(&results),
            ["i420", "i420", "bad", "i420", "bad", "ended"]
        );
        let nv12 = results[0].as_ref().unwrap().i420().unwrap();
        assert!(nv12.y().iter().all(|&y| y == 30));
        assert!(nv12.u().iter().all(|&u| u == 110) && nv12.v().iter().all(|&v| v == 220));
        let yu12 = results[1].as_ref().unwrap().i420().unwrap();
        assert!(yu12.y().iter().all(|&y| y == 40));
        assert!(yu12.u().iter().all(|&u| u == 120) && yu12.v().iter().all(|&v| v == 130));
    }

    #[test]
    fn a_camera_with_nothing_usable_fails_to_open_and_says_what_it_offers() {
        let device = FakeDevice::new(vec![CameraFormatOffer::new(PixelKind::Other, 640, 480, 30)]);
        let Err(SourceError::Failed(message)) = CameraSource::open(device, SIZE, 30) else {
            panic!()
        };
        assert!(message.contains("other 640x480@30"), "{message}");
        let device = FakeDevice::new(vec![]);
        let Err(SourceError::Failed(message)) = CameraSource::open(device, SIZE, 30) else {
            panic!()
        };
        assert!(message.contains("offers none"), "{message}");
    }

    #[test]
    fn a_faster_camera_is_paced_to_the_configured_rate() {
        let device = FakeDevice::new(vec![CameraFormatOffer::new(PixelKind::Mjpeg, 64, 48, 60)]);
        let source = CameraSource::open(device, SIZE, 30).unwrap();
        assert!(source.pacer.is_some());
        let device = FakeDevice::new(vec![CameraFormatOffer::new(PixelKind::Mjpeg, 64, 48, 30)]);
        let source = CameraSource::open(device, SIZE, 30).unwrap();
        assert!(source.pacer.is_none());
    }

    /// How many of `count` frames at `camera_fps` (with `jitter_ms` alternating early and late)
    /// a pacer for `fps` keeps.
    fn kept(fps: u32, camera_fps: u32, count: u32, jitter_ms: i64) -> usize {
        let mut pacer = Pacer::new(fps, camera_fps);
        (0..count)
            .filter(|&i| {
                let nominal = i64::from(i) * 1_000_000 / i64::from(camera_fps);
                let jitter = if i % 2 == 0 { jitter_ms } else { -jitter_ms } * 1_000;
                let at = Duration::from_micros((nominal + jitter).max(0) as u64);
                pacer.keep(at)
            })
            .count()
    }

    #[test]
    fn pacing_keeps_the_target_rate() {
        for (fps, camera_fps, jitter_ms, expect) in [
            (30, 60, 0, 300..=300),
            (30, 60, 4, 299..=301),
            (25, 30, 0, 250..=251),
            (25, 30, 6, 249..=251),
            (15, 60, 3, 150..=151),
            (30, 30, 5, 300..=300),
        ] {
            // 10 s of camera frames.
            let got = kept(fps, camera_fps, camera_fps * 10, jitter_ms);
            assert!(
                expect.contains(&got),
                "{camera_fps} → {fps} fps, jitter {jitter_ms} ms: kept {got}"
            );
        }
    }

    #[test]
    fn pacing_does_not_burst_after_a_stall() {
        let mut pacer = Pacer::new(30, 60);
        let ms = Duration::from_millis;
        assert!(pacer.keep(ms(0)));
        // Nothing for two seconds, then frames resume at 60 fps: half are kept from there.
        let kept = (0..60)
            .filter(|i| pacer.keep(ms(2_000) + ms(i * 50 / 3)))
            .count();
        assert!((30..=31).contains(&kept), "{kept}");
    }
}
