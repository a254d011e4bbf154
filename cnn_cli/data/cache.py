"""The verified-file cache: ``<data_dir>/<dataset>/<raw IDX files>`` plus a manifest.

A file enters the cache only through :meth:`DatasetCache.install`, which
decompresses it into a temp file in the same folder, checks its size and SHA-256
against the catalog, and renames it into place (:func:`cnn_cli.io.atomic_write`),
so a reader never sees half a file.

Checking a cached file is cheap: its size is compared first, then its SHA-256 is
computed once and remembered in ``MANIFEST_NAME`` keyed by (size, mtime). A file
changed after it was verified has a new mtime, is hashed again, fails, and is
fetched again.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import zlib
from pathlib import Path
from typing import BinaryIO

from cnn_cli.bounded_read import read_json
from cnn_cli.data.catalog import DatasetSpec, IdxFile
from cnn_cli.errors import CnnError, DataError, RuntimeFault
from cnn_cli.io import atomic_write, sweep_stale_temps

MANIFEST_NAME = ".verified.json"
CHUNK_BYTES = 1 << 20

# Outcomes of checking one cached file.
VERIFIED = "verified"
MISSING = "missing"
SIZE_MISMATCH = "size mismatch"
CHECKSUM_MISMATCH = "checksum mismatch"


def sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class DatasetCache:
    """The cache folder of one dataset and its manifest of verified files."""

    def __init__(self, data_dir: str | Path, spec: DatasetSpec, *, create: bool = True) -> None:
        """Open (and by default create) ``<data_dir>/<spec.name>/``."""
        self.spec = spec
        self.folder = Path(data_dir) / spec.name
        self._manifest_path = self.folder / MANIFEST_NAME
        if create:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise DataError(f"{self.folder}: cannot create the cache folder ({err.strerror or err})") from None
        sweep_stale_temps(self.folder)  # what a killed download left
        try:
            entries = read_json(self._manifest_path) if self._manifest_path.exists() else {}
        except CnnError:  # an unreadable manifest (or a FIFO, a device) only means files get hashed again
            entries = {}
        self._entries: dict[str, dict] = entries if isinstance(entries, dict) else {}

    def path(self, idx_file: IdxFile) -> Path:
        """Where the verified raw file lives."""
        return self.folder / idx_file.name

    def _fingerprint(self, idx_file: IdxFile) -> dict:
        stat = self.path(idx_file).stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": idx_file.sha256}

    def _save_manifest(self) -> None:
        # The manifest only saves re-hashing: a read-only cache (shared, or on a read-only disk) still works.
        with contextlib.suppress(RuntimeFault):
            atomic_write(self._manifest_path, lambda out: out.write(json.dumps(self._entries, indent=1, sort_keys=True).encode()))

    def check(self, idx_file: IdxFile) -> str:
        """Check a cached file: VERIFIED, MISSING, SIZE_MISMATCH or CHECKSUM_MISMATCH.

        Reads nothing when the manifest already vouches for this exact
        (size, mtime); otherwise hashes the file once and records the result.
        """
        path = self.path(idx_file)
        try:
            fingerprint = self._fingerprint(idx_file)
        except FileNotFoundError:
            return MISSING
        if fingerprint["size"] != idx_file.size:
            return SIZE_MISMATCH
        if self._entries.get(idx_file.name) == fingerprint:
            return VERIFIED
        try:
            digest = sha256_of_file(path)
        except OSError as err:
            raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
        if digest != idx_file.sha256:
            return CHECKSUM_MISMATCH
        self._entries[idx_file.name] = fingerprint
        self._save_manifest()
        return VERIFIED

    def is_verified(self, idx_file: IdxFile) -> bool:
        """True if the cached copy of ``idx_file`` is present and verified."""
        return self.check(idx_file) == VERIFIED

    def discard(self, idx_file: IdxFile) -> None:
        """Remove a cached file that failed its check, and forget it."""
        try:
            self.path(idx_file).unlink(missing_ok=True)
        except OSError as err:
            raise DataError(f"{self.path(idx_file)}: cannot remove it ({err.strerror or err})") from None
        if self._entries.pop(idx_file.name, None) is not None:
            self._save_manifest()

    def install(self, stream: BinaryIO, idx_file: IdxFile, *, compressed: bool, origin: str) -> Path:
        """Verify the bytes of ``stream`` (gzip data if ``compressed``) and, if they match the catalog, move them into the cache.

        ``origin`` (a URL or path) names the bytes in errors.

        Raises:
            DataError: bad gzip data, wrong size or wrong checksum; nothing is left in the cache.
        """

        def copy_verified(out: BinaryIO) -> None:
            reader: gzip.GzipFile | BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream
            digest, size = hashlib.sha256(), 0
            while True:
                try:
                    chunk = reader.read(CHUNK_BYTES)
                except (gzip.BadGzipFile, EOFError, zlib.error) as err:
                    raise DataError(f"{origin}: corrupt or truncated gzip data ({err})") from None
                if not chunk:
                    break
                size += len(chunk)
                if size > idx_file.size:  # stop at once: a hostile download cannot fill the disk
                    raise DataError(f"{origin}: more than the expected {idx_file.size} bytes after decompression")
                digest.update(chunk)
                out.write(chunk)
            if size != idx_file.size:
                raise DataError(f"{origin}: {size} bytes after decompression, expected {idx_file.size}")
            if digest.hexdigest() != idx_file.sha256:
                raise DataError(f"{origin}: SHA-256 {digest.hexdigest()[:16]}... is not the expected {idx_file.sha256[:16]}...")

        atomic_write(self.path(idx_file), copy_verified)
        self._entries[idx_file.name] = self._fingerprint(idx_file)
        self._save_manifest()
        return self.path(idx_file)

    def install_file(self, path: Path, idx_file: IdxFile, *, origin: str | None = None) -> Path:
        """Verify a file on disk (raw, or gzip if named .gz) and copy it into the cache; ``origin`` names it in errors."""
        try:
            with path.open("rb") as stream:
                return self.install(stream, idx_file, compressed=path.suffix == ".gz", origin=origin or str(path))
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except PermissionError:
            raise DataError(f"{path}: permission denied") from None
