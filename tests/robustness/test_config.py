"""Broken and hostile configs (issue 6, cases 8-13): one line naming the file, line and key; exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_cli.config.load import builtin_configs
from cnn_cli.runs.folders import DEFAULT_RUNS_ROOT
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, run_cli
from tests.support.synthetic import make_idx_dataset

CONFIG_TEXT = """\
name: tiny
model:
  layers:
    - type: conv2d
      out_channels: 4
      kernel_size: 3
      stride: 2
      padding: 1
    - type: relu
    - type: dropout
      p: 0.1
    - type: flatten
    - type: dense
      out_features: 10
data:
  dataset: idx
  val_size: 100
  paths:
    train_images: TRAIN_IMAGES
    train_labels: TRAIN_LABELS
    test_images: TEST_IMAGES
    test_labels: TEST_LABELS
optimizer:
  name: adam
  lr: 0.01
train:
  epochs: 1
  batch_size: 32
  plots: false
"""


@pytest.fixture(scope="module")
def idx_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"), n_train=300, n_test=100)


@pytest.fixture
def good_text(idx_paths: dict[str, str]) -> str:
    text = CONFIG_TEXT
    for role, path in idx_paths.items():
        text = text.replace(role.upper(), path)
    return text


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """1-based number of the first line holding ``fragment``."""
    return next(i for i, line in enumerate(text.splitlines(), start=1) if fragment in line)


def write(folder: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_good_config_is_accepted(tmp_path: Path, good_text: str) -> None:
    outcome = invoke_cli(["summary", "--config", write(tmp_path, good_text)])
    assert outcome.code == 0, outcome.output
    assert outcome.stderr == ""


# ---------------------------------------------------------------- case 8: YAML syntax


SYNTAX_ERRORS = {
    # name: (old, new, line, column, words); line relative to the edited one, None for the end of the file
    "unclosed list": ("  epochs: 1\n", "  epochs: [1, 2\n", 1, 13, "expected ',' or ']'"),
    "tab indentation": ("  batch_size: 32\n", "\tbatch_size: 32\n", 0, 1, "found character '\\t'"),
    "bad indentation": ("  batch_size: 32\n", " batch_size: 32\n", 0, 2, "expected <block end>"),
    "unclosed quote": ("  lr: 0.01\n", '  lr: "0.01\n', None, 1, "found unexpected end of stream"),
    "stray colon": ("  dataset: idx\n", "  dataset: idx: mnist\n", 0, 15, "mapping values are not allowed here"),
}


@pytest.mark.parametrize("case", list(SYNTAX_ERRORS))
def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path, good_text: str, case: str) -> None:
    old, new, line_offset, column, words = SYNTAX_ERRORS[case]
    text = edited(good_text, old, new)
    if line_offset is None:
        line = len(text.splitlines()) + 1
    else:
        line = line_of(text, new.strip()) + line_offset
    config = write(tmp_path, text)
    for command in ("summary", "train"):
        message = error_line(invoke_cli([command, "--config", config]), EXIT_BAD_INPUT, words)
        assert message.startswith(f"{config}:{line}:{column}: YAML error: "), message


@pytest.mark.parametrize("optimize", [False, True], ids=["python", "python -O"])
def test_yaml_syntax_error_from_a_real_process(tmp_path: Path, good_text: str, optimize: bool) -> None:
    text = edited(good_text, "  epochs: 1\n", "  epochs: [1, 2\n")
    config = write(tmp_path, text)
    outcome = run_cli(["train", "--config", config], cwd=tmp_path, optimize=optimize)
    error_line(outcome, EXIT_BAD_INPUT, f"{config}:{line_of(text, 'epochs') + 1}:13: YAML error")
    assert not (tmp_path / DEFAULT_RUNS_ROOT).exists()


# ---------------------------------------------------------------- case 9: unknown keys


UNKNOWN_KEYS = {
    "nested key": ("  epochs: 1", "  epoch: 1", "train.epoch: unknown key; did you mean 'epochs'?"),
    "section": ("optimizer:", "optimiser:", "optimiser: unknown key; did you mean 'optimizer'?"),
    "deep key": (
        "  val_size: 100",
        "  val_size: 100\n  augment:\n    translat: 2",
        "data.augment.translat: unknown key; did you mean 'translate'?",
    ),
}


@pytest.mark.parametrize("case", list(UNKNOWN_KEYS))
def test_unknown_key_in_the_file_suggests_the_closest(tmp_path: Path, good_text: str, case: str) -> None:
    old, new, expected = UNKNOWN_KEYS[case]
    text = edited(good_text, old, new)
    bad_key = expected.split(":")[0].rsplit(".", 1)[-1]
    config = write(tmp_path, text)
    message = error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, expected)
    assert message.startswith(f"{config}:{line_of(text, bad_key + ':')}: "), message


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("train.epoch=3", "train.epoch: unknown key; did you mean 'epochs'?"),
        ("optimizer.lrr=0.1", "optimizer.lrr: unknown key; did you mean 'lr'?"),
        ("optimiser.lr=0.1", "optimiser: unknown key; did you mean 'optimizer'?"),
        ("trian.epochs=3", "trian: unknown key; did you mean 'train'?"),
    ],
)
def test_unknown_key_in_set_suggests_the_closest(tmp_path: Path, good_text: str, assignment: str, expected: str) -> None:
    """A key that is not in the file has no line to point at; naming the file and the key is enough."""
    config = write(tmp_path, good_text)
    outcome = invoke_cli(["summary", "--config", config, "--set", assignment], timeout=3)
    error_line(outcome, EXIT_BAD_INPUT, str(config), expected)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "      kernel_size: 3",
            "      kernal_size: 3",
            "model.layers[0] (conv2d): unknown option 'kernal_size' (did you mean 'kernel_size'?)",
        ),
        ("    - type: relu", "    - type: rellu", "model.layers[1]: unknown layer type 'rellu' (did you mean 'relu'?)"),
        (
            "  name: adam",
            "  name: adan",
            "optimizer.name: expected one of sgd, momentum, nesterov, adam, got 'adan' (did you mean 'adam'?)",
        ),
    ],
)
def test_unknown_layer_option_type_or_choice_suggests_the_closest(
    tmp_path: Path, good_text: str, old: str, new: str, expected: str
) -> None:
    config = write(tmp_path, edited(good_text, old, new))
    error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, expected)


# ---------------------------------------------------------------- case 10: types and ranges


BAD_VALUES = {
    "lr not a number": ("  lr: 0.01", '  lr: "abc"', "optimizer.lr: expected a number > 0, got 'abc'"),
    "negative lr": ("  lr: 0.01", "  lr: -0.1", "optimizer.lr: expected a number > 0, got -0.1"),
    "zero batch size": ("  batch_size: 32", "  batch_size: 0", "train.batch_size: expected an int >= 1, got 0"),
    "fractional batch size": ("  batch_size: 32", "  batch_size: 2.5", "train.batch_size: expected an int >= 1, got 2.5"),
    "bool epochs": ("  epochs: 1", "  epochs: yes", "train.epochs: expected an int >= 1, got True"),
    "negative val_size": ("  val_size: 100", "  val_size: -1", "data.val_size: expected an int >= 0, got -1"),
    "dataset choice": (
        "  dataset: idx",
        "  dataset: mnsit",
        "data.dataset: expected one of mnist, fashion-mnist, idx, folder, got 'mnsit' (did you mean 'mnist'?)",
    ),
    "init choice": ("model:\n", "model:\n  init: 3\n", "model.init: expected one of kaiming, xavier, small, got 3"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_wrong_type_or_range_in_the_file_names_the_key_and_line(tmp_path: Path, good_text: str, case: str) -> None:
    old, new, expected = BAD_VALUES[case]
    text = edited(good_text, old, new)
    key = expected.split(":")[0].rsplit(".", 1)[-1]
    config = write(tmp_path, text)
    message = error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, expected)
    assert message.startswith(f"{config}:{line_of(text, key + ':')}: "), message


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("model.layers[0].kernel_size=-1", "model.layers[0] (conv2d): kernel_size: expected a positive int"),
        ("model.layers[0].out_channels=0", "model.layers[0] (conv2d): out_channels: expected a positive int"),
        ("model.layers[0].stride=[2, 0]", "model.layers[0] (conv2d): stride: expected a positive int"),
        ("model.layers[2].p=1.0", "model.layers[2] (dropout): p: expected a number >= 0.0 and < 1.0, got 1.0"),
        ("model.layers[2].p=1.5", "model.layers[2] (dropout): p: expected a number >= 0.0 and < 1.0, got 1.5"),
        ("model.layers[2].p=-0.1", "model.layers[2] (dropout): p: expected a number >= 0.0 and < 1.0, got -0.1"),
        ("train.batch_size=0", "train.batch_size: expected an int >= 1, got 0"),
        ("optimizer.momentum=1.0", "optimizer.momentum: expected a number >= 0 and < 1, got 1.0"),
        ("optimizer.betas=[0.9, 1.0]", "optimizer.betas: expected two numbers in [0, 1), got [0.9, 1.0]"),
        ("schedule.gamma=0", "schedule.gamma: expected a number > 0, got 0"),
        ("train.dtype=float16", "train.dtype: expected one of float32, float64, got 'float16'"),
        ("train.epochs=three", "train.epochs: expected an int >= 1, got 'three'"),
    ],
)
def test_wrong_type_or_range_in_set_names_the_key(tmp_path: Path, good_text: str, assignment: str, expected: str) -> None:
    config = write(tmp_path, good_text)
    outcome = invoke_cli(["summary", "--config", config, "--set", assignment], timeout=3)
    error_line(outcome, EXIT_BAD_INPUT, expected)


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("optimizer.lr=.nan", "optimizer.lr"),
        ("optimizer.lr=.inf", "optimizer.lr"),
        ("optimizer.momentum=.nan", "optimizer.momentum"),
        ("optimizer.weight_decay=.inf", "optimizer.weight_decay"),
        ("schedule.gamma=.nan", "schedule.gamma"),
    ],
)
def test_non_finite_numbers_are_out_of_range(tmp_path: Path, good_text: str, assignment: str, key: str) -> None:
    """``.nan`` and ``.inf`` are YAML floats; NaN passes every ``<``/``>`` bound unless checked on its own."""
    config = write(tmp_path, good_text)
    outcome = invoke_cli(["train", "--config", config, "--set", assignment, "--print-config"], timeout=3)
    error_line(outcome, EXIT_BAD_INPUT, key)


def test_bad_value_from_a_real_process_under_python_O(tmp_path: Path, good_text: str) -> None:
    text = edited(good_text, "  batch_size: 32", "  batch_size: 0")
    config = write(tmp_path, text)
    outcome = run_cli(["train", "--config", config], cwd=tmp_path, optimize=True)
    error_line(outcome, EXIT_BAD_INPUT, f"{config}:{line_of(text, 'batch_size')}: train.batch_size: expected an int >= 1")


# ---------------------------------------------------------------- case 11: unsafe YAML tags


def _tagged(good_text: str, tag_line: str) -> str:
    return edited(good_text, "name: tiny\n", f"name: tiny\ndescription: {tag_line}\n")


def unsafe_tags(marker: Path) -> dict[str, str]:
    return {
        "object/apply": f'!!python/object/apply:builtins.open ["{marker}", "w"]',
        "object/new": f'!!python/object/new:builtins.open ["{marker}", "w"]',
        "name": "!!python/name:os.system",
        "module": "!!python/module:os",
        "object": "!!python/object:pathlib.PurePosixPath {}",
    }


@pytest.mark.parametrize("tag", ["object/apply", "object/new", "name", "module", "object"])
def test_python_tags_are_refused_and_never_run(tmp_path: Path, good_text: str, tag: str) -> None:
    marker = tmp_path / "marker"
    text = _tagged(good_text, unsafe_tags(marker)[tag])
    config = write(tmp_path, text)
    for command in ("summary", "train"):
        message = error_line(invoke_cli([command, "--config", config]), EXIT_BAD_INPUT, "Python object tags are refused")
        assert message.startswith(f"{config}:{line_of(text, 'description')}:"), message
    assert not marker.exists()


@pytest.mark.parametrize("optimize", [False, True], ids=["python", "python -O"])
def test_python_tag_refused_by_a_real_process(tmp_path: Path, good_text: str, optimize: bool) -> None:
    marker = tmp_path / "marker"
    config = write(tmp_path, _tagged(good_text, unsafe_tags(marker)["object/apply"]))
    outcome = run_cli(["train", "--config", config], cwd=tmp_path, optimize=optimize)
    error_line(outcome, EXIT_BAD_INPUT, str(config), "Python object tags are refused")
    assert not marker.exists()
    assert not (tmp_path / DEFAULT_RUNS_ROOT).exists()


def test_python_tag_in_a_run_folder_config_is_refused_on_resume(tmp_path: Path, good_text: str) -> None:
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write(run, _tagged(good_text, unsafe_tags(marker)["object/apply"]), "config.yaml")
    outcome = invoke_cli(["train", "--resume", run])
    error_line(outcome, EXIT_BAD_INPUT, str(run / "config.yaml"), "Python object tags are refused")
    assert not marker.exists()


# ---------------------------------------------------------------- case 12: impossible shapes


IMPOSSIBLE = {
    "kernel larger than input": (
        "      kernel_size: 3\n      stride: 2",
        "      kernel_size: 40\n      stride: 2",
        "model.layers[0] (conv2d): kernel 40x40 (dilation 1x1) is larger than its padded input 30x30",
    ),
    "pool larger than its input": (
        "    - type: relu\n",
        "    - type: relu\n    - type: maxpool2d\n      kernel_size: 20\n",
        "model.layers[2] (maxpool2d): kernel 20x20 is larger than its padded input 14x14",
    ),
    "groups do not divide": (
        "      padding: 1\n",
        "      padding: 1\n      groups: 3\n",
        "model.layers[0] (conv2d): groups=3 must divide in_channels=1 and out_channels=4",
    ),
    "conv after flatten": (
        "    - type: flatten\n",
        "    - type: flatten\n    - type: conv2d\n      out_channels: 2\n      kernel_size: 3\n",
        "model.layers[4] (conv2d): kernel 3x3 (dilation 1x1) is larger than its padded input 1x1",
    ),
    "binary loss with ten outputs": (
        "data:\n",
        "  loss: binary_cross_entropy\ndata:\n",
        "model.loss: binary_cross_entropy needs one output, the last layer gives (10,)",
    ),
}


@pytest.mark.parametrize("case", list(IMPOSSIBLE))
def test_impossible_architecture_fails_at_build_time_naming_the_layer(tmp_path: Path, good_text: str, case: str) -> None:
    old, new, expected = IMPOSSIBLE[case]
    config = write(tmp_path, edited(good_text, old, new))
    error_line(invoke_cli(["summary", "--config", config]), EXIT_BAD_INPUT, expected)


def test_impossible_architecture_in_train_leaves_no_run_folder(tmp_path: Path, good_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input is refused before anything is written: no empty run folders pile up under runs/."""
    old, new, expected = IMPOSSIBLE["kernel larger than input"]
    config = write(tmp_path, edited(good_text, old, new))
    monkeypatch.chdir(tmp_path)
    error_line(invoke_cli(["train", "--config", config]), EXIT_BAD_INPUT, expected)
    runs = tmp_path / DEFAULT_RUNS_ROOT
    assert not runs.exists() or not any(runs.iterdir()), sorted(p.name for p in runs.iterdir())


