"""The user-facing model gradient check (cnn_cli.learn.gradcheck), behind ``cnn gradcheck --config FILE``."""

from __future__ import annotations

import dataclasses

import pytest

import cnn_cli.nn.activations as activations_module
from cnn_cli.config.load import builtin_configs
from cnn_cli.layers import MaxPool2D
from cnn_cli.learn.gradcheck import GradcheckResult, format_gradcheck, gradcheck_model
from cnn_cli.model.network import build_model
from cnn_cli.nn.conv import conv2d_backward
from cnn_cli.nn.pool import avgpool2d_backward
from tests.support import REPO_ROOT

MNIST_YAML = REPO_ROOT / "configs" / "mnist.yaml"


def every_layer_config(loss: str) -> dict:
    """A small model with every layer type, ending in the outputs ``loss`` needs."""
    outputs = 1 if loss == "binary_cross_entropy" else 4
    return {
        "input_shape": [2, 9, 8],
        "loss": loss,
        "layers": [
            {"type": "padding", "padding": [1, 0]},  # 2x11x8
            {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 2], "stride": [2, 1], "dilation": [1, 2]},
            {"type": "relu"},  # 4x5x6
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "groups": 2},
            {"type": "leaky_relu", "negative_slope": 0.1},
            {"type": "maxpool2d", "kernel_size": 2, "stride": 1, "padding": 1},  # 4x6x7
            {"type": "conv2d", "out_channels": 3, "kernel_size": 2, "stride": 2, "bias": False},  # 3x3x3
            {"type": "tanh"},
            {"type": "avgpool2d", "kernel_size": 2, "stride": 1, "padding": 1},  # 3x4x4
            {"type": "flatten"},
            {"type": "dropout", "p": 0.5},
            {"type": "dense", "out_features": 6},
            {"type": "sigmoid"},
            {"type": "dense", "out_features": outputs},
        ],
    }


def failed(results: list[GradcheckResult]) -> set[str]:
    return {r.name for r in results if not r.passed}


def test_mnist_config_passes_for_every_parameter_and_the_input():
    """The acceptance check: ``cnn gradcheck --config configs/mnist.yaml`` prints PASS everywhere."""
    results = gradcheck_model(MNIST_YAML)
    model = build_model(MNIST_YAML)
    assert [r.name for r in results] == [*model.params, "input"]
    assert failed(results) == set(), format_gradcheck(results)
    for r in results:
        size = model.params[r.name].size if r.name != "input" else 28 * 28 * 2
        assert r.checked == min(20, size), r
        assert r.max_rel_error <= 1e-5
    table = format_gradcheck(results)
    assert table.count("PASS") == 13 and "FAIL" not in table


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "sum_squared_error"])
def test_every_layer_type_and_loss_passes(loss):
    results = gradcheck_model(every_layer_config(loss), seed=1, batch_size=3)
    assert failed(results) == set(), format_gradcheck(results)
    assert "conv3.bias" not in {r.name for r in results}  # bias: false leaves no parameter to check
    assert all(r.checked > 0 for r in results)


@pytest.mark.parametrize("name", [name for name in builtin_configs() if name != "mnist"])
def test_every_builtin_config_passes(name):
    """Every config shipped with the package (binary cross-entropy, tanh/avg-pool LeNet, dropout ...)."""
    results = gradcheck_model(name, max_checks_per_param=5)
    assert failed(results) == set(), format_gradcheck(results)


def test_same_seed_gives_the_same_report_and_another_seed_samples_elsewhere():
    config = every_layer_config("softmax_cross_entropy")
    first, again = gradcheck_model(config, seed=4), gradcheck_model(config, seed=4)
    assert first == again
    other = gradcheck_model(config, seed=5)
    assert [r.max_rel_error for r in other] != [r.max_rel_error for r in first]


def test_only_max_checks_per_param_entries_are_checked():
    results = gradcheck_model(every_layer_config("softmax_cross_entropy"), max_checks_per_param=3)
    sizes = {name: p.size for name, p in build_model(every_layer_config("softmax_cross_entropy")).params.items()}
    for r in results:
        assert r.checked == min(3, sizes.get(r.name, 10**9)), r


# ---------------------------------------------------------------- a broken backward is reported


