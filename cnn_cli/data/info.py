"""What ``cnn data info`` reports: where the files are, their checksum status (or, for a folder of images, the
files that cannot be read), counts and class balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnn_cli.data.cache import VERIFIED, DatasetCache
from cnn_cli.data.catalog import FOLDER_DATASET, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from cnn_cli.data.folder import MAX_NAMED_BAD_FILES, TEST_FOLDER, TRAIN_FOLDER, list_folder, read_images
from cnn_cli.data.idx import NUM_LABELS, read_count, read_labels
from cnn_cli.data.sources import dataset_spec, resolve_data_dir


def dataset_info(dataset: str, data_dir: str | Path | None = None) -> dict:
    """Describe the cached copy of a dataset without fetching anything (``data_dir`` None: the default cache).

    Returns:
        A JSON-ready dict::

            dataset, folder, complete (all four files verified),
            files: [{role, name, path, status, size, expected_size, sha256, count}],
            counts: {"train": N or None, "test": N or None},
            class_balance: {"train": [count of label 0..9] or None, "test": ...},
            class_names: the name of each label (Fashion-MNIST's), or None (MNIST's digits)

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
        "class_names": list(spec.class_names) if spec.class_names else None,
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
        names = info.get("class_names") or [""] * NUM_LABELS
        lines += _balance_table([f"{label} {name}".strip() for label, name in enumerate(names)], balance, info["counts"])
    return "\n".join(lines)


def _balance_table(labels: list[str], balance: dict[str, list[int] | None], counts: dict[str, int | None]) -> list[str]:
    """Lines of a class-balance table: one row per class (``labels`` names them), a column per split, then the totals."""
    width = max(11, *(len(label) for label in labels))
    splits = list(balance)
    lines = [f"{'class balance':<{width + 2}}" + "".join(f" {split:>7}" for split in splits)]
    for index, label in enumerate(labels):
        row = [balance[split][index] if balance[split] is not None else "-" for split in splits]  # type: ignore[index]
        lines.append(f"  {label:<{width}}" + "".join(f" {value:>7}" for value in row))
    lines.append(f"  {'total':<{width}}" + "".join(f" {counts[split] or '-':>7}" for split in splits))
    return lines


def folder_info(root: str | Path) -> dict:
    """Describe a folder dataset (:mod:`cnn_cli.data.folder`): its layout, classes, counts, and the files that cannot be read.

    Reads (and prepares) every image, as training would, to find the bad ones.

    Returns:
        A JSON-ready dict::

            dataset ("folder"), folder, layout ("train/ and test/" or "one folder"), class_names,
            files (how many were found), counts: {"train": N, "test": N} or {"images": N},
            class_balance: the same keys, each a list of counts per class, skipped: one line per bad file
    """
    listing = list_folder(root)
    parts = {"train": listing.train, "test": listing.test} if listing.test is not None else {"images": listing.train}
    read = {split: read_images(files) for split, files in parts.items()}
    skipped = listing.unlisted + [line for images in read.values() for line in images.bad]
    return {
        "dataset": FOLDER_DATASET,
        "folder": str(listing.root),
        "layout": f"{TRAIN_FOLDER}/ and {TEST_FOLDER}/" if listing.split_layout else "one folder",
        "class_names": listing.class_names,
        "files": sum(len(files) for files in parts.values()),
        "counts": {split: len(images.labels) for split, images in read.items()},
        "class_balance": {split: np.bincount(images.labels, minlength=len(listing.class_names)).tolist() for split, images in read.items()},
        "skipped": skipped,
    }


def format_folder_info(info: dict) -> str:
    """Human-readable text for a :func:`folder_info` dict."""
    read = sum(info["counts"].values())
    lines = [f"folder {info['folder']}: {len(info['class_names'])} classes ({info['layout']}); {read} of {info['files']} files are images"]
    if info["layout"] == "one folder":
        lines.append(f"  without {TRAIN_FOLDER}/ and {TEST_FOLDER}/, training holds out data.test_fraction of each class for testing")
    lines += _balance_table(info["class_names"], info["class_balance"], info["counts"])
    if info["skipped"]:
        lines.append(f"skipped: {len(info['skipped'])} file(s), not an image, truncated or unreadable")
        lines += [f"  {line}" for line in info["skipped"][:MAX_NAMED_BAD_FILES]]
        if len(info["skipped"]) > MAX_NAMED_BAD_FILES:
            lines.append(f"  ... and {len(info['skipped']) - MAX_NAMED_BAD_FILES} more (--json lists them all)")
    return "\n".join(lines)
