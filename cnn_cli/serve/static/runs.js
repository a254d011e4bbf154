// The runs list, polled (each poll starts 2 s after the previous answer), and an overlay of the ticked runs.
"use strict";

const POLL_MS = 2000;
const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const chosen = new Set(new URLSearchParams(location.search).getAll("run"));
let listStamp = null;
let compared = null;

function row(run) {
  const box = cnn.el("input", { type: "checkbox", "aria-label": "overlay " + run.name });
  box.checked = chosen.has(run.name);
  box.addEventListener("change", () => {
    if (box.checked) chosen.add(run.name);
    else chosen.delete(run.name);
    refreshComparison();
  });
  const link = cnn.el("a", { href: "/runs/" + encodeURIComponent(run.name), text: run.name });
  const epochs = run.epochs_planned ? `${run.epochs} / ${run.epochs_planned}` : String(run.epochs);
  return cnn.el(
    "tr",
    { "data-run": run.name },
    cnn.el("td", { class: "pick" }, box),
    cnn.el("td", { class: "name" }, link),
    cnn.el("td", {}, cnn.el("span", { class: "status " + run.status, text: run.status })),
    cnn.el("td", { class: "optional", text: run.config }),
    cnn.el("td", { text: epochs }),
    cnn.el("td", { text: cnn.percent(run.best_val_acc) }),
    cnn.el("td", { class: "optional", text: cnn.percent(run.test_acc) }),
    cnn.el("td", { class: "optional", text: run.started.replace("T", " ") }),
  );
}

async function refreshRuns() {
  try {
    const answer = await cnn.getJSON("/api/runs" + (listStamp ? "?since=" + encodeURIComponent(listStamp) : ""));
    if (!answer.unchanged) {
      listStamp = answer.stamp;
      document.querySelector("#runs tbody").replaceChildren(...answer.runs.map(row));
      document.getElementById("message").textContent = answer.runs.length ? "" : "no runs yet: cnn train --config smoke";
      if (chosen.size) await refreshComparison();
    } else {
      document.getElementById("message").textContent = document.querySelector("#runs tbody").children.length ? "" : "no runs yet: cnn train --config smoke";
    }
  } catch (error) {
    document.getElementById("message").textContent = "error: " + error.message;
  }
}

function drawComparison() {
  const weight = Number(document.getElementById("smoothing").value);
  document.getElementById("smoothing-value").textContent = weight.toFixed(2);
  const runs = compared.runs;
  cnn.lineChart(document.getElementById("compare-steps"), {
    title: "Training loss per step (smoothed)",
    xLabel: "step",
    yLabel: "loss",
    empty: "none of these runs has a steps.csv",
    series: runs.map((run, i) => ({ label: "", colour: palette[i % palette.length], xs: run.steps.step, ys: cnn.smooth(run.steps.loss, weight) })),
  });
  cnn.lineChart(document.getElementById("compare-val"), {
    title: "Validation accuracy per epoch",
    xLabel: "epoch",
    yLabel: "accuracy",
    integerX: true,
    xMin: 0,
    empty: "no finished epoch yet",
    series: runs.map((run, i) => ({ label: "", colour: palette[i % palette.length], xs: run.metrics.map((r) => r.epoch), ys: run.metrics.map((r) => r.val_acc) })),
  });
}

function drawLegendAndConfig() {
  const runs = compared.runs;
  document.getElementById("compare-legend").replaceChildren(
    ...runs.map((run, i) => cnn.el("span", { class: "key" }, cnn.el("span", { class: "swatch swatch-" + (i % palette.length) }), `${run.name} (${run.status})`)),
  );
  const table = document.getElementById("compare-config");
  const head = cnn.el("tr", {}, cnn.el("th", { text: "key" }), ...runs.map((run) => cnn.el("th", { text: run.name })));
  const body = compared.differing.map((d) => cnn.el("tr", {}, cnn.el("td", { text: d.key }), ...d.values.map((v) => cnn.el("td", { text: v === null || v === undefined ? "–" : JSON.stringify(v) }))));
  const sameText = runs.length > 1 ? "the configs are the same" : "tick another run to see what differs";
  const none = cnn.el("tr", {}, cnn.el("td", { colspan: String(runs.length + 1), text: sameText }));
  table.replaceChildren(head, ...(body.length ? body : [none]));
}

async function refreshComparison() {
  const section = document.getElementById("compare");
  const names = [...chosen];
  history.replaceState(null, "", names.length ? "?" + names.map((n) => "run=" + encodeURIComponent(n)).join("&") : location.pathname);
  section.hidden = names.length === 0;
  if (!names.length) return;
  try {
    compared = await cnn.getJSON("/api/compare?" + names.map((n) => "run=" + encodeURIComponent(n)).join("&"));
    drawLegendAndConfig();
    drawComparison();
  } catch (error) {
    document.getElementById("message").textContent = "error: " + error.message;
  }
}

document.getElementById("smoothing").addEventListener("input", () => compared && drawComparison());
window.addEventListener("resize", () => compared && drawComparison());
cnn.poll(refreshRuns, POLL_MS);
