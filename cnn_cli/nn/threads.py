"""Split the copy-bound parts of a layer over the batch axis, one slice per core.

OpenBLAS already runs each matrix product on every core, but the rest of a
training step (im2col copies, col2im slice-adds, ReLU masks, the Adam update) is
NumPy copying and elementwise loops, which run on one core. NumPy releases the
GIL inside those loops, so plain Python threads working on disjoint slices run
them in parallel.

Only work whose slices are independent goes through here: every output element is
written by exactly one slice with the same arithmetic as the unsplit call, so the
results are bit-identical whatever the thread count. Reductions over the batch
(weight and bias gradients) stay single calls.

``CNN_NUM_THREADS`` sets the thread count (default: the CPUs this process may use;
1 turns the splitting off). The split only pays when OpenBLAS's idle threads sleep
instead of spinning on the cores, which :mod:`cnn_cli.blas_env` arranges.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnn_cli import blas_env, environment

# Below this many elements per call the thread hand-off costs more than it saves.
MIN_ELEMENTS_TO_SPLIT = 1 << 15

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_policy_threads: int | None = None  # set by cnn_cli.nn.thread_policy for the load on the machine


def set_policy_threads(count: int | None) -> None:
    """Split over at most ``count`` threads from now on (None: the usable CPUs again); ``CNN_NUM_THREADS`` still wins."""
    global _policy_threads
    _policy_threads = count


def thread_count() -> int:
    """Threads to split work over: ``CNN_NUM_THREADS``, else the usable CPUs (fewer on a busy machine: ``thread_policy``).

    The default is 1 when OpenBLAS's threads spin between products (see
    :mod:`cnn_cli.blas_env`): split copies would then only fight them for the cores.
    """
    wanted = environment.thread_setting()  # clamped to a few per CPU
    if wanted is not None:
        return wanted
    if not blas_env.COPIES_CAN_SPLIT:
        return 1
    if _policy_threads is not None:
        return max(1, min(_policy_threads, environment.usable_cpus()))
    return environment.usable_cpus()


usable_cpus = environment.usable_cpus  # CPUs this process may run on (asked once)


def batch_slices(n: int, parts: int) -> list[slice]:
    """``n`` items cut into at most ``parts`` contiguous, nearly equal slices."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def for_each_slice(work: Callable[[slice], object], n: int, elements: int) -> None:
    """Call ``work(s)`` for slices ``s`` that cover ``range(n)``, in parallel when worth it.

    ``elements`` is the size of the job (it decides whether splitting pays).
    ``work`` must only write to the part of its outputs that ``s`` selects.
    """
    global _pool, _pool_workers
    threads = thread_count()
    if threads == 1 or n < 2 or elements < MIN_ELEMENTS_TO_SPLIT:
        work(slice(0, n))
        return
    if _pool is None or _pool_workers < threads - 1:
        _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="cnn")
        _pool_workers = threads - 1
    first, *rest = batch_slices(n, threads)
    futures = [_pool.submit(work, s) for s in rest]
    work(first)  # this thread takes a share too
    for future in futures:
        future.result()


def batch_ufunc(ufunc: np.ufunc, *inputs: np.ndarray | float, out: np.ndarray) -> np.ndarray:
    """``ufunc(*inputs, out=out)`` split over the batch axis; scalar inputs are shared by every slice.

    Array inputs must have the same leading (batch) axis as ``out``.
    """

    def apply(batch: slice) -> None:
        ufunc(*(a[batch] if isinstance(a, np.ndarray) else a for a in inputs), out=out[batch])

    for_each_slice(apply, out.shape[0], out.size)
    return out
