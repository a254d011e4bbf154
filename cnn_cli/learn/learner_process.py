"""Run a learner's file in a process of its own, under a time limit, and read back what it returned.

``cnn exercise check`` and ``cnn gradcheck --impl`` both come through here: the
learner's code never runs inside cnn. :func:`run_learner` writes the calls and
their arrays to a temporary folder, starts ``learner_child.py`` on it, and reads the
answer. Whatever the learner's code does instead of returning becomes a
:class:`LearnerFailure` with one headline and the learner's own traceback lines:

- it raises (``NotImplementedError`` from an untouched skeleton included);
- it runs past the time limit (an infinite loop): the line it was on is shown;
- it ends the process (``sys.exit(0)``, ``os._exit(0)``) or the process dies.

A failure of the learner's code is never a success: the caller turns it into a
failed stage (exit 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TIMEOUT = 5.0  # seconds per stage: the learner's loops on tiny tensors need well under one
MEMORY_LIMIT = 2 << 30  # bytes of address space for the learner's process
OUTPUT_LIMIT = 64 << 20  # bytes any file the learner's process writes may hold (its prints, the arrays it returns)
MAX_FRAMES = 6  # lines of the learner's traceback shown (a runaway recursion has a thousand)
CHILD = Path(__file__).with_name("learner_child.py")
STARTUP_LIMIT = 120.0  # seconds for the child to start (import Python and NumPy) before its time limit begins
GRACE = 5.0  # seconds past the limit before the process is killed from outside (faulthandler ends it first)


@dataclass(frozen=True)
class Foreign:
    """Something the learner's code returned that is not an array, a number, a tuple, a dict or None."""

    kind: str  # its type, e.g. "str"
    shown: str  # the start of its repr


@dataclass(frozen=True)
class Number:
    """A Python or NumPy scalar the learner's code returned."""

    value: float
    kind: str  # "float", "int", "float64", ...


@dataclass
class LearnerCall:
    """One call of the learner's functions: ``function(*args, **kwargs)``, then ``backward(upstream, cache)``.

    Arguments are JSON: ``{"$array": key}`` names an array of the request, ``{"$dict": {...}}``
    a dict of them. ``numeric`` lists the arrays to differentiate L = Σ weights · out by central
    differences of the learner's own ``function`` (out = its first return value; without
    ``weights`` out is the scalar loss itself).
    """

    function: str
    args: list[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    backward: str | None = None
    upstream: str | None = None
    numeric: list[str] = field(default_factory=list)
    weights: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "args": self.args,
            "kwargs": self.kwargs,
            "backward": self.backward,
            "upstream": self.upstream,
            "numeric": self.numeric,
            "weights": self.weights,
        }


@dataclass
class Returned:
    """What one :class:`LearnerCall` gave back, decoded."""

    value: Any  # the forward's out (its whole return value when there is no backward, or when it was no pair)
    grads: Any = None  # the backward's return value
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    not_a_pair: bool = False  # the forward did not return (out, cache)


@dataclass
class LearnerFailure:
    """The learner's code did not return: one headline, then the lines of the learner's file involved."""

    function: str
    headline: str
    lines: list[str] = field(default_factory=list)
    call: int = -1  # the index of the call it happened in (-1: importing the file)

    def text(self, indent: str = "") -> str:
        return "\n".join([indent + self.headline, *(indent + "  " + line for line in self.lines)])


def array_ref(key: str) -> dict[str, str]:
    """The JSON argument that passes the request's array ``key``."""
    return {"$array": key}


