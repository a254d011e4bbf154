// What the draw page shows of one answer of /api/analyze and /api/pixel: the prediction, the saliency,
// every layer forward and backward, the weights, and one pixel's arithmetic. draw.js decides when.
"use strict";

const views = { onPick: null }; // onPick(spot): a map pixel was clicked (draw.js asks /api/pixel)
const pick = (spot) => views.onPick && views.onPick(spot);

const $ = (id) => document.getElementById(id);
const scaleMode = () => $("scale").value;
const targetName = (result) => (result.target === "loss" ? "loss" : "score");

views.showBlank = function () {
  $("prediction").textContent = "–";
  $("prediction").dataset.digit = "";
  $("confidence").textContent = "";
  $("explained").textContent = "–";
  for (const id of ["probabilities", "logits", "layers-forward", "layer-gradients", "layers-backward", "weights", "saliency-legend", "grad-legend", "arithmetic"]) {
    $(id).replaceChildren();
  }
  for (const id of ["input", "saliency", "gradient-norms"]) {
    const canvas = $(id);
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    delete canvas.dataset.points;
  }
  $("inspector-card").hidden = true;
  $("latency").textContent = "";
};

// light: while a stroke is being drawn, only the answer and the saliency (every layer follows when the stroke ends).
views.showResult = function (result, light) {
  cnn.drawArray($("input"), result.input, cnn.inkColour);
  const prediction = $("prediction");
  prediction.textContent = result.prediction;
  prediction.dataset.digit = result.prediction;
  prediction.classList.toggle("named", result.prediction.length > 2); // a class name, not a digit: smaller type
  $("confidence").textContent = `p = ${(100 * result.probabilities[result.prediction_index]).toFixed(1)}%`;
  $("explained").textContent = result.explained;
  views.classOptions(result.classes);
  showProbabilities(result);
  showLogits(result);
  views.showSaliency(result);
  if (light) return;
  views.showLayers(result);
  showWeights(result);
};

// The class picker lists the model's classes; a choice the new model lacks falls back to "predicted".
views.classOptions = function (classes) {
  const select = $("class");
  const options = Array.from(select.options).slice(1).map((option) => option.text);
  if (options.join("\n") === classes.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(cnn.el("option", { value: "", text: "predicted" }));
  classes.forEach((name, i) => select.append(cnn.el("option", { value: String(i), text: name })));
  select.value = chosen !== "" && +chosen < classes.length ? chosen : "";
};

function showProbabilities(result) {
  const bars = $("probabilities");
  bars.replaceChildren();
  const longest = Math.max(...result.classes.map((name) => name.length));
  bars.style.setProperty("--label-width", longest > 2 ? `${longest * 0.6 + 0.5}em` : "18px");
  result.probabilities.forEach((p, i) => {
    const row = cnn.el("div", { class: "prob-row" + (i === result.prediction_index ? " top" : "") });
    const bar = cnn.el("div", { class: "bar" });
    bar.style.width = Math.max(0.5, 100 * p) + "%";
    row.append(cnn.el("span", { class: "label", text: result.classes[i] }), cnn.el("div", { class: "track" }, bar), cnn.el("span", { class: "value", text: (100 * p).toFixed(1) + "%" }));
    bars.append(row);
  });
}

function showLogits(result) {
  const table = $("logits");
  table.replaceChildren(cnn.el("tr", {}, cnn.el("th", { text: "class" }), cnn.el("th", { text: "logit z" }), cnn.el("th", { text: "p" })));
  result.logits.forEach((z, i) => {
    const row = cnn.el("tr", { "data-class": result.classes[i] });
    row.append(cnn.el("td", { text: result.classes[i] }), cnn.el("td", { text: maps.num(z), "data-value": String(z) }), cnn.el("td", { text: (100 * result.probabilities[i]).toFixed(1) + "%" }));
    table.append(row);
  });
}

views.showSaliency = function (result) {
  const values = maps.floats(result.saliency_values);
  const [h, w] = result.saliency_values.shape;
  const limit = Math.max(Math.abs(result.saliency_values.min), Math.abs(result.saliency_values.max)) || 1;
  const canvas = $("saliency");
  const ctx = canvas.getContext("2d");
  const zoom = Math.floor(canvas.width / w);
  const ink = cnn.bytes(result.input);
  const overlay = $("overlay").checked;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = values[y * w + x] / limit;
      let [r, g, b] = maps.colour("signed", t);
      if (overlay) {
        const grey = 255 - ink[y * w + x] * 0.85; // the input as dark ink on white, the saliency on top
        const a = Math.min(1, Math.abs(t) * 1.5);
        [r, g, b] = [r, g, b].map((c) => Math.round(a * c + (1 - a) * grey));
      }
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(x * zoom, y * zoom, zoom, zoom);
    }
  }
  canvas.mapGrid = { name: "saliency", title: "saliency ∂" + targetName(result) + "/∂pixel", values, shape: [1, h, w], cols: 1, zoom, gap: 0, kind: "signed", scale: "layer", limits: [limit], labels: () => "input" };
  canvas.dataset.overlay = String(overlay);
  maps.legend($("saliency-legend"), { kind: "signed", low: -limit, high: limit, note: "∂" + targetName(result) + "/∂pixel" });
  $("saliency-title").textContent = `∂ ${targetName(result)} / ∂ pixel`;
  const verb = result.target === "loss" ? "lowers the loss for" : "raises the score of";
  $("saliency-caption").replaceChildren(`red: more ink here ${verb} `, cnn.el("b", { id: "explained", text: result.explained }), "; blue the opposite. The model's own backward pass.");
};

