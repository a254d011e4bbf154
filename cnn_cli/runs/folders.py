"""Run folders: one per training run, never overwritten, with file names defined once."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.bounded_read import RECORD_BYTES, read_json, read_text
from cnn_cli.errors import CnnError, ConfigError
from cnn_cli.io import sweep_stale_temps
from cnn_cli.runs.checkpoint import HISTORY_COLUMNS, atomic_write
from cnn_cli.runs.ownership import LOCK_FILE, RunLock, check_not_in_use, claim_new_folder, lock_existing_folder
from cnn_cli.version import __version__

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.csv"
GRADIENTS_FILE = "gradients.csv"
STEPS_FILE = "steps.csv"  # the training loss every train.log_every steps (cnn_cli.training.step_log)
STEP_COLUMNS = ("epoch", "step", "lr", "loss", "epoch_loss", "epoch_acc")
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.npz"
BEST_CHECKPOINT = "best.npz"
EPOCH_CHECKPOINT = "epoch-{epoch:03d}.npz"
PLOTS_DIR = "plots"
LEARNER_CODE_DIR = "learner_code"  # cnn train --impl: a copy of the learner's file
LEARNER_CHECK_FILE = "learner-check.json"  # cnn train --impl: the learner's weights against cnn's, per invocation
LATEST_LINK = "latest"
DEFAULT_RUNS_ROOT = "runs"
METRIC_COLUMNS = HISTORY_COLUMNS  # metrics.csv holds what a checkpoint's meta/history holds
TIMING_COLUMNS = ("seconds", "images_per_s")  # the columns that differ between two otherwise identical runs


@dataclass(frozen=True)
class RunPaths:
    """Where each record of a run lives."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def run_info(self) -> Path:
        return self.root / RUN_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def gradients(self) -> Path:
        return self.root / GRADIENTS_FILE

    @property
    def steps(self) -> Path:
        return self.root / STEPS_FILE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINT_DIR

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / EPOCH_CHECKPOINT.format(epoch=epoch)

    @property
    def plots(self) -> Path:
        return self.root / PLOTS_DIR

    @property
    def learner_code(self) -> Path:
        return self.root / LEARNER_CODE_DIR

    @property
    def learner_check(self) -> Path:
        return self.root / LEARNER_CHECK_FILE


def check_run_name(name: str) -> str:
    """A config ``name`` becomes part of a folder name inside the runs root: it must not be a path.

    Raises:
        ConfigError: for separators, ``..``, a leading dot or control characters, naming the value.
    """
    bad = not name or any(sep in name for sep in ("/", "\\", os.sep)) or name.startswith(".") or any(ord(ch) < 32 for ch in name)
    if bad:
        raise ConfigError(
            f"name: {name!r} is used in the run folder's name and must be a plain name "
            "(no '/', '\\', leading '.' or control characters), e.g. 'mnist-wide'"
        )
    return name


