// medseg-view front end: plain JavaScript, canvas rendering, no build step, nothing fetched from
// anywhere but this server (the page's Content-Security-Policy enforces it).
"use strict";

// 32 distinct colours (Trubetskoy's 20 without white/black/grey, then 15 more), ordered so that
// neighbouring class indices (finger-1, finger-2, ...) differ in hue.
const PALETTE = [
  "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
  "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
  "#808000", "#ffd8b1", "#000075", "#ff4500", "#00ced1", "#7cfc00", "#ff1493", "#1e90ff",
  "#ffd700", "#8a2be2", "#00fa9a", "#dc143c", "#ff8c00", "#adff2f", "#ba55d3", "#20b2aa",
];
const RGB = PALETTE.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
const LOWER_BETTER = new Set(["hd95"]);
const ERR = { tp: [255, 255, 255], fp: [255, 40, 40], fn: [40, 110, 255], both: [255, 0, 255] };
const DIFF = { a: [255, 150, 0], b: [0, 220, 255] };
const AXES = ["axial", "coronal", "sagittal"];

const state = { models: [], packages: [], errors: [], byId: {}, clinical: false };

// ------------------------------------------------------------------ helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const fmt = (v, d = 4) => (v === null || v === undefined || Number.isNaN(v) ? "–" : typeof v === "number" ? v.toFixed(d) : String(v));
const enc = encodeURIComponent;

function status(msg, isError = false) {
  const s = document.getElementById("status");
  s.textContent = msg || "";
  s.className = isError ? "error" : "";
}

async function errorText(r) {
  try {
    const j = await r.json();
    return j.error || (typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail)) || r.statusText;
  } catch (e) {
    return r.statusText;
  }
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  if (!r.ok) throw new Error(await errorText(r));
  return r.json();
}

async function fetchArray(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(await errorText(r));
  const dtype = r.headers.get("X-Dtype");
  const shape = r.headers.get("X-Shape").split(",").map(Number);
  const buf = await r.arrayBuffer();
  const T = dtype === "uint8" ? Uint8Array : dtype === "uint16" ? Uint16Array : Uint32Array;
  return { data: new T(buf), shape };
}

// ------------------------------------------------------------------ viewer
// Arrays arrive once per case (image uint8 per channel, masks as one bit per class per pixel); each
// slice is composed into an offscreen canvas at full resolution, and zoom / pan only redraw it with
// a transform: nothing is fetched again.
class Viewer {
  constructor(meta, panes, opts = {}) {
    this.meta = meta;
    this.panes = panes; // [{title, image, gt, pred} | {title, kind: "diff", a, b}]
    this.K = meta.classes.length;
    this.shape = meta.shape;
    this.ndim = meta.ndim;
    this.visible = new Array(this.K).fill(true);
    this.mode = opts.mode || "pred";
    this.opacity = 0.5;
    this.channel = 0;
    this.axis = 0;
    this.slices = this.ndim === 3 ? (meta.largest_slice || this.shape.map((s) => Math.floor(s / 2))).slice() : [0];
    this.zoom = 1; this.panX = 0; this.panY = 0;
    this.size = opts.size || 512;
    this.el = h("div", { class: "viewer" });
    this.paneBox = h("div", { class: "panes" });
    this.side = h("div", { class: "side" });
    this.el.append(this.paneBox, this.side);
    for (const [i, p] of panes.entries()) {
      p.canvas = h("canvas", { width: this.size, height: this.size, id: `pane-${i}` });
      p.off = document.createElement("canvas");
      p.box = h("div", { class: "pane" }, h("div", { class: "muted" }, p.title), p.canvas);
      this.paneBox.append(p.box);
      this.attachZoom(p.canvas);
    }
    this.buildControls(opts);
    this.colourCache = new Map();
    this.render();
  }

  sliceDims() {
    const s = this.shape;
    if (this.ndim === 2) return [s[0], s[1]];
    return this.axis === 0 ? [s[1], s[2]] : this.axis === 1 ? [s[0], s[2]] : [s[0], s[1]];
  }

  // index into the flat spatial array of (row, col) in the current slice
  indexer() {
    const s = this.shape;
    if (this.ndim === 2) return (y, x) => y * s[1] + x;
    const [, d1, d2] = s;
    const k = this.slices[this.axis];
    const rows = this.sliceDims()[0];
    const flip = this.meta.flip_rows_non_axial && this.axis !== 0;
    if (this.axis === 0) return (y, x) => k * d1 * d2 + y * d2 + x;
    if (this.axis === 1) return (y, x) => (flip ? rows - 1 - y : y) * d1 * d2 + k * d2 + x;
    return (y, x) => (flip ? rows - 1 - y : y) * d1 * d2 + x * d2 + k;
  }

