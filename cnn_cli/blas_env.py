"""Tell OpenBLAS to let its idle threads sleep, before NumPy loads it.

After every matrix product OpenBLAS keeps its worker threads spinning for about
2^28 CPU cycles (~0.1 s) in case another product follows. In a training step the
next product comes a few milliseconds later, after copies that ``nn/threads.py``
splits over the cores, and a spinning OpenBLAS thread holds exactly the core
those copies need. ``OPENBLAS_THREAD_TIMEOUT=10`` (2^10 cycles) puts the workers
to sleep almost at once; matrix products run just as fast.

OpenBLAS reads the setting once, when NumPy is first imported, so this module
imports nothing heavy and ``cnn_cli/__init__.py`` imports it first. A value the
user set wins. If NumPy was imported before ``cnn_cli`` (a notebook, say) and
the user set nothing, the spin cannot be changed any more, and
:data:`COPIES_CAN_SPLIT` tells ``nn/threads.py`` to keep copies on one thread.
"""

from __future__ import annotations

import os
import sys

SPIN_SETTING = "OPENBLAS_THREAD_TIMEOUT"
SHORT_SPIN = "10"

COPIES_CAN_SPLIT = (
    SPIN_SETTING in os.environ  # the user chose
    or "numpy" not in sys.modules  # OpenBLAS is not loaded yet: our default applies
    or os.environ.get("OPENBLAS_NUM_THREADS", "").strip() == "1"  # no worker threads to spin
)
os.environ.setdefault(SPIN_SETTING, SHORT_SPIN)
