// The live page: reads the capture time the test pattern writes into the picture's top strip
// (see timestamp-strip.js) to show capture-to-display latency and the displayed frame rate,
// and reconnects the stream if it drops.
(function () {
  "use strict";
  const img = document.getElementById("live");
  const latencyOut = document.getElementById("latency");
  const fpsOut = document.getElementById("fps");
  const offline = document.getElementById("offline");
  for (const el of document.querySelectorAll(".host")) el.textContent = location.host;

  // The strip is decoded from a small copy of the picture: cheap, and the decoder works at any scale.
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const frameTimes = [];   // display times of frames seen in the last second
  const latencies = [];    // their latencies, ms
  let lastCapture = null;

  function sample() {
    if (img.complete && img.naturalWidth > 0) {
      const w = 340;
      const h = Math.max(24, Math.round(w * img.naturalHeight / img.naturalWidth));
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      // Only the top band holds the strip; draw the whole picture scaled so coordinates stay relative.
      ctx.drawImage(img, 0, 0, w, h);
      const capture = decodeTimestampStrip(ctx.getImageData(0, 0, w, h));
      const now = Date.now();
      if (capture !== null && capture !== lastCapture) {
        lastCapture = capture;
        frameTimes.push(now);
        latencies.push(now - capture);
      }
      while (frameTimes.length && frameTimes[0] < now - 1000) { frameTimes.shift(); latencies.shift(); }
    }
    requestAnimationFrame(sample);
  }

  function show() {
    if (latencies.length) {
      const sorted = latencies.slice().sort((a, b) => a - b);
      latencyOut.textContent = Math.round(sorted[Math.floor(sorted.length / 2)]) + " ms";
    } else {
      latencyOut.textContent = "—";
    }
    fpsOut.textContent = frameTimes.length + " fps";
    window.framecastViewer = { fps: frameTimes.length, latencyMs: latencies.length ? latencies[latencies.length - 1] : null, lastCapture };
  }

  // A dropped stream (server restart, network) comes back without a page reload.
  img.addEventListener("error", function () {
    offline.hidden = false;
    setTimeout(function () { img.src = "/stream.mjpg?reconnect=" + Date.now(); }, 1000);
  });
  img.addEventListener("load", function () { offline.hidden = true; });

  requestAnimationFrame(sample);
  setInterval(show, 500);
})();
