// Shared by the browser tests (tests/browser/*.mjs) and the latency benchmark
// (benches/browser_latency.mjs): launching Debian's Chromium through playwright-core, sampling
// the frames a page shows and reading their capture times from the test pattern's timestamp
// strip, and the statistics over those samples.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

// Debian's package; playwright-core never downloads a browser.
export const CHROMIUM = process.env.FRAMECAST_CHROMIUM || "/usr/bin/chromium";
// Starting Chromium on a busy 2-core machine can take several seconds.
export const LAUNCH_TIMEOUT_MS = 20_000;

/** Runs `work` with a time limit; the error names what was being waited for. */
export async function bounded(ms, what, work) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts headless Chromium on a fresh profile directory, with `extraArgs` after the usual
 * flags. Returns { context, close }; close() ends the browser (bounded) and removes the profile.
 */
export async function launchChromium(extraArgs = []) {
  const profile = mkdtempSync(join(tmpdir(), "framecast-chromium-"));
  let context;
  try {
    context = await bounded(LAUNCH_TIMEOUT_MS, "launch chromium", () =>
      chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          // WebRTC over 127.0.0.1: Chromium leaves loopback out of ICE otherwise.
          "--allow-loopback-in-peer-connection",
          ...extraArgs,
        ],
        viewport: { width: 1280, height: 900 },
        timeout: LAUNCH_TIMEOUT_MS,
      }),
    );
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const close = async () => {
    await bounded(10_000, "close chromium", () => context.close()).catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * A test script's whole run: makes `outDir`, starts Chromium, sets `result.chromium`, runs
 * `work(context)`, closes the browser; all within `limitMs`. An error that escapes `work` is a
 * failure. Then `finish(result)` if given, prints `result` as one JSON line with `ok` (no
 * failures) and exits 0 when ok, 1 otherwise.
 */
export async function runInChromium({ result, outDir, limitMs, work, finish, chromiumArgs = [] }) {
  try {
    await bounded(limitMs, "browser test", async () => {
      mkdirSync(outDir, { recursive: true });
      const browser = await launchChromium(chromiumArgs);
      try {
        result.chromium = browser.context.browser()?.version() ?? null;
        await work(browser.context);
      } finally {
        await browser.close();
      }
    });
  } catch (err) {
    result.failures.push(String(err && err.message ? err.message : err).split("\n")[0]);
  }
  result.ok = result.failures.length === 0;
  if (finish) finish(result);
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

/**
 * Collects what goes wrong on `page` into `report`: uncaught errors (`page_errors`), HTTP
 * answers of 400 and above (`http_errors`) and, where `report.console_errors` is an array,
 * console errors.
 */
export function watchPage(page, report) {
  page.on("pageerror", (err) => report.page_errors.push(String(err.message || err)));
  page.on("response", (res) => {
    if (res.status() >= 400) report.http_errors.push(`${res.status()} ${res.url()}`);
  });
  if (Array.isArray(report.console_errors)) {
    page.on("console", (msg) => {
      if (msg.type() === "error") report.console_errors.push(msg.text());
    });
  }
}

/**
 * In the page: for `sampleMs`, reads the capture time of every frame the element `selector`
 * shows (a <video> through requestVideoFrameCallback, an <img> on every animation frame) with
 * the server's own strip decoder (the ES module /static/timestamp-strip.js). With
 * `programDateTime`, also reads for each shown frame the page's
 * window.framecastPlayingDateMs() (the HLS page's PROGRAM-DATE-TIME of the playing position).
 * Resolves to
 * { frames: [{ captureMs, shownMs }], pdt: [{ playingMs, atMs }], callbacks, undecodable,
 *   elapsedMs, startTime, endTime }
 * where startTime/endTime are a video's currentTime at both ends (null for an <img>).
 */
export async function sampleShownFrames({ selector, sampleMs, programDateTime = false }) {
  const { decodeTimestampStrip } = await import("/static/timestamp-strip.js");
  return new Promise((resolve) => {
    const el = document.querySelector(selector);
    const isVideo = el instanceof HTMLVideoElement;
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const frames = [];
    const pdt = [];
    let callbacks = 0;
    let undecodable = 0;
    let last = null;
    const started = performance.now();
    const startTime = isVideo ? el.currentTime : null;
    // The frame callbacks stop when the picture stops; a timer ends the sampling regardless.
    const stop = setTimeout(finish, sampleMs + 1000);
    let finished = false;
    function finish() {
      if (finished) return;
      finished = true;
      clearTimeout(stop);
      resolve({
        frames,
        pdt,
        callbacks,
        undecodable,
        elapsedMs: performance.now() - started,
        startTime,
        endTime: isVideo ? el.currentTime : null,
      });
    }
    function onFrame(metadata) {
      if (finished) return;
      if (performance.now() - started >= sampleMs) return finish();
      const w0 = isVideo ? el.videoWidth : el.naturalWidth;
      const h0 = isVideo ? el.videoHeight : el.naturalHeight;
      if (w0 > 0 && (!isVideo || el.readyState >= 2) && (isVideo || el.complete)) {
        // When the frame is on screen: requestVideoFrameCallback says when it will be shown.
        const shownMs =
          metadata && typeof metadata.expectedDisplayTime === "number"
            ? Date.now() + (metadata.expectedDisplayTime - performance.now())
            : Date.now();
        // The decoder works on any scaled copy of the whole picture; at most 640 pixels wide
        // keeps the readback cheap on a 2-core machine.
        const w = Math.min(w0, 640);
        const h = Math.max(24, Math.round((w * h0) / w0));
        if (canvas.width !== w || canvas.height !== h) {
          canvas.width = w;
          canvas.height = h;
        }
        ctx.drawImage(el, 0, 0, w, h);
        callbacks += 1;
        if (programDateTime && typeof window.framecastPlayingDateMs === "function") {
          const playingMs = window.framecastPlayingDateMs();
          if (typeof playingMs === "number") pdt.push({ playingMs, atMs: Date.now() });
        }
        const capture = decodeTimestampStrip(ctx.getImageData(0, 0, w, h));
        if (capture === null) {
          undecodable += 1;
        } else if (capture !== last) {
          last = capture;
          frames.push({ captureMs: capture, shownMs });
        }
      }
      next();
    }
    function next() {
      if (isVideo) el.requestVideoFrameCallback((_now, metadata) => onFrame(metadata));
      else requestAnimationFrame(() => onFrame(null));
    }
    next();
  });
}

export function median(values) {
  return percentile(values, 50);
}

export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const round1 = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);

/** Median, p90, min and max of latencies in ms, rounded to 0.1 ms. */
export function latencyStats(latencies) {
  return {
    median: round1(median(latencies)),
    p90: round1(percentile(latencies, 90)),
    min: round1(latencies.length ? Math.min(...latencies) : null),
    max: round1(latencies.length ? Math.max(...latencies) : null),
  };
}

/** Latency statistics (ms) and frame rate of one sampling. */
export function summarize(sample) {
  const latencies = sample.frames.map((f) => f.shownMs - f.captureMs);
  const spanS = sample.elapsedMs / 1000;
  return {
    sample_s: round1(spanS),
    distinct_frames: sample.frames.length,
    shown_fps: round1(spanS > 0 ? sample.frames.length / spanS : 0),
    undecodable_frames: sample.undecodable,
    latency_ms: latencyStats(latencies),
    pdt_latency_ms: (sample.pdt || []).length
      ? latencyStats(sample.pdt.map((p) => p.atMs - p.playingMs))
      : null,
  };
}
