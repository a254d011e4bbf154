"""What a run folder says about learner code (``cnn train --impl FILE``): read by resume, eval and compare.

``run.json`` holds it under :data:`RECORD_KEY`: the file's name, the path it was
given as, its SHA-256, where its copy lies in the run folder (``learner_code/``)
and which layers ran it. A run without the key trained with cnn's own code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn_cli.runs.folders import RunPaths, read_json_record

RECORD_KEY = "learner_code"


@dataclass(frozen=True)
class LearnerRecord:
    """The learner file a run trained with."""

    file: str  # its name, e.g. my_layers.py
    sha256: str
    copy: str  # the copy inside the run folder, relative to it
    layers: dict[str, str]  # layer name (or "loss") -> the learner function pair it ran

    @property
    def label(self) -> str:
        """``my_layers.py (sha256 1a2b3c4d)``."""
        return f"{self.file} (sha256 {self.sha256[:8]})"

    @property
    def short(self) -> str:
        """``my_layers.py@1a2b3c4d``, for table cells."""
        return f"{self.file}@{self.sha256[:8]}"

    def as_dict(self, given: str) -> dict[str, Any]:
        """The run.json entry; ``given`` is the path as the command line named it."""
        return {"file": self.file, "given": given, "sha256": self.sha256, "copy": self.copy, "layers": self.layers}


def read_learner_record(run_root: str | Path) -> LearnerRecord | None:
    """The learner file recorded in a run folder's run.json, or None (cnn's own code, or no readable run.json)."""
    info = read_json_record(RunPaths(Path(run_root)).run_info)
    return learner_record_of(info) if info else None


def learner_record_of(info: dict[str, Any]) -> LearnerRecord | None:
    """The learner file in the content of a run.json, or None."""
    entry = info.get(RECORD_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("file"), str):
        return None
    layers = entry.get("layers")
    layers = {str(k): str(v) for k, v in layers.items()} if isinstance(layers, dict) else {}
    return LearnerRecord(entry["file"], entry["sha256"], str(entry.get("copy", "")), layers)


def checkpoint_learner_record(checkpoint: str | Path) -> LearnerRecord | None:
    """The learner record of the run a checkpoint belongs to (``RUN/checkpoints/*.npz``), or None."""
    path = Path(checkpoint)
    return read_learner_record(path.parent.parent) if path.parent.name == RunPaths(path.parent.parent).checkpoints.name else None


def recorded_learner(paths: RunPaths) -> LearnerRecord | None:
    """The learner file of a run: from run.json, else (run.json lost) from the copy in ``learner_code/``; None for cnn's own code."""
    record = read_learner_record(paths.root)
    if record is not None:
        return record
    copies = sorted(paths.learner_code.glob("*.py")) if paths.learner_code.is_dir() else []
    if not copies:
        return None
    digest = hashlib.sha256(copies[0].read_bytes()).hexdigest()
    return LearnerRecord(copies[0].name, digest, str(copies[0].relative_to(paths.root)), {})
