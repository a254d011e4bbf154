"""The thread count a run chose is recorded in run.json, and a resume runs on it (OpenBLAS rounds by thread count)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.nn.thread_policy import openblas_threads, set_threads
from cnn_cli.nn.threads import usable_cpus
from cnn_cli.training.train import train
from tests.support.synthetic import make_idx_dataset, tiny_config


@pytest.fixture
def policy_on(monkeypatch: pytest.MonkeyPatch):
    for name in ("CNN_THREAD_POLICY", "OPENBLAS_NUM_THREADS", "CNN_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    yield
    set_threads(usable_cpus())


def test_a_run_records_its_threads_and_a_resume_runs_on_them(tmp_path: Path, policy_on) -> None:
    if openblas_threads() is None:
        pytest.skip("OpenBLAS's thread count cannot be asked here")
    config = config_from_dict(tiny_config(make_idx_dataset(tmp_path / "data", n_train=200, n_test=50), epochs=2, plots=False))
    run = tmp_path / "run"
    lines: list[str] = []
    first = train(config, run_dir=run, log=lines.append, stop_after_steps=3)
    assert first.status == "interrupted"
    record = json.loads((run / "run.json").read_text())
    assert isinstance(record["threads"], int) and 1 <= record["threads"] <= usable_cpus()
    record["threads"] = 1  # as if the machine had been busy when the run started
    (run / "run.json").write_text(json.dumps(record))
    set_threads(usable_cpus())
    lines.clear()
    resumed = train(None, resume=run, log=lines.append)
    assert resumed.status == "completed", lines
    assert openblas_threads() == 1, "the resume ran on the recorded count"
    assert json.loads((run / "run.json").read_text())["threads"] == 1
    if usable_cpus() > 1:
        assert any(line.startswith("threads: 1, as the run started with") for line in lines), lines
