// The live page in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
//   node tests/browser/mjpeg_page.mjs BASE_URL OUT_DIR
//
// Opens BASE_URL/, waits for the MJPEG <img> to show a picture, then for a few seconds reads the
// capture time out of every painted frame (the timestamp strip, decoded by the server's own
// ES module /static/timestamp-strip.js) to check that the picture moves and to measure the painted frame rate
// and capture-to-display latency. Also checks the page's latency readout, saves a screenshot
// to OUT_DIR/mjpeg_page.png and prints one JSON line of results. Exit code 0 when every check
// passes, 1 otherwise. Every wait has a time limit; the whole run is capped by RUN_LIMIT_MS.

import { join } from "node:path";

import { bounded, runInChromium, sampleShownFrames, summarize, watchPage } from "./frame_sampler.mjs";

// The whole run, whatever hangs: the Rust test kills the script at 60 s, this reports first.
const RUN_LIMIT_MS = 50_000;
// Page load and the first MJPEG frame.
const FIRST_FRAME_TIMEOUT_MS = 10_000;
// How long painted frames are sampled.
const SAMPLE_MS = 3_000;
// The server runs the test pattern at 30 fps, but headless Chromium on 2 cores paints an
// MJPEG <img> at well under that (about 19 fps at 720p): 10 distinct frames in 3 s proves the
// picture moves without turning a slow machine into a failure. The rate is reported.
const MIN_DISTINCT_FRAMES = 10;
// Capture-to-display latency on loopback is tens of ms; seconds means frames pile up somewhere.
const MAX_MEDIAN_LATENCY_MS = 1_000;
// Both clocks are the same machine's; a frame cannot show before it was captured, beyond the
// rounding of the readings.
const MIN_LATENCY_MS = -5;
// The page's readouts refresh every 500 ms; a few refreshes are enough to show a number.
const READOUT_TIMEOUT_MS = 5_000;

const [baseArg, outDir] = process.argv.slice(2);
if (!baseArg || !outDir) {
  console.error("usage: node tests/browser/mjpeg_page.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");

async function run(context, result) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(FIRST_FRAME_TIMEOUT_MS);
  watchPage(page, result);

  const response = await page.goto(baseUrl + "/", {
    waitUntil: "domcontentloaded",
    timeout: FIRST_FRAME_TIMEOUT_MS,
  });
  result.page_status = response ? response.status() : null;
  if (result.page_status !== 200) result.failures.push(`GET / answered ${result.page_status}`);

  const firstFrameStarted = Date.now();
  await page.waitForFunction(
    () => {
      const img = document.getElementById("live");
      return img && img.complete && img.naturalWidth > 0;
    },
    null,
    { timeout: FIRST_FRAME_TIMEOUT_MS, polling: 50 },
  );
  result.first_frame_ms = Date.now() - firstFrameStarted;
  const size = await page.evaluate(() => {
    const img = document.getElementById("live");
    return { width: img.naturalWidth, height: img.naturalHeight, src: img.currentSrc };
  });
  result.picture = `${size.width}x${size.height}`;
  result.img_src = size.src;

  const hasDecoder = await page.evaluate(async () => {
    try {
      const strip = await import("/static/timestamp-strip.js");
      return typeof strip.decodeTimestampStrip === "function";
    } catch {
      return false;
    }
  });
  if (!hasDecoder) {
    result.failures.push("/static/timestamp-strip.js does not export decodeTimestampStrip");
    return;
  }

  const sample = await bounded(SAMPLE_MS + 5_000, "sample frames", () =>
    page.evaluate(sampleShownFrames, { selector: "#live", sampleMs: SAMPLE_MS }),
  );
  const summary = summarize(sample);
  result.sample_s = summary.sample_s;
  result.distinct_frames = summary.distinct_frames;
  result.painted_fps = summary.shown_fps;
  result.animation_frames = sample.callbacks;
  result.undecodable_frames = summary.undecodable_frames;
  result.latency_ms = summary.latency_ms;
  if (sample.frames.length < MIN_DISTINCT_FRAMES) {
    result.failures.push(
      `only ${sample.frames.length} distinct frames in ${result.sample_s} s (want >= ${MIN_DISTINCT_FRAMES})`,
    );
  }
  const captures = sample.frames.map((f) => f.captureMs);
  if (captures.some((c, i) => i > 0 && c <= captures[i - 1])) {
    result.failures.push("capture times went backwards: frames shown out of order");
  }
  const { median, min } = result.latency_ms;
  if (median !== null && median > MAX_MEDIAN_LATENCY_MS) {
    result.failures.push(`median latency ${median} ms > ${MAX_MEDIAN_LATENCY_MS} ms`);
  }
  if (min !== null && min < MIN_LATENCY_MS) {
    result.failures.push(`a frame showed ${min} ms before its capture`);
  }

  // The page's own readouts: a number of milliseconds and a frame rate.
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
    fps: document.getElementById("fps").textContent.trim(),
    viewer: window.framecastViewer ?? null,
    offline_shown: !document.getElementById("offline").hidden,
    host_filled: [...document.querySelectorAll(".host")].every((el) => el.textContent.length > 0),
  }));
  result.latency_readout = readouts.latency;
  result.fps_readout = readouts.fps;
  result.viewer = readouts.viewer;
  if (!/^-?\d+ ms$/.test(readouts.latency)) {
    result.failures.push(`latency readout shows ${JSON.stringify(readouts.latency)}, not a number of ms`);
  }
  if (!/^\d+ fps$/.test(readouts.fps)) {
    result.failures.push(`frame-rate readout shows ${JSON.stringify(readouts.fps)}`);
  }
  if (!readouts.viewer || typeof readouts.viewer.lastCapture !== "number") {
    result.failures.push("window.framecastViewer has no lastCapture");
  }
  if (readouts.offline_shown) result.failures.push("the Reconnecting overlay is showing");
  if (!readouts.host_filled) result.failures.push("the usage box has an empty host");

  result.screenshot = join(outDir, "mjpeg_page.png");
  await page.screenshot({ path: result.screenshot, fullPage: true, timeout: 10_000 });
  if (result.page_errors.length) result.failures.push(`${result.page_errors.length} page error(s)`);
}

const result = {
  test: "mjpeg_page",
  url: baseUrl + "/",
  failures: [],
  page_errors: [],
  console_errors: [],
  http_errors: [],
};
await runInChromium({
  result,
  outDir,
  limitMs: RUN_LIMIT_MS,
  work: (context) => run(context, result),
});
