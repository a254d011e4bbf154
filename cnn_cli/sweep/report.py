"""A sweep's results: one row per trial, ranked; ``sweep.csv``, the printed table and ``sweep.png``."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_cli.bounded_read import RECORD_BYTES, read_text
from cnn_cli.runs.checkpoint import atomic_write
from cnn_cli.runs.folders import write_text

SWEEP_CSV = "sweep.csv"
SWEEP_PNG = "sweep.png"
# The numbers kept per trial: the best epoch's (the one best.npz holds) and the test split's.
METRIC_COLUMNS = ("val_acc", "val_loss", "train_acc", "train_loss", "test_accuracy", "test_loss", "best_epoch", "epochs")
COUNT_COLUMNS = ("best_epoch", "epochs")
STATUSES = ("completed", "failed", "interrupted", "pending")
TABLE_ROWS = 10


@dataclass
class TrialRow:
    """What the sweep knows about one trial."""

    number: int
    params: dict[str, Any]
    status: str = "pending"
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    attempts: int = 0
    worker: str = ""
    message: str = ""

    @property
    def name(self) -> str:
        return f"trial-{self.number:03d}"

    def score(self, metric: str) -> float | None:
        value = self.metrics.get(metric)
        return value if value is not None and math.isfinite(value) else None


def trial_metrics(metric_rows: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, float]:
    """A trial's numbers: its best epoch's row of metrics.csv (the last row if none is marked) plus the test result."""
    if not metric_rows:
        return {}
    best_epoch = summary.get("best_epoch")
    row = next((r for r in metric_rows if r["epoch"] == best_epoch), metric_rows[-1])
    out = {k: float(row[k]) for k in ("val_acc", "val_loss", "train_acc", "train_loss")}
    out["best_epoch"] = float(row["epoch"])
    out["epochs"] = float(metric_rows[-1]["epoch"])
    for key in ("test_accuracy", "test_loss"):
        if key in summary:
            out[key] = float(summary[key])
    return out


def ranked(rows: list[TrialRow], metric: str, mode: str) -> list[TrialRow]:
    """Best first: trials with the metric by it, then the rest by status and number."""
    scored = [r for r in rows if r.score(metric) is not None]
    scored.sort(key=lambda r: (-(r.score(metric) or 0.0) if mode == "max" else (r.score(metric) or 0.0), r.number))
    rest = sorted((r for r in rows if r.score(metric) is None), key=lambda r: (STATUSES.index(r.status), r.number))
    return scored + rest


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _metric_value(key: str, value: float | None) -> float | int | None:
    return int(value) if value is not None and key in COUNT_COLUMNS else value


def write_sweep_csv(path: Path, rows: list[TrialRow], parameters: list[str]) -> None:
    """Rewrite sweep.csv atomically: one row per trial in trial order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", *parameters, "status", *METRIC_COLUMNS, "seconds", "attempts", "worker", "message"])
    for r in sorted(rows, key=lambda r: r.number):
        writer.writerow(
            [
                r.name,
                *(json.dumps(r.params[p]) for p in parameters),
                r.status,
                *(_cell(_metric_value(k, r.metrics.get(k))) for k in METRIC_COLUMNS),
                _cell(r.seconds),
                r.attempts,
                r.worker,
                r.message,
            ]
        )
    write_text(path, buffer.getvalue())


def read_sweep_csv(path: Path, parameters: list[str]) -> dict[int, TrialRow]:
    """sweep.csv back as rows by trial number (what ``--resume`` starts from)."""
    if not path.exists():
        return {}
    records = list(csv.DictReader(io.StringIO(read_text(path, RECORD_BYTES, "sweep record"), newline="")))
    rows = {}
    for rec in records:
        number = int(rec["trial"].removeprefix("trial-"))
        rows[number] = TrialRow(
            number=number,
            params={p: json.loads(rec[p]) for p in parameters},
            status=rec["status"],
            metrics={k: float(rec[k]) for k in METRIC_COLUMNS if rec.get(k)},
            seconds=float(rec["seconds"]) if rec.get("seconds") else None,
            attempts=int(rec.get("attempts") or 0),
            worker=rec.get("worker", ""),
            message=rec.get("message", ""),
        )
    return rows


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if not isinstance(value, str) else value


def format_table(rows: list[TrialRow], parameters: list[str], metric: str, mode: str, limit: int | None = TABLE_ROWS) -> str:
    """The trials as a text table, best first (at most ``limit`` rows, then a count of the rest)."""
    order = [r for r in ranked(rows, metric, mode) if r.status != "pending"]
    shown = order if limit is None else order[:limit]
    header = ["rank", "trial", *parameters, metric, "status", "seconds"]
    body = []
    for rank, r in enumerate(shown, start=1):
        score = r.score(metric)
        body.append(
            [
                str(rank),
                r.name,
                *(_short(r.params[p]) for p in parameters),
                "" if score is None else f"{score:.4f}",
                r.status,
                "" if r.seconds is None else f"{r.seconds:.1f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    if len(order) > len(shown):
        lines.append(f"... {len(order) - len(shown)} more in {SWEEP_CSV}")
    return "\n".join(line.rstrip() for line in lines)


def plot_sweep(path: Path, rows: list[TrialRow], parameters: list[str], metric: str, mode: str, title: str = "") -> Path:
    """sweep.png: the metric against each swept parameter, one panel each; the best trial is a red star.

    Numbers that span more than a factor of 10 (learning rates) get a log axis;
    other values (strings, lists) are placed at evenly spaced ticks.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = [r for r in rows if r.score(metric) is not None]
    best = ranked(done, metric, mode)[0] if done else None
    cols = min(len(parameters), 3)
    grid_rows = math.ceil(len(parameters) / cols)
    fig = Figure(figsize=(5.0 * cols, 4.0 * grid_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for i, param in enumerate(parameters):
        ax = fig.add_subplot(grid_rows, cols, i + 1)
        values = [r.params[param] for r in done]
        numeric = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            xs = [float(v) for v in values]
            if min(xs) > 0 and max(xs) / min(xs) > 10:
                ax.set_xscale("log")
        else:
            labels = sorted({json.dumps(v) for v in values})
            xs = [float(labels.index(json.dumps(v))) for v in values]
            ax.set_xticks(range(len(labels)), [label.strip('"') for label in labels])
        ys = [r.score(metric) or 0.0 for r in done]
        ax.scatter(xs, ys, s=36, color="tab:blue", zorder=2, label="trial")
        if best is not None:
            k = done.index(best)
            ax.scatter([xs[k]], [ys[k]], s=220, marker="*", color="tab:red", zorder=3, label=f"best: {best.name}")
            ax.legend(loc="best", fontsize=9)
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    failed = sum(r.status == "failed" for r in rows)
    fig.suptitle(f"{title}: {metric} ({'higher' if mode == 'max' else 'lower'} is better)" + (f"; {failed} failed" if failed else ""))
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    return path
