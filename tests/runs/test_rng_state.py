"""The generators a checkpoint keeps: every dropout's, the ones inside residual blocks too."""

from __future__ import annotations

import numpy as np

from cnn_cli.model.network import build_model
from cnn_cli.runs.rng_state import model_rng_state, restore_rng_state

NET = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"type": "dropout", "p": 0.5},
        {
            "type": "residual",
            "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}, {"type": "dropout", "p": 0.5}],
        },
        {"type": "flatten"},
        {"type": "dense", "out_features": 3},
    ],
}


def test_a_restored_state_draws_the_same_masks_inside_blocks_too() -> None:
    model = build_model(NET, seed=0, dtype="float64")
    state = model_rng_state(model)
    assert set(state) == {"dropout1", "res1.dropout1"}
    x = np.random.default_rng(1).normal(size=(4, 1, 6, 6))
    first = model.forward(x, training=True)
    restore_rng_state(model, state)
    np.testing.assert_array_equal(model.forward(x, training=True), first)
    assert not np.array_equal(model.forward(x, training=True), first), "without the restore the masks differ (the test can fail)"
