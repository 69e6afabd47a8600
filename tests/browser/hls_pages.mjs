// The video pages in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
//   node tests/browser/hls_pages.mjs BASE_URL OUT_DIR
//
// Opens BASE_URL/hls (Low-Latency HLS through hls.js) and BASE_URL/live (/live.mp4 through the
// page's own MSE player). On each, waits for the <video> to play, then for a few seconds reads
// the capture time out of every presented frame (the timestamp strip, decoded by the server's
// own ES module /static/timestamp-strip.js) to check that playback advances and the picture changes, and
// measures capture-to-display latency. Also checks the page's readouts and
// window.framecastPlayer, and saves OUT_DIR/hls_page.png and OUT_DIR/live_page.png. Prints one
// JSON line of results; exit code 0 when every check passes, 1 otherwise. Every wait has a time
// limit; the whole run is capped by RUN_LIMIT_MS.

import { join } from "node:path";

import {
  bounded,
  round1,
  runInChromium,
  sampleShownFrames,
  summarize,
  watchPage,
} from "./frame_sampler.mjs";

// The whole run, whatever hangs: the Rust test kills the script at 60 s, this reports first.
const RUN_LIMIT_MS = 55_000;
// Page load until the video plays: the playlist, the init section and a part or two.
const FIRST_FRAME_TIMEOUT_MS = 12_000;
// How long presented frames are sampled on each page.
const SAMPLE_MS = 3_000;
// The test pattern runs at 30 fps; headless Chromium on 2 cores presents fewer, but 10
// distinct frames in 3 s proves the picture moves without failing a slow machine.
const MIN_DISTINCT_FRAMES = 10;
// Playback must advance in 3 s of sampling; less than this means it mostly stalled.
const MIN_PLAYED_S = 1;
// Latency bounds are loose: this is a test that the pages work, not the benchmark
// (benches/browser_latency.mjs measures against the targets). LL-HLS aims at about 1 s and
// starts further behind while it catches up; MSE aims at well under 0.5 s.
const MAX_MEDIAN_LATENCY_MS = { "ll-hls": 5_000, mse: 2_000 };
// Both clocks are the same machine's; a frame cannot show before it was captured.
const MIN_LATENCY_MS = -5;
// The readouts refresh every 500 ms.
const READOUT_TIMEOUT_MS = 5_000;

const PAGES = [
  { name: "hls", path: "/hls", mode: "ll-hls", screenshot: "hls_page.png" },
  { name: "live", path: "/live", mode: "mse", screenshot: "live_page.png" },
];

