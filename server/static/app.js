// The before/after page: plain JavaScript, no build step. Talks to this service's own API with the
// key the user typed, which is kept in this browser's localStorage and sent nowhere else.
"use strict";

const KEY_STORAGE = "phota-enhance.api-key";
const PREVIEW_MAX_SIDE = 1600; // long side of the scaled previews shown until one zooms past them
const MAX_ZOOM = 8;

const state = {
  file: null,
  before: null, // {preview, full, width, height}
  outputs: [], // [{name, blob, preview, full, width, height, filename}]
  selected: 0,
  size: [1, 1], // the output's size: the comparison's coordinate system
  view: { scale: 1, x: 0, y: 0, fit: true },
  urls: [],
};

const $ = (id) => document.getElementById(id);

function storedKey() {
  try {
    return window.localStorage.getItem(KEY_STORAGE) || "";
  } catch (_) {
    return "";
  }
}

function setStatus(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.className = "status-line" + (kind ? " " + kind : "");
}

function saveKey(key) {
  try {
    if (key) window.localStorage.setItem(KEY_STORAGE, key);
  } catch (_) { /* storage disabled: the key is used for this page only */ }
  showKeyState();
}

function showKeyState() {
  const key = storedKey();
  $("key-state").textContent = key
    ? "Key saved in this browser (localStorage). It is sent only to this service."
    : "No key saved yet. It will be kept in this browser only (localStorage).";
}

async function checkService() {
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const body = await response.json();
    if (body.mode === "test") {
      setStatus("service-status", "TEST MODE: no network is loaded; outputs come from a bicubic stand-in (device " +
        (body.device || "?") + ").", "warning");
      document.body.classList.add("test-mode");
    } else if (response.ok) {
      setStatus("service-status", "Ready: network " + (body.network || "?") + " on " + (body.device || "?") + ".", "ok");
    } else {
      setStatus("service-status", "The service is not ready yet (models loading?).", "warning");
    }
  } catch (err) {
    setStatus("service-status", "Cannot reach the service: " + err, "error");
  }
}

function track(url) {
  state.urls.push(url);
  return url;
}

function releaseUrls() {
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = [];
}

// A scaled copy for display (the full image is used once the zoom needs its pixels).
async function makeView(blob) {
  const full = track(URL.createObjectURL(blob));
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch (_) {
    // A format this browser cannot decode (e.g. HEIC): no preview, the service still can.
    return { preview: null, full: null, width: 0, height: 0 };
  }
  const width = bitmap.width, height = bitmap.height;
  const long = Math.max(width, height);
  if (long <= PREVIEW_MAX_SIDE) {
    bitmap.close();
    return { preview: full, full, width, height, previewWidth: width };
  }
  const ratio = PREVIEW_MAX_SIDE / long;
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const previewBlob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  const preview = previewBlob ? track(URL.createObjectURL(previewBlob)) : full;
  return { preview, full, width, height, previewWidth: canvas.width };
}

