//! One WebRTC session: its str0m [`Rtc`] (ICE-lite, DTLS-SRTP, RTP), its handler, and its
//! counters. The driver feeds it datagrams and timeouts and sends what it puts out; nothing
//! here does I/O but handing datagrams to the shared socket without waiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::format::Codec;
use str0m::media::KeyframeRequestKind;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::Transmit;
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::SessionId;
use super::handler::{CloseReason, SessionHandler, SessionKind};

/// One access unit to send, shared by every session that sends it.
#[derive(Debug, Clone)]
pub struct OutgoingFrame {
    /// Annex B NAL units; str0m's packetizer cuts them into RTP (FU-A, RFC 6184 §5.8).
    pub annex_b: Arc<[u8]>,
    /// The capture time: the RTP timestamp is this on a 90 kHz clock, so the peer's jitter
    /// buffer sees the capture cadence whatever the encoder's delay.
    pub captured_at: SystemTime,
}

impl OutgoingFrame {
    /// The RTP time of the frame: its capture time in 90 kHz ticks since the Unix epoch
    /// (str0m keeps the timestamp's offset per stream; only differences matter).
    pub fn rtp_time_90k(&self) -> u64 {
        let micros = self
            .captured_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        (micros * 9 / 100) as u64
    }

    /// The capture time on the monotonic clock str0m uses for RTCP sender reports.
    fn wallclock(&self, now: Instant, now_system: SystemTime) -> Instant {
        let age = now_system
            .duration_since(self.captured_at)
            .unwrap_or_default();
        now.checked_sub(age).unwrap_or(now)
    }
}

/// Why a frame was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefusal {
    /// ICE and DTLS are not up yet, or no H.264 payload type was negotiated.
    NotReady,
    /// The session takes media in, it does not send.
    NotASender,
    /// str0m refused the frame.
    Failed,
}

/// A session's figures for `/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub stream: String,
    pub kind: SessionKind,
    pub connected: bool,
    pub remote: Option<String>,
    pub age_ms: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub bytes_sent: u64,
    /// Datagrams the socket could not take at once (its buffer was full): dropped, as a
    /// network would.
    pub datagrams_dropped: u64,
    pub key_frame_requests: u64,
}

pub struct Session {
    pub id: SessionId,
    pub stream: String,
    pub kind: SessionKind,
    rtc: Rtc,
    handler: Box<dyn SessionHandler>,
    created_at: Instant,
    /// When the session ends on its own (a signed link's expiry).
    pub ends_at: Option<Instant>,
    /// When str0m next wants a timeout.
    pub next_timeout: Instant,
    /// ICE and DTLS are up.
    connected: bool,
    /// The video m-line and the H.264 payload type (packetization mode 1) to send with.
    video: Option<(Mid, Option<Pt>)>,
    remote: Option<SocketAddr>,
    closed: Option<CloseReason>,
    frames_sent: u64,
    frames_received: u64,
    datagrams_sent: u64,
    datagrams_received: u64,
    bytes_sent: u64,
    datagrams_dropped: u64,
    key_frame_requests: u64,
}

