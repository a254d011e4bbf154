"""Faults during training (issue 6, cases 21-26): Ctrl-C, crashes while saving, disk full, divergence,
reused run folders and runs started in the same second. Nothing recorded may be lost or corrupted.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import cnn_cli.io as checkpoint_module  # save_checkpoint writes through cnn_cli.io.atomic_write
import cnn_cli.training.callbacks as callbacks_module
from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import RuntimeFault
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnn_cli.runs.folders import DEFAULT_RUNS_ROOT, LATEST_LINK, METRIC_COLUMNS, RunPaths, new_run_dir, read_metrics
from cnn_cli.training.train import train
from tests.support.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAULT,
    EXIT_INTERRUPTED,
    cli_command,
    cli_environment,
    error_line,
    invoke_cli,
    run_cli,
    write_config,
)
from tests.support.synthetic import make_idx_dataset, tiny_config

# Long enough that a Ctrl-C after the first epoch lands inside a later one:
# 3000 images, 100 held out, batches of 32 -> 91 steps per epoch.
LONG_TRAIN_IMAGES = 3000
LONG_STEPS_PER_EPOCH = math.ceil((LONG_TRAIN_IMAGES - 100) / 32)
LONG_EPOCHS = 4


def quiet(_line: str) -> None:
    pass


def params_of(checkpoint: Path) -> dict[str, np.ndarray]:
    ckpt, _ = load_checkpoint(checkpoint)
    return ckpt.params


def assert_same_params(a: Path, b: Path) -> None:
    first, second = params_of(a), params_of(b)
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name


def metrics_without_time(root: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in read_metrics(root / "metrics.csv")]


def temp_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith((".tmp", ".part")))


def run_status(root: Path) -> str:
    return json.loads((root / "run.json").read_text())["status"]


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> dict:
    """The tiny model on 600 synthetic images (16 steps per epoch), 3 epochs: about a second."""
    return tiny_config(make_idx_dataset(tmp_path_factory.mktemp("small")), epochs=3)


@pytest.fixture(scope="module")
def long_config(tmp_path_factory) -> dict:
    paths = make_idx_dataset(tmp_path_factory.mktemp("long"), n_train=LONG_TRAIN_IMAGES, n_test=200)
    return tiny_config(paths, epochs=LONG_EPOCHS)


@pytest.fixture(scope="module")
def long_reference(long_config: dict, tmp_path_factory) -> Path:
    """An uninterrupted run of ``long_config``: what every interrupted and resumed run must end with."""
    result = train(config_from_dict(long_config), run_dir=tmp_path_factory.mktemp("reference") / "run", log=quiet)
    assert result.status == "completed"
    return result.run.root


# ---------------------------------------------------------------- case 21: Ctrl-C


def start_training(config_path: Path, cwd: Path) -> subprocess.Popen:
    command = cli_command(["train", "--config", config_path, "--run-dir", "run"])
    return subprocess.Popen(command, cwd=cwd, env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_mid_epoch(process: subprocess.Popen, run: RunPaths, second_after: float | None = None) -> tuple[str, str]:
    """Wait for the first epoch's row in metrics.csv, then Ctrl-C halfway through the next epoch."""
    deadline = time.monotonic() + 120
    rows: list[dict] = []
    while not rows:
        assert process.poll() is None, f"training ended before it could be interrupted: {process.communicate()}"
        assert time.monotonic() < deadline, "no epoch finished within 120 s"
        time.sleep(0.01)
        rows = read_metrics(run.metrics)
    time.sleep(rows[0]["seconds"] / 2)
    process.send_signal(signal.SIGINT)
    if second_after is not None:
        time.sleep(second_after)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()


def check_interrupted_run(run: RunPaths) -> None:
    """last.npz valid, metrics.csv complete to the last finished epoch, run marked interrupted, no temp files."""
    ckpt, _ = load_checkpoint(run.last)
    assert ckpt.step == ckpt.epoch * LONG_STEPS_PER_EPOCH + ckpt.batch_in_epoch
    assert ckpt.epoch < LONG_EPOCHS, "the run was still going when interrupted"
    rows = read_metrics(run.metrics)
    assert [row["epoch"] for row in rows] == list(range(1, ckpt.epoch + 1))
    text = run.metrics.read_text()
    assert text.endswith("\n") and text.splitlines()[0] == ",".join(METRIC_COLUMNS)
    assert all(len(line.split(",")) == len(METRIC_COLUMNS) for line in text.splitlines())
    assert run_status(run.root) == "interrupted"
    assert temp_files(run.root) == []


