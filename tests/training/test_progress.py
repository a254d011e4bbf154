"""Progress without a terminal: a line every train.progress_seconds (a log file, nohup, CI); tqdm's bar on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from types import SimpleNamespace

import pytest

from cnn_cli.training.progress import ProgressLines
from cnn_cli.training.state import RunningTotals
from tests.support.cli import cli_command, cli_environment, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

TIMEOUT = 120
LINE = re.compile(
    r"^progress: epoch (\d+)/2  step (\d+)/32  batch (\d+)/16  loss \d+\.\d{4}  \d+ img/s  elapsed \S+  ETA \S+$", re.MULTILINE
)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    return write_config(folder / "tiny.yaml", tiny_config(make_idx_dataset(folder / "idx"), epochs=2))


def test_lines_every_interval_when_stdout_is_no_terminal(config_file, tmp_path):
    outcome = invoke_cli(
        ["train", "--config", config_file, "--run-dir", tmp_path / "run", "--set", "train.progress_seconds=0.000001"], timeout=TIMEOUT
    )
    assert outcome.code == 0, outcome.output
    found = LINE.findall(outcome.stdout)
    assert [int(step) for _, step, _ in found] == list(range(1, 33))  # every step, with an interval this short
    assert [(int(epoch), int(batch)) for epoch, _, batch in found][15:17] == [(1, 16), (2, 1)]
    assert outcome.stdout.index("progress: epoch 1/2  step 16/32") < outcome.stdout.index("epoch 1/2  loss")


def test_default_interval_and_quiet_print_no_progress_lines(config_file, tmp_path):
    plain = invoke_cli(["train", "--config", config_file, "--run-dir", tmp_path / "plain"], timeout=TIMEOUT)
    quiet = invoke_cli(
        ["train", "--config", config_file, "--run-dir", tmp_path / "quiet", "--quiet", "--set", "train.progress_seconds=0.000001"],
        timeout=TIMEOUT,
    )
    for outcome in (plain, quiet):
        assert outcome.code == 0, outcome.output
        assert "progress:" not in outcome.output and "epoch 2/2  loss" in outcome.stdout


def test_a_line_says_step_epoch_speed_loss_and_eta():
    now = [100.0]
    lines: list[str] = []
    progress = ProgressLines(30.0, clock=lambda: now[0])
    state = SimpleNamespace(
        config=SimpleNamespace(train=SimpleNamespace(epochs=4, progress_seconds=30.0)),
        steps_per_epoch=100,
        epoch=1,
        step=100,  # resumed after epoch 1
        batch_in_epoch=0,
        totals=RunningTotals(),
        labels=[0] * 64,
        status="running",
        log=lines.append,
    )
    progress.on_fit_start(state)
    for _ in range(60):  # 60 steps of 64 images in 30 s; the epoch's mean loss is 0.25
        now[0] += 0.5
        state.step += 1
        state.batch_in_epoch += 1
        state.totals = RunningTotals(loss_sum=0.25 * 64 * state.batch_in_epoch, seen=64 * state.batch_in_epoch)
        progress.on_step_end(state)
    assert lines == ["progress: epoch 2/4  step 160/400  batch 60/100  loss 0.2500  128 img/s  elapsed 0:00:30  ETA 0:02:00"]


def test_a_terminal_gets_the_bar_and_no_lines(config_file, tmp_path):
    """stdout on a pseudo-terminal: tqdm draws its bar (on stderr) and no progress line appears."""
    primary, secondary = pty.openpty()
    args = ["train", "--config", config_file, "--run-dir", tmp_path / "tty", "--set", "train.progress_seconds=0.000001"]
    process = subprocess.Popen(cli_command(args), stdout=secondary, stderr=subprocess.PIPE, env=cli_environment(), close_fds=True)
    os.close(secondary)
    shown = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        _, errors = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    assert process.returncode == 0, (shown, errors)
    assert b"epoch 2/2  loss" in shown and b"progress:" not in shown
    assert b"batch/s" in errors or b"s/batch" in errors  # tqdm's rate
