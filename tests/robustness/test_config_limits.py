"""Hostile and clumsy configs, round 2 (issue 13, config side): one line each, bounded in time and memory.

Inputs that could blow up (alias bombs, deep nesting, huge files, absurd layer sizes)
run in a real child process under an address-space cap and a timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, MAX_YAML_DEPTH
from cnn_cli.errors import ConfigError, ModelBuildError
from cnn_cli.runs.folders import DEFAULT_RUNS_ROOT
from tests.support import REPO_ROOT
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, run_cli_bounded

MNIST_YAML = yaml.safe_load((REPO_ROOT / "configs" / "mnist.yaml").read_text())

SMALL = """\
name: small
model:
  input_shape: [1, 8, 8]
  layers:
    - type: conv2d
      out_channels: 2
      kernel_size: 3
    - type: flatten
    - type: dense
      out_features: 10
train:
  epochs: 1
  batch_size: 4
"""


def write(folder: Path, text: str, name: str = "small.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def no_run_folder(cwd: Path) -> None:
    runs = cwd / DEFAULT_RUNS_ROOT
    assert not runs.exists() or not any(runs.iterdir()), sorted(p.name for p in runs.iterdir())


# ---------------------------------------------------------------- YAML: duplicates, bombs, depth, size


def test_duplicate_section_is_refused_naming_both_lines(tmp_path: Path) -> None:
    text = SMALL + "train:\n  epochs: 3\n"
    config = write(tmp_path, text)
    first = text.splitlines().index("train:") + 1
    second = len(text.splitlines()) - 1
    message = error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, "duplicate key 'train'", f"first at line {first}")
    assert message.startswith(f"{config}:{second}:"), message


def test_duplicate_key_inside_a_layer_is_refused(tmp_path: Path) -> None:
    text = SMALL.replace("      kernel_size: 3\n", "      kernel_size: 3\n      kernel_size: 5\n")
    error_line(invoke_cli(["summary", "--config", write(tmp_path, text)]), EXIT_BAD_INPUT, "duplicate key 'kernel_size'")


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """``<<: *base`` then an explicit key is YAML's way to override, not a duplicate."""
    text = SMALL.replace("train:\n  epochs: 1\n  batch_size: 4\n", "train:\n  <<: {epochs: 1, batch_size: 4}\n  batch_size: 8\n")
    config = load_config(write(tmp_path, text))
    assert (config.train.epochs, config.train.batch_size) == (1, 8)


BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["description: *i"]
)


def test_billion_laughs_is_refused_quickly_in_little_memory(tmp_path: Path) -> None:
    config = write(tmp_path, BILLION_LAUGHS)
    started = time.monotonic()
    outcome = run_cli_bounded(["summary", "--config", config], cwd=tmp_path, timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, str(config), "YAML error", "aliases included")
    assert time.monotonic() - started < 20


def test_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, SMALL + "description: &loop [*loop]\n")
    error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, "YAML error", "contains itself")


@pytest.mark.parametrize(("opening", "depth"), [("[", 60_000), ("{a: ", 25_000)], ids=["lists", "mappings"])
def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path, opening: str, depth: int) -> None:
    closing = "]" if opening == "[" else "}"
    config = write(tmp_path, "description: " + opening * depth + "1" + closing * depth + "\n")
    outcome = run_cli_bounded(["summary", "--config", config], cwd=tmp_path, timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, f"nested deeper than {MAX_YAML_DEPTH} levels")


def test_reasonable_nesting_and_aliases_are_still_fine(tmp_path: Path) -> None:
    """A 30-deep value parses up to the schema (which wants a string); an anchor reused for two layers is fine."""
    nested = write(tmp_path, SMALL + "description: " + "[" * 30 + "1" + "]" * 30 + "\n")
    error_line(invoke_cli(["summary", "--config", nested]), EXIT_BAD_INPUT, "description: expected a string")
    text = SMALL.replace("    - type: flatten\n", "    - &act {type: relu}\n    - *act\n    - type: flatten\n")
    assert [spec.type for spec in load_config(write(tmp_path, text)).model.layers] == ["conv2d", "relu", "relu", "flatten", "dense"]


def test_a_multi_megabyte_config_is_refused_before_parsing(tmp_path: Path) -> None:
    config = write(tmp_path, SMALL + "description: " + "x" * (5 << 20) + "\n")
    started = time.monotonic()
    outcome = run_cli_bounded(["train", "--config", config], cwd=tmp_path, timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, str(config), f"over the limit of {MAX_CONFIG_BYTES:,}")
    assert time.monotonic() - started < 20
    no_run_folder(tmp_path)


