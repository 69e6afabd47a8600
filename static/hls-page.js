// The /hls page: plays /live.m3u8 in a <video> through hls.js (bundled from npm as
// /static/hls.js), or natively where hls.js cannot run (iOS Safari before Managed Media
// Source). Low-Latency HLS is on unless the page is opened as /hls?ll=0. Shows latency (from the
// picture's timestamp strip, else PROGRAM-DATE-TIME), buffer ahead, playback rate, resolution
// and mode, and publishes them as window.framecastPlayer for tests.
(function () {
  "use strict";
  const PLAYLIST_URL = "/live.m3u8";
  // How often the readouts refresh.
  const READOUT_INTERVAL_MS = 500;
  // Retries after a fatal error: a restarting server is back within seconds; the cap keeps a
  // dead one from being hammered.
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 10000;
  // Started this much further behind the live edge than hls.js's target: jump, don't crawl.
  const JOIN_EDGE_EXCESS_S = 0.2;

  const root = document.getElementById("player");
  const video = document.getElementById("video");
  const overlay = document.getElementById("offline");
  const out = (id) => document.getElementById(id);
  for (const el of document.querySelectorAll(".host")) el.textContent = location.host;

  const lowLatency = new URLSearchParams(location.search).get("ll") !== "0";
  let hls = null;
  let mode = null; // "ll-hls" | "hls" | "native"
  let retryMs = RETRY_MIN_MS;
  let retryTimer = null;

  function say(message) {
    overlay.textContent = message || "";
    overlay.hidden = !message;
  }

  // hls.js config. Target latency comes from the playlist: in low-latency mode hls.js aims at
  // PART-HOLD-BACK, otherwise at HOLD-BACK (3 target durations). Setting liveSyncDuration or
  // liveSyncDurationCount here would override PART-HOLD-BACK, so neither is set.
  function hlsConfig() {
    return {
      lowLatencyMode: lowLatency,
      // Catch up to the target latency by playing faster (up to 1.5x) instead of seeking.
      maxLiveSyncPlaybackRate: 1.5,
      // After a stall hls.js moves its target latency back by this much (at most one target
      // duration in all). Its default of 1 s would double the 1 s LL-HLS target after a
      // single hiccup; a quarter second per stall still backs off from a jittery network.
      liveSyncOnStallIncrease: 0.25,
      // A live page never seeks back: keep only a few seconds behind the playhead.
      backBufferLength: 4,
      // Keep no more ahead than the live window can offer anyway.
      maxBufferLength: 6,
      liveDurationInfinity: true,
      enableWorker: true,
    };
  }

  function startHlsJs() {
    hls = new Hls(hlsConfig());
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      video.play().catch(() => {});
    });
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      // Data flows again: the next failure starts its back-off from the bottom.
      retryMs = RETRY_MIN_MS;
      if (!video.paused) say("");
      joinLiveEdge();
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return; // hls.js retries these itself
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      say("Reconnecting…");
      restartLater();
    });
    hls.loadSource(PLAYLIST_URL);
    hls.attachMedia(video);
  }

  // hls.js starts at its target latency from the live edge it saw, but loading and starting
  // take time in which the edge moves on, and its catch-up (at most 1.05x this close to the
  // target, and only with over a second buffered) then needs many seconds. So once, when the
  // start has left playback clearly behind, seek to hls.js's own live sync position: it lies
  // within what is buffered, so this costs no reload.
  let joinedLiveEdge = false;
  function joinLiveEdge() {
    // hls.latency reads 0 until playback has started and hls.js has measured it.
    if (joinedLiveEdge || !hls || video.paused || video.readyState < 2 || !(hls.latency > 0)) return;
    const target = hls.targetLatency;
    const syncPosition = hls.liveSyncPosition;
    if (target === null || syncPosition === null) return;
    // liveSyncPosition counts the playlist's age as live-edge progress; a playlist that came
    // late would put it too close to the edge. The newest buffered frame is the edge this
    // player really has: stay at least the target (PART-HOLD-BACK, which rfc8216bis §4.4.3.8
    // asks players not to undercut) behind it.
    const bufferedEnd = video.currentTime + bufferAheadS();
    const position = Math.min(syncPosition, bufferedEnd - target);
    joinedLiveEdge = true;
    if (hls.latency - target > JOIN_EDGE_EXCESS_S && position > video.currentTime) {
      video.currentTime = position;
    }
  }

  function restartLater() {
    if (retryTimer !== null) return;
    if (hls) {
      hls.destroy();
      hls = null;
    }
    retryTimer = setTimeout(() => {
      retryTimer = null;
      joinedLiveEdge = false;
      startHlsJs();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  function startNative() {
    video.src = PLAYLIST_URL;
    video.addEventListener("error", () => {
      say("Reconnecting…");
      setTimeout(() => {
        video.src = PLAYLIST_URL;
        video.play().catch(() => {});
      }, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
    video.play().catch(() => {});
  }

  // The capture time of the frame now playing, from EXT-X-PROGRAM-DATE-TIME; used when the
  // picture carries no timestamp strip (a camera).
  function playingDateMs() {
    if (hls && hls.playingDate) return hls.playingDate.getTime();
    if (mode === "native" && typeof video.getStartDate === "function") {
      const start = video.getStartDate().getTime();
      if (Number.isFinite(start)) return start + video.currentTime * 1000;
    }
    return null;
  }

  function bufferAheadS() {
    const t = video.currentTime;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.05 && t <= video.buffered.end(i)) {
        return video.buffered.end(i) - t;
      }
    }
    return 0;
  }

  function showReadouts(probe) {
    const m = probe.snapshot();
    const buffer = bufferAheadS();
    out("latency").textContent = m.latencyMs === null ? "—" : Math.round(m.latencyMs) + " ms";
    out("latency").title =
      m.source === "program-date-time"
        ? "Playing position against EXT-X-PROGRAM-DATE-TIME (the picture has no timestamp strip)"
        : "Capture to display, from the timestamp strip in the picture";
    out("buffer").textContent = buffer.toFixed(2) + " s";
    out("rate").textContent = video.playbackRate.toFixed(2) + "×";
    out("resolution").textContent = video.videoWidth ? video.videoWidth + "×" + video.videoHeight : "—";
    const target = hls && Number.isFinite(hls.targetLatency) ? hls.targetLatency : null;
    out("mode").textContent =
      mode === "native" ? "native player" : lowLatency ? "on" : "off";
    out("target").textContent = target === null ? "—" : Math.round(target * 1000) + " ms";
    window.framecastPlayer = {
      mode,
      latencyMs: m.latencyMs,
      latencySource: m.source,
      fps: m.fps,
      frames: m.frames,
      lastCaptureMs: m.lastCaptureMs,
      currentTime: video.currentTime,
      bufferAheadS: buffer,
      playbackRate: video.playbackRate,
      targetLatencyMs: target === null ? null : target * 1000,
      player: mode === "native" ? "native" : "hls.js " + Hls.version,
    };
  }

  if (root.dataset.hlsEnabled !== "true") {
    say("HLS is turned off on this server (--no-hls)");
    return;
  }
  // hls.js first wherever it runs: Chromium now also answers "maybe" to canPlayType for HLS,
  // but its native player knows no Low-Latency HLS. Native playback is for browsers without
  // Media Source Extensions (older iPhones), where it is the only way.
  if (window.Hls && Hls.isSupported()) {
    mode = lowLatency ? "ll-hls" : "hls";
    out("player-name").textContent = "hls.js " + Hls.version;
    startHlsJs();
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    mode = "native";
    out("player-name").textContent = window.Hls ? "native" : "native (no hls.js in this build)";
    startNative();
  } else if (!window.Hls) {
    say(
      "This server was built without hls.js (run `npm ci` before `cargo build`) and this " +
        "browser cannot play HLS by itself. The MJPEG and MSE players still work.",
    );
    return;
  } else {
    say("This browser can play neither HLS nor Media Source Extensions video.");
    return;
  }
  video.addEventListener("playing", () => say(""));

  const probe = watchVideoLatency(video, { fallbackCaptureMs: playingDateMs });
  setInterval(() => showReadouts(probe), READOUT_INTERVAL_MS);
})();
