"""Batching and augmentation: seeded order, last-batch policy, exact resume, correct and cheap transforms."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cnn_cli.data import Augment, iterate_batches, num_batches
from cnn_cli.data.batches import rotate_and_shift_images, shift_images
from cnn_cli.errors import DataError

# Training costs about 1 ms per image, and augmentation may add at most 10% (100 us).
# The test allows twice that, so a busy shared machine does not make it flaky.
AUGMENT_BUDGET_S_PER_IMAGE = 200e-6


@pytest.fixture
def dataset() -> tuple[np.ndarray, np.ndarray]:
    """103 float32 images whose pixel (0, 0) holds the image's index; labels = index % 10."""
    images = np.random.default_rng(0).standard_normal((103, 1, 28, 28)).astype(np.float32)
    images[:, 0, 0, 0] = np.arange(103)
    return images, np.arange(103) % 10


def ids(batch_images: np.ndarray) -> list[int]:
    return batch_images[:, 0, 0, 0].astype(int).tolist()


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "expected"),
    [
        (103, 10, False, 11),
        (103, 10, True, 10),
        (100, 10, False, 10),
        (100, 10, True, 10),
        (5, 10, True, 0),
        (0, 4, False, 0),
    ],
)
def test_num_batches(n: int, batch_size: int, drop_last: bool, expected: int) -> None:
    assert num_batches(n, batch_size, drop_last) == expected


def test_an_epoch_visits_every_example_once_with_a_partial_last_batch(dataset) -> None:
    images, labels = dataset
    batches = list(iterate_batches(images, labels, batch_size=10, seed=1, epoch=0))
    assert [len(batch_labels) for _, batch_labels in batches] == [10] * 10 + [3]
    visited = [i for batch_images, _ in batches for i in ids(batch_images)]
    assert sorted(visited) == list(range(103)) and visited != list(range(103))
    for batch_images, batch_labels in batches:
        assert batch_images.dtype == np.float32 and batch_images.shape[1:] == (1, 28, 28)
        assert batch_labels.dtype == np.int64
        assert batch_labels.tolist() == [i % 10 for i in ids(batch_images)]


def test_drop_last_gives_only_full_batches(dataset) -> None:
    images, labels = dataset
    batches = list(iterate_batches(images, labels, 10, seed=1, epoch=0, drop_last=True))
    assert [len(batch_labels) for _, batch_labels in batches] == [10] * 10


def test_order_is_fixed_by_seed_and_epoch(dataset) -> None:
    images, labels = dataset

    def order(seed: int, epoch: int) -> list[int]:
        return [i for batch_images, _ in iterate_batches(images, labels, 16, seed, epoch) for i in ids(batch_images)]

    assert order(3, 2) == order(3, 2)
    assert order(3, 2) != order(3, 1) and order(3, 2) != order(4, 2)
    unshuffled = [i for b, _ in iterate_batches(images, labels, 16, 3, 2, shuffle=False) for i in ids(b)]
    assert unshuffled == list(range(103))


def test_resume_reproduces_the_tail_exactly_with_augmentation(dataset) -> None:
    images, labels = dataset
    augment = Augment(translate=2, rotate=10.0)
    uninterrupted = list(iterate_batches(images, labels, 8, seed=5, epoch=3, augment=augment))
    resumed = list(iterate_batches(images, labels, 8, seed=5, epoch=3, augment=augment, start_batch=6))

    assert len(resumed) == len(uninterrupted) - 6
    for (expected_images, expected_labels), (got_images, got_labels) in zip(uninterrupted[6:], resumed, strict=True):
        np.testing.assert_array_equal(got_images, expected_images)
        np.testing.assert_array_equal(got_labels, expected_labels)
    assert list(iterate_batches(images, labels, 8, seed=5, epoch=3, start_batch=num_batches(103, 8, False))) == []


def test_augmentation_changes_training_batches_and_leaves_the_input_alone(dataset) -> None:
    images, labels = dataset
    before = images.copy()
    plain = next(iterate_batches(images, labels, 32, seed=0, epoch=0))[0]
    augmented = next(iterate_batches(images, labels, 32, seed=0, epoch=0, augment=Augment(translate=3)))[0]
    off = next(iterate_batches(images, labels, 32, seed=0, epoch=0, augment=Augment()))[0]
    assert not np.array_equal(plain, augmented)
    np.testing.assert_array_equal(plain, off)
    np.testing.assert_array_equal(images, before)


