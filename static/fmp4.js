// Fragmented MP4 for Media Source Extensions: cutting a byte stream into the init and media
// segments MSE takes, and the codec string and MIME type of an init segment. Pure: bytes in,
// values out, no DOM; unit-tested in tests/js/.

const u32 = (bytes, at) =>
  bytes[at] * 0x1000000 + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
const fourcc = (bytes, at) =>
  String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);

/**
 * The header of the box at `at` (ISO/IEC 14496-12 §4.2): { size, type, headerSize }, or null
 * when fewer bytes than the header are there. Size 1 means a 64-bit size follows; size 0
 * ("to the end of the file") cannot end in an endless stream and is refused, as is any size
 * smaller than the header.
 */
export function readBoxHeader(bytes, at, end = bytes.length) {
  if (end - at < 8) return null;
  let size = u32(bytes, at);
  const type = fourcc(bytes, at + 4);
  let headerSize = 8;
  if (size === 1) {
    if (end - at < 16) return null;
    size = u32(bytes, at + 8) * 2 ** 32 + u32(bytes, at + 12);
    headerSize = 16;
  }
  if (size < headerSize) throw new Error(`bad MP4 box size ${size} for '${type}'`);
  return { size, type, headerSize };
}

/**
 * Cuts a byte stream, pushed in chunks of any size, into top-level boxes and groups them into
 * MSE segments (the ISO BMFF byte stream format): everything up to and including a moov is an
 * init segment, up to and including an mdat a media segment. Calls onSegment(kind, bytes) with
 * kind "init" or "media" and a copy of the segment's bytes.
 */
export class SegmentCutter {
  constructor(onSegment, initialCapacity = 256 * 1024) {
    this.onSegment = onSegment;
    this.buf = new Uint8Array(initialCapacity);
    this.len = 0;
    // Where the next box of the unfinished group starts.
    this.boxStart = 0;
  }

  /** Bytes held for a segment not complete yet. */
  get pendingBytes() {
    return this.len;
  }

  push(chunk) {
    if (this.len + chunk.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + chunk.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
    this.cut();
  }

  cut() {
    const b = this.buf;
    let at = this.boxStart;
    let consumed = 0;
    for (;;) {
      const header = readBoxHeader(b, at, this.len);
      if (header === null || this.len - at < header.size) break;
      at += header.size;
      if (header.type === "moov" || header.type === "mdat") {
        // slice() copies: the segment must outlive the buffer's reuse.
        this.onSegment(header.type === "moov" ? "init" : "media", b.slice(consumed, at));
        consumed = at;
      }
    }
    // Keep the unfinished group at the front.
    if (consumed > 0) {
      b.copyWithin(0, consumed, this.len);
      this.len -= consumed;
      at -= consumed;
    }
    this.boxStart = at;
  }
}

/**
 * The RFC 6381 §3.3 codec string of an H.264 stream, "avc1." + profile_idc,
 * constraint flags and level_idc as hex, from the first three bytes after the
 * configurationVersion of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
 */
export function avcCodecString(profileIdc, constraintFlags, levelIdc) {
  const hex = (b) => b.toString(16).padStart(2, "0").toUpperCase();
  return "avc1." + hex(profileIdc) + hex(constraintFlags) + hex(levelIdc);
}

/**
 * The codec string of the H.264 track in an init segment (ftyp + moov), from its avcC box, or
 * null when there is none (not H.264).
 */
export function codecOfInit(init) {
  // avcC sits deep in moov/trak/mdia/minf/stbl/stsd/avc1; a scan for its type is simpler than a
  // walk through seven levels and finds the same box in framecast's one-track init segments.
  for (let i = 4; i + 8 <= init.length; i++) {
    if (init[i] === 0x61 && fourcc(init, i) === "avcC") {
      // After the type: configurationVersion, then profile, constraints, level.
      return avcCodecString(init[i + 5], init[i + 6], init[i + 7]);
    }
  }
  return null;
}

/** The MIME type MSE's addSourceBuffer/isTypeSupported take for fMP4 video of `codec`. */
export function mp4MimeType(codec) {
  return `video/mp4; codecs="${codec}"`;
}