function setFile(file) {
  if (!file) return;
  state.file = file;
  $("file-name").textContent = file.name + " (" + (file.size / 1024 / 1024).toFixed(2) + " MB)";
  $("enhance-button").disabled = false;
  setStatus("request-status", "");
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function errorText(status, body) {
  if (body && Array.isArray(body.detail)) {
    const parts = body.detail.map((d) => (d.loc ? d.loc.join(".") + ": " : "") + d.msg);
    return status + " " + parts.join("; ");
  }
  if (body && body.detail) {
    return status + " " + (body.code || "") + ": " + body.detail + (body.request_id ? " (request " + body.request_id + ")" : "");
  }
  return "HTTP " + status;
}

function baseName(name) {
  const dot = name.lastIndexOf(".");
  return (dot > 0 ? name.slice(0, dot) : name).replace(/[^A-Za-z0-9._-]+/g, "_") || "photo";
}

async function enhance(event) {
  event.preventDefault();
  const key = $("api-key").value.trim() || storedKey();
  if (!key) {
    setStatus("request-status", "Enter your API key first (it stays in this browser).", "error");
    $("api-key").focus();
    return;
  }
  if (!state.file) {
    setStatus("request-status", "Choose a photo first.", "error");
    return;
  }
  saveKey(key);
  const button = $("enhance-button");
  button.disabled = true;
  const started = performance.now();
  const tick = () => setStatus("request-status", "Enhancing… " + ((performance.now() - started) / 1000).toFixed(1) + " s", "busy");
  tick();
  const timer = setInterval(tick, 200);
  try {
    const payload = {
      image: await readAsDataUrl(state.file),
      num_output_images: Number($("variations").value),
      response_mode: "bytes",
    };
    const prompt = $("prompt").value.trim();
    if (prompt) payload.prompt = prompt;
    if ($("format").value) payload.output_format = $("format").value;
    const response = await fetch("/v1/phota/enhance", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body: JSON.stringify(payload),
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      setStatus("request-status", errorText(response.status, body), "error");
      if (response.status === 401) $("api-key").focus();
      return;
    }
    const header = response.headers.get("X-Enhance-Parameters");
    const parameters = header ? JSON.parse(header) : {};
    await showResult(body, parameters);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setStatus("request-status", "Done in " + seconds + " s (" + body.images.length + " image" +
      (body.images.length === 1 ? "" : "s") + ").", "ok");
  } catch (err) {
    setStatus("request-status", "Failed: " + err, "error");
  } finally {
    clearInterval(timer);
    button.disabled = false;
  }
}

async function showResult(body, parameters) {
  releaseUrls();
  const format = parameters.output_format === "png" ? "png" : "jpg";
  const mime = format === "png" ? "image/png" : "image/jpeg";
  const variations = parameters.variations || [];
  state.before = await makeView(state.file);
  state.outputs = [];
  const stem = baseName(state.file.name);
  for (let i = 0; i < body.images.length; i++) {
    const blob = await (await fetch("data:" + mime + ";base64," + body.images[i])).blob();
    const view = await makeView(blob);
    const name = (variations[i] && variations[i].name) || "output-" + (i + 1);
    const filename = stem + ".enhanced" + (body.images.length > 1 ? "." + (i + 1) + "-" + name : "") + "." + format;
    state.outputs.push({ name, blob, filename, ...view });
  }
  state.size = [state.outputs[0].width, state.outputs[0].height];
  $("result-panel").hidden = false;
  renderVariations(variations);
  renderTables(body, parameters);
  select(0);
  setZoom("fit");
}

function select(index) {
  state.selected = index;
  document.querySelectorAll("#variations-grid figure").forEach((fig, i) => fig.classList.toggle("selected", i === index));
  updateSources();
}

function renderVariations(variations) {
  const grid = $("variations-grid");
  grid.textContent = "";
  state.outputs.forEach((out, i) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = out.preview;
    img.alt = "Variation " + (i + 1) + ": " + out.name;
    img.addEventListener("click", () => select(i));
    const caption = document.createElement("figcaption");
    const title = document.createElement("strong");
    title.textContent = (i + 1) + ". " + out.name;
    const size = document.createElement("span");
    size.className = "hint";
    size.textContent = " " + out.width + "×" + out.height + ", " + (out.blob.size / 1024).toFixed(0) + " KiB";
    const show = document.createElement("button");
    show.type = "button";
    show.textContent = "Compare";
    show.addEventListener("click", () => select(i));
    const download = document.createElement("a");
    download.className = "button download";
    download.href = out.full;
    download.download = out.filename;
    download.textContent = "Download";
    caption.append(title, size, document.createElement("br"), show, download);
    fig.append(img, caption);
    grid.append(fig);
  });
  const params = variations.map((v) => v.name).join(", ");
  grid.setAttribute("aria-label", "Variations: " + params);
}

function formatValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "number")) return value[0] + " × " + value[1];
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fillRows(tbody, rows) {
  tbody.textContent = "";
  for (const [label, value] of rows) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = label;
    const td = document.createElement("td");
    td.textContent = formatValue(value);
    tr.append(th, td);
    tbody.append(tr);
  }
}

function renderTables(body, p) {
  const plan = p.plan || {};
  const prompt = p.prompt || {};
  const intents = (prompt.intents || []).map((i) => (typeof i === "string" ? i : i.name || i.intent || JSON.stringify(i)));
  const counts = (body.known_subjects && body.known_subjects.counts) || {};
  const faces = p.estimates && p.estimates.faces;
  const rows = [
    ["mode", p.mode || "real"],
    ["network", p.network],
    ["device", p.device ? p.device + (p.dtype ? " (" + p.dtype + ")" : "") : null],
    ["input", p.original_size || p.input],
    ["network input", p.network_input],
    ["output", p.output],
    ["output format", p.output_format],
    ["content", plan.content],
    ["tiles / batches", p.tiles !== undefined ? p.tiles + " / " + p.batches : null],
    ["faces found", Array.isArray(faces) ? faces.length : (faces && faces.count)],
    ["known subjects", Object.keys(counts).length ? counts : "none"],
    ["prompt intents", intents.length ? intents.join(", ") : "none"],
    ["prompt not understood", (prompt.unrecognised || []).length ? prompt.unrecognised.join(" | ") : "—"],
    ["alpha", p.alpha || "none"],
  ];
  fillRows($("summary-table").tBodies[0], rows);

  const timings = Object.entries(p.timings || {}).map(([k, v]) => [k.replace(/_s$/, "").replace(/_/g, " "), v]);
  fillRows($("timings-table").tBodies[0], timings);

  const variations = p.variations || [];
  const columns = [];
  for (const v of variations) for (const k of Object.keys(v)) if (k !== "name" && !columns.includes(k)) columns.push(k);
  const table = $("parameters-table");
  table.tHead.textContent = "";
  const head = document.createElement("tr");
  for (const c of ["variation", ...columns]) {
    const th = document.createElement("th");
    th.textContent = c.replace(/_/g, " ");
    head.append(th);
  }
  table.tHead.append(head);
  const tbody = table.tBodies[0];
  tbody.textContent = "";
  for (const v of variations) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = v.name;
    tr.append(th);
    for (const c of columns) {
      const td = document.createElement("td");
      td.textContent = formatValue(v[c]);
      tr.append(td);
    }
    tbody.append(tr);
  }
  $("parameters-json").textContent = JSON.stringify(p, null, 2);
}

