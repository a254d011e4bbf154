"""How workers find the dataset without a shared filesystem.

A trial's config is sent to the worker unchanged, so its checkpoint records the
same ``data`` section as a local ``cnn train`` would, and ``cnn eval`` on the
client finds the data again. Relative paths in it (the default ``data_dir:
data``, relative ``data.paths``) are read against the *worker's* working folder.

There are two ways the files get there:

- **The worker's own cache** (the default on the embedded LocalCluster, whose
  workers share the client's folder): ``mnist`` and ``fashion-mnist`` are looked
  up in ``<data_dir>/<dataset>/`` and fetched there if missing, exactly as
  ``cnn train`` does on that machine.
- **Shipped by the client** (the default with ``--scheduler``; ``--ship-data``
  / ``--no-ship-data`` choose): the client reads the files every trial needs
  (its verified cache for named datasets, ``data.paths`` for ``idx``, every file
  under ``data.path`` for ``folder``), sends their
  bytes to every worker once, and each worker writes the missing ones at the
  same path under its own folder. A named dataset lands in the worker's cache,
  where the normal lookup checks its SHA-256 as usual. An existing file with
  different content is never overwritten: the trial fails and says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cnn_cli.config.sections import Config
from cnn_cli.data.cache import sha256_of_file
from cnn_cli.data.catalog import FILE_ROLES, FOLDER_DATASET, IDX_DATASET
from cnn_cli.data.folder import list_folder
from cnn_cli.errors import DataError
from cnn_cli.io import atomic_write_bytes

# Shipped files: the path the config names (relative to the worker's folder, or absolute) -> the file's bytes.
DataFiles = dict[str, bytes]


def files_to_ship(configs: list[Config], progress: bool = False) -> DataFiles:
    """Read, on the client, every data file the given trial configs read (each file once)."""
    from cnn_cli.data import ensure_dataset

    wanted: dict[str, Path] = {}
    for config in configs:
        d = config.data
        if d.dataset == IDX_DATASET:
            for role in FILE_ROLES:
                wanted[str((d.paths or {})[role])] = Path((d.paths or {})[role])
        elif d.dataset == FOLDER_DATASET:
            listing = list_folder(d.path or "")
            for path, _ in listing.train + (listing.test or []):
                wanted[str(path)] = path
        else:
            for path in ensure_dataset(d.dataset, d.data_dir, progress=progress).values():
                wanted[str(path)] = path
    files = {}
    for name, path in wanted.items():
        try:
            files[name] = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read data file to send to the workers: {exc.strerror or exc}") from None
    return files


def place_files(files: DataFiles) -> None:
    """On a worker: write each shipped file where the config expects it, unless an identical one is there."""
    for name, content in files.items():
        path = Path(name)
        if path.is_file():
            if path.stat().st_size == len(content) and sha256_of_file(path) == hashlib.sha256(content).hexdigest():
                continue
            raise DataError(f"{path}: this worker already has a different file there; not overwriting it")
        atomic_write_bytes(path, content)
