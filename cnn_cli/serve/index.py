"""The runs list, kept between requests: re-read only what changed on disk.

The runs page polls ``/api/runs``; a runs folder can hold thousands of runs. Reading
every run's config, metrics and records on each poll takes seconds, so:

- the folder's entries (valid names, symlinks checked) are read again only when the
  runs folder itself changes (its modification time: an entry added, removed or renamed);
- a run's row is read again only when one of the files it comes from changes
  (:func:`cnn_cli.serve.records.summary_stamp`: modification time and size of each);
- what cannot be cached, whether a running run's process is still alive, is asked
  on each request (one ``kill(pid, 0)`` per running run).

:meth:`RunsIndex.listing` also returns a stamp of the whole list, so a page that polls
can be told cheaply that nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from cnn_cli.runs.compare import IGNORED_KEYS, flatten
from cnn_cli.runs.folders import LATEST_LINK, RunPaths
from cnn_cli.serve import records

MAX_COMPARED = 8  # runs overlaid on one chart


class RunsIndex:
    """Every run folder inside ``root``, newest first, read incrementally (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._folder_stamp: tuple[int, int] | None = None
        self._names: list[str] = []
        self._rows: dict[str, tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = {}

    def _folder_changed(self) -> bool:
        try:
            stat = self.root.stat()
            stamp = (stat.st_mtime_ns, stat.st_ino)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._folder_stamp:
            return False
        self._folder_stamp = stamp
        return True

    def _scan(self) -> None:
        """The names of the folders directly inside the runs folder (``latest`` and hidden ones left out)."""
        names = []
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            entries = []
        for entry in entries:
            if entry.name == LATEST_LINK or not records.plain_name(entry.name):
                continue
            # A folder that is not a link is inside by construction; only a symlink needs resolving to be checked.
            if entry.is_dir(follow_symlinks=False) or (entry.is_symlink() and records.run_paths(self.root, entry.name)):
                names.append(entry.name)
        self._names = names
        self._rows = {name: row for name, row in self._rows.items() if name in set(names)}

    def _row(self, name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        paths = RunPaths(self.root / name)
        stamp = records.summary_stamp(paths)
        if stamp[0] == "-" and stamp[2] == "-":  # neither run.json nor config.yaml: not a run (yet)
            self._rows.pop(name, None)
            return None
        cached = self._rows.get(name)
        if cached is None or cached[0] != stamp:
            info = records.run_info(paths)
            cached = (stamp, records.run_summary(paths, name, info), records.process_record(info))
            self._rows[name] = cached
        return cached[1], cached[2]

    def listing(self) -> tuple[list[dict[str, Any]], str]:
        """(every run's row, newest first by start time then name; a stamp that changes when any row does)."""
        with self._lock:
            if self._folder_changed():
                self._scan()
            runs = []
            for name in self._names:
                found = self._row(name)
                if found is None:
                    continue
                row, process = found
                status, alive = records.live_status(row["status"], process)
                runs.append({**row, "status": status, "alive": alive} if status != row["status"] else row)
        runs.sort(key=lambda r: (r["started"], r["name"]), reverse=True)
        digest = hashlib.sha256(json.dumps(runs, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return runs, digest

    def runs(self) -> list[dict[str, Any]]:
        return self.listing()[0]

    def newest_completed(self) -> str | None:
        """The newest run with ``checkpoints/best.npz`` and status ``completed`` (the draw pad's default model)."""
        for run in self.runs():
            if run["status"] == "completed" and run["has_checkpoint"]:
                return str(run["name"])
        return None


def compare(runs: list[tuple[str, RunPaths]]) -> dict[str, Any]:
    """Several runs for one overlaid chart: each run's epochs and steps, and the config keys whose values differ.

    Returns:
        ``{"runs": [{"name", "status", "metrics", "steps"}], "differing": [{"key", "values": [one per run]}]}``;
        ``name`` and ``description`` are left out of the differences (they always differ).
    """
    shown, configs = [], []
    for name, paths in runs[:MAX_COMPARED]:
        config, _ = records.read_config(paths)
        configs.append(flatten(config))
        info = records.run_info(paths)
        status, _ = records.live_status(str(info.get("status", "unknown")), records.process_record(info))
        shown.append({"name": name, "status": status, "metrics": records.metrics_rows(paths), "steps": records.step_series(paths)})
    keys = sorted({key for config in configs for key in config if key not in IGNORED_KEYS})
    differing = []
    for key in keys:
        values = [config.get(key) for config in configs]
        if len({json.dumps(value, sort_keys=True, default=str) for value in values}) > 1:
            differing.append({"key": key, "values": values})
    return {"runs": shown, "differing": differing}
