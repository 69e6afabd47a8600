// The /hls page: plays /live.m3u8 in a <video> through hls.js (bundled from npm as
// /static/hls.js, a classic script that defines window.Hls), or natively where hls.js cannot
// run (iOS Safari before Managed Media Source). Low-Latency HLS is on unless the page is
// opened as /hls?ll=0. Shows latency (from the picture's timestamp strip, else
// PROGRAM-DATE-TIME), buffer ahead, playback rate, resolution and mode, and publishes them as
// window.framecastPlayer for tests.

import { watchLatency } from "./latency-probe.js";
import { Backoff, PlayerPage, streamBase } from "./player.js";

const PLAYLIST_URL = streamBase() + "live.m3u8";
const READOUT_INTERVAL_MS = 500;
// Retries after a fatal error: a restarting server is back within seconds; the cap keeps a
// dead one from being hammered.
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10000;

const page = new PlayerPage();
const root = page.element("player");
const video = page.element("video");
const Hls = window.Hls;
const lowLatency = new URLSearchParams(location.search).get("ll") !== "0";
const backoff = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS);
let hls = null;
let mode = null; // "ll-hls" | "hls" | "native"
let retryTimer = null;

/**
 * hls.js's configuration: its defaults, with low-latency mode as asked. The player then aims
 * at the playlist's PART-HOLD-BACK (HOLD-BACK without low-latency mode) and catches up the way
 * stock hls.js does, so what this page shows is what any hls.js page gets from framecast.
 * The one setting changed does not touch latency: the default keeps all played media in the
 * SourceBuffer for as long as the page is open, and a live page never seeks back.
 */
function hlsConfig(lowLatencyMode) {
  return {
    lowLatencyMode,
    backBufferLength: 4,
  };
}

function startHlsJs() {
  hls = new Hls(hlsConfig(lowLatency));
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch(() => {});
  });
  hls.on(Hls.Events.FRAG_BUFFERED, () => {
    // Data flows again: the next failure starts its back-off from the bottom.
    backoff.reset();
    if (!video.paused) page.say("");
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return; // hls.js retries these itself
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    page.say("Reconnecting…");
    restartLater();
  });
  hls.loadSource(PLAYLIST_URL);
  hls.attachMedia(video);
}

function restartLater() {
  if (retryTimer !== null) return;
  if (hls) {
    hls.destroy();
    hls = null;
  }
  retryTimer = setTimeout(() => {
    retryTimer = null;
    startHlsJs();
  }, backoff.next());
}

function startNative() {
  video.src = PLAYLIST_URL;
  video.addEventListener("error", () => {
    page.say("Reconnecting…");
    setTimeout(() => {
      video.src = PLAYLIST_URL;
      video.play().catch(() => {});
    }, backoff.next());
  });
  video.play().catch(() => {});
}

/**
 * The capture time of the frame now playing, from EXT-X-PROGRAM-DATE-TIME (hls.js's
 * playingDate, or the native player's start date); null when unknown.
 */
function playingDateMs() {
  if (hls && hls.playingDate) return hls.playingDate.getTime();
  if (mode === "native" && typeof video.getStartDate === "function") {
    const start = video.getStartDate().getTime();
    if (Number.isFinite(start)) return start + video.currentTime * 1000;
  }
  return null;
}

function start() {
  if (root.dataset.hlsEnabled !== "true") {
    page.say("HLS is turned off on this server (--no-hls)");
    return;
  }
  const bundled = root.dataset.hlsJs === "bundled";
  // hls.js first wherever it runs: Chromium now also answers "maybe" to canPlayType for HLS,
  // but its native player knows no Low-Latency HLS. Native playback is for browsers without
  // Media Source Extensions (older iPhones), where it is the only way.
  if (Hls && Hls.isSupported()) {
    mode = lowLatency ? "ll-hls" : "hls";
    page.show("player-name", "hls.js " + Hls.version);
    startHlsJs();
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    mode = "native";
    page.show("player-name", bundled ? "native" : "native (built without hls.js)");
    startNative();
  } else if (!bundled) {
    page.say(
      "This server was built without hls.js (FRAMECAST_WITHOUT_HLS_JS=1) and this browser " +
        "cannot play HLS by itself. The MJPEG and MSE players still work.",
    );
    return;
  } else {
    page.say("This browser can play neither HLS nor Media Source Extensions video.");
    return;
  }
  video.addEventListener("playing", () => page.say(""));

  // For benchmarks: the PROGRAM-DATE-TIME of the frame now playing, at any moment.
  window.framecastPlayingDateMs = playingDateMs;
  const probe = watchLatency(video, { fallbackCaptureMs: playingDateMs });
  setInterval(() => {
    const target = hls && Number.isFinite(hls.targetLatency) ? hls.targetLatency : null;
    page.show("mode", mode === "native" ? "native player" : lowLatency ? "on" : "off");
    page.show("target", target === null ? "—" : Math.round(target * 1000) + " ms");
    const measured = probe.snapshot();
    page.element("latency").title =
      measured.source === "program-date-time"
        ? "Playing position against EXT-X-PROGRAM-DATE-TIME (the picture has no timestamp strip)"
        : "Capture to display, from the timestamp strip in the picture";
    page.showVideo(video, measured, {
      mode,
      targetLatencyMs: target === null ? null : target * 1000,
      player: mode === "native" ? "native" : "hls.js " + Hls.version,
    });
  }, READOUT_INTERVAL_MS);
}

start();
