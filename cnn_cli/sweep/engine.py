"""Run a sweep's trials on Dask: an embedded LocalCluster, or an existing cluster with ``--scheduler``.

The client (this process) owns the sweep folder::

    runs/sweep-<name>-<time>/
      sweep.json        the validated sweep: base config, trials, metric (what --resume reads)
      sweep.yaml        the sweep file as given
      sweep.csv         one row per trial, rewritten after each result
      sweep.png         the metric against each swept parameter
      trial-001/ ...    normal run folders (config.yaml, run.json, metrics.csv, summary.json, checkpoints/)

Dask does the scheduling: at most ``parallelism`` trials are submitted at a time
(default: one per worker thread), a worker that dies mid-trial has its trial
rescheduled by the scheduler (at most ``retries`` times on the embedded cluster,
``distributed.scheduler.allowed-failures`` on your own scheduler), and
``client.submit(retries=...)`` re-runs a trial whose task itself errored.
Ctrl-C sets a Dask Event that running trials poll; they stop after their current
step and save as interrupted, and pending ones are cancelled.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import queue
import statistics
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cnn_cli.errors import CnnError, RuntimeFault
from cnn_cli.io import atomic_write_bytes
from cnn_cli.runs import DEFAULT_RUNS_ROOT, METRICS_FILE, RUN_FILE, SUMMARY_FILE, new_run_dir, read_metrics, write_json, write_text
from cnn_cli.sweep.report import (
    SWEEP_CSV,
    SWEEP_PNG,
    TrialRow,
    format_table,
    plot_sweep,
    ranked,
    read_sweep_csv,
    trial_metrics,
    write_sweep_csv,
)
from cnn_cli.sweep.spec import SweepSpec, Trial
from cnn_cli.sweep.trial import THREAD_SETTINGS

SWEEP_JSON = "sweep.json"
SWEEP_FILE = "sweep.yaml"
INSTALL_HINT = 'cnn sweep needs Dask: pip install ".[sweep]"  (or: pip install "dask[distributed]")'
CONNECT_TIMEOUT_S = 10
INTERRUPT_WAIT_S = 120  # how long Ctrl-C waits for running trials to save before giving up on them
TERMINAL = ("completed", "failed")  # what --resume does not run again


@dataclass
class EngineOptions:
    """Where trials run. ``ship_data`` None means: ship with ``scheduler``, use the workers' folder locally."""

    scheduler: str | None = None
    workers: int | None = None
    dashboard: str | None = None  # an address such as 127.0.0.1:8787, or None for no dashboard
    ship_data: bool | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S


@dataclass
class SweepResult:
    """How the sweep ended."""

    root: Path
    rows: list[TrialRow]
    interrupted: bool
    best: TrialRow | None
    png: Path | None


