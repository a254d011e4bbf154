"""The runs side of ``cnn serve``: liveness, step curves, CSV downloads, runs compared, and the cached runs index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN, copy_run

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)

from cnn_cli.runs.folders import STEP_COLUMNS, RunPaths  # noqa: E402
from cnn_cli.serve.app import create_app  # noqa: E402

MANY_RUNS = 5000


def dead_pid() -> int:
    """The PID of a process that was started and killed with SIGKILL (as ``kill -9`` does)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    return child.pid


def set_process(paths: RunPaths, **fields) -> None:
    """Name another training process in run.json (without a start time, which belonged to the copied run's)."""
    info = json.loads(paths.run_info.read_text())
    info.pop("pid_start", None)
    info.update(fields)
    paths.run_info.write_text(json.dumps(info))


# ---------------------------------------------------------------- liveness (defect 10)


def test_a_real_run_records_its_process(trained_run: RunPaths) -> None:
    info = json.loads(trained_run.run_info.read_text())
    assert isinstance(info["pid"], int) and info["host"] == socket.gethostname()
    assert info["invocations"][-1]["pid"] == info["pid"]


def test_a_running_run_whose_process_is_gone_shows_as_stopped(client, runs_root: Path) -> None:
    killed = copy_run(runs_root, "killed", status="running")
    set_process(killed, pid=dead_pid(), host=socket.gethostname())
    alive = copy_run(runs_root, "alive", status="running")
    set_process(alive, pid=os.getpid(), host=socket.gethostname())
    elsewhere = copy_run(runs_root, "elsewhere", status="running")
    set_process(elsewhere, pid=1, host="another-machine")
    listed = {run["name"]: run for run in client.get("/api/runs").json["runs"]}
    assert listed["killed"]["status"] == "stopped" and listed["killed"]["alive"] is False
    assert listed["alive"]["status"] == "running"
    assert listed["elsewhere"]["status"] == "running"  # cannot be told from here
    assert listed[TRAINED_RUN]["status"] == "completed"
    detail = client.get("/api/runs/killed").json
    assert detail["status"] == "stopped" and detail["alive"] is False


