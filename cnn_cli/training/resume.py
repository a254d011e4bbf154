"""Resuming a run: its config (or an extension of it), its checkpoint, and the state the loop continues from.

A run resumes exactly: the checkpoint holds the parameters, the optimizer's state,
the random generators, the position in the epoch and the metrics history. Only the
keys in :data:`EXTENDABLE_KEYS` may change on the way: those that extend the run
(``--set train.epochs=12``) and those that change no result (:data:`NO_RESULT_KEYS`:
where the data lives, what is logged and drawn).

Data that moved is found again with ``--set data.data_dir=NEW`` (or ``data.paths``,
``data.path``): the run's ``run.json`` holds the SHA-256 of the data it trained on
(:func:`cnn_cli.runs.datasets.data_fingerprint`), and a resume checks the data it
finds against it. A plain resume never makes the run's old data folder again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnn_cli.bounded_read import read_text
from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import config_to_yaml
from cnn_cli.config.sections import Config
from cnn_cli.errors import CheckpointError, CnnError, ConfigError
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint
from cnn_cli.runs.folders import RunPaths, existing_run, read_metrics, write_text
from cnn_cli.runs.rng_state import restore_rng_state
from cnn_cli.training.state import RunningTotals, TrainState
from cnn_cli.training.stopping import STOPPING_KEYS

NO_RESULT_KEYS = (  # a resume may change these: the numbers it trains to stay the same (a key covers the keys below it)
    *("data.data_dir", "data.paths", "data.path"),  # where the data lives now; its SHA-256 is checked instead
    *("train.log_gradients", "train.log_every", "train.tensorboard", "train.progress_seconds", "train.mlflow"),
    *("train.plots", "train.save_every_epoch", "train.memory_limit_gb", "description"),
)
EXTENDABLE_KEYS = ("train.epochs", "train.early_stopping_patience", *STOPPING_KEYS, *NO_RESULT_KEYS)
DATA_RECORD_KEY = "data_sha256"  # run.json: the SHA-256 of the splits the run trains on
_DATA_LOCATION_KEYS = ("data.data_dir", "data.paths", "data.path")


def may_change(key: str) -> bool:
    """Whether a resume may change config key ``key`` (a flattened path such as ``data.paths.train_images``)."""
    return any(key == allowed or key.startswith(allowed + ".") for allowed in EXTENDABLE_KEYS)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    first, second = _flat(before), _flat(after)
    return sorted(key for key in first.keys() | second.keys() if first.get(key) != second.get(key))


def open_run_to_resume(resume: str | Path, extended: Config | None) -> tuple[RunPaths, Config, Checkpoint, Model]:
    """The run's config (or its extension), checkpoint and model, with every difference between them checked.

    The checkpoint may lag config.yaml by an extension whose first epoch has not finished yet,
    so the two may differ in :data:`EXTENDABLE_KEYS` (config.yaml wins); nothing else may differ.
    """
    from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, parse_yaml

    paths = existing_run(resume)
    data, lines = parse_yaml(read_text(paths.config, MAX_CONFIG_BYTES, "config", ConfigError), str(paths.config))
    config = config_from_dict(data, str(paths.config), lines)
    if not paths.last.is_file():
        raise CheckpointError(f"{paths.last}: no checkpoint to resume from")
    ckpt, model = load_checkpoint(paths.last)
    moved = False
    if not all(map(may_change, _changed_keys(ckpt.config, config.as_dict()))):
        raise CheckpointError(f"{paths.last}: its config differs from {paths.config}; refusing to resume")
    if extended is not None:
        changed = _changed_keys(config.as_dict(), extended.as_dict())
        refused = [key for key in changed if not may_change(key)]
        if refused:
            raise ConfigError(
                f"{refused[0]}: a resumed run keeps its config; only {', '.join(EXTENDABLE_KEYS)} may change "
                f"(start a new run to change {refused[0]})"
            )
        if extended.train.epochs < ckpt.epoch:
            raise ConfigError(f"train.epochs: {extended.train.epochs} is fewer than the {ckpt.epoch} epoch(s) {paths.root} has trained")
        moved = any(key.startswith(_DATA_LOCATION_KEYS) for key in changed)
        config = extended if changed else config  # config.yaml is rewritten once the data is checked (save_extension)
    if extended is None or not moved:
        _check_data_folder(paths, config)
    return paths, config, ckpt, model


def _check_data_folder(paths: RunPaths, config: Config) -> None:
    """A plain resume reads the run's data where it was: what is gone is named with the key that moves it, never made again."""
    from cnn_cli.data import DATASETS
    from cnn_cli.data.sources import resolve_data_dir

    d = config.data
    if d.dataset in DATASETS:
        gone = [("data.data_dir", resolve_data_dir(d.data_dir) / DATASETS[d.dataset].name)] if d.data_dir is not None else []
    else:  # idx files, a folder of images: only read, so a missing one would be refused anyway; name the key that moves it
        gone = [(f"data.paths.{role}", Path(path)) for role, path in (d.paths or {}).items()]
        gone += [("data.path", Path(d.path))] if d.path is not None else []
    for key, where in gone:
        if not where.expanduser().exists():
            raise CnnError(
                f"{key}: {where} is gone (the data {paths.root} trained on); if it moved, resume with "
                f"--set {key}=NEW_PLACE (the data's SHA-256 is checked against the run's)"
            )


