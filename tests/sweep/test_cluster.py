"""A "cluster" of separate processes on 127.0.0.1: ``dask scheduler`` and two ``dask worker``s, each in its own empty folder.

The sweep is submitted with ``--scheduler``; no folder is shared, so the data goes
to the workers and the records come back through Dask. The worker-kill test runs
last: it leaves the cluster with one worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from tests.support.cli import cli_command, cli_environment  # noqa: E402
from tests.sweep.support import make_sweep_folder, read_csv, sweep_folder  # noqa: E402

START_TIMEOUT_S = 60
SWEEP_TIMEOUT_S = 120


@dataclass
class Cluster:
    address: str
    worker_dirs: list[Path]
    workers: list[subprocess.Popen]


def _environment() -> dict[str, str]:
    env = cli_environment({"PYTHONUNBUFFERED": "1"})
    for name in ("CNN_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(name, None)
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``dask scheduler`` + 2 ``dask worker --no-nanny`` processes, each worker in its own empty folder."""
    from distributed import Client

    base = tmp_path_factory.mktemp("cluster")
    env = _environment()
    scheduler_file = base / "scheduler.json"
    log = (base / "scheduler.log").open("w")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(scheduler_file)],
        cwd=base,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    processes = [scheduler]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.is_file() and time.monotonic() < deadline and scheduler.poll() is None:
            time.sleep(0.1)
        assert scheduler_file.is_file(), (base / "scheduler.log").read_text()
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker_dirs = []
        for i in (1, 2):
            folder = base / f"worker-{i}"
            folder.mkdir()
            worker_dirs.append(folder)
            worker_log = (base / f"worker-{i}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
                    + ["--host", "127.0.0.1", "--name", f"w{i}", "--local-directory", str(base / f"scratch-{i}")],
                    cwd=folder,
                    env=env,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                )
            )
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield Cluster(address, worker_dirs, processes[1:])
    finally:
        for process in reversed(processes):
            _stop(process)


def test_a_sweep_on_separate_worker_processes_brings_every_record_home(cluster: Cluster, tmp_path: Path) -> None:
    client_dir = tmp_path / "client"
    path = make_sweep_folder(client_dir, {"optimizer.lr": [0.003, 0.01, 0.03]})
    completed = subprocess.run(
        cli_command(["sweep", path.name, "--scheduler", cluster.address]),
        cwd=client_dir,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=SWEEP_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "sending 4 data file(s)" in completed.stdout
    root = sweep_folder(client_dir / "runs")
    rows = read_csv(root / "sweep.csv")
    assert [r["status"] for r in rows] == ["completed"] * 3
    for row in rows:
        folder = root / row["trial"]
        for name in ("config.yaml", "run.json", "metrics.csv", "summary.json", "checkpoints/best.npz", "checkpoints/last.npz"):
            assert (folder / name).is_file(), f"{folder / name} did not arrive"
        run = json.loads((folder / "run.json").read_text())
        assert run["sweep"]["worker"] == row["worker"]
        # a remote worker's trial gets its share of the host's cores (2 workers on this host)
        assert run["sweep"]["threads"]["CNN_NUM_THREADS"] == str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert len({r["worker"] for r in rows}) >= 1
    for folder in cluster.worker_dirs:
        # the workers got the data at the config's relative paths, and wrote no run folders of their own
        assert not (folder / "runs").exists()
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert names in ([], [f"data/tiny/{n}" for n in sorted(p.name for p in (client_dir / "data" / "tiny").iterdir())]), names


def test_a_worker_killed_mid_trial_has_its_trial_retried(cluster: Cluster, tmp_path: Path) -> None:
    client_dir = tmp_path / "client"
    path = make_sweep_folder(client_dir, {"optimizer.lr": [0.003, 0.01]}, overrides={"train.epochs": 12})
    sweep = subprocess.Popen(
        cli_command(["sweep", path.name, "--scheduler", cluster.address]),
        cwd=client_dir,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ours = {p.pid: p for p in cluster.workers}
    lines: list[str] = []
    killed = None
    try:
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        assert sweep.stdout is not None
        for line in sweep.stdout:
            lines.append(line)
            if killed is None and " started on " in line:  # announced as the trial begins: kill it at once, mid-trial
                trial, pid = line.split()[0], int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
                assert pid in ours, line  # only ever kill a process this test started
                ours[pid].kill()
                ours[pid].wait(timeout=10)
                killed = (trial, line.split(" started on ")[1].split()[0])
            assert time.monotonic() < deadline, "".join(lines)
        sweep.wait(timeout=30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=10)
    output = "".join(lines)
    assert killed is not None, output
    assert sweep.returncode == 0, output
    trial, dead_worker = killed
    assert f"{trial}: its worker was lost; retry 1" in output
    rows = {r["trial"]: r for r in read_csv(sweep_folder(client_dir / "runs") / "sweep.csv")}
    assert {r["status"] for r in rows.values()} == {"completed"}, output
    assert rows[trial]["attempts"] == "2" and rows[trial]["worker"] != dead_worker
