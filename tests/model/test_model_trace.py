"""Model.trace and Model.backward_trace: the per-layer views that viz, gradcheck and the web view read."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.model.network import build_model


@pytest.mark.parametrize("config", ["smoke", "mnist", "seed004", "lenet5"])
def test_trace_and_backward_trace_agree_with_forward_and_backward(config):
    model = build_model(config, seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *model.input_shape))
    logits = model.forward(x)
    grad_logits = rng.standard_normal(logits.shape)  # a random upstream gradient, not all ones
    grad_x = model.backward(grad_logits, need_input_grad=True)
    grads = {k: v.copy() for k, v in model.grads.items()}

    steps = model.trace(x)
    assert [s.layer for s in steps] == model.layers
    assert np.array_equal(steps[-1].output, logits)
    for before, after in zip(steps, steps[1:], strict=False):
        assert after.input is before.output
    back = model.backward_trace(grad_logits)
    assert [s.layer for s in back] == model.layers
    assert np.array_equal(back[-1].grad_output, grad_logits)
    assert np.array_equal(back[0].grad_input, grad_x)
    for lower, upper in zip(back, back[1:], strict=False):
        assert upper.grad_input is lower.grad_output
    for name, value in grads.items():
        assert np.array_equal(model.grads[name], value), name
    for s, b in zip(steps, back, strict=True):
        assert b.grad_input.shape == s.input.shape and b.grad_output.shape == s.output.shape
