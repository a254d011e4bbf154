"""Issue 23, categories 1 and 11: one writer owns a run folder; a run whose data moved can be finished.

Every case runs real ``cnn`` processes (address space capped, killed after a timeout):
two trainings racing for one ``--run-dir``, a resume of a run that is still training, a
lock left by a killed process, and a resume whose data folder moved.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.folders import RunPaths, read_metrics
from cnn_cli.runs.ownership import LOCK_FILE
from tests.support.cli import (
    EXIT_BAD_INPUT,
    cli_environment,
    error_line,
    finish,
    run_cli_bounded,
    start_cli_bounded,
    wait_until,
    write_config,
)
from tests.support.synthetic import make_idx_dataset, tiny_config


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("data"), n_train=1500, n_test=100)


def long_config(tmp_path: Path, data_paths: dict[str, str]) -> Path:
    """Many epochs of 44 steps: a run that is still training while the test acts on it."""
    return write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=200, plots=False))


def status(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def started(run: Path) -> bool:
    return (run / "checkpoints" / "last.npz").is_file() and (run / "run.json").is_file()


# ---------------------------------------------------------------- two writers


def test_two_train_processes_on_one_run_dir_one_wins_the_other_names_it(tmp_path: Path, data_paths) -> None:
    """Both start at once on the same --run-dir: exactly one trains; the other gets one line and exit 2."""
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=2, plots=False))
    processes = [start_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path) for _ in range(2)]
    outcomes = [finish(process) for process in processes]
    winners = [i for i, outcome in enumerate(outcomes) if outcome.code == 0]
    assert len(winners) == 1, [o.output for o in outcomes]
    loser = outcomes[1 - winners[0]]
    message = error_line(loser, EXIT_BAD_INPUT, "run")
    assert f"PID {processes[winners[0]].pid}" in message or "already holds a run" in message, message
    record = status(tmp_path / "run")
    assert record["status"] == "completed" and record["pid"] == processes[winners[0]].pid
    assert len(record["invocations"]) == 1
    assert [row["epoch"] for row in read_metrics(tmp_path / "run" / "metrics.csv")] == [1, 2]
    load_checkpoint(tmp_path / "run" / "checkpoints" / "last.npz")


HOLD_CLAIM = """
import sys, time
from pathlib import Path
from cnn_cli.runs.ownership import claim_new_folder
lock = claim_new_folder(Path(sys.argv[1]))
print("claimed", flush=True)
time.sleep(60)
"""


def test_a_folder_claimed_between_the_check_and_the_mkdir_is_refused_naming_the_claimer(tmp_path: Path, data_paths) -> None:
    """The race of a slow filesystem, made certain: another process claims the folder first; train says who."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CLAIM, str(tmp_path / "run")], env=cli_environment(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1))
        outcome = run_cli_bounded(["train", "--config", config, "--run-dir", "run"], cwd=tmp_path, timeout=60)
        error_line(outcome, EXIT_BAD_INPUT, "run", f"PID {holder.pid}")
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()


def test_resume_of_a_run_still_training_is_refused_and_readers_still_read(tmp_path: Path, data_paths) -> None:
    """--resume while the first process trains: one line naming its PID, exit 2, run.json untouched; eval reads freely."""
    config = long_config(tmp_path, data_paths)
    trainer = start_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path)
    try:
        wait_until(lambda: started(tmp_path / "run"), trainer, what="first checkpoint")
        before = status(tmp_path / "run")
        outcome = run_cli_bounded(["train", "--resume", "run"], cwd=tmp_path, timeout=60)
        error_line(outcome, EXIT_BAD_INPUT, f"PID {trainer.pid}")
        assert status(tmp_path / "run")["invocations"] == before["invocations"]
        reader = run_cli_bounded(["eval", "run/checkpoints/last.npz"], cwd=tmp_path, timeout=60)
        assert reader.code == 0, reader.output
        trainer.send_signal(signal.SIGINT)
        done = finish(trainer)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert done.code == 130, done.output
    assert status(tmp_path / "run")["status"] == "interrupted"
    assert not (tmp_path / "run" / LOCK_FILE).exists(), "a clean end leaves the folder as it was"


def test_a_lock_left_by_a_killed_process_is_taken_over_saying_so(tmp_path: Path, data_paths) -> None:
    config = long_config(tmp_path, data_paths)
    trainer = start_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path)
    try:
        wait_until(lambda: started(tmp_path / "run"), trainer, what="first checkpoint")
    finally:
        os.kill(trainer.pid, signal.SIGKILL)
        trainer.communicate()
    assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["pid"] == trainer.pid  # killed: nothing released it
    outcome = run_cli_bounded(["train", "--resume", "run", "-q", "--set", "train.max_time=1"], cwd=tmp_path, timeout=90)
    assert outcome.code == 0, outcome.output
    assert f"took over the lock of PID {trainer.pid}, which is gone" in outcome.output
    assert "Traceback" not in outcome.output
    record = status(tmp_path / "run")
    assert record["status"] == "completed" and len(record["invocations"]) == 2


# ---------------------------------------------------------------- category 11: the data moved


def mnist_in(folder: Path, mnist_data_dir: Path) -> Path:
    """A data_dir of its own holding (links to) the verified MNIST files."""
    (folder / "mnist").mkdir(parents=True)
    for entry in (mnist_data_dir / "mnist").iterdir():
        if not entry.name.startswith("."):
            os.symlink(entry.resolve(), folder / "mnist" / entry.name)
    return folder


def mnist_config(tmp_path: Path, data_dir: Path) -> Path:
    config = tiny_config({}, epochs=1, plots=False)
    config["data"] = {"dataset": "mnist", "data_dir": str(data_dir), "val_size": 100, "limit": 300}
    return write_config(tmp_path / "tiny-mnist.yaml", config)