def save_extension(paths: RunPaths, config: Config) -> None:
    """Write a resumed run's extended config to its config.yaml (after every check passed)."""
    text = config_to_yaml(config)
    if paths.config.read_text(encoding="utf-8") != text:
        write_text(paths.config, text)


def check_resumed_data(paths: RunPaths, fingerprint: str) -> None:
    """The data found now must be the data the run trained on (run.json's :data:`DATA_RECORD_KEY`; older runs have none)."""
    from cnn_cli.runs.folders import read_json_record

    recorded = (read_json_record(paths.run_info) or {}).get(DATA_RECORD_KEY)
    if isinstance(recorded, str) and recorded != fingerprint:
        raise CnnError(
            f"the data found now is not the data {paths.root} trained on (SHA-256 {fingerprint[:12]}..., "
            f"run.json records {recorded[:12]}...); point data.data_dir (or data.paths, data.path) at that data"
        )


def restore_state(state: TrainState, ckpt: Checkpoint) -> None:
    """Put a resumed run back where its checkpoint left it, and say where that is."""
    state.optimizer.load_state_arrays(ckpt.optimizer_state)
    restore_rng_state(state.model, ckpt.rng, state.paths.last)
    state.epoch, state.step, state.batch_in_epoch = ckpt.epoch, ckpt.step, ckpt.batch_in_epoch
    state.totals = RunningTotals.from_list(ckpt.running)
    state.best_val_acc, state.best_epoch = ckpt.best_val_acc, ckpt.best_epoch
    state.history = _resumed_history(state, ckpt)
    root, epochs = state.paths.root, state.config.train.epochs
    planned = ckpt.config.get("train", {}).get("epochs")
    schedule = state.config.schedule.name
    if schedule in ("cosine", "onecycle") and planned != epochs:
        state.log(f"note: the {schedule} schedule spans train.epochs; from here it follows {epochs} epochs instead of {planned}")
    if state.epoch >= epochs:
        state.log(f"resuming {root}: all {epochs} epoch(s) are trained; running the final test")
    else:
        state.log(f"resuming {root} at epoch {state.epoch + 1}, batch {state.batch_in_epoch + 1} (step {state.step})")


def _resumed_history(state: TrainState, ckpt: Checkpoint) -> list[dict[str, Any]]:
    """The metrics rows up to the checkpoint; metrics.csv is checked against the copy inside last.npz.

    A metrics.csv that was deleted, edited or cut short is rewritten from the checkpoint,
    with a warning naming it. An older checkpoint without a history falls back on the file.
    """
    path = state.paths.metrics
    try:
        on_disk: list[dict[str, Any]] | None = [row for row in read_metrics(path) if row["epoch"] <= ckpt.epoch]
        problem = "is missing" if not path.is_file() else "differs from the history saved in the checkpoint"
    except CnnError as exc:
        on_disk, problem = None, f"is unreadable ({str(exc).removeprefix(f'{path}: ')})"
    if ckpt.history is None:
        rows = on_disk or []
        lost = sorted(set(range(1, ckpt.epoch + 1)) - {row["epoch"] for row in rows})
        if lost:
            state.log(f"warning: {path}: no row for epoch(s) {', '.join(map(str, lost))}; those records are lost")
        return rows
    if on_disk is None or _as_text(on_disk) != _as_text(ckpt.history):
        state.log(f"warning: {path} {problem}; rewritten from {state.paths.last} (epochs 1-{ckpt.epoch})")
    return list(ckpt.history)


def _as_text(rows: list[dict[str, Any]]) -> list[str]:
    """Rows compared as JSON text, so that NaN (no validation split) equals NaN."""
    return [json.dumps(row, sort_keys=True) for row in rows]
