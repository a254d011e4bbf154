"""Worked examples of a whole network: notes 004's 15-parameter net (``cnn docs seed004``) and the L2-regularised
update (``cnn docs seesaw``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnn_cli.learn.explain.report import ExampleInput, Report, _no_matrices, as_nchw, num, products, show
from cnn_cli.nn import conv as nn_conv
from cnn_cli.nn import optim

SEED004_PARAMS = {
    "conv1.weight": np.array([[[[0.2, -0.1, 0.3], [0.1, 0.4, -0.2], [-0.3, 0.1, 0.2]]]]),
    "conv1.bias": np.array([-0.12]),
    "fc1.weight": np.array([[0.5, -0.4, 0.3, 0.2]]),
    "fc1.bias": np.array([-0.1]),
}


def seed004_model_section() -> dict[str, Any]:
    """The shipped ``seed004`` config's model section (notes 004's layers and loss, ``cnn docs seed004``), the one place
    it is written."""
    from cnn_cli.config.load import load_config

    return load_config("seed004").as_dict()["model"]


def seed004_input() -> np.ndarray:
    """A 6x6 image with 36 distinct values (7 is coprime with 36), so no max-pool window ties."""
    index = np.arange(36)
    return ((index * 7 % 36) / 35.0 - 0.3).reshape(1, 1, 6, 6)


def seed004_net(given: ExampleInput) -> Report:
    _no_matrices(given, "seed004-net")
    from cnn_cli.model.network import build_model

    report = Report("seed004-net")
    report.say("Notes 004's network (`cnn docs seed004`): Z1 = Conv(X, W1) + b1, A1 = relu(Z1), P1 = maxpool(A1), F = flatten(P1),")
    report.say("Z2 = W2 F + b2, A2 = σ(Z2), L = −y log A2 − (1 − y) log(1 − A2). Input 6x6 (the notes give no size).")
    model = build_model({**seed004_model_section(), "input_shape": [1, 6, 6]}, dtype="float64")
    model.load_params(SEED004_PARAMS)
    for name, value in model.params.items():
        report.say(f"  {name:<13} shape {str(value.shape):<14} {value.size:>2} parameters")
    report.check("trainable parameters", model.num_params(), 15, "notes 004", "15")
    report.say("  (the notes print no parameter values; these are fixed small numbers)")
    report.matrix("W1 = conv1.weight[0, 0]", model.params["conv1.weight"][0, 0])
    report.say(f"  b1 = conv1.bias = {num(model.params['conv1.bias'][0])}")
    report.say(f"  W2 = fc1.weight = {show(model.params['fc1.weight'])}")
    report.say(f"  b2 = fc1.bias = {num(model.params['fc1.bias'][0])}")
    x = seed004_input()
    y_label = np.array([1])
    steps = model.trace(x, training=True)
    z1, a1, p1, flat, z2 = (step.output for step in steps)
    f = flat.reshape(1, -1)  # Flatten gives (N, 4, 1, 1), the layout a dense layer reads
    report.say()
    report.say("Forward (each value is a layer's output from Model.trace):")
    report.matrix("X", x[0, 0])
    report.matrix("Z1 = Conv(X, W1) + b1", z1[0, 0])
    report.matrix("A1 = relu(Z1)", a1[0, 0])
    report.matrix("P1 = maxpool(A1), 2x2 stride 2", p1[0, 0])
    report.say(f"  F = flatten(P1) = {show(f[0])}")
    a2 = float(model.loss.probabilities(z2)[0, 1])
    z2_value = float(z2[0, 0])
    report.say(f"  Z2 = W2 F + b2 = {num(z2_value)},  A2 = σ(Z2) = {num(a2)},  y = 1")
    written, total = products(model.params["fc1.weight"][0], f[0])
    report.check("Z2", z2_value, total + float(model.params["fc1.bias"][0]), "by hand " + written + " + b2")
    loss, grad_logits = model.loss(z2, y_label)
    report.check("L = −log A2", loss, -math.log(a2), "by hand")
    report.say()
    report.say("Backward, one chain-rule factor at a time (notes 004):")
    dl_da2 = (a2 - 1.0) / (a2 * (1.0 - a2))
    da2_dz2 = a2 * (1.0 - a2)
    report.say(f"  ∂L/∂A2 = (a2 − y)/(a2(1 − a2)) = {num(dl_da2)}")
    report.say(f"  ∂A2/∂Z2 = a2(1 − a2) = {num(da2_dz2)}")
    report.check("∂L/∂Z2 = ∂L/∂A2 · ∂A2/∂Z2 = a2 − y", grad_logits[0, 0], dl_da2 * da2_dz2, "by hand")
    grads = model.backward_trace(grad_logits)
    dl_df = grads[4].grad_input.reshape(-1)
    report.check("∂L/∂F = (a2 − y) · W2 (∂Z2/∂F = W2)", dl_df, (a2 - 1.0) * model.params["fc1.weight"][0], "by hand")
    dl_dp1 = grads[3].grad_input[0, 0]
    report.check("∂L/∂P1 = reshape(∂L/∂F) (∂F/∂P1 only reshapes)", dl_dp1, dl_df.reshape(2, 2), "by hand")
    dl_da1 = grads[2].grad_input[0, 0]
    routed = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            window = a1[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            a, b = np.unravel_index(int(np.argmax(window)), (2, 2))
            routed[2 * i + a, 2 * j + b] = dl_dp1[i, j]
    report.matrix("∂L/∂A1 (∂P1/∂A1: each value to its window's winner)", dl_da1)
    report.check("∂L/∂A1", dl_da1, routed, "by hand")
    dl_dz1 = grads[1].grad_input[0, 0]
    report.matrix("∂L/∂Z1 (∂A1/∂Z1 = [Z1 > 0])", dl_dz1)
    report.check("∂L/∂Z1", dl_dz1, np.where(z1[0, 0] > 0, dl_da1, 0.0), "by hand")
    correlation, _ = nn_conv.conv2d_forward(x, as_nchw(dl_dz1), None)
    report.matrix("∂L/∂W1 = X ⋆ ∂L/∂Z1 (∂Z1/∂W1)", model.grads["conv1.weight"][0, 0])
    report.check("∂L/∂W1", model.grads["conv1.weight"][0, 0], correlation[0, 0], "conv2d_forward(X, ∂L/∂Z1)")
    report.check("∂L/∂b1 = Σ ∂L/∂Z1", model.grads["conv1.bias"][0], float(dl_dz1.sum()), "by hand")
    f_column = f.T  # (4, m) with m = 1: one column per image, as in the notes
    report.check("∂L/∂W2 = (A2 − Y)Fᵀ", model.grads["fc1.weight"], (a2 - 1.0) * f_column.T, "by hand")
    report.check("∂L/∂b2 = A2 − Y", model.grads["fc1.bias"][0], a2 - 1.0, "by hand")
    report.erratum(
        "notes 004's ∂L/∂b2 step writes (a2 − y)/(a2(1 − a2)) × 1 = (A2 − Y): it drops the factor ∂A2/∂z2 = a2(1 − a2); "
        "with it the product is (A2 − Y), as computed here."
    )
    return report


def l2_update(given: ExampleInput) -> Report:
    _no_matrices(given, "l2-update")
    report = Report("l2-update")
    alpha = lam = 0.1
    report.say("Notes 001's update with L2 regularisation (`cnn docs seesaw`): w ← w − α(∂L/∂w + λw), α = λ = 0.1.")
    report.say("∂(½λΣw²)/∂w = λw is added by cnn_cli.optim.add_l2_gradient; the step is cnn_cli.optim.SGD.")

    def update(name: str, w: float, grad: float) -> float:
        params = {f"{name}.weight": np.array([w])}
        grads = {f"{name}.weight": np.array([grad])}
        optim.add_l2_gradient(params, grads, lam)
        optim.SGD(alpha).step(params, grads)
        return float(params[f"{name}.weight"][0] - w)

    report.say()
    report.say("Output weight of the target class: w = 0.1, ∂L/∂w = (p_target − 1)·Out = −0.49·0.49.")
    delta = update("fc", 0.1, -0.49 * 0.49)
    report.say(f"  Δw = −0.1·(−0.49·0.49 + 0.1·0.1) = {num(delta)}")
    report.check("Δw", delta, 0.023, "notes 001", "0.023")
    report.say()
    report.say("Inner weight w5 = −0.1: ∂L/∂w5 = Σ(∂L/∂f · w@c) · f@c(1 − f@c) · Out_A")
    inner = (-0.49 * 0.1 + 0.49 * 0.2) * 0.49 * (1 - 0.49) * 0.1
    delta = update("fc", -0.1, inner)
    report.say(f"  = (−0.49·0.1 + 0.49·0.2)·0.49·(1 − 0.49)·0.1 = {num(inner)};  Δw5 = {num(delta)}")
    report.check("Δw5", delta, 0.000878, "notes 001", "0.000878")
    report.say()
    report.say("The 1x2 conv filter [w1, w2] = [0.1, 0.1] over In = [1, 1, 0, 0, 0], ∂L/∂f = [0, −0.0147, 0.0196, 0.0196]:")
    inputs = np.array([[[[1.0, 1.0, 0.0, 0.0, 0.0]]]])
    weight = np.array([[[[0.1, 0.1]]]])
    _, cache = nn_conv.conv2d_forward(inputs, weight, None)
    _, grad_w, _ = nn_conv.conv2d_backward(np.array([[[[0.0, -0.0147, 0.0196, 0.0196]]]]), cache)
    report.check("∂L/∂w1 = Σ ∂L/∂f_i · In_i", grad_w[0, 0, 0, 0], -0.0147, "notes 001", "-0.0147")
    report.check("∂L/∂w2 = Σ ∂L/∂f_i · In_(i+1)", grad_w[0, 0, 0, 1], 0.0, "notes 001", "0")
    params = {"conv.weight": weight.copy()}
    optim.add_l2_gradient(params, {"conv.weight": grad_w}, lam)
    optim.SGD(alpha).step(params, {"conv.weight": grad_w})
    change = (params["conv.weight"] - weight)[0, 0, 0]
    report.check("Δw1 = −0.1(−0.0147 + 0.1·0.1)", change[0], 0.00047, "notes 001", "0.00047")
    report.check("Δw2 = −0.1(0 + 0.1·0.1)", change[1], -0.001, "notes 001", "-0.001")
    report.say("Biases are not regularised (add_l2_gradient skips them), as in notes 001's ½λΣ w².")
    return report
