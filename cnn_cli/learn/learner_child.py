"""The process a learner's file runs in: ``python -P learner_child.py FOLDER``.

A learner's file is foreign code: it may loop forever, end the process, raise, or
return anything at all. So cnn never imports it. This script, started by
:mod:`cnn_cli.learn.learner_process` in a process of its own, imports the file,
makes the calls listed in ``FOLDER/request.json`` on the arrays of
``FOLDER/arrays.npz`` and writes what came back to ``FOLDER/response.json`` and
``FOLDER/response.npz``. Only numpy and the standard library are imported here,
so the process starts quickly and the learner's code meets nothing of cnn's.

``FOLDER/progress.txt`` names each function just before it is called; if the time
limit passes, :mod:`faulthandler` writes every thread's stack there and ends the
process, so the runner can say which line of the learner's file was running.

A call in ``request.json``::

    {"function": "maxpool2d_forward", "args": [{"$array": "x"}], "kwargs": {"size": 2},
     "backward": "maxpool2d_backward", "upstream": "g",   # optional: backward(upstream, cache)
     "numeric": ["x"], "weights": "g", "eps": 1e-5}       # optional: central differences

A value coming back is described, never pickled: an array (saved in the .npz), a
number, a tuple, a dict, None, or ``{"foreign": type name}`` for anything else.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

MAX_ITEMS = 16  # a tuple or dict longer than this is described by its length only


class LearnerStopped(Exception):
    """The learner's code raised, or asked the process to end: stop making calls."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__(outcome.get("message", ""))
        self.outcome = outcome


class Session:
    """The learner's module, the request's arrays, and the arrays collected for the response."""

    def __init__(self, folder: Path, learner: Path) -> None:
        self.folder = folder
        self.learner = learner
        self.progress = open(folder / "progress.txt", "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - open until exit
        with np.load(folder / "arrays.npz", allow_pickle=False) as stored:
            self.arrays = {key: stored[key] for key in stored.files}
        self.returned: dict[str, np.ndarray] = {}
        self.module: Any = None
        self.marked = ""
        self.current = "your code"  # the learner function called last: what a value that cannot be used came from
        self.call_index = -1  # which call of the request is running (-1: the import)

    def mark(self, what: str) -> None:
        self.current = what
        line = f"calling {what} #{self.call_index}\n"
        if line != self.marked:  # central differences call the same forward hundreds of times: say it once
            self.progress.write(line)
            self.progress.flush()
            self.marked = line

    def run(self, function_name: str, call: Any) -> Any:
        """``call()``, the learner's code: an exception or an exit becomes :class:`LearnerStopped`."""
        self.mark(function_name)
        try:
            return call()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) or exc.code is None else str(exc.code)
            raise LearnerStopped({"status": "exit", "function": function_name, "code": code}) from None
        except BaseException as exc:  # noqa: BLE001 - everything the learner's code raises is reported, KeyboardInterrupt too
            raise LearnerStopped(
                {
                    "status": "raised",
                    "function": function_name,
                    "message": described(exc)[:500],
                    "frames": self.learner_frames(exc),
                }
            ) from None

    def learner_frames(self, exc: BaseException) -> list[list[Any]]:
        """[file, line, function, source] for the frames of the learner's own file, innermost last."""
        frames = traceback.extract_tb(exc.__traceback__)
        mine = str(self.learner)
        return [[Path(f.filename).name, f.lineno, f.name, (f.line or "").strip()] for f in frames if f.filename == mine]

    def load(self) -> None:
        spec = importlib.util.spec_from_file_location("learner_solution", self.learner)
        if spec is None or spec.loader is None:
            raise LearnerStopped({"status": "raised", "function": "import", "message": "not a Python file", "frames": []})
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        sys.path.insert(0, str(self.learner.parent))  # as `python FILE` would: the learner's own helpers import
        self.run(f"import {self.learner.name}", lambda: spec.loader.exec_module(module))  # type: ignore[union-attr]
        self.module = module

    def function(self, name: str) -> Any:
        found = getattr(self.module, name, None)
        if not callable(found):
            what = "is missing" if found is None else f"is a {type(found).__name__}, not a function"
            raise LearnerStopped({"status": "missing", "function": name, "message": f"{name} {what}"})
        return found

    def value(self, spec: Any) -> Any:
        """A JSON argument made real: ``{"$array": key}`` is a fresh copy of that array (the learner may scribble on it)."""
        if isinstance(spec, dict) and "$array" in spec:
            return self.arrays[spec["$array"]].copy()
        if isinstance(spec, dict) and "$dict" in spec:
            return {key: self.value(item) for key, item in spec["$dict"].items()}
        if isinstance(spec, list):
            return [self.value(item) for item in spec]
        return spec

    def describe(self, value: Any, depth: int = 0) -> Any:
        """What came back, as JSON (arrays go into the response .npz)."""
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            key = f"r{len(self.returned)}"
            self.returned[key] = value
            return {"array": key}
        if isinstance(value, (bool, np.bool_)):
            return {"foreign": type(value).__name__, "repr": repr(value)}
        if isinstance(value, (int, float, np.integer, np.floating)):
            return {"number": float(value), "type": type(value).__name__}
        if value is None:
            return {"none": True}
        if isinstance(value, (tuple, list)) and depth < 2:
            if len(value) > MAX_ITEMS:
                return {"foreign": type(value).__name__, "repr": f"a {type(value).__name__} of {len(value)} items"}
            return {"tuple": [self.describe(item, depth + 1) for item in value], "list": isinstance(value, list)}
        if isinstance(value, dict) and depth < 2 and len(value) <= MAX_ITEMS and all(isinstance(k, str) for k in value):
            return {"dict": {key: self.describe(item, depth + 1) for key, item in value.items()}}
        kind = f"ndarray of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        try:
            shown = repr(value)[:80]
        except BaseException:  # noqa: BLE001 - a learner's __repr__ may raise too
            shown = "?"
        return {"foreign": kind, "repr": shown}

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One forward (and its backward, and its central differences) of the learner's."""
        name = request["function"]
        forward = self.function(name)
        args = [self.value(a) for a in request.get("args", [])]
        kwargs = {key: self.value(v) for key, v in request.get("kwargs", {}).items()}
        result = self.run(name, lambda: forward(*args, **kwargs))
        outcome: dict[str, Any] = {"status": "ok"}
        backward_name = request.get("backward")
        if backward_name is None:
            outcome["value"] = self.describe(result)
        else:
            backward = self.function(backward_name)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                outcome["value"] = self.describe(result)
                outcome["not_a_pair"] = True
                return outcome
            out, cache = result
            outcome["value"] = self.describe(out)
            upstream = request.get("upstream")
            if upstream is None:
                grads = self.run(backward_name, lambda: backward(cache))
            else:
                grads = self.run(backward_name, lambda: backward(self.arrays[upstream].copy(), cache))
            outcome["grads"] = self.describe(grads)
        if request.get("numeric") and "foreign" not in outcome["value"]:  # a string for out: the checker says so, with no numbers
            outcome["numeric"] = self.central_differences(request, forward)
        return outcome

    def central_differences(self, request: dict[str, Any], forward: Any) -> dict[str, Any]:
        """∂L/∂a for each array a named in ``numeric``, L = Σ weights · out (or out itself, a scalar loss)."""
        eps = float(request.get("eps", 1e-5))
        weights = request.get("weights")
        name = request["function"]

        def loss() -> float:
            args = [self.value(a) for a in request.get("args", [])]
            kwargs = {key: self.value(v) for key, v in request.get("kwargs", {}).items()}
            result = self.run(name, lambda: forward(*args, **kwargs))
            out = np.asarray(result[0], dtype=np.float64)
            return float(np.sum(self.arrays[weights] * out)) if weights is not None else float(out)

        found = {}
        for key in request["numeric"]:
            array = self.arrays[key]
            grad = np.zeros(array.shape, dtype=np.float64)
            for index in np.ndindex(array.shape):
                original = array[index]
                array[index] = original + eps
                plus = loss()
                array[index] = original - eps
                minus = loss()
                array[index] = original
                grad[index] = (plus - minus) / (2 * eps)
            found[key] = self.describe(grad)
        return found