  visMask() {
    let m = 0;
    for (let k = 0; k < this.K; k++) if (this.visible[k]) m |= 1 << k;
    return m >>> 0;
  }

  classColour(bits) {
    // overlapping labels (hand bones): the mean colour of the classes set at the pixel
    let c = this.colourCache.get(bits);
    if (c) return c;
    if (this.meta.nested) { // innermost region on top
      c = RGB[31 - Math.clz32(bits)];
      this.colourCache.set(bits, c);
      return c;
    }
    let r = 0, g = 0, b = 0, n = 0;
    for (let k = 0; k < this.K; k++) {
      if ((bits >>> k) & 1) { r += RGB[k][0]; g += RGB[k][1]; b += RGB[k][2]; n++; }
    }
    c = [r / n, g / n, b / n];
    this.colourCache.set(bits, c);
    return c;
  }

  composePane(p) {
    const [H, W] = this.sliceDims();
    const N = this.shape.reduce((a, b) => a * b, 1);
    const idx = this.indexer();
    const vis = this.visMask();
    const a = this.opacity;
    const img = new ImageData(W, H);
    const out = img.data;
    const base = (p.kind === "diff" ? p.a.image : p.image).data;
    const off = this.channel * N;
    const mode = this.mode;
    const gt = p.gt ? p.gt.data : null;
    const roi = p.roi ? p.roi.data : null; // errors are counted where the metrics are: inside the ROI
    const pred = p.pred ? p.pred.data : null;
    const pa = p.kind === "diff" ? p.a.pred.data : null;
    const pb = p.kind === "diff" ? p.b.pred.data : null;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = idx(y, x);
        const g = base[off + i];
        let col = null;
        if (p.kind === "diff") {
          const u = (pa[i] & vis) >>> 0, v = (pb[i] & vis) >>> 0;
          const aOnly = (u & ~v) >>> 0, bOnly = (v & ~u) >>> 0;
          col = aOnly && bOnly ? ERR.both : aOnly ? DIFF.a : bOnly ? DIFF.b : null;
        } else if (mode === "errors" && gt) {
          if (roi && !roi[i]) { col = null; } else {
          const pp = (pred[i] & vis) >>> 0, tt = (gt[i] & vis) >>> 0;
          const fp = (pp & ~tt) >>> 0, fn = (tt & ~pp) >>> 0;
          col = fp && fn ? ERR.both : fp ? ERR.fp : fn ? ERR.fn : pp ? ERR.tp : null;
          }
        } else {
          const src = mode === "gt" && gt ? gt : pred;
          const bits = (src[i] & vis) >>> 0;
          if (bits) col = this.classColour(bits);
        }
        const o = 4 * (y * W + x);
        if (col) {
          out[o] = g * (1 - a) + col[0] * a;
          out[o + 1] = g * (1 - a) + col[1] * a;
          out[o + 2] = g * (1 - a) + col[2] * a;
        } else {
          out[o] = out[o + 1] = out[o + 2] = g;
        }
        out[o + 3] = 255;
      }
    }
    p.off.width = W; p.off.height = H;
    p.off.getContext("2d").putImageData(img, 0, 0);
  }

  render() {
    for (const p of this.panes) this.composePane(p);
    this.draw();
    this.el.dataset.renders = String((Number(this.el.dataset.renders) || 0) + 1);
  }

  draw() {
    const [H, W] = this.sliceDims();
    const fit = Math.min(this.size / W, this.size / H);
    const s = fit * this.zoom;
    for (const p of this.panes) {
      const ctx = p.canvas.getContext("2d");
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.size, this.size);
      ctx.imageSmoothingEnabled = this.zoom * fit < 1; // nearest neighbour when magnified: see pixels
      ctx.setTransform(s, 0, 0, s, this.size / 2 - (W / 2) * s + this.panX, this.size / 2 - (H / 2) * s + this.panY);
      ctx.drawImage(p.off, 0, 0);
    }
  }

  attachZoom(canvas) {
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const f = e.deltaY < 0 ? 1.25 : 0.8;
      const r = canvas.getBoundingClientRect();
      const cx = e.clientX - r.left - this.size / 2, cy = e.clientY - r.top - this.size / 2;
      // keep the point under the cursor in place
      this.panX = cx - (cx - this.panX) * f;
      this.panY = cy - (cy - this.panY) * f;
      this.zoom = Math.min(64, Math.max(0.25, this.zoom * f));
      this.draw();
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, px: this.panX, py: this.panY };
      canvas.setPointerCapture(e.pointerId);
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.panX = drag.px + e.clientX - drag.x;
      this.panY = drag.py + e.clientY - drag.y;
      this.draw();
    });
    const end = () => { drag = null; canvas.classList.remove("dragging"); };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  setZoom(z) { this.zoom = z; if (z === 1) { this.panX = 0; this.panY = 0; } this.draw(); }

  buildControls(opts) {
    const m = this.meta;
    const ctl = h("div", { class: "controls" });
    const modes = [["pred", "prediction"]];
    if (m.has_gt) modes.push(["gt", "ground truth"], ["errors", "errors (FP/FN)"]);
    if (!opts.diff) {
      const sel = h("select", { id: "mode", onchange: (e) => { this.mode = e.target.value; this.render(); } },
        modes.map(([v, t]) => h("option", { value: v, selected: v === this.mode }, t)));
      ctl.append(h("label", {}, "show", sel));
    }
    ctl.append(h("label", {}, "opacity", h("input", {
      id: "opacity", type: "range", min: 0, max: 1, step: 0.05, value: this.opacity,
      oninput: (e) => { this.opacity = Number(e.target.value); this.render(); },
    })));
    if (m.channels > 1) {
      const names = m.channel_names || Array.from({ length: m.channels }, (_, i) => `channel ${i}`);
      ctl.append(h("label", {}, "image", h("select", { id: "channel", onchange: (e) => { this.channel = Number(e.target.value); this.render(); } },
        names.map((n, i) => h("option", { value: i }, n)))));
    }
    ctl.append(h("span", {}, "zoom ",
      h("button", { onclick: () => this.setZoom(this.zoom * 1.5), title: "zoom in (or mouse wheel)" }, "+"),
      h("button", { onclick: () => this.setZoom(this.zoom / 1.5), title: "zoom out" }, "−"),
      h("button", { id: "fit", onclick: () => this.setZoom(1), title: "fit the image" }, "fit")));
    this.side.append(ctl);
    if (this.ndim === 3) {
      const sl = h("div", { class: "controls" });
      this.axisButtons = AXES.map((name, a) => h("button", {
        class: a === this.axis ? "active" : null, dataset: { axis: a }, id: `axis-${name}`,
        onclick: () => { this.axis = a; this.syncSlice(); this.render(); },
      }, name));
      this.slider = h("input", { id: "slice", type: "range", min: 0, max: this.shape[0] - 1, value: this.slices[0],
        oninput: (e) => { this.slices[this.axis] = Number(e.target.value); this.syncSlice(); this.render(); } });
      this.sliceLabel = h("span", { class: "muted", id: "slice-label" });
      sl.append(h("span", {}, ...this.axisButtons), h("label", {}, "slice", this.slider), this.sliceLabel,
        h("button", { id: "jump-largest", onclick: () => {
          this.slices[this.axis] = m.largest_slice[this.axis]; this.syncSlice(); this.render();
        } }, m.has_gt ? "largest tumour slice" : "largest predicted slice"));
      this.side.append(sl);
      this.syncSlice();
    }
    // legend: per-class toggles, colour, and pixel counts of ground truth / prediction
    const regions = this.ndim === 3 && this.K <= 4;
    this.side.append(h("h3", {}, regions ? "Regions" : "Classes"),
      h("div", { class: "controls" },
        h("button", { id: "all-on", onclick: () => this.setAll(true) }, "all"),
        h("button", { id: "all-off", onclick: () => this.setAll(false) }, "none")));
    this.checks = [];
    const ul = h("ul", { class: "legend" });
    for (let k = 0; k < this.K; k++) {
      const cb = h("input", { type: "checkbox", checked: true, dataset: { class: k },
        onchange: (e) => { this.visible[k] = e.target.checked; this.render(); } });
      this.checks.push(cb);
      const sw = h("span", { class: "swatch" });
      sw.style.background = PALETTE[k];
      const counts = m.gt_pixels ? `gt ${m.gt_pixels[k]} · pred ${m.pred_pixels[k]}` : `pred ${m.pred_pixels[k]}`;
      ul.append(h("li", {}, h("label", {}, cb, sw, m.classes[k]), h("span", { class: "counts" }, opts.diff ? "" : counts)));
    }
    this.side.append(ul);
    const key = opts.diff
      ? "difference: orange = only A predicts, cyan = only B predicts, magenta = both, in different classes"
      : m.has_gt ? "errors view: white = true positive, red = false positive, blue = false negative, magenta = both (different classes)" : "";
    if (key) this.side.append(h("p", { class: "muted" }, key));
  }

  setAll(on) {
    this.visible.fill(on);
    for (const cb of this.checks) cb.checked = on;
    this.render();
  }

  syncSlice() {
    if (this.ndim !== 3) return;
    const n = this.shape[this.axis];
    this.slider.max = n - 1;
    this.slider.value = this.slices[this.axis];
    this.sliceLabel.textContent = `${AXES[this.axis]} ${this.slices[this.axis] + 1} / ${n}`;
    this.axisButtons.forEach((b, a) => b.classList.toggle("active", a === this.axis));
  }
}

