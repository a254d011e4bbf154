"""``cnn train`` as a plain function: set up the data, model, optimizer and run folder (or resume one), then fit.

The loop itself is :func:`cnn_cli.loop.fit`; what happens around each step and
epoch is in :mod:`cnn_cli.callbacks`. Nothing here prints except through the
``log`` callback and the progress bar.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_cli.config.load import config_to_yaml
from cnn_cli.config.sections import Config
from cnn_cli.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, CheckpointError, CnnError, ConfigError, RuntimeFault
from cnn_cli.io import silence_stdout
from cnn_cli.learn.learner_code import LearnerCode, load_learner_code
from cnn_cli.model.network import Model, build_model
from cnn_cli.nn.optim import Optimizer, make_optimizer
from cnn_cli.runs.checkpoint import Checkpoint, load_checkpoint
from cnn_cli.runs.evaluation import EvalResult, evaluate, predictions
from cnn_cli.runs.folders import (
    DEFAULT_RUNS_ROOT,
    RunPaths,
    check_run_dir_free,
    check_run_name,
    claim_run_dir,
    existing_run,
    lock_run,
    new_run_dir,
    new_run_lock,
    write_json,
    write_text,
)
from cnn_cli.runs.learner_record import RECORD_KEY
from cnn_cli.training.callbacks import (
    Checkpointer,
    DivergenceGuard,
    EpochLogger,
    LatestLink,
    MetricsWriter,
    ProgressBar,
    RunRecord,
    ThreadPolicy,
)
from cnn_cli.training.epochs import check_batch_statistics, clamp_batch_size, describe_batches, epoch_data, one_batch_splits
from cnn_cli.training.extras import require_extras
from cnn_cli.training.gradient_logger import GradientLogger
from cnn_cli.training.learner_report import LearnerReport, check_reference
from cnn_cli.training.learner_run import (
    LearnerOptions,
    LearnerRun,
    LearnerStep,
    check_resume_without_impl,
    check_same_file,
    start_learner_code,
)
from cnn_cli.training.loop import fit
from cnn_cli.training.mlflow_log import MLflowLogger
from cnn_cli.training.resume import DATA_RECORD_KEY, EXTENDABLE_KEYS, check_resumed_data, open_run_to_resume, restore_state, save_extension
from cnn_cli.training.state import Callback, CallbackList, EpochData, InterruptFlag, TrainState, resume_hint
from cnn_cli.training.step_log import StepLog
from cnn_cli.training.stopping import stop_record, stopping_callbacks
from cnn_cli.training.tensorboard import TensorBoardLogger
from cnn_cli.training.transfer import frozen_parameters, init_from_checkpoint


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
    learner: LearnerOptions | None = None,
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
        learner: ``cnn train --impl FILE``: train with the learner's layer functions (:mod:`cnn_cli.training.learner_run`).
    Returns a :class:`TrainResult`; exit_code is 0, 1 (failed) or 128 + the signal (interrupted: 130 for Ctrl-C).
    The run folder is this process's alone until the run ends (:mod:`cnn_cli.runs.ownership`).
    """
    command_line = command_line or [Path(sys.argv[0]).name, *sys.argv[1:]]
    extending = resume is not None and config is not None  # --resume RUN --set KEY=VALUE
    with contextlib.ExitStack() as owned:
        if resume is not None:  # owned before anything of the run is read or changed
            owned.enter_context(lock_run(existing_run(resume), log))
        code = _learner_code(learner, resume)
        paths, config, ckpt, model = _model_to_train(config, run_dir, resume, init_from)
        learner_run = start_learner_code(learner, code, model) if learner is not None and code is not None else None
        model = learner_run.model if learner_run is not None else model
        frozen = frozen_parameters(model, config.train.freeze)
        transfer = init_from_checkpoint(model, init_from, config.train.freeze) if init_from is not None else None
        splits = _data_splits(config, progress)
        data_record = _data_record(splits, paths)  # a resumed run's data must be the data it trained on
        splits = one_batch_splits(config, splits) if one_batch else splits
        config = clamp_batch_size(config, len(splits.train.labels), log)  # before config.yaml records it
        _check_classes(model, splits)
        if not one_batch and not config.train.overfit_batches:  # those train on whole batches only
            check_batch_statistics(config, len(splits.train.labels))
        optimizer = _make_optimizer(config, model, frozen, ckpt, paths)
        if paths is None:  # a new run: only now, with model and data ready, does the run folder appear
            paths = _claim_new_run(config, run_dir, runs_root, owned)
            write_text(paths.config, config_to_yaml(config))
        elif extending:  # a resumed run's extended config, once every check has passed
            save_extension(paths, config)
        data = epoch_data(config, splits, one_batch)
        interrupt = InterruptFlag(log)
        state = TrainState(
            config,
            model,
            optimizer,
            paths,
            steps_per_epoch=data.steps_per_epoch,
            data_info=_data_info(splits),
            log=_PipeSafeLog(log, interrupt),
            frozen=frozen,
        )
        _restore_or_describe(state, ckpt, splits, [*(transfer.lines() if transfer else []), *describe_batches(data)])
        extra = {**data_record, **({"init_from": transfer.as_dict()} if transfer else {})}
        step, learner_hooks = _learner_step(learner_run, state, interrupt, extra, runs_root)
        builtin = _builtin_callbacks(config, command_line, ckpt is not None, runs_root, progress, extra)
        hooks = CallbackList([*builtin, *learner_hooks, *(callbacks or [])])
        _fit_and_test(state, data, splits, hooks, interrupt, stop_after_steps, should_stop, step)
        return TrainResult(paths, state.status, state.exit_code, state.summary, state.message)