def test_resume_with_the_data_moved_is_allowed_with_data_dir_and_refused_plainly(tmp_path: Path, mnist_data_dir: Path) -> None:
    old = mnist_in(tmp_path / "old-data", mnist_data_dir)
    config = mnist_config(tmp_path, old)
    first = run_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path, timeout=120)
    assert first.code == 0, first.output
    new = tmp_path / "new-data"
    old.rename(new)
    plain = run_cli_bounded(["train", "--resume", "run", "--set", "train.epochs=2"], cwd=tmp_path, timeout=60)
    error_line(plain, EXIT_BAD_INPUT, str(old / "mnist"), "data.data_dir=")
    assert not old.exists(), "a plain resume made the old data folder again"
    moved = run_cli_bounded(
        ["train", "--resume", "run", "-q", "--set", "train.epochs=2", "--set", f"data.data_dir={new}"], cwd=tmp_path, timeout=120
    )
    assert moved.code == 0, moved.output
    assert not old.exists()
    assert [row["epoch"] for row in read_metrics(tmp_path / "run" / "metrics.csv")] == [1, 2]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.npz")[0].config["data"]["data_dir"] == str(new)


def test_resume_on_other_data_is_refused_by_its_hash(tmp_path: Path, data_paths) -> None:
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data_paths, epochs=1, plots=False))
    first = run_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path, timeout=60)
    assert first.code == 0, first.output
    recorded = status(tmp_path / "run")["data_sha256"]
    other = make_idx_dataset(tmp_path / "other", n_train=1500, n_test=100, seed=1)
    sets = [f"--set=data.paths.{role}={path}" for role, path in other.items()]
    outcome = run_cli_bounded(["train", "--resume", "run", "--set", "train.epochs=2", *sets], cwd=tmp_path, timeout=60)
    error_line(outcome, EXIT_BAD_INPUT, "not the data", recorded[:12])
    assert [row["epoch"] for row in read_metrics(RunPaths(tmp_path / "run").metrics)] == [1]
    assert str(tmp_path / "other") not in (tmp_path / "run" / "config.yaml").read_text(), "a refused resume changed the config"


def test_resume_with_idx_files_moved_names_the_key_and_accepts_the_new_paths(tmp_path: Path) -> None:
    paths = make_idx_dataset(tmp_path / "old", n_train=300, n_test=50)
    config = write_config(tmp_path / "tiny.yaml", tiny_config(paths, epochs=1, plots=False))
    assert run_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path, timeout=60).code == 0
    (tmp_path / "old").rename(tmp_path / "new")
    plain = run_cli_bounded(["train", "--resume", "run", "--set", "train.epochs=2"], cwd=tmp_path, timeout=60)
    error_line(plain, EXIT_BAD_INPUT, "data.paths.", "is gone", "--set data.paths.")
    assert not (tmp_path / "old").exists()
    sets = [f"--set=data.paths.{role}={tmp_path / 'new' / Path(path).name}" for role, path in paths.items()]
    moved = run_cli_bounded(["train", "--resume", "run", "-q", "--set", "train.epochs=2", *sets], cwd=tmp_path, timeout=60)
    assert moved.code == 0, moved.output
    assert [row["epoch"] for row in read_metrics(tmp_path / "run" / "metrics.csv")] == [1, 2]


# ---------------------------------------------------------------- readers never see half a file

WRITE_CALL = re.compile(
    r"""\.open\(\s*["'][wax]|open\([^)]*, *["'][wax]b?["']|\.write_text\(|\.write_bytes\(|np\.savez?(_compressed)?\(|savefig\(|"""
    r"""shutil\.copy|\.rename\(|tofile\("""
)
NOT_ATOMIC_ON_PURPOSE = {
    "cnn_cli/io.py": "the atomic writer itself",
    "cnn_cli/training/step_log.py": "steps.csv is appended a row at a time; its reader drops a line cut short",
    "cnn_cli/learn/learner_process.py": "the learner's process's private temp folder, read by nobody else",
    "cnn_cli/learn/learner_child.py": "the same private temp folder, from the learner's side",
}


def test_every_record_write_goes_through_the_atomic_writer() -> None:
    """A reader (eval, plot, compare, serve) takes no lock: every file cnn writes must appear whole, or be named here."""
    package = Path(__file__).parents[2] / "cnn_cli"
    found = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package.parent).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if WRITE_CALL.search(line) and "atomic_write" not in line and name not in NOT_ATOMIC_ON_PURPOSE:
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)
    assert WRITE_CALL.search('path.write_text("x")') and WRITE_CALL.search('with open(p, "wb") as f:'), "the pattern can fail"


def test_two_resumes_of_one_run_at_once_one_trains_the_other_names_it(tmp_path: Path, data_paths) -> None:
    config = long_config(tmp_path, data_paths)
    trainer = start_cli_bounded(["train", "--config", config, "--run-dir", "run", "-q"], cwd=tmp_path)
    wait_until(lambda: started(tmp_path / "run"), trainer, what="first checkpoint")
    trainer.send_signal(signal.SIGINT)
    assert finish(trainer).code == 130
    resumes = [start_cli_bounded(["train", "--resume", "run", "-q", "--set", "train.max_time=2"], cwd=tmp_path) for _ in range(2)]
    outcomes = [finish(process) for process in resumes]
    winners = [i for i, outcome in enumerate(outcomes) if outcome.code == 0]
    assert len(winners) == 1, [o.output for o in outcomes]
    error_line(outcomes[1 - winners[0]], EXIT_BAD_INPUT, f"PID {resumes[winners[0]].pid}")
    record = status(tmp_path / "run")
    assert record["status"] == "completed" and len(record["invocations"]) == 2
