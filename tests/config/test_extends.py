"""Config layering: ``extends: PARENT`` deep-merges a config over a built-in one or another file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnn_cli.config.load import MAX_EXTENDS, load_config, resolve_config_path
from cnn_cli.sweep.spec import parse_sweep
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli

PARENT = """\
name: parent
description: a small parent
model:
  input_shape: [1, 28, 28]
  layers:
    - {type: conv2d, out_channels: 4, kernel_size: 3, stride: 2}
    - {type: relu}
    - {type: flatten}
    - {type: dense, out_features: 10}
optimizer:
  name: momentum
  lr: 0.05
  momentum: 0.8
train:
  epochs: 3
  batch_size: 32
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_mappings_merge_key_by_key_and_lists_replace_whole(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", PARENT)
    child = write(
        tmp_path / "child.yaml",
        "extends: parent.yaml\noptimizer: {lr: 0.01}\nmodel:\n  layers:\n    - {type: flatten}\n    - {type: dense, out_features: 10}\n",
    )
    config = load_config(child)
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.momentum) == ("momentum", 0.01, 0.8)
    assert [layer.type for layer in config.model.layers] == ["flatten", "dense"]  # the child's list, not a mix
    assert (config.train.epochs, config.train.batch_size) == (3, 32)
    assert config.description == "a small parent"
    assert config.name == "child"  # a name is never inherited: the file's own, else its file name


def test_a_chain_resolves_paths_next_to_each_file_and_built_in_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "shared" / "mid.yaml", "extends: mnist\nname: mid\ntrain: {epochs: 2, batch_size: 16}\n")
    child = write(tmp_path / "experiments" / "child.yaml", "extends: ../shared/mid.yaml\ntrain: {epochs: 1}\n")
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)  # relative to the file, not the working folder
    config = load_config(Path("..") / "experiments" / "child.yaml")
    mnist = load_config("mnist")
    assert (config.train.epochs, config.train.batch_size) == (1, 16)
    assert config.model == mnist.model and config.data == mnist.data and config.optimizer == mnist.optimizer
    assert config.name == "child" and child.is_file()


