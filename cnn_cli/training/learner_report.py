"""The end of an --impl run: the weights against cnn's own code, then the test accuracy against a reference run.

The reference run is one trained with cnn's own code on the same config and seed:
``--reference RUN``, or else the newest completed one found next to this run or in
the runs folder. Without one, the report says how to make it.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from cnn_cli.config.load import config_to_yaml
from cnn_cli.config.sections import Config
from cnn_cli.errors import CnnError
from cnn_cli.learn.learner_check import report_lines
from cnn_cli.runs.compare import IGNORED_KEYS, RunRecord, flatten, read_run
from cnn_cli.runs.folders import CONFIG_FILE, LATEST_LINK, RunPaths, existing_run, read_json_record, write_json
from cnn_cli.runs.learner_record import read_learner_record
from cnn_cli.training.learner_run import LearnerRun, LearnerStep
from cnn_cli.training.state import Callback, TrainState


def check_reference(path: Path | None) -> None:
    """``--reference RUN`` must be a run folder (said before training, not after)."""
    if path is not None:
        existing_run(path)


def _flat_config(config: Config) -> dict:
    data = yaml.safe_load(config_to_yaml(config))  # as config.yaml holds it: lists, not tuples
    return {key: value for key, value in flatten(data).items() if key not in IGNORED_KEYS}


def _candidates(folders: list[Path], exclude: Path) -> list[Path]:
    seen: list[Path] = []
    for folder in folders:
        try:
            entries = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for entry in entries:
            if entry.name == LATEST_LINK or not (entry / CONFIG_FILE).is_file() or entry.resolve() == exclude.resolve():
                continue
            if all(entry.resolve() != other.resolve() for other in seen):
                seen.append(entry)
    return seen


def find_reference(config: Config, folders: list[Path], exclude: Path) -> RunRecord | None:
    """The newest completed run in ``folders`` trained with cnn's own code on this very config (seed included)."""
    wanted = _flat_config(config)
    found: list[tuple[float, RunRecord]] = []
    for path in _candidates(folders, exclude):
        try:
            run = read_run(path)
        except CnnError:
            continue
        if run.status != "completed" or run.test_acc is None or run.config != wanted or read_learner_record(path) is not None:
            continue
        found.append((RunPaths(path).summary.stat().st_mtime, run))
    return max(found, key=lambda item: item[0])[1] if found else None


def accuracy_lines(state: TrainState, reference: Path | None, folders: list[Path]) -> list[str]:
    """This run's test accuracy against the reference run's, or how to make a reference run."""
    mine = state.summary.get("test_accuracy")
    if mine is None:
        return []
    if reference is not None:
        run, wanted = read_run(reference), _flat_config(state.config)
        differs = sorted(key for key in set(run.config) | set(wanted) if run.config.get(key) != wanted.get(key))
        if run.test_acc is None:
            return [f"test accuracy {mine:.4f} with your code; {reference} has no test accuracy yet (it has not completed)"]
        note = f" (note: its config differs in {', '.join(differs[:3])})" if differs else ""
        return [f"test accuracy {mine:.4f} with your code, {run.test_acc:.4f} with cnn's ({reference}){note}"]
    found = find_reference(state.config, folders, state.paths.root)
    if found is not None:
        return [f"test accuracy {mine:.4f} with your code, {found.test_acc:.4f} with cnn's ({found.path}, same config and seed)"]
    make = shlex.join(["cnn", "train", "--config", str(state.paths.config)])
    return [
        f"test accuracy {mine:.4f} with your code; no run of this config and seed with cnn's own code to compare with.",
        f"  make one: {make}   (the next --impl run finds it; or name one with --reference RUN)",
    ]


class LearnerReport(Callback):
    """At the end of the run: the report, on the log and appended to learner-check.json."""

    def __init__(self, run: LearnerRun, step: LearnerStep, runs_root: str | Path) -> None:
        self.run, self.step, self.runs_root = run, step, Path(runs_root)

    def on_finish(self, state: TrainState) -> None:
        check, label = self.step.check, self.run.code.label
        lines = report_lines(check, label, self.run.options.check_steps) if check is not None else []
        lines += accuracy_lines(state, self.run.options.reference, [state.paths.root.parent, self.runs_root])
        for line in lines:
            state.log(line)
        previous = read_json_record(state.paths.learner_check) or {}
        earlier = previous.get("checks")
        checks: list[Any] = earlier if isinstance(earlier, list) else []
        entry = {
            "file": self.run.code.path.name,
            "sha256": self.run.code.sha256,
            "weights": check.as_dict() if check is not None else None,
            "check_seconds": round(check.seconds, 3) if check is not None else None,  # the reference's (and twin's) steps
            "learner_seconds": {name: round(seconds, 3) for name, seconds in self.run.code.seconds.items()},
            "report": lines,
        }
        write_json(state.paths.learner_check, {"checks": [*checks, entry]})
