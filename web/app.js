// shoal web UI: plain JS over the JSON API (/api/v1). The torrent list comes from the
// server-sent event stream (/api/v1/events, every second); rows are updated in place, keyed
// by infohash, so hundreds of torrents stay cheap. Mutating calls carry the CSRF token.
"use strict";

const api = "/api/v1";
let token = "";
let selected = null;
const rows = new Map();

function fmtBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function say(text) { document.getElementById("message").textContent = text || ""; }

async function call(method, path, body) {
  const headers = { "X-Shoal-Token": token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(api + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let text = res.status + "";
    try { text = (await res.json()).message; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return res.status === 204 || res.status === 202 ? null : res.json();
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function makeRow(t) {
  const tr = el("tr", { "data-hash": t.info_hash });
  const name = el("td", { class: "name" });
  name.addEventListener("click", () => showDetail(t.info_hash));
  const state = el("td", { class: "state" });
  const prog = el("td", { class: "progress" });
  const bar = el("span", { class: "bar" });
  bar.appendChild(el("span"));
  prog.append(bar, el("span", { class: "pct" }));
  const down = el("td", { class: "down" }), up = el("td", { class: "up" }), peers = el("td", { class: "peers" });
  const actions = el("td");
  const toggle = el("button", { class: "toggle", type: "button" });
  toggle.addEventListener("click", async () => {
    const paused = tr.dataset.state === "paused";
    try { await call("POST", `/torrents/${t.info_hash}/${paused ? "resume" : "pause"}`); } catch (e) { say(e.message); }
  });
  const remove = el("button", { class: "remove", type: "button" }, "Remove");
  remove.addEventListener("click", async () => {
    try { await call("DELETE", `/torrents/${t.info_hash}`); tr.remove(); rows.delete(t.info_hash); } catch (e) { say(e.message); }
  });
  actions.append(toggle, remove);
  tr.append(name, state, prog, down, up, peers, actions);
  return tr;
}

function updateRow(tr, t) {
  const set = (sel, text) => { const c = tr.querySelector(sel); if (c.textContent !== text) c.textContent = text; };
  tr.dataset.state = t.state;
  tr.className = t.state;
  set(".name", t.name);
  set(".state", t.state);
  const pct = (t.progress * 100).toFixed(1) + "%";
  set(".pct", " " + pct);
  tr.querySelector(".bar > span").style.width = pct;
  set(".down", fmtBytes(t.download_rate) + "/s");
  set(".up", fmtBytes(t.upload_rate) + "/s");
  set(".peers", String(t.peers));
  set(".toggle", t.state === "paused" ? "Resume" : "Pause");
}

function render(list) {
  const body = document.querySelector("#torrents tbody");
  const seen = new Set();
  for (const t of list) {
    seen.add(t.info_hash);
    let tr = rows.get(t.info_hash);
    if (!tr) { tr = makeRow(t); rows.set(t.info_hash, tr); body.appendChild(tr); }
    updateRow(tr, t);
  }
  for (const [hash, tr] of rows) if (!seen.has(hash)) { tr.remove(); rows.delete(hash); }
  const down = list.reduce((s, t) => s + t.download_rate, 0), up = list.reduce((s, t) => s + t.upload_rate, 0);
  document.getElementById("totals").textContent = `${list.length} torrents, ↓ ${fmtBytes(down)}/s ↑ ${fmtBytes(up)}/s`;
  if (selected && seen.has(selected)) showDetail(selected, true);
}

function drawPieces(b64, count) {
  const canvas = document.getElementById("piece-map");
  const ctx = canvas.getContext("2d");
  const bytes = atob(b64);
  ctx.fillStyle = "#ddd";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#3a7";
  const w = canvas.width / Math.max(count, 1);
  for (let i = 0; i < count; i++) {
    if (bytes.charCodeAt(i >> 3) & (0x80 >> (i & 7))) ctx.fillRect(Math.floor(i * w), 0, Math.ceil(w), canvas.height);
  }
}

async function showDetail(hash, quiet) {
  selected = hash;
  let d;
  try { d = await call("GET", `/torrents/${hash}`); } catch (e) { if (!quiet) say(e.message); return; }
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-name").textContent = d.name;
  drawPieces(d.pieces, d.piece_count);
  const files = document.querySelector("#files tbody");
  files.replaceChildren(...d.files.map((f) => {
    const tr = el("tr");
    const box = el("input", { type: "checkbox", "aria-label": "wanted " + f.path });
    box.checked = f.wanted;
    box.addEventListener("change", () => call("PUT", `/torrents/${hash}/files`, box.checked ? { wanted: [f.index] } : { unwanted: [f.index] }).catch((e) => say(e.message)));
    const pri = el("select", { "aria-label": "priority " + f.path });
    for (const [v, label] of [[2, "low"], [4, "normal"], [6, "high"]]) {
      const o = el("option", { value: v }, label);
      if ((f.priority < 4 && v === 2) || (f.priority === 4 && v === 4) || (f.priority > 4 && v === 6)) o.selected = true;
      pri.appendChild(o);
    }
    pri.addEventListener("change", () => call("PUT", `/torrents/${hash}/files`, { priorities: [[f.index, Number(pri.value)]] }).catch((e) => say(e.message)));
    const c = el("td"); c.appendChild(box);
    const p = el("td"); p.appendChild(pri);
    tr.append(c, el("td", {}, f.path), el("td", {}, fmtBytes(f.length)), el("td", {}, fmtBytes(f.done_bytes)), p);
    return tr;
  }));
  document.querySelector("#peers tbody").replaceChildren(...d.peers.map((p) => {
    const tr = el("tr");
    tr.append(el("td", {}, p.addr), el("td", {}, p.client || ""), el("td", {}, fmtBytes(p.download_rate) + "/s"), el("td", {}, fmtBytes(p.upload_rate) + "/s"), el("td", {}, String(p.pieces)));
    return tr;
  }));
  document.getElementById("trackers").replaceChildren(...d.trackers.flat().map((u) => el("li", {}, u)));
}

async function addTorrent(ev) {
  ev.preventDefault();
  const file = document.getElementById("add-file").files[0];
  const text = document.getElementById("add-magnet").value.trim();
  let source;
  if (file) {
    const buf = new Uint8Array(await file.arrayBuffer());
    let bin = "";
    for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    source = { metainfo: btoa(bin) };
  } else if (text.startsWith("magnet:")) source = { magnet: text };
  else if (text) source = { url: text };
  else { say("choose a .torrent file or paste a magnet link"); return; }
  try {
    await call("POST", "/torrents", { source });
    say("");
    document.getElementById("add-form").reset();
  } catch (e) { say(e.message); }
}

async function start() {
  token = (await (await fetch(api + "/token")).json()).token;
  document.getElementById("add-form").addEventListener("submit", addTorrent);
  document.getElementById("detail-close").addEventListener("click", () => { selected = null; document.getElementById("detail").hidden = true; });
  render(await call("GET", "/torrents"));
  const events = new EventSource(api + "/events");
  events.addEventListener("torrents", (e) => render(JSON.parse(e.data)));
}

start().catch((e) => say(e.message));