def new_run_dir(config_name: str, runs_root: str | Path = DEFAULT_RUNS_ROOT, now: datetime | None = None) -> RunPaths:
    """Create ``runs/<config>-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``… if taken). Never reuses a folder.

    ``os.mkdir`` is atomic, so two processes started in the same second get different folders.
    """
    check_run_name(config_name)
    root = Path(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(root)  # e.g. a .latest link a killed run was about to move into place
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{config_name}-{stamp}"
    for attempt in range(1, 10_000):
        candidate = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return RunPaths(candidate)
    raise CnnError(f"{root}: could not create a new run folder for {base}")


def check_run_dir_free(run_dir: str | Path) -> Path:
    """``--run-dir`` must not exist yet or be empty (an early check: :func:`claim_run_dir` is the claim itself).

    An existing run is never overwritten; a folder another process has just claimed names that process.
    """
    path = Path(run_dir)
    if path.exists():
        if not path.is_dir():
            raise CnnError(f"--run-dir {path}: exists and is not a folder")
        check_not_in_use(path)
        if any(entry.name != LOCK_FILE for entry in path.iterdir()):
            raise CnnError(f"--run-dir {path}: already holds a run; use --resume {path} to continue it, or choose a new folder")
    return path


def claim_run_dir(run_dir: str | Path) -> tuple[RunPaths, RunLock]:
    """Create the ``--run-dir`` folder and own it, atomically (:func:`cnn_cli.runs.ownership.claim_new_folder`)."""
    path = Path(run_dir)
    return RunPaths(path), claim_new_folder(path)


def new_run_lock(paths: RunPaths) -> RunLock:
    """Own a folder :func:`new_run_dir` just made (its ``mkdir`` was the claim; nobody else knows its name yet)."""
    return claim_new_folder(paths.root)


def lock_run(paths: RunPaths, log: Callable[[str], None] = print) -> RunLock:
    """Own an existing run (to resume it); a second writer is refused naming the holder's PID."""
    return lock_existing_folder(paths.root, log)


def existing_run(run_dir: str | Path) -> RunPaths:
    """A run folder to resume or plot; it must hold its config (callers check for checkpoints).

    Temp files a killed writer left in it are swept here (:func:`cnn_cli.io.sweep_stale_temps`).
    """
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        raise CnnError(f"{paths.root}: run folder not found")
    if not paths.config.is_file():
        raise CnnError(f"{paths.root}: not a run folder (no {CONFIG_FILE})")
    for folder in (paths.root, paths.checkpoints, paths.plots):
        sweep_stale_temps(folder)
    return paths


def point_latest(paths: RunPaths, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> Path | None:
    """Make ``<runs root>/latest`` a relative symlink to this run (replaced atomically).

    Only runs created directly inside the runs root move the link; a ``--run-dir``
    elsewhere (e.g. a temp folder) leaves it alone, and so does a ``latest`` that
    is not a symlink (a file or folder of the user's is never replaced).

    Returns:
        the path of such a foreign ``latest`` (the caller says so), else None.
    """
    root = Path(runs_root)
    if not root.is_dir() or paths.root.resolve().parent != root.resolve():
        return None
    link = root / LATEST_LINK
    if link.exists() and not link.is_symlink():
        return link
    tmp = root / f".{LATEST_LINK}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(paths.root.name, target_is_directory=True)
        os.replace(tmp, link)
    return None


def newest_completed_run(root: str | Path = DEFAULT_RUNS_ROOT, require_completed: bool = True) -> RunPaths | None:
    """The newest completed run folder directly inside ``root`` that has a ``checkpoints/best.npz`` (None if there is none).

    "Newest" is by the modification time of that best.npz (then by folder name), so an
    interrupted or killed run started later does not hide a finished one. The
    ``latest`` link itself and folders that are not runs are skipped. ``require_completed=False``
    also takes runs whose run.json does not say ``completed`` (interrupted, killed: their best.npz is a finished epoch).
    """
    folder = Path(root)
    candidates = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.name == LATEST_LINK or entry.is_symlink() or not entry.is_dir():
                continue
            paths = RunPaths(entry)
            with contextlib.suppress(OSError):
                if paths.config.is_file() and paths.best.is_file() and (not require_completed or _completed(paths)):
                    candidates.append((paths.best.stat().st_mtime_ns, entry.name, paths))
    return max(candidates, key=lambda item: item[:2])[2] if candidates else None


def _completed(paths: RunPaths) -> bool:
    info = read_json_record(paths.run_info)
    return info is not None and info.get("status") == "completed"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite metrics.csv atomically with one row per finished epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format_metric(row[k]) for k in METRIC_COLUMNS})
    write_text(path, buffer.getvalue())


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.csv back as a list of rows with numbers parsed ([] when there is no file).

    Raises:
        CnnError: the file cannot be read, lacks a column or holds a value that is not a number, naming the line.
    """
    if not path.exists():
        return []
    text = read_text(path, RECORD_BYTES, "metrics file")  # a FIFO or an endless device is refused, not waited on
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [k for k in METRIC_COLUMNS if k not in (reader.fieldnames or [])]
        if missing:
            raise CnnError(f"{path}: not a metrics file (no column {missing[0]!r})")
        parsed = []
        for row in reader:
            try:
                parsed.append({k: (int(row[k]) if k in ("epoch", "step") else float(row[k])) for k in METRIC_COLUMNS})
            except (TypeError, ValueError):
                raise CnnError(f"{path}: line {reader.line_num} is not a row of numbers") from None
    except csv.Error as exc:
        raise CnnError(f"{path}: cannot be read ({exc})") from None
    return parsed


def read_json_record(path: Path) -> dict[str, Any] | None:
    """A JSON object written by :func:`write_json`, or None if it is missing or not a readable JSON object."""
    try:
        value = read_json(path)  # bounded: a FIFO, a device or a huge file is "not readable", never waited on
    except CnnError:
        return None
    return value if isinstance(value, dict) else None


def run_record(command_line: list[str], seed: int, status: str, started: str, ended: str | None = None, **extra: Any) -> dict[str, Any]:
    """The content of run.json."""
    return {
        "command": command_line,
        "seed": seed,
        "status": status,
        "started": started,
        "ended": ended,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "cnn": __version__},
        "platform": platform.platform(),
        "argv0": Path(sys.argv[0]).name if sys.argv else "",
        **extra,
    }
