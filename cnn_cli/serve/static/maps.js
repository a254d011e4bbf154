// Maps with numbers: float32 arrays from the server drawn as grids of panels, each with a colour legend
// that states its scale, a value on hover (channel, position, value) and a click that reports the pixel.
// Scales: "layer" (one for every panel of a layer) or "map" (one per panel); kinds: "signed" (0 is white),
// "mask" (0 or 1), "log" (log10 of magnitudes, one range given by the caller, e.g. shared across layers).
"use strict";

const maps = {};

// A float32 array as the server sends it (layer_views.encode_float): {shape, min, max, float32}.
maps.floats = function (encoded) {
  const text = atob(encoded.float32);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return new Float32Array(bytes.buffer);
};

// A number as the page writes it: 4 significant digits, a real minus sign.
maps.num = function (v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  const text = a >= 1e4 || a < 1e-3 ? v.toExponential(3) : String(+v.toPrecision(4));
  return text.replace("-", "−");
};

maps.colour = function (kind, t) {
  if (kind === "mask") return t > 0.5 ? [29, 35, 48] : [255, 255, 255];
  if (kind === "log") return cnn.heatColour(Math.round(255 * Math.min(1, Math.max(0, t))));
  return cnn.signedColour(Math.round(127.5 + 127.5 * Math.min(1, Math.max(-1, t))));
};

// An opaque [r, g, b] as one little-endian RGBA word (ImageData's byte order on every platform the page runs on).
maps.packed = function ([r, g, b]) {
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
};

// The scale of panel c: signed/mask -> the largest magnitude; log -> [low, high] of log10|v|.
maps.limits = function (values, count, size, mode) {
  const out = [];
  let whole = 0;
  for (let c = 0; c < count; c++) {
    let m = 0;
    for (let i = c * size; i < (c + 1) * size; i++) m = Math.max(m, Math.abs(values[i]));
    out.push(m);
    whole = Math.max(whole, m);
  }
  return mode === "map" ? out : out.map(() => whole);
};

// Draw a (C, H, W) float array as a grid of panels on `canvas` and remember its layout for hover and click.
// spec: {name, values (Float32Array), shape [C, H, W], kind, scale ("layer" | "map"), cell (target panel px),
//        logRange [low, high] for kind "log", labels (optional function c -> text for the readout)}
maps.drawGrid = function (canvas, spec) {
  const [channels, height, width] = spec.shape;
  const cols = Math.ceil(Math.sqrt(channels));
  const rows = Math.ceil(channels / cols);
  const zoom = Math.max(1, Math.round((spec.cell || 60) / Math.max(height, width)));
  const gap = channels > 1 ? 2 : 0;
  canvas.width = cols * (width * zoom + gap) - gap;
  canvas.height = rows * (height * zoom + gap) - gap;
  // One ImageData at the canvas's own resolution: each value's colour filled into its zoom×zoom block.
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  const pixels = new Uint32Array(image.data.buffer);
  pixels.fill(maps.packed([232, 232, 238]));
  const size = height * width;
  const limits = maps.limits(spec.values, channels, size, spec.scale);
  for (let c = 0; c < channels; c++) {
    const left = (c % cols) * (width * zoom + gap);
    const top = Math.floor(c / cols) * (height * zoom + gap);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = spec.values[c * size + y * width + x];
        let t;
        if (spec.kind === "log") {
          const [low, high] = spec.logRange;
          t = v > 0 ? (Math.log10(v) - low) / (high - low || 1) : 0;
        } else t = spec.kind === "mask" ? v : v / (limits[c] || 1);
        const colour = maps.packed(maps.colour(spec.kind, t));
        for (let dy = 0; dy < zoom; dy++) {
          const row = (top + y * zoom + dy) * canvas.width + left + x * zoom;
          pixels.fill(colour, row, row + zoom);
        }
      }
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.mapGrid = { ...spec, cols, zoom, gap, limits };
  canvas.dataset.channels = String(channels);
  return canvas;
};

// The panel, row and column under a mouse event on a grid canvas, with the value there; null between panels.
maps.spotAt = function (canvas, event) {
  const grid = canvas.mapGrid;
  if (!grid) return null;
  const rect = canvas.getBoundingClientRect();
  const px = ((event.clientX - rect.left) / rect.width) * canvas.width;
  const py = ((event.clientY - rect.top) / rect.height) * canvas.height;
  const [channels, height, width] = grid.shape;
  const cellW = width * grid.zoom + grid.gap;
  const cellH = height * grid.zoom + grid.gap;
  const col = Math.floor(px / cellW);
  const row = Math.floor(py / cellH);
  const x = Math.floor((px - col * cellW) / grid.zoom);
  const y = Math.floor((py - row * cellH) / grid.zoom);
  const channel = row * grid.cols + col;
  if (col >= grid.cols || channel >= channels || x >= width || y >= height || x < 0 || y < 0) return null;
  return { layer: grid.name, channel, y, x, value: grid.values[(channel * height + y) * width + x] };
};