def _claim_new_run(config: Config, run_dir: str | Path | None, runs_root: str | Path, owned: contextlib.ExitStack) -> RunPaths:
    """The new run's folder, made and owned (its lock joins ``owned``): ``--run-dir`` or ``<runs root>/<name>-<time>``."""
    if run_dir is not None:
        paths, lock = claim_run_dir(run_dir)
    else:
        paths = new_run_dir(config.name, runs_root)
        lock = new_run_lock(paths)
    owned.enter_context(lock)
    return paths


def _data_info(splits) -> dict[str, Any]:
    """What checkpoints store about the data: normalisation and classes."""
    return {"mean": splits.mean, "std": splits.std, "classes": list(map(int, splits.classes)), "class_names": splits.class_names}


def _data_record(splits, resumed: RunPaths | None) -> dict[str, str]:
    """run.json's record of the data (its SHA-256), checked against a resumed run's own record."""
    from cnn_cli.runs.datasets import data_fingerprint

    fingerprint = data_fingerprint(splits)
    if resumed is not None:
        check_resumed_data(resumed, fingerprint)
    return {DATA_RECORD_KEY: fingerprint}


def _learner_code(learner: LearnerOptions | None, resume: str | Path | None) -> LearnerCode | None:
    """``--impl``'s file, loaded; a resumed run must have trained with that very file, and without --impl with none."""
    if learner is None:
        if resume is not None:
            check_resume_without_impl(RunPaths(Path(resume)))  # not a run folder: open_run_to_resume says so
        return None
    check_reference(learner.reference)
    code = load_learner_code(learner.file)
    if resume is not None:
        check_same_file(existing_run(resume), code)
    return code


def _learner_step(
    run: LearnerRun | None, state: TrainState, interrupt: InterruptFlag, extra: dict[str, Any], runs_root: str | Path
) -> tuple[LearnerStep | None, list[Callback]]:
    """An --impl run's step (deadline, reference model) and its report; its record joins run.json's ``extra``."""
    if run is None:
        return None, []
    for line in run.describe():
        state.log(line)
    extra[RECORD_KEY] = run.record(state.paths)
    state.resume_args = run.resume_args()
    step = LearnerStep(run, interrupt, state.log)
    return step, [LearnerReport(run, step, runs_root)]


def _model_to_train(
    config: Config | None, run_dir: str | Path | None, resume: str | Path | None, init_from: str | Path | None
) -> tuple[RunPaths | None, Config, Checkpoint | None, Model]:
    """The run to resume (its folder, config, checkpoint and model), or a new run's config and freshly built model."""
    require_extras(config)
    if resume is not None:
        if init_from is not None:
            raise CnnError("--init-from starts a new run; it cannot be combined with --resume")
        paths, config, ckpt, model = open_run_to_resume(resume, config)
        require_extras(config)
        return paths, config, ckpt, model
    if config is None:
        raise CnnError("give a config to train, or a run folder to resume")
    _check_new_run(config, run_dir)  # fail before any slow work
    return None, config, None, build_model(config, seed=config.train.seed, dtype=config.train.dtype)