// ------------------------------------------------------------------ charts
function lineChart(title, series, w = 420, hgt = 240) {
  const c = h("canvas", { width: w, height: hgt });
  const ctx = c.getContext("2d");
  const pad = { l: 50, r: 10, t: 24, b: 30 };
  const xs = series.flatMap((s) => s.xs), ys = series.flatMap((s) => s.ys).filter((v) => v !== null);
  ctx.fillStyle = "#e4e6eb"; ctx.font = "13px system-ui, sans-serif";
  ctx.fillText(title, pad.l, 16);
  if (!ys.length) { ctx.fillText("no values", pad.l, hgt / 2); return c; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (y) => hgt - pad.b - ((y - y0) / (y1 - y0)) * (hgt - pad.t - pad.b);
  ctx.strokeStyle = "#555"; ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, hgt - pad.b); ctx.lineTo(w - pad.r, hgt - pad.b); ctx.stroke();
  ctx.fillStyle = "#9aa0ad"; ctx.font = "11px system-ui, sans-serif";
  for (const v of [y0, (y0 + y1) / 2, y1]) ctx.fillText(v.toPrecision(3), 4, Y(v) + 4);
  ctx.fillText(`epoch ${x0}`, pad.l, hgt - 10); ctx.fillText(String(x1), w - pad.r - 20, hgt - 10);
  series.forEach((s, i) => {
    ctx.strokeStyle = ctx.fillStyle = s.color || PALETTE[i];
    ctx.beginPath();
    let started = false;
    s.xs.forEach((x, j) => {
      const y = s.ys[j];
      if (y === null) return;
      if (!started) { ctx.moveTo(X(x), Y(y)); started = true; } else ctx.lineTo(X(x), Y(y));
      ctx.fillRect(X(x) - 2, Y(y) - 2, 4, 4);
    });
    ctx.stroke();
    ctx.fillText(s.name, w - pad.r - 110, pad.t + 12 + 14 * i);
  });
  return c;
}

