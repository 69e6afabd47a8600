// Decoder for the timestamp strip that framecast's test pattern draws across the top of the
// picture. It mirrors decode_with() in src/source/timestamp_strip.rs; the format is documented
// there. Plain script: defines the global function decodeTimestampStrip(imageData).

// Returns the capture time in milliseconds since the epoch (fractional), or null when the
// picture in `imageData` (a canvas ImageData, RGBA, any scale) carries no valid strip.
// Only this function is global, so loading the script twice is harmless.
function decodeTimestampStrip(imageData) {
  // 68 cells: sync 1 0, 56 bits of capture time (µs since the Unix epoch, MSB first),
  // 8 bits of CRC-8/SMBUS over the time's 7 big-endian bytes, sync 0 1.
  const CELLS = 68;
  // CRC-8/SMBUS: polynomial 0x07, init 0, not reflected, no final xor.
  const crc8 = (bytes) => {
    let crc = 0;
    for (const byte of bytes) {
      crc ^= byte;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  };

  const { data, width: w, height: h } = imageData;
  if (!w || !h || data.length < w * h * 4) return null;

  // Sample the central half of each cell horizontally and of the strip (h / 24 rows) vertically,
  // in the same integer arithmetic as the Rust decoder, so both read the same pixels.
  const y0 = Math.floor(h / 96);
  const y1 = Math.max(Math.floor((3 * h) / 96), y0 + 1);
  const bits = [];
  for (let i = 0; i < CELLS; i++) {
    const x0 = Math.floor(((4 * i + 1) * w) / (4 * CELLS));
    const x1 = Math.max(Math.floor(((4 * i + 3) * w) / (4 * CELLS)), x0 + 1);
    let sum = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = (y * w + x) * 4;
        sum += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2]; // BT.601 luma
      }
    }
    bits.push(sum / ((x1 - x0) * (y1 - y0)) >= 128 ? 1 : 0);
  }

  if (bits[0] !== 1 || bits[1] !== 0 || bits[66] !== 0 || bits[67] !== 1) return null;

  // Bits 2..58 are the time's 7 bytes, 58..66 its CRC. The time is built from bytes so the
  // CRC needs no 64-bit arithmetic; as a Number it is exact below 2^53 µs (the year 2255).
  const bytes = [];
  for (let b = 0; b < 8; b++) {
    let byte = 0;
    for (let k = 0; k < 8; k++) byte = (byte << 1) | bits[2 + 8 * b + k];
    bytes.push(byte);
  }
  const time = bytes.slice(0, 7);
  if (crc8(time) !== bytes[7]) return null;
  const micros = time.reduce((acc, byte) => acc * 256 + byte, 0);
  return micros / 1000;
}
