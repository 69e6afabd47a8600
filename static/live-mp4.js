// The /live page: a small Media Source Extensions player for /live.mp4, framecast's endless
// fragmented MP4 (init section, then one moof+mdat per LL-HLS part as soon as it is made).
//
// The body is read with fetch() as it arrives, cut into whole top-level boxes (ISO/IEC 14496-12
// §4.2), and appended to one SourceBuffer: ftyp+moov as an init segment, moof+mdat as a media
// segment (the ISO BMFF byte stream format for MSE). The codec comes from the avcC box in the
// stream's own moov, so a new init section (a camera changing resolution) is followed.
// Latency is kept low by watching how much is buffered ahead when the next part arrives: too
// much and the playhead plays a little faster or, far behind, jumps forward. Gaps (the server
// skips a slow viewer to the newest IDR) are jumped over; a dropped stream is reopened with a
// bounded back-off. Readouts and window.framecastPlayer as on the /hls page.
(function () {
  "use strict";
  const STREAM_URL = "/live.mp4";
  const READOUT_INTERVAL_MS = 500;
  // Reconnect back-off: quick for a restarting server, capped for a dead one.
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 8000;
  // A live stream sends a part every fraction of a second; this long without bytes means the
  // connection is stuck somewhere, so it is reopened.
  const STALL_TIMEOUT_MS = 5000;
  // What the playhead should still have buffered when the next part arrives: a small margin
  // against network and timer jitter. Anything more is pure latency.
  const SLACK_TARGET_S = 0.05;
  // Above this (the smallest of the last few arrivals, so one late part does not count), play
  // faster until back at the target.
  const SLACK_CATCH_UP_S = 0.12;
  // Muted video, so a faster rate has no pitch to betray it; 1.15x takes back 0.1 s in 0.7 s.
  const CATCH_UP_RATE = 1.15;
  // Above this, catching up by rate would take seconds: jump instead (a seek decodes from the
  // part's IDR, a short hitch once).
  const SLACK_JUMP_S = 0.3;
  // How many part arrivals the slack is judged over (about one second of 1/3 s parts).
  const SLACK_WINDOW = 3;
  // Buffer kept behind the playhead; older media is removed so memory stays flat.
  const KEEP_BEHIND_S = 3;
  const TRIM_EVERY_S = 5;
  // A gap smaller than this is played through by the browser; larger ones are jumped.
  const GAP_TOLERANCE_S = 0.1;
  // More queued appends than this means the browser cannot keep up: start over at the newest
  // IDR instead of buffering without bound.
  const MAX_QUEUED_APPENDS = 60;
  // A tab hidden longer than this starts over at the live edge when it is shown again.
  const HIDDEN_RESTART_MS = 5000;

  const root = document.getElementById("player");
  const video = document.getElementById("video");
  const overlay = document.getElementById("offline");
  const out = (id) => document.getElementById(id);
  for (const el of document.querySelectorAll(".host")) el.textContent = location.host;

  function say(message) {
    overlay.textContent = message || "";
    overlay.hidden = !message;
  }

  const u32 = (bytes, at) =>
    bytes[at] * 0x1000000 + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
  const fourcc = (bytes, at) =>
    String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);

  // RFC 6381 §3.3: "avc1." + profile, constraint flags and level from the
  // AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), which follows the avcC header.
  function codecOfInit(init) {
    for (let i = 4; i + 8 <= init.length; i++) {
      if (init[i] === 0x61 && fourcc(init, i) === "avcC") {
        const hex = (b) => b.toString(16).padStart(2, "0").toUpperCase();
        return "avc1." + hex(init[i + 5]) + hex(init[i + 6]) + hex(init[i + 7]);
      }
    }
    return null;
  }

  // Cuts a byte stream into top-level boxes and groups them into MSE segments: everything up
  // to and including a moov is an init segment, up to and including an mdat a media segment.
  class SegmentCutter {
    constructor(onSegment) {
      this.onSegment = onSegment;
      this.buf = new Uint8Array(256 * 1024);
      this.len = 0;
      this.groupStart = 0;
    }

    push(chunk) {
      if (this.len + chunk.length > this.buf.length) {
        const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + chunk.length));
        grown.set(this.buf.subarray(0, this.len));
        this.buf = grown;
      }
      this.buf.set(chunk, this.len);
      this.len += chunk.length;
      this.cut();
    }

    cut() {
      const b = this.buf;
      let at = this.groupStart;
      let consumed = 0;
      for (;;) {
        // Box header: 32-bit size and type; size 1 means a 64-bit size follows (§4.2).
        if (this.len - at < 8) break;
        let size = u32(b, at);
        const type = fourcc(b, at + 4);
        if (size === 1) {
          if (this.len - at < 16) break;
          size = u32(b, at + 8) * 2 ** 32 + u32(b, at + 12);
        }
        if (size < 8) throw new Error(`bad MP4 box size ${size} for '${type}'`);
        if (this.len - at < size) break;
        at += size;
        if (type === "moov" || type === "mdat") {
          // slice() copies: the segment must outlive the buffer's reuse.
          this.onSegment(type === "moov" ? "init" : "media", b.slice(consumed, at));
          consumed = at;
        }
      }
      // Keep the unfinished group at the front.
      if (consumed > 0) {
        b.copyWithin(0, consumed, this.len);
        this.len -= consumed;
        at -= consumed;
      }
      this.groupStart = at;
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
      this.queue = []; // { kind: "append", data } | { kind: "remove", start, end }
      this.slacks = [];
      this.lastTrimAt = 0;
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
        const mime = `video/mp4; codecs="${codec}"`;
        if (!MediaSource.isTypeSupported(mime)) throw new Error(`this browser cannot play ${mime}`);
        if (!this.sourceBuffer) {
          this.sourceBuffer = this.mediaSource.addSourceBuffer(mime);
          this.sourceBuffer.addEventListener("updateend", () => this.afterUpdate());
          this.sourceBuffer.addEventListener("error", () => this.end(new Error("SourceBuffer error")));
        } else if (mime !== this.mime && typeof this.sourceBuffer.changeType === "function") {
          this.queue.push({ kind: "changeType", mime });
        }
        this.mime = mime;
        out("codec").textContent = codec;
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
          if (op.media) this.beforeMedia();
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

    // Just before a part is appended: how much was still buffered ahead of the playhead is
    // the slack the player has; steer it towards SLACK_TARGET_S.
    beforeMedia() {
      const end = bufferedEndAt(video.currentTime);
      // Waiting at the end of the buffer (readyState below HAVE_FUTURE_DATA) counts as no
      // slack: it must stop any catching up.
      if (end === null || video.paused) return;
      const slack = Math.max(0, end - video.currentTime);
      this.slacks.push(slack);
      if (this.slacks.length > SLACK_WINDOW) this.slacks.shift();
      const smallest = Math.min(...this.slacks);
      if (slack > SLACK_JUMP_S) {
        video.currentTime = end - SLACK_TARGET_S;
        video.playbackRate = 1;
        this.slacks = [];
      } else if (this.slacks.length === SLACK_WINDOW && smallest > SLACK_CATCH_UP_S) {
        video.playbackRate = CATCH_UP_RATE;
      } else if (slack <= SLACK_TARGET_S) {
        video.playbackRate = 1;
      }
    }

    afterUpdate() {
      const sb = this.sourceBuffer;
      if (this.ended) return;
      const ranges = sb.buffered;
      if (ranges.length) {
        const t = video.currentTime;
        // First media, or the playhead outside what is buffered: go to the live data.
        if (bufferedEndAt(t) === null) jumpGap();
        const trimQueued = this.queue.some((op) => op.kind === "remove");
        if (!trimQueued && t - ranges.start(0) > KEEP_BEHIND_S + TRIM_EVERY_S) {
          this.queue.push({ kind: "remove", start: 0, end: t - KEEP_BEHIND_S });
        }
      }
      if (video.paused && this.mediaSegments > 0) video.play().catch(() => {});
      this.pump();
    }
  }

  // The end of the buffered range that holds `t`, or null.
  function bufferedEndAt(t) {
    const r = video.buffered;
    for (let i = 0; i < r.length; i++) {
      if (r.start(i) - GAP_TOLERANCE_S <= t && t <= r.end(i)) return r.end(i);
    }
    return null;
  }

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

  let session = null;
  let retryMs = RETRY_MIN_MS;
  let reconnects = 0;

  function connect() {
    session = new Session((error, hadMedia) => {
      if (hadMedia) retryMs = RETRY_MIN_MS;
      reconnects += 1;
      say("Reconnecting… (" + (error && error.message ? error.message : error) + ")");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
    session.run();
  }

  function bufferAheadS() {
    const end = bufferedEndAt(video.currentTime);
    return end === null ? 0 : Math.max(0, end - video.currentTime);
  }

  function tick(probe) {
    if (session && !session.ended && Date.now() - session.lastDataAt > STALL_TIMEOUT_MS) {
      session.end(new Error("no data for " + STALL_TIMEOUT_MS / 1000 + " s"));
    }
    if (video.readyState < 3) jumpGap();
    const m = probe.snapshot();
    const buffer = bufferAheadS();
    out("latency").textContent = m.latencyMs === null ? "—" : Math.round(m.latencyMs) + " ms";
    out("buffer").textContent = buffer.toFixed(2) + " s";
    out("rate").textContent = video.playbackRate.toFixed(2) + "×";
    out("resolution").textContent = video.videoWidth ? video.videoWidth + "×" + video.videoHeight : "—";
    out("reconnects").textContent = String(reconnects);
    window.framecastPlayer = {
      mode: "mse",
      latencyMs: m.latencyMs,
      latencySource: m.source,
      fps: m.fps,
      frames: m.frames,
      lastCaptureMs: m.lastCaptureMs,
      currentTime: video.currentTime,
      bufferAheadS: buffer,
      playbackRate: video.playbackRate,
      reconnects,
      codec: session && session.mime,
    };
  }

  if (root.dataset.hlsEnabled !== "true") {
    say("/live.mp4 is turned off on this server (--no-hls)");
    return;
  }
  if (!window.MediaSource) {
    say("This browser has no Media Source Extensions; try the HLS or MJPEG page.");
    return;
  }
  video.addEventListener("playing", () => say(""));
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
  const probe = watchVideoLatency(video, {});
  setInterval(() => tick(probe), READOUT_INTERVAL_MS);
})();