def test_a_config_too_big_to_store_with_its_checkpoints_is_refused() -> None:
    """What cnn writes, cnn must read: the stored config must fit the checkpoint's metadata limit."""
    with pytest.raises(ConfigError, match="description"):
        config_from_dict({**MNIST_YAML, "description": "x" * (MAX_CONFIG_BYTES + 1)})


def test_huge_integer_is_one_line(tmp_path: Path) -> None:
    config = write(tmp_path, SMALL.replace("batch_size: 4", "batch_size: " + "9" * 5000))
    error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, str(config), "YAML error")


# ---------------------------------------------------------------- --set


@pytest.mark.parametrize(("written", "value"), [("1e-3", 0.001), ("2E-4", 0.0002), ("5e2", 500.0), ("1.5e-3", 0.0015), ("3", 3.0)])
def test_floats_as_people_type_them(tmp_path: Path, written: str, value: float) -> None:
    assert load_config(write(tmp_path, SMALL), [f"optimizer.lr={written}"]).optimizer.lr == value
    in_file = SMALL + f"optimizer:\n  lr: {written}\n"
    assert load_config(write(tmp_path, in_file)).optimizer.lr == value


def test_quoted_exponent_stays_a_string(tmp_path: Path) -> None:
    error_line(
        invoke_cli(["summary", "--config", write(tmp_path, SMALL + 'optimizer:\n  lr: "1e-3"\n')]),
        EXIT_BAD_INPUT,
        "optimizer.lr: expected a number > 0, got '1e-3'",
    )


def test_set_errors_name_the_set_not_a_line_of_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, SMALL)
    message = error_line(
        invoke_cli(["summary", "--config", config, "--set", "train.epoch=2"]),
        EXIT_BAD_INPUT,
        "--set train.epoch=2",
        "train.epoch: unknown key; did you mean 'epochs'?",
    )
    assert f"{config}:" not in message, message  # no line number: the user never wrote that line
    message = error_line(
        invoke_cli(["summary", "--config", config, "--set", "train.batch_size=0"]),
        EXIT_BAD_INPUT,
        "--set train.batch_size=0: train.batch_size: expected an int >= 1, got 0",
    )
    assert f"{config}:" not in message, message


def test_a_file_error_still_points_at_its_line_when_set_is_used(tmp_path: Path) -> None:
    text = SMALL.replace("batch_size: 4", "batch_size: 0")
    config = write(tmp_path, text)
    line = text.splitlines().index("  batch_size: 0") + 1
    error_line(
        invoke_cli(["summary", "--config", config, "--set", "train.epochs=2"]),
        EXIT_BAD_INPUT,
        f"{config}:{line}: train.batch_size: expected an int >= 1, got 0",
    )


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("data.limit=0", "data.limit: expected an int >= 1 or null, got 0"),
        ("data.std=0", "data.std: expected a number > 0 or null, got 0"),
        ("data.augment.rotate=270", "data.augment.rotate: expected a number >= 0 and <= 180, got 270"),
        ("optimizer.clip_grad_norm=-1", "optimizer.clip_grad_norm: expected a number > 0 or null, got -1"),
        ("train.early_stopping_patience=0", "train.early_stopping_patience: expected an int >= 1 or null, got 0"),
    ],
)
def test_range_errors_state_the_range(tmp_path: Path, assignment: str, expected: str) -> None:
    error_line(invoke_cli(["summary", "--config", write(tmp_path, SMALL), "--set", assignment]), EXIT_BAD_INPUT, expected)


def test_negative_list_index_counts_from_the_end(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SMALL), ["model.layers[-1].out_features=3", "model.layers[-3].out_channels=5"])
    assert config.model.layers[2].out_features == 3  # type: ignore[attr-defined]
    assert config.model.layers[0].out_channels == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("model.layers[3].out_features=3", "--set model.layers[3].out_features=3: model.layers has 3 item(s) (indices 0..2"),
        ("model.layers[-4].out_features=3", "no item -4"),
        ("model.layers[x].out_features=3", "cannot read key 'model.layers[x].out_features'"),
        ("model.layers[-1].kernel_size=3", "--set model.layers[-1].kernel_size=3: model.layers[2] (dense): unknown option 'kernel_size'"),
    ],
)
def test_bad_list_index_in_set_gets_a_sensible_message(tmp_path: Path, assignment: str, expected: str) -> None:
    message = error_line(invoke_cli(["summary", "--config", write(tmp_path, SMALL), "--set", assignment]), EXIT_BAD_INPUT, expected)
    assert "did you mean 'layers'" not in message