function barChart(title, labels, values, w = 420) {
  const rowH = 16, pad = { l: 130, r: 50, t: 26, b: 10 };
  const hgt = pad.t + pad.b + rowH * labels.length;
  const c = h("canvas", { width: w, height: hgt, id: "class-bars" });
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#e4e6eb"; ctx.font = "13px system-ui, sans-serif"; ctx.fillText(title, 8, 16);
  const vmax = Math.max(1e-9, ...values.filter((v) => v !== null));
  ctx.font = "11px system-ui, sans-serif";
  labels.forEach((name, k) => {
    const y = pad.t + k * rowH;
    const v = values[k];
    ctx.fillStyle = "#9aa0ad"; ctx.fillText(name, 6, y + 11);
    ctx.fillStyle = PALETTE[k % PALETTE.length];
    if (v !== null) ctx.fillRect(pad.l, y + 2, (v / vmax) * (w - pad.l - pad.r), rowH - 4);
    ctx.fillStyle = "#e4e6eb"; ctx.fillText(fmt(v, 3), w - pad.r + 4, y + 11);
  });
  return c;
}

// ------------------------------------------------------------------ pages
function modelLink(m) { return h("a", { href: `#/model/${m.id}` }, m.name); }

function errorsBox() {
  return state.errors.map((e) => h("div", { class: "error-box source-error" }, h("b", {}, "cannot read "), e.source, ": ", e.message));
}

