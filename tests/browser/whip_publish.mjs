// Publishing a camera with WHIP from a real browser: Debian's Chromium, headless, with its fake
// camera, driven by playwright-core.
//
//   node tests/browser/whip_publish.mjs BASE_URL OUT_DIR STREAM
//
// Opens BASE_URL/streams/STREAM/publish and presses Start: the page takes the (fake) camera and
// publishes it over WHIP. Once it is connected and sending, a second publish page must be
// refused (409), and a WebRTC viewer (WHEP, in a third page) must play the stream with a
// picture that changes. Then it prints `PUBLISHING {json}` and waits for a line `stop` on
// standard input (the Rust test checks MJPEG, HLS and DELETE meanwhile); checks that the page
// noticed framecast ending its session (it says the connection was lost); publishes again and
// prints `REPUBLISHED {json}`; at the next `stop` closes its connection without a DELETE and
// prints `DROPPED {}`; at the last `stop` prints one JSON line of results. Exit code 0 when every check passes, 1 otherwise. Every wait has
// a time limit; the whole run is capped by RUN_LIMIT_MS.

import { join } from "node:path";
import { createInterface } from "node:readline";

import { bounded, runInChromium, watchPage } from "./frame_sampler.mjs";

// The Rust test kills the script at its own limit; this reports first.
const RUN_LIMIT_MS = 100_000;
// Page load, camera, ICE and DTLS on loopback: a second or two; a busy machine takes longer.
const CONNECT_TIMEOUT_MS = 20_000;
// How long the WebRTC viewer's frames are counted.
const SAMPLE_MS = 3_000;
// A 30 fps picture for 3 s, however slowly headless Chromium paints: a handful of frames at
// least, and the fake camera's picture moves.
const MIN_VIEWER_FRAMES = 10;
const MIN_DISTINCT_PICTURES = 3;
// How long the Rust side may take with its checks before it says `stop`.
const STOP_TIMEOUT_MS = 60_000;

// The fake camera and no permission prompt (loopback WebRTC is on for every browser test).
const CHROMIUM_ARGS = [
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
];

const [baseArg, outDir, stream] = process.argv.slice(2);
if (!baseArg || !outDir || !stream) {
  console.error("usage: node tests/browser/whip_publish.mjs BASE_URL OUT_DIR STREAM");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");
const publishUrl = `${baseUrl}/streams/${stream}/publish`;

/** Resolves at the next line `stop` on standard input (at once after its end). */
const stopRequested = (() => {
  let waiting = [];
  let unclaimed = 0;
  let ended = false;
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() !== "stop") return;
    const next = waiting.shift();
    if (next) next();
    else unclaimed += 1;
  });
  lines.on("close", () => {
    ended = true;
    for (const next of waiting) next();
    waiting = [];
  });
  return () =>
    new Promise((resolve) => {
      if (unclaimed > 0) {
        unclaimed -= 1;
        resolve();
      } else if (ended) {
        resolve();
      } else {
        waiting.push(resolve);
      }
    });
})();

