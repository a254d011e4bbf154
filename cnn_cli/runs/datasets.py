"""The data a run trains and is evaluated on: the splits its config's data section describes."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the config module imports this package: the type only
    from cnn_cli.config.sections import Config
from cnn_cli.data.prepare import DataSplits, load_dataset


def load_config_dataset(
    config: Config, *, mean: float | None, std: float | None, progress: bool, train_as_pixels: bool = False
) -> DataSplits:
    """:func:`load_dataset` with a config's ``data`` section and ``train.seed``: the splits that config trains on.

    ``mean`` and ``std`` are given apart: training passes the config's (None: measured), evaluation
    the ones a checkpoint stored, so that its numbers match what training reported.
    """
    d = config.data
    return load_dataset(
        dataset=d.dataset,
        data_dir=d.data_dir,
        paths=d.paths,
        path=d.path,
        test_fraction=d.test_fraction,
        val_size=d.val_size,
        seed=config.train.seed,
        classes=d.classes,
        limit=d.limit,
        mean=mean,
        std=std,
        progress=progress,
        train_as_pixels=train_as_pixels,
    )


def data_fingerprint(splits: DataSplits) -> str:
    """The SHA-256 of the three splits' images and labels (dtype and shape included): which data a run trains on.

    Recorded in a new run's run.json; a resume whose data moved checks what it finds against it.
    """
    digest = hashlib.sha256()
    for split in (splits.train, splits.val, splits.test):
        for array in (split.images, split.labels):
            values = np.ascontiguousarray(array)
            digest.update(f"{values.dtype.str}{values.shape}".encode())
            digest.update(values.data)
    return digest.hexdigest()
