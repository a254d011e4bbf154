"""Turn the four IDX files (or a folder of images) into normalised train/validation/test arrays.

Order of operations, each step seeded and independent of the later ones:

1. Classes: keep only the requested labels (in both files) and renumber them
   0..k-1 in the order given, e.g. ``classes=[3, 8]`` makes 3 -> 0 and 8 -> 1.
2. Split: ``val_size`` of the kept training-file images are held out for
   validation, chosen by ``seed``, so the validation split has exactly
   ``val_size`` images of the requested classes. An image's split depends on
   ``classes`` but not on ``limit``; with all ten classes it is the same split
   as a plain seeded split of the 60,000 images. Test is the official test file
   (a folder's ``test/``, else its held-out ``test_fraction``: :mod:`cnn_cli.data.folder`).
3. Limit: keep a stratified, seeded subset of ``limit`` *training* images, with
   each class in the same proportion as in the full training split.
   Validation and test are left whole, so scores stay comparable with full runs.
4. Normalise: ``(pixel / 255 - mean) / std``, with mean and std measured on the
   final training images unless given (MNIST's full training file gives
   0.1307 / 0.3081).

Images come out float32 (N, 1, 28, 28), labels int64 (N,).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnn_cli.data import streams
from cnn_cli.data.catalog import (
    DATASETS,
    DEFAULT_TEST_FRACTION,
    FILE_ROLES,
    FOLDER_DATASET,
    IDX_DATASET,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
)
from cnn_cli.data.folder import read_folder_dataset
from cnn_cli.data.idx import NUM_LABELS, read_image_label_pair
from cnn_cli.data.sources import ensure_dataset, note_to_stderr
from cnn_cli.environment import expand_user
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
        source: where the files came from (cache folder, the given paths or the image folder).
        class_names: the name of each class ``i`` (Fashion-MNIST's, a folder's sub-folders; MNIST's: the digit).
    """

    train: Split
    val: Split
    test: Split
    mean: float
    std: float
    classes: list[int]
    source: str
    class_names: list[str] = field(default_factory=list)

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


def class_remap_table(classes: list[int], num_labels: int = NUM_LABELS) -> np.ndarray:
    """int64 table of length ``num_labels``: original label -> new label, or -1 for dropped labels."""
    table = np.full(num_labels, -1, dtype=np.int64)
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


@dataclass(frozen=True)
class SourceData:
    """A dataset as read, before any split: its training file and test set as uint8 (N, 28, 28) pixels and integer labels.

    ``class_names[label]`` names each label; ``source`` says where the data came from; ``train_origin``
    names the training images in errors.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    source: str
    train_origin: str


def read_source(
    dataset: str,
    data_dir: str | Path | None = None,
    paths: dict[str, str] | None = None,
    path: str | Path | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
    progress: bool = True,
) -> SourceData:
    """Read a dataset's training file and test set: a catalog dataset (fetched and verified), ``idx`` files or an image folder."""
    if dataset == FOLDER_DATASET:
        if path is None:
            raise ValueError("dataset 'folder' needs the folder's path")
        folder = read_folder_dataset(path, test_fraction, seed, progress=progress, note=note_to_stderr)
        return SourceData(
            folder.train_pixels,
            folder.train_labels,
            folder.test_pixels,
            folder.test_labels,
            folder.class_names,
            folder.description,
            str(expand_user(path)),
        )
    if dataset == IDX_DATASET:
        if sorted(paths or {}) != sorted(FILE_ROLES):
            raise ValueError(f"dataset 'idx' needs paths for exactly {', '.join(FILE_ROLES)}")
        files = {role: Path(paths[role]) for role in FILE_ROLES}  # type: ignore[index]
        source = "idx files " + ", ".join(f"{role}={file}" for role, file in files.items())
        names = [str(label) for label in range(NUM_LABELS)]
    else:
        files = ensure_dataset(dataset, data_dir, progress=progress)
        source = f"{dataset} in {files[TRAIN_IMAGES].parent} (SHA-256 verified)"
        names = list(DATASETS[dataset].class_names or [str(label) for label in range(NUM_LABELS)])
    train_images, train_labels = read_image_label_pair(files[TRAIN_IMAGES], files[TRAIN_LABELS])
    test_images, test_labels = read_image_label_pair(files[TEST_IMAGES], files[TEST_LABELS])
    return SourceData(train_images, train_labels, test_images, test_labels, names, source, str(files[TRAIN_IMAGES]))