def test_the_page_stamp_changes_when_the_process_dies(client, runs_root: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = copy_run(runs_root, "dies", status="running")
    set_process(run, pid=child.pid, host=socket.gethostname())
    before = client.get("/api/runs/dies").json
    assert before["status"] == "running" and before["alive"] is True
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    after = client.get(f"/api/runs/dies?since={before['stamp']}").json
    assert after.get("unchanged") is None and after["status"] == "stopped"


def test_gradients_say_whether_they_are_coming(client, runs_root: Path) -> None:
    running = copy_run(runs_root, "no-gradients-yet", status="running")
    set_process(running, pid=os.getpid(), host=socket.gethostname())
    running.gradients.unlink()
    detail = client.get("/api/runs/no-gradients-yet").json
    assert detail["gradients"]["present"] is False and detail["gradients"]["logged"] is True and detail["status"] == "running"
    off = copy_run(runs_root, "logging-off")
    off.gradients.unlink()
    off.config.write_text(off.config.read_text().replace("log_gradients: true", "log_gradients: false"))
    assert client.get("/api/runs/logging-off").json["gradients"]["logged"] is False


# ---------------------------------------------------------------- steps, CSV, compare


def test_steps_become_columns_for_the_step_chart(client, runs_root: Path) -> None:
    steps = client.get(f"/api/runs/{TRAINED_RUN}").json["steps"]
    assert steps["present"] is True
    assert set(STEP_COLUMNS) <= set(steps)
    count = len(steps["step"])
    assert count >= 2 and all(len(steps[key]) == count for key in STEP_COLUMNS)
    assert steps["step"] == sorted(steps["step"]) and all(loss > 0 for loss in steps["loss"])
    path = RunPaths(runs_root / TRAINED_RUN).steps
    path.write_text(path.read_text() + "3,999,0.003,0.2")  # being appended
    assert len(client.get(f"/api/runs/{TRAINED_RUN}").json["steps"]["step"]) == count
    path.unlink()
    assert client.get(f"/api/runs/{TRAINED_RUN}").json["steps"]["present"] is False


def test_metrics_and_steps_download_as_csv(client, runs_root: Path) -> None:
    paths = RunPaths(runs_root / TRAINED_RUN)
    for which, path in (("metrics", paths.metrics), ("steps", paths.steps)):
        response = client.get(f"/api/runs/{TRAINED_RUN}/{which}.csv")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"] == f"attachment; filename={TRAINED_RUN}-{which}.csv"
        assert response.data == path.read_bytes()
    paths.steps.unlink()
    assert client.get(f"/api/runs/{TRAINED_RUN}/steps.csv").status_code == 404
    assert client.get(f"/api/runs/{TRAINED_RUN}/config.csv").status_code == 404


def test_compare_overlays_runs_and_names_the_config_keys_that_differ(client, runs_root: Path) -> None:
    other = copy_run(runs_root, "wider")
    other.config.write_text(other.config.read_text().replace("epochs: 2", "epochs: 5").replace("name: smoke", "name: wider"))
    result = client.get(f"/api/compare?run={TRAINED_RUN}&run=wider&run=wider").json
    assert [run["name"] for run in result["runs"]] == [TRAINED_RUN, "wider"]
    assert result["differing"] == [{"key": "train.epochs", "values": [2, 5]}]  # name: ignored, it always differs
    assert all(run["steps"]["present"] and run["metrics"] for run in result["runs"])
    assert client.get("/api/compare").status_code == 400
    assert client.get("/api/compare?run=..").status_code == 404


# ---------------------------------------------------------------- the cached index (defect 7)


def test_the_index_follows_the_folder(client, runs_root: Path) -> None:
    names = lambda: [run["name"] for run in client.get("/api/runs").json["runs"]]  # noqa: E731
    assert names() == [TRAINED_RUN]
    copy_run(runs_root, "second", started="2999-01-01T00:00:00")
    assert names() == ["second", TRAINED_RUN]
    being_made = runs_root / "being-made"
    being_made.mkdir()
    assert "being-made" not in names()  # an empty folder is not a run yet
    shutil.copy(runs_root / TRAINED_RUN / "config.yaml", being_made / "config.yaml")
    assert "being-made" in names()  # its config appeared: the folder itself did not change
    paths = RunPaths(runs_root / "second")
    paths.metrics.write_text(paths.metrics.read_text() + "3,999,0.003,0.1,0.96,0.2,0.95,0.3,30000.0\n")
    assert client.get("/api/runs").json["runs"][0]["epochs"] == 3
    shutil.rmtree(paths.root)
    assert "second" not in names()


def test_an_unchanged_list_is_a_small_answer(client, runs_root: Path) -> None:
    first = client.get("/api/runs").json
    assert client.get(f"/api/runs?since={first['stamp']}").json == {"stamp": first["stamp"], "unchanged": True}
    copy_run(runs_root, "new")
    assert "runs" in client.get(f"/api/runs?since={first['stamp']}").json


def test_five_thousand_runs_list_in_under_two_seconds(runs_root: Path) -> None:
    source = runs_root / TRAINED_RUN
    files = {name: (source / name).read_bytes() for name in ("config.yaml", "run.json", "metrics.csv", "summary.json")}
    for i in range(MANY_RUNS):
        folder = runs_root / f"run-{i:05d}"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
    client = create_app(runs_root).test_client()
    start = time.perf_counter()
    assert len(client.get("/api/runs").json["runs"]) == MANY_RUNS + 1
    cold = time.perf_counter() - start
    timings = []
    for i in range(3):
        (runs_root / f"run-{i:05d}" / "metrics.csv").write_bytes(files["metrics.csv"] + b"3,999,0.003,0.1,0.96,0.2,0.95,0.3,30000.0\n")
        start = time.perf_counter()
        runs = client.get("/api/runs").json["runs"]
        timings.append(time.perf_counter() - start)
        assert len(runs) == MANY_RUNS + 1
    print(f"\n/api/runs with {MANY_RUNS} runs: {cold:.2f} s the first time, then {', '.join(f'{t:.2f}' for t in timings)} s")
    assert max(timings) < 2.0


@pytest.mark.parametrize(
    ("config_text", "name", "epochs"),
    [
        ("name: wide\ntrain:\n  batch_size: 64\n  epochs: 7\n", "wide", 7),  # block style, as cnn writes it: read from the lines
        ("name: wide\ntrain: {epochs: 7}\n", "wide", 7),  # flow style: parsed as YAML
        ("name: 'my run'\ntrain:\n  epochs: 7\n", "my run", 7),
        ("name: yes\ntrain:\n  epochs: 7\n", "True", 7),  # YAML reads yes as a bool
        ("name: wide\ntrain:\n  epochs: 7  # seven\n", "wide", 7),
        ("name: wide\ndescription: |\n  epochs: 99\ntrain:\n  epochs: 7\n", "wide", 7),
        ("name: wide\ntrain:\n  schedule:\n    epochs: 99\n", "wide", None),
        ("name: wide\n", "wide", None),
    ],
)
def test_the_list_reads_name_and_epochs_as_yaml_does(client, runs_root: Path, config_text: str, name: str, epochs: int | None) -> None:
    run = copy_run(runs_root, "configured")
    run.config.write_text(config_text)
    (row,) = [run for run in client.get("/api/runs").json["runs"] if run["name"] == "configured"]
    assert (row["config"], row["epochs_planned"]) == (name, epochs)
