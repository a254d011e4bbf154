"""Turn the four IDX files into normalised train/validation/test arrays.

Order of operations, each step seeded and independent of the later ones:

1. Classes: keep only the requested labels (in both files) and renumber them
   0..k-1 in the order given, e.g. ``classes=[3, 8]`` makes 3 -> 0 and 8 -> 1.
2. Split: ``val_size`` of the kept training-file images are held out for
   validation, chosen by ``seed``, so the validation split has exactly
   ``val_size`` images of the requested classes. An image's split depends on
   ``classes`` but not on ``limit``; with all ten classes it is the same split
   as a plain seeded split of the 60,000 images. Test is the official test file.
3. Limit: keep a stratified, seeded subset of ``limit`` *training* images, with
   each class in the same proportion as in the full training split.
   Validation and test are left whole, so scores stay comparable with full runs.
4. Normalise: ``(pixel / 255 - mean) / std``, with mean and std measured on the
   final training images unless given (MNIST's full training file gives
   0.1307 / 0.3081).

Images come out float32 (N, 1, 28, 28), labels int64 (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_cli.data import streams
from cnn_cli.data.catalog import FILE_ROLES, IDX_DATASET, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from cnn_cli.data.idx import NUM_LABELS, read_image_label_pair
from cnn_cli.data.sources import ensure_dataset
from cnn_cli.errors import DataError

PIXEL_LEVELS = 256  # uint8 pixels
# Images processed at a time when measuring or normalising, to bound temporary memory.
_IMAGES_PER_CHUNK = 8192


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        images: float32 (N, 1, 28, 28), normalised.
        labels: int64 (N,), remapped to 0..num_classes-1.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DataSplits:
    """The prepared dataset.

    Attributes:
        train, val, test: the three splits.
        mean, std: the normalisation used (pixel values scaled to [0, 1] first).
        classes: original label of each class; ``classes[i]`` is the label remapped to ``i``.
        source: where the files came from (cache folder or the given paths).
    """

    train: Split
    val: Split
    test: Split
    mean: float
    std: float
    classes: list[int]
    source: str

    @property
    def table(self) -> np.ndarray:
        """float32 (256,) lookup table from uint8 pixels to normalised values (see ``train_as_pixels``)."""
        return pixel_table(self.mean, self.std)

    @property
    def num_classes(self) -> int:
        """Number of classes the labels range over (0..num_classes-1)."""
        return len(self.classes)


def split_indices(count: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(count)`` into (train, val) index arrays, each sorted."""
    order = streams.rng_for(streams.SPLIT, seed).permutation(count)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


def class_remap_table(classes: list[int]) -> np.ndarray:
    """int64 table of length NUM_LABELS: original label -> new label, or -1 for dropped labels."""
    table = np.full(NUM_LABELS, -1, dtype=np.int64)
    table[classes] = np.arange(len(classes))
    return table


def stratified_quotas(class_counts: np.ndarray, limit: int) -> np.ndarray:
    """How many of each class a stratified subset of ``limit`` items takes.

    Proportional shares rounded by largest remainder (in exact integer
    arithmetic), so the quotas sum to ``limit`` and never exceed a class's count.
    """
    total = int(class_counts.sum())
    scaled = class_counts.astype(np.int64) * limit
    quotas = scaled // total
    remainders = scaled % total
    shortfall = limit - int(quotas.sum())
    # Largest remainder first; ties go to the lower class (stable sort).
    quotas[np.argsort(-remainders, kind="stable")[:shortfall]] += 1
    return quotas


def stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted positions in ``labels`` of a seeded, stratified subset of ``limit`` items."""
    class_counts = np.bincount(labels)
    quotas = stratified_quotas(class_counts, limit)
    rng = streams.rng_for(streams.LIMIT, seed)
    chosen = [rng.choice(np.flatnonzero(labels == label), size=int(quota), replace=False) for label, quota in enumerate(quotas)]
    return np.sort(np.concatenate(chosen))


def pixel_mean_std(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of uint8 pixels scaled to [0, 1].

    Computed exactly from a 256-bin histogram, so no float copy of the images is made.
    """
    histogram = np.zeros(PIXEL_LEVELS, dtype=np.int64)
    for start in range(0, len(images), _IMAGES_PER_CHUNK):
        histogram += np.bincount(images[start : start + _IMAGES_PER_CHUNK].ravel(), minlength=PIXEL_LEVELS)
    values = np.arange(PIXEL_LEVELS, dtype=np.float64) / (PIXEL_LEVELS - 1)
    weights = histogram / histogram.sum()
    mean = float(weights @ values)
    std = float(np.sqrt(weights @ (values - mean) ** 2))
    return mean, std