def edge_padded_shift_reference(images: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray) -> np.ndarray:
    """Slow, obvious shift: pad each image with copies of its edge, then crop the shifted window."""
    pad = 8
    out = np.empty_like(images)
    for b in range(len(images)):
        for c in range(images.shape[1]):
            padded = np.pad(images[b, c], pad, mode="edge")
            top, left = pad - shift_y[b], pad - shift_x[b]
            out[b, c] = padded[top : top + images.shape[2], left : left + images.shape[3]]
    return out


def test_shift_matches_the_padded_reference() -> None:
    rng = np.random.default_rng(1)
    images = rng.standard_normal((20, 3, 28, 28)).astype(np.float32)
    shift_y, shift_x = rng.integers(-4, 5, 20), rng.integers(-4, 5, 20)
    np.testing.assert_array_equal(shift_images(images, shift_y, shift_x), edge_padded_shift_reference(images, shift_y, shift_x))
    # Rotation by 0 degrees samples exactly on the pixel grid: the same result.
    np.testing.assert_array_equal(rotate_and_shift_images(images, np.zeros(20), shift_y, shift_x), shift_images(images, shift_y, shift_x))


def test_augment_shifts_stay_within_translate() -> None:
    # One bright pixel in the middle of each image: after a shift it must be within `translate` of the centre.
    images = np.zeros((200, 1, 28, 28), np.float32)
    images[:, 0, 14, 14] = 1.0
    shifted = Augment(translate=2).apply(images, np.random.default_rng(0))
    positions = np.argwhere(shifted[:, 0] == 1.0)  # (image, row, col) of each bright pixel
    assert positions[:, 0].tolist() == list(range(200)), "one bright pixel per image"
    offsets = positions[:, 1:] - 14
    assert np.abs(offsets).max() == 2
    assert len({tuple(offset) for offset in offsets}) == 25, "all 5x5 shifts occur"


def test_rotation_quarter_turn_and_value_range() -> None:
    image = np.zeros((1, 1, 5, 5), np.float32)
    image[0, 0, 0, 2] = 1.0  # top middle
    quarter = rotate_and_shift_images(image, np.array([np.pi / 2]), np.zeros(1, int), np.zeros(1, int))
    expected = np.zeros((5, 5), np.float32)
    expected[2, 4] = 1.0  # a positive angle turns clockwise: top middle -> right middle
    np.testing.assert_allclose(quarter[0, 0], expected, atol=1e-6)

    images = np.random.default_rng(2).uniform(-1, 3, size=(16, 1, 28, 28)).astype(np.float32)
    rotated = Augment(translate=1, rotate=15).apply(images, np.random.default_rng(3))
    assert rotated.dtype == np.float32 and rotated.shape == images.shape
    assert rotated.min() >= images.min() - 1e-6 and rotated.max() <= images.max() + 1e-6  # bilinear never overshoots


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"start_batch": 14}, r"start_batch: 14 is not in 0..13, the batches of an epoch"),
        ({"start_batch": -1}, r"start_batch: -1 is not in 0..13"),
        ({"labels": np.zeros(5, np.int64)}, r"expected images \(N, C, H, W\) and labels \(N,\)"),
    ],
)
def test_arrays_or_start_that_do_not_fit_fail_at_the_call(dataset, options: dict, expected: str) -> None:
    """Settings (batch size, seed, augmentation) are checked by the config schema (test_data_options.py); these are not settings."""
    images, labels = dataset
    arguments = {"images": images, "labels": labels, "batch_size": 8, "seed": 0, "epoch": 0, **options}
    with pytest.raises(DataError, match=expected):
        iterate_batches(**arguments)  # no next(): the error comes from the call itself


