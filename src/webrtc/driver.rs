//! The task that drives every WebRTC session over one UDP socket: it reads datagrams and hands
//! each to the session that accepts it (str0m's demultiplexing), feeds str0m its timeouts,
//! writes the frames send sessions are given, and opens and closes sessions on command.
//! [`WebRtc`] is the handle the rest of the server holds.
//!
//! One task for every session: str0m is sans-IO and each step is short (a datagram, a frame's
//! packets), so one task keeps the whole WebRTC side on one core's worth of work at most,
//! with no locks between sessions. Nothing in it waits on a peer: datagrams go out with
//! `try_send_to`, and frames come through a bounded queue that drops (and tells the sender)
//! when full.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::handler::{CloseReason, SessionHandler, SessionKind};
use super::offer::{OfferError, one_line, parse_offer};
use super::session::{OutgoingFrame, Session, SessionInfo};
use super::{SessionId, WebRtcSettings};

/// The largest datagram read: above any path MTU, so nothing is cut.
const MAX_DATAGRAM_BYTES: usize = 2048;
/// Frames waiting for the driver, all sessions together: a few frames for each of dozens of
/// viewers. A full queue drops the frame; its sender then waits for the next IDR.
const FRAME_QUEUE: usize = 512;
/// Open, close and status commands waiting for the driver.
const CONTROL_QUEUE: usize = 64;
/// The longest the driver sleeps without checking its deadlines.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// Why a session was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The offer is refused (400).
    #[error("{0}")]
    Offer(#[from] OfferError),
    /// As many sessions as `webrtc_max_sessions` are open (503).
    #[error("too many WebRTC sessions: {max} are open")]
    Full { max: usize },
    /// The driver has stopped (the server is stopping).
    #[error("WebRTC has stopped")]
    Stopped,
}

/// A session to open.
pub struct NewSession {
    /// Made by the caller ([`SessionId::random`]) so that the handler can know it.
    pub id: SessionId,
    /// The stream it belongs to, for `/status`.
    pub stream: String,
    pub kind: SessionKind,
    pub handler: Box<dyn SessionHandler>,
    /// When the session ends on its own: the expiry of the signed link that opened it. The
    /// driver looks at least every [`MAX_IDLE`], so it ends within that much after.
    pub ends_at: Option<Instant>,
}

/// An opened session.
#[derive(Debug, Clone)]
pub struct Opened {
    pub id: SessionId,
    /// The SDP answer, with every host candidate (ICE-lite: no trickle).
    pub answer_sdp: String,
}

/// Why a frame did not reach its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRefused {
    /// The driver's queue is full: the frame is dropped.
    QueueFull,
    /// The driver has stopped.
    Stopped,
}

/// Totals for `/status` and `/metrics`, read without asking the driver.
#[derive(Debug, Default)]
pub struct WebRtcCounters {
    /// Sessions open now.
    pub sessions: AtomicUsize,
    pub sessions_opened: AtomicU64,
    /// Sessions ended, by [`CloseReason::index`] (their sum is every session ended).
    pub closed_by_reason: [AtomicU64; CloseReason::ALL.len()],
    /// Frames dropped because the driver's queue was full.
    pub frames_dropped: AtomicU64,
    /// Datagrams no session accepted.
    pub datagrams_unmatched: AtomicU64,
}

/// What `/status` says of WebRTC.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebRtcStatus {
    /// The bound UDP address and port (the port chosen, when 0 was configured).
    pub udp_address: String,
    pub udp_port: u16,
    /// The host candidates every answer announces.
    pub candidates: Vec<String>,
    pub max_sessions: usize,
    pub session_count: usize,
    pub sessions_opened_total: u64,
    pub sessions_closed_total: u64,
    /// The same by why they ended ([`CloseReason::as_str`]), reasons that happened only.
    pub sessions_closed_by_reason: std::collections::BTreeMap<&'static str, u64>,
    pub frames_dropped_queue_full: u64,
    pub datagrams_unmatched: u64,
    pub sessions: Vec<SessionInfo>,
}

enum Command {
    Open {
        session: NewSession,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<Opened, OpenError>>,
    },
    Close {
        id: SessionId,
        reason: CloseReason,
        reply: oneshot::Sender<bool>,
    },
    RequestKeyFrame {
        id: SessionId,
    },
    Sessions {
        reply: oneshot::Sender<Vec<SessionInfo>>,
    },
}

