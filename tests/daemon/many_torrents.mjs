// Measures the web UI with many torrents (not a test: it asserts nothing about speed).
//
//   node many_torrents.mjs --url http://127.0.0.1:PORT/ --count 500 [--shot FILE]
//
// Adds COUNT made-up torrents (random piece hashes, no data anywhere, so they sit at 0% with no
// peers; every third one paused) to a running daemon through the JSON API, opens the UI in
// headless Chromium, waits for every row, then reads the `render` measures the UI records
// (performance.measure around each list update from the event stream) for about 10 s and prints
// their count, median and maximum, plus the page's JS heap size.
import { randomBytes } from "node:crypto";
import { openBrowser, parseArgs } from "./browser.mjs";

const args = parseArgs(process.argv.slice(2), ["url", "count"]);
const count = Number(args.count);
const api = new URL("/api/v1", args.url).href;

function bencode(value) {
  if (Buffer.isBuffer(value)) return Buffer.concat([Buffer.from(value.length + ":"), value]);
  if (typeof value === "string") return bencode(Buffer.from(value));
  if (typeof value === "number") return Buffer.from(`i${value}e`);
  const keys = Object.keys(value).sort();
  return Buffer.concat([Buffer.from("d"), ...keys.flatMap((k) => [bencode(k), bencode(value[k])]), Buffer.from("e")]);
}

function fakeTorrent(i) {
  const pieceLength = 16384;
  const pieces = 8 + (i % 200);
  const length = pieces * pieceLength - (i % 1000);
  return bencode({ info: { length, name: `bench-${String(i).padStart(4, "0")}.bin`, "piece length": pieceLength, pieces: randomBytes(20 * pieces) } });
}

const token = (await (await fetch(api + "/token")).json()).token;
const started = Date.now();
for (let i = 0; i < count; i++) {
  const res = await fetch(api + "/torrents", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Shoal-Token": token },
    body: JSON.stringify({ source: { metainfo: fakeTorrent(i).toString("base64") }, paused: i % 3 === 0 }),
  });
  if (!res.ok && res.status !== 409) throw new Error(`add ${i}: HTTP ${res.status} ${await res.text()}`);
}
console.log(`added ${count} torrents through the API in ${Date.now() - started} ms`);

const { page, problems, close } = await openBrowser();
const opened = Date.now();
await page.goto(args.url);
await page.waitForFunction((n) => document.querySelectorAll("#torrents tbody tr").length >= n, count, { timeout: 60000 });
console.log(`UI showed ${count} rows ${Date.now() - opened} ms after navigation`);
await page.evaluate(() => performance.clearMeasures("render"));
await page.waitForTimeout(10000);
const stats = await page.evaluate(() => {
  const d = performance.getEntriesByName("render").map((m) => m.duration).sort((a, b) => a - b);
  return { n: d.length, median: d[Math.floor(d.length / 2)], max: d[d.length - 1], heap: performance.memory ? performance.memory.usedJSHeapSize : 0 };
});
console.log(`list updates: ${stats.n} in 10 s, median ${stats.median.toFixed(2)} ms, max ${stats.max.toFixed(2)} ms; JS heap ${(stats.heap / 1e6).toFixed(1)} MB`);
await page.fill("#filter", "bench-01");
const t0 = await page.evaluate(() => performance.now());
await page.waitForFunction(() => [...document.querySelectorAll("#torrents tbody tr")].filter((r) => !r.hidden).length <= 100);
console.log(`filter applied within ${((await page.evaluate(() => performance.now())) - t0).toFixed(1)} ms (incl. round trip)`);
await page.fill("#filter", "");
if (args.shot) await page.screenshot({ path: args.shot });
await close();
if (problems.length) { console.log(problems.join("\n")); process.exit(1); }
