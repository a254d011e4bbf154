"""Small synthetic MNIST-like IDX files for fast tests: each class is a bar at its own position."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801


def encode_idx(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX bytes for a uint8 array: big-endian magic, one uint32 per dimension, then the data.

    The one IDX writer of the tests; ``magic`` defaults to the uint8 type code with the array's rank.
    """
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """(N, 28, 28) uint8 -> an IDX3 file."""
    path.write_bytes(encode_idx(images, IMAGE_MAGIC))


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """(N,) uint8 -> an IDX1 file."""
    path.write_bytes(encode_idx(labels, LABEL_MAGIC))


def digit_like(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images whose class is learnable: class k draws a bright bar at row 2 + 2k, plus noise."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        row = 2 + 2 * int(k) + int(rng.integers(0, 2))
        images[i, row : row + 2, 4:24] = 255
    return images


def make_idx_dataset(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, str]:
    """Write the four IDX files of a synthetic 10-class dataset; return the paths for ``data.paths``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images_path, labels_path = folder / f"{split}-images-idx3-ubyte", folder / f"{split}-labels-idx1-ubyte"
        write_idx_images(images_path, digit_like(labels, rng))
        write_idx_labels(labels_path, labels)
        paths[f"{split}_images"], paths[f"{split}_labels"] = str(images_path), str(labels_path)
    return paths


def tiny_config(paths: dict[str, str], **train) -> dict:
    """A config dict for a tiny network on the synthetic data (trains in about a second)."""
    return {
        "name": "tiny",
        "model": {
            "layers": [
                {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
                {"type": "relu"},
                {"type": "dropout", "p": 0.1},
                {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
                {"type": "relu"},
                {"type": "flatten"},
                {"type": "dense", "out_features": 10},
            ]
        },
        "data": {"dataset": "idx", "paths": paths, "val_size": 100},
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"name": "step", "step_size": 1, "gamma": 0.5},
        "train": {"epochs": 3, "batch_size": 32, "plots": False, **train},
    }
