"""Dask preload for the embedded LocalCluster's workers: Ctrl-C is the client's to handle.

A Ctrl-C in a terminal reaches every process of the foreground group, and the
local workers are the client's children. Without this they would die at once and
their trials would be lost; instead the client tells running trials to stop
after their current step and save (see :mod:`cnn_cli.sweep.engine`).
"""

from __future__ import annotations

import signal
import threading


def dask_setup(worker: object) -> None:
    """Called by Dask once in each worker process as it starts."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
