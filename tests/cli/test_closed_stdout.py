"""``cnn eval RUN | head -1``: a reader that goes away stops a command quietly with exit 141, as ``cnn train`` does.

Each command runs as a real process whose stdout is a real pipe. In most tests the read
end is closed before the process starts, so its first write fails with EPIPE for certain
(``head`` may exit before or after a short output was written: a race). The sweep test
reads until a trial has started and closes then, like ``head`` on a long output.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import EXIT_BROKEN_PIPE
from cnn_cli.training.train import train
from tests.support.cli import cli_command, cli_environment
from tests.support.synthetic import make_idx_dataset, tiny_config

TIMEOUT_S = 120


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """runs/ with two finished tiny runs, and a digit image beside it."""
    folder = tmp_path_factory.mktemp("pipe")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    for name, lr in (("a", 0.01), ("b", 0.001)):
        config = tiny_config(paths, epochs=1)
        config["optimizer"]["lr"] = lr
        train(config_from_dict(config), run_dir=folder / "runs" / name, log=lambda _line: None)
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    Image.fromarray(pixels).save(folder / "digit.png")
    return folder / "runs"


def run_into_a_closed_pipe(args: list[object], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``cnn ARGS`` with stdout a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            cli_command(args), cwd=cwd, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S, env=cli_environment()
        )
    finally:
        os.close(write_end)


COMMANDS = {
    "eval": ["eval", "runs/a"],
    "eval --json": ["eval", "runs/a", "--json"],
    "predict": ["predict", "digit.png", "--checkpoint", "runs/a"],
    "compare": ["compare", "runs/a", "runs/b", "--no-plot"],
    "summary": ["summary", "--config", "mnist"],
    "explain": ["explain"],
    "docs": ["docs", "conv2d"],
    "sweep --dry-run": ["sweep", "sweep-lr", "--dry-run"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_closed_stdout_stops_the_command_quietly_with_141(runs: Path, command: str) -> None:
    done = run_into_a_closed_pipe(COMMANDS[command], cwd=runs.parent)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    said = [line for line in done.stderr.splitlines() if not line.startswith("checkpoint ")]  # predict names its checkpoint
    assert said == [], "no error line, no traceback, no 'Exception ignored' at exit"


def test_without_a_closed_pipe_the_same_commands_print(runs: Path) -> None:
    """The check can fail: with a reader, eval prints and exits 0."""
    done = subprocess.run(
        cli_command(COMMANDS["eval"]), cwd=runs.parent, capture_output=True, text=True, timeout=TIMEOUT_S, env=cli_environment()
    )
    assert done.returncode == 0 and done.stdout.startswith("checkpoint "), done.stderr


def test_a_sweep_whose_reader_goes_away_saves_like_ctrl_c_and_exits_141(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from tests.sweep.support import make_sweep_folder, read_csv, sweep_folder

    path = make_sweep_folder(tmp_path, {"train.epochs": [30], "train.seed": [0, 1, 2]})
    sweep = subprocess.Popen(
        cli_command(["sweep", path.name, "--workers", "1"]),
        cwd=tmp_path,
        env=cli_environment({"PYTHONUNBUFFERED": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert sweep.stdout is not None
        deadline = time.monotonic() + TIMEOUT_S
        for line in sweep.stdout:
            if line.startswith("trial-001 started"):
                break
            assert time.monotonic() < deadline, line
        sweep.stdout.close()  # as head -1 does: the next line the sweep prints finds no reader
        _, err = sweep.communicate(timeout=TIMEOUT_S)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, 9)
            sweep.wait(timeout=10)
    assert sweep.returncode == EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "error:" not in err, err
    rows = {r["trial"]: r["status"] for r in read_csv(sweep_folder(tmp_path / "runs") / "sweep.csv")}
    assert rows["trial-001"] in ("interrupted", "completed") and rows["trial-003"] == "pending", json.dumps(rows)
