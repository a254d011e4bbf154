"""``cnn compare``: read several run folders and put them side by side.

A run is read from its records only (config.yaml, run.json, metrics.csv,
summary.json); no checkpoint is loaded and nothing is written into a run. A
half-written record is read as far as it goes, with a note; a folder that is
not a run at all is skipped with one line saying why.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_cli.bounded_read import RECORD_BYTES, read_json, read_text
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import CONFIG_FILE, DEFAULT_RUNS_ROOT, LATEST_LINK, METRIC_COLUMNS, RunPaths
from cnn_cli.runs.learner_record import learner_record_of

IGNORED_KEYS = ("name", "description")  # always differ or say nothing about the training


GLOB_CHARS = set("*?[")


MAX_CELL = 28  # table cells longer than this are cut (the JSON keeps the whole value)


NUMBER_COLUMNS = ("epochs", "best val", "test acc", "wall s", "img/s")


COLUMN_GAP = "  "


@dataclass
class RunRecord:
    """What one run folder says about itself."""

    name: str
    path: Path
    status: str
    config: dict[str, Any]  # flattened: dotted key -> value
    rows: list[dict[str, float]]  # metrics.csv, complete rows only
    epochs_planned: int | None
    best_val_acc: float | None
    best_epoch: int | None
    test_acc: float | None
    wall_seconds: float | None
    images_per_s: float | None
    notes: list[str] = field(default_factory=list)
    learner_code: str | None = None  # my_layers.py@1a2b3c4d: trained with the learner's functions (cnn train --impl)


@dataclass
class Comparison:
    """The runs read, the config keys whose values differ between them, and what was skipped."""

    runs: list[RunRecord]
    differing_keys: list[str]
    skipped: list[str]  # one line each: "<path>: <why>"

    def as_dict(self) -> dict[str, Any]:
        return {
            "differing_keys": self.differing_keys,
            "runs": [
                {
                    "name": r.name,
                    "path": str(r.path),
                    "status": r.status,
                    "differs": {k: r.config.get(k) for k in self.differing_keys},
                    "epochs": len(r.rows),
                    "epochs_planned": r.epochs_planned,
                    "best_val_acc": r.best_val_acc,
                    "best_epoch": r.best_epoch,
                    "test_acc": r.test_acc,
                    "wall_seconds": r.wall_seconds,
                    "images_per_s": r.images_per_s,
                    "learner_code": r.learner_code,
                    "notes": r.notes,
                }
                for r in self.runs
            ],
            "skipped": self.skipped,
        }


COMPARE_PLOT = "compare.png"


def default_plot_path(comparison: Comparison) -> Path:
    """Where ``cnn compare`` draws without ``--out``: the folder that holds the runs (runs/), never the working folder.

    Runs from several folders go to runs/compare.png.
    """
    parents = {run.path.resolve().parent for run in comparison.runs}
    folder = comparison.runs[0].path.parent if len(parents) == 1 else Path(DEFAULT_RUNS_ROOT)
    return folder / COMPARE_PLOT


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {dotted.key: value}; lists stay whole (``model.layers`` is one value, see :func:`split_layers`)."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


LAYERS_KEY = "model.layers"


def split_layers(configs: list[dict[str, Any]]) -> None:
    """Replace each flattened config's ``model.layers`` list by one key per layer, in place, so that a difference names its layer.

    Where every run has a layer of the same type at position i, each of its settings is a key
    (``model.layers[2].out_channels``); where the runs' layers differ in type or one run has
    none there, the key ``model.layers[i]`` holds the layer's type.
    """
    lists = [config.get(LAYERS_KEY) for config in configs]
    if not all(isinstance(layers, list) and all(isinstance(layer, dict) for layer in layers) for layers in lists):
        return  # a config that does not read as layers (a hand-edited file): compared whole
    for index in range(max((len(layers) for layers in lists), default=0)):  # type: ignore[arg-type]
        at = [layers[index] if index < len(layers) else None for layers in lists]  # type: ignore[index, arg-type]
        same_type = all(layer is not None for layer in at) and len({layer["type"] for layer in at if layer}) == 1
        for config, layer in zip(configs, at, strict=True):
            if same_type and layer is not None:
                config.update(flatten(layer, f"model.layers[{index}]"))
            elif layer is not None:
                config[f"model.layers[{index}]"] = layer.get("type")
    for config in configs:
        config.pop(LAYERS_KEY, None)


def find_run_dirs(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """Expand run folders, globs and folders of runs into run folders (sorted, no duplicates), plus skip lines."""
    found: list[Path] = []
    skipped: list[str] = []
    for argument in arguments:
        path = Path(argument)
        listed = False  # True: the candidates are the entries of a folder of runs, where stray files are ignored
        if not path.exists() and GLOB_CHARS & set(argument):
            candidates = sorted(Path(p) for p in glob.glob(argument))
            if not candidates:
                skipped.append(f"{argument}: the pattern matches nothing")
        elif not path.exists():
            skipped.append(f"{path}: not found")
            continue
        elif path.is_dir() and not (path / CONFIG_FILE).exists():
            try:
                candidates = sorted(p for p in path.iterdir() if p.name != LATEST_LINK and not p.name.startswith("."))
            except OSError as exc:
                skipped.append(f"{path}: cannot list the folder ({exc.strerror or exc})")
                continue
            listed = True
            if not any(p.is_dir() for p in candidates):
                skipped.append(f"{path}: not a run folder (no {CONFIG_FILE}) and holds no run folders")
                continue
        else:
            candidates = [path]
        for candidate in candidates:
            if not candidate.is_dir():
                if not listed:
                    skipped.append(f"{candidate}: not a folder")
                continue
            if not (candidate / CONFIG_FILE).is_file():
                skipped.append(f"{candidate}: not a run folder (no {CONFIG_FILE})")
                continue
            if all(candidate.resolve() != seen.resolve() for seen in found):
                found.append(candidate)
    return found, skipped


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = read_json(path)  # bounded: a FIFO or an endless device is a note, never a hang
    except CnnError as exc:
        notes.append(f"{path.name} unreadable ({str(exc).removeprefix(f'{path}: ')}); ignored")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object; ignored")
        return {}
    return data


def read_metric_rows(path: Path, notes: list[str]) -> list[dict[str, float]]:
    """metrics.csv rows that are complete; reading stops at the first row that is not (a half-written file)."""
    if not path.exists():
        return []
    try:
        raw = list(csv.DictReader(io.StringIO(read_text(path, RECORD_BYTES, "metrics file"), newline="")))
    except (CnnError, csv.Error) as exc:
        notes.append(f"{path.name} unreadable ({str(exc).removeprefix(f'{path}: ')}); no curves")
        return []
    rows = []
    for number, row in enumerate(raw, start=2):  # line 1 is the header
        try:
            rows.append({k: float(row[k]) for k in METRIC_COLUMNS})
        except (KeyError, TypeError, ValueError):
            notes.append(f"{path.name} line {number} is incomplete or not numeric; read {len(rows)} epoch(s) before it")
            break
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def read_run(path: Path) -> RunRecord:
    """One run folder's record. Raises CnnError (the reason to skip it) when its config cannot be read."""
    from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, parse_yaml

    paths = RunPaths(path)
    data, _ = parse_yaml(read_text(paths.config, MAX_CONFIG_BYTES, "config"), str(paths.config))
    if not isinstance(data, dict):
        raise CnnError(f"{paths.config}: not a config (a YAML mapping)")
    notes: list[str] = []
    info = _read_json(paths.run_info, notes)
    summary = _read_json(paths.summary, notes)
    rows = read_metric_rows(paths.metrics, notes)
    config = {k: v for k, v in flatten(data).items() if k not in IGNORED_KEYS}
    planned = config.get("train.epochs")
    val = [(r["val_acc"], int(r["epoch"])) for r in rows if math.isfinite(r["val_acc"])]
    best_val, best_epoch = max(val, key=lambda pair: pair[0]) if val else (_number(summary.get("best_val_accuracy")), None)
    if best_val is not None and best_val < 0:  # training records -1 when there is no validation split
        best_val = None
    seconds = sum(r["seconds"] for r in rows)
    images = sum(r["seconds"] * r["images_per_s"] for r in rows)
    return RunRecord(
        name=path.name,
        path=path,
        status=str(info.get("status", "unknown")),
        config=config,
        rows=rows,
        epochs_planned=planned if isinstance(planned, int) and not isinstance(planned, bool) else None,
        best_val_acc=best_val if best_val is None else float(best_val),
        best_epoch=best_epoch,
        test_acc=_number(summary.get("test_accuracy")),
        wall_seconds=_number(summary.get("wall_seconds")) or (round(seconds, 2) if rows else None),
        images_per_s=round(images / seconds, 1) if seconds > 0 else None,
        notes=notes,
        learner_code=learner.short if (learner := learner_record_of(info)) else None,
    )


