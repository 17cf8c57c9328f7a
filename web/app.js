// shoal web UI: plain JS over the JSON API (/api/v1), no build step, no outside resources.
//
// Data flow: the torrent list arrives from the server-sent event stream (/api/v1/events, a
// `torrents` event every second; polling GET /torrents if EventSource is missing). Each torrent
// owns one table row, keyed by infohash, whose cells are kept in a Row object; an update only
// writes the cells whose text changed, so a tick over 500 torrents touches a few hundred text
// nodes, never rebuilds the table. The detail panel (files, peers, trackers, piece map) reloads
// GET /torrents/{hash} every 2 s while it is open; its file rows are built once and then updated
// in place so that a priority menu stays usable.
//
// Security: every request other than GET carries the CSRF token from GET /api/v1/token in
// X-Shoal-Token (a 403 "csrf" answer, e.g. after a daemon restart, fetches a new token and
// retries once). The page sets no inline script or style attribute: the server's CSP forbids
// them (styles change through the CSSOM only).
"use strict";

const API = "/api/v1";
const DETAIL_EVERY_MS = 2000;
const POLL_EVERY_MS = 2000;
const PRIORITIES = [[2, "low"], [4, "normal"], [6, "high"]];

const ui = {
  token: "",
  rows: new Map(), // infohash -> Row
  filter: "",
  selected: null, // infohash shown in the detail panel
  detailTimer: 0,
  detailBusy: false,
  fileRows: [], // FileRow of the selected torrent
  removing: null, // infohash the remove dialog asks about
  removed: new Map(), // infohash -> when we removed it: a list sent before that must not revive it
};

const REMOVED_GRACE_MS = 5000;

const $ = (id) => document.getElementById(id);

// ---- formatting -------------------------------------------------------------------------

function fmtBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

/** Piece sizes are powers of two: 16 KiB, 4 MiB. */
function fmtPieceLen(n) {
  if (n >= 1048576 && n % 1048576 === 0) return n / 1048576 + " MiB";
  if (n >= 1024 && n % 1024 === 0) return n / 1024 + " KiB";
  return n + " B";
}

function fmtRate(n) { return n > 0 ? fmtBytes(n) + "/s" : "–"; }

function fmtDuration(secs) {
  if (!isFinite(secs) || secs < 0) return "∞";
  secs = Math.round(secs);
  if (secs < 60) return secs + "s";
  const m = Math.floor(secs / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d > 0) return d + "d " + (h % 24) + "h";
  if (h > 0) return h + "h " + (m % 60) + "m";
  return m + "m " + (secs % 60) + "s";
}

function eta(t) {
  if (t.state === "seeding") return "done";
  if (t.state !== "downloading") return "";
  if (t.left_bytes === 0) return "done";
  return t.download_rate > 0 ? fmtDuration(t.left_bytes / t.download_rate) : "∞";
}

function stateText(t) {
  if (t.state === "checking") return "checking " + Math.floor(t.check_progress * 100) + "%";
  if (t.state === "fetching_metadata") return "metadata " + Math.floor((t.metadata_progress || 0) * 100) + "%";
  return t.state;
}

/** What the row's bar shows: the check, the metadata fetch, or the download. */
function barShare(t) {
  if (t.state === "checking") return t.check_progress;
  if (t.state === "fetching_metadata") return t.metadata_progress || 0;
  return t.progress;
}

/** A Unix time (seconds) relative to now: "12s ago", "in 3m 4s". */
function fmtWhen(secs) {
  if (secs === null || secs === undefined) return "";
  const delta = secs - Date.now() / 1000;
  return delta >= 0 ? "in " + fmtDuration(delta) : fmtDuration(-delta) + " ago";
}

function pct(fraction) { return (Math.floor(fraction * 1000) / 10).toFixed(1) + "%"; }

// ---- API ----------------------------------------------------------------------------------

async function fetchToken() {
  const res = await fetch(API + "/token", { cache: "no-store" });
  if (!res.ok) throw new Error("cannot get the API token (HTTP " + res.status + ")");
  ui.token = (await res.json()).token;
}

