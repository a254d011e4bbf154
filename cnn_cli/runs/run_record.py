"""One run folder's record as ``cnn compare`` reads it: its config, run.json, summary.json and metrics.csv.

A run is read from its records only; no checkpoint is loaded and nothing is written into
a run. Each record is read as a foreign file (:func:`read_record`: a regular file, never
blocking, bounded in size); a half-written record is read as far as it goes, with a note.
Reading thousands of runs shares the work that is the same in all of them: each distinct
config entry is parsed once (:class:`cnn_cli.config.yaml_cache.YamlCache`) and each distinct
config section flattened once (:func:`flatten_sections`).
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.bounded_read import read_bytes
from cnn_cli.config.yaml_cache import YamlCache
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import METRIC_COLUMNS, RunPaths
from cnn_cli.runs.learner_record import learner_record_of

IGNORED_KEYS = ("name", "description")  # always differ or say nothing about the training
MAX_RECORD_BYTES = 4 << 20  # a run's text records are small (metrics.csv of 1,000 epochs: ~100 KB)


@dataclass
class RunRecord:
    """What one run folder says about itself."""

    name: str
    path: Path
    status: str
    config: dict[str, Any]  # flattened: dotted key -> value
    metrics: np.ndarray  # (epochs, len(METRIC_COLUMNS)) float64: metrics.csv's complete rows, its columns in METRIC_COLUMNS order
    epochs_planned: int | None
    best_val_acc: float | None
    best_epoch: int | None
    test_acc: float | None
    wall_seconds: float | None
    images_per_s: float | None
    notes: list[str] = field(default_factory=list)
    learner_code: str | None = None  # my_layers.py@1a2b3c4d: trained with the learner's functions (cnn train --impl)

    @property
    def epochs(self) -> int:
        """The epochs metrics.csv holds."""
        return len(self.metrics)

    @property
    def rows(self) -> list[dict[str, float]]:
        """metrics.csv's complete rows as {column: value} (made on demand: the picture needs a few runs', the table none)."""
        return [dict(zip(METRIC_COLUMNS, row, strict=True)) for row in self.metrics.tolist()]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {dotted.key: value}; lists stay whole (``model.layers`` is one value, see :func:`split_layers`)."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def flatten_sections(data: dict[str, Any], flat_sections: dict[int, dict[str, Any]] | None) -> dict[str, Any]:
    """:func:`flatten` of a config, each section flattened once for all the runs that share it.

    ``flat_sections`` maps id(section) to its flat keys: the config cache hands every run with
    the same section text the same (unchanging) object, which outlives the comparison.
    """
    if flat_sections is None:
        return flatten(data)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            out[str(key)] = value
            continue
        flat = flat_sections.get(id(value))
        if flat is None:
            flat = flat_sections[id(value)] = flatten(value, str(key))
        out.update(flat)
    return out


def read_record(path: Path) -> bytes:
    """A run record's bytes, read as a foreign file: a regular file, opened without blocking, within :data:`MAX_RECORD_BYTES`.

    Through :func:`cnn_cli.bounded_read.read_bytes` (one ``open``, ``fstat`` and ``read``:
    ``cnn compare`` reads four records in each of thousands of runs). A FIFO or a device named
    like a record neither blocks nor streams forever.

    Raises:
        FileNotFoundError: there is no such record (yet).
        OSError: it cannot be read, is not a regular file, or is bigger than the bound.
    """
    try:
        return read_bytes(path, MAX_RECORD_BYTES, "run record")  # the one bounded reader
    except CnnError as exc:
        if not os.path.lexists(path):
            raise FileNotFoundError(errno.ENOENT, "no such record", str(path)) from None
        raise OSError(errno.EINVAL, str(exc).removeprefix(f"{path}: "), str(path)) from None


def _why(exc: Exception) -> str:
    """Why a record could not be read, in the words of the reader that refused it."""
    return (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    try:
        data = json.loads(read_record(path))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} unreadable ({_why(exc)}); ignored")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object; ignored")
        return {}
    return data


def metric_array(text: str) -> np.ndarray | None:
    """metrics.csv as cnn writes it, parsed in one go: (epochs, len(METRIC_COLUMNS)) float64 in METRIC_COLUMNS order.

    None unless every line is plain and whole (no quotes, every field a number): then
    :func:`read_metric_rows` reads it line by line, says where it stops, and is the rule.
    Thousands of runs of hundreds of epochs are read in a second this way.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or '"' in text:
        return None
    header = lines[0].split(",")
    if not set(METRIC_COLUMNS) <= set(header) or any(line.count(",") != len(header) - 1 for line in lines[1:]):
        return None
    try:
        values = np.array(",".join(lines[1:]).split(",") if len(lines) > 1 else [], dtype=np.float64)
    except ValueError:
        return None
    return values.reshape(len(lines) - 1, len(header))[:, [header.index(name) for name in METRIC_COLUMNS]]