def test_errors_name_the_file_and_line_each_value_came_from(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", PARENT.replace("  batch_size: 32", "  batch_size: 0"))
    child = write(tmp_path / "child.yaml", "# a child\nextends: parent.yaml\noptimizer:\n  lr: -1\n")
    # the child's own key: the child's line
    message = error_line(invoke_cli(["summary", "--config", child]), EXIT_BAD_INPUT, f"{child}:4: optimizer.lr")
    assert "parent.yaml" not in message
    # an inherited key: the parent's line
    fixed = write(tmp_path / "fixed.yaml", "extends: parent.yaml\n")
    error_line(invoke_cli(["summary", "--config", fixed]), EXIT_BAD_INPUT, f"{tmp_path / 'parent.yaml'}:16: train.batch_size")
    # overriding the parent's bad value mends it; a --set is still named as the place
    mended = write(tmp_path / "mended.yaml", "extends: parent.yaml\ntrain: {batch_size: 8}\n")
    assert invoke_cli(["summary", "--config", mended]).code == 0
    error_line(
        invoke_cli(["summary", "--config", mended, "--set", "train.epochs=0"]), EXIT_BAD_INPUT, "--set train.epochs=0", "train.epochs"
    )


def test_a_replaced_list_takes_no_lines_from_the_parent(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", PARENT)
    child = write(tmp_path / "child.yaml", "extends: parent.yaml\nmodel:\n  layers:\n    - {type: conv2d, out_channels: 4}\n")
    error_line(invoke_cli(["summary", "--config", child]), EXIT_BAD_INPUT, f"{child}:4: model.layers[0]", "kernel_size")


def test_an_error_in_a_built_in_parent_names_it(tmp_path: Path) -> None:
    child = write(tmp_path / "child.yaml", "extends: mnist\nmodel: {input_shape: [1, 4, 4]}\n")
    error_line(invoke_cli(["summary", "--config", child]), EXIT_BAD_INPUT, "model.layers[")


@pytest.mark.parametrize(
    ("files", "start", "fragments"),
    [
        (
            {"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"},
            "a.yaml",
            ["b.yaml:1: extends", "cycle", "a.yaml -> ", "b.yaml -> "],
        ),
        ({"self.yaml": "name: me\nextends: self.yaml\n"}, "self.yaml", ["self.yaml:2: extends", "cycle"]),
        ({"child.yaml": "\nextends: nowhere.yaml\n"}, "child.yaml", ["child.yaml:2: extends", "cannot find 'nowhere.yaml'", "mnist"]),
        ({"child.yaml": "extends: [mnist]\n"}, "child.yaml", ["child.yaml:1: extends", "expected the name of a built-in config or a path"]),
        ({"child.yaml": "extends: bad.yaml\n", "bad.yaml": "train: {epochs: [1\n"}, "child.yaml", ["bad.yaml:2", "YAML error"]),
        ({"child.yaml": "extends: list.yaml\n", "list.yaml": "- 1\n"}, "child.yaml", ["list.yaml: expected a mapping"]),
    ],
)
def test_a_cycle_a_missing_or_broken_parent_is_one_clear_line(
    tmp_path: Path, files: dict[str, str], start: str, fragments: list[str]
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    for command in (["summary", "--config"], ["train", "--print-config", "--config"]):
        error_line(invoke_cli([*command, tmp_path / start]), EXIT_BAD_INPUT, *fragments)


def test_a_chain_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    for index in range(MAX_EXTENDS + 1):
        write(tmp_path / f"c{index}.yaml", f"extends: c{index + 1}.yaml\n")
    write(tmp_path / f"c{MAX_EXTENDS + 1}.yaml", "extends: smoke\n")
    error_line(invoke_cli(["summary", "--config", tmp_path / "c0.yaml"]), EXIT_BAD_INPUT, f"more than {MAX_EXTENDS} configs")
    assert load_config(tmp_path / "c3.yaml").train == load_config("smoke").train  # c3 ... c17 and smoke: 16 configs are fine


def test_print_config_shows_the_merged_config_which_loads_back_to_itself(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", PARENT)
    child = write(tmp_path / "child.yaml", "extends: parent.yaml\noptimizer: {lr: 0.01}\n")
    outcome = invoke_cli(["train", "--config", child, "--print-config", "--set", "train.epochs=5"])
    assert outcome.code == 0, outcome.output
    printed = yaml.safe_load(outcome.stdout)
    assert "extends" not in printed
    assert printed["optimizer"]["name"] == "momentum" and printed["optimizer"]["lr"] == 0.01 and printed["train"]["epochs"] == 5
    resolved = write(tmp_path / "resolved.yaml", outcome.stdout)
    assert load_config(resolved).as_dict() == load_config(child, ["train.epochs=5"]).as_dict()
    assert (
        invoke_cli(["summary", "--config", child, "--print-config"]).stdout
        == invoke_cli(["train", "--config", child, "--print-config"]).stdout
    )


def test_the_shipped_example_extends_mnist_with_another_optimizer() -> None:
    assert "\nextends: mnist\n" in resolve_config_path("mnist-sgd")[1]
    example, mnist = load_config("mnist-sgd").as_dict(), load_config("mnist").as_dict()
    assert example["optimizer"]["name"] == "momentum" and mnist["optimizer"]["name"] == "adam"
    assert {key for key in mnist if example[key] != mnist[key]} == {"name", "description", "optimizer", "schedule"}
    assert example["model"] == mnist["model"] and example["data"] == mnist["data"] and example["train"] == mnist["train"]


def test_a_sweep_base_may_extend_another_config(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "extends: smoke\ntrain: {batch_size: 16}\n")
    spec = parse_sweep("base: base.yaml\nparameters:\n  optimizer.lr: [0.001, 0.01]\n", str(tmp_path / "sweep.yaml"))
    assert spec.base["train"]["batch_size"] == 16 and spec.base["model"] == load_config("smoke").as_dict()["model"]
    write(tmp_path / "broken.yaml", "extends: smoke\ntrain:\n  batch_size: -4\n")
    with pytest.raises(Exception, match=r"broken\.yaml:3: train\.batch_size"):
        parse_sweep("base: broken.yaml\nparameters:\n  optimizer.lr: [0.001]\n", str(tmp_path / "sweep.yaml"))
