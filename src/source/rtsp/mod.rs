//! `rtsp://` and `rtsps://` sources: an IP camera's H.264 stream, received with the `retina`
//! RTSP client (through [`tls_tunnel`] over TLS) and handed on as the camera encoded it
//! ([`Pixels::H264`]), never decoded here.
//!
//! The client is async; each source owns a small current-thread tokio runtime and drives it
//! from [`Source::next_frame`] (`block_on`), on the supervisor's reader thread. Nothing is
//! read from the camera while nobody asks for a frame, so TCP's flow control is the bounded
//! buffer between the camera and the supervisor, and no thread or channel is added. The
//! connection (DESCRIBE, SETUP, PLAY) is made in the first `next_frame`, not in
//! [`Opener::open`], so that the supervisor goes on publishing placeholders meanwhile.
//!
//! What is refused, for good ([`SourceError::Unsupported`]): a stream whose video is not
//! H.264 (H.265 among them), and a camera that sends B-frames (framecast keeps decode order
//! as presentation order). Wrong or missing credentials (401) and other refusals are
//! [`SourceError::Failed`], retried with back-off; a camera that cannot be reached is
//! [`SourceError::NotFound`]; a connection lost while playing is [`SourceError::Ended`].
//! Messages never hold the password: it is not in the URL the client gets, and everything
//! shown passes [`mask_secrets`].

mod access_unit;
mod address;
mod timing;
mod tls_tunnel;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt as _;
use retina::client::{
    Demuxed, PlayOptions, Session, SessionGroup, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoFrame, VideoParametersCodec};

use crate::frame::{Frame, FrameSize, H264Unit, Pixels};
use crate::media::h264::parse_sps;
use crate::source::redact::mask_secrets;
use crate::source::{Opener, Source, SourceError};

pub use access_unit::{AccessUnitError, AnnexBUnit, START_CODE, annex_b_unit};
pub use address::{CertificateCheck, RtspAddress, RtspCredentials, RtspTransport};
pub use timing::{PtsRebaser, WallClock};

/// How long DESCRIBE, SETUP and PLAY may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the camera may send no picture before the source gives up. Above the longest
/// key-frame interval served (10 s): the first picture is the first IDR after PLAY.
const NO_PICTURE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a TEARDOWN may take when the source is dropped.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest message taken from the RTSP client's errors (their first line).
const MAX_ERROR_CHARS: usize = 300;

pub const B_FRAMES_REFUSED: &str = "the camera sends B-frames, which framecast does not \
    support; turn them off in the camera (often 'profile: baseline/main without B-frames' or \
    'GOP structure IP')";

/// Opens an RTSP camera's stream.
pub struct RtspOpener {
    address: RtspAddress,
}

impl RtspOpener {
    pub fn new(address: RtspAddress) -> Self {
        Self { address }
    }
}

impl Opener for RtspOpener {
    fn describe(&self) -> String {
        self.address.to_string()
    }

    fn open(&mut self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(RtspSource::new(self.address.clone())?))
    }
}

/// One RTSP session with the camera, connected on the first frame asked for.
pub struct RtspSource {
    address: RtspAddress,
    runtime: tokio::runtime::Runtime,
    /// Tracks the session's TEARDOWN, so that dropping the source can wait for it.
    session_group: Arc<SessionGroup>,
    /// The playing session and the index of its video stream; `None` before connecting.
    session: Option<(Demuxed, usize)>,
    /// For `rtsps://`: the TLS connection the session runs through.
    tunnel: Option<tls_tunnel::TlsTunnel>,
    /// Set once the stream is refused for good: every later call says so again.
    refused: Option<SourceError>,
    /// The current SPS and PPS and the picture size the SPS gives.
    parameters: Option<Parameters>,
    /// Frames are dropped until an IDR: at the start, and after lost packets.
    waiting_for_idr: bool,
    rebaser: PtsRebaser,
    wall_clock: WallClock,
    frames: u64,
}

#[derive(Debug, Clone)]
struct Parameters {
    sps: Bytes,
    pps: Bytes,
    size: FrameSize,
}

