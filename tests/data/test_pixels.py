"""Training on uint8 pixels normalised per batch gives exactly the floats of the float32 split."""

from __future__ import annotations

import numpy as np

from cnn_cli.data import Augment, iterate_batches, load_dataset
from tests.support.synthetic import make_idx_dataset


def test_pixel_batches_equal_float_batches(tmp_path):
    paths = make_idx_dataset(tmp_path, n_train=300, n_test=50)
    floats = load_dataset("idx", paths=paths, val_size=50, seed=3, progress=False)
    pixels = load_dataset("idx", paths=paths, val_size=50, seed=3, progress=False, train_as_pixels=True)
    assert pixels.train.images.dtype == np.uint8 and pixels.train.images.shape == (250, 1, 28, 28)
    np.testing.assert_array_equal(pixels.table[pixels.train.images], floats.train.images)
    augment = Augment(translate=2)
    a = list(iterate_batches(floats.train.images, floats.train.labels, 32, seed=1, epoch=2, augment=augment))
    b = list(iterate_batches(pixels.train.images, pixels.train.labels, 32, seed=1, epoch=2, augment=augment, normalize=pixels.table))
    assert len(a) == len(b) == 8
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert xb.dtype == np.float32
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
