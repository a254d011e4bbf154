"""cnn train --mlflow: a real ``mlflow server`` on 127.0.0.1, read back with MLflow's own client (params, metrics, artifacts, resume)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from cnn_cli.config.build import config_from_dict  # noqa: E402
from cnn_cli.config.load import load_config  # noqa: E402
from cnn_cli.runs.folders import read_metrics  # noqa: E402
from cnn_cli.training.mlflow_log import EPOCH_METRICS, MLFLOW_FILE, MLflowLogger, config_params  # noqa: E402
from cnn_cli.training.train import train  # noqa: E402
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config  # noqa: E402
from tests.support.synthetic import make_idx_dataset, tiny_config  # noqa: E402

SERVER_START_SECONDS = 300  # a cold start creates the server's database; minutes on a busy 2-core machine
SERVER_STOP_SECONDS = 15
RUN_SECONDS = 300
STEPS_PER_EPOCH = 16  # 500 training images in batches of 32


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it runs uvicorn and a job runner as children), then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children still in the group, even after the parent went
    except ProcessLookupError:
        pass
    process.wait(timeout=SERVER_STOP_SECONDS)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 at a free port, with its store and artifacts in a temporary folder; stopped afterwards."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = folder / "server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'store.db'}", "--artifacts-destination", str(folder / "artifacts")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _answers(uri):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not come up at {uri} (exit {process.poll()}):\n{tail}")
            time.sleep(0.5)
        yield uri
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def idx_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def finished(tracking_server, idx_paths, tmp_path_factory) -> Path:
    """A two-epoch run with plots, logged to the server through ``cnn train --mlflow URI``."""
    folder = tmp_path_factory.mktemp("runs")
    path = write_config(folder / "tiny.yaml", tiny_config(idx_paths, epochs=2, plots=True))
    outcome = invoke_cli(["train", "--config", path, "--run-dir", folder / "run", "--mlflow", tracking_server], timeout=RUN_SECONDS)
    assert outcome.code == 0, outcome.output
    assert "warning" not in outcome.output, outcome.output
    return folder / "run"


def run_id(run: Path) -> str:
    return json.loads((run / MLFLOW_FILE).read_text())["run_id"]


def history(client: MlflowClient, run: str, key: str) -> list[tuple[int, float]]:
    return sorted((metric.step, metric.value) for metric in client.get_metric_history(run, key))


def test_params_are_the_resolved_config_flattened(tracking_server, finished):
    run = MlflowClient(tracking_server).get_run(run_id(finished))
    params = run.data.params
    assert params == config_params(load_config(finished / "config.yaml"))
    assert params["optimizer.lr"] == "0.01" and params["train.epochs"] == "2" and params["optimizer.betas"] == "[0.9, 0.999]"
    assert params["model.layers.0.type"] == "conv2d" and params["model.layers.0.kernel_size"] == "[3, 3]"
    assert params["train.mlflow"] == tracking_server and params["train.max_time"] == "null"
    assert run.info.run_name == "run" and run.data.tags["cnn.run_dir"] == str(finished.resolve())
    assert MlflowClient(tracking_server).get_experiment(run.info.experiment_id).name == "tiny"


def test_metric_history_is_metrics_csv_with_step_epoch(tracking_server, finished):
    client, run = MlflowClient(tracking_server), run_id(finished)
    rows = read_metrics(finished / "metrics.csv")
    for column in EPOCH_METRICS:
        assert history(client, run, column) == [(row["epoch"], pytest.approx(row[column])) for row in rows], column
    summary = json.loads((finished / "summary.json").read_text())
    assert history(client, run, "test_accuracy") == [(2, summary["test_accuracy"])]
    info = client.get_run(run).info
    assert info.status == "FINISHED"
    assert client.get_run(run).data.tags["cnn.stopped"] == "epochs_done"


def test_artifacts_are_the_checkpoints_plots_and_records(tracking_server, finished, tmp_path):
    client, run = MlflowClient(tracking_server), run_id(finished)
    assert {a.path for a in client.list_artifacts(run, "checkpoints")} == {"checkpoints/last.npz", "checkpoints/best.npz"}
    plots = {f"plots/{p.name}" for p in (finished / "plots").iterdir()}
    assert plots and {a.path for a in client.list_artifacts(run, "plots")} == plots
    assert {"config.yaml", "run.json", "metrics.csv", "summary.json"} <= {a.path for a in client.list_artifacts(run)}
    copy = client.download_artifacts(run, "checkpoints/best.npz", str(tmp_path))
    assert Path(copy).read_bytes() == (finished / "checkpoints" / "best.npz").read_bytes()


def test_resume_continues_the_same_mlflow_run(tracking_server, idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=2, mlflow=tracking_server)
    cut = train(config_from_dict(config), run_dir=tmp_path / "cut", log=lambda line: None, stop_after_steps=STEPS_PER_EPOCH + 5)
    assert cut.status == "interrupted"
    client, run = MlflowClient(tracking_server), run_id(tmp_path / "cut")
    assert client.get_run(run).info.status == "KILLED"
    assert [step for step, _ in history(client, run, "train_loss")] == [1]
    outcome = invoke_cli(["train", "--resume", tmp_path / "cut", "--set", "train.epochs=3"], timeout=RUN_SECONDS)
    assert outcome.code == 0, outcome.output
    assert f"mlflow: continuing run {run}" in outcome.stdout
    assert run_id(tmp_path / "cut") == run
    rows = read_metrics(tmp_path / "cut" / "metrics.csv")
    for column in EPOCH_METRICS:
        assert history(client, run, column) == [(row["epoch"], pytest.approx(row[column])) for row in rows], column
    logged = client.get_run(run)
    assert logged.info.status == "FINISHED" and len(client.search_runs([logged.info.experiment_id])) >= 1
    assert logged.data.params["train.epochs"] == "2" and logged.data.tags["extended.train.epochs"] == "3"  # params never change


def test_local_store_beside_the_runs_by_default(idx_paths, tmp_path):
    path = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    outcome = invoke_cli(["train", "--config", path, "--run-dir", tmp_path / "runs" / "one", "--mlflow"], timeout=RUN_SECONDS)
    assert outcome.code == 0, outcome.output
    record = json.loads((tmp_path / "runs" / "one" / MLFLOW_FILE).read_text())
    assert record["tracking_uri"] == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    client = MlflowClient(record["tracking_uri"])
    assert client.get_run(record["run_id"]).info.status == "FINISHED"
    assert [step for step, _ in history(client, record["run_id"], "val_acc")] == [1]
    stored = tmp_path / "runs" / "mlartifacts"
    assert list(stored.glob("*/artifacts/checkpoints/last.npz")), sorted(stored.rglob("*"))


def test_without_the_extra_one_line_names_the_pip_command(idx_paths, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    path = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    outcome = invoke_cli(["train", "--config", path, "--run-dir", tmp_path / "run", "--mlflow"], timeout=RUN_SECONDS)
    error_line(outcome, EXIT_BAD_INPUT, 'needs mlflow: pip install ".[mlflow]"')
    assert not (tmp_path / "run").exists()


def test_a_server_that_does_not_answer_is_refused_before_anything_is_made(idx_paths, tmp_path):
    path = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    uri = f"http://127.0.0.1:{free_port()}"
    outcome = invoke_cli(["train", "--config", path, "--run-dir", tmp_path / "run", "--mlflow", uri], timeout=RUN_SECONDS)
    error_line(outcome, EXIT_BAD_INPUT, f"train.mlflow: no MLflow tracking server answers at {uri}")
    assert not (tmp_path / "run").exists()


def test_a_store_mlflow_cannot_use_is_refused_before_anything_is_made(idx_paths, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    path = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    uri = (tmp_path / "mlruns").as_uri()  # a plain folder store, which MLflow 3 refuses unless told otherwise
    outcome = invoke_cli(["train", "--config", path, "--run-dir", tmp_path / "run", f"--mlflow={uri}"], timeout=RUN_SECONDS)
    error_line(outcome, EXIT_BAD_INPUT, f"train.mlflow: MLflow cannot use {uri}", "sqlite:///FILE.db")
    assert not (tmp_path / "run").exists()


class FlakyClient:
    """Stands in for MlflowClient: log_batch fails while ``down``; remembers the metrics it took."""

    def __init__(self) -> None:
        self.down = False
        self.metrics: list[tuple[str, int]] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()) -> None:
        if self.down:
            raise ConnectionError("tracking server went away")
        self.metrics += [(metric.key, metric.step) for metric in metrics]


def test_a_tracking_fault_is_one_warning_and_the_next_epoch_end_catches_up():
    logger, client, lines = MLflowLogger(), FlakyClient(), []
    logger.client, logger.run_id = client, "run"
    state = SimpleNamespace(history=[], log=lines.append)
    for epoch, down in ((1, False), (2, True), (3, True), (4, False)):
        client.down = down
        state.history.append({"epoch": epoch, **dict.fromkeys(EPOCH_METRICS, 0.5)})
        logger.on_epoch_end(state)
    assert sorted({step for _, step in client.metrics}) == [1, 2, 3, 4]
    assert len(client.metrics) == 4 * len(EPOCH_METRICS)  # each epoch once
    assert len(lines) == 2 and lines[0].startswith("warning: mlflow: logging failed (ConnectionError: tracking server went away)")
    assert lines[1] == "mlflow: logging works again; the epochs it missed are logged"