impl RtspSource {
    pub fn new(address: RtspAddress) -> Result<Self, SourceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| SourceError::Failed(format!("cannot start the RTSP client: {e}")))?;
        Ok(Self {
            address,
            runtime,
            session_group: Arc::new(SessionGroup::default()),
            session: None,
            tunnel: None,
            refused: None,
            parameters: None,
            waiting_for_idr: true,
            rebaser: PtsRebaser::new(),
            wall_clock: WallClock::default(),
            frames: 0,
        })
    }

    /// DESCRIBE, SETUP of the first H.264 video stream, PLAY; over TLS for `rtsps://`,
    /// through the tunnel also returned.
    async fn connect(
        address: &RtspAddress,
        session_group: Arc<SessionGroup>,
    ) -> Result<(Demuxed, usize, Option<tls_tunnel::TlsTunnel>), SourceError> {
        let (mut url, credentials) = address.request().map_err(SourceError::Failed)?;
        let tunnel = match (address.tls(), address.host_port()) {
            (Some(check), Some((host, port))) => {
                let tunnel = tls_tunnel::open(&host, port, check).await?;
                // Both succeed: the URL has a host (checked at parse), rtsp is not special.
                let _ = url.set_scheme("rtsp");
                let _ = url.set_host(Some(&tunnel.local.ip().to_string()));
                let _ = url.set_port(Some(tunnel.local.port()));
                Some(tunnel)
            }
            _ => None,
        };
        let options = SessionOptions::default()
            .creds(credentials.map(|c| retina::client::Credentials {
                username: c.username,
                password: c.password,
            }))
            .session_group(session_group)
            .user_agent(format!("framecast/{}", env!("CARGO_PKG_VERSION")));
        let mut session = Session::describe(url, options)
            .await
            .map_err(|e| connect_error(&e, address, "DESCRIBE"))?;
        let stream_index = choose_video_stream(session.streams())?;
        let transport = match address.transport() {
            RtspTransport::Tcp => Transport::Tcp(Default::default()),
            RtspTransport::Udp => Transport::Udp(Default::default()),
        };
        session
            .setup(
                stream_index,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::MP4),
            )
            .await
            .map_err(|e| connect_error(&e, address, "SETUP"))?;
        let playing = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| connect_error(&e, address, "PLAY"))?;
        let demuxed = playing
            .demuxed()
            .map_err(|e| SourceError::Failed(client_message(&e)))?;
        Ok((demuxed, stream_index, tunnel))
    }

    /// Reads from the camera until a frame can be handed on.
    fn receive(&mut self) -> Result<Frame, SourceError> {
        if self.session.is_none() {
            let connecting = Self::connect(&self.address, self.session_group.clone());
            let connected = self
                .runtime
                .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, connecting).await });
            let (demuxed, stream_index, tunnel) = connected.unwrap_or_else(|_| {
                Err(SourceError::NotFound(format!(
                    "the camera at {} did not answer within {} s",
                    self.address.host_and_port(),
                    CONNECT_TIMEOUT.as_secs()
                )))
            })?;
            self.session = Some((demuxed, stream_index));
            self.tunnel = tunnel;
        }
        // Counted from here: RTCP and frames that are skipped (before the first IDR) do not
        // keep a camera that sends no picture alive.
        let deadline = tokio::time::Instant::now() + NO_PICTURE_TIMEOUT;
        loop {
            let Some((session, stream_index)) = self.session.as_mut() else {
                return Err(SourceError::Failed("the RTSP session is gone".into()));
            };
            let stream_index = *stream_index;
            let item = self
                .runtime
                .block_on(async { tokio::time::timeout_at(deadline, session.next()).await });
            let item = match item {
                Err(_) => {
                    return Err(SourceError::Ended(format!(
                        "no picture from the camera for {} s",
                        NO_PICTURE_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => {
                    return Err(SourceError::Ended(
                        "the camera closed the RTSP connection".into(),
                    ));
                }
                Ok(Some(Err(e))) => {
                    return Err(SourceError::Ended(format!(
                        "the RTSP connection to the camera failed: {}",
                        client_message(&e)
                    )));
                }
                Ok(Some(Ok(item))) => item,
            };
            match item {
                CodecItem::VideoFrame(video) if video.stream_id() == stream_index => {
                    if let Some(frame) = self.on_video_frame(video, stream_index)? {
                        return Ok(frame);
                    }
                }
                CodecItem::Rtcp(rtcp) if rtcp.stream_id() == stream_index => {
                    let report = rtcp
                        .pkts()
                        .next()
                        .and_then(|packet| packet.as_sender_report().ok().flatten())
                        .map(|report| report.ntp_timestamp().0);
                    if let (Some(timestamp), Some(ntp)) = (rtcp.rtp_timestamp(), report) {
                        self.wall_clock.on_sender_report(
                            timestamp.timestamp(),
                            ntp,
                            timestamp.clock_rate().get(),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// A frame to hand on, `None` for one that is skipped (before the first IDR, after lost
    /// packets), or why the stream cannot go on.
    fn on_video_frame(
        &mut self,
        video: VideoFrame,
        stream_index: usize,
    ) -> Result<Option<Frame>, SourceError> {
        if video.has_new_parameters() || self.parameters.is_none() {
            self.parameters = self.current_parameters(stream_index)?;
        }
        let arrived_at = SystemTime::from(video.start_ctx().received_wall());
        let timestamp = video.timestamp();
        let Some(parameters) = &self.parameters else {
            // No SPS and PPS yet, neither in the SDP nor in band: nothing is decodable.
            return Ok(None);
        };
        let unit = match annex_b_unit(video.data(), &parameters.sps, &parameters.pps) {
            Ok(unit) => unit,
            Err(AccessUnitError::BSlice) => {
                return Err(self.refuse(SourceError::Unsupported(B_FRAMES_REFUSED.into())));
            }
            Err(AccessUnitError::NoSlice) => return Ok(None),
            Err(e @ (AccessUnitError::Truncated | AccessUnitError::Malformed)) => {
                self.waiting_for_idr = true;
                return Err(SourceError::BadFrame(format!(
                    "a broken frame from the camera: {e}"
                )));
            }
        };
        if video.loss() > 0 && !unit.is_idr && !self.waiting_for_idr {
            // The frames this one refers to may be incomplete: nothing decodes right until
            // the next IDR.
            self.waiting_for_idr = true;
            return Err(SourceError::BadFrame(format!(
                "{} RTP packets from the camera were lost; the picture resumes at the next \
                 key frame",
                video.loss()
            )));
        }
        if self.waiting_for_idr && !unit.is_idr {
            return Ok(None);
        }
        self.waiting_for_idr = false;
        self.frames += 1;
        let clock_rate_hz = timestamp.clock_rate().get();
        Ok(Some(Frame {
            seq: self.frames,
            pts_90k: self.rebaser.pts_90k(timestamp.timestamp(), clock_rate_hz),
            captured_at: self
                .wall_clock
                .captured_at(timestamp.timestamp(), arrived_at),
            size: parameters.size,
            pixels: Pixels::H264(H264Unit {
                annex_b: Bytes::from(unit.annex_b),
                is_idr: unit.is_idr,
            }),
            repeats_previous: false,
        }))
    }

    /// The stream's SPS and PPS as the client has them now, with the picture size.
    fn current_parameters(
        &mut self,
        stream_index: usize,
    ) -> Result<Option<Parameters>, SourceError> {
        let codec = self.session.as_ref().and_then(|(session, _)| {
            match session.streams().get(stream_index)?.parameters()? {
                ParametersRef::Video(video) => Some(video.codec_params().clone()),
                _ => None,
            }
        });
        let (sps, pps) = match codec {
            None => return Ok(None),
            Some(VideoParametersCodec::H264 { sps, pps }) => (sps, pps),
            Some(_) => {
                return Err(self.refuse(SourceError::Unsupported(
                    "the camera's video is not H.264".into(),
                )));
            }
        };
        let parsed = parse_sps(&sps).map_err(|e| {
            SourceError::Failed(format!("the camera's H.264 sequence parameter set: {e}"))
        })?;
        let size = FrameSize::new(parsed.width, parsed.height);
        if !size.fits_max() {
            return Err(self.refuse(SourceError::Unsupported(format!(
                "the camera's picture is {size}, larger than the largest served, {}",
                FrameSize::MAX
            ))));
        }
        Ok(Some(Parameters { sps, pps, size }))
    }

    /// Remembers that the stream is refused for good and ends the session.
    fn refuse(&mut self, error: SourceError) -> SourceError {
        self.refused = Some(error.clone());
        self.close_session();
        error
    }

    /// Ends the session, sending a TEARDOWN; the client's teardown runs on this runtime.
    fn close_session(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let _entered = self.runtime.enter();
        drop(session);
        let group = self.session_group.clone();
        let _ = self.runtime.block_on(async {
            tokio::time::timeout(TEARDOWN_TIMEOUT, group.await_teardown()).await
        });
        self.tunnel = None;
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        // The client spawns its TEARDOWN when the session is dropped: that needs the runtime.
        self.close_session();
    }
}

impl Source for RtspSource {
    fn describe(&self) -> String {
        self.address.to_string()
    }

    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        let result = self.receive();
        if matches!(
            result,
            Err(SourceError::Ended(_) | SourceError::NotFound(_) | SourceError::Failed(_))
        ) {
            // The supervisor drops the source and opens a new one; end this session now.
            self.close_session();
        }
        result
    }

    /// Longer than the default: the first picture waits for the camera's first key frame,
    /// which may be [`NO_PICTURE_TIMEOUT`] away; the source says itself when the camera is
    /// silent.
    fn reopen_after_silence(&self) -> Option<Duration> {
        Some(NO_PICTURE_TIMEOUT + CONNECT_TIMEOUT)
    }
}

/// The index of the stream to play: the first H.264 video stream. A stream whose video is in
/// another codec is refused, naming it.
fn choose_video_stream(streams: &[retina::client::Stream]) -> Result<usize, SourceError> {
    if let Some(index) = streams
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
    {
        return Ok(index);
    }
    match streams.iter().find(|s| s.media() == "video") {
        Some(stream) => Err(SourceError::Unsupported(unsupported_codec_message(
            stream.encoding_name(),
        ))),
        None => Err(SourceError::Unsupported(
            "the camera's RTSP stream has no video".into(),
        )),
    }
}

/// Why a video codec other than H.264 is refused (`encoding_name` as in the SDP, RFC 4566
/// §6 `a=rtpmap`, lower-cased by the client).
fn unsupported_codec_message(encoding_name: &str) -> String {
    let name = match encoding_name {
        "h265" => "H.265".to_owned(),
        "jpeg" => "Motion JPEG over RTP".to_owned(),
        other => other.chars().take(32).collect::<String>().to_uppercase(),
    };
    format!(
        "{name} is not supported: framecast takes H.264 from RTSP cameras; choose H.264 for \
         this stream in the camera"
    )
}

/// A source error for a failure while connecting: 401 says that authentication failed,
/// other refusals name their status, a camera not reached is not found.
fn connect_error(error: &retina::Error, address: &RtspAddress, step: &str) -> SourceError {
    let host = address.host_and_port();
    let has_credentials = matches!(address.request(), Ok((_, Some(_))));
    match error.status_code() {
        Some(401) if has_credentials => SourceError::Failed(format!(
            "authentication failed (401 Unauthorized): the camera at {host} refused the user \
             name and password given"
        )),
        Some(401) => SourceError::Failed(format!(
            "authentication failed (401 Unauthorized): the camera at {host} wants a user name \
             and password; put them in the URL (rtsp://user:password@host/…) or the \
             stream's source_user and source_password"
        )),
        Some(404) => SourceError::Failed(format!(
            "the camera at {host} has no stream at this path (404 Not Found)"
        )),
        Some(status) => SourceError::Failed(format!(
            "the camera at {host} refused {step} with status {status}: {}",
            client_message(error)
        )),
        None if step == "DESCRIBE" => SourceError::NotFound(format!(
            "cannot reach the camera at {host}: {}",
            client_message(error)
        )),
        None => SourceError::Failed(format!(
            "{step} with the camera at {host} failed: {}",
            client_message(error)
        )),
    }
}

/// The first line of an RTSP client error (the rest is packet context), bounded, with any
/// secret masked.
fn client_message(error: &retina::Error) -> String {
    let text = error.to_string();
    let first_line = text.lines().next().unwrap_or_default();
    let bounded: String = first_line.chars().take(MAX_ERROR_CHARS).collect();
    mask_secrets(&bounded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_codecs_are_refused_by_name() {
        assert_eq!(
            unsupported_codec_message("h265"),
            "H.265 is not supported: framecast takes H.264 from RTSP cameras; choose H.264 \
             for this stream in the camera"
        );
        assert!(unsupported_codec_message("vp8").starts_with("VP8 is not supported"));
    }
}
