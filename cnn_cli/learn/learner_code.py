"""A learner's own file of layer functions, loaded to run inside cnn (``cnn train --impl FILE``).

The file follows the table in :mod:`cnn_cli.learn.learner_api`. It is read once:
the SHA-256 is taken of the very bytes that are compiled, so the hash a run
records is the hash of the code that ran. The learner's code runs in-process, so
everything that can go wrong in it is turned into a message about *their* code:

- an exception inside a learner function stops the run with one line naming the
  function (and the layer), then the learner's own traceback lines, never cnn's;
- a deadline or a second Ctrl-C while a learner function runs raises
  :class:`StopLearnerCode` there, and the run stops at the last finished step.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_cli import signals
from cnn_cli.bounded_read import read_bytes
from cnn_cli.errors import EXIT_FAULT, CnnError, StepStopped
from cnn_cli.learn.learner_api import LEARNER_FUNCTIONS, LearnerFunction

MAX_TRACEBACK_LINES = 4  # the innermost frames of the learner's file that a failure shows


class StopLearnerCode(BaseException):
    """Raised inside a running learner function to stop it (a deadline, a second Ctrl-C).

    A BaseException, so that an ``except Exception`` in the learner's code does not swallow it.
    """

    def __init__(self, reason: str, cause: str, exit_code: int = EXIT_FAULT) -> None:
        super().__init__(reason)
        self.reason, self.cause, self.exit_code = reason, cause, exit_code


class LearnerStop(StepStopped):
    """The learner's code stopped the run: it raised (``interrupted`` False: the run failed),
    or it was stopped while it ran (True: the run is saved at its last finished step)."""

    def __init__(
        self, message: str, interrupted: bool, exit_code: int = EXIT_FAULT, cause: str = "stopped", not_written: bool = False
    ) -> None:
        super().__init__(message, interrupted, exit_code, cause)
        self.not_written = not_written  # the function raised NotImplementedError (an exercise's TODO)


@dataclass
class LearnerCode:
    """The learner's module, where it came from, and which learner function is running right now."""

    path: Path
    sha256: str
    source: bytes  # the bytes that were hashed and compiled
    module: types.ModuleType
    running: str | None = None  # e.g. "conv2d_backward (layer conv1)" while learner code runs
    last: str | None = None  # the latest learner function called
    seconds: dict[str, float] = field(default_factory=dict)  # time per learner function, summed

    @property
    def label(self) -> str:
        """``my_layers.py (sha256 1a2b3c4d)``: how records and reports name the file."""
        return f"{self.path.name} (sha256 {self.sha256[:8]})"

    def __deepcopy__(self, memo: dict[int, Any]) -> LearnerCode:
        return self  # the code is shared by every copy of a model that runs it (modules cannot be copied)

    def function(self, name: str) -> Callable[..., Any] | None:
        """The learner's function ``name``, or None when the file does not define it as a function."""
        value = getattr(self.module, name, None)
        return value if callable(value) else None

    def defines(self, entry: LearnerFunction) -> bool:
        """Whether the file defines this entry of the table completely (both functions of a pair)."""
        names = [f"{entry.name}_forward", f"{entry.name}_backward"] if entry.backward else [entry.name]
        return all(self.function(name) is not None for name in names)

    def half_pairs(self) -> list[tuple[str, str]]:
        """(name, ``conv2d_forward without conv2d_backward``) for each pair the file defines only one half of."""
        notes = []
        for entry in LEARNER_FUNCTIONS:
            if not entry.backward:
                continue
            forward, backward = self.function(f"{entry.name}_forward"), self.function(f"{entry.name}_backward")
            if (forward is None) != (backward is None):
                have, lack = ("forward", "backward") if forward else ("backward", "forward")
                notes.append((entry.name, f"{entry.name}_{have} without {entry.name}_{lack}"))
        return notes


LEARNER_CODE_BYTES = 1 << 20  # a file of hand-written layers is a few KB; a bigger one is not code a learner wrote


