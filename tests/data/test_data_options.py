"""Data settings are checked once, by the config schema, before any file is read or run folder made.

The data layer itself no longer re-validates them (issue 11); these are the
checks that used to live in ``load_dataset``, ``Augment`` and ``iterate_batches``.
"""

from __future__ import annotations

import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.errors import ConfigError


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("train", {"seed": -1}, "train.seed: expected an int >= 0, got -1"),
        ("train", {"seed": 1.5}, "train.seed: expected an int >= 0, got 1.5"),
        ("train", {"batch_size": 0}, "train.batch_size: expected an int >= 1, got 0"),
        ("data", {"val_size": -3}, "data.val_size: expected an int >= 0, got -3"),
        ("data", {"classes": [1, 1]}, r"data.classes: expected at least 2 different labels in 0..9, got \[1, 1\]"),
        ("data", {"classes": [3]}, r"data.classes: expected at least 2 different labels in 0..9, got \[3\]"),
        ("data", {"classes": [0, 10]}, r"data.classes: expected at least 2 different labels in 0..9, got \[0, 10\]"),
        ("data", {"classes": "01"}, "data.classes: expected a list of ints or null, got '01'"),
        ("data", {"limit": 0}, "data.limit: expected an int.* or null, got 0"),
        ("data", {"mean": float("nan")}, "data.mean: expected a number or null, got nan"),
        ("data", {"std": 0.0}, "data.std: expected a number.* or null, got 0.0"),
        ("data", {"paths": {"train_images": "x"}}, "data.paths: expected no paths for dataset 'mnist'"),
        ("data", {"augment": {"translate": -1}}, "data.augment.translate: expected an int >= 0, got -1"),
        ("data", {"augment": {"translate": 1.5}}, "data.augment.translate: expected an int >= 0, got 1.5"),
        (
            "data",
            {"augment": {"translate": 28}},
            r"data.augment.translate: expected an int in \[0, 28\) pixels \(smaller than the 28x28 input\), got 28",
        ),
        ("data", {"augment": {"rotate": -5}}, "data.augment.rotate: expected a number >= 0 and <= 180, got -5"),
        ("data", {"augment": {"rotate": 181}}, "data.augment.rotate: expected a number >= 0 and <= 180, got 181"),
        ("data", {"augment": {"rotate": float("inf")}}, "data.augment.rotate: expected a finite number >= 0 and <= 180, got inf"),
    ],
)
def test_bad_data_settings_are_refused_by_the_schema(section: str, values: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({section: values})


def test_good_data_settings_pass() -> None:
    config = config_from_dict({"data": {"classes": [7, 2], "limit": 10, "augment": {"translate": 27, "rotate": 180}}, "train": {"seed": 0}})
    assert config.data.classes == [7, 2] and config.data.augment.rotate == 180.0
    assert config.data.data_dir is None, "the default cache folder is chosen at load time, not stored"
