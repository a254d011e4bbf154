"""``cnn compare``: real (tiny) runs side by side, plus the odd folders a runs/ directory collects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.runs.compare import compare_runs
from cnn_cli.training.train import train
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli
from tests.support.synthetic import make_idx_dataset, tiny_config


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    """runs/ with two completed runs that differ in lr and epochs, and one interrupted run."""
    folder = tmp_path_factory.mktemp("compare")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    root = folder / "runs"
    for name, lr, epochs, stop in (("fast", 0.01, 2, None), ("slow", 0.001, 3, None), ("cut", 0.003, 3, 10)):
        config = tiny_config(paths, epochs=epochs)
        config["optimizer"]["lr"] = lr
        train(config_from_dict(config), run_dir=root / name, log=lambda _line: None, stop_after_steps=stop)
    return root


def copy_runs(runs_root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "runs"
    shutil.copytree(runs_root, target)
    return target


def test_table_names_the_differing_keys_and_the_numbers_of_each_run(runs_root: Path) -> None:
    outcome = invoke_cli(["compare", runs_root / "fast", runs_root / "slow", "--no-plot"])
    assert outcome.code == 0, outcome.output
    header, rule, fast, slow = outcome.stdout.splitlines()
    assert header.split()[:4] == ["run", "status", "optimizer.lr", "train.epochs"]
    summary = json.loads((runs_root / "fast" / "summary.json").read_text())
    assert fast.split()[:5] == ["fast", "completed", "0.01", "2", "2/2"]
    assert f"{summary['test_accuracy']:.4f}" in fast and f"{summary['best_val_accuracy']:.4f}" in fast
    assert slow.split()[:5] == ["slow", "completed", "0.001", "3", "3/3"]


def test_a_folder_of_runs_and_json(runs_root: Path) -> None:
    outcome = invoke_cli(["compare", runs_root, "--json", "--no-plot"])
    assert outcome.code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert [r["name"] for r in report["runs"]] == ["cut", "fast", "slow"]
    by_name = {r["name"]: r for r in report["runs"]}
    assert by_name["cut"]["status"] == "interrupted" and by_name["cut"]["test_acc"] is None
    assert by_name["fast"]["differs"] == {"optimizer.lr": 0.01, "train.epochs": 2}
    metrics = (runs_root / "slow" / "metrics.csv").read_text().splitlines()[1:]
    best = max(float(line.split(",")[6]) for line in metrics)
    assert by_name["slow"]["best_val_acc"] == best and by_name["slow"]["epochs"] == 3
    seconds = [float(line.split(",")[7]) for line in metrics]
    images = sum(s * float(line.split(",")[8]) for s, line in zip(seconds, metrics, strict=True))
    assert by_name["slow"]["images_per_s"] == pytest.approx(images / sum(seconds), rel=1e-3)
    assert report["skipped"] == []


def test_a_glob_picks_its_matches(runs_root: Path) -> None:
    outcome = invoke_cli(["compare", str(runs_root / "[fs]*"), "--json", "--no-plot"])
    assert [r["name"] for r in json.loads(outcome.stdout)["runs"]] == ["fast", "slow"]


def test_odd_folders_are_skipped_with_one_line_each(runs_root: Path, tmp_path: Path) -> None:
    root = copy_runs(runs_root, tmp_path)
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a run")  # a stray file in runs/: ignored without a word
    half = root / "half"
    shutil.copytree(root / "slow", half)
    text = (half / "metrics.csv").read_text()
    (half / "metrics.csv").write_text(text[: text.rindex("\n", 0, len(text) - 1) + 9])  # the last row cut mid-way
    (half / "run.json").write_text('{"status": "runn')
    (half / "summary.json").unlink()
    broken = root / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("model: [unclosed\n")
    outcome = invoke_cli(["compare", root, str(tmp_path / "nothing-*"), "--out", tmp_path / "c.png"])
    assert outcome.code == 0, outcome.output
    warnings = outcome.stderr.splitlines()
    assert len(warnings) == 3, outcome.stderr
    assert any(str(root / "empty") in w and "no config.yaml" in w for w in warnings)
    assert any(str(broken / "config.yaml") in w for w in warnings)
    assert any("nothing-*" in w and "matches nothing" in w for w in warnings)
    row = next(line for line in outcome.stdout.splitlines() if line.startswith("half "))
    assert row.split()[1] == "unknown" and "2/3" in row
    notes = [line for line in outcome.stdout.splitlines() if line.startswith("note: half: ")]
    assert any("metrics.csv line 4" in n for n in notes) and any("run.json unreadable" in n for n in notes)


def test_nothing_to_compare_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    outcome = invoke_cli(["compare", tmp_path / "a"])
    error_line(outcome, EXIT_BAD_INPUT, "no run folders to compare", str(tmp_path / "a"))


def test_compare_png_overlays_every_run(runs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare.png"
    outcome = invoke_cli(["compare", runs_root, "--out", out])
    assert outcome.code == 0 and f"plot: {out}" in outcome.stdout
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert pixels.shape == (550, 1300, 3)
    tab10 = {"fast": (255, 127, 14), "slow": (44, 160, 44), "cut": (31, 119, 180)}  # runs sorted: cut, fast, slow
    for name, colour in tab10.items():
        drawn = (np.abs(pixels - np.array(colour)).sum(axis=2) < 30).sum()
        assert drawn > 200, f"{name}'s curves are missing from the plot"


def test_the_same_run_named_twice_is_compared_once(runs_root: Path) -> None:
    comparison = compare_runs([str(runs_root / "fast"), str(runs_root / "fast") + "/", str(runs_root)])
    assert [r.name for r in comparison.runs] == ["fast", "cut", "slow"]
