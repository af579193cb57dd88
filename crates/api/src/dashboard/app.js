// The inferbench dashboard: plain JavaScript, no dependencies, served by the API process itself.
// Views: the benchmarks, a form to launch one, a benchmark's live view and report, a comparison
// of two, and a metric's trend. Every call sends the token when one was given (kept for this tab
// only), and the live view reads the events stream with fetch so the token can go with it.
"use strict";

const view = document.getElementById("view");
let leave = []; // what the current view must stop (timers, streams) when another opens

// ---------- helpers ----------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
const pct = (v) => (v === null || v === undefined) ? "–" : (v >= 0 ? "+" : "") + (100 * v).toFixed(1) + " %";
const statusBadge = (s) => el("span", { class: "status " + s, "data-status": s, text: s });
function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = sessionStorage.getItem("inferbench-token");
  if (t) h.Authorization = "Bearer " + t;
  return h;
}
class ApiError extends Error {
  constructor(status, body) { super(body && body.error ? body.error : "HTTP " + status); this.status = status; this.body = body; }
}
async function api(path, opts) {
  const o = Object.assign({}, opts || {});
  o.headers = headers(o.headers);
  const r = await fetch(path, o);
  if (r.status === 401) { askToken(); throw new ApiError(401, { error: "this API needs a token" }); }
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(r.status, typeof body === "object" ? body : { error: body });
  return body;
}
function askToken() {
  if (document.getElementById("token-form")) return;
  const input = el("input", { type: "password", id: "token", placeholder: "token" });
  const form = el("form", { id: "token-form", class: "row", onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem("inferbench-token", input.value); route(); } },
    el("span", { text: "This API was started with --token. Token:" }), input, el("button", { type: "submit", text: "Use it" }));
  view.replaceChildren(form);
}
function errorBox(e) { return el("div", { class: "error", role: "alert", text: e.message || String(e) }); }

// ---------- charts (SVG) ----------
const COLORS = ["#2f6fde", "#c0392b", "#1d8a4a", "#b7791f"];
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
// series: [{name, points: [[x, y], ...]}]; draws axes with labels, ticks and a legend.
function lineChart(id, title, series, xLabel, yLabel, opts) {
  const W = 560, H = 240, L = 56, R = 14, T = 14, B = 40;
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]).filter((y) => y !== null && Number.isFinite(y));
  const x0 = xs.length ? Math.min(...xs) : 0, x1 = xs.length ? Math.max(...xs) : 1;
  const y1 = niceMax(ys.length ? Math.max(...ys) : 1);
  const sx = (x) => L + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (W - L - R);
  const sy = (y) => T + (1 - y / y1) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
  const svg = s("svg", { id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, "data-points": String(all.length) });
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    svg.append(s("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), stroke: "#eceff4" }));
    svg.append(s("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385" }, fmt(y, y1 < 10 ? 2 : 0)));
  }
  // Five ticks at most, each label once: whole numbers only where x counts things.
  const step = (x1 - x0) / 4, digits = opts && opts.integer ? 0 : step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
  const ticks = [...new Set([0, 1, 2, 3, 4].map((i) => Number((x0 + step * i).toFixed(digits))))].filter((x) => x >= x0 - 0.5 * Math.pow(10, -digits) && x <= x1 + 0.5 * Math.pow(10, -digits));
  for (const x of ticks) {
    svg.append(s("text", { x: sx(x), y: H - B + 16, "text-anchor": "middle", "font-size": 11, fill: "#6b7385" }, fmt(x, digits)));
  }
  svg.append(s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#9aa3b2" }));
  svg.append(s("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#9aa3b2" }));
  svg.append(s("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", "font-size": 12, fill: "#1d2330" }, xLabel));
  svg.append(s("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 12, fill: "#1d2330", transform: `rotate(-90 14 ${(T + H - B) / 2})` }, yLabel));
  series.forEach((se, i) => {
    const pts = se.points.filter((p) => p[1] !== null && Number.isFinite(p[1]));
    const color = se.color || COLORS[i % COLORS.length];
    if (pts.length > 1) svg.append(s("polyline", { points: pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2, class: "series", "data-name": se.name }));
    for (const p of pts) {
      const flagged = se.flagged && se.flagged(p);
      svg.append(s("circle", { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: flagged ? 5 : (pts.length > 60 ? 1.5 : 3), fill: flagged ? "#c0392b" : color, class: flagged ? "point flagged" : "point" }));
    }
    svg.append(s("rect", { x: L + 10 + i * 130, y: T, width: 10, height: 10, fill: color }));
    svg.append(s("text", { x: L + 24 + i * 130, y: T + 9, "font-size": 11, fill: "#1d2330" }, se.name));
  });
  return el("div", { class: "chart" }, el("div", { class: "title", text: title }), svg);
}

// ---------- router ----------
function route() {
  leave.forEach((f) => f());
  leave = [];
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + path || (path.startsWith("/b/") && a.dataset.nav === "runs")));
  let done;
  if (path === "/" || path === "") done = runsView();
  else if (path === "/new") done = newView();
  else if (path.startsWith("/b/")) done = detailView(decodeURIComponent(path.slice(3)));
  else if (path === "/compare") done = compareView(params);
  else if (path === "/trends") done = trendsView(params);
  else if (path === "/api") done = apiView();
  else { view.replaceChildren(el("p", { text: "No such page." })); return; }
  queueState();
  Promise.resolve(done).catch((e) => { if (!(e instanceof ApiError && e.status === 401)) view.replaceChildren(errorBox(e)); });
}
window.addEventListener("hashchange", route);

