// The miner's dashboard: one EventSource feed (/api/v1/events, a state object per second),
// the hour of history fetched once and extended from that feed, and POST controls that ask
// for the token when the miner has one. Every value shown comes from the miner's JSON;
// every string from a pool or device is set as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SI = ["", "k", "M", "G", "T", "P", "E"];
const HOUR_S = 3600;

function si(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  let i = 0;
  while (Math.abs(v) >= 1000 && i < SI.length - 1) { v /= 1000; i++; }
  return v.toFixed(digits) + (SI[i] ? " " + SI[i] : "");
}
function fmtRateUnit(hs) { const s = si(hs, 2); return s.includes(" ") ? s + "H/s" : s + " H/s"; }
function fmtDiff(d) {
  if (d === null || d === undefined || !isFinite(d)) return "–";
  let i = 0;
  while (d >= 1000 && i < SI.length - 1) { d /= 1000; i++; }
  return (d >= 100 ? d.toFixed(0) : d >= 10 ? d.toFixed(1) : d.toPrecision(3)) + SI[i];
}
function fmtDuration(s) {
  s = Math.floor(s || 0);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + String(h).padStart(2, "0") + ":" + String(m).padStart(2, "0") + ":" +
    String(s % 60).padStart(2, "0");
}
function fmtAgo(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}
const fmtTime = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
const opt = (v, f) => (v === null || v === undefined) ? "–" : f(v);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const tag = (text, cls) => el("span", { class: "tag " + (cls || text) }, text);
function setText(id, text) { const e = $(id); if (e.textContent !== text) e.textContent = text; }

// -- state ------------------------------------------------------------------------------
let history = [];          // [[unix s, H/s], ...]
let last = null;           // last state object
let token = sessionStorage.getItem("miner-token") || "";
let authNeeded = false;

function render(st) {
  last = st;
  const s = st.summary;
  authNeeded = !!st.auth;
  setText("version", "v" + s.version);
  const hr = s.hashrate;
  const hero = $("hashrate");
  hero.dataset.hs = String(hr["5s"]);
  setText("hashrate", fmtRateUnit(hr["5s"]));
  for (const w of ["1m", "5m", "15m", "av"]) setText("hr-" + w, fmtRateUnit(hr[w]));
  const acc = $("accepted");
  acc.dataset.n = String(s.accepted);
  setText("accepted", String(s.accepted));
  setText("rejected", String(s.rejected));
  setText("stale", String(s.stale));
  setText("hw", String(s.hw_errors));
  setText("best", fmtDiff(s.best_share));
  setText("blocks", String(s.blocks));
  setText("netdiff", fmtDiff(s.network_difficulty));
  setText("watts", s.watts === null ? "–" : s.watts.toFixed(1) + " W");
  setText("jth", s.watts === null ? "not measured (--cpu-watts)" :
    s.j_per_th === null ? "J/TH –" : s.j_per_th.toFixed(1) + " J/TH");
  setText("uptime", fmtDuration(s.uptime_s));

  const pill = $("state");
  const state = s.paused ? "paused" : "mining";
  pill.dataset.state = state;
  setText("state", state);
  setText("reasons", s.paused ? s.pause_reasons.map((r) => r.label + ": " + r.reason).join(" · ") : "");
  $("reasons").title = $("reasons").textContent;
  $("pause").disabled = s.paused && s.pause_reasons.some((r) => r.source === "web");
  $("resume").disabled = !s.paused;

  renderDevices(st.devices);
  renderPools(st.pools);
  renderShares(st.shares);
  if (st.history_last) {
    const [t, v] = st.history_last;
    if (!history.length || history[history.length - 1][0] < t) { history.push([t, v]); trimHistory(); drawChart(); }
  }
}

