"""Fixtures for the ``cnn serve`` tests: a real trained run on real MNIST, copied into a fresh runs folder per test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnn_cli.config.load import load_config
from cnn_cli.runs.folders import RunPaths
from cnn_cli.training.train import train

NEEDS_SERVE_EXTRA = "cnn serve needs its extra (Flask, threadpoolctl): pip install '.[serve]'"

TRAINED_RUN = "smoke-trained"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> RunPaths:
    """A completed ``smoke`` run on 10,000 real MNIST images, 2 epochs (about 95% test accuracy, a second or two)."""
    root = tmp_path_factory.mktemp("trained") / TRAINED_RUN
    config = load_config("smoke", ["data.limit=10000", "train.epochs=2", f"data.data_dir={mnist_data_dir}"])
    result = train(config, run_dir=root, command_line=["cnn", "train", "-c", "smoke"], log=lambda line: None)
    assert result.status == "completed", result.message
    return result.run


@pytest.fixture
def runs_root(tmp_path: Path, trained_run: RunPaths) -> Path:
    """A fresh runs folder holding a copy of the trained run (tests may add, break or symlink runs in it)."""
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(trained_run.root, root / TRAINED_RUN)
    return root


def copy_run(runs_root: Path, name: str, status: str | None = None, started: str | None = None) -> RunPaths:
    """Copy the trained run under another name, optionally changing its status or start time in run.json."""
    paths = RunPaths(runs_root / name)
    shutil.copytree(runs_root / TRAINED_RUN, paths.root)
    info = json.loads(paths.run_info.read_text())
    info.update({k: v for k, v in (("status", status), ("started", started)) if v is not None})
    paths.run_info.write_text(json.dumps(info))
    return paths


@pytest.fixture
def client(runs_root: Path) -> Iterator:
    """A Flask test client for the app over ``runs_root``."""
    from cnn_cli.serve.app import create_app

    app = create_app(runs_root)
    app.testing = True
    with app.test_client() as test_client:
        yield test_client