async function pageHome(main) {
  main.append(h("h1", {}, "Models"), ...errorsBox());
  const t = h("table", { id: "models" }, h("thead", {}, h("tr", {}, ["model", "kind", "cases", "mean Dice", "predictions", "folder"].map((c) => h("th", {}, c)))));
  const tb = h("tbody");
  for (const m of state.models) {
    tb.append(h("tr", { onclick: () => { location.hash = `#/model/${m.id}`; } },
      h("td", {}, modelLink(m)), h("td", {}, m.kind), h("td", {}, m.n_cases), h("td", {}, fmt(m.mean.dice)),
      h("td", {}, m.can_predict ? "from checkpoint" : "metrics only"), h("td", { class: "muted" }, m.folder)));
  }
  t.append(tb);
  main.append(t);
  const lb = await api("/api/leaderboard");
  if (lb.rows.length) {
    const cols = ["dice", "iou", "hd95", "nsd"].filter((c) => c in lb.rows[0]);
    main.append(h("h2", {}, "Leaderboard"),
      h("p", { class: "muted" }, `Mean over cases; Dice with a bootstrap 95% CI (${lb.n_boot} resamples of the cases, medseg.report).`));
    const lt = h("table", { id: "leaderboard" }, h("thead", {}, h("tr", {}, ["model", "kind", "cases", "Dice [95% CI]", ...cols.filter((c) => c !== "dice")].map((c) => h("th", {}, c)))));
    const lbody = h("tbody");
    for (const r of lb.rows) {
      lbody.append(h("tr", { onclick: () => { location.hash = `#/model/${r.id}`; } },
        h("td", {}, r.name), h("td", {}, r.kind), h("td", {}, r.n_cases),
        h("td", {}, `${fmt(r.dice)} [${fmt(r.dice_ci_low)}, ${fmt(r.dice_ci_high)}]`),
        cols.filter((c) => c !== "dice").map((c) => h("td", {}, fmt(r[c])))));
    }
    lt.append(lbody);
    main.append(lt);
  }
}