def load_learner_code(path: str | Path) -> LearnerCode:
    """Read, hash and import the learner's file (run as written: it is their code).

    Raises:
        CnnError: the file is missing, unreadable, not Python, or raises while it is imported.
    """
    path = Path(path)
    try:
        source = read_bytes(path, LEARNER_CODE_BYTES, "Python file")
    except CnnError as exc:
        raise CnnError(f"--impl: {exc}") from None
    digest = hashlib.sha256(source).hexdigest()
    module = types.ModuleType(f"cnn_learner_{digest[:16]}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickle look their module up while it runs
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except SyntaxError as exc:
        raise CnnError(f"--impl: {path}: syntax error on line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # the learner's module-level code failed: report it as their input
        where = learner_traceback(exc, path)
        raise CnnError(f"--impl: {path}: importing it raised {type(exc).__name__}: {exc}" + "".join(f"; {w}" for w in where)) from None
    finally:
        sys.modules.pop(module.__name__, None)
    return LearnerCode(path, digest, source, module)


def learner_traceback(exc: BaseException, path: Path) -> list[str]:
    """The frames of ``exc``'s traceback that are in the learner's file, innermost last: ``my_layers.py:42 in f: line``."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if Path(frame.filename) == Path(path)]
    return [f"{path.name}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}" for frame in frames[-MAX_TRACEBACK_LINES:]]


def call_learner(code: LearnerCode, function: str, where: str, args: tuple[Any, ...], kwargs: dict[str, Any], signature: str) -> Any:
    """Call the learner's ``function`` for ``where`` (e.g. "layer conv1"), keeping track of what is running.

    Raises:
        LearnerStop: the function raised (a failure naming it, with the learner's traceback lines),
            or it was stopped while it ran (interrupted).
    """
    label = f"{function} ({where})"
    code.running = code.last = label
    began = time.perf_counter()
    target = code.function(function)
    try:
        if target is None:  # pragma: no cover - callers only wrap what the file defines
            raise NameError(f"{function} is not defined")
        return target(*args, **kwargs)
    except StopLearnerCode as stop:
        raise LearnerStop(f"{stop.reason} while {label} ran", True, stop.exit_code, stop.cause) from None
    except Exception as exc:
        raise failure(code, label, exc, _signature_problem(target, args, kwargs, signature) if isinstance(exc, TypeError) else "") from None
    except SystemExit as exc:  # sys.exit() in the learner's code is its failure, never cnn's exit (0 would look like a pass)
        raise failure(code, label, exc) from None
    except KeyboardInterrupt as exc:  # raised by the learner's own code, unless a signal came (cnn_cli.signals)
        if signals.came():
            raise
        raise failure(code, label, exc) from None
    finally:
        code.running = None
        code.seconds[function] = code.seconds.get(function, 0.0) + time.perf_counter() - began


def _signature_problem(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], signature: str) -> str:
    """When the learner's function cannot take cnn's arguments at all: the signature it should have, else ""."""
    try:
        inspect.signature(target).bind(*args, **kwargs)
    except TypeError as exc:
        call = ", ".join(["..."] * len(args) + [f"{key}={value!r}" for key, value in kwargs.items()])
        return f"cnn calls it as ({call}) ({exc}); expected {signature}"
    except ValueError:  # no signature to read (a builtin): the call itself will say what is wrong
        return ""
    return ""


def failure(code: LearnerCode, label: str, exc: Exception | SystemExit | KeyboardInterrupt, expected: str = "") -> LearnerStop:
    """The stop for an exception raised by a learner function: one line, then the learner's own traceback lines."""
    if expected:
        what = f"does not fit: {expected}"
    elif isinstance(exc, NotImplementedError):
        what = "is not written yet (raises NotImplementedError)"
    elif isinstance(exc, SystemExit):
        what = f"called sys.exit({exc.code!r}); a learner function returns its result instead"
    else:
        what = f"raised {type(exc).__name__}: {' '.join(str(exc).split())}"  # the message on the one line
    lines = [f"{label} {what}", *(f"  {frame}" for frame in learner_traceback(exc, code.path))]
    return LearnerStop("\n".join(lines), interrupted=False, not_written=isinstance(exc, NotImplementedError) and not expected)
