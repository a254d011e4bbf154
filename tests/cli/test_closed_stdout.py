"""``cnn eval RUN | head -1``: a reader that goes away stops a command quietly with exit 141, as ``cnn train`` does.

Every command that prints is tried (issue 23, category 7), ``--help`` and ``--version``
included, and a test fails when a command is added without being tried here. The policy
lives in cnn_cli/cli/group.py: ``stop_quietly`` for a reader gone while a command runs
(``CnnGroup.invoke``), while its arguments are parsed (``--help``, ``--version``:
``CnnGroup.make_context``; click's own handler exited 1) and at the final flush.

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

import click
import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import EXIT_BROKEN_PIPE
from cnn_cli.training.train import train
from tests.support import REPO_ROOT
from tests.support.cli import cli_command, cli_environment, write_config
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
    write_config(folder / "tiny.yaml", tiny_config(paths, epochs=1))
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


SOLUTION = REPO_ROOT / "tests" / "learn" / "solutions" / "relu.py"  # a learner's correct file

# Every command that prints, as a user would run it (in the folder holding runs/, digit.png and tiny.yaml).
# "cnn sweep" itself, which prints as it trains, has its own test below.
COMMANDS = {
    "--help": ["--help"],
    "--version": ["--version"],
    "eval": ["eval", "runs/a"],
    "eval --json": ["eval", "runs/a", "--json"],
    "predict": ["predict", "digit.png", "--checkpoint", "runs/a"],
    "compare": ["compare", "runs/a", "runs/b", "--no-plot"],
    "summary": ["summary", "--config", "mnist"],
    "explain": ["explain"],
    "docs": ["docs", "conv2d"],
    "sweep --dry-run": ["sweep", "sweep-lr", "--dry-run"],
    "sweep --help": ["sweep", "--help"],
    "train": ["train", "--config", "tiny.yaml", "--run-dir", "runs/piped"],
    "lr-find": ["lr-find", "--config", "tiny.yaml", "--steps", "10", "--out", "lr.png"],
    "plot": ["plot", "runs/b"],
    "viz": ["viz", "runs/a", "digit.png", "--out", "viz"],
    "export": ["export", "runs/a/checkpoints/best.npz", "--onnx", "a.onnx"],
    "schema": ["schema"],
    "completion": ["completion", "bash"],
    "gradcheck": ["gradcheck", "--config", "smoke"],
    "gradcheck --impl": ["gradcheck", "--impl", SOLUTION],
    "exercise list": ["exercise", "list"],
    "exercise start": ["exercise", "start", "relu", "-o", "relu_exercise.py", "--force"],
    "exercise check": ["exercise", "check", SOLUTION],
    "data info": ["data", "info", "mnist", "--data-dir", "no-data"],
    "data download": ["data", "download", "mnist", "--data-dir", "MNIST"],
    "serve": ["serve", "--runs", "runs", "--port", "0"],
}
NEEDS = {"export": "onnx", "serve": "flask"}


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _leaf_commands(command, (*prefix, name))
        else:
            found.add(" ".join((*prefix, name)))
    return found


def test_every_command_is_tried_with_a_closed_stdout() -> None:
    """A command added later is added to COMMANDS too: this fails until it is."""
    from cnn_cli.cli.main import cli

    missing = {name for name in _leaf_commands(cli) if not any(key == name or key.startswith(f"{name} ") for key in COMMANDS)}
    assert missing == set()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_closed_stdout_stops_the_command_quietly_with_141(runs: Path, command: str, mnist_data_dir: Path) -> None:
    if command in NEEDS:
        pytest.importorskip(NEEDS[command])
    args = [mnist_data_dir if arg == "MNIST" else arg for arg in COMMANDS[command]]
    done = run_into_a_closed_pipe(args, cwd=runs.parent)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    said = [line for line in done.stderr.splitlines() if not line.startswith("checkpoint ")]  # predict names its checkpoint
    if command == "train":  # a training stopped by its reader going away says how to resume, as after Ctrl-C
        assert len(said) == 1 and said[0].startswith("interrupted (output closed)") and "cnn train --resume" in said[0], said
    else:
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


@pytest.mark.parametrize("command", ["eval", "--version"])
def test_a_stdout_closed_before_the_start_is_no_traceback(runs: Path, command: str) -> None:
    """``cnn eval RUN >&-``: Python has no sys.stdout at all; the command runs and prints nothing."""
    done = subprocess.run(
        cli_command(COMMANDS[command]),
        cwd=runs.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT_S,
        env=cli_environment(),
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
