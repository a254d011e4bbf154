"""The sweep file: grid and random trials, and one clear error line (file:line: key) for each mistake. No Dask needed."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

from cnn_cli.cli.sweep import resolve_sweep_file
from cnn_cli.errors import ConfigError
from cnn_cli.sweep.spec import Trial, load_sweep, parse_sweep
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli
from tests.sweep.support import make_sweep_folder


def test_grid_is_every_combination_in_order(tmp_path: Path) -> None:
    path = make_sweep_folder(tmp_path, {"optimizer.lr": [0.001, 0.01, 0.1], "train.seed": [0, 1]})
    spec = load_sweep(path)
    assert [t.number for t in spec.trials] == [1, 2, 3, 4, 5, 6]
    assert [t.params for t in spec.trials[:3]] == [
        {"optimizer.lr": 0.001, "train.seed": 0},
        {"optimizer.lr": 0.001, "train.seed": 1},
        {"optimizer.lr": 0.01, "train.seed": 0},
    ]
    config = spec.trial_config(spec.trials[5])
    assert (config.optimizer.lr, config.train.seed) == (0.1, 1)
    assert config.name == "tiny-trial-006"
    assert spec.metric == "val_acc" and spec.mode == "max"


def test_random_draws_are_seeded_and_inside_their_ranges(tmp_path: Path) -> None:
    parameters = {
        "optimizer.lr": {"loguniform": [1e-4, 1e-1]},
        "optimizer.momentum": {"uniform": [0.8, 0.99]},
        "train.batch_size": {"choice": [16, 32, 64]},
        "train.seed": [0, 1, 2],
    }
    path = make_sweep_folder(tmp_path, parameters, method="random", trials=40, seed=3)
    first, again = load_sweep(path), load_sweep(path)
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    lrs = [t.params["optimizer.lr"] for t in first.trials]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # log-uniform: about as many draws in each decade
    decades = [sum(10**-k <= lr < 10 ** (1 - k) for lr in lrs) for k in (4, 3, 2)]
    assert min(decades) >= 5, decades
    assert all(0.8 <= t.params["optimizer.momentum"] <= 0.99 for t in first.trials)
    assert {t.params["train.batch_size"] for t in first.trials} == {16, 32, 64}
    other = make_sweep_folder(tmp_path / "other", parameters, method="random", trials=40, seed=4)
    assert [t.params for t in load_sweep(other).trials] != [t.params for t in first.trials]


def test_shipped_sweep_is_found_by_name_and_is_valid() -> None:
    source, text = resolve_sweep_file("sweep-lr")
    spec = parse_sweep(text, source)
    assert spec.base["name"] == "smoke"
    assert spec.base["train"]["epochs"] == 2  # the override
    assert len(spec.trials) >= 4 and spec.parameters == ["optimizer.lr"]


def test_dry_run_lists_the_trials(tmp_path: Path) -> None:
    path = make_sweep_folder(tmp_path, {"optimizer.lr": [0.001, 0.01]})
    outcome = invoke_cli(["sweep", path, "--dry-run"])
    assert outcome.code == 0, outcome.output
    assert "trial-001  optimizer.lr=0.001" in outcome.stdout
    assert "trial-002  optimizer.lr=0.01" in outcome.stdout


@pytest.mark.parametrize(
    ("extra", "parameters", "fragments"),
    [
        ({"paralelism": 2}, {"optimizer.lr": [0.01]}, ["sweep.yaml:", "paralelism: unknown sweep key"]),
        ({}, {"optimizer.lr": [0.01, -1]}, ["sweep.yaml:", "parameters.optimizer.lr[1]", "optimizer.lr: expected a number > 0, got -1"]),
        ({}, {"optimizer.lrr": [0.01]}, ["parameters.optimizer.lrr[0]", "optimizer.lrr: unknown key; did you mean 'lr'?"]),
        ({}, {"optimizer.lr": 0.01}, ["parameters.optimizer.lr", "a grid needs a non-empty list"]),
        ({"method": "random"}, {"optimizer.lr": {"loguniform": [0.1, 0.01]}}, ["sweep.yaml:", "trials: missing"]),
        ({"method": "random", "trials": 2}, {"optimizer.lr": {"loguniform": [0, 0.01]}}, ["optimizer.lr.loguniform", "low > 0"]),
        ({"method": "random", "trials": 2}, {"optimizer.lr": {"uniform": [0.1, 0.01]}}, ["optimizer.lr.uniform", "low < high"]),
        ({"method": "random", "trials": 2}, {"optimizer.lr": {"normal": [0, 1]}}, ["parameters.optimizer.lr", "loguniform"]),
        ({"method": "sobol"}, {"optimizer.lr": [0.01]}, ["method: expected one of grid, random"]),
        ({"metric": "accuracy"}, {"optimizer.lr": [0.01]}, ["metric: expected one of val_acc"]),
        ({"parallelism": 0}, {"optimizer.lr": [0.01]}, ["parallelism: expected an int >= 1, got 0"]),
        ({"trials": 3}, {"optimizer.lr": [0.01]}, ["trials: only used with method: random"]),
        ({"overrides": {"train.epochs": 0}}, {"optimizer.lr": [0.01]}, ["overrides.train.epochs", "expected an int >= 1, got 0"]),
        ({"base": "no-such-config"}, {"optimizer.lr": [0.01]}, ["sweep.yaml:", "base:", "no-such-config: config file not found"]),
    ],
)
def test_a_bad_sweep_file_is_one_error_line_naming_key_and_line(
    tmp_path: Path, extra: dict, parameters: dict, fragments: list[str]
) -> None:
    path = make_sweep_folder(tmp_path, parameters, **extra)
    runs = tmp_path / "runs"
    outcome = invoke_cli(["sweep", path, "--runs-root", runs])
    message = error_line(outcome, EXIT_BAD_INPUT, *fragments)
    # the YAML line of the key, unless the key is the one missing from the file
    assert re.search(r"sweep\.yaml:\d+: ", message) or "missing" in message, message
    assert not runs.exists()  # nothing started


def test_the_error_line_points_at_the_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("base: smoke\nparameters:\n  optimizer.lr:\n    - 0.01\n    - fast\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    assert str(caught.value).startswith(f"{path}:5: parameters.optimizer.lr[1]: optimizer.lr: expected a number")


def test_a_combination_that_cannot_work_fails_its_trial_not_the_file(tmp_path: Path) -> None:
    # Each value is fine alone (layer 3 sees a 14-pixel map: a 16-pixel kernel fits it with padding 1, and any
    # kernel up to 14 fits it without padding); a 16-pixel kernel without padding does not.
    path = make_sweep_folder(tmp_path, {"model.layers[3].kernel_size": [3, 16], "model.layers[3].padding": [1, 0]})
    spec = load_sweep(path)
    assert spec.trial_config(spec.trials[0]).model.layers[3].kernel_size == (3, 3)
    with pytest.raises(ConfigError, match="kernel"):
        spec.trial_config(Trial(4, spec.trials[3].params))


def test_without_dask_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_sweep_folder(tmp_path, {"optimizer.lr": [0.01]})
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    outcome = invoke_cli(["sweep", path, "--runs-root", tmp_path / "runs"])
    error_line(outcome, EXIT_BAD_INPUT, 'pip install ".[sweep]"')
    assert not (tmp_path / "runs").exists()


def test_loguniform_draws_are_floats_that_round_trip(tmp_path: Path) -> None:
    path = make_sweep_folder(tmp_path, {"optimizer.lr": {"loguniform": [1e-5, 1e-1]}}, method="random", trials=5)
    spec = load_sweep(path)
    for trial in spec.trials:
        assert math.isclose(spec.trial_config(trial).optimizer.lr, trial.params["optimizer.lr"], rel_tol=0, abs_tol=0)