/// The handle to the WebRTC driver; cheap to clone. The driver stops, closing every session,
/// when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct WebRtc {
    control: mpsc::Sender<Command>,
    frames: mpsc::Sender<(SessionId, OutgoingFrame)>,
    local_addr: SocketAddr,
    candidates: Arc<Vec<SocketAddr>>,
    max_sessions: usize,
    counters: Arc<WebRtcCounters>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open { .. } => "Open",
            Self::Close { .. } => "Close",
            Self::RequestKeyFrame { .. } => "RequestKeyFrame",
            Self::Sessions { .. } => "Sessions",
        })
    }
}

impl WebRtc {
    /// Binds the UDP socket and starts the driver on the current tokio runtime.
    pub fn start(settings: &WebRtcSettings) -> std::io::Result<Self> {
        let socket = StdUdpSocket::bind(settings.bind)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let candidates = host_candidates(local_addr, &settings.public_addresses);
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (frames, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let counters = Arc::new(WebRtcCounters::default());
        let driver = Driver {
            socket,
            destination: candidates.first().copied().unwrap_or(local_addr),
            candidates: candidates.clone(),
            max_sessions: settings.max_sessions,
            connect_timeout: settings.connect_timeout,
            sessions: HashMap::new(),
            by_source: HashMap::new(),
            counters: counters.clone(),
        };
        tokio::spawn(driver.run(control_rx, frames_rx));
        tracing::info!(
            address = %local_addr,
            candidates = ?candidates,
            "WebRTC listening on UDP"
        );
        Ok(Self {
            control,
            frames,
            local_addr,
            candidates: Arc::new(candidates),
            max_sessions: settings.max_sessions,
            counters,
        })
    }

    /// The bound UDP address (its port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host candidates every answer carries.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    pub fn counters(&self) -> &WebRtcCounters {
        &self.counters
    }

    /// Checks the offer ([`parse_offer`], and that its video goes the session's way), then
    /// opens the session and returns its answer.
    pub async fn open_session(
        &self,
        offer_sdp: &[u8],
        session: NewSession,
    ) -> Result<Opened, OpenError> {
        let (summary, offer) = parse_offer(offer_sdp)?;
        match session.kind {
            SessionKind::Send if !summary.video_direction.offerer_receives() => {
                return Err(OfferError::WrongDirection {
                    wanted: "recvonly or sendrecv",
                }
                .into());
            }
            SessionKind::Receive if !summary.video_direction.offerer_sends() => {
                return Err(OfferError::WrongDirection {
                    wanted: "sendonly or sendrecv",
                }
                .into());
            }
            _ => {}
        }
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Command::Open {
                session,
                offer,
                reply,
            })
            .await
            .map_err(|_| OpenError::Stopped)?;
        answer.await.map_err(|_| OpenError::Stopped)?
    }

    /// Ends a session (a DELETE); false when there is none with that id.
    pub async fn close_session(&self, id: SessionId) -> bool {
        self.end_session(id, CloseReason::Deleted).await
    }

    /// Ends a session for `reason`; false when there is none with that id.
    pub async fn end_session(&self, id: SessionId, reason: CloseReason) -> bool {
        let (reply, closed) = oneshot::channel();
        if self
            .control
            .send(Command::Close { id, reason, reply })
            .await
            .is_err()
        {
            return false;
        }
        closed.await.unwrap_or(false)
    }

    /// Hands a frame to a send session without waiting. A refused frame is lost: the caller
    /// must start again at an IDR.
    pub fn send_frame(&self, id: SessionId, frame: OutgoingFrame) -> Result<(), FrameRefused> {
        self.frames
            .try_send((id, frame))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    FrameRefused::QueueFull
                }
                mpsc::error::TrySendError::Closed(_) => FrameRefused::Stopped,
            })
    }

    /// Asks a receive session's peer for a key frame (PLI), without waiting.
    pub fn request_key_frame(&self, id: SessionId) {
        let _ = self.control.try_send(Command::RequestKeyFrame { id });
    }

    /// The WebRTC side for `/status`: the socket, the totals and every session.
    pub async fn status(&self) -> WebRtcStatus {
        let counters = &self.counters;
        let closed: Vec<(&'static str, u64)> = CloseReason::ALL
            .iter()
            .map(|reason| {
                let count = counters.closed_by_reason[reason.index()].load(Ordering::Relaxed);
                (reason.as_str(), count)
            })
            .collect();
        WebRtcStatus {
            udp_address: self.local_addr.to_string(),
            udp_port: self.local_addr.port(),
            candidates: self.candidates.iter().map(ToString::to_string).collect(),
            max_sessions: self.max_sessions,
            session_count: counters.sessions.load(Ordering::Relaxed),
            sessions_opened_total: counters.sessions_opened.load(Ordering::Relaxed),
            sessions_closed_total: closed.iter().map(|(_, count)| count).sum(),
            sessions_closed_by_reason: closed.into_iter().filter(|(_, count)| *count > 0).collect(),
            frames_dropped_queue_full: counters.frames_dropped.load(Ordering::Relaxed),
            datagrams_unmatched: counters.datagrams_unmatched.load(Ordering::Relaxed),
            sessions: self.sessions().await,
        }
    }

    /// Every session's figures.
    pub async fn sessions(&self) -> Vec<SessionInfo> {
        let (reply, sessions) = oneshot::channel();
        if self
            .control
            .send(Command::Sessions { reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        sessions.await.unwrap_or_default()
    }
}

/// The addresses announced as host candidates: the configured public addresses (their port
/// 0 meaning the bound one), then the bound address, or for an unspecified bind, loopback and
/// the address of the default route (for viewers on the same host and network).
pub fn host_candidates(bound: SocketAddr, public: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut candidates: Vec<SocketAddr> = public
        .iter()
        .map(|a| {
            if a.port() == 0 {
                SocketAddr::new(a.ip(), bound.port())
            } else {
                *a
            }
        })
        .collect();
    if bound.ip().is_unspecified() {
        candidates.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), bound.port()));
        if let Some(ip) = default_route_ip() {
            candidates.push(SocketAddr::new(ip, bound.port()));
        }
    } else if !candidates.contains(&bound) {
        candidates.push(bound);
    }
    candidates.dedup();
    candidates
}

