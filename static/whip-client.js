// The pure parts of the publish page (static/publish-page.js): which codecs to offer, and the
// readouts from the browser's statistics. Unit-tested in tests/js/whip-client.test.mjs.

/** H.264's profile-level-id for Constrained Baseline, what every browser encodes in hardware. */
const CONSTRAINED_BASELINE = "42e0";

/**
 * The codecs to offer, from RTCRtpSender/Receiver.getCapabilities("video").codecs: framecast
 * takes H.264 in packetization mode 1 only, Constrained Baseline first; retransmission (rtx)
 * stays so that lost packets can be sent again. Empty when the browser has no such H.264.
 */
export function h264Preferences(codecs) {
  const fmtp = (codec) => (codec.sdpFmtpLine || "").toLowerCase();
  const h264 = codecs.filter(
    (codec) =>
      codec.mimeType.toLowerCase() === "video/h264" &&
      fmtp(codec).includes("packetization-mode=1"),
  );
  if (h264.length === 0) return [];
  const baselineFirst = [
    ...h264.filter((codec) => fmtp(codec).includes("profile-level-id=" + CONSTRAINED_BASELINE)),
    ...h264.filter((codec) => !fmtp(codec).includes("profile-level-id=" + CONSTRAINED_BASELINE)),
  ];
  const rtx = codecs.filter((codec) => codec.mimeType.toLowerCase() === "video/rtx");
  return [...baselineFirst, ...rtx];
}

/**
 * The outgoing video's figures from a getStats() report (an iterable of stats objects):
 * bytes and frames sent so far, its size and codec, at `timestamp` (ms).
 */
export function outgoingVideo(report) {
  const stats = [...report];
  const outbound = stats.find((s) => s.type === "outbound-rtp" && s.kind === "video");
  if (!outbound) return null;
  const codec = stats.find((s) => s.type === "codec" && s.id === outbound.codecId);
  return {
    timestamp: outbound.timestamp,
    bytesSent: outbound.bytesSent || 0,
    framesSent: outbound.framesSent || 0,
    width: outbound.frameWidth || 0,
    height: outbound.frameHeight || 0,
    codec: codec ? codec.mimeType.replace(/^video\//, "") : "",
  };
}

/** Bits per second between two outgoingVideo() readings; 0 without a previous one. */
export function bitrateBps(previous, current) {
  if (!previous || !current || current.timestamp <= previous.timestamp) return 0;
  const bits = (current.bytesSent - previous.bytesSent) * 8;
  return Math.max(0, (bits * 1000) / (current.timestamp - previous.timestamp));
}

/** A bitrate for people: "850 kbit/s", "2.4 Mbit/s". */
export function bitrateText(bps) {
  if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " Mbit/s";
  return Math.round(bps / 1e3) + " kbit/s";
}
