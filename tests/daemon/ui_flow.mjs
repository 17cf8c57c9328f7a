// The web UI end to end, as a person would use it, in headless Chromium (playwright-core driving
// Debian's /usr/bin/chromium). Run by crates/shoal-cli/tests/daemon_web_ui.rs, which starts the
// tracker, a seeder and the daemon:
//
//   node ui_flow.mjs --url http://127.0.0.1:PORT/ --torrent T.torrent --hash HEX --shots DIR
//
// Steps: open the UI; upload the .torrent through the file input; watch it reach 100% and
// "seeding"; try a magnet link for the same torrent (the UI must show the daemon's answer and
// keep one row); open the detail view (piece map all verified, files, trackers) and change a
// file's priority and wanted flag through the UI, checking the daemon took them; pause and see
// "paused"; resume; remove (keeping the data) and see the list empty; add the magnet link again
// (listed, or the daemon's refusal shown) and remove it. A PNG screenshot is saved
// in DIR at every step. Prints `STEP ...` lines; exits 1 with the reason on the first failure.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { openBrowser, parseArgs } from "./browser.mjs";

const args = parseArgs(process.argv.slice(2), ["url", "torrent", "hash", "shots"]);
const COMPLETE_TIMEOUT = Number(args["complete-timeout-ms"] || 180000);
const STEP_TIMEOUT = 30000;
mkdirSync(args.shots, { recursive: true });

let shot = 0;
async function screenshot(page, label) {
  shot += 1;
  const path = join(args.shots, `${String(shot).padStart(2, "0")}-${label}.png`);
  await page.screenshot({ path });
  console.log(`SCREENSHOT ${path}`);
}

function step(text) { console.log(`STEP ${text}`); }

/** The daemon's view of the torrent, read from inside the page (same origin, no token needed). */
async function apiDetail(page, hash) {
  return page.evaluate(async (h) => (await fetch(`/api/v1/torrents/${h}`)).json(), hash);
}

