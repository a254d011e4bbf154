// One run's page: per-step and per-epoch curves, the learning rate, gradient flow, confusion matrix,
// mistakes, config. Polls for new rows (no reload); each poll starts after the previous one answered.
"use strict";

const runName = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const apiBase = "/api/runs/" + encodeURIComponent(runName);
const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const POLL_MS = 700;
const MAX_LR_MARKERS = 12; // a step schedule's few changes are marked; a cosine's change at every step is not
let lastStamp = null;
let lastBest = null;
let detail = null;
let evaluating = false;

document.getElementById("run-name").textContent = runName;
document.title = "cnn · " + runName;
document.getElementById("metrics-csv").href = apiBase + "/metrics.csv";
document.getElementById("steps-csv").href = apiBase + "/steps.csv";

function facts(run) {
  const items = [
    ["status", run.status],
    ["config", run.config],
    ["epochs", run.epochs_planned ? `${run.epochs} / ${run.epochs_planned}` : String(run.epochs)],
    ["best val. acc.", cnn.percent(run.best_val_acc)],
    ["test acc.", cnn.percent(run.test_acc)],
    ["started", run.started.replace("T", " ")],
    ["ended", (run.ended || "–").replace("T", " ")],
  ];
  const box = document.getElementById("facts");
  box.replaceChildren();
  for (const [label, value] of items) {
    box.append(cnn.el("div", { class: "fact" }, cnn.el("span", { class: "label", text: label }), cnn.el("span", { class: "value" + (label === "status" ? " status " + value : ""), text: value })));
  }
}

function liveness(run) {
  const message = document.getElementById("message");
  if (run.status === "stopped") {
    const record = run.run || {};
    const pid = record.pid ? ` (PID ${record.pid})` : "";
    const folder = record.run_dir || "<this run's folder>";
    message.textContent = `run.json says running, but its training process${pid} is gone: killed or crashed. Resume with: cnn train --resume ${folder}`;
  } else {
    message.textContent = "";
  }
}

// The epochs at which the learning rate changed, as chart markers (none when it changes at nearly every step).
function lrChanges(xs, lrs) {
  const changes = [];
  for (let i = 1; i < lrs.length; i++) {
    if (lrs[i] !== null && lrs[i - 1] !== null && Math.abs(lrs[i] - lrs[i - 1]) > 1e-12 * Math.abs(lrs[i - 1])) {
      changes.push({ x: xs[i], label: "lr → " + lrs[i].toExponential(1), colour: "#9467bd", top: true });
    }
  }
  return changes.length <= MAX_LR_MARKERS ? changes : [];
}

function stepCurves(run) {
  const steps = run.steps;
  const note = document.getElementById("step-note");
  const weight = Number(document.getElementById("smoothing").value);
  const log = document.getElementById("step-log").checked;
  document.getElementById("smoothing-value").textContent = weight.toFixed(2);
  cnn.lineChart(document.getElementById("step-chart"), {
    title: "Training loss per step",
    xLabel: "step",
    yLabel: log ? "loss (log)" : "loss",
    log,
    empty: steps.present ? "no logged step yet" : "no steps.csv in this run",
    series: [
      { label: "smoothed", colour: palette[0], xs: steps.step, ys: cnn.smooth(steps.loss, weight) },
      { label: "", colour: palette[0], xs: steps.step, ys: steps.loss, faint: true },
      { label: "epoch mean so far", colour: palette[1], xs: steps.step, ys: steps.epoch_loss, dashed: true },
    ],
    markers: lrChanges(steps.step, steps.lr),
  });
  note.textContent = steps.present
    ? `${steps.step.length} logged steps (every train.log_every steps and at each epoch's end)`
    : "This run has no steps.csv: it was trained by an older version. The curves per epoch below are from metrics.csv.";
}

