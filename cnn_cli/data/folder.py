"""A folder of images as a dataset: one sub-folder per class, named after it.

Two layouts::

    DIR/                          DIR/
      cat/  001.png 002.jpg ...     train/  cat/ ...  dog/ ...
      dog/  ...                     test/   cat/ ...  dog/ ...

The class names are the sub-folders' names, sorted; class ``i`` is the ``i``-th
of them. With ``train/`` and ``test/``, those are the training file and the
test set (test's classes must be among train's); without them, a seeded,
stratified ``test_fraction`` of each class's images is held out as the test set.
Validation is then taken from the training images exactly as for MNIST
(:func:`cnn_cli.data.prepare.split_indices`).

Every image is read and prepared exactly as ``cnn predict`` prepares one
(:mod:`cnn_cli.data.images`: upright, grayscale, light ink on black, cropped to
the ink, 20 px, centred by mass in 28×28), then stored as uint8 pixels as MNIST's
are. Any format Pillow reads will do; hidden files and folders (``.DS_Store``)
are passed over. A file that is not an image, is truncated or cannot be read is
reported and skipped: the run goes on, and the count is in the dataset's description.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm  # type: ignore[import-untyped]

from cnn_cli.data import streams
from cnn_cli.data.catalog import MAX_CLASS_NAME_CHARS
from cnn_cli.data.images import MNIST_SIZE, load_image
from cnn_cli.environment import expand_user
from cnn_cli.errors import CnnError, DataError

TRAIN_FOLDER = "train"
TEST_FOLDER = "test"
MAX_NAMED_BAD_FILES = 10  # bad files named one by one; the rest are counted


@dataclass(frozen=True)
class FolderListing:
    """The files of a folder dataset, before any is read.

    Attributes:
        root: the folder.
        class_names: the class sub-folders' names, sorted; class ``i`` is ``class_names[i]``.
        train, test: (file, class index) pairs, sorted; ``test`` is None without a ``test/`` folder.
        unlisted: one line per folder that could not be listed.
    """

    root: Path
    class_names: list[str]
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]] | None
    unlisted: list[str] = field(default_factory=list)

    @property
    def split_layout(self) -> bool:
        """True when the folder holds its own ``train/`` and ``test/``."""
        return self.test is not None


@dataclass(frozen=True)
class FolderImages:
    """Prepared images of one split: uint8 (N, 28, 28) pixels, int64 (N,) class indices, and one line per file skipped."""

    pixels: np.ndarray
    labels: np.ndarray
    bad: list[str]


def _visible(entries: list[str]) -> list[str]:
    return sorted(name for name in entries if not name.startswith("."))


def _class_folders(folder: Path) -> list[str]:
    """The sorted names of the visible sub-folders of ``folder``."""
    try:
        names = _visible(os.listdir(folder))
    except OSError as err:
        raise DataError(f"{folder}: cannot list the folder ({err.strerror or err})") from None
    return [name for name in names if (folder / name).is_dir()]


def _files_of_classes(folder: Path, class_names: list[str], unlisted: list[str]) -> list[tuple[Path, int]]:
    """Every visible file under ``folder/<class>/`` (recursively), with its class index, sorted."""

    def cannot_list(err: OSError) -> None:
        unlisted.append(f"{err.filename}: cannot list the folder ({err.strerror or err})")

    files: list[tuple[Path, int]] = []
    for index, name in enumerate(class_names):
        class_folder = folder / name
        if not class_folder.is_dir():
            continue
        for root, dirs, names in os.walk(class_folder, onerror=cannot_list):
            dirs[:] = _visible(dirs)
            files.extend((Path(root) / file_name, index) for file_name in _visible(names))
    return sorted(files)


def list_folder(root: str | Path) -> FolderListing:
    """List a folder dataset's classes and files, reading no image.

    Raises:
        DataError: not a folder, fewer than two classes, a bad class name, ``train/`` without ``test/``
            (or the reverse), or a test class that has no training folder.
    """
    root = expand_user(root)
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise DataError(f"{root}: {what}; a folder dataset is a folder with one sub-folder of images per class")
    top = _class_folders(root)
    has_train, has_test = TRAIN_FOLDER in top, TEST_FOLDER in top
    if has_train != has_test:
        there, missing = (TRAIN_FOLDER, TEST_FOLDER) if has_train else (TEST_FOLDER, TRAIN_FOLDER)
        raise DataError(f"{root}: has {there}/ but no {missing}/; give both (each with one sub-folder per class), or neither")
    train_folder = root / TRAIN_FOLDER if has_train else root
    class_names = _class_folders(train_folder)
    if len(class_names) < 2:
        raise DataError(
            f"{train_folder}: found {len(class_names)} class folder(s) ({', '.join(class_names) or 'none'}); "
            "a folder dataset needs one sub-folder of images per class, at least two"
        )
    too_long = [name for name in class_names if len(name) > MAX_CLASS_NAME_CHARS]
    if too_long:
        raise DataError(f"{train_folder / too_long[0]}: a class folder's name is the class name, at most {MAX_CLASS_NAME_CHARS} characters")
    unlisted: list[str] = []
    train = _files_of_classes(train_folder, class_names, unlisted)
    test = None
    if has_test:
        strangers = sorted(set(_class_folders(root / TEST_FOLDER)) - set(class_names))
        if strangers:
            raise DataError(f"{root / TEST_FOLDER}: class folder(s) {', '.join(strangers)} have no training folder in {train_folder}/")
        test = _files_of_classes(root / TEST_FOLDER, class_names, unlisted)
    return FolderListing(root, class_names, train, test, unlisted)


def read_images(files: list[tuple[Path, int]], progress: bool = False, what: str = "images") -> FolderImages:
    """Read and prepare each file as ``cnn predict`` does; a file that fails is skipped with one line saying why."""
    pixels = np.zeros((len(files), MNIST_SIZE, MNIST_SIZE), dtype=np.uint8)
    labels = np.zeros(len(files), dtype=np.int64)
    bad: list[str] = []
    kept = 0
    for path, label in tqdm(files, desc=f"reading {what}", unit="img", disable=not progress, file=sys.stderr, leave=False):
        try:
            prepared = load_image(path)
        except CnnError as err:  # not an image, truncated, unreadable, a decompression bomb
            bad.append(str(err))
            continue
        pixels[kept] = np.rint(prepared.pixels * 255.0).astype(np.uint8)
        labels[kept] = label
        kept += 1
    return FolderImages(pixels[:kept], labels[:kept], bad)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held out) positions: a seeded ``fraction`` of each class held out, rounded, leaving each class at least one.

    A class of one image stays whole.
    """
    rng = streams.rng_for(streams.TEST_SPLIT, seed)
    held: list[np.ndarray] = []
    for label in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == label)
        count = min(int(round(fraction * len(members))), max(len(members) - 1, 0))
        held.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


