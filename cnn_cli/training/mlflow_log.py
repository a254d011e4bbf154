"""MLflow tracking for a run (``train.mlflow: URI`` or ``cnn train --mlflow [URI]``), written with MLflow's own client.

MLflow is the ``mlflow`` extra: ``pip install ".[mlflow]"``; it is imported only when a
run asks for it. Where the run goes:

- ``local`` (``--mlflow`` alone): a store beside the run folders, ``<runs>/mlflow.db`` (SQLite)
  with artifacts in ``<runs>/mlartifacts/``; ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``
  shows it. (MLflow 3 refuses a plain folder store unless told otherwise; SQLite is its local default.)
- any tracking URI MLflow knows: a server (``http://127.0.0.1:5000``), ``sqlite:///path.db``, ...

What the run records, on an experiment named after the config (``name``) and a run named after
the run folder:

- params: the resolved config, flattened (``optimizer.lr``, ``model.layers.0.kernel_size``);
- metrics: every column of ``metrics.csv`` at each epoch end, with step = epoch (and
  ``test_accuracy``, ``test_loss``, ``best_val_accuracy`` once the run completes);
- artifacts at the end: ``checkpoints/``, the run's records (config, run.json, metrics.csv,
  summary.json, gradients.csv) and, through :func:`log_plots`, ``plots/``;
- tags ``cnn.run_dir``, ``cnn.status``, ``cnn.stopped``; the MLflow status FINISHED, KILLED or FAILED.

The run folder keeps the MLflow run id in ``mlflow.json``, so ``--resume`` continues the same
MLflow run: it logs the epochs MLflow lacks (those after the last it logged), and a config key the
resume changed (``train.epochs``) as a tag ``extended.<key>`` (MLflow params never change).
Epochs are logged after their checkpoint is committed, so MLflow never holds an epoch that a
resume trains again. A tracking fault during training is a warning, never a lost run: the next
epoch end logs what was missed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_cli.bounded_read import read_json
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    GRADIENTS_FILE,
    METRIC_COLUMNS,
    METRICS_FILE,
    PLOTS_DIR,
    RUN_FILE,
    SUMMARY_FILE,
    write_json,
)
from cnn_cli.training.state import Callback
from cnn_cli.training.stopping import stop_record
from cnn_cli.version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from cnn_cli.config.sections import Config
    from cnn_cli.training.state import TrainState

MLFLOW_FILE = "mlflow.json"  # in the run folder: tracking URI, experiment and run id
LOCAL = "local"
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
INSTALL_HINT = 'MLflow logging (train.mlflow) needs mlflow: pip install ".[mlflow]"'
EPOCH_METRICS = tuple(column for column in METRIC_COLUMNS if column != "epoch")  # the epoch is the step
SUMMARY_METRICS = ("test_accuracy", "test_loss", "best_val_accuracy")
RECORD_FILES = (CONFIG_FILE, RUN_FILE, METRICS_FILE, SUMMARY_FILE, GRADIENTS_FILE)
RUN_STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
PARAMS_PER_BATCH = 100  # MLflow's limits on one log_batch call
METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000
PROBE_SECONDS = 10


def require_mlflow(config: Config | None) -> None:
    """Refuse (one line, exit 2) a run that asks for MLflow without the extra, or names a server that does not answer."""
    if config is None or config.train.mlflow is None:
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise CnnError(INSTALL_HINT) from None
    _probe(config.train.mlflow)


def _probe(uri: str) -> None:
    """The store must open, and a tracking server answer, before training starts (MLflow's client would retry for minutes)."""
    if uri == LOCAL:
        return  # made beside the run folder once it exists
    if not uri.startswith(("http://", "https://")):
        from mlflow import MlflowClient

        try:
            MlflowClient(tracking_uri=uri)  # opens (or creates) the store
        except Exception as exc:  # MLflow raises several kinds for a URI it cannot use
            raise CnnError(
                f"train.mlflow: MLflow cannot use {uri} ({_short(exc)}); give a server (http://host:port), "
                'sqlite:///FILE.db, or "local" (--mlflow alone) for a store beside the runs'
            ) from None
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS):
            pass
    except urllib.error.HTTPError:
        return  # something answers; MLflow's client says more if it is no tracking server
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CnnError(
            f"train.mlflow: no MLflow tracking server answers at {uri} ({reason}); start one (mlflow server) or fix the URI"
        ) from None