function learningRate(run) {
  const steps = run.steps;
  const fromSteps = steps.present && steps.step.length > 0;
  cnn.lineChart(document.getElementById("lr-chart"), {
    title: fromSteps ? "lr per logged step" : "lr per epoch",
    xLabel: fromSteps ? "step" : "epoch",
    yLabel: "learning rate",
    log: true,
    empty: "no learning rate logged yet",
    series: [
      fromSteps
        ? { label: "lr", colour: "#9467bd", xs: steps.step, ys: steps.lr }
        : { label: "lr", colour: "#9467bd", xs: run.metrics.map((r) => r.epoch), ys: run.metrics.map((r) => r.lr) },
    ],
  });
}

function curves(run) {
  const rows = run.metrics;
  const epochs = rows.map((r) => r.epoch);
  const best = run.summary && run.summary.best_epoch ? { x: run.summary.best_epoch, label: "best epoch" } : null;
  // One chart per metric: canvas, title, y label, and the metrics.csv columns train_<key>, val_<key>.
  for (const [id, title, yLabel, key] of [
    ["loss-chart", "Loss per epoch", "loss", "loss"],
    ["acc-chart", "Accuracy per epoch", "accuracy", "acc"],
  ]) {
    cnn.lineChart(document.getElementById(id), {
      title,
      xLabel: "epoch",
      yLabel,
      integerX: true,
      xMin: 0,
      empty: "no finished epoch yet",
      series: [
        { label: "train", colour: palette[0], xs: epochs, ys: rows.map((r) => r[`train_${key}`]) },
        { label: "validation", colour: palette[1], xs: epochs, ys: rows.map((r) => r[`val_${key}`]), dashed: true },
      ],
      marker: best,
    });
  }
}

function gradientFlow(run) {
  const g = run.gradients;
  const canvas = document.getElementById("gradient-chart");
  const note = document.getElementById("gradient-note");
  canvas.hidden = !g.present;
  if (!g.present) {
    if (!g.logged) note.textContent = "This run has no gradients.csv: it was trained without gradient logging (train.log_gradients: false).";
    else if (run.status === "running") note.textContent = "No gradients yet: gradients.csv is written at the end of each epoch.";
    else note.textContent = "This run has no gradients.csv.";
    return;
  }
  const weighted = g.layers.filter((l) => (l.weight_grad_norm || []).some((v) => v !== null));
  const shown = weighted.length ? weighted : g.layers;
  const key = weighted.length ? "weight_grad_norm" : "input_grad_norm";
  cnn.lineChart(canvas, {
    title: `${g.event} rows`,
    xLabel: "step",
    yLabel: weighted.length ? "‖∂L/∂weight‖ (log)" : "‖∂L/∂input‖ (log)",
    log: true,
    empty: "gradients.csv has no rows yet",
    series: shown.map((l, i) => ({ label: l.layer, colour: palette[i % palette.length], xs: l.step, ys: l[key] })),
  });
  const parts = [];
  for (const l of g.layers) {
    const dead = (l.dead_fraction || []).filter((v) => v !== null);
    const ratio = (l.update_ratio || []).filter((v) => v !== null);
    if (dead.length) parts.push(`${l.layer}: ${(100 * dead[dead.length - 1]).toFixed(1)}% dead`);
    if (ratio.length) parts.push(`${l.layer}: update ratio ${ratio[ratio.length - 1].toExponential(1)}`);
  }
  note.textContent = parts.length ? "latest row: " + parts.join(" · ") : "";
}