def test_ctrl_c_mid_epoch_then_resume_is_bit_exact(tmp_path: Path, long_config: dict, long_reference: Path) -> None:
    config_path = write_config(tmp_path / "tiny.yaml", long_config)
    run = RunPaths(tmp_path / "run")
    out, err = interrupt_mid_epoch(start_training(config_path, tmp_path), run)
    assert "Traceback" not in out + err, err
    check_interrupted_run(run)
    ckpt, _ = load_checkpoint(run.last)
    # The signal is aimed at the middle of epoch 2; on a very busy machine it may land between epochs instead.
    where = f"at step {ckpt.step}" if ckpt.batch_in_epoch else f"after epoch {ckpt.epoch}"
    assert err.splitlines() == [f"interrupted {where}; checkpoint saved. Resume with: cnn train --resume run"]

    resumed = run_cli(["train", "--resume", "run"], cwd=tmp_path)
    assert resumed.code == 0, resumed.output
    assert f"resuming run at epoch {ckpt.epoch + 1}, batch {ckpt.batch_in_epoch + 1} (step {ckpt.step})" in resumed.stdout
    assert_same_params(run.last, RunPaths(long_reference).last)
    assert metrics_without_time(run.root) == metrics_without_time(long_reference)
    assert run_status(run.root) == "completed"


def test_second_ctrl_c_right_after_the_first_corrupts_nothing(tmp_path: Path, long_config: dict, long_reference: Path) -> None:
    config_path = write_config(tmp_path / "tiny.yaml", long_config)
    run = RunPaths(tmp_path / "run")
    process = start_training(config_path, tmp_path)
    out, err = interrupt_mid_epoch(process, run, second_after=0.002)
    assert "Traceback" not in out + err, err
    # 130 from the CLI, or killed by the second SIGINT once the handlers are gone at exit (a shell shows 130 too).
    assert process.returncode in (EXIT_INTERRUPTED, -signal.SIGINT), (process.returncode, out, err)
    check_interrupted_run(run)

    resumed = run_cli(["train", "--resume", "run"], cwd=tmp_path)
    assert resumed.code == 0, resumed.output
    assert_same_params(run.last, RunPaths(long_reference).last)


