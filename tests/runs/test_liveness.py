"""runs/liveness.py: a recorded process is alive, gone, reused by another process, or unknown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from cnn_cli.runs.liveness import process_alive, this_process


def test_this_process_is_alive() -> None:
    me = this_process()
    assert me["pid"] == os.getpid() and me["host"] == socket.gethostname()
    assert process_alive(me) is True


def test_a_killed_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    record = {"pid": child.pid, "host": socket.gethostname()}
    assert process_alive(record) is True
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert process_alive(record) is False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times come from /proc (Linux)")
def test_a_reused_pid_is_not_mistaken_for_the_run() -> None:
    me = this_process()
    assert process_alive({**me, "pid_start": me["pid_start"] + 1}) is False


HERE = socket.gethostname()


UNKNOWN = [{}, {"pid": "12"}, {"pid": True, "host": HERE}, {"pid": -1, "host": HERE}, {"pid": 1, "host": "another-host"}]


@pytest.mark.parametrize("record", UNKNOWN)
def test_unknown_when_it_cannot_be_told(record: dict) -> None:
    assert process_alive(record) is None
