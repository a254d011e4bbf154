"""Read IDX image and label files, checking every byte before parsing.

The IDX layout (one big-endian header, then the data)::

    images: magic 0x00000803, N, 28, 28, then N*28*28 unsigned bytes
    labels: magic 0x00000801, N,         then N unsigned bytes (0..9)

The magic number's third byte is the element type (0x08 = unsigned byte) and its
fourth the number of dimensions. Everything is validated here with explicit
checks (they hold under ``python -O``), so idx2numpy only ever sees a
well-formed file, and every problem becomes a :class:`DataError` that names
the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import idx2numpy
import numpy as np

from cnn_cli.errors import DataError

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
IMAGE_SIDE = 28
NUM_LABELS = 10  # labels are digits (or Fashion-MNIST classes) 0..9

GZIP_MAGIC = b"\x1f\x8b"
_DIM_BYTES = 4  # each dimension is a big-endian uint32


def read_idx_bytes(path: str | Path) -> bytes:
    """Return the decompressed contents of an IDX file (raw, or gzip if it ends in .gz).

    A file that starts with the gzip magic is decompressed whatever its name.
    Raises DataError if the file cannot be read or is not valid gzip data.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.suffix != ".gz" and not data.startswith(GZIP_MAGIC):
        return data
    if not data.startswith(GZIP_MAGIC):
        raise DataError(f"{path}: not gzip data (the file is named .gz but starts with {data[:8]!r})")
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err})") from None


def _read_header(raw: bytes, path: Path, magic: int, kind: str) -> tuple[int, ...]:
    """Check the magic number and return the dimensions of an IDX file's data."""
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, too short for an IDX header")
    (found_magic,) = struct.unpack(">I", raw[:4])
    if found_magic != magic:
        hint = ""
        if found_magic in (IMAGE_MAGIC, LABEL_MAGIC):
            hint = " (this is an IDX {} file)".format("image" if found_magic == IMAGE_MAGIC else "label")
        raise DataError(f"{path}: bad magic number 0x{found_magic:08X}, expected 0x{magic:08X} for an IDX {kind} file{hint}")
    ndim = magic & 0xFF
    header_bytes = 4 + _DIM_BYTES * ndim
    if len(raw) < header_bytes:
        raise DataError(f"{path}: truncated: the header needs {header_bytes} bytes, the file has {len(raw)}")
    return struct.unpack(f">{ndim}I", raw[4:header_bytes])


def _check_data_length(raw: bytes, path: Path, dims: tuple[int, ...]) -> None:
    """Check that exactly prod(dims) data bytes follow the header."""
    header_bytes = 4 + _DIM_BYTES * len(dims)
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(raw) - header_bytes
    shape = "x".join(str(d) for d in dims)
    if found < expected:
        raise DataError(f"{path}: truncated: the header promises {shape} = {expected} data bytes, found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} trailing bytes after the {shape} data")


def parse_images(raw: bytes, path: str | Path) -> np.ndarray:
    """Validate and parse the bytes of an IDX image file.

    Args:
        raw: the decompressed file contents.
        path: the file the bytes came from, for error messages.

    Returns:
        uint8 array of shape (N, 28, 28), read-only.
    """
    path = Path(path)
    dims = _read_header(raw, path, IMAGE_MAGIC, "image")
    count, height, width = dims
    if (height, width) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path}: images are {height}x{width}, expected {IMAGE_SIDE}x{IMAGE_SIDE} (dimensions N x 28 x 28)")
    if count == 0:
        raise DataError(f"{path}: contains no images")
    _check_data_length(raw, path, dims)
    return idx2numpy.convert_from_string(raw)


def parse_labels(raw: bytes, path: str | Path) -> np.ndarray:
    """Validate and parse the bytes of an IDX label file.

    Args:
        raw: the decompressed file contents.
        path: the file the bytes came from, for error messages.

    Returns:
        uint8 array of shape (N,) with values in 0..9, read-only.
    """
    path = Path(path)
    dims = _read_header(raw, path, LABEL_MAGIC, "label")
    if dims[0] == 0:
        raise DataError(f"{path}: contains no labels")
    _check_data_length(raw, path, dims)
    labels = idx2numpy.convert_from_string(raw)
    out_of_range = np.flatnonzero(labels >= NUM_LABELS)
    if out_of_range.size:
        first = int(out_of_range[0])
        raise DataError(
            f"{path}: label {int(labels[first])} at index {first} is out of range 0..{NUM_LABELS - 1} ({out_of_range.size} such labels)"
        )
    return labels


def read_images(path: str | Path) -> np.ndarray:
    """Read an IDX image file (raw or .gz): uint8 array (N, 28, 28)."""
    return parse_images(read_idx_bytes(path), path)


def read_labels(path: str | Path) -> np.ndarray:
    """Read an IDX label file (raw or .gz): uint8 array (N,) of values 0..9."""
    return parse_labels(read_idx_bytes(path), path)


def read_image_label_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files and check they hold the same number of examples.

    Returns:
        images uint8 (N, 28, 28) and labels uint8 (N,).
    """
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels; they must match")
    return images, labels


def read_count(path: str | Path) -> int:
    """The number of items (N) an uncompressed IDX file's header declares, without reading its data."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            head = stream.read(8)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(head) < 8:
        raise DataError(f"{path}: truncated: {len(head)} bytes, too short for an IDX header")
    return struct.unpack(">I", head[4:8])[0]
