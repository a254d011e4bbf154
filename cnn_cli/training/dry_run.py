"""Dry runs: ``cnn train --fast-dev-run`` and ``--overfit-batches N`` (Lightning's ``fast_dev_run`` and ``overfit_batches``).

- ``--overfit-batches N`` (``train.overfit_batches: N``) trains on the same N
  batches every epoch: the first N batches of epoch 0's shuffled order, drawn once
  (augmented once, if augmentation is on). Validation is on those same N batches, so
  ``val_loss`` shows how well the model fits them; the final test still runs on the
  whole test split. A model and a backward pass that are right drive the training
  loss close to 0: the practitioner's first check.
- ``--fast-dev-run`` (:func:`fast_dev_run`) puts one batch through each part of a
  run, using the real :func:`cnn_cli.training.train.train`: one training step, validation
  and the final test on one batch each, the checkpoints saved and loaded back, the
  records and the plots, then says what it checked. It works in a temporary folder
  (removed afterwards when every check passed) unless a run folder is given. It also
  holds the first step's loss, the loss of the untrained net, up to ln C: a net that
  knows nothing should give every class 1/C (:func:`initial_loss_check`).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_cli.training.state import Callback

if TYPE_CHECKING:
    from collections.abc import Callable

    from cnn_cli.config.sections import Config
    from cnn_cli.training.state import TrainState


@dataclass
class Check:
    """One thing the fast dev run checked."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


class _KeepFinalModel(Callback):
    """Keeps the trained parameters as they were when the run ended, to compare with the saved checkpoint."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.model: Any = None

    def on_finish(self, state: TrainState) -> None:
        self.params = {name: value.copy() for name, value in state.model.params.items()}
        self.model = state.model


# The untrained loss passes the ln C check within this fraction of ln C.
LN_C_TOLERANCE = 0.1


@dataclass(frozen=True)
class InitialLoss:
    """The untrained net's loss beside ln C, the loss of a uniform guess over C classes."""

    loss: float
    num_classes: int

    @property
    def expected(self) -> float:
        return math.log(self.num_classes)

    @property
    def near_ln_c(self) -> bool:
        return abs(self.loss - self.expected) <= LN_C_TOLERANCE * self.expected

    def line(self) -> str:
        """``initial loss 2.31 ≈ ln 10 ✓``, or what is wrong when the loss is not within 10% of ln C."""
        if self.near_ln_c:
            return f"initial loss {self.loss:.2f} ≈ ln {self.num_classes} ✓"
        return (
            f"initial loss {self.loss:.2f} is not within {LN_C_TOLERANCE:.0%} of ln {self.num_classes} = {self.expected:.2f}: "
            f"an untrained net should give every class about 1/{self.num_classes}; "
            "is the output layer's init too large? (`cnn docs initial-loss`)"
        )


def initial_loss_check(loss: float, loss_name: str, num_classes: int) -> InitialLoss | None:
    """The ln C check of an untrained net's (cross-entropy) loss; None for a loss with no ln C (sum_squared_error).

    An untrained net should not prefer any class: p = 1/C for every class, so the
    cross-entropy −ln p is ln C (ln 10 = 2.30 for MNIST, ln 2 = 0.69 for two classes).
    """
    if loss_name == "sum_squared_error":
        return None
    return InitialLoss(float(loss), num_classes)