def compare_runs(arguments: list[str]) -> Comparison:
    """Read every run the arguments name (folders, globs, folders of runs) and find the config keys that differ."""
    folders, skipped = find_run_dirs(arguments)
    runs = []
    for folder in folders:
        try:
            runs.append(read_run(folder))
        except CnnError as exc:
            skipped.append(str(exc))
    if not runs:
        reason = f" ({len(skipped)} skipped, first: {skipped[0]})" if skipped else ""
        raise CnnError(f"no run folders to compare in {' '.join(arguments)}{reason}")
    split_layers([r.config for r in runs])
    keys = sorted({k for r in runs for k in r.config}, key=_key_order)
    missing = object()
    differing = [k for k in keys if len({json.dumps(r.config.get(k, missing), sort_keys=True, default=str) for r in runs}) > 1]
    return Comparison(runs, differing, skipped)


def _key_order(key: str) -> tuple[Any, ...]:
    """Config keys in reading order: ``model.layers[2]`` before ``model.layers[10]``."""
    parts = re.split(r"\[(\d+)\]", key)  # the captured indices land at the odd positions
    return tuple(int(part) if position % 2 else part for position, part in enumerate(parts))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _table_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """The header and one row of cells per run: name, status, learner code (if any run used it), differing keys, then the numbers."""
    code = any(r.learner_code for r in comparison.runs)  # a column only when some run trained with learner code
    header = ["run", "status", *(["code"] if code else []), *comparison.differing_keys, *NUMBER_COLUMNS]
    rows = []
    for r in comparison.runs:
        epochs = f"{len(r.rows)}/{r.epochs_planned}" if r.epochs_planned is not None else str(len(r.rows))
        rows.append(
            [
                r.name,
                r.status,
                *([r.learner_code or "cnn"] if code else []),
                *(_cell(r.config.get(k)) for k in comparison.differing_keys),
                epochs,
                "-" if r.best_val_acc is None else f"{r.best_val_acc:.4f}" + (f" (ep {r.best_epoch})" if r.best_epoch else ""),
                "-" if r.test_acc is None else f"{r.test_acc:.4f}",
                "-" if r.wall_seconds is None else f"{r.wall_seconds:.1f}",
                "-" if r.images_per_s is None else f"{r.images_per_s:.0f}",
            ]
        )
    return header, rows


