"""An untrained net starts at the loss of a uniform guess, ln C (cnn docs initial-loss).

With p = 1/C for every class the cross-entropy is −ln(1/C) = ln C: ln 10 = 2.30 for the
10-class configs, ln 2 = 0.69 for the two-class ones. The output layer is drawn small
(N(0, 0.01/fan_in)) so the logits start close to 0; with Kaiming on the output layer,
notes 000's network started at 4.8.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnn_cli.config.load import builtin_configs, load_config
from cnn_cli.data.prepare import load_dataset
from cnn_cli.model.network import build_model


@pytest.fixture(scope="module")
def real_splits(mnist_data_dir):
    """Real MNIST, loaded once per class selection."""
    loaded: dict[tuple, object] = {}

    def splits(config):
        key = (config.data.dataset, tuple(config.data.classes or ()))
        if key not in loaded:
            loaded[key] = load_dataset(
                config.data.dataset, mnist_data_dir, val_size=config.data.val_size, classes=config.data.classes, progress=False
            )
        return loaded[key]

    return splits


@pytest.mark.parametrize("name", [name for name in builtin_configs() if load_config(name).data.dataset == "mnist"])
def test_every_shipped_config_starts_near_ln_c(name, real_splits):
    config = load_config(name)
    assert config.data.dataset == "mnist", "this test reads real MNIST"
    splits = real_splits(config)
    for seed in (0, 1, 2):
        model = build_model(config, seed=seed, dtype="float32")
        if model.loss.name == "sum_squared_error":
            pytest.skip("no ln C for a squared error")
        rng = np.random.default_rng(seed)
        batch = rng.choice(len(splits.train.labels), 256, replace=False)
        loss, _ = model.loss(model.forward(splits.train.images[batch], training=False), splits.train.labels[batch])
        classes = model.loss.num_classes
        assert classes == (2 if config.data.classes else 10)
        assert loss == pytest.approx(math.log(classes), rel=0.1), f"{name}, seed {seed}: untrained loss {loss:.3f}, ln {classes}"
