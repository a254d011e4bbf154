"""Preparing splits: seeded split, class filter and remap, stratified limit, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.load import load_config
from cnn_cli.data import load_dataset, streams
from cnn_cli.data.prepare import normalise, pixel_mean_std, stratified_quotas
from cnn_cli.errors import DataError
from cnn_cli.runs.datasets import load_config_dataset


@pytest.fixture
def idx_paths(tmp_path: Path, synthetic) -> dict[str, str]:
    """The synthetic dataset written as four IDX files (train 200 = 20 per class, test 50)."""
    return {role: str(path) for role, path in synthetic.write(tmp_path / "idx").items()}


def image_ids(images: np.ndarray) -> np.ndarray:
    """Recover each synthetic image's index from its first two pixels (needs mean=0, std=1)."""
    low = np.rint(images[:, 0, 0, 0] * 255).astype(np.int64)
    high = np.rint(images[:, 0, 0, 1] * 255).astype(np.int64)
    return low + 256 * high


def load_raw_scale(idx_paths, **options):
    """Load with mean 0 / std 1, so images hold pixel / 255 and ids can be read back."""
    return load_dataset("idx", paths=idx_paths, mean=0.0, std=1.0, progress=False, **options)


def test_shapes_dtypes_and_defaults(idx_paths, synthetic) -> None:
    splits = load_dataset("idx", paths=idx_paths, val_size=40, seed=1, progress=False)

    assert (len(splits.train), len(splits.val), len(splits.test)) == (160, 40, 50)
    for split in (splits.train, splits.val, splits.test):
        assert split.images.dtype == np.float32 and split.images.shape[1:] == (1, 28, 28)
        assert split.images.flags.c_contiguous
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(split),)
    assert splits.classes == list(range(10)) and splits.num_classes == 10
    assert splits.source.startswith("idx files train_images=")
    np.testing.assert_array_equal(splits.test.labels, synthetic.test_labels)


def test_gz_paths_work_too(tmp_path: Path, synthetic) -> None:
    paths = {role: str(path) for role, path in synthetic.write(tmp_path / "gz", compressed=True).items()}
    splits = load_raw_scale(paths, val_size=10)
    assert len(splits.train) == 190


