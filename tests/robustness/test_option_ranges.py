"""Options given absurd values (issue 23, category 8): every number has a finite, documented range, checked at once.

The ranges live in ``cnn_cli/cli/ranges.py``; these tests give absurd values to real ``cnn``
processes, and check that no numeric option of any command is left without a range.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click
import pytest
import yaml

from cnn_cli.cli.main import cli
from tests.support.cli import EXIT_BAD_INPUT, error_line, run_cli, run_cli_bounded, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

# Options whose number is checked by the config key they stand for, so that the message names the key.
CHECKED_AS_CONFIG_KEYS = {("train", "seed"), ("gradcheck", "seed")}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ranges")
    return write_config(folder / "tiny.yaml", tiny_config(make_idx_dataset(folder / "idx", n_train=300, n_test=100), epochs=1))


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--steps", "1e20", "100000000000000000000 is not in the range 10<=x<=100000"),
        ("--steps", "2.5", "'2.5' is not a whole number"),
        ("--max-lr", "inf", "inf is not in the range 1e-12<=x<=10000.0"),
        ("--max-lr", "nan", "'nan' is not a finite number"),
        ("--min-lr", "1e307", "1e+307 is not in the range 1e-12<=x<=10000.0"),
    ],
)
def test_lr_find_refuses_absurd_numbers_before_any_work(config: Path, tmp_path: Path, option: str, value: str, expected: str) -> None:
    outcome = run_cli(["lr-find", "--config", config, option, value, "--out", tmp_path / "lr.png"], cwd=tmp_path)
    error_line(outcome, EXIT_BAD_INPUT, f"'{option}'", expected)
    assert not (tmp_path / "lr.png").exists() and not (tmp_path / "runs").exists()


def test_a_nine_million_trial_grid_is_refused_at_once(tmp_path: Path) -> None:
    sweep = tmp_path / "huge.yaml"
    values = [round(1e-4 * (i + 1), 8) for i in range(3000)]
    sweep.write_text(yaml.safe_dump({"base": "smoke", "parameters": {"optimizer.lr": values, "optimizer.eps": values}}))
    started = time.monotonic()
    outcome = run_cli_bounded(["sweep", sweep, "--dry-run"], cwd=tmp_path, timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, "parameters: the grid has 9,000,000 combinations; at most 10,000")
    assert time.monotonic() - started < 8, "counted before the values were checked"


@pytest.mark.parametrize("option", ["--input", "--kernel"])
def test_explain_entries_of_1e308_are_one_line(option: str) -> None:
    matrix = "1e308,1;1,1" if option == "--kernel" else "1e308,1,0;0,1,1;1,0,1"
    outcome = run_cli(["explain", "cross-correlation", option, matrix])
    error_line(outcome, EXIT_BAD_INPUT, f"{option}: entries must be numbers in [-1e+06, 1e+06]")


def test_a_batch_larger_than_the_dataset_is_clamped_to_it_with_a_note(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    outcome = run_cli_bounded(["train", "--config", config, "--run-dir", run, "--set", "train.batch_size=1000000000"], timeout=60)
    assert outcome.code == 0, outcome.output
    assert "note: train.batch_size 1,000,000,000 is larger than the 200 training images; using 200" in outcome.output
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"] == 200  # what the run really used
    assert "1 epoch(s) of 1 steps" in outcome.output


def numeric_options() -> list[tuple[str, click.Parameter]]:
    """Every option or argument of every command that takes a number."""
    found = []

    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
                found.append((path, param))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(cli, "")
    return found


def test_every_numeric_option_has_a_finite_range() -> None:
    options = numeric_options()
    assert len(options) >= 12, [f"{path} {param.name}" for path, param in options]
    for path, param in options:
        if (path, param.name) in CHECKED_AS_CONFIG_KEYS:
            continue
        low, high = getattr(param.type, "min", None), getattr(param.type, "max", None)
        assert low is not None and high is not None, f"cnn {path} --{param.name}: no range"
        assert math.isfinite(low) and math.isfinite(high), f"cnn {path} --{param.name}: [{low}, {high}]"
        if isinstance(param.type, click.types.FloatParamType):
            with pytest.raises(click.BadParameter):
                param.type.convert("nan", param, None)
