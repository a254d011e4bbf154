"""Tiny sweeps on synthetic data: a base config file, IDX files at relative paths, and a sweep file."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import yaml

from tests.support.synthetic import make_idx_dataset, tiny_config

DATA_FOLDER = Path("data") / "tiny"


def make_sweep_folder(folder: Path, parameters: dict[str, Any], **sweep: Any) -> Path:
    """Write data/tiny/*, tiny.yaml and sweep.yaml into ``folder``; return the sweep file.

    The data paths in tiny.yaml are relative, so they mean ``<cwd>/data/tiny`` on the
    client and on each worker alike (what data shipping relies on).
    """
    folder.mkdir(parents=True, exist_ok=True)
    absolute = make_idx_dataset(folder / DATA_FOLDER, n_train=400, n_test=100)
    paths = {role: os.path.relpath(path, folder) for role, path in absolute.items()}
    base = tiny_config(paths, epochs=1)
    base["schedule"] = {"name": "constant"}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
    spec = {"name": "t", "base": "tiny.yaml", "parameters": parameters, **sweep}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sweep_folder(runs_root: Path) -> Path:
    """The one sweep folder under ``runs_root``."""
    found = sorted(p for p in runs_root.iterdir() if p.is_dir() and p.name.startswith("sweep-"))
    assert len(found) == 1, found
    return found[0]