@dataclass
class FastDevRun:
    """The run folder, whether it was temporary (and removed), every check, and the ln C check of the first step's loss.

    ``initial_loss`` is None when there is nothing to hold to ln C: a run that failed before its first step,
    a loss with no ln C, or a net that starts from a checkpoint (``--init-from``) and so is not untrained.
    """

    run_dir: Path
    temporary: bool
    removed: bool
    checks: list[Check]
    initial_loss: InitialLoss | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def fast_dev_run(
    config: Config, run_dir: str | Path | None = None, log: Callable[[str], None] = print, init_from: str | Path | None = None
) -> FastDevRun:
    """Run one batch through every part of training (see the module docstring) and check each part."""
    from cnn_cli.runs.folders import read_metrics
    from cnn_cli.training.train import train

    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1, overfit_batches=None))
    temporary = run_dir is None
    root = Path(tempfile.mkdtemp(prefix="cnn-fast-dev-run-")) / config.name if run_dir is None else Path(run_dir)
    removed = False
    try:  # a refused or interrupted run leaves nothing in TMPDIR; only failed checks keep their folder to look at
        keep = _KeepFinalModel()
        result = train(
            config,
            run_dir=root,
            command_line=["cnn", "train", "--fast-dev-run"],
            log=log,
            callbacks=[keep],
            one_batch=True,
            init_from=init_from,
        )
        if result.status == "interrupted":
            raise KeyboardInterrupt  # the signal's own exit code (cnn_cli.signals), after the folder is gone
        checks = [Check("run", result.status == "completed", f"{result.status}" + (f" ({result.message})" if result.message else ""))]
        initial = None
        if result.status == "completed":
            checks += _checks(result.run, config, keep)
            rows = read_metrics(result.run.metrics)
            if rows and init_from is None:  # the first step's loss is taken before its update: the untrained net's
                initial = initial_loss_check(rows[0]["train_loss"], keep.model.loss.name, keep.model.loss.num_classes)
        removed = temporary and all(check.passed for check in checks)
    except BaseException:
        if temporary:
            shutil.rmtree(root.parent, ignore_errors=True)
        raise
    if removed:
        shutil.rmtree(root.parent, ignore_errors=True)
    return FastDevRun(root, temporary, removed, checks, initial)


def _checks(run, config: Config, keep: _KeepFinalModel) -> list[Check]:
    from cnn_cli.pictures.run import plot_run
    from cnn_cli.runs.checkpoint import load_checkpoint
    from cnn_cli.runs.folders import read_json_record, read_metrics
    from cnn_cli.runs.inference import checkpoint_splits

    rows = read_metrics(run.metrics)
    row = rows[0] if rows else {}
    summary = read_json_record(run.summary) or {}
    checks = [
        Check(
            "train",
            len(rows) == 1 and row.get("step") == 1 and math.isfinite(row.get("train_loss", math.nan)),
            f"1 step on {config.train.batch_size} images or fewer, loss {row.get('train_loss', math.nan):.4f}",
        )
    ]
    if config.data.val_size:
        checks.append(
            Check(
                "validation",
                math.isfinite(row.get("val_loss", math.nan)),
                f"one batch, loss {row.get('val_loss', math.nan):.4f}, accuracy {row.get('val_acc', math.nan):.4f}",
            )
        )
    else:
        checks.append(Check("validation", True, "skipped: data.val_size is 0"))
    checks.append(
        Check(
            "test",
            summary.get("test_n", 0) > 0 and math.isfinite(summary.get("test_loss", math.nan)),
            f"{summary.get('test_n', 0)} images, accuracy {summary.get('test_accuracy', math.nan):.4f}",
        )
    )
    ckpt, loaded = load_checkpoint(run.last)
    same = set(ckpt.params) == set(keep.params) and all(np.array_equal(ckpt.params[name], keep.params[name]) for name in keep.params)
    splits = checkpoint_splits(ckpt)
    x = splits.test.images[: config.train.eval_batch_size]
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged step leaves inf/NaN weights: NaN logits, compared as equal
        same_logits = bool(np.array_equal(loaded.forward(x, keep_cache=False), keep.model.forward(x, keep_cache=False), equal_nan=True))
    best_ok = run.best.is_file() and load_checkpoint(run.best)[0].epoch == 1
    checks.append(
        Check(
            "checkpoints",
            same and same_logits and best_ok,
            f"{run.last.name} and {run.best.name} saved and loaded back; parameters bit-identical: {same}, "
            f"same logits on {len(x)} test images: {same_logits}",
        )
    )
    record = read_json_record(run.run_info) or {}
    files = [run.config, run.metrics, run.run_info, run.summary] + ([run.gradients] if config.train.log_gradients else [])
    missing = [path.name for path in files if not path.is_file()]
    checks.append(
        Check(
            "records",
            not missing and record.get("status") == "completed",
            f"{', '.join(path.name for path in files)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + f"; run.json status {record.get('status')}",
        )
    )
    if config.train.tensorboard:
        events = list((run.root / "tensorboard").glob("events.out.tfevents.*"))
        checks.append(Check("tensorboard", bool(events), f"{len(events)} event file(s) in {run.root / 'tensorboard'}"))
    written = plot_run(run.root)
    empty = [path.name for path in written if not path.is_file() or path.stat().st_size == 0]
    checks.append(Check("plots", not empty, f"{len(written)} PNG(s): {', '.join(path.name for path in written)}"))
    return checks
