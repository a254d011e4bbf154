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
import queue
import statistics
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnn_cli.bounded_read import read_json
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import DEFAULT_RUNS_ROOT, new_run_dir, write_json, write_text
from cnn_cli.runs.ownership import lock_existing_folder
from cnn_cli.sweep.cluster import _dask_client, _thread_shares, require_dask
from cnn_cli.sweep.options import EngineOptions, SweepResult
from cnn_cli.sweep.report import (
    SWEEP_CSV,
    TrialRow,
    format_table,
    read_sweep_csv,
)
from cnn_cli.sweep.results import (
    SWEEP_FILE,
    SWEEP_JSON,
    TrialFolders,
    _conclude,
    _finish_row,
    _resume_files,
    _save_progress,
    _store_result,
)
from cnn_cli.sweep.spec import SweepSpec, Trial

INTERRUPT_WAIT_S = 120  # how long Ctrl-C waits for running trials to save before giving up on them


TERMINAL = ("completed", "failed")  # what --resume does not run again


def new_sweep(
    spec: SweepSpec, sweep_text: str, options: EngineOptions, runs_root: str | Path = DEFAULT_RUNS_ROOT, log: Callable[[str], None] = print
) -> SweepResult:
    """Run a new sweep in ``<runs_root>/sweep-<name>-<time>/`` (made once the cluster is reachable)."""
    rows = {t.number: TrialRow(t.number, t.params) for t in spec.trials}
    with contextlib.ExitStack() as owned:  # the sweep folder is this process's until the sweep ends

        def create() -> Path:
            root = new_run_dir(f"sweep-{spec.name}", runs_root).root
            owned.enter_context(lock_existing_folder(root, log))
            write_json(root / SWEEP_JSON, spec.as_dict())
            write_text(root / SWEEP_FILE, sweep_text)
            return root

        return _execute(spec, rows, options, log, create)


def resume_sweep(root: str | Path, options: EngineOptions, log: Callable[[str], None] = print) -> SweepResult:
    """Finish a sweep: run its pending and interrupted trials (interrupted ones continue from their last.npz)."""
    root = open_sweep(root)[0]  # a sweep folder, or one line saying it is not, before it is locked
    with lock_existing_folder(root, log):  # a second `cnn sweep --resume` of it is refused, naming this process
        root, spec, rows = open_sweep(root)
        return _execute(spec, rows, options, log, lambda: root)


def open_sweep(root: str | Path) -> tuple[Path, SweepSpec, dict[int, TrialRow]]:
    """An existing sweep folder: its spec and what sweep.csv says about each trial."""
    root = Path(root)
    meta = root / SWEEP_JSON
    if not meta.is_file():
        raise CnnError(f"{root}: not a sweep folder (no {SWEEP_JSON})")
    try:
        spec = SweepSpec.from_dict(read_json(meta))  # bounded: never waits on a FIFO
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
    """Submit the trials, a window at a time, each trial's folder owned until its result is stored. True if Ctrl-C stopped it.

    It also reports Dask's cost per trial: submission to result, less the trial's own time on its worker
    (pickling, transfers, the scheduler's round trips; with the default window a worker is free at each submission).
    """
    from distributed import Event, as_completed

    from cnn_cli.sweep.trial import run_trial  # imported by name on the workers

    sweep_id = uuid.uuid4().hex[:8]
    topic, stop_name = f"cnn-sweep-{sweep_id}", f"cnn-sweep-stop-{sweep_id}"
    stop = Event(stop_name, client=client)
    events = _subscribe_to_starts(client, topic, log)
    data_future = _scatter_data(client, [configs[n] for n in runnable], options, log)
    shares = _thread_shares(client)
    window = spec.parallelism or max(1, sum(client.nthreads().values()))
    waiting, owned = deque(runnable), TrialFolders(root, log)
    futures: dict[Any, int] = {}
    started: dict[int, list[str]] = {}
    done = as_completed()
    submitted: dict[int, float] = {}
    overheads: list[float] = []

    def submit_next() -> None:
        number = waiting.popleft()
        row = rows[number]
        owned.own(row)
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

    for _ in range(min(window, len(waiting))):
        submit_next()
    try:
        for future in done:
            _note_starts(events, started, rows, log)
            number = futures.pop(future)
            seconds = _store_result(future, rows[number], root, spec, log)
            owned.release(number)
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
        _note_starts(events, started, rows, log)
        stop.set()
        _wait_for_running(client, futures, started, waiting, rows, root, spec, log)
        return True
    finally:
        owned.release()


def _subscribe_to_starts(client: Any, topic: str, log: Callable[[str], None]) -> queue.Queue:
    """Log each trial's start message as it arrives on ``topic``, and queue it for :func:`_note_starts`."""
    events: queue.Queue = queue.Queue()

    def on_event(event: tuple[float, dict[str, Any]]) -> None:  # runs on the client's event-loop thread
        msg = event[1]
        events.put(msg)
        log(f"trial-{int(msg['trial']):03d} started on {msg['worker']} (pid {msg['pid']})")

    client.subscribe_topic(topic, on_event)
    return events


def _scatter_data(client: Any, trial_configs: list[dict[str, Any]], options: EngineOptions, log: Callable[[str], None]) -> Any:
    """Send every worker the data files the trials read, once; the future they share, or None if nothing is shipped.

    Shipping is the default with ``--scheduler`` (workers may not share the
    client's folder); ``--ship-data`` / ``--no-ship-data`` choose.
    """
    from cnn_cli.sweep.data import files_to_ship

    ship = options.ship_data if options.ship_data is not None else bool(options.scheduler)
    if not ship:
        return None
    from cnn_cli.config.build import config_from_dict

    files = files_to_ship([config_from_dict(config) for config in trial_configs])
    log(f"sending {len(files)} data file(s), {sum(map(len, files.values())) / 1e6:.1f} MB, to every worker")
    [data_future] = client.scatter([files], broadcast=True)
    return data_future


def _note_starts(events: queue.Queue, started: dict[int, list[str]], rows: dict[int, TrialRow], log: Callable[[str], None]) -> None:
    """Record the workers each trial has started on; a second start means Dask retried it after losing a worker."""
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


def _wait_for_running(
    client: Any,
    futures: dict[Any, int],
    started: dict[int, list[str]],
    waiting: deque[int],
    rows: dict[int, TrialRow],
    root: Path,
    spec: SweepSpec,
    log: Callable[[str], None],
) -> None:
    """After Ctrl-C: cancel the trials not yet started, and store those running as they save (for up to INTERRUPT_WAIT_S)."""
    from distributed import as_completed

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
