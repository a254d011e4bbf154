"""Reading run folders for the browser, safely: a name never leaves the runs folder, a half-written file never raises.

Every reader here returns what it can: a run still training may have no
metrics yet, a ``gradients.csv`` whose last row is being appended, or a
``run.json`` from an older version. Nothing here writes a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import CONFIG_FILE, LATEST_LINK, METRIC_COLUMNS, RunPaths, read_metrics

GRADIENTS_FILE = "gradients.csv"  # the agreed name (RunPaths.gradients where present)
GRADIENT_NUMBERS = ("weight_grad_norm", "bias_grad_norm", "input_grad_norm", "update_ratio", "dead_fraction")
MAX_GRADIENT_POINTS = 400  # per layer and series; a long run is thinned evenly for the chart
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,199}")
MAX_TEXT_BYTES = 4 << 20  # a run's text records are small; a bigger file is shown as missing


def run_paths(runs_root: Path, name: str) -> RunPaths | None:
    """The run folder ``name`` directly inside ``runs_root``, or None.

    None for anything that is not a plain folder name (``..``, ``/``, a leading
    dot, encoded separators once decoded) and for a symlink whose target lies
    outside the runs folder. ``latest`` (a link to a run inside) is allowed.
    """
    if not RUN_NAME.fullmatch(name) or ".." in name:
        return None
    root = runs_root.resolve()
    candidate = root / name
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if resolved.parent != root or not resolved.is_dir():
        return None
    return RunPaths(candidate)


def run_file(paths: RunPaths, path: Path) -> Path | None:
    """``path`` if it is a regular file that resolves inside the run folder (no symlink out), else None."""
    try:
        resolved = path.resolve(strict=True)
        inside = resolved.is_relative_to(paths.root.resolve(strict=True))
    except (OSError, RuntimeError):
        return None
    return resolved if inside and resolved.is_file() else None


def _read_text(paths: RunPaths, path: Path) -> str | None:
    safe = run_file(paths, path)
    if safe is None:
        return None
    try:
        with safe.open("rb") as handle:
            data = handle.read(MAX_TEXT_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_TEXT_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


def _read_json(paths: RunPaths, path: Path) -> dict[str, Any]:
    text = _read_text(paths, path)
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def metrics_rows(paths: RunPaths) -> list[dict[str, Any]]:
    """metrics.csv as ``cnn_cli.runs.folders.read_metrics`` reads it; rows it cannot parse (a half-written one) are dropped."""
    safe = run_file(paths, paths.metrics)
    if safe is None:
        return []
    try:
        rows = read_metrics(safe)
    except (CnnError, ValueError, KeyError, TypeError, csv.Error, OSError, UnicodeDecodeError):  # half-written: read what parses
        rows = _tolerant_metrics(paths)
    return [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in row.items()} for row in rows]


def _tolerant_metrics(paths: RunPaths) -> list[dict[str, Any]]:
    text = _read_text(paths, paths.metrics) or ""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({k: (int(row[k]) if k in ("epoch", "step") else float(row[k])) for k in METRIC_COLUMNS})
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def gradient_series(paths: RunPaths) -> dict[str, Any]:
    """gradients.csv (when the run has one) as per-layer series for the gradient-flow chart.

    Returns:
        ``{"present": bool, "event": "step"|"epoch", "layers": [{"layer", "type", "step": [...],
        "weight_grad_norm": [...], ...}]}``, layers in model order, at most
        :data:`MAX_GRADIENT_POINTS` points each; rows that do not parse are skipped.
    """
    text = _read_text(paths, paths.root / GRADIENTS_FILE)
    if text is None:
        return {"present": False, "event": "step", "layers": []}
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the last line is still being written
    rows = list(csv.DictReader(io.StringIO(text)))
    events = {row.get("event") for row in rows}
    event = "step" if "step" in events else "epoch"
    layers: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("event") != event or not row.get("layer"):
            continue
        step = _number(row.get("step"))
        if step is None:
            continue
        series = layers.setdefault(row["layer"], {"layer": row["layer"], "type": row.get("type") or "", "step": [], "epoch": []})
        series["step"].append(int(step))
        series["epoch"].append(_number(row.get("epoch")))
        for key in GRADIENT_NUMBERS:
            series.setdefault(key, []).append(_number(row.get(key)))
    result = []
    for series in layers.values():
        count = len(series["step"])
        if count > MAX_GRADIENT_POINTS:
            keep = np.unique(np.linspace(0, count - 1, MAX_GRADIENT_POINTS).round().astype(int))
            series = {k: ([v[i] for i in keep] if isinstance(v, list) else v) for k, v in series.items()}
        result.append(series)
    return {"present": True, "event": event, "layers": result}


def _config_name(paths: RunPaths) -> tuple[str, str]:
    """(config name, config YAML text); empty strings when config.yaml is missing or unreadable."""
    text = _read_text(paths, paths.config)
    if text is None:
        return "", ""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "", text
    name = str(data.get("name", "")) if isinstance(data, dict) else ""
    return name, text


def _epochs_planned(config_text: str) -> int | None:
    try:
        data = yaml.safe_load(config_text)
        epochs = data["train"]["epochs"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    return epochs if isinstance(epochs, int) else None


def run_summary(paths: RunPaths, name: str) -> dict[str, Any]:
    """One row of the runs list: name, status, config, epochs, best validation and test accuracy, date."""
    info = _read_json(paths, paths.run_info)
    summary = _read_json(paths, paths.summary)
    config_name, config_text = _config_name(paths)
    rows = metrics_rows(paths)
    val = [row["val_acc"] for row in rows if row.get("val_acc") is not None]
    best_val = summary.get("best_val_accuracy")
    return {
        "name": name,
        "status": str(info.get("status", "unknown")),
        "config": config_name,
        "epochs": len(rows),
        "epochs_planned": _epochs_planned(config_text),
        "best_val_acc": best_val if isinstance(best_val, int | float) and best_val >= 0 else (max(val) if val else None),
        "test_acc": summary.get("test_accuracy") if isinstance(summary.get("test_accuracy"), int | float) else None,
        "started": str(info.get("started") or ""),
        "ended": str(info.get("ended") or ""),
        "has_checkpoint": run_file(paths, paths.best) is not None,
    }


def list_runs(runs_root: Path) -> list[dict[str, Any]]:
    """Every run folder inside ``runs_root``, newest first (by start time, then name); ``latest`` is not listed twice."""
    if not runs_root.is_dir():
        return []
    runs = []
    for entry in runs_root.iterdir():
        if entry.name == LATEST_LINK or entry.name.startswith("."):
            continue
        paths = run_paths(runs_root, entry.name)
        if paths is None or not ((paths.root / CONFIG_FILE).exists() or paths.run_info.exists()):
            continue
        runs.append(run_summary(paths, entry.name))
    return sorted(runs, key=lambda r: (r["started"], r["name"]), reverse=True)


def newest_completed_run(runs_root: Path) -> str | None:
    """The newest run with ``checkpoints/best.npz`` and status ``completed`` (the draw pad's default model)."""
    for run in list_runs(runs_root):
        if run["status"] == "completed" and run["has_checkpoint"]:
            return str(run["name"])
    return None


def _stat_text(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "-"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def file_stamp(paths: RunPaths) -> str:
    """Changes whenever metrics.csv, gradients.csv, run.json, summary.json or best.npz change (the page polls it)."""
    parts = [_stat_text(path) for path in (paths.metrics, paths.root / GRADIENTS_FILE, paths.run_info, paths.summary, paths.best)]
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


def run_detail(paths: RunPaths, name: str) -> dict[str, Any]:
    """Everything a run page shows except the test-split evaluation: summary row, curves, gradients, config, records."""
    _, config_text = _config_name(paths)
    return {
        **run_summary(paths, name),
        "stamp": file_stamp(paths),
        "checkpoint_stamp": _stat_text(paths.best),  # the page re-evaluates when best.npz changes
        "metrics": metrics_rows(paths),
        "gradients": gradient_series(paths),
        "config_text": config_text,
        "run": _read_json(paths, paths.run_info),
        "summary": _read_json(paths, paths.summary),
    }


class EvaluationCache:
    """The test-split evaluation (confusion matrix, confident mistakes) of a checkpoint, computed once per file version."""

    def __init__(self) -> None:
        self._results: dict[tuple[Path, int, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, checkpoint: Path, compute) -> dict[str, Any]:
        stat = checkpoint.stat()
        key = (checkpoint, stat.st_mtime_ns, stat.st_size)
        with self._lock:  # one evaluation at a time: the test split is 10,000 images
            if key not in self._results:
                self._results = {k: v for k, v in self._results.items() if k[0] != checkpoint}
                self._results[key] = compute(checkpoint)
            return self._results[key]


def evaluate_run(checkpoint: Path, mistakes: int = 24) -> dict[str, Any]:
    """Confusion matrix on the checkpoint's test split and its most confident mistakes (images as bytes).

    Uses the same split, normalisation and predictions as ``cnn eval`` and ``cnn plot``, in one forward pass.
    Raises:
        CnnError: the checkpoint or its data cannot be loaded.
    """
    from cnn_cli.config.build import config_from_dict
    from cnn_cli.learn.visualize import confident_mistakes
    from cnn_cli.runs.checkpoint import class_names, load_checkpoint
    from cnn_cli.runs.inference import checkpoint_splits
    from cnn_cli.serve.analysis import encode_unsigned
    from cnn_cli.training.train import predictions

    ckpt, model = load_checkpoint(checkpoint)
    test = checkpoint_splits(ckpt).test
    batch = config_from_dict(ckpt.config).train.eval_batch_size
    chunks = [model.forward(test.images[i : i + batch], keep_cache=False) for i in range(0, len(test.images), batch)]
    if not chunks:
        raise CnnError(f"{checkpoint.name}: the test split is empty")
    logits = np.concatenate(chunks)
    probabilities = model.loss.probabilities(logits)
    predicted = predictions(model, logits)
    k = model.loss.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (test.labels, predicted), 1)
    names = class_names(ckpt, model.loss.num_classes)
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    shown = []
    for index in confident_mistakes(probabilities, predicted, test.labels, mistakes):
        pixels = np.clip(test.images[index].mean(axis=0) * std + mean, 0.0, 1.0)
        shown.append(
            {
                "index": int(index),
                "true": names[int(test.labels[index])],
                "predicted": names[int(predicted[index])],
                "probability": float(probabilities[index, predicted[index]]),
                "image": encode_unsigned(pixels, 1.0),
            }
        )
    return {
        "checkpoint": checkpoint.name,
        "classes": names,
        "accuracy": float(confusion.diagonal().sum() / len(predicted)),
        "n": int(len(predicted)),
        "confusion_matrix": confusion.tolist(),
        "per_class_accuracy": [float(v) for v in confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)],
        "mistakes": shown,
    }
