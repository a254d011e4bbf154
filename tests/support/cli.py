"""Helpers for the robustness tests: run ``cnn`` in-process or as a real process, and check what it printed.

A "clear error" (issue 6) is: the expected exit code, exactly one line on stderr
that starts with ``error:`` and names what was wrong, and no traceback anywhere.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import traceback
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner

from cnn_cli.cli.main import cli
from tests.support import REPO_ROOT

EXIT_BAD_INPUT = 2
EXIT_FAULT = 1
EXIT_INTERRUPTED = 130


@dataclass
class Outcome:
    """What one ``cnn`` command did: its exit code and both output streams."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a real ``cnn`` process: this checkout first on the path, no debug mode."""
    env = {k: v for k, v in os.environ.items() if k != "CNN_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def cli_command(args: Sequence[object], optimize: bool = False) -> list[str]:
    """``python [-O] -m cnn_cli ARGS`` as an argument list."""
    return [sys.executable, *(["-O"] if optimize else []), "-m", "cnn_cli", *map(str, args)]


def run_cli(args: Sequence[object], *, cwd: Path | None = None, optimize: bool = False, timeout: float = 60) -> Outcome:
    """Run ``python [-O] -m cnn_cli ARGS`` as a real process and wait for it (killed after ``timeout`` s)."""
    completed = subprocess.run(
        cli_command(args, optimize),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_environment(),
        check=False,
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr)


class Hang(BaseException):
    """A command ran past its deadline. A BaseException, so no ``except Exception`` in the library hides it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` inside the block after ``seconds`` (main thread only), so a hang fails the test."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke_cli(args: Sequence[object], timeout: float = 10) -> Outcome:
    """Run ``cnn ARGS`` in-process through click's CliRunner (stdout and stderr kept apart).

    An exception that escapes the CLI is turned into what a real process would
    show: a traceback on stderr and exit code 1. A command still running after
    ``timeout`` seconds raises :class:`Hang`.
    """
    with deadline(timeout):
        result = CliRunner().invoke(cli, [str(a) for a in args])
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
        code = 1
    return Outcome(code, result.stdout, stderr)


def error_line(outcome: Outcome, code: int, *fragments: str) -> str:
    """Check a clear error: exit ``code``, one ``error: ...`` line on stderr holding every fragment.

    Returns the message without its ``error: `` prefix.
    """
    shown = f"exit {outcome.code}\n--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
    assert "Traceback" not in outcome.output, shown
    assert outcome.code == code, shown
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: "), shown
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in the error line\n{shown}"
    return lines[0].removeprefix("error: ")


def write_config(path: Path, config: dict) -> Path:
    """Write a config dict as a YAML file."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- .npz surgery


def npz_members(path: Path) -> dict[str, bytes]:
    """The raw bytes of every member of an .npz, by member name (``conv1.weight.npy``)."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_npz_members(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    """Write raw members into a new zip, as ``np.savez`` lays them out."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    """One ``.npy`` member's bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    """Parse one plain ``.npy`` member."""
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


# ---------------------------------------------------------------- bounded child processes

CHILD_MEMORY_BYTES = 1 << 30  # a cnn process needs ~200 MB; a blow-up hits this instead of the machine


def run_cli_bounded(
    args: Sequence[object], *, cwd: Path | None = None, timeout: float = 30, memory_bytes: int = CHILD_MEMORY_BYTES
) -> Outcome:
    """Like :func:`run_cli`, with the child's address space capped (``RLIMIT_AS``), for inputs that probe limits.

    A child that tries to allocate past the cap gets MemoryError instead of eating the
    machine; one that hangs is killed after ``timeout`` seconds (``subprocess.TimeoutExpired``).
    """
    import resource

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    completed = subprocess.run(
        cli_command(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_environment(),
        check=False,
        preexec_fn=cap_memory,
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr)


def start_cli_bounded(
    args: Sequence[object],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    memory_bytes: int = CHILD_MEMORY_BYTES,
    script: str | None = None,
) -> subprocess.Popen:
    """Start ``cnn ARGS`` as a real process with its address space capped, for tests that signal it or race it.

    ``script`` (Python run with ``-c``, ending in ``main()``) stands in for ``-m cnn_cli`` where a test must
    point the process at a loopback service first. The caller waits for it with :func:`finish`.
    """
    import resource

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return subprocess.Popen(
        cli_command(args) if script is None else [sys.executable, "-c", script, *map(str, args)],
        cwd=cwd,
        env=cli_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=cap_memory,
    )


def finish(process: subprocess.Popen, timeout: float = 60) -> Outcome:
    """Wait for a started process (killed after ``timeout`` s, which fails the test through TimeoutExpired)."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return Outcome(process.returncode, out, err)


def wait_until(condition, process: subprocess.Popen | None = None, timeout: float = 60, what: str = "the condition") -> None:
    """Poll ``condition()`` every 10 ms; fail if ``process`` ends first or ``timeout`` s pass."""
    import time

    until = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        if time.monotonic() > until:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.01)


@dataclass
class Measured(Outcome):
    """An :class:`Outcome` with what the child process cost: wall-clock and CPU (user + system) seconds."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


def run_cli_measured(
    args: Sequence[object], *, cwd: Path | None = None, timeout: float = 60, memory_bytes: int = CHILD_MEMORY_BYTES
) -> Measured:
    """:func:`run_cli_bounded`, timed: the child's own CPU seconds beside the wall clock.

    CPU time is what a check of speed can rely on on a shared, loaded machine, where the
    wall clock mostly measures the other processes; report both, with the load. The CPU
    time is the growth of this process's reaped children's (``RUSAGE_CHILDREN``): the child
    is the only one reaped meanwhile.
    """
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    outcome = run_cli_bounded(args, cwd=cwd, timeout=timeout, memory_bytes=memory_bytes)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(outcome.code, outcome.stdout, outcome.stderr, wall, cpu)


def load_average() -> str:
    """The machine's 1-minute load average, to print beside a timing."""
    return f"{os.getloadavg()[0]:.1f}"