def read_metric_rows(path: Path, notes: list[str]) -> np.ndarray:
    """metrics.csv rows that are complete, as :func:`metric_array`; reading stops at the first row that is not (a half-written file)."""
    empty = np.zeros((0, len(METRIC_COLUMNS)))
    try:
        text = read_record(path).decode("utf-8")
        fast = metric_array(text)
        if fast is not None:
            return fast
        header, *raw = [row for row in csv.reader(text.splitlines()) if row] or [[]]  # blank lines skipped, as csv.DictReader does
    except FileNotFoundError:
        return empty
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        notes.append(f"{path.name} unreadable ({_why(exc)}); no curves")
        return empty
    where = {name: header.index(name) for name in METRIC_COLUMNS if name in header}
    rows = []
    for number, row in enumerate(raw, start=2):  # line 1 is the header
        try:
            rows.append([float(row[where[k]]) for k in METRIC_COLUMNS])
        except (KeyError, IndexError, ValueError):
            notes.append(f"{path.name} line {number} is incomplete or not numeric; read {len(rows)} epoch(s) before it")
            break
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(METRIC_COLUMNS))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def read_run(path: Path, configs: YamlCache | None = None, flat_sections: dict[int, dict[str, Any]] | None = None) -> RunRecord:
    """One run folder's record. Raises CnnError (the reason to skip it) when its config cannot be read.

    ``configs`` and ``flat_sections``: what reading many runs shares (each distinct config entry
    parsed once, each distinct section flattened once); see :func:`compare_runs`.
    """
    paths = RunPaths(path)
    try:
        data = (configs or YamlCache()).parse(read_record(paths.config).decode("utf-8"), str(paths.config))
    except OSError as exc:
        raise CnnError(f"{paths.config}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CnnError(f"{paths.config}: not UTF-8 text") from None
    if not isinstance(data, dict):
        raise CnnError(f"{paths.config}: not a config (a YAML mapping)")
    notes: list[str] = []
    info = _read_json(paths.run_info, notes)
    summary = _read_json(paths.summary, notes)
    metrics = read_metric_rows(paths.metrics, notes)
    config = {k: v for k, v in flatten_sections(data, flat_sections).items() if k not in IGNORED_KEYS}
    planned = config.get("train.epochs")
    column = {name: metrics[:, i] for i, name in enumerate(METRIC_COLUMNS)}
    finite = np.flatnonzero(np.isfinite(column["val_acc"]))
    best_val: float | None
    best_epoch: int | None
    if finite.size:  # the first epoch with the best validation accuracy
        best = finite[int(np.argmax(column["val_acc"][finite]))]
        best_val, best_epoch = float(column["val_acc"][best]), int(column["epoch"][best])
    else:
        best_val, best_epoch = _number(summary.get("best_val_accuracy")), None
    if best_val is not None and best_val < 0:  # training records -1 when there is no validation split
        best_val = None
    seconds = sum(column["seconds"].tolist())  # summed in order, as a reader adding up the column would
    images = sum((column["seconds"] * column["images_per_s"]).tolist())
    return RunRecord(
        name=path.name,
        path=path,
        status=str(info.get("status", "unknown")),
        config=config,
        metrics=metrics,
        epochs_planned=planned if isinstance(planned, int) and not isinstance(planned, bool) else None,
        best_val_acc=best_val if best_val is None else float(best_val),
        best_epoch=best_epoch,
        test_acc=_number(summary.get("test_accuracy")),
        wall_seconds=_number(summary.get("wall_seconds")) or (round(seconds, 2) if len(metrics) else None),
        images_per_s=round(images / seconds, 1) if seconds > 0 else None,
        notes=notes,
        learner_code=learner.short if (learner := learner_record_of(info)) else None,
    )