async function pageModel(main, mid) {
  const m = state.byId[mid];
  if (!m) throw new Error(`no model ${mid}`);
  main.append(h("h1", {}, m.name, " ", h("span", { class: "muted" }, `(${m.kind}, ${m.n_cases} cases)`)),
    h("p", { class: "muted" }, m.folder));
  const data = await api(`/api/models/${mid}/cases`);
  const metrics = m.metrics;
  const perClass = {};
  for (const r of data.per_class || []) (perClass[r.case_id] = perClass[r.case_id] || {})[r.class] = r;
  const st = { metric: metrics.includes("dice") ? "dice" : metrics[0], cls: "", min: "", max: "", sortKey: null, asc: true };
  st.sortKey = st.metric; st.asc = !LOWER_BETTER.has(st.metric);
  const ctl = h("div", { class: "controls" });
  const metricSel = h("select", { id: "metric" }, metrics.map((x) => h("option", { value: x, selected: x === st.metric }, x)));
  const classSel = h("select", { id: "class-filter" }, h("option", { value: "" }, "all classes (mean)"),
    m.classes.length > 1 ? m.classes.map((c) => h("option", { value: c }, c)) : []);
  const minIn = h("input", { id: "min", type: "number", step: "any", placeholder: "min", size: 6 });
  const maxIn = h("input", { id: "max", type: "number", step: "any", placeholder: "max", size: 6 });
  ctl.append(h("label", {}, "metric", metricSel), h("label", {}, "class", classSel),
    h("label", {}, "range", minIn, "–", maxIn));
  const others = state.models.filter((o) => o.id !== mid);
  const cmpSel = h("select", { id: "compare-with" }, h("option", { value: "" }, "compare with…"), others.map((o) => h("option", { value: o.id }, o.name)));
  ctl.append(cmpSel);
  if (m.can_predict) ctl.append(h("a", { href: `#/try/${mid}` }, "Try it with this model"));
  main.append(h("h2", {}, "Cases"), h("p", { class: "muted" }, "Worst first by default; click a column to sort, a row to open the case."), ctl);
  const table = h("table", { id: "cases" });
  main.append(table);
  const value = (row, key) => {
    if (key === "case_id") return row.case_id;
    if (st.cls) { const r = (perClass[row.case_id] || {})[st.cls]; return r ? r[key] : null; }
    return row[key];
  };
  let shown = [];
  const draw = () => {
    const lo = st.min === "" ? -Infinity : Number(st.min), hi = st.max === "" ? Infinity : Number(st.max);
    shown = data.cases.filter((r) => { const v = value(r, st.metric); return v === null ? st.min === "" && st.max === "" : v >= lo && v <= hi; });
    shown.sort((a, b) => {
      const x = value(a, st.sortKey), y = value(b, st.sortKey);
      if (x === y) return 0;
      if (x === null) return 1; if (y === null) return -1;
      return (x < y ? -1 : 1) * (st.asc ? 1 : -1);
    });
    const cols = ["case_id", ...metrics];
    table.replaceChildren(h("thead", {}, h("tr", {}, cols.map((c) => h("th", {
      class: c === st.sortKey ? "sorted" : null,
      onclick: () => { if (st.sortKey === c) st.asc = !st.asc; else { st.sortKey = c; st.asc = c === "case_id" || !LOWER_BETTER.has(c); } draw(); },
    }, c + (c === st.sortKey ? (st.asc ? " ▲" : " ▼") : ""))))),
    h("tbody", {}, shown.map((r) => h("tr", { dataset: { case: r.case_id }, onclick: () => { location.hash = `#/case/${mid}/${enc(r.case_id)}`; } },
      cols.map((c) => h("td", {}, c === "case_id" ? r.case_id : fmt(value(r, c))))))));
  };
  metricSel.addEventListener("change", () => { st.metric = st.sortKey = metricSel.value; st.asc = !LOWER_BETTER.has(st.metric); draw(); });
  classSel.addEventListener("change", () => { st.cls = classSel.value; draw(); });
  minIn.addEventListener("input", () => { st.min = minIn.value; draw(); });
  maxIn.addEventListener("input", () => { st.max = maxIn.value; draw(); });
  cmpSel.addEventListener("change", () => {
    if (cmpSel.value && shown.length) location.hash = `#/compare/${mid}/${cmpSel.value}/${enc(shown[0].case_id)}`;
  });
  draw();
  // training curves and the per-class chart
  const charts = h("div", { class: "charts", id: "charts" });
  main.append(h("h2", {}, "Training curves and classes"), charts);
  const cv = await api(`/api/models/${mid}/curves`);
  for (const c of cv.curves) {
    if (c.error) { charts.append(h("div", { class: "error-box" }, c.error)); continue; }
    const xs = c.rows.map((r) => r.epoch);
    const ser = (k, color) => ({ name: k, xs, ys: c.rows.map((r) => (r[k] === undefined ? null : r[k])), color });
    charts.append(lineChart("loss per epoch", [ser("train/loss", "#4f9dff"), ser("val/loss", "#f58231")]),
      lineChart("validation Dice per epoch", [ser("val/dice", "#3cb44b")]));
  }
  if (!cv.curves.length) charts.append(h("p", { class: "muted" }, "no metrics.csv for this model"));
  const bars = await api(`/api/models/${mid}/classes?metric=${enc(st.metric)}`);
  if (bars.classes.length > 1) charts.append(barChart(`${bars.metric} per class (mean over cases)`, bars.classes, bars.values));
}

function metricsTable(meta) {
  const t = h("table", { class: "metrics" });
  const rows = Object.entries(meta.metrics || {}).filter(([, v]) => typeof v === "number");
  t.append(h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, fmt(v))))));
  return t;
}

async function loadCase(mid, cid) {
  const base = `/api/models/${mid}/cases/${enc(cid)}`;
  const meta = await api(`${base}/meta`);
  const [image, pred, gt, roi] = await Promise.all([
    fetchArray(`${base}/array/image`), fetchArray(`${base}/array/pred`),
    meta.has_gt ? fetchArray(`${base}/array/gt`) : Promise.resolve(null),
    meta.has_roi ? fetchArray(`${base}/array/roi`) : Promise.resolve(null)]);
  return { meta, image, pred, gt, roi };
}

function caseNav(mid, cid) {
  const m = state.byId[mid];
  const others = state.models.filter((o) => o.id !== mid);
  const sel = h("select", { id: "compare-with", onchange: (e) => { if (e.target.value) location.hash = `#/compare/${mid}/${e.target.value}/${enc(cid)}`; } },
    h("option", { value: "" }, "compare with…"), others.map((o) => h("option", { value: o.id }, o.name)));
  return h("div", { class: "controls" }, h("a", { href: `#/model/${mid}` }, `← ${m.name} cases`), sel);
}