def _conv_backward_bias_of_first_sample(grad_out, cache, need_input_grad=True):
    """Forgets to sum the bias gradient over the batch (notes 000 §2.4 sums every dL/dy)."""
    grad_x, grad_weight, grad_bias = conv2d_backward(grad_out, cache, need_input_grad)
    if grad_bias is not None:
        grad_bias = grad_out[0].sum(axis=(1, 2))
    return grad_x, grad_weight, grad_bias


def test_broken_conv_bias_gradient_fails_exactly_the_conv_biases(monkeypatch):
    monkeypatch.setattr("cnn_cli.layers.conv.conv2d_backward", _conv_backward_bias_of_first_sample)
    results = gradcheck_model(every_layer_config("softmax_cross_entropy"), batch_size=3)
    assert failed(results) == {"conv1.bias", "conv2.bias"}
    worst = {r.name: r.max_rel_error for r in results}
    assert worst["conv1.bias"] > 1e-2
    table = format_gradcheck(results)
    assert "FAIL" in table and "2 FAILED" in table


def test_broken_relu_backward_fails_on_the_mnist_model(monkeypatch):
    """A ReLU backward that forgets its mask: the gradients of everything before the last ReLU go wrong."""
    monkeypatch.setattr(activations_module, "relu_backward", lambda grad_out, positive: grad_out)
    results = gradcheck_model("mnist", max_checks_per_param=3)
    assert failed(results) >= {"conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight", "input"}
    assert {"conv6.weight", "conv6.bias"}.isdisjoint(failed(results))  # after the last ReLU: still right


def test_broken_maxpool_backward_fails(monkeypatch):
    monkeypatch.setattr(MaxPool2D, "_backward", staticmethod(avgpool2d_backward))
    results = gradcheck_model(every_layer_config("softmax_cross_entropy"))
    assert {"conv1.weight", "conv2.weight", "input"} <= failed(results)


# ---------------------------------------------------------------- kinks


def test_steps_that_cross_a_relu_kink_are_skipped_not_failed():
    """With a huge ε most steps flip some ReLU: those entries are skipped and counted, never judged."""
    config = {
        "input_shape": [1, 6, 6],
        "layers": [
            {"type": "conv2d", "out_channels": 3, "kernel_size": 3},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "dense", "out_features": 3},
        ],
    }
    results = gradcheck_model(config, eps=0.3)
    assert sum(r.skipped for r in results) > 0
    # the last layer sits after every kink: nothing of it can be skipped
    assert {r.name: r.skipped for r in results}["fc1.weight"] == 0


def test_a_real_kink_on_the_mnist_model_is_skipped():
    """With seed 4 one sampled step of conv1.weight moves a ReLU input across 0. Judged anyway, that
    entry's central difference would be off by ~4e-4 and the check would report a false FAIL."""
    results = {r.name: r for r in gradcheck_model("mnist", seed=4, max_checks_per_param=2)}
    assert results["conv1.weight"].skipped >= 1
    assert results["conv1.weight"].checked == 2  # the skipped entry was replaced by another
    assert all(r.passed for r in results.values())


def test_a_tensor_whose_every_step_crosses_a_kink_does_not_pass():
    results = gradcheck_model("smoke", eps=1e3, max_checks_per_param=2)
    by_name = {r.name: r for r in results}
    assert by_name["conv1.weight"].checked == 0
    assert by_name["conv1.weight"].skipped > 0
    assert not by_name["conv1.weight"].passed


# ---------------------------------------------------------------- report and arguments


def test_format_gradcheck_table():
    results = [
        GradcheckResult("conv1.weight", 1.2e-8, True, 20),
        GradcheckResult("conv1.bias", 0.5, False, 16, skipped=1),
        GradcheckResult("input", 3.0e-9, True, 20),
    ]
    lines = format_gradcheck(results).splitlines()
    assert lines[0].split() == ["tensor", "checked", "skipped", "max", "rel", "err", "result"]
    assert lines[2].split() == ["conv1.weight", "20", "0", "1.20e-08", "PASS"]
    assert lines[3].split() == ["conv1.bias", "16", "1", "5.00e-01", "FAIL"]
    assert lines[4].split() == ["input", "20", "0", "3.00e-09", "PASS"]
    assert lines[-1] == "2/3 passed, 1 FAILED"


def test_result_fields():
    assert [f.name for f in dataclasses.fields(GradcheckResult)][:4] == ["name", "max_rel_error", "passed", "checked"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size"), ({"eps": 0.0}, "eps"), ({"max_checks_per_param": 0}, "max_checks")],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcheck_model("smoke", **kwargs)