// The header's count of running and queued benchmarks, on every page.
async function queueState() {
  try {
    const [r, q] = await Promise.all([api("/api/v1/benchmarks?status=running"), api("/api/v1/benchmarks?status=queued")]);
    document.getElementById("queue-state").textContent = `${r.benchmarks.length} running, ${q.benchmarks.length} queued`;
  } catch (e) { /* the views say what is wrong */ }
}
setInterval(queueState, 2000);

// ---------- the benchmarks ----------
function keyFigures(b) {
  const m = b.metrics || {}, p = b.progress || {};
  const live = b.status === "running";
  return {
    done: live ? p.completed : m.completed,
    tput: live ? p.output_throughput : (m.output_throughput ?? m.max_output_throughput ?? m.decode_tokens_per_second),
    ttft: live ? (p.ttft_ms && p.ttft_ms.p50) : m.ttft_p50,
    itl: live ? (p.itl_ms && p.itl_ms.p50) : (m.itl_p50 ?? m.tpot_p50),
  };
}
async function runsView() {
  view.replaceChildren(el("h2", { text: "Benchmarks" }), el("p", { class: "muted", text: "Loading…" }));
  const picked = new Set();
  const compareBtn = el("button", { id: "compare-picked", disabled: true, onclick: () => { const [a, b] = [...picked]; location.hash = `#/compare?base=${a}&candidate=${b}`; } }, "Compare the two picked");
  const table = el("table", { id: "runs" });
  const draw = async () => {
    const { benchmarks } = await api("/api/v1/benchmarks?limit=200");
    const rows = benchmarks.map((b) => {
      const f = keyFigures(b);
      const box = el("input", { type: "checkbox", "data-id": b.id, checked: picked.has(b.id), disabled: !(b.status === "done" || b.status === "cancelled") || null });
      box.addEventListener("change", () => { box.checked ? picked.add(b.id) : picked.delete(b.id); compareBtn.disabled = picked.size !== 2; });
      return el("tr", { "data-id": b.id },
        el("td", {}, box),
        el("td", {}, el("a", { href: "#/b/" + b.id, text: b.id })),
        el("td", { text: b.kind }), el("td", {}, statusBadge(b.status)), el("td", { text: b.model || "–" }),
        el("td", { text: (b.created || "").replace("T", " ").slice(0, 19) }),
        el("td", { class: "num", text: fmt(f.done, 0) }), el("td", { class: "num", text: fmt(f.tput) }),
        el("td", { class: "num", text: fmt(f.ttft) }), el("td", { class: "num", text: fmt(f.itl, 2) }));
    });
    table.replaceChildren(
      el("tr", {}, ["", "id", "kind", "status", "model", "submitted", "completed", "output tok/s", "TTFT p50 (ms)", "ITL p50 (ms)"].map((h, i) => el("th", { class: i >= 6 ? "num" : null, text: h }))),
      ...rows);
    if (!benchmarks.length) table.append(el("tr", {}, el("td", { colspan: 10, class: "muted", text: "No benchmark yet: start one from New benchmark." })));
  };
  await draw();
  view.replaceChildren(el("h2", { text: "Benchmarks" }),
    el("div", { class: "row" }, el("a", { href: "#/new", class: "button", text: "New benchmark" }), compareBtn, el("span", { class: "muted", text: "Pick two finished runs to compare them." })),
    table);
  const t = setInterval(() => draw().catch(() => {}), 2000);
  leave.push(() => clearInterval(t));
}