def _choose_training_images(
    data: SourceData, kept_classes: list[int], val_size: int, seed: int, limit: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1 to 3 of the module docstring: (training positions, their new labels, validation positions) in the
    training file, and the table from original to new labels."""
    num_labels = len(data.class_names)
    unknown = [label for label in kept_classes if not 0 <= label < num_labels]
    if unknown:
        raise DataError(f"classes: {unknown} are not labels of {data.source}, which has {num_labels} classes (0..{num_labels - 1})")
    remap = class_remap_table(kept_classes, num_labels)
    train_index, val_index = _kept_and_split(data, remap, kept_classes, val_size, seed)
    train_labels = remap[data.train_labels[train_index]]
    if limit is not None:
        if limit > len(train_index):
            raise DataError(f"limit: {limit} is more than the {len(train_index)} training images available")
        subset = stratified_subset(train_labels, limit, seed)
        train_index, train_labels = train_index[subset], train_labels[subset]
    return train_index, train_labels, val_index, remap


def _kept_and_split(
    data: SourceData, remap: np.ndarray, kept_classes: list[int], val_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the training file of the (train, val) images: the requested classes first, then ``val_size`` of them held out.

    Filtering before splitting is what makes the validation split ``val_size`` images of the
    requested classes (split first, ``classes: [3, 8]`` left about a fifth of them).
    """
    kept = np.flatnonzero(remap[data.train_labels] >= 0)
    _no_class_missing(data, data.train_labels[kept], kept_classes)
    if val_size >= len(kept):
        of = "" if len(kept_classes) == len(data.class_names) else f" of classes {kept_classes}"
        raise DataError(f"val_size: {val_size} leaves no training images; {data.train_origin} has {len(kept)}{of}")
    train_positions, val_positions = split_indices(len(kept), val_size, seed)
    _no_class_missing(data, data.train_labels[kept[train_positions]], kept_classes)  # all of a class held out
    return kept[train_positions], kept[val_positions]


def _no_class_missing(data: SourceData, labels: np.ndarray, kept_classes: list[int]) -> None:
    absent = [data.class_names[label] for label in kept_classes if not np.any(labels == label)]
    if absent:
        raise DataError(f"classes: no training images of class(es) {absent} in {data.train_origin}")


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
    path: str | Path | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> DataSplits:
    """Fetch (if needed), validate, filter, split and normalise a dataset.

    The options are checked once, by the config schema (:class:`cnn_cli.config.sections.DataConfig`);
    called from Python with values it would refuse, this may raise a plain ValueError.

    Args:
        dataset: ``"mnist"``, ``"fashion-mnist"`` (fetched and SHA-256 checked),
            ``"idx"`` (your own four files, validated but not hash-checked)
            or ``"folder"`` (a folder of images, one sub-folder per class: :mod:`cnn_cli.data.folder`).
        data_dir: cache root for downloaded datasets (files under ``data_dir/<dataset>/``);
            None: ``./data`` in a project folder, else the per-user cache (see ``resolve_data_dir``).
        paths: for ``"idx"`` only: train_images, train_labels, test_images,
            test_labels paths (raw or .gz).
        val_size: images of the requested classes held out of the training file for
            validation (the validation split has exactly this many); 0 gives an empty one.
        seed: seeds the split and the limit subset; same seed, same result.
        classes: labels to keep, renumbered 0..k-1 in the given order (None: all of them).
        limit: keep a stratified subset of this many training images (val/test untouched).
        mean, std: normalisation; None measures it on the final training images.
        progress: show download (or folder reading) progress on stderr.
        train_as_pixels: keep the training images as uint8 (N, 1, 28, 28) pixels (a quarter of the
            memory); pass ``normalize=splits.table`` to :func:`iterate_batches` to get the same floats.
        path: for ``"folder"`` only: the folder.
        test_fraction: for ``"folder"`` without ``test/`` only: each class's share held out for testing.

    Returns:
        DataSplits with float32 (N, 1, 28, 28) images and int64 (N,) labels per split.

    Raises:
        DataError: an unreadable or invalid file, a failed download, or options the files cannot satisfy.
    """
    data = read_source(dataset, data_dir, paths, path, test_fraction, seed, progress)
    kept_classes = list(range(len(data.class_names))) if classes is None else list(classes)
    train_index, train_labels, val_index, remap = _choose_training_images(data, kept_classes, val_size, seed, limit)
    test_index = np.flatnonzero(remap[data.test_labels] >= 0)

    train_pixels = data.train_images[train_index]
    mean, std = _normalisation(train_pixels, mean, std, data.train_origin)

    def build(images: np.ndarray, labels: np.ndarray) -> Split:
        return Split(images=normalise(images, mean, std), labels=np.ascontiguousarray(labels, dtype=np.int64))

    if train_as_pixels:  # a quarter of the memory; iterate_batches(normalize=splits.table) gives identical floats
        train = Split(images=train_pixels[:, None], labels=np.ascontiguousarray(train_labels, dtype=np.int64))
    else:
        train = build(train_pixels, train_labels)
    return DataSplits(
        train=train,
        val=build(data.train_images[val_index], remap[data.train_labels[val_index]]),
        test=build(data.test_images[test_index], remap[data.test_labels[test_index]]),
        mean=mean,
        std=std,
        classes=kept_classes,
        source=data.source,
        class_names=[data.class_names[label] for label in kept_classes],
    )


def _normalisation(train_pixels: np.ndarray, mean: float | None, std: float | None, train_images: Path | str) -> tuple[float, float]:
    """Step 4's mean and std: each one given, or measured on the final training images."""
    if mean is None or std is None:
        measured_mean, measured_std = pixel_mean_std(train_pixels)
        if measured_std == 0 and std is None:
            raise DataError(f"{train_images}: every training pixel has the same value; cannot normalise")
        mean = measured_mean if mean is None else mean
        std = measured_std if std is None else std
    return mean, std
