// Shared drawing helpers for the cnn serve pages: colour maps, arrays sent as bytes, a canvas line chart.
// Everything here runs offline: no library, no font or file from elsewhere.
"use strict";

const cnn = {};

cnn.getJSON = async function (url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
};

// A base64 byte string (as the server's encode_signed/encode_unsigned send) -> Uint8Array.
cnn.bytes = function (encoded) {
  const text = atob(encoded.data);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
};

// Signed values (128 = 0): blue < 0, white 0, red > 0, as the PNG plots draw them.
cnn.signedColour = function (byte) {
  const t = (byte - 127.5) / 127.5;
  if (t >= 0) return [255, Math.round(255 * (1 - 0.85 * t)), Math.round(255 * (1 - 0.9 * t))];
  const s = -t;
  return [Math.round(255 * (1 - 0.9 * s)), Math.round(255 * (1 - 0.6 * s)), 255];
};
// Magnitudes: white to dark red.
cnn.heatColour = function (byte) {
  const t = byte / 255;
  return [Math.round(255 - 80 * t), Math.round(255 * (1 - t) ** 1.2), Math.round(255 * (1 - t) ** 1.5)];
};
// Ink as MNIST stores it: black background, white ink.
cnn.inkColour = function (byte) {
  return [byte, byte, byte];
};

// Draw an (H, W) block of bytes, starting at `offset`, into ctx at (x, y), `scale` pixels per value.
cnn.blitMap = function (ctx, bytes, offset, height, width, x, y, scale, colour) {
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < height * width; i++) {
    const [r, g, b] = colour(bytes[offset + i]);
    image.data[4 * i] = r;
    image.data[4 * i + 1] = g;
    image.data[4 * i + 2] = b;
    image.data[4 * i + 3] = 255;
  }
  const scratch = document.createElement("canvas");
  scratch.width = width;
  scratch.height = height;
  scratch.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, x, y, width * scale, height * scale);
};

// One encoded (H, W) array onto a whole canvas.
cnn.drawArray = function (canvas, encoded, colour) {
  const [height, width] = encoded.shape;
  const scale = Math.max(1, Math.floor(Math.min(canvas.width / width, canvas.height / height)));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  cnn.blitMap(ctx, cnn.bytes(encoded), 0, height, width, (canvas.width - width * scale) / 2, (canvas.height - height * scale) / 2, scale, colour);
};

// A (C, H, W) encoded array as a grid of panels; returns the canvas.
cnn.drawGrid = function (canvas, encoded, cellTarget) {
  const [channels, height, width] = encoded.shape;
  const cols = Math.ceil(Math.sqrt(channels));
  const rows = Math.ceil(channels / cols);
  const scale = Math.max(1, Math.round(cellTarget / Math.max(height, width)));
  const gap = 2;
  canvas.width = cols * (width * scale + gap) - gap;
  canvas.height = rows * (height * scale + gap) - gap;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#e8e8ee";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const bytes = cnn.bytes(encoded);
  for (let c = 0; c < channels; c++) {
    const x = (c % cols) * (width * scale + gap);
    const y = Math.floor(c / cols) * (height * scale + gap);
    cnn.blitMap(ctx, bytes, c * height * width, height, width, x, y, scale, cnn.signedColour);
  }
  return canvas;
};

// Decoded values of an encoded array (bytes back to numbers, approximately).
cnn.values = function (encoded) {
  const bytes = cnn.bytes(encoded);
  const out = new Float64Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    out[i] = encoded.signed ? ((bytes[i] - 127.5) / 127) * encoded.scale : (bytes[i] / 255) * encoded.scale;
  }
  return out;
};

cnn.niceTicks = function (low, high, count) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
};

cnn.formatTick = function (v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return +v.toPrecision(3) + "";
};

// A cleared 2-D context for a chart canvas, sharp on high-density screens: the canvas gets
// devicePixelRatio pixels per CSS pixel and the context draws in CSS pixels.
// width, height: the canvas's CSS size (the fallbacks while it is not laid out yet).
cnn.chartContext = function (canvas, fallbackWidth, fallbackHeight) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || fallbackWidth;
  const height = canvas.clientHeight || fallbackHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  return { ctx, width, height };
};

// Poll `fetchOnce` (an async function) forever, starting the next call `delayMs` after the previous
// one has answered: calls never overlap, however slow the server is (setInterval would pile them up).
cnn.poll = function (fetchOnce, delayMs) {
  const next = async () => {
    try {
      await fetchOnce();
    } finally {
      setTimeout(next, delayMs);
    }
  };
  next();
};

// TensorBoard's smoothing: an exponential moving average with weight `weight` (0 = none),
// divided by (1 - weight^n) so that the first points are not pulled towards 0.
// Missing values stay missing and do not move the average.
cnn.smooth = function (ys, weight) {
  let last = 0;
  let count = 0;
  return ys.map((y) => {
    if (y === null || y === undefined || !isFinite(y)) return null;
    last = last * weight + (1 - weight) * y;
    count += 1;
    return weight > 0 ? last / (1 - weight ** count) : y;
  });
};