def described(exc: BaseException) -> str:
    """``TypeError: message``, even for a learner's exception whose ``__str__`` raises in turn."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - the learner's own __str__ is foreign code too
        return type(exc).__name__


def _limit_output(limit: int) -> None:
    """Cap the size of every file this process writes: a learner printing in a loop fills no disk.

    With SIGXFSZ ignored, a write past the cap fails with EFBIG inside the learner's own
    ``print``, which is then reported as what their code raised.
    """
    try:
        import resource
        import signal
    except ImportError:  # not on this platform
        return
    if limit > 0:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _limit_memory(limit: int) -> None:
    """Cap the address space, so that a runaway allocation is a MemoryError, not a machine out of memory."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if limit > 0 and (hard == resource.RLIM_INFINITY or hard > limit):
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    _limit_memory(int(request.get("memory", 0)))
    _limit_output(int(request.get("output", 0)))
    session = Session(folder, Path(request["file"]))
    # The learner's prints go to stderr: stdout is not read, and a full pipe must not block the process.
    sys.stdout = sys.stderr
    faulthandler.dump_traceback_later(float(request["timeout"]), exit=True, file=session.progress)
    outcomes: list[dict[str, Any]] = []
    try:
        session.load()
        for index, call in enumerate(request["calls"]):
            session.call_index = index
            outcomes.append(session.call(call))
    except LearnerStopped as stopped:
        outcomes.append(stopped.outcome)
    except SystemExit as exc:  # a learner's object ended the process while cnn used it (its __len__, __float__, ...)
        outcomes.append({"status": "exit", "function": session.current, "code": exc.code if isinstance(exc.code, int) else None})
    except BaseException as exc:  # noqa: BLE001 - what the learner returned could not be used, whatever that raised
        outcomes.append({"status": "unusable", "function": session.current, "message": described(exc)[:300]})
    faulthandler.cancel_dump_traceback_later()
    returned = sum(array.nbytes for array in session.returned.values())
    if returned > int(request.get("output", 0)) > 0:
        session.returned = {}
        outcomes = [{"status": "unusable", "function": session.current, "message": f"it returned {returned >> 20} MiB of arrays"}]
    np.savez(folder / "response.npz", **session.returned)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    partial = folder / "response.json.part"
    partial.write_text(json.dumps({"outcomes": outcomes}), encoding="utf-8")
    os.replace(partial, folder / "response.json")  # the runner reads a response only once it is whole
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    sys.stderr.flush()
    os._exit(status)  # not sys.exit: a thread or an atexit hook the learner left behind must not keep the process alive