def run_learner(
    path: Path, calls: list[LearnerCall], arrays: dict[str, np.ndarray], timeout: float = DEFAULT_TIMEOUT
) -> list[Returned] | LearnerFailure:
    """Make ``calls`` in a fresh process running the learner's file; all of them within ``timeout`` seconds."""
    path = Path(path).resolve()
    with tempfile.TemporaryDirectory(prefix="cnn-exercise-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "arrays.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
        request = {
            "file": str(path),
            "timeout": timeout,
            "memory": MEMORY_LIMIT,
            "output": OUTPUT_LIMIT,
            "calls": [c.as_json() for c in calls],
        }
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(folder / "output.txt", "wb") as output:
            returncode = _run_child(folder, output, env, timeout + GRACE)
        return _read_answer(folder, path, returncode, timeout, len(calls))


def _run_child(folder: Path, output: Any, env: dict[str, str], limit: float) -> int | None:
    """Run the child on ``folder`` in a process group of its own; its exit code, or None when killed at ``limit`` seconds.

    Whatever the learner's code started (a subprocess, a fork) is in that group and is
    killed with it when the child ends, when the limit passes, and when cnn itself is stopped.
    """
    process = subprocess.Popen(
        [sys.executable, "-P", str(CHILD), str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        env=env,
        start_new_session=True,
    )
    try:
        started = _wait_until_started(process, folder / "progress.txt")
        return process.wait(timeout=limit) if started else process.returncode
    except subprocess.TimeoutExpired:
        return None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_until_started(process: subprocess.Popen[bytes], marker: Path) -> bool:
    """Wait for the child to be ready (its progress file exists: Python and NumPy imported, the limits set),
    so that a busy machine's slow start is not counted against the learner's time limit.

    Returns False when the child ended first (its exit code is then ``process.returncode``).
    Raises subprocess.TimeoutExpired when it is not ready after STARTUP_LIMIT seconds.
    """
    give_up = time.monotonic() + STARTUP_LIMIT
    while not marker.exists():
        if process.poll() is not None:
            return False
        if time.monotonic() > give_up:
            raise subprocess.TimeoutExpired(process.args, STARTUP_LIMIT)
        time.sleep(0.01)
    return True


def _read_answer(folder: Path, path: Path, returncode: int | None, timeout: float, calls: int) -> list[Returned] | LearnerFailure:
    """What the child reported; a failure unless it positively reported a result for every call (or the failure that stopped it)."""
    answer = folder / "response.json"
    progress = (folder / "progress.txt").read_text(encoding="utf-8", errors="replace") if (folder / "progress.txt").exists() else ""
    running, call = _last_called(progress)
    if not answer.exists():
        failure = _no_answer(path, running, progress, returncode, timeout, folder)
        failure.call = call
        return failure
    try:
        outcomes = json.loads(answer.read_text(encoding="utf-8"))["outcomes"]
        with np.load(folder / "response.npz", allow_pickle=False) as stored:
            returned_arrays = {key: stored[key] for key in stored.files}
        complete = len(outcomes) == calls or (0 < len(outcomes) <= calls and outcomes[-1]["status"] != "ok")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        complete = False
    if not complete:  # the file the learner's code runs from can write there too: only a whole report counts
        return LearnerFailure(running, f"the process running your code did not report a result for every call ({_who(running)} ran last)")
    results: list[Returned] = []
    for outcome in outcomes:
        if outcome["status"] != "ok":
            failure = _failure(outcome, path)
            failure.call = -1 if str(outcome.get("function", "")).startswith("import ") else len(results)
            return failure
        numeric = {key: _decode(item, returned_arrays) for key, item in outcome.get("numeric", {}).items()}
        results.append(
            Returned(
                value=_decode(outcome["value"], returned_arrays),
                grads=_decode(outcome["grads"], returned_arrays) if "grads" in outcome else None,
                numeric=numeric,
                not_a_pair=bool(outcome.get("not_a_pair")),
            )
        )
    return results


def _decode(item: Any, arrays: dict[str, np.ndarray]) -> Any:
    if "array" in item:
        return arrays[item["array"]]
    if "number" in item:
        return Number(item["number"], item["type"])
    if "none" in item:
        return None
    if "tuple" in item:
        values = [_decode(part, arrays) for part in item["tuple"]]
        return values if item.get("list") else tuple(values)
    if "dict" in item:
        return {key: _decode(part, arrays) for key, part in item["dict"].items()}
    return Foreign(item["foreign"], item.get("repr", ""))


def _failure(outcome: dict[str, Any], path: Path) -> LearnerFailure:
    function = outcome.get("function", "your code")
    status = outcome["status"]
    if status == "missing":
        return LearnerFailure(function, f"{outcome['message']} in {path.name} (keep the skeleton's names: the checker calls them)")
    if status == "exit":
        code = outcome.get("code")
        return LearnerFailure(
            function,
            f"{_who(function)} called sys.exit({'' if code is None else code}): your code ended the process instead of returning",
        )
    if status == "unusable":
        return LearnerFailure(function, f"what {_who(function)} returned could not be used: {outcome['message']}")
    message = outcome.get("message", "")
    frames = [f"{file}, line {line}, in {name}: {source}" for file, line, name, source in outcome.get("frames", [])]
    if len(frames) > MAX_FRAMES:  # a runaway recursion: where it began, and where it was when it stopped
        frames = [*frames[:2], f"... {len(frames) - MAX_FRAMES + 2} more lines of your file ...", *frames[-(MAX_FRAMES - 2) :]]
    if message.startswith("NotImplementedError"):
        return LearnerFailure(function, f"{_who(function)} is not written yet (it raises NotImplementedError): fill it in", frames[-1:])
    return LearnerFailure(
        function, f"{_who(function)} raised {message}", frames or ["(no line of your file: the error came from a call into a library)"]
    )


def _who(function: str) -> str:
    return f"importing {function.removeprefix('import ')}" if function.startswith("import ") else function


def _last_called(progress: str) -> tuple[str, int]:
    """The function running last, and the index of its call, from the child's progress lines."""
    called = re.findall(r"^calling (.+) #(-?\d+)$", progress, flags=re.MULTILINE)
    return (called[-1][0], int(called[-1][1])) if called else ("your code", -1)


def _no_answer(path: Path, running: str, progress: str, returncode: int | None, timeout: float, folder: Path) -> LearnerFailure:
    """The process ended without writing its answer: out of time, ended by the learner's code, or died."""
    if returncode is None or "Timeout (" in progress:
        where = _stack_location(progress, path)
        return LearnerFailure(
            running,
            f"{_who(running)} did not finish within {timeout:g} s: an infinite loop? "
            "(if your code is only slow, give it longer with --timeout)",
            [f"it was running {where}"] if where else [],
        )
    if returncode == 0:
        return LearnerFailure(
            running, f"the process ended with exit code 0 while {_who(running)} was running, without returning: os._exit() in your code?"
        )
    tail = (folder / "output.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    how = f"signal {-returncode}, {_signal_name(-returncode)}" if returncode < 0 else f"exit code {returncode}"
    return LearnerFailure(running, f"the process running your code died ({how}) while {_who(running)} was running", tail)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _stack_location(progress: str, path: Path) -> str:
    """The innermost line of the learner's file in faulthandler's dump, with its source."""
    for file, line in re.findall(r'File "(.+)", line (\d+) in ', progress):
        if Path(file) == path:
            try:
                source = path.read_text(encoding="utf-8").splitlines()[int(line) - 1].strip()
            except (OSError, IndexError, UnicodeDecodeError):
                source = ""
            return f"{path.name}, line {line}" + (f": {source}" if source else "")
    return ""
