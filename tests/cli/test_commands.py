"""The command line through click's CliRunner and as real subprocesses, on real MNIST."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import idx2numpy
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnn_cli.cli.main import cli
from cnn_cli.data.images import preprocess

COMMANDS = ["train", "eval", "predict", "summary", "gradcheck", "data", "export", "compare", "lr-find"]


def run_cnn(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m cnn_cli ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "cnn_cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_python_dash_m_works_like_the_console_script():
    proc = run_cnn("--help")
    assert proc.returncode == 0 and "cnn train --config mnist.yaml" in proc.stdout


def test_summary_table_of_the_default_model():
    result = CliRunner().invoke(cli, ["summary", "--config", "mnist.yaml"])
    assert result.exit_code == 0, result.output
    assert "(6400, 1, 1)" in result.output and "880,842" in result.output
    assert "conv6" in result.output and "(10, 1, 1)" in result.output


def test_print_config_fills_every_default():
    result = CliRunner().invoke(cli, ["train", "--config", "mnist", "--set", "train.epochs=3", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "epochs: 3" in result.output and "eval_batch_size: 100" in result.output
    assert "momentum: 0.9" in result.output  # a default the file does not set


def test_train_without_config_is_one_clear_line():
    result = CliRunner().invoke(cli, ["train"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["error: give --config CONFIG (e.g. --config mnist.yaml) or --resume RUN_DIR"]


def test_predict_without_any_checkpoint_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    result = CliRunner().invoke(cli, ["predict", "x.png"])
    assert result.exit_code == 2
    assert "no checkpoint given" in result.stderr and "cnn train --config mnist.yaml" in result.stderr


def test_mnist_like_28x28_image_passes_through_unchanged():
    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28), np.float32)
    digit[6:22, 12:16] = rng.uniform(0.5, 1.0, (16, 4))
    np.testing.assert_array_equal(preprocess(digit).pixels, digit)


def _save_test_digits(data_dir: Path, folder: Path, count: int) -> list[tuple[Path, int]]:
    images = idx2numpy.convert_from_file(str(data_dir / "mnist" / "t10k-images-idx3-ubyte"))
    labels = idx2numpy.convert_from_file(str(data_dir / "mnist" / "t10k-labels-idx1-ubyte"))
    saved = []
    for i in range(count):
        path = folder / f"digit{i}.png"
        if i % 2:  # dark ink on a light, larger canvas, as a phone photo or a drawing would be
            Image.fromarray(255 - np.kron(images[i], np.ones((4, 4), np.uint8))).save(path)
        else:
            Image.fromarray(images[i]).save(path)
        saved.append((path, int(labels[i])))
    return saved


@pytest.mark.slow
def test_end_to_end_on_real_mnist(mnist_data_dir, tmp_path):
    """Train (subset, 1 epoch) -> eval -> predict, all as real processes on real MNIST."""
    run_dir = tmp_path / "run"
    proc = run_cnn(
        "train",
        "--config",
        "smoke",
        "--set",
        f"data.data_dir={mnist_data_dir}",
        "--set",
        "data.limit=5000",
        "--run-dir",
        str(run_dir),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stdout and "test accuracy" in proc.stdout
    first = proc.stdout.splitlines()[0]  # says what is about to happen before the first (long) epoch
    assert first.startswith(f"run {run_dir}: smoke, ") and "10,000 test images; 1 epoch(s)" in first
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_n"] == 10_000 and summary["test_accuracy"] > 0.85

    best = run_dir / "checkpoints" / "best.npz"
    proc = run_cnn("eval", str(best), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"split", "checkpoint", "accuracy", "loss", "n", "per_class_accuracy", "confusion_matrix", "class_names"}
    assert report["class_names"] == [str(digit) for digit in range(10)]
    assert report["split"] == "test" and report["checkpoint"] == str(best)
    assert report["n"] == 10_000 and report["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert np.array(report["confusion_matrix"]).sum() == 10_000

    proc = run_cnn("eval", str(best), "--split", "val")
    assert proc.returncode == 0 and "confusion matrix" in proc.stdout and "val: accuracy" in proc.stdout

    digits = _save_test_digits(mnist_data_dir, tmp_path, 8)
    proc = run_cnn("predict", *[str(p) for p, _ in digits], "--checkpoint", str(best), "--json", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    predictions = json.loads(proc.stdout)
    assert [p["path"] for p in predictions] == [str(p) for p, _ in digits]
    correct = sum(p["prediction"] == label for p, (_, label) in zip(predictions, digits, strict=True))
    assert correct >= 6, predictions
    assert all(len(p["probabilities"]) == 2 and sum(p["probabilities"].values()) <= 1 + 1e-6 for p in predictions)  # the top 2 only
    assert all(list(p["probabilities"])[0] == str(p["prediction"]) for p in predictions)

    proc = run_cnn("predict", str(digits[0][0]), "--checkpoint", str(best))
    assert proc.returncode == 0 and proc.stdout.startswith(f"{digits[0][0]}: {digits[0][1]}")
