// The home page with several streams: a grid of live pictures, one per stream. Few streams are
// MJPEG pictures at a low frame rate; many are refreshed from snapshots (the server says which
// in data-refresh), since a browser keeps at most six connections to one HTTP/1.1 server and
// every MJPEG picture holds one. A picture that fails is tried again with a back-off.

import { Backoff, PlayerPage } from "./player.js";

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10000;

new PlayerPage();
const grid = document.getElementById("grid");
const refresh = grid.dataset.refresh;
const intervalMs = 1000 / Math.max(1, Number(grid.dataset.tileFps) || 1);

for (const img of grid.querySelectorAll("img")) {
  const source = img.getAttribute("src");
  const backoff = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS);
  const separator = source.includes("?") ? "&" : "?";
  const failed = () => {
    img.closest(".tile").classList.add("tile-offline");
    setTimeout(() => {
      img.src = source + separator + "reconnect=" + Date.now();
    }, backoff.next());
  };
  const loaded = () => {
    backoff.reset();
    img.closest(".tile").classList.remove("tile-offline");
    if (refresh === "snapshot") {
      // The next picture once this one is shown: never more than one request per tile.
      setTimeout(() => {
        img.src = source + separator + "t=" + Date.now();
      }, intervalMs);
    }
  };
  img.addEventListener("error", failed);
  img.addEventListener("load", loaded);
  // A module runs after the page is parsed: a snapshot may have loaded, or failed, before
  // these listeners were there, and its event will not come again.
  if (img.complete) {
    if (img.naturalWidth > 0) loaded();
    else if (img.currentSrc) failed();
  }
}