function renderDevices(devs) {
  setText("dev-count", devs.filter((d) => d.enabled).length + " of " + devs.length + " on");
  const body = el("tbody");
  for (const d of devs) {
    const toggle = el("button", { class: "btn small", type: "button", "data-device": d.name,
      onclick: () => control(`/api/v1/devices/${encodeURIComponent(d.name)}/${d.enabled ? "disable" : "enable"}`,
        d.enabled ? `${d.name} disabled` : `${d.name} enabled`) }, d.enabled ? "Disable" : "Enable");
    body.append(el("tr", { "data-device": d.name },
      el("td", {}, el("div", { class: "devname" }, d.name), el("div", { class: "devkind" }, d.kind + " · ", tag(d.status))),
      el("td", { class: "wrap" }, d.model + (d.frequency_mhz ? ` @ ${d.frequency_mhz} MHz` : "")),
      el("td", { class: "num" }, fmtRateUnit(d.hashrate["1m"])),
      el("td", { class: "num" }, `${d.accepted} / ${d.rejected} / ${d.hw_errors}`),
      el("td", { class: "num c-temp" }, opt(d.temperature_c, (t) => t.toFixed(1) + " °C")),
      el("td", { class: "num c-watts" }, opt(d.watts, (w) => w.toFixed(1))),
      el("td", { class: "num c-watts" }, opt(d.j_per_th, (j) => j.toFixed(1))),
      el("td", { class: "num" }, toggle)));
  }
  if (!devs.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "no devices")));
  $("devices").tBodies[0].replaceWith(body);
  // Columns no device can fill (no sensor, no power reading) are left out.
  $("devices").classList.toggle("no-temp", !devs.some((d) => d.temperature_c !== null));
  $("devices").classList.toggle("no-watts", !devs.some((d) => d.watts !== null));
}

function renderPools(pools) {
  const active = pools.find((p) => p.active);
  setText("pool-active", active ? "mining on pool " + active.id : "no pool connected");
  const body = el("tbody");
  for (const p of pools) {
    const sw = p.active ? tag("active") : el("button", { class: "btn small", type: "button", "data-pool": String(p.id),
      onclick: () => control(`/api/v1/pools/${p.id}/switch`, `switching to pool ${p.id}`) }, "Switch");
    body.append(el("tr", { "data-pool": String(p.id) },
      el("td", { class: "pool" }, el("div", { class: "devname", title: p.url }, `#${p.id} ${hostPort(p.url)}`),
        el("div", { class: "devkind", title: p.user }, scheme(p.url) + " · " + p.user)),
      el("td", {}, tag(p.status)),
      el("td", { class: "num" }, fmtDiff(p.difficulty)),
      el("td", { class: "num" }, `${p.accepted} / ${p.rejected} / ${p.stale}`),
      el("td", { class: "num" }, fmtAgo(p.last_share_time)),
      el("td", { class: "num" }, sw)));
  }
  if (!pools.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "offline benchmark: no pool")));
  $("pools").tBodies[0].replaceWith(body);
}

const hostPort = (url) => url.replace(/^[a-z0-9+.-]+:\/\//i, "");
const scheme = (url) => (/^stratum\+(\w+):/i.exec(url) || [, "tcp"])[1] === "ssl" ? "TLS" : "TCP";

let sharesKey = "";
function renderShares(shares) {
  const key = shares.length ? shares[0].time + ":" + shares.length : "0";
  if (key === sharesKey) return;
  sharesKey = key;
  const body = el("tbody");
  for (const s of shares) {
    body.append(el("tr", {},
      el("td", {}, fmtTime(s.time)), el("td", {}, tag(s.result)),
      el("td", { class: "num" }, fmtDiff(s.target_difficulty)), el("td", { class: "num" }, fmtDiff(s.share_difficulty)),
      el("td", {}, s.device), el("td", { class: "wrap" }, s.block ? "block!" : (s.reason || ""))));
  }
  if (!shares.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "no shares yet")));
  $("shares").tBodies[0].replaceWith(body);
}

// -- chart ---------------------------------------------------------------------------------
function trimHistory() {
  const cut = Date.now() / 1000 - HOUR_S;
  while (history.length && history[0][0] < cut) history.shift();
}