def pixel_table(mean: float, std: float) -> np.ndarray:
    """float32 (256,): the normalised value ``(pixel / 255 - mean) / std`` of every uint8 pixel."""
    return ((np.arange(PIXEL_LEVELS, dtype=np.float64) / (PIXEL_LEVELS - 1) - mean) / std).astype(np.float32)


def normalise(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) holding ``(pixel / 255 - mean) / std``.

    Uses a 256-entry lookup table: every pixel value maps to its float32 once.
    """
    table = pixel_table(mean, std)
    out = np.empty((len(images), 1, *images.shape[1:]), dtype=np.float32)
    for start in range(0, len(images), _IMAGES_PER_CHUNK):
        stop = start + _IMAGES_PER_CHUNK
        out[start:stop, 0] = table[images[start:stop]]
    return out


def _resolve_files(dataset: str, data_dir: str | Path | None, paths: dict[str, str] | None, progress: bool) -> tuple[dict[str, Path], str]:
    """The four IDX file paths to read and a description of where they are."""
    if dataset == IDX_DATASET:
        if sorted(paths or {}) != sorted(FILE_ROLES):
            raise ValueError(f"dataset 'idx' needs paths for exactly {', '.join(FILE_ROLES)}")
        files = {role: Path(paths[role]) for role in FILE_ROLES}  # type: ignore[index]
        return files, "idx files " + ", ".join(f"{role}={path}" for role, path in files.items())
    files = ensure_dataset(dataset, data_dir, progress=progress)
    return files, f"{dataset} in {files[TRAIN_IMAGES].parent} (SHA-256 verified)"


def _kept_and_split(
    train_file_labels: np.ndarray, kept_classes: list[int], val_size: int, seed: int, labels_file: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the training file of the (train, val) images: the requested classes first, then ``val_size`` of them held out.

    Filtering before splitting is what makes the validation split ``val_size`` images of the
    requested classes (split first, ``classes: [3, 8]`` left about a fifth of them).
    """
    kept = np.flatnonzero(class_remap_table(kept_classes)[train_file_labels] >= 0)
    _no_class_missing(train_file_labels[kept], kept_classes, labels_file)
    if val_size >= len(kept):
        of = "" if len(kept_classes) == NUM_LABELS else f" of classes {kept_classes}"
        raise DataError(f"val_size: {val_size} leaves no training images; {labels_file} has {len(kept)}{of}")
    train_positions, val_positions = split_indices(len(kept), val_size, seed)
    _no_class_missing(train_file_labels[kept[train_positions]], kept_classes, labels_file)  # all of a class held out
    return kept[train_positions], kept[val_positions]


def _no_class_missing(labels: np.ndarray, kept_classes: list[int], labels_file: Path) -> None:
    absent = [label for label in kept_classes if not np.any(labels == label)]
    if absent:
        raise DataError(f"classes: no training images with label(s) {absent} in {labels_file}")