// A legend: the colour bar and the numbers at its ends and middle (spans the tests read).
// range: {kind, low, high, note}; signed bars run −max..0..+max, masks 0..1, log 1e(low)..1e(high).
maps.legend = function (node, range) {
  node.replaceChildren();
  node.className = "map-legend";
  const bar = cnn.el("canvas", { class: "legend-bar", width: 120, height: 10 });
  const ctx = bar.getContext("2d");
  for (let i = 0; i < 120; i++) {
    const t = range.kind === "signed" ? (2 * i) / 119 - 1 : i / 119;
    const [r, g, b] = maps.colour(range.kind, t);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(i, 0, 1, 10);
  }
  const ends =
    range.kind === "log"
      ? [`1e${range.low.toFixed(1)}`, `1e${((range.low + range.high) / 2).toFixed(1)}`, `1e${range.high.toFixed(1)}`]
      : range.kind === "mask"
        ? [range.lowLabel || "0", "", range.highLabel || "1"]
        : [maps.num(-range.high), "0", maps.num(range.high)];
  node.append(
    cnn.el("span", { class: "legend-low", text: ends[0] }),
    bar,
    cnn.el("span", { class: "legend-high", text: ends[2] }),
    cnn.el("span", { class: "legend-note", text: range.note || "" })
  );
  node.dataset.low = String(range.kind === "signed" ? -range.high : range.low);
  node.dataset.high = String(range.high);
  return node;
};

// The legend of a grid: the layer's scale, or in per-map mode the scale of `channel` (the hovered panel).
maps.gridLegend = function (node, canvas, channel) {
  const grid = canvas.mapGrid;
  if (grid.kind === "mask") return maps.legend(node, { kind: "mask", low: 0, high: 1, lowLabel: grid.lowLabel, highLabel: grid.highLabel });
  if (grid.kind === "log") return maps.legend(node, { kind: "log", low: grid.logRange[0], high: grid.logRange[1], note: "shared by every layer" });
  const c = grid.scale === "map" ? channel || 0 : 0;
  const note = grid.scale === "map" ? `scale of channel ${c} (one per map)` : "one scale for the layer";
  return maps.legend(node, { kind: "signed", low: -grid.limits[c], high: grid.limits[c], note });
};

// The shared readout: one line under the pointer (and in #readout for the tests and screen readers).
maps.readout = function (text, event) {
  const tip = document.getElementById("hover");
  const line = document.getElementById("readout");
  if (line) line.textContent = text;
  if (!tip) return;
  tip.hidden = !text;
  if (!text || !event) return;
  tip.textContent = text;
  const x = Math.min(event.clientX + 14, document.documentElement.clientWidth - tip.offsetWidth - 4);
  tip.style.left = Math.max(0, x) + "px";
  tip.style.top = event.clientY + 16 + "px";
};

// Hover and click on a grid canvas; its legend follows the hovered panel in per-map mode.
maps.attach = function (canvas, legendNode, onClick) {
  canvas.addEventListener("mousemove", (event) => {
    const spot = maps.spotAt(canvas, event);
    if (!spot) return maps.readout("", event);
    const grid = canvas.mapGrid;
    const label = grid.labels ? grid.labels(spot.channel) : `channel ${spot.channel}`;
    maps.readout(`${grid.title || grid.name} · ${label} · y ${spot.y}, x ${spot.x} · ${maps.num(spot.value)}`, event);
    if (legendNode && grid.scale === "map") maps.gridLegend(legendNode, canvas, spot.channel);
  });
  canvas.addEventListener("mouseleave", () => maps.readout(""));
  canvas.addEventListener("click", (event) => {
    const spot = maps.spotAt(canvas, event);
    if (spot && onClick) onClick({ ...spot, canvas });
  });
};

// A titled figure: the grid canvas, its legend and caption; hover and click (onClick(spot with its canvas)) wired.
maps.figure = function (spec, caption, onClick) {
  const canvas = cnn.el("canvas", { class: "map-grid " + (spec.className || ""), "data-layer": spec.name });
  maps.drawGrid(canvas, spec);
  const legend = cnn.el("div", {});
  maps.gridLegend(legend, canvas, 0);
  maps.attach(canvas, legend, onClick);
  return cnn.el("figure", { class: "map-figure" }, canvas, legend, cnn.el("figcaption", { text: caption }));
};
