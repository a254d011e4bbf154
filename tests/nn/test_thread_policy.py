"""The thread policy on a busy machine: the decision as a function of the load, and a real process under load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from cnn_cli.nn.thread_policy import running_others, threads_for_load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    ("others", "cores", "expected"),
    [
        (0, 2, 2),  # a quiet machine keeps every core (its speed must not drop)
        (0.5, 2, 2),
        (1, 2, 2),  # one busy core: the other is still ours
        (2, 2, 1),  # no core free: threads would wait at every barrier for their turn
        (3, 2, 1),  # the case: 3 busy processes on 2 cores, 2-4x faster on one thread
        (10, 2, 1),
        (0, 1, 1),
        (5, 1, 1),
        (0, 16, 16),
        (1, 16, 16),
        (15, 16, 2),
        (16, 16, 1),
        (12.5, 16, 4),
        (8, 8, 1),
    ],
)
def test_threads_for_load(others, cores, expected):
    assert threads_for_load(others, cores) == expected


def test_threads_for_load_never_leaves_its_range():
    for cores in range(1, 33):
        counts = [threads_for_load(others / 2, cores) for others in range(0, 4 * cores)]
        assert all(1 <= c <= cores for c in counts)
        assert all(a >= b for a, b in zip(counts, counts[1:], strict=False)), "more load never means more threads"


@pytest.mark.parametrize(("others", "cores"), [(-1, 2), (0, 0)])
def test_threads_for_load_rejects_nonsense(others, cores):
    with pytest.raises(ValueError, match="threads_for_load"):
        threads_for_load(others, cores)


SPIN = "import time\nend = time.time() + 60\nwhile time.time() < end: pass"
CHILD = """
import json, os
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
import cnn_cli
from cnn_cli.nn.thread_policy import adapt_to_load, openblas_threads
before = openblas_threads()
chosen = adapt_to_load(cores=2)
print(json.dumps({"before": before, "chosen": chosen, "after": openblas_threads()}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs and Linux")
def test_a_real_process_takes_one_thread_beside_three_busy_processes():
    """Three spinning processes on 2 cores: a fresh process sees them and sets OpenBLAS to 1 thread."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(3)]
    try:
        time.sleep(0.5)  # let them reach the run queue
        assert running_others() >= 3 - 1e-9
        settings = ("OPENBLAS_NUM_THREADS", "CNN_NUM_THREADS", "OMP_NUM_THREADS", "CNN_THREAD_POLICY")
        env = {k: v for k, v in os.environ.items() if k not in settings}
        env["PYTHONPATH"] = ROOT
        done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120, check=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == 2, "OpenBLAS starts on both cores"
    assert result["chosen"][0] == 1 and result["chosen"][1] >= 3
    assert result["after"] == 1


def test_a_thread_count_the_user_set_is_kept():
    env = {**os.environ, "PYTHONPATH": ROOT, "OPENBLAS_NUM_THREADS": "2"}
    code = "import cnn_cli\nfrom cnn_cli.nn.thread_policy import adapt_to_load\nprint(adapt_to_load(cores=2))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert done.stdout.strip() == "None"
