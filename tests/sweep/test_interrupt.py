"""Ctrl-C a real ``cnn sweep`` process, then ``--resume`` it: completed trials are not run again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from tests.support.cli import EXIT_INTERRUPTED, cli_command, cli_environment  # noqa: E402
from tests.sweep.support import make_sweep_folder, read_csv, sweep_folder  # noqa: E402

TIMEOUT_S = 120


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_ctrl_c_saves_running_trials_and_resume_finishes_the_rest(tmp_path: Path) -> None:
    # Trials 1-3 take one epoch; 4-6 take 30, so 4 and 5 are running and 6 is waiting when Ctrl-C comes.
    path = make_sweep_folder(tmp_path, {"train.epochs": [1, 30], "train.seed": [0, 1, 2]})
    env = cli_environment({"PYTHONUNBUFFERED": "1"})
    # A terminal's Ctrl-C reaches the whole process group: the client and its local workers.
    sweep = subprocess.Popen(
        cli_command(["sweep", path.name, "--workers", "2"]),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert sweep.stdout is not None
        deadline = time.monotonic() + TIMEOUT_S
        seen: set[str] = set()
        for line in sweep.stdout:
            lines.append(line)
            seen |= {word for word in ("trial-003 completed", "trial-004 started", "trial-005 started") if line.startswith(word)}
            if len(seen) == 3:
                time.sleep(0.3)  # into the training loops of trials 4 and 5 (30 epochs take seconds)
                os.killpg(sweep.pid, signal.SIGINT)
                break
            assert time.monotonic() < deadline, "".join(lines)
        lines += sweep.stdout.readlines()
        sweep.wait(timeout=60)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait(timeout=10)
    output = "".join(lines)
    assert sweep.returncode == EXIT_INTERRUPTED, output
    assert "Traceback" not in output
    root = sweep_folder(tmp_path / "runs")
    rows = {r["trial"]: r for r in read_csv(root / "sweep.csv")}
    assert [rows[f"trial-00{i}"]["status"] for i in (1, 2, 3)] == ["completed"] * 3, output
    assert rows["trial-004"]["status"] == rows["trial-005"]["status"] == "interrupted", output
    assert rows["trial-006"]["status"] == "pending", output
    assert f"continue with: cnn sweep --resume {Path('runs') / root.name}" in output
    for name in ("trial-004", "trial-005"):
        assert (root / name / "checkpoints" / "last.npz").is_file()
    done_before = {name: _mtimes(root / name) for name in ("trial-001", "trial-002", "trial-003")}
    epochs_before = (root / "trial-004" / "metrics.csv").read_text().splitlines()

    resumed = subprocess.run(
        cli_command(["sweep", "--resume", Path("runs") / root.name, "--workers", "2"]),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "3 trial(s) to run" in resumed.stdout
    rows = {r["trial"]: r for r in read_csv(root / "sweep.csv")}
    assert sorted(rows) == [f"trial-00{i}" for i in range(1, 7)]
    assert {r["status"] for r in rows.values()} == {"completed"}, resumed.stdout
    for name, mtimes in done_before.items():
        assert _mtimes(root / name) == mtimes, f"{name} was run again"
    # trial 4 continued from its checkpoint: the epochs it had finished are kept as they were (their timings too)
    epochs_after = (root / "trial-004" / "metrics.csv").read_text().splitlines()
    assert len(epochs_after) == 31
    assert epochs_after[: len(epochs_before)] == epochs_before
