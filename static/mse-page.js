// The /live page: a small Media Source Extensions player for /live.mp4, framecast's endless
// fragmented MP4 (the init section, then one moof+mdat per frame as soon as it is encoded).
//
// The body is read with fetch() as it arrives, cut into MSE segments (fmp4.js) and appended to
// one SourceBuffer. The codec comes from the avcC box in the stream's own moov, so a new init
// section (a camera changing resolution) is followed. Latency is kept low by live-edge.js,
// which watches how much is buffered ahead whenever a frame arrives. Gaps (the server skips a
// slow viewer to the newest IDR) are jumped over; a dropped stream is reopened with a bounded
// back-off. Readouts and window.framecastPlayer as on the /hls page.

import { SegmentCutter, codecOfInit, mp4MimeType } from "./fmp4.js";
import { watchLatency } from "./latency-probe.js";
import { LiveEdgeSteering } from "./live-edge.js";
import { Backoff, PlayerPage, bufferedEndAt, streamBase } from "./player.js";

const STREAM_URL = streamBase() + "live.mp4";
const READOUT_INTERVAL_MS = 500;
// Reconnect back-off: quick for a restarting server, capped for a dead one.
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;
// A live stream sends a frame every fraction of a second; this long without bytes means the
// connection is stuck somewhere, so it is reopened.
const STALL_TIMEOUT_MS = 5000;
// Buffer kept behind the playhead; older media is removed so memory stays flat.
const KEEP_BEHIND_S = 3;
const TRIM_EVERY_S = 5;
// A gap smaller than this is played through by the browser; larger ones are jumped.
const GAP_TOLERANCE_S = 0.1;
// More queued appends than this (two seconds of frames) means the browser cannot keep up:
// start over at the newest IDR instead of buffering without bound.
const MAX_QUEUED_APPENDS = 60;
// A tab hidden longer than this starts over at the live edge when it is shown again.
const HIDDEN_RESTART_MS = 5000;

const page = new PlayerPage();
const root = page.element("player");
const video = page.element("video");

// The end of the buffered range that holds the playhead, or null.
const playheadBufferedEnd = () => bufferedEndAt(video.buffered, video.currentTime, GAP_TOLERANCE_S);

// When the playhead waits in a gap (or before the first range, as at the start), moves it to
// the start of the next buffered range. The first range that ends after the playhead is the
// one it is in or the one it waits for.
function jumpGap() {
  const r = video.buffered;
  const t = video.currentTime;
  for (let i = 0; i < r.length; i++) {
    if (t < r.end(i) - GAP_TOLERANCE_S) {
      if (t < r.start(i)) video.currentTime = r.start(i);
      return;
    }
  }
}

// One connection: its own MediaSource, SourceBuffer and fetch.
class Session {
  constructor(onEnd) {
    this.onEnd = onEnd;
    this.abort = new AbortController();
    this.mediaSource = new MediaSource();
    this.sourceBuffer = null;
    this.mime = null;
    this.queue = []; // { kind: "append", data, media } | { kind: "remove", start, end } | { kind: "changeType", mime }
    this.steering = new LiveEdgeSteering();
    this.lastDataAt = Date.now();
    this.mediaSegments = 0;
    this.ended = false;
    this.objectUrl = URL.createObjectURL(this.mediaSource);
    this.opened = new Promise((resolve) =>
      this.mediaSource.addEventListener("sourceopen", resolve, { once: true }),
    );
    video.src = this.objectUrl;
  }

