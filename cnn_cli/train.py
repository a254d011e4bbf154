"""The training loop as a plain function: data, model, optimizer, run folder, resume.

``cnn train`` parses its options and calls :func:`train`; nothing here prints
except through the ``log`` callback and the progress bar.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnn_cli.config import Config, config_from_dict, config_to_yaml
from cnn_cli.errors import EXIT_INTERRUPTED, CheckpointError, CnnError, ConfigError, RuntimeFault
from cnn_cli.model import Model, build_model
from cnn_cli.optim import add_l2_gradient, clip_grad_norm, l2_penalty, learning_rate, make_optimizer
from cnn_cli.runs import (
    DEFAULT_RUNS_ROOT,
    RunPaths,
    check_run_dir_free,
    claim_run_dir,
    existing_run,
    new_run_dir,
    point_latest,
    read_metrics,
    run_record,
    write_json,
    write_metrics,
    write_text,
)


@dataclass
class EvalResult:
    """Loss, accuracy and the confusion matrix on one split."""

    loss: float
    accuracy: float
    n: int
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion_matrix,
        }


def predictions(model: Model, logits: np.ndarray) -> np.ndarray:
    """Predicted class per sample from (N, ...) logits."""
    return model.loss.predict(logits)


def evaluate(model: Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> EvalResult:
    """Mean loss, accuracy, per-class accuracy and confusion matrix of ``model`` on a split (eval mode)."""
    k = model.loss.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)
    loss_sum = 0.0
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        logits = model.forward(x, training=False, keep_cache=False)
        loss, _ = model.loss(logits, y)
        loss_sum += loss * len(y)
        np.add.at(confusion, (y, predictions(model, logits)), 1)
    n = int(len(labels))
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return EvalResult(
        loss=loss_sum / max(n, 1),
        accuracy=float(confusion.diagonal().sum() / max(n, 1)),
        n=n,
        per_class_accuracy=[float(v) for v in per_class],
        confusion_matrix=confusion.tolist(),
    )


class InterruptFlag:
    """Turns Ctrl-C into a flag the loop checks between steps, so a step is never cut in half.

    A second Ctrl-C while the checkpoint is being saved is noted and ignored: the
    save finishes, then the run exits.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.requested = False
        self._log = log
        self._previous = None

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self._log("still saving; the run will stop as soon as its checkpoint is safe")
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class TrainResult:
    """What :func:`train` did: the run folder, its status and the summary."""

    run: RunPaths
    status: str  # completed | interrupted | failed
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def _data_splits(config: Config, progress: bool):
    from cnn_cli.data import load_dataset

    d = config.data
    return load_dataset(
        dataset=d.dataset,
        data_dir=d.data_dir,
        paths=d.paths,
        val_size=d.val_size,
        seed=config.train.seed,
        classes=d.classes,
        limit=d.limit,
        mean=d.mean,
        std=d.std,
        progress=progress,
        train_as_pixels=True,
    )


def _augment(config: Config):
    from cnn_cli.data import Augment

    a = config.data.augment
    return Augment(translate=a.translate, rotate=a.rotate) if (a.translate or a.rotate) else None


