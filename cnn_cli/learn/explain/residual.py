"""Worked example of a residual block: out = F(x) + x, and the two gradient paths that add up at x (``cnn docs residual``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.learn.explain.report import ExampleInput, Report, _no_matrices, factor, num, products, show

# F(x) = relu(W x), three features, no bias: small numbers whose products are exact in binary.
RESIDUAL_X = np.array([1.0, -2.0, 3.0])
RESIDUAL_W = np.array([[1.0, 0.0, 1.0], [0.5, 1.0, 0.0], [0.0, 0.5, 1.0]])
RESIDUAL_GRAD = np.array([0.5, -1.0, 2.0])


def _block() -> Any:
    """A one-block model built by the library: res1 = [fc1 (3 -> 3, no bias), relu1], identity skip, in float64."""
    from cnn_cli.model.network import build_model

    inner = [{"type": "dense", "out_features": 3, "bias": False}, {"type": "relu"}]
    model = build_model({"input_shape": [3], "layers": [{"type": "residual", "layers": inner}]}, dtype="float64")
    model.load_params({"res1.fc1.weight": RESIDUAL_W.copy()})
    return model.layers[0]


def residual(given: ExampleInput) -> Report:
    _no_matrices(given, "residual")
    report = Report("residual")
    report.say("A residual block, out = F(x) + x with F(x) = relu(W x), and its backward (`cnn docs residual`).")
    block = _block()
    dense, relu = block.inner
    x, grad_out = RESIDUAL_X[None, :], RESIDUAL_GRAD[None, :]
    report.say(f"  x = {show(RESIDUAL_X)}")
    report.matrix("W = res1.fc1.weight", RESIDUAL_W)
    report.say()
    report.say("Forward (cnn_cli.layers.residual.Residual.forward):")
    out = block.forward(x)
    z = dense.forward(x)[0]
    for i in range(3):
        written, by_hand = products(RESIDUAL_W[i], RESIDUAL_X)
        report.check_sum(f"z[{i}] = (W x)[{i}]", written, by_hand, z[i])
    through = np.maximum(z, 0.0)
    report.say(f"  F(x) = relu(z) = {show(through)}")
    report.check("out = F(x) + x", out[0], through + RESIDUAL_X, "by hand")
    report.say()
    report.say(f"Backward, from ∂L/∂out = {show(RESIDUAL_GRAD)}. The add passes ∂L/∂out unchanged to both of its terms;")
    report.say("x fed both, so ∂L/∂x is the sum of what comes back along each path.")
    report.say()
    report.say("Path 1, through the layers: the relu's mask [z > 0], then the dense layer's Wᵀ.")
    grad_z = relu.backward(grad_out)
    report.check("∂L/∂z = ∂L/∂out · [z > 0]", grad_z[0], np.where(z > 0, RESIDUAL_GRAD, 0.0), "by hand")
    grad_through = dense.backward(grad_z)[0]
    for j in range(3):
        written, by_hand = products(RESIDUAL_W[:, j], grad_z[0])
        report.check_sum(f"through[{j}] = (Wᵀ ∂L/∂z)[{j}]", written, by_hand, grad_through[j])
    report.say()
    report.say("Path 2, along the skip: ∂x/∂x = 1, so ∂L/∂out arrives unchanged.")
    report.say(f"  along_skip = ∂L/∂out = {show(RESIDUAL_GRAD)}")
    report.say()
    report.say("The two paths add up (cnn_cli.nn.residual.fork_backward):")
    grad_x = block.backward(grad_out)[0]
    for j in range(3):
        report.check_sum(
            f"∂L/∂x[{j}]", f"{num(grad_through[j])} + {factor(RESIDUAL_GRAD[j])}", grad_through[j] + RESIDUAL_GRAD[j], grad_x[j]
        )
    report.check("∂L/∂W = (∂L/∂z) xᵀ", block.grads["fc1.weight"], np.outer(grad_z[0], RESIDUAL_X), "by hand")
    report.say()
    report.say("Why it matters: make the inner layers useless (W = 0, so F(x) = 0 and the relu passes nothing).")
    block.params["fc1.weight"][...] = 0.0
    block.forward(x)
    report.check("∂L/∂x with W = 0", block.backward(grad_out)[0], RESIDUAL_GRAD, "the skip alone", show(RESIDUAL_GRAD))
    report.say("  Path 1 gives nothing, yet the gradient still reaches x whole along the skip. In a plain stack")
    report.say("  it would be 0 here and in every layer below; with skips, every block passes at least ∂L/∂out on.")
    return report
