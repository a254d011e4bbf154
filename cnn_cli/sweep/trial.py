"""One trial, as it runs on a Dask worker: train in a worker-local folder, send the records back.

The worker needs no shared filesystem with the client. :func:`run_trial` trains
with :func:`cnn_cli.training.train.train` into a temporary folder, then returns every file
of that run folder as bytes in a :class:`TrialOutcome`; the client writes them
into ``<sweep>/trial-NNN/`` (see :mod:`cnn_cli.sweep.engine`). A trial that
fails (diverges, a config that cannot work) returns ``status="failed"`` with its
message rather than raising, so Dask's ``retries`` are left for workers that die.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_cli.errors import CnnError, RuntimeFault
from cnn_cli.runs.ownership import LOCK_FILE

# How often a running trial asks the scheduler whether the sweep was interrupted (a round trip each time).
STOP_POLL_SECONDS = 0.5
THREAD_SETTINGS = ("CNN_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


@dataclass
class TrialOutcome:
    """What a worker sends back: the trial's status, its summary and the run folder's files."""

    number: int
    status: str  # completed | failed | interrupted
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # path inside the run folder (posix) -> content
    seconds: float = 0.0
    worker: str = ""
    threads: dict[str, str] = field(default_factory=dict)  # the thread settings the trial ran with


def run_trial(
    number: int,
    config: dict[str, Any],
    *,
    data_files: dict[str, bytes] | None = None,
    resume_files: dict[str, bytes] | None = None,
    stop_event: str | None = None,
    topic: str | None = None,
    thread_shares: dict[str, int] | None = None,
) -> TrialOutcome:
    """Run one trial on this worker (called through ``client.submit``).

    Args:
        number: the trial's number (for messages and the events the client shows).
        config: the trial's full config as a plain dict.
        data_files: dataset files sent by the client (see :mod:`cnn_cli.sweep.data`), or None
            to use this worker's own cache.
        resume_files: the run folder of an interrupted trial, to continue from its last.npz.
        stop_event: name of the Dask Event the client sets on Ctrl-C; the trial then
            stops after its current step and saves as interrupted.
        topic: Dask event topic where the trial announces that it started.
        thread_shares: CNN_NUM_THREADS by worker address (each worker's share of its machine's cores);
            used unless the worker was started with CNN_NUM_THREADS set.
    """
    from cnn_cli.config.build import config_from_dict
    from cnn_cli.sweep.data import place_files
    from cnn_cli.training.train import train

    worker, should_stop = _worker_hooks(number, stop_event, topic)
    if thread_shares and worker in thread_shares and not os.environ.get("CNN_NUM_THREADS"):
        os.environ["CNN_NUM_THREADS"] = str(thread_shares[worker])  # read on every split, so it applies from here on
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"cnn-trial-{number:03d}-") as tmp:
        run_dir = Path(tmp) / "run"
        try:
            if data_files:
                place_files(data_files)
            if resume_files:
                _write_tree(run_dir, resume_files)
                result = train(None, resume=run_dir, runs_root=tmp, log=_quiet, should_stop=should_stop)  # type: ignore[arg-type]
            else:
                result = train(
                    config_from_dict(config),
                    run_dir=run_dir,
                    runs_root=tmp,
                    command_line=["cnn", "sweep", f"trial-{number:03d}"],
                    log=_quiet,
                    should_stop=should_stop,
                )
        except (CnnError, RuntimeFault) as exc:
            return TrialOutcome(number, "failed", str(exc), files=_read_tree(run_dir), seconds=_since(start), worker=worker)
        except Exception as exc:  # a bug should fail this trial, not the sweep
            return TrialOutcome(
                number, "failed", f"{type(exc).__name__}: {exc}", files=_read_tree(run_dir), seconds=_since(start), worker=worker
            )
        return TrialOutcome(number, result.status, result.message, result.summary, _read_tree(run_dir), _since(start), worker, _threads())


def _threads() -> dict[str, str]:
    return {name: os.environ.get(name, "") for name in THREAD_SETTINGS}


def _quiet(line: str) -> None:
    """Trials run unattended: the client prints one line per finished trial instead."""


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _worker_hooks(number: int, stop_event: str | None, topic: str | None):
    """This worker's address, and a ``should_stop()`` that polls the sweep's stop Event now and then."""
    try:
        from distributed import Event, get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # called outside a Dask worker (tests, a plain function call)
        return "", None
    if topic:
        worker.log_event(topic, {"trial": number, "event": "started", "worker": worker.address, "pid": os.getpid()})
    if stop_event is None:
        return worker.address, None
    event = Event(stop_event)
    last_poll = [0.0]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last_poll[0] < STOP_POLL_SECONDS:
            return False
        last_poll[0] = now
        return bool(event.is_set())

    return worker.address, should_stop


def _read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by its posix path inside it (temp files, links and the worker's run.lock skipped)."""
    if not root.is_dir():
        return {}
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".") and path.name != LOCK_FILE:
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    from cnn_cli.io import atomic_write_bytes

    for name, content in files.items():
        atomic_write_bytes(root / name, content)
