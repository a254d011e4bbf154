"""How many threads to use on a machine other programs are busy on.

A training step is a chain of matrix products (OpenBLAS, one thread per core) and
copies split over the same cores (:mod:`cnn_cli.nn.threads`). Every product and
every split copy ends at a barrier where the threads wait for each other. On an
idle machine each thread has a core to itself. When other programs keep the cores
busy, the scheduler gives our threads turns of a few milliseconds each, and a
product waits at its barrier for the slowest thread's next turn: with three busy
processes on two cores, one epoch ran 2–4× faster on one thread than on two.

So when a run starts (``cnn_cli.training.callbacks.ThreadPolicy``: once, recorded in run.json
and reused by a resume, since OpenBLAS rounds by thread count), :func:`adapt_to_load` counts
the other runnable processes and sets the threads to :func:`threads_for_load`:
the cores the others leave free plus one, at most all of them and at least 1. A thread count the user chose
(``OPENBLAS_NUM_THREADS``, ``CNN_NUM_THREADS``) is never changed.
"""

from __future__ import annotations

import ctypes
import math
import os
import statistics
import time
from pathlib import Path

from cnn_cli.nn import threads

USER_SETTINGS = ("OPENBLAS_NUM_THREADS", "CNN_NUM_THREADS", "OMP_NUM_THREADS")
SAMPLES = 9  # readings of the run queue, SAMPLE_GAP_S apart, whose median is taken
SAMPLE_GAP_S = 0.005
# The symbols that set OpenBLAS's thread count: NumPy's own build (scipy-openblas, 64-bit ints), then a system OpenBLAS.
SET_THREADS_SYMBOLS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
GET_THREADS_SYMBOLS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def threads_for_load(others: float, cores: int) -> int:
    """Threads for a process that shares ``cores`` with ``others`` runnable processes.

    The cores the others leave free, plus one: ``cores − others + 1`` rounded down,
    at most ``cores`` and at least 1. On 2 cores: both with 0 or 1 busy process (the
    free core, and a share of the busy one), one thread from 2 busy processes on.

    >>> [threads_for_load(n, 2) for n in (0, 1, 2, 3, 6)]
    [2, 2, 1, 1, 1]
    >>> [threads_for_load(n, 16) for n in (0, 1, 12.5, 15, 16, 20)]
    [16, 16, 4, 2, 1, 1]
    """
    if cores < 1 or others < 0:
        raise ValueError(f"threads_for_load: expected cores >= 1 and others >= 0, got cores={cores}, others={others}")
    return min(cores, max(1, math.floor(cores - others + 1)))


def user_chose_threads() -> bool:
    """True when the environment fixes a thread count (the user's choice wins), or ``CNN_THREAD_POLICY=off`` asks for the
    default count whatever the load (the test suite does, so that two runs it compares round alike)."""
    off = os.environ.get("CNN_THREAD_POLICY", "").strip().lower() == "off"
    return off or any(os.environ.get(name, "").strip() for name in USER_SETTINGS)


def running_others(samples: int = SAMPLES, gap_s: float = SAMPLE_GAP_S) -> float | None:
    """Other runnable threads on this machine right now: the median of ``procs_running`` (/proc/stat) minus this one.

    None where /proc/stat cannot be read (not Linux).
    """
    readings = []
    for index in range(samples):
        try:
            text = Path("/proc/stat").read_text()
        except OSError:
            return None
        running = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("procs_running ")), None)
        if running is None:
            return None
        readings.append(max(running - 1, 0))  # the thread reading is running too
        if index + 1 < samples:
            time.sleep(gap_s)
    return float(statistics.median(readings))


def _openblas_function(symbols: tuple[str, ...]):
    """The first of ``symbols`` in the loaded OpenBLAS library, or None (another BLAS, or none found)."""
    import numpy  # noqa: F401 - loads OpenBLAS, whose path /proc/self/maps then shows

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    for path in paths:
        library = ctypes.CDLL(path)
        for symbol in symbols:
            if hasattr(library, symbol):
                return getattr(library, symbol)
    return None


def set_threads(count: int) -> bool:
    """Run OpenBLAS's products and our split copies on ``count`` threads. False if OpenBLAS's count could not be set."""
    threads.set_policy_threads(count)
    setter = _openblas_function(SET_THREADS_SYMBOLS)
    if setter is None:
        return False
    setter(count)
    return True


def openblas_threads() -> int | None:
    """The threads OpenBLAS runs a product on now, or None where it cannot be asked."""
    getter = _openblas_function(GET_THREADS_SYMBOLS)
    return None if getter is None else int(getter())


def adapt_to_load(cores: int | None = None) -> tuple[int, float] | None:
    """Set the thread count for the load right now; (threads, others seen), or None when the user fixed it or load is unknown."""
    if user_chose_threads():
        return None
    others = running_others()
    if others is None:
        return None
    cores = cores or threads.usable_cpus()
    count = threads_for_load(others, cores)
    set_threads(count)
    return count, others
