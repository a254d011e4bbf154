"""train.early_stopping, train.max_time, train.progress_seconds, train.mlflow: the loader and ``cnn schema`` agree on them."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import builtin_configs, resolve_config_path
from cnn_cli.errors import ConfigError
from tests.support.cli import invoke_cli


@pytest.fixture(scope="module")
def schema() -> dict:
    outcome = invoke_cli(["schema"])
    assert outcome.code == 0, outcome.output
    return json.loads(outcome.stdout)


@pytest.fixture(scope="module")
def smoke() -> dict:
    import yaml

    assert "smoke" in builtin_configs()
    return yaml.safe_load(resolve_config_path("smoke")[1])


def with_train(base: dict, **train) -> dict:
    data = copy.deepcopy(base)
    data["train"].update(train)
    return data


RIGHT = {
    "max_time seconds": ({"max_time": 600}, ("max_time", 600.0)),
    "max_time clock": ({"max_time": "00:10:00"}, ("max_time", 600.0)),
    "max_time with days": ({"max_time": "1:00:00:30"}, ("max_time", 86430.0)),
    "max_time fraction": ({"max_time": "0:00:01.5"}, ("max_time", 1.5)),
    "mlflow local": ({"mlflow": "local"}, ("mlflow", "local")),
    "mlflow server": ({"mlflow": "http://127.0.0.1:5000"}, ("mlflow", "http://127.0.0.1:5000")),
    "progress every 5 s": ({"progress_seconds": 5}, ("progress_seconds", 5.0)),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_schema_and_loader_take_these(schema, smoke, case):
    train, (key, value) = RIGHT[case]
    data = with_train(smoke, **train)
    jsonschema.validate(data, schema)
    assert getattr(config_from_dict(data).train, key) == value


def test_early_stopping_section_defaults_and_full_form(schema, smoke):
    assert config_from_dict(smoke).as_dict()["train"]["early_stopping"] == {
        "patience": None,
        "monitor": "val_acc",
        "mode": "auto",
        "min_delta": 0.0,
        "min_delta_mode": "absolute",
        "start_from_epoch": 0,
        "stop_at": None,
    }
    full = {"patience": 3, "monitor": "val_loss", "mode": "min", "min_delta": 0.01, "min_delta_mode": "relative"}
    data = with_train(smoke, early_stopping={**full, "start_from_epoch": 2, "stop_at": 0.05})
    jsonschema.validate(data, schema)
    assert config_from_dict(data).train.early_stopping.stop_at == 0.05


WRONG = {
    "max_time 0": ({"max_time": 0}, "train.max_time: expected a number of seconds > 0 or a duration"),
    "max_time a word": ({"max_time": "soon"}, "train.max_time:"),
    "max_time 61 seconds in a clock": ({"max_time": "1:61"}, "train.max_time:"),
    "max_time true": ({"max_time": True}, "train.max_time:"),
    "unknown monitor": ({"early_stopping": {"monitor": "loss"}}, "train.early_stopping.monitor: expected one of val_loss, val_acc"),
    "unknown mode": ({"early_stopping": {"mode": "lowest"}}, "train.early_stopping.mode: expected one of auto, min, max"),
    "negative min_delta": ({"early_stopping": {"min_delta": -0.1}}, "train.early_stopping.min_delta: expected a number >= 0"),
    "unknown min_delta_mode": ({"early_stopping": {"min_delta_mode": "percent"}}, "train.early_stopping.min_delta_mode"),
    "patience 0": ({"early_stopping": {"patience": 0}}, "train.early_stopping.patience: expected an int >= 1 or null"),
    "unknown early_stopping key": ({"early_stopping": {"patient": 2}}, "train.early_stopping.patient: unknown key"),
    "mlflow empty": ({"mlflow": ""}, "train.mlflow: expected an MLflow tracking URI"),
    "progress 0": ({"progress_seconds": 0}, "train.progress_seconds: expected a number > 0"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_schema_and_loader_refuse_these(schema, smoke, case):
    train, message = WRONG[case]
    data = with_train(smoke, **train)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        config_from_dict(data)
