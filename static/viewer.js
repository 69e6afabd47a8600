// The MJPEG page (/): the live <img>, its capture-to-display latency and displayed frame rate
// from the picture's timestamp strip, and a reconnect when the stream drops.

import { watchLatency } from "./latency-probe.js";
import { Backoff, PlayerPage, streamBase } from "./player.js";

const STREAM_URL = streamBase() + "stream.mjpg";
const READOUT_INTERVAL_MS = 500;
// A restarting server is back within a second or two; the cap keeps a dead one from being hammered.
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10000;

const page = new PlayerPage();
const img = page.element("live");
const backoff = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS);

// A dropped stream (server restart, network) comes back without a page reload.
img.addEventListener("error", () => {
  page.say("Reconnecting…");
  setTimeout(() => {
    img.src = STREAM_URL + "?reconnect=" + Date.now();
  }, backoff.next());
});
img.addEventListener("load", () => {
  backoff.reset();
  page.say("");
});

const probe = watchLatency(img);
setInterval(() => {
  const m = probe.snapshot();
  page.show("latency", m.latencyMs === null ? "—" : Math.round(m.latencyMs) + " ms");
  page.show("fps", m.fps + " fps");
  window.framecastViewer = { fps: m.fps, latencyMs: m.latestLatencyMs, lastCapture: m.lastCaptureMs };
}, READOUT_INTERVAL_MS);
