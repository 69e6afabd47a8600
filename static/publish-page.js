// The publish page (/streams/NAME/publish): takes this device's camera with getUserMedia and
// publishes it to the stream with WHIP (RFC 9725), H.264 only; shows the connection's state and
// the outgoing bitrate, and stops on request (DELETE on the session, RFC 9725 §4.3).
//
// framecast answers with every ICE candidate (ICE-lite), so the offer is sent once the browser
// has gathered its own candidates, and nothing trickles afterwards.

import { bitrateBps, bitrateText, h264Preferences, outgoingVideo } from "./whip-client.js";

const STATS_INTERVAL_MS = 1000;
// Gathering host candidates takes milliseconds; a STUN-less browser never waits long.
const GATHER_TIMEOUT_MS = 2000;
// Disconnected this long, the session is taken for ended: framecast stops answering the
// browser's consent checks when it ends a session (a DELETE from elsewhere, the stream
// removed), and the browser would otherwise say "disconnected" until it gives up, some 30 s.
const DISCONNECTED_END_MS = 5000;

const section = document.getElementById("publisher");
const preview = document.getElementById("preview");
const overlay = document.getElementById("offline");
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
const errorBox = document.getElementById("error");

const show = (id, text) => {
  document.getElementById(id).textContent = text;
};

/** What the page tells a test (and anyone curious) about itself. */
const status = {
  state: "stopped",
  error: null,
  sessionUrl: null,
  bitrateBps: 0,
  framesSent: 0,
  codec: "",
};
window.framecastPublisher = status;

let pc = null;
let stream = null;
let sessionUrl = null;
let statsTimer = null;
let lastReading = null;
let disconnectedTimer = null;

function setState(state) {
  status.state = state;
  show("state", state);
}

function fail(message) {
  status.error = message;
  errorBox.textContent = message;
  errorBox.hidden = false;
  setState("failed");
}

/** Resolves once ICE gathering is complete, or after a timeout. */
function gathered(connection) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (connection.iceGatheringState === "complete") resolve();
    };
    connection.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences) return;
  // Chromium checks the list against the receiver's capabilities, the spec against the
  // sender's: try both.
  for (const source of [RTCRtpSender, RTCRtpReceiver]) {
    const codecs = h264Preferences(source.getCapabilities?.("video")?.codecs || []);
    if (codecs.length === 0) continue;
    try {
      transceiver.setCodecPreferences(codecs);
      return;
    } catch (_) {
      // The other list, then.
    }
  }
}

async function start() {
  startButton.disabled = true;
  errorBox.hidden = true;
  status.error = null;
  setState("starting camera");
  const wanted = {
    width: { ideal: Number(section.dataset.width) },
    height: { ideal: Number(section.dataset.height) },
    frameRate: { ideal: Number(section.dataset.fps) },
  };
  try {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error("this browser gives pages the camera only over https or on localhost");
    }
    stream = await navigator.mediaDevices.getUserMedia({ video: wanted, audio: false });
    preview.srcObject = stream;
    overlay.hidden = true;
    setState("connecting");
    pc = new RTCPeerConnection();
    // For the console (and the tests): the connection itself.
    window.framecastPublisherConnection = pc;
    pc.addEventListener("connectionstatechange", () => {
      if (!pc) return;
      setState(pc.connectionState);
      clearTimeout(disconnectedTimer);
      disconnectedTimer = null;
      if (pc.connectionState === "failed") fail("the connection to framecast failed");
      if (pc.connectionState === "disconnected") {
        disconnectedTimer = setTimeout(lost, DISCONNECTED_END_MS);
      }
    });
    const [track] = stream.getVideoTracks();
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    preferH264(transceiver);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch(section.dataset.whip, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
      credentials: "same-origin",
    });
    if (response.status !== 201) {
      throw new Error(`framecast refused: ${response.status} ${(await response.text()).trim()}`);
    }
    sessionUrl = new URL(response.headers.get("Location"), location.href).href;
    status.sessionUrl = sessionUrl;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    stopButton.disabled = false;
    statsTimer = setInterval(readStats, STATS_INTERVAL_MS);
  } catch (error) {
    await stop({ keepError: true });
    fail(error.message || String(error));
  }
}

async function readStats() {
  if (!pc) return;
  const reading = outgoingVideo((await pc.getStats()).values());
  if (!reading) return;
  status.bitrateBps = bitrateBps(lastReading, reading);
  status.framesSent = reading.framesSent;
  status.codec = reading.codec;
  lastReading = reading;
  show("bitrate", bitrateText(status.bitrateBps));
  show("picture", reading.width ? `${reading.width}×${reading.height}` : "—");
  show("codec", reading.codec || "—");
}

/** The connection stayed disconnected: the session has ended; the camera is let go. */
async function lost() {
  disconnectedTimer = null;
  if (!pc || pc.connectionState !== "disconnected") return;
  await stop({ keepError: true });
  fail("the connection to framecast was lost: the session ended or the network dropped; Start publishes again");
}

async function stop({ keepError = false } = {}) {
  clearTimeout(disconnectedTimer);
  disconnectedTimer = null;
  stopButton.disabled = true;
  clearInterval(statsTimer);
  statsTimer = null;
  lastReading = null;
  const url = sessionUrl;
  sessionUrl = null;
  status.sessionUrl = null;
  if (pc) {
    pc.close();
    pc = null;
  }
  if (stream) {
    for (const track of stream.getTracks()) track.stop();
    stream = null;
  }
  preview.srcObject = null;
  overlay.hidden = false;
  if (url) {
    try {
      await fetch(url, { method: "DELETE", credentials: "same-origin" });
    } catch (_) {
      // The session ends by itself once framecast hears nothing more.
    }
  }
  status.bitrateBps = 0;
  status.framesSent = 0;
  status.codec = "";
  show("bitrate", "—");
  if (!keepError) setState("stopped");
  startButton.disabled = false;
}

startButton.addEventListener("click", start);
stopButton.addEventListener("click", () => stop());
window.addEventListener("pagehide", () => {
  // Leaving the page ends the session now rather than when framecast stops hearing it.
  if (sessionUrl) fetch(sessionUrl, { method: "DELETE", keepalive: true, credentials: "same-origin" });
});
