"""Read IDX image and label files, checking every byte before parsing.

The IDX layout (one big-endian header, then the data)::

    images: magic 0x00000803, N, 28, 28, then N*28*28 unsigned bytes
    labels: magic 0x00000801, N,         then N unsigned bytes (0..9)

The magic number's third byte is the element type (0x08 = unsigned byte) and its
fourth the number of dimensions. Only regular files are opened (a FIFO would
block forever, ``/dev/zero`` never ends), and no more than the header's declared
size is read, so a gzip that inflates to gigabytes costs its declared size and
no more. Every problem is a :class:`DataError` naming the file; the checks are
explicit, so they hold under ``python -O``.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnn_cli.bounded_read import open_regular
from cnn_cli.errors import DataError

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
IMAGE_SIDE = 28
NUM_LABELS = 10  # labels are digits (or Fashion-MNIST classes) 0..9
GZIP_MAGIC = b"\x1f\x8b"
MAX_DATA_BYTES = 1 << 30  # a header declaring more (MNIST's training images are 47 MB) is refused unread
_TRAILING_PROBE_BYTES = 1 << 20  # how far past the declared end we look to count trailing bytes


def open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` through the bounded reader: a FIFO, device or folder is refused without blocking."""
    return open_regular(path, MAX_DATA_BYTES + MAX_DATA_BYTES // 2, "file", DataError)


def _read(stream: gzip.GzipFile | BinaryIO, size: int, path: Path, compressed: bool) -> bytes:
    """Read up to ``size`` bytes, turning read and gzip failures into DataError."""
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as err:
        if compressed:
            raise DataError(f"{path}: corrupt gzip data ({err})") from None
        raise DataError(f"{path}: cannot read ({err.strerror if isinstance(err, OSError) else err})") from None


def read_idx(path: str | Path, magic: int, kind: str) -> tuple[tuple[int, ...], bytes]:
    """Check an IDX file's header and length and return (dimensions, data bytes).

    Raw or gzip (by its ``.gz`` name or its first two bytes). Reads the header,
    then exactly the declared number of data bytes, then probes for trailing bytes.
    """
    path = Path(path)
    with open_regular_file(path) as raw:
        file_size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if path.suffix == ".gz" and not compressed:
            raise DataError(f"{path}: not gzip data (the file is named .gz but starts with {raw.read(8)!r})")
        stream: gzip.GzipFile | BinaryIO = gzip.GzipFile(fileobj=raw) if compressed else raw

        def fail(message: str) -> DataError:
            if compressed:  # a corrupt gzip explains a bad header better: look a little further first
                _read(stream, _TRAILING_PROBE_BYTES, path, compressed)
            return DataError(f"{path}: {message}")

        head = _read(stream, 4, path, compressed)
        if len(head) < 4:
            raise fail(f"truncated: {len(head)} bytes, too short for an IDX header")
        (found_magic,) = struct.unpack(">I", head)
        if found_magic != magic:
            hint = ""
            if found_magic in (IMAGE_MAGIC, LABEL_MAGIC):
                hint = " (this is an IDX {} file)".format("image" if found_magic == IMAGE_MAGIC else "label")
            raise fail(f"bad magic number 0x{found_magic:08X}, expected 0x{magic:08X} for an IDX {kind} file{hint}")
        ndim = magic & 0xFF
        dim_bytes = _read(stream, 4 * ndim, path, compressed)
        if len(dim_bytes) < 4 * ndim:
            raise fail(f"truncated: the header needs {4 + 4 * ndim} bytes, the file has {4 + len(dim_bytes)}")
        dims = struct.unpack(f">{ndim}I", dim_bytes)
        shape = "x".join(map(str, dims))
        expected = int(np.prod(dims, dtype=np.int64))
        if expected > MAX_DATA_BYTES:
            raise fail(f"the header declares {shape} = {expected} data bytes, more than the {MAX_DATA_BYTES} allowed")
        data = _read(stream, expected, path, compressed)
        if len(data) < expected:
            raise DataError(f"{path}: truncated: the header promises {shape} = {expected} data bytes, found {len(data)}")
        if compressed:
            trailing = len(_read(stream, _TRAILING_PROBE_BYTES, path, compressed))
        else:
            trailing = file_size - 4 - 4 * ndim - expected
        if trailing:
            more = "at least " if compressed and trailing == _TRAILING_PROBE_BYTES else ""
            raise DataError(f"{path}: {more}{trailing} trailing bytes after the {shape} data")
    return dims, data


def read_images(path: str | Path) -> np.ndarray:
    """Read an IDX image file (raw or .gz): uint8 array (N, 28, 28), read-only."""
    dims, data = read_idx(path, IMAGE_MAGIC, "image")
    count, height, width = dims
    if (height, width) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path}: images are {height}x{width}, expected {IMAGE_SIDE}x{IMAGE_SIDE} (dimensions N x 28 x 28)")
    if count == 0:
        raise DataError(f"{path}: contains no images")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def read_labels(path: str | Path) -> np.ndarray:
    """Read an IDX label file (raw or .gz): uint8 array (N,) of values 0..9, read-only."""
    dims, data = read_idx(path, LABEL_MAGIC, "label")
    if dims[0] == 0:
        raise DataError(f"{path}: contains no labels")
    labels = np.frombuffer(data, dtype=np.uint8)
    out_of_range = np.flatnonzero(labels >= NUM_LABELS)
    if out_of_range.size:
        first = int(out_of_range[0])
        raise DataError(
            f"{path}: label {int(labels[first])} at index {first} is out of range 0..{NUM_LABELS - 1} ({out_of_range.size} such labels)"
        )
    return labels


def read_image_label_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files: images uint8 (N, 28, 28) and labels uint8 (N,), same N."""
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels; they must match")
    return images, labels


def read_count(path: str | Path) -> int:
    """The number of items (N) an uncompressed IDX file's header declares, without reading its data."""
    with open_regular_file(Path(path)) as stream:
        head = stream.read(8)
    if len(head) < 8:
        raise DataError(f"{path}: truncated: {len(head)} bytes, too short for an IDX header")
    return struct.unpack(">I", head[4:8])[0]
