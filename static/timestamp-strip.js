// Decoder for the timestamp strip that framecast's test pattern draws across the top of the
// picture. It mirrors decode_with() in src/source/timestamp_strip.rs, where the format is
// documented; the two must stay in step. Pure: no DOM, unit-tested in tests/js/.

// 68 cells: sync 1 0, 56 bits of capture time (µs since the Unix epoch, MSB first), 8 bits of
// CRC-8/SMBUS over the time's 7 big-endian bytes, sync 0 1.
export const STRIP_CELLS = 68;
const TIME_CELL = 2;
const TIME_BYTES = 7;
const CRC_CELL = TIME_CELL + 8 * TIME_BYTES;
// The sync cells and their values: a 1 and a 0 at each end tell a strip from a flat picture.
const SYNC_CELLS = [
  [0, 1],
  [1, 0],
  [66, 0],
  [67, 1],
];
// Decision level: browsers expand video-range luma (16..235) to the full 0..255.
const THRESHOLD = 128;

/** CRC-8/SMBUS: polynomial 0x07, init 0, not reflected, no final xor. */
export function crc8Smbus(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/**
 * The cell values (0 or 1) read from `imageData` (a canvas ImageData or any
 * { data: RGBA bytes, width, height }, at any scale), or null when it is too small.
 */
export function readStripCells(imageData) {
  const { data, width: w, height: h } = imageData;
  if (!w || !h || data.length < w * h * 4) return null;
  // The central half of each cell horizontally and of the strip (h / 24 rows) vertically, in
  // the same integer arithmetic as the Rust decoder, so both read the same pixels.
  const y0 = Math.floor(h / 96);
  const y1 = Math.max(Math.floor((3 * h) / 96), y0 + 1);
  const cells = [];
  for (let i = 0; i < STRIP_CELLS; i++) {
    const x0 = Math.floor(((4 * i + 1) * w) / (4 * STRIP_CELLS));
    const x1 = Math.max(Math.floor(((4 * i + 3) * w) / (4 * STRIP_CELLS)), x0 + 1);
    let sum = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = (y * w + x) * 4;
        sum += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2]; // BT.601 luma
      }
    }
    cells.push(sum / ((x1 - x0) * (y1 - y0)) >= THRESHOLD ? 1 : 0);
  }
  return cells;
}

/**
 * The capture time (ms since the epoch, fractional) that the cells carry, or null when a sync
 * cell or the CRC does not match.
 */
export function captureMsOfCells(cells) {
  if (!cells || cells.length !== STRIP_CELLS) return null;
  if (SYNC_CELLS.some(([cell, value]) => cells[cell] !== value)) return null;
  // Built from bytes so the CRC needs no 64-bit arithmetic; as a Number the time is exact
  // below 2^53 µs (the year 2255).
  const byteAt = (cell) => {
    let byte = 0;
    for (let k = 0; k < 8; k++) byte = (byte << 1) | cells[cell + k];
    return byte;
  };
  const time = [];
  for (let b = 0; b < TIME_BYTES; b++) time.push(byteAt(TIME_CELL + 8 * b));
  if (crc8Smbus(time) !== byteAt(CRC_CELL)) return null;
  const micros = time.reduce((acc, byte) => acc * 256 + byte, 0);
  return micros / 1000;
}

/**
 * The capture time in milliseconds since the epoch (fractional) that the picture in
 * `imageData` carries, or null when it carries no valid strip.
 */
export function decodeTimestampStrip(imageData) {
  return captureMsOfCells(readStripCells(imageData));
}