impl Session {
    pub fn new(
        id: SessionId,
        stream: String,
        kind: SessionKind,
        rtc: Rtc,
        handler: Box<dyn SessionHandler>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            stream,
            kind,
            rtc,
            handler,
            created_at: now,
            ends_at: None,
            next_timeout: now,
            connected: false,
            video: None,
            remote: None,
            closed: None,
            frames_sent: 0,
            frames_received: 0,
            datagrams_sent: 0,
            datagrams_received: 0,
            bytes_sent: 0,
            datagrams_dropped: 0,
            key_frame_requests: 0,
        }
    }

    /// Whether this session takes the datagram (str0m's demultiplexing: STUN by its ICE
    /// credentials, the rest by the peer's address).
    pub fn accepts(&self, input: &Input<'_>) -> bool {
        self.rtc.accepts(input)
    }

    /// Feeds a datagram or a timeout, then sends what str0m puts out.
    pub fn handle(&mut self, input: Input<'_>, socket: &UdpSocket) {
        if let Input::Receive(_, receive) = &input {
            self.datagrams_received += 1;
            if self.connected {
                self.remote = Some(receive.source);
            }
        }
        if let Err(error) = self.rtc.handle_input(input) {
            tracing::debug!(session = %self.id, %error, "WebRTC input failed");
            self.close(CloseReason::Failed);
            return;
        }
        self.drain(socket);
    }

    /// Checks the connection deadline and the session's end.
    pub fn check_deadlines(&mut self, now: Instant, connect_timeout: Duration) {
        if !self.connected && now.saturating_duration_since(self.created_at) >= connect_timeout {
            self.close(CloseReason::ConnectTimeout);
        } else if self.ends_at.is_some_and(|at| now >= at) {
            self.close(CloseReason::LinkExpired);
        }
    }

    /// Writes one frame (a send session), then sends its packets.
    pub fn write_frame(
        &mut self,
        frame: &OutgoingFrame,
        socket: &UdpSocket,
    ) -> Result<(), WriteRefusal> {
        if self.kind != SessionKind::Send {
            return Err(WriteRefusal::NotASender);
        }
        let Some((mid, Some(pt))) = self.video.filter(|_| self.connected) else {
            return Err(WriteRefusal::NotReady);
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return Err(WriteRefusal::NotReady);
        };
        let now = Instant::now();
        let rtp_time = str0m::media::MediaTime::from_90khz(frame.rtp_time_90k());
        let wallclock = frame.wallclock(now, SystemTime::now());
        if let Err(error) = writer.write(pt, wallclock, rtp_time, frame.annex_b.clone()) {
            tracing::debug!(session = %self.id, %error, "WebRTC write failed");
            return Err(WriteRefusal::Failed);
        }
        self.frames_sent += 1;
        self.drain(socket);
        Ok(())
    }

    /// Asks the peer for a key frame (a receive session: PLI).
    pub fn request_key_frame(&mut self) -> bool {
        let Some((mid, _)) = self.video else {
            return false;
        };
        let Some(mut writer) = self.rtc.writer(mid) else {
            return false;
        };
        writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .is_ok()
    }

    /// Ends the session: the handler hears why once; the driver removes it.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.rtc.disconnect();
            self.handler.on_closed(reason);
        }
    }

    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    pub fn info(&self, now: Instant) -> SessionInfo {
        SessionInfo {
            id: self.id.to_string(),
            stream: self.stream.clone(),
            kind: self.kind,
            connected: self.connected,
            remote: self.remote.map(|a| a.to_string()),
            age_ms: now.saturating_duration_since(self.created_at).as_millis() as u64,
            frames_sent: self.frames_sent,
            frames_received: self.frames_received,
            datagrams_sent: self.datagrams_sent,
            datagrams_received: self.datagrams_received,
            bytes_sent: self.bytes_sent,
            datagrams_dropped: self.datagrams_dropped,
            key_frame_requests: self.key_frame_requests,
        }
    }

    /// Sends what str0m puts out and hands its events on, until it names its next timeout.
    fn drain(&mut self, socket: &UdpSocket) {
        while self.closed.is_none() {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.next_timeout = at;
                    return;
                }
                Ok(Output::Transmit(transmit)) => self.transmit(&transmit, socket),
                Ok(Output::Event(event)) => self.on_event(event),
                Err(error) => {
                    tracing::debug!(session = %self.id, %error, "WebRTC session failed");
                    self.close(CloseReason::Failed);
                }
            }
        }
    }

    fn transmit(&mut self, transmit: &Transmit, socket: &UdpSocket) {
        // Never waits: a full socket buffer drops the datagram, as a congested network would,
        // and RTCP feedback (NACK, PLI) recovers as it does there.
        match socket.try_send_to(&transmit.contents, transmit.destination) {
            Ok(len) => {
                self.datagrams_sent += 1;
                self.bytes_sent += len as u64;
            }
            Err(_) => self.datagrams_dropped += 1,
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                tracing::debug!(session = %self.id, "WebRTC session connected");
                self.handler.on_connected();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.close(CloseReason::Disconnected);
            }
            Event::Closed => self.close(CloseReason::Disconnected),
            Event::MediaAdded(added) if added.kind == MediaKind::Video && self.video.is_none() => {
                let pt = self.h264_payload_type(added.mid);
                self.video = Some((added.mid, pt));
            }
            Event::KeyframeRequest(_) => {
                self.key_frame_requests += 1;
                self.handler.on_key_frame_request();
            }
            Event::MediaData(data) => {
                self.frames_received += 1;
                self.handler.on_media(&data);
            }
            _ => {}
        }
    }

    /// The negotiated H.264 payload type in packetization mode 1, Constrained Baseline
    /// (what openh264 makes, and what every browser decodes) first.
    fn h264_payload_type(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let mut h264: Vec<_> = writer
            .payload_params()
            .filter(|p| {
                let spec = p.spec();
                spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
            })
            .map(|p| (p.pt(), p.spec().format.profile_level_id))
            .collect();
        // profile_idc 0x42 with constraint_set1 (0xe0 or 0x40): Constrained Baseline.
        h264.sort_by_key(|(_, profile)| {
            !profile.is_some_and(|p| (p >> 16) == 0x42 && (p >> 8) & 0x40 != 0)
        });
        h264.first().map(|(pt, _)| *pt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_times_are_capture_times_on_the_90_khz_clock() {
        let at = |micros: u64| OutgoingFrame {
            annex_b: Arc::from(&[][..]),
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
        };
        assert_eq!(at(0).rtp_time_90k(), 0);
        assert_eq!(at(1_000_000).rtp_time_90k(), 90_000);
        // 30 fps frames 33 333 µs apart are 3000 ticks apart, give or take the rounding.
        let a = at(1_700_000_000_000_000).rtp_time_90k();
        let b = at(1_700_000_000_033_333).rtp_time_90k();
        assert!((2999..=3000).contains(&(b - a)), "{}", b - a);
    }

    #[test]
    fn the_wallclock_is_the_capture_time_on_the_monotonic_clock() {
        let now = Instant::now();
        let now_system = SystemTime::now();
        let frame = OutgoingFrame {
            annex_b: Arc::from(&[][..]),
            captured_at: now_system - Duration::from_millis(40),
        };
        assert_eq!(
            frame.wallclock(now, now_system),
            now - Duration::from_millis(40)
        );
        // A capture time in the future (clock steps) is taken as now.
        let future = OutgoingFrame {
            captured_at: now_system + Duration::from_secs(5),
            ..frame
        };
        assert_eq!(future.wallclock(now, now_system), now);
    }
}