function fmtAxis(hs) {
  let i = 0;
  while (hs >= 1000 && i < SI.length - 1) { hs /= 1000; i++; }
  return (Number.isInteger(hs) ? String(hs) : hs.toFixed(hs >= 10 ? 0 : 1)) + " " + SI[i] + "H/s";
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  // Tops whose quarters are round numbers, so the four grid lines read cleanly.
  for (const m of [1, 1.2, 1.6, 2, 4, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart() {
  const c = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (!w || !h) return;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
  }
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue("--muted"), line = css.getPropertyValue("--line");
  const accent = css.getPropertyValue("--accent");
  const max = niceMax(Math.max(0, ...history.map((p) => p[1])) * 1.1);
  g.font = "11px system-ui, sans-serif";
  const ylabels = [0, 1, 2, 3, 4].map((i) => fmtAxis(max * i / 4));
  const left = 10 + Math.max(...ylabels.map((t) => g.measureText(t).width)), right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  // The axis spans what has been collected (at least 5 min), up to the hour the ring keeps.
  const now = Date.now() / 1000;
  const span = Math.min(HOUR_S, Math.max(300, history.length ? now - history[0][0] : 0));
  const t0 = now - span, minutes = span / 60, step = minutes > 30 ? 15 : minutes > 10 ? 5 : 1;
  g.fillStyle = muted; g.strokeStyle = line; g.lineWidth = 1;
  g.textAlign = "right"; g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - ph * i / 4;
    g.beginPath(); g.moveTo(left, y + .5); g.lineTo(w - right, y + .5); g.stroke();
    g.fillText(ylabels[i], left - 6, y);
  }
  g.textAlign = "center"; g.textBaseline = "top";
  const every = Math.max(step, Math.ceil(minutes * 64 / pw / step) * step);   // labels >= 64 px apart
  for (let m = Math.floor(minutes / every) * every; m >= 0; m -= every) {
    const x = left + pw * (1 - m / minutes);
    g.textAlign = x - left < 30 ? "left" : w - right - x < 30 ? "right" : "center";
    g.fillText(m ? `-${m} min` : "now", x, top + ph + 5);
  }
  if (!history.length) {
    g.fillText("collecting: a point every 5 s", left + pw / 2, top + ph / 2);
    return;
  }
  const X = (t) => left + pw * (t - t0) / span, Y = (v) => top + ph - ph * v / max;
  const grad = g.createLinearGradient(0, top, 0, top + ph);
  grad.addColorStop(0, "rgba(247,147,26,.35)"); grad.addColorStop(1, "rgba(247,147,26,0)");
  g.beginPath();
  history.forEach(([t, v], i) => i ? g.lineTo(X(t), Y(v)) : g.moveTo(X(t), Y(v)));
  g.strokeStyle = accent; g.lineWidth = 2; g.lineJoin = "round"; g.stroke();
  g.lineTo(X(history[history.length - 1][0]), top + ph); g.lineTo(X(history[0][0]), top + ph); g.closePath();
  g.fillStyle = grad; g.fill();
}

// -- controls -----------------------------------------------------------------------------
let toastTimer = 0;
function toast(text, error) {
  const t = $("toast");
  t.textContent = text; t.className = "toast show" + (error ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = "toast"; }, 2500);
}

async function post(path) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(path, { method: "POST", headers, body: "{}", cache: "no-store" });
  let body = {};
  try { body = await r.json(); } catch (e) { /* keep {} */ }
  return [r.status, body];
}

async function control(path, done) {
  let [status, body] = await post(path);
  if (status === 401 || status === 403) {
    if (!await askToken(status === 403 && token ? "wrong token" : "")) return;
    [status, body] = await post(path);
    if (status === 401 || status === 403) { forgetToken(); toast(body.error || "refused", true); return; }
  }
  if (status >= 400) { toast(body.error || "failed (" + status + ")", true); return; }
  toast(body.result === "still paused" ? "still paused: " + body.pause_reasons.map((r) => r.label).join(", ") : done);
}

function forgetToken() { token = ""; sessionStorage.removeItem("miner-token"); }

function askToken(error) {
  const d = $("token-dialog");
  $("token-error").textContent = error || "";
  $("token-input").value = "";
  return new Promise((resolve) => {
    const finish = (ok) => {
      $("token-form").onsubmit = null; $("token-cancel").onclick = null;
      d.close();
      resolve(ok);
    };
    $("token-form").onsubmit = (e) => {
      e.preventDefault();
      token = $("token-input").value.trim();
      sessionStorage.setItem("miner-token", token);
      finish(!!token);
    };
    $("token-cancel").onclick = () => finish(false);
    d.showModal();
    $("token-input").focus();
  });
}

$("pause").addEventListener("click", () => control("/api/v1/pause", "paused"));
$("resume").addEventListener("click", () => control("/api/v1/resume", "resumed"));

// -- feed ----------------------------------------------------------------------------------
async function start() {
  try {
    const r = await fetch("/api/v1/history", { cache: "no-store" });
    history = (await r.json()).points;
    trimHistory();
  } catch (e) { history = []; }
  drawChart();
  const es = new EventSource("/api/v1/events");
  es.addEventListener("state", (ev) => render(JSON.parse(ev.data)));
  es.onerror = () => { const p = $("state"); p.dataset.state = "offline"; p.textContent = "offline"; };
}
window.addEventListener("resize", drawChart);
setInterval(() => { trimHistory(); drawChart(); }, 15000);
start();