  async run() {
    try {
      await this.opened;
      const cutter = new SegmentCutter((kind, data) => this.onSegment(kind, data));
      const response = await fetch(STREAM_URL, { cache: "no-store", signal: this.abort.signal });
      if (!response.ok) throw new Error(`${STREAM_URL} answered ${response.status}`);
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new Error("the stream ended");
        this.lastDataAt = Date.now();
        cutter.push(value);
      }
    } catch (error) {
      this.end(error);
    }
  }

  end(error) {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.queue = [];
    URL.revokeObjectURL(this.objectUrl);
    this.onEnd(error, this.mediaSegments > 0);
  }

  onSegment(kind, data) {
    if (this.ended) return;
    if (kind === "init") {
      const codec = codecOfInit(data);
      if (!codec) throw new Error("the stream's init section has no avcC (not H.264)");
      const mime = mp4MimeType(codec);
      if (!MediaSource.isTypeSupported(mime)) throw new Error(`this browser cannot play ${mime}`);
      if (!this.sourceBuffer) {
        this.sourceBuffer = this.mediaSource.addSourceBuffer(mime);
        this.sourceBuffer.addEventListener("updateend", () => this.afterUpdate());
        this.sourceBuffer.addEventListener("error", () => this.end(new Error("SourceBuffer error")));
      } else if (mime !== this.mime && typeof this.sourceBuffer.changeType === "function") {
        this.queue.push({ kind: "changeType", mime });
      }
      this.mime = mime;
      page.show("codec", codec);
    } else if (!this.sourceBuffer) {
      return; // media before any init cannot be decoded
    }
    if (this.queue.length >= MAX_QUEUED_APPENDS) {
      throw new Error("the browser cannot keep up; starting again at the newest frame");
    }
    this.queue.push({ kind: "append", data, media: kind === "media" });
    this.pump();
  }

  pump() {
    const sb = this.sourceBuffer;
    if (this.ended || !sb || sb.updating || !this.queue.length) return;
    const op = this.queue.shift();
    try {
      if (op.kind === "append") {
        if (op.media) this.steer();
        sb.appendBuffer(op.data);
        if (op.media) this.mediaSegments += 1;
      } else if (op.kind === "remove") {
        sb.remove(op.start, op.end);
      } else {
        sb.changeType(op.mime);
        this.pump();
      }
    } catch (error) {
      this.end(error);
    }
  }

  // Just before a frame is appended: the slack the playhead still has steers it towards the
  // live edge.
  steer() {
    const end = playheadBufferedEnd();
    const slack = end === null ? null : Math.max(0, end - video.currentTime);
    const playing = !video.paused && video.readyState >= 3;
    const { rate, jumpTo } = this.steering.onArrival(slack, playing);
    if (jumpTo !== null) video.currentTime = end - jumpTo;
    if (rate !== null && video.playbackRate !== rate) video.playbackRate = rate;
  }

  afterUpdate() {
    const sb = this.sourceBuffer;
    if (this.ended) return;
    const ranges = sb.buffered;
    if (ranges.length) {
      const t = video.currentTime;
      // First media, or the playhead outside what is buffered: go to the live data.
      if (playheadBufferedEnd() === null) jumpGap();
      const trimQueued = this.queue.some((op) => op.kind === "remove");
      if (!trimQueued && t - ranges.start(0) > KEEP_BEHIND_S + TRIM_EVERY_S) {
        this.queue.push({ kind: "remove", start: 0, end: t - KEEP_BEHIND_S });
      }
    }
    if (video.paused && this.mediaSegments > 0) video.play().catch(() => {});
    this.pump();
  }
}

let session = null;
let reconnects = 0;
const backoff = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS);

function connect() {
  session = new Session((error, hadMedia) => {
    if (hadMedia) backoff.reset();
    reconnects += 1;
    page.say("Reconnecting… (" + (error && error.message ? error.message : error) + ")");
    setTimeout(connect, backoff.next());
  });
  session.run();
}

function tick(probe) {
  if (session && !session.ended && Date.now() - session.lastDataAt > STALL_TIMEOUT_MS) {
    session.end(new Error("no data for " + STALL_TIMEOUT_MS / 1000 + " s"));
  }
  if (video.readyState < 3) jumpGap();
  page.show("reconnects", String(reconnects));
  page.showVideo(video, probe.snapshot(), {
    mode: "mse",
    reconnects,
    codec: session && session.mime,
  });
}

function start() {
  if (root.dataset.hlsEnabled !== "true") {
    page.say("live.mp4 is turned off for this stream (HLS off)");
    return;
  }
  if (!window.MediaSource) {
    page.say("This browser has no Media Source Extensions; try the HLS or MJPEG page.");
    return;
  }
  video.addEventListener("playing", () => page.say(""));
  video.addEventListener("waiting", jumpGap);
  // Browsers pause video-only playback in hidden tabs while the stream keeps arriving: after a
  // while away, start again at the newest IDR rather than play a backlog.
  let hiddenAt = null;
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      hiddenAt = Date.now();
    } else if (hiddenAt !== null && Date.now() - hiddenAt > HIDDEN_RESTART_MS && session) {
      session.end(new Error("back from a hidden tab"));
    }
  });
  connect();
  const probe = watchLatency(video);
  setInterval(() => tick(probe), READOUT_INTERVAL_MS);
}

start();
