"""``cnn train`` as a plain function: set up the data, model, optimizer and run folder (or resume one), then fit.

The loop itself is :func:`cnn_cli.loop.fit`; what happens around each step and
epoch is in :mod:`cnn_cli.callbacks`. Nothing here prints except through the
``log`` callback and the progress bar.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import config_to_yaml
from cnn_cli.config.sections import Config
from cnn_cli.errors import EXIT_INTERRUPTED, CheckpointError, CnnError, ConfigError, RuntimeFault
from cnn_cli.model.network import Model, build_model
from cnn_cli.nn.optim import make_optimizer
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint, restore_rng_state
from cnn_cli.runs.evaluation import EvalResult, evaluate, predictions
from cnn_cli.runs.folders import (
    DEFAULT_RUNS_ROOT,
    RunPaths,
    check_run_dir_free,
    check_run_name,
    claim_run_dir,
    existing_run,
    new_run_dir,
    read_metrics,
    write_json,
    write_text,
)
from cnn_cli.training.callbacks import (
    Checkpointer,
    DivergenceGuard,
    EarlyStopping,
    EpochLogger,
    LatestLink,
    MetricsWriter,
    ProgressBar,
    RunRecord,
)
from cnn_cli.training.epochs import describe_batches, epoch_data, one_batch_splits
from cnn_cli.training.gradient_logger import GradientLogger
from cnn_cli.training.loop import fit
from cnn_cli.training.state import Callback, CallbackList, InterruptFlag, RunningTotals, TrainState, resume_hint
from cnn_cli.training.step_log import StepLog
from cnn_cli.training.tensorboard import TensorBoardLogger, require_extras
from cnn_cli.training.transfer import frozen_parameters, init_from_checkpoint

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away


@dataclass
class TrainResult:
    """What :func:`train` did: the run folder, its status and the summary."""

    run: RunPaths
    status: str  # completed | interrupted | failed
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def _data_splits(config: Config, progress: bool):
    from cnn_cli.runs.datasets import load_config_dataset

    return load_config_dataset(config, mean=config.data.mean, std=config.data.std, progress=progress, train_as_pixels=True)


def train(
    config: Config | None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    runs_root: str | Path = DEFAULT_RUNS_ROOT,
    command_line: list[str] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    stop_after_steps: int | None = None,
    callbacks: Sequence[Callback] | None = None,
    should_stop: Callable[[], bool] | None = None,
    init_from: str | Path | None = None,
    one_batch: bool = False,
) -> TrainResult:
    """Train a model as the config says, recording everything in a run folder.

    Args:
        config: the resolved config. When resuming, None continues with the run's own config; a config
            extends the run (e.g. more epochs) and may differ from the run's only in :data:`EXTENDABLE_KEYS`.
        run_dir: an explicit new run folder (must not hold a run).
        resume: a run folder whose ``checkpoints/last.npz`` to continue from.
        runs_root: where new run folders are created.
        command_line: recorded in run.json.
        log: receives one line per epoch and notices.
        progress: show a tqdm bar per epoch (for terminals).
        stop_after_steps: behave as if Ctrl-C came after this many steps (tests).
        callbacks: extra :class:`cnn_cli.callbacks.Callback` objects, called after the built-in ones.
        should_stop: asked after every step; True acts like Ctrl-C (a sweep's trial on a worker thread).
        init_from: a checkpoint (or run folder) whose matching parameters a new run starts from (:mod:`cnn_cli.transfer`).
        one_batch: one batch of each split only (``cnn train --fast-dev-run``, :mod:`cnn_cli.dry_run`).
    Returns:
        a :class:`TrainResult`; exit_code is 0, 1 (failed) or 128 + the signal (interrupted: 130 for Ctrl-C).
    """
    command_line = command_line or [Path(sys.argv[0]).name, *sys.argv[1:]]
    ckpt: Checkpoint | None = None
    require_extras(config)
    if resume is not None:
        if init_from is not None:
            raise CnnError("--init-from starts a new run; it cannot be combined with --resume")
        paths, config, ckpt, model = _open_run_to_resume(resume, config)
        require_extras(config)
    else:
        if config is None:
            raise CnnError("give a config to train, or a run folder to resume")
        _check_new_run(config, run_dir)  # fail before any slow work
        model = build_model(config, seed=config.train.seed, dtype=config.train.dtype)
    frozen = frozen_parameters(model, config.train.freeze)
    transfer = init_from_checkpoint(model, init_from, config.train.freeze) if init_from is not None else None

    oc = config.optimizer
    splits = _data_splits(config, progress)
    splits = one_batch_splits(config, splits) if one_batch else splits
    _check_classes(model, splits)
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    if ckpt is not None and ckpt.step > 0:
        missing = optimizer.missing_state([name for name in model.params if name not in frozen], ckpt.optimizer_state)
        if missing:
            raise CheckpointError(f"{paths.last}: missing key 'optimizer/{missing}'; cannot resume exactly without it")
    if ckpt is None:  # only now, with model and data ready, does the run folder appear
        paths = claim_run_dir(run_dir) if run_dir is not None else new_run_dir(config.name, runs_root)
        write_text(paths.config, config_to_yaml(config))
    data = epoch_data(config, splits, one_batch)
    interrupt = InterruptFlag(log)
    state = TrainState(
        config,
        model,
        optimizer,
        paths,
        steps_per_epoch=data.steps_per_epoch,
        data_info={"mean": splits.mean, "std": splits.std, "classes": list(map(int, splits.classes))},
        log=_PipeSafeLog(log, interrupt),
        frozen=frozen,
    )
    if ckpt is not None:
        _restore(state, ckpt)
    else:
        _describe_new_run(state, splits)
        for line in [*(transfer.lines() if transfer else []), *describe_batches(data)]:
            state.log(line)
    extra = {"init_from": transfer.as_dict()} if transfer else {}
    hooks = CallbackList([*_builtin_callbacks(config, command_line, ckpt is not None, runs_root, progress, extra), *(callbacks or [])])
    wall_start = time.perf_counter()
    try:
        with interrupt:
            fit(state, data, hooks, interrupt, stop_after_steps, should_stop)
            if state.status == "running":
                _final_test(state, splits, interrupt, hooks, wall_start)
    except RuntimeFault as exc:  # e.g. a full disk: mark the run failed before reporting it
        state.fail(str(exc), RuntimeFault.exit_code)
        with contextlib.suppress(RuntimeFault, OSError):
            hooks.on_finish(state)
        raise
    hooks.on_finish(state)
    return TrainResult(paths, state.status, state.exit_code, state.summary, state.message)


def _builtin_callbacks(
    config: Config, command_line: list[str], resumed: bool, runs_root: str | Path, progress: bool, extra: dict[str, Any] | None = None
) -> list[Callback]:
    """The order matters at an epoch end: checkpoints (the commit), then the records derived from them, then the log."""
    tc = config.train
    gradients = GradientLogger(tc.log_every) if tc.log_gradients else None
    return [
        RunRecord(command_line, resumed, extra),
        LatestLink(runs_root),
        *([ProgressBar()] if progress else []),
        DivergenceGuard(),
        StepLog(tc.log_every),
        *([gradients] if gradients else []),
        *([TensorBoardLogger(gradients)] if tc.tensorboard else []),  # before the commit: a resume purges its later steps
        Checkpointer(),
        MetricsWriter(),
        EpochLogger(),
        *([EarlyStopping(tc.early_stopping_patience)] if tc.early_stopping_patience is not None else []),
    ]


def _check_classes(model: Model, splits) -> None:
    """The model must fit the data: its input shape is one image's, its outputs the data's classes."""
    image_shape = (1, *splits.train.images.shape[1:]) if splits.train.images.ndim == 3 else tuple(splits.train.images.shape[1:])
    if tuple(model.input_shape) != image_shape:
        raise ConfigError(
            f"model.input_shape: the model takes {list(model.input_shape)}, but the data's images are {list(image_shape)}; "
            f"set model.input_shape: {list(image_shape)}"
        )
    if model.loss.num_classes != splits.num_classes:
        raise ConfigError(
            f"model has {model.loss.num_outputs} output(s) for {model.loss.num_classes} classes, "
            f"but the data has {splits.num_classes} classes ({splits.classes})"
        )


def _describe_new_run(state: TrainState, splits) -> None:
    config = state.config
    state.log(
        f"run {state.paths.root}: {config.name}, {state.model.num_params():,} parameters; {len(splits.train.labels):,} training / "
        f"{len(splits.val.labels):,} validation / {len(splits.test.labels):,} test images; "
        f"{config.train.epochs} epoch(s) of {state.steps_per_epoch} steps"
    )


def _check_new_run(config: Config, run_dir: str | Path | None) -> None:
    """Everything about a new run that can be refused before anything is built or created."""
    if run_dir is not None:
        check_run_dir_free(run_dir)
    else:
        check_run_name(config.name)
    # The config's stored size was bounded when it was loaded (config.MAX_CONFIG_BYTES, below the checkpoint's limit).


EXTENDABLE_KEYS = ("train.epochs", "train.early_stopping_patience", "train.log_gradients", "train.log_every", "train.tensorboard")


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    first, second = _flat(before), _flat(after)
    return sorted(key for key in first.keys() | second.keys() if first.get(key) != second.get(key))


def _open_run_to_resume(resume: str | Path, extended: Config | None) -> tuple[RunPaths, Config, Checkpoint, Model]:
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


def _restore(state: TrainState, ckpt: Checkpoint) -> None:
    """Put a resumed run back where its checkpoint left it, and say where that is."""
    state.optimizer.load_state_arrays(ckpt.optimizer_state)
    restore_rng_state(state.model, ckpt.rng, state.paths.last)
    state.epoch, state.step, state.batch_in_epoch = ckpt.epoch, ckpt.step, ckpt.batch_in_epoch
    state.totals = RunningTotals.from_list(ckpt.running)
    state.best_val_acc, state.best_epoch = ckpt.best_val_acc, ckpt.best_epoch
    state.history = _resumed_history(state, ckpt)
    root, epochs = state.paths.root, state.config.train.epochs
    planned = ckpt.config.get("train", {}).get("epochs")
    if state.config.schedule.name == "cosine" and planned != epochs:
        state.log(f"note: the cosine schedule spans train.epochs; from here it follows {epochs} epochs instead of {planned}")
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


def _final_test(state: TrainState, splits, interrupt: InterruptFlag, hooks: CallbackList, wall_start: float) -> None:
    """Test the best checkpoint and write summary.json; a signal here stops at once (nothing to save) and says how to rerun."""
    paths = state.paths
    try:
        interrupt.raise_now()
        best_path = paths.best if paths.best.is_file() else paths.last
        _, best_model = load_checkpoint(best_path)
        test = evaluate(best_model, splits.test.images, splits.test.labels, state.config.train.eval_batch_size)
    except KeyboardInterrupt:
        state.status, state.exit_code = "interrupted", interrupt.exit_code
        state.message = f"interrupted during the final test; every epoch is saved. {resume_hint(state)} (runs the test only)"
        interrupt.immediate = False
        hooks.on_interrupt(state)
        return
    interrupt.immediate = False
    state.summary = {
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "test_n": test.n,
        "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_val_acc,
        "epochs_trained": state.epoch,
        "steps": state.step,
        "wall_seconds": round(time.perf_counter() - wall_start, 2),
        "checkpoint": str(best_path),
        "per_class_accuracy": test.per_class_accuracy,
    }
    write_json(paths.summary, state.summary)
    state.status = "completed"
    state.log(f"test accuracy {test.accuracy:.4f} (loss {test.loss:.4f}) with the best epoch ({state.best_epoch}); run: {paths.root}")


class _PipeSafeLog:
    """``log`` that survives the reader of stdout going away (``cnn train | head -2``, a closed terminal).

    The run then stops at the next step boundary as if interrupted: saved, marked
    interrupted, resumable. Stdout is pointed at /dev/null so that nothing later
    (Python's own flush at exit included) fails on the closed pipe.
    """

    def __init__(self, log: Callable[[str], None], interrupt: InterruptFlag) -> None:
        self._log, self._interrupt, self._closed = log, interrupt, False

    def __call__(self, line: str) -> None:
        if self._closed:
            return
        try:
            self._log(line)
        except (OSError, ValueError):  # EPIPE from a pipe, EIO from a closed terminal, ValueError from a closed file
            self._closed = True
            self._interrupt.request("output closed", EXIT_BROKEN_PIPE)
            stdout = sys.stdout
            if stdout is not sys.__stdout__ or stdout is None:  # a replaced stdout (a test's capture) is not the process's
                return
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stdout.fileno())
                os.close(devnull)


__all__ = ["EXIT_INTERRUPTED", "EvalResult", "TrainResult", "evaluate", "predictions", "train", "CnnError"]
