"""Is the process that trains a run still there? ``run.json`` names it; a reader checks it.

A run killed with ``kill -9`` (or by the out-of-memory killer, or a power cut) never
writes its final status: its ``run.json`` says ``running`` forever. The training
process therefore records who it is (:func:`this_process`: PID, host name and, on
Linux, the process's start time in clock ticks since boot, so that a PID reused by a
later process is not mistaken for it), and a reader on the same host asks the
operating system whether that process still exists (:func:`process_alive`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time after boot, in clock ticks); None where there is no /proc."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 counted from field 3
    except (IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """What ``run.json`` records about the training process: ``pid``, ``host`` and (Linux) ``pid_start``."""
    identity: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    ticks = _start_ticks(os.getpid())
    if ticks is not None:
        identity["pid_start"] = ticks
    return identity


def process_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process a run record names is still running.

    Args:
        record: ``run.json``'s content, or one of its invocations (``pid``, ``host``, ``pid_start``).
    Returns:
        True or False on the host that wrote it; None when that cannot be told (no PID
        recorded, as in runs from older versions, or another host).
    """
    pid, host = record.get("pid"), record.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    except OSError:
        return None
    recorded = record.get("pid_start")
    if isinstance(recorded, int):
        now = _start_ticks(pid)
        if now is not None and now != recorded:
            return False  # the PID now belongs to a later process
    return True