async function call(method, path, body, retried) {
  const headers = { "X-Shoal-Token": ui.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, {
    method, headers, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.ok) return res.status === 204 || res.status === 202 ? null : res.json();
  let error = { error: "", message: "HTTP " + res.status };
  try { error = await res.json(); } catch (e) { /* not JSON */ }
  if (res.status === 403 && error.error === "csrf" && !retried) {
    await fetchToken();
    return call(method, path, body, true);
  }
  const err = new Error(error.message || "HTTP " + res.status);
  err.kind = error.error;
  throw err;
}

// ---- messages -----------------------------------------------------------------------------

let messageTimer = 0;

function say(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = kind || "error";
  clearTimeout(messageTimer);
  if (text && kind === "info") messageTimer = setTimeout(() => say(""), 6000);
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- the torrent list ---------------------------------------------------------------------

/** One torrent's row: its cells, and the last values written to them. */
class Row {
  constructor(t) {
    this.hash = t.info_hash;
    this.tr = el("tr", { "data-hash": t.info_hash });
    const cell = (cls) => { const td = el("td", { class: cls }); this.tr.appendChild(td); return td; };
    this.name = el("button", { type: "button", class: "link", "data-action": "detail" });
    cell("name").appendChild(this.name);
    this.size = cell("num size");
    const prog = cell("progress");
    const bar = el("span", { class: "bar" });
    this.fill = el("span", { class: "fill" });
    bar.appendChild(this.fill);
    this.pct = el("span", { class: "pct" });
    prog.append(bar, this.pct);
    this.state = cell("state");
    this.down = cell("num down");
    this.up = cell("num up");
    this.peers = cell("num peers");
    this.eta = cell("num eta");
    const actions = cell("actions");
    this.toggle = el("button", { type: "button", class: "toggle", "data-action": "toggle" });
    const remove = el("button", { type: "button", class: "remove", "data-action": "remove" }, "Remove");
    actions.append(this.toggle, remove);
    this.v = {};
    this.update(t);
  }

  set(key, node, text) {
    if (this.v[key] !== text) { this.v[key] = text; node.textContent = text; }
  }

  update(t) {
    this.t = t;
    if (this.v.name !== t.name) this.lowerName = t.name.toLowerCase();
    this.set("name", this.name, t.name);
    this.set("size", this.size, t.state === "fetching_metadata" && !t.total_bytes ? "?" : fmtBytes(t.total_bytes));
    const width = pct(barShare(t));
    if (this.v.width !== width) { this.v.width = width; this.fill.style.width = width; }
    this.set("pct", this.pct, pct(t.progress));
    this.set("state", this.state, stateText(t));
    this.set("down", this.down, fmtRate(t.download_rate));
    this.set("up", this.up, fmtRate(t.upload_rate));
    this.set("peers", this.peers, String(t.peers));
    this.set("eta", this.eta, eta(t));
    this.set("toggle", this.toggle, t.state === "paused" ? "Resume" : "Pause");
    if (this.v.cls !== t.state) {
      if (this.v.cls) this.tr.classList.remove(this.v.cls);
      this.tr.classList.add(t.state);
      this.v.cls = t.state;
      this.toggle.disabled = false;
    }
    const title = t.error ? "error: " + t.error : "";
    if (this.v.title !== title) { this.v.title = title; this.state.title = title; }
    this.applyFilter();
  }

  applyFilter() {
    const hidden = ui.filter !== "" && !this.lowerName.includes(ui.filter);
    if (this.tr.hidden !== hidden) this.tr.hidden = hidden;
  }
}

function upsert(t) {
  let row = ui.rows.get(t.info_hash);
  if (row) { row.update(t); return row; }
  row = new Row(t);
  ui.rows.set(t.info_hash, row);
  document.querySelector("#torrents tbody").appendChild(row.tr);
  return row;
}

function dropRow(hash) {
  const row = ui.rows.get(hash);
  if (row) { row.tr.remove(); ui.rows.delete(hash); }
  if (ui.selected === hash) closeDetail();
}

/** Applies a whole list from the server: update, add, drop. */
function render(list) {
  performance.mark("render-start");
  const seen = new Set();
  const now = Date.now();
  for (const [hash, at] of ui.removed) if (now - at > REMOVED_GRACE_MS) ui.removed.delete(hash);
  list = list.filter((t) => !ui.removed.has(t.info_hash));
  for (const t of list) {
    seen.add(t.info_hash);
    upsert(t);
  }
  for (const hash of [...ui.rows.keys()]) if (!seen.has(hash)) dropRow(hash);
  updateTotals();
  performance.measure("render", "render-start");
  performance.clearMarks("render-start");
  const measures = performance.getEntriesByName("render");
  if (measures.length > 50) performance.clearMeasures("render");
}

/** The header's counts and total rates, and the empty-list hint, from the rows shown. */
function updateTotals() {
  const counts = {};
  let down = 0, up = 0;
  for (const { t } of ui.rows.values()) {
    counts[t.state] = (counts[t.state] || 0) + 1;
    down += t.download_rate;
    up += t.upload_rate;
  }
  const n = ui.rows.size;
  const parts = [n + (n === 1 ? " torrent" : " torrents")];
  for (const s of ["downloading", "seeding", "paused", "checking", "fetching_metadata", "error"]) {
    if (counts[s]) parts.push(counts[s] + " " + s.replace("_", " "));
  }
  const totals = parts.join(", ") + "  ↓ " + fmtRate(down) + "  ↑ " + fmtRate(up);
  if ($("totals").textContent !== totals) $("totals").textContent = totals;
  $("empty").hidden = n !== 0;
}

/** One click listener for every row's buttons. */
async function onListClick(ev) {
  const button = ev.target.closest("button[data-action]");
  if (!button) return;
  const hash = button.closest("tr").dataset.hash;
  const row = ui.rows.get(hash);
  if (!row) return;
  const action = button.dataset.action;
  if (action === "detail") openDetail(hash);
  else if (action === "remove") askRemove(row);
  else if (action === "toggle") {
    const pausing = row.t.state !== "paused";
    button.disabled = true;
    try {
      await call("POST", `/torrents/${hash}/${pausing ? "pause" : "resume"}`);
      // The call answers once the torrent's status shows the change; the next tick confirms it.
      if (pausing) { row.update({ ...row.t, state: "paused", download_rate: 0, upload_rate: 0 }); updateTotals(); }
      else row.set("state", row.state, "resuming…");
    } catch (e) { say(row.t.name + ": " + e.message); }
    button.disabled = false;
  }
}

function askRemove(row) {
  ui.removing = row.hash;
  $("remove-name").textContent = row.t.name;
  $("remove-data").checked = false;
  $("remove-dialog").showModal();
}

async function onRemoveClosed() {
  const hash = ui.removing;
  ui.removing = null;
  if ($("remove-dialog").returnValue !== "remove" || !hash) return;
  const row = ui.rows.get(hash);
  const name = row ? row.t.name : hash;
  const withData = $("remove-data").checked;
  try {
    await call("DELETE", `/torrents/${hash}?delete_data=${withData}`);
    ui.removed.set(hash, Date.now());
    dropRow(hash);
    updateTotals();
    say(`Removed ${name}` + (withData ? " and its data" : ""), "info");
  } catch (e) { say(name + ": " + e.message); }
}

function onFilter() {
  ui.filter = $("filter").value.trim().toLowerCase();
  for (const row of ui.rows.values()) row.applyFilter();
}

// ---- adding -------------------------------------------------------------------------------

function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(new Error("cannot read " + file.name));
    reader.readAsDataURL(file);
  });
}