@dataclass(frozen=True)
class FolderDataset:
    """A folder dataset read and split into its training file and test set (uint8 (N, 28, 28) pixels, int64 labels)."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    test_pixels: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    description: str
    bad: list[str]


def report_bad_files(bad: list[str], note: Callable[[str], None], root: Path, total: int) -> None:
    """Name the first few skipped files and count them all."""
    for line in bad[:MAX_NAMED_BAD_FILES]:
        note(f"skipped: {line}")
    if len(bad) > MAX_NAMED_BAD_FILES:
        note(f"skipped: ... and {len(bad) - MAX_NAMED_BAD_FILES} more")
    note(f"{root}: {len(bad)} of {total} files skipped (not an image, truncated or unreadable); going on with the rest")


def read_folder_dataset(
    root: str | Path, test_fraction: float, seed: int, progress: bool = False, note: Callable[[str], None] | None = None
) -> FolderDataset:
    """Read a folder dataset (see the module docstring) into its training file and test set.

    Args:
        root: the folder.
        test_fraction: without ``test/``: the share of each class's images held out for testing (seeded by ``seed``).
        progress: a progress bar on stderr while reading.
        note: receives the lines about skipped files (None: silent).

    Raises:
        DataError: the folder's layout is wrong (:func:`list_folder`), or no image could be read.
    """
    listing = list_folder(root)
    train = read_images(listing.train, progress, "training images" if listing.split_layout else "images")
    test = read_images(listing.test, progress, "test images") if listing.test is not None else None
    bad = listing.unlisted + train.bad + (test.bad if test is not None else [])
    total = len(listing.train) + len(listing.test or [])
    if bad and note is not None:
        report_bad_files(bad, note, listing.root, total)
    if len(train.labels) == 0:
        raise DataError(f"{listing.root}: no image could be read among {len(listing.train)} training files")
    if test is None:
        kept, held_out = stratified_holdout(train.labels, test_fraction, seed)
        test = FolderImages(train.pixels[held_out], train.labels[held_out], [])
        train = FolderImages(train.pixels[kept], train.labels[kept], train.bad)
        layout = f"test: {test_fraction:g} of each class, seed {seed}"
    else:
        layout = f"{TRAIN_FOLDER}/ and {TEST_FOLDER}/"
    skipped = f", {len(bad)} bad file(s) skipped" if bad else ""
    return FolderDataset(
        train_pixels=train.pixels,
        train_labels=train.labels,
        test_pixels=test.pixels,
        test_labels=test.labels,
        class_names=listing.class_names,
        description=f"folder {listing.root} ({len(listing.class_names)} classes, {layout}{skipped})",
        bad=bad,
    )