def test_augmentation_cost_is_within_budget() -> None:
    """Budget: about 10% of a ~1 ms/image training step; translate + rotate, batch 64, best of 3."""
    images = np.random.default_rng(0).standard_normal((2048, 1, 28, 28)).astype(np.float32)
    labels = np.zeros(2048, np.int64)
    augment = Augment(translate=2, rotate=10.0)

    def seconds_per_image(augmentation: Augment | None) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _batch in iterate_batches(images, labels, 64, seed=0, epoch=0, augment=augmentation):
                pass
            best = min(best, time.perf_counter() - started)
        return best / len(images)

    added = seconds_per_image(augment) - seconds_per_image(None)
    print(f"augmentation (translate 2, rotate 10): {added * 1e6:.1f} us per image")
    assert added < AUGMENT_BUDGET_S_PER_IMAGE


def zoom_rotate_shift_by_loops(image: np.ndarray, angle: float, scale: float, shift_y: int, shift_x: int) -> np.ndarray:
    """One (H, W) image by the definition, pixel by pixel in float64: the source point, clamped, bilinear."""
    height, width = image.shape
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    out = np.empty((height, width))
    for y in range(height):
        for x in range(width):
            dy, dx = y - shift_y - centre_y, x - shift_x - centre_x
            source_y = min(max((np.cos(angle) * dy - np.sin(angle) * dx) / scale + centre_y, 0.0), height - 1.0)
            source_x = min(max((np.sin(angle) * dy + np.cos(angle) * dx) / scale + centre_x, 0.0), width - 1.0)
            y0, x0 = int(np.floor(source_y)), int(np.floor(source_x))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            fy, fx = source_y - y0, source_x - x0
            top = (1 - fx) * image[y0, x0] + fx * image[y0, x1]
            bottom = (1 - fx) * image[y1, x0] + fx * image[y1, x1]
            out[y, x] = (1 - fy) * top + fy * bottom
    return out


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 0.9), (0.0, 1.1), (0.3, 0.93), (-0.2, 1.07)])
def test_zoom_matches_the_direct_computation(angle: float, scale: float) -> None:
    rng = np.random.default_rng(4)
    images = rng.random((3, 2, 11, 13)).astype(np.float32)
    shifts_y, shifts_x = np.array([0, 1, -2]), np.array([2, 0, -1])
    fast = rotate_and_shift_images(images, np.full(3, angle), shifts_y, shifts_x, np.full(3, scale))
    for b in range(3):
        for c in range(2):
            expected = zoom_rotate_shift_by_loops(images[b, c].astype(np.float64), angle, scale, shifts_y[b], shifts_x[b])
            np.testing.assert_allclose(fast[b, c], expected, atol=2e-6)


def test_zoom_enlarges_and_shrinks_a_centred_square() -> None:
    """A 6x6 bright square in a 20x20 frame covers more pixels zoomed in and fewer zoomed out."""
    image = np.zeros((1, 1, 20, 20), np.float32)
    image[0, 0, 7:13, 7:13] = 1.0
    no_shift = np.zeros(1, int)

    def bright(scale: float) -> int:
        return int((rotate_and_shift_images(image, np.zeros(1), no_shift, no_shift, np.array([scale])) > 0.5).sum())

    assert bright(1.0) == 36
    assert bright(2.0) == 144  # 12x12
    assert bright(0.5) == 4  # 2x2


def test_zoom_draws_sizes_within_the_range_and_leaves_other_draws_alone() -> None:
    images = np.random.default_rng(5).random((64, 1, 28, 28)).astype(np.float32)
    zoomed = Augment(translate=1, rotate=10, zoom=0.1)
    assert zoomed.enabled and Augment(zoom=0.1).enabled
    out = zoomed.apply(images, np.random.default_rng(6))
    assert out.dtype == np.float32 and out.shape == images.shape
    assert out.min() >= images.min() - 1e-6 and out.max() <= images.max() + 1e-6
    # The draws come in a fixed order, shifts, angles, then sizes, so turning zoom on keeps the shifts and angles of a seed.
    rng = np.random.default_rng(7)
    shift_y, shift_x = rng.integers(-1, 2, size=64), rng.integers(-1, 2, size=64)
    angles, scales = np.deg2rad(rng.uniform(-10, 10, size=64)), rng.uniform(0.9, 1.1, size=64)
    expected = rotate_and_shift_images(images, angles, shift_y, shift_x, scales)
    np.testing.assert_array_equal(zoomed.apply(images, np.random.default_rng(7)), expected)
