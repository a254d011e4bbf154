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
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnn_cli.bounded_read import read_bytes
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import METRIC_COLUMNS, STEP_COLUMNS, RunPaths, read_metrics
from cnn_cli.runs.liveness import process_alive
from cnn_cli.runs.run_record import metric_array

GRADIENT_NUMBERS = ("weight_grad_norm", "bias_grad_norm", "input_grad_norm", "update_ratio", "dead_fraction")
MAX_GRADIENT_POINTS = 400  # per layer and series; a long run is thinned evenly for the chart
MAX_STEP_POINTS = 2000  # steps.csv rows sent to the page; a long run is thinned evenly
MAX_NAME_BYTES = 255  # a file name's limit on common file systems
MAX_TEXT_BYTES = 4 << 20  # a run's text records are small; a bigger file is shown as missing
# libyaml's parser where PyYAML has it: a run page's config is parsed many times faster in C. Safe either way.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STOPPED = "stopped"  # the status shown for a run whose run.json says running but whose process is gone
# A YAML plain scalar that reads as the same string (not a number, a bool or null), and the words YAML reads otherwise.
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.+=-]*")
YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def run_paths(runs_root: Path, name: str) -> RunPaths | None:
    """The run folder ``name`` directly inside ``runs_root``, or None.

    Any folder name is served, spaces and non-ASCII letters included (URL-encoded in
    links). None for anything that is not one plain name (:func:`plain_name`) and for
    a symlink whose target lies outside the runs folder. ``latest`` (a link to a run
    inside) is allowed.
    """
    if not plain_name(name):
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


def plain_name(name: str) -> bool:
    """One folder name: no separator, NUL or control character, no leading dot (so neither ``.`` nor ``..``), valid UTF-8."""
    try:
        size = len(name.encode("utf-8"))  # a name with bytes that are not UTF-8 cannot be written in a URL and back
    except UnicodeEncodeError:
        return False
    return 0 < size <= MAX_NAME_BYTES and not name.startswith(".") and not any(ch in "/\\" or ord(ch) < 32 or ord(ch) == 127 for ch in name)


def run_file(paths: RunPaths, path: Path) -> Path | None:
    """``path`` if it is a regular file that resolves inside the run folder (no symlink out), else None.

    The runs list asks this of five files in each of thousands of runs, so the usual case
    costs one ``lstat`` per part of the path below the run folder: no part is a link, so the
    file is inside by construction. Only a path with a link in it is resolved and compared.
    """
    root, full = str(paths.root), str(path)
    if not full.startswith(root + os.sep):
        return _resolved_inside(paths, path)
    parts = full[len(root) + 1 :].split(os.sep)
    try:
        for number in range(1, len(parts) + 1):
            mode = os.lstat(os.path.join(root, *parts[:number])).st_mode
            if stat.S_ISLNK(mode) or parts[number - 1] in ("", ".", ".."):
                return _resolved_inside(paths, path)
            if not (stat.S_ISREG(mode) if number == len(parts) else stat.S_ISDIR(mode)):
                return None
    except (OSError, ValueError):
        return None
    return path


def _resolved_inside(paths: RunPaths, path: Path) -> Path | None:
    """A path with a link in it: where it resolves, if that is a regular file inside the run folder."""
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
        data = read_bytes(safe, MAX_TEXT_BYTES, "run record")  # the one bounded reader: no FIFO waited on, nothing huge
    except CnnError:
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
    text = _read_text(paths, paths.gradients)
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


def step_series(paths: RunPaths) -> dict[str, Any]:
    """steps.csv (when the run has one) as columns: ``{"present": bool, "step": [...], "lr": [...], "loss": [...], ...}``.

    Rows that do not parse (the one being appended) are skipped; at most
    :data:`MAX_STEP_POINTS` rows, thinned evenly, are returned.
    """
    text = _read_text(paths, paths.steps)
    columns: dict[str, Any] = {key: [] for key in STEP_COLUMNS}
    if text is None:
        return {"present": False, **columns}
    for row in csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])):
        step = _number(row.get("step"))
        if step is None:
            continue
        for key in STEP_COLUMNS:
            columns[key].append(_number(row.get(key)))
        columns["step"][-1] = int(step)
    count = len(columns["step"])
    if count > MAX_STEP_POINTS:
        keep = np.unique(np.linspace(0, count - 1, MAX_STEP_POINTS).round().astype(int))
        columns = {key: [values[i] for i in keep] for key, values in columns.items()}
    return {"present": True, **columns}


def read_config(paths: RunPaths) -> tuple[dict[str, Any], str]:
    """(config.yaml as a mapping, its text); ``({}, "")`` when missing, ``({}, text)`` when it does not parse."""
    text = _read_text(paths, paths.config)
    if text is None:
        return {}, ""
    try:
        loader = YAML_LOADER(text)  # the C safe loader where libyaml is there: the runs index reads many configs
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return {}, text
    return (data if isinstance(data, dict) else {}), text