/** Opens the publish page and presses Start; the page's own status object afterwards. */
async function startPublishing(context, result) {
  const page = await context.newPage();
  watchPage(page, result);
  const response = await page.goto(publishUrl, { waitUntil: "domcontentloaded" });
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${publishUrl} answered ${response ? response.status() : "nothing"}`);
  }
  await page.click("#start");
  return page;
}

/** In a page: WHEP to `whepUrl`, then frames and distinct pictures shown during `sampleMs`. */
async function watchWithWhep({ whepUrl, sampleMs, connectMs }) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  const trackCame = new Promise((resolve) => pc.addEventListener("track", (e) => resolve(e)));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 2000);
  });
  const response = await fetch(whepUrl, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  const answer = await response.text();
  if (response.status !== 201) {
    pc.close();
    return { status: response.status, error: answer.trim() };
  }
  const sessionUrl = new URL(response.headers.get("Location"), window.location.href).href;
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  const event = await Promise.race([
    trackCame,
    new Promise((resolve) => setTimeout(() => resolve(null), connectMs)),
  ]);
  const result = { status: 201, frames: 0, distinct: 0, width: 0, height: 0 };
  if (!event) {
    result.error = "no track";
  } else {
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    document.body.append(video);
    video.srcObject = new MediaStream([event.track]);
    const playing = await new Promise((resolve) => {
      const started = performance.now();
      const check = () => {
        if (video.readyState >= 2 && video.videoWidth > 0) return resolve(true);
        if (performance.now() - started > connectMs) return resolve(false);
        setTimeout(check, 50);
      };
      check();
    });
    if (!playing) {
      result.error = `the video did not play (connection ${pc.connectionState})`;
    } else {
      result.width = video.videoWidth;
      result.height = video.videoHeight;
      const canvas = document.createElement("canvas");
      canvas.width = 64;
      canvas.height = 48;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      const pictures = new Set();
      await new Promise((resolve) => {
        const started = performance.now();
        const stop = setTimeout(resolve, sampleMs + 1000);
        const onFrame = () => {
          if (performance.now() - started >= sampleMs) {
            clearTimeout(stop);
            return resolve();
          }
          result.frames += 1;
          ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
          const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
          let hash = 0;
          for (let i = 0; i < pixels.length; i += 4) hash = (hash * 31 + pixels[i + 1]) >>> 0;
          pictures.add(hash);
          video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
      });
      result.distinct = pictures.size;
    }
  }
  pc.close();
  await fetch(sessionUrl, { method: "DELETE" }).catch(() => {});
  return result;
}

async function run(context, result) {
  // The publisher.
  const publisher = await startPublishing(context, result);
  await publisher
    .waitForFunction(
      () => {
        const p = window.framecastPublisher;
        // The bitrate needs two readings of the statistics, a second apart.
        return p && (p.state === "failed" || (p.state === "connected" && p.bitrateBps > 0));
      },
      null,
      { timeout: CONNECT_TIMEOUT_MS, polling: 100 },
    )
    .catch(() => {});
  const published = await publisher.evaluate(() => ({ ...window.framecastPublisher }));
  result.publisher = published;
  if (published.state !== "connected") {
    result.failures.push(
      `the publisher is ${published.state}, not connected: ${published.error ?? "no error shown"}`,
    );
    return;
  }
  const readouts = await publisher.evaluate(() => ({
    state: document.getElementById("state").textContent.trim(),
    bitrate: document.getElementById("bitrate").textContent.trim(),
    codec: document.getElementById("codec").textContent.trim(),
  }));
  result.readouts = readouts;
  if (readouts.state !== "connected") result.failures.push(`the state readout shows ${readouts.state}`);
  if (!/^[\d.]+ (k|M)bit\/s$/.test(readouts.bitrate) || readouts.bitrate.startsWith("0 ")) {
    result.failures.push(`the bitrate readout shows ${JSON.stringify(readouts.bitrate)}`);
  }
  if (!/^H264$/i.test(published.codec)) {
    result.failures.push(`the publisher sends ${published.codec || "no codec"}, not H.264`);
  }

  // A second publisher while the first is in: refused with 409.
  const second = await startPublishing(context, result);
  await second
    .waitForFunction(() => window.framecastPublisher?.state === "failed", null, {
      timeout: CONNECT_TIMEOUT_MS,
      polling: 100,
    })
    .catch(() => {});
  result.second_publisher = await second.evaluate(() => ({ ...window.framecastPublisher }));
  if (!String(result.second_publisher.error).includes("409")) {
    result.failures.push(
      `the second publisher was not refused with 409: ${JSON.stringify(result.second_publisher)}`,
    );
  }
  await second.close();

  // A WebRTC viewer of what the publisher sends.
  const viewer = await context.newPage();
  watchPage(viewer, result);
  await viewer.goto(`${baseUrl}/streams/${stream}/status`, { waitUntil: "domcontentloaded" });
  result.whep = await bounded(CONNECT_TIMEOUT_MS + SAMPLE_MS + 5_000, "WHEP viewer", () =>
    viewer.evaluate(watchWithWhep, {
      whepUrl: `/streams/${stream}/whep`,
      sampleMs: SAMPLE_MS,
      connectMs: CONNECT_TIMEOUT_MS,
    }),
  );
  if (result.whep.status !== 201) {
    result.failures.push(`WHEP answered ${result.whep.status}: ${result.whep.error}`);
  } else if (result.whep.error) {
    result.failures.push(`WHEP viewer: ${result.whep.error}`);
  } else {
    if (result.whep.frames < MIN_VIEWER_FRAMES) {
      result.failures.push(`the WebRTC viewer showed ${result.whep.frames} frames`);
    }
    if (result.whep.distinct < MIN_DISTINCT_PICTURES) {
      result.failures.push(`the WebRTC viewer's picture did not change (${result.whep.distinct} distinct)`);
    }
  }
  await viewer.close();

  result.screenshot = join(outDir, "whip_publish.png");
  await publisher.screenshot({ path: result.screenshot, fullPage: true, timeout: 10_000 });

  // The Rust side's turn: MJPEG, HLS, DELETE.
  console.log("PUBLISHING " + JSON.stringify({ session_url: published.sessionUrl }));
  await bounded(STOP_TIMEOUT_MS, "the test's stop", stopRequested);
  // framecast ended the session (the test's DELETE): the page notices, lets the camera go
  // and says so, rather than showing "connected" until the browser gives up.
  await publisher
    .waitForFunction(() => window.framecastPublisher.state === "failed", null, {
      timeout: CONNECT_TIMEOUT_MS,
      polling: 100,
    })
    .catch(() => {});
  result.publisher_after_delete = await publisher.evaluate(() => ({ ...window.framecastPublisher }));
  if (
    result.publisher_after_delete.state !== "failed" ||
    !String(result.publisher_after_delete.error).includes("connection to framecast was lost")
  ) {
    result.failures.push(
      `after framecast's DELETE the page says ${result.publisher_after_delete.state}: ${result.publisher_after_delete.error}`,
    );
  }

  // Publishing again after the DELETE, then gone without a word: the connection closes with
  // no DELETE, as when a phone loses its network or its browser is killed.
  await publisher.click("#start");
  await publisher
    .waitForFunction(
      () => ["connected", "failed"].includes(window.framecastPublisher.state),
      null,
      { timeout: CONNECT_TIMEOUT_MS, polling: 100 },
    )
    .catch(() => {});
  result.republished = await publisher.evaluate(() => ({ ...window.framecastPublisher }));
  if (result.republished.state !== "connected") {
    result.failures.push(`publishing again: ${result.republished.state}, ${result.republished.error}`);
    return;
  }
  console.log("REPUBLISHED " + JSON.stringify({ session_url: result.republished.sessionUrl }));
  await bounded(STOP_TIMEOUT_MS, "the test's second stop", stopRequested);
  await publisher.evaluate(() => window.framecastPublisherConnection.close());
  console.log("DROPPED {}");
  await bounded(STOP_TIMEOUT_MS, "the test's last stop", stopRequested);
  if (result.page_errors.length) result.failures.push(`${result.page_errors.length} page error(s)`);
}

const result = {
  test: "whip_publish",
  url: publishUrl,
  failures: [],
  page_errors: [],
  console_errors: [],
  http_errors: [],
};
await runInChromium({
  result,
  outDir,
  limitMs: RUN_LIMIT_MS,
  chromiumArgs: CHROMIUM_ARGS,
  work: (context) => run(context, result),
});