def _blocks(widths: list[int], width: int) -> list[list[int]]:
    """Column indices of each block of the table: the run column first in every block, then as many others as fit in ``width``."""
    blocks: list[list[int]] = [[0]]
    used = widths[0]
    for column in range(1, len(widths)):
        if used + len(COLUMN_GAP) + widths[column] > width and len(blocks[-1]) > 1:
            blocks.append([0])
            used = widths[0]
        blocks[-1].append(column)
        used += len(COLUMN_GAP) + widths[column]
    return blocks


def format_table(comparison: Comparison, width: int = 80) -> str:
    """The comparison as a plain-text table (one row per run), then one line per note.

    A table wider than ``width`` characters is cut into blocks of columns, one under the
    other, each starting with the run's name; a column is never cut in the middle.
    """
    header, rows = _table_rows(comparison)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric_from = len(header) - len(NUMBER_COLUMNS)

    def render(cells: list[str], columns: list[int]) -> str:
        return COLUMN_GAP.join(cells[i].rjust(widths[i]) if i >= numeric_from else cells[i].ljust(widths[i]) for i in columns).rstrip()

    out: list[str] = []
    for block in _blocks(widths, width):
        if out:
            out.append("")
        out += [render(header, block), COLUMN_GAP.join("-" * widths[i] for i in block), *(render(row, block) for row in rows)]
    if not comparison.differing_keys and len(comparison.runs) > 1:
        out.append("(the configs are the same, apart from name and description)")
    out.extend(f"note: {r.name}: {note}" for r in comparison.runs for note in r.notes)
    return "\n".join(out)
