// Capture-to-display latency of a picture on a page, measured from its pixels: for every frame
// shown, a small copy is drawn into a canvas and the test pattern's timestamp strip is decoded.
// Where the picture carries no strip (a camera), a player can supply the capture time of the
// frame now playing instead (HLS PROGRAM-DATE-TIME). The one probe of every page: the MJPEG
// <img>, the HLS and the MSE <video>.

import { decodeTimestampStrip } from "./timestamp-strip.js";

// Wide enough for the strip's 68 cells (5 pixels each), small enough that reading the canvas
// back every frame costs little.
const PROBE_WIDTH_PX = 340;
// The readouts describe the last second.
export const WINDOW_MS = 1000;

/** The median of `values` (the upper one of an even count), or null when there are none. */
export function median(values) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * The distinct frames shown in the last `windowMs` and their latencies. Pure (times are passed
 * in), so it is unit-tested without a browser.
 */
export class LatencyWindow {
  constructor(windowMs = WINDOW_MS) {
    this.windowMs = windowMs;
    this.recent = []; // { shownMs, latencyMs }, oldest first
    this.frames = 0;
    this.lastCaptureMs = null;
    this.source = null;
  }

  /**
   * A frame with capture time `captureMs` was shown at `shownMs`. Counts only a new frame (a
   * repaint of the same one is no frame); returns whether it was new.
   */
  add(shownMs, captureMs, source) {
    if (captureMs === this.lastCaptureMs) return false;
    this.lastCaptureMs = captureMs;
    this.source = source;
    this.frames += 1;
    this.recent.push({ shownMs, latencyMs: shownMs - captureMs });
    return true;
  }

  /**
   * { latencyMs: median over the window (null when empty), latestLatencyMs, source: "picture",
   * "program-date-time" or null, fps: distinct frames in the window, frames: since the start,
   * lastCaptureMs }.
   */
  snapshot(nowMs) {
    while (this.recent.length && this.recent[0].shownMs < nowMs - this.windowMs) this.recent.shift();
    const latencies = this.recent.map((r) => r.latencyMs);
    return {
      latencyMs: median(latencies),
      latestLatencyMs: latencies.length ? latencies[latencies.length - 1] : null,
      source: latencies.length ? this.source : null,
      fps: latencies.length,
      frames: this.frames,
      lastCaptureMs: this.lastCaptureMs,
    };
  }
}

/**
 * Watches `element` (a <video> or an <img>) and returns { snapshot() } (see
 * LatencyWindow.snapshot). A <video> is sampled once per presented frame
 * (requestVideoFrameCallback, which also says when the frame reaches the screen), an <img> on
 * every animation frame. options.fallbackCaptureMs: () => capture time (ms since the epoch) of
 * the frame now playing, or null; used only while the strip does not decode.
 */
export function watchLatency(element, options = {}) {
  const fallbackCaptureMs = options.fallbackCaptureMs || (() => null);
  const isVideo = element instanceof HTMLVideoElement;
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const window_ = new LatencyWindow();

  const pictureSize = () =>
    isVideo
      ? element.readyState >= 2 && { w: element.videoWidth, h: element.videoHeight }
      : element.complete && { w: element.naturalWidth, h: element.naturalHeight };

  // The wall-clock time a frame is (or will be) on screen.
  function shownAtMs(metadata) {
    if (metadata && typeof metadata.expectedDisplayTime === "number") {
      return Date.now() + (metadata.expectedDisplayTime - performance.now());
    }
    return Date.now();
  }

  function captureOfPicture(size) {
    const w = PROBE_WIDTH_PX;
    const h = Math.max(24, Math.round((w * size.h) / size.w));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    // Only the top band holds the strip; the whole picture is drawn scaled so coordinates
    // stay relative.
    ctx.drawImage(element, 0, 0, w, h);
    const fromPicture = decodeTimestampStrip(ctx.getImageData(0, 0, w, h));
    if (fromPicture !== null) return { captureMs: fromPicture, source: "picture" };
    const fromPlayer = fallbackCaptureMs();
    if (typeof fromPlayer === "number" && Number.isFinite(fromPlayer)) {
      return { captureMs: fromPlayer, source: "program-date-time" };
    }
    return null;
  }

  function onFrame(metadata) {
    const size = pictureSize();
    if (size && size.w > 0) {
      const shownMs = shownAtMs(metadata);
      const capture = captureOfPicture(size);
      if (capture) window_.add(shownMs, capture.captureMs, capture.source);
    }
    schedule();
  }

  const perVideoFrame = isVideo && "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  function schedule() {
    if (perVideoFrame) element.requestVideoFrameCallback((_now, metadata) => onFrame(metadata));
    else requestAnimationFrame(() => onFrame(null));
  }
  schedule();

  return { snapshot: () => window_.snapshot(Date.now()) };
}
