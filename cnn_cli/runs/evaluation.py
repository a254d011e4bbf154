"""Evaluation of a model on one split: loss, accuracy, per-class accuracy, confusion matrix.

Below training, inference and plots: each of them imports it, it imports none of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnn_cli.model.network import Model


@dataclass
class EvalResult:
    """Loss, accuracy and the confusion matrix on one split."""

    accuracy: float  # the fields' order is the JSON's (cnn eval --json)
    loss: float
    n: int
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    class_names: list[str] = field(default_factory=list)  # of each class index, when known (a checkpoint's)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def predictions(model: Model, logits: np.ndarray) -> np.ndarray:
    """Predicted class per sample from (N, ...) logits."""
    return model.loss.predict(logits)


def evaluate(model: Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> EvalResult:
    """Mean loss, accuracy, per-class accuracy and confusion matrix of ``model`` on a split (eval mode).

    Args:
        images: (N, *model.input_shape) normalised inputs.
        labels: (N,) integer class indices.
    """
    k = model.loss.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)
    loss_sum = 0.0
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        # A diverged model's weights are inf or NaN: its loss comes out NaN, and that is what the caller reports
        # (a failed fast dev run, the one "diverged" line); NumPy's overflow warnings would only print ahead of it.
        with np.errstate(over="ignore", invalid="ignore"):
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


__all__ = ["EvalResult", "evaluate", "predictions"]