const LAYER_NOTES = { relu: "ReLU", maxpool2d: "max-pool", avgpool2d: "average pool", conv2d: "conv, before its activation" };

views.showLayers = function (result) {
  const forward = $("layers-forward");
  const backward = $("layers-backward");
  forward.replaceChildren();
  backward.replaceChildren();
  const mode = scaleMode();
  let previous = null;
  for (const layer of result.layers) {
    // Pixels with arithmetic: a conv layer's, and those of the activation right after one (the same pixel, then the ReLU).
    const elementwise = previous !== null && previous.index === layer.index - 1 && previous.shape.join() === layer.shape.join() && !layer.type.includes("pool");
    const arith = layer.type === "conv2d" || (elementwise && previous.type === "conv2d");
    previous = layer;
    const [c, h, w] = layer.shape;
    const shown = layer.values.shape[0];
    const size = `${c}×${h}×${w}` + (shown < c ? `, first ${shown}` : "");
    const kind = LAYER_NOTES[layer.type] || layer.type;
    forward.append(maps.figure({ name: layer.layer, values: maps.floats(layer.values), shape: layer.values.shape, kind: "signed", scale: mode, cell: h * w > 1 ? 60 : 14, className: "feature-map", arith }, `${layer.layer} (${kind}): ${size}`, pick));
    if (layer.type === "relu") {
      const mask = maps.floats(layer.values).map((v) => (v > 0 ? 1 : 0));
      forward.append(maps.figure({ name: layer.layer, title: layer.layer + " mask", values: mask, shape: layer.values.shape, kind: "mask", lowLabel: "0 blocked", highLabel: "1 passed", cell: 60, className: "relu-mask" }, `${layer.layer} mask: dark where the unit passed its input (and its gradient)`, pick));
    }
    if (layer.winners) {
      forward.append(maps.figure({ name: layer.layer, title: layer.layer + " winners", values: maps.floats(layer.winners), shape: layer.winners.shape, kind: "mask", lowLabel: "0", highLabel: "1 won", cell: 60, className: "pool-winners" }, `${layer.layer} winners on ${layer.input_layer}: the input each window passed on`, pick));
    }
    backward.append(maps.figure({ name: layer.layer, title: `∂${targetName(result)}/∂${layer.layer}`, values: maps.floats(layer.grad), shape: layer.grad.shape, kind: "signed", scale: mode, cell: 60, className: "grad-channels", arith }, `∂${targetName(result)}/∂${layer.layer}: ${size}`, pick));
  }
  $("backward-title").textContent = `∂ ${targetName(result)} / ∂ activation` + (result.target === "loss" ? `, the loss with label ${result.explained} (p − y)` : `, the score of ${result.explained}`);
  showSensitivity(result);
  views.drawNorms(result);
};