async function pageCase(main, mid, cid) {
  const m = state.byId[mid];
  if (!m) throw new Error(`no model ${mid}`);
  main.append(h("h1", {}, cid, " ", h("span", { class: "muted" }, m.name)), caseNav(mid, cid));
  status("loading case…");
  const c = await loadCase(mid, cid);
  const v = new Viewer(c.meta, [{ title: `${m.name} (${c.meta.prediction_source}, threshold ${fmt(c.meta.threshold, 2)})`, image: c.image, gt: c.gt, pred: c.pred, roi: c.roi }]);
  v.side.prepend(h("h3", {}, "Metrics"), metricsTable(c.meta));
  main.append(v.el);
  if (state.clinical && c.meta.ndim === 3) main.append(clinicalSection(mid, cid));
  status("");
  performance.mark("case-painted");
  v.el.dataset.ready = "1";
}

function clinicalSection(mid, cid) {
  const out = h("div", { id: "clinical-result" });
  const run = async (source) => {
    out.replaceChildren(h("p", { class: "muted" }, "cross-checking…"));
    try {
      const r = await api(`/api/models/${mid}/cases/${enc(cid)}/clinical?source=${source}`);
      const cc = r.crosscheck;
      out.replaceChildren(
        h("p", {}, `Tumour from ${r.source}; hemisphere `, h("b", {}, r.hemisphere),
          `; whole tumour ${fmt(r.volumes_cm3.WT, 1)} cm³; patient ${r.patient.sex || "?"}, ${r.patient.age ?? "?"} years. `,
          `Agreement of image and symptoms: `, h("b", { id: "clinical-agreement" }, fmt(cc.agreement, 2))),
        h("h3", {}, "Regions"),
        h("table", {}, h("thead", {}, h("tr", {}, ["region", "why", "share of tumour", "symptoms"].map((x) => h("th", {}, x)))),
          h("tbody", {}, cc.regions.map((g) => h("tr", {}, h("td", {}, g.name), h("td", {}, g.reason),
            h("td", {}, fmt(g.image_fraction, 2)), h("td", {}, g.symptoms.join(", ")))))),
        h("h3", {}, "Symptoms"),
        h("ul", {}, cc.symptoms.map((x) => h("li", {}, `${x.symptom}${x.side ? ` (${x.side})` : ""}: `,
          x.known ? (x.explained ? "explained by the image" : "not explained by the image") : "unknown symptom"))),
        h("h3", {}, "Suggested hospitals and doctors"),
        h("ul", { id: "clinical-recommendations" }, cc.recommendations.map((x) => h("li", {}, `${x.name} (${x.kind}, ${x.detail}): ${x.structures.join(", ")}`))),
        cc.messages.length ? h("div", { class: "error-box" }, cc.messages.join(" ")) : null,
        h("p", { class: "muted" }, r.disclaimer));
    } catch (e) {
      out.replaceChildren(h("div", { class: "error-box", id: "clinical-error" }, e.message));
    }
  };
  return h("section", {}, h("h2", {}, "Clinical cross-check"),
    h("div", { class: "controls" },
      h("button", { id: "clinical-gt", onclick: () => run("gt") }, "from the ground truth"),
      h("button", { id: "clinical-pred", onclick: () => run("pred") }, "from the prediction")),
    out);
}

async function pageCompare(main, a, b, cid) {
  const ma = state.byId[a], mb = state.byId[b];
  if (!ma || !mb) throw new Error("unknown model");
  main.append(h("h1", {}, "Compare ", h("span", { class: "muted" }, `${ma.name} (A) vs ${mb.name} (B)`), " on ", cid),
    h("div", { class: "controls" }, h("a", { href: `#/case/${a}/${enc(cid)}` }, `← ${ma.name}: ${cid}`)));
  const cmp = await api(`/api/compare/${a}/${b}`);
  const row = cmp.cases.find((r) => r.case_id === cid);
  main.append(h("p", { id: "compare-summary" }, cmp.sentence),
    row ? h("p", { id: "case-diff" }, `This case: Dice A ${fmt(row.a)}, B ${fmt(row.b)}, difference B − A `,
      h("b", { class: row.diff >= 0 ? "diff-pos" : "diff-neg" }, fmt(row.diff))) : h("p", { class: "muted" }, `${cid} is not scored by both models`));
  status("loading both predictions…");
  const [ca, cb] = await Promise.all([loadCase(a, cid), loadCase(b, cid)]);
  if (ca.meta.shape.join() !== cb.meta.shape.join()) throw new Error(`the two models' cases differ in shape (${ca.meta.shape} vs ${cb.meta.shape})`);
  const panes = [
    { title: `A: ${ma.name}`, image: ca.image, gt: ca.gt, pred: ca.pred, roi: ca.roi },
    { title: `B: ${mb.name}`, image: cb.image, gt: cb.gt, pred: cb.pred, roi: cb.roi },
    { title: "difference A vs B", kind: "diff", a: ca, b: cb },
  ];
  const v = new Viewer(ca.meta, panes, { size: 300 });
  main.append(v.el);
  // every case both scored, by difference (the worst regressions first)
  const t = h("table", { id: "compare-cases" }, h("thead", {}, h("tr", {}, ["case", "A", "B", "B − A"].map((x) => h("th", {}, x)))),
    h("tbody", {}, cmp.cases.map((r) => h("tr", { onclick: () => { location.hash = `#/compare/${a}/${b}/${enc(r.case_id)}`; } },
      h("td", {}, r.case_id), h("td", {}, fmt(r.a)), h("td", {}, fmt(r.b)), h("td", { class: r.diff >= 0 ? "diff-pos" : "diff-neg" }, fmt(r.diff))))));
  main.append(h("h2", {}, `Per-case ${cmp.metric || "dice"} difference`), t);
  status("");
  v.el.dataset.ready = "1";
}

