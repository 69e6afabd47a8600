//! What a session does with its media: the one part that differs between a WHEP viewer (media
//! out) and a WHIP publisher (media in). The driver calls a session's handler from its task
//! for what happens to the session; a handler must not block (it runs on the task that drives
//! every session): hand work on through channels or the hub, which never wait.

use str0m::media::MediaData;

/// Which way media goes, as framecast sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// framecast sends H.264 to the peer (WHEP playback); the offer must receive video.
    Send,
    /// The peer sends H.264 to framecast (WHIP publishing); the offer must send video.
    Receive,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Receive => "receive",
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A DELETE on its resource ([`super::WebRtc::close_session`]).
    Deleted,
    /// ICE and DTLS did not complete in time.
    ConnectTimeout,
    /// The peer went away (ICE consent expired, DTLS closed).
    Disconnected,
    /// str0m failed on the session's input.
    Failed,
    /// The signed link it was opened with has expired.
    LinkExpired,
    /// Its stream stopped (a reload removed or restarted it).
    StreamEnded,
    /// The server is stopping.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in the order of [`CloseReason::index`].
    pub const ALL: [CloseReason; 7] = [
        Self::Deleted,
        Self::ConnectTimeout,
        Self::Disconnected,
        Self::Failed,
        Self::LinkExpired,
        Self::StreamEnded,
        Self::Shutdown,
    ];

    /// The reason's place in [`CloseReason::ALL`], for counting by reason.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason as a metric label value (snake case).
    pub fn label(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::ConnectTimeout => "connect_timeout",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::LinkExpired => "link_expired",
            Self::StreamEnded => "stream_ended",
            Self::Shutdown => "shutdown",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::ConnectTimeout => "connect timeout",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::LinkExpired => "link expired",
            Self::StreamEnded => "stream ended",
            Self::Shutdown => "shutdown",
        }
    }
}

/// One session's behaviour. Every method has a default that does nothing.
pub trait SessionHandler: Send + 'static {
    /// ICE and DTLS are up: media can flow. A send session starts feeding frames now
    /// ([`super::WebRtc::send_frame`]).
    fn on_connected(&mut self) {}

    /// The peer asks for a key frame (PLI or FIR): a send session's source should make one.
    fn on_key_frame_request(&mut self) {}

    /// Media from the peer, depacketized by str0m: for H.264 one access unit in Annex B
    /// (a receive session).
    fn on_media(&mut self, _data: &MediaData) {}

    /// The session is gone; the driver drops the handler right after.
    fn on_closed(&mut self, _reason: CloseReason) {}
}
