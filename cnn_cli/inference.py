"""Evaluation and prediction with a saved checkpoint, as plain functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.checkpoint import Checkpoint, load_checkpoint
from cnn_cli.config import config_from_dict
from cnn_cli.errors import CnnError
from cnn_cli.evaluation import EvalResult, evaluate
from cnn_cli.images import MNIST_SIZE, load_image
from cnn_cli.runs import BEST_CHECKPOINT, CHECKPOINT_DIR, DEFAULT_RUNS_ROOT, LATEST_LINK, newest_completed_run

DEFAULT_CHECKPOINT = Path(DEFAULT_RUNS_ROOT) / LATEST_LINK / CHECKPOINT_DIR / BEST_CHECKPOINT


def checkpoint_splits(ckpt: Checkpoint, progress: bool = False):
    """The data splits a checkpoint was trained with: its stored data section, seed and normalisation.

    Used by eval and the plots, so their numbers match what training reported.
    """
    from cnn_cli.data import load_dataset

    config = config_from_dict(ckpt.config)
    d = config.data
    return load_dataset(
        dataset=d.dataset,
        data_dir=d.data_dir,
        paths=d.paths,
        val_size=d.val_size,
        seed=config.train.seed,
        classes=d.classes,
        limit=d.limit,
        mean=ckpt.data.get("mean"),
        std=ckpt.data.get("std"),
        progress=progress,
    )


def evaluate_checkpoint(checkpoint: str | Path, split: str = "test", progress: bool = False) -> EvalResult:
    """Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on ``test`` or ``val``."""
    ckpt, model = load_checkpoint(checkpoint)
    splits = checkpoint_splits(ckpt, progress)
    part = {"test": splits.test, "val": splits.val}[split]
    return evaluate(model, part.images, part.labels, config_from_dict(ckpt.config).train.eval_batch_size)


@dataclass
class Prediction:
    """One image's result: the predicted class and the top-k (class, probability) pairs."""

    path: str
    prediction: int | None = None
    probabilities: dict[str, float] | None = None
    top_k: list[tuple[int, float]] | None = None
    warning: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "prediction": self.prediction, "probabilities": self.probabilities}
        if self.warning:
            out["warning"] = self.warning
        if self.error:
            out["error"] = self.error
        return out


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """The given checkpoint, or the newest run's best one; a clear error when there is none."""
    if checkpoint is not None:
        return Path(checkpoint)
    newest = newest_completed_run(DEFAULT_RUNS_ROOT)  # not runs/latest: that may be an interrupted or killed run
    if newest is not None:
        return newest.best
    if not DEFAULT_CHECKPOINT.is_file():
        raise CnnError(
            f"no checkpoint given and none at {DEFAULT_CHECKPOINT}; train first (cnn train --config mnist.yaml) or pass --checkpoint PATH"
        )
    return DEFAULT_CHECKPOINT


def predict_images(paths: list[str], checkpoint: str | Path | None = None, top_k: int = 3) -> list[Prediction]:
    """Classify image files. A bad image gets ``error`` set; the others are still predicted."""
    path = resolve_checkpoint(checkpoint)
    ckpt, model = load_checkpoint(path)
    if tuple(model.input_shape) != (1, MNIST_SIZE, MNIST_SIZE):
        raise CnnError(f"{path}: its model takes input {tuple(model.input_shape)}; predict feeds 1x{MNIST_SIZE}x{MNIST_SIZE} digit images")
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    classes = ckpt.data.get("classes") or list(range(model.loss.num_classes))
    results = []
    for path in paths:
        try:
            prepared = load_image(path)
        except CnnError as exc:
            results.append(Prediction(path=str(path), error=str(exc)))
            continue
        x = ((prepared.pixels - mean) / std).astype(model.dtype)[None, None]
        probs = model.predict_proba(x)[0]
        order = np.argsort(-probs, kind="stable")[:top_k]
        results.append(
            Prediction(
                path=str(path),
                prediction=int(classes[int(order[0])]),
                probabilities={str(c): round(float(p), 6) for c, p in zip(classes, probs, strict=True)},
                top_k=[(int(classes[int(i)]), float(probs[i])) for i in order],
                warning=prepared.warning,
            )
        )
    return results
