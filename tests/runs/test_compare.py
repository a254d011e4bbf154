"""``cnn compare``: real (tiny) runs side by side, plus the odd folders a runs/ directory collects."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.runs.compare import compare_runs, split_layers
from cnn_cli.training.train import train
from tests.support import REPO_ROOT
from tests.support.cli import EXIT_BAD_INPUT, cli_command, cli_environment, error_line, invoke_cli
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


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """One line per run in the table (the tests of wrapping set a width of their own)."""
    monkeypatch.setenv("COLUMNS", "200")


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
    assert pixels.shape == (1100, 1300, 3)  # the runs logged steps.csv: a second row, loss per step and gradient flow
    tab10 = {"fast": (255, 127, 14), "slow": (44, 160, 44), "cut": (31, 119, 180)}  # runs sorted: cut, fast, slow
    for name, colour in tab10.items():
        drawn = (np.abs(pixels - np.array(colour)).sum(axis=2) < 30).sum()
        assert drawn > 200, f"{name}'s curves are missing from the plot"


def test_without_out_compare_png_goes_into_the_runs_folder(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_runs(runs_root, tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    outcome = invoke_cli(["compare", root / "fast", root / "slow"])
    assert outcome.code == 0, outcome.output
    assert outcome.stdout.splitlines()[-1] == f"plot: {root / 'compare.png'}" and (root / "compare.png").is_file()
    assert list(project.iterdir()) == [], "nothing lands in the working folder"
    again = invoke_cli(["compare", root])  # a folder of runs: its compare.png is a stray file there, not a run
    assert again.code == 0 and again.stderr == "", again.output


def test_the_plots_written_by_default_are_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "compare.png", "lr_find-mnist.png", "runs/compare.png"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == ["compare.png", "lr_find-mnist.png", "runs/compare.png"], ignored.stderr


def test_the_same_run_named_twice_is_compared_once(runs_root: Path) -> None:
    comparison = compare_runs([str(runs_root / "fast"), str(runs_root / "fast") + "/", str(runs_root)])
    assert [r.name for r in comparison.runs] == ["fast", "cut", "slow"]


def wider_copy(runs_root: Path, tmp_path: Path) -> Path:
    """A copy of the run "fast" whose config's first conv layer has 6 output channels instead of 4, in a long-named folder."""
    run = Path(shutil.copytree(runs_root / "fast", tmp_path / "fast-with-a-wider-first-layer-20261205-120000"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["layers"][0]["out_channels"] = 6
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run


def test_only_the_differing_layer_setting_is_shown_and_the_table_fits_the_terminal(
    runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wider = wider_copy(runs_root, tmp_path)
    report = json.loads(invoke_cli(["compare", runs_root / "fast", wider, "--json", "--no-plot"]).stdout)
    assert report["differing_keys"] == ["model.layers[0].out_channels"]
    assert [r["differs"] for r in report["runs"]] == [{"model.layers[0].out_channels": 4}, {"model.layers[0].out_channels": 6}]
    monkeypatch.setenv("COLUMNS", "80")
    outcome = invoke_cli(["compare", runs_root / "fast", wider, "--no-plot"])
    assert outcome.code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, outcome.stdout
    key_block = next(i for i, line in enumerate(lines) if "model.layers[0].out_channels" in line)
    assert lines[key_block + 2].split()[:2] == ["fast", "4"] and lines[key_block + 3].split()[:2] == [wider.name, "6"]
    blocks = outcome.stdout.split("\n\n")
    assert len(blocks) > 1 and all(block.splitlines()[0].startswith("run ") for block in blocks), "each block names the runs"


def test_a_piped_table_is_80_columns_wide(runs_root: Path, tmp_path: Path) -> None:
    wider = wider_copy(runs_root, tmp_path)
    env = {k: v for k, v in cli_environment().items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        cli_command(["compare", runs_root, wider, "--no-plot"]), capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80 and "model.layers[0].out_channels" in done.stdout


def test_layers_of_different_types_are_compared_by_type() -> None:
    conv = {"type": "conv2d", "name": "conv1", "out_channels": 4}
    configs = [
        {"model.layers": [conv, {"type": "relu", "name": "relu1"}]},
        {"model.layers": [conv, {"type": "tanh", "name": "tanh1"}, {"type": "flatten", "name": "flatten1"}]},
    ]
    split_layers(configs)
    assert configs[0] == {
        "model.layers[0].type": "conv2d",
        "model.layers[0].name": "conv1",
        "model.layers[0].out_channels": 4,
        "model.layers[1]": "relu",
    }
    assert configs[1]["model.layers[1]"] == "tanh" and configs[1]["model.layers[2]"] == "flatten" and "model.layers" not in configs[1]
