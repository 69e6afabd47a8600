// The video pages of a camera's own H.264 (passthrough) in a real browser: Debian's Chromium,
// headless, driven by playwright-core.
//
//   node tests/browser/camera_pages.mjs BASE_URL OUT_DIR WIDTHxHEIGHT
//
// Opens BASE_URL/hls (Low-Latency HLS through hls.js) and BASE_URL/live (/live.mp4 through the
// page's own MSE player). A camera's picture has no timestamp strip, so instead of reading
// capture times this waits for the <video> to play, then for a few seconds fingerprints every
// presented frame (its pixels drawn to a canvas) to check that playback advances, the picture
// changes, and the decoded size is the camera's. Saves OUT_DIR/camera_hls_page.png and
// OUT_DIR/camera_live_page.png. Prints one JSON line of results; exit code 0 when every check
// passes, 1 otherwise. Every wait has a time limit; the whole run is capped by RUN_LIMIT_MS.

import { join } from "node:path";

import { bounded, round1, runInChromium, watchPage } from "./frame_sampler.mjs";

// The whole run, whatever hangs: the Rust test kills the script at 60 s, this reports first.
const RUN_LIMIT_MS = 55_000;
// Page load until the video plays: the playlist, the init section and a part or two.
const FIRST_FRAME_TIMEOUT_MS = 15_000;
// How long presented frames are sampled on each page.
const SAMPLE_MS = 3_000;
// The camera's ball moves every frame; 5 distinct pictures in 3 s prove the picture moves
// without failing a slow machine.
const MIN_DISTINCT_FRAMES = 5;
// Playback must advance in 3 s of sampling; less than this means it mostly stalled.
const MIN_PLAYED_S = 1;

const PAGES = [
  { name: "hls", path: "/hls", mode: "ll-hls", screenshot: "camera_hls_page.png" },
  { name: "live", path: "/live", mode: "mse", screenshot: "camera_live_page.png" },
];

const [baseArg, outDir, sizeArg] = process.argv.slice(2);
const size = /^(\d+)x(\d+)$/.exec(sizeArg ?? "");
if (!baseArg || !outDir || !size) {
  console.error("usage: node tests/browser/camera_pages.mjs BASE_URL OUT_DIR WIDTHxHEIGHT");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");
const expected = { width: Number(size[1]), height: Number(size[2]) };

/**
 * In the page: for `sampleMs`, fingerprints each frame the <video> presents
 * (requestVideoFrameCallback, pixels through a canvas). Resolves to
 * { distinct, callbacks, width, height, startTime, endTime }.
 */
function fingerprintFrames({ sampleMs }) {
  return new Promise((resolve) => {
    const video = document.getElementById("video");
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const seen = new Set();
    let callbacks = 0;
    const started = performance.now();
    const startTime = video.currentTime;
    const onFrame = () => {
      callbacks += 1;
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      ctx.drawImage(video, 0, 0);
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      // FNV-1a over every 7th byte: enough to tell a moved ball from the frame before.
      let hash = 0x811c9dc5;
      for (let i = 0; i < pixels.length; i += 7) {
        hash = Math.imul(hash ^ pixels[i], 0x01000193) >>> 0;
      }
      seen.add(hash);
      if (performance.now() - started < sampleMs) {
        video.requestVideoFrameCallback(onFrame);
      } else {
        resolve({
          distinct: seen.size,
          callbacks,
          width: video.videoWidth,
          height: video.videoHeight,
          startTime,
          endTime: video.currentTime,
        });
      }
    };
    video.requestVideoFrameCallback(onFrame);
  });
}

async function checkPage(context, spec, result) {
  const fail = (what) => result.failures.push(`${spec.path}: ${what}`);
  const page = await context.newPage();
  page.setDefaultTimeout(FIRST_FRAME_TIMEOUT_MS);
  const report = { url: baseUrl + spec.path, page_errors: [], http_errors: [] };
  result[spec.name] = report;
  watchPage(page, report);
  try {
    const response = await page.goto(report.url, {
      waitUntil: "domcontentloaded",
      timeout: FIRST_FRAME_TIMEOUT_MS,
    });
    report.page_status = response ? response.status() : null;
    if (report.page_status !== 200) return fail(`answered ${report.page_status}`);
    try {
      await page.waitForFunction(
        () => {
          const v = document.getElementById("video");
          return v && v.readyState >= 2 && v.currentTime > 0 && !v.paused;
        },
        null,
        { timeout: FIRST_FRAME_TIMEOUT_MS, polling: 50 },
      );
    } catch {
      const state = await page.evaluate(() => {
        const v = document.getElementById("video");
        return { readyState: v.readyState, currentTime: v.currentTime, error: v.error?.message };
      });
      return fail(`the video did not play within ${FIRST_FRAME_TIMEOUT_MS} ms: ${JSON.stringify(state)}`);
    }
    const sample = await bounded(SAMPLE_MS + 5_000, "sample frames", () =>
      page.evaluate(fingerprintFrames, { sampleMs: SAMPLE_MS }),
    );
    report.distinct_frames = sample.distinct;
    report.presented_frames = sample.callbacks;
    report.size = `${sample.width}x${sample.height}`;
    report.played_s = round1(sample.endTime - sample.startTime);
    if (!(sample.endTime - sample.startTime >= MIN_PLAYED_S)) {
      fail(`currentTime advanced only ${report.played_s} s in ${SAMPLE_MS / 1000} s`);
    }
    if (sample.distinct < MIN_DISTINCT_FRAMES) {
      fail(`only ${sample.distinct} distinct pictures (want >= ${MIN_DISTINCT_FRAMES})`);
    }
    if (sample.width !== expected.width || sample.height !== expected.height) {
      fail(`decoded ${report.size}, the camera sends ${sizeArg}`);
    }
    report.player = await page.evaluate(() => window.framecastPlayer ?? null);
    if (report.player?.mode !== spec.mode) {
      fail(`framecastPlayer.mode is ${report.player?.mode}, want ${spec.mode}`);
    }
    if (report.page_errors.length) fail(`${report.page_errors.length} page error(s)`);
    report.screenshot = join(outDir, spec.screenshot);
    await page.screenshot({ path: report.screenshot, fullPage: true, timeout: 10_000 });
  } finally {
    await page.close().catch(() => {});
  }
}

const result = { test: "camera_pages", url: baseUrl, failures: [] };
await runInChromium({
  result,
  outDir,
  limitMs: RUN_LIMIT_MS,
  work: async (context) => {
    for (const spec of PAGES) await checkPage(context, spec, result);
  },
});
