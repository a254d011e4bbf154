"""Thousands of run folders on disk, fast: the records of one real run, copied with the values that differ between runs.

Each folder is a real run folder as ``cnn train`` leaves it (config.yaml, run.json,
metrics.csv, summary.json, checkpoints/best.npz, and on request the template's other
records, such as steps.csv), written as real files. The checkpoint is a hard link to the template's (a real file, no copy), so
5,000 runs take a few seconds and little disk. Run ``i`` differs from the template by its
learning rate, its seed, its start time and its accuracies, as the runs of a sweep do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from cnn_cli.runs.folders import BEST_CHECKPOINT, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, RUN_FILE, SUMMARY_FILE

EPOCHS = 10  # metrics.csv rows per run by default: a run of a sweep, not a one-epoch test run


def write_many_runs(template: Path, root: Path, count: int, copied: tuple[str, ...] = (), epochs: int = EPOCHS) -> list[Path]:
    """``count`` run folders ``root/run-00000`` ... made from the finished run ``template``; returns them in order.

    ``copied``: more of the template's records to copy as they are (``steps.csv``, ``gradients.csv``).
    """
    config = (template / CONFIG_FILE).read_text(encoding="utf-8")
    info = json.loads((template / RUN_FILE).read_text(encoding="utf-8"))
    summary = json.loads((template / SUMMARY_FILE).read_text(encoding="utf-8"))
    header = (template / METRICS_FILE).read_text(encoding="utf-8").splitlines()[0]
    copied = {name: (template / name).read_bytes() for name in copied if (template / name).is_file()}
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for index in range(count):
        folder = root / f"run-{index:05d}"
        (folder / CHECKPOINT_DIR).mkdir(parents=True)
        lr = 1e-4 * (1 + index % 97)
        seed = index // 97
        text = re.sub(r"(?m)^(  lr: ).*$", rf"\g<1>{lr:.6g}", config)
        text = re.sub(r"(?m)^(  seed: ).*$", rf"\g<1>{seed}", text)
        (folder / CONFIG_FILE).write_text(text, encoding="utf-8")
        accuracy = 0.5 + 0.4 * ((index * 7919) % 1000) / 1000
        rows = [header]
        for epoch in range(1, epochs + 1):
            val = accuracy * epoch / epochs
            rows.append(f"{epoch},{epoch * 7},{lr:.6g},{1.5 / epoch:.6f},{val:.4f},{1.2 / epoch:.6f},{val:.4f},0.8,25000.0")
        (folder / METRICS_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
        started = f"2026-{1 + index // 2000 % 12:02d}-{1 + index // 80 % 25:02d}T{index // 60 % 24:02d}:{index % 60:02d}:00"
        record = {**info, "status": "completed", "started": started, "ended": started, "seed": seed, "run_dir": str(folder)}
        (folder / RUN_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        numbers = {"test_accuracy": accuracy, "best_val_accuracy": accuracy, "best_epoch": epochs, "epochs_trained": epochs}
        (folder / SUMMARY_FILE).write_text(json.dumps({**summary, **numbers}, indent=2), encoding="utf-8")
        for name, data in copied.items():
            (folder / name).write_bytes(data)
        os.link(template / CHECKPOINT_DIR / BEST_CHECKPOINT, folder / CHECKPOINT_DIR / BEST_CHECKPOINT)
        folders.append(folder)
    return folders