def tracking_target(setting: str, run_root: str | Path) -> tuple[str, str | None]:
    """The tracking URI of ``train.mlflow`` and, for the local store, where a new experiment keeps its artifacts."""
    if setting != LOCAL:
        return setting, None
    folder = Path(run_root).resolve().parent
    return f"sqlite:///{folder / LOCAL_STORE}", (folder / LOCAL_ARTIFACTS).as_uri()


def config_params(config: Config) -> dict[str, str]:
    """The resolved config as MLflow params: flattened keys, values as JSON text (strings as they are).

    Sections nest with dots (``optimizer.lr``); a list of sections by index (``model.layers.0.kernel_size``);
    a list of numbers is one value (``optimizer.betas``: ``[0.9, 0.999]``).
    """
    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else str(name))
        elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
            for index, item in enumerate(value):
                walk(item, f"{key}.{index}")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[key] = text[:MAX_PARAM_LENGTH]

    walk(config.as_dict(), "")
    return out


def read_record(run_root: str | Path) -> dict[str, str] | None:
    """``mlflow.json`` of a run folder, or None when there is none (or it is unreadable)."""
    try:
        record = read_json(Path(run_root) / MLFLOW_FILE)
    except CnnError:
        return None
    return record if isinstance(record, dict) and {"tracking_uri", "run_id"} <= record.keys() else None


def _now_ms() -> int:
    return int(time.time() * 1000)


