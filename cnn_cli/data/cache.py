"""The verified-file cache: ``<data_dir>/<dataset>/<raw IDX files>`` plus a manifest.

A file enters the cache only through :func:`DatasetCache.install`, which
decompresses it into a temp file in the same folder, checks its size and SHA-256
against the catalog, and then renames it into place (``os.replace`` is atomic,
so a reader never sees half a file).

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
import os
import secrets
import zlib
from pathlib import Path
from typing import BinaryIO

from cnn_cli.data.catalog import DatasetSpec, IdxFile
from cnn_cli.errors import DataError

MANIFEST_NAME = ".verified.json"
TEMP_SUFFIX = ".part"
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


def create_temp_file(folder: Path, prefix: str) -> tuple[int, Path]:
    """Create a new, uniquely named ``<prefix><random>.part`` file in ``folder``; return (fd, path).

    Unlike tempfile.mkstemp (mode 0600), the file gets the usual permissions
    allowed by the umask, so a cache shared between users stays readable.
    """
    while True:
        path = folder / f"{prefix}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue


def remove_quietly(path: Path) -> None:
    """Delete a file if it exists; a file that is already gone is fine."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


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
        self._entries = self._load_manifest()

    def path(self, idx_file: IdxFile) -> Path:
        """Where the verified raw file lives."""
        return self.folder / idx_file.name

    def _load_manifest(self) -> dict[str, dict]:
        """The manifest's entries; an unreadable manifest only means files get hashed again."""
        try:
            entries = json.loads(self._manifest_path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def _save_manifest(self) -> None:
        """Write the manifest atomically (temp file, then rename)."""
        try:
            handle, temp_path = create_temp_file(self.folder, MANIFEST_NAME + ".")
        except OSError as err:
            raise DataError(f"{self._manifest_path}: cannot write ({err.strerror or err})") from None
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump(self._entries, stream, indent=1, sort_keys=True)
            os.replace(temp_path, self._manifest_path)
        except OSError as err:
            remove_quietly(temp_path)
            raise DataError(f"{self._manifest_path}: cannot write ({err.strerror or err})") from None

    def _remember(self, idx_file: IdxFile, stat: os.stat_result) -> None:
        self._entries[idx_file.name] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": idx_file.sha256,
        }
        self._save_manifest()

    def check(self, idx_file: IdxFile) -> str:
        """Check a cached file: VERIFIED, MISSING, SIZE_MISMATCH or CHECKSUM_MISMATCH.

        Reads nothing when the manifest already vouches for this exact
        (size, mtime); otherwise hashes the file once and records the result.
        """
        path = self.path(idx_file)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return MISSING
        if stat.st_size != idx_file.size:
            return SIZE_MISMATCH
        entry = self._entries.get(idx_file.name)
        remembered = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": idx_file.sha256}
        if entry == remembered:
            return VERIFIED
        try:
            digest = sha256_of_file(path)
        except OSError as err:
            raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
        if digest != idx_file.sha256:
            return CHECKSUM_MISMATCH
        self._remember(idx_file, stat)
        return VERIFIED

    def is_verified(self, idx_file: IdxFile) -> bool:
        """True if the cached copy of ``idx_file`` is present and verified."""
        return self.check(idx_file) == VERIFIED

    def discard(self, idx_file: IdxFile) -> None:
        """Remove a cached file that failed its check, and forget it."""
        try:
            remove_quietly(self.path(idx_file))
        except OSError as err:
            raise DataError(f"{self.path(idx_file)}: cannot remove it ({err.strerror or err})") from None
        if self._entries.pop(idx_file.name, None) is not None:
            self._save_manifest()

    def install(self, stream: BinaryIO, idx_file: IdxFile, *, compressed: bool, origin: str) -> Path:
        """Verify the bytes of ``stream`` and, if they match the catalog, move them into the cache.

        Args:
            stream: the file's bytes, gzip-compressed if ``compressed``.
            idx_file: the catalog entry the bytes must match (size and SHA-256 after decompression).
            compressed: whether ``stream`` is gzip data.
            origin: where the bytes came from (URL or path), named in errors.

        Returns:
            The path of the verified file in the cache.

        Raises:
            DataError: bad gzip data, wrong size or wrong checksum. Nothing is
                left behind in the cache in that case.
        """
        try:
            handle, temp_path = create_temp_file(self.folder, f".{idx_file.name}.")
        except OSError as err:
            raise DataError(f"{self.folder}: cannot create a file ({err.strerror or err})") from None
        try:
            with os.fdopen(handle, "wb") as out:
                digest, size = _copy_limited(stream, out, idx_file, compressed=compressed, origin=origin)
            if size != idx_file.size:
                raise DataError(f"{origin}: {size} bytes after decompression, expected {idx_file.size}")
            if digest != idx_file.sha256:
                raise DataError(f"{origin}: SHA-256 {digest[:16]}... is not the expected {idx_file.sha256[:16]}...")
            final_path = self.path(idx_file)
            os.replace(temp_path, final_path)
        except OSError as err:
            remove_quietly(temp_path)
            raise DataError(f"{origin}: cannot copy into {self.folder} ({err.strerror or err})") from None
        except BaseException:
            remove_quietly(temp_path)
            raise
        self._remember(idx_file, final_path.stat())
        return final_path

    def install_file(self, path: Path, idx_file: IdxFile, *, origin: str | None = None) -> Path:
        """Verify a file on disk (raw, or gzip if named .gz) and copy it into the cache.

        ``origin`` names the file in errors (default: its path).
        """
        try:
            with path.open("rb") as stream:
                return self.install(stream, idx_file, compressed=path.suffix == ".gz", origin=origin or str(path))
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except PermissionError:
            raise DataError(f"{path}: permission denied") from None


def _copy_limited(stream: BinaryIO, out: BinaryIO, idx_file: IdxFile, *, compressed: bool, origin: str) -> tuple[str, int]:
    """Copy (decompressing if asked) at most ``idx_file.size`` bytes; return (sha256, size).

    Stops as soon as more bytes than expected arrive, so a corrupt or hostile
    download cannot fill the disk.
    """
    reader: BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb") if compressed else stream
    digest = hashlib.sha256()
    size = 0
    while True:
        try:
            chunk = reader.read(CHUNK_BYTES)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(f"{origin}: corrupt or truncated gzip data ({err})") from None
        if not chunk:
            return digest.hexdigest(), size
        size += len(chunk)
        if size > idx_file.size:
            raise DataError(f"{origin}: more than the expected {idx_file.size} bytes after decompression")
        digest.update(chunk)
        out.write(chunk)
