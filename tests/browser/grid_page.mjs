// The home page with several streams in a real browser: Debian's Chromium, headless, driven by
// playwright-core.
//
//   node tests/browser/grid_page.mjs BASE_URL OUT_DIR
//
// Opens BASE_URL/, waits until every tile's picture has loaded, and reports each tile's stream
// name, link and picture size. When the grid refreshes its tiles from snapshots (many
// streams), also waits until every tile has shown a refreshed snapshot. Then follows the link
// of the tile of stream `b`, waits for that stream's live MJPEG picture and reports the page's
// path, the picture's size, the links to the stream's resources and the link home. Saves
// screenshots of both pages to OUT_DIR (grid_page_REFRESH.png, grid_stream_page_REFRESH.png)
// and prints one JSON line of results; the Rust test checks the sizes and links. Exit code 0
// when the pages loaded without errors, 1 otherwise. Every wait has a time limit; the whole
// run is capped by RUN_LIMIT_MS.

import { join } from "node:path";

import { runInChromium, watchPage } from "./frame_sampler.mjs";

// The whole run, whatever hangs: the Rust test kills the script at 60 s, this reports first.
const RUN_LIMIT_MS = 50_000;
// Page load and the first picture of every tile.
const PICTURE_TIMEOUT_MS = 15_000;
// The stream whose page is opened from the grid.
const OPENED = "b";

const [baseArg, outDir] = process.argv.slice(2);
if (!baseArg || !outDir) {
  console.error("usage: node tests/browser/grid_page.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");

async function run(context, result) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(PICTURE_TIMEOUT_MS);
  watchPage(page, result);

  const response = await page.goto(baseUrl + "/", {
    waitUntil: "domcontentloaded",
    timeout: PICTURE_TIMEOUT_MS,
  });
  result.grid_status = response ? response.status() : null;
  if (result.grid_status !== 200) result.failures.push(`GET / answered ${result.grid_status}`);

  await page.waitForFunction(
    () => {
      const pictures = [...document.querySelectorAll("#grid .tile img")];
      return pictures.length > 0 && pictures.every((img) => img.complete && img.naturalWidth > 0);
    },
    null,
    { timeout: PICTURE_TIMEOUT_MS, polling: 100 },
  );
  result.refresh = await page.evaluate(() => document.getElementById("grid").dataset.refresh);
  if (result.refresh === "snapshot") {
    // grid.js asks for the next snapshot once a tile has shown one, with a `t=` query. The
    // current request is the last picture shown (a refresh under way is the pending one,
    // and makes `complete` false): each tile has shown a refreshed picture once its
    // currentSrc has `t=`.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll("#grid .tile img")].every(
          (img) => img.currentSrc.includes("t=") && img.naturalWidth > 0,
        ),
      null,
      { timeout: PICTURE_TIMEOUT_MS, polling: 100 },
    );
  }
  result.tiles = await page.evaluate(() =>
    [...document.querySelectorAll("#grid .tile")].map((tile) => {
      const img = tile.querySelector("img");
      return {
        name: tile.dataset.stream,
        href: tile.querySelector("a").getAttribute("href"),
        src: img.getAttribute("src"),
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
        offline: tile.classList.contains("tile-offline"),
      };
    }),
  );
  for (const tile of result.tiles) {
    if (tile.offline) result.failures.push(`tile ${tile.name} shows as offline`);
  }
  await page.screenshot({ path: join(outDir, `grid_page_${result.refresh}.png`), fullPage: true, timeout: 10_000 });

  await Promise.all([
    page.waitForURL(`${baseUrl}/streams/${OPENED}/`, { timeout: PICTURE_TIMEOUT_MS }),
    page.click(`#grid .tile[data-stream="${OPENED}"] img`),
  ]);
  await page.waitForFunction(
    () => {
      const img = document.getElementById("live");
      return img && img.complete && img.naturalWidth > 0;
    },
    null,
    { timeout: PICTURE_TIMEOUT_MS, polling: 100 },
  );
  result.stream_page = await page.evaluate(() => {
    const img = document.getElementById("live");
    return {
      path: location.pathname,
      src: img.getAttribute("src"),
      naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight,
      // The bar's links and the page's own, all to this stream's resources.
      links: [...document.querySelectorAll("header nav a, .links a")].map((a) => a.getAttribute("href")),
      home: document.querySelector("header a.brand").getAttribute("href"),
      base: document.body.dataset.base,
    };
  });
  await page.screenshot({ path: join(outDir, `grid_stream_page_${result.refresh}.png`), fullPage: true, timeout: 10_000 });
  if (result.page_errors.length) result.failures.push(`${result.page_errors.length} page error(s)`);
  if (result.http_errors.length) result.failures.push(`${result.http_errors.length} HTTP error(s)`);
}

const result = {
  test: "grid_page",
  url: baseUrl + "/",
  failures: [],
  page_errors: [],
  http_errors: [],
};
await runInChromium({
  result,
  outDir,
  limitMs: RUN_LIMIT_MS,
  work: (context) => run(context, result),
});
