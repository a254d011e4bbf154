// The runs list, refreshed every 2 s.
"use strict";

async function refreshRuns() {
  try {
    const { runs } = await cnn.getJSON("/api/runs");
    const body = document.querySelector("#runs tbody");
    body.replaceChildren();
    for (const run of runs) {
      const link = cnn.el("a", { href: "/runs/" + encodeURIComponent(run.name), text: run.name });
      const epochs = run.epochs_planned ? `${run.epochs} / ${run.epochs_planned}` : String(run.epochs);
      const row = cnn.el(
        "tr",
        { "data-run": run.name },
        cnn.el("td", {}, link),
        cnn.el("td", {}, cnn.el("span", { class: "status " + run.status, text: run.status })),
        cnn.el("td", { text: run.config }),
        cnn.el("td", { text: epochs }),
        cnn.el("td", { text: cnn.percent(run.best_val_acc) }),
        cnn.el("td", { text: cnn.percent(run.test_acc) }),
        cnn.el("td", { text: run.started.replace("T", " ") }),
      );
      body.append(row);
    }
    document.getElementById("message").textContent = runs.length ? "" : "no runs yet: cnn train --config smoke";
  } catch (error) {
    document.getElementById("message").textContent = "error: " + error.message;
  }
}

refreshRuns();
setInterval(refreshRuns, 2000);