async function addSource(source, label) {
  const view = await call("POST", "/torrents", { source, paused: $("add-paused").checked });
  ui.removed.delete(view.info_hash);
  upsert(view);
  updateTotals();
  say("Added " + (view.name || label), "info");
}

async function addFiles(files) {
  const errors = [];
  for (const file of files) {
    try { await addSource({ metainfo: await fileBase64(file) }, file.name); }
    catch (e) { errors.push(file.name + ": " + e.message); }
  }
  if (errors.length) say(errors.join("; "));
  return errors.length === 0;
}

async function onAdd(ev) {
  ev.preventDefault();
  const files = [...$("add-file").files];
  const text = $("add-magnet").value.trim();
  if (!files.length && !text) { say("Choose a .torrent file or paste a magnet link."); return; }
  $("add-button").disabled = true;
  say("");
  let ok = true;
  try {
    if (files.length) ok = await addFiles(files);
    if (text) {
      const source = text.startsWith("magnet:") ? { magnet: text } : /^https?:\/\//i.test(text) ? { url: text } : null;
      if (!source) { say("Not a magnet link or http(s) URL: " + text); ok = false; }
      else {
        try { await addSource(source, text); } catch (e) { say("Cannot add the link: " + e.message); ok = false; }
      }
    }
    if (ok) $("add-form").reset();
  } finally { $("add-button").disabled = false; }
}