def test_second_ctrl_c_during_the_save_is_noted_and_the_save_completes(
    tmp_path: Path, long_config: dict, long_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic version of the above: the second SIGINT arrives while last.npz is being written."""
    escaped: list[int] = []
    real_save = callbacks_module.save_checkpoint

    def save_during_ctrl_c(path, ckpt):
        if ckpt.step > 0:  # not the save of the starting point, before the first step
            os.kill(os.getpid(), signal.SIGINT)  # handled synchronously, before the save goes on
        real_save(path, ckpt)

    monkeypatch.setattr(callbacks_module, "save_checkpoint", save_during_ctrl_c)
    previous = signal.signal(signal.SIGINT, lambda *_: escaped.append(1))  # catches a SIGINT the loop lets through
    lines: list[str] = []
    try:
        result = train(config_from_dict(long_config), run_dir=tmp_path / "run", log=lines.append, stop_after_steps=5)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert escaped == []
    assert result.status == "interrupted" and result.exit_code == EXIT_INTERRUPTED
    assert any("still saving" in line for line in lines), lines
    ckpt, _ = load_checkpoint(result.run.last)
    assert (ckpt.epoch, ckpt.step, ckpt.batch_in_epoch) == (0, 5, 5)
    assert temp_files(result.run.root) == []

    monkeypatch.setattr(callbacks_module, "save_checkpoint", real_save)
    resumed = train(None, resume=result.run.root, log=quiet)
    assert resumed.status == "completed"
    assert_same_params(result.run.last, RunPaths(long_reference).last)


# ---------------------------------------------------------------- case 22: crash between write and rename


class OsWith:
    """The ``os`` module with some functions replaced, to patch one module's view of it only."""

    def __init__(self, **replacements) -> None:
        self._replacements = replacements

    def __getattr__(self, name: str):
        return self._replacements.get(name) or getattr(os, name)


def small_checkpoint(value: float) -> Checkpoint:
    return Checkpoint(params={"w": np.full((3, 3), value, np.float32)}, config={"name": "demo"})


def saved_bytes_and_params(path: Path) -> tuple[bytes, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return path.read_bytes(), archive["w"].copy()


@pytest.mark.parametrize(
    ("crash", "raised"),
    [
        (RuntimeError("the process died here"), RuntimeError),
        (KeyboardInterrupt(), KeyboardInterrupt),
        (OSError(errno.EIO, "Input/output error"), RuntimeFault),
    ],
    ids=["crash", "ctrl-c", "io error"],
)
def test_crash_before_the_rename_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: BaseException, raised: type
) -> None:
    path = tmp_path / "checkpoints" / "last.npz"
    save_checkpoint(path, small_checkpoint(1.0))
    before, _ = saved_bytes_and_params(path)

    def crash_instead_of_rename(src, dst):
        assert Path(src).is_file() and Path(src).stat().st_size > 0, "the temp file was written first"
        raise crash

    monkeypatch.setattr(checkpoint_module, "os", OsWith(replace=crash_instead_of_rename))
    with pytest.raises(raised) as caught:
        save_checkpoint(path, small_checkpoint(2.0))
    if raised is RuntimeFault:
        assert str(caught.value) == f"{path}: could not save (Input/output error); the previous file is kept"
    monkeypatch.undo()

    after, params = saved_bytes_and_params(path)
    assert after == before and np.all(params == 1.0)
    assert temp_files(tmp_path) == []


def test_crash_while_saving_mid_training_loses_nothing(tmp_path: Path, small_config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash during epoch 2's save of last.npz: epoch 1's checkpoint and metrics survive, and resume works."""
    full = train(config_from_dict(small_config), run_dir=tmp_path / "full", log=quiet)
    real_save = callbacks_module.save_checkpoint

    def save(path, ckpt):
        if path.name == "last.npz" and ckpt.epoch == 2:
            monkeypatch.setattr(checkpoint_module, "os", OsWith(replace=crash))
        try:
            real_save(path, ckpt)
        finally:
            monkeypatch.setattr(checkpoint_module, "os", os)

    def crash(src, dst):
        raise RuntimeError("the process died between write and rename")

    monkeypatch.setattr(callbacks_module, "save_checkpoint", save)
    with pytest.raises(RuntimeError, match="between write and rename"):
        train(config_from_dict(small_config), run_dir=tmp_path / "run", log=quiet)
    monkeypatch.undo()

    run = RunPaths(tmp_path / "run")
    ckpt, _ = load_checkpoint(run.last)
    assert (ckpt.epoch, ckpt.batch_in_epoch) == (1, 0)
    assert [row["epoch"] for row in read_metrics(run.metrics)] == [1]
    assert temp_files(run.root) == []
    resumed = train(None, resume=run.root, log=quiet)
    assert resumed.status == "completed"
    assert_same_params(run.last, full.run.last)


def test_io_error_while_saving_is_one_line_from_the_cli(tmp_path: Path, small_config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_rename(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(checkpoint_module, "os", OsWith(replace=broken_rename))
    config = write_config(tmp_path / "tiny.yaml", small_config)
    outcome = invoke_cli(["train", "--config", config, "--run-dir", tmp_path / "run", "--quiet"])
    error_line(outcome, EXIT_FAULT, "could not save (Input/output error)")
    assert temp_files(tmp_path / "run") == []


# ---------------------------------------------------------------- case 23: disk full


class FillingFile:
    """A binary file that takes ``room`` more bytes, then fails as a full disk does."""

    def __init__(self, handle, room: int) -> None:
        self._handle = handle
        self._room = room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self._room:
            self._handle.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def full_disk(room: int = 1000) -> OsWith:
    """``os`` as cnn_cli.io (which save_checkpoint writes through) sees it on a disk with ``room`` bytes left."""
    return OsWith(fdopen=lambda fd, mode="r", *args, **kwargs: FillingFile(os.fdopen(fd, mode, *args, **kwargs), room))


def full_disk_at_fsync() -> OsWith:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    return OsWith(fsync=fsync)


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_keeps_the_previous_file_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    path = tmp_path / "checkpoints" / "last.npz"
    save_checkpoint(path, small_checkpoint(1.0))
    before, _ = saved_bytes_and_params(path)
    monkeypatch.setattr(checkpoint_module, "os", full_disk() if where == "write" else full_disk_at_fsync())
    with pytest.raises(RuntimeFault) as caught:
        save_checkpoint(path, small_checkpoint(2.0))
    monkeypatch.undo()
    assert str(caught.value) == f"{path}: could not save (disk full); the previous file is kept"
    after, params = saved_bytes_and_params(path)
    assert after == before and np.all(params == 1.0)
    assert temp_files(tmp_path) == []


def test_disk_full_during_training_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, small_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = callbacks_module.save_checkpoint

    def save(path, ckpt):
        if path.name == "last.npz" and ckpt.epoch == 2:
            monkeypatch.setattr(checkpoint_module, "os", full_disk())
        try:
            real_save(path, ckpt)
        finally:
            monkeypatch.setattr(checkpoint_module, "os", os)

    monkeypatch.setattr(callbacks_module, "save_checkpoint", save)
    config = write_config(tmp_path / "tiny.yaml", small_config)
    run = RunPaths(tmp_path / "run")
    outcome = invoke_cli(["train", "--config", config, "--run-dir", run.root, "--quiet"])
    error_line(outcome, EXIT_FAULT, f"{run.last}: could not save (disk full); the previous file is kept")
    ckpt, _ = load_checkpoint(run.last)
    assert (ckpt.epoch, ckpt.batch_in_epoch) == (1, 0)
    assert [row["epoch"] for row in read_metrics(run.metrics)] == [1]
    assert temp_files(run.root) == []


# ---------------------------------------------------------------- case 24: divergence


def diverging_in_epoch_2(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    config["optimizer"] = {"name": "sgd", "lr": 0.05}
    config["schedule"] = {"name": "step", "step_size": 1, "gamma": 1e8}  # epoch 2 runs at lr 5e6
    return config


def test_divergence_stops_at_the_first_non_finite_loss(tmp_path: Path, small_config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    losses: list[float] = []
    real = Model.loss_and_backward

    def recording(self, x, labels):
        loss, logits = real(self, x, labels)
        losses.append(loss)
        return loss, logits

    monkeypatch.setattr(Model, "loss_and_backward", recording)
    result = train(config_from_dict(diverging_in_epoch_2(small_config)), run_dir=tmp_path / "run", log=quiet)
    assert result.status == "failed" and result.exit_code == EXIT_FAULT
    first_bad = next(i for i, loss in enumerate(losses) if not math.isfinite(loss))
    assert len(losses) == first_bad + 1, "no step is taken after the first non-finite loss"
    assert f"training diverged at step {first_bad + 1} " in result.message
    ckpt, _ = load_checkpoint(result.run.last)
    assert ckpt.epoch == 1 and ckpt.step < first_bad + 1
    assert run_status(result.run.root) == "failed"


def test_divergence_from_the_cli_keeps_the_last_good_checkpoint(
    tmp_path: Path, small_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "tiny.yaml", diverging_in_epoch_2(small_config))
    run = RunPaths(tmp_path / "run")
    outcome = invoke_cli(["train", "--config", config, "--run-dir", run.root, "--quiet"])
    assert "Traceback" not in outcome.output
    assert outcome.code == EXIT_FAULT, outcome.output
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert "training diverged at step" in lines[0] and "(epoch 2, batch" in lines[0]
    assert f"the last good checkpoint is kept: {run.last}" in lines[0]
    assert [row["epoch"] for row in read_metrics(run.metrics)] == [1]
    info = json.loads(run.run_info.read_text())
    assert info["status"] == "failed" and "error: " + info["message"] == lines[0]
    evaluated = invoke_cli(["eval", run.last, "--json"])
    assert evaluated.code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["n"] == 200


def test_divergence_at_the_first_step_does_not_claim_a_checkpoint(tmp_path: Path, small_config: dict) -> None:
    config = json.loads(json.dumps(small_config))
    config["optimizer"] = {"name": "sgd", "lr": 1e30}
    run = RunPaths(tmp_path / "run")
    outcome = run_cli(["train", "--config", write_config(tmp_path / "tiny.yaml", config), "--run-dir", run.root], optimize=True)
    assert "Traceback" not in outcome.output
    assert outcome.code == EXIT_FAULT, outcome.output
    (line,) = outcome.stderr.splitlines()
    assert "training diverged at step" in line
    assert run_status(run.root) == "failed"
    if not run.last.exists():
        assert "checkpoint is kept" not in line, f"no checkpoint was ever written, yet: {line}"


# ---------------------------------------------------------------- case 25: --run-dir on an existing run


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(tmp_path: Path, small_config: dict) -> tuple[Path, RunPaths]:
    config = dict(small_config, train={**small_config["train"], "epochs": 1})
    config_path = write_config(tmp_path / "tiny.yaml", config)
    run = RunPaths(tmp_path / "run")
    outcome = invoke_cli(["train", "--config", config_path, "--run-dir", run.root, "--quiet"])
    assert outcome.code == 0, outcome.output
    return config_path, run


def test_run_dir_holding_a_run_is_refused_and_untouched(finished_run) -> None:
    config_path, run = finished_run
    before = snapshot(run.root)
    outcome = invoke_cli(["train", "--config", config_path, "--run-dir", run.root])
    error_line(outcome, EXIT_BAD_INPUT, f"--run-dir {run.root}: already holds a run; use --resume {run.root}")
    assert snapshot(run.root) == before


def test_run_dir_refused_by_a_real_process_under_python_O(finished_run) -> None:
    config_path, run = finished_run
    before = snapshot(run.root)
    outcome = run_cli(["train", "--config", config_path, "--run-dir", run.root], optimize=True)
    error_line(outcome, EXIT_BAD_INPUT, "already holds a run")
    assert snapshot(run.root) == before


def test_run_dir_that_is_a_file_is_refused(tmp_path: Path, finished_run) -> None:
    config_path, _ = finished_run
    occupied = tmp_path / "notes.txt"
    occupied.write_text("keep me")
    outcome = invoke_cli(["train", "--config", config_path, "--run-dir", occupied])
    error_line(outcome, EXIT_BAD_INPUT, f"--run-dir {occupied}: exists and is not a folder")
    assert occupied.read_text() == "keep me"


def test_run_dir_with_resume_continues_the_run(tmp_path: Path, small_config: dict) -> None:
    cut = train(config_from_dict(small_config), run_dir=tmp_path / "run", log=quiet, stop_after_steps=20)
    assert cut.status == "interrupted"
    other = tmp_path / "other"
    mismatch = invoke_cli(["train", "--resume", cut.run.root, "--run-dir", other])
    error_line(mismatch, EXIT_BAD_INPUT, "--run-dir and --resume name different folders")
    assert not other.exists()
    with_config = invoke_cli(["train", "--resume", cut.run.root, "--config", tmp_path / "any.yaml"])
    error_line(with_config, EXIT_BAD_INPUT, "--resume continues a run with its own config")

    outcome = invoke_cli(["train", "--resume", cut.run.root, "--run-dir", cut.run.root, "--quiet"])
    assert outcome.code == 0, outcome.output
    assert run_status(cut.run.root) == "completed"
    assert [row["epoch"] for row in read_metrics(cut.run.metrics)] == [1, 2, 3]


# ---------------------------------------------------------------- case 26: runs started in the same second


def test_new_run_dir_never_reuses_a_folder_within_one_second(tmp_path: Path) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5)
    names = [new_run_dir("tiny", tmp_path, now=now).root.name for _ in range(3)]
    assert names == ["tiny-20300102-030405", "tiny-20300102-030405-2", "tiny-20300102-030405-3"]


def test_new_run_dir_from_many_threads_at_once(tmp_path: Path) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5)
    start = threading.Barrier(8)
    made: list[Path] = []

    def claim() -> None:
        start.wait()
        made.append(new_run_dir("tiny", tmp_path, now=now).root)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8
    assert all(path.is_dir() and not any(path.iterdir()) for path in made)


FROZEN_CLOCK = """
import datetime, sys
import cnn_cli.runs.folders

class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2030, 1, 2, 3, 4, 5)

cnn_cli.runs.folders.datetime = Frozen
from cnn_cli.cli.main import main
main()
"""


def test_two_train_processes_in_the_same_second_get_different_folders(tmp_path: Path, small_config: dict) -> None:
    """Both processes see the same clock second, so their folder names collide unless creation is atomic."""
    config_path = write_config(tmp_path / "tiny.yaml", small_config)
    command = [sys.executable, "-c", FROZEN_CLOCK, "train", "--config", str(config_path), "--set", "train.epochs=1"]
    processes = [
        subprocess.Popen(command, cwd=tmp_path, env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "Traceback" not in out + err
    runs_root = tmp_path / DEFAULT_RUNS_ROOT
    folders = sorted(p.name for p in runs_root.iterdir() if p.name != LATEST_LINK)
    assert folders == ["tiny-20300102-030405", "tiny-20300102-030405-2"]
    for name in folders:
        run = RunPaths(runs_root / name)
        assert run_status(run.root) == "completed"
        assert [row["epoch"] for row in read_metrics(run.metrics)] == [1]
        assert json.loads(run.run_info.read_text())["run_dir"] == str(Path(DEFAULT_RUNS_ROOT) / name)
        load_checkpoint(run.last)
    assert (runs_root / LATEST_LINK).resolve().name in folders
