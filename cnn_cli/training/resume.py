"""Resuming a run: its config (or an extension of it), its checkpoint, and the state the loop continues from.

A run resumes exactly: the checkpoint holds the parameters, the optimizer's state,
the random generators, the position in the epoch and the metrics history. Only the
keys in :data:`EXTENDABLE_KEYS` may change on the way (``--set train.epochs=12``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import config_to_yaml
from cnn_cli.config.sections import Config
from cnn_cli.errors import CheckpointError, CnnError, ConfigError
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint, restore_rng_state
from cnn_cli.runs.folders import RunPaths, existing_run, read_metrics, write_text
from cnn_cli.training.state import RunningTotals, TrainState
from cnn_cli.training.stopping import STOPPING_KEYS

EXTENDABLE_KEYS = (
    *("train.epochs", "train.early_stopping_patience", "train.log_gradients", "train.log_every", "train.tensorboard"),
    *(*STOPPING_KEYS, "train.progress_seconds", "train.mlflow"),
)


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
    from cnn_cli.config.yaml_text import parse_yaml

    paths = existing_run(resume)
    data, lines = parse_yaml(paths.config.read_text(encoding="utf-8"), str(paths.config))
    config = config_from_dict(data, str(paths.config), lines)
    if not paths.last.is_file():
        raise CheckpointError(f"{paths.last}: no checkpoint to resume from")
    ckpt, model = load_checkpoint(paths.last)
    if any(key not in EXTENDABLE_KEYS for key in _changed_keys(ckpt.config, config.as_dict())):
        raise CheckpointError(f"{paths.last}: its config differs from {paths.config}; refusing to resume")
    if extended is not None:
        changed = _changed_keys(config.as_dict(), extended.as_dict())
        refused = [key for key in changed if key not in EXTENDABLE_KEYS]
        if refused:
            raise ConfigError(
                f"{refused[0]}: a resumed run keeps its config; only {', '.join(EXTENDABLE_KEYS)} may change "
                f"(start a new run to change {refused[0]})"
            )
        if extended.train.epochs < ckpt.epoch:
            raise ConfigError(f"train.epochs: {extended.train.epochs} is fewer than the {ckpt.epoch} epoch(s) {paths.root} has trained")
        if changed:
            write_text(paths.config, config_to_yaml(extended))
            config = extended
    return paths, config, ckpt, model


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
