// What the player pages share: the page's overlay and readouts, the reconnect back-off, and
// where the buffered media ends. The pure parts (Backoff, bufferedEndAt, the readout
// formatting) are unit-tested in tests/js/.

/**
 * Where the page's stream has its resources: `/` for the first stream's root pages,
 * `/streams/NAME/` otherwise (the server writes it into <body data-base>).
 */
export function streamBase(doc = document) {
  return doc.body?.dataset.base || "/";
}

/** Reconnect delays: doubling from minMs up to maxMs, back to minMs after a success. */
export class Backoff {
  constructor(minMs, maxMs) {
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.currentMs = minMs;
  }

  /** The delay before the next attempt; each call doubles the one after, up to maxMs. */
  next() {
    const delay = this.currentMs;
    this.currentMs = Math.min(this.currentMs * 2, this.maxMs);
    return delay;
  }

  reset() {
    this.currentMs = this.minMs;
  }
}

/**
 * The end of the buffered range (a TimeRanges or any { length, start(i), end(i) }) that holds
 * `t`, or null. A range that starts up to `toleranceS` after `t` counts: the player plays
 * through such a small gap by itself.
 */
export function bufferedEndAt(ranges, t, toleranceS = 0) {
  for (let i = 0; i < ranges.length; i++) {
    if (ranges.start(i) - toleranceS <= t && t <= ranges.end(i)) return ranges.end(i);
  }
  return null;
}

/** Seconds buffered ahead of the playhead of `video`. */
export function bufferAheadS(video, toleranceS = 0) {
  const end = bufferedEndAt(video.buffered, video.currentTime, toleranceS);
  return end === null ? 0 : Math.max(0, end - video.currentTime);
}

/** Texts of the readouts every video page shows. */
export function readoutTexts({ latencyMs, bufferS, playbackRate, width, height }) {
  return {
    latency: latencyMs === null || latencyMs === undefined ? "—" : Math.round(latencyMs) + " ms",
    buffer: bufferS.toFixed(2) + " s",
    rate: playbackRate.toFixed(2) + "×",
    resolution: width ? width + "×" + height : "—",
  };
}

/**
 * The page around a player: the element with `id`, the overlay that says what is wrong, the
 * readouts (elements by id) and the host name in the usage examples.
 */
export class PlayerPage {
  constructor(doc = document) {
    this.doc = doc;
    this.overlay = doc.getElementById("offline");
    for (const el of doc.querySelectorAll(".host")) el.textContent = location.host;
  }

  element(id) {
    return this.doc.getElementById(id);
  }

  /** Shows `message` over the picture; an empty message hides the overlay. */
  say(message) {
    this.overlay.textContent = message || "";
    this.overlay.hidden = !message;
  }

  /** Sets the text of the readout `id`, if the page has it. */
  show(id, text) {
    const el = this.element(id);
    if (el) el.textContent = text;
  }

  /**
   * Fills the common video readouts from a latency probe snapshot and `video`, publishes
   * window.framecastPlayer (the common fields plus `extra`) for tests and benchmarks, and
   * returns it.
   */
  showVideo(video, measured, extra = {}) {
    const bufferS = bufferAheadS(video, 0.05);
    const texts = readoutTexts({
      latencyMs: measured.latencyMs,
      bufferS,
      playbackRate: video.playbackRate,
      width: video.videoWidth,
      height: video.videoHeight,
    });
    for (const [id, text] of Object.entries(texts)) this.show(id, text);
    window.framecastPlayer = {
      latencyMs: measured.latencyMs,
      latencySource: measured.source,
      fps: measured.fps,
      frames: measured.frames,
      lastCaptureMs: measured.lastCaptureMs,
      currentTime: video.currentTime,
      bufferAheadS: bufferS,
      playbackRate: video.playbackRate,
      ...extra,
    };
    return window.framecastPlayer;
  }
}