// ---- the comparison: two identical stages (same transform), the "after" one clipped at the slider.

function viewportSize() {
  const rect = $("compare").getBoundingClientRect();
  return [rect.width, rect.height];
}

function fitScale() {
  const [vw, vh] = viewportSize();
  return Math.min(vw / state.size[0], vh / state.size[1]);
}

function applyView() {
  const { scale, x, y } = state.view;
  const transform = "translate(" + x + "px, " + y + "px) scale(" + scale + ")";
  for (const stage of document.querySelectorAll("#compare .stage")) {
    stage.style.width = state.size[0] + "px";
    stage.style.height = state.size[1] + "px";
    stage.style.transform = transform;
  }
  $("zoom-level").textContent = Math.round(scale * 100) + " % of the output's pixels";
  updateSources();
}

function clampView() {
  const [vw, vh] = viewportSize();
  const w = state.size[0] * state.view.scale, h = state.size[1] * state.view.scale;
  state.view.x = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, state.view.x));
  state.view.y = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, state.view.y));
}

function zoomAt(scale, cx, cy) {
  const min = fitScale();
  const next = Math.min(MAX_ZOOM, Math.max(min, scale));
  const v = state.view;
  v.x = cx - ((cx - v.x) * next) / v.scale;
  v.y = cy - ((cy - v.y) * next) / v.scale;
  v.scale = next;
  v.fit = Math.abs(next - min) < 1e-6;
  clampView();
  applyView();
}

function setZoom(level) {
  document.querySelectorAll(".toolbar button").forEach((b) => b.classList.toggle("active", b.dataset.zoom === String(level)));
  if (level === "fit") {
    state.view.scale = fitScale();
    state.view.fit = true;
    clampView();
    applyView();
    return;
  }
  const [vw, vh] = viewportSize();
  zoomAt(Number(level), vw / 2, vh / 2);
}

// Previews while the displayed size is below their resolution; the full images once zoomed past it.
function updateSources() {
  const out = state.outputs[state.selected];
  if (!out || !state.before) return;
  const shown = state.size[0] * state.view.scale * (window.devicePixelRatio || 1);
  const pick = (view) => (view.previewWidth && shown > view.previewWidth * 1.05 ? view.full : view.preview);
  const after = $("after-img"), before = $("before-img");
  const afterSrc = pick(out);
  if (after.getAttribute("src") !== afterSrc) after.src = afterSrc;
  const beforeSrc = state.before.preview ? pick(state.before) : out.preview;
  if (before.getAttribute("src") !== beforeSrc) before.src = beforeSrc;
}

function setSlider(percent) {
  const p = Math.min(100, Math.max(0, percent));
  $("slider").value = String(p);
  $("after-layer").style.clipPath = "inset(0 0 0 " + p + "%)";
  $("divider").style.left = p + "%";
}

function installComparison() {
  const compare = $("compare");
  $("slider").addEventListener("input", (e) => setSlider(Number(e.target.value)));
  let drag = null;
  compare.addEventListener("pointerdown", (e) => {
    const onDivider = e.target.closest("#divider") !== null;
    drag = { divider: onDivider, x: e.clientX, y: e.clientY, vx: state.view.x, vy: state.view.y };
    compare.setPointerCapture(e.pointerId);
  });
  compare.addEventListener("pointermove", (e) => {
    if (!drag) return;
    if (drag.divider) {
      const rect = compare.getBoundingClientRect();
      setSlider(((e.clientX - rect.left) / rect.width) * 100);
    } else {
      state.view.x = drag.vx + (e.clientX - drag.x);
      state.view.y = drag.vy + (e.clientY - drag.y);
      clampView();
      applyView();
    }
  });
  const end = () => { drag = null; };
  compare.addEventListener("pointerup", end);
  compare.addEventListener("pointercancel", end);
  compare.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = compare.getBoundingClientRect();
    document.querySelectorAll(".toolbar button").forEach((b) => b.classList.remove("active"));
    zoomAt(state.view.scale * Math.exp(-e.deltaY * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });
  document.querySelectorAll(".toolbar button[data-zoom]").forEach((b) => b.addEventListener("click", () => setZoom(b.dataset.zoom)));
  window.addEventListener("resize", () => { if (state.view.fit) setZoom("fit"); else { clampView(); applyView(); } });
  setSlider(50);
}

function installInputs() {
  $("api-key").value = storedKey();
  showKeyState();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveKey($("api-key").value.trim());
  });
  $("forget-key").addEventListener("click", () => {
    try { window.localStorage.removeItem(KEY_STORAGE); } catch (_) { /* nothing stored */ }
    $("api-key").value = "";
    showKeyState();
  });
  const zone = $("drop-zone"), input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => setFile(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  });
  $("enhance-form").addEventListener("submit", enhance);
}

document.addEventListener("DOMContentLoaded", () => {
  installInputs();
  installComparison();
  checkService();
});
