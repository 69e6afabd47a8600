// Signed links in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
//   node tests/browser/signed_links.mjs BASE_URL OUT_DIR MJPEG_LINK HLS_LINK EXPIRED_MJPEG_LINK
//
// The links are paths with their `?exp=…&sig=…` query, as `framecast sign-url` prints them. On
// a page of the server (same origin, so hls.js may fetch), adds an <img> with the signed MJPEG
// link and checks that its picture changes (capture times read from the test pattern's
// timestamp strip by the server's own /static/timestamp-strip.js); an <img> with the expired
// link, which must fail to load; and a <video> that the bundled hls.js plays from the signed
// live.m3u8, whose playback must advance with changing pictures. Every HTTP error the page
// meets must be the expired link's 401. Saves OUT_DIR/signed_links.png. Prints one JSON line
// of results; exit code 0 when every check passes, 1 otherwise. Every wait is bounded.

import { join } from "node:path";

import { bounded, round1, runInChromium, sampleShownFrames, watchPage } from "./frame_sampler.mjs";

// The whole run, whatever hangs: the Rust test kills the script at 60 s, this reports first.
const RUN_LIMIT_MS = 55_000;
// The <img> shows a first frame, the expired one fails, hls.js plays: each within this.
const LOAD_TIMEOUT_MS = 15_000;
// How long the pictures are sampled.
const SAMPLE_MS = 2_500;
// The picture moves: a few distinct capture times prove it without failing a slow machine.
const MIN_DISTINCT_FRAMES = 3;

const [baseArg, outDir, mjpegLink, hlsLink, expiredLink] = process.argv.slice(2);
if (!baseArg || !outDir || !mjpegLink || !hlsLink || !expiredLink) {
  console.error(
    "usage: node tests/browser/signed_links.mjs BASE_URL OUT_DIR MJPEG_LINK HLS_LINK EXPIRED_MJPEG_LINK",
  );
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");

const result = { failures: [] };

async function work(context) {
  const fail = (what) => result.failures.push(what);
  const page = await context.newPage();
  page.setDefaultTimeout(LOAD_TIMEOUT_MS);
  const report = { page_errors: [], http_errors: [], console_errors: [] };
  result.page = report;
  watchPage(page, report);
  // Any page of the server: the test only needs its origin (the server has no users).
  await page.goto(`${baseUrl}/healthz`, { timeout: LOAD_TIMEOUT_MS });

  // The signed MJPEG in an <img>.
  await page.evaluate((src) => {
    const img = document.createElement("img");
    img.id = "signed";
    img.src = src;
    document.body.append(img);
  }, mjpegLink);
  try {
    await page.waitForFunction(() => document.getElementById("signed").naturalWidth > 0, null, {
      timeout: LOAD_TIMEOUT_MS,
    });
    const sample = await bounded(SAMPLE_MS + 5_000, "sample the signed <img>", () =>
      page.evaluate(sampleShownFrames, { selector: "#signed", sampleMs: SAMPLE_MS }),
    );
    result.img_distinct_frames = sample.frames.length;
    if (sample.frames.length < MIN_DISTINCT_FRAMES) {
      fail(`signed <img>: ${sample.frames.length} distinct frames, want ${MIN_DISTINCT_FRAMES}`);
    }
  } catch (err) {
    fail(`signed <img> shows no picture: ${String(err.message || err).split("\n")[0]}`);
  }

  // The expired link: the <img> fails.
  result.expired_img = await bounded(LOAD_TIMEOUT_MS, "the expired <img>", () =>
    page.evaluate(
      (src) =>
        new Promise((resolve) => {
          const img = document.createElement("img");
          img.onload = () => resolve("loaded");
          img.onerror = () => resolve("error");
          img.src = src;
          document.body.append(img);
        }),
      expiredLink,
    ),
  );
  if (result.expired_img !== "error") fail(`expired <img>: ${result.expired_img}`);

  // hls.js plays the signed live.m3u8.
  await page.addScriptTag({ url: `${baseUrl}/static/hls.js` });
  await page.evaluate((src) => {
    const video = document.createElement("video");
    video.id = "video";
    video.muted = true;
    video.width = 640;
    document.body.append(video);
    window.hlsErrors = [];
    const hls = new window.Hls();
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      window.hlsErrors.push(`${data.type}/${data.details}${data.fatal ? " (fatal)" : ""}`);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    video.play().catch(() => {});
  }, hlsLink);
  try {
    await page.waitForFunction(
      () => {
        const v = document.getElementById("video");
        return v.readyState >= 2 && v.currentTime > 0 && !v.paused;
      },
      null,
      { timeout: LOAD_TIMEOUT_MS },
    );
    const sample = await bounded(SAMPLE_MS + 5_000, "sample the hls.js <video>", () =>
      page.evaluate(sampleShownFrames, { selector: "#video", sampleMs: SAMPLE_MS }),
    );
    result.video_distinct_frames = sample.frames.length;
    result.video_played_s = round1(sample.endTime - sample.startTime);
    if (sample.frames.length < MIN_DISTINCT_FRAMES) {
      fail(`hls.js: ${sample.frames.length} distinct frames, want ${MIN_DISTINCT_FRAMES}`);
    }
    if (!(sample.endTime > sample.startTime)) fail("hls.js: playback did not advance");
  } catch (err) {
    fail(`hls.js does not play the signed playlist: ${String(err.message || err).split("\n")[0]}`);
  }
  result.hls_errors = await page.evaluate(() => window.hlsErrors);
  const fatal = result.hls_errors.filter((e) => e.endsWith("(fatal)"));
  if (fatal.length > 0) fail(`hls.js: ${fatal.join(", ")}`);

  // The only HTTP error: the expired link's 401.
  const unexpected = report.http_errors.filter(
    (e) => !(e.startsWith("401 ") && e.endsWith(expiredLink)),
  );
  if (unexpected.length > 0) fail(`HTTP errors: ${unexpected.join(", ")}`);
  if (report.page_errors.length > 0) fail(`page errors: ${report.page_errors.join(", ")}`);
  await page.screenshot({ path: join(outDir, "signed_links.png") }).catch(() => {});
}

await runInChromium({ result, outDir, limitMs: RUN_LIMIT_MS, work });