def require_dask() -> None:
    """Raise a CnnError with the install command when Dask is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CnnError(INSTALL_HINT) from None


def new_sweep(
    spec: SweepSpec, sweep_text: str, options: EngineOptions, runs_root: str | Path = DEFAULT_RUNS_ROOT, log: Callable[[str], None] = print
) -> SweepResult:
    """Run a new sweep in ``<runs_root>/sweep-<name>-<time>/`` (made once the cluster is reachable)."""
    rows = {t.number: TrialRow(t.number, t.params) for t in spec.trials}

    def create() -> Path:
        root = new_run_dir(f"sweep-{spec.name}", runs_root).root
        write_json(root / SWEEP_JSON, spec.as_dict())
        write_text(root / SWEEP_FILE, sweep_text)
        return root

    return _execute(spec, rows, options, log, create)


def resume_sweep(root: str | Path, options: EngineOptions, log: Callable[[str], None] = print) -> SweepResult:
    """Finish a sweep: run its pending and interrupted trials (interrupted ones continue from their last.npz)."""
    root, spec, rows = open_sweep(root)
    return _execute(spec, rows, options, log, lambda: root)


def open_sweep(root: str | Path) -> tuple[Path, SweepSpec, dict[int, TrialRow]]:
    """An existing sweep folder: its spec and what sweep.csv says about each trial."""
    root = Path(root)
    meta = root / SWEEP_JSON
    if not meta.is_file():
        raise CnnError(f"{root}: not a sweep folder (no {SWEEP_JSON})")
    try:
        spec = SweepSpec.from_dict(json.loads(meta.read_text(encoding="utf-8")))
        rows = read_sweep_csv(root / SWEEP_CSV, spec.parameters)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CnnError(f"{root}: cannot read the sweep's records ({type(exc).__name__}: {exc})") from None
    for t in spec.trials:  # a trial missing from sweep.csv has not run
        rows.setdefault(t.number, TrialRow(t.number, t.params))
    return root, spec, rows


def _execute(
    spec: SweepSpec, rows: dict[int, TrialRow], options: EngineOptions, log: Callable[[str], None], make_root: Callable[[], Path]
) -> SweepResult:
    """Run every trial that is not completed or failed; write records, sweep.csv and sweep.png.

    ``make_root`` gives the sweep folder; for a new sweep it creates it, only once
    the cluster is up, so a sweep that cannot start leaves nothing behind.
    """
    require_dask()
    todo = [rows[n] for n in sorted(rows) if rows[n].status not in TERMINAL]
    configs: dict[int, dict[str, Any]] = {}
    refused: list[str] = []
    for row in todo:
        try:
            configs[row.number] = spec.trial_config(Trial(row.number, row.params)).as_dict()
        except CnnError as exc:  # a combination of values that cannot work: this trial fails, the rest run
            _finish_row(row, "failed", str(exc))
            refused.append(f"{row.name} failed before it started: {exc}")
    runnable = [r.number for r in todo if r.number in configs]
    if not runnable:
        root = make_root()
        for line in refused:
            log(line)
        return _conclude(spec, root, rows, False, log)
    with _dask_client(options, spec, len(runnable)) as (client, where):
        root = make_root()
        _save_progress(spec, root, rows)
        log(f"sweep {root}: {len(runnable)} trial(s) to run on {where}")
        for line in refused:
            log(line)
        interrupted = _run_on_dask(client, spec, root, rows, runnable, configs, options, log)
    return _conclude(spec, root, rows, interrupted, log)


@contextlib.contextmanager
def _dask_client(options: EngineOptions, spec: SweepSpec, n_trials: int) -> Iterator[tuple[Any, str]]:
    from distributed import Client, LocalCluster

    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout=options.connect_timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise CnnError(f"--scheduler {options.scheduler}: cannot connect ({exc})") from None
        try:
            yield client, f"the cluster at {options.scheduler}"
        finally:
            client.close()
        return
    if options.dashboard and importlib.util.find_spec("bokeh") is None:
        raise CnnError(f"--dashboard {options.dashboard}: Dask's dashboard needs Bokeh: pip install bokeh")
    cores = _usable_cpus()
    n_workers = options.workers or max(1, min(cores, n_trials, spec.parallelism or cores))
    share = str(max(1, cores // n_workers))
    # Set in each worker process before NumPy loads there, so OpenBLAS starts with the worker's share of the cores.
    env = dict.fromkeys(THREAD_SETTINGS, share)
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=options.dashboard,
        scheduler_kwargs={"allowed_failures": spec.retries},
        silence_logs=logging.ERROR,
        env=env,
        preload=["cnn_cli.sweep.worker_setup"],
    )
    try:
        client = Client(cluster)
        try:
            dashboard = f"; dashboard {client.dashboard_link}" if options.dashboard else ""
            yield client, f"a local cluster of {n_workers} worker(s) x {share} thread(s) on 127.0.0.1{dashboard}"
        finally:
            client.close()
    finally:
        cluster.close()


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _thread_shares(client: Any) -> dict[str, int]:
    """Each worker's share of its machine's cores: the machine's CPUs over the worker threads it hosts."""
    cpus = client.run(_usable_cpus)
    hosts: dict[str, int] = {}
    info = client.scheduler_info(n_workers=-1)["workers"]
    for worker in info.values():
        hosts[worker["host"]] = hosts.get(worker["host"], 0) + int(worker["nthreads"])
    return {address: max(1, int(cpus.get(address, 1)) // max(1, hosts[worker["host"]])) for address, worker in info.items()}


def _run_on_dask(
    client: Any,
    spec: SweepSpec,
    root: Path,
    rows: dict[int, TrialRow],
    runnable: list[int],
    configs: dict[int, dict[str, Any]],
    options: EngineOptions,
    log: Callable[[str], None],
) -> bool:
    """Submit the trials, a window at a time; store each result as it comes. Returns True if Ctrl-C stopped it.

    It also reports Dask's cost per trial: the time from submission to the result
    being back, less the trial's own time on its worker (pickling, transfers, the
    scheduler's round trips). With the default window a worker is free at each
    submission, so no queueing is counted in it.
    """
    from distributed import Event, as_completed

    from cnn_cli.sweep.data import files_to_ship
    from cnn_cli.sweep.trial import run_trial  # imported by name on the workers

    sweep_id = uuid.uuid4().hex[:8]
    topic, stop_name = f"cnn-sweep-{sweep_id}", f"cnn-sweep-stop-{sweep_id}"
    stop = Event(stop_name, client=client)
    events: queue.Queue = queue.Queue()

    def on_event(event: tuple[float, dict[str, Any]]) -> None:  # runs on the client's event-loop thread
        msg = event[1]
        events.put(msg)
        log(f"trial-{int(msg['trial']):03d} started on {msg['worker']} (pid {msg['pid']})")

    client.subscribe_topic(topic, on_event)
    ship = options.ship_data if options.ship_data is not None else bool(options.scheduler)
    data_future = None
    if ship:
        from cnn_cli.config import config_from_dict

        files = files_to_ship([config_from_dict(configs[n]) for n in runnable])
        log(f"sending {len(files)} data file(s), {sum(map(len, files.values())) / 1e6:.1f} MB, to every worker")
        [data_future] = client.scatter([files], broadcast=True)
    shares = _thread_shares(client)
    window = spec.parallelism or max(1, sum(client.nthreads().values()))
    waiting = deque(runnable)
    futures: dict[Any, int] = {}
    started: dict[int, list[str]] = {}
    done = as_completed()
    submitted: dict[int, float] = {}
    overheads: list[float] = []

    def submit_next() -> None:
        number = waiting.popleft()
        row = rows[number]
        resume = _resume_files(root / row.name) if row.status == "interrupted" else None
        future = client.submit(
            run_trial,
            number,
            configs[number],
            data_files=data_future,
            resume_files=resume,
            stop_event=stop_name,
            topic=topic,
            thread_shares=shares,
            key=f"{spec.name}-{row.name}-{sweep_id}",
            retries=spec.retries,
            pure=False,
        )
        futures[future] = number
        submitted[number] = time.perf_counter()
        done.add(future)

    def note_events() -> None:
        while True:
            try:
                msg = events.get_nowait()
            except queue.Empty:
                return
            number, worker = int(msg["trial"]), str(msg["worker"])
            attempts = started.setdefault(number, [])
            attempts.append(worker)
            rows[number].attempts = len(attempts)
            name = rows[number].name
            if len(attempts) > 1:
                log(f"{name}: its worker was lost; retry {len(attempts) - 1} on {worker}")

    for _ in range(min(window, len(waiting))):
        submit_next()
    try:
        for future in done:
            note_events()
            number = futures.pop(future)
            seconds = _store_result(future, rows[number], root, spec, log)
            if seconds is not None:
                overheads.append(time.perf_counter() - submitted[number] - seconds)
            _save_progress(spec, root, rows)
            log(format_table(list(rows.values()), spec.parameters, spec.metric, spec.mode))
            if waiting:
                submit_next()
        if overheads:
            log(f"Dask overhead per trial (submit to result, less the trial's own time): median {statistics.median(overheads):.3f} s")
        return False
    except KeyboardInterrupt:
        note_events()
        stop.set()
        running = {f: n for f, n in futures.items() if n in started}
        pending = [f for f in futures if f not in running]
        client.cancel(pending)
        log(
            f"interrupted: {len(pending) + len(waiting)} trial(s) not started stay pending; waiting for {len(running)} running trial(s) "
            "to save (Ctrl-C again to stop waiting)"
        )
        waiting.clear()
        try:
            for future in as_completed(list(running), timeout=INTERRUPT_WAIT_S):
                _store_result(future, rows[running[future]], root, spec, log)
        except KeyboardInterrupt:
            log("stopped waiting; trials still running are left as pending")
        except TimeoutError:
            log(f"gave up waiting after {INTERRUPT_WAIT_S} s; trials still running are left as pending")
        return True


def _resume_files(folder: Path) -> dict[str, bytes] | None:
    """An interrupted trial's run folder, to continue from its last.npz; None starts it afresh."""
    from cnn_cli.runs import RunPaths

    paths = RunPaths(folder)
    if not (paths.config.is_file() and paths.last.is_file()):
        return None
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
    }


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
        if name in (RUN_FILE, SUMMARY_FILE):
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
