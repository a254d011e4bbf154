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

import numpy as np

SPLIT = 1  # which training images are held out for validation
LIMIT = 2  # which training images a --limit subset keeps
SHUFFLE = 3  # the order of one epoch's batches
AUGMENT = 4  # the random shifts/rotations of one batch
TEST_SPLIT = 5  # which images of a folder dataset without test/ are held out for testing


def rng_for(stream: int, *keys: int) -> np.random.Generator:
    """The generator for ``stream`` (one of the tags above) and its keys (seed, epoch, ...)."""
    return np.random.default_rng([stream, *keys])