# ---------------------------------------------------------------- validated before anything is created


def test_translate_as_large_as_the_image_is_refused_before_a_run_folder_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, SMALL + "data:\n  augment:\n    translate: 8\n")
    error_line(
        invoke_cli(["train", "--config", config]),
        EXIT_BAD_INPUT,
        "data.augment.translate: expected an int in [0, 8) pixels (smaller than the 8x8 input), got 8",
    )
    no_run_folder(tmp_path)


@pytest.mark.parametrize("command", [["train", "--seed", "-1"], ["train", "--set", "train.seed=-1"], ["summary", "--set", "train.seed=-1"]])
def test_negative_seed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, SMALL)
    error_line(invoke_cli([command[0], "--config", config, *command[1:]]), EXIT_BAD_INPUT, "train.seed: expected an int >= 0, got -1")
    no_run_folder(tmp_path)


def test_gradcheck_negative_seed_is_one_line(tmp_path: Path) -> None:
    error_line(
        invoke_cli(["gradcheck", "--config", write(tmp_path, SMALL), "--seed", "-1"]), EXIT_BAD_INPUT, "seed: expected an int >= 0, got -1"
    )


# ---------------------------------------------------------------- absurd sizes: refused with an estimate, before allocating


ABSURD = {
    "out_channels 1e8": ("model.layers[0].out_channels=100000000", "needs about"),
    "out_features 1e20": ("model.layers[2].out_features=1e20", "out_features: expected a positive int, got 1e+20"),
    "out_features 10**20": ("model.layers[2].out_features=100000000000000000000", "more than any machine has"),
    "padding 1e20": ("model.layers[0].padding=1e20", "padding: expected an int >= 0 and <= 65536"),
    "padding 10**20": ("model.layers[0].padding=100000000000000000000", "padding: expected an int >= 0 and <= 65536"),
    "stride 2**63-1": (f"model.layers[0].stride={2**63 - 1}", "stride: expected a positive int <= 65536"),
    "huge input": ("model.input_shape=[1, 100000, 100000]", "needs about"),
}
# A batch larger than the dataset is no longer refused by its estimate: it is estimated at the dataset's size and
# clamped to the training images when the run starts (tests/robustness/test_option_ranges.py).


@pytest.mark.parametrize("case", list(ABSURD))
@pytest.mark.parametrize("command", ["summary", "train"])
def test_absurd_sizes_are_refused_in_a_bounded_process(tmp_path: Path, case: str, command: str) -> None:
    assignment, expected = ABSURD[case]
    outcome = run_cli_bounded([command, "--config", write(tmp_path, SMALL), "--set", assignment], cwd=tmp_path, timeout=30)
    message = error_line(outcome, EXIT_BAD_INPUT, expected)
    if "needs about" in message:
        assert "train.memory_limit_gb" in message, message
    no_run_folder(tmp_path)


def test_memory_limit_can_be_raised(tmp_path: Path) -> None:
    """A big model is only refused by the estimate; raising train.memory_limit_gb lets it through."""
    config = write(tmp_path, SMALL)
    big_layer = "model.layers[0].out_channels=150000"
    message = error_line(invoke_cli(["summary", "--config", config, "--set", big_layer]), EXIT_BAD_INPUT, "needs about")
    suggested = message.split("--set train.memory_limit_gb=")[1].split(")")[0]
    outcome = invoke_cli(["summary", "--config", config, "--set", big_layer, "--set", f"train.memory_limit_gb={suggested}"])
    assert outcome.code == 0, outcome.output


def test_gradcheck_with_a_huge_batch_is_refused_before_allocating(tmp_path: Path) -> None:
    outcome = run_cli_bounded(["gradcheck", "--config", "mnist", "--batch-size", "100000"], cwd=tmp_path, timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, "needs about", "batch of 100000 in float64", "smaller --batch-size")


def test_a_stored_config_with_a_huge_model_is_refused_without_building_it() -> None:
    """A checkpoint's config is validated like a file: a huge declared model costs nothing to refuse."""
    data = {**MNIST_YAML, "model": {**MNIST_YAML["model"], "input_shape": [1, 28, 28]}}
    data["model"]["layers"] = [*MNIST_YAML["model"]["layers"][:-1], {"type": "conv2d", "out_channels": 10**9, "kernel_size": 1}]
    started = time.monotonic()
    with pytest.raises(ModelBuildError, match="needs about"):
        config_from_dict(data)
    assert time.monotonic() - started < 2
