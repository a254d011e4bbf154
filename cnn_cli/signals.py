"""The one signal policy of every ``cnn`` command: SIGTERM and SIGHUP take Ctrl-C's path.

``docker stop``, Slurm and Kubernetes send SIGTERM; a closed terminal sends SIGHUP. Left
to Python's defaults either kills the process on the spot: no ``finally`` runs, so temp
files stay behind, a sweep's running trials are lost and a run's record says "running".
:func:`install` (called once by the console script) makes each of them raise
:class:`KeyboardInterrupt` in the main thread, exactly as Ctrl-C does, so every command
unwinds through the ``finally`` blocks and ``except KeyboardInterrupt`` paths it already
has for Ctrl-C. A second signal within :data:`CLEANUP_GRACE_S` of the one that started
the unwinding is noted but does not cut its ``finally`` blocks short (two quick SIGTERMs
from a supervisor still leave no temp file); one after that raises again, so a command
stuck in its cleanup can still be stopped. The process then ends with ``128 + n`` for signal ``n``
(:func:`exit_code`: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as a shell reports
a process killed by it.

Code that must not be cut mid-step (the training loop) installs its own handlers for
:data:`STOP_SIGNALS` for a while and tells this module of each signal with
:func:`note`, so the exit code names the signal that came whoever caught it.

A signal a parent set to be ignored stays ignored for SIGHUP and SIGTERM (``nohup cnn
train ...`` keeps running when its terminal closes). SIGINT is the exception: a shell
starts background jobs with SIGINT ignored, and ``cnn``'s promise is that Ctrl-C (or
``kill -INT``) stops a run cleanly however it was started.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # Ctrl-C, docker stop / Slurm / Kubernetes, a closed terminal
EXIT_BASE = 128  # a process ended by signal n exits 128 + n
CLEANUP_GRACE_S = 2.0  # after a stop signal, how long the cleanup it started runs undisturbed by another


class _Received:
    """The latest stop signal this process received (SIGINT until one says otherwise)."""

    signum: int = int(signal.SIGINT)
    raised_at: float | None = None  # when the latest KeyboardInterrupt was raised for a signal


def stop_signals() -> list[int]:
    """The numbers of :data:`STOP_SIGNALS` this platform has (no SIGHUP on Windows)."""
    return [int(getattr(signal, name)) for name in STOP_SIGNALS if hasattr(signal, name)]


def note(signum: int) -> None:
    """Remember that stop signal ``signum`` came (for :func:`exit_code`)."""
    _Received.signum = int(signum)


def reset() -> None:
    """Forget the signals of an earlier command run in this process (tests, an embedding program): Ctrl-C's again."""
    _Received.signum, _Received.raised_at = int(signal.SIGINT), None


def came() -> bool:
    """Whether a stop signal has raised KeyboardInterrupt in this command (else one seen was raised by code itself)."""
    return _Received.raised_at is not None


def exit_code() -> int:
    """``128 + n`` for the latest stop signal ``n``: 130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP."""
    return EXIT_BASE + _Received.signum


def describe(signum: int) -> str:
    """How messages name a stop signal: "Ctrl-C" for SIGINT, else its name (SIGTERM)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def raise_interrupt(signum: int, frame: Any) -> None:
    """The handler :func:`install` sets: note the signal, then take Ctrl-C's path (unless the last one's cleanup runs)."""
    note(signum)
    now = time.monotonic()
    if _Received.raised_at is not None and now - _Received.raised_at < CLEANUP_GRACE_S:
        return
    _Received.raised_at = now
    raise KeyboardInterrupt


def keeps_ignoring(signum: int) -> bool:
    """True for a SIGTERM or SIGHUP the parent set to be ignored (``nohup``): it stays ignored."""
    return signum != signal.SIGINT and signal.getsignal(signum) is signal.SIG_IGN


def install() -> None:
    """Make every stop signal raise KeyboardInterrupt in the main thread (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in stop_signals():
        if not keeps_ignoring(signum):
            signal.signal(signum, raise_interrupt)


def ignore_while_exiting() -> None:
    """Once the command has chosen its exit code: ignore stop signals, so that one arriving while Python shuts down
    (which puts the default handlers back, and the default kills) cannot turn that exit code into a kill."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in stop_signals():
        signal.signal(signum, signal.SIG_IGN)