def _list_fields(paths: RunPaths) -> tuple[str, int | None]:
    """The config's ``name`` and ``train.epochs`` for the runs list, read from config.yaml's lines when they are plain.

    cnn writes a run's config.yaml in block style: ``name: smoke`` at the top level and
    ``epochs: 2`` indented under ``train:``. Reading those two lines is ten times faster
    than parsing the whole file, which counts for thousands of runs. A file that does
    not look like that (flow style, quoted or unusual values, comments) is parsed as YAML.
    """
    text = _read_text(paths, paths.config)
    if text is None:
        return "", None
    name = epochs = None
    section = ""
    for line in text.splitlines():
        key, colon, value = line.strip().partition(":")
        if not colon:
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            section = key
            name = value.strip() if key == "name" else name
        elif section == "train" and indent == 2 and key == "epochs":
            epochs = value.strip()
    plain = name is not None and PLAIN_NAME.fullmatch(name) and name.lower() not in YAML_WORDS
    if plain and epochs is not None and epochs.isascii() and epochs.isdigit():
        return str(name), int(epochs)
    config, _ = read_config(paths)
    planned = _section(config, "train").get("epochs")
    return str(config.get("name", "")), planned if isinstance(planned, int) and not isinstance(planned, bool) else None


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    section = config.get(name)
    return section if isinstance(section, dict) else {}


def run_info(paths: RunPaths) -> dict[str, Any]:
    """run.json as a mapping (``{}`` when missing or unreadable)."""
    return _read_json(paths, paths.run_info)


def run_summary(paths: RunPaths, name: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the runs list, as the files say: name, status, config, epochs, best validation and test accuracy, dates.

    ``info``: run.json, when the caller has read it already. ``status`` is run.json's;
    :func:`live_status` tells a running run from one whose process is gone.
    """
    info = run_info(paths) if info is None else info
    summary = _read_json(paths, paths.summary)
    config_name, epochs_planned = _list_fields(paths)
    epochs, val = _epochs_and_val(paths)
    best_val = summary.get("best_val_accuracy")
    return {
        "name": name,
        "status": str(info.get("status", "unknown")),
        "config": config_name,
        "epochs": epochs,
        "epochs_planned": epochs_planned,
        "best_val_acc": best_val if isinstance(best_val, int | float) and best_val >= 0 else (max(val) if val else None),
        "test_acc": summary.get("test_accuracy") if isinstance(summary.get("test_accuracy"), int | float) else None,
        "started": str(info.get("started") or ""),
        "ended": str(info.get("ended") or ""),
        "has_checkpoint": run_file(paths, paths.best) is not None,
    }


def _epochs_and_val(paths: RunPaths) -> tuple[int, list[float]]:
    """How many epochs metrics.csv holds and their finite validation accuracies, as :func:`metrics_rows` counts them.

    The runs list asks this of every run: a file cnn wrote whole is parsed in one go
    (:func:`cnn_cli.runs.run_record.metric_array`); anything else row by row.
    """
    text = _read_text(paths, paths.metrics)
    table = metric_array(text) if text is not None else None
    if table is None:
        rows = metrics_rows(paths)
        return len(rows), [row["val_acc"] for row in rows if row.get("val_acc") is not None]
    val = table[:, METRIC_COLUMNS.index("val_acc")]
    return len(table), val[np.isfinite(val)].tolist()


def process_record(info: dict[str, Any]) -> dict[str, Any]:
    """The training process run.json (``info``) names: ``pid``, ``host``, ``pid_start``; ``{}`` when it names none."""
    return {key: info[key] for key in ("pid", "host", "pid_start") if key in info}


def live_status(status: str, process: dict[str, Any]) -> tuple[str, bool | None]:
    """(status to show, whether the training process is alive): ``running`` whose process is gone shows as ``stopped``."""
    if status != "running":
        return status, None
    alive = process_alive(process)
    return (STOPPED if alive is False else status), alive


def _stat_text(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "-"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def summary_stamp(paths: RunPaths) -> tuple[str, ...]:
    """Changes whenever a file :func:`run_summary` reads changes (the runs index re-reads a run only then)."""
    return tuple(_stat_text(path) for path in (paths.run_info, paths.summary, paths.config, paths.metrics, paths.best))


def file_stamp(paths: RunPaths) -> str:
    """Changes whenever a record the run page shows changes (the page polls it), or the training process ends."""
    parts = [_stat_text(path) for path in (paths.metrics, paths.steps, paths.gradients, paths.run_info, paths.summary, paths.best)]
    info = run_info(paths)
    status, _ = live_status(str(info.get("status", "")), process_record(info))
    return hashlib.sha256("/".join([*parts, status]).encode()).hexdigest()[:16]


def run_detail(paths: RunPaths, name: str) -> dict[str, Any]:
    """Everything a run page shows except the test-split evaluation: summary row, curves, gradients, config, records."""
    config, config_text = read_config(paths)
    info = run_info(paths)
    row = run_summary(paths, name, info)
    row["status"], row["alive"] = live_status(row["status"], process_record(info))
    logs_gradients = _section(config, "train").get("log_gradients", True)
    return {
        **row,
        "stamp": file_stamp(paths),
        "checkpoint_stamp": _stat_text(paths.best),  # the page re-evaluates when best.npz changes
        "metrics": metrics_rows(paths),
        "steps": step_series(paths),
        "gradients": {**gradient_series(paths), "logged": logs_gradients is not False},
        "config_text": config_text,
        "run": info,
        "summary": _read_json(paths, paths.summary),
    }


def csv_text(paths: RunPaths, which: str) -> str | None:
    """The text of a run's ``metrics`` or ``steps`` CSV file for download, complete lines only; None when absent."""
    text = _read_text(paths, paths.metrics if which == "metrics" else paths.steps)
    return None if text is None else text[: text.rfind("\n") + 1]
