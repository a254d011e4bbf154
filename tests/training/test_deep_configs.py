"""deep-sigmoid vs deep-relu: the same deep net, and only the sigmoid one's gradients vanish toward the input.

A short real run of each (real MNIST, 2,000 training images, 40 steps of the config's own
optimizer); ‖dL/dW‖ of every dense layer is read from ``model.grads`` after each step.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.config.load import load_config
from cnn_cli.pictures.common import figure_pixels
from cnn_cli.pictures.gradient_flow import plot_gradient_flow
from cnn_cli.runs.gradients import read_gradients
from tests.support import REPO_ROOT
from tests.support.gradients import assert_picture, short_run, write_gradients_csv

STEPS = 40


@pytest.fixture(scope="module")
def deep_runs(mnist_data_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)
        return {name: short_run(name, steps=STEPS, limit=2000, log_every=10) for name in ("deep-sigmoid", "deep-relu")}


def test_the_two_configs_differ_only_in_the_activation():
    sigmoid, relu = load_config("deep-sigmoid").as_dict(), load_config("deep-relu").as_dict()
    for config in (sigmoid, relu):
        config.pop("name"), config.pop("description")
    layers = sigmoid["model"]["layers"]
    assert sum(layer["type"] == "dense" for layer in layers) >= 6
    assert [layer["type"] for layer in layers].count("sigmoid") >= 5
    # The resolved config names every layer (sigmoid1 ... in one, relu1 ... in the other).
    swapped = [
        {**layer, "type": "relu", "name": layer["name"].replace("sigmoid", "relu")} if layer["type"] == "sigmoid" else layer
        for layer in layers
    ]
    assert {**sigmoid, "model": {**sigmoid["model"], "layers": swapped}} == relu


def input_to_output_ratio(norms: np.ndarray) -> float:
    """Mean ‖dL/dW‖ of the input-side layer over that of the output-side layer."""
    mean = norms.mean(axis=0)
    return float(mean[0] / mean[-1])


@pytest.mark.slow
def test_sigmoid_gradients_shrink_toward_the_input_and_relu_ones_do_not(deep_runs, capsys):
    sigmoid, relu = deep_runs["deep-sigmoid"], deep_runs["deep-relu"]
    assert sigmoid.weighted_layers == relu.weighted_layers == [f"fc{i}" for i in range(1, 8)]
    sigmoid_mean = sigmoid.weight_norms.mean(axis=0)
    relu_mean = relu.weight_norms.mean(axis=0)
    sigmoid_ratio, relu_ratio = input_to_output_ratio(sigmoid.weight_norms), input_to_output_ratio(relu.weight_norms)
    with capsys.disabled():
        print(f"\n‖dL/dW‖ input layer / output layer over {STEPS} steps: deep-sigmoid {sigmoid_ratio:.4f}, deep-relu {relu_ratio:.3f}")
    # Sigmoid: every step back from fc7 to fc2 shrinks the weight gradient (σ' ≤ 1/4 at each sigmoid).
    # fc1 is not compared with fc2: its input is the 784-pixel image, larger than a 64-unit layer's
    # output, and dL/dW = δ · inputᵀ carries that size.
    assert np.all(np.diff(sigmoid_mean[1:]) > 0), sigmoid_mean
    assert sigmoid_ratio < 0.05
    # ReLU: no such fall; the input-side layer's gradient is as large as the output side's.
    assert relu_ratio > 0.3
    assert relu_mean[1] / relu_mean[-1] > 0.3  # fc2, the first layer fed by an activation, too
    assert relu_ratio > 30 * sigmoid_ratio
    # At every single step, not only on average. The output layer starts small (the untrained loss is ≈ ln 10,
    # `cnn docs initial-loss`), which scales every gradient below it alike for the first steps; so step by step
    # the input-side layer is compared with the last hidden one, fc6.
    assert np.all(sigmoid.weight_norms[:, 0] / sigmoid.weight_norms[:, -2] < 0.05)
    assert np.all(relu.weight_norms[:, 0] / relu.weight_norms[:, -2] > 0.3)


@pytest.mark.slow
def test_the_backpropagated_signal_falls_through_every_sigmoid(deep_runs):
    rows = [r for r in deep_runs["deep-sigmoid"].rows if r["event"] == "epoch"]
    signal = {r["layer"]: r["input_grad_norm"] for r in rows}
    # dL/d(input of fc_k) for k = 7 .. 2: each has passed one more sigmoid than the one after it.
    chain = [signal[f"fc{i}"] for i in range(2, 8)]
    assert np.all(np.diff(chain) > 0), chain


@pytest.mark.slow
def test_the_sigmoid_gradient_flow_picture(deep_runs, tmp_path):
    path = write_gradients_csv(tmp_path / "gradients.csv", deep_runs["deep-sigmoid"].rows)
    picture = plot_gradient_flow(read_gradients(path), tmp_path / "gradient_flow.png", "deep-sigmoid")
    assert_picture(picture, figure_pixels("gradient_flow"))
