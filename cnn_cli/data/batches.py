"""Mini-batches: seeded shuffling, a fixed last-batch policy, resumable order, augmentation.

The order of epoch ``e`` depends only on ``(seed, e)`` and the augmentation of
batch ``b`` only on ``(seed, e, b)`` (see :mod:`cnn_cli.data.streams`). A run
resumed with ``start_batch=k`` therefore yields exactly the batches k, k+1, ...
that an uninterrupted run would have, augmented identically.

Last partial batch: with ``drop_last=False`` (the default) the final batch of an
epoch holds the remaining ``n % batch_size`` images; with ``drop_last=True`` it is
skipped, so every batch has exactly ``batch_size`` images (the skipped images
differ from epoch to epoch when shuffling).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cnn_cli.data import streams
from cnn_cli.errors import DataError


@dataclass(frozen=True)
class Augment:
    """Random geometric augmentation for training batches (off by default).

    Each image is zoomed about its centre by a factor drawn uniformly from
    ``[1 - zoom, 1 + zoom]`` (above 1 enlarges the digit), rotated by an angle
    drawn uniformly from ``[-rotate, rotate]`` degrees about its centre, then
    shifted by whole pixels drawn uniformly from ``[-translate, translate]`` in
    each direction. Pixels that come from outside the frame copy the nearest
    edge pixel (MNIST's border is background). Zoom and rotation sample
    bilinearly; a pure shift moves pixels exactly.

    Attributes:
        translate: maximum shift in pixels (0 = none).
        rotate: maximum rotation in degrees (0 = none).
        zoom: maximum relative change of size (0 = none; 0.1 = 90% to 110%).
    """

    translate: int = 0
    rotate: float = 0.0
    zoom: float = 0.0

    @property
    def enabled(self) -> bool:
        """True if this augmentation changes anything."""
        return self.translate > 0 or self.rotate > 0 or self.zoom > 0

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch with random draws from ``rng``.

        Args:
            images: float32 (B, C, H, W).
            rng: generator for this batch's shifts and angles.

        Returns:
            A new float32 (B, C, H, W) array; ``images`` is not modified.
        """
        batch = len(images)
        shift_y = rng.integers(-self.translate, self.translate + 1, size=batch)
        shift_x = rng.integers(-self.translate, self.translate + 1, size=batch)
        if self.rotate == 0 and self.zoom == 0:
            return shift_images(images, shift_y, shift_x)
        # Each draw only when its augmentation is on, so turning zoom on leaves the other draws as they were.
        angles = np.deg2rad(rng.uniform(-self.rotate, self.rotate, size=batch)) if self.rotate else np.zeros(batch)
        scales = rng.uniform(1 - self.zoom, 1 + self.zoom, size=batch) if self.zoom else None
        return rotate_and_shift_images(images, angles, shift_y, shift_x, scales)


@lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every pixel, flattened: two float32 arrays of length H*W."""
    rows, cols = np.indices((height, width), dtype=np.float32).reshape(2, -1)
    return rows, cols


def shift_images(images: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray) -> np.ndarray:
    """Shift each image by whole pixels, copying edge pixels into the uncovered border.

    ``out[b, :, y, x] = images[b, :, clip(y - shift_y[b]), clip(x - shift_x[b])]``,
    one gather indexed by small (B, H) and (B, W) tables of source rows and columns.

    Args:
        images: (B, C, H, W).
        shift_y, shift_x: int (B,); positive moves content down / right.

    Returns:
        (B, C, H, W) array of the same dtype.
    """
    batch, _, height, width = images.shape
    source_rows = np.clip(np.arange(height)[None, :] - shift_y[:, None], 0, height - 1)
    source_cols = np.clip(np.arange(width)[None, :] - shift_x[:, None], 0, width - 1)
    # Advanced indices around a slice put their broadcast shape (B, H, W) first: result (B, H, W, C).
    moved = images[np.arange(batch)[:, None, None], :, source_rows[:, :, None], source_cols[:, None, :]]
    return np.ascontiguousarray(moved.transpose(0, 3, 1, 2))


def rotate_and_shift_images(
    images: np.ndarray, angles: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray, scales: np.ndarray | None = None
) -> np.ndarray:
    """Zoom and rotate each image about its centre, then shift it, sampling bilinearly.

    Each output pixel p is mapped back to its source point
    ``R(-angle) (p - shift - centre) / scale + centre``, which is clamped into the frame
    (the same as extending the image with copies of its edge pixels), and the
    four pixels around that point are blended.

    Args:
        images: float32 (B, C, H, W).
        angles: (B,) radians; a positive angle turns the image clockwise as displayed.
        shift_y, shift_x: (B,) pixels.
        scales: (B,) zoom factors (above 1 enlarges), or None for no zoom.

    Returns:
        float32 (B, C, H, W).
    """
    batch, channels, height, width = images.shape
    rows, cols = _pixel_grid(height, width)
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    inverse_scale = 1.0 if scales is None else 1.0 / np.asarray(scales, dtype=np.float64)
    cos = (np.cos(angles) * inverse_scale).astype(np.float32).reshape(-1, 1)
    sin = (np.sin(angles) * inverse_scale).astype(np.float32).reshape(-1, 1)
    # Offsets of each output pixel from the centre with the shift undone: (B, H*W).
    offset_y = (rows - centre_y)[None, :] - shift_y.astype(np.float32)[:, None]
    offset_x = (cols - centre_x)[None, :] - shift_x.astype(np.float32)[:, None]
    # Undo the rotation and the zoom: R(-angle)/scale in (row, col) coordinates; clamp into the frame.
    source_y = np.clip(cos * offset_y - sin * offset_x + centre_y, 0, height - 1)
    source_x = np.clip(sin * offset_y + cos * offset_x + centre_x, 0, width - 1)
    # Top-left neighbour, kept one pixel inside so its right/bottom neighbours exist.
    top = np.minimum(np.floor(source_y), height - 2)
    left = np.minimum(np.floor(source_x), width - 2)
    weight_y, weight_x = (source_y - top)[:, None, :], (source_x - left)[:, None, :]
    # Flat index of the top-left neighbour within the whole (channel-last) batch.
    corner = (top * width + left).astype(np.intp) + (np.arange(batch) * (height * width))[:, None]
    per_channel = images.transpose(1, 0, 2, 3).reshape(channels, -1)

    def neighbour(step: int) -> np.ndarray:
        return per_channel[:, corner + step].transpose(1, 0, 2)  # (B, C, H*W)

    top_row = (1 - weight_x) * neighbour(0) + weight_x * neighbour(1)
    bottom_row = (1 - weight_x) * neighbour(width) + weight_x * neighbour(width + 1)
    blended = (1 - weight_y) * top_row + weight_y * bottom_row
    return blended.astype(np.float32, copy=False).reshape(batch, channels, height, width)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches in one epoch of ``n`` examples: ``n // batch_size`` with ``drop_last``, else rounded up."""
    return n // batch_size if drop_last else -(-n // batch_size)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` examples: int64 (n,), fixed by (seed, epoch)."""
    if not shuffle:
        return np.arange(n)
    return streams.rng_for(streams.SHUFFLE, seed, epoch).permutation(n)


def iterate_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_last: bool = False,
    augment: Augment | None = None,
    start_batch: int = 0,
    normalize: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield one epoch of mini-batches, starting at batch ``start_batch``.

    Args:
        images: float32 (N, C, H, W), e.g. ``DataSplits.train.images`` (N, 1, 28, 28).
        labels: int (N,).
        batch_size: images per batch (the last one may be smaller; see ``drop_last``).
        seed, epoch: fix the shuffle order and the augmentation draws.
        shuffle: visit the examples in a seeded random order (else in stored order).
        drop_last: skip a final batch smaller than ``batch_size``.
        augment: training-time augmentation; pass None for validation and test.
        start_batch: first batch to yield, for resuming (0..num_batches).
        normalize: float32 (256,) lookup table when ``images`` are uint8 pixels
            (``DataSplits.table``): each batch is normalised as it is drawn.

    Yields:
        (images float32 (B, C, H, W), labels int64 (B,)); fresh arrays, safe to modify.

    Raises:
        DataError: arrays or a start batch that do not fit, raised at the call (not at the first
            ``next``). The settings themselves (batch size, seed, augmentation) are checked once, by the config schema.
    """
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"iterate_batches: expected images (N, C, H, W) and labels (N,), got {images.shape} and {labels.shape}")
    total = num_batches(len(labels), batch_size, drop_last)
    if not 0 <= start_batch <= total:
        raise DataError(f"start_batch: {start_batch} is not in 0..{total}, the batches of an epoch")
    order = epoch_order(len(labels), seed, epoch, shuffle)
    if normalize is not None and (images.dtype != np.uint8 or normalize.shape != (256,)):
        raise DataError("iterate_batches: normalize needs uint8 images and a (256,) lookup table")
    return _batches(images, labels, batch_size, order, range(start_batch, total), seed, epoch, augment, normalize)


def _batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    order: np.ndarray,
    batch_indices: range,
    seed: int,
    epoch: int,
    augment: Augment | None,
    normalize: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for batch_index in batch_indices:
        members = order[batch_index * batch_size : (batch_index + 1) * batch_size]
        if normalize is not None:
            batch_images = normalize[images[members]]
        else:
            batch_images = images[members].astype(np.float32, copy=False)
        if augment is not None and augment.enabled:
            batch_images = augment.apply(batch_images, streams.rng_for(streams.AUGMENT, seed, epoch, batch_index))
        yield batch_images, labels[members].astype(np.int64, copy=False)
