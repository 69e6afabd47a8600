// The browser's timestamp-strip decoder (static/timestamp-strip.js) against pictures drawn to
// the format documented in src/source/timestamp_strip.rs.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  STRIP_CELLS,
  captureMsOfCells,
  crc8Smbus,
  decodeTimestampStrip,
  readStripCells,
} from "../../static/timestamp-strip.js";

// Video-range white and black, as the test pattern writes them.
const LUMA_ONE = 235;
const LUMA_ZERO = 16;

/** The 68 cell values for a capture time in µs (below 2^53), per the documented format. */
function cellsOf(micros) {
  const bytes = [];
  let rest = BigInt(micros);
  for (let i = 0; i < 7; i++) {
    bytes.unshift(Number(rest & 0xffn));
    rest >>= 8n;
  }
  const bits = (byte) => Array.from({ length: 8 }, (_, k) => (byte >> (7 - k)) & 1);
  return [1, 0, ...bytes.flatMap(bits), ...bits(crc8Smbus(bytes)), 0, 1];
}

/** An RGBA picture w × h, mid grey, with the strip of `cells` across its top rows. */
function picture(w, h, cells) {
  const data = new Uint8ClampedArray(w * h * 4).fill(100);
  const rows = Math.max(8, Math.floor(h / 24) & ~1);
  for (let y = 0; y < Math.min(rows, h); y++) {
    for (let i = 0; i < STRIP_CELLS; i++) {
      const luma = cells[i] ? LUMA_ONE : LUMA_ZERO;
      for (let x = Math.floor((i * w) / STRIP_CELLS); x < Math.floor(((i + 1) * w) / STRIP_CELLS); x++) {
        data.set([luma, luma, luma, 255], (y * w + x) * 4);
      }
    }
  }
  return { data, width: w, height: h };
}

test("CRC-8/SMBUS gives the catalogue's check value", () => {
  // The CRC catalogue's check: the CRC of the ASCII bytes "123456789".
  assert.equal(crc8Smbus([..."123456789"].map((c) => c.charCodeAt(0))), 0xf4);
  assert.equal(crc8Smbus([]), 0);
});

test("a capture time round-trips at the sizes pages and tests draw", () => {
  const micros = 1_764_400_000_123_456; // 2025-11-29, µs
  for (const [w, h] of [
    [1280, 720],
    [640, 360],
    [340, 191],
    [272, 24],
  ]) {
    assert.equal(decodeTimestampStrip(picture(w, h, cellsOf(micros))), micros / 1000, `${w}x${h}`);
  }
});

test("the cells read back as drawn, sync cells included", () => {
  const cells = cellsOf(1_000_000);
  assert.deepEqual(readStripCells(picture(680, 384, cells)), cells);
  assert.deepEqual(cells.slice(0, 2), [1, 0]);
  assert.deepEqual(cells.slice(66), [0, 1]);
});

test("a picture without a valid strip decodes as nothing", () => {
  const micros = 1_764_400_000_000_000;
  const flatWhite = new Array(STRIP_CELLS).fill(1);
  const flatBlack = new Array(STRIP_CELLS).fill(0);
  assert.equal(decodeTimestampStrip(picture(640, 360, flatWhite)), null);
  assert.equal(decodeTimestampStrip(picture(640, 360, flatBlack)), null);

  // One time bit flipped: the CRC no longer matches.
  const flipped = cellsOf(micros);
  flipped[30] ^= 1;
  assert.equal(captureMsOfCells(flipped), null);
  // A sync cell wrong.
  const badSync = cellsOf(micros);
  badSync[67] = 0;
  assert.equal(captureMsOfCells(badSync), null);
  // Too few cells, or too few pixels for the size claimed.
  assert.equal(captureMsOfCells(cellsOf(micros).slice(1)), null);
  assert.equal(decodeTimestampStrip({ data: new Uint8ClampedArray(16), width: 640, height: 360 }), null);
  assert.equal(decodeTimestampStrip({ data: new Uint8ClampedArray(0), width: 0, height: 0 }), null);
});
