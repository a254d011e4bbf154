"""The user-facing model gradient check (cnn_cli.learn.gradcheck), behind ``cnn gradcheck --config FILE``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import cnn_cli.nn.activations as activations_module
from cnn_cli.config.load import builtin_configs
from cnn_cli.errors import EXIT_FAULT
from cnn_cli.layers import MaxPool2D
from cnn_cli.learn.gradcheck import ATOL, RTOL, GradcheckResult, format_gradcheck, gradcheck_model
from cnn_cli.model.network import build_model
from cnn_cli.nn.conv import conv2d_backward
from cnn_cli.nn.pool import avgpool2d_backward
from tests.support import REPO_ROOT
from tests.support.cli import invoke_cli

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


@pytest.mark.parametrize("name", [name for name in builtin_configs() if name != "mnist"])  # mnist: the test above
def test_every_builtin_config_passes_its_own_gradcheck(name):
    """``cnn gradcheck --config NAME`` with the defaults, for every config shipped with the package."""
    outcome = invoke_cli(["gradcheck", "--config", name], timeout=600)
    assert outcome.code == 0, outcome.output
    assert "FAIL" not in outcome.stdout


# ---------------------------------------------------------------- the absolute floor


def test_deep_sigmoid_passes_on_the_absolute_floor_and_says_why():
    """Its first layers' gradients have vanished to ~1e-6: |a − n| is pure roundoff (~3e-11), a relative error of ~1e-4."""
    results = {r.name: r for r in gradcheck_model("deep-sigmoid")}
    assert failed(list(results.values())) == set()
    for name in ("fc1.weight", "input"):
        assert results[name].on_floor and results[name].max_rel_error > RTOL
        assert results[name].max_abs_error < ATOL / 10
        assert "vanishing through 6 sigmoids; relative error means little there" in results[name].lesson
    assert not results["fc7.weight"].on_floor and results["fc7.weight"].lesson == ""  # the output layer: large gradients
    assert "vanishing through 5 sigmoids" in results["fc2.weight"].lesson
    table = format_gradcheck(list(results.values()))
    assert "* fc1.weight passes on the absolute floor: its gradients are ~1e-6, vanishing through 6 sigmoids" in table
    assert "PASS*" in table and "FAIL" not in table


def test_without_the_floor_deep_sigmoid_fails_its_vanished_tensors():
    outcome = invoke_cli(["gradcheck", "--config", "deep-sigmoid", "--atol", "0"], timeout=600)
    assert outcome.code == EXIT_FAULT, outcome.output
    rows = {line.split()[0]: line.split()[-1] for line in outcome.stdout.splitlines() if line.startswith(("fc", "input"))}
    assert rows["fc1.weight"] == rows["input"] == "FAIL"
    assert rows["fc7.weight"] == rows["fc7.bias"] == "PASS"


def test_the_floor_hides_no_bug_in_the_vanished_layers(monkeypatch):
    """A sigmoid backward that forgets (1 − y): every tensor below the last sigmoid fails, the ~1e-6 ones included."""
    monkeypatch.setattr(activations_module, "sigmoid_backward", lambda grad_out, out: grad_out * out)
    results = {r.name: r for r in gradcheck_model("deep-sigmoid")}
    assert failed(list(results.values())) == {f"fc{i}.{p}" for i in range(1, 7) for p in ("weight", "bias")} | {"input"}
    assert results["fc1.weight"].max_rel_error > 1e-2


@pytest.mark.parametrize(("config", "mistake"), [("deep-sigmoid", "loss-not-averaged"), ("mnist", "relu-no-mask")])
def test_a_bug_zoo_mistake_still_fails_with_the_floor(config, mistake):
    outcome = invoke_cli(["gradcheck", "--config", config, "--break", mistake], timeout=600)
    assert outcome.code == 1, outcome.output  # the check caught the mistake: exit 1, as `cnn gradcheck --help` says
    rows = {line.split()[0]: line.split()[-1] for line in outcome.stdout.splitlines() if line.startswith(("fc", "conv", "input"))}
    assert rows["input"] == "FAIL"
    assert rows["fc1.weight" if config == "deep-sigmoid" else "conv1.weight"] == "FAIL"
    assert "PASS*" not in outcome.stdout


