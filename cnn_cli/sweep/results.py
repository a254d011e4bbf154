"""A sweep's records on disk: each finished trial stored, sweep.csv and sweep.json rewritten, the end reported."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from cnn_cli.errors import RuntimeFault
from cnn_cli.io import atomic_write_bytes
from cnn_cli.runs.folders import METRICS_FILE, RUN_FILE, SUMMARY_FILE, read_metrics, write_json
from cnn_cli.runs.ownership import LOCK_FILE, RunLock, lock_existing_folder
from cnn_cli.sweep.options import SweepResult
from cnn_cli.sweep.report import (
    SWEEP_CSV,
    SWEEP_PNG,
    TrialRow,
    format_table,
    plot_sweep,
    ranked,
    trial_metrics,
    write_sweep_csv,
)
from cnn_cli.sweep.spec import SweepSpec

SWEEP_JSON = "sweep.json"


SWEEP_FILE = "sweep.yaml"


def _resume_files(folder: Path) -> dict[str, bytes] | None:
    """An interrupted trial's run folder, to continue from its last.npz; None starts it afresh."""
    from cnn_cli.runs.folders import RunPaths

    paths = RunPaths(folder)
    if not (paths.config.is_file() and paths.last.is_file()):
        return None
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name != LOCK_FILE
    }


class TrialFolders:
    """The trial folders this sweep runs now, each owned (:mod:`cnn_cli.runs.ownership`) from submission until its
    records are stored, so that no ``cnn train --resume`` of a trial runs beside the sweep's own."""

    def __init__(self, root: Path, log: Callable[[str], None]) -> None:
        self.root, self.log = root, log
        self._locks: dict[int, RunLock] = {}

    def own(self, row: TrialRow) -> None:
        folder = self.root / row.name
        folder.mkdir(exist_ok=True)
        self._locks[row.number] = lock_existing_folder(folder, self.log)

    def release(self, number: int | None = None) -> None:
        """Give up one trial's folder (None: every one still held)."""
        for key in list(self._locks) if number is None else [number]:
            lock = self._locks.pop(key, None)
            if lock is not None:
                lock.release()
                with contextlib.suppress(OSError):  # a trial cancelled before it ran leaves no empty folder
                    lock.folder.rmdir()


def _store_result(future: Any, row: TrialRow, root: Path, spec: SweepSpec, log: Callable[[str], None]) -> float | None:
    """Write one trial's records into its folder and update its row; return the trial's own seconds (None if it never ran)."""
    from distributed.scheduler import KilledWorker

    try:
        outcome = future.result()
    except KilledWorker:
        _finish_row(row, "failed", f"its worker died {spec.retries + 1} time(s) while running it; not retried again")
        log(f"{row.name} failed: {row.message}")
        return None
    except Exception as exc:  # the task itself errored on every retry
        _finish_row(row, "failed", f"{type(exc).__name__}: {exc}")
        log(f"{row.name} failed: {row.message}")
        return None
    folder = root / row.name
    _write_records(folder, outcome, root, row)
    message = outcome.message
    if outcome.status == "interrupted":
        message = f"interrupted; continue with: cnn sweep --resume {root}"
    row.metrics = trial_metrics(read_metrics(folder / METRICS_FILE), outcome.summary)
    row.worker = outcome.worker
    row.attempts = max(row.attempts, 1)
    _finish_row(row, outcome.status, message, outcome.seconds)
    score = row.score(spec.metric)
    shown = f"{spec.metric} {score:.4f}" if score is not None else (row.message or "no metric")
    log(f"{row.name} {row.status}: {shown} ({outcome.seconds:.1f} s on {outcome.worker or 'a worker'})")
    return outcome.seconds


def _finish_row(row: TrialRow, status: str, message: str, seconds: float | None = None) -> None:
    row.status, row.message = status, message
    if seconds is not None:
        row.seconds = seconds


def _write_records(folder: Path, outcome: Any, root: Path, row: TrialRow) -> None:
    """The worker's run folder, written file by file (each atomically); run.json last, pointing at its new home."""
    for name, content in outcome.files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise RuntimeFault(f"{row.name}: a worker sent a record with an unsafe path {name!r}")
        if name in (RUN_FILE, SUMMARY_FILE, LOCK_FILE):  # run.lock: this folder's own is held here, not replaced
            continue
        atomic_write_bytes(folder.joinpath(*relative.parts), content)
    if SUMMARY_FILE in outcome.files:
        summary = json.loads(outcome.files[SUMMARY_FILE])
        if "checkpoint" in summary:  # the worker's temp path -> the same file here
            summary["checkpoint"] = str(
                folder / PurePosixPath(summary["checkpoint"]).parent.name / PurePosixPath(summary["checkpoint"]).name
            )
        write_json(folder / SUMMARY_FILE, summary)
    if RUN_FILE in outcome.files:
        record = json.loads(outcome.files[RUN_FILE])
        record["run_dir"] = str(folder)
        record["sweep"] = {
            "folder": str(root),
            "trial": row.number,
            "params": row.params,
            "worker": outcome.worker,
            "threads": outcome.threads,
        }
        write_json(folder / RUN_FILE, record)


def _save_progress(spec: SweepSpec, root: Path, rows: dict[int, TrialRow]) -> None:
    write_sweep_csv(root / SWEEP_CSV, list(rows.values()), spec.parameters)


def _conclude(spec: SweepSpec, root: Path, rows: dict[int, TrialRow], interrupted: bool, log: Callable[[str], None]) -> SweepResult:
    """Final sweep.csv, sweep.png and the table, best first."""
    _save_progress(spec, root, rows)
    all_rows = list(rows.values())
    png = None
    if any(r.score(spec.metric) is not None for r in all_rows):
        png = plot_sweep(root / SWEEP_PNG, all_rows, spec.parameters, spec.metric, spec.mode, title=root.name)
    order = ranked(all_rows, spec.metric, spec.mode)
    best = order[0] if order and order[0].score(spec.metric) is not None else None
    counts = {s: sum(r.status == s for r in all_rows) for s in ("completed", "failed", "interrupted", "pending")}
    log("")
    log(format_table(all_rows, spec.parameters, spec.metric, spec.mode, limit=None))
    log(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"; results: {root / SWEEP_CSV}" + (f", {png}" if png else ""))
    if best is not None:
        params = ", ".join(f"{k}={v}" for k, v in best.params.items())
        log(f"best: {best.name} ({params}) {spec.metric} {best.score(spec.metric):.4f}; run folder {root / best.name}")
    if interrupted or counts["interrupted"] or counts["pending"]:
        log(f"continue with: cnn sweep --resume {root}")
    return SweepResult(root, all_rows, interrupted, best, png)