function onDrop(ev) {
  const files = [...(ev.dataTransfer ? ev.dataTransfer.files : [])].filter((f) => /\.torrent$/i.test(f.name));
  if (!files.length) return;
  ev.preventDefault();
  addFiles(files);
}

// ---- the detail panel ---------------------------------------------------------------------

function openDetail(hash) {
  if (ui.selected !== hash) {
    ui.selected = hash;
    ui.fileRows = [];
    document.querySelector("#files tbody").replaceChildren();
    $("detail-name").textContent = ui.rows.get(hash) ? ui.rows.get(hash).t.name : hash;
  }
  for (const row of ui.rows.values()) row.tr.classList.toggle("selected", row.hash === hash);
  $("detail").hidden = false;
  document.body.classList.add("detail-open");
  clearInterval(ui.detailTimer);
  ui.detailTimer = setInterval(loadDetail, DETAIL_EVERY_MS);
  loadDetail();
}

function closeDetail() {
  clearInterval(ui.detailTimer);
  ui.selected = null;
  $("detail").hidden = true;
  document.body.classList.remove("detail-open");
  for (const row of ui.rows.values()) row.tr.classList.remove("selected");
}

async function loadDetail() {
  const hash = ui.selected;
  if (!hash || ui.detailBusy) return;
  ui.detailBusy = true;
  try {
    const d = await call("GET", `/torrents/${hash}`);
    if (ui.selected === hash) renderDetail(d);
  } catch (e) {
    if (ui.selected !== hash) return;
    if (e.kind === "metadata_pending") renderPending(hash);
    else say(e.message);
  } finally { ui.detailBusy = false; }
}

function renderDetail(d) {
  $("detail-name").textContent = d.name;
  const facts = [
    ["Info hash", d.info_hash], ["Size", fmtBytes(d.total_bytes)],
    ["Wanted", fmtBytes(d.wanted_bytes) + " (" + fmtBytes(d.left_bytes) + " left)"],
    ["Pieces", d.piece_count + " × " + fmtPieceLen(d.piece_len)],
    ["Downloaded", fmtBytes(d.downloaded_bytes)], ["Uploaded", fmtBytes(d.uploaded_bytes)],
    ["Hash failures", String(d.hash_failures)], ["Saved in", String(d.download_dir)],
  ];
  if (d.comment) facts.push(["Comment", d.comment]);
  if (d.private) facts.push(["Private", "yes (no DHT, PEX or LSD)"]);
  if (d.error) facts.push(["Error", d.error]);
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const bits = decodeBits(d.pieces, d.piece_count);
  drawPieces($("piece-map"), bits, d.piece_count);
  $("piece-summary").textContent = `${d.verified_pieces} of ${d.piece_count} verified`;
  renderFiles(d);
  renderPeers(d);
  renderTrackers(d.trackers);
}

/** A magnet link whose metadata has not arrived: nothing to show but the wait. */
function renderPending(hash) {
  const row = ui.rows.get(hash);
  const share = row ? Math.floor((row.t.metadata_progress || 0) * 100) + "%" : "";
  $("detail-facts").replaceChildren(el("dt", {}, "Info hash"), el("dd", {}, hash),
    el("dt", {}, "Metadata"), el("dd", {}, "waiting for peers to send it " + share));
  drawPieces($("piece-map"), new Uint8Array(0), 0);
  $("piece-summary").textContent = "known once the metadata arrives";
  ui.fileRows = [];
  document.querySelector("#files tbody").replaceChildren();
  renderPeers({ peers: [], piece_count: 0 });
  renderTrackers([]);
}