async function pageTry(main, mid) {
  // runs with a checkpoint, then exported packages (ids p0, p1...: predicted by the package's networks)
  const usable = [...state.models.filter((m) => m.can_predict), ...state.packages];
  main.append(h("h1", {}, "Try it"), h("p", { class: "muted" },
    "Upload an image (png, jpg, tif, bmp, gif) or a NIfTI volume (.nii, .nii.gz); the chosen run predicts it with the preprocessing it was trained with. The file is kept only in a temporary folder while it is read."));
  if (!usable.length) { main.append(...errorsBox(), h("div", { class: "error-box" }, "no model with a checkpoint or exported package was given")); return; }
  const sel = h("select", { id: "try-model" }, usable.map((m) => h("option", { value: m.id, selected: m.id === mid }, m.kind === "package" ? `${m.name} (exported package)` : m.name)));
  const file = h("input", { type: "file", id: "upload-file", accept: ".png,.jpg,.jpeg,.tif,.tiff,.bmp,.gif,.nii,.gz" });
  const out = h("div", { id: "try-result" });
  const go = h("button", { id: "predict", onclick: async () => {
    if (!file.files.length) { status("choose a file first", true); return; }
    const f = file.files[0];
    out.replaceChildren(h("p", { class: "muted" }, `predicting ${f.name}…`));
    try {
      const kind = state.byId[sel.value].kind === "package" ? "packages" : "models";
      const r = await api(`/api/${kind}/${sel.value}/predict?filename=${enc(f.name)}`, { method: "POST", body: f, headers: { "Content-Type": "application/octet-stream" } });
      const [image, pred] = await Promise.all([fetchArray(`/api/uploads/${r.token}/array/image`), fetchArray(`/api/uploads/${r.token}/array/pred`)]);
      const v = new Viewer(r.meta, [{ title: `${f.name}: prediction of ${state.byId[sel.value].name}`, image, pred, gt: null }]);
      out.replaceChildren(v.el);
      v.el.dataset.ready = "1";
      status("");
    } catch (e) {
      out.replaceChildren(h("div", { class: "error-box", id: "try-error" }, e.message));
    }
  } }, "Predict");
  main.append(...errorsBox(), h("div", { class: "controls" }, h("label", {}, "model", sel), file, go), out);
}

async function route() {
  const main = document.getElementById("main");
  main.replaceChildren();
  status("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "model") await pageModel(main, parts[1]);
    else if (parts[0] === "case") await pageCase(main, parts[1], parts.slice(2).join("/"));
    else if (parts[0] === "compare") await pageCompare(main, parts[1], parts[2], parts.slice(3).join("/"));
    else if (parts[0] === "try") await pageTry(main, parts[1]);
    else await pageHome(main);
  } catch (e) {
    main.append(h("div", { class: "error-box", id: "page-error" }, e.message));
    status("error", true);
  }
}

async function start() {
  try {
    const r = await api("/api/models");
    state.models = r.models; state.errors = r.errors; state.clinical = r.clinical; state.packages = r.packages || [];
    for (const m of [...r.models, ...state.packages]) state.byId[m.id] = m;
  } catch (e) {
    document.getElementById("main").replaceChildren(h("div", { class: "error-box" }, e.message));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
