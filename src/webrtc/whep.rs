//! A WHEP viewer (draft-ietf-wish-whep): a send session fed from its stream's access-unit tap
//! ([`crate::hub::AccessUnitTap`]).
//!
//! Once ICE and DTLS are up a forwarder task subscribes to the tap and hands every unit to the
//! driver, from an IDR on ([`KeyFrameGate`]): for a source's own H.264 the tap's kept GOP
//! goes first, so the picture comes at once; for the encoder's, the viewer asks for an IDR,
//! which the H.264 thread makes with its next frame. A viewer that falls behind (the tap
//! overtook it, or the driver's queue was full) loses its place and skips to the next IDR,
//! asking for one; the viewer's PLI and FIR ask too, rate-limited per stream.

use std::any::Any;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{oneshot, watch};

use super::key_frame_gate::{Decision, KeyFrameGate};
use super::{CloseReason, FrameRefused, OutgoingFrame, SessionHandler, SessionId, WebRtc};
use crate::hub::{Hub, TapUnit, ViewerGuard};

/// The driver's side of a WHEP viewer.
struct WhepHandler {
    hub: Arc<Hub>,
    /// Fired once when the session connects.
    connected: Option<oneshot::Sender<()>>,
    /// Dropped when the session ends: the forwarder stops.
    _alive: oneshot::Sender<()>,
}

impl SessionHandler for WhepHandler {
    fn on_connected(&mut self) {
        if let Some(connected) = self.connected.take() {
            let _ = connected.send(());
        }
    }

    fn on_key_frame_request(&mut self) {
        self.hub.access_units.request_key_frame();
    }

    fn on_closed(&mut self, reason: CloseReason) {
        tracing::debug!(reason = reason.as_str(), "WHEP session ended");
    }
}

/// Makes the handler of a new WHEP session `id` for the stream of `hub`, and starts its
/// forwarder on the current runtime. `viewer` counts its frames in `/status`; `keep` lives
/// as long as the session (the stream's encoder demand). When `stream_ended` turns true (or
/// its stream is gone), the forwarder ends the session.
pub fn viewer(
    webrtc: WebRtc,
    id: SessionId,
    hub: Arc<Hub>,
    viewer: Option<ViewerGuard>,
    keep: Box<dyn Any + Send>,
    stream_ended: watch::Receiver<bool>,
) -> Box<dyn SessionHandler> {
    let (connected, connected_rx) = oneshot::channel();
    let (alive, ended) = oneshot::channel();
    tokio::spawn(forward(
        Forwarder {
            webrtc,
            id,
            hub: hub.clone(),
            viewer,
            gate: KeyFrameGate::default(),
            _keep: keep,
        },
        connected_rx,
        ended,
        stream_ended,
    ));
    Box::new(WhepHandler {
        hub,
        connected: Some(connected),
        _alive: alive,
    })
}

struct Forwarder {
    webrtc: WebRtc,
    id: SessionId,
    hub: Arc<Hub>,
    viewer: Option<ViewerGuard>,
    gate: KeyFrameGate,
    _keep: Box<dyn Any + Send>,
}

/// Whether the forwarder goes on.
enum Flow {
    Continue,
    Stop,
}

impl Forwarder {
    fn offer(&mut self, unit: &TapUnit) -> Flow {
        match self.gate.offer(unit.index, unit.is_idr) {
            Decision::Send => {
                let frame = OutgoingFrame {
                    annex_b: unit.annex_b.clone(),
                    captured_at: unit.captured_at,
                };
                match self.webrtc.send_frame(self.id, frame) {
                    Ok(()) => {
                        if let Some(viewer) = &self.viewer {
                            viewer.stats().record_frame(0, unit.index);
                            viewer.stats().record_bytes(unit.annex_b.len());
                        }
                    }
                    Err(FrameRefused::QueueFull) => self.lost(1),
                    Err(FrameRefused::Stopped) => return Flow::Stop,
                }
            }
            Decision::Skip { first } => {
                if let Some(viewer) = &self.viewer {
                    viewer
                        .stats()
                        .frames_skipped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if first && !unit.passed_through {
                    self.hub.access_units.request_key_frame();
                }
            }
        }
        Flow::Continue
    }

    /// Units the viewer never got: it waits for the next IDR and asks for one.
    fn lost(&mut self, count: u64) {
        self.gate.lose();
        if let Some(viewer) = &self.viewer {
            viewer
                .stats()
                .frames_skipped
                .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        }
        self.hub.access_units.request_key_frame();
    }
}

async fn forward(
    mut forwarder: Forwarder,
    connected: oneshot::Receiver<()>,
    mut ended: oneshot::Receiver<()>,
    mut stream_ended: watch::Receiver<bool>,
) {
    // The watch's guard is let go before any await: each select only says what happened.
    let stream_stopped = tokio::select! {
        up = connected => {
            if up.is_err() {
                return;
            }
            false
        }
        _ = &mut ended => return,
        _ = stream_ended.wait_for(|ended| *ended) => true,
    };
    if stream_stopped {
        end_with_stream(&forwarder.webrtc, forwarder.id).await;
        return;
    }
    let (kept, mut units) = forwarder.hub.access_units.subscribe();
    if kept.is_empty() {
        forwarder.hub.access_units.request_start_key_frame();
    }
    for unit in &kept {
        if let Flow::Stop = forwarder.offer(unit) {
            return;
        }
    }
    loop {
        let received = tokio::select! {
            _ = &mut ended => return,
            _ = stream_ended.wait_for(|ended| *ended) => None,
            received = units.recv() => Some(received),
        };
        match received {
            None => {
                end_with_stream(&forwarder.webrtc, forwarder.id).await;
                return;
            }
            Some(Ok(unit)) => {
                if let Flow::Stop = forwarder.offer(&unit) {
                    return;
                }
            }
            Some(Err(RecvError::Lagged(count))) => forwarder.lost(count),
            Some(Err(RecvError::Closed)) => return,
        }
    }
}

/// The stream stopped: the session ends with it, so the player sees it end (and may
/// reconnect to the stream that replaced it) instead of a picture that never changes.
async fn end_with_stream(webrtc: &WebRtc, id: SessionId) {
    webrtc.end_session(id, CloseReason::StreamEnded).await;
}