def test_impossible_architecture_from_a_real_process_under_python_O(tmp_path: Path, good_text: str) -> None:
    old, new, expected = IMPOSSIBLE["pool larger than its input"]
    config = write(tmp_path, edited(good_text, old, new))
    error_line(run_cli(["summary", "--config", config], optimize=True), EXIT_BAD_INPUT, expected)


# ---------------------------------------------------------------- case 13: missing config file


@pytest.mark.parametrize("command", ["train", "summary", "gradcheck"])
@pytest.mark.parametrize("name", ["nope.yaml", "nope", "configs/nope.yaml"])
def test_missing_config_names_the_path_and_the_built_in_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    message = error_line(invoke_cli([command, "--config", name]), EXIT_BAD_INPUT, f"{name}: config file not found")
    built_in = builtin_configs()
    assert {"mnist", "smoke", "lenet5"} <= set(built_in)
    assert message.endswith("one of the built-in configs: " + ", ".join(built_in)), message
    assert not (tmp_path / DEFAULT_RUNS_ROOT).exists()


def test_missing_config_from_a_real_process(tmp_path: Path) -> None:
    outcome = run_cli(["train", "--config", "mnsit.yaml"], cwd=tmp_path)
    message = error_line(outcome, EXIT_BAD_INPUT, "mnsit.yaml: config file not found")
    assert "mnist" in message.split("built-in configs:")[1]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("mnst", "did you mean mnist or mnist-sgd? "),
        ("lenet", "did you mean lenet5? "),
        ("smok.yaml", "did you mean smoke? "),
    ],
)
def test_a_misspelt_built_in_config_suggests_the_closest_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, suggestion: str
) -> None:
    monkeypatch.chdir(tmp_path)
    message = error_line(
        invoke_cli(["train", "--config", name]), EXIT_BAD_INPUT, f"{name}: config file not found; {suggestion}Or give a path"
    )
    assert message.endswith("one of the built-in configs: " + ", ".join(builtin_configs()))
    unlike = error_line(invoke_cli(["train", "--config", "xyz"]), EXIT_BAD_INPUT, "xyz: config file not found; give a path")
    assert "did you mean" not in unlike


def test_a_folder_given_as_config_is_a_clean_error(tmp_path: Path) -> None:
    error_line(invoke_cli(["summary", "--config", tmp_path]), EXIT_BAD_INPUT, str(tmp_path))
