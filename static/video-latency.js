// Capture-to-display latency of a <video>, measured from the picture: for every frame the
// video presents, a small copy is drawn into a canvas and the test pattern's timestamp strip is
// decoded (decodeTimestampStrip, from timestamp-strip.js). Where the picture carries no strip
// (a camera), a player can supply the capture time of the playing frame instead, e.g. from
// HLS PROGRAM-DATE-TIME. Shared by the /hls and /live pages. Plain script: defines the global
// function watchVideoLatency(video, options).

// Returns { snapshot() }; snapshot() gives
//   { latencyMs, source, fps, frames, lastCaptureMs }
// latencyMs: median over the last second (null when nothing was measured), source: "picture",
// "program-date-time" or null, fps: distinct frames shown in the last second, frames: distinct
// frames shown since the start.
// options.fallbackCaptureMs: () => capture time (ms since the epoch) of the frame now playing,
// or null; used only while the strip does not decode.
function watchVideoLatency(video, options) {
  "use strict";
  const fallbackCaptureMs = (options && options.fallbackCaptureMs) || (() => null);
  // Wide enough for the strip's 68 cells (5 pixels each), small enough that reading the
  // canvas back every frame costs little.
  const PROBE_WIDTH_PX = 340;
  // The readouts describe the last second.
  const WINDOW_MS = 1000;

  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const recent = []; // { shownMs, latencyMs } of distinct frames in the last WINDOW_MS
  let frames = 0;
  let lastCaptureMs = null;
  let source = null;

  // The wall-clock time a frame is (or will be) on screen. requestVideoFrameCallback tells
  // when the frame it reports will be displayed; rAF has only "now".
  function shownAtMs(metadata) {
    if (metadata && typeof metadata.expectedDisplayTime === "number") {
      return Date.now() + (metadata.expectedDisplayTime - performance.now());
    }
    return Date.now();
  }

  function captureOfFrame() {
    const w = PROBE_WIDTH_PX;
    const h = Math.max(24, Math.round((w * video.videoHeight) / video.videoWidth));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.drawImage(video, 0, 0, w, h);
    const fromPicture = decodeTimestampStrip(ctx.getImageData(0, 0, w, h));
    if (fromPicture !== null) return { captureMs: fromPicture, source: "picture" };
    const fromPlayer = fallbackCaptureMs();
    if (typeof fromPlayer === "number" && Number.isFinite(fromPlayer)) {
      return { captureMs: fromPlayer, source: "program-date-time" };
    }
    return null;
  }

  function onFrame(metadata) {
    if (video.videoWidth > 0 && video.readyState >= 2) {
      const shownMs = shownAtMs(metadata);
      const capture = captureOfFrame();
      if (capture && capture.captureMs !== lastCaptureMs) {
        lastCaptureMs = capture.captureMs;
        source = capture.source;
        frames += 1;
        recent.push({ shownMs, latencyMs: shownMs - capture.captureMs });
      }
    }
    schedule();
  }

  const hasVideoFrameCallback = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  function schedule() {
    if (hasVideoFrameCallback) {
      video.requestVideoFrameCallback((_now, metadata) => onFrame(metadata));
    } else {
      requestAnimationFrame(() => onFrame(null));
    }
  }
  schedule();

  function snapshot() {
    const now = Date.now();
    while (recent.length && recent[0].shownMs < now - WINDOW_MS) recent.shift();
    let latencyMs = null;
    if (recent.length) {
      const sorted = recent.map((r) => r.latencyMs).sort((a, b) => a - b);
      latencyMs = sorted[Math.floor(sorted.length / 2)];
    }
    return { latencyMs, source: recent.length ? source : null, fps: recent.length, frames, lastCaptureMs };
  }

  return { snapshot };
}
