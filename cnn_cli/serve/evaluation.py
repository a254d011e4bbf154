"""The test-split evaluation a run page shows: confusion matrix and most confident mistakes of its best checkpoint.

Computed once per version of ``best.npz`` (a running run saves a better one now and then) and kept.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.errors import CnnError


class EvaluationCache:
    """The test-split evaluation (confusion matrix, confident mistakes) of a checkpoint, computed once per file version."""

    def __init__(self) -> None:
        self._results: dict[tuple[Path, int, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, checkpoint: Path, compute) -> dict[str, Any]:
        stat = checkpoint.stat()
        key = (checkpoint, stat.st_mtime_ns, stat.st_size)
        with self._lock:  # one evaluation at a time: the test split is 10,000 images
            if key not in self._results:
                self._results = {k: v for k, v in self._results.items() if k[0] != checkpoint}
                self._results[key] = compute(checkpoint)
            return self._results[key]


def evaluate_run(checkpoint: Path, mistakes: int = 24) -> dict[str, Any]:
    """Confusion matrix on the checkpoint's test split and its most confident mistakes (images as bytes).

    Uses the same split, normalisation and predictions as ``cnn eval`` and ``cnn plot``, in one forward pass.
    Raises:
        CnnError: the checkpoint or its data cannot be loaded.
    """
    from cnn_cli.config.build import config_from_dict
    from cnn_cli.learn.visualize import confident_mistakes
    from cnn_cli.runs.checkpoint import class_names, load_checkpoint
    from cnn_cli.runs.inference import checkpoint_splits
    from cnn_cli.serve.analysis import BLAS, encode_unsigned
    from cnn_cli.training.train import predictions

    ckpt, model = load_checkpoint(checkpoint)
    test = checkpoint_splits(ckpt).test
    batch = config_from_dict(ckpt.config).train.eval_batch_size
    # Single-threaded BLAS, as the draw pad's passes: a server thread's threaded GEMM running beside another
    # thread's threaded GEMM in the same process (a training or eval call) can deadlock inside OpenBLAS.
    with BLAS.limit(limits=1, user_api="blas"):
        chunks = [model.forward(test.images[i : i + batch], keep_cache=False) for i in range(0, len(test.images), batch)]
    if not chunks:
        raise CnnError(f"{checkpoint.name}: the test split is empty")
    logits = np.concatenate(chunks)
    probabilities = model.loss.probabilities(logits)
    predicted = predictions(model, logits)
    k = model.loss.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (test.labels, predicted), 1)
    names = class_names(ckpt, model.loss.num_classes)
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    shown = []
    for index in confident_mistakes(probabilities, predicted, test.labels, mistakes):
        pixels = np.clip(test.images[index].mean(axis=0) * std + mean, 0.0, 1.0)
        shown.append(
            {
                "index": int(index),
                "true": names[int(test.labels[index])],
                "predicted": names[int(predicted[index])],
                "probability": float(probabilities[index, predicted[index]]),
                "image": encode_unsigned(pixels, 1.0),
            }
        )
    return {
        "checkpoint": checkpoint.name,
        "classes": names,
        "accuracy": float(confusion.diagonal().sum() / len(predicted)),
        "n": int(len(predicted)),
        "confusion_matrix": confusion.tolist(),
        "per_class_accuracy": [float(v) for v in confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)],
        "mistakes": shown,
    }