async function waitFor(what, fn, timeout = STEP_TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const last = await fn();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last seen: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function run(page) {
  const hash = args.hash.toLowerCase();
  const row = page.locator(`#torrents tbody tr[data-hash="${hash}"]`);
  const rows = page.locator("#torrents tbody tr");

  step("open the UI");
  await page.goto(args.url);
  await page.waitForSelector("body[data-ready=true]", { timeout: STEP_TIMEOUT });
  await page.locator("#conn.live").waitFor({ timeout: STEP_TIMEOUT });
  if ((await rows.count()) !== 0) throw new Error("the daemon should start with no torrents");
  if (!(await page.locator("#empty").isVisible())) throw new Error("the empty-list hint is not shown");
  await screenshot(page, "empty");

  step("add the .torrent through the file input");
  await page.setInputFiles("#add-file", args.torrent);
  await page.click("#add-button");
  await row.waitFor({ timeout: STEP_TIMEOUT });
  await screenshot(page, "added");

  step("watch it complete");
  await waitFor("100% and seeding", async () => {
    const state = await row.locator("td.state").textContent();
    const pct = await row.locator(".pct").textContent();
    return (state === "seeding" && pct === "100.0%") || { state, pct };
  }, COMPLETE_TIMEOUT);
  await screenshot(page, "complete");

  step("a magnet link for the same torrent is answered, not added twice");
  await page.fill("#add-magnet", `magnet:?xt=urn:btih:${hash}&dn=again`);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/v1/torrents") && r.request().method() === "POST"),
    page.click("#add-button"),
  ]);
  const body = await answer.json();
  // Refused (a duplicate, or magnets not supported): the daemon's own words are shown.
  const expected = answer.ok() ? "Added" : body.message;
  await waitFor(`the message ${JSON.stringify(expected)}`, async () => {
    const text = await page.locator("#message").textContent();
    return text.includes(expected) || text;
  });
  console.log(`MAGNET answer: HTTP ${answer.status()}: ${await page.locator("#message").textContent()}`);
  if ((await rows.count()) !== 1) throw new Error("the same torrent is listed twice");
  await screenshot(page, "magnet-answer");

  step("open the detail view");
  await row.locator("button[data-action=detail]").click();
  const detail = await apiDetail(page, hash);
  await waitFor("the piece map summary", async () => {
    const text = await page.locator("#piece-summary").textContent();
    return text === `${detail.piece_count} of ${detail.piece_count} verified` || text;
  });
  await waitFor("one row per file", async () => (await page.locator("#files tbody tr").count()) === detail.files.length);
  const trackers = await page.locator("#trackers tbody").textContent();
  if (!trackers.includes("/announce")) throw new Error(`the tracker is not listed: ${trackers}`);
  const painted = await page.evaluate(() => {
    const c = document.getElementById("piece-map");
    const px = c.getContext("2d").getImageData(1, 1, 1, 1).data;
    return [px[0], px[1], px[2]];
  });
  if (painted.join() !== "46,157,98") throw new Error(`the first piece is not drawn as verified: rgb(${painted})`);
  await screenshot(page, "detail");

  step("set a file's priority and wanted flag through the UI");
  const last = detail.files.length - 1;
  await page.locator("#files tbody tr").nth(last).locator("select").selectOption("6");
  await waitFor("priority 6 in the daemon", async () => {
    const p = (await apiDetail(page, hash)).files[last].priority;
    return p === 6 || p;
  });
  const box = page.locator("#files tbody tr").nth(last).locator("input[type=checkbox]");
  await box.uncheck();
  await waitFor("the file unwanted in the daemon", async () => (await apiDetail(page, hash)).files[last].wanted === false);
  await screenshot(page, "detail-file-unwanted");
  await box.check();
  await waitFor("the file wanted again", async () => (await apiDetail(page, hash)).files[last].wanted === true);
  await page.click("#detail-close");
  await page.locator("#detail").waitFor({ state: "hidden", timeout: STEP_TIMEOUT });

  step("pause");
  await row.locator("button.toggle").click();
  await waitFor("paused", async () => {
    const state = await row.locator("td.state").textContent();
    const api = (await apiDetail(page, hash)).state;
    return (state === "paused" && api === "paused") || { state, api };
  });
  // Two more ticks of the live list must still say paused.
  await page.waitForTimeout(2500);
  const still = await row.locator("td.state").textContent();
  if (still !== "paused") throw new Error(`the list went back to ${still}`);
  if ((await row.locator("button.toggle").textContent()) !== "Resume") throw new Error("no Resume button");
  await screenshot(page, "paused");

  step("resume");
  await row.locator("button.toggle").click();
  await waitFor("seeding again", async () => (await row.locator("td.state").textContent()) === "seeding");

  step("remove, keeping the data");
  await row.locator("button.remove").click();
  await page.locator("#remove-dialog[open]").waitFor({ timeout: STEP_TIMEOUT });
  await screenshot(page, "remove-confirm");
  await page.click("#remove-confirm");
  await waitFor("an empty list", async () => (await rows.count()) === 0 && (await page.locator("#empty").isVisible()));
  const left = await page.evaluate(async () => (await fetch("/api/v1/torrents")).json());
  if (left.length !== 0) throw new Error(`the daemon still lists ${left.length} torrents`);
  await page.waitForTimeout(1500);
  if ((await rows.count()) !== 0) throw new Error("a removed torrent came back in the list");
  await screenshot(page, "removed");

  step("add by magnet link: listed (or the daemon's refusal shown), then removed");
  await page.fill("#add-magnet", `magnet:?xt=urn:btih:${hash}&dn=by-magnet`);
  const [added] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/v1/torrents") && r.request().method() === "POST"),
    page.click("#add-button"),
  ]);
  if (!added.ok()) {
    const refusal = (await added.json()).message;
    await waitFor("the refusal shown", async () => (await page.locator("#message").textContent()).includes(refusal));
    if ((await rows.count()) !== 0) throw new Error("a refused magnet link was listed");
    console.log(`MAGNET add refused: HTTP ${added.status()}: ${refusal}`);
    await screenshot(page, "magnet-refused");
    return;
  }
  await row.waitFor({ timeout: STEP_TIMEOUT });
  const shown = await row.locator("td.state").textContent();
  console.log(`MAGNET add listed: state ${shown}`);
  await screenshot(page, "magnet-added");
  await row.locator("button.remove").click();
  await page.locator("#remove-dialog[open]").waitFor({ timeout: STEP_TIMEOUT });
  await page.click("#remove-confirm");
  await waitFor("an empty list again", async () => (await rows.count()) === 0);
  await screenshot(page, "magnet-removed");
}

const browser = await openBrowser();
let failed = null;
try {
  await run(browser.page);
} catch (e) {
  failed = e;
  try { await screenshot(browser.page, "failure"); } catch (_) { /* the page is gone */ }
}
await browser.close();
if (browser.problems.length) console.log("PAGE PROBLEMS\n" + browser.problems.join("\n"));
if (failed || browser.problems.length) {
  console.log(`UI FLOW FAILED: ${failed ? failed.stack || failed.message : "the page reported problems"}`);
  process.exit(1);
}
console.log("UI FLOW OK");
