// The pure parts of the publish page (static/whip-client.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { bitrateBps, bitrateText, h264Preferences, outgoingVideo } from "../../static/whip-client.js";

const codec = (mimeType, sdpFmtpLine) => ({ mimeType, clockRate: 90000, sdpFmtpLine });

test("only H.264 in packetization mode 1 is offered, Constrained Baseline first, with rtx", () => {
  const vp8 = codec("video/VP8");
  const high = codec("video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640034");
  const baseline = codec("video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
  const mode0 = codec("video/H264", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f");
  const rtx = codec("video/rtx", "apt=96");
  assert.deepEqual(h264Preferences([vp8, high, mode0, rtx, baseline]), [baseline, high, rtx]);
  assert.deepEqual(h264Preferences([vp8, mode0, rtx]), []);
  assert.deepEqual(h264Preferences([]), []);
});

test("the outgoing video is read from a stats report", () => {
  const report = [
    { type: "outbound-rtp", kind: "audio", bytesSent: 5 },
    { type: "codec", id: "C1", mimeType: "video/H264" },
    {
      type: "outbound-rtp",
      kind: "video",
      codecId: "C1",
      timestamp: 2000,
      bytesSent: 250000,
      framesSent: 60,
      frameWidth: 1280,
      frameHeight: 720,
    },
  ];
  assert.deepEqual(outgoingVideo(report), {
    timestamp: 2000,
    bytesSent: 250000,
    framesSent: 60,
    width: 1280,
    height: 720,
    codec: "H264",
  });
  assert.equal(outgoingVideo([{ type: "inbound-rtp", kind: "video" }]), null);
});

test("bitrates come from two readings and read as people write them", () => {
  const a = { timestamp: 1000, bytesSent: 0 };
  const b = { timestamp: 2000, bytesSent: 125000 };
  assert.equal(bitrateBps(a, b), 1e6);
  assert.equal(bitrateBps(null, b), 0);
  assert.equal(bitrateBps(b, b), 0);
  assert.equal(bitrateText(1e6), "1.0 Mbit/s");
  assert.equal(bitrateText(2.44e6), "2.4 Mbit/s");
  assert.equal(bitrateText(850_400), "850 kbit/s");
  assert.equal(bitrateText(0), "0 kbit/s");
});
