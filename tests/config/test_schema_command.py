"""``cnn schema``: a JSON Schema generated from the config schema, agreeing with the loader."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import builtin_configs, config_to_yaml, load_config, read_config, resolve_config_path
from cnn_cli.errors import ConfigError
from tests.support import REPO_ROOT
from tests.support.cli import invoke_cli

SHIPPED = [
    *(f"builtin:{name}" for name in builtin_configs()),
    *(str(p.relative_to(REPO_ROOT)) for p in sorted((REPO_ROOT / "configs").glob("*.yaml"))),
]


@pytest.fixture(scope="module")
def schema() -> dict:
    outcome = invoke_cli(["schema"])
    assert outcome.code == 0, outcome.output
    printed = json.loads(outcome.stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    return printed


def shipped_data(name: str) -> dict:
    if name.startswith("builtin:"):
        _, text = resolve_config_path(name.removeprefix("builtin:"))
    else:
        text = (REPO_ROOT / name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def test_schema_describes_every_section_and_layer_type(schema: dict) -> None:
    assert set(schema["properties"]) == {"extends", "name", "description", "model", "data", "optimizer", "schedule", "train"}
    assert schema["additionalProperties"] is False
    from cnn_cli.layers import LAYER_TYPES

    tags = {definition["properties"]["type"]["const"] for definition in schema["$defs"].values()}
    assert tags == set(LAYER_TYPES)
    assert schema["properties"]["optimizer"]["properties"]["name"]["enum"] == ["sgd", "momentum", "nesterov", "adam"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_validates_against_the_schema(schema: dict, name: str) -> None:
    data = shipped_data(name)
    jsonschema.validate(data, schema)  # the file as written (a config that extends another holds only its changes)
    if "extends" in data:
        data = read_config(name.removeprefix("builtin:") if name.startswith("builtin:") else REPO_ROOT / name).data
    config = config_from_dict(data)
    jsonschema.validate(yaml.safe_load(config_to_yaml(config)), schema)  # the resolved form written to runs, too


def test_the_resolved_config_loads_back_to_itself(tmp_path: Path) -> None:
    config = load_config("mnist")
    path = tmp_path / "resolved.yaml"
    path.write_text(config_to_yaml(config), encoding="utf-8")
    assert load_config(path).as_dict() == {**config.as_dict(), "name": config.name}


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        target = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


WRONG = {
    "batch size 0": _set("train.batch_size", 0),
    "fractional batch size": _set("train.batch_size", 2.5),
    "bool epochs": _set("train.epochs", True),
    "lr a string": _set("optimizer.lr", "abc"),
    "negative lr": _set("optimizer.lr", -0.1),
    "unknown optimizer": _set("optimizer.name", "adan"),
    "momentum 1": _set("optimizer.momentum", 1.0),
    "one beta": _set("optimizer.betas", [0.9]),
    "beta 1": _set("optimizer.betas", [0.9, 1.0]),
    "unknown dataset": _set("data.dataset", "mnsit"),
    "negative val_size": _set("data.val_size", -1),
    "limit 0": _set("data.limit", 0),
    "rotate 270": _set("data.augment.rotate", 270),
    "unknown key": _set("train.epoch", 3),
    "unknown section": _set("optimiser", {"lr": 0.1}),
    "no layers": _set("model.layers", []),
    "missing out_channels": _set("model.layers.0", {"type": "conv2d", "kernel_size": 3}),
    "unknown layer type": _set("model.layers.1", {"type": "rellu"}),
    "layer without type": _set("model.layers.1", {"negative_slope": 0.1}),
    "unknown layer option": _set("model.layers.0.kernal_size", 3),
    "kernel of three sizes": _set("model.layers.0.kernel_size", [3, 3, 3]),
    "zero stride": _set("model.layers.0.stride", 0),
    "dropout p 1": _set("model.layers.1", {"type": "dropout", "p": 1.0}),
    "negative input size": _set("model.input_shape", [1, -8, 8]),
    "unknown loss": _set("model.loss", "hinge"),
    "float16": _set("train.dtype", "float16"),
    "dotted layer name": _set("model.layers.1.name", "conv1.weight"),
    "negative seed": _set("train.seed", -1),
    "plots as a string": _set("train.plots", "yes"),
    "unknown schedule": _set("schedule.name", "linear"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_schema_and_loader_agree_on_wrong_configs(schema: dict, case: str) -> None:
    data = copy.deepcopy(shipped_data("builtin:mnist"))
    jsonschema.validate(data, schema)
    config_from_dict(copy.deepcopy(data))
    WRONG[case](data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    with pytest.raises(ConfigError):
        config_from_dict(data)


def test_schema_help_has_an_example() -> None:
    outcome = invoke_cli(["schema", "--help"])
    assert outcome.code == 0 and "cnn schema >" in outcome.stdout