def test_an_entry_passes_within_atol_plus_rtol():
    """|a − n| ≤ atol + rtol·max(|a| + |n|, floor), entry by entry, as torch.autograd.gradcheck's atol + rtol·|n|."""
    result = _check_pairs([1e-6, 2e-6], [1e-6 + 5e-10, 2e-6], atol=1e-9)
    assert result.passed and result.on_floor and result.max_abs_error == pytest.approx(5e-10)
    assert not _check_pairs([1e-6, 2e-6], [1e-6 + 5e-10, 2e-6], atol=1e-10).passed
    assert not _check_pairs([1e-6, 2e-6], [1e-6 + 5e-10, 2e-6], atol=0.0).passed
    large = _check_pairs([0.5, 0.25], [0.5 + 1e-9, 0.25], atol=1e-9)
    assert large.passed and not large.on_floor  # judged on its relative error alone
    assert not _check_pairs([0.5], [np.nan], atol=1e-9).passed


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
        GradcheckResult("conv1.weight", 1.2e-8, True, 20, max_abs_error=2e-11),
        GradcheckResult("conv1.bias", 0.5, False, 16, skipped=1, max_abs_error=0.25),
        GradcheckResult("input", 3.0e-9, True, 20, max_abs_error=1e-12),
    ]
    lines = format_gradcheck(results).splitlines()
    assert lines[0].split() == ["tensor", "checked", "skipped", "max", "rel", "err", "max", "|a", "−", "n|", "result"]
    assert lines[2].split() == ["conv1.weight", "20", "0", "1.20e-08", "2.0e-11", "PASS"]
    assert lines[3].split() == ["conv1.bias", "16", "1", "5.00e-01", "2.5e-01", "FAIL"]
    assert lines[4].split() == ["input", "20", "0", "3.00e-09", "1.0e-12", "PASS"]
    assert lines[-1] == "2/3 passed, 1 FAILED"
    on_floor = GradcheckResult("fc1.weight", 1e-4, True, 20, max_abs_error=3e-11, on_floor=True, lesson="fc1.weight passes on ...")
    lines = format_gradcheck([on_floor]).splitlines()
    assert lines[2].split()[-1] == "PASS*"
    assert lines[-2:] == [
        "* fc1.weight passes on ...",
        "PASS*: within the absolute floor atol only (`cnn docs gradcheck`, 'The absolute floor')",
    ]


def test_result_fields():
    assert [f.name for f in dataclasses.fields(GradcheckResult)][:4] == ["name", "max_rel_error", "passed", "checked"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size"), ({"eps": 0.0}, "eps"), ({"max_checks_per_param": 0}, "max_checks"), ({"atol": -1.0}, "atol")],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcheck_model("smoke", **kwargs)


def _check_pairs(analytic: list[float], numeric: list[float], atol: float) -> GradcheckResult:
    """Judge hand-written values against given numeric ones, as the check judges one tensor's entries."""
    from cnn_cli.learn import gradcheck

    class FixedProbe:
        base_loss = 2.3

        def __init__(self, tensor: np.ndarray, values: list[float]) -> None:
            self.tensor, self.values = tensor, values

        def evaluate(self):
            # L = Σ n_k θ_k: central differences give exactly n_k
            return float(np.dot(self.values, self.tensor)), []

        def on_base_piece(self, pattern) -> bool:
            return True

    tensor = np.zeros(len(numeric))
    return gradcheck._check_tensor(
        "t", tensor, np.array(analytic), FixedProbe(tensor, numeric), np.random.default_rng(0), 0.5, (RTOL, atol), 10
    )
