"""Atomic file writes, the one way ``cnn`` writes a file: checkpoints, run records, plots and the data cache;
and what to do with stdout once its reader has gone away.

The new content goes into a temp file in the same folder, is flushed and
fsynced, then renamed over the target (``os.replace`` is atomic on POSIX), and
the folder is fsynced so the rename itself survives a power cut. A reader sees
the old file or the new one, never half of either.

Every temp file or folder ``cnn`` makes is named ``.<name>.<pid>-<random>.tmp``
(:func:`temp_name`): it is removed in a ``finally`` by the process that made it, and
one left by a process that was killed outright (``kill -9``, the out-of-memory killer)
is swept by the next process that opens its folder (:func:`sweep_stale_temps`), which
tells it from a live writer's by that PID.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from cnn_cli.errors import RuntimeFault

TEMP_SUFFIX = ".tmp"  # every temp file ends so; a leftover one is a bug
_TEMP_PATTERN = re.compile(r"^\..*\.(\d+)(-[0-9a-zA-Z_]+)?\.tmp$")  # .<name>.<pid>[-<random>].tmp
_swept: set[Path] = set()  # the folders this process has swept already


def temp_name(name: str) -> str:
    """The name of a temp file or folder for ``name``: hidden, with this process's PID, unique, ending in ``.tmp``."""
    return f".{name}.{os.getpid()}-{secrets.token_hex(6)}{TEMP_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # not a PID this system can have
        return False
    except OSError:  # it exists, owned by someone else (EPERM)
        return True
    return True


def sweep_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temp files and folders in ``folder`` whose process is gone; the paths removed.

    A temp whose process still runs (a writer at work) is left alone, and so is every
    name that is not one of :func:`temp_name`'s. Done once per folder per process; never fails.
    """
    folder = Path(folder)
    if folder in _swept:
        return []
    _swept.add(folder)
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMP_PATTERN.match(entry.name)
            if match is None or _pid_alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(binary_file)`` on a temp file next to ``path``, then fsync and rename it over ``path``.

    The file gets the usual permissions allowed by the umask (not tempfile's 0600),
    so a shared data cache or a run folder stays readable by others.

    Raises:
        RuntimeFault: an OS error (disk full, read-only folder); the previous file is kept.
        Anything ``write`` raises, after the temp file is removed.
    """
    path = Path(path)
    temp = path.parent / temp_name(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(path.parent)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        _fsync_folder(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise RuntimeFault(f"{path}: could not save ({reason}); the previous file is kept") from exc
        raise


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems cannot fsync a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write` of bytes held in memory."""
    atomic_write(path, lambda handle: handle.write(data))


def silence_stdout() -> None:
    """Point the process's stdout at /dev/null, after its reader went away (``cnn eval | head -1``).

    Nothing written later, Python's own flush at exit included, then fails on the closed
    pipe. A replaced ``sys.stdout`` (a test's capture) is not the process's: it is left alone.
    """
    stdout = sys.__stdout__
    if stdout is None or sys.stdout is not stdout:
        return
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())
        os.close(devnull)
