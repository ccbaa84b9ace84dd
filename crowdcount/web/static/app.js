/* crowdcount dashboard: live cameras (server-sent events, MJPEG) and finished videos. No build step. */
"use strict";

const state = { info: null, cameras: {}, range: {}, charts: {}, resultPlot: null, events: null };
window.crowdcount = state; // for the browser tests and curious people

const $ = (sel, root = document) => root.querySelector(sel);
const STATUS_SYMBOL = { streaming: "●", connecting: "○", reconnecting: "↻", stalled: "▲", ended: "■", failed: "✖", stopped: "■" };
const SERIES_COLOURS = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490"];
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];

function text(el, value) { if (el.textContent !== String(value)) el.textContent = String(value); }
function fmt(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(digits) : String(value);
}
function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
// a value for HTML: formatted, then escaped (result files are data others may write, never markup)
function h(value, digits = 1) { return esc(fmt(value, digits)); }
async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

/* ---- charts ------------------------------------------------------------------------------------ */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
function clock(t) { return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }
function chartWidth(el) { return Math.max(260, Math.floor(el.getBoundingClientRect().width || 600)); }

const STEPPED = uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined; // counts are steps

function makeChart(el, labels, data, time = true) {
  const series = [{}].concat(labels.map((label, i) => ({
    label, stroke: SERIES_COLOURS[i % SERIES_COLOURS.length], width: 2, dash: DASHES[i % DASHES.length],
    points: { show: false }, paths: STEPPED,
  })));
  const opts = {
    width: chartWidth(el), height: 220, series, padding: [12, 44, 0, 0], // room for the last clock label
    scales: { x: { time }, y: { range: (u, min, max) => [0, Math.max(2, Math.ceil(max * 1.15))] } },
    axes: [
      time ? { space: 100, incrs: TIME_STEPS, values: (u, ticks) => ticks.map(clock) } : { label: "seconds into the video" },
      { label: "people", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
    ],
    legend: { live: false },
  };
  el.innerHTML = "";
  const chart = new uPlot(opts, data, el);
  el.dataset.points = String(data[0].length);
  return chart;
}

window.addEventListener("resize", () => {
  for (const [name, chart] of Object.entries(state.charts)) chart.setSize({ width: chartWidth(state.cameras[name].chartEl), height: 220 });
  if (state.resultPlot) state.resultPlot.setSize({ width: chartWidth($("#result-plot")), height: 260 });
});

/* ---- live ----------------------------------------------------------------------------------------- */
function cameraCard(name) {
  const node = $("#camera-template").content.firstElementChild.cloneNode(true);
  node.id = `camera-${name}`;
  node.dataset.source = name;
  node.setAttribute("aria-label", `Camera ${name}`);
  text($(".name", node), name);
  const img = $(".stream", node);
  img.alt = `Live view of camera ${name}: boxes, track numbers, lines and zones`;
  const src = `stream/${encodeURIComponent(name)}.mjpg`;
  img.src = src;
  const toggle = $(".toggle-video", node);
  toggle.addEventListener("click", () => {
    const on = toggle.getAttribute("aria-pressed") !== "true";
    toggle.setAttribute("aria-pressed", String(on));
    text(toggle, on ? "Hide video" : "Show video");
    img.hidden = !on;
    img.src = on ? src : ""; // no viewer, no JPEG encoding on the server
  });
  const chartEl = $(".chart", node);
  chartEl.setAttribute("aria-label", `People counted over time on camera ${name}`);
  const select = $(".range", node);
  state.range[name] = Number(select.value);
  select.addEventListener("change", () => { state.range[name] = Number(select.value); loadSeries(name); });
  $("#cameras").appendChild(node);
  state.cameras[name] = { node, chartEl, data: null, zones: [] };
  loadSeries(name);
  return state.cameras[name];
}

async function loadSeries(name) {
  const cam = state.cameras[name];
  const s = await getJSON(`api/series?source=${encodeURIComponent(name)}&seconds=${state.range[name]}`);
  cam.zones = Object.keys(s.zones);
  const columns = [s.count, ...cam.zones.map((z) => s.zones[z])];
  cam.data = [[], ...columns.map(() => [])];
  s.t.forEach((t, i) => {
    const last = cam.data[0][cam.data[0].length - 1];
    if (last !== undefined && t - last > 2) cam.data.forEach((col, j) => col.push(j ? null : last + 1)); // no frames: a gap
    cam.data[0].push(t);
    columns.forEach((col, j) => cam.data[j + 1].push(col[i]));
  });
  if (state.charts[name]) state.charts[name].destroy();
  state.charts[name] = makeChart(cam.chartEl, ["people now", ...cam.zones.map((z) => `zone ${z}`)], cam.data);
}

function addPoint(name, point) {
  const cam = state.cameras[name];
  const chart = state.charts[name];
  if (!cam || !cam.data || !chart || !point) return;
  const zonesNow = Object.keys(point.zones || {});
  if (zonesNow.join() !== cam.zones.join()) { loadSeries(name); return; }
  const [t] = cam.data;
  const values = [point.count, ...cam.zones.map((z) => point.zones[z] ?? 0)];
  if (t.length && t[t.length - 1] === point.t) {
    values.forEach((v, i) => { cam.data[i + 1][t.length - 1] = v; });
  } else if (!t.length || point.t > t[t.length - 1]) {
    if (t.length && point.t - t[t.length - 1] > 2) cam.data.forEach((col, j) => col.push(j ? null : t[t.length - 1] + 1));
    t.push(point.t);
    values.forEach((v, i) => cam.data[i + 1].push(v));
    while (t.length && t[0] <= point.t - state.range[name]) cam.data.forEach((col) => col.shift());
  }
  chart.setData(cam.data);
  cam.chartEl.dataset.points = String(t.length);
}

function rows(tbody, items, render) {
  const html = items.map(render).join("");
  if (tbody.dataset.html !== html) { tbody.innerHTML = html; tbody.dataset.html = html; }
}

function renderStatus(status) {
  for (const src of status.sources) {
    const cam = state.cameras[src.name] || cameraCard(src.name);
    const n = cam.node;
    const badge = $(".badge", n);
    text(badge, `${STATUS_SYMBOL[src.status] || "?"} ${src.status}`);
    badge.className = `badge status-${src.status}`;
    text($(".target", n), src.target);
    const count = $(".count", n);
    const counted = src.frames_analyzed > 0; // nothing analysed yet: no count to show, not a count of 0
    text(count, counted ? src.count : "–");
    count.dataset.count = String(src.count);
    text($(".max", n), counted ? src.max_count : "–");
    text($(".unique", n), src.unique_people ?? "–");
    text($(".fps", n), fmt(src.fps));
    text($(".dropped", n), src.dropped);
    text($(".reconnects", n), src.reconnects);
    text($(".latency", n), src.latency_ms === null ? "–" : `${Math.round(src.latency_ms)} ms`);
    const img = $(".stream", n); // the view keeps the camera's own shape (no black bars) once a frame has come
    if (img.naturalWidth && !img.dataset.shaped) { img.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`; img.dataset.shaped = "1"; }
    const noPicture = $(".no-picture", n); // say why the view is black
    noPicture.hidden = img.hidden || img.naturalWidth > 0;
    text(noPicture, `No picture yet: ${STATUS_SYMBOL[src.status] || ""} ${src.status}${src.reconnects ? ` (${src.reconnects} reconnects)` : ""}`);
    const error = $(".error", n);
    error.hidden = !src.last_error || src.status === "streaming";
    text(error, src.last_error ? `Last error: ${src.last_error}` : "");
    const lines = Object.entries(src.lines || {});
    $(".lines-wrap", n).hidden = !lines.length;
    rows($(".lines tbody", n), lines, ([name, c]) =>
      `<tr data-line="${esc(name)}"><th scope="row">${esc(name)}</th><td class="in">${h(c.in)}</td><td class="out">${h(c.out)}</td></tr>`);
    const zones = Object.entries(src.zones || {});
    $(".zones-wrap", n).hidden = !zones.length;
    rows($(".zones tbody", n), zones, ([name, z]) => {
      const over = (status.alerts || []).some((a) => a.source === src.name && a.zone === name);
      return `<tr data-zone="${esc(name)}"${over ? ' class="over"' : ""}><th scope="row">${esc(name)}</th>` +
        `<td>${h(z.occupancy)}${over ? ' <strong class="flag">⚠ over limit</strong>' : ""}</td><td>${h(z.visitors)}</td></tr>`;
    });
    addPoint(src.name, src.point);
  }
  renderAlerts(status.alerts || []);
}

function renderAlerts(alerts) {
  $("#alerts").hidden = !alerts.length;
  rows($("#alert-list"), alerts, (a) =>
    `<li class="alert" data-kind="${esc(a.kind)}"><strong>⚠ Alert:</strong> ${esc(a.message)} <span class="since">(since ${esc(a.since)})</span></li>`);
}

function connectEvents() {
  if (state.events) return;
  const events = new EventSource("events");
  state.events = events;
  events.addEventListener("status", (e) => {
    text($("#conn"), `● live, updated ${new Date().toLocaleTimeString()}`);
    $("#conn").className = "conn ok";
    renderStatus(JSON.parse(e.data));
  });
  events.onerror = () => { text($("#conn"), "○ connection lost, retrying…"); $("#conn").className = "conn lost"; };
}

/* ---- finished videos ------------------------------------------------------------------------------ */
async function loadResults() {
  const data = await getJSON("api/results");
  const tbody = $("#results-table tbody");
  rows(tbody, data.results, (r) => `<tr data-id="${esc(r.id)}">
      <th scope="row"><a href="#result/${encodeURIComponent(r.id)}">${esc(r.video || r.id)}</a></th>
      <td>${r.duration_s == null ? "–" : `${h(r.duration_s)} s`}</td><td>${h(r.max_count)}</td><td>${h(r.mean_count, 2)}</td>
      <td>${h(r.unique_people)}</td><td>${h(r.crossings)}</td><td>${esc(r.status)}</td></tr>`);
  $("#results-empty").hidden = data.results.length > 0;
  $("#results-table").closest(".scroll").hidden = !data.results.length;
  const errors = $("#results-errors");
  errors.hidden = !data.errors.length;
  text(errors, data.errors.length ? `Not readable: ${data.errors.join("; ")}` : "");
}

function showResultParts(shown) {
  for (const el of document.querySelectorAll("#view-result .result-part")) el.hidden = !shown;
}

function tableOrNote(table, items, note) {
  const wrap = table.closest(".scroll");
  wrap.hidden = !items.length;
  const p = wrap.nextElementSibling;
  p.hidden = items.length > 0;
  text(p, note);
}

async function loadResult(id) {
  const response = await fetch(`api/results/${id.split("/").map(encodeURIComponent).join("/")}`, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 404) {
    text($("#result-heading"), "Video not found");
    showResultParts(false);
    const missing = $("#result-missing");
    missing.hidden = false;
    text(missing, `No finished video with the id “${id}” here: it may have been removed or renamed. Pick one from the list of finished videos.`);
    return;
  }
  if (!response.ok) throw new Error(`api/results/${id}: ${response.status}`);
  const r = await response.json();
  $("#result-missing").hidden = true;
  showResultParts(true);
  text($("#result-heading"), r.video || r.id);
  const peak = r.series && r.series.peaks ? r.series.peaks[r.category] : null;
  const stats = [["Duration", r.duration_s == null ? "–" : `${fmt(r.duration_s)} s`],
    [`Max count${r.category ? ` (${r.category})` : ""}`, peak ? `${fmt(peak.count)} at ${peak.t.toFixed(1)} s` : fmt(r.max_count)],
    ["Mean count", fmt(r.mean_count, 2)], ["Unique people", fmt(r.unique_people)], ["Crossings", fmt(r.crossings)],
    ["Job status", r.status]];
  $("#result-summary").innerHTML = stats.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join("");
  const base = `download/${id.split("/").map(encodeURIComponent).join("/")}`;
  $("#dl-csv").href = `${base}.csv`;
  $("#dl-json").href = `${base}.json`;
  $(".downloads").hidden = !r.series;
  const plot = $("#result-plot");
  if (state.resultPlot) { state.resultPlot.destroy(); state.resultPlot = null; }
  plot.innerHTML = "";
  if (r.series) {
    const labels = []; const data = [r.series.t];
    for (const [c, values] of Object.entries(r.series.counts)) { labels.push((r.series.labels || {})[c] || c); data.push(values); }
    if (r.series.tracked) { labels.push("people tracked (per frame)"); data.push(r.series.tracked); }
    for (const [z, values] of Object.entries(r.series.zones)) { labels.push(`zone ${z}`); data.push(values); }
    state.resultPlot = makeChart(plot, labels, data, false);
    state.resultPlot.setSize({ width: chartWidth(plot), height: 260 });
  } else {
    plot.textContent = "No result file yet.";
  }
  tableOrNote($("#result-lines"), r.lines || [], "No counting lines in this analysis (analyze --line).");
  tableOrNote($("#result-zones"), r.zones || [], "No zones in this analysis (analyze --zone).");
  tableOrNote($("#result-people"), r.people || [], r.series && r.series.tracked ? "Nobody was tracked for long enough." : "People were not tracked in this analysis.");
  rows($("#result-lines tbody"), r.lines || [], (l) => `<tr><th scope="row">${esc(l.name)}</th><td>${h(l.in)}</td><td>${h(l.out)}</td>
      <td>${l.crossings.slice(0, 50).map((c) => `${h(c.time_s)} s ${esc(c.direction)} #${esc(c.track_id)}`).join(", ")}</td></tr>`);
  rows($("#result-zones tbody"), r.zones || [], (z) => `<tr><th scope="row">${esc(z.name)}</th><td>${h(z.visitors)}</td>
      <td>${h(z.max_occupancy)}</td><td>${h(z.mean_occupancy, 2)}</td><td>${h(z.mean_dwell_s)}</td><td>${h(z.max_dwell_s)}</td></tr>`);
  rows($("#result-people tbody"), r.people || [], (p) => `<tr><th scope="row">#${esc(p.track_id)}</th><td>${h(p.first_s)}</td>
      <td>${h(p.last_s)}</td><td>${h(p.present_s)}</td></tr>`);
}

/* ---- views --------------------------------------------------------------------------------------- */
async function route() {
  const hash = location.hash.slice(1) || (state.info.live ? "live" : "results");
  const view = hash.startsWith("result/") ? "result" : hash;
  for (const v of ["live", "results", "result"]) $(`#view-${v}`).hidden = v !== view;
  for (const tab of ["live", "results"]) {
    const el = $(`#tab-${tab}`);
    if ((view === "result" ? "results" : view) === tab) el.setAttribute("aria-current", "page"); else el.removeAttribute("aria-current");
  }
  try {
    if (view === "live") connectEvents();
    if (view === "results") await loadResults();
    if (view === "result") await loadResult(decodeURIComponent(hash.slice(7)));
  } catch (err) {
    text($("#conn"), `✖ ${err.message}`);
  }
  document.body.dataset.view = view;
}

async function start() {
  state.info = await getJSON("api/info");
  text($("#title"), state.info.title);
  document.title = state.info.title;
  $("#tab-live").hidden = !state.info.live;
  $("#tab-results").hidden = !state.info.results;
  if (!state.info.live) { text($("#conn"), ""); }
  window.addEventListener("hashchange", route);
  // the server reads its folders again every 10 s: so does the list, while it is shown
  setInterval(() => { if (document.body.dataset.view === "results") loadResults().catch(() => {}); }, 10000);
  await route();
}
start().catch((err) => { text($("#conn"), `✖ ${err.message}`); });