function confusion(result) {
  const canvas = document.getElementById("confusion");
  const ctx = canvas.getContext("2d");
  const k = result.classes.length;
  const matrix = result.confusion_matrix;
  // Class names longer than a digit or two do not fit beside a cell: number the classes, and name them in the note.
  const named = result.classes.some((name) => name.length > 2);
  const axisLabels = named ? result.classes.map((_, i) => String(i)) : result.classes;
  const pad = 44;
  const cell = Math.floor((canvas.width - pad - 8) / k);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  canvas.dataset.cells = String(k * k);
  for (let t = 0; t < k; t++) {
    const total = matrix[t].reduce((a, b) => a + b, 0) || 1;
    for (let p = 0; p < k; p++) {
      const fraction = Math.sqrt(matrix[t][p] / total);
      const x = pad + p * cell;
      const y = pad + t * cell;
      ctx.fillStyle = t === p ? `rgba(31,119,180,${0.12 + 0.88 * fraction})` : `rgba(214,39,40,${matrix[t][p] ? 0.1 + 0.9 * fraction : 0})`;
      ctx.fillRect(x, y, cell - 1, cell - 1);
      ctx.fillStyle = fraction > 0.6 ? "#fff" : "#222";
      if (matrix[t][p]) ctx.fillText(String(matrix[t][p]), x + cell / 2, y + cell / 2 + 4);
    }
    ctx.fillStyle = "#333";
    ctx.fillText(axisLabels[t], pad - 10, pad + t * cell + cell / 2 + 4);
    ctx.fillText(axisLabels[t], pad + t * cell + cell / 2, pad - 8);
  }
  ctx.fillStyle = "#666";
  ctx.fillText("predicted →", pad + (k * cell) / 2, 12);
  ctx.save();
  ctx.translate(10, pad + (k * cell) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText("true →", 0, 0);
  ctx.restore();
  const legend = named ? `; classes: ${result.classes.map((name, i) => `${i} ${name}`).join(", ")}` : "";
  document.getElementById("evaluation-note").textContent = `${result.checkpoint}: test accuracy ${cnn.percent(result.accuracy)} on ${result.n.toLocaleString()} images${legend}`;
}

function mistakes(result) {
  const box = document.getElementById("mistakes");
  box.replaceChildren();
  for (const m of result.mistakes) {
    const canvas = cnn.el("canvas", { width: 56, height: 56 });
    cnn.drawArray(canvas, m.image, cnn.inkColour);
    box.append(cnn.el("figure", {}, canvas, cnn.el("figcaption", { text: `${m.true} → ${m.predicted} (${(100 * m.probability).toFixed(1)}%)` })));
  }
  if (!result.mistakes.length) box.textContent = "no mistakes on the test split";
}

// One evaluation at a time: a best.npz saved again while one runs is evaluated once that one has answered.
async function refreshEvaluation() {
  if (evaluating) return;
  evaluating = true;
  const note = document.getElementById("evaluation-note");
  const wanted = lastBest;
  try {
    note.textContent = "evaluating the best checkpoint on the test split…";
    const result = await cnn.getJSON(apiBase + "/evaluation");
    confusion(result);
    mistakes(result);
  } catch (error) {
    note.textContent = error.message;
  } finally {
    evaluating = false;
  }
  if (lastBest !== wanted) refreshEvaluation();
}

function draw(run) {
  facts(run);
  liveness(run);
  stepCurves(run);
  curves(run);
  learningRate(run);
  gradientFlow(run);
}

async function refresh() {
  try {
    const run = await cnn.getJSON(apiBase + (lastStamp ? "?since=" + encodeURIComponent(lastStamp) : ""));
    if (!run.unchanged && run.stamp !== lastStamp) {
      lastStamp = run.stamp;
      detail = run;
      draw(run);
      document.getElementById("config").textContent = run.config_text || "(no config.yaml)";
      const best = run.checkpoint_stamp;
      if (best !== lastBest) {
        lastBest = best;
        if (run.has_checkpoint) refreshEvaluation();
        else document.getElementById("evaluation-note").textContent = "no best checkpoint yet";
      }
    }
    if (detail) liveness(detail); // also clears the message of an earlier failed poll
  } catch (error) {
    document.getElementById("message").textContent = "error: " + error.message;
  }
}

for (const id of ["smoothing", "step-log"]) document.getElementById(id).addEventListener("input", () => detail && stepCurves(detail));
window.addEventListener("resize", () => detail && draw(detail));
cnn.poll(refresh, POLL_MS);
