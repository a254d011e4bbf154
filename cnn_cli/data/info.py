"""What ``cnn data info`` reports: where the files are, their checksum status, counts and class balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnn_cli.data.cache import VERIFIED, DatasetCache
from cnn_cli.data.catalog import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from cnn_cli.data.idx import NUM_LABELS, read_count, read_labels
from cnn_cli.data.sources import dataset_spec, resolve_data_dir


def dataset_info(dataset: str, data_dir: str | Path | None = None) -> dict:
    """Describe the cached copy of a dataset without fetching anything (``data_dir`` None: the default cache).

    Returns:
        A JSON-ready dict::

            dataset, folder, complete (all four files verified),
            files: [{role, name, path, status, size, expected_size, sha256, count}],
            counts: {"train": N or None, "test": N or None},
            class_balance: {"train": [count of label 0..9] or None, "test": ...}

        ``status`` is "verified", "missing", "size mismatch" or "checksum
        mismatch"; counts and balances are given for verified files only.
    """
    spec = dataset_spec(dataset)
    cache = DatasetCache(resolve_data_dir(data_dir), spec, create=False)
    statuses = {idx_file.role: cache.check(idx_file) for idx_file in spec.files}
    files = []
    for idx_file in spec.files:
        path, status = cache.path(idx_file), statuses[idx_file.role]
        files.append(
            {
                "role": idx_file.role,
                "name": idx_file.name,
                "path": str(path),
                "status": status,
                "size": path.stat().st_size if path.exists() else None,
                "expected_size": idx_file.size,
                "sha256": idx_file.sha256,
                "count": read_count(path) if status == VERIFIED else None,
            }
        )
    counts: dict[str, int | None] = {"train": None, "test": None}
    class_balance: dict[str, list[int] | None] = {"train": None, "test": None}
    for split, (images_role, labels_role) in {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}.items():
        if statuses[images_role] == statuses[labels_role] == VERIFIED:
            labels = read_labels(cache.path(spec.file(labels_role)))
            counts[split] = len(labels)
            class_balance[split] = np.bincount(labels, minlength=NUM_LABELS).tolist()
    return {
        "dataset": spec.name,
        "folder": str(cache.folder),
        "complete": all(status == VERIFIED for status in statuses.values()),
        "files": files,
        "counts": counts,
        "class_balance": class_balance,
    }


def format_dataset_info(info: dict) -> str:
    """Human-readable text for a :func:`dataset_info` dict."""
    verified = sum(entry["status"] == VERIFIED for entry in info["files"])
    lines = [f"{info['dataset']}: {info['folder']} ({verified} of {len(info['files'])} files verified)"]
    name_width = max(len(entry["name"]) for entry in info["files"])
    for entry in info["files"]:
        count = f"{entry['count']:>6} items" if entry["count"] is not None else " " * 12
        lines.append(f"  {entry['name']:<{name_width}}  {count}  {entry['status']}  sha256 {entry['sha256'][:12]}...")
    if not info["complete"]:
        lines.append(f"  fetch the missing files with: cnn data download {info['dataset']}")
    balance = info["class_balance"]
    if balance["train"] is not None or balance["test"] is not None:
        lines.append("class balance   train    test")
        for label in range(NUM_LABELS):
            train = balance["train"][label] if balance["train"] is not None else "-"
            test = balance["test"][label] if balance["test"] is not None else "-"
            lines.append(f"  {label:<11} {train:>7} {test:>7}")
        lines.append(f"  {'total':<11} {info['counts']['train'] or '-':>7} {info['counts']['test'] or '-':>7}")
    return "\n".join(lines)