/// The local address the kernel would send from to the internet: connecting a UDP socket
/// sends nothing, it only picks the route.
fn default_route_ip() -> Option<IpAddr> {
    let probe = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

struct Driver {
    socket: UdpSocket,
    /// The address every datagram is taken as sent to. str0m drops a STUN request whose
    /// destination is not one of its host candidates; a socket bound to 0.0.0.0 (or behind
    /// NAT) does not learn the address the peer used, so every datagram is handed in as sent
    /// to the first candidate. Replies leave from the one socket whatever str0m names.
    destination: SocketAddr,
    candidates: Vec<SocketAddr>,
    max_sessions: usize,
    connect_timeout: Duration,
    sessions: HashMap<SessionId, Session>,
    /// The session a peer address last reached, tried first.
    by_source: HashMap<SocketAddr, SessionId>,
    counters: Arc<WebRtcCounters>,
}

impl Driver {
    async fn run(
        mut self,
        mut control: mpsc::Receiver<Command>,
        mut frames: mpsc::Receiver<(SessionId, OutgoingFrame)>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        loop {
            let wake_at = self.next_wakeup(Instant::now());
            tokio::select! {
                biased;
                command = control.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((len, source)) = received {
                        self.on_datagram(source, &buf[..len]);
                    }
                }
                Some((id, frame)) = frames.recv() => {
                    if let Some(session) = self.sessions.get_mut(&id) {
                        // A refusal before the session is up is expected; the sender's
                        // handler starts feeding on `on_connected`.
                        let _ = session.write_frame(&frame, &self.socket);
                    }
                }
                _ = tokio::time::sleep_until(wake_at.into()) => self.on_timeouts(),
            }
            self.remove_closed();
        }
        for session in self.sessions.values_mut() {
            session.close(CloseReason::Shutdown);
        }
        self.remove_closed();
    }

    fn next_wakeup(&self, now: Instant) -> Instant {
        self.sessions
            .values()
            .map(|s| s.next_timeout)
            .min()
            .unwrap_or(now + MAX_IDLE)
            .min(now + MAX_IDLE)
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Open {
                session,
                offer,
                reply,
            } => {
                let _ = reply.send(self.open(session, offer));
            }
            Command::Close { id, reason, reply } => {
                let found = match self.sessions.get_mut(&id) {
                    Some(session) => {
                        session.close(reason);
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            Command::RequestKeyFrame { id } => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.request_key_frame();
                    session.handle(Input::Timeout(Instant::now()), &self.socket);
                }
            }
            Command::Sessions { reply } => {
                let now = Instant::now();
                let mut infos: Vec<SessionInfo> =
                    self.sessions.values().map(|s| s.info(now)).collect();
                infos.sort_by(|a, b| a.id.cmp(&b.id));
                let _ = reply.send(infos);
            }
        }
    }

    fn open(&mut self, new: NewSession, offer: SdpOffer) -> Result<Opened, OpenError> {
        if self.sessions.len() >= self.max_sessions {
            return Err(OpenError::Full {
                max: self.max_sessions,
            });
        }
        if self.sessions.contains_key(&new.id) {
            return Err(OpenError::Offer(OfferError::Refused(
                "the session id is taken".into(),
            )));
        }
        let now = Instant::now();
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .build(now);
        for address in &self.candidates {
            if let Ok(candidate) = Candidate::host(*address, "udp") {
                rtc.add_local_candidate(candidate);
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|error| OfferError::Refused(one_line(&error.to_string())))?;
        let mut session = Session::new(new.id, new.stream, new.kind, rtc, new.handler, now);
        session.ends_at = new.ends_at;
        session.handle(Input::Timeout(now), &self.socket);
        self.sessions.insert(new.id, session);
        self.counters
            .sessions
            .store(self.sessions.len(), Ordering::Relaxed);
        self.counters
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
        Ok(Opened {
            id: new.id,
            answer_sdp: answer.to_sdp_string(),
        })
    }

    fn on_datagram(&mut self, source: SocketAddr, bytes: &[u8]) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.destination, bytes) else {
            self.counters
                .datagrams_unmatched
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let known = self
            .by_source
            .get(&source)
            .copied()
            .filter(|id| self.sessions.get(id).is_some_and(|s| s.accepts(&input)));
        let id = known.or_else(|| {
            self.sessions
                .values()
                .find(|s| s.accepts(&input))
                .map(|s| s.id)
        });
        let Some(session) = id.and_then(|id| self.sessions.get_mut(&id)) else {
            self.counters
                .datagrams_unmatched
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if known.is_none() {
            self.by_source.insert(source, session.id);
        }
        session.handle(input, &self.socket);
    }

    fn on_timeouts(&mut self) {
        let now = Instant::now();
        for session in self.sessions.values_mut() {
            if session.next_timeout <= now {
                session.handle(Input::Timeout(now), &self.socket);
            }
            session.check_deadlines(now, self.connect_timeout);
        }
    }

    fn remove_closed(&mut self) {
        let before = self.sessions.len();
        for reason in self.sessions.values().filter_map(|s| s.closed()) {
            self.counters.closed_by_reason[reason.index()].fetch_add(1, Ordering::Relaxed);
        }
        self.sessions.retain(|_, s| s.closed().is_none());
        let removed = before - self.sessions.len();
        if removed > 0 {
            let sessions = &self.sessions;
            self.by_source.retain(|_, id| sessions.contains_key(id));
            self.counters
                .sessions
                .store(self.sessions.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_public_addresses_then_the_bound_one() {
        let bound: SocketAddr = "127.0.0.1:8189".parse().unwrap();
        assert_eq!(host_candidates(bound, &[]), [bound]);
        let public: Vec<SocketAddr> = vec![
            "203.0.113.5:0".parse().unwrap(),
            "198.51.100.7:40000".parse().unwrap(),
        ];
        assert_eq!(
            host_candidates(bound, &public),
            [
                "203.0.113.5:8189".parse().unwrap(),
                "198.51.100.7:40000".parse().unwrap(),
                bound
            ]
        );
    }

    #[test]
    fn an_unspecified_bind_announces_the_public_addresses_then_loopback() {
        let bound: SocketAddr = "0.0.0.0:8189".parse().unwrap();
        let candidates = host_candidates(bound, &[]);
        assert_eq!(candidates[0], "127.0.0.1:8189".parse().unwrap());
        assert!(candidates.iter().all(|c| !c.ip().is_unspecified()));
        let public: SocketAddr = "203.0.113.5:0".parse().unwrap();
        let candidates = host_candidates(bound, &[public]);
        assert_eq!(candidates[0], "203.0.113.5:8189".parse().unwrap());
        assert_eq!(candidates[1], "127.0.0.1:8189".parse().unwrap());
    }

    /// A send session sends frames over loopback to a str0m peer in the role of a browser:
    /// the driver's ICE-lite, DTLS and packetizer end to end, and DELETE ends it.
    #[tokio::test]
    async fn a_peer_connects_receives_frames_and_the_session_can_be_closed() {
        use std::sync::atomic::AtomicBool;
        use std::time::SystemTime;
        use str0m::change::SdpAnswer;
        use str0m::media::{Direction, MediaKind};
        use str0m::{Event, Output, Rtc};

        struct Flag(Arc<AtomicBool>);
        impl SessionHandler for Flag {
            fn on_connected(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }

        let webrtc = WebRtc::start(&WebRtcSettings {
            bind: "127.0.0.1:0".parse().unwrap(),
            public_addresses: Vec::new(),
            max_sessions: 1,
            connect_timeout: Duration::from_secs(10),
        })
        .unwrap();
        assert_ne!(webrtc.local_addr().port(), 0);

        let peer_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer_addr = peer_socket.local_addr().unwrap();
        let mut peer = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .build(Instant::now());
        peer.add_local_candidate(Candidate::host(peer_addr, "udp").unwrap());
        let mut api = peer.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();

        let connected = Arc::new(AtomicBool::new(false));
        let id = SessionId::random();
        let opened = webrtc
            .open_session(
                offer.to_sdp_string().as_bytes(),
                NewSession {
                    id,
                    stream: "test".into(),
                    kind: SessionKind::Send,
                    handler: Box::new(Flag(connected.clone())),
                    ends_at: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(opened.id, id);
        assert!(opened.answer_sdp.contains("a=ice-lite"));
        // One session is the cap here.
        let second = webrtc
            .open_session(
                offer.to_sdp_string().as_bytes(),
                NewSession {
                    id: SessionId::random(),
                    stream: "test".into(),
                    kind: SessionKind::Send,
                    handler: Box::new(Flag(Arc::default())),
                    ends_at: None,
                },
            )
            .await;
        assert!(matches!(second, Err(OpenError::Full { max: 1 })));
        let answer = SdpAnswer::from_sdp_string(&opened.answer_sdp).unwrap();
        peer.sdp_api().accept_answer(pending, answer).unwrap();

        // Drive the peer until it has received some frames; bounded in steps and time.
        let mut received = 0;
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        let frame = OutgoingFrame {
            annex_b: Arc::from(
                &[
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0,
                    0, 1, 0x65, 0x88, 0x84, 0x21,
                ][..],
            ),
            captured_at: SystemTime::now(),
        };
        for _ in 0..2000 {
            if received >= 3 {
                break;
            }
            if connected.load(Ordering::SeqCst) {
                let _ = webrtc.send_frame(
                    id,
                    OutgoingFrame {
                        captured_at: SystemTime::now(),
                        ..frame.clone()
                    },
                );
            }
            let timeout = loop {
                match peer.poll_output().unwrap() {
                    Output::Timeout(at) => break at,
                    Output::Transmit(t) => {
                        peer_socket
                            .send_to(&t.contents, t.destination)
                            .await
                            .unwrap();
                    }
                    Output::Event(Event::MediaData(_)) => received += 1,
                    Output::Event(_) => {}
                }
            };
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20));
            match tokio::time::timeout(wait, peer_socket.recv_from(&mut buf)).await {
                Ok(Ok((len, source))) => {
                    let receive =
                        Receive::new(Protocol::Udp, source, peer_addr, &buf[..len]).unwrap();
                    peer.handle_input(Input::Receive(Instant::now(), receive))
                        .unwrap();
                }
                _ => peer.handle_input(Input::Timeout(Instant::now())).unwrap(),
            }
        }
        assert!(connected.load(Ordering::SeqCst), "the session connected");
        assert!(received >= 3, "the peer got {received} frames");
        let sessions = webrtc.sessions().await;
        assert_eq!(sessions.len(), 1);
        assert!(sessions[0].frames_sent >= 3);
        assert!(sessions[0].connected);

        assert!(webrtc.close_session(id).await);
        assert!(!webrtc.close_session(id).await);
        assert!(webrtc.sessions().await.is_empty());
        assert_eq!(webrtc.counters().sessions.load(Ordering::SeqCst), 0);
    }
}
