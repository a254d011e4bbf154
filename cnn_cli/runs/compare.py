"""``cnn compare``: read several run folders and put them side by side.

Each run is read from its records only (:mod:`cnn_cli.runs.run_record`); a folder that
is not a run at all is skipped with one line saying why. The cost grows with the number
of runs and no faster: the folders are de-duplicated through a set of resolved paths,
what the runs' configs share is read once, and the config keys that differ are found by
comparing the few distinct values of each key, not every run's.
"""

from __future__ import annotations

import glob
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn_cli.config.yaml_cache import YamlCache
from cnn_cli.errors import CnnError
from cnn_cli.runs.folders import CONFIG_FILE, DEFAULT_RUNS_ROOT, LATEST_LINK
from cnn_cli.runs.run_record import IGNORED_KEYS, RunRecord, flatten, read_run

__all__ = ["IGNORED_KEYS", "Comparison", "RunRecord", "compare_runs", "find_run_dirs", "flatten", "format_table", "read_run"]


GLOB_CHARS = set("*?[")


MAX_CELL = 28  # table cells longer than this are cut (the JSON keeps the whole value)


NUMBER_COLUMNS = ("epochs", "best val", "test acc", "wall s", "img/s")


COLUMN_GAP = "  "


@dataclass
class Comparison:
    """The runs read, the config keys whose values differ between them, and what was skipped."""

    runs: list[RunRecord]
    differing_keys: list[str]
    skipped: list[str]  # one line each: "<path>: <why>"

    def as_dict(self) -> dict[str, Any]:
        return {
            "differing_keys": self.differing_keys,
            "runs": [
                {
                    "name": r.name,
                    "path": str(r.path),
                    "status": r.status,
                    "differs": {k: r.config.get(k) for k in self.differing_keys},
                    "epochs": r.epochs,
                    "epochs_planned": r.epochs_planned,
                    "best_val_acc": r.best_val_acc,
                    "best_epoch": r.best_epoch,
                    "test_acc": r.test_acc,
                    "wall_seconds": r.wall_seconds,
                    "images_per_s": r.images_per_s,
                    "learner_code": r.learner_code,
                    "notes": r.notes,
                }
                for r in self.runs
            ],
            "skipped": self.skipped,
        }


COMPARE_PLOT = "compare.png"


def default_plot_path(comparison: Comparison) -> Path:
    """Where ``cnn compare`` draws without ``--out``: the folder that holds the runs (runs/), never the working folder.

    Runs from several folders go to runs/compare.png.
    """
    parents = {run.path.resolve().parent for run in comparison.runs}
    folder = comparison.runs[0].path.parent if len(parents) == 1 else Path(DEFAULT_RUNS_ROOT)
    return folder / COMPARE_PLOT


LAYERS_KEY = "model.layers"


def split_layers(configs: list[dict[str, Any]]) -> None:
    """Replace each flattened config's ``model.layers`` list by one key per layer, in place, so that a difference names its layer.

    Where every run has a layer of the same type at position i, each of its settings is a key
    (``model.layers[2].out_channels``); where the runs' layers differ in type or one run has
    none there, the key ``model.layers[i]`` holds the layer's type.
    """
    lists = [config.get(LAYERS_KEY) for config in configs]
    if not all(isinstance(layers, list) and all(isinstance(layer, dict) for layer in layers) for layers in lists):
        return  # a config that does not read as layers (a hand-edited file): compared whole
    for index in range(max((len(layers) for layers in lists), default=0)):  # type: ignore[arg-type]
        at = [layers[index] if index < len(layers) else None for layers in lists]  # type: ignore[index, arg-type]
        same_type = all(layer is not None for layer in at) and len({layer["type"] for layer in at if layer}) == 1
        for config, layer in zip(configs, at, strict=True):
            if same_type and layer is not None:
                config.update(flatten(layer, f"model.layers[{index}]"))
            elif layer is not None:
                config[f"model.layers[{index}]"] = layer.get("type")
    for config in configs:
        config.pop(LAYERS_KEY, None)


