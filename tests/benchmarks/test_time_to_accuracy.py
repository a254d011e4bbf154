"""benchmarks/time_to_accuracy.py: its arithmetic, and a quick real run of every contestant."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "time_to_accuracy.py"
spec = importlib.util.spec_from_file_location("time_to_accuracy", SCRIPT)
assert spec is not None and spec.loader is not None
benchmark = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = benchmark  # its dataclasses look their module up there
spec.loader.exec_module(benchmark)


def test_time_to_is_the_first_epoch_at_the_target():
    curve = benchmark.Curve("x", seconds=[10.0, 20.0, 30.0], accuracy=[0.985, 0.991, 0.989])
    assert curve.time_to(0.990) == (20.0, 2)
    assert curve.time_to(0.985) == (10.0, 1)
    assert curve.time_to(0.993) is None


def test_report_gives_ratios_to_the_reference():
    ours = benchmark.Curve("ours", seconds=[30.0, 60.0], accuracy=[0.991, 0.994])
    theirs = benchmark.Curve("theirs", seconds=[40.0, 80.0, 120.0], accuracy=[0.985, 0.990, 0.992])
    text = benchmark.report([ours, theirs], theirs)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()}
    assert "| 30.0 (1) | 60.0 (2) | 0.38 | – |" in rows["ours"]
    assert "| 80.0 (2) | not reached | 1.00 | – |" in rows["theirs"]


@pytest.mark.slow
def test_quick_run_times_ours_and_the_stock_example(tmp_path, mnist_data_dir):
    """--quick: 1,000 training images and one epoch each; a real `cnn train` and the PyTorch example in their processes.
    Real MNIST is fetched first (the session fixture), so a clean checkout runs this rather than skipping it."""
    pytest.importorskip("torch")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(SCRIPT), "--quick", "--configs", "smoke", "--data-dir", str(mnist_data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "load average" in lines[0]
    ours = next(line for line in lines if line.startswith("| cnn train --config smoke |"))
    theirs = next(line for line in lines if line.startswith("| PyTorch examples/mnist |"))
    for row in (ours, theirs):
        accuracy = float(row.split("|")[-3].strip().rstrip("%")) / 100
        assert 0.5 < accuracy < 1.0  # one epoch of 1,000 images learns something, and is not near 99%
