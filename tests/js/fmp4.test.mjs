// The fMP4 segment cutter, codec string and MIME type of the MSE player (static/fmp4.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SegmentCutter,
  avcCodecString,
  codecOfInit,
  mp4MimeType,
  readBoxHeader,
} from "../../static/fmp4.js";

/** A box (ISO/IEC 14496-12 §4.2) of `type` around `payload`, with a 32-bit or 64-bit size. */
function box(type, payload = new Uint8Array(0), { largesize = false } = {}) {
  const header = largesize ? 16 : 8;
  const size = header + payload.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  if (largesize) {
    view.setUint32(0, 1);
    view.setBigUint64(8, BigInt(size));
  } else {
    view.setUint32(0, size);
  }
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(payload, header);
  return out;
}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

// avcC payload: configurationVersion 1, then profile_idc, constraint flags, level_idc
// (ISO/IEC 14496-15 §5.3.3.1); Constrained Baseline level 3.0 here.
const AVCC = box("avcC", new Uint8Array([1, 0x42, 0xc0, 0x1e, 0xff, 0xe0]));
const INIT = concat(box("ftyp", new Uint8Array([0x69, 0x73, 0x6f, 0x36])), box("moov", box("trak", AVCC)));
const fragment = (n) =>
  concat(box("moof", box("mfhd", new Uint8Array([0, 0, 0, 0, 0, 0, 0, n])), { largesize: n % 2 === 1 }), box("mdat", new Uint8Array(n * 7).fill(n)));

/** Pushes `stream` through a cutter in pieces of the given sizes (cycled) and collects segments. */
function cutInPieces(stream, sizes) {
  const segments = [];
  const cutter = new SegmentCutter((kind, bytes) => segments.push({ kind, bytes }), 16);
  let at = 0;
  for (let i = 0; at < stream.length; i++) {
    const size = sizes[i % sizes.length];
    cutter.push(stream.subarray(at, at + size));
    at += size;
  }
  return { segments, pending: cutter.pendingBytes };
}

test("a stream cut at any points gives its init and media segments, byte for byte", () => {
  const fragments = [1, 2, 3, 4, 5].map(fragment);
  const stream = concat(INIT, ...fragments);
  for (const sizes of [[1], [3, 7], [64], [stream.length], [5, 1, 300]]) {
    const { segments, pending } = cutInPieces(stream, sizes);
    assert.deepEqual(
      segments.map((s) => s.kind),
      ["init", "media", "media", "media", "media", "media"],
      `pieces ${sizes}`,
    );
    assert.deepEqual(segments[0].bytes, INIT);
    fragments.forEach((f, i) => assert.deepEqual(segments[i + 1].bytes, f));
    assert.equal(pending, 0);
  }
});

test("an unfinished fragment is held until its mdat is complete", () => {
  const f = fragment(2);
  const { segments, pending } = cutInPieces(concat(INIT, f.subarray(0, f.length - 1)), [1000]);
  assert.equal(segments.length, 1);
  assert.equal(pending, f.length - 1);
});

test("a new init section mid-stream is passed on as init", () => {
  const stream = concat(INIT, fragment(1), INIT, fragment(2));
  const { segments } = cutInPieces(stream, [9]);
  assert.deepEqual(
    segments.map((s) => s.kind),
    ["init", "media", "init", "media"],
  );
});

test("box headers: 32-bit and 64-bit sizes, too short, and sizes that cannot be", () => {
  assert.deepEqual(readBoxHeader(box("mdat", new Uint8Array(4)), 0), { size: 12, type: "mdat", headerSize: 8 });
  assert.deepEqual(readBoxHeader(box("mdat", new Uint8Array(4), { largesize: true }), 0), {
    size: 20,
    type: "mdat",
    headerSize: 16,
  });
  assert.equal(readBoxHeader(new Uint8Array(7), 0), null);
  assert.equal(readBoxHeader(box("mdat", new Uint8Array(0), { largesize: true }).subarray(0, 12), 0), null);
  const zero = box("free");
  zero[3] = 0; // size 0: "to the end of the file", which an endless stream never reaches
  assert.throws(() => readBoxHeader(zero, 0), /bad MP4 box size 0/);
  const cutter = new SegmentCutter(() => {});
  assert.throws(() => cutter.push(concat(INIT, zero)), /bad MP4 box size/);
});

test("the codec string comes from the avcC of the init segment", () => {
  assert.equal(codecOfInit(INIT), "avc1.42C01E");
  assert.equal(avcCodecString(0x64, 0x00, 0x28), "avc1.640028");
  assert.equal(codecOfInit(concat(box("ftyp"), box("moov", box("trak")))), null);
  // An avcC type at the very end, without its record, is not read past the end.
  assert.equal(codecOfInit(new TextEncoder().encode("xxxxavcC")), null);
});

test("the MIME type MSE is asked about", () => {
  assert.equal(mp4MimeType("avc1.42C01E"), 'video/mp4; codecs="avc1.42C01E"');
});