def _make_optimizer(config: Config, model: Model, frozen: frozenset[str], ckpt: Checkpoint | None, paths: RunPaths | None) -> Optimizer:
    """The configured optimizer; a resumed run's checkpoint must hold its state for every trained parameter."""
    oc = config.optimizer
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, (oc.betas[0], oc.betas[1]), oc.eps)
    if ckpt is not None and paths is not None and ckpt.step > 0:
        missing = optimizer.missing_state([name for name in model.params if name not in frozen], ckpt.optimizer_state)
        if missing:
            raise CheckpointError(f"{paths.last}: missing key 'optimizer/{missing}'; cannot resume exactly without it")
    return optimizer


def _fit_and_test(
    state: TrainState,
    data: EpochData,
    splits,
    hooks: CallbackList,
    interrupt: InterruptFlag,
    stop_after_steps: int | None,
    should_stop: Callable[[], bool] | None,
    step: LearnerStep | None = None,
) -> None:
    """Train, then test the best epoch; every outcome (a fault included) ends in the callbacks' ``on_finish``."""
    wall_start = time.perf_counter()
    try:
        with interrupt, step.active() if step is not None else contextlib.nullcontext():
            fit(state, data, hooks, interrupt, stop_after_steps, should_stop, step)
            if state.status == "running":
                _final_test(state, splits, interrupt, hooks, wall_start)
    except Exception as exc:  # a full disk (RuntimeFault), or the unforeseen (no memory, no thread): never left "running"
        state.fail(str(exc) if isinstance(exc, RuntimeFault) else f"{type(exc).__name__}: {exc}", RuntimeFault.exit_code)
        with contextlib.suppress(RuntimeFault, OSError):
            hooks.on_finish(state)
        raise
    hooks.on_finish(state)


def _builtin_callbacks(
    config: Config, command_line: list[str], resumed: bool, runs_root: str | Path, progress: bool, extra: dict[str, Any] | None = None
) -> list[Callback]:
    """The order matters at an epoch end: checkpoints (the commit), then the records derived from them, then the log."""
    tc = config.train
    gradients = GradientLogger(tc.log_every) if tc.log_gradients else None
    extra = dict(extra or {})
    return [
        ThreadPolicy(resumed, extra),  # first: the threads it chooses go into run.json
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
        *stopping_callbacks(config),  # early stopping, the time budget
        *([MLflowLogger()] if tc.mlflow else []),  # after the commit: MLflow never holds an epoch a resume trains again
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
        names = ", ".join(splits.class_names) if splits.class_names else str(splits.classes)
        raise ConfigError(
            f"model has {model.loss.num_outputs} output(s) for {model.loss.num_classes} classes, "
            f"but the data has {splits.num_classes} classes ({names}); make the last layer give one score per class"
        )


def _restore_or_describe(state: TrainState, ckpt: Checkpoint | None, splits, lines: list[str]) -> None:
    """A resumed run continues where its checkpoint left it; a new run says what it trains, then ``lines``."""
    if ckpt is not None:
        restore_state(state, ckpt)
        return
    _describe_new_run(state, splits)
    for line in lines:
        state.log(line)


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
        **({"best_val_accuracy": state.best_val_acc} if state.best_val_acc >= 0 else {}),  # none without a validation split
        "epochs_trained": state.epoch,
        "steps": state.step,
        "wall_seconds": round(time.perf_counter() - wall_start, 2),
        "checkpoint": str(best_path),
        "per_class_accuracy": test.per_class_accuracy,
        "stopped": stop_record(state),  # why training stopped (training.stopping.STOP_REASONS)
    }
    write_json(paths.summary, state.summary)
    state.status = "completed"
    which = "the best epoch" if state.best_val_acc >= 0 else "the last epoch, as there is no validation split"
    state.log(f"test accuracy {test.accuracy:.4f} (loss {test.loss:.4f}) with {which} ({state.best_epoch}); run: {paths.root}")


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
            silence_stdout()


__all__ = ["EXTENDABLE_KEYS", "EXIT_INTERRUPTED", "EvalResult", "TrainResult", "evaluate", "predictions", "train", "CnnError"]