def load_dataset(
    dataset: str = "mnist",
    data_dir: str | Path | None = None,
    paths: dict[str, str] | None = None,
    val_size: int = 5000,
    seed: int = 0,
    classes: list[int] | None = None,
    limit: int | None = None,
    mean: float | None = None,
    std: float | None = None,
    progress: bool = True,
    train_as_pixels: bool = False,
) -> DataSplits:
    """Fetch (if needed), validate, filter, split and normalise a dataset.

    The options are checked once, by the config schema (:class:`cnn_cli.config.sections.DataConfig`);
    called from Python with values it would refuse, this may raise a plain ValueError.

    Args:
        dataset: ``"mnist"``, ``"fashion-mnist"`` (fetched and SHA-256 checked)
            or ``"idx"`` (your own four files, validated but not hash-checked).
        data_dir: cache root for downloaded datasets (files under ``data_dir/<dataset>/``);
            None: ``./data`` in a project folder, else the per-user cache (see ``resolve_data_dir``).
        paths: for ``"idx"`` only: train_images, train_labels, test_images,
            test_labels paths (raw or .gz).
        val_size: images of the requested classes held out of the training file for
            validation (the validation split has exactly this many); 0 gives an empty one.
        seed: seeds the split and the limit subset; same seed, same result.
        classes: labels to keep, renumbered 0..k-1 in the given order (None: all 10).
        limit: keep a stratified subset of this many training images (val/test untouched).
        mean, std: normalisation; None measures it on the final training images.
        progress: show download progress on stderr.
        train_as_pixels: keep the training images as uint8 (N, 1, 28, 28) pixels (a quarter of the
            memory); pass ``normalize=splits.table`` to :func:`iterate_batches` to get the same floats.

    Returns:
        DataSplits with float32 (N, 1, 28, 28) images and int64 (N,) labels per split.

    Raises:
        DataError: an unreadable or invalid file, a failed download, or options the files cannot satisfy.
    """
    kept_classes = list(range(NUM_LABELS)) if classes is None else list(classes)
    files, source = _resolve_files(dataset, data_dir, paths, progress)
    train_file_images, train_file_labels = read_image_label_pair(files[TRAIN_IMAGES], files[TRAIN_LABELS])
    test_images, test_labels = read_image_label_pair(files[TEST_IMAGES], files[TEST_LABELS])

    remap = class_remap_table(kept_classes)
    train_index, val_index, test_index = _choose_images(train_file_labels, test_labels, remap, kept_classes, files, val_size, seed, limit)
    train_pixels, train_labels = train_file_images[train_index], remap[train_file_labels[train_index]]
    mean, std = _normalisation(train_pixels, mean, std, files[TRAIN_IMAGES])

    def build(images: np.ndarray, labels: np.ndarray) -> Split:
        return Split(images=normalise(images, mean, std), labels=np.ascontiguousarray(labels, dtype=np.int64))

    if train_as_pixels:  # a quarter of the memory; iterate_batches(normalize=splits.table) gives identical floats
        train = Split(images=train_pixels[:, None], labels=np.ascontiguousarray(train_labels, dtype=np.int64))
    else:
        train = build(train_pixels, train_labels)
    return DataSplits(
        train=train,
        val=build(train_file_images[val_index], remap[train_file_labels[val_index]]),
        test=build(test_images[test_index], remap[test_labels[test_index]]),
        mean=mean,
        std=std,
        classes=kept_classes,
        source=source,
    )


def _choose_images(
    train_file_labels: np.ndarray,
    test_labels: np.ndarray,
    remap: np.ndarray,
    kept_classes: list[int],
    files: dict[str, Path],
    val_size: int,
    seed: int,
    limit: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-3 (classes, split, limit), on the labels alone: sorted positions of the train, val and test images in their files."""
    train_index, val_index = _kept_and_split(train_file_labels, kept_classes, val_size, seed, files[TRAIN_LABELS])
    test_index = np.flatnonzero(remap[test_labels] >= 0)
    if limit is not None:
        if limit > len(train_index):
            raise DataError(f"limit: {limit} is more than the {len(train_index)} training images available")
        train_index = train_index[stratified_subset(remap[train_file_labels[train_index]], limit, seed)]
    return train_index, val_index, test_index


def _normalisation(train_pixels: np.ndarray, mean: float | None, std: float | None, train_images: Path) -> tuple[float, float]:
    """Step 4's mean and std: each one given, or measured on the final training images."""
    if mean is None or std is None:
        measured_mean, measured_std = pixel_mean_std(train_pixels)
        if measured_std == 0 and std is None:
            raise DataError(f"{train_images}: every training pixel has the same value; cannot normalise")
        mean = measured_mean if mean is None else mean
        std = measured_std if std is None else std
    return mean, std
