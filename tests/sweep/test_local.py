"""Sweeps on the embedded LocalCluster (2 worker processes on 127.0.0.1), on tiny synthetic data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("distributed")

from cnn_cli.errors import CnnError  # noqa: E402
from cnn_cli.runs.folders import read_metrics
from cnn_cli.sweep.engine import new_sweep
from cnn_cli.sweep.options import EngineOptions
from cnn_cli.sweep.spec import load_sweep  # noqa: E402
from tests.support.cli import invoke_cli, run_cli  # noqa: E402
from tests.sweep.support import make_sweep_folder, read_csv, sweep_folder  # noqa: E402

RUN_FILES = ("config.yaml", "run.json", "metrics.csv", "summary.json", "checkpoints/best.npz", "checkpoints/last.npz")


def test_four_trial_sweep_on_two_local_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lrs = [0.001, 0.003, 0.01, 0.03]
    path = make_sweep_folder(tmp_path, {"optimizer.lr": lrs}, overrides={"train.epochs": 2})
    outcome = run_cli(["sweep", path.name, "--workers", "2"], cwd=tmp_path, timeout=120)
    assert outcome.code == 0, outcome.output
    assert "Traceback" not in outcome.output
    root = sweep_folder(tmp_path / "runs")
    assert root.name.startswith("sweep-t-")

    rows = read_csv(root / "sweep.csv")
    assert [r["trial"] for r in rows] == ["trial-001", "trial-002", "trial-003", "trial-004"]
    assert [json.loads(r["optimizer.lr"]) for r in rows] == lrs
    assert {r["status"] for r in rows} == {"completed"}
    assert {r["attempts"] for r in rows} == {"1"}
    workers = {r["worker"] for r in rows}
    assert 1 <= len(workers) <= 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)

    cpus = len(os.sched_getaffinity(0))
    for row in rows:
        folder = root / row["trial"]
        for name in RUN_FILES:
            assert (folder / name).is_file(), f"{folder / name} missing"
        run = json.loads((folder / "run.json").read_text())
        assert run["status"] == "completed" and tmp_path / run["run_dir"] == folder  # relative, as cnn train writes it
        assert run["sweep"]["trial"] == int(row["trial"][-3:])
        # each trial ran with its worker's share of the cores, set before NumPy loaded
        share = str(max(1, cpus // 2))
        assert run["sweep"]["threads"] == {"CNN_NUM_THREADS": share, "OPENBLAS_NUM_THREADS": share, "OMP_NUM_THREADS": share}
        metrics = read_metrics(folder / "metrics.csv")
        summary = json.loads((folder / "summary.json").read_text())
        assert len(metrics) == 2
        best = next(m for m in metrics if m["epoch"] == summary["best_epoch"])
        assert float(row["val_acc"]) == best["val_acc"]
        assert float(row["test_accuracy"]) == summary["test_accuracy"]
        assert tmp_path / summary["checkpoint"] == folder / "checkpoints" / "best.npz"
        assert f"lr: {json.loads(row['optimizer.lr'])}" in (folder / "config.yaml").read_text()

    # the table is printed best first, and the best trial named
    best_row = max(rows, key=lambda r: float(r["val_acc"]))
    final_table = outcome.stdout.split("\n\n")[-1]
    assert final_table.splitlines()[1].split()[1] == best_row["trial"], final_table
    assert f"best: {best_row['trial']}" in outcome.stdout

    with Image.open(root / "sweep.png") as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200

    # a trial folder is a normal run folder: cnn eval reads it (data paths are relative to the sweep's folder)
    monkeypatch.chdir(tmp_path)
    best_folder = root / best_row["trial"]
    evaluated = invoke_cli(["eval", best_folder / "checkpoints" / "best.npz", "--json"], timeout=30)
    assert evaluated.code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(float(best_row["test_accuracy"]))


def test_failed_trials_are_recorded_and_the_rest_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # lr 1e4 with plain SGD diverges on the worker. A 16-pixel kernel fits layer 3's 14-pixel map with padding 1,
    # and a 3-pixel one fits it without padding, but the two together cannot be built: each value is valid on its
    # own (so the sweep file is accepted), the combination fails its trial before it is sent to a worker.
    parameters = {"optimizer.lr": [0.05, 10000.0], "model.layers[3].kernel_size": [3, 16], "model.layers[3].padding": [1, 0]}
    path = make_sweep_folder(tmp_path, parameters, overrides={"optimizer.name": "sgd"})
    monkeypatch.chdir(tmp_path)
    spec = load_sweep(path.name)
    lines: list[str] = []
    result = new_sweep(spec, path.read_text(), EngineOptions(workers=2), "runs", log=lines.append)
    assert not result.interrupted
    root = result.root
    by_trial = {r["trial"]: r for r in read_csv(root / "sweep.csv")}
    for name in ("trial-001", "trial-002", "trial-003"):
        assert by_trial[name]["status"] == "completed", by_trial[name]
    for name in ("trial-005", "trial-006", "trial-007"):
        assert by_trial[name]["status"] == "failed"
        assert "diverged" in by_trial[name]["message"]
        assert by_trial[name]["worker"].startswith("tcp://127.0.0.1:")  # it ran, and failed, on a worker
    for name in ("trial-004", "trial-008"):  # refused before starting: never sent to a worker
        assert by_trial[name]["status"] == "failed"
        assert "kernel" in by_trial[name]["message"] and by_trial[name]["worker"] == ""
    assert result.best is not None and result.best.name in ("trial-001", "trial-002", "trial-003")
    # the diverged run left a normal run folder that says why
    run = json.loads((root / "trial-005" / "run.json").read_text())
    assert run["status"] == "failed" and "diverged" in run["message"]


def test_an_unreachable_scheduler_is_one_error_and_leaves_no_sweep_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = make_sweep_folder(tmp_path, {"optimizer.lr": [0.01]})
    monkeypatch.chdir(tmp_path)
    options = EngineOptions(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(CnnError, match=f"--scheduler tcp://127.0.0.1:{port}: cannot connect"):
        new_sweep(load_sweep(path.name), path.read_text(), options, "runs", log=lambda line: None)
    assert not (tmp_path / "runs").exists()


def test_the_dashboard_without_bokeh_is_refused_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "bokeh" else real_find_spec(name, *args))
    path = make_sweep_folder(tmp_path, {"optimizer.lr": [0.01]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CnnError, match="--dashboard 127.0.0.1:8787: Dask's dashboard needs Bokeh"):
        new_sweep(load_sweep(path.name), path.read_text(), EngineOptions(dashboard="127.0.0.1:8787"), "runs", log=lambda line: None)
    assert not (tmp_path / "runs").exists()