class MLflowLogger(Callback):
    """Logs the run to MLflow (see the module docstring); placed after the checkpoint commit of each epoch."""

    def __init__(self) -> None:
        self.client: Any = None
        self.run_id = ""
        self.logged_epoch = 0  # the last epoch MLflow holds
        self._failing = False

    def on_fit_start(self, state: TrainState) -> None:
        try:
            self._open(state)
        except Exception as exc:  # a tracking fault must not stop training; a resume tries again
            self.client = None
            state.log(f"warning: mlflow: not logging this run ({_short(exc)}); training goes on, a resume logs what was missed")

    def on_epoch_end(self, state: TrainState) -> None:
        self._guarded(state, self._log_epochs)

    def on_finish(self, state: TrainState) -> None:
        if self.client is None:
            return
        self._guarded(state, self._finish)
        self.client = None

    # -------------------------------------------------------------- what

    def _open(self, state: TrainState) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri, artifacts = tracking_target(str(state.config.train.mlflow), state.paths.root)
        self.client = MlflowClient(tracking_uri=uri)
        record, run = read_record(state.paths.root), None
        if record is not None and record["tracking_uri"] == uri:
            try:
                run = self.client.get_run(record["run_id"])
            except MlflowException:
                state.log(f"warning: mlflow: run {record['run_id']} is not in {uri}; starting a new MLflow run")
        elif record is not None:
            state.log(f"note: mlflow: this run was logged to {record['tracking_uri']}; starting a new MLflow run in {uri}")
        if run is None:
            run = self._new_run(state, uri, artifacts)
        else:
            self.client.update_run(run.info.run_id, status="RUNNING")
            state.log(f"mlflow: continuing run {run.info.run_id} in {uri}")
        self.run_id = run.info.run_id
        self._log_params(run.data.params, config_params(state.config))
        logged = self.client.get_metric_history(self.run_id, EPOCH_METRICS[0])
        self.logged_epoch = max((metric.step for metric in logged), default=0)
        self._log_epochs(state)

    def _new_run(self, state: TrainState, uri: str, artifacts: str | None) -> Any:
        from mlflow.exceptions import MlflowException

        name = state.config.name
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            try:
                experiment_id = self.client.create_experiment(name, artifact_location=artifacts)
            except MlflowException:  # made meanwhile by another run (a sweep)
                experiment_id = self.client.get_experiment_by_name(name).experiment_id
        tags = {"cnn.run_dir": str(state.paths.root.resolve()), "cnn.version": __version__}
        run = self.client.create_run(experiment_id, run_name=state.paths.root.name, tags=tags)
        write_json(state.paths.root / MLFLOW_FILE, {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run.info.run_id})
        state.log(f"mlflow: run {run.info.run_id} in {uri} (experiment {name!r})")
        return run

    def _log_params(self, existing: dict[str, str], params: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        new = [Param(key, value) for key, value in params.items() if key not in existing]
        changed = [RunTag(f"extended.{key}", value) for key, value in params.items() if key in existing and existing[key] != value]
        for start in range(0, len(new), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=new[start : start + PARAMS_PER_BATCH])
        for start in range(0, len(changed), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=changed[start : start + PARAMS_PER_BATCH])

    def _log_epochs(self, state: TrainState) -> None:
        """Every finished epoch MLflow does not hold yet: one metric per metrics.csv column, step = epoch."""
        from mlflow.entities import Metric

        rows = [row for row in state.history if row["epoch"] > self.logged_epoch]
        stamp = _now_ms()
        metrics = [Metric(column, float(row[column]), stamp, int(row["epoch"])) for row in rows for column in EPOCH_METRICS]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + METRICS_PER_BATCH])
        if rows:
            self.logged_epoch = int(rows[-1]["epoch"])

    def _finish(self, state: TrainState) -> None:
        from mlflow.entities import Metric, RunTag

        self._log_epochs(state)
        stamp = _now_ms()
        summary = [Metric(key, float(state.summary[key]), stamp, state.epoch) for key in SUMMARY_METRICS if key in state.summary]
        stopped = stop_record(state)["reason"]
        tags = [RunTag("cnn.status", state.status), RunTag("cnn.stopped", stopped)]
        self.client.log_batch(self.run_id, metrics=summary, tags=tags)
        root = state.paths.root
        if (root / CHECKPOINT_DIR).is_dir():
            self.client.log_artifacts(self.run_id, str(root / CHECKPOINT_DIR), CHECKPOINT_DIR)
        for name in RECORD_FILES:
            if (root / name).is_file():
                self.client.log_artifact(self.run_id, str(root / name))
        self.client.set_terminated(self.run_id, RUN_STATUS.get(state.status, "FINISHED"))

    def _guarded(self, state: TrainState, work: Callable[[TrainState], None]) -> None:
        """Run ``work``; a tracking fault is one warning (until logging works again), never the end of training."""
        if self.client is None:
            return
        try:
            work(state)
        except Exception as exc:  # the run folder holds everything; MLflow catches up at the next epoch end or resume
            if not self._failing:
                state.log(
                    f"warning: mlflow: logging failed ({_short(exc)}); training goes on, MLflow catches up at an epoch end or a resume"
                )
            self._failing = True
            return
        if self._failing:
            state.log("mlflow: logging works again; the epochs it missed are logged")
        self._failing = False


def log_plots(run_root: str | Path, log: Callable[[str], None] = print) -> None:
    """Add a finished run's ``plots/`` to its MLflow run (called after the plots are drawn); a fault is a warning."""
    from cnn_cli.config.load import load_config

    root = Path(run_root)
    record = read_record(root)
    if record is None or not (root / PLOTS_DIR).is_dir() or load_config(root / CONFIG_FILE).train.mlflow is None:
        return
    try:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=record["tracking_uri"]).log_artifacts(record["run_id"], str(root / PLOTS_DIR), PLOTS_DIR)
    except Exception as exc:  # the plots are in the run folder all the same
        log(f"warning: mlflow: plots not logged ({_short(exc)})")


def _short(exc: BaseException) -> str:
    """An exception as one short line: its first sentence (MLflow's messages can run to many lines)."""
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {first[:200]}"
