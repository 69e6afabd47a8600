// The WebRTC (WHEP) viewer page in a real browser: Debian's Chromium, headless, driven by
// playwright-core, over loopback.
//
//   node tests/browser/webrtc_page.mjs BASE_URL OUT_DIR
//
// Opens BASE_URL/webrtc and waits for the <video> to play; samples the presented frames and
// reads their capture times from the test pattern's strip (the picture changes, frames come
// in order, the latency readout works). Then, with the page still playing:
//  - a second session whose peer never answers ICE or DTLS is opened with a raw offer: the
//    page's frame counter keeps rising while it exists (a viewer that does not read holds
//    nobody up), and /status shows it unconnected with nothing sent;
//  - the page's own session is DELETEd: /status no longer lists it, a second DELETE is 404,
//    the page's connection leaves "connected" and the page reconnects and plays again.
// Prints one JSON line of results; exit code 0 when every check passes. Every wait is bounded.

import { join } from "node:path";

import { bounded, runInChromium, sampleShownFrames, summarize, watchPage } from "./frame_sampler.mjs";

const RUN_LIMIT_MS = 55_000;
const FIRST_FRAME_TIMEOUT_MS = 15_000;
const SAMPLE_MS = 3_000;
const MIN_DISTINCT_FRAMES = 5;
// Frames the page must show while the silent session exists.
const MIN_FRAMES_BESIDE_SILENT = 10;
// After the DELETE: the page notices (consent checks unanswered, ~5 s) and reconnects.
const RECONNECT_TIMEOUT_MS = 30_000;

// A receive-only offer whose ICE credentials no browser holds: nobody will ever answer.
const SILENT_OFFER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0",
  "m=video 9 UDP/TLS/RTP/SAVPF 103",
  "c=IN IP4 0.0.0.0",
  "a=ice-ufrag:silent",
  "a=ice-pwd:silentsilentsilentsilent",
  "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
  "a=setup:actpass",
  "a=mid:0",
  "a=recvonly",
  "a=rtcp-mux",
  "a=rtpmap:103 H264/90000",
  "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  "",
].join("\r\n");

const [baseArg, outDir] = process.argv.slice(2);
if (!baseArg || !outDir) {
  console.error("usage: node tests/browser/webrtc_page.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");
const result = { failures: [] };
const fail = (what) => result.failures.push(what);

async function status() {
  const response = await fetch(baseUrl + "/status", { cache: "no-store" });
  return (await response.json()).webrtc;
}

const player = (page) => page.evaluate(() => window.framecastPlayer ?? null);

async function waitFor(page, what, timeoutMs, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 100 });
    return true;
  } catch {
    fail(`${what} within ${timeoutMs} ms: ${JSON.stringify(await player(page))}`);
    return false;
  }
}

async function work(context) {
  const page = await context.newPage();
  const report = { url: baseUrl + "/webrtc", page_errors: [], http_errors: [], console_errors: [] };
  result.page = report;
  watchPage(page, report);
  const response = await page.goto(report.url, { waitUntil: "domcontentloaded" });
  report.page_status = response ? response.status() : null;
  if (report.page_status !== 200) return fail(`the page answered ${report.page_status}`);
  const started = Date.now();
  const playing = await waitFor(page, "the video did not play", FIRST_FRAME_TIMEOUT_MS, () => {
    const v = document.getElementById("video");
    return v && v.readyState >= 2 && !v.paused && (window.framecastPlayer?.frames ?? 0) > 0;
  });
  if (!playing) return;
  report.first_frame_ms = Date.now() - started;

  const sample = await bounded(SAMPLE_MS + 5_000, "sample frames", () =>
    page.evaluate(sampleShownFrames, { selector: "#video", sampleMs: SAMPLE_MS }),
  );
  Object.assign(report, summarize(sample));
  if (sample.frames.length < MIN_DISTINCT_FRAMES) {
    fail(`only ${sample.frames.length} distinct frames (want >= ${MIN_DISTINCT_FRAMES})`);
  }
  const captures = sample.frames.map((f) => f.captureMs);
  if (captures.some((c, i) => i > 0 && c <= captures[i - 1])) fail("capture times went backwards");
  const first = await player(page);
  report.player = first;
  if (first.mode !== "webrtc") fail(`framecastPlayer.mode is ${first.mode}`);
  if (typeof first.latencyMs !== "number") fail("the latency readout has no number");
  if (first.connectionState !== "connected") fail(`connection is ${first.connectionState}`);
  await page.screenshot({ path: join(outDir, "webrtc_page.png") });

  // A session whose peer never answers: the page's frames keep coming meanwhile.
  const silent = await fetch(baseUrl + "/whep", {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: SILENT_OFFER,
  });
  result.silent_status = silent.status;
  if (silent.status !== 201) return fail(`the silent offer answered ${silent.status}: ${await silent.text()}`);
  const silentUrl = new URL(silent.headers.get("Location"), baseUrl).href;
  const framesBefore = (await player(page)).frames;
  await waitFor(
    page,
    `the page showed fewer than ${MIN_FRAMES_BESIDE_SILENT} frames beside the silent session`,
    10_000,
    (want) => (window.framecastPlayer?.frames ?? 0) >= want,
    framesBefore + MIN_FRAMES_BESIDE_SILENT,
  );
  const beside = await status();
  result.status_beside_silent = beside;
  const silentId = silentUrl.split("/").pop();
  const silentSession = beside.sessions.find((s) => s.id === silentId);
  if (!silentSession) fail("/status does not list the silent session");
  else if (silentSession.connected || silentSession.frames_sent !== 0) {
    fail(`the silent session: ${JSON.stringify(silentSession)}`);
  }
  const pageSession = beside.sessions.find((s) => s.id !== silentId);
  if (!pageSession || !(pageSession.frames_sent > 0)) fail("the page's session sent no frames");
  await fetch(silentUrl, { method: "DELETE" });

  // DELETE the page's session: the server lets it go, the page notices and starts over.
  const sessionUrl = (await player(page)).sessionUrl;
  if (!sessionUrl) return fail("framecastPlayer.sessionUrl is missing");
  const reconnectsBefore = (await player(page)).reconnects;
  const deleted = await fetch(sessionUrl, { method: "DELETE" });
  result.delete_status = deleted.status;
  if (deleted.status !== 200) fail(`DELETE answered ${deleted.status}`);
  const after = await status();
  result.sessions_after_delete = after.session_count;
  if (after.sessions.some((s) => sessionUrl.endsWith(s.id))) fail("the deleted session is still listed");
  const again = await fetch(sessionUrl, { method: "DELETE" });
  if (again.status !== 404) fail(`a second DELETE answered ${again.status}`);
  const reconnected = await waitFor(
    page,
    "the page did not reconnect after the DELETE",
    RECONNECT_TIMEOUT_MS,
    (before) => {
      const p = window.framecastPlayer;
      return p && p.reconnects > before && p.connectionState === "connected";
    },
    reconnectsBefore,
  );
  const last = await player(page);
  result.connection_states = last.connectionStates;
  if (!last.connectionStates.some((s) => s === "disconnected" || s === "failed" || s === "closed")) {
    fail(`the connection never left "connected": ${JSON.stringify(last.connectionStates)}`);
  }
  if (reconnected) {
    const framesNow = last.frames;
    await waitFor(page, "no picture after reconnecting", 10_000, (n) => window.framecastPlayer.frames > n + 5, framesNow);
  }
  report.page_errors.length && fail(`page errors: ${report.page_errors.join("; ")}`);
}

await runInChromium({ result, outDir, limitMs: RUN_LIMIT_MS, work });