def find_run_dirs(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """Expand run folders, globs and folders of runs into run folders (sorted, no duplicates), plus skip lines."""
    found: list[Path] = []
    seen: set[Path] = set()  # the resolved folders found so far: a run named twice (a link, a glob and a folder) is read once
    parents: dict[Path, Path] = {}  # folder -> where it resolves (thousands of runs share one)
    skipped: list[str] = []
    for argument in arguments:
        path = Path(argument)
        listed = False  # True: the candidates are the entries of a folder of runs, where stray files are ignored
        if not path.exists() and GLOB_CHARS & set(argument):
            candidates = sorted((Path(p) for p in glob.glob(argument)), key=_path_order)
            if not candidates:
                skipped.append(f"{argument}: the pattern matches nothing")
        elif not path.exists():
            skipped.append(f"{path}: not found")
            continue
        elif path.is_dir() and not (path / CONFIG_FILE).exists():
            try:
                candidates = sorted((p for p in path.iterdir() if p.name != LATEST_LINK and not p.name.startswith(".")), key=_path_order)
            except OSError as exc:
                skipped.append(f"{path}: cannot list the folder ({exc.strerror or exc})")
                continue
            listed = True
            if not any(p.is_dir() for p in candidates):
                skipped.append(f"{path}: not a run folder (no {CONFIG_FILE}) and holds no run folders")
                continue
        else:
            candidates = [path]
        for candidate in candidates:
            if not candidate.is_dir():
                if not listed:
                    skipped.append(f"{candidate}: not a folder")
                continue
            if not (candidate / CONFIG_FILE).is_file():
                skipped.append(f"{candidate}: not a run folder (no {CONFIG_FILE})")
                continue
            resolved = _resolved(candidate, parents)
            if resolved not in seen:
                seen.add(resolved)
                found.append(candidate)
    return found, skipped


def _resolved(folder: Path, parents: dict[Path, Path]) -> Path:
    """``folder.resolve()``, resolving each parent folder once: a folder that is no link resolves to its resolved parent / its name."""
    if folder.name in ("", ".", "..") or folder.is_symlink():
        return folder.resolve()
    if folder.parent not in parents:
        parents[folder.parent] = folder.parent.resolve()
    return parents[folder.parent] / folder.name


def _path_order(path: Path) -> tuple[str, ...]:
    """The order of ``sorted(paths)`` (part by part), without pathlib's slower comparison."""
    return path.parts


def compare_runs(arguments: list[str]) -> Comparison:
    """Read every run the arguments name (folders, globs, folders of runs) and find the config keys that differ."""
    folders, skipped = find_run_dirs(arguments)
    runs = []
    configs, flat_sections = YamlCache(), dict[int, dict[str, Any]]()
    for folder in folders:
        try:
            runs.append(read_run(folder, configs, flat_sections))
        except CnnError as exc:
            skipped.append(str(exc))
    if not runs:
        reason = f" ({len(skipped)} skipped, first: {skipped[0]})" if skipped else ""
        raise CnnError(f"no run folders to compare in {' '.join(arguments)}{reason}")
    split_layers([r.config for r in runs])
    keys = sorted({k for r in runs for k in r.config}, key=_key_order)
    return Comparison(runs, [k for k in keys if _differs(k, runs)], skipped)


_MISSING = ("missing",)


def _differs(key: str, runs: list[RunRecord]) -> bool:
    """Whether the runs' values of ``key`` are not all the same (1 and 1.0 differ, as in JSON; a run without it differs).

    Runs whose configs share an entry share its value object (the config cache), so the
    values are first told apart by identity, and only the few distinct objects by content.
    """
    distinct = list({id(value): value for value in [r.config.get(key, _MISSING) for r in runs]}.values())
    return len(distinct) > 1 and len({_value_mark(value) for value in distinct}) > 1


def _value_mark(value: Any) -> Any:
    """What tells two config values apart: a list's or mapping's JSON text, else (type, value)."""
    if isinstance(value, (list, dict, set)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and math.isnan(value):
        return (float, "nan")
    return (type(value), value)


def _key_order(key: str) -> tuple[Any, ...]:
    """Config keys in reading order: ``model.layers[2]`` before ``model.layers[10]``."""
    parts = re.split(r"\[(\d+)\]", key)  # the captured indices land at the odd positions
    return tuple(int(part) if position % 2 else part for position, part in enumerate(parts))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _table_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """The header and one row of cells per run: name, status, learner code (if any run used it), differing keys, then the numbers."""
    code = any(r.learner_code for r in comparison.runs)  # a column only when some run trained with learner code
    header = ["run", "status", *(["code"] if code else []), *comparison.differing_keys, *NUMBER_COLUMNS]
    rows = []
    for r in comparison.runs:
        epochs = f"{r.epochs}/{r.epochs_planned}" if r.epochs_planned is not None else str(r.epochs)
        rows.append(
            [
                r.name,
                r.status,
                *([r.learner_code or "cnn"] if code else []),
                *(_cell(r.config.get(k)) for k in comparison.differing_keys),
                epochs,
                "-" if r.best_val_acc is None else f"{r.best_val_acc:.4f}" + (f" (ep {r.best_epoch})" if r.best_epoch else ""),
                "-" if r.test_acc is None else f"{r.test_acc:.4f}",
                "-" if r.wall_seconds is None else f"{r.wall_seconds:.1f}",
                "-" if r.images_per_s is None else f"{r.images_per_s:.0f}",
            ]
        )
    return header, rows


def _blocks(widths: list[int], width: int) -> list[list[int]]:
    """Column indices of each block of the table: the run column first in every block, then as many others as fit in ``width``."""
    blocks: list[list[int]] = [[0]]
    used = widths[0]
    for column in range(1, len(widths)):
        if used + len(COLUMN_GAP) + widths[column] > width and len(blocks[-1]) > 1:
            blocks.append([0])
            used = widths[0]
        blocks[-1].append(column)
        used += len(COLUMN_GAP) + widths[column]
    return blocks


def format_table(comparison: Comparison, width: int = 80) -> str:
    """The comparison as a plain-text table (one row per run), then one line per note.

    A table wider than ``width`` characters is cut into blocks of columns, one under the
    other, each starting with the run's name; a column is never cut in the middle.
    """
    header, rows = _table_rows(comparison)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric_from = len(header) - len(NUMBER_COLUMNS)

    def render(cells: list[str], columns: list[int]) -> str:
        return COLUMN_GAP.join(cells[i].rjust(widths[i]) if i >= numeric_from else cells[i].ljust(widths[i]) for i in columns).rstrip()

    out: list[str] = []
    for block in _blocks(widths, width):
        if out:
            out.append("")
        out += [render(header, block), COLUMN_GAP.join("-" * widths[i] for i in block), *(render(row, block) for row in rows)]
    if not comparison.differing_keys and len(comparison.runs) > 1:
        out.append("(the configs are the same, apart from name and description)")
    out.extend(f"note: {r.name}: {note}" for r in comparison.runs for note in r.notes)
    return "\n".join(out)
