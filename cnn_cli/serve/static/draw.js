// The draw pad: strokes on a canvas go to /api/analyze as a PNG; the answer is drawn as it comes back.
"use strict";

const pad = document.getElementById("pad");
const padCtx = pad.getContext("2d");
const state = { drawing: false, last: null, dirty: false, inFlight: false, blank: true, upload: null };
window.cnnStats = { updates: [] }; // per update: server_ms and round_trip_ms (the latency tests read them)

function clearPad() {
  padCtx.fillStyle = "#fff";
  padCtx.fillRect(0, 0, pad.width, pad.height);
  state.blank = true;
  state.upload = null;
}

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return [((event.clientX - rect.left) / rect.width) * pad.width, ((event.clientY - rect.top) / rect.height) * pad.height];
}

function stroke(from, to) {
  padCtx.strokeStyle = "#000";
  padCtx.fillStyle = "#000";
  padCtx.lineCap = "round";
  padCtx.lineJoin = "round";
  padCtx.lineWidth = +document.getElementById("stroke").value;
  padCtx.beginPath();
  padCtx.moveTo(from[0], from[1]);
  padCtx.lineTo(to[0], to[1]);
  padCtx.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  if (state.upload) clearPad();
  pad.setPointerCapture(event.pointerId);
  state.drawing = true;
  state.last = padPoint(event);
  stroke(state.last, state.last);
  state.blank = false;
  requestUpdate();
});
pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const point = padPoint(e);
    stroke(state.last, point);
    state.last = point;
  }
  requestUpdate();
});
for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, () => {
    if (!state.drawing) return;
    state.drawing = false;
    requestUpdate();
  });
}

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  showBlank();
});
document.getElementById("class").addEventListener("change", () => requestUpdate());
document.getElementById("model").addEventListener("change", () => requestUpdate());
document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  state.upload = file;
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => {
    clearPad();
    state.upload = file;
    const scale = Math.min(pad.width / image.width, pad.height / image.height);
    padCtx.drawImage(image, (pad.width - image.width * scale) / 2, (pad.height - image.height * scale) / 2, image.width * scale, image.height * scale);
    URL.revokeObjectURL(url);
  };
  image.onerror = () => URL.revokeObjectURL(url);
  image.src = url;
  state.blank = false;
  requestUpdate();
});

function requestUpdate() {
  if (state.blank) return;
  state.dirty = true;
  if (!state.inFlight) sendUpdate();
}

function padBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

