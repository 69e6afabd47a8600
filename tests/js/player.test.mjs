// The pure parts of the pages' shared player helper (static/player.js) and latency probe
// (static/latency-probe.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { LatencyWindow, median } from "../../static/latency-probe.js";
import { Backoff, bufferedEndAt, readoutTexts, streamBase } from "../../static/player.js";

/** A TimeRanges look-alike from [start, end] pairs. */
const ranges = (...pairs) => ({
  length: pairs.length,
  start: (i) => pairs[i][0],
  end: (i) => pairs[i][1],
});

test("reconnect delays double up to the cap and start over after a success", () => {
  const backoff = new Backoff(500, 3000);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => backoff.next()), [500, 1000, 2000, 3000, 3000]);
  backoff.reset();
  assert.equal(backoff.next(), 500);
});

test("the buffered end is that of the range holding the playhead", () => {
  const buffered = ranges([0, 2], [3, 5.5]);
  assert.equal(bufferedEndAt(buffered, 1, 0), 2);
  assert.equal(bufferedEndAt(buffered, 2, 0), 2);
  assert.equal(bufferedEndAt(buffered, 4, 0), 5.5);
  assert.equal(bufferedEndAt(buffered, 2.5, 0), null, "in a gap");
  assert.equal(bufferedEndAt(buffered, 2.95, 0.1), 5.5, "a gap within the tolerance");
  assert.equal(bufferedEndAt(buffered, 6, 0.1), null, "past the end");
  assert.equal(bufferedEndAt(ranges(), 0, 0.1), null, "nothing buffered");
});

test("readout texts", () => {
  assert.deepEqual(readoutTexts({ latencyMs: 123.6, bufferS: 0.041, playbackRate: 1.1, width: 1280, height: 720 }), {
    latency: "124 ms",
    buffer: "0.04 s",
    rate: "1.10×",
    resolution: "1280×720",
  });
  const empty = readoutTexts({ latencyMs: null, bufferS: 0, playbackRate: 1, width: 0, height: 0 });
  assert.equal(empty.latency, "—");
  assert.equal(empty.resolution, "—");
});

test("the median of an odd and an even count, and of nothing", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3);
  assert.equal(median([]), null);
});

test("the latency window counts distinct frames of the last second", () => {
  const w = new LatencyWindow(1000);
  assert.equal(w.add(1000, 900, "picture"), true);
  assert.equal(w.add(1016, 900, "picture"), false, "the same frame painted again");
  assert.equal(w.add(1033, 933, "picture"), true);
  assert.equal(w.add(1066, 936, "picture"), true);
  let s = w.snapshot(1100);
  assert.deepEqual(s, { latencyMs: 100, latestLatencyMs: 130, source: "picture", fps: 3, frames: 3, lastCaptureMs: 936 });
  // A second later the first frame has left the window; two seconds later all have.
  s = w.snapshot(2010);
  assert.equal(s.fps, 2);
  s = w.snapshot(3000);
  assert.deepEqual([s.latencyMs, s.source, s.fps, s.frames], [null, null, 0, 3]);
});

test("a page's stream base comes from <body data-base>, the root when absent", () => {
  assert.equal(streamBase({ body: { dataset: { base: "/streams/garage/" } } }), "/streams/garage/");
  assert.equal(streamBase({ body: { dataset: {} } }), "/");
  assert.equal(streamBase({ body: null }), "/");
});
