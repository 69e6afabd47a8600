//! WebRTC: WHEP playback sessions (and, built on the same core, WHIP publishing) over one UDP
//! socket, with str0m (sans-IO) driven by one tokio task. ICE-lite with every host candidate
//! in the answer, so no trickle; DTLS-SRTP; H.264 cut into RTP by str0m's packetizer.
//!
//! | file | owns |
//! | --- | --- |
//! | [`driver`] | the UDP socket, the task that drives every session, and [`WebRtc`], its handle |
//! | [`session`] | one session: its `Rtc`, its counters, writing a frame, str0m's events |
//! | [`handler`] | [`SessionHandler`]: what a session does with media (send or receive) |
//! | [`offer`] | checks on an SDP offer, each failure a one-line reason (pure) |
//! | [`session_id`] | random session ids for `Location` URLs (pure) |
//! | [`key_frame_gate`] | which units a viewer is sent: skip to the next IDR after a loss (pure) |
//! | [`whep`] | the WHEP viewer: a stream's access units out to one session |
//! | [`whip`] | the WHIP publisher: one session's H.264 into its stream's source, and the publisher's offer checks |
//!
//! # The core's API (for WHEP and WHIP sessions)
//!
//! - [`WebRtc::start`]`(&WebRtcSettings)` binds the socket and starts the driver; the server
//!   holds one [`WebRtc`] (cheap to clone). [`WebRtc::local_addr`] is the bound address.
//! - [`WebRtc::open_session`]`(offer_bytes, NewSession { id, stream, kind, handler })` checks
//!   the offer ([`offer::check_offer`]; a [`SessionKind::Send`] session needs an offer that
//!   receives video, a [`SessionKind::Receive`] one an offer that sends it), makes the
//!   session and returns [`Opened`] with the SDP answer. Errors: [`OpenError::Offer`] (400,
//!   its `Display` is the reason), [`OpenError::Full`] (503), [`OpenError::Stopped`] (503).
//!   The id comes from [`SessionId::random`], made by the caller so that the handler knows
//!   it; its `Display`/`FromStr` are the path segment.
//! - [`WebRtc::close_session`]`(id)` ends one (DELETE); false when there is none.
//! - A [`SessionHandler`] hears, on the driver's task and without blocking:
//!   `on_connected()` (ICE and DTLS are up), `on_key_frame_request()` (the peer's PLI/FIR),
//!   `on_media(&str0m::media::MediaData)` (a receive session: one H.264 access unit from the
//!   peer in Annex B, `data.time` its RTP time, `data.network_time` its arrival), and
//!   `on_closed(CloseReason)` once at the end (DELETE, connect timeout, peer gone, shutdown).
//! - A send session gets frames with [`WebRtc::send_frame`]`(id, OutgoingFrame)`, which never
//!   waits (a full queue refuses; start again at an IDR). A receive session asks its peer for
//!   a key frame with [`WebRtc::request_key_frame`]`(id)`.
//! - [`WebRtc::sessions`] lists every session's figures ([`SessionInfo`]);
//!   [`WebRtc::status`] is the `/status` section; [`WebRtc::counters`] has totals.
//!
//! An HTTP handler takes the offer with `http::whep::read_offer` (the connection reads request
//! bytes in small batches while a request is answered; a body needs its own allowance), and
//! maps [`OpenError`] to its status with `?` (`HttpError: From<OpenError>`).
//!
//! Sessions are bounded (`webrtc_max_sessions`); one that does not connect within
//! `connect_timeout`, whose peer goes away (ICE consent, RFC 7675) or that is deleted is
//! removed.

pub mod driver;
pub mod handler;
pub mod key_frame_gate;
pub mod offer;
pub mod session;
pub mod session_id;
pub mod whep;
pub mod whip;

use std::net::SocketAddr;
use std::time::Duration;

pub use driver::{
    FrameRefused, NewSession, OpenError, Opened, WebRtc, WebRtcCounters, WebRtcStatus,
};
pub use handler::{CloseReason, SessionHandler, SessionKind};
pub use session::{OutgoingFrame, SessionInfo};
pub use session_id::SessionId;

/// The UDP port used when none is configured: a fixed one, so that a firewall or a Docker
/// port mapping can be set up for it.
pub const DEFAULT_UDP_PORT: u16 = 8189;
/// Sessions open at once, all streams together, unless configured.
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// How long ICE and DTLS may take: a browser on a LAN connects in well under a second.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebRTC side's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtcSettings {
    /// The UDP address of every session (port 0: any free port).
    pub bind: SocketAddr,
    /// Addresses announced to peers besides the bound one (NAT, Docker): port 0 means the
    /// bound port.
    pub public_addresses: Vec<SocketAddr>,
    pub max_sessions: usize,
    pub connect_timeout: Duration,
}