def _rng_state(model: Model) -> dict[str, Any]:
    return {layer.name: layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")}


def _set_rng_state(model: Model, state: dict[str, Any]) -> None:
    for layer in model.layers:
        if hasattr(layer, "rng") and layer.name in state:
            layer.rng.bit_generator.state = state[layer.name]


def train(
    config: Config,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    runs_root: str | Path = DEFAULT_RUNS_ROOT,
    command_line: list[str] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    stop_after_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a model as the config says, recording everything in a run folder.

    Args:
        config: the resolved config (ignored when resuming: the run's own config is used).
        run_dir: an explicit new run folder (must not hold a run).
        resume: a run folder whose ``checkpoints/last.npz`` to continue from.
        runs_root: where new run folders are created.
        command_line: recorded in run.json.
        log: receives one line per epoch and notices.
        progress: show a tqdm bar per epoch (for terminals).
        stop_after_steps: behave as if Ctrl-C came after this many steps (tests).
        should_stop: asked after every step; True acts like Ctrl-C (a sweep's trial on a worker thread).
    Returns:
        a :class:`TrainResult`; exit_code is 0, 1 (failed) or 130 (interrupted).
    """
    command_line = command_line or [Path(sys.argv[0]).name, *sys.argv[1:]]
    ckpt: Checkpoint | None = None
    if resume is not None:
        paths = existing_run(resume)
        from cnn_cli.config import parse_yaml

        data, lines = parse_yaml(paths.config.read_text(encoding="utf-8"), str(paths.config))
        config = config_from_dict(data, str(paths.config), lines)
        if not paths.last.is_file():
            raise CheckpointError(f"{paths.last}: no checkpoint to resume from")
        ckpt, model = load_checkpoint(paths.last)
        if ckpt.config != config.as_dict():
            raise CheckpointError(f"{paths.last}: its config differs from {paths.config}; refusing to resume")
    else:
        if run_dir is not None:
            check_run_dir_free(run_dir)  # fail before any slow work
        model = build_model(config, seed=config.train.seed, dtype=config.train.dtype)

    tc, oc, sc = config.train, config.optimizer, config.schedule
    splits = _data_splits(config, progress)
    if model.loss.num_classes != splits.num_classes:
        raise ConfigError(
            f"model has {model.loss.num_outputs} output(s) for {model.loss.num_classes} classes, "
            f"but the data has {splits.num_classes} classes ({splits.classes})"
        )
    optimizer = make_optimizer(oc.name, oc.lr, oc.momentum, tuple(oc.betas), oc.eps)
    if ckpt is not None and ckpt.step > 0:
        missing = optimizer.missing_state(list(model.params), ckpt.optimizer_state)
        if missing:
            raise CheckpointError(f"{paths.last}: missing key 'optimizer/{missing}'; cannot resume exactly without it")
    if ckpt is None:  # only now, with model and data ready, does the run folder appear
        paths = claim_run_dir(run_dir) if run_dir is not None else new_run_dir(config.name, runs_root)
        write_text(paths.config, config_to_yaml(config))
    data_info = {"mean": splits.mean, "std": splits.std, "classes": list(map(int, splits.classes))}

    from cnn_cli.data import iterate_batches, num_batches

    steps_per_epoch = num_batches(len(splits.train.labels), tc.batch_size, tc.drop_last)
    started = datetime.now().isoformat(timespec="seconds")
    epoch, step, batch_in_epoch = 0, 0, 0
    running = [0.0, 0.0, 0.0, 0.0]
    best_val_acc, best_epoch = -1.0, 0
    history: list[dict[str, Any]] = []
    if ckpt is not None:
        optimizer.load_state_arrays(ckpt.optimizer_state)
        _set_rng_state(model, ckpt.rng)
        epoch, step, batch_in_epoch = ckpt.epoch, ckpt.step, ckpt.batch_in_epoch
        running = list(ckpt.running)
        best_val_acc, best_epoch = ckpt.best_val_acc, ckpt.best_epoch
        history = [row for row in read_metrics(paths.metrics) if row["epoch"] <= epoch]
        log(f"resuming {paths.root} at epoch {epoch + 1}, batch {batch_in_epoch + 1} (step {step})")
    record = run_record(command_line, tc.seed, "running", started, run_dir=str(paths.root))
    write_json(paths.run_info, record)
    point_latest(paths, runs_root)
    if ckpt is None:
        n_params = sum(p.size for p in model.params.values())
        log(
            f"run {paths.root}: {config.name}, {n_params:,} parameters; {len(splits.train.labels):,} training / "
            f"{len(splits.val.labels):,} validation / {len(splits.test.labels):,} test images; "
            f"{tc.epochs} epoch(s) of {steps_per_epoch} steps"
        )

    def checkpoint_now(batch: int, run_sums: list[float]) -> Checkpoint:
        return Checkpoint(
            params=model.params,
            config=config.as_dict(),
            optimizer_state=optimizer.state_arrays(),
            epoch=epoch,
            step=step,
            batch_in_epoch=batch,
            running=run_sums,
            best_val_acc=best_val_acc,
            best_epoch=best_epoch,
            rng=_rng_state(model),
            data=data_info,
        )

    def save(path: Path, batch: int, run_sums: list[float]) -> None:
        """Save a checkpoint; if that fails (disk full), mark the run failed before reporting it."""
        try:
            save_checkpoint(path, checkpoint_now(batch, run_sums))
        except RuntimeFault as exc:
            with contextlib.suppress(RuntimeFault, OSError):
                finish("failed", RuntimeFault.exit_code, str(exc))
            raise

    def finish(status: str, exit_code: int, message: str = "", summary: dict | None = None) -> TrainResult:
        write_metrics(paths.metrics, history)
        write_json(
            paths.run_info,
            {
                **record,
                "status": status,
                "ended": datetime.now().isoformat(timespec="seconds"),
                **({"message": message} if message else {}),
            },
        )
        return TrainResult(paths, status, exit_code, summary or {}, message)

    augment = _augment(config)
    wall_start = time.perf_counter()
    with InterruptFlag(log) as interrupt:
        while epoch < tc.epochs:
            loss_sum, correct, seen, seconds = running
            bar = _progress_bar(progress, epoch, tc.epochs, steps_per_epoch, batch_in_epoch)
            batches = iterate_batches(
                splits.train.images,
                splits.train.labels,
                tc.batch_size,
                seed=tc.seed,
                epoch=epoch,
                shuffle=True,
                drop_last=tc.drop_last,
                augment=augment,
                start_batch=batch_in_epoch,
                normalize=splits.table,
            )
            tick = time.perf_counter()
            lr = oc.lr
            for x, y in batches:
                lr = learning_rate(oc.lr, step, steps_per_epoch, tc.epochs, sc.name, sc.step_size, sc.gamma, sc.min_lr, sc.warmup_epochs)
                optimizer.lr = lr
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, once
                    loss, logits = model.loss_and_backward(x, y)
                if not math.isfinite(loss):
                    kept = (
                        f"the last good checkpoint is kept: {paths.last}"
                        if paths.last.is_file()
                        else "no checkpoint was written (no epoch had finished)"
                    )
                    message = (
                        f"training diverged at step {step + 1} (epoch {epoch + 1}, batch {batch_in_epoch + 1}): loss is {loss}; {kept}"
                    )
                    if bar is not None:
                        bar.close()
                    return finish("failed", RuntimeFault.exit_code, message)
                grads = model.grads
                add_l2_gradient(model.params, grads, oc.weight_decay)
                if oc.clip_grad_norm is not None:
                    clip_grad_norm(grads, oc.clip_grad_norm)
                optimizer.step(model.params, grads)
                step += 1
                batch_in_epoch += 1
                loss_sum += loss * len(y)
                correct += int((predictions(model, logits) == y).sum())
                seen += len(y)
                if bar is not None:
                    elapsed = seconds + time.perf_counter() - tick
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", img_s=f"{seen / max(elapsed, 1e-9):.0f}", refresh=False
                    )
                if stop_after_steps is not None and step >= stop_after_steps:
                    interrupt.requested = True
                if should_stop is not None and should_stop():
                    interrupt.requested = True
                if interrupt.requested:
                    break
            seconds += time.perf_counter() - tick
            if bar is not None:
                bar.close()
            if interrupt.requested and batch_in_epoch < steps_per_epoch:
                save(paths.last, batch_in_epoch, [loss_sum, correct, seen, seconds])
                resume_cmd = f"cnn train --resume {shlex.quote(str(paths.root))}"
                message = f"interrupted at step {step}; checkpoint saved. Resume with: {resume_cmd}"
                return finish("interrupted", EXIT_INTERRUPTED, message)

            val = evaluate(model, splits.val.images, splits.val.labels, tc.eval_batch_size) if len(splits.val.labels) else None
            epoch += 1
            row = {
                "epoch": epoch,
                "step": step,
                "lr": lr,
                "train_loss": loss_sum / max(seen, 1),
                "train_acc": correct / max(seen, 1),
                "val_loss": val.loss if val else float("nan"),
                "val_acc": val.accuracy if val else float("nan"),
                "seconds": round(seconds, 3),
                "images_per_s": round(seen / max(seconds, 1e-9), 1),
            }
            improved = val is not None and val.accuracy > best_val_acc
            if improved:
                best_val_acc, best_epoch = val.accuracy, epoch
            batch_in_epoch, running = 0, [0.0, 0.0, 0.0, 0.0]
            save(paths.last, 0, running)
            if improved or val is None:
                save(paths.best, 0, running)
            if tc.save_every_epoch:
                save(paths.epoch_checkpoint(epoch), 0, running)
            history.append(row)  # only once its checkpoint is safe: metrics never run ahead of last.npz
            write_metrics(paths.metrics, history)
            log(_epoch_line(row, tc.epochs, l2_penalty(model.params, oc.weight_decay)))
            patience = tc.early_stopping_patience
            if patience is not None and val is not None and epoch - best_epoch >= patience:
                log(f"early stopping: no better validation accuracy for {patience} epoch(s)")
                break
            if interrupt.requested:
                resume_cmd = f"cnn train --resume {shlex.quote(str(paths.root))}"
                message = f"interrupted after epoch {epoch}; checkpoint saved. Resume with: {resume_cmd}"
                return finish("interrupted", EXIT_INTERRUPTED, message)

    best_path = paths.best if paths.best.is_file() else paths.last
    _, best_model = load_checkpoint(best_path)
    test = evaluate(best_model, splits.test.images, splits.test.labels, tc.eval_batch_size)
    summary = {
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "test_n": test.n,
        "best_epoch": best_epoch,
        "best_val_accuracy": best_val_acc,
        "epochs_trained": epoch,
        "steps": step,
        "wall_seconds": round(time.perf_counter() - wall_start, 2),
        "checkpoint": str(best_path),
        "per_class_accuracy": test.per_class_accuracy,
    }
    write_json(paths.summary, summary)
    log(f"test accuracy {test.accuracy:.4f} (loss {test.loss:.4f}) with the best epoch ({best_epoch}); run: {paths.root}")
    return finish("completed", 0, summary=summary)


def _epoch_line(row: dict[str, Any], epochs: int, penalty: float) -> str:
    text = (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}  "
        f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  lr {row['lr']:.2e}  "
        f"{row['images_per_s']:.0f} img/s  {row['seconds']:.1f}s"
    )
    return text + (f"  l2 {penalty:.4f}" if penalty else "")


def _progress_bar(enabled: bool, epoch: int, epochs: int, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False, dynamic_ncols=True)


__all__ = ["EvalResult", "TrainResult", "evaluate", "predictions", "train", "CnnError"]
