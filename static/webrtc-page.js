// The /webrtc page: the stream over WebRTC, played with WHEP (draft-ietf-wish-whep).
//
// One RTCPeerConnection receives the video: the page makes an offer with a receive-only video
// transceiver (H.264 preferred), waits for its ICE candidates (framecast is ICE-lite and does
// not trickle), POSTs the offer to the stream's WHEP resource and applies the answer. The
// session's URL (the answer's Location) is DELETEd when the page leaves or starts over. A
// failed connection, or one that stays disconnected, is started again with a bounded
// back-off. The jitter buffer is asked to hold nothing beyond what the network needs.
// Readouts and window.framecastPlayer as on the other player pages.

import { watchLatency } from "./latency-probe.js";
import { Backoff, PlayerPage, streamBase } from "./player.js";

const WHEP_URL = streamBase() + "whep";
// A signed link's exp and sig cover the WHEP resource too: they go with every request.
const LINK_QUERY = location.search;
const READOUT_INTERVAL_MS = 500;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;
// ICE gathering on a host normally takes milliseconds; the offer goes with what is there then.
const GATHER_TIMEOUT_MS = 2000;
// A connection disconnected this long (the server's consent answers stopped) starts over.
const DISCONNECTED_RESTART_MS = 3000;
// Connected but no picture for this long: something is stuck; start over.
const NO_PICTURE_RESTART_MS = 10000;
// Offer, answer, ICE and DTLS take well under a second on a LAN; a session not connected after
// this long (a request or the browser stuck) starts over.
const CONNECT_TIMEOUT_MS = 8000;

const page = new PlayerPage();
const root = page.element("player");
const video = page.element("video");

// Waits until the connection has gathered its candidates, or the timeout.
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// H.264 first in the offer (the only codec framecast sends), where the browser lets us say so.
function preferH264(transceiver) {
  const capabilities = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities?.("video");
  if (!capabilities || typeof transceiver.setCodecPreferences !== "function") return;
  const h264 = capabilities.codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
  const rest = capabilities.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/h264");
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

// One WHEP session.
class Session {
  constructor(onEnd) {
    this.onEnd = onEnd;
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.url = null;
    this.abort = new AbortController();
    this.ended = false;
    this.startedAt = Date.now();
    this.states = [];
    this.disconnectedAt = null;
    this.framesAtStart = null;
  }

  async run() {
    try {
      const pc = this.pc;
      const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
      preferH264(transceiver);
      const receiver = transceiver.receiver;
      if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = 0;
      if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = 0;
      pc.addEventListener("track", (event) => {
        video.srcObject = event.streams[0] || new MediaStream([event.track]);
        video.play().catch(() => {});
      });
      pc.addEventListener("connectionstatechange", () => this.onState(pc.connectionState));
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const response = await fetch(WHEP_URL + LINK_QUERY, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
        cache: "no-store",
        signal: this.abort.signal,
      });
      const text = await response.text();
      if (response.status !== 201) throw new Error(`WHEP answered ${response.status}: ${text.trim()}`);
      const location = response.headers.get("Location");
      if (location) this.url = new URL(location, window.location.href).href;
      if (this.ended) return this.deleteSession();
      await pc.setRemoteDescription({ type: "answer", sdp: text });
    } catch (error) {
      this.end(error);
    }
  }

  onState(state) {
    this.states.push(state);
    if (state === "connected") {
      this.disconnectedAt = null;
      page.say("");
    } else if (state === "disconnected") {
      this.disconnectedAt = Date.now();
    } else if (state === "failed" || state === "closed") {
      this.end(new Error("the connection " + state));
    }
  }

  // Called on every readout tick with the frames shown so far.
  check(frames) {
    if (this.ended) return;
    if (!this.states.includes("connected") && Date.now() - this.startedAt > CONNECT_TIMEOUT_MS) {
      this.end(new Error("not connected after " + CONNECT_TIMEOUT_MS / 1000 + " s"));
      return;
    }
    if (this.disconnectedAt !== null && Date.now() - this.disconnectedAt > DISCONNECTED_RESTART_MS) {
      this.end(new Error("the connection stayed disconnected"));
      return;
    }
    if (this.pc.connectionState === "connected") {
      if (this.framesAtStart === null) this.framesAtStart = { frames, at: Date.now() };
      const { frames: before, at } = this.framesAtStart;
      if (frames === before && Date.now() - at > NO_PICTURE_RESTART_MS) {
        this.end(new Error("connected but no picture"));
      } else if (frames !== before) {
        this.framesAtStart = { frames, at: Date.now() };
      }
    }
  }

  deleteSession() {
    if (!this.url) return;
    const url = this.url + LINK_QUERY;
    this.url = null;
    fetch(url, { method: "DELETE", keepalive: true }).catch(() => {});
  }

  end(error) {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.pc.close();
    this.deleteSession();
    this.onEnd(error, this.states.includes("connected"));
  }
}

let session = null;
let reconnects = 0;
let lastError = null;
const stateHistory = [];
const backoff = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS);

function connect() {
  const current = new Session((error, wasConnected) => {
    if (wasConnected) backoff.reset();
    reconnects += 1;
    lastError = error && error.message ? error.message : String(error);
    stateHistory.push(...current.states);
    page.say("Reconnecting… (" + lastError + ")");
    setTimeout(connect, backoff.next());
  });
  session = current;
  current.run();
}

function tick(probe) {
  const measured = probe.snapshot();
  if (session) session.check(measured.frames);
  const state = session ? session.pc.connectionState : "new";
  page.show("connection", state);
  page.show("reconnects", String(reconnects));
  page.showVideo(video, measured, {
    mode: "webrtc",
    reconnects,
    connectionState: state,
    connectionStates: stateHistory.concat(session ? session.states : []),
    sessionUrl: session && session.url,
    lastError,
  });
}

function start() {
  if (root.dataset.hlsEnabled !== "true") {
    page.say("WebRTC is turned off for this stream: it has no H.264 (HLS off)");
    return;
  }
  if (!window.RTCPeerConnection) {
    page.say("This browser has no WebRTC; try the MSE, HLS or MJPEG page.");
    return;
  }
  video.addEventListener("playing", () => page.say(""));
  window.addEventListener("pagehide", () => session && session.deleteSession());
  connect();
  const probe = watchLatency(video);
  setInterval(() => tick(probe), READOUT_INTERVAL_MS);
}

start();
