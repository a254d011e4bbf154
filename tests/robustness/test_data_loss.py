"""Nothing recorded is ever lost (issue 13, section 1): crashes at every write of an epoch end, signals, a closed
pipe, Ctrl-C in the final test, oversized metadata, a user's runs/latest, edited metrics.csv, run.json history,
the newest finished run and run names that are paths.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import cnn_cli.io as checkpoint_module  # checkpoints write through cnn_cli.io.atomic_write
import cnn_cli.training.train as train_module
from cnn_cli.config.build import config_from_dict
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES
from cnn_cli.errors import ConfigError, RuntimeFault
from cnn_cli.runs.checkpoint import MAX_META_BYTES, Checkpoint, load_checkpoint, save_checkpoint
from cnn_cli.runs.folders import LATEST_LINK, RunPaths, newest_completed_run, read_metrics
from cnn_cli.training.state import Callback
from cnn_cli.training.train import train
from tests.support.cli import EXIT_INTERRUPTED, cli_command, cli_environment, error_line, invoke_cli, run_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

TIMING = ("seconds", "images_per_s")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """300 images (250 to train, 8 steps an epoch), 2 epochs, every checkpoint kept, gradients every 3 steps."""
    paths = make_idx_dataset(tmp_path_factory.mktemp("small"), n_train=300, n_test=100)
    config = tiny_config(paths, epochs=2, save_every_epoch=True, log_every=3)
    config["data"]["val_size"] = 50
    return config


@pytest.fixture(scope="module")
def reference(small: dict, tmp_path_factory) -> RunPaths:
    result = train(config_from_dict(small), run_dir=tmp_path_factory.mktemp("reference") / "run", log=quiet)
    assert result.status == "completed"
    return result.run


def records(run: RunPaths) -> dict:
    """Everything a finished run holds, without what legitimately differs (timing, the folder's own path)."""
    out: dict = {
        "metrics": [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(run.metrics)],
        "gradients": run.gradients.read_text(),
    }
    summary = json.loads(run.summary.read_text())
    out["summary"] = {k: v for k, v in summary.items() if k not in ("wall_seconds", "checkpoint")}
    out["summary_checkpoint"] = Path(summary["checkpoint"]).name
    for path in sorted(run.checkpoints.glob("*.npz")):
        ckpt, _ = load_checkpoint(path)
        history = [{k: v for k, v in row.items() if k not in TIMING} for row in ckpt.history or []]
        arrays = {**ckpt.params, **{f"optimizer/{k}": v for k, v in ckpt.optimizer_state.items()}}
        out[path.name] = (
            {k: v.tobytes() for k, v in arrays.items()},
            (ckpt.epoch, ckpt.step, ckpt.batch_in_epoch, ckpt.best_epoch, ckpt.best_val_acc, ckpt.rng, history),
        )
    return out


def assert_same_records(run: RunPaths, reference: RunPaths) -> None:
    got, want = records(run), records(reference)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key
    assert json.loads(run.run_info.read_text())["status"] == "completed"
    assert sorted(p.name for p in run.root.rglob("*.tmp")) == []


# ---------------------------------------------------------------- one consistent commit per epoch end


class Crash(BaseException):
    """The process dies here: no except clause of the library catches it, nothing is cleaned up."""


class CountingOs:
    """``os`` as the checkpoint module sees it, with ``replace`` counted and one call made to fail."""

    def __init__(self, fail_at: int | None = None, mode: str = "") -> None:
        self.calls: list[str] = []
        self.fail_at, self.mode = fail_at, mode

    def __getattr__(self, name: str):
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        """Durability is not what these tests check; skipping it makes each run several times faster."""

    def replace(self, src, dst) -> None:
        self.calls.append(Path(dst).name)
        if len(self.calls) != self.fail_at:
            return os.replace(src, dst)
        if self.mode == "crash before rename":
            raise Crash(dst)
        if self.mode == "disk full":
            raise OSError(errno.ENOSPC, "No space left on device")
        os.replace(src, dst)
        raise Crash(dst)  # crash after rename


class EpochEnds(Callback):
    """Notes which replace() calls belong to an epoch end (after the last step, up to the end of the run)."""

    def __init__(self, counter: CountingOs) -> None:
        self.counter = counter
        self.first: int | None = None

    def on_step_end(self, state) -> None:
        if self.first is None and state.batch_in_epoch == state.steps_per_epoch:
            self.first = len(self.counter.calls) + 1


@pytest.fixture(scope="module")
def epoch_end_writes(small: dict, tmp_path_factory) -> list[tuple[int, str]]:
    """Every rename from the end of epoch 1 to the end of the run: (call number, file name)."""
    counter = CountingOs()
    marker = EpochEnds(counter)
    mp = pytest.MonkeyPatch()
    mp.setattr(checkpoint_module, "os", counter)
    try:
        result = train(config_from_dict(small), run_dir=tmp_path_factory.mktemp("count") / "run", log=quiet, callbacks=[marker])
    finally:
        mp.undo()
    assert result.status == "completed" and marker.first is not None
    writes = [(i, name) for i, name in enumerate(counter.calls, start=1) if i >= marker.first]
    names = {name for _, name in writes}
    assert {"epoch-001.npz", "epoch-002.npz", "best.npz", "last.npz", "metrics.csv", "gradients.csv", "summary.json", "run.json"} <= names
    return writes


@pytest.mark.parametrize("mode", ["crash before rename", "crash after rename", "disk full"])
def test_a_fault_at_any_write_of_an_epoch_end_resumes_to_the_same_records(
    small: dict, reference: RunPaths, epoch_end_writes: list[tuple[int, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    first_end = epoch_end_writes[: [name for _, name in epoch_end_writes].index("metrics.csv") + 1]
    # Every write of the run's epoch ends and final records when the process dies before a rename; the writes of
    # one epoch end for the other two faults (the same code runs at every epoch end).
    for index, name in epoch_end_writes if mode == "crash before rename" else first_end:
        run_dir = tmp_path / f"run-{index}"
        monkeypatch.setattr(checkpoint_module, "os", CountingOs(index, mode))
        with pytest.raises(RuntimeFault if mode == "disk full" else Crash):
            train(config_from_dict(small), run_dir=run_dir, log=quiet)
        status = json.loads((run_dir / "run.json").read_text())["status"]
        if mode == "disk full":
            assert status == "failed" or name == "run.json", (name, status)
        monkeypatch.setattr(checkpoint_module, "os", CountingOs())
        resumed = train(None, resume=run_dir, log=quiet)
        monkeypatch.undo()
        assert resumed.status == "completed", (index, name, resumed.message)
        try:
            assert_same_records(resumed.run, reference)
        except AssertionError as exc:
            raise AssertionError(f"{mode} at write {index} ({name}): {exc}") from exc


def test_a_crash_in_the_first_epoch_can_be_resumed(small: dict, reference: RunPaths, tmp_path: Path) -> None:
    class DieAtStep(Callback):
        def on_step_end(self, state) -> None:
            if state.step == 3:
                raise Crash("killed")

    with pytest.raises(Crash):
        train(config_from_dict(small), run_dir=tmp_path / "run", log=quiet, callbacks=[DieAtStep()])
    ckpt, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.npz")
    assert (ckpt.epoch, ckpt.step) == (0, 0), "the starting point is saved before the first step"
    resumed = train(None, resume=tmp_path / "run", log=quiet)
    assert_same_records(resumed.run, reference)


# ---------------------------------------------------------------- metadata the loader would refuse


def test_a_config_too_big_for_a_checkpoint_is_refused_before_anything_is_created(small: dict, tmp_path: Path) -> None:
    config = json.loads(json.dumps(small))
    config["description"] = "x" * (MAX_META_BYTES // 4 + 10)  # NumPy stores text as 4 bytes a character
    with pytest.raises(ConfigError, match="shorten 'description'"):
        train(config_from_dict(config), run_dir=tmp_path / "run", log=quiet)
    assert not (tmp_path / "run").exists()
    outcome = invoke_cli(["train", "--config", write_config(tmp_path / "big.yaml", config), "--run-dir", tmp_path / "run2"])
    error_line(outcome, 2, "over the limit")
    assert not (tmp_path / "run2").exists()


def test_the_largest_config_that_is_accepted_gives_checkpoints_that_load(small: dict, tmp_path: Path) -> None:
    config = json.loads(json.dumps(small))
    config["train"]["epochs"] = 1
    config["description"] = "y" * (MAX_CONFIG_BYTES - 4000)  # just under the loader's limit
    result = train(config_from_dict(config), run_dir=tmp_path / "run", log=quiet)
    assert result.status == "completed"
    ckpt, _ = load_checkpoint(result.run.best)
    assert ckpt.config["description"] == config["description"]


def test_save_refuses_metadata_it_could_not_read_back(tmp_path: Path) -> None:
    ckpt = Checkpoint(params={"w": np.zeros((2, 2), np.float32)}, config={"description": "z" * MAX_META_BYTES})
    with pytest.raises(RuntimeFault, match="meta/config"):
        save_checkpoint(tmp_path / "c.npz", ckpt)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- signals and a closed pipe


@pytest.fixture(scope="module")
def long_config(tmp_path_factory) -> dict:
    """Small batches, so that the first epoch (363 steps) lasts long enough for a signal to land inside it."""
    paths = make_idx_dataset(tmp_path_factory.mktemp("long"), n_train=3000, n_test=100)
    return tiny_config(paths, epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def long_reference(long_config: dict, tmp_path_factory) -> RunPaths:
    result = train(config_from_dict(long_config), run_dir=tmp_path_factory.mktemp("long-ref") / "run", log=quiet)
    return result.run


def same_params(a: Path, b: Path) -> bool:
    first, second = load_checkpoint(a)[0].params, load_checkpoint(b)[0].params
    return all(np.array_equal(first[k], second[k]) for k in first)


def wait_until_training(run: RunPaths, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not run.run_info.is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.01)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_in_the_first_epoch_save_and_resume(
    long_config: dict, long_reference: RunPaths, tmp_path: Path, signame: str
) -> None:
    config = write_config(tmp_path / "tiny.yaml", long_config)
    run = RunPaths(tmp_path / "run")
    command = cli_command(["train", "--config", config, "--run-dir", run.root, "--quiet"])
    process = subprocess.Popen(command, env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_training(run, process)
        process.send_signal(getattr(signal, signame))
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in out + err, err
    assert process.returncode == 128 + getattr(signal, signame), (process.returncode, err)
    assert err.splitlines()[-1].startswith(f"interrupted ({signame}) ") and "Resume with: cnn train --resume" in err
    assert json.loads(run.run_info.read_text())["status"] == "interrupted"
    ckpt, _ = load_checkpoint(run.last)
    assert ckpt.epoch == 0 and ckpt.batch_in_epoch > 0, "stopped inside the first epoch"
    resumed = run_cli(["train", "--resume", run.root, "--quiet"], timeout=120)
    assert resumed.code == 0, resumed.output
    assert same_params(run.last, long_reference.last)


def test_train_piped_into_head_stops_cleanly_as_interrupted(long_config: dict, long_reference: RunPaths, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml", long_config)
    run = RunPaths(tmp_path / "run")
    command = shlex.join(cli_command(["train", "--config", config, "--run-dir", run.root, "--quiet"]))
    piped = subprocess.run(["sh", "-c", f"{command} | head -1"], env=cli_environment(), capture_output=True, text=True, timeout=120)
    assert piped.stdout.startswith("run "), piped
    deadline = time.monotonic() + 60
    while json.loads(run.run_info.read_text())["status"] == "running":  # head exits first; cnn stops at the next step
        assert time.monotonic() < deadline, "the run is still marked running"
        time.sleep(0.05)
    info = json.loads(run.run_info.read_text())
    assert info["status"] == "interrupted" and "output closed" in info["message"], info
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr
    resumed = run_cli(["train", "--resume", run.root, "--quiet"], timeout=120)
    assert resumed.code == 0, resumed.output
    assert same_params(run.last, long_reference.last)


def test_output_that_fails_like_a_closed_terminal_stops_the_run_as_interrupted(small: dict, reference: RunPaths, tmp_path: Path) -> None:
    def closed_terminal(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise OSError(errno.EIO, "Input/output error")

    result = train(config_from_dict(small), run_dir=tmp_path / "run", log=closed_terminal)
    assert result.status == "interrupted" and result.exit_code == 141
    assert result.message.startswith("interrupted (output closed) after epoch 1; checkpoint saved. Resume with:")
    assert json.loads(result.run.run_info.read_text())["status"] == "interrupted"
    resumed = train(None, resume=result.run.root, log=quiet)
    assert_same_records(resumed.run, reference)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_during_the_final_test_marks_the_run_and_says_how_to_resume(
    small: dict, reference: RunPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signame: str
) -> None:
    real = train_module.evaluate

    def evaluate_then_signal(model, images, labels, batch_size=1000):
        os.kill(os.getpid(), getattr(signal, signame))
        return real(model, images, labels, batch_size)

    monkeypatch.setattr(train_module, "evaluate", evaluate_then_signal)
    result = train(config_from_dict(small), run_dir=tmp_path / "run", log=quiet)
    monkeypatch.undo()
    assert result.status == "interrupted" and result.exit_code == 128 + getattr(signal, signame)
    assert "during the final test" in result.message and f"Resume with: cnn train --resume {result.run.root}" in result.message
    assert json.loads(result.run.run_info.read_text())["status"] == "interrupted"
    assert not result.run.summary.exists()
    lines: list[str] = []
    resumed = train(None, resume=result.run.root, log=lines.append)
    assert resumed.status == "completed" and "running the final test" in lines[0]
    assert_same_records(resumed.run, reference)


# ---------------------------------------------------------------- runs/latest, metrics.csv, run.json


def test_a_regular_file_at_runs_latest_is_kept(small: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / LATEST_LINK).write_text("my notes\n")
    lines: list[str] = []
    config = json.loads(json.dumps(small))
    config["train"]["epochs"] = 1
    result = train(config_from_dict(config), runs_root=runs, log=lines.append)
    assert result.status == "completed"
    assert (runs / LATEST_LINK).read_text() == "my notes\n" and not (runs / LATEST_LINK).is_symlink()
    assert any(f"{runs / LATEST_LINK} is not a link made by cnn; left as it is" in line for line in lines), lines


@pytest.mark.parametrize("damage", ["deleted", "row edited", "cut short", "not numbers"])
def test_metrics_csv_damaged_before_resume_is_named_and_rebuilt(small: dict, reference: RunPaths, tmp_path: Path, damage: str) -> None:
    config = json.loads(json.dumps(small))
    config["train"]["epochs"] = 3
    stopped = train(config_from_dict(config), run_dir=tmp_path / "run", log=quiet, stop_after_steps=19)  # epoch 3, batch 3
    metrics = stopped.run.metrics
    lines = metrics.read_text().splitlines()
    if damage == "deleted":
        metrics.unlink()
    elif damage == "row edited":
        metrics.write_text("\n".join([lines[0], lines[1].replace(lines[1].split(",")[3], "0.5"), *lines[2:]]) + "\n")
    elif damage == "cut short":
        metrics.write_text("\n".join(lines[:2]) + "\n")
    else:
        metrics.write_text(lines[0] + "\n1,8,abc,,,\n")
    outcome = run_cli(["train", "--resume", stopped.run.root, "--quiet"], timeout=120)
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    warning = next(line for line in outcome.stdout.splitlines() if line.startswith("warning:"))
    assert str(metrics) in warning and "rewritten from" in warning, warning
    rows = read_metrics(metrics)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    want = [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(reference.metrics)]
    assert [{k: v for k, v in row.items() if k not in TIMING} for row in rows][:2] == want


def test_resume_keeps_the_first_command_and_a_history_of_invocations(small: dict, tmp_path: Path) -> None:
    first = ["cnn", "train", "--config", "tiny.yaml"]
    stopped = train(config_from_dict(small), run_dir=tmp_path / "run", log=quiet, command_line=first, stop_after_steps=3)
    before = json.loads(stopped.run.run_info.read_text())
    again = ["cnn", "train", "--resume", "run"]
    train(None, resume=stopped.run.root, log=quiet, command_line=again)
    after = json.loads(stopped.run.run_info.read_text())
    assert after["command"] == first and after["started"] == before["started"]
    assert after["status"] == "completed" and "message" not in after
    assert [(i["command"], i["status"]) for i in after["invocations"]] == [(first, "interrupted"), (again, "completed")]
    assert "interrupted at step 3" in after["invocations"][0]["message"]
    assert all(i["started"] and i["ended"] for i in after["invocations"])


def test_resume_with_an_unreadable_run_json_starts_a_new_record(small: dict, tmp_path: Path) -> None:
    stopped = train(config_from_dict(small), run_dir=tmp_path / "run", log=quiet, stop_after_steps=3)
    stopped.run.run_info.write_text("{not json")
    lines: list[str] = []
    resumed = train(None, resume=stopped.run.root, log=lines.append, command_line=["cnn", "train", "--resume", "run"])
    assert resumed.status == "completed"
    assert any(line.startswith(f"warning: {stopped.run.run_info}: missing or unreadable") for line in lines)
    assert json.loads(stopped.run.run_info.read_text())["status"] == "completed"


# ---------------------------------------------------------------- the newest finished run; run names


def make_run(root: Path, name: str, best: bool, mtime: float) -> Path:
    folder = root / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text("name: x\n")
    (folder / "run.json").write_text(json.dumps({"status": "completed" if best else "running"}))
    (folder / "checkpoints" / "last.npz").write_bytes(b"")
    if best:
        path = folder / "checkpoints" / "best.npz"
        path.write_bytes(b"")
        os.utime(path, (mtime, mtime))
    return folder


def test_newest_completed_run_skips_runs_without_a_best_checkpoint(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert newest_completed_run(runs) is None
    make_run(runs, "a-older", best=True, mtime=1_000_000)
    newer = make_run(runs, "b-newer", best=True, mtime=2_000_000)
    killed = make_run(runs, "c-killed", best=False, mtime=3_000_000)
    (runs / LATEST_LINK).symlink_to(killed.name)
    (runs / "notes.txt").write_text("not a run")
    found = newest_completed_run(runs)
    assert found is not None and found.root == newer


def test_predict_without_a_checkpoint_uses_the_newest_finished_run_not_latest(
    small: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    config = json.loads(json.dumps(small))
    config["train"]["epochs"] = 1
    finished = train(config_from_dict(config), log=quiet)
    config["name"] = "later"
    killed = train(config_from_dict(config), log=quiet, stop_after_steps=2)  # interrupted in epoch 1: no best.npz
    assert (tmp_path / "runs" / LATEST_LINK).resolve() == killed.run.root.resolve() and not killed.run.best.exists()
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "one.png")
    outcome = invoke_cli(["predict", "one.png", "--json"])
    assert outcome.code == 0, outcome.output
    assert finished.run.best.is_file() and len(json.loads(outcome.stdout)) == 1


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden", "..", "tab\there"])
def test_a_run_name_that_is_a_path_is_refused(small: dict, tmp_path: Path, name: str) -> None:
    config = json.loads(json.dumps(small))
    config["name"] = name
    runs = tmp_path / "deep" / "runs"
    with pytest.raises(ConfigError, match="^name: "):
        train(config_from_dict(config), runs_root=runs, log=quiet)
    assert not (tmp_path / "deep").exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    outcome = invoke_cli(["train", "--config", write_config(tmp_path.parent / f"{tmp_path.name}.yaml", config)])
    error_line(outcome, 2, "name: ")


def test_interrupted_exit_code_is_still_130_for_ctrl_c(small: dict, tmp_path: Path) -> None:
    result = train(config_from_dict(small), run_dir=tmp_path / "run", log=quiet, stop_after_steps=2)
    assert result.exit_code == EXIT_INTERRUPTED