/** The base64 bitfield (first piece in the high bit of the first byte) as a byte per piece. */
function decodeBits(b64, count) {
  const out = new Uint8Array(count);
  let bytes = "";
  try { bytes = atob(b64 || ""); } catch (e) { return out; }
  for (let i = 0; i < count && (i >> 3) < bytes.length; i++) {
    out[i] = (bytes.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1;
  }
  return out;
}

/**
 * Draws the pieces as a grid of cells filling the canvas width: one piece per cell while they fit
 * in MAX_HEIGHT css pixels, else several per cell, shaded by the share verified.
 */
function drawPieces(canvas, bits, count) {
  const MAX_HEIGHT = 160;
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(100, canvas.clientWidth || 480);
  // The largest cell (16 px at most, 2 at least) that still gives every piece a cell of its own.
  let cell = 16;
  while (cell > 2 && Math.floor(width / cell) * Math.floor(MAX_HEIGHT / cell) < count) cell--;
  const cols = Math.max(1, Math.floor(width / cell));
  const maxRows = Math.max(1, Math.floor(MAX_HEIGHT / cell));
  const perCell = Math.max(1, Math.ceil(count / (cols * maxRows)));
  const cells = Math.max(1, Math.ceil(count / perCell));
  const rows = Math.ceil(cells / cols);
  const height = rows * cell;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = height + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const gap = cell >= 5 ? 1 : 0;
  for (let c = 0; c < cells; c++) {
    const first = c * perCell, last = Math.min(count, first + perCell);
    let have = 0;
    for (let i = first; i < last; i++) have += bits[i];
    const share = count === 0 ? 0 : have / (last - first);
    ctx.fillStyle = share === 1 ? "#2e9d62" : share === 0 ? "#d9dde3" : shade(share);
    ctx.fillRect((c % cols) * cell, Math.floor(c / cols) * cell, cell - gap, cell - gap);
  }
}

function shade(share) {
  // from the "missing" grey (217,221,227) to the "verified" green (46,157,98)
  const mix = (a, b) => Math.round(a + (b - a) * share);
  return `rgb(${mix(217, 46)},${mix(221, 157)},${mix(227, 98)})`;
}

/** One file's row; built once per open detail panel, then updated in place. */
class FileRow {
  constructor(hash, f) {
    this.hash = hash;
    this.index = f.index;
    this.tr = el("tr");
    this.box = el("input", { type: "checkbox", "aria-label": "wanted: " + f.path });
    this.box.addEventListener("change", () => this.sendWanted());
    this.select = el("select", { "aria-label": "priority: " + f.path });
    for (const [value, label] of PRIORITIES) this.select.appendChild(el("option", { value }, label));
    this.select.addEventListener("change", () => this.sendPriority());
    this.done = el("td", { class: "num" });
    const boxCell = el("td"), selCell = el("td");
    boxCell.appendChild(this.box);
    selCell.appendChild(this.select);
    this.tr.append(boxCell, el("td", { class: "path" }, f.path), el("td", { class: "num" }, fmtBytes(f.length)), this.done, selCell);
    this.busy = false;
    this.update(f);
  }

  update(f) {
    const done = fmtBytes(f.done_bytes) + " (" + pct(f.length ? f.done_bytes / f.length : 1) + ")";
    if (this.done.textContent !== done) this.done.textContent = done;
    if (this.busy || document.activeElement === this.select) return;
    this.box.checked = f.wanted;
    const bucket = f.priority < 4 ? 2 : f.priority === 4 ? 4 : 6;
    this.select.value = String(bucket);
    this.tr.classList.toggle("unwanted", !f.wanted);
  }

  async send(body, control) {
    this.busy = true;
    control.disabled = true;
    try { await call("PUT", `/torrents/${this.hash}/files`, body); }
    catch (e) { say("File " + this.index + ": " + e.message); }
    control.disabled = false;
    this.busy = false;
    loadDetail();
  }

  sendWanted() {
    this.tr.classList.toggle("unwanted", !this.box.checked);
    this.send(this.box.checked ? { wanted: [this.index] } : { unwanted: [this.index] }, this.box);
  }

  sendPriority() { this.send({ priorities: [[this.index, Number(this.select.value)]] }, this.select); }
}

function renderFiles(d) {
  const body = document.querySelector("#files tbody");
  const same = ui.fileRows.length === d.files.length && ui.fileRows.every((r) => r.hash === d.info_hash);
  if (!same) {
    ui.fileRows = d.files.map((f) => new FileRow(d.info_hash, f));
    body.replaceChildren(...ui.fileRows.map((r) => r.tr));
    return;
  }
  d.files.forEach((f, i) => ui.fileRows[i].update(f));
}

function renderPeers(d) {
  const peers = d.peers || [];
  const flags = (p) => (p.am_interested ? "I" : "") + (p.peer_choking ? "c" : "") + (p.peer_interested ? "i" : "") + (p.am_choking ? "C" : "");
  $("peers-empty").hidden = peers.length !== 0;
  document.querySelector("#peers tbody").replaceChildren(...peers.map((p) => {
    const tr = el("tr");
    const has = d.piece_count ? pct(p.pieces / d.piece_count) : "";
    tr.append(el("td", {}, String(p.addr)), el("td", {}, p.client || ""), el("td", {}, p.source || ""),
      el("td", { class: "num" }, fmtRate(p.download_rate)), el("td", { class: "num" }, fmtRate(p.upload_rate)),
      el("td", { class: "num" }, has), el("td", { title: "I: we want, c: they choke us, i: they want, C: we choke them" }, flags(p)));
    return tr;
  }));
}

/**
 * Trackers: objects with a url, tier, status and the last announce's outcome (what the daemon
 * reports), or plain tiers of URLs (older daemons); a column stays empty when nothing is known.
 */
function renderTrackers(trackers) {
  const rows = [];
  (trackers || []).forEach((entry, i) => {
    if (typeof entry === "string") rows.push({ tier: i, url: entry });
    else if (Array.isArray(entry)) for (const url of entry) rows.push({ tier: i, url: String(url) });
    else if (entry && typeof entry === "object") rows.push(entry);
  });
  $("trackers-empty").hidden = rows.length !== 0;
  document.querySelector("#trackers tbody").replaceChildren(...rows.map(trackerRow));
}

function trackerRow(t) {
  const tr = el("tr", { class: "tracker " + (t.status || "") });
  const known = (v) => (v === null || v === undefined ? "" : String(v));
  const swarm = t.seeders !== undefined && t.seeders !== null ? `${t.seeders} / ${known(t.leechers)}` : "";
  const counts = swarm && t.downloaded !== undefined && t.downloaded !== null ? `${swarm} / ${t.downloaded}` : swarm;
  const message = t.last_error || t.warning || "";
  const status = el("td", { class: "status" }, known(t.status));
  if (t.consecutive_failures > 1) status.textContent += ` (${t.consecutive_failures}×)`;
  const url = el("td", { class: "path" }, known(t.url));
  if (message) url.appendChild(el("div", { class: "message" }, message));
  tr.append(el("td", {}, known(t.tier)), url, status,
    el("td", { class: "num" }, t.last_success ? known(t.last_peers) : ""), el("td", { class: "num" }, counts),
    el("td", {}, fmtWhen(t.last_announce)), el("td", {}, fmtWhen(t.next_announce)));
  return tr;
}

// ---- live updates -------------------------------------------------------------------------

function setConn(live, text) {
  const c = $("conn");
  c.textContent = text;
  c.className = "conn " + (live ? "live" : "down");
}

function onServiceEvent(ev) {
  const row = ev.info_hash ? ui.rows.get(ev.info_hash) : null;
  const name = row ? row.t.name : ev.name || ev.info_hash;
  if (ev.type === "removed") dropRow(ev.info_hash);
  else if (ev.type === "completed") say("Completed: " + name, "info");
  else if (ev.type === "verified") say("Check finished: " + name, "info");
  else if (ev.type === "error") say(name + ": " + ev.message);
  else if (ev.type === "peer_banned") say(`${name}: banned peer ${ev.addr}`, "info");
}

function connectEvents() {
  if (!window.EventSource) { poll(); return; }
  let lost = false;
  const events = new EventSource(API + "/events");
  events.addEventListener("open", () => {
    setConn(true, "live");
    if (lost) { lost = false; fetchToken().catch((e) => say(e.message)); }
  });
  events.addEventListener("error", () => { lost = true; setConn(false, "reconnecting…"); });
  events.addEventListener("torrents", (e) => render(JSON.parse(e.data)));
  events.addEventListener("event", (e) => onServiceEvent(JSON.parse(e.data)));
}

async function poll() {
  try { render(await call("GET", "/torrents")); setConn(true, "polling"); }
  catch (e) { setConn(false, "unreachable"); }
  setTimeout(poll, POLL_EVERY_MS);
}

async function start() {
  $("add-form").addEventListener("submit", onAdd);
  $("message").addEventListener("click", () => say(""));
  $("filter").addEventListener("input", onFilter);
  document.querySelector("#torrents tbody").addEventListener("click", onListClick);
  $("detail-close").addEventListener("click", closeDetail);
  $("remove-dialog").addEventListener("close", onRemoveClosed);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && ui.selected && !$("remove-dialog").open) closeDetail(); });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", onDrop);
  await fetchToken();
  render(await call("GET", "/torrents"));
  document.body.dataset.ready = "true";
  connectEvents();
}

start().catch((e) => say(e.message));
