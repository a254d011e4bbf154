// The draw pad: strokes on a canvas go to /api/analyze as a PNG; the answer is drawn as it comes back
// (draw-views.js). A click on a map asks /api/pixel for that pixel's arithmetic (inspect.js).
// Every answer belongs to one "generation" of the pad: Clear, an upload and a change of model start a new
// one, and an answer that comes back for an older one is dropped, so no old result outlives what it was for.
"use strict";

const pad = document.getElementById("pad");
const padCtx = pad.getContext("2d");
const state = { drawing: false, last: null, dirty: false, inFlight: false, blank: true, upload: null, generation: 0, result: null, spot: null, pixelBusy: false };
window.cnnStats = { updates: [], pixels: 0 }; // per update: server_ms and round_trip_ms (the latency tests read them)

function paintWhite() {
  padCtx.fillStyle = "#fff";
  padCtx.fillRect(0, 0, pad.width, pad.height);
}

function clearPad() {
  paintWhite();
  state.blank = true;
  state.upload = null;
}

// A new generation: answers still on their way are for something no longer on screen.
function newGeneration() {
  state.generation += 1;
  state.result = null;
  state.spot = null;
  views.showBlank();
  setMessage("");
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
  if (state.upload) clearPad(); // drawing over an uploaded picture starts from a white pad
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
  newGeneration();
});
for (const id of ["class", "target"]) document.getElementById(id).addEventListener("change", () => requestUpdate());
document.getElementById("model").addEventListener("change", () => {
  // Another model: another set of classes. The old answer and the chosen class go; the pad stays.
  document.getElementById("class").value = "";
  newGeneration();
  requestUpdate();
});
document.getElementById("scale").addEventListener("change", () => state.result && views.showResult(state.result));
document.getElementById("overlay").addEventListener("change", () => state.result && views.showSaliency(state.result));
document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  newGeneration();
  state.upload = file; // sent as it is; the pad shows it
  state.blank = false;
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => {
    URL.revokeObjectURL(url);
    if (state.upload !== file) return; // cleared or replaced meanwhile
    paintWhite();
    const scale = Math.min(pad.width / image.width, pad.height / image.height);
    padCtx.drawImage(image, (pad.width - image.width * scale) / 2, (pad.height - image.height * scale) / 2, image.width * scale, image.height * scale);
  };
  image.onerror = () => URL.revokeObjectURL(url);
  image.src = url;
  event.target.value = ""; // the same file chosen again is a new upload
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

// What a request says besides the image: the model, the explained class and the backprop target.
function queryParams() {
  const params = new URLSearchParams();
  const model = document.getElementById("model").value;
  const chosen = document.getElementById("class").value;
  if (model) params.set("model", model);
  if (chosen) params.set("class", chosen);
  params.set("target", document.getElementById("target").value);
  return params;
}

async function post(path, params, body) {
  const response = await fetch(path + "?" + params, { method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
  const result = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(result.error || response.statusText);
  return result;
}

// One update: the current pad (or the uploaded file, sent as it is) -> /api/analyze -> the page.
async function sendUpdate() {
  state.dirty = false;
  state.inFlight = true;
  const generation = state.generation;
  try {
    const body = state.upload || (await padBlob());
    const start = performance.now();
    const result = await post("/api/analyze", queryParams(), body);
    const roundTrip = performance.now() - start;
    if (generation !== state.generation || state.blank) return; // cleared, another model or upload meanwhile
    window.cnnStats.updates.push({ server_ms: result.server_ms, round_trip_ms: roundTrip });
    state.result = result;
    views.showResult(result, state.drawing);
    document.getElementById("latency").textContent = `update: ${result.server_ms.toFixed(1)} ms on the server, ${roundTrip.toFixed(1)} ms round trip`;
    setMessage(result.warning ? "warning: " + result.warning : "");
    if (state.spot && !state.dirty && !state.drawing) refreshSpot();
  } catch (error) {
    if (generation !== state.generation) return;
    state.result = null;
    views.showBlank(); // no old answer under a new model's name or a new class
    setMessage("error: " + error.message, true);
  } finally {
    state.inFlight = false;
    if (state.dirty) sendUpdate();
  }
}
window.cnnUpdate = sendUpdate;
window.cnnIdle = () => !state.inFlight && !state.dirty && !state.pixelBusy;

// A click on a map: enlarge it, and for a conv layer (or its activation) ask for the arithmetic.
views.onPick = function (spot) {
  const canvas = spot.canvas;
  const grid = canvas.mapGrid;
  const channel = spot.channel + (grid.channelOffset || 0);
  const value = canvas.id === "enlarged" ? spot.value : grid.values[(channel * grid.shape[1] + spot.y) * grid.shape[2] + spot.x];
  state.spot = { ...spot, channel, value, canvas: undefined, grid: canvas.id === "enlarged" ? state.spot.grid : { ...grid, canvasClass: canvas.className } };
  inspect.enlarge({ ...state.spot }, state.spot.grid);
  inspectSpot(state.spot);
};

// After a new answer: the same map of the new answer, enlarged again, and its arithmetic asked again.
function refreshSpot() {
  const old = state.spot.grid;
  const same = (c) => c.id !== "enlarged" && c.mapGrid && c.mapGrid.name === old.name && c.mapGrid.title === old.title && c.mapGrid.kind === old.kind && c.className === old.canvasClass;
  const canvas = [...document.querySelectorAll("canvas.map-grid")].find(same);
  if (!canvas) return;
  const [, h, w] = canvas.mapGrid.shape;
  const s = state.spot;
  state.spot = { ...s, grid: { ...canvas.mapGrid, canvasClass: canvas.className }, value: canvas.mapGrid.values[(s.channel * h + s.y) * w + s.x] };
  inspect.enlarge(state.spot, state.spot.grid);
  inspectSpot(state.spot);
}

async function inspectSpot(spot) {
  const holder = document.getElementById("arithmetic");
  document.getElementById("field").parentElement.hidden = !spot.grid.arith;
  if (!spot.grid.arith) {
    document.getElementById("inspector-title").textContent = "enlarged";
    holder.replaceChildren(cnn.el("p", { class: "caption", text: "Click a pixel of a conv layer's map (or of its ReLU's) for the arithmetic behind it." }));
    return;
  }
  const generation = state.generation;
  state.pixelBusy = true;
  try {
    const params = queryParams();
    for (const key of ["layer", "channel", "y", "x"]) params.set(key, String(spot[key]));
    const body = state.upload || (await padBlob());
    const answer = await post("/api/pixel", params, body);
    if (generation !== state.generation || state.spot !== spot) return;
    inspect.show(answer, state.result && state.result.input);
    window.cnnStats.pixels += 1;
  } catch (error) {
    if (generation === state.generation) holder.replaceChildren(cnn.el("p", { class: "message error", text: "error: " + error.message }));
  } finally {
    state.pixelBusy = false;
  }
}

function setMessage(text, isError) {
  const node = document.getElementById("message");
  node.textContent = text;
  node.classList.toggle("error", !!isError);
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

maps.attach(document.getElementById("saliency"), null, (spot) => views.onPick(spot));
maps.attach(document.getElementById("enlarged"), null, (spot, canvas) => views.onPick({ ...spot, canvas }));
clearPad();
loadModels();
