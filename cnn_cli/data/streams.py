"""Named random streams, so every random choice in the data layer is reproducible on its own.

Each use gets its own generator seeded by ``[stream tag, *keys]``: the split by
``(SPLIT, seed)``, the shuffle of an epoch by ``(SHUFFLE, seed, epoch)``, the
augmentation of a batch by ``(AUGMENT, seed, epoch, batch_index)``, and so on.
A resumed run rebuilds exactly the generators an uninterrupted run would have
used, without replaying earlier draws. The tag goes first because NumPy's
SeedSequence treats trailing zeros as absent (``[s, e]`` and ``[s, e, 0]`` give
the same stream); with a fixed number of keys per tag that cannot collide.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnn_cli.errors import DataError

SPLIT = 1  # which training images are held out for validation
LIMIT = 2  # which training images a --limit subset keeps
SHUFFLE = 3  # the order of one epoch's batches
AUGMENT = 4  # the random shifts/rotations of one batch


def non_negative_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is a non-negative integer, else raise DataError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise DataError(f"{name}: expected a non-negative integer, got {value!r}")
    return int(value)


def rng_for(stream: int, *keys: int) -> np.random.Generator:
    """The generator for ``stream`` (one of the tags above) and its keys (seed, epoch, ...)."""
    return np.random.default_rng([stream, *keys])