// One update: the current pad (or the uploaded file, sent as it is) -> /api/analyze -> the page.
async function sendUpdate() {
  state.dirty = false;
  state.inFlight = true;
  try {
    const body = state.upload || (await padBlob());
    const params = new URLSearchParams();
    const model = document.getElementById("model").value;
    const chosen = document.getElementById("class").value;
    if (model) params.set("model", model);
    if (chosen) params.set("class", chosen);
    const start = performance.now();
    const response = await fetch("/api/analyze?" + params, { method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
    const result = await response.json().catch(() => ({ error: response.statusText }));
    const roundTrip = performance.now() - start;
    if (!response.ok) throw new Error(result.error || response.statusText);
    window.cnnStats.updates.push({ server_ms: result.server_ms, round_trip_ms: roundTrip });
    showResult(result);
    document.getElementById("latency").textContent = `update: ${result.server_ms.toFixed(1)} ms on the server, ${roundTrip.toFixed(1)} ms round trip`;
    setMessage(result.warning ? "warning: " + result.warning : "");
  } catch (error) {
    setMessage("error: " + error.message, true);
  } finally {
    state.inFlight = false;
    if (state.dirty) sendUpdate();
  }
}
window.cnnUpdate = sendUpdate;
window.cnnIdle = () => !state.inFlight && !state.dirty;

function setMessage(text, isError) {
  const node = document.getElementById("message");
  node.textContent = text;
  node.classList.toggle("error", !!isError);
}

function showBlank() {
  document.getElementById("prediction").textContent = "–";
  document.getElementById("prediction").dataset.digit = "";
  document.getElementById("confidence").textContent = "";
  setMessage("");
}

function showResult(result) {
  cnn.drawArray(document.getElementById("input"), result.input, cnn.inkColour);
  const prediction = document.getElementById("prediction");
  prediction.textContent = result.prediction;
  prediction.dataset.digit = result.prediction;
  prediction.classList.toggle("named", result.prediction.length > 2); // a class name, not a digit: smaller type
  const top = result.probabilities[result.prediction_index];
  document.getElementById("confidence").textContent = `p = ${(100 * top).toFixed(1)}%`;
  document.getElementById("explained").textContent = result.explained;

  const classSelect = document.getElementById("class");
  const options = Array.from(classSelect.options).slice(1).map((option) => option.text);
  if (options.join("\n") !== result.classes.join("\n")) {
    const chosen = classSelect.value;
    classSelect.replaceChildren(cnn.el("option", { value: "", text: "predicted" }));
    result.classes.forEach((name, i) => classSelect.append(cnn.el("option", { value: String(i), text: name })));
    classSelect.value = chosen;
  }

  const bars = document.getElementById("probabilities");
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

  cnn.drawArray(document.getElementById("saliency"), result.saliency, cnn.signedColour);

  const maps = document.getElementById("feature-maps");
  maps.replaceChildren();
  for (const layer of result.feature_maps) {
    const [c, h, w] = layer.shape;
    const shown = layer.maps.shape[0];
    const canvas = cnn.el("canvas", { class: "feature-map", "data-layer": layer.layer });
    cnn.drawGrid(canvas, layer.maps, h * w > 1 ? 60 : 14);
    const note = `${layer.layer}: ${c}×${h}×${w}` + (shown < c ? `, first ${shown}` : "") + (layer.next ? ` → ${layer.next}` : "");
    maps.append(cnn.el("figure", {}, canvas, cnn.el("figcaption", { text: note })));
  }

  const gradients = document.getElementById("layer-gradients");
  gradients.replaceChildren();
  for (const layer of result.layer_gradients) {
    if (!layer.map) continue;
    const canvas = cnn.el("canvas", { width: 112, height: 112, class: "grad-map", "data-layer": layer.layer });
    cnn.drawArray(canvas, layer.map, cnn.heatColour);
    gradients.append(cnn.el("figure", {}, canvas, cnn.el("figcaption", { text: `${layer.layer} (${layer.type}) ${layer.shape.join("×")}` })));
  }
  drawNorms(result);
}

// Bar chart: ||∂score/∂activation|| of every layer's output, input side first, log scale.
function drawNorms(result) {
  const canvas = document.getElementById("gradient-norms");
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
  ctx.fillText("‖∂score/∂output‖", 0, 0);
  ctx.restore();
  ctx.textAlign = "center";
  layers.forEach((layer, i) => {
    const x = pad.left + i * slot;
    if (logs[i] !== null) {
      const top = pad.top + h - ((logs[i] - low) / (high - low)) * h;
      ctx.fillStyle = layer.type === "conv2d" || layer.type === "dense" ? "#3b6fb6" : "#9db4d8";
      ctx.fillRect(x + slot * 0.15, top, slot * 0.7, pad.top + h - top);
    }
    ctx.fillStyle = "#333";
    ctx.fillText(layer.layer, x + slot / 2, height - 18);
    ctx.fillStyle = "#888";
    ctx.fillText(layer.type, x + slot / 2, height - 4);
  });
}

async function loadModels() {
  const select = document.getElementById("model");
  try {
    const info = await cnn.getJSON("/api/models");
    select.replaceChildren();
    for (const m of info.models) select.append(cnn.el("option", { value: m.id, text: m.label }));
    if (info.default) select.value = info.default;
    if (!info.models.length) setMessage("no trained model yet: run cnn train --config mnist, or start cnn serve --checkpoint FILE", true);
  } catch (error) {
    setMessage("error: " + error.message, true);
  }
}

clearPad();
loadModels();
