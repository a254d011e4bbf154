"""What the pictures read from a run: its checkpoint, the test split, class names and pixel values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnn_cli.errors import CheckpointError
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import Checkpoint, class_names
from cnn_cli.runs.folders import RunPaths, read_json_record


def run_checkpoint(paths: RunPaths) -> Path:
    """The run's best checkpoint, else its last one; a clear error when it has neither."""
    for candidate in (paths.best, paths.last):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{paths.checkpoints}: no checkpoint ({paths.best.name} or {paths.last.name}); the run stopped before saving one")


def _test_split(ckpt: Checkpoint) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's test split, (N, 1, 28, 28) normalised images and (N,) labels, as ``cnn eval`` sees it."""
    from cnn_cli.runs.inference import checkpoint_splits

    splits = checkpoint_splits(ckpt)
    return splits.test.images, splits.test.labels


def _class_names(ckpt: Checkpoint, model: Model) -> list[str]:
    """The name of each class index (``['3', '8']``, ``['T-shirt/top', ...]``, an image folder's sub-folders)."""
    return class_names(ckpt, model.loss.num_classes)


def _pixels(image: np.ndarray, ckpt: Checkpoint) -> np.ndarray:
    """Undo the normalisation of one (C, H, W) input for display: (H, W) in [0, 1]."""
    mean, std = float(ckpt.data.get("mean", 0.0)), float(ckpt.data.get("std", 1.0))
    return np.clip(image.mean(axis=0) * std + mean, 0.0, 1.0)


def _run_status(paths: RunPaths) -> str:
    info = read_json_record(paths.run_info)  # bounded: never waits on a FIFO
    return str(info.get("status", "unknown")) if info else "unknown"
