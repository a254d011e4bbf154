"""IDX reading: valid files parse; every kind of broken file is a DataError naming the file."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.data.idx import (
    IMAGE_MAGIC,
    LABEL_MAGIC,
    MAX_DATA_BYTES,
    read_count,
    read_image_label_pair,
    read_images,
    read_labels,
)
from cnn_cli.errors import CnnError, DataError
from tests.support import REPO_ROOT


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)


@pytest.fixture
def labels() -> np.ndarray:
    return np.array([0, 9, 3, 3, 1, 7], dtype=np.uint8)


def test_valid_raw_and_gz_files_parse(tmp_path: Path, idx_encode, images, labels) -> None:
    raw_images = tmp_path / "images-idx3-ubyte"
    raw_images.write_bytes(idx_encode(images, IMAGE_MAGIC))
    gz_labels = tmp_path / "labels-idx1-ubyte.gz"
    gz_labels.write_bytes(gzip.compress(idx_encode(labels, LABEL_MAGIC)))

    read_back_images, read_back_labels = read_image_label_pair(raw_images, gz_labels)

    assert read_back_images.dtype == np.uint8 and read_back_images.shape == (6, 28, 28)
    np.testing.assert_array_equal(read_back_images, images)
    np.testing.assert_array_equal(read_back_labels, labels)
    assert read_count(raw_images) == 6


def test_gzip_data_is_recognised_whatever_the_name(tmp_path: Path, idx_encode, labels) -> None:
    path = tmp_path / "labels-without-suffix"
    path.write_bytes(gzip.compress(idx_encode(labels, LABEL_MAGIC)))
    np.testing.assert_array_equal(read_labels(path), labels)


def _broken_image_files(idx_encode, images: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, text the error must contain)."""
    good = idx_encode(images, IMAGE_MAGIC)
    return {
        "bad magic": (b"\x00\x00\x08\x04" + good[4:], "bad magic number 0x00000804, expected 0x00000803"),
        "label magic": (idx_encode(np.zeros(5, np.uint8), LABEL_MAGIC), "this is an IDX label file"),
        "wrong dims": (idx_encode(np.zeros((2, 32, 32), np.uint8), IMAGE_MAGIC), "images are 32x32, expected 28x28"),
        "truncated data": (good[:-100], "truncated: the header promises 6x28x28 = 4704 data bytes, found 4604"),
        "truncated header": (good[:10], "truncated: the header needs 16 bytes, the file has 10"),
        "tiny": (b"\x00\x00", "too short for an IDX header"),
        "trailing bytes": (good + b"\x00" * 3, "3 trailing bytes after the 6x28x28 data"),
        "no images": (idx_encode(np.zeros((0, 28, 28), np.uint8), IMAGE_MAGIC), "contains no images"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "bad magic",
        "label magic",
        "wrong dims",
        "truncated data",
        "truncated header",
        "tiny",
        "trailing bytes",
        "no images",
    ],
)
def test_broken_image_files_are_named_errors(tmp_path: Path, idx_encode, images, case: str) -> None:
    data, expected = _broken_image_files(idx_encode, images)[case]
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError) as caught:
        read_images(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_broken_image_file_inside_gzip_is_caught_too(tmp_path: Path, idx_encode, images) -> None:
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_encode(images, IMAGE_MAGIC)[:-1]))
    with pytest.raises(DataError, match="truncated"):
        read_images(path)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.array([0, 10, 3], np.uint8), "label 10 at index 1 is out of range 0..9 (1 such labels)"),
        (np.array([255, 1, 200], np.uint8), "label 255 at index 0 is out of range 0..9 (2 such labels)"),
    ],
)
def test_labels_out_of_range(tmp_path: Path, idx_encode, data: np.ndarray, expected: str) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_encode(data, LABEL_MAGIC))
    with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_labels(path)


def test_label_file_with_image_magic(tmp_path: Path, idx_encode, images) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_encode(images, IMAGE_MAGIC))
    with pytest.raises(DataError, match="expected 0x00000801 for an IDX label file .this is an IDX image file"):
        read_labels(path)


def test_count_mismatch_names_both_files(tmp_path: Path, idx_encode, images, labels) -> None:
    images_path = tmp_path / "images"
    labels_path = tmp_path / "labels"
    images_path.write_bytes(idx_encode(images, IMAGE_MAGIC))
    labels_path.write_bytes(idx_encode(labels[:5], LABEL_MAGIC))
    with pytest.raises(DataError) as caught:
        read_image_label_pair(images_path, labels_path)
    assert str(caught.value) == f"{images_path}: 6 images but {labels_path} has 5 labels; they must match"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"plain text, not gzip", "not gzip data"),
        (gzip.compress(b"x" * 1000)[:20], "corrupt gzip data"),
        (b"\x1f\x8b" + b"\x00" * 30, "corrupt gzip data"),
    ],
)
def test_bad_gzip_is_a_clean_error(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as caught:
        read_images(path)
    assert isinstance(caught.value, CnnError) and caught.value.exit_code == 2
    # No gzip/zlib traceback chained onto the message.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_images(tmp_path / "nowhere")


def test_validation_holds_under_python_dash_o(tmp_path: Path, idx_encode, labels) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_encode(np.array([1, 42], np.uint8), LABEL_MAGIC))
    script = (
        "import sys\n"
        "from cnn_cli.data.idx import read_labels\n"
        "from cnn_cli.errors import DataError\n"
        "assert False, 'asserts must be stripped'\n"
        "try:\n"
        f"    read_labels({str(path)!r})\n"
        "except DataError as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    assert "label 42 at index 1 is out of range" in result.stdout


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_non_regular_files_are_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = {"fifo": tmp_path / "fifo-idx3-ubyte", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # a plain open() would wait here for a writer, forever
    with pytest.raises(DataError, match="not a regular file"):
        read_images(path)


def test_a_header_declaring_gigabytes_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", IMAGE_MAGIC, 2_000_000, 28, 28) + bytes(100))
    with pytest.raises(DataError, match=f"declares 2000000x28x28 = 1568000000 data bytes, more than the {MAX_DATA_BYTES} allowed"):
        read_images(path)


def test_gzip_data_past_the_declared_end_is_refused_after_a_bounded_look(tmp_path: Path, idx_encode, labels) -> None:
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_encode(labels, LABEL_MAGIC) + bytes(5)))
    with pytest.raises(DataError, match=r"5 trailing bytes after the 6 data$"):
        read_labels(path)
    path.write_bytes(gzip.compress(idx_encode(labels, LABEL_MAGIC) + bytes(3 << 20)))
    with pytest.raises(DataError, match=r"at least 1048576 trailing bytes after the 6 data$"):
        read_labels(path)
