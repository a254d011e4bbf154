"""The Dask side of a sweep: the client (an embedded LocalCluster or a scheduler address) and how threads are shared."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from cnn_cli.errors import CnnError
from cnn_cli.sweep.options import EngineOptions
from cnn_cli.sweep.spec import SweepSpec
from cnn_cli.sweep.trial import THREAD_SETTINGS

INSTALL_HINT = 'cnn sweep needs Dask: pip install ".[sweep]"  (or: pip install "dask[distributed]")'


def require_dask() -> None:
    """Raise a CnnError with the install command when Dask is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CnnError(INSTALL_HINT) from None


@contextlib.contextmanager
def _dask_client(options: EngineOptions, spec: SweepSpec, n_trials: int) -> Iterator[tuple[Any, str]]:
    import dask
    from distributed import Client

    if options.scheduler:
        try:
            left = reach_scheduler(options.scheduler, options.connect_timeout)
            client = Client(options.scheduler, timeout=left)
        except (OSError, TimeoutError, ValueError) as exc:
            raise CnnError(f"--scheduler {options.scheduler}: cannot connect ({exc})") from None
        try:
            yield client, f"the cluster at {options.scheduler}"
        finally:
            client.close()
        return
    if options.dashboard and importlib.util.find_spec("bokeh") is None:
        raise CnnError(f"--dashboard {options.dashboard}: Dask's dashboard needs Bokeh: pip install bokeh")
    cores = _usable_cpus()
    n_workers = options.workers or max(1, min(cores, n_trials, spec.parallelism or cores))
    share = str(max(1, cores // n_workers))
    scratch = tempfile.mkdtemp(prefix="cnn-dask-")  # Dask's own files (its dask-scratch-space), gone with the cluster
    try:
        with dask.config.set({"temporary-directory": scratch}):
            yield from _local_cluster(n_workers, share, options, spec)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _local_cluster(n_workers: int, share: str, options: EngineOptions, spec: SweepSpec) -> Iterator[tuple[Any, str]]:
    """A client of a new cluster of ``n_workers`` local worker processes, each told to use ``share`` threads."""
    from distributed import Client, LocalCluster

    # Set in each worker process before NumPy loads there, so OpenBLAS starts with the worker's share of the cores.
    env = dict.fromkeys(THREAD_SETTINGS, share)
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=options.dashboard,
        scheduler_kwargs={"allowed_failures": spec.retries},
        silence_logs=logging.ERROR,
        env=env,
        preload=["cnn_cli.sweep.worker_setup"],
    )
    try:
        client = Client(cluster)
        try:
            dashboard = f"; dashboard {client.dashboard_link}" if options.dashboard else ""
            yield client, f"a local cluster of {n_workers} worker(s) x {share} thread(s) on 127.0.0.1{dashboard}"
        finally:
            client.close()
    finally:
        cluster.close()


def reach_scheduler(address: str, seconds: float) -> float:
    """Connect to a TCP scheduler and wait for the first bytes of its handshake, all under one deadline of ``seconds``.

    A Dask scheduler writes its handshake as soon as it accepts a connection. A server
    that accepts and then says nothing (not a scheduler, or a hung one) would otherwise
    be waited on past Dask's own connect timeout, which covers only part of the way.
    Addresses other than ``tcp://`` (``tls://``, ``ucx://``) are left to Dask.

    Returns:
        the seconds left of the deadline, for the client's own connection.
    Raises:
        CnnError: no connection, or no handshake, within ``seconds``.
    """
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return seconds
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        return seconds  # Dask names what is wrong with the address
    until = time.monotonic() + seconds
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds) as probe:
            probe.settimeout(max(until - time.monotonic(), 0.001))
            if not probe.recv(1):
                raise CnnError(f"--scheduler {address}: closed the connection without a handshake; is it a Dask scheduler?")
    except TimeoutError:
        raise CnnError(f"--scheduler {address}: no answer within {seconds:g} s (connect and handshake); is it a Dask scheduler?") from None
    except OSError as exc:
        raise CnnError(f"--scheduler {address}: cannot connect ({exc.strerror or exc})") from None
    return max(until - time.monotonic(), 0.001)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _thread_shares(client: Any) -> dict[str, int]:
    """Each worker's share of its machine's cores: the machine's CPUs over the worker threads it hosts."""
    cpus = client.run(_usable_cpus)
    hosts: dict[str, int] = {}
    info = client.scheduler_info(n_workers=-1)["workers"]
    for worker in info.values():
        hosts[worker["host"]] = hosts.get(worker["host"], 0) + int(worker["nthreads"])
    return {address: max(1, int(cpus.get(address, 1)) // max(1, hosts[worker["host"]])) for address, worker in info.items()}