// A line chart on a canvas.
// spec: {title, xLabel, yLabel, log: bool, series: [{label, colour, xs, ys, dashed, faint}],
//        marker: {x, label}, markers: [{x, label, colour, top}]}  (top: the label at the top of the plot, not the bottom)
// A faint series (the raw values under a smoothed line) is drawn thin and pale, without legend or dots.
// Sets canvas.dataset.points to the number of points of the first series (the tests read it).
cnn.lineChart = function (canvas, spec) {
  const { ctx, width: cssWidth, height: cssHeight } = cnn.chartContext(canvas, 480, 260);
  // The legend sits right of the title; where both do not fit (a phone), on a line of its own below it.
  const labelled = spec.series.filter((s) => s.label && !s.faint);
  const legendWidth = labelled.reduce((sum, s) => sum + ctx.measureText(s.label).width + 30, 0);
  const legendBelow = ctx.measureText(spec.title || "").width + legendWidth + 16 > cssWidth - 58 - 12;
  const legendY = legendBelow ? 32 : 16;
  const pad = { left: 58, right: 12, top: legendBelow ? 42 : 26, bottom: 40 };
  const w = cssWidth - pad.left - pad.right;
  const h = cssHeight - pad.top - pad.bottom;
  const transform = spec.log ? (v) => Math.log10(v) : (v) => v;
  const points = [];
  for (const s of spec.series) {
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (y === null || y === undefined || !isFinite(y) || (spec.log && y <= 0)) continue;
      points.push([s.xs[i], transform(y)]);
    }
  }
  canvas.dataset.points = spec.series.length ? String(spec.series[0].ys.filter((y) => y !== null && isFinite(y)).length) : "0";
  ctx.fillStyle = "#222";
  ctx.fillText(spec.title || "", pad.left, 16);
  if (!points.length) {
    ctx.fillStyle = "#777";
    ctx.fillText(spec.empty || "no data yet", pad.left + 10, Math.min(pad.top + h / 2, cssHeight - 8));
    return;
  }
  let [x0, x1] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
  if (spec.xMin !== undefined) x0 = Math.min(x0, spec.xMin);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const margin = (y1 - y0) * 0.06;
  y0 -= margin;
  y1 += margin;
  const px = (x) => pad.left + ((x - x0) / (x1 - x0)) * w;
  const py = (y) => pad.top + h - ((y - y0) / (y1 - y0)) * h;
  // grid and ticks
  ctx.strokeStyle = "#e3e3e8";
  ctx.fillStyle = "#555";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  const yTicks = spec.log
    ? cnn.niceTicks(Math.floor(y0), Math.ceil(y1), 5).filter((t) => t >= y0 && t <= y1 && Number.isInteger(t))
    : cnn.niceTicks(y0, y1, 5);
  for (const t of yTicks) {
    ctx.beginPath();
    ctx.moveTo(pad.left, py(t));
    ctx.lineTo(pad.left + w, py(t));
    ctx.stroke();
    ctx.fillText(spec.log ? "1e" + t : cnn.formatTick(t), pad.left - 6, py(t) + 4);
  }
  ctx.textAlign = "center";
  const xTicks = cnn.niceTicks(x0, x1, 6).filter((t) => !spec.integerX || Number.isInteger(t));
  for (const t of xTicks) {
    ctx.beginPath();
    ctx.moveTo(px(t), pad.top);
    ctx.lineTo(px(t), pad.top + h);
    ctx.stroke();
    ctx.fillText(cnn.formatTick(t), px(t), pad.top + h + 16);
  }
  ctx.fillText(spec.xLabel || "", pad.left + w / 2, cssHeight - 6);
  ctx.save();
  ctx.translate(14, pad.top + h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(spec.yLabel || "", 0, 0);
  ctx.restore();
  ctx.strokeStyle = "#999";
  ctx.strokeRect(pad.left, pad.top, w, h);
  const markers = [...(spec.markers || []), ...(spec.marker ? [spec.marker] : [])].filter((m) => m.x !== undefined && m.x !== null);
  markers.forEach((marker, i) => {
    const colour = marker.colour || "#2a9d4b";
    ctx.strokeStyle = colour;
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(px(marker.x), pad.top);
    ctx.lineTo(px(marker.x), pad.top + h);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = colour;
    const nearRight = px(marker.x) > pad.left + w * 0.75;
    ctx.textAlign = nearRight ? "right" : "left";
    const labelY = marker.top ? pad.top + 14 + 14 * (i % 2) : pad.top + h - 6 - 14 * (i % 3);
    ctx.fillText(marker.label || "", px(marker.x) + (nearRight ? -4 : 4), labelY);
  });
  canvas.dataset.markers = String(markers.length);
  // series
  let legendX = pad.left + w;
  ctx.textAlign = "right";
  for (const s of spec.series.slice().reverse()) {
    ctx.strokeStyle = s.colour;
    ctx.fillStyle = s.colour;
    ctx.lineWidth = s.faint ? 1 : 2;
    ctx.globalAlpha = s.faint ? 0.3 : 1;
    ctx.setLineDash(s.dashed ? [6, 4] : []);
    ctx.beginPath();
    let started = false;
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (y === null || y === undefined || !isFinite(y) || (spec.log && y <= 0)) {
        started = false;
        continue;
      }
      const [X, Y] = [px(s.xs[i]), py(transform(y))];
      if (started) ctx.lineTo(X, Y);
      else ctx.moveTo(X, Y);
      started = true;
    }
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
    if (s.faint) continue;
    if (s.xs.length <= 40) {
      for (let i = 0; i < s.xs.length; i++) {
        const y = s.ys[i];
        if (y === null || y === undefined || !isFinite(y) || (spec.log && y <= 0)) continue;
        ctx.beginPath();
        ctx.arc(px(s.xs[i]), py(transform(y)), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    if (!s.label) continue;
    const width = ctx.measureText(s.label).width;
    ctx.fillText(s.label, legendX, legendY);
    ctx.fillRect(legendX - width - 18, legendY - 6, 12, 3);
    legendX -= width + 30;
  }
  ctx.textAlign = "left";
};

cnn.percent = function (v) {
  return v === null || v === undefined ? "–" : (100 * v).toFixed(2) + "%";
};

cnn.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};