const [baseArg, outDir] = process.argv.slice(2);
if (!baseArg || !outDir) {
  console.error("usage: node tests/browser/hls_pages.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");

async function checkPage(context, spec, result) {
  const failures = result.failures;
  const fail = (what) => failures.push(`${spec.path}: ${what}`);
  const page = await context.newPage();
  page.setDefaultTimeout(FIRST_FRAME_TIMEOUT_MS);
  const report = { url: baseUrl + spec.path, page_errors: [], http_errors: [], console_errors: [] };
  result[spec.name] = report;
  watchPage(page, report);
  try {
    const response = await page.goto(report.url, {
      waitUntil: "domcontentloaded",
      timeout: FIRST_FRAME_TIMEOUT_MS,
    });
    report.page_status = response ? response.status() : null;
    if (report.page_status !== 200) return fail(`answered ${report.page_status}`);

    const started = Date.now();
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
        return {
          overlay: document.getElementById("offline").textContent,
          readyState: v.readyState,
          currentTime: v.currentTime,
          paused: v.paused,
          error: v.error && v.error.message,
        };
      });
      return fail(`the video did not play within ${FIRST_FRAME_TIMEOUT_MS} ms: ${JSON.stringify(state)}`);
    }
    report.first_frame_ms = Date.now() - started;

    const sample = await bounded(SAMPLE_MS + 5_000, "sample frames", () =>
      page.evaluate(sampleShownFrames, { selector: "#video", sampleMs: SAMPLE_MS }),
    );
    Object.assign(report, summarize(sample));
    report.played_s = round1(sample.endTime - sample.startTime);
    if (!(sample.endTime - sample.startTime >= MIN_PLAYED_S)) {
      fail(`currentTime advanced only ${report.played_s} s in ${SAMPLE_MS / 1000} s`);
    }
    if (sample.frames.length < MIN_DISTINCT_FRAMES) {
      fail(`only ${sample.frames.length} distinct frames (want >= ${MIN_DISTINCT_FRAMES})`);
    }
    const captures = sample.frames.map((f) => f.captureMs);
    if (captures.some((c, i) => i > 0 && c <= captures[i - 1])) {
      fail("capture times went backwards: frames shown out of order");
    }
    const med = report.latency_ms.median;
    if (med !== null && med > MAX_MEDIAN_LATENCY_MS[spec.mode]) {
      fail(`median latency ${med} ms > ${MAX_MEDIAN_LATENCY_MS[spec.mode]} ms`);
    }
    if (report.latency_ms.min !== null && report.latency_ms.min < MIN_LATENCY_MS) {
      fail(`a frame showed ${report.latency_ms.min} ms before its capture`);
    }

    // The page's own readouts and window.framecastPlayer.
    try {
      await page.waitForFunction(
        () => /^-?\d+ ms$/.test(document.getElementById("latency").textContent.trim()),
        null,
        { timeout: READOUT_TIMEOUT_MS, polling: 100 },
      );
    } catch {
      // Reported below with whatever the readout shows.
    }
    const readouts = await page.evaluate(() => ({
      latency: document.getElementById("latency").textContent.trim(),
      buffer: document.getElementById("buffer").textContent.trim(),
      rate: document.getElementById("rate").textContent.trim(),
      resolution: document.getElementById("resolution").textContent.trim(),
      overlay_shown: !document.getElementById("offline").hidden,
      player: window.framecastPlayer ?? null,
    }));
    report.readouts = {
      latency: readouts.latency,
      buffer: readouts.buffer,
      rate: readouts.rate,
      resolution: readouts.resolution,
    };
    report.player = readouts.player;
    if (!/^-?\d+ ms$/.test(readouts.latency)) {
      fail(`latency readout shows ${JSON.stringify(readouts.latency)}`);
    }
    if (!/^\d+×\d+$/.test(readouts.resolution)) {
      fail(`resolution readout shows ${JSON.stringify(readouts.resolution)}`);
    }
    const player = readouts.player;
    if (!player) {
      fail("window.framecastPlayer is missing");
    } else {
      if (player.mode !== spec.mode) fail(`framecastPlayer.mode is ${player.mode}, want ${spec.mode}`);
      if (!(player.frames > 0)) fail("framecastPlayer.frames is not positive");
      if (typeof player.latencyMs !== "number") fail("framecastPlayer.latencyMs is not a number");
      if (!(player.currentTime > 0)) fail("framecastPlayer.currentTime is not positive");
      if (player.latencySource !== "picture") {
        fail(`latency came from ${player.latencySource}, not the picture's timestamp strip`);
      }
    }
    if (readouts.overlay_shown) fail("the overlay (Starting/Reconnecting) is showing");
    if (report.page_errors.length) fail(`${report.page_errors.length} page error(s)`);

    report.screenshot = join(outDir, spec.screenshot);
    await page.screenshot({ path: report.screenshot, fullPage: true, timeout: 10_000 });
  } finally {
    await page.close().catch(() => {});
  }
}

const result = { test: "hls_pages", url: baseUrl, failures: [] };
await runInChromium({
  result,
  outDir,
  limitMs: RUN_LIMIT_MS,
  work: async (context) => {
    for (const spec of PAGES) await checkPage(context, spec, result);
  },
  finish: (done) => {
    done.latency_ms = {
      ll_hls_median: done.hls?.latency_ms?.median ?? null,
      mse_median: done.live?.latency_ms?.median ?? null,
    };
  },
});