// ---------- launch ----------
function newView() {
  const f = {};
  const input = (name, attrs) => (f[name] = el("input", Object.assign({ id: "f-" + name, name }, attrs)));
  const select = (name, options, value) => (f[name] = el("select", { id: "f-" + name, name }, options.map(([v, t]) => el("option", { value: v, selected: v === value || null, text: t }))));
  const row = (label, control, hint) => [el("label", { for: control.id, text: label }), control, hint ? el("div", { class: "hint", text: hint }) : null];
  const msg = el("div", { id: "form-message" });
  const form = el("form", { class: "grid", id: "launch" },
    row("Kind", select("kind", [["run", "Run (one load level)"], ["sweep", "Sweep (rising concurrency)"], ["engine", "Engine benchmark (in process)"]], "run")),
    row("Target", select("target", [["simulator", "The latency simulator (started for this run)"], ["embedded", "The embedded model on CPU (started for this run)"], ["url", "A server at a URL"]], "simulator")),
    row("Server URL", input("base_url", { type: "text", placeholder: "http://127.0.0.1:8000" }), "An OpenAI-compatible server: vLLM, TGI, SGLang, llama.cpp, Ollama."),
    row("Backend", select("backend", [["vllm", "vllm (completions)"], ["openai", "openai (completions)"], ["openai-chat", "openai-chat"], ["tgi", "tgi"]], "vllm")),
    row("Model", input("model", { type: "text", placeholder: "as the server names it (empty: ask the server)" }), "For the engine benchmark: a known model or a .gguf path."),
    row("API key", input("api_key", { type: "password", placeholder: "optional; used, never stored" })),
    row("Requests", input("num_prompts", { type: "number", min: 1, value: 200 })),
    row("Max concurrency", input("max_concurrency", { type: "number", min: 1, value: 8 })),
    row("Request rate (req/s)", input("request_rate", { type: "number", min: 0, step: "any", placeholder: "empty: as fast as concurrency allows" })),
    row("Concurrencies (sweep)", input("concurrencies", { type: "text", value: "1,4,16" })),
    row("Prompt tokens", input("input_len", { type: "number", min: 1, value: 256 })),
    row("Output tokens", input("output_len", { type: "number", min: 1, value: 64 })),
    row("Engine tests", el("span", { id: "f-tests" }, ["latency", "memory", "throughput"].map((t) => el("label", {}, (f["t-" + t] = el("input", { type: "checkbox", id: "f-t-" + t, checked: true })), " " + t + " ")))),
    row("Labels", input("labels", { type: "text", placeholder: "team=serving, change=batch-16" })),
    el("span"), el("div", {}, el("button", { type: "submit", id: "launch-button", text: "Launch" })));
  const sync = () => {
    const kind = f.kind.value, url = f.target.value === "url";
    const show = (name, on) => { const c = document.getElementById("f-" + name); c.closest("form").querySelectorAll(`[for="f-${name}"]`).forEach((l) => (l.style.display = on ? "" : "none")); c.style.display = on ? "" : "none"; const h = c.nextElementSibling; if (h && h.classList.contains("hint")) h.style.display = on ? "" : "none"; };
    const serving = kind !== "engine";
    show("target", serving); show("base_url", serving && url); show("backend", serving && url); show("api_key", serving && url);
    show("num_prompts", serving); show("max_concurrency", kind === "run"); show("request_rate", kind === "run"); show("concurrencies", kind === "sweep");
    show("input_len", serving); show("output_len", serving); show("tests", kind === "engine");
  };
  f.kind.addEventListener("change", sync); f.target.addEventListener("change", sync);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    const num = (n) => (f[n].value === "" ? undefined : Number(f[n].value));
    const labels = Object.fromEntries(f.labels.value.split(",").map((s) => s.trim()).filter(Boolean).map((kv) => kv.split("=").map((x) => x.trim())).filter((kv) => kv.length === 2));
    const kind = f.kind.value;
    let body;
    if (kind === "engine") {
      const tests = ["latency", "memory", "throughput"].filter((t) => f["t-" + t].checked);
      const spec = {};
      if (f.model.value) spec.model = f.model.value;
      if (!tests.includes("latency")) spec.latency = { input_lengths: [], output_lengths: [] };
      if (!tests.includes("memory")) spec.memory = { measure_peak: false, measure_kv_cache: false };
      if (!tests.includes("throughput")) spec.throughput = { concurrent_requests: 0, batch_sizes: [] };
      body = { kind, spec, labels };
    } else {
      const run = { backend: f.backend.value, num_prompts: num("num_prompts"), dataset: { name: "random", input_len: num("input_len"), output_len: num("output_len") } };
      if (f.target.value === "url") { run.base_url = f.base_url.value; } else { run.backend = "vllm"; }
      if (f.model.value) run.model = f.model.value;
      if (kind === "run") { run.max_concurrency = num("max_concurrency"); const r = num("request_rate"); if (r) run.request_rate = r; }
      body = { kind, labels };
      if (f.target.value !== "url") body.server = f.target.value;
      else if (f.api_key.value) body.api_key = f.api_key.value;
      body.spec = kind === "run" ? run : { dimension: "concurrency", loads: f.concurrencies.value.split(",").map(Number), spec: run };
    }
    try {
      const r = await api("/api/v1/benchmarks", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      location.hash = "#/b/" + r.id;
    } catch (err) { msg.replaceChildren(errorBox(err)); }
  });
  view.replaceChildren(el("h2", { text: "New benchmark" }),
    el("p", { class: "muted", text: "One benchmark runs at a time; others wait in the queue. Against the simulator a run takes seconds; the embedded model answers at CPU speed." }),
    form, msg);
  sync();
}