// ‖∂/∂output‖ over channels for every spatial layer, on one log scale shared by all of them.
function showSensitivity(result) {
  const holder = $("layer-gradients");
  holder.replaceChildren();
  const spatial = result.layer_gradients.filter((l) => l.map_values);
  const logs = spatial.flatMap((l) => [l.map_values.min, l.map_values.max]).filter((v) => v > 0).map(Math.log10);
  if (!logs.length) return;
  const range = [Math.floor(Math.min(...logs) * 2) / 2, Math.ceil(Math.max(...logs) * 2) / 2];
  for (const layer of spatial) {
    const [h, w] = layer.map_values.shape;
    const spec = { name: layer.layer, title: `‖∂${targetName(result)}/∂${layer.layer}‖`, values: maps.floats(layer.map_values), shape: [1, h, w], kind: "log", logRange: range, cell: 112, className: "grad-map" };
    const canvas = maps.drawGrid(cnn.el("canvas", { class: "map-grid grad-map", "data-layer": layer.layer }), spec);
    maps.attach(canvas, null, pick);
    holder.append(cnn.el("figure", {}, canvas, cnn.el("figcaption", { text: `${layer.layer} (${layer.type}) ${layer.shape.join("×")}` })));
  }
  maps.legend($("grad-legend"), { kind: "log", low: range[0], high: range[1], note: "‖∂/∂output‖, the same scale for every layer" });
}

function showWeights(result) {
  const holder = $("weights");
  holder.replaceChildren();
  const mode = scaleMode();
  for (const conv of result.weights) {
    const [o, c] = conv.shape;
    const label = (i) => `w[${Math.floor(i / c)}, ${i % c}]`;
    const shown = conv.weight.shape[0] < o * c ? `, first ${conv.weight.shape[0]} of ${o * c}` : "";
    holder.append(maps.figure({ name: conv.layer, title: conv.layer + ".weight", values: maps.floats(conv.weight), shape: conv.weight.shape, kind: "signed", scale: mode, cell: 36, labels: label, className: "weights" }, `${conv.layer}.weight ${conv.shape.join("×")}${shown}`, pick));
    holder.append(maps.figure({ name: conv.layer, title: `∂${targetName(result)}/∂${conv.layer}.weight`, values: maps.floats(conv.grad), shape: conv.grad.shape, kind: "signed", scale: mode, cell: 36, labels: label, className: "weight-grads" }, `∂${targetName(result)}/∂${conv.layer}.weight`, pick));
  }
}

// Bar chart: ‖∂target/∂activation‖ of every layer's output, input side first, log scale.
views.drawNorms = function (result) {
  const canvas = $("gradient-norms");
  const { ctx, width, height } = cnn.chartContext(canvas, 600, 200);
  const layers = result.layer_gradients;
  const logs = layers.map((l) => (l.norm > 0 ? Math.log10(l.norm) : null));
  const valid = logs.filter((v) => v !== null);
  canvas.dataset.points = String(valid.length);
  if (!valid.length) return;
  const low = Math.floor(Math.min(...valid)) - 0.5;
  const high = Math.ceil(Math.max(...valid));
  const pad = { left: 58, right: 10, top: 16, bottom: 34 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const slot = w / layers.length;
  ctx.fillStyle = "#555";
  ctx.textAlign = "right";
  for (let t = Math.ceil(low); t <= high; t++) {
    const y = pad.top + h - ((t - low) / (high - low)) * h;
    ctx.strokeStyle = "#e3e3e8";
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(pad.left + w, y);
    ctx.stroke();
    ctx.fillText("1e" + t, pad.left - 6, y + 4);
  }
  ctx.save();
  ctx.translate(14, pad.top + h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(`‖∂${targetName(result)}/∂output‖`, 0, 0);
  ctx.restore();
  ctx.textAlign = "center";
  const labelEvery = Math.ceil((layers.length * 56) / w); // on a phone, every other name
  layers.forEach((layer, i) => {
    const x = pad.left + i * slot;
    if (logs[i] !== null) {
      const top = pad.top + h - ((logs[i] - low) / (high - low)) * h;
      ctx.fillStyle = layer.type === "conv2d" || layer.type === "dense" ? "#3b6fb6" : "#9db4d8";
      ctx.fillRect(x + slot * 0.15, top, slot * 0.7, pad.top + h - top);
    }
    if (i % labelEvery) return;
    ctx.fillStyle = "#333";
    ctx.fillText(layer.layer, x + slot / 2, height - 18);
    ctx.fillStyle = "#888";
    ctx.fillText(layer.type, x + slot / 2, height - 4);
  });
};
