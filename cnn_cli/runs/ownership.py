"""Who owns a run folder: one writer at a time, held by an exclusive lock on ``run.lock`` inside it.

A process that writes a run's records (``cnn train``, ``cnn train --resume``, each trial
of a sweep) owns the folder for as long as it writes:

- a new folder is claimed atomically: ``run.lock`` is made under a temp name, locked,
  filled with the owner's PID and command, and only then linked into place with
  ``os.link``, which fails if the name exists. Of two processes that race for one
  ``--run-dir`` (``mkdir`` and any check before it are no help there) exactly one wins;
  the other gets one line naming the winner's PID;
- an existing folder (a resume) is locked with ``fcntl.flock(LOCK_EX | LOCK_NB)`` on its
  ``run.lock``; a second writer gets one line naming the holder's PID (exit 2);
- the kernel drops a ``flock`` when its process dies, however it died, so a lock never
  outlives its owner. A clean end removes ``run.lock``; one that is still there names a
  process that was killed, and is taken over, the new owner saying so;
- a file system that has no locks (some network mounts answer ``ENOLCK``) does not stop a
  run: the claim by ``os.link`` still holds for new folders, and a resume says that a
  second writer cannot be detected there.

Readers (``eval``, ``plot``, ``compare``, ``serve``) never take the lock: every record is
written with :func:`cnn_cli.io.atomic_write`, so they see a whole file, old or new. The
one exception is ``steps.csv``, appended a row at a time, whose reader drops a line cut
short (:mod:`cnn_cli.training.step_log`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnn_cli.errors import CnnError
from cnn_cli.io import temp_name

LOCK_FILE = "run.lock"
_HOLDER_WAIT_S = 0.5  # how long to wait for a new owner to write its PID into run.lock
_PROBE_WAIT_S = 0.25  # how long a lock is retried: another starter's check holds it for an instant


class RunInUse(CnnError):
    """Another process writes this run folder now (exit 2, one line naming its PID)."""


class RunLock:
    """The exclusive lock on one run folder; :meth:`release` (or leaving the ``with``) gives it up."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder, self._fd = folder, fd

    @property
    def fd(self) -> int:
        return self._fd

    def release(self) -> None:
        """Remove ``run.lock`` while still holding it, then unlock: a clean end leaves the folder as it was.

        A process waiting on the removed file notices (:func:`_lock` checks that the name still is
        the file it locked) and starts again on a new one, so two owners never coexist.
        """
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.folder / LOCK_FILE)
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # a file system without flock


def _flock(fd: int, operation: int) -> bool:
    """``flock(fd, operation | LOCK_NB)``: True if locked, False where the file system has no locks.

    Raises:
        BlockingIOError: another process holds the lock.
    """
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return False
        raise
    return True


def _flock_soon(fd: int) -> bool:
    """:func:`_flock` exclusive, retried for :data:`_PROBE_WAIT_S` (:func:`check_not_in_use` holds a shared lock briefly)."""
    until = time.monotonic() + _PROBE_WAIT_S
    while True:
        try:
            return _flock(fd, fcntl.LOCK_EX)
        except BlockingIOError:
            if time.monotonic() >= until:
                raise
            time.sleep(0.02)


def _identity() -> bytes:
    command = ["cnn", *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command}).encode()


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, _identity(), 0)


def _read_holder(path: Path, wait: float = 0.0) -> dict[str, Any]:
    """What ``run.lock`` says about its holder ({} when it names none); waits up to ``wait`` s for a new owner to write it."""
    until = time.monotonic() + wait
    while True:
        try:
            value = json.loads(path.read_bytes()[:4096] or b"{}")
        except (OSError, ValueError):
            value = {}
        if (isinstance(value, dict) and value) or time.monotonic() >= until:
            return value if isinstance(value, dict) else {}
        time.sleep(0.05)


def _in_use(folder: Path, what: str) -> RunInUse:
    holder = _read_holder(folder / LOCK_FILE, _HOLDER_WAIT_S)
    pid = holder.get("pid")
    who = f"PID {pid}" if isinstance(pid, int) else "another process"
    host = holder.get("host")
    where = f" on {host}" if isinstance(host, str) and host != socket.gethostname() else ""
    command = holder.get("command")
    doing = f" ({' '.join(map(str, command))})" if isinstance(command, list) and command else ""
    return RunInUse(f"{folder}: {what} by {who}{where}{doing}; wait for it to finish, or stop it first")


def check_not_in_use(folder: Path) -> None:
    """Raise :class:`RunInUse` if a process owns ``folder`` now (a quick early check; owning it is another step)."""
    try:
        probe = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return
    try:
        _flock(probe, fcntl.LOCK_SH)
    except BlockingIOError:
        raise _in_use(folder, "claimed") from None
    finally:
        os.close(probe)


def claim_new_folder(folder: Path) -> RunLock:
    """Make ``folder`` (it may exist only if empty) and own it, atomically (see the module docstring).

    Raises:
        RunInUse: another process claimed it first (naming its PID).
        CnnError: it is not a folder, or already holds a run.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CnnError(f"--run-dir {folder}: exists and is not a folder") from None
    temp = folder / temp_name(LOCK_FILE)
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _flock(fd, fcntl.LOCK_EX)  # nobody else can have a name for it yet
        _write_holder(fd)
        os.link(temp, folder / LOCK_FILE)  # the claim: fails when the name exists
        lock = RunLock(folder, fd)
    except FileExistsError:  # run.lock was there first: a live owner is named; an empty folder's old lock is taken
        os.close(fd)
        lock = _lock(folder, "claimed")
        _write_holder(lock.fd)
    except BaseException:
        os.close(fd)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    others = [entry.name for entry in folder.iterdir() if entry.name != LOCK_FILE and not entry.name.endswith(".tmp")]
    if others:  # a run (finished, or from before run.lock existed), or files the user put there
        lock.release()
        raise CnnError(f"--run-dir {folder}: already holds a run; use --resume {folder} to continue it, or choose a new folder")
    return lock


def _lock(folder: Path, what: str, log: Callable[[str], None] = print) -> RunLock:
    """``flock`` the folder's ``run.lock`` (made if missing); a holder gets :class:`RunInUse` naming it."""
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            locked = _flock_soon(fd)
            if _same_file(fd, path):
                break
        except BlockingIOError:
            os.close(fd)
            raise _in_use(folder, what) from None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the owner before removed it as this process waited: lock the new one
    if not locked:
        log(f"warning: {folder}: its file system has no locks; a second process writing this run would not be noticed")
    return RunLock(folder, fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def lock_existing_folder(folder: Path, log: Callable[[str], None] = print) -> RunLock:
    """Own an existing run folder (to resume it); a lock left by a killed owner is taken over, with a note.

    Raises:
        RunInUse: another process holds it (naming its PID).
    """
    lock = _lock(folder, "being written", log)
    stale = _read_holder(folder / LOCK_FILE)
    if isinstance(stale.get("pid"), int) and stale["pid"] != os.getpid():
        log(f"note: {folder}: took over the lock of PID {stale['pid']}, which is gone (it ended without releasing it)")
    with contextlib.suppress(OSError):  # a read-only lock file still locks; the next owner only misses the PID
        _write_holder(lock.fd)
    return lock