// ---------- one benchmark ----------
async function readEvents(id, onEvent, signal) {
  const r = await fetch(`/api/v1/benchmarks/${id}/events`, { headers: headers(), signal });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}
async function openFile(id, name) {
  const r = await fetch(`/api/v1/benchmarks/${id}/${name}`, { headers: headers() });
  const blob = await r.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: `${id}-${name}` });
  document.body.append(a); a.click(); a.remove();
}
async function detailView(id) {
  let b = await api(`/api/v1/benchmarks/${encodeURIComponent(id)}`);
  const statusEl = el("span", { id: "status" }, statusBadge(b.status));
  const cancelBtn = el("button", { id: "cancel", class: "danger", onclick: async () => { cancelBtn.disabled = true; try { await api(`/api/v1/benchmarks/${id}`, { method: "DELETE" }); } catch (e) { view.append(errorBox(e)); } } }, "Cancel");
  const bar = el("progress", { id: "progress", max: 1, value: 0 });
  const progressText = el("span", { id: "progress-text", class: "muted" });
  const cards = el("div", { class: "cards", id: "live-cards" });
  const charts = el("div", { class: "charts", id: "live-charts" });
  const notes = el("div", { class: "notes", id: "notes", style: "display: none" });
  const notesTitle = el("h3", { text: "Notes", style: "display: none" });
  const note = (text) => { notes.append(el("div", { text })); notes.style.display = notesTitle.style.display = ""; };
  const after = el("div", { id: "after" });
  const snaps = [];
  const card = (k, v) => el("div", { class: "card" }, el("div", { class: "v", text: v }), el("div", { class: "k", text: k }));
  const drawLive = () => {
    const s = snaps[snaps.length - 1];
    if (s) {
      const total = s.total || 0;
      if (total) { bar.max = total; bar.value = s.completed + s.failed; }
      progressText.textContent = `${s.completed} completed, ${s.failed} failed, ${s.in_flight} in flight${total ? " of " + total : ""}${s.step ? " · " + s.step : ""} · ${fmt(s.t)} s`;
      cards.replaceChildren(card("output tok/s", fmt(s.output_throughput)), card("requests/s", fmt(s.request_throughput, 2)),
        card("TTFT p50 / p99 (ms)", s.ttft_ms ? `${fmt(s.ttft_ms.p50)} / ${fmt(s.ttft_ms.p99)}` : "–"),
        card("ITL p50 / p99 (ms)", s.itl_ms ? `${fmt(s.itl_ms.p50, 2)} / ${fmt(s.itl_ms.p99, 2)}` : "–"),
        card("failures", Object.entries(s.failures || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none"));
    }
    const pts = (f) => snaps.map((x) => [x.t, f(x)]);
    charts.replaceChildren(
      lineChart("chart-throughput", "Output throughput", [{ name: "output tok/s", points: pts((x) => x.output_throughput) }], "time (s)", "tokens/s"),
      lineChart("chart-ttft", "TTFT, last 10 s", [{ name: "p50", points: pts((x) => x.ttft_ms && x.ttft_ms.p50) }, { name: "p99", points: pts((x) => x.ttft_ms && x.ttft_ms.p99) }], "time (s)", "ms"),
      lineChart("chart-itl", "ITL, last 10 s", [{ name: "p50", points: pts((x) => x.itl_ms && x.itl_ms.p50) }, { name: "p99", points: pts((x) => x.itl_ms && x.itl_ms.p99) }], "time (s)", "ms"),
      lineChart("chart-inflight", "In flight", [{ name: "requests", points: pts((x) => x.in_flight) }], "time (s)", "requests"));
  };
  const drawAfter = async () => {
    b = await api(`/api/v1/benchmarks/${encodeURIComponent(id)}`);
    statusEl.replaceChildren(statusBadge(b.status));
    cancelBtn.style.display = "none";
    const parts = [];
    if (b.error) parts.push(el("div", { class: "error", role: "alert", text: b.error }));
    if (b.files) {
      parts.push(el("div", { class: "row" }, ["result.json", "result.csv", "records.jsonl"].map((n) => el("button", { class: "secondary", onclick: () => openFile(id, n) }, n)),
        el("a", { href: `#/compare?base=${id}`, text: "compare with…" })));
      const frame = el("iframe", { class: "report", id: "report", title: "report" });
      parts.push(el("h3", { text: "Report" }), frame);
      const r = await fetch(`/api/v1/benchmarks/${id}/report.html`, { headers: headers() });
      frame.srcdoc = await r.text();
    }
    after.replaceChildren(...parts);
  };
  view.replaceChildren(
    el("h2", {}, `${b.kind} `, el("code", { text: b.id }), " ", statusEl),
    el("p", { class: "muted", text: `model ${b.model || "–"} · submitted ${(b.created || "").replace("T", " ").slice(0, 19)}${Object.keys(b.labels || {}).length ? " · " + Object.entries(b.labels).map(([k, v]) => k + "=" + v).join(", ") : ""}` }),
    el("div", { class: "row" }, bar, progressText, b.status === "queued" || b.status === "running" ? cancelBtn : null),
    cards, charts, notesTitle, notes, after);
  drawLive();
  const ctl = new AbortController();
  leave.push(() => ctl.abort());
  readEvents(id, (event, data) => {
    if (event === "progress") { snaps.push(data); drawLive(); }
    else if (event === "queued") { progressText.textContent = "waiting in the queue"; }
    else if (event === "note" || event === "step") { note(event === "step" ? `${data.title}: load ${data.load}` : data.text); if (event === "step") statusEl.replaceChildren(statusBadge("running")); }
    else if (event === "end") { drawAfter().catch((e) => after.replaceChildren(errorBox(e))); }
    if (event === "progress" && b.status !== "running" && !["done", "failed", "cancelled", "interrupted"].includes(b.status)) { b.status = "running"; statusEl.replaceChildren(statusBadge("running")); }
  }, ctl.signal).catch((e) => { if (e.name !== "AbortError") note("events stream: " + e.message); });
}

// ---------- compare ----------
async function compareView(params) {
  const { benchmarks } = await api("/api/v1/benchmarks?limit=200");
  const ended = benchmarks.filter((b) => b.status === "done" || b.status === "cancelled");
  const pick = (id, value) => el("select", { id }, el("option", { value: "", text: "pick a benchmark" }), ended.map((b) => el("option", { value: b.id, selected: b.id === value || null, text: `${b.id} · ${b.kind} · ${b.model}` })));
  const base = pick("base", params.get("base")), cand = pick("candidate", params.get("candidate"));
  const allow = el("input", { type: "checkbox", id: "allow" });
  const out = el("div", { id: "comparison" });
  const go = async () => {
    out.replaceChildren(el("p", { class: "muted", text: "Comparing…" }));
    try {
      const q = `base=${encodeURIComponent(base.value)}&candidate=${encodeURIComponent(cand.value)}${allow.checked ? "&allow_different_workloads=true" : ""}`;
      const c = await api("/api/v1/compare?" + q);
      const rows = c.rows.map((r) => {
        const v = r.verdict || "";
        return el("tr", { "data-key": r.key }, el("td", { text: r.group }), el("td", { text: r.key }), el("td", { class: "num", text: fmt(r.baseline, 2) }), el("td", { class: "num", text: fmt(r.candidate, 2) }),
          el("td", { class: "num", text: pct(r.change) }), el("td", { class: "num", text: r.p === null || r.p === undefined ? "–" : r.p.toExponential(1) }),
          el("td", { class: v.startsWith("worse") ? "verdict-worse" : v.startsWith("better") ? "verdict-better" : "", text: v }));
      });
      const frame = el("iframe", { class: "report", id: "compare-report", title: "comparison report" });
      out.replaceChildren(...[
        c.workload_diffs && c.workload_diffs.length ? el("div", { class: "error", text: "Different workloads: " + c.workload_diffs.join("; ") }) : null,
        el("table", { id: "compare-table" }, el("tr", {}, ["group", "metric", "baseline", "candidate", "change", "p", "verdict"].map((h, i) => el("th", { class: i >= 2 && i < 6 ? "num" : null, text: h }))), rows),
        el("h3", { text: "Distributions" }), frame].filter(Boolean));
      const r = await fetch("/api/v1/compare?" + q + "&format=html", { headers: headers() });
      frame.srcdoc = await r.text();
    } catch (e) { out.replaceChildren(errorBox(e)); }
  };
  view.replaceChildren(el("h2", { text: "Compare two benchmarks" }),
    el("div", { class: "row" }, el("label", { text: "baseline" }), base, el("label", { text: "candidate" }), cand,
      el("label", {}, allow, " allow different workloads"), el("button", { id: "compare-go", onclick: go }, "Compare")), out);
  if (base.value && cand.value) await go();
}

// ---------- trends ----------
async function trendsView(params) {
  const { metrics } = await api("/api/v1/metrics");
  const metric = el("select", { id: "metric" }, metrics.map((m) => el("option", { value: m, selected: m === (params.get("metric") || "output_throughput") || null, text: m })));
  const model = el("input", { type: "text", id: "trend-model", placeholder: "model (optional)", value: params.get("model") || "" });
  const out = el("div", { id: "trend" });
  const go = async () => {
    try {
      const q = new URLSearchParams({ metric: metric.value });
      if (model.value) q.set("model", model.value);
      const t = await api("/api/v1/history?" + q);
      if (!t.points.length) { out.replaceChildren(el("p", { class: "muted", text: "No stored result has this metric for that workload yet." })); return; }
      const pts = t.points.map((p, i) => [i + 1, p.value]);
      const flagged = new Set(t.points.map((p, i) => (p.flagged !== null && p.flagged !== undefined ? i + 1 : null)).filter((x) => x !== null));
      out.replaceChildren(
        el("p", { class: "muted", text: `${t.points.length} results of one workload (${t.workload.slice(0, 12)}), oldest first; ${t.lower_better ? "lower" : "higher"} is better; red points moved beyond the noise of the runs before them.` }),
        lineChart("chart-trend", t.metric, [{ name: t.metric, points: pts, flagged: (p) => flagged.has(p[0]) }], "result (oldest first)", t.metric, { integer: true }),
        el("table", {}, el("tr", {}, ["#", "time", "value", "change", "result"].map((h) => el("th", { text: h }))),
          t.points.map((p, i) => el("tr", {}, el("td", { text: i + 1 }), el("td", { text: p.time.replace("T", " ").slice(0, 19) }), el("td", { class: "num", text: fmt(p.value, 3) }),
            el("td", { class: p.worse ? "verdict-worse" : "", text: p.flagged === null || p.flagged === undefined ? "" : pct(p.flagged) }), el("td", { text: p.id })))));
    } catch (e) { out.replaceChildren(errorBox(e)); }
  };
  view.replaceChildren(el("h2", { text: "Trend of a metric over stored results" }),
    el("div", { class: "row" }, metric, model, el("button", { id: "trend-go", onclick: go }, "Show")), out);
  if (metrics.length) await go();
}

// ---------- the API ----------
async function apiView() {
  const doc = await api("/api/openapi.json");
  view.replaceChildren(el("h2", { text: "Routes" }),
    el("table", {}, Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).filter(([m]) => m !== "parameters").map(([m, op]) => el("tr", {}, el("td", {}, el("code", { text: m.toUpperCase() })), el("td", {}, el("code", { text: p })), el("td", { text: op.summary }))))),
    el("p", { class: "muted" }, "The whole document: ", el("code", { text: "/api/openapi.json" })));
}

route();