def test_same_seed_same_split_and_different_seed_different_split(idx_paths) -> None:
    first, again, other = (load_raw_scale(idx_paths, val_size=40, seed=seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.train.images, again.train.images)
    np.testing.assert_array_equal(first.val.labels, again.val.labels)
    assert set(image_ids(first.val.images)) != set(image_ids(other.val.images))
    train_ids, val_ids = image_ids(first.train.images), image_ids(first.val.images)
    assert set(train_ids).isdisjoint(val_ids) and set(train_ids) | set(val_ids) == set(range(200))


def test_classes_are_filtered_and_remapped_in_the_given_order(idx_paths, synthetic) -> None:
    two = load_raw_scale(idx_paths, val_size=10, seed=5, classes=[7, 2])

    assert two.classes == [7, 2] and two.num_classes == 2
    for split in (two.train, two.val, two.test):
        original = synthetic.train_labels if split is not two.test else synthetic.test_labels
        ids = image_ids(split.images)
        np.testing.assert_array_equal(np.array([7, 2])[split.labels], original[ids])
    assert len(two.test) == 10
    train_ids, val_ids = set(image_ids(two.train.images)), set(image_ids(two.val.images))
    assert train_ids.isdisjoint(val_ids) and train_ids | val_ids == set(np.flatnonzero(np.isin(synthetic.train_labels, [7, 2])))


@pytest.mark.parametrize(("classes", "val_size"), [([7, 2], 10), ([7, 2], 30), ([0, 1, 2, 3, 4], 50), (None, 40)])
def test_validation_has_the_requested_size_whatever_the_classes(idx_paths, classes, val_size) -> None:
    """The classes are kept first and the split made among them: val_size counts images of the requested classes."""
    splits = load_raw_scale(idx_paths, val_size=val_size, seed=3, classes=classes)
    kept = 20 * (len(classes) if classes else 10)  # the synthetic training file has 20 images of each label
    assert (len(splits.val), len(splits.train)) == (val_size, kept - val_size)


def test_with_every_class_the_split_is_the_plain_seeded_split(idx_paths) -> None:
    """Runs without ``classes`` keep the validation images they always had."""
    plain = load_raw_scale(idx_paths, val_size=40, seed=7)
    listed = load_raw_scale(idx_paths, val_size=40, seed=7, classes=list(range(10)))
    np.testing.assert_array_equal(plain.val.images, listed.val.images)
    order = streams.rng_for(streams.SPLIT, 7).permutation(200)  # the split every run without classes had
    assert set(image_ids(plain.val.images)) == set(order[:40].tolist())


def test_seed004_validates_on_the_1000_images_its_config_asks_for(mnist_data_dir) -> None:
    config = load_config("seed004", [f"data.data_dir={mnist_data_dir}"])
    splits = load_config_dataset(config, mean=None, std=None, progress=False)
    assert len(splits.val) == config.data.val_size == 1000
    assert set(np.unique(splits.val.labels)) == {0, 1} and len(splits.train) + 1000 == 5851 + 6131  # MNIST's 8s and 3s


def test_limit_is_a_seeded_stratified_subset_of_training_only(idx_paths) -> None:
    full = load_raw_scale(idx_paths, val_size=40, seed=2)
    limited = load_raw_scale(idx_paths, val_size=40, seed=2, limit=30)
    again = load_raw_scale(idx_paths, val_size=40, seed=2, limit=30)

    assert len(limited.train) == 30
    full_counts = np.bincount(full.train.labels, minlength=10)
    limited_counts = np.bincount(limited.train.labels, minlength=10)
    np.testing.assert_array_equal(limited_counts, stratified_quotas(full_counts, 30))
    assert set(image_ids(limited.train.images)) <= set(image_ids(full.train.images))
    np.testing.assert_array_equal(limited.train.images, again.train.images)
    np.testing.assert_array_equal(limited.val.images, full.val.images)
    np.testing.assert_array_equal(limited.test.images, full.test.images)


@pytest.mark.parametrize(
    ("counts", "limit", "expected"),
    [
        ([10, 30, 60], 7, [1, 2, 4]),  # 0.7, 2.1, 4.2: the largest remainder (class 0) gets the extra one
        ([5, 5, 5, 5], 6, [2, 2, 1, 1]),  # ties go to the lower labels
        ([3, 1], 4, [3, 1]),  # everything
        ([1000, 1], 10, [10, 0]),
    ],
)
def test_stratified_quotas(counts: list[int], limit: int, expected: list[int]) -> None:
    quotas = stratified_quotas(np.array(counts), limit)
    assert quotas.tolist() == expected
    assert quotas.sum() == limit and np.all(quotas <= counts)


def test_normalisation_is_measured_on_the_training_split(idx_paths) -> None:
    splits = load_dataset("idx", paths=idx_paths, val_size=40, seed=0, progress=False)
    raw = load_raw_scale(idx_paths, val_size=40, seed=0)
    pixels = raw.train.images.astype(np.float64)
    assert splits.mean == pytest.approx(pixels.mean(), abs=1e-6)
    assert splits.std == pytest.approx(pixels.std(), abs=1e-6)
    assert float(splits.train.images.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(splits.train.images.std()) == pytest.approx(1.0, abs=1e-5)


def test_given_mean_and_std_are_used(idx_paths) -> None:
    splits = load_dataset("idx", paths=idx_paths, val_size=40, mean=0.5, std=0.25, progress=False)
    raw = load_raw_scale(idx_paths, val_size=40)
    assert (splits.mean, splits.std) == (0.5, 0.25)
    np.testing.assert_allclose(splits.test.images, (raw.test.images - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_pixel_statistics_and_lookup_normalisation_are_exact() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    mean, std = pixel_mean_std(pixels)
    scaled = pixels.astype(np.float64) / 255
    assert mean == pytest.approx(scaled.mean(), rel=1e-12) and std == pytest.approx(scaled.std(), rel=1e-12)
    np.testing.assert_array_equal(normalise(pixels, mean, std)[:, 0], ((scaled - mean) / std).astype(np.float32))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"val_size": 200}, "val_size: 200 leaves no training images"),
        ({"val_size": 40, "classes": [3, 8]}, "val_size: 40 leaves no training images; .* has 40 of classes \\[3, 8\\]"),
        ({"limit": 1000}, "limit: 1000 is more than the 160 training images available"),
    ],
)
def test_options_the_files_cannot_satisfy_are_named_errors(idx_paths, options: dict, expected: str) -> None:
    """Values bad in themselves are refused by the config schema (test_data_options.py); these depend on the files."""
    with pytest.raises(DataError, match=expected):
        load_dataset("idx", paths=idx_paths, **{"val_size": 40, **options}, progress=False)


def test_idx_paths_must_name_all_four_files(idx_paths) -> None:
    partial = {role: path for role, path in idx_paths.items() if role != "test_labels"}
    for paths in (partial, {**idx_paths, "extra": "x"}, None):
        with pytest.raises(ValueError, match="dataset 'idx' needs paths for exactly train_images, "):
            load_dataset("idx", paths=paths, progress=False)


def test_unknown_datasets_are_rejected_before_anything_is_fetched(tmp_path: Path, idx_paths) -> None:
    with pytest.raises(DataError, match="unknown dataset 'emnist'"):
        load_dataset("emnist", data_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == [Path(idx_paths["train_images"]).parent], "nothing was fetched"


def test_broken_idx_file_names_the_file(idx_paths) -> None:
    Path(idx_paths["test_images"]).write_bytes(b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match=f"^{idx_paths['test_images']}: truncated"):
        load_dataset("idx", paths=idx_paths, val_size=10, progress=False)


def test_real_mnist_splits(mnist_data_dir: Path) -> None:
    splits = load_dataset("mnist", data_dir=mnist_data_dir, progress=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55000, 5000, 10000)
    assert splits.mean == pytest.approx(0.1307, abs=5e-4) and splits.std == pytest.approx(0.3081, abs=1e-3)
    assert splits.source == f"mnist in {mnist_data_dir / 'mnist'} (SHA-256 verified)"

    binary = load_dataset("mnist", data_dir=mnist_data_dir, classes=[0, 1], progress=False)
    quick = load_dataset("mnist", data_dir=mnist_data_dir, classes=[0, 1], limit=1000, progress=False)
    assert len(binary.test) == 980 + 1135 and set(np.unique(binary.train.labels)) == {0, 1}
    assert len(quick.train) == 1000
    expected_counts = stratified_quotas(np.bincount(binary.train.labels), 1000)
    assert np.bincount(quick.train.labels).tolist() == expected_counts.tolist()
